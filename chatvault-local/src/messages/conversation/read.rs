//! Reading a conversation's messages: through the seq index when it checks out, by a
//! replay of the log when it does not.

use std::fs::File;

use chatvault_core::backend::{Message, Result};

use super::scan::Scan;
use super::{ConversationLog, MAX_PAGE};
use crate::error::{damaged, io_at, io_error};
use crate::fsutil::{is_not_found, read_at};
use crate::log::{INDEX_ENTRY, IndexEntry};

impl ConversationLog {
    /// Every message, in seq order: the whole log read when a checkpoint covers some.
    pub(crate) fn all_messages(&self) -> Result<Vec<Message>> {
        if self.base == 0 {
            return Ok(self.tail.iter().map(|(m, _)| m.clone()).collect());
        }
        Ok(self.scan_all()?.into_iter().map(|(m, _)| m).collect())
    }

    /// Every message of the log, with its index entry, replayed and checked.
    fn scan_all(&self) -> Result<Vec<(Message, IndexEntry)>> {
        let path = self.log_path();
        let mut log = File::open(&path).map_err(io_at("open", &path))?;
        let mut scan = Scan::new(&path, true);
        scan.run(&mut log, 0, self.valid_end)?;
        if scan.count != self.count() || scan.valid_end != self.valid_end {
            return Err(damaged(
                &path,
                format!(
                    "the log holds {} messages; the conversation counts {}",
                    scan.count,
                    self.count()
                ),
            ));
        }
        Ok(scan.tail)
    }

    /// Messages at positions `first..=last` through the index: reads the index entries,
    /// then the log one run of entries at a time (one read per run of entries that follow
    /// each other in the log: a message updated after later ones were appended, such as
    /// every streamed reply, starts a run of its own), and checks every message (CRC,
    /// seq). `None` if the index does not check out (then the caller replays the log).
    fn read_indexed(&self, first: u64, last: u64) -> Result<Option<Vec<Message>>> {
        let index_path = self.index_path();
        let mut index = match File::open(&index_path) {
            Ok(index) => index,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(io_error("open", &index_path, e)),
        };
        let index_len = index.metadata().map_err(io_at("stat", &index_path))?.len();
        let (Some(needed), Some(offset), Some(len)) = (
            last.checked_mul(INDEX_ENTRY),
            (first - 1).checked_mul(INDEX_ENTRY),
            (last - first + 1).checked_mul(INDEX_ENTRY),
        ) else {
            return Ok(None);
        };
        if index_len < needed {
            return Ok(None);
        }
        let raw = read_at(&mut index, &index_path, offset, len)?;
        let entries: Vec<IndexEntry> = raw
            .chunks_exact(INDEX_ENTRY as usize)
            .filter_map(IndexEntry::decode)
            .collect();
        if entries.len() as u64 != last - first + 1
            || entries
                .iter()
                .any(|e| e.len == 0 || e.end().is_none_or(|end| end > self.valid_end))
        {
            return Ok(None);
        }
        let log_path = self.log_path();
        let mut log = File::open(&log_path).map_err(io_at("open", &log_path))?;
        let mut out = Vec::with_capacity(entries.len());
        let mut seq = first;
        for run in log_runs(&entries) {
            let (Some(head), Some(end)) = (run.first(), run.last().and_then(IndexEntry::end))
            else {
                return Ok(None);
            };
            let start = head.offset;
            let span = read_at(&mut log, &log_path, start, end - start)?;
            for e in run {
                let from = (e.offset - start) as usize;
                let bytes = &span[from..from + e.len as usize];
                if crc32fast::hash(bytes) != e.crc {
                    return Ok(None);
                }
                match serde_json::from_slice::<Message>(bytes) {
                    Ok(m) if m.seq == seq => out.push(m),
                    _ => return Ok(None),
                }
                seq += 1;
            }
        }
        Ok(Some(out))
    }

    /// Messages at positions `first..=last` (1-based, within the count).
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
            match self.read_indexed(first, hi)? {
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
                    let all = self.scan_all()?;
                    self.repair_index(&all);
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
}

/// `entries` cut into runs that each cover one stretch of the log: an entry starts a new
/// run when it does not come after the previous one in the log.
fn log_runs(entries: &[IndexEntry]) -> impl Iterator<Item = &[IndexEntry]> {
    entries.chunk_by(|a, b| a.end().is_some_and(|end| end <= b.offset))
}
