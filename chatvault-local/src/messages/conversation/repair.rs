//! Repairing derived files: what a read found damaged (the seq index), and, on request,
//! every derived file checked against the log and written again
//! ([`LocalMessages::repair`](crate::LocalMessages::repair)).

use std::fs::File;
use std::path::{Path, PathBuf};

use chatvault_core::backend::{Message, Result};

use super::ConversationLog;
use crate::error::{io_at, io_error, is_damage};
use crate::fsutil::{is_absent, sync_data, write_replace_unsynced};
use crate::log::{INDEX_ENTRY, IndexEntry};
use crate::messages::format::{HEADER, HeaderRead, index_name};

/// A derived file found wrong, and what is wrong with it.
pub(crate) type Finding = (PathBuf, String);

impl ConversationLog {
    /// Writes the seq index again from `all`, the log's every message with its entry (as
    /// a replay found them), after a read found the index damaged or missing. Entries are
    /// the same whoever writes them, so a shared lock suffices. Best effort: a failure
    /// only means the next read replays the log again.
    pub(super) fn repair_index(&self, all: &[(Message, IndexEntry)]) {
        let entries: Vec<IndexEntry> = all.iter().map(|(_, e)| *e).collect();
        if let Err(e) = self.write_index(1, &entries) {
            tracing::warn!(error = %e, "could not repair an index");
        }
    }

    /// Checks the derived files of the conversation in `dir` (which the caller holds
    /// locked exclusively) against its log, replayed from its start: the checkpoint
    /// (`header.json`) must be intact and agree with the log, the seq index must hold
    /// exactly the log's entries, and no unfinished record may follow the log's last
    /// one. With `fix`, writes what is wrong again from the log (an unfinished record is
    /// cut off, as the next write would).
    ///
    /// `Ok(None)` when `dir` holds no conversation, or one written by 0.1 (upgraded, with
    /// new derived files, the first time it is opened). A damaged log (the truth) is an
    /// error of kind `Corrupt`, and nothing is written.
    pub(crate) fn check_derived(
        dir: &Path,
        fix: bool,
    ) -> Result<Option<(ConversationLog, Vec<Finding>)>> {
        let header = HeaderRead::read(dir)?;
        let (present, acknowledged) = match &header {
            HeaderRead::Legacy(_) => return Ok(None),
            HeaderRead::Missing => (false, None),
            HeaderRead::Damaged => (true, None),
            HeaderRead::Checkpoint(cp) => (true, Some((cp.generation, cp.log_len))),
        };
        let Some(truth) = Self::rebuild(dir, present, acknowledged)? else {
            return Ok(None);
        };
        let mut found = Vec::new();
        if let Some(why) = truth.checkpoint_problem(dir, &header)? {
            found.push((dir.join(HEADER), why));
        }
        if let Some(why) = truth.index_problem()? {
            found.push((truth.index_path(), why));
        }
        if truth.file_len > truth.valid_end {
            found.push((
                truth.log_path(),
                format!(
                    "{} bytes of an unfinished record (a write cut short) after the last \
                     record",
                    truth.file_len - truth.valid_end
                ),
            ));
        }
        if fix && !found.is_empty() {
            truth.rewrite_derived()?;
        }
        Ok(Some((truth, found)))
    }

    /// What is wrong with the checkpoint `header`, judged against `self` (the whole log
    /// replayed); `None` when it is intact and agrees (records after it are normal).
    fn checkpoint_problem(&self, dir: &Path, header: &HeaderRead) -> Result<Option<String>> {
        let cp = match header {
            HeaderRead::Missing => return Ok(Some("missing".into())),
            HeaderRead::Damaged | HeaderRead::Legacy(_) => {
                return Ok(Some(
                    "damaged: its checksum or JSON does not check out".into(),
                ));
            }
            HeaderRead::Checkpoint(cp) => cp,
        };
        Ok(match Self::from_checkpoint(dir, cp) {
            Ok(Some(view))
                if view.generation == self.generation
                    && view.valid_end == self.valid_end
                    && view.record == self.record
                    && view.files == self.files
                    && view.deleting == self.deleting =>
            {
                None
            }
            Ok(Some(_)) => Some("disagrees with the log".into()),
            Ok(None) => Some("does not match the log".into()),
            Err(e) if is_damage(&e) => Some(format!("the log does not follow from it: {e}")),
            Err(e) => return Err(e),
        })
    }

    /// What is wrong with the seq index, judged against `self` (the whole log replayed,
    /// every entry in `tail`); `None` when it holds exactly the log's entries.
    fn index_problem(&self) -> Result<Option<String>> {
        let path = self.index_path();
        let expected = self.index_bytes();
        let stored = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if is_absent(&e) && expected.is_empty() => return Ok(None),
            Err(e) if is_absent(&e) => return Ok(Some("missing".into())),
            Err(e) => return Err(io_error("read", &path, e)),
        };
        if stored == expected {
            return Ok(None);
        }
        let width = INDEX_ENTRY as usize;
        if stored.len() != expected.len() {
            return Ok(Some(format!(
                "{} bytes where the log's {} messages take {}",
                stored.len(),
                self.tail.len(),
                expected.len()
            )));
        }
        let first = stored
            .chunks(width)
            .zip(expected.chunks(width))
            .position(|(a, b)| a != b)
            .map_or(0, |i| i + 1);
        Ok(Some(format!(
            "the entry of message {first} does not match the log"
        )))
    }

    /// The seq index's bytes as the log gives them.
    fn index_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.tail.len() * INDEX_ENTRY as usize);
        for (_, entry) in &self.tail {
            entry.encode(&mut bytes);
        }
        bytes
    }

    /// Cuts off an unfinished record, then writes the seq index (flushed: a checkpoint
    /// over updated messages relies on it) and the checkpoint again from `self`, the
    /// whole log replayed.
    fn rewrite_derived(&self) -> Result<()> {
        if self.file_len > self.valid_end {
            let path = self.log_path();
            let log = crate::fsutil::open_rw(&path)?;
            log.set_len(self.valid_end)
                .map_err(io_at("truncate", &path))?;
            sync_data(&log, &path)?;
        }
        let index = self.index_path();
        let tmp = self
            .dir
            .join(format!("{}.tmp", index_name(self.generation)));
        write_replace_unsynced(&index, &tmp, &self.index_bytes())?;
        let written = File::open(&index).map_err(io_at("open", &index))?;
        sync_data(&written, &index)?;
        self.write_checkpoint()
    }
}
