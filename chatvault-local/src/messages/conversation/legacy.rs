//! Conversations written by chatvault-local 0.1: opening one (its header is the record's
//! only copy), and the state record that upgrades it.

use std::fs::File;
use std::path::Path;

use chatvault_core::backend::{ConversationRecord, FileAttachment, Result};

use super::ConversationLog;
use super::commit::Pending;
use super::scan::Scan;
use crate::error::{damaged, io_at};
use crate::log::encode_state;
use crate::messages::format::{HEADER, LegacyHeader, index_name, log_name};

/// Opens the conversation in `dir` written by 0.1, whose header is `h`: the header is
/// checked against the log before it is believed.
pub(super) fn open(dir: &Path, h: LegacyHeader) -> Result<ConversationLog> {
    let header_path = dir.join(HEADER);
    let log_path = dir.join(log_name(h.generation));
    let mut log = File::open(&log_path).map_err(io_at("open", &log_path))?;
    let file_len = log.metadata().map_err(io_at("stat", &log_path))?.len();
    if h.log_len > file_len {
        return Err(damaged(
            &header_path,
            format!(
                "it accounts for {} bytes of a {file_len}-byte log",
                h.log_len
            ),
        ));
    }
    let mut scan = Scan::new(&log_path, false);
    scan.run(&mut log, 0, h.log_len)?;
    if scan.valid_end != h.log_len
        || scan.count != h.log_messages
        || h.record.message_count != h.log_messages
    {
        return Err(damaged(
            &header_path,
            format!(
                "it counts {} messages in {} bytes; the log holds {} in {}",
                h.log_messages, h.log_len, scan.count, scan.valid_end
            ),
        ));
    }
    scan.record = Some(h.record);
    scan.files = h.files;
    scan.keep = true;
    scan.start_count = scan.count;
    scan.index = Some(dir.join(index_name(h.generation)));
    scan.frames = 0;
    scan.run(&mut log, h.log_len, file_len)?;
    let Some(record) = scan.record.take() else {
        return Err(damaged(&header_path, "no record"));
    };
    Ok(ConversationLog::from_scan(
        scan,
        dir,
        h.generation,
        record,
        file_len,
        h.log_messages,
        h.log_len,
    ))
}

/// The record that upgrades an 0.1 conversation (`record`, `files`): its state, so that
/// its log alone describes it.
pub(super) fn upgrade_record(
    record: &ConversationRecord,
    files: &[FileAttachment],
) -> Result<Pending> {
    let frame = encode_state(record.last_active, record, files, false)?;
    Ok(Pending::State(frame))
}
