//! What a transaction writes: which events are new and the log chunks that hold them (a group
//! commit), or the subject chunks that replace log chunks (compaction).
//!
//! Pure: the backends decide which keys are already stored (SQLite from its in-memory key cache,
//! PostgreSQL from `INSERT ... ON CONFLICT DO NOTHING RETURNING`), and this module does the rest.

use std::collections::HashMap;

use jiff::Timestamp;

use super::codec::{
    decode_events, decode_key_hashes, encode_key_hashes, ChunkEncoder, EncodedBatch, RawEvent,
};
use super::{Batch, DecodeChunkError, InsertOutcome, KeySet, NewEvent};

/// Most events in one chunk: bounds the work of reading one back.
pub(crate) const CHUNK_EVENTS_MAX: usize = 16_384;
/// A chunk is closed once its events take this many bytes.
pub(crate) const CHUNK_BYTES_MAX: usize = 4 * 1024 * 1024;

/// A chunk row to insert: a log chunk when `subject` is `None`.
pub(crate) struct NewChunk {
    pub workspace_id: String,
    pub subject: Option<String>,
    pub time_min_us: i64,
    pub time_max_us: i64,
    pub ingested_max_us: i64,
    pub event_count: i32,
    pub key_hashes: Vec<u8>,
    pub events: Vec<u8>,
}

/// A stored chunk, as compaction reads it.
pub(crate) struct StoredChunk {
    pub seq: i64,
    pub workspace_id: String,
    pub key_hashes: Vec<u8>,
    pub events: Vec<u8>,
}

/// The outcome of planning a group commit.
pub(crate) struct Plan {
    pub chunks: Vec<NewChunk>,
    pub outcomes: Vec<InsertOutcome>,
}

impl Plan {
    /// The keys the chunks store, by workspace: what a key cache learns when they commit (or,
    /// on SQLite, gives back when they do not). Read back from the chunks when needed, rather
    /// than copied beside them for every group.
    pub(crate) fn new_keys(&self) -> impl Iterator<Item = (&str, Vec<u128>)> {
        self.chunks.iter().map(|chunk| {
            let hashes = decode_key_hashes(&chunk.key_hashes).expect("encoded by plan");
            (chunk.workspace_id.as_str(), hashes)
        })
    }
}

/// Accumulates the events of one chunk.
struct ChunkBuilder {
    workspace_id: String,
    subject: Option<String>,
    time_min_us: i64,
    time_max_us: i64,
    ingested_max_us: i64,
    hashes: Vec<u128>,
    encoder: ChunkEncoder,
}

