//! The log of one conversation: its files (log, seq index, checkpoint, lock) and what is
//! done to them. [`ConversationLog`] is a conversation as read under its lock; its methods
//! open it ([`load`](ConversationLog::load): checkpoint and replay), commit records to it,
//! read its messages, and repair what a read found damaged in its derived files.

mod commit;
mod legacy;
pub(crate) mod lock;
mod open;
mod read;
mod repair;
pub(crate) mod scan;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chatvault_core::backend::{ConversationRecord, FileAttachment, Message, Result};

use super::format::{index_name, log_name};
use crate::error::damaged;
use crate::log::{EncodedFrame, IndexEntry};

/// The most messages one [`MessagesBackend::messages`](chatvault_core::MessagesBackend::messages)
/// call returns; a longer range gets a `next_cursor` to continue from.
pub const MAX_PAGE: usize = 1000;

/// A writer rewrites the checkpoint once this many records follow it...
const CHECKPOINT_FRAMES: usize = 32;
/// ... or this many bytes (what a reader replays is bounded by this plus one record).
const CHECKPOINT_BYTES: u64 = 64 << 10;

#[derive(Debug)]
pub(crate) struct ConversationLog {
    dir: PathBuf,
    generation: u64,
    pub(crate) record: ConversationRecord,
    pub(crate) files: Vec<FileAttachment>,
    /// End of the last complete record.
    valid_end: u64,
    /// The log file's length (past `valid_end` when a torn record is at the end).
    file_len: u64,
    /// Offset and header CRC of the record ending at `valid_end`.
    last_frame: Option<(u64, u32)>,
    /// Positions `1..=base` are read through the index; later ones are in `tail`.
    base: u64,
    tail: Vec<(Message, IndexEntry)>,
    /// Messages at positions `1..=base` updated after the checkpoint: newer than the
    /// index's entries until the next checkpoint rewrites them.
    edits: BTreeMap<u64, (Message, IndexEntry)>,
    /// Whether a message was updated since the checkpoint (the index is then flushed
    /// before the next checkpoint, which stops replaying the update).
    edited: bool,
    /// Marked by `begin_delete`: reads as gone.
    pub(crate) deleting: bool,
    /// Records and bytes past the checkpoint.
    tail_frames: usize,
    tail_bytes: u64,
    /// Whether the checkpoint must be rewritten (missing, damaged, old, or far behind).
    stale: bool,
    /// Written by 0.1 and not yet given a state record.
    legacy: bool,
}

impl ConversationLog {
    /// How many messages it holds.
    pub(crate) fn count(&self) -> u64 {
        self.record.message_count
    }

    /// Its log generation (`log-<g>`).
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Where its intact records end.
    pub(crate) fn valid_end(&self) -> u64 {
        self.valid_end
    }

    /// Whether it was written by 0.1 and awaits its [`upgrade`](Self::upgrade).
    pub(crate) fn is_legacy(&self) -> bool {
        self.legacy
    }

    /// Its directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of its log.
    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.join(log_name(self.generation))
    }

    /// The path of its seq index.
    fn index_path(&self) -> PathBuf {
        self.dir.join(index_name(self.generation))
    }

    /// Holds `message` (updated in place, at `entry`) as the newest version of its seq.
    fn put(&mut self, message: Message, entry: IndexEntry) {
        let seq = message.seq;
        if seq > self.base {
            if let Some(held) = self.tail.get_mut((seq - self.base - 1) as usize) {
                *held = (message, entry);
            }
        } else {
            self.edits.insert(seq, (message, entry));
        }
        self.edited = true;
    }
}

/// A record about to be committed.
#[derive(Debug)]
pub(crate) enum Pending {
    /// Appended messages (new positions).
    Messages(EncodedFrame, Vec<Message>),
    /// A state record.
    State(EncodedFrame),
    /// An updated message.
    Edit(EncodedFrame, Box<Message>),
}

impl Pending {
    /// The encoded record.
    fn frame(&self) -> &EncodedFrame {
        match self {
            Pending::Messages(f, _) | Pending::State(f) | Pending::Edit(f, _) => f,
        }
    }
}

/// Fails with [`CorruptData`](crate::CorruptData) when `record`'s counters cannot take `new_messages` more
/// messages, one more file and one more version: only damaged data holds such numbers,
/// and the record rules must never overflow on them.
pub(crate) fn check_headroom(
    record: &ConversationRecord,
    new_messages: u64,
    path: &Path,
) -> Result<()> {
    let room = record.message_count.checked_add(new_messages).is_some()
        && record.version.checked_add(1).is_some()
        && record.file_count.checked_add(1).is_some();
    if room {
        Ok(())
    } else {
        Err(damaged(
            path,
            format!(
                "the record's counters leave no room for a change (message_count {}, \
                 version {}, file_count {})",
                record.message_count, record.version, record.file_count
            ),
        ))
    }
}
