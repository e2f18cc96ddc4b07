//! The message log's record framing and the seq index's entries.
//!
//! A log is a sequence of frames, one per append:
//!
//! ```text
//! magic "CVL1" (4 bytes) | payload length (u32 LE) | CRC-32 of length+payload (u32 LE) | payload
//! ```
//!
//! The payload is JSON lines: a first line `{"v":1,"at":"<RFC 3339>","n":<count>}`, then
//! one line per message (the [`Message`] JSON, seq included). serde_json never writes a raw
//! line break, so lines split the payload unambiguously, and each message's bytes can be
//! read and parsed on their own through the index.
//!
//! The index holds one 16-byte entry per message position: the absolute offset of the
//! message's JSON in the log (u64 LE), its length (u32 LE) and its CRC-32 (u32 LE).

use std::path::Path;

use chatvault_core::{Error, Message, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{CorruptData, corrupt};

/// The frame magic.
pub(crate) const MAGIC: [u8; 4] = *b"CVL1";
/// Bytes before a frame's payload.
pub(crate) const FRAME_HEADER: u64 = 12;
/// The log record format this release writes and reads.
pub(crate) const RECORD_VERSION: u32 = 1;
/// The largest payload of one append (one record), in bytes.
pub const MAX_RECORD_BYTES: u64 = 256 * 1024 * 1024;
/// Bytes per index entry.
pub(crate) const INDEX_ENTRY: u64 = 16;
/// The fewest log bytes one message takes: its JSON line alone (`{"id":..,"seq":..,
/// "role":..,"content":..,"created_at":..}`) is longer than this. A header that claims
/// more messages than its log's length allows is damaged.
pub(crate) const MIN_MESSAGE_BYTES: u64 = 16;

/// The first line of a payload.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BatchMeta {
    /// Record format version.
    pub(crate) v: u32,
    /// The time the append was applied with (`last_active` candidate).
    pub(crate) at: DateTime<Utc>,
    /// How many message lines follow.
    pub(crate) n: u64,
}

/// Where one message's JSON lies in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) crc: u32,
}

impl IndexEntry {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.crc.to_le_bytes());
    }

    pub(crate) fn decode(b: &[u8]) -> Option<Self> {
        let offset = u64::from_le_bytes(b.get(0..8)?.try_into().ok()?);
        let len = u32::from_le_bytes(b.get(8..12)?.try_into().ok()?);
        let crc = u32::from_le_bytes(b.get(12..16)?.try_into().ok()?);
        Some(IndexEntry { offset, len, crc })
    }

    /// The log offset just past this message; `None` when it would overflow (only a
    /// damaged index says so).
    pub(crate) fn end(&self) -> Option<u64> {
        self.offset.checked_add(u64::from(self.len))
    }
}

/// One encoded append: the frame's bytes and where each message lies in them.
#[derive(Debug)]
pub(crate) struct EncodedFrame {
    pub(crate) bytes: Vec<u8>,
    /// `(offset within the frame, length, crc)` per message.
    pub(crate) spans: Vec<(u64, u32, u32)>,
}

impl EncodedFrame {
    /// Index entries for this frame written at log offset `at`.
    pub(crate) fn entries(&self, at: u64) -> impl Iterator<Item = IndexEntry> + '_ {
        self.spans.iter().map(move |&(off, len, crc)| IndexEntry {
            offset: at + off,
            len,
            crc,
        })
    }
}

