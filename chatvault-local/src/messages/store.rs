//! The store: its directories, the conversations' directories and locks, and the glue
//! to the listing index.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use chatvault_core::backend::{
    Appended, ConversationId, ConversationSummary, Error, ListOptions, NewMessage, Page, Result,
    UserId,
};

use super::conversation::ConversationLog;
use super::conversation::lock::{Mode, lock_dir};
use super::conversation::scan::log_generations;
use super::format::{HEADER, check_format, dir_name};
use super::group::GroupCommit;
use super::ids::IdMaps;
use super::rewrite;
use crate::error::{io_at, is_damage};
use crate::fsutil::{STALE_TEMP_AGE, create_dir_all_durable, sweep};
use crate::listing::{Found, Listing, Source};

/// A store's directories and this process's state of it; shared by every clone of a
/// [`LocalMessages`](super::LocalMessages).
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) root: PathBuf,
    pub(crate) conversations: PathBuf,
    pub(crate) tmp: PathBuf,
    pub(crate) trash: PathBuf,
    /// The markers of conversations marked for deletion (see [`deleting`](super::deleting)).
    pub(crate) deleting: PathBuf,
    pub(crate) index: Listing,
    /// Appends waiting for a conversation's group commit.
    pub(crate) appends: GroupCommit<ConversationId, (Option<UserId>, Vec<NewMessage>), Appended>,
    /// Message id -> seq maps of recently written conversations (idempotent appends).
    pub(crate) ids: IdMaps,
}

/// The directory of the markers of conversations marked for deletion, in the store's
/// root (see [`deleting`](super::deleting)).
const DELETING_DIR: &str = "deleting";

impl Store {
    /// Opens (creating it if needed) the store in directory `root`, removing leftovers of
    /// interrupted deletes and temporary files more than a day old.
    pub(crate) fn open(root: &Path) -> Result<Store> {
        create_dir_all_durable(root)?;
        // Absolute from here on: a later change of the working directory must not move
        // the store.
        let root = std::fs::canonicalize(root).map_err(io_at("resolve", root))?;
        let store = Store {
            conversations: root.join("conversations"),
            tmp: root.join("tmp"),
            trash: root.join("trash"),
            deleting: root.join(DELETING_DIR),
            index: Listing::new(root.join("index"))?,
            appends: GroupCommit::new(),
            ids: IdMaps::new(),
            root,
        };
        // `users/` held 0.1's user index, which the listing index replaces; it is still
        // created (empty) so that the layout stays the one 0.1 tools expect.
        for dir in [
            &store.conversations,
            &store.tmp,
            &store.trash,
            &store.root.join("users"),
        ] {
            create_dir_all_durable(dir)?;
        }
        check_format(&store.root, &store.tmp)?;
        sweep(&store.trash, std::time::Duration::ZERO);
        sweep(&store.tmp, STALE_TEMP_AGE);
        Ok(store)
    }

    /// The directory of conversation `id`.
    pub(crate) fn conv_dir(&self, id: &ConversationId) -> PathBuf {
        self.conversations.join(dir_name(id.as_str()))
    }

    /// Locks and loads conversation `id`; `None` when it does not exist. A conversation
    /// written by 0.1 is upgraded first (one state record), and one marked for a rewrite
    /// (a redaction's, interrupted) has it finished, both under the exclusive lock: a
    /// reader takes it for that once, then its shared lock again.
    pub(crate) fn open_conv(
        &self,
        id: &ConversationId,
        mode: Mode,
    ) -> Result<Option<(File, ConversationLog)>> {
        let dir = self.conv_dir(id);
        let mut finish = true;
        loop {
            let Some(lock) = lock_dir(&dir, mode)? else {
                return Ok(None);
            };
            let Some(mut view) = ConversationLog::load(&dir, Some(id))? else {
                return Ok(None);
            };
            let unfinished = finish && rewrite::pending(&dir);
            if !view.is_legacy() && !unfinished {
                return Ok(Some((lock, view)));
            }
            if mode == Mode::Exclusive {
                if view.is_legacy() {
                    view.upgrade()?;
                }
                if unfinished {
                    Self::finish_rewrite(&view);
                    // Read again whatever happened: a rewrite that failed after its
                    // switch leaves `view` on a generation that is no longer the newest.
                    let Some(fresh) = ConversationLog::load(&dir, Some(id))? else {
                        return Ok(None);
                    };
                    view = fresh;
                }
                return Ok(Some((lock, view)));
            }
            drop(lock);
            drop(self.open_conv(id, Mode::Exclusive)?);
            // Once: a rewrite that failed is not tried again by this read.
            finish = false;
        }
    }

