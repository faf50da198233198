//! Chunks read back as usage events: decoded, selected, put in time order, converted.
//!
//! Converting an event (four strings and its `data` parsed into a map: about ten allocations) is
//! most of a large read's time. So a large read ([`DECODE_OFF_TASK_BYTES_MIN`]) is decoded off the
//! async task, its chunks split among a few of tokio's blocking threads (which live on, so that
//! their allocator's memory is reused from one read to the next). Events are converted in the
//! order they are stored, reading the chunks' bytes sequentially, then moved once into time order
//! by a sorted list of indices: sorting the converted events would move ~150-byte values around
//! many times, and a read of one subject is mostly in order already.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use billow_core::UsageEvent;
use jiff::Timestamp;

use super::codec::{decode_events, decode_events_into, ChunkEncoder, RawEvent};
use super::{ChunkFilter, DecodeChunkError};

/// Reads with at least this many bytes of events are decoded off the async task.
pub(crate) const DECODE_OFF_TASK_BYTES_MIN: usize = 256 * 1024;
/// Most blocking threads one read uses.
const DECODE_THREADS_MAX: usize = 4;

/// A chunk as both backends' queries return it (columns `seq, log, event_count, events`).
#[derive(sqlx::FromRow)]
pub(crate) struct ChunkRow {
    /// Write order.
    pub seq: i64,
    /// A log chunk (every subject, not compacted yet), not a subject chunk.
    pub log: bool,
    /// The subject of a subject chunk as read; `None` for a log chunk, and once
    /// [`UsageChunks::split`] has filed the chunk under its subject (which moves the text out).
    pub subject: Option<String>,
    pub event_count: i32,
    pub events: Vec<u8>,
}

/// The events of `chunks` whose subject is in `subjects` and that `filter` keeps, in time order;
/// events of one instant in the order they were stored. On the calling thread: for small reads.
///
/// Subject chunks come first, in `seq` order, then log chunks in `seq` order: compaction moves
/// the oldest log chunks and a merge replaces the newest chunks of a subject, so this is the
/// order in which a subject's events were stored.
///
/// # Errors
///
/// When a chunk cannot be decoded, or an event's time or data cannot be read.
pub(crate) fn decode(
    mut chunks: Vec<ChunkRow>,
    subjects: &Wanted,
    filter: ChunkFilter,
) -> Result<Vec<UsageEvent>, DecodeChunkError> {
    chunks.sort_unstable_by_key(|chunk| (chunk.log, chunk.seq));
    let (events, times) = decode_part(&chunks, |subject| subjects.contains(subject), filter)?;
    Ok(in_time_order(events, &times))
}

/// The subjects a read wants from log chunks (which hold every subject).
#[derive(Debug)]
pub(crate) enum Wanted {
    /// Every subject of the workspace.
    All,
    /// These subjects.
    Subjects(HashSet<String>),
}

impl Wanted {
    pub(crate) fn of(subjects: &[String]) -> Self {
        Self::Subjects(subjects.iter().cloned().collect())
    }

    fn contains(&self, subject: &str) -> bool {
        match self {
            Self::All => true,
            Self::Subjects(subjects) => subjects.contains(subject),
        }
    }
}

/// The subjects of the events of `chunks` that `filter` keeps.
///
/// # Errors
///
/// When a chunk cannot be decoded, or an event's time or data cannot be read.
pub(crate) fn subjects_of(
    chunks: &[ChunkRow],
    filter: ChunkFilter,
) -> Result<HashSet<String>, DecodeChunkError> {
    let (events, _) = decode_part(chunks, |_| true, filter)?;
    Ok(events.into_iter().map(|event| event.subject).collect())
}

/// Stored chunks of some subjects' usage, read but not decoded, split by subject: what a billing
/// run's loader hands to the engine threads, so that decoding (most of a large read's CPU) runs
/// there, on every core, beside the engine, instead of in the loader's serial stage.
#[derive(Debug)]
pub struct UsageChunks {
    by_subject: HashMap<String, Vec<ChunkRow>>,
    filter: ChunkFilter,
}

/// The undecoded usage of a few subjects (one customer's), taken from [`UsageChunks`].
#[derive(Debug)]
pub struct SubjectsUsage {
    chunks: Vec<ChunkRow>,
    filter: ChunkFilter,
}

impl std::fmt::Debug for ChunkRow {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ChunkRow")
            .field("seq", &self.seq)
            .field("log", &self.log)
            .field("subject", &self.subject)
            .field("event_count", &self.event_count)
            .field("bytes", &self.events.len())
            .finish()
    }
}

