//! The bytes of a chunk: its events, and the hashes of their exactly-once keys.
//!
//! Each event is its subject, source, id and type as length-prefixed UTF-8, its instant as
//! seconds and nanoseconds, the instant it was ingested (microseconds), and its `data` object as
//! the JSON text the client sent (empty when it sent none). Little-endian throughout; a leading
//! version byte leaves room for another layout. [`RawEvent`] reads an event back without copying,
//! so that compaction moves events between chunks without parsing their data.

use billow_core::{EventData, UsageEvent};
use jiff::Timestamp;

use super::NewEvent;

const FORMAT_VERSION: u8 = 1;
/// The bytes of one key hash.
pub(crate) const KEY_HASH_LENGTH: usize = 16;

/// Appends events to a chunk's bytes.
pub(crate) struct ChunkEncoder {
    bytes: Vec<u8>,
}

impl ChunkEncoder {
    pub(crate) fn new() -> Self {
        Self {
            bytes: vec![FORMAT_VERSION],
        }
    }

    pub(crate) fn push(&mut self, event: &NewEvent, ingested_at_us: i64) {
        self.push_raw(&RawEvent {
            subject: &event.subject,
            source: &event.source,
            id: &event.id,
            event_type: &event.event_type,
            second: event.time.as_second(),
            nanosecond: event.time.subsec_nanosecond(),
            ingested_at_us,
            data: event.data.as_deref().unwrap_or(""),
        });
    }

    pub(crate) fn push_raw(&mut self, event: &RawEvent<'_>) {
        push_text(&mut self.bytes, event.subject);
        push_text(&mut self.bytes, event.source);
        push_text(&mut self.bytes, event.id);
        push_text(&mut self.bytes, event.event_type);
        self.bytes.extend_from_slice(&event.second.to_le_bytes());
        self.bytes
            .extend_from_slice(&event.nanosecond.to_le_bytes());
        self.bytes
            .extend_from_slice(&event.ingested_at_us.to_le_bytes());
        push_text(&mut self.bytes, event.data);
    }

    /// Makes room for about `additional` more bytes at once, instead of growing by doubling
    /// (and copying) as events come.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.bytes.reserve(additional);
    }

    /// The bytes encoded so far.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

fn push_text(bytes: &mut Vec<u8>, text: &str) {
    let length = u32::try_from(text.len()).expect("event fields are bounded far below 4 GiB");
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(text.as_bytes());
}

/// The key hashes of a chunk, 16 bytes each, in the order of its events.
pub(crate) fn encode_key_hashes(hashes: &[u128]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(hashes.len() * KEY_HASH_LENGTH);
    for hash in hashes {
        bytes.extend_from_slice(&hash.to_le_bytes());
    }
    bytes
}

/// The key hashes stored by [`encode_key_hashes`].
pub(crate) fn decode_key_hashes(bytes: &[u8]) -> Result<Vec<u128>, DecodeChunkError> {
    if !bytes.len().is_multiple_of(KEY_HASH_LENGTH) {
        return Err(DecodeChunkError::KeyHashesLength {
            length: bytes.len(),
        });
    }
    Ok(bytes
        .chunks_exact(KEY_HASH_LENGTH)
        .map(|hash| u128::from_le_bytes(hash.try_into().expect("chunks_exact gives 16 bytes")))
        .collect())
}

/// An event as a chunk stores it, borrowed from the chunk's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawEvent<'a> {
    pub subject: &'a str,
    pub source: &'a str,
    pub id: &'a str,
    pub event_type: &'a str,
    pub second: i64,
    pub nanosecond: i32,
    pub ingested_at_us: i64,
    /// JSON object text, or empty.
    pub data: &'a str,
}

impl RawEvent<'_> {
    pub(crate) fn time(self) -> Result<Timestamp, DecodeChunkError> {
        Timestamp::new(self.second, self.nanosecond).map_err(DecodeChunkError::Time)
    }

    /// The event as the billing core takes it.
    #[cfg(test)]
    pub(crate) fn to_usage_event(self) -> Result<UsageEvent, DecodeChunkError> {
        self.to_usage_event_at(self.time()?)
    }

    /// The event as the billing core takes it, at `time` (its [`RawEvent::time`], which the
    /// caller has already read).
    pub(crate) fn to_usage_event_at(self, time: Timestamp) -> Result<UsageEvent, DecodeChunkError> {
        let data = EventData::from_json_text(self.data).map_err(DecodeChunkError::Data)?;
        Ok(UsageEvent {
            id: self.id.to_owned(),
            source: self.source.to_owned(),
            event_type: self.event_type.to_owned(),
            subject: self.subject.to_owned(),
            time,
            data,
        })
    }
}

/// The events of a chunk, in the order they were pushed.
pub(crate) fn decode_events(bytes: &[u8]) -> Result<Vec<RawEvent<'_>>, DecodeChunkError> {
    let mut events = Vec::new();
    decode_events_into(bytes, &mut events)?;
    Ok(events)
}

