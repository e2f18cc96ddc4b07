//! Opening a conversation's log: from its checkpoint and the records after it, or by a
//! replay of the whole log when the checkpoint is missing or does not check out.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use chatvault_core::backend::{ConversationId, Message, Result};

use super::scan::{Scan, log_generations};
use super::{CHECKPOINT_FRAMES, ConversationLog, check_headroom};
use crate::error::{damaged, io_at, io_error, is_damage};
use crate::fsutil::{is_absent, read_at};
use crate::log::{Body, FRAME_HEADER, FrameAt, INDEX_ENTRY, IndexEntry, decode_frame, header_crc};
use crate::messages::format::{Checkpoint, HEADER, HeaderRead, index_name, log_name};

impl ConversationLog {
    /// Reads a locked conversation. `None` when there is none in `dir`, or it holds
    /// another id (ids that differ only in case on a case-insensitive file system).
    pub(crate) fn load(dir: &Path, id: Option<&ConversationId>) -> Result<Option<ConversationLog>> {
        let view = match HeaderRead::read(dir)? {
            HeaderRead::Checkpoint(cp) => match Self::from_checkpoint(dir, &cp) {
                Ok(Some(view)) => Some(view),
                // An intact checkpoint that does not match the log, or records after it
                // that do not follow from it: the checkpoint is stale or wrong, or the log
                // is damaged; replaying the whole log tells which. What the checkpoint
                // accounted for was acknowledged: the replay must find it.
                Ok(None) => {
                    tracing::warn!(conversation = %dir.display(), "checkpoint does not match the log: replaying the log");
                    Self::rebuild(dir, true, Some((cp.generation, cp.log_len)))?
                }
                Err(e) if is_damage(&e) => {
                    tracing::warn!(conversation = %dir.display(), error = %e, "log does not follow from the checkpoint: replaying the log");
                    Self::rebuild(dir, true, Some((cp.generation, cp.log_len)))?
                }
                Err(e) => return Err(e),
            },
            HeaderRead::Legacy(h) => Some(Self::from_legacy(dir, *h)?),
            HeaderRead::Missing => Self::rebuild(dir, false, None)?,
            HeaderRead::Damaged => {
                tracing::warn!(conversation = %dir.display(), "damaged checkpoint: replaying the log");
                Self::rebuild(dir, true, None)?
            }
        };
        Ok(view.filter(|v| id.is_none_or(|id| *id == v.record.id)))
    }

    /// The view a checkpoint gives, with the records after it replayed; `None` when the
    /// checkpoint does not match the log.
    pub(super) fn from_checkpoint(dir: &Path, cp: &Checkpoint) -> Result<Option<ConversationLog>> {
        let Some(next) = cp.generation.checked_add(1) else {
            return Ok(None);
        };
        if dir.join(log_name(next)).exists() {
            return Ok(None);
        }
        let log_path = dir.join(log_name(cp.generation));
        let mut log = match File::open(&log_path) {
            Ok(f) => f,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(io_error("open", &log_path, e)),
        };
        let file_len = log.metadata().map_err(io_at("stat", &log_path))?.len();
        if cp.log_len > file_len
            || check_headroom(&cp.record, 0, &log_path).is_err()
            || !Self::checkpoint_matches(dir, &mut log, &log_path, cp)?
        {
            return Ok(None);
        }
        let mut scan = Scan::new(&log_path, true);
        scan.index = Some(dir.join(index_name(cp.generation)));
        scan.record = Some(cp.record.clone());
        scan.files = cp.files.clone();
        scan.count = cp.record.message_count;
        scan.start_count = cp.record.message_count;
        scan.deleting = cp.deleting;
        scan.valid_end = cp.log_len;
        scan.last_frame = cp.last_frame;
        scan.run(&mut log, cp.log_len, file_len)?;
        let Some(record) = scan.record.take() else {
            return Ok(None);
        };
        let stale = scan.frames >= CHECKPOINT_FRAMES;
        let base = cp.record.message_count;
        let mut view = scan.into_log(dir, cp.generation, record, file_len, base, cp.log_len);
        view.stale = stale;
        Ok(Some(view))
    }

