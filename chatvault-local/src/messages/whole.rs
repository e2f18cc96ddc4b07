//! Whole-conversation operations: create, get (one, or every one of a user), save (a
//! new log generation), import, delete.

use std::fs;
use std::io;
use std::path::Path;

use chatvault_core::backend::{
    ConversationId, ConversationRecord, Error, Result, StoredConversation,
};

use super::conversation::ConversationLog;
use super::conversation::lock::{Mode, lock_dir};
use super::conversation::scan::log_generations;
use super::deleting::Markers;
use super::format::{HEADER, dir_name, log_name};
use super::generation::{remove_older, switch_to, write_next, write_whole};
use super::store::Store;
use crate::error::{io_at, io_error, is_damage};
use crate::fsutil::{TempPath, sync_dir, sync_tree, unique_name};
use crate::listing::Claim;

/// Whole-conversation operations of a [`Store`]: create, get, save, import, delete.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Whole<'s> {
    /// The store they work on.
    store: &'s Store,
}

impl<'s> Whole<'s> {
    /// The whole-conversation operations of `store`.
    pub(super) fn new(store: &'s Store) -> Self {
        Whole { store }
    }

    /// Builds a conversation directory in `tmp/`, flushed unless `flush` is off (a bulk
    /// import flushes everything at once). Its lock file is created by the first lock.
    fn build_dir(&self, conversation: &StoredConversation, flush: bool) -> Result<TempPath> {
        let tmp = TempPath::new(self.store.tmp.join(unique_name()));
        fs::create_dir(tmp.path()).map_err(io_at("create directory", tmp.path()))?;
        write_whole(tmp.path(), 1, conversation, &log_name(1), flush, true)?;
        if flush {
            sync_dir(tmp.path())?;
        }
        Ok(tmp)
    }

