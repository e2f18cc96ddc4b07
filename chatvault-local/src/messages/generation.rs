//! Writing a conversation's log whole, as a new generation: for a new conversation, for a
//! `save` (which replaces one), and for the rewrite after a redaction (which leaves out
//! what later records superseded; see [`rewrite`](super::rewrite)).
//!
//! A new generation of an existing conversation is written under a temporary name
//! ([`write_next`]), renamed into place ([`switch_to`]: the commit point, after which
//! readers open it, the newest), then the older ones are removed ([`remove_older`]).

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use chatvault_core::backend::{Error, Result, StoredConversation};

use super::conversation::Checkpoint;
use super::conversation::scan::log_generations;
use super::format::{FORMAT_VERSION, HEADER, HEADER_TMP, index_name, log_name};
use crate::error::{damaged, io_at, io_error};
use crate::fsutil::{TempPath, is_absent, sync_all, sync_dir, write_replace_unsynced};
use crate::log::{encode_frame, encode_state, header_crc};

/// Messages per log record when a whole conversation is written.
const SAVE_BATCH: usize = 1000;

/// Encodes a whole conversation as a log: its messages, then a state record (whose
/// `message_count` the replay checks against them). Returns the log's bytes, its
/// index's bytes, and the checkpoint of generation `generation` over it.
///
/// Fails with `InvalidInput` unless the messages have seq 1, 2, 3, ... and the
/// record counts them: what is written must read back.
fn encode_whole(
    conversation: &StoredConversation,
    generation: u64,
) -> Result<(Vec<u8>, Vec<u8>, Checkpoint)> {
    let record = &conversation.record;
    if conversation.messages.len() as u64 != record.message_count
        || conversation
            .messages
            .iter()
            .zip(1u64..)
            .any(|(m, seq)| m.seq != seq)
    {
        return Err(Error::invalid_input(
            "conversation",
            "its messages must have seq 1, 2, 3, ... and its message_count must be \
             their number",
        ));
    }
    let mut log = Vec::new();
    let mut index = Vec::new();
    for chunk in conversation.messages.chunks(SAVE_BATCH) {
        let frame = encode_frame(record.last_active, chunk)?;
        for e in frame.entries(log.len() as u64) {
            e.encode(&mut index);
        }
        log.extend_from_slice(&frame.bytes);
    }
    let state = encode_state(
        record.last_active,
        record,
        &conversation.files,
        conversation.deleting,
    )?;
    let last_frame = header_crc(&state.bytes).map(|(_, crc)| (log.len() as u64, crc));
    log.extend_from_slice(&state.bytes);
    let cp = Checkpoint {
        format: FORMAT_VERSION,
        generation,
        log_len: log.len() as u64,
        last_frame,
        record: record.clone(),
        files: conversation.files.clone(),
        deleting: conversation.deleting,
    };
    Ok((log, index, cp))
}

/// Writes a whole conversation as generation `generation` in `dir`, its log under the
/// name `log_file` (flushed when `flush`), its index and checkpoint (never flushed).
///
/// In a `private` directory (one being built in `tmp/`) the checkpoint is written in
/// place, and a bulk import (`flush` off) leaves the index out: both are derived, the
/// first read writes them.
pub(super) fn write_whole(
    dir: &Path,
    generation: u64,
    conversation: &StoredConversation,
    log_file: &str,
    flush: bool,
    private: bool,
) -> Result<()> {
    let (log, index, cp) = encode_whole(conversation, generation)?;
    let log_path = dir.join(log_file);
    let mut guard = TempPath::new(log_path.clone());
    let mut file = File::create(&log_path).map_err(io_at("create", &log_path))?;
    file.write_all(&log).map_err(io_at("write", &log_path))?;
    if flush {
        sync_all(&file, &log_path)?;
    }
    if flush && !index.is_empty() {
        let index_path = dir.join(index_name(generation));
        fs::write(&index_path, &index).map_err(io_at("write", &index_path))?;
    }
    let checkpoint = cp.encode()?;
    if private {
        let path = dir.join(HEADER);
        fs::write(&path, &checkpoint).map_err(io_at("write", &path))?;
    } else {
        write_replace_unsynced(&dir.join(HEADER), &dir.join(HEADER_TMP), &checkpoint)?;
    }
    guard.disarm();
    Ok(())
}

/// The name generation `generation`'s log is written under until [`switch_to`] renames
/// it into place (no reader opens it: it is no `log-<g>`).
fn tmp_log_name(generation: u64) -> String {
    format!("{}.tmp", log_name(generation))
}

/// Writes `conversation` whole as the next log generation (one past the newest) of the
/// conversation in `dir`, which the caller holds locked exclusively: its log under a
/// temporary name, flushed; its index and checkpoint (derived) unflushed. Returns the
/// generation, which [`switch_to`] makes the conversation's.
pub(super) fn write_next(dir: &Path, conversation: &StoredConversation) -> Result<u64> {
    let generation = log_generations(dir)?
        .into_iter()
        .max()
        .unwrap_or(0)
        .checked_add(1)
        .ok_or_else(|| damaged(&dir.join(HEADER), "its log generation overflows"))?;
    write_whole(
        dir,
        generation,
        conversation,
        &tmp_log_name(generation),
        true,
        false,
    )?;
    Ok(generation)
}

/// Renames the log of generation `generation`, written by [`write_next`], into place and
/// flushes the directory: the commit point. From then on every reader opens it (the
/// newest generation wins over whatever an older checkpoint names).
pub(super) fn switch_to(dir: &Path, generation: u64) -> Result<()> {
    let log_path = dir.join(log_name(generation));
    fs::rename(dir.join(tmp_log_name(generation)), &log_path)
        .map_err(io_at("rename into place", &log_path))?;
    sync_dir(dir)
}

/// Removes (without flushing the directory) the logs and indexes of the generations
/// before `newest` in `dir`, and the temporary logs and indexes that interrupted writes
/// left. The caller holds the conversation locked exclusively, so none is being written.
pub(super) fn remove_older(dir: &Path, newest: u64) -> Result<()> {
    let entries = fs::read_dir(dir).map_err(io_at("list", dir))?;
    for entry in entries {
        let entry = entry.map_err(io_at("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let Some(rest) = name
            .strip_prefix("log-")
            .or_else(|| name.strip_prefix("index-"))
        else {
            continue;
        };
        let old = match rest.strip_suffix(".tmp") {
            Some(g) => g.parse::<u64>().is_ok(),
            None => rest.parse::<u64>().is_ok_and(|g| g < newest),
        };
        if !old {
            continue;
        }
        let path = entry.path();
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if is_absent(&e) => {}
            Err(e) => return Err(io_error("remove", &path, e)),
        }
    }
    Ok(())
}