impl UsageChunks {
    /// Splits `chunks` by subject. A log chunk's events of the wanted `subjects` are copied, as
    /// they are stored (no parsing), into one chunk per subject that keeps the log chunk's `seq`
    /// and `log` mark, so that each subject's events keep their stored order.
    pub(crate) fn split(
        chunks: Vec<ChunkRow>,
        subjects: &[String],
        filter: ChunkFilter,
    ) -> Result<Self, DecodeChunkError> {
        let mut by_subject: HashMap<String, Vec<ChunkRow>> = HashMap::new();
        let wanted: HashSet<&str> = subjects.iter().map(String::as_str).collect();
        for mut chunk in chunks {
            if let Some(subject) = chunk.subject.take() {
                by_subject.entry(subject).or_default().push(chunk);
                continue;
            }
            let raw = decode_events(&chunk.events)?;
            let mut per_subject: HashMap<&str, (ChunkEncoder, i32)> = HashMap::new();
            for event in raw.iter().filter(|event| wanted.contains(event.subject)) {
                let (encoder, count) = per_subject
                    .entry(event.subject)
                    .or_insert_with(|| (ChunkEncoder::new(), 0));
                encoder.push_raw(event);
                *count += 1;
            }
            for (subject, (encoder, event_count)) in per_subject {
                by_subject
                    .entry(subject.to_owned())
                    .or_default()
                    .push(ChunkRow {
                        seq: chunk.seq,
                        log: true,
                        subject: None,
                        event_count,
                        events: encoder.into_bytes(),
                    });
            }
        }
        Ok(Self { by_subject, filter })
    }

    /// Adds the chunks of `other`, a read of other subjects over the same period. A subject both
    /// hold keeps the chunks it has here: two reads of one subject hold the same events.
    ///
    /// # Panics
    /// When `other` was read with another filter.
    pub fn absorb(&mut self, other: UsageChunks) {
        assert_eq!(self.filter, other.filter, "usage of one period");
        for (subject, chunks) in other.by_subject {
            self.by_subject.entry(subject).or_insert(chunks);
        }
    }

    /// Takes the chunks of `subjects` out (a subject taken twice has nothing the second time).
    pub fn take(&mut self, subjects: &[String]) -> SubjectsUsage {
        let chunks = subjects
            .iter()
            .filter_map(|subject| self.by_subject.remove(subject))
            .flatten()
            .collect();
        SubjectsUsage {
            chunks,
            filter: self.filter,
        }
    }
}

impl SubjectsUsage {
    /// The events, as [`crate::Store::usage_events`] returns them: in time order, events of one
    /// instant in the order they were stored. On the calling thread.
    ///
    /// # Errors
    ///
    /// When a chunk cannot be decoded, or an event's time or data cannot be read.
    pub fn into_events(self) -> Result<Vec<UsageEvent>, DecodeChunkError> {
        let mut chunks = self.chunks;
        chunks.sort_unstable_by_key(|chunk| (chunk.log, chunk.seq));
        // Every chunk holds only the subjects taken (log chunks were split by subject).
        let (events, times) = decode_part(&chunks, |_| true, self.filter)?;
        Ok(in_time_order(events, &times))
    }

    /// How many events the chunks hold before the time filter.
    pub fn stored_events(&self) -> usize {
        self.chunks.iter().map(ChunkRow::events_total).sum()
    }
}

/// What [`decode`] returns, decoded on up to [`DECODE_THREADS_MAX`] blocking threads.
///
/// # Errors
///
/// As [`decode`].
#[tracing::instrument(skip_all, name = "decode_chunks", fields(chunks = chunks.len()))]
pub(crate) async fn decode_off_task(
    mut chunks: Vec<ChunkRow>,
    subjects: Wanted,
    filter: ChunkFilter,
) -> Result<Vec<UsageEvent>, DecodeChunkError> {
    chunks.sort_unstable_by_key(|chunk| (chunk.log, chunk.seq));
    let wanted = Arc::new(subjects);
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(DECODE_THREADS_MAX);
    let tasks: Vec<_> = split(chunks, threads)
        .into_iter()
        .map(|part| {
            let wanted = Arc::clone(&wanted);
            tokio::task::spawn_blocking(move || {
                decode_part(&part, |subject| wanted.contains(subject), filter)
            })
        })
        .collect();
    let mut events = Vec::new();
    let mut times = Vec::new();
    for task in tasks {
        let (mut part_events, part_times) = task.await.unwrap_or_else(|error| {
            std::panic::resume_unwind(error.into_panic());
        })?;
        events.append(&mut part_events);
        times.extend(part_times);
    }
    let ordered = tokio::task::spawn_blocking(move || in_time_order(events, &times));
    Ok(ordered
        .await
        .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic())))
}

