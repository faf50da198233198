//! The bytes of a chunk: its events, and the hashes of their exactly-once keys.
//!
//! A leading version byte names the layout. Version 2, the one written, stores each event as:
//!
//! - a flags byte: the first event of its chunk; the subject, the source, the type each the same
//!   as the previous event's (then not stored again); the id a lowercase hyphenated UUID (then
//!   stored as its 16 bytes); `data` present;
//! - the subject, source, id and type not covered by a flag, each as a LEB128 length and UTF-8;
//! - its instant: seconds as the zigzag LEB128 difference from the previous event's seconds, and
//!   nanoseconds (of the same sign as the seconds, as `jiff` gives them) as zigzag LEB128;
//! - the instant it was ingested (microseconds) as the zigzag LEB128 difference from the previous
//!   event's;
//! - `data`, when present, as a LEB128 length and the JSON text the client sent.
//!
//! The first event of a chunk is flagged as such and refers to nothing before it (its previous
//! values are zero), so the events of two chunks written by this version concatenate into a valid
//! chunk (merging relies on it). A metering agent's event shrinks from ~120 bytes in version 1 to
//! ~60: less for SQLite and PostgreSQL to write, checkpoint and read back. Version 1 (every field
//! at full length: u32 lengths, i64 seconds, i32 nanoseconds, i64 ingestion instant) is still
//! read.
//! [`RawEvent`] reads an event back without copying its text, so that compaction moves events
//! between chunks without parsing their data.

use std::fmt;

use billow_core::{EventData, UsageEvent};
use jiff::Timestamp;

use super::NewEvent;

/// The layout [`ChunkEncoder`] writes.
const FORMAT_VERSION: u8 = 2;
/// The first layout, still read.
const FORMAT_VERSION_1: u8 = 1;
/// The bytes of one key hash.
pub(crate) const KEY_HASH_LENGTH: usize = 16;

const SAME_SUBJECT: u8 = 1;
const SAME_SOURCE: u8 = 1 << 1;
const SAME_TYPE: u8 = 1 << 2;
const UUID_ID: u8 = 1 << 3;
const HAS_DATA: u8 = 1 << 4;
/// The first event of a chunk: it refers to no event before it, even after chunks are
/// concatenated.
const FIRST: u8 = 1 << 5;
const KNOWN_FLAGS: u8 = SAME_SUBJECT | SAME_SOURCE | SAME_TYPE | UUID_ID | HAS_DATA | FIRST;
const SAME_ANY: u8 = SAME_SUBJECT | SAME_SOURCE | SAME_TYPE;

/// The values an event is encoded against: those of the event before it in the chunk.
#[derive(Clone, Copy, Default)]
struct Previous<'a> {
    subject: &'a str,
    source: &'a str,
    event_type: &'a str,
    second: i64,
    ingested_at_us: i64,
}

/// Appends events to a chunk's bytes.
pub(crate) struct ChunkEncoder {
    bytes: Vec<u8>,
    // Owned copies of the previous event's texts (they are compared with the next event's).
    subject: String,
    source: String,
    event_type: String,
    second: i64,
    ingested_at_us: i64,
    /// Whether the next event is written as a [`FIRST`] event, referring to none before it.
    restart: bool,
}

impl ChunkEncoder {
    pub(crate) fn new() -> Self {
        Self {
            bytes: vec![FORMAT_VERSION],
            subject: String::new(),
            source: String::new(),
            event_type: String::new(),
            second: 0,
            ingested_at_us: 0,
            restart: true,
        }
    }

    /// Appends a batch encoded ahead ([`EncodedBatch`], whose first event is `first`), all its
    /// events ingested at `ingested_at_us`: its first event is encoded again, with that instant,
    /// and the rest copied as they are (their ingestion instants are differences of zero from
    /// it). The event after it starts afresh, as after a concatenation.
    pub(crate) fn append(&mut self, batch: &EncodedBatch, first: &NewEvent, ingested_at_us: i64) {
        self.restart = true;
        self.push(first, ingested_at_us);
        self.bytes
            .extend_from_slice(&batch.bytes[1 + batch.first_length..]);
        self.restart = true;
    }