fn frame_crc(len: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Encodes one append of `messages` (already carrying their seq), applied at `at`.
pub(crate) fn encode_frame(at: DateTime<Utc>, messages: &[Message]) -> Result<EncodedFrame> {
    let json = |e: serde_json::Error| Error::backend(crate::error::BACKEND, e);
    let meta = BatchMeta {
        v: RECORD_VERSION,
        at,
        n: messages.len() as u64,
    };
    let mut payload = serde_json::to_vec(&meta).map_err(json)?;
    let mut spans = Vec::with_capacity(messages.len());
    for m in messages {
        payload.push(b'\n');
        let start = payload.len();
        serde_json::to_writer(&mut payload, m).map_err(json)?;
        let len = payload.len() - start;
        let crc = crc32fast::hash(&payload[start..]);
        spans.push((FRAME_HEADER + start as u64, len as u32, crc));
    }
    let size = payload.len() as u64;
    if size > MAX_RECORD_BYTES {
        return Err(Error::TooLarge {
            what: "one append of messages (encoded)".into(),
            size,
            limit: MAX_RECORD_BYTES,
        });
    }
    let len = size as u32;
    let mut bytes = Vec::with_capacity(payload.len() + FRAME_HEADER as usize);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(&frame_crc(len, &payload).to_le_bytes());
    bytes.extend_from_slice(&payload);
    Ok(EncodedFrame { bytes, spans })
}

/// A frame read back from a log.
#[derive(Debug)]
pub(crate) struct DecodedFrame {
    pub(crate) at: DateTime<Utc>,
    pub(crate) messages: Vec<Message>,
    pub(crate) entries: Vec<IndexEntry>,
    /// Offset just past this frame.
    pub(crate) end: u64,
}

/// What is at an offset of a log.
#[derive(Debug)]
pub(crate) enum FrameAt {
    /// A complete, checksummed frame.
    Valid(DecodedFrame),
    /// An incomplete or damaged frame: the torn tail of an interrupted append.
    Torn,
}

/// Decodes the frame at `buf[pos..]`, where `buf` starts at log offset `base`.
///
/// A frame that is cut short or fails its checksum is [`FrameAt::Torn`]; a checksummed
/// frame that does not parse, or has a newer record version, is an error: it is data this
/// release must not throw away.
pub(crate) fn decode_frame(path: &Path, buf: &[u8], pos: usize, base: u64) -> Result<FrameAt> {
    let Some(head) = buf.get(pos..pos + FRAME_HEADER as usize) else {
        return Ok(FrameAt::Torn);
    };
    if head[0..4] != MAGIC {
        return Ok(FrameAt::Torn);
    }
    let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let crc = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    let start = pos + FRAME_HEADER as usize;
    let Some(payload) = buf.get(start..start + len as usize) else {
        return Ok(FrameAt::Torn);
    };
    if frame_crc(len, payload) != crc {
        return Ok(FrameAt::Torn);
    }
    let offset = base + pos as u64;
    let bad = |reason: String| {
        corrupt(CorruptData::new(
            path,
            format!("record at byte {offset}: {reason}"),
        ))
    };
    let mut lines = payload.split(|&b| b == b'\n');
    let meta_line = lines.next().unwrap_or_default();
    let meta: BatchMeta = serde_json::from_slice(meta_line).map_err(|e| {
        corrupt(CorruptData::with_source(
            path,
            format!("record at byte {offset} has no readable header"),
            e,
        ))
    })?;
    if meta.v != RECORD_VERSION {
        return Err(bad(format!(
            "record format version {} (this release reads {RECORD_VERSION})",
            meta.v
        )));
    }
    let mut messages = Vec::with_capacity(meta.n.min(1 << 20) as usize);
    let mut entries = Vec::with_capacity(messages.capacity());
    let mut line_start = start + meta_line.len() + 1;
    for line in lines {
        let message: Message = serde_json::from_slice(line).map_err(|e| {
            corrupt(CorruptData::with_source(
                path,
                format!("record at byte {offset} holds an unreadable message"),
                e,
            ))
        })?;
        messages.push(message);
        entries.push(IndexEntry {
            offset: base + line_start as u64,
            len: line.len() as u32,
            crc: crc32fast::hash(line),
        });
        line_start += line.len() + 1;
    }
    if messages.len() as u64 != meta.n {
        return Err(bad(format!(
            "record announces {} messages and holds {}",
            meta.n,
            messages.len()
        )));
    }
    Ok(FrameAt::Valid(DecodedFrame {
        at: meta.at,
        messages,
        entries,
        end: base + (start + len as usize) as u64,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;
    use chatvault_core::{NewMessage, Role, now};

    fn msgs(n: u64) -> Vec<Message> {
        (1..=n)
            .map(|i| NewMessage::new(Role::User, format!("line\nbreak {i}")).into_message(i))
            .collect()
    }

    #[test]
    fn frames_round_trip_and_spans_point_at_messages() {
        let messages = msgs(3);
        let at = now();
        let frame = encode_frame(at, &messages).unwrap();
        let mut log = vec![0u8; 7]; // some earlier bytes
        let base = log.len() as u64;
        log.extend_from_slice(&frame.bytes);
        let FrameAt::Valid(d) = decode_frame(Path::new("log"), &log, base as usize, 0).unwrap()
        else {
            panic!("not valid")
        };
        assert_eq!(d.messages, messages);
        assert_eq!(d.at, at);
        assert_eq!(d.end, log.len() as u64);
        let entries: Vec<_> = frame.entries(base).collect();
        assert_eq!(entries, d.entries);
        for (e, m) in entries.iter().zip(&messages) {
            let bytes = &log[e.offset as usize..e.end().unwrap() as usize];
            assert_eq!(crc32fast::hash(bytes), e.crc);
            let back: Message = serde_json::from_slice(bytes).unwrap();
            assert_eq!(&back, m);
            let mut enc = Vec::new();
            e.encode(&mut enc);
            assert_eq!(IndexEntry::decode(&enc), Some(*e));
        }
    }

    #[test]
    fn the_smallest_message_takes_more_than_min_message_bytes() {
        let mut m = NewMessage::new(Role::User, "").into_message(1);
        m.id = "x".into();
        let json = serde_json::to_vec(&m).unwrap();
        assert!(json.len() as u64 > MIN_MESSAGE_BYTES, "{}", json.len());
    }

    #[test]
    fn an_entry_whose_end_overflows_has_no_end() {
        let e = IndexEntry {
            offset: u64::MAX,
            len: u32::MAX,
            crc: 0,
        };
        assert_eq!(e.end(), None);
        let e = IndexEntry {
            offset: 7,
            len: 3,
            crc: 0,
        };
        assert_eq!(e.end(), Some(10));
    }

    #[test]
    fn cut_or_damaged_frames_are_torn() {
        let frame = encode_frame(now(), &msgs(2)).unwrap();
        for cut in 0..frame.bytes.len() {
            let r = decode_frame(Path::new("log"), &frame.bytes[..cut], 0, 0).unwrap();
            assert!(matches!(r, FrameAt::Torn), "cut at {cut} accepted");
        }
        for flip in [0, 5, 9, 20, frame.bytes.len() - 1] {
            let mut b = frame.bytes.clone();
            b[flip] ^= 0x40;
            let r = decode_frame(Path::new("log"), &b, 0, 0).unwrap();
            assert!(matches!(r, FrameAt::Torn), "flip at {flip} accepted");
        }
    }
}
