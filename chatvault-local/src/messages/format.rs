//! The file format of a conversation store beside the log records (those are in
//! [`crate::log`]) and the checkpoint (in `conversation/checkpoint.rs`, read with 0.1's
//! header by `conversation/header.rs`): the `FORMAT` file, 0.1's `header.json`, and the
//! names of a conversation's directory and of the files in it.

use std::fs;
use std::path::Path;

use chatvault_core::backend::{ConversationRecord, Error, FileAttachment, Result};
use chatvault_core::keys::{MAX_SEGMENT_LEN, encode_component};
use serde::{Deserialize, Serialize};

use crate::error::{BACKEND, CorruptData, corrupt, io_error};
use crate::fsutil::{is_not_found, unique_name, write_atomic};

/// The on-disk layout version this release writes (in `FORMAT` and every checkpoint).
///
/// Version 1 (chatvault-local 0.1) is read, and upgraded conversation by conversation the
/// first time each is opened.
pub const FORMAT_VERSION: u32 = 2;

/// The layout chatvault-local 0.1 wrote.
pub(crate) const LEGACY_FORMAT: u32 = 1;

const FORMAT_FILE: &str = "FORMAT";
pub(crate) const HEADER: &str = "header.json";
pub(crate) const HEADER_TMP: &str = "header.json.tmp";

/// The name of conversation `id`'s directory (and of its marker in `deleting/`).
pub(crate) fn dir_name(id: &str) -> String {
    encode_component(id, MAX_SEGMENT_LEN)
}

/// The name of log generation `generation`.
pub(crate) fn log_name(generation: u64) -> String {
    format!("log-{generation}")
}

/// The name of the seq index of log generation `generation`.
pub(crate) fn index_name(generation: u64) -> String {
    format!("index-{generation}")
}

/// `header.json` as chatvault-local 0.1 wrote it: the record's only copy.
#[derive(Debug, Deserialize)]
pub(crate) struct LegacyHeader {
    pub(crate) format: u32,
    pub(crate) generation: u64,
    pub(crate) log_len: u64,
    pub(crate) log_messages: u64,
    pub(crate) record: ConversationRecord,
    #[serde(default)]
    pub(crate) files: Vec<FileAttachment>,
}

/// The `FORMAT` file.
#[derive(Serialize, Deserialize)]
struct FormatFile {
    format: u32,
    layout: String,
}

/// Checks the `FORMAT` file in `root` (writing it, through a temp file in `tmp`, when it
/// is missing or 0.1's): fails if the store was written by a newer release.
pub(crate) fn check_format(root: &Path, tmp: &Path) -> Result<()> {
    let path = root.join(FORMAT_FILE);
    let write = || {
        let body = serde_json::to_vec_pretty(&FormatFile {
            format: FORMAT_VERSION,
            layout: "chatvault-local messages".into(),
        })
        .map_err(|e| Error::backend(BACKEND, e))?;
        let tmp = tmp.join(format!("format-{}", unique_name()));
        write_atomic(&path, &tmp, &body, true)
    };
    match fs::read(&path) {
        Ok(bytes) => {
            let f: FormatFile = serde_json::from_slice(&bytes)
                .map_err(|e| corrupt(CorruptData::with_source(&path, "not a format file", e)))?;
            if f.format > FORMAT_VERSION {
                return Err(corrupt(CorruptData::new(
                    &path,
                    format!(
                        "store format {} is newer than this release's {FORMAT_VERSION}",
                        f.format
                    ),
                )));
            }
            // An 0.1 store: its conversations are upgraded as they are opened, and
            // 0.1 must not open it any more.
            if f.format < FORMAT_VERSION {
                write()?;
            }
            Ok(())
        }
        Err(e) if is_not_found(&e) => write(),
        Err(e) => Err(io_error("read", &path, e)),
    }
}
