//! The bytes of a chunk: its events, and the hashes of their exactly-once keys.
//!
//! A chunk holds the events of one (workspace, subject) written by one commit, so the subject is
//! a column and is not repeated per event. Each event is its source, id and type as
//! length-prefixed UTF-8, its instant as seconds and nanoseconds, and its `data` object as the
//! JSON text the client sent (empty when it sent none). Little-endian throughout; a leading
//! version byte leaves room for another layout.

use billow_core::UsageEvent;
use jiff::Timestamp;
use serde_json::{Map, Value};

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

    pub(crate) fn push(&mut self, event: &NewEvent) {
        push_text(&mut self.bytes, &event.source);
        push_text(&mut self.bytes, &event.id);
        push_text(&mut self.bytes, &event.event_type);
        self.bytes
            .extend_from_slice(&event.time.as_second().to_le_bytes());
        self.bytes
            .extend_from_slice(&event.time.subsec_nanosecond().to_le_bytes());
        push_text(&mut self.bytes, event.data.as_deref().unwrap_or(""));
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

/// The events of a chunk of `subject`, in the order they were pushed.
pub(crate) fn decode_events(
    subject: &str,
    bytes: &[u8],
) -> Result<Vec<UsageEvent>, DecodeChunkError> {
    let mut reader = Reader { bytes, offset: 0 };
    let version = reader.take(1)?[0];
    if version != FORMAT_VERSION {
        return Err(DecodeChunkError::Version { version });
    }
    let mut events = Vec::new();
    while reader.offset < bytes.len() {
        let source = reader.text()?.to_owned();
        let id = reader.text()?.to_owned();
        let event_type = reader.text()?.to_owned();
        let second = i64::from_le_bytes(reader.array()?);
        let nanosecond = i32::from_le_bytes(reader.array()?);
        let time = Timestamp::new(second, nanosecond).map_err(DecodeChunkError::Time)?;
        let data_json = reader.text()?;
        let data = if data_json.is_empty() {
            Map::new()
        } else {
            match serde_json::from_str::<Value>(data_json).map_err(DecodeChunkError::Data)? {
                Value::Object(map) => map,
                _ => return Err(DecodeChunkError::DataNotAnObject),
            }
        };
        events.push(UsageEvent {
            id,
            source,
            event_type,
            subject: subject.to_owned(),
            time,
            data,
        });
    }
    Ok(events)
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
    #[error("an event's data is not JSON")]
    Data(#[source] serde_json::Error),
    #[error("an event's data is not a JSON object")]
    DataNotAnObject,
    #[error("the key hashes have {length} bytes, not a multiple of 16")]
    KeyHashesLength { length: usize },
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
        encoder.push(&first);
        encoder.push(&second);

        let events = decode_events("cus_1", &encoder.into_bytes()).unwrap();

        assert_eq!(events.len(), 2);
        assert_eq!(events[0].id, "a");
        assert_eq!(events[0].time, first.time);
        assert_eq!(events[0].data["cores"], serde_json::json!(2));
        assert_eq!(events[1].time, second.time);
        assert!(events[1].data.is_empty());
        assert_eq!(events[1].subject, "cus_1");
    }

    #[test]
    fn a_truncated_chunk_is_an_error_not_a_panic() {
        let mut encoder = ChunkEncoder::new();
        encoder.push(&event("a", "2026-11-01T00:00:00Z", None));
        let bytes = encoder.into_bytes();

        for length in 2..bytes.len() {
            assert!(decode_events("cus_1", &bytes[..length]).is_err());
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
