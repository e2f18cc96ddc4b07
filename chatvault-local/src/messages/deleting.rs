//! The markers of conversations marked for deletion, so that
//! [`LocalMessages::list_deleting`](super::LocalMessages::list_deleting) finds them
//! without reading every conversation. [`Markers`] works on a [`Store`]'s directories;
//! `LocalMessages::list_deleting`, the operations that mark and delete, and the repair
//! call it.
//!
//! `deleting/<name>` is an empty file, `<name>` being the conversation's directory name
//! in `conversations/`. The marker is written apart from the mark (the state record
//! `begin_delete` commits to the log), so it follows these rules:
//!
//! - it is created and flushed (file and directory) *before* the mark is committed, under
//!   the conversation's exclusive lock: a mark is never on disk without its marker;
//! - it is removed only after `delete` has removed the conversation (a crash before that
//!   leaves it, and the listing removes it later), or by a listing that finds the
//!   conversation live (a crash between marker and mark) under that conversation's
//!   exclusive lock, so never while a `begin_delete` is writing it;
//! - a marker whose conversation is gone is removed under the exclusive lock of
//!   `deleting.lock`, after checking again that the directory is gone, while
//!   `begin_delete` holds that lock shared while it writes a marker: a conversation
//!   created again under the same id and marked meanwhile keeps its marker.
//!
//! A listing opens each marker's conversation (its checkpoint, not its messages) and
//! lists it only if the log says it is marked. Conversations marked by a release before
//! the markers have none: `begin_delete` called again on one writes it, and so does
//! [`LocalMessages::repair`](super::LocalMessages::repair).

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use chatvault_core::backend::{ConversationId, Result, UserId};

use super::conversation::ConversationLog;
use super::conversation::lock::{Mode, lock_dir};
use super::report::{RepairItem, RepairReport};
use super::store::Store;
use crate::error::{io_at, io_error, is_damage};
use crate::fsutil::{create_dir_all_durable, is_not_found, sync_all, sync_dir};

/// The lock file that orders the removal of a gone conversation's marker after the
/// writing of a new one, in the store's root (beside `deleting/`, where it could share
/// a name with a marker).
pub(crate) const DELETING_LOCK: &str = "deleting.lock";

/// The markers of a store, by the directories they involve.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Markers<'s> {
    /// The store's root, holding `deleting.lock`.
    root: &'s Path,
    /// The store's `conversations/`, whose directory names the markers bear.
    conversations: &'s Path,
    /// The store's `deleting/`, holding the markers.
    deleting: &'s Path,
}

impl<'s> Markers<'s> {
    /// The markers of `store`.
    pub(super) fn new(store: &'s Store) -> Self {
        Markers {
            root: &store.root,
            conversations: &store.conversations,
            deleting: &store.deleting,
        }
    }

    /// The path of the marker of the conversation in directory `name`.
    fn marker(&self, name: &str) -> PathBuf {
        self.deleting.join(name)
    }

