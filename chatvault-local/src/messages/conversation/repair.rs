//! Repairing a conversation's derived files (the seq index, the checkpoint), the one
//! step every repair goes through: what a read found damaged (reads do not write
//! otherwise), and, on request, every derived file checked against the log and written
//! again ([`LocalMessages::repair`](crate::LocalMessages::repair)).

use std::path::{Path, PathBuf};

use chatvault_core::backend::{Message, Result};

use super::ConversationLog;
use super::checkpoint::Checkpoint;
use super::header::HeaderRead;
use super::index::SeqIndex;
use super::open;
use crate::error::{io_at, is_damage};
use crate::fsutil::{open_rw, sync_data};
use crate::log::IndexEntry;
use crate::messages::format::HEADER;

/// A derived file found wrong, and what is wrong with it.
pub(super) type Finding = (PathBuf, String);

/// Writes `index` again from `all`, the log's every message with its entry (as a replay
/// found them), after a read found it damaged or missing. Entries are the same whoever
/// writes them, so a shared lock suffices. Best effort: a failure only means the next
/// read replays the log again.
pub(super) fn index_after_read(index: &SeqIndex, all: &[(Message, IndexEntry)]) {
    let entries: Vec<IndexEntry> = all.iter().map(|(_, e)| *e).collect();
    if let Err(e) = index.write(1, &entries) {
        tracing::warn!(error = %e, "could not repair an index");
    }
}

/// Checks the derived files of the conversation in `dir` (which the caller holds locked
/// exclusively) against its log, replayed from its start: the checkpoint (`header.json`)
/// must be intact and agree with the log, the seq index must hold exactly the log's
/// entries, and no unfinished record may follow the log's last one. With `fix`, writes
/// what is wrong again from the log (an unfinished record is cut off, as the next write
/// would).
///
/// `Ok(None)` when `dir` holds no conversation, or one written by 0.1 (upgraded, with
/// new derived files, the first time it is opened). A damaged log (the truth) is an
/// error of kind `Corrupt`, and nothing is written.
pub(super) fn check(dir: &Path, fix: bool) -> Result<Option<(ConversationLog, Vec<Finding>)>> {
    let header = HeaderRead::read(dir)?;
    let (present, acknowledged) = match &header {
        HeaderRead::Legacy(_) => return Ok(None),
        HeaderRead::Missing => (false, None),
        HeaderRead::Damaged => (true, None),
        HeaderRead::Checkpoint(cp) => (true, Some((cp.generation, cp.log_len))),
    };
    let Some(truth) = open::replay(dir, present, acknowledged)? else {
        return Ok(None);
    };
    let index = truth.index();
    let entries = truth.entries();
    let mut found = Vec::new();
    if let Some(why) = checkpoint_problem(dir, &header, &truth)? {
        found.push((dir.join(HEADER), why));
    }
    if let Some(why) = index.problem(&entries)? {
        found.push((index.path().to_owned(), why));
    }
    let unfinished = truth.unfinished();
    if unfinished > 0 {
        found.push((
            truth.log_path(),
            format!(
                "{unfinished} bytes of an unfinished record (a write cut short) after the last \
                 record"
            ),
        ));
    }
    if fix && !found.is_empty() {
        let log = LogEnd {
            path: &truth.log_path(),
            valid_end: truth.valid_end(),
            unfinished: unfinished > 0,
        };
        rewrite_derived(dir, &log, &index, &entries, &truth.checkpoint())?;
    }
    Ok(Some((truth, found)))
}

/// What is wrong with the checkpoint `header` of the conversation in `dir`, judged
/// against `truth` (the whole log replayed); `None` when it is intact and agrees
/// (records after it are normal).
fn checkpoint_problem(
    dir: &Path,
    header: &HeaderRead,
    truth: &ConversationLog,
) -> Result<Option<String>> {
    let cp = match header {
        HeaderRead::Missing => return Ok(Some("missing".into())),
        HeaderRead::Damaged | HeaderRead::Legacy(_) => {
            return Ok(Some(
                "damaged: its checksum or JSON does not check out".into(),
            ));
        }
        HeaderRead::Checkpoint(cp) => cp,
    };
    Ok(match open::from_checkpoint(dir, cp) {
        Ok(Some(view)) if view.same_state(truth) => None,
        Ok(Some(_)) => Some("disagrees with the log".into()),
        Ok(None) => Some("does not match the log".into()),
        Err(e) if is_damage(&e) => Some(format!("the log does not follow from it: {e}")),
        Err(e) => return Err(e),
    })
}

/// A log's path, where its intact records end, and whether an unfinished one follows.
struct LogEnd<'a> {
    /// The log.
    path: &'a Path,
    /// End of its last intact record.
    valid_end: u64,
    /// Whether an unfinished record follows `valid_end`.
    unfinished: bool,
}

/// Cuts off an unfinished record of `log`, then writes `index` (flushed: a checkpoint
/// over updated messages relies on it) from `entries` and checkpoint `cp` into `dir`
/// again, all from the whole log replayed.
fn rewrite_derived(
    dir: &Path,
    log: &LogEnd<'_>,
    index: &SeqIndex,
    entries: &[IndexEntry],
    cp: &Checkpoint,
) -> Result<()> {
    if log.unfinished {
        let file = open_rw(log.path)?;
        file.set_len(log.valid_end)
            .map_err(io_at("truncate", log.path))?;
        sync_data(&file, log.path)?;
    }
    index.replace(entries)?;
    cp.write(dir)
}