/// `chunks` in up to `parts` runs of consecutive chunks with about as many events each.
fn split(chunks: Vec<ChunkRow>, parts: usize) -> Vec<Vec<ChunkRow>> {
    let total: usize = chunks.iter().map(ChunkRow::events_total).sum();
    let per_part = total.div_ceil(parts.max(1)).max(1);
    let mut split: Vec<Vec<ChunkRow>> = vec![Vec::new()];
    let mut in_part = 0;
    for chunk in chunks {
        if in_part >= per_part {
            split.push(Vec::new());
            in_part = 0;
        }
        in_part += chunk.events_total();
        split.last_mut().expect("one part at least").push(chunk);
    }
    split
}

impl ChunkRow {
    fn events_total(&self) -> usize {
        usize::try_from(self.event_count).unwrap_or(0)
    }
}

/// The selected events of `chunks`, converted in their stored order, and their times.
fn decode_part(
    chunks: &[ChunkRow],
    wanted: impl Fn(&str) -> bool,
    filter: ChunkFilter,
) -> Result<(Vec<UsageEvent>, Vec<Timestamp>), DecodeChunkError> {
    let capacity: usize = chunks.iter().map(ChunkRow::events_total).sum();
    let mut events = Vec::with_capacity(capacity);
    let mut times = Vec::with_capacity(capacity);
    let mut raw: Vec<RawEvent<'_>> = Vec::new();
    for chunk in chunks {
        raw.clear();
        decode_events_into(&chunk.events, &mut raw)?;
        for event in &raw {
            // Log chunks hold every subject; subject chunks only the one asked for.
            if chunk.log && !wanted(event.subject) {
                continue;
            }
            let time = event.time()?;
            if filter.keeps(time, event.ingested_at_us) {
                events.push(event.to_usage_event_at(time)?);
                times.push(time);
            }
        }
    }
    Ok((events, times))
}

/// `events` (at `times`) in time order, ties in their order.
fn in_time_order(events: Vec<UsageEvent>, times: &[Timestamp]) -> Vec<UsageEvent> {
    match time_order(times) {
        None => events,
        Some(order) => gather(events, &order),
    }
}

/// The indices of `times` in time order (ties in index order), or `None` when they are in order.
fn time_order(times: &[Timestamp]) -> Option<Vec<u32>> {
    if times.is_sorted() {
        return None;
    }
    let length = u32::try_from(times.len()).expect("a read holds fewer than 2³² events");
    let mut order: Vec<u32> = (0..length).collect();
    // Unstable, but the index breaks ties: the same order as a stable sort.
    order.sort_unstable_by_key(|&index| (times[index as usize], index));
    Some(order)
}

