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

use chatvault_core::backend::{
    ConversationRecord, Error, FileAttachment, Message, MessageId, Result,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{CorruptData, corrupt};

/// The frame magic.
pub(crate) const MAGIC: [u8; 4] = *b"CVL1";
/// Bytes before a frame's payload.
pub(crate) const FRAME_HEADER: u64 = 12;
/// The record format of message records (the only kind 0.1 wrote; still written as is).
pub(crate) const RECORD_VERSION: u32 = 1;
/// The record format of state records (`"k":"state"`), which 0.1 did not know.
pub(crate) const STATE_VERSION: u32 = 2;
/// The kind of a state record.
const STATE_KIND: &str = "state";
/// The kind of an edit record (a message updated in place).
const EDIT_KIND: &str = "edit";
/// The largest payload of one append (one record), in bytes.
pub const MAX_RECORD_BYTES: u64 = 256 * 1024 * 1024;
/// Bytes per index entry.
pub(crate) const INDEX_ENTRY: u64 = 16;

/// The first line of a payload.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BatchMeta {
    /// Record format version.
    pub(crate) v: u32,
    /// The time the append was applied with (`last_active` candidate).
    pub(crate) at: DateTime<Utc>,
    /// How many message lines follow (1 for a state record).
    pub(crate) n: u64,
    /// The record's kind: absent for messages, `"state"` for a conversation's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) k: Option<String>,
}

/// The line of a state record: a conversation's record and attachments as of that point
/// of its log. Every metadata change (create, update, attachments, a whole save) writes
/// one, so the log alone says everything about a conversation.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StateLine {
    pub(crate) record: ConversationRecord,
    #[serde(default)]
    pub(crate) files: Vec<FileAttachment>,
    /// Marked by `begin_delete`: the conversation reads as gone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) deleting: bool,
}

/// The record line of an edit record, after the updated message's line.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct EditRecord {
    pub(crate) record: ConversationRecord,
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
        k: None,
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
    let bytes = frame(payload, "one append of messages (encoded)")?;
    Ok(EncodedFrame { bytes, spans })
}

/// Encodes a state record: `record` and `files` as of time `at`.
pub(crate) fn encode_state(
    at: DateTime<Utc>,
    record: &ConversationRecord,
    files: &[FileAttachment],
    deleting: bool,
) -> Result<EncodedFrame> {
    let json = |e: serde_json::Error| Error::backend(crate::error::BACKEND, e);
    let meta = BatchMeta {
        v: STATE_VERSION,
        at,
        n: 1,
        k: Some(STATE_KIND.to_owned()),
    };
    let mut payload = serde_json::to_vec(&meta).map_err(json)?;
    payload.push(b'\n');
    #[derive(Serialize)]
    struct Line<'a> {
        record: &'a ConversationRecord,
        files: &'a [FileAttachment],
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        deleting: bool,
    }
    serde_json::to_writer(
        &mut payload,
        &Line {
            record,
            files,
            deleting,
        },
    )
    .map_err(json)?;
    let bytes = frame(payload, "a conversation's record and attachments (encoded)")?;
    Ok(EncodedFrame {
        bytes,
        spans: Vec::new(),
    })
}

/// Encodes an edit record: `message` (updated, with its seq) and the record after it.
/// Its span points at the message's line, like a message record's.
pub(crate) fn encode_edit(
    at: DateTime<Utc>,
    message: &Message,
    record: &ConversationRecord,
) -> Result<EncodedFrame> {
    let json = |e: serde_json::Error| Error::backend(crate::error::BACKEND, e);
    let meta = BatchMeta {
        v: STATE_VERSION,
        at,
        n: 1,
        k: Some(EDIT_KIND.to_owned()),
    };
    let mut payload = serde_json::to_vec(&meta).map_err(json)?;
    payload.push(b'\n');
    let start = payload.len();
    serde_json::to_writer(&mut payload, message).map_err(json)?;
    let len = payload.len() - start;
    let crc = crc32fast::hash(&payload[start..]);
    payload.push(b'\n');
    serde_json::to_writer(
        &mut payload,
        &EditRecord {
            record: record.clone(),
        },
    )
    .map_err(json)?;
    let bytes = frame(payload, "an updated message (encoded)")?;
    Ok(EncodedFrame {
        bytes,
        spans: vec![(FRAME_HEADER + start as u64, len as u32, crc)],
    })
}

