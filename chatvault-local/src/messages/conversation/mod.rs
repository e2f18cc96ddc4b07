//! The log of one conversation: its files (log, seq index, checkpoint, lock) and what is
//! done to them. [`ConversationLog`] is a conversation as read under its lock, and owns
//! that state; its methods (all here) open it ([`load`](ConversationLog::load)), commit
//! records to it, read its messages, upgrade an 0.1 one and check its derived files,
//! through the parts that each own one file or one step: [`open`] (from the checkpoint
//! and the records after it, or by a replay: [`scan`]), [`commit`] (records reaching
//! the log), [`index`] (the seq index), [`checkpoint`] (`header.json`), [`header`]
//! (`header.json` as read: a checkpoint or 0.1's header), [`legacy`] (0.1's
//! conversations and their upgrade), [`repair`] (the one step through which a read, or
//! `LocalMessages::repair`, writes damaged derived files again) and [`lock`] (the lock
//! file).

mod checkpoint;
mod commit;
mod header;
mod index;
mod legacy;
pub(crate) mod lock;
mod open;
mod repair;
pub(crate) mod scan;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chatvault_core::backend::{
    ConversationId, ConversationRecord, FileAttachment, Message, Result,
};

use super::format::{FORMAT_VERSION, log_name};
use crate::error::{damaged, is_damage};
use crate::log::{IndexEntry, header_crc};
use header::HeaderRead;
use index::SeqIndex;
use scan::Scan;

pub(crate) use checkpoint::Checkpoint;
pub(crate) use commit::Pending;
use repair::Finding;

/// The most messages one [`MessagesBackend::messages`](chatvault_core::MessagesBackend::messages)
/// call returns; a longer range gets a `next_cursor` to continue from.
pub const MAX_PAGE: usize = 1000;

/// A writer rewrites the checkpoint once this many records follow it...
const CHECKPOINT_FRAMES: usize = 32;
/// ... or this many bytes (what a reader replays is bounded by this plus one record).
const CHECKPOINT_BYTES: u64 = 64 << 10;

/// A conversation as read under its lock: its record, attachments and deletion mark,
/// where its log ends, and the messages its checkpoint does not cover.
#[derive(Debug)]
pub(crate) struct ConversationLog {
    /// Its directory.
    dir: PathBuf,
    /// Its log generation (`log-<g>`, `index-<g>`).
    generation: u64,
    /// Its record, as of `valid_end`.
    pub(crate) record: ConversationRecord,
    /// Its attachments, as of `valid_end`.
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
    /// Reads a locked conversation. `None` when there is none in `dir`, or it holds
    /// another id (ids that differ only in case on a case-insensitive file system).
    pub(crate) fn load(dir: &Path, id: Option<&ConversationId>) -> Result<Option<ConversationLog>> {
        let view = match HeaderRead::read(dir)? {
            HeaderRead::Checkpoint(cp) => match open::from_checkpoint(dir, &cp) {
                Ok(Some(view)) => Some(view),
                // An intact checkpoint that does not match the log, or records after it
                // that do not follow from it: the checkpoint is stale or wrong, or the log
                // is damaged; replaying the whole log tells which. What the checkpoint
                // accounted for was acknowledged: the replay must find it.
                Ok(None) => {
                    tracing::warn!(conversation = %dir.display(), "checkpoint does not match the log: replaying the log");
                    open::replay(dir, true, Some((cp.generation, cp.log_len)))?
                }
                Err(e) if is_damage(&e) => {
                    tracing::warn!(conversation = %dir.display(), error = %e, "log does not follow from the checkpoint: replaying the log");
                    open::replay(dir, true, Some((cp.generation, cp.log_len)))?
                }
                Err(e) => return Err(e),
            },
            HeaderRead::Legacy(h) => {
                let mut view = legacy::open(dir, *h)?;
                view.legacy = true;
                Some(view)
            }
            HeaderRead::Missing => open::replay(dir, false, None)?,
            HeaderRead::Damaged => {
                tracing::warn!(conversation = %dir.display(), "damaged checkpoint: replaying the log");
                open::replay(dir, true, None)?
            }
        };
        Ok(view.filter(|v| id.is_none_or(|id| *id == v.record.id)))
    }

