//! Committing records to a conversation's log, and writing what is derived from them
//! (index entries, checkpoints).

use std::fs::{File, OpenOptions};

use chatvault_core::backend::Result;

use super::{CHECKPOINT_BYTES, CHECKPOINT_FRAMES, ConversationLog, Pending};
use crate::error::{damaged, io_at};
use crate::fsutil::{open_rw, sync_data, write_at, write_replace_unsynced};
use crate::log::{INDEX_ENTRY, IndexEntry, header_crc};
use crate::messages::format::{Checkpoint, FORMAT_VERSION, HEADER, HEADER_TMP};

impl ConversationLog {
    /// Writes records at the end of a locked conversation's log and flushes them: the
    /// commit point of every change, and the only flush of an append. `self.record`,
    /// `self.files` and `self.deleting` must already be the state after them.
    ///
    /// Cuts off a torn tail first (only one `Scan` showed to be torn: nothing intact
    /// after it). Then writes the new messages' index entries and, when it is due, the
    /// checkpoint: both derived, neither flushed.
    pub(crate) fn commit(&mut self, pending: Vec<Pending>) -> Result<()> {
        let log_path = self.log_path();
        let mut log = open_rw(&log_path)?;
        if self.file_len != self.valid_end {
            log.set_len(self.valid_end)
                .map_err(io_at("truncate", &log_path))?;
            self.file_len = self.valid_end;
        }
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
        let written = write_at(&mut log, &log_path, self.valid_end, &bytes)
            .and_then(|()| sync_data(&log, &log_path));
        if let Err(e) = written {
            // Nothing of a failed commit may be read later.
            let _ = log.set_len(self.valid_end).and_then(|()| log.sync_data());
            return Err(e);
        }
        let appended: u64 = pending
            .iter()
            .map(|p| match p {
                Pending::Messages(_, m) => m.len() as u64,
                _ => 0,
            })
            .sum();
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
        if !entries.is_empty()
            && let Err(e) = self.write_index(first_new, &entries)
        {
            tracing::warn!(error = %e, "could not write index entries; reads fall back to the log");
        }
        for (seq, entry) in edited {
            if let Err(e) = self.write_index(seq, &[entry]) {
                tracing::warn!(error = %e, "could not write an index entry");
            }
        }
        if self.stale
            || self.tail_frames >= CHECKPOINT_FRAMES
            || self.tail_bytes >= CHECKPOINT_BYTES
        {
            self.checkpoint();
        }
        Ok(())
    }

    /// Writes index entries for positions `first..` (derived: not flushed).
    pub(super) fn write_index(&self, first: u64, entries: &[IndexEntry]) -> Result<()> {
        let index_path = self.index_path();
        let offset = (first - 1)
            .checked_mul(INDEX_ENTRY)
            .ok_or_else(|| damaged(&index_path, "an index offset overflows"))?;
        let mut bytes = Vec::with_capacity(entries.len() * INDEX_ENTRY as usize);
        for e in entries {
            e.encode(&mut bytes);
        }
        let mut index = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&index_path)
            .map_err(io_at("open", &index_path))?;
        write_at(&mut index, &index_path, offset, &bytes)
    }

    /// Writes the checkpoint of the view's state at the end of its log (derived: not
    /// flushed). The index entries it stops the replay of must be on disk first.
    pub(super) fn write_checkpoint(&self) -> Result<()> {
        let cp = Checkpoint {
            format: FORMAT_VERSION,
            generation: self.generation,
            log_len: self.valid_end,
            last_frame: self.last_frame,
            record: self.record.clone(),
            files: self.files.clone(),
            deleting: self.deleting,
        };
        write_replace_unsynced(
            &self.dir.join(HEADER),
            &self.dir.join(HEADER_TMP),
            &cp.encode()?,
        )
    }

    /// Rewrites the checkpoint of a locked view (and the index entries of its tail).
    /// Best effort: a failure only means more replaying for later readers.
    fn checkpoint(&mut self) {
        let result = (|| {
            if !self.tail.is_empty() {
                let entries: Vec<IndexEntry> = self.tail.iter().map(|(_, e)| *e).collect();
                self.write_index(self.base + 1, &entries)?;
            }
            for (&seq, (_, entry)) in &self.edits {
                self.write_index(seq, &[*entry])?;
            }
            if self.edited {
                // The checkpoint stops the replay of these updates: from then on only the
                // index says where an updated message's newest version is, so it must be
                // on disk first.
                let index_path = self.index_path();
                let index = File::open(&index_path).map_err(io_at("open", &index_path))?;
                sync_data(&index, &index_path)?;
            }
            self.write_checkpoint()
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
}