/// Plans a group commit: an event is stored when `claim(workspace, hash)` answers true, which it
/// must do only when the key is not stored yet and was not claimed earlier in the group (see
/// [`NotStored`]). The stored events go into log chunks, one per workspace (more when one fills
/// up).
pub(crate) fn plan(
    batches: &[Batch<'_>],
    mut claim: impl FnMut(&str, u128) -> bool,
    ingested_at: Timestamp,
) -> Plan {
    let mut planner = Planner::default();
    for batch in batches {
        planner.add(batch, &mut claim, ingested_at);
    }
    planner.finish()
}

/// [`plan`] a batch at a time: a writer plans the batches of its next group as they come,
/// while its current group commits.
#[derive(Default)]
pub(crate) struct Planner {
    // One log chunk per workspace: few workspaces per group, so a linear search.
    builders: Vec<ChunkBuilder>,
    closed: Vec<ChunkBuilder>,
    outcomes: Vec<InsertOutcome>,
}

impl Planner {
    /// Plans `batch`, its events ingested at `ingested_at`.
    pub(crate) fn add(
        &mut self,
        batch: &Batch<'_>,
        mut claim: impl FnMut(&str, u128) -> bool,
        ingested_at: Timestamp,
    ) {
        let ingested_at_us = ingested_at.as_microsecond();
        let Self {
            builders,
            closed,
            outcomes,
        } = self;
        let workspace_id = batch.workspace_id.as_str();
        let slot = match builders.iter().position(|b| b.workspace_id == workspace_id) {
            Some(slot) => slot,
            None => {
                builders.push(ChunkBuilder::new(workspace_id, None));
                builders.len() - 1
            }
        };
        let mut outcome = InsertOutcome::default();
        // Claimed ahead when the batch comes encoded: all new (the usual case), it goes in as
        // it was encoded.
        let mut claimed: Option<Vec<bool>> = None;
        if let Some(encoded) = batch.encoded {
            let claims: Vec<bool> = batch
                .hashes
                .iter()
                .map(|&hash| claim(workspace_id, hash))
                .collect();
            if claims.iter().all(|&new| new) {
                let events = batch.events.len();
                if !builders[slot].fits(events, encoded.len()) {
                    let full = std::mem::replace(
                        &mut builders[slot],
                        ChunkBuilder::new(workspace_id, None),
                    );
                    closed.push(full);
                }
                let builder = &mut builders[slot];
                if builder.fits(events, encoded.len()) {
                    builder.append(encoded, batch, ingested_at_us);
                    if builder.is_full() {
                        closed.push(std::mem::replace(
                            builder,
                            ChunkBuilder::new(workspace_id, None),
                        ));
                    }
                    outcome.inserted = u64::try_from(events).expect("usize fits in u64");
                    outcomes.push(outcome);
                    return;
                }
            }
            claimed = Some(claims);
        } else {
            let estimate: usize = batch.events.iter().map(NewEvent::encoded_length).sum();
            builders[slot]
                .encoder
                .reserve(estimate.min(CHUNK_BYTES_MAX));
        }
        for (index, (event, &hash)) in batch.events.iter().zip(batch.hashes).enumerate() {
            let new = match &claimed {
                Some(claims) => claims[index],
                None => claim(workspace_id, hash),
            };
            if !new {
                outcome.duplicates += 1;
                continue;
            }
            outcome.inserted += 1;
            let builder = &mut builders[slot];
            builder.push_new(event, hash, ingested_at_us);
            if builder.is_full() {
                closed.push(std::mem::replace(
                    builder,
                    ChunkBuilder::new(workspace_id, None),
                ));
            }
        }
        outcomes.push(outcome);
    }

    /// The plan of the batches added, in the order they were added.
    pub(crate) fn finish(self) -> Plan {
        let chunks = self
            .closed
            .into_iter()
            .chain(self.builders)
            .filter(|builder| !builder.hashes.is_empty())
            .map(ChunkBuilder::finish)
            .collect();
        Plan {
            chunks,
            outcomes: self.outcomes,
        }
    }

    /// Whether no batch was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.outcomes.is_empty()
    }
}

/// A `claim` for [`plan`] from a set of stored keys it does not change: a key is new when it is
/// not stored and was not claimed earlier in the group.
pub(crate) struct NotStored<F> {
    is_stored: F,
    // Per workspace, hashed by the key hash itself (it is SHA-256 output already).
    taken: HashMap<String, KeySet>,
}

impl<F: Fn(&str, u128) -> bool> NotStored<F> {
    pub(crate) fn new(is_stored: F) -> Self {
        Self {
            is_stored,
            taken: HashMap::new(),
        }
    }

    pub(crate) fn claim(&mut self, workspace_id: &str, hash: u128) -> bool {
        if !self.taken.contains_key(workspace_id) {
            self.taken
                .insert(workspace_id.to_owned(), KeySet::default());
        }
        let taken = self.taken.get_mut(workspace_id).expect("inserted above");
        taken.insert(hash) && !(self.is_stored)(workspace_id, hash)
    }
}

/// The subject chunks that hold the events of `log_chunks`, grouped by (workspace, subject).
///
/// # Errors
///
/// When a log chunk cannot be decoded, or its key hashes do not match its events.
pub(crate) fn compact(log_chunks: &[StoredChunk]) -> Result<Vec<NewChunk>, DecodeChunkError> {
    // Keyed by borrowed (workspace, subject): the events borrow from `log_chunks`.
    // foldhash rather than SipHash: the map is looked up once per event, and its keys come from
    // our own chunks.
    let mut open: HashMap<(&str, &str), usize, foldhash::fast::RandomState> = HashMap::default();
    let mut builders: Vec<ChunkBuilder> = Vec::new();
    let mut closed: Vec<ChunkBuilder> = Vec::new();
    for log_chunk in log_chunks {
        let events = decode_events(&log_chunk.events)?;
        let hashes = decode_key_hashes(&log_chunk.key_hashes)?;
        if events.len() != hashes.len() {
            return Err(DecodeChunkError::KeyHashesCount {
                events: events.len(),
                hashes: hashes.len(),
            });
        }
        let workspace_id = log_chunk.workspace_id.as_str();
        for (event, hash) in events.iter().zip(hashes) {
            let slot = *open
                .entry((workspace_id, event.subject))
                .or_insert_with(|| {
                    builders.push(ChunkBuilder::new(workspace_id, Some(event.subject)));
                    builders.len() - 1
                });
            let builder = &mut builders[slot];
            builder.push(event, hash);
            if builder.is_full() {
                closed.push(std::mem::replace(
                    builder,
                    ChunkBuilder::new(workspace_id, Some(event.subject)),
                ));
            }
        }
    }
    Ok(closed
        .into_iter()
        .chain(builders)
        .filter(|builder| !builder.hashes.is_empty())
        .map(ChunkBuilder::finish)
        .collect())
}