/// `events` in `order`, each moved once.
fn gather(mut events: Vec<UsageEvent>, order: &[u32]) -> Vec<UsageEvent> {
    let placeholder = || UsageEvent {
        id: String::new(),
        source: String::new(),
        event_type: String::new(),
        subject: String::new(),
        time: Timestamp::UNIX_EPOCH,
        data: billow_core::EventData::default(),
    };
    order
        .iter()
        .map(|&index| std::mem::replace(&mut events[index as usize], placeholder()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::codec::ChunkEncoder;
    use crate::events::NewEvent;

    fn chunk(seq: i64, log: bool, events: &[(&str, &str, i64)]) -> ChunkRow {
        let mut encoder = ChunkEncoder::new();
        for (id, subject, second) in events {
            let event = NewEvent {
                source: "s".into(),
                id: (*id).into(),
                event_type: "t".into(),
                subject: (*subject).into(),
                time: Timestamp::from_second(*second).unwrap(),
                data: Some(r#"{"count":1}"#.into()),
            };
            encoder.push(&event, 0);
        }
        ChunkRow {
            seq,
            log,
            subject: (!log).then(|| events[0].1.to_owned()),
            event_count: i32::try_from(events.len()).unwrap(),
            events: encoder.into_bytes(),
        }
    }

    fn ids(events: &[UsageEvent]) -> Vec<&str> {
        events.iter().map(|event| event.id.as_str()).collect()
    }

    const ALL: ChunkFilter = ChunkFilter::IngestedAfter { since_us: i64::MIN };

    #[test]
    fn events_come_in_time_order_with_ties_in_stored_order() {
        let chunks = vec![
            // A log chunk with a lower seq than a subject chunk holds newer events.
            chunk(2, true, &[("d", "cus_1", 10), ("x", "cus_2", 1)]),
            chunk(5, false, &[("b", "cus_1", 10), ("c", "cus_1", 10)]),
            chunk(3, false, &[("a", "cus_1", 10), ("first", "cus_1", 1)]),
        ];
        let subjects = Wanted::of(&["cus_1".to_owned()]);

        let events = decode(chunks, &subjects, ALL).unwrap();

        assert_eq!(ids(&events), ["first", "a", "b", "c", "d"]);
    }

    #[test]
    fn usage_split_by_subject_reads_as_each_subjects_own_read() {
        let chunks = || {
            vec![
                chunk(
                    2,
                    true,
                    &[("d", "cus_1", 10), ("x", "cus_2", 1), ("y", "cus_3", 4)],
                ),
                chunk(5, false, &[("b", "cus_1", 10), ("c", "cus_1", 10)]),
                chunk(3, false, &[("a", "cus_1", 10), ("first", "cus_1", 1)]),
                chunk(4, false, &[("z", "cus_2", 0)]),
                chunk(6, true, &[("w", "cus_2", 2), ("e", "cus_1", 10)]),
            ]
        };
        let wanted = ["cus_1".to_owned(), "cus_2".to_owned()];

        let mut usage = UsageChunks::split(chunks(), &wanted, ALL).unwrap();
        let first = usage.take(&wanted[..1]);
        let second = usage.take(&wanted[1..]);
        let again = usage.take(&wanted[..1]);

        assert_eq!(first.stored_events(), 6);
        assert_eq!(
            ids(&first.into_events().unwrap()),
            ["first", "a", "b", "c", "d", "e"]
        );
        assert_eq!(ids(&second.into_events().unwrap()), ["z", "x", "w"]);
        assert!(again.into_events().unwrap().is_empty());
        // The same as a read of that subject alone, which gets its subject chunks and the log.
        let read: Vec<ChunkRow> = chunks()
            .into_iter()
            .filter(|chunk| chunk.log || chunk.subject.as_deref() == Some("cus_2"))
            .collect();
        let alone = decode(read, &Wanted::of(&["cus_2".to_owned()]), ALL).unwrap();
        assert_eq!(ids(&alone), ["z", "x", "w"]);
        // Every subject: the subject chunks and the log chunks whole.
        let every = decode(chunks(), &Wanted::All, ALL).unwrap();
        assert_eq!(
            ids(&every),
            ["z", "first", "x", "w", "y", "a", "b", "c", "d", "e"]
        );
    }

    #[test]
    fn usage_split_by_subject_keeps_only_the_period() {
        let chunks = vec![
            chunk(1, false, &[("early", "cus_1", 5), ("inside", "cus_1", 15)]),
            chunk(2, true, &[("late", "cus_1", 25), ("log", "cus_1", 20)]),
        ];
        let from = Timestamp::from_second(10).unwrap();
        let to = Timestamp::from_second(25).unwrap();
        let period = ChunkFilter::period(from, to);

        let mut usage = UsageChunks::split(chunks, &["cus_1".to_owned()], period).unwrap();

        let events = usage.take(&["cus_1".to_owned()]).into_events().unwrap();
        assert_eq!(ids(&events), ["inside", "log"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_read_is_decoded_in_order_on_several_threads() {
        let count = 20_003;
        let ids_owned: Vec<String> = (0..count).map(|n| format!("e{n}")).collect();
        let events: Vec<(&str, &str, i64)> = ids_owned
            .iter()
            .enumerate()
            .map(|(n, id)| (id.as_str(), "cus_1", i64::try_from(count - n).unwrap()))
            .collect();
        // Chunks of 1,000 events, in seq order against time order.
        let chunks: Vec<ChunkRow> = events
            .chunks(1_000)
            .zip(1..)
            .map(|(events, seq)| chunk(seq, false, events))
            .collect();

        let read = decode_off_task(chunks, Wanted::of(&[]), ALL).await.unwrap();

        assert_eq!(read.len(), count);
        assert!(read.is_sorted_by_key(|event| event.time));
        assert_eq!(read[0].id, format!("e{}", count - 1));
    }

    #[test]
    fn two_reads_absorbed_hold_each_subject_once() {
        let log = || chunk(2, true, &[("l1", "cus_1", 3), ("l2", "cus_2", 4)]);
        let first_half = vec![chunk(1, false, &[("a", "cus_1", 1)]), log()];
        let second_half = vec![chunk(3, false, &[("b", "cus_2", 2)]), log()];
        let shared = "cus_1".to_owned();

        // The second read also names cus_1 (an alias both customers share): its copy is not kept.
        let mut usage = UsageChunks::split(first_half, std::slice::from_ref(&shared), ALL).unwrap();
        let other =
            UsageChunks::split(second_half, &["cus_2".to_owned(), shared.clone()], ALL).unwrap();
        usage.absorb(other);

        let cus_1 = usage
            .take(std::slice::from_ref(&shared))
            .into_events()
            .unwrap();
        let cus_2 = usage.take(&["cus_2".to_owned()]).into_events().unwrap();
        assert_eq!(ids(&cus_1), ["a", "l1"]);
        assert_eq!(ids(&cus_2), ["b", "l2"]);
    }
}