    /// The conversation a replay (`scan`) read, whose record is `record`: log generation
    /// `generation` in `dir`, `file_len` bytes long, replayed from byte `start` on, with
    /// positions `1..=base` before that (read through the index). Its checkpoint is due.
    fn from_scan(
        scan: Scan<'_>,
        dir: &Path,
        generation: u64,
        record: ConversationRecord,
        file_len: u64,
        base: u64,
        start: u64,
    ) -> ConversationLog {
        ConversationLog {
            dir: dir.to_owned(),
            generation,
            record,
            files: scan.files,
            valid_end: scan.valid_end,
            file_len,
            last_frame: scan.last_frame,
            base,
            tail_bytes: scan.valid_end - start,
            tail_frames: scan.frames,
            tail: scan.tail,
            edits: scan.edits,
            edited: scan.edited,
            deleting: scan.deleting,
            stale: true,
            legacy: false,
        }
    }

    /// Checks the derived files of the conversation in `dir` against its log, and with
    /// `fix` writes the wrong ones again: see [`repair::check`]. The caller holds `dir`
    /// locked exclusively.
    pub(crate) fn check_derived(
        dir: &Path,
        fix: bool,
    ) -> Result<Option<(ConversationLog, Vec<Finding>)>> {
        repair::check(dir, fix)
    }

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

    /// Its seq index.
    fn index(&self) -> SeqIndex {
        SeqIndex::of(&self.dir, self.generation)
    }

    /// The index entries of the messages it holds in memory: every message's, for a log
    /// replayed from its start.
    fn entries(&self) -> Vec<IndexEntry> {
        self.tail.iter().map(|(_, e)| *e).collect()
    }

    /// Bytes of an unfinished record (a write cut short) after its last intact one.
    fn unfinished(&self) -> u64 {
        self.file_len.saturating_sub(self.valid_end)
    }

    /// Whether `other` reads as the same state: same generation, same end, same record,
    /// attachments and deletion mark.
    fn same_state(&self, other: &ConversationLog) -> bool {
        self.generation == other.generation
            && self.valid_end == other.valid_end
            && self.record == other.record
            && self.files == other.files
            && self.deleting == other.deleting
    }

