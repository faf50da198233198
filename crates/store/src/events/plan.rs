//! What a group commit writes: which events are new, and the chunks that hold them.
//!
//! Pure: the backends decide which keys are already stored (SQLite from its in-memory key cache,
//! PostgreSQL from `INSERT ... ON CONFLICT DO NOTHING RETURNING`), and this module does the rest.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;

use super::codec::{encode_key_hashes, ChunkEncoder};
use super::{Batch, InsertOutcome, NewEvent};

/// Most events in one chunk: bounds the work of reading one back.
const CHUNK_EVENTS_MAX: usize = 4_096;
/// A chunk is closed once its events take this many bytes.
const CHUNK_BYTES_MAX: usize = 1024 * 1024;

/// A chunk row to insert.
pub(crate) struct NewChunk {
    pub workspace_id: String,
    pub subject: String,
    pub time_min_us: i64,
    pub time_max_us: i64,
    pub ingested_at_us: i64,
    pub event_count: i32,
    pub key_hashes: Vec<u8>,
    pub events: Vec<u8>,
}

/// The outcome of planning a group commit.
pub(crate) struct Plan {
    pub chunks: Vec<NewChunk>,
    pub outcomes: Vec<InsertOutcome>,
    /// The keys the chunks store, by workspace: what the SQLite key cache learns on commit.
    pub new_keys: Vec<(String, u128)>,
}

/// The key hash of every event, batch by batch.
pub(crate) fn key_hashes(batches: &[Batch<'_>]) -> Vec<Vec<u128>> {
    batches
        .iter()
        .map(|batch| batch.events.iter().map(NewEvent::key_hash).collect())
        .collect()
}

/// Each (workspace, key hash) of the group once, in order of first appearance.
pub(crate) fn distinct_keys<'a>(
    batches: &[Batch<'a>],
    hashes: &[Vec<u128>],
) -> Vec<(&'a str, u128)> {
    let mut seen = HashSet::new();
    let mut keys = Vec::new();
    for (batch, batch_hashes) in batches.iter().zip(hashes) {
        for &hash in batch_hashes {
            let key = (batch.workspace_id.as_str(), hash);
            if seen.insert(key) {
                keys.push(key);
            }
        }
    }
    keys
}

struct ChunkBuilder {
    workspace_id: String,
    subject: String,
    time_min_us: i64,
    time_max_us: i64,
    hashes: Vec<u128>,
    encoder: ChunkEncoder,
}

/// Plans the group: an event is stored when `is_stored(workspace, hash)` says its key is not
/// stored yet and no earlier event of the group had the same workspace and key.
pub(crate) fn plan(
    batches: &[Batch<'_>],
    hashes: &[Vec<u128>],
    is_stored: impl Fn(&str, u128) -> bool,
    ingested_at: Timestamp,
) -> Plan {
    let mut taken: HashSet<(&str, u128)> = HashSet::new();
    let mut open: HashMap<(&str, &str), usize> = HashMap::new();
    let mut builders: Vec<ChunkBuilder> = Vec::new();
    let mut closed: Vec<ChunkBuilder> = Vec::new();
    let mut outcomes = Vec::with_capacity(batches.len());
    for (batch, batch_hashes) in batches.iter().zip(hashes) {
        let workspace_id = batch.workspace_id.as_str();
        let mut outcome = InsertOutcome::default();
        for (event, &hash) in batch.events.iter().zip(batch_hashes) {
            if !taken.insert((workspace_id, hash)) || is_stored(workspace_id, hash) {
                outcome.duplicates += 1;
                continue;
            }
            outcome.inserted += 1;
            let slot = *open
                .entry((workspace_id, event.subject.as_str()))
                .or_insert_with(|| {
                    builders.push(ChunkBuilder::new(workspace_id, &event.subject));
                    builders.len() - 1
                });
            let builder = &mut builders[slot];
            builder.push(event, hash);
            if builder.is_full() {
                let full =
                    std::mem::replace(builder, ChunkBuilder::new(workspace_id, &event.subject));
                closed.push(full);
            }
        }
        outcomes.push(outcome);
    }
    let ingested_at_us = ingested_at.as_microsecond();
    let mut new_keys = Vec::new();
    let chunks = closed
        .into_iter()
        .chain(builders)
        .filter(|builder| !builder.hashes.is_empty())
        .map(|builder| {
            new_keys.extend(
                builder
                    .hashes
                    .iter()
                    .map(|&hash| (builder.workspace_id.clone(), hash)),
            );
            builder.finish(ingested_at_us)
        })
        .collect();
    Plan {
        chunks,
        outcomes,
        new_keys,
    }
}

impl ChunkBuilder {
    fn new(workspace_id: &str, subject: &str) -> Self {
        Self {
            workspace_id: workspace_id.to_owned(),
            subject: subject.to_owned(),
            time_min_us: i64::MAX,
            time_max_us: i64::MIN,
            hashes: Vec::new(),
            encoder: ChunkEncoder::new(),
        }
    }

    fn push(&mut self, event: &NewEvent, hash: u128) {
        let time_us = event.time.as_microsecond();
        self.time_min_us = self.time_min_us.min(time_us);
        self.time_max_us = self.time_max_us.max(time_us);
        self.hashes.push(hash);
        self.encoder.push(event);
    }

    fn is_full(&self) -> bool {
        self.hashes.len() >= CHUNK_EVENTS_MAX || self.encoder.len() >= CHUNK_BYTES_MAX
    }

    fn finish(self, ingested_at_us: i64) -> NewChunk {
        assert!(!self.hashes.is_empty() && self.time_min_us <= self.time_max_us);
        NewChunk {
            event_count: i32::try_from(self.hashes.len()).expect("chunks are bounded"),
            key_hashes: encode_key_hashes(&self.hashes),
            workspace_id: self.workspace_id,
            subject: self.subject,
            time_min_us: self.time_min_us,
            time_max_us: self.time_max_us,
            ingested_at_us,
            events: self.encoder.into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WorkspaceId;

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
        let batches = [
            Batch {
                workspace_id: &acme,
                events: &first,
            },
            Batch {
                workspace_id: &acme,
                events: &second,
            },
        ];
        let hashes = key_hashes(&batches);
        let stored = super::super::key_hash("s", "stored");

        let plan = plan(
            &batches,
            &hashes,
            |_, hash| hash == stored,
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
        assert_eq!(plan.chunks.len(), 2, "one chunk per subject");
        assert_eq!(plan.new_keys.len(), 2);
        assert_eq!(distinct_keys(&batches, &hashes).len(), 3);
    }
}