impl ChunkBuilder {
    fn new(workspace_id: &str, subject: Option<&str>) -> Self {
        Self {
            workspace_id: workspace_id.to_owned(),
            subject: subject.map(str::to_owned),
            time_min_us: i64::MAX,
            time_max_us: i64::MIN,
            ingested_max_us: i64::MIN,
            hashes: Vec::new(),
            encoder: ChunkEncoder::new(),
        }
    }

    fn bound(&mut self, time_us: i64, ingested_at_us: i64, hash: u128) {
        self.time_min_us = self.time_min_us.min(time_us);
        self.time_max_us = self.time_max_us.max(time_us);
        self.ingested_max_us = self.ingested_max_us.max(ingested_at_us);
        self.hashes.push(hash);
    }

    fn push_new(&mut self, event: &NewEvent, hash: u128, ingested_at_us: i64) {
        self.bound(event.time.as_microsecond(), ingested_at_us, hash);
        self.encoder.push(event, ingested_at_us);
    }

    fn push(&mut self, event: &RawEvent<'_>, hash: u128) {
        // Microseconds, rounded down as Timestamp::as_microsecond does for the write path.
        let time_us = event
            .second
            .saturating_mul(1_000_000)
            .saturating_add(i64::from(event.nanosecond).div_euclid(1_000));
        self.bound(time_us, event.ingested_at_us, hash);
        self.encoder.push_raw(event);
    }

    /// Whether `events` more events taking `bytes` bytes keep the chunk within its bounds (with
    /// room for their first event to be encoded again).
    fn fits(&self, events: usize, bytes: usize) -> bool {
        const FIRST_EVENT_SLACK: usize = 32;
        self.hashes.len() + events <= CHUNK_EVENTS_MAX
            && self.encoder.len() + bytes + FIRST_EVENT_SLACK <= CHUNK_BYTES_MAX
    }

    /// Appends a batch that came encoded, every event of it new.
    fn append(&mut self, encoded: &EncodedBatch, batch: &Batch<'_>, ingested_at_us: i64) {
        self.time_min_us = self.time_min_us.min(encoded.time_min_us);
        self.time_max_us = self.time_max_us.max(encoded.time_max_us);
        self.ingested_max_us = self.ingested_max_us.max(ingested_at_us);
        self.hashes.extend_from_slice(batch.hashes);
        self.encoder
            .append(encoded, &batch.events[0], ingested_at_us);
    }

    fn is_full(&self) -> bool {
        self.hashes.len() >= CHUNK_EVENTS_MAX || self.encoder.len() >= CHUNK_BYTES_MAX
    }