    pub(crate) fn push(&mut self, event: &NewEvent, ingested_at_us: i64) {
        self.push_raw(&RawEvent {
            subject: &event.subject,
            source: &event.source,
            id: RawId::from_text(&event.id),
            event_type: &event.event_type,
            second: event.time.as_second(),
            nanosecond: event.time.subsec_nanosecond(),
            ingested_at_us,
            data: event.data.as_deref().unwrap_or(""),
        });
    }

    pub(crate) fn push_raw(&mut self, event: &RawEvent<'_>) {
        let first = std::mem::take(&mut self.restart);
        if first {
            self.second = 0;
            self.ingested_at_us = 0;
        }
        let mut flags = if first { FIRST } else { 0 };
        let same_subject = !first && event.subject == self.subject;
        let same_source = !first && event.source == self.source;
        let same_type = !first && event.event_type == self.event_type;
        if same_subject {
            flags |= SAME_SUBJECT;
        }
        if same_source {
            flags |= SAME_SOURCE;
        }
        if same_type {
            flags |= SAME_TYPE;
        }
        if matches!(event.id, RawId::Uuid(_)) {
            flags |= UUID_ID;
        }
        if !event.data.is_empty() {
            flags |= HAS_DATA;
        }
        self.bytes.push(flags);
        if !same_subject {
            push_text(&mut self.bytes, event.subject);
            replace(&mut self.subject, event.subject);
        }
        if !same_source {
            push_text(&mut self.bytes, event.source);
            replace(&mut self.source, event.source);
        }
        match event.id {
            RawId::Uuid(bytes) => self.bytes.extend_from_slice(&bytes),
            RawId::Text(text) => push_text(&mut self.bytes, text),
        }
        if !same_type {
            push_text(&mut self.bytes, event.event_type);
            replace(&mut self.event_type, event.event_type);
        }
        push_signed(&mut self.bytes, event.second.wrapping_sub(self.second));
        push_signed(&mut self.bytes, i64::from(event.nanosecond));
        push_signed(
            &mut self.bytes,
            event.ingested_at_us.wrapping_sub(self.ingested_at_us),
        );
        self.second = event.second;
        self.ingested_at_us = event.ingested_at_us;
        if !event.data.is_empty() {
            push_text(&mut self.bytes, event.data);
        }
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

fn replace(kept: &mut String, text: &str) {
    kept.clear();
    kept.push_str(text);
}

fn push_text(bytes: &mut Vec<u8>, text: &str) {
    push_unsigned(bytes, u64::try_from(text.len()).expect("usize fits in u64"));
    bytes.extend_from_slice(text.as_bytes());
}

/// LEB128: seven bits a byte, low bits first, the high bit set on every byte but the last.
fn push_unsigned(bytes: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        bytes.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
}

/// Zigzag (0, -1, 1, -2, ... as 0, 1, 2, 3, ...), then LEB128.
fn push_signed(bytes: &mut Vec<u8>, value: i64) {
    push_unsigned(bytes, ((value << 1) ^ (value >> 63)) as u64);
}

/// The key hashes of a chunk, 16 bytes each, in the order of its events.
/// A caller's batch encoded before it reaches the writer (on the caller's thread), as if every
/// event were ingested at instant 0: the writer then copies its bytes into a log chunk, encoding
/// only its first event again with the group's ingestion instant ([`ChunkEncoder::append`]),
/// instead of encoding every event while it holds the write lock.
#[derive(Debug)]
pub(crate) struct EncodedBatch {
    /// A chunk of the batch's events, in order.
    bytes: Vec<u8>,
    /// How many bytes the first event takes, after the layout byte.
    first_length: usize,
    /// The earliest and latest event time, in microseconds.
    pub time_min_us: i64,
    pub time_max_us: i64,
}

impl EncodedBatch {
    /// `None` for an empty batch.
    pub(crate) fn new(events: &[NewEvent]) -> Option<Self> {
        let (first, rest) = events.split_first()?;
        let estimate: usize = events.iter().map(NewEvent::encoded_length).sum();
        let mut encoder = ChunkEncoder::new();
        encoder.reserve(estimate);
        encoder.push(first, 0);
        let first_length = encoder.len() - 1;
        let first_us = first.time.as_microsecond();
        let (mut time_min_us, mut time_max_us) = (first_us, first_us);
        for event in rest {
            let time_us = event.time.as_microsecond();
            time_min_us = time_min_us.min(time_us);
            time_max_us = time_max_us.max(time_us);
            encoder.push(event, 0);
        }
        Some(Self {
            bytes: encoder.into_bytes(),
            first_length,
            time_min_us,
            time_max_us,
        })
    }

    /// The bytes its events take in a chunk.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len() - 1
    }
}

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

/// An event's id as a chunk stores it: its text, or the 16 bytes of a lowercase hyphenated UUID
/// (which stand for exactly that text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RawId<'a> {
    Text(&'a str),
    Uuid([u8; 16]),
}

const HEX: &[u8; 16] = b"0123456789abcdef";
/// Where the hyphens of a UUID's 36 characters are.
const HYPHENS: [usize; 4] = [8, 13, 18, 23];

impl<'a> RawId<'a> {
    /// `text` as its UUID bytes when it is a lowercase hyphenated UUID, else as text.
    pub(crate) fn from_text(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        if bytes.len() != 36 || HYPHENS.iter().any(|&at| bytes[at] != b'-') {
            return Self::Text(text);
        }
        // The 32 digits, two by two, between the hyphens.
        const PAIRS: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
        let mut uuid = [0_u8; 16];
        for (byte, at) in uuid.iter_mut().zip(PAIRS) {
            match (lower_hex(bytes[at]), lower_hex(bytes[at + 1])) {
                (Some(high), Some(low)) => *byte = (high << 4) | low,
                _ => return Self::Text(text),
            }
        }
        Self::Uuid(uuid)
    }
}

fn lower_hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for RawId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => f.write_str(text),
            Self::Uuid(bytes) => {
                let mut text = [0_u8; 36];
                let mut at = 0;
                for byte in bytes {
                    if HYPHENS.contains(&at) {
                        text[at] = b'-';
                        at += 1;
                    }
                    text[at] = HEX[usize::from(byte >> 4)];
                    text[at + 1] = HEX[usize::from(byte & 0x0f)];
                    at += 2;
                }
                f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
            }
        }
    }
}

