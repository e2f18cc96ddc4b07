//! In-memory ChatVault backends: [`MemoryMessages`] and [`MemoryFiles`].
//!
//! Nothing is written anywhere; everything is gone when the value is dropped. They are the
//! reference behaviour of the two traits (they pass the whole conformance suite), safe to
//! share between tasks and threads, with appends that cost the same however long the
//! conversation is. Use them in tests and prototypes.
//!
//! ```
//! use chatvault_core::{ChatVault, ListOptions, Role};
//! use chatvault_memory::{MemoryFiles, MemoryMessages};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> chatvault_core::Result<()> {
//! let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
//! let mut chat = vault.create_conversation(Some("user-123")).await?;
//! chat.add_message(Role::User, "What is a vault?").await?;
//! let page = vault.list_conversations("user-123", &ListOptions::new()).await?;
//! assert_eq!(page.items[0].title.as_deref(), Some("What is a vault?"));
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use chatvault_core::{
    Appended, ConversationPatch, ConversationRecord, ConversationSummary, Error, FileAttachment,
    FilesBackend, ListCursor, ListOptions, Message, MessageRange, MessagesBackend, NewMessage,
    Page, Result, StoredConversation, apply_add_file, apply_remove_file, async_trait, keys, now,
};
use chrono::{DateTime, Utc};

/// Listing position: `(last_active, id)`; listings walk it in reverse.
type Position = (DateTime<Utc>, String);

#[derive(Debug)]
struct Entry {
    record: ConversationRecord,
    messages: Vec<Message>,
    files: Vec<FileAttachment>,
}

#[derive(Debug, Default)]
struct State {
    conversations: HashMap<String, Entry>,
    /// Every conversation, in listing order (reversed).
    all: BTreeSet<Position>,
    /// Each user's conversations, in listing order (reversed).
    by_user: HashMap<String, BTreeSet<Position>>,
}

fn position(record: &ConversationRecord) -> Position {
    (record.last_active, record.id.clone())
}

impl State {
    fn index(&mut self, record: &ConversationRecord) {
        self.all.insert(position(record));
        if let Some(user) = &record.user_id {
            self.by_user
                .entry(user.clone())
                .or_default()
                .insert(position(record));
        }
    }

    fn unindex(&mut self, record: &ConversationRecord) {
        self.all.remove(&position(record));
        if let Some(user) = &record.user_id
            && let Some(set) = self.by_user.get_mut(user)
        {
            set.remove(&position(record));
            if set.is_empty() {
                self.by_user.remove(user);
            }
        }
    }

    fn entry_mut(&mut self, id: &str) -> Result<&mut Entry> {
        self.conversations
            .get_mut(id)
            .ok_or_else(|| Error::conversation_not_found(id))
    }

    /// Replaces an entry's record, keeping the listing indexes in step.
    fn set_record(&mut self, id: &str, record: ConversationRecord) -> Result<()> {
        let old = self.entry_mut(id)?.record.clone();
        if position(&old) != position(&record) {
            self.unindex(&old);
            self.index(&record);
        }
        self.entry_mut(id)?.record = record;
        Ok(())
    }
}

/// Conversations held in memory.
///
/// Appends are O(1) amortized; listings walk an ordered index, and never load messages.
#[derive(Debug, Default)]
pub struct MemoryMessages {
    state: Mutex<State>,
}