/// Appends the events of a chunk to `events`, in the order they were pushed.
pub(crate) fn decode_events_into<'a>(
    bytes: &'a [u8],
    events: &mut Vec<RawEvent<'a>>,
) -> Result<(), DecodeChunkError> {
    let mut reader = Reader { bytes, offset: 0 };
    let version = reader.take(1)?[0];
    if version != FORMAT_VERSION {
        return Err(DecodeChunkError::Version { version });
    }
    while reader.offset < bytes.len() {
        events.push(RawEvent {
            subject: reader.text()?,
            source: reader.text()?,
            id: reader.text()?,
            event_type: reader.text()?,
            second: i64::from_le_bytes(reader.array()?),
            nanosecond: i32::from_le_bytes(reader.array()?),
            ingested_at_us: i64::from_le_bytes(reader.array()?),
            data: reader.text()?,
        });
    }
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize) -> Result<&'a [u8], DecodeChunkError> {
        let end = self
            .offset
            .checked_add(length)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(DecodeChunkError::Truncated {
                offset: self.offset,
            })?;
        let taken = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeChunkError> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    fn text(&mut self) -> Result<&'a str, DecodeChunkError> {
        let length = u32::from_le_bytes(self.array()?);
        let length = usize::try_from(length).expect("usize holds u32");
        let offset = self.offset;
        std::str::from_utf8(self.take(length)?).map_err(|_| DecodeChunkError::Utf8 { offset })
    }
}

/// Why a stored chunk could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DecodeChunkError {
    #[error("unknown chunk format version {version}")]
    Version { version: u8 },
    #[error("the chunk ends inside the field at byte {offset}")]
    Truncated { offset: usize },
    #[error("the text at byte {offset} is not UTF-8")]
    Utf8 { offset: usize },
    #[error("an event's instant is out of range")]
    Time(#[source] jiff::Error),
    #[error("an event's data cannot be read")]
    Data(#[source] billow_core::EventDataError),
    #[error("the key hashes have {length} bytes, not a multiple of 16")]
    KeyHashesLength { length: usize },
    #[error("a chunk has {events} events but {hashes} key hashes")]
    KeyHashesCount { events: usize, hashes: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, time: &str, data: Option<&str>) -> NewEvent {
        NewEvent {
            source: "cluster-7".into(),
            id: id.into(),
            event_type: "cpu".into(),
            subject: "cus_1".into(),
            time: time.parse().unwrap(),
            data: data.map(str::to_owned),
        }
    }

    #[test]
    fn a_chunk_decodes_to_the_events_encoded_to_the_nanosecond() {
        let mut encoder = ChunkEncoder::new();
        let first = event(
            "a",
            "2026-11-01T00:00:00.123456789Z",
            Some(r#"{"cores":2}"#),
        );
        let second = event("b", "1969-12-31T23:59:59.5Z", None);
        encoder.push(&first, 7);
        encoder.push(&second, 8);
        let bytes = encoder.into_bytes();

        let events = decode_events(&bytes).unwrap();

        assert_eq!(events.len(), 2);
        assert_eq!(events[1].ingested_at_us, 8);
        let first_loaded = events[0].to_usage_event().unwrap();
        assert_eq!(first_loaded.id, "a");
        assert_eq!(first_loaded.subject, "cus_1");
        assert_eq!(first_loaded.time, first.time);
        assert_eq!(first_loaded.data.get("cores").unwrap().as_json_text(), "2");
        let second_loaded = events[1].to_usage_event().unwrap();
        assert_eq!(second_loaded.time, second.time);
        assert!(second_loaded.data.is_empty());
    }

    #[test]
    fn a_raw_event_encodes_to_the_same_bytes() {
        let mut encoder = ChunkEncoder::new();
        encoder.push(&event("a", "2026-11-01T00:00:00Z", Some("{}")), 1);
        let bytes = encoder.into_bytes();
        let mut again = ChunkEncoder::new();

        again.push_raw(&decode_events(&bytes).unwrap()[0]);

        assert_eq!(again.into_bytes(), bytes);
    }

    #[test]
    fn a_truncated_chunk_is_an_error_not_a_panic() {
        let mut encoder = ChunkEncoder::new();
        encoder.push(&event("a", "2026-11-01T00:00:00Z", None), 1);
        let bytes = encoder.into_bytes();

        for length in 2..bytes.len() {
            assert!(decode_events(&bytes[..length]).is_err());
        }
    }

    #[test]
    fn key_hashes_round_trip() {
        let hashes = [1_u128, u128::MAX, 42 << 100];
        assert_eq!(
            decode_key_hashes(&encode_key_hashes(&hashes)).unwrap(),
            hashes
        );
        assert!(decode_key_hashes(&[0; 15]).is_err());
    }
}