/// An event as a chunk stores it, borrowed from the chunk's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawEvent<'a> {
    pub subject: &'a str,
    pub source: &'a str,
    pub id: RawId<'a>,
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
            id: self.id.to_string(),
            source: self.source.to_owned(),
            event_type: self.event_type.to_owned(),
            subject: self.subject.to_owned(),
            time,
            data,
        })
    }
}

/// Events in the first layout (version 1), which older databases hold: for the tests that read it
/// back.
#[cfg(test)]
pub(crate) fn encode_first_layout(events: &[RawEvent<'_>]) -> Vec<u8> {
    fn text(bytes: &mut Vec<u8>, text: &str) {
        bytes.extend_from_slice(&u32::try_from(text.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(text.as_bytes());
    }
    let mut bytes = vec![FORMAT_VERSION_1];
    for event in events {
        text(&mut bytes, event.subject);
        text(&mut bytes, event.source);
        text(&mut bytes, &event.id.to_string());
        text(&mut bytes, event.event_type);
        bytes.extend_from_slice(&event.second.to_le_bytes());
        bytes.extend_from_slice(&event.nanosecond.to_le_bytes());
        bytes.extend_from_slice(&event.ingested_at_us.to_le_bytes());
        text(&mut bytes, event.data);
    }
    bytes
}

/// The layout of a chunk's bytes: its version byte.
pub(crate) fn chunk_version(bytes: &[u8]) -> Option<u8> {
    bytes.first().copied()
}

/// Whether chunks of this version concatenate (after the first one's version byte) into a chunk.
pub(crate) fn concatenates(version: Option<u8>) -> bool {
    version == Some(FORMAT_VERSION)
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
    match reader.take(1)?[0] {
        FORMAT_VERSION => {
            let mut previous = Previous::default();
            while reader.offset < bytes.len() {
                let event = reader.event(&previous)?;
                previous = Previous {
                    subject: event.subject,
                    source: event.source,
                    event_type: event.event_type,
                    second: event.second,
                    ingested_at_us: event.ingested_at_us,
                };
                events.push(event);
            }
        }
        FORMAT_VERSION_1 => {
            while reader.offset < bytes.len() {
                events.push(RawEvent {
                    subject: reader.text_v1()?,
                    source: reader.text_v1()?,
                    id: RawId::Text(reader.text_v1()?),
                    event_type: reader.text_v1()?,
                    second: i64::from_le_bytes(reader.array()?),
                    nanosecond: i32::from_le_bytes(reader.array()?),
                    ingested_at_us: i64::from_le_bytes(reader.array()?),
                    data: reader.text_v1()?,
                });
            }
        }
        version => return Err(DecodeChunkError::Version { version }),
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
            // Built only on failure: the error type has a destructor, which `ok_or` would run
            // for every field read.
            .ok_or_else(|| DecodeChunkError::Truncated {
                offset: self.offset,
            })?;
        let taken = &self.bytes[self.offset..end];
        self.offset = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeChunkError> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    fn text_v1(&mut self) -> Result<&'a str, DecodeChunkError> {
        let length = u32::from_le_bytes(self.array()?);
        self.utf8(usize::try_from(length).expect("usize holds u32"))
    }

    fn text(&mut self) -> Result<&'a str, DecodeChunkError> {
        let offset = self.offset;
        let length = usize::try_from(self.unsigned()?)
            .map_err(|_| DecodeChunkError::Truncated { offset })?;
        self.utf8(length)
    }

    fn utf8(&mut self, length: usize) -> Result<&'a str, DecodeChunkError> {
        let offset = self.offset;
        std::str::from_utf8(self.take(length)?).map_err(|_| DecodeChunkError::Utf8 { offset })
    }

    fn unsigned(&mut self) -> Result<u64, DecodeChunkError> {
        let offset = self.offset;
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeChunkError::Varint { offset })
    }

    fn signed(&mut self) -> Result<i64, DecodeChunkError> {
        let zigzag = self.unsigned()?;
        Ok(((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64))
    }

    fn event(&mut self, previous: &Previous<'a>) -> Result<RawEvent<'a>, DecodeChunkError> {
        let offset = self.offset;
        let flags = self.take(1)?[0];
        let first = flags & FIRST != 0;
        if flags & !KNOWN_FLAGS != 0 || (first && flags & SAME_ANY != 0) || (offset == 1 && !first)
        {
            return Err(DecodeChunkError::Flags { offset, flags });
        }
        let previous = if first {
            &Previous::default()
        } else {
            previous
        };
        let subject = match flags & SAME_SUBJECT {
            0 => self.text()?,
            _ => previous.subject,
        };
        let source = match flags & SAME_SOURCE {
            0 => self.text()?,
            _ => previous.source,
        };
        let id = match flags & UUID_ID {
            0 => RawId::Text(self.text()?),
            _ => RawId::Uuid(self.array()?),
        };
        let event_type = match flags & SAME_TYPE {
            0 => self.text()?,
            _ => previous.event_type,
        };
        let second = previous.second.wrapping_add(self.signed()?);
        let nanosecond_offset = self.offset;
        let nanosecond = i32::try_from(self.signed()?).map_err(|_| DecodeChunkError::Varint {
            offset: nanosecond_offset,
        })?;
        let ingested_at_us = previous.ingested_at_us.wrapping_add(self.signed()?);
        let data = match flags & HAS_DATA {
            0 => "",
            _ => self.text()?,
        };
        Ok(RawEvent {
            subject,
            source,
            id,
            event_type,
            second,
            nanosecond,
            ingested_at_us,
            data,
        })
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
    #[error("the number at byte {offset} is too long")]
    Varint { offset: usize },
    #[error("the event at byte {offset} has unknown flags {flags:#x}")]
    Flags { offset: usize, flags: u8 },
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
    use proptest::prelude::*;

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

    fn encode(events: &[RawEvent<'_>]) -> Vec<u8> {
        let mut encoder = ChunkEncoder::new();
        events.iter().for_each(|event| encoder.push_raw(event));
        encoder.into_bytes()
    }

    /// Events compared by their text (a UUID id as the text it stands for).
    fn texts(events: &[RawEvent<'_>]) -> Vec<OwnedEvent> {
        events
            .iter()
            .map(|event| {
                (
                    event.subject.to_owned(),
                    event.source.to_owned(),
                    event.id.to_string(),
                    event.event_type.to_owned(),
                    event.second,
                    event.nanosecond,
                    event.ingested_at_us,
                    event.data.to_owned(),
                )
            })
            .collect()
    }

    /// An event's fields, owned: subject, source, id (as text), type, seconds, nanoseconds,
    /// ingestion instant, data.
    type OwnedEvent = (String, String, String, String, i64, i32, i64, String);

    const UUID: &str = "0f5e2a7c-3b1d-4c8e-9a6f-2d4b8e1c7a93";

    #[test]
    fn only_a_lowercase_hyphenated_uuid_is_stored_as_bytes() {
        assert!(matches!(RawId::from_text(UUID), RawId::Uuid(_)));
        assert_eq!(RawId::from_text(UUID).to_string(), UUID);
        for text in [
            UUID.to_uppercase(),
            UUID.replace('-', ""),
            UUID.replacen('-', "_", 1),
            format!("{UUID}0"),
            UUID.replace('f', "g"),
            "e1".to_owned(),
        ] {
            assert_eq!(RawId::from_text(&text), RawId::Text(&text), "{text}");
        }
    }

    #[test]
    fn a_metering_agents_event_takes_about_half_the_first_layouts_bytes() {
        let event = |subject| RawEvent {
            subject,
            source: "agent-3",
            id: RawId::from_text(UUID),
            event_type: "cpu",
            second: 1_795_000_000,
            nanosecond: 123_000_000,
            ingested_at_us: 1_795_000_000_123_456,
            data: r#"{"cores":12,"project":"prj_3"}"#,
        };
        let events: Vec<RawEvent<'_>> = ["cus_17", "cus_512", "cus_17", "cus_900"]
            .into_iter()
            .cycle()
            .take(1_000)
            .map(event)
            .collect();

        let (v1, v2) = (encode_first_layout(&events).len(), encode(&events).len());

        assert!(v2 * 100 < v1 * 52, "{v2} bytes against {v1}");
        assert_eq!(
            texts(&decode_events(&encode(&events)).unwrap()),
            texts(&events)
        );
    }

    #[test]
    fn chunks_of_the_first_layout_are_still_read() {
        let events = [RawEvent {
            subject: "cus_1",
            source: "s",
            id: RawId::Text("a"),
            event_type: "t",
            second: -5,
            nanosecond: -7,
            ingested_at_us: 9,
            data: "{}",
        }];

        let bytes = encode_first_layout(&events);

        assert_eq!(decode_events(&bytes).unwrap(), events);
        assert!(!concatenates(chunk_version(&bytes)));
    }

    fn raw_event() -> impl Strategy<Value = OwnedEvent> {
        let text = prop_oneof![
            Just("cus_1".to_owned()),
            Just("cus_2".to_owned()),
            "\\PC{1,12}",
        ];
        let id = prop_oneof![
            Just(UUID.to_owned()),
            Just(UUID.to_uppercase()),
            "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "\\PC{1,40}",
        ];
        let data = prop_oneof![
            Just(String::new()),
            Just(r#"{"cores":2}"#.to_owned()),
            "\\PC{0,20}"
        ];
        (
            text.clone(),
            text.clone(),
            id,
            text,
            -377_705_116_800_i64..=253_402_207_200,
            -999_999_999_i32..=999_999_999,
            any::<i64>(),
            data,
        )
    }

    fn as_raw(event: &OwnedEvent) -> RawEvent<'_> {
        RawEvent {
            subject: &event.0,
            source: &event.1,
            id: RawId::from_text(&event.2),
            event_type: &event.3,
            second: event.4,
            nanosecond: event.5,
            ingested_at_us: event.6,
            data: &event.7,
        }
    }

    proptest! {
        #[test]
        fn any_events_read_back_as_written_alone_or_concatenated(
            first in proptest::collection::vec(raw_event(), 0..20),
            second in proptest::collection::vec(raw_event(), 1..20),
        ) {
            let first: Vec<RawEvent<'_>> = first.iter().map(as_raw).collect();
            let second: Vec<RawEvent<'_>> = second.iter().map(as_raw).collect();
            let first_bytes = encode(&first);
            let second_bytes = encode(&second);

            prop_assert_eq!(texts(&decode_events(&first_bytes).unwrap()), texts(&first));
            let mut both = first_bytes.clone();
            both.extend_from_slice(&second_bytes[1..]);
            let all: Vec<RawEvent<'_>> = first.iter().chain(&second).copied().collect();
            prop_assert_eq!(texts(&decode_events(&both).unwrap()), texts(&all));
            prop_assert_eq!(texts(&decode_events(&encode_first_layout(&all)).unwrap()), texts(&all));
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(
            version in 1_u8..=2,
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut chunk = vec![version];
            chunk.extend(bytes);
            let _ = decode_events(&chunk);
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