impl MemoryMessages {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No operation leaves the state half-changed across a panic point, so a poisoned
        // lock still guards consistent data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl MessagesBackend for MemoryMessages {
    async fn save(&self, conversation: &StoredConversation) -> Result<()> {
        conversation.record.validate()?;
        let mut state = self.lock();
        let id = conversation.record.id.clone();
        if let Some(old) = state.conversations.remove(&id) {
            state.unindex(&old.record);
        }
        state.index(&conversation.record);
        state.conversations.insert(
            id,
            Entry {
                record: conversation.record.clone(),
                messages: conversation.messages.clone(),
                files: conversation.files.clone(),
            },
        );
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<StoredConversation>> {
        Ok(self
            .lock()
            .conversations
            .get(id)
            .map(|e| StoredConversation {
                record: e.record.clone(),
                messages: e.messages.clone(),
                files: e.files.clone(),
            }))
    }

    async fn get_by_user(&self, user_id: &str) -> Result<Vec<StoredConversation>> {
        let state = self.lock();
        let Some(ids) = state.by_user.get(user_id) else {
            return Ok(Vec::new());
        };
        Ok(ids
            .iter()
            .filter_map(|(_, id)| state.conversations.get(id))
            .map(|e| StoredConversation {
                record: e.record.clone(),
                messages: e.messages.clone(),
                files: e.files.clone(),
            })
            .collect())
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let mut state = self.lock();
        match state.conversations.remove(id) {
            Some(entry) => {
                state.unindex(&entry.record);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn create(&self, record: &ConversationRecord) -> Result<()> {
        record.validate()?;
        let mut state = self.lock();
        if state.conversations.contains_key(&record.id) {
            return Err(Error::AlreadyExists {
                kind: "conversation",
                id: record.id.clone(),
            });
        }
        state.index(record);
        state.conversations.insert(
            record.id.clone(),
            Entry {
                record: record.clone(),
                messages: Vec::new(),
                files: Vec::new(),
            },
        );
        Ok(())
    }

    async fn get_record(&self, id: &str) -> Result<Option<ConversationRecord>> {
        Ok(self.lock().conversations.get(id).map(|e| e.record.clone()))
    }

    async fn get_record_with_files(
        &self,
        id: &str,
    ) -> Result<Option<(ConversationRecord, Vec<FileAttachment>)>> {
        Ok(self
            .lock()
            .conversations
            .get(id)
            .map(|e| (e.record.clone(), e.files.clone())))
    }

    async fn append_messages(&self, id: &str, messages: Vec<NewMessage>) -> Result<Appended> {
        for m in &messages {
            keys::validate_id("message id", &m.id)?;
        }
        let mut state = self.lock();
        let mut record = state.entry_mut(id)?.record.clone();
        let stored = record.apply_append(messages, now());
        state.set_record(id, record.clone())?;
        state.entry_mut(id)?.messages.extend(stored.iter().cloned());
        Ok(Appended {
            record,
            messages: stored,
        })
    }

    async fn messages(&self, id: &str, range: &MessageRange) -> Result<Page<Message>> {
        let state = self.lock();
        let entry = state
            .conversations
            .get(id)
            .ok_or_else(|| Error::conversation_not_found(id))?;
        Ok(range.select(&entry.messages))
    }

    async fn list_conversations(
        &self,
        user_id: Option<&str>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        let cursor = options.validate()?;
        let state = self.lock();
        let empty = BTreeSet::new();
        let index = match user_id {
            Some(user) => state.by_user.get(user).unwrap_or(&empty),
            None => &state.all,
        };
        let upper = cursor
            .as_ref()
            .map(|c: &ListCursor| (c.last_active, c.id.clone()));
        let candidates: Box<dyn Iterator<Item = &Position>> = match upper {
            Some(upper) => Box::new(index.range(..upper).rev()),
            None => Box::new(index.iter().rev()),
        };
        let mut items = Vec::with_capacity(options.limit.min(index.len()));
        let mut more = false;
        for (_, id) in candidates {
            let Some(entry) = state.conversations.get(id) else {
                continue;
            };
            if entry.record.archived && !options.include_archived {
                continue;
            }
            if items.len() == options.limit {
                more = true;
                break;
            }
            items.push(entry.record.summary());
        }
        let next_cursor = if more {
            items.last().map(|s| ListCursor::after(s).encode())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn update(&self, id: &str, patch: &ConversationPatch) -> Result<ConversationRecord> {
        patch.validate()?;
        let mut state = self.lock();
        let mut record = state.entry_mut(id)?.record.clone();
        if record.apply_patch(patch) {
            state.set_record(id, record.clone())?;
        }
        Ok(record)
    }

    async fn files(&self, id: &str) -> Result<Vec<FileAttachment>> {
        let state = self.lock();
        state
            .conversations
            .get(id)
            .map(|e| e.files.clone())
            .ok_or_else(|| Error::conversation_not_found(id))
    }

    async fn add_file(&self, id: &str, file: FileAttachment) -> Result<ConversationRecord> {
        let mut state = self.lock();
        let entry = state.entry_mut(id)?;
        let mut record = entry.record.clone();
        apply_add_file(&mut record, &entry.files, &file)?;
        entry.files.push(file);
        state.set_record(id, record.clone())?;
        Ok(record)
    }

    async fn remove_file(&self, id: &str, file_id: &str) -> Result<Option<ConversationRecord>> {
        let mut state = self.lock();
        let entry = state.entry_mut(id)?;
        let Some(pos) = entry.files.iter().position(|f| f.id == file_id) else {
            return Ok(None);
        };
        entry.files.remove(pos);
        let mut record = entry.record.clone();
        apply_remove_file(&mut record);
        state.set_record(id, record.clone())?;
        Ok(Some(record))
    }
}

/// Attachment bytes held in memory, with their content types.
///
/// Has no signed URLs (`signed_url` answers `None`). Streaming uploads are buffered: the
/// bytes end up in memory anyway.
#[derive(Debug, Default)]
pub struct MemoryFiles {
    blobs: Mutex<HashMap<String, (Bytes, String)>>,
}

impl MemoryFiles {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The content type stored with `key`.
    pub fn content_type(&self, key: &str) -> Option<String> {
        self.lock().get(key).map(|(_, ct)| ct.clone())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (Bytes, String)>> {
        self.blobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl FilesBackend for MemoryFiles {
    async fn upload(&self, key: &str, data: Bytes, content_type: &str) -> Result<()> {
        keys::validate_key(key)?;
        keys::validate_content_type(content_type)?;
        self.lock()
            .insert(key.to_owned(), (data, content_type.to_owned()));
        Ok(())
    }

    async fn download(&self, key: &str) -> Result<Option<Bytes>> {
        keys::validate_key(key)?;
        Ok(self.lock().get(key).map(|(data, _)| data.clone()))
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        keys::validate_key(key)?;
        Ok(self.lock().remove(key).is_some())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        keys::validate_key(key)?;
        Ok(self.lock().contains_key(key))
    }
}
