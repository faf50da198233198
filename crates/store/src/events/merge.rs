//! Merging a subject's small chunks into one: which chunks, and the bytes of the result.
//!
//! Compaction writes one chunk per (workspace, subject) it finds in the log chunks it moves, so a
//! subject whose events trickle in among many others' gets a chunk of a few events per
//! compaction: 40 to 100 a month at 100,000 active subjects, each one an index lookup and a row to
//! read back. A merge rewrites the newest chunks of a subject into one, in one transaction that
//! inserts the merged chunk and deletes the chunks it replaces (the backends do that part).
//!
//! The policy is size-tiered over a *suffix* of the subject's chunks in `seq` order. A chunk is
//! merged with the chunks newer than it only once they hold together at least
//! `MERGE_GROWTH - 1` times its events, so every rewrite makes the chunk that holds an event at
//! least [`MERGE_GROWTH`] times larger: an event is rewritten at most log₄ of
//! [`CHUNK_EVENTS_MAX`] (7) times, about 3 times for a subject with 100 events a month, and a
//! subject keeps about `MERGE_GROWTH - 1` chunks per power of [`MERGE_GROWTH`] of its events.
//! Only suffixes are merged, so that the merged chunk, which gets the largest `seq`, stays after
//! every chunk that holds older events of its subject: readers keep a subject's events of one
//! instant in the order they were stored.
//!
//! Merges stay inside a calendar month (UTC): a chunk whose events all precede the month of
//! the newest chunk's first event is final. A billing run reads a customer's usage from the
//! start of its first period not invoiced yet, and finds late events by their chunks' first
//! times and ingestion instants; a chunk that spanned months of history would be read, and
//! decoded, whole by every month-end run. A subject keeps at least one chunk per month it had
//! events in.
//!
//! Which subjects to look at: compaction records the subjects it wrote in [`MergeHints`]; a
//! subject is looked at after [`NEW_CHUNKS_BEFORE_MERGE`] new chunks, so that a merge pass reads
//! the chunk sizes of subjects that probably have something to merge rather than of every subject.
//! The hints live in memory and are only hints: a restarted process forgets them, which leaves at
//! most a few small chunks per subject until compaction writes to the subject again.

use std::collections::{BTreeMap, HashMap};

use super::codec::{chunk_version, concatenates, decode_events, ChunkEncoder, KEY_HASH_LENGTH};
use super::plan::{NewChunk, CHUNK_BYTES_MAX, CHUNK_EVENTS_MAX};
use super::DecodeChunkError;

/// Each rewrite makes the chunk that holds an event at least this many times larger.
const MERGE_GROWTH: i64 = 4;
/// Compaction's new chunks for a subject before a merge pass looks at it.
pub(crate) const NEW_CHUNKS_BEFORE_MERGE: u32 = 4;
/// Most subjects one merge transaction looks at.
pub(crate) const MERGE_SUBJECTS_MAX: usize = 1_000;

/// A subject chunk's size, as the merge plan reads it (without its BLOBs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkShape {
    pub seq: i64,
    pub event_count: i64,
    pub length_bytes: i64,
    /// Its first and last events' times, in microseconds since the epoch.
    pub time_min_us: i64,
    pub time_max_us: i64,
}