/// Frames `payload`: magic, length, CRC, payload.
fn frame(payload: Vec<u8>, what: &str) -> Result<Vec<u8>> {
    let size = payload.len() as u64;
    if size > MAX_RECORD_BYTES {
        return Err(Error::TooLarge {
            what: what.into(),
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
    Ok(bytes)
}

/// The CRC a frame's header carries (bytes 8..12), if `bytes` start with a frame header.
pub(crate) fn header_crc(bytes: &[u8]) -> Option<(u32, u32)> {
    let head = bytes.get(..FRAME_HEADER as usize)?;
    if head[0..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let crc = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    Some((len, crc))
}

/// A frame read back from a log.
#[derive(Debug)]
pub(crate) struct DecodedFrame {
    pub(crate) at: DateTime<Utc>,
    pub(crate) body: Body,
    /// The CRC in the frame's header.
    pub(crate) crc: u32,
    /// Offset just past this frame.
    pub(crate) end: u64,
}

/// What a frame holds.
#[derive(Debug)]
pub(crate) enum Body {
    /// Appended messages, with where each one's JSON lies in the log.
    Messages(Vec<Message>, Vec<IndexEntry>),
    /// A conversation's state.
    State(Box<StateLine>),
    /// A message updated in place (its entry points at its line), and the record after.
    Edit(Box<Message>, IndexEntry, Box<ConversationRecord>),
}

/// The length (header included) of the frame whose header starts `buf`; `None` when
/// `buf` does not start with a frame header.
pub(crate) fn frame_len(buf: &[u8]) -> Option<u64> {
    let head = buf.get(..FRAME_HEADER as usize)?;
    if head[0..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    Some(FRAME_HEADER + u64::from(len))
}

/// The `(id, seq)` of each message the intact frame at `buf[pos..]` appends, read without
/// decoding the messages whole (for the map of message ids), and the log offset just past
/// the frame (`buf` starts at log offset `base`). Empty for state and edit records; `None`
/// when no intact, readable frame is there.
pub(crate) fn frame_ids(buf: &[u8], pos: usize, base: u64) -> Option<(Vec<(MessageId, u64)>, u64)> {
    #[derive(Deserialize)]
    struct IdSeq {
        id: MessageId,
        seq: u64,
    }
    let len = u32::try_from(frame_len(buf.get(pos..)?)? - FRAME_HEADER).ok()?;
    let head = buf.get(pos..pos + FRAME_HEADER as usize)?;
    let crc = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    let start = pos + FRAME_HEADER as usize;
    let payload = buf.get(start..start + len as usize)?;
    if frame_crc(len, payload) != crc {
        return None;
    }
    let end = base + (start + len as usize) as u64;
    let mut lines = payload.split(|&b| b == b'\n');
    let meta: BatchMeta = serde_json::from_slice(lines.next()?).ok()?;
    if meta.k.is_some() {
        return Some((Vec::new(), end));
    }
    let mut out = Vec::with_capacity(meta.n.min(1 << 20) as usize);
    for line in lines {
        let m: IdSeq = serde_json::from_slice(line).ok()?;
        out.push((m.id, m.seq));
    }
    Some((out, end))
}

/// What is at an offset of a log.
#[derive(Debug)]
pub(crate) enum FrameAt {
    /// A complete, checksummed frame.
    Valid(DecodedFrame),
    /// What an interrupted write leaves: a frame cut short (a prefix of one), or zeros.
    Torn,
    /// Bytes no write of this crate leaves: a complete frame failing its checksum, or
    /// something else than a frame. Damage, never cut off.
    Damaged,
}

/// Decodes the frame at `buf[pos..]`, where `buf` starts at log offset `base`.
///
/// A frame that is cut short (or zeros) is [`FrameAt::Torn`]; a complete one failing its
/// checksum, or bytes that do not start a frame, are [`FrameAt::Damaged`]; a checksummed
/// frame that does not parse, or has a newer record version, is an error: it is data this
/// release must not throw away.
pub(crate) fn decode_frame(path: &Path, buf: &[u8], pos: usize, base: u64) -> Result<FrameAt> {
    let rest = buf.get(pos..).unwrap_or_default();
    let Some(head) = buf.get(pos..pos + FRAME_HEADER as usize) else {
        let n = rest.len().min(MAGIC.len());
        return Ok(if rest[..n] == MAGIC[..n] || rest.iter().all(|&b| b == 0) {
            FrameAt::Torn
        } else {
            FrameAt::Damaged
        });
    };
    if head[0..4] != MAGIC {
        return Ok(if rest.iter().all(|&b| b == 0) {
            FrameAt::Torn
        } else {
            FrameAt::Damaged
        });
    }
    let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    let crc = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    let start = pos + FRAME_HEADER as usize;
    let Some(payload) = buf.get(start..start + len as usize) else {
        // Cut short, unless what is there is a whole frame whose length field was
        // damaged: its bytes up to the end check out against the frame's CRC.
        let rest = buf.get(start..).unwrap_or_default();
        return Ok(match u32::try_from(rest.len()) {
            Ok(n) if !rest.is_empty() && frame_crc(n, rest) == crc => FrameAt::Damaged,
            _ => FrameAt::Torn,
        });
    };
    if frame_crc(len, payload) != crc {
        return Ok(FrameAt::Damaged);
    }
    let (at, body) = decode_body(path, payload, base + pos as u64, base + start as u64)?;
    Ok(FrameAt::Valid(DecodedFrame {
        at,
        body,
        crc,
        end: base + (start + len as usize) as u64,
    }))
}

/// The time and body of the checksummed payload of the record at log offset `offset`,
/// whose payload starts at log offset `payload_at`.
fn decode_body(
    path: &Path,
    payload: &[u8],
    offset: u64,
    payload_at: u64,
) -> Result<(DateTime<Utc>, Body)> {
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
    match (meta.v, meta.k.as_deref()) {
        (RECORD_VERSION, None) => {}
        (STATE_VERSION, Some(STATE_KIND)) => {
            let line = lines.next().unwrap_or_default();
            let state: StateLine = serde_json::from_slice(line).map_err(|e| {
                corrupt(CorruptData::with_source(
                    path,
                    format!("record at byte {offset} holds an unreadable state"),
                    e,
                ))
            })?;
            if lines.next().is_some() || meta.n != 1 {
                return Err(bad("a state record with more than one line".into()));
            }
            return Ok((meta.at, Body::State(Box::new(state))));
        }
        (STATE_VERSION, Some(EDIT_KIND)) => {
            let line = lines.next().unwrap_or_default();
            let message: Message = serde_json::from_slice(line).map_err(|e| {
                corrupt(CorruptData::with_source(
                    path,
                    format!("record at byte {offset} holds an unreadable message"),
                    e,
                ))
            })?;
            let entry = IndexEntry {
                offset: payload_at + meta_line.len() as u64 + 1,
                len: line.len() as u32,
                crc: crc32fast::hash(line),
            };
            let record: EditRecord = serde_json::from_slice(lines.next().unwrap_or_default())
                .map_err(|e| {
                    corrupt(CorruptData::with_source(
                        path,
                        format!("record at byte {offset} holds an unreadable record"),
                        e,
                    ))
                })?;
            if lines.next().is_some() || meta.n != 1 {
                return Err(bad("an edit record with more than two lines".into()));
            }
            let body = Body::Edit(Box::new(message), entry, Box::new(record.record));
            return Ok((meta.at, body));
        }
        (v, k) => {
            return Err(bad(format!(
                "record format version {v}, kind {k:?} (this release reads {RECORD_VERSION} \
                 and {STATE_VERSION} \"{STATE_KIND}\")"
            )));
        }
    }
    let mut messages = Vec::with_capacity(meta.n.min(1 << 20) as usize);
    let mut entries = Vec::with_capacity(messages.capacity());
    let mut line_start = payload_at + meta_line.len() as u64 + 1;
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
            offset: line_start,
            len: line.len() as u32,
            crc: crc32fast::hash(line),
        });
        line_start += line.len() as u64 + 1;
    }
    if messages.len() as u64 != meta.n {
        return Err(bad(format!(
            "record announces {} messages and holds {}",
            meta.n,
            messages.len()
        )));
    }
    Ok((meta.at, Body::Messages(messages, entries)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;
    use chatvault_core::backend::{NewMessage, Role, now};

    fn msgs(n: u64) -> Vec<Message> {
        (1..=n)
            .map(|i| {
                NewMessage::new(Role::User, format!("line\nbreak {i}"))
                    .into_message(i, i.checked_sub(1).filter(|&p| p > 0))
            })
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
        let Body::Messages(decoded, decoded_entries) = d.body else {
            panic!("not messages")
        };
        assert_eq!(decoded, messages);
        assert_eq!(d.at, at);
        assert_eq!(d.end, log.len() as u64);
        assert_eq!(header_crc(&frame.bytes).map(|(_, c)| c), Some(d.crc));
        let entries: Vec<_> = frame.entries(base).collect();
        assert_eq!(entries, decoded_entries);
        let (ids, end) = frame_ids(&log, base as usize, 0).unwrap();
        assert_eq!(end, log.len() as u64);
        let want: Vec<_> = messages.iter().map(|m| (m.id.clone(), m.seq)).collect();
        assert_eq!(ids, want);
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
            // Even a flip in the length field: the bytes still check out as a whole
            // frame, so it is damage, not a torn end.
            assert!(matches!(r, FrameAt::Damaged), "flip at {flip}: {r:?}");
        }
        let zeros = vec![0u8; 40];
        let r = decode_frame(Path::new("log"), &zeros, 0, 0).unwrap();
        assert!(matches!(r, FrameAt::Torn), "zeros are a torn end");
    }
}