    /// The checkpoint of its state at the end of its log.
    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            format: FORMAT_VERSION,
            generation: self.generation,
            log_len: self.valid_end,
            last_frame: self.last_frame,
            record: self.record.clone(),
            files: self.files.clone(),
            deleting: self.deleting,
        }
    }

    /// Every message, in seq order: the whole log read when a checkpoint covers some.
    pub(crate) fn all_messages(&self) -> Result<Vec<Message>> {
        if self.base == 0 {
            return Ok(self.tail.iter().map(|(m, _)| m.clone()).collect());
        }
        let all = open::replay_messages(&self.log_path(), self.valid_end, self.count())?;
        Ok(all.into_iter().map(|(m, _)| m).collect())
    }

    /// Messages at positions `first..=last` (1-based, within the count): those the
    /// checkpoint covers through the seq index (or, when it does not check out, a replay
    /// of the log, which repairs it), the later ones from memory.
    pub(crate) fn read_positions(&self, first: u64, last: u64) -> Result<Vec<Message>> {
        if first == 0 || first > last || last > self.count() {
            return Err(damaged(
                &self.log_path(),
                format!("messages {first}..={last} of {} asked for", self.count()),
            ));
        }
        let base = self.base;
        let mut out = Vec::with_capacity((last - first + 1).min(MAX_PAGE as u64) as usize);
        if first <= base {
            let hi = last.min(base);
            let index = self.index();
            match index.read(&self.log_path(), self.valid_end, first, hi)? {
                Some(messages) => {
                    out.extend(messages);
                    // Updated since the checkpoint: newer than what the index points at.
                    for (&seq, (m, _)) in self.edits.range(first..=hi) {
                        out[(seq - first) as usize] = m.clone();
                    }
                }
                None => {
                    // A damaged or missing index: the log is the truth.
                    tracing::warn!(conversation = %self.dir.display(), "index does not match the log: replaying the log");
                    let all =
                        open::replay_messages(&self.log_path(), self.valid_end, self.count())?;
                    repair::index_after_read(&index, &all);
                    out.extend(
                        all[(first - 1) as usize..hi as usize]
                            .iter()
                            .map(|(m, _)| m.clone()),
                    );
                }
            }
        }
        for pos in first.max(base + 1)..=last {
            out.push(self.tail[(pos - base - 1) as usize].0.clone());
        }
        Ok(out)
    }

    /// Writes records at the end of a locked conversation's log and flushes them: the
    /// commit point of every change, and the only flush of an append. `self.record`,
    /// `self.files` and `self.deleting` must already be the state after them.
    ///
    /// Cuts off a torn tail first (only one `Scan` showed to be torn: nothing intact
    /// after it). Then writes the new messages' index entries and, when it is due, the
    /// checkpoint: both derived, neither flushed.
    pub(crate) fn commit(&mut self, pending: Vec<Pending>) -> Result<()> {
        let log_path = self.log_path();
        let mut log = commit::open_at_end(&log_path, self.valid_end, self.file_len)?;
        self.file_len = self.valid_end;
        let total: usize = pending.iter().map(|p| p.frame().bytes.len()).sum();
        let end = self
            .valid_end
            .checked_add(total as u64)
            .ok_or_else(|| damaged(&log_path, "the log's length overflows"))?;
        let mut bytes = Vec::with_capacity(total);
        let mut starts = Vec::with_capacity(pending.len());
        for p in &pending {
            starts.push(self.valid_end + bytes.len() as u64);
            bytes.extend_from_slice(&p.frame().bytes);
        }
        commit::write_flushed(&mut log, &log_path, self.valid_end, &bytes)?;
        let appended: u64 = pending.iter().map(Pending::appended).sum();
        let first_new = self.count() - appended + 1;
        let mut entries = Vec::new();
        let mut edited = Vec::new();
        for (p, start) in pending.into_iter().zip(starts) {
            if let Some((_, crc)) = header_crc(&p.frame().bytes) {
                self.last_frame = Some((start, crc));
            }
            self.tail_frames += 1;
            match p {
                Pending::Messages(frame, messages) => {
                    let frame_entries: Vec<IndexEntry> = frame.entries(start).collect();
                    entries.extend(frame_entries.iter().copied());
                    self.tail.extend(messages.into_iter().zip(frame_entries));
                }
                Pending::State(_) => {}
                Pending::Edit(frame, message) => {
                    if let Some(entry) = frame.entries(start).next() {
                        edited.push((message.seq, entry));
                        self.put(*message, entry);
                    }
                }
            }
        }
        self.tail_bytes += total as u64;
        self.valid_end = end;
        self.file_len = end;
        let index = self.index();
        if !entries.is_empty()
            && let Err(e) = index.write(first_new, &entries)
        {
            tracing::warn!(error = %e, "could not write index entries; reads fall back to the log");
        }
        for (seq, entry) in edited {
            if let Err(e) = index.write(seq, &[entry]) {
                tracing::warn!(error = %e, "could not write an index entry");
            }
        }
        if self.stale
            || self.tail_frames >= CHECKPOINT_FRAMES
            || self.tail_bytes >= CHECKPOINT_BYTES
        {
            self.write_checkpoint();
        }
        Ok(())
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

    /// Rewrites the checkpoint of a locked view (and the index entries of its tail).
    /// Best effort: a failure only means more replaying for later readers.
    fn write_checkpoint(&mut self) {
        let index = self.index();
        let result = (|| {
            if !self.tail.is_empty() {
                let entries: Vec<IndexEntry> = self.tail.iter().map(|(_, e)| *e).collect();
                index.write(self.base + 1, &entries)?;
            }
            for (&seq, (_, entry)) in &self.edits {
                index.write(seq, &[*entry])?;
            }
            if self.edited {
                // The checkpoint stops the replay of these updates: from then on only the
                // index says where an updated message's newest version is, so it must be
                // on disk first.
                index.sync()?;
            }
            self.checkpoint().write(&self.dir)
        })();
        match result {
            Ok(()) => {
                self.base = self.count();
                self.tail.clear();
                self.edits.clear();
                self.edited = false;
                self.tail_frames = 0;
                self.tail_bytes = 0;
                self.stale = false;
            }
            Err(e) => tracing::warn!(error = %e, "could not write a checkpoint"),
        }
    }

    /// Gives an 0.1 conversation a state record, so that its log alone describes it.
    pub(crate) fn upgrade(&mut self) -> Result<()> {
        let record = legacy::upgrade_record(&self.record, &self.files)?;
        self.commit(vec![record])?;
        self.legacy = false;
        Ok(())
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
