//! Opening a conversation's log: from its checkpoint and the records after it, or by a
//! replay of the whole log when the checkpoint is missing or does not check out; and
//! every message of a log, replayed.

use std::fs::File;
use std::path::Path;

use chatvault_core::backend::{Message, Result};

use super::checkpoint::Checkpoint;
use super::index::SeqIndex;
use super::scan::{Scan, log_generations};
use super::{CHECKPOINT_FRAMES, ConversationLog, check_headroom};
use crate::error::{damaged, io_at, io_error};
use crate::fsutil::is_absent;
use crate::log::IndexEntry;
use crate::messages::format::{HEADER, index_name, log_name};

/// The conversation in `dir` as checkpoint `cp` gives it, with the records after it
/// replayed; `None` when the checkpoint does not match the log.
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
        || !cp.matches(&mut log, &log_path, &SeqIndex::of(dir, cp.generation))?
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
    let mut view =
        ConversationLog::from_scan(scan, dir, cp.generation, record, file_len, base, cp.log_len);
    view.stale = stale;
    Ok(Some(view))
}

/// Replays the newest log in `dir` from its start. `None` when the directory holds no
/// conversation.
///
/// `acknowledged`: a log generation and the bytes of it an intact checkpoint accounted
/// for, which the replay must find intact.
pub(super) fn replay(
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
    Ok(Some(ConversationLog::from_scan(
        scan, dir, generation, record, file_len, 0, 0,
    )))
}

/// Every message of the log at `path`, with its index entry, replayed and checked up to
/// `valid_end`: the replay must find `count` messages ending there.
pub(super) fn replay_messages(
    path: &Path,
    valid_end: u64,
    count: u64,
) -> Result<Vec<(Message, IndexEntry)>> {
    let mut log = File::open(path).map_err(io_at("open", path))?;
    let mut scan = Scan::new(path, true);
    scan.run(&mut log, 0, valid_end)?;
    if scan.count != count || scan.valid_end != valid_end {
        return Err(damaged(
            path,
            format!(
                "the log holds {} messages; the conversation counts {count}",
                scan.count
            ),
        ));
    }
    Ok(scan.tail)
}