/// The first instant (in microseconds since the epoch) of the UTC month holding `micros`.
fn month_start_us(micros: i64) -> i64 {
    let Ok(instant) = jiff::Timestamp::from_microsecond(micros) else {
        return i64::MIN;
    };
    let date = instant.to_zoned(jiff::tz::TimeZone::UTC).date();
    jiff::civil::Date::new(date.year(), date.month(), 1)
        .ok()
        .and_then(|first| first.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map_or(i64::MIN, |start| start.timestamp().as_microsecond())
}

/// The chunks of one subject to merge: a suffix of `chunks` (given in `seq` order) of at least
/// two chunks, or an empty slice.
pub(crate) fn plan_merge(chunks: &[ChunkShape]) -> &[ChunkShape] {
    let events_max = i64::try_from(CHUNK_EVENTS_MAX).expect("small");
    let bytes_max = i64::try_from(CHUNK_BYTES_MAX).expect("small");
    let mut start = chunks.len();
    let (mut newer_events, mut newer_bytes) = (0_i64, 0_i64);
    let month = chunks
        .last()
        .map_or(i64::MIN, |newest| month_start_us(newest.time_min_us));
    for (index, chunk) in chunks.iter().enumerate().rev() {
        // A chunk half full is final: merging it would rewrite much for little.
        if chunk.event_count * 2 >= events_max || chunk.length_bytes * 2 >= bytes_max {
            break;
        }
        // So is a chunk of an earlier month than the newest chunk's.
        if chunk.time_max_us < month {
            break;
        }
        let events = newer_events + chunk.event_count;
        let bytes = newer_bytes + chunk.length_bytes;
        if events > events_max || bytes > bytes_max {
            break;
        }
        if index + 1 < chunks.len() && chunk.event_count * (MERGE_GROWTH - 1) <= newer_events {
            start = index;
        }
        (newer_events, newer_bytes) = (events, bytes);
    }
    &chunks[start..]
}

/// A chunk's shape as read: (subject, seq, event count, bytes, first time, last time).
pub(crate) type ShapeRow = (String, i64, i64, i64, i64, i64);

/// The chunk sizes of several subjects, from rows of (subject, seq, event count, bytes, first
/// and last times) ordered by subject, then seq.
pub(crate) fn shapes_by_subject(rows: Vec<ShapeRow>) -> Vec<(String, Vec<ChunkShape>)> {
    let mut subjects: Vec<(String, Vec<ChunkShape>)> = Vec::new();
    for (subject, seq, event_count, length_bytes, time_min_us, time_max_us) in rows {
        let shape = ChunkShape {
            seq,
            event_count,
            length_bytes,
            time_min_us,
            time_max_us,
        };
        match subjects.last_mut() {
            Some((last, shapes)) if *last == subject => shapes.push(shape),
            _ => subjects.push((subject, vec![shape])),
        }
    }
    subjects
}

/// What one merge transaction will do.
pub(crate) struct MergePlan {
    /// The chunks to replace, every subject's suffix.
    pub seqs: Vec<i64>,
    /// Subjects past the transaction's budget, for the next one.
    pub put_off: Vec<String>,
    pub outcome: MergeOutcome,
}

/// The merges of several subjects, up to about `events_max` rewritten events (at least one
/// subject's merge).
pub(crate) fn plan_subjects(
    subjects: &[(String, Vec<ChunkShape>)],
    looked_at: &[String],
    events_max: i64,
) -> MergePlan {
    let mut plan = MergePlan {
        seqs: Vec::new(),
        put_off: Vec::new(),
        outcome: MergeOutcome::default(),
    };
    let mut events: i64 = 0;
    let mut over_budget = false;
    for (subject, shapes) in subjects {
        if over_budget {
            plan.put_off.push(subject.clone());
            continue;
        }
        let suffix = plan_merge(shapes);
        if !suffix.is_empty() {
            plan.seqs.extend(suffix.iter().map(|chunk| chunk.seq));
            events += suffix.iter().map(|chunk| chunk.event_count).sum::<i64>();
            plan.outcome.chunks_replaced += u64::try_from(suffix.len()).expect("small");
            plan.outcome.chunks_written += 1;
        }
        over_budget = events >= events_max;
    }
    plan.outcome.events = u64::try_from(events).expect("counts are positive");
    // Subjects asked about that have no chunk were looked at all the same.
    plan.outcome.subjects =
        u64::try_from(looked_at.len() - plan.put_off.len()).expect("usize fits in u64");
    plan
}

/// A stored subject chunk, whole, as a merge reads it (its columns by name, on both backends).
#[derive(sqlx::FromRow)]
pub(crate) struct StoredSubjectChunk {
    pub seq: i64,
    pub subject: String,
    pub time_min_us: i64,
    pub time_max_us: i64,
    pub ingested_max_us: i64,
    pub event_count: i32,
    pub key_hashes: Vec<u8>,
    pub events: Vec<u8>,
}

/// One chunk holding the events of `chunks` (one subject's, in `seq` order) in their order, and
/// their key hashes in the same order.
///
/// # Errors
///
/// When a chunk cannot be decoded, or its counts do not match its events or key hashes.
pub(crate) fn concatenate(
    workspace_id: &str,
    chunks: &[StoredSubjectChunk],
) -> Result<NewChunk, DecodeChunkError> {
    assert!(chunks.len() >= 2, "a merge replaces several chunks");
    assert!(
        chunks.windows(2).all(|pair| pair[0].seq < pair[1].seq),
        "the chunks in the order they were written"
    );
    let subject = &chunks[0].subject;
    // Chunks of the current layout concatenate; a merge that includes an older chunk re-encodes
    // every event instead.
    let concatenate = chunks
        .iter()
        .all(|chunk| concatenates(chunk_version(&chunk.events)));
    let mut events = Vec::with_capacity(chunks.iter().map(|c| c.events.len()).sum());
    let mut encoder = ChunkEncoder::new();
    let mut key_hashes = Vec::with_capacity(chunks.iter().map(|c| c.key_hashes.len()).sum());
    let mut event_count: i32 = 0;
    for chunk in chunks {
        assert_eq!(&chunk.subject, subject, "one subject's chunks");
        // Decoded only to check them: a corrupt chunk must not be copied on.
        let decoded = decode_events(&chunk.events)?;
        let count = usize::try_from(chunk.event_count).expect("counts are positive");
        if decoded.len() != count || chunk.key_hashes.len() != count * KEY_HASH_LENGTH {
            return Err(DecodeChunkError::KeyHashesCount {
                events: decoded.len(),
                hashes: chunk.key_hashes.len() / KEY_HASH_LENGTH,
            });
        }
        if !concatenate {
            decoded.iter().for_each(|event| encoder.push_raw(event));
        } else if events.is_empty() {
            events.extend_from_slice(&chunk.events);
        } else {
            // The encoding is a version byte, then the events back to back, the first of each
            // chunk referring to no event before it.
            events.extend_from_slice(&chunk.events[1..]);
        }
        key_hashes.extend_from_slice(&chunk.key_hashes);
        event_count += chunk.event_count;
    }
    assert!(usize::try_from(event_count).expect("positive") <= CHUNK_EVENTS_MAX);
    if !concatenate {
        events = encoder.into_bytes();
    }
    Ok(NewChunk {
        workspace_id: workspace_id.to_owned(),
        subject: Some(subject.clone()),
        time_min_us: chunks.iter().map(|c| c.time_min_us).min().expect("chunks"),
        time_max_us: chunks.iter().map(|c| c.time_max_us).max().expect("chunks"),
        ingested_max_us: chunks
            .iter()
            .map(|c| c.ingested_max_us)
            .max()
            .expect("chunks"),
        event_count,
        key_hashes,
        events,
    })
}

/// Groups the chunks read for a merge (ordered by subject, then `seq`) by subject.
pub(crate) fn by_subject(chunks: Vec<StoredSubjectChunk>) -> Vec<Vec<StoredSubjectChunk>> {
    let mut groups: Vec<Vec<StoredSubjectChunk>> = Vec::new();
    for chunk in chunks {
        match groups.last_mut() {
            Some(group) if group[0].subject == chunk.subject => group.push(chunk),
            _ => groups.push(vec![chunk]),
        }
    }
    groups
}

/// The subjects compaction wrote to since a merge pass last looked at them.
#[derive(Debug, Default)]
pub(crate) struct MergeHints {
    /// New chunks per (workspace, subject) since the subject was last looked at.
    new_chunks: HashMap<(String, String), u32>,
    /// The subjects due for a look, by workspace.
    due: BTreeMap<String, Vec<String>>,
}

impl MergeHints {
    /// Compaction wrote a chunk of `subject`.
    pub(crate) fn record(&mut self, workspace_id: &str, subject: &str) {
        let key = (workspace_id.to_owned(), subject.to_owned());
        let count = self.new_chunks.entry(key).or_insert(0);
        *count += 1;
        if *count == NEW_CHUNKS_BEFORE_MERGE {
            self.mark_due(workspace_id, subject);
        }
    }

    fn mark_due(&mut self, workspace_id: &str, subject: &str) {
        self.due
            .entry(workspace_id.to_owned())
            .or_default()
            .push(subject.to_owned());
    }

    /// Up to `subjects_max` due subjects of one workspace, no longer due.
    pub(crate) fn take_due(&mut self, subjects_max: usize) -> Option<(String, Vec<String>)> {
        let mut entry = self.due.first_entry()?;
        let workspace_id = entry.key().clone();
        let subjects = entry.get_mut();
        let taken = subjects.split_off(subjects.len().saturating_sub(subjects_max));
        if subjects.is_empty() {
            entry.remove();
        }
        for subject in &taken {
            self.new_chunks
                .remove(&(workspace_id.clone(), subject.clone()));
        }
        Some((workspace_id, taken))
    }

    /// The most chunks compaction wrote to one subject since it was last looked at.
    pub(crate) fn most_new_chunks(&self) -> u32 {
        self.new_chunks.values().copied().max().unwrap_or(0)
    }

    /// Makes subjects due again (their merge failed or was put off).
    pub(crate) fn restore(&mut self, workspace_id: &str, subjects: &[String]) {
        for subject in subjects {
            let key = (workspace_id.to_owned(), subject.clone());
            self.new_chunks.insert(key, NEW_CHUNKS_BEFORE_MERGE);
            self.mark_due(workspace_id, subject);
        }
    }
}

/// What a merge pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MergeOutcome {
    /// Subjects whose chunk sizes were read (0: none was due).
    pub subjects: u64,
    /// Chunks replaced by merged chunks.
    pub chunks_replaced: u64,
    /// Merged chunks written.
    pub chunks_written: u64,
    /// Events rewritten.
    pub events: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes(sizes: &[i64]) -> Vec<ChunkShape> {
        sizes
            .iter()
            .zip(1..)
            .map(|(&event_count, seq)| ChunkShape {
                seq,
                event_count,
                length_bytes: event_count * 100,
                time_min_us: 0,
                time_max_us: 0,
            })
            .collect()
    }

    fn merged(sizes: &[i64]) -> Vec<i64> {
        let chunks = shapes(sizes);
        plan_merge(&chunks).iter().map(|c| c.event_count).collect()
    }

    #[test]
    fn a_chunk_is_merged_once_the_newer_chunks_hold_three_times_its_events() {
        assert_eq!(merged(&[1, 1, 1, 1]), [1, 1, 1, 1]);
        assert_eq!(merged(&[4, 1, 1, 1]), Vec::<i64>::new());
        assert_eq!(merged(&[4, 1, 1, 1, 1]), [1, 1, 1, 1]);
        assert_eq!(merged(&[16, 4, 4, 4, 1, 1, 1, 1]), [4, 4, 4, 1, 1, 1, 1]);
        assert_eq!(merged(&[5]), Vec::<i64>::new());
    }

    #[test]
    fn a_chunk_of_an_earlier_month_is_final() {
        let instant = |text: &str| text.parse::<jiff::Timestamp>().unwrap().as_microsecond();
        // Three small chunks of January, then four of February: February's merge leaves
        // January's alone, though its chunks are small enough to be merged by size.
        let mut chunks = shapes(&[1, 1, 1, 1, 1, 1, 1]);
        for (index, chunk) in chunks.iter_mut().enumerate() {
            let time = if index < 3 {
                instant("2024-01-10T00:00:00Z")
            } else {
                instant("2024-02-10T00:00:00Z")
            };
            (chunk.time_min_us, chunk.time_max_us) = (time, time);
        }
        let merged: Vec<i64> = plan_merge(&chunks).iter().map(|c| c.seq).collect();
        assert_eq!(merged, [4, 5, 6, 7]);
        // A chunk that reaches into February is not final: it merges with February's.
        chunks[2].time_max_us = instant("2024-02-01T00:00:00Z");
        let merged: Vec<i64> = plan_merge(&chunks).iter().map(|c| c.seq).collect();
        assert_eq!(merged, [3, 4, 5, 6, 7]);
        // The same sizes all in one month: merged as before.
        let one_month = shapes(&[1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(plan_merge(&one_month).len(), 7);
    }

    #[test]
    fn full_chunks_and_the_size_bounds_stop_a_merge() {
        let half = i64::try_from(CHUNK_EVENTS_MAX / 2).unwrap();
        assert_eq!(merged(&[half, 1, 1, 1, 1]), [1, 1, 1, 1]);
        assert_eq!(merged(&[half - 1, half - 1, half - 1]), Vec::<i64>::new());
    }

    /// A subject that gets one to three events per compaction, looked at every fourth one.
    #[test]
    fn trickling_events_are_rewritten_a_few_times_and_leave_few_chunks() {
        let mut chunks: Vec<i64> = Vec::new();
        let (mut events, mut rewritten, mut most_chunks) = (0_i64, 0_i64, 0_usize);
        for round in 0..2_000_i64 {
            let new = round % 3 + 1;
            chunks.push(new);
            events += new;
            if round % 4 == 3 {
                let suffix = merged(&chunks);
                if !suffix.is_empty() {
                    let total: i64 = suffix.iter().sum();
                    rewritten += total;
                    chunks.truncate(chunks.len() - suffix.len());
                    chunks.push(total);
                }
                most_chunks = most_chunks.max(chunks.len());
            }
        }
        assert!(rewritten <= 6 * events, "{rewritten} rewrites of {events}");
        assert!(most_chunks <= 20, "{most_chunks} chunks");
        // 4,000 events in chunks up to half the bound.
        assert!(chunks.len() <= 16, "{chunks:?}");
    }

    #[test]
    fn hints_make_a_subject_due_after_enough_new_chunks() {
        let mut hints = MergeHints::default();
        for _ in 0..NEW_CHUNKS_BEFORE_MERGE - 1 {
            hints.record("ws", "cus_1");
        }
        assert!(hints.take_due(10).is_none());
        hints.record("ws", "cus_1");
        assert_eq!(
            hints.take_due(10),
            Some(("ws".into(), vec!["cus_1".into()]))
        );
        assert!(hints.take_due(10).is_none());
        hints.restore("ws", &["cus_1".into()]);
        assert_eq!(
            hints.take_due(10),
            Some(("ws".into(), vec!["cus_1".into()]))
        );
    }

    #[test]
    fn a_chunk_of_the_first_layout_is_merged_by_re_encoding_every_event() {
        use crate::events::codec::{encode_first_layout, RawEvent, RawId};
        let event = |id, second| RawEvent {
            subject: "cus_1",
            source: "agent",
            id: RawId::from_text(id),
            event_type: "cpu",
            second,
            nanosecond: 5,
            ingested_at_us: second * 1_000_000,
            data: r#"{"cores":2}"#,
        };
        let old = [event("a", 10), event("b", 20)];
        let new = [event("0f5e2a7c-3b1d-4c8e-9a6f-2d4b8e1c7a93", 30)];
        let mut encoder = ChunkEncoder::new();
        new.iter().for_each(|event| encoder.push_raw(event));
        let chunk = |seq, events: Vec<u8>, count: usize| StoredSubjectChunk {
            seq,
            subject: "cus_1".into(),
            time_min_us: 0,
            time_max_us: 40_000_000,
            ingested_max_us: 40_000_000,
            event_count: i32::try_from(count).unwrap(),
            key_hashes: vec![7; count * KEY_HASH_LENGTH],
            events,
        };
        let chunks = [
            chunk(1, encode_first_layout(&old), 2),
            chunk(2, encoder.into_bytes(), 1),
        ];

        let merged = concatenate("ws", &chunks).unwrap();

        assert!(concatenates(chunk_version(&merged.events)));
        let events = decode_events(&merged.events).unwrap();
        let all: Vec<RawEvent<'_>> = old.iter().chain(&new).copied().collect();
        assert_eq!(events, all);
        assert_eq!(merged.event_count, 3);
    }
}