    /// Whether the log record that a checkpoint says ends at its `log_len` is there and
    /// agrees with it: same CRC, and the same message count (the seq of its last
    /// message) or, for a state record, the same record and attachments.
    fn checkpoint_matches(
        dir: &Path,
        log: &mut File,
        path: &Path,
        cp: &Checkpoint,
    ) -> Result<bool> {
        let Some((offset, crc)) = cp.last_frame else {
            return Ok(cp.log_len == 0 && cp.record.message_count == 0);
        };
        if offset >= cp.log_len || cp.log_len - offset < FRAME_HEADER {
            return Ok(false);
        }
        let head = read_at(log, path, offset, FRAME_HEADER)?;
        let header_matches = header_crc(&head).is_some_and(|(len, c)| {
            c == crc && offset + FRAME_HEADER + u64::from(len) == cp.log_len
        });
        if !header_matches {
            return Ok(false);
        }
        // The cheap way: the index entry of the last message, which must be the record's
        // last line, CRC-checked, with the checkpoint's count as its seq.
        if Self::last_message_matches(dir, log, path, cp, offset)? {
            return Ok(true);
        }
        let bytes = read_at(log, path, offset, cp.log_len - offset)?;
        let frame = match decode_frame(path, &bytes, 0, offset) {
            Ok(FrameAt::Valid(frame)) => frame,
            Ok(FrameAt::Torn | FrameAt::Damaged) | Err(_) => return Ok(false),
        };
        if frame.crc != crc || frame.end != cp.log_len {
            return Ok(false);
        }
        Ok(match frame.body {
            Body::Messages(messages, _) => {
                messages.last().map(|m| m.seq) == Some(cp.record.message_count)
            }
            Body::State(state) => {
                state.record == cp.record
                    && state.files == cp.files
                    && state.deleting == cp.deleting
            }
            Body::Edit(_, _, record) => *record == cp.record,
        })
    }

    /// Whether the index entry of message `message_count` points at the last line of
    /// the record at `frame` (ending at `log_len`) and that line is that message.
    fn last_message_matches(
        dir: &Path,
        log: &mut File,
        path: &Path,
        cp: &Checkpoint,
        frame: u64,
    ) -> Result<bool> {
        let count = cp.record.message_count;
        let Some(at) = count
            .checked_sub(1)
            .and_then(|p| p.checked_mul(INDEX_ENTRY))
        else {
            return Ok(false);
        };
        let Ok(mut index) = File::open(dir.join(index_name(cp.generation))) else {
            return Ok(false);
        };
        let mut raw = [0u8; INDEX_ENTRY as usize];
        let read = index
            .seek(SeekFrom::Start(at))
            .and_then(|_| index.read_exact(&mut raw));
        let Some(entry) = read.ok().and_then(|()| IndexEntry::decode(&raw)) else {
            return Ok(false);
        };
        if entry.offset <= frame + FRAME_HEADER || entry.end() != Some(cp.log_len) {
            return Ok(false);
        }
        let line = read_at(log, path, entry.offset, u64::from(entry.len))?;
        Ok(crc32fast::hash(&line) == entry.crc
            && serde_json::from_slice::<Message>(&line).is_ok_and(|m| m.seq == count))
    }

    /// Replays a conversation's newest log from its start. `None` when the directory
    /// holds no conversation.
    ///
    /// `acknowledged`: a log generation and the bytes of it an intact checkpoint
    /// accounted for, which the replay must find intact.
    pub(super) fn rebuild(
        dir: &Path,
        header_present: bool,
        acknowledged: Option<(u64, u64)>,
    ) -> Result<Option<ConversationLog>> {
        let Some(generation) = log_generations(dir)?.into_iter().max() else {
            if header_present {
                return Err(damaged(&dir.join(HEADER), "its conversation has no log"));
            }
            return Ok(None);
        };
        let log_path = dir.join(log_name(generation));
        let mut log = File::open(&log_path).map_err(io_at("open", &log_path))?;
        let file_len = log.metadata().map_err(io_at("stat", &log_path))?.len();
        let mut scan = Scan::new(&log_path, true);
        scan.index = Some(dir.join(index_name(generation)));
        scan.acknowledged = acknowledged
            .filter(|&(g, _)| g == generation)
            .map_or(0, |(_, len)| len);
        scan.run(&mut log, 0, file_len)?;
        let Some(record) = scan.record.take() else {
            return Err(damaged(
                &log_path,
                "no state record: the log was written by 0.1 and its header.json is lost",
            ));
        };
        Ok(Some(scan.into_log(dir, generation, record, file_len, 0, 0)))
    }
}
