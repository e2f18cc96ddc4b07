//! A conversation's checkpoint (`header.json`): its state at a point of its log, so that
//! readers need not replay the whole log. [`Checkpoint`] owns its bytes, its writing,
//! and the check that the log still holds what it accounts for.

use std::fs::File;
use std::path::Path;

use chatvault_core::backend::{ConversationRecord, Error, FileAttachment, Message, Result};
use serde::{Deserialize, Serialize};

use super::index::SeqIndex;
use crate::error::BACKEND;
use crate::fsutil::{read_at, write_replace_unsynced};
use crate::log::{Body, FRAME_HEADER, FrameAt, decode_frame, header_crc};
use crate::messages::format::{HEADER, HEADER_TMP};

/// The first bytes of a checkpoint, followed by the CRC-32 of its JSON in hex and `\n`.
const CHECKPOINT_MAGIC: &[u8] = b"CVCP2 ";

/// `header.json`: a checkpoint of a conversation's state at a point of its log, so that
/// readers need not replay the whole log. Derived data: written without flushing, checked
/// (its own CRC, and the CRC of the log record it says ends at `log_len`) every time it is
/// read, and rebuilt from the log when it does not check out.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub(crate) format: u32,
    /// Which `log-N` / `index-N` pair holds the conversation.
    pub(crate) generation: u64,
    /// Bytes of the log the checkpoint accounts for.
    pub(crate) log_len: u64,
    /// Offset and header CRC of the record that ends at `log_len` (none when it is 0).
    pub(crate) last_frame: Option<(u64, u32)>,
    pub(crate) record: ConversationRecord,
    #[serde(default)]
    pub(crate) files: Vec<FileAttachment>,
    /// Marked by `begin_delete`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) deleting: bool,
}

impl Checkpoint {
    /// `header.json`'s bytes: the magic, the CRC of the JSON in hex, the JSON.
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(self).map_err(|e| Error::backend(BACKEND, e))?;
        let mut out = CHECKPOINT_MAGIC.to_vec();
        out.extend_from_slice(format!("{:08x}\n", crc32fast::hash(&json)).as_bytes());
        out.extend_from_slice(&json);
        Ok(out)
    }

    /// Whether `bytes` start as a checkpoint does (intact or not).
    pub(crate) fn is_marked(bytes: &[u8]) -> bool {
        bytes.starts_with(CHECKPOINT_MAGIC)
    }

    /// The checkpoint in `bytes`; `None` unless they are one, intact.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Checkpoint> {
        let rest = bytes.strip_prefix(CHECKPOINT_MAGIC)?;
        let (crc, json) = (rest.get(..8)?, rest.get(9..)?);
        if rest.get(8) != Some(&b'\n') {
            return None;
        }
        let crc = u32::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
        if crc32fast::hash(json) != crc {
            return None;
        }
        serde_json::from_slice(json).ok()
    }

    /// Writes it as the checkpoint of the conversation in `dir`, through `header.json`'s
    /// temp file (derived: not flushed).
    pub(super) fn write(&self, dir: &Path) -> Result<()> {
        write_replace_unsynced(&dir.join(HEADER), &dir.join(HEADER_TMP), &self.encode()?)
    }

    /// Whether the log record it says ends at its `log_len` is there in `log` (at
    /// `path`) and agrees with it: same CRC, and the same message count (the seq of its
    /// last message, looked up through `index` first) or, for a state record, the same
    /// record and attachments.
    pub(super) fn matches(&self, log: &mut File, path: &Path, index: &SeqIndex) -> Result<bool> {
        let Some((offset, crc)) = self.last_frame else {
            return Ok(self.log_len == 0 && self.record.message_count == 0);
        };
        if offset >= self.log_len || self.log_len - offset < FRAME_HEADER {
            return Ok(false);
        }
        let head = read_at(log, path, offset, FRAME_HEADER)?;
        let header_matches = header_crc(&head).is_some_and(|(len, c)| {
            c == crc && offset + FRAME_HEADER + u64::from(len) == self.log_len
        });
        if !header_matches {
            return Ok(false);
        }
        // The cheap way: the index entry of the last message, which must be the record's
        // last line, CRC-checked, with the checkpoint's count as its seq.
        if self.last_message_matches(log, path, index, offset)? {
            return Ok(true);
        }
        let bytes = read_at(log, path, offset, self.log_len - offset)?;
        let frame = match decode_frame(path, &bytes, 0, offset) {
            Ok(FrameAt::Valid(frame)) => frame,
            Ok(FrameAt::Torn | FrameAt::Damaged) | Err(_) => return Ok(false),
        };
        if frame.crc != crc || frame.end != self.log_len {
            return Ok(false);
        }
        Ok(match frame.body {
            Body::Messages(messages, _) => {
                messages.last().map(|m| m.seq) == Some(self.record.message_count)
            }
            Body::State(state) => {
                state.record == self.record
                    && state.files == self.files
                    && state.deleting == self.deleting
            }
            Body::Edit(_, _, record) => *record == self.record,
        })
    }

    /// Whether the index entry of message `message_count` points at the last line of
    /// the record at `frame` (ending at `log_len`) and that line is that message.
    fn last_message_matches(
        &self,
        log: &mut File,
        path: &Path,
        index: &SeqIndex,
        frame: u64,
    ) -> Result<bool> {
        let count = self.record.message_count;
        let Some(entry) = index.entry(count) else {
            return Ok(false);
        };
        if entry.offset <= frame + FRAME_HEADER || entry.end() != Some(self.log_len) {
            return Ok(false);
        }
        let line = read_at(log, path, entry.offset, u64::from(entry.len))?;
        Ok(crc32fast::hash(&line) == entry.crc
            && serde_json::from_slice::<Message>(&line).is_ok_and(|m| m.seq == count))
    }
}