    /// Builds a conversation directory in `tmp/` and renames it into place. Returns
    /// `false` (and leaves nothing behind) when the id is taken.
    fn install_new(&self, conversation: &StoredConversation) -> Result<bool> {
        let record = &conversation.record;
        let dir = self.store.conv_dir(&record.id);
        if dir.join(HEADER).exists() || !log_generations(&dir)?.is_empty() {
            return Ok(false);
        }
        let tmp = self.build_dir(conversation, true)?;
        self.store.index.record(&Claim::tentative(record))?;
        match fs::rename(tmp.path(), &dir) {
            Ok(()) => {
                let mut tmp = tmp;
                tmp.disarm();
                sync_dir(&self.store.conversations)?;
                self.store
                    .index
                    .record_after_commit(&Claim::confirmed(record));
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(io_error("rename into place", &dir, e)),
        }
    }

    /// Stores many new conversations with one flush of everything (see
    /// [`LocalMessages::import`](super::LocalMessages::import)).
    pub(crate) fn import(&self, conversations: Vec<StoredConversation>) -> Result<u64> {
        let mut built = Vec::with_capacity(conversations.len());
        for conversation in &conversations {
            conversation.record.validate()?;
            built.push(self.build_dir(conversation, false)?);
        }
        for conversation in conversations.iter().filter(|c| c.deleting) {
            let name = dir_name(conversation.record.id.as_str());
            Markers::new(self.store).write(&name)?;
        }
        // Everything written is flushed before anything is renamed into place.
        sync_tree(&self.store.tmp, built.iter().map(TempPath::path))?;
        let mut stored = 0;
        let outcome = (|| {
            for (mut tmp, conversation) in built.into_iter().zip(&conversations) {
                let record = &conversation.record;
                let dir = self.store.conv_dir(&record.id);
                if dir.join(HEADER).exists() || !log_generations(&dir)?.is_empty() {
                    return Err(Error::AlreadyExists {
                        kind: "conversation",
                        id: record.id.to_string(),
                    });
                }
                fs::rename(tmp.path(), &dir).map_err(|e| match e.kind() {
                    io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty => {
                        Error::AlreadyExists {
                            kind: "conversation",
                            id: record.id.to_string(),
                        }
                    }
                    _ => io_error("rename into place", &dir, e),
                })?;
                tmp.disarm();
                stored += 1;
            }
            Ok(())
        })();
        sync_dir(&self.store.conversations)?;
        // Claims for this many conversations are cheaper rebuilt than written one by one.
        self.store.index.invalidate()?;
        outcome.map(|()| stored)
    }

    /// Replaces a locked conversation whole: a new log generation written under a
    /// temporary name, then renamed into place (the commit point), then the old
    /// generation's removal.
    fn replace_locked(&self, dir: &Path, conversation: &StoredConversation) -> Result<()> {
        let generation = write_next(dir, conversation)?;
        self.store
            .index
            .record(&Claim::tentative(&conversation.record))?;
        switch_to(dir, generation)?;
        self.store
            .index
            .record_after_commit(&Claim::confirmed(&conversation.record));
        if let Err(e) = remove_older(dir, generation) {
            tracing::warn!(conversation = %dir.display(), error = %e, "could not remove an older log generation");
        }
        Ok(())
    }

    /// Stores a whole conversation, replacing any with its id.
    pub(crate) fn save(&self, conversation: &StoredConversation) -> Result<()> {
        let record = &conversation.record;
        record.validate()?;
        let dir = self.store.conv_dir(&record.id);
        if conversation.deleting {
            Markers::new(self.store).write(&dir_name(record.id.as_str()))?;
        }
        for _ in 0..100 {
            match lock_dir(&dir, Mode::Exclusive)? {
                Some(_lock) => {
                    match ConversationLog::load(&dir, None) {
                        Ok(Some(view)) if view.record.id != record.id => {
                            return Err(Error::AlreadyExists {
                                kind: "conversation directory (ids differing only in case)",
                                id: view.record.id.to_string(),
                            });
                        }
                        // A damaged conversation is replaced all the same.
                        Ok(_) => {}
                        Err(e) if is_damage(&e) => {}
                        Err(e) => return Err(e),
                    }
                    return self.replace_locked(&dir, conversation);
                }
                None => {
                    if self.install_new(conversation)? {
                        return Ok(());
                    }
                    // Created by someone else meanwhile: replace it.
                }
            }
        }
        Err(Error::Conflict {
            message: format!("conversation {} kept being created and deleted", record.id),
        })
    }

    /// Creates a conversation; `AlreadyExists` when its id is taken.
    pub(crate) fn create(&self, record: &ConversationRecord) -> Result<()> {
        record.validate()?;
        if self.install_new(&StoredConversation::new(record.clone()))? {
            Ok(())
        } else {
            Err(Error::AlreadyExists {
                kind: "conversation",
                id: record.id.to_string(),
            })
        }
    }

    /// A whole conversation; `None` when it does not exist or is being deleted.
    pub(crate) fn get(&self, id: &ConversationId) -> Result<Option<StoredConversation>> {
        let Some((_lock, view)) = self.store.live(id, Mode::Shared)? else {
            return Ok(None);
        };
        let messages = view.all_messages()?;
        let mut conversation = StoredConversation::new(view.record);
        conversation.messages = messages;
        conversation.files = view.files;
        Ok(Some(conversation))
    }

    /// Every conversation of `user`, whole.
    pub(crate) fn get_by_user(&self, user: &str) -> Result<Vec<StoredConversation>> {
        let ids = self.store.index.ids_of(user, self.store)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Ok(conversation) = ConversationId::parse(id.as_str()) else {
                continue;
            };
            match self.get(&conversation) {
                Ok(Some(c))
                    if c.record
                        .user_id
                        .as_ref()
                        .is_some_and(|u| u.as_str() == user) =>
                {
                    out.push(c);
                }
                Ok(_) => {}
                Err(e) if is_damage(&e) => {
                    tracing::warn!(conversation = id, error = %e, "leaving a damaged conversation out");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Deletes a conversation (damaged or not); `false` when there was none. Its marker
    /// in `deleting/` (if any) is removed after the conversation.
    pub(crate) fn delete(&self, id: &ConversationId) -> Result<bool> {
        let dir = self.store.conv_dir(id);
        let name = dir_name(id.as_str());
        let Some(lock) = lock_dir(&dir, Mode::Exclusive)? else {
            // A delete cut short after its commit may have left the marker.
            Markers::new(self.store).remove_if_gone(&name)?;
            return Ok(false);
        };
        // A damaged conversation is deleted all the same: the id names its directory.
        match ConversationLog::load(&dir, None) {
            Ok(Some(view)) if view.record.id != *id => return Ok(false),
            Ok(Some(_)) => {}
            Ok(None) => return Ok(false),
            Err(e) if is_damage(&e) => {
                tracing::warn!(conversation = %id, error = %e, "deleting a damaged conversation");
            }
            Err(e) => return Err(e),
        }
        let trash = self.store.trash.join(unique_name());
        // The rename is the commit point: from here the conversation does not exist, and
        // an appender waiting for the lock finds the lock file gone.
        fs::rename(&dir, &trash).map_err(io_at("move to trash", &dir))?;
        sync_dir(&self.store.conversations)?;
        self.store
            .index
            .record_after_commit(&Claim::deleted(id.as_str()));
        self.store.ids.forget(id);
        drop(lock);
        let _ = fs::remove_dir_all(&trash);
        // Last: until here, a crash leaves the conversation listed by `list_deleting`.
        Markers::new(self.store).remove_if_gone(&name)?;
        Ok(true)
    }
}
