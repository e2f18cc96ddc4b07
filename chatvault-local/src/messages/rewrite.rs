//! Rewriting a conversation's log without what later records superseded, so that a
//! redacted message's old content is kept nowhere.
//!
//! An update carrying [`REDACTION_KEY`] (what
//! [`Conversation::redact`](chatvault_core::Conversation::redact) writes) goes like this,
//! under the conversation's exclusive lock:
//!
//! 1. the [mark](REWRITE_MARK) is written, naming the log's generation `g`, and flushed
//!    (file and directory);
//! 2. the redaction is committed to `log-<g>` like any update (flushed): from here it is
//!    acknowledged, and every read gets the tombstone;
//! 3. `log-<g+1>` is written under a temporary name with every message's newest version
//!    and the conversation's state (flushed), with its index and checkpoint;
//! 4. it is renamed into place and the directory flushed: the switch, after which readers
//!    open `g+1` (the newest generation);
//! 5. `log-<g>`, `index-<g>` and stray temporary logs are removed, the directory flushed;
//! 6. the mark is removed (flushed).
//!
//! A crash anywhere leaves generation `g` (the redaction in it or not, either way whole)
//! or `g+1`, never both as different data: the newest generation is the conversation.
//! The mark makes the next operation on the conversation (a read or a write, see
//! [`Store::open_conv`](super::store::Store::open_conv)) or
//! [`LocalMessages::repair`](crate::LocalMessages::repair) finish the job: when a
//! generation newer than the marked one is in place, only steps 5 and 6 are left;
//! otherwise the rewrite is done again from the newest generation.

use std::fs;
use std::path::Path;

use chatvault_core::REDACTION_KEY;
use chatvault_core::backend::{MessageUpdate, Result, StoredConversation};

use super::conversation::ConversationLog;
use super::generation::{remove_older, switch_to, write_next};
use crate::error::io_error;
use crate::fsutil::{is_absent, sync_dir, write_atomic};

/// The file in a conversation's directory that marks its log for a rewrite: it holds
/// the generation (decimal) whose superseded records must go.
pub(crate) const REWRITE_MARK: &str = "rewrite";
/// The mark's temporary name while it is written.
const REWRITE_MARK_TMP: &str = "rewrite.tmp";

/// Whether `update` redacts its message: the log must then be rewritten.
pub(super) fn redacts(update: &MessageUpdate) -> bool {
    update
        .metadata
        .as_ref()
        .is_some_and(|m| m.contains_key(REDACTION_KEY))
}

/// Marks generation `generation` of the conversation in `dir` for a rewrite, flushed
/// (file and directory): before the change that makes it due is committed.
pub(super) fn mark(dir: &Path, generation: u64) -> Result<()> {
    write_atomic(
        &dir.join(REWRITE_MARK),
        &dir.join(REWRITE_MARK_TMP),
        generation.to_string().as_bytes(),
        true,
    )
}

/// Whether the conversation in `dir` is marked for a rewrite.
pub(super) fn pending(dir: &Path) -> bool {
    dir.join(REWRITE_MARK).exists()
}

/// Rewrites the log of `view` (held locked exclusively) as the next generation: every
/// message's newest version and the conversation's record, attachments and mark of a
/// delete, nothing superseded. Then removes the older generation and the mark. `view`
/// describes the old generation from then on.
pub(super) fn rewrite(view: &ConversationLog) -> Result<()> {
    let mut conversation = StoredConversation::new(view.record.clone());
    conversation.messages = view.all_messages()?;
    conversation.files = view.files.clone();
    conversation.deleting = view.deleting;
    let dir = view.dir();
    let generation = write_next(dir, &conversation)?;
    crash_point("written");
    switch_to(dir, generation)?;
    crash_point("switched");
    clean_up(dir, generation)
}

/// Finishes the rewrite the mark asks for in the conversation `view` (held locked
/// exclusively; read from the newest generation): only removes what is left when a
/// generation newer than the marked one is in place (the rewrite got past its switch),
/// else rewrites the log. `view` may be stale after it, even when it fails.
pub(super) fn finish(view: &ConversationLog) -> Result<()> {
    let dir = view.dir();
    let path = dir.join(REWRITE_MARK);
    let marked = match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<u64>().ok(),
        Err(e) if is_absent(&e) => return Ok(()),
        Err(e) => return Err(io_error("read", &path, e)),
    };
    match marked {
        Some(g) if view.generation() > g => clean_up(dir, view.generation()),
        // The marked generation is still the newest (or the mark is unreadable, and a
        // rewrite is never wrong): it may hold superseded content.
        _ => rewrite(view),
    }
}

/// Once generation `newest` is in place: removes the older generations and stray
/// temporary logs, flushes the directory, then removes the mark (flushed too), so that
/// the mark outlives every file it is about.
fn clean_up(dir: &Path, newest: u64) -> Result<()> {
    remove_older(dir, newest)?;
    sync_dir(dir)?;
    crash_point("removed");
    let path = dir.join(REWRITE_MARK);
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if is_absent(&e) => return Ok(()),
        Err(e) => return Err(io_error("remove", &path, e)),
    }
    sync_dir(dir)
}

/// A point of a redaction's rewrite where the crash tests stop the process (a no-op
/// outside this crate's unit tests).
#[cfg(not(test))]
pub(super) fn crash_point(_point: &str) {}

/// A point of a redaction's rewrite where the crash tests stop the process: aborts it
/// (no destructor runs, as in a crash) when `CHATVAULT_LOCAL_CRASH_AT` names `point`,
/// after saying so on stdout.
#[cfg(test)]
pub(super) fn crash_point(point: &str) {
    tests::crash_point(point);
}

#[cfg(test)]
mod tests;
