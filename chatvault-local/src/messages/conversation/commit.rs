//! Committing records to a conversation's log: what is committed ([`Pending`]) and how
//! its bytes reach the log (a torn tail cut off, the records written and flushed, or
//! nothing of them left when that fails).

use std::fs::File;
use std::path::Path;

use chatvault_core::backend::{Message, Result};

use crate::error::io_at;
use crate::fsutil::{open_rw, sync_data, write_at};
use crate::log::EncodedFrame;

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
    pub(super) fn frame(&self) -> &EncodedFrame {
        match self {
            Pending::Messages(f, _) | Pending::State(f) | Pending::Edit(f, _) => f,
        }
    }

    /// How many new positions it appends.
    pub(super) fn appended(&self) -> u64 {
        match self {
            Pending::Messages(_, m) => m.len() as u64,
            _ => 0,
        }
    }
}

/// Opens the log at `path` for a commit at `valid_end`, cutting off the torn record
/// there when the file is longer (`file_len`): only a replay that showed it torn, with
/// nothing intact after it, leaves the two apart.
pub(super) fn open_at_end(path: &Path, valid_end: u64, file_len: u64) -> Result<File> {
    let log = open_rw(path)?;
    if file_len != valid_end {
        log.set_len(valid_end).map_err(io_at("truncate", path))?;
    }
    Ok(log)
}

/// Writes `bytes` at `at` (the end of the intact records) of `log` (at `path`) and
/// flushes them: the commit point. On failure the log is cut back to `at` (best
/// effort), so that nothing of a failed commit is read later.
pub(super) fn write_flushed(log: &mut File, path: &Path, at: u64, bytes: &[u8]) -> Result<()> {
    let written = write_at(log, path, at, bytes).and_then(|()| sync_data(log, path));
    if let Err(e) = written {
        let _ = log.set_len(at).and_then(|()| log.sync_data());
        return Err(e);
    }
    Ok(())
}