    /// Finishes the interrupted rewrite of a locked conversation's log (`view` is stale
    /// after it). Best effort: the conversation reads the same either way (the
    /// redaction is committed), and the mark stays for the next try.
    fn finish_rewrite(view: &ConversationLog) {
        if let Err(e) = rewrite::finish(view) {
            tracing::warn!(conversation = %view.dir().display(), error = %e, "could not finish rewriting a log after a redaction");
        }
    }

    /// Locks and loads a conversation that exists and is not being deleted.
    pub(crate) fn require(
        &self,
        id: &ConversationId,
        mode: Mode,
    ) -> Result<(File, ConversationLog)> {
        match self.open_conv(id, mode)? {
            Some((lock, view)) if !view.deleting => Ok((lock, view)),
            _ => Err(Error::conversation_not_found(id.as_str())),
        }
    }

    /// Like [`require`](Self::require), `None` instead of `NotFound`.
    pub(crate) fn live(
        &self,
        id: &ConversationId,
        mode: Mode,
    ) -> Result<Option<(File, ConversationLog)>> {
        Ok(self.open_conv(id, mode)?.filter(|(_, v)| !v.deleting))
    }

    /// A page of conversation summaries, through the listing index.
    pub(crate) fn list(
        &self,
        user: Option<&str>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        self.index.page(user, options, self)
    }

    /// The names of the directories in `conversations/` (a stray file, such as
    /// `.DS_Store`, is no conversation).
    fn dir_names(&self) -> Result<Vec<String>> {
        let entries =
            fs::read_dir(&self.conversations).map_err(io_at("list", &self.conversations))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_at("list", &self.conversations))?;
            if entry.file_type().is_ok_and(|t| t.is_dir())
                && let Some(name) = entry.file_name().to_str()
            {
                out.push(name.to_owned());
            }
        }
        Ok(out)
    }

    /// The id of the conversation in directory `name`: its decoded name, or (for a name
    /// shortened with a hash) the id in its record. `None` for a directory that is no
    /// conversation's, or whose record cannot be read.
    fn id_of_dir(&self, name: &str) -> Result<Option<String>> {
        if !name.contains('~') {
            let decoded = percent_encoding::percent_decode_str(name).decode_utf8();
            return Ok(decoded
                .ok()
                .map(|id| id.into_owned())
                .filter(|id| dir_name(id) == name));
        }
        let dir = self.conversations.join(name);
        let Some(_lock) = lock_dir(&dir, Mode::Shared)? else {
            return Ok(None);
        };
        match ConversationLog::load(&dir, None) {
            Ok(view) => Ok(view.map(|v| v.record.id.to_string())),
            Err(e) if is_damage(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Source for Store {
    fn found(&self, id: &str) -> Result<Found> {
        let Ok(id) = ConversationId::parse(id) else {
            return Ok(Found::Missing);
        };
        match self.live(&id, Mode::Shared) {
            Ok(Some((_, view))) => Ok(Found::Record(Box::new(view.record))),
            Ok(None) => Ok(Found::Missing),
            Err(e) if is_damage(&e) => {
                tracing::warn!(conversation = %id, error = %e, "damaged conversation");
                Ok(Found::Damaged)
            }
            Err(e) => Err(e),
        }
    }

    fn found_all(&self) -> Result<Vec<Found>> {
        let mut out = Vec::new();
        for name in self.dir_names()? {
            let dir = self.conversations.join(name);
            let Some(_lock) = lock_dir(&dir, Mode::Shared)? else {
                continue;
            };
            match ConversationLog::load(&dir, None) {
                Ok(Some(view)) if !view.deleting => {
                    out.push(Found::Record(Box::new(view.record)));
                }
                Ok(_) => {}
                Err(e) if is_damage(&e) => {
                    tracing::warn!(conversation = %dir.display(), error = %e, "damaged conversation");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn exists(&self, id: &str) -> Result<bool> {
        let dir = self.conversations.join(dir_name(id));
        Ok(dir.join(HEADER).exists() || !log_generations(&dir)?.is_empty())
    }

    fn ids(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for name in self.dir_names()? {
            if let Some(id) = self.id_of_dir(&name)? {
                out.push(id);
            }
        }
        Ok(out)
    }
}