    fn finish(self) -> NewChunk {
        assert!(!self.hashes.is_empty() && self.time_min_us <= self.time_max_us);
        NewChunk {
            event_count: i32::try_from(self.hashes.len()).expect("chunks are bounded"),
            key_hashes: encode_key_hashes(&self.hashes),
            workspace_id: self.workspace_id,
            subject: self.subject,
            time_min_us: self.time_min_us,
            time_max_us: self.time_max_us,
            ingested_max_us: self.ingested_max_us,
            events: self.encoder.into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WorkspaceId;

    fn hashes(events: &[NewEvent]) -> Vec<u128> {
        events.iter().map(NewEvent::key_hash).collect()
    }

    fn event(subject: &str, id: &str) -> NewEvent {
        NewEvent {
            source: "s".into(),
            id: id.into(),
            event_type: "t".into(),
            subject: subject.into(),
            time: "2026-11-01T00:00:00Z".parse().unwrap(),
            data: None,
        }
    }

    #[test]
    fn a_key_seen_earlier_in_the_group_or_stored_is_a_duplicate() {
        let acme = WorkspaceId::parse("ws_acme").unwrap();
        let first = [
            event("cus_1", "a"),
            event("cus_2", "b"),
            event("cus_1", "a"),
        ];
        let second = [event("cus_1", "b"), event("cus_1", "stored")];
        let first_hashes = hashes(&first);
        let second_hashes = hashes(&second);
        let batches = [
            Batch {
                workspace_id: &acme,
                events: &first,
                hashes: &first_hashes,
                encoded: None,
            },
            Batch {
                workspace_id: &acme,
                events: &second,
                hashes: &second_hashes,
                encoded: None,
            },
        ];
        let stored = super::super::key_hash("s", "stored");
        let mut not_stored = NotStored::new(|_: &str, hash| hash == stored);

        let plan = plan(
            &batches,
            |workspace_id, hash| not_stored.claim(workspace_id, hash),
            Timestamp::UNIX_EPOCH,
        );

        assert_eq!(
            plan.outcomes,
            [
                InsertOutcome {
                    inserted: 2,
                    duplicates: 1
                },
                InsertOutcome {
                    inserted: 0,
                    duplicates: 2
                }
            ]
        );
        assert_eq!(plan.chunks.len(), 1, "one log chunk for the workspace");
        assert_eq!(plan.chunks[0].subject, None);
        let new_keys: Vec<(&str, Vec<u128>)> = plan.new_keys().collect();
        assert_eq!(new_keys.len(), 1);
        assert_eq!(new_keys[0].1.len(), 2);
    }

    #[test]
    fn compaction_splits_log_chunks_by_subject_and_keeps_every_event_and_key() {
        let acme = WorkspaceId::parse("ws_acme").unwrap();
        let events = [
            event("cus_1", "a"),
            event("cus_2", "b"),
            event("cus_1", "c"),
        ];
        let hashes = hashes(&events);
        let batches = [Batch {
            workspace_id: &acme,
            events: &events,
            hashes: &hashes,
            encoded: None,
        }];
        let log = plan(&batches, |_, _| true, Timestamp::UNIX_EPOCH);
        let stored: Vec<StoredChunk> = log
            .chunks
            .into_iter()
            .map(|chunk| StoredChunk {
                seq: 1,
                workspace_id: chunk.workspace_id,
                key_hashes: chunk.key_hashes,
                events: chunk.events,
            })
            .collect();

        let compacted = compact(&stored).unwrap();

        let subjects: Vec<(Option<&str>, i32)> = compacted
            .iter()
            .map(|chunk| (chunk.subject.as_deref(), chunk.event_count))
            .collect();
        assert_eq!(subjects, [(Some("cus_1"), 2), (Some("cus_2"), 1)]);
        let cus_1 = decode_key_hashes(&compacted[0].key_hashes).unwrap();
        assert_eq!(cus_1, [hashes[0], hashes[2]]);
        assert_eq!(compacted[0].time_min_us, events[0].time.as_microsecond());
    }

    /// The events of a plan's chunks, as read back: (subject, id, time, ingested at, data).
    fn read_back(plan: &Plan) -> Vec<(String, String, i64, i64, String)> {
        plan.chunks
            .iter()
            .flat_map(|chunk| decode_events(&chunk.events).unwrap())
            .map(|event| {
                (
                    event.subject.to_owned(),
                    event.id.to_string(),
                    event.second,
                    event.ingested_at_us,
                    event.data.to_owned(),
                )
            })
            .collect()
    }

    fn varied(batch: usize, count: usize) -> Vec<NewEvent> {
        (0..count)
            .map(|index| NewEvent {
                source: format!("agent-{}", index % 2),
                id: format!("{batch}-{index}"),
                event_type: if index % 3 == 0 { "cpu" } else { "mem" }.into(),
                subject: format!("cus_{}", index % 4),
                time: Timestamp::from_second(1_790_000_000 + (index as i64 * 7) % 50).unwrap(),
                data: (index % 2 == 0).then(|| format!("{{\"n\":{index}}}")),
            })
            .collect()
    }

    /// Plans `groups` of batches twice, encoded ahead and event by event, and compares.
    fn plan_both_ways(batches: &[(WorkspaceId, Vec<NewEvent>)], stored: &[u128]) -> (Plan, Plan) {
        let hashes: Vec<Vec<u128>> = batches.iter().map(|(_, events)| hashes(events)).collect();
        let encoded: Vec<Option<EncodedBatch>> = batches
            .iter()
            .map(|(_, events)| EncodedBatch::new(events))
            .collect();
        let ingested_at: Timestamp = "2026-11-02T10:00:00.123456Z".parse().unwrap();
        let mut plans = [true, false].map(|ahead| {
            let group: Vec<Batch<'_>> = batches
                .iter()
                .zip(&hashes)
                .zip(&encoded)
                .map(|(((workspace_id, events), hashes), encoded)| Batch {
                    workspace_id,
                    events,
                    hashes,
                    encoded: if ahead { encoded.as_ref() } else { None },
                })
                .collect();
            let mut not_stored = NotStored::new(|_: &str, hash| stored.contains(&hash));
            Some(plan(
                &group,
                |workspace_id, hash| not_stored.claim(workspace_id, hash),
                ingested_at,
            ))
        });
        (plans[0].take().unwrap(), plans[1].take().unwrap())
    }

    #[test]
    fn a_batch_encoded_ahead_is_stored_as_if_encoded_by_the_writer() {
        let acme = WorkspaceId::parse("ws_acme").unwrap();
        let globex = WorkspaceId::parse("ws_globex").unwrap();
        let batches = [
            (acme.clone(), varied(1, 7)),
            (globex, varied(2, 5)),
            (acme, varied(3, 9)),
        ];

        let (ahead, by_event) = plan_both_ways(&batches, &[]);

        assert_eq!(ahead.outcomes, by_event.outcomes);
        assert_eq!(read_back(&ahead), read_back(&by_event));
        assert_eq!(read_back(&ahead).len(), 21);
        let ingested = "2026-11-02T10:00:00.123456Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_microsecond();
        assert!(read_back(&ahead).iter().all(|event| event.3 == ingested));
        for (a, b) in ahead.chunks.iter().zip(&by_event.chunks) {
            assert_eq!(
                (&a.workspace_id, a.event_count, a.time_min_us, a.time_max_us),
                (&b.workspace_id, b.event_count, b.time_min_us, b.time_max_us)
            );
            assert_eq!(a.ingested_max_us, ingested);
            assert_eq!(a.key_hashes, b.key_hashes);
        }
    }

    #[test]
    fn a_batch_encoded_ahead_with_a_duplicate_stores_only_its_new_events() {
        let acme = WorkspaceId::parse("ws_acme").unwrap();
        let mut repeated = varied(1, 6);
        repeated.push(repeated[2].clone());
        let stored = NewEvent::key_hash(&repeated[4]);
        let batches = [(acme.clone(), varied(0, 3)), (acme, repeated)];

        let (ahead, by_event) = plan_both_ways(&batches, &[stored]);

        assert_eq!(
            ahead.outcomes,
            [
                InsertOutcome {
                    inserted: 3,
                    duplicates: 0
                },
                InsertOutcome {
                    inserted: 5,
                    duplicates: 2
                }
            ]
        );
        assert_eq!(ahead.outcomes, by_event.outcomes);
        let ids: Vec<String> = read_back(&ahead).into_iter().map(|event| event.1).collect();
        assert_eq!(
            ids,
            ["0-0", "0-1", "0-2", "1-0", "1-1", "1-2", "1-3", "1-5"]
        );
        assert_eq!(read_back(&ahead), read_back(&by_event));
    }

    #[test]
    fn batches_encoded_ahead_fill_chunks_within_their_bounds() {
        let acme = WorkspaceId::parse("ws_acme").unwrap();
        let batches: Vec<(WorkspaceId, Vec<NewEvent>)> = (0..40)
            .map(|batch| (acme.clone(), varied(batch, 1_000)))
            .collect();

        let (ahead, by_event) = plan_both_ways(&batches, &[]);

        assert!(ahead.chunks.len() >= 3, "{} chunks", ahead.chunks.len());
        assert!(ahead
            .chunks
            .iter()
            .all(|chunk| usize::try_from(chunk.event_count).unwrap() <= CHUNK_EVENTS_MAX));
        assert_eq!(read_back(&ahead), read_back(&by_event));
        assert_eq!(read_back(&ahead).len(), 40_000);
    }
}
