//! The seq index of a log generation (`index-<g>`): one fixed-width entry per position,
//! saying where in the log that message's newest version is. Derived from the log:
//! written without flushing except where a checkpoint relies on it, checked every time
//! it is read, and written again from the log when it does not check out.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use chatvault_core::backend::{Message, Result};

use crate::error::{damaged, io_at, io_error};
use crate::fsutil::{
    is_absent, is_not_found, read_at, sync_data, write_at, write_replace_unsynced,
};
use crate::log::{INDEX_ENTRY, IndexEntry};
use crate::messages::format::index_name;

/// The seq index of one log generation, by its path.
#[derive(Debug)]
pub(super) struct SeqIndex {
    /// `index-<g>` in the conversation's directory.
    path: PathBuf,
    /// Where it is written whole before being renamed into place.
    tmp: PathBuf,
}

impl SeqIndex {
    /// The index of log generation `generation` in conversation directory `dir`.
    pub(super) fn of(dir: &Path, generation: u64) -> SeqIndex {
        SeqIndex {
            path: dir.join(index_name(generation)),
            tmp: dir.join(format!("{}.tmp", index_name(generation))),
        }
    }

    /// Its path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `entries` for positions `first..` in place, creating the file if needed
    /// (not flushed).
    pub(super) fn write(&self, first: u64, entries: &[IndexEntry]) -> Result<()> {
        let offset = (first - 1)
            .checked_mul(INDEX_ENTRY)
            .ok_or_else(|| damaged(&self.path, "an index offset overflows"))?;
        let bytes = encode(entries);
        let mut index = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .map_err(io_at("open", &self.path))?;
        write_at(&mut index, &self.path, offset, &bytes)
    }

    /// Flushes what was written to it.
    pub(super) fn sync(&self) -> Result<()> {
        let index = File::open(&self.path).map_err(io_at("open", &self.path))?;
        sync_data(&index, &self.path)
    }

    /// Replaces it whole with `entries` (through its temp file), flushed.
    pub(super) fn replace(&self, entries: &[IndexEntry]) -> Result<()> {
        write_replace_unsynced(&self.path, &self.tmp, &encode(entries))?;
        self.sync()
    }

    /// The entry of position `position` (1-based); `None` when it cannot be read or does
    /// not decode (the caller then does without the index).
    pub(super) fn entry(&self, position: u64) -> Option<IndexEntry> {
        let at = position
            .checked_sub(1)
            .and_then(|p| p.checked_mul(INDEX_ENTRY))?;
        let mut index = File::open(&self.path).ok()?;
        let mut raw = [0u8; INDEX_ENTRY as usize];
        index
            .seek(SeekFrom::Start(at))
            .and_then(|_| index.read_exact(&mut raw))
            .ok()?;
        IndexEntry::decode(&raw)
    }

    /// Messages at positions `first..=last` (`1 <= first <= last`) of the log at
    /// `log_path`, whose intact records end at `valid_end`, through the index: reads the
    /// index entries, then the log one run of entries at a time (one read per run of
    /// entries that follow each other in the log: a message updated after later ones
    /// were appended, such as every streamed reply, starts a run of its own), and checks
    /// every message (CRC, seq). `None` if the index does not check out (then the caller
    /// replays the log).
    pub(super) fn read(
        &self,
        log_path: &Path,
        valid_end: u64,
        first: u64,
        last: u64,
    ) -> Result<Option<Vec<Message>>> {
        let Some(entries) = self.entries(valid_end, first, last)? else {
            return Ok(None);
        };
        let mut log = File::open(log_path).map_err(io_at("open", log_path))?;
        let mut out = Vec::with_capacity(entries.len());
        let mut seq = first;
        for run in log_runs(&entries) {
            let (Some(head), Some(end)) = (run.first(), run.last().and_then(IndexEntry::end))
            else {
                return Ok(None);
            };
            let start = head.offset;
            let span = read_at(&mut log, log_path, start, end - start)?;
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

    /// The entries of positions `first..=last`, each within the log's intact records
    /// (ending at `valid_end`); `None` when the index is missing, short, or holds an
    /// entry that is not one.
    fn entries(&self, valid_end: u64, first: u64, last: u64) -> Result<Option<Vec<IndexEntry>>> {
        let mut index = match File::open(&self.path) {
            Ok(index) => index,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(io_error("open", &self.path, e)),
        };
        let index_len = index.metadata().map_err(io_at("stat", &self.path))?.len();
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
        let raw = read_at(&mut index, &self.path, offset, len)?;
        let entries: Vec<IndexEntry> = raw
            .chunks_exact(INDEX_ENTRY as usize)
            .filter_map(IndexEntry::decode)
            .collect();
        if entries.len() as u64 != last - first + 1
            || entries
                .iter()
                .any(|e| e.len == 0 || e.end().is_none_or(|end| end > valid_end))
        {
            return Ok(None);
        }
        Ok(Some(entries))
    }

    /// What is wrong with it, judged against `expected`, the log's every entry (as a
    /// replay of the whole log found them); `None` when it holds exactly those.
    pub(super) fn problem(&self, expected: &[IndexEntry]) -> Result<Option<String>> {
        let want = encode(expected);
        let stored = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if is_absent(&e) && want.is_empty() => return Ok(None),
            Err(e) if is_absent(&e) => return Ok(Some("missing".into())),
            Err(e) => return Err(io_error("read", &self.path, e)),
        };
        if stored == want {
            return Ok(None);
        }
        let width = INDEX_ENTRY as usize;
        if stored.len() != want.len() {
            return Ok(Some(format!(
                "{} bytes where the log's {} messages take {}",
                stored.len(),
                expected.len(),
                want.len()
            )));
        }
        let first = stored
            .chunks(width)
            .zip(want.chunks(width))
            .position(|(a, b)| a != b)
            .map_or(0, |i| i + 1);
        Ok(Some(format!(
            "the entry of message {first} does not match the log"
        )))
    }
}

/// The bytes of `entries`, one after the other.
fn encode(entries: &[IndexEntry]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(entries.len() * INDEX_ENTRY as usize);
    for e in entries {
        e.encode(&mut bytes);
    }
    bytes
}

/// `entries` cut into runs that each cover one stretch of the log: an entry starts a new
/// run when it does not come after the previous one in the log.
fn log_runs(entries: &[IndexEntry]) -> impl Iterator<Item = &[IndexEntry]> {
    entries.chunk_by(|a, b| a.end().is_some_and(|end| end <= b.offset))
}
