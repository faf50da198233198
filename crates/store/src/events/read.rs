//! Chunks read back as usage events: decoded, selected, put in time order, converted.
//!
//! Converting an event (four strings and its `data` parsed into a map) is most of a large read's
//! time, so the conversion of a large read is split among a few threads, and the caller runs the
//! whole decoding off the async task ([`DECODE_OFF_TASK_BYTES_MIN`]). Events are put in order
//! by their times before they are converted, as a list of indices: sorting the converted events
//! would move ~150-byte values around, and most reads of one subject are in order already.

use std::collections::HashSet;

use billow_core::UsageEvent;
use jiff::Timestamp;

use super::codec::{decode_events_into, RawEvent};
use super::{ChunkFilter, DecodeChunkError};

/// Reads with at least this many bytes of events are decoded off the async task.
pub(crate) const DECODE_OFF_TASK_BYTES_MIN: usize = 256 * 1024;
/// Conversions of at least this many events are split among threads.
const CONVERT_PARALLEL_EVENTS_MIN: usize = 8_192;
/// Most threads one conversion uses.
const CONVERT_THREADS_MAX: usize = 4;

/// A chunk as both backends' queries return it.
pub(crate) struct ChunkRow {
    /// Write order.
    pub seq: i64,
    /// A log chunk (every subject, not compacted yet), not a subject chunk.
    pub log: bool,
    pub event_count: i32,
    pub events: Vec<u8>,
}

/// The events of `chunks` whose subject is in `subjects` and that `filter` keeps, in time order;
/// events of one instant in the order they were stored.
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
    subjects: &HashSet<&str>,
    filter: ChunkFilter,
) -> Result<Vec<UsageEvent>, DecodeChunkError> {
    chunks.sort_unstable_by_key(|chunk| (chunk.log, chunk.seq));
    let capacity: usize = chunks
        .iter()
        .map(|chunk| usize::try_from(chunk.event_count).unwrap_or(0))
        .sum();
    let mut raw: Vec<RawEvent<'_>> = Vec::with_capacity(capacity);
    let mut kept: Vec<RawEvent<'_>> = Vec::with_capacity(capacity);
    let mut times: Vec<Timestamp> = Vec::with_capacity(capacity);
    for chunk in &chunks {
        raw.clear();
        decode_events_into(&chunk.events, &mut raw)?;
        for event in &raw {
            // Log chunks hold every subject; subject chunks only the one asked for.
            if chunk.log && !subjects.contains(event.subject) {
                continue;
            }
            let time = event.time()?;
            if filter.keeps(time, event.ingested_at_us) {
                kept.push(*event);
                times.push(time);
            }
        }
    }
    let order = time_order(&times);
    convert(&kept, &times, order.as_deref())
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

/// `events` as usage events, in `order` (or as they are); large conversions on several threads.
fn convert(
    events: &[RawEvent<'_>],
    times: &[Timestamp],
    order: Option<&[u32]>,
) -> Result<Vec<UsageEvent>, DecodeChunkError> {
    let convert_range = |from: usize, to: usize| -> Result<Vec<UsageEvent>, DecodeChunkError> {
        let mut converted = Vec::with_capacity(to - from);
        for position in from..to {
            let index = order.map_or(position, |order| order[position] as usize);
            converted.push(events[index].to_usage_event_at(times[index])?);
        }
        Ok(converted)
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(CONVERT_THREADS_MAX);
    if events.len() < CONVERT_PARALLEL_EVENTS_MIN || threads < 2 {
        return convert_range(0, events.len());
    }
    let per_thread = events.len().div_ceil(threads);
    let parts: Vec<Result<Vec<UsageEvent>, DecodeChunkError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|part| {
                let from = (part * per_thread).min(events.len());
                let to = (from + per_thread).min(events.len());
                scope.spawn(move || convert_range(from, to))
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
            .collect()
    });
    let mut converted = Vec::with_capacity(events.len());
    for part in parts {
        converted.append(&mut part?);
    }
    Ok(converted)
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
        let subjects = HashSet::from(["cus_1"]);

        let events = decode(chunks, &subjects, ALL).unwrap();

        assert_eq!(ids(&events), ["first", "a", "b", "c", "d"]);
    }

    #[test]
    fn a_large_read_is_converted_in_order_on_several_threads() {
        let count = CONVERT_PARALLEL_EVENTS_MIN * 2 + 3;
        let ids_owned: Vec<String> = (0..count).map(|n| format!("e{n}")).collect();
        let events: Vec<(&str, &str, i64)> = ids_owned
            .iter()
            .enumerate()
            .map(|(n, id)| (id.as_str(), "cus_1", i64::try_from(count - n).unwrap()))
            .collect();
        let chunks = vec![chunk(1, false, &events)];

        let read = decode(chunks, &HashSet::new(), ALL).unwrap();

        assert_eq!(read.len(), count);
        assert!(read.is_sorted_by_key(|event| event.time));
        assert_eq!(read[0].id, format!("e{}", count - 1));
    }
}