    /// Locks `deleting.lock` (shared to write markers, exclusive to remove a gone
    /// conversation's).
    fn lock(&self, mode: Mode) -> Result<File> {
        let path = self.root.join(DELETING_LOCK);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_at("open", &path))?;
        match mode {
            Mode::Shared => file.lock_shared(),
            Mode::Exclusive => file.lock(),
        }
        .map_err(io_at("lock", &path))?;
        Ok(file)
    }

    /// Writes the marker of the conversation in directory `name`, flushed (file and
    /// directory). The caller holds the conversation's exclusive lock and commits its
    /// mark only after this returned.
    pub(crate) fn write(&self, name: &str) -> Result<()> {
        // Created by the first marker: a store of an earlier release may be read-only.
        create_dir_all_durable(self.deleting)?;
        let _lock = self.lock(Mode::Shared)?;
        let path = self.marker(name);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_at("create", &path))?;
        sync_all(&file, &path)?;
        sync_dir(self.deleting)
    }

    /// Writes the marker of the conversation in directory `name` unless it is there.
    pub(crate) fn ensure(&self, name: &str) -> Result<()> {
        if self.marker(name).exists() {
            return Ok(());
        }
        self.write(name)
    }

    /// Removes the marker of the conversation in directory `name` if that directory is
    /// gone (checked under the exclusive `deleting.lock`). Not flushed: a marker that
    /// comes back after a crash is removed again.
    pub(crate) fn remove_if_gone(&self, name: &str) -> Result<()> {
        let path = self.marker(name);
        if !path.exists() {
            return Ok(());
        }
        let _lock = self.lock(Mode::Exclusive)?;
        if self.conversations.join(name).exists() {
            return Ok(());
        }
        remove(&path)
    }

    /// The names in `deleting/` (files only).
    fn names(&self) -> Result<Vec<String>> {
        let dir = self.deleting;
        let mut out = Vec::new();
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            // No marker was ever written.
            Err(e) if is_not_found(&e) => return Ok(out),
            Err(e) => return Err(io_error("list", dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_at("list", dir))?;
            if entry.file_type().is_ok_and(|t| t.is_file())
                && let Some(name) = entry.file_name().to_str()
            {
                out.push(name.to_owned());
            }
        }
        Ok(out)
    }

    /// See [`LocalMessages::list_deleting`](super::LocalMessages::list_deleting).
    pub(crate) fn list(&self, user: Option<&UserId>, limit: usize) -> Result<Vec<ConversationId>> {
        let mut out = Vec::new();
        for name in self.names()? {
            if out.len() >= limit {
                break;
            }
            let dir = self.conversations.join(&name);
            let Some(_lock) = lock_dir(&dir, Mode::Exclusive)? else {
                self.remove_if_gone(&name)?;
                continue;
            };
            match ConversationLog::load(&dir, None) {
                Ok(Some(view)) if view.deleting => {
                    if user.is_none() || view.record.user_id.as_ref() == user {
                        out.push(view.record.id);
                    }
                }
                // Live: the mark was never committed. No `begin_delete` is writing this
                // marker: it would hold the lock held here.
                Ok(Some(_)) => remove(&self.marker(&name))?,
                Ok(None) => {}
                Err(e) if is_damage(&e) => {
                    tracing::warn!(conversation = %dir.display(), error = %e, "leaving a damaged conversation marked for deletion out");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// For [`LocalMessages::repair`](super::LocalMessages::repair): checks the marker of
    /// the conversation in `dir` (held locked), whose log says whether it is marked
    /// (`deleting`), and writes a missing one unless `dry_run`.
    pub(crate) fn check(
        &self,
        dir: &Path,
        deleting: bool,
        dry_run: bool,
        report: &mut RepairReport,
    ) -> Result<()> {
        let Some(name) = dir.file_name().and_then(|n| n.to_str()) else {
            return Ok(());
        };
        let path = self.marker(name);
        if deleting && !path.exists() {
            report.rebuilt.push(RepairItem {
                path: path.clone(),
                problem: "marked for deletion without a marker (by an earlier release): \
                          list_deleting would not find it"
                    .into(),
            });
            if !dry_run {
                self.write(name)?;
            }
        }
        Ok(())
    }

    /// For [`LocalMessages::repair`](super::LocalMessages::repair): removes (unless
    /// `dry_run`) the markers whose conversation is gone.
    pub(crate) fn sweep_gone(&self, dry_run: bool, report: &mut RepairReport) -> Result<()> {
        for name in self.names()? {
            if self.conversations.join(&name).exists() {
                continue;
            }
            report.rebuilt.push(RepairItem {
                path: self.marker(&name),
                problem: "marker of a conversation that is gone (a delete cut short)".into(),
            });
            if !dry_run {
                self.remove_if_gone(&name)?;
            }
        }
        Ok(())
    }
}

/// Removes a marker; one already gone is fine.
fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(io_error("remove", path, e)),
    }
}
