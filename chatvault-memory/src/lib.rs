#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use chatvault_core::backend::{
    Appended, ByteStream, ContentType, ConversationHead, ConversationId, ConversationPatch,
    ConversationRecord, ConversationSummary, Error, FileAttachment, FileId, FilesBackend,
    FilesCapabilities, ListCursor, ListOptions, Message, MessageId, MessageRange, MessageUpdate,
    MessageUpdated, MessagesBackend, MessagesCapabilities, NewMessage, ObjectMeta, Page, PageLimit,
    Result, SearchCursor, SearchHit, SearchOptions, SearchQuery, StorageKey, UserId,
    apply_add_file, apply_remove_file, async_trait, bytes_stream, check_owner, check_replay,
    check_unique_ids, collect_stream, now,
};
use chrono::{DateTime, Utc};

mod listing;
mod message_log;
mod stored;

use listing::{Listing, Position};
use message_log::MessageLog;

#[derive(Debug)]
struct Entry {
    record: ConversationRecord,
    /// The messages, found by id (idempotent appends, updates): a new id in O(1), a
    /// stored one in O(1) or O(log n) (see `MessageLog`).
    messages: MessageLog,
    files: Vec<FileAttachment>,
    /// Marked by `begin_delete`: reads as gone.
    deleting: bool,
}

#[derive(Debug, Default)]
struct State {
    conversations: HashMap<ConversationId, Entry>,
    /// Every conversation, in listing order (reversed).
    all: Listing,
    /// Each user's conversations, in listing order (reversed).
    by_user: HashMap<UserId, Listing>,
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

    /// Moves `record`'s listing position from `before` (its old `last_active`) to its own.
    fn move_position(&mut self, record: &ConversationRecord, before: DateTime<Utc>) {
        if before == record.last_active {
            return;
        }
        self.all.move_to(&record.id, before, record.last_active);
        if let Some(set) = record
            .user_id
            .as_ref()
            .and_then(|u| self.by_user.get_mut(u))
        {
            set.move_to(&record.id, before, record.last_active);
        }
    }

    /// The live (not being deleted) conversation.
    fn live(&self, id: &ConversationId) -> Result<&Entry> {
        match self.conversations.get(id) {
            Some(e) if !e.deleting => Ok(e),
            _ => Err(Error::conversation_not_found(id.as_str())),
        }
    }

    fn live_mut(&mut self, id: &ConversationId) -> Result<&mut Entry> {
        match self.conversations.get_mut(id) {
            Some(e) if !e.deleting => Ok(e),
            _ => Err(Error::conversation_not_found(id.as_str())),
        }
    }

    /// Replaces an entry's record, keeping the listing indexes in step.
    fn set_record(&mut self, id: &ConversationId, record: ConversationRecord) -> Result<()> {
        let old = self.live_mut(id)?.record.clone();
        if position(&old) != position(&record) {
            self.unindex(&old);
            self.index(&record);
        }
        self.live_mut(id)?.record = record;
        Ok(())
    }
}

/// Conversations held in memory.
///
/// Appends are O(1) amortized; listings walk an ordered index, and never load messages;
/// search is a case-insensitive substring scan of the user's messages (fine for tests).
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
#[deny(clippy::missing_trait_methods)]
impl MessagesBackend for MemoryMessages {
    fn capabilities(&self) -> MessagesCapabilities {
        // One process by nature: "multi_process" has no other process to share with.
        MessagesCapabilities::full().with_multi_process(false)
    }

    async fn create(&self, record: &ConversationRecord) -> Result<()> {
        let mut state = self.lock();
        if state.conversations.contains_key(&record.id) {
            return Err(Error::AlreadyExists {
                kind: "conversation",
                id: record.id.to_string(),
            });
        }
        state.index(record);
        state.conversations.insert(
            record.id.clone(),
            Entry {
                record: record.clone(),
                messages: MessageLog::default(),
                files: Vec::new(),
                deleting: false,
            },
        );
        Ok(())
    }

    async fn head(&self, id: &ConversationId) -> Result<Option<ConversationHead>> {
        Ok(self
            .lock()
            .live(id)
            .ok()
            .map(|e| ConversationHead::new(e.record.clone(), e.files.clone())))
    }

    async fn message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        let state = self.lock();
        let entry = state.live(id)?;
        Ok(entry
            .messages
            .find(message_id)
            .and_then(|i| entry.messages.get(i)))
    }

    async fn append_messages_as(
        &self,
        owner: Option<&UserId>,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        let mut state = self.lock();
        let entry = state.live_mut(id)?;
        check_owner(&entry.record, owner)?;
        if messages
            .iter()
            .any(|m| entry.messages.find(&m.id).is_some())
        {
            let stored = messages
                .iter()
                .map(|m| {
                    let i = entry.messages.find(&m.id)?;
                    entry.messages.get(i)
                })
                .collect();
            if let Some(replayed) = check_replay(&messages, stored)? {
                return Ok(Appended::new(entry.record.clone(), replayed));
            }
        } else {
            // None is stored (the usual append): what `check_replay` would check, without
            // building its list of stored messages.
            check_unique_ids(&messages)?;
        }
        // In place: `apply_append` leaves the record unchanged when it fails.
        let before = entry.record.last_active;
        let stored = entry.record.apply_append(messages, now())?;
        for m in &stored {
            entry.messages.push(m);
        }
        let record = entry.record.clone();
        state.move_position(&record, before);
        Ok(Appended::new(record, stored))
    }

    async fn update_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        let mut state = self.lock();
        let entry = state.live(id)?;
        let index = entry
            .messages
            .find(message_id)
            .ok_or_else(|| Error::message_not_found(message_id.as_str()))?;
        let mut message = entry
            .messages
            .get(index)
            .ok_or_else(|| Error::message_not_found(message_id.as_str()))?;
        message.expect_revision(expected_revision)?;
        let mut record = entry.record.clone();
        record.apply_message_update(&mut message, update, now());
        state.set_record(id, record.clone())?;
        state.live_mut(id)?.messages.replace(index, &message);
        Ok(MessageUpdated::new(record, message))
    }

    async fn messages(&self, id: &ConversationId, range: &MessageRange) -> Result<Page<Message>> {
        Ok(self.lock().live(id)?.messages.select(range))
    }

    async fn list_conversations(
        &self,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        let state = self.lock();
        let empty = Listing::default();
        let index = match user_id {
            Some(user) => state.by_user.get(user).unwrap_or(&empty),
            None => &state.all,
        };
        let upper = options
            .cursor
            .as_ref()
            .map(|c: &ListCursor| (c.last_active, c.id.clone()));
        let items = index
            .rev_before(upper.as_ref())
            .filter_map(|(_, id)| state.live(id).ok())
            .filter(|entry| options.include_archived || !entry.record.archived)
            .take(options.limit.get() + 1)
            .map(|entry| entry.record.summary())
            .collect();
        Ok(Page::of_listing(items, options.limit))
    }

    async fn update(
        &self,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> Result<ConversationRecord> {
        let mut state = self.lock();
        let mut record = state.live(id)?.record.clone();
        if record.apply_patch(patch)? {
            state.set_record(id, record.clone())?;
        }
        Ok(record)
    }

    async fn add_file(
        &self,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> Result<ConversationRecord> {
        let mut state = self.lock();
        let entry = state.live_mut(id)?;
        let mut record = entry.record.clone();
        apply_add_file(&mut record, &entry.files, file)?;
        entry.files.push(file.clone());
        state.set_record(id, record.clone())?;
        Ok(record)
    }

    async fn remove_file(
        &self,
        id: &ConversationId,
        file_id: &FileId,
    ) -> Result<Option<ConversationRecord>> {
        let mut state = self.lock();
        let entry = state.live_mut(id)?;
        let Some(pos) = entry.files.iter().position(|f| &f.id == file_id) else {
            return Ok(None);
        };
        entry.files.remove(pos);
        let mut record = entry.record.clone();
        apply_remove_file(&mut record);
        state.set_record(id, record.clone())?;
        Ok(Some(record))
    }

    async fn begin_delete(&self, id: &ConversationId) -> Result<Option<Vec<FileAttachment>>> {
        let mut state = self.lock();
        Ok(state.conversations.get_mut(id).map(|entry| {
            entry.deleting = true;
            entry.files.clone()
        }))
    }

    async fn delete(&self, id: &ConversationId) -> Result<bool> {
        let mut state = self.lock();
        match state.conversations.remove(id) {
            Some(entry) => {
                state.unindex(&entry.record);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// One user's: a walk of their listing index; every user's: a walk of every
    /// conversation.
    async fn list_deleting(
        &self,
        user_id: Option<&UserId>,
        limit: PageLimit,
    ) -> Result<Vec<ConversationId>> {
        let state = self.lock();
        let marked = |id: &&ConversationId| {
            state
                .conversations
                .get(*id)
                .is_some_and(|entry| entry.deleting)
        };
        let found: Vec<ConversationId> = match user_id {
            Some(user) => state
                .by_user
                .get(user)
                .into_iter()
                .flat_map(Listing::iter)
                .map(|(_, id)| id)
                .filter(marked)
                .take(limit.get())
                .cloned()
                .collect(),
            None => state
                .conversations
                .iter()
                .filter(|(_, entry)| entry.deleting)
                .map(|(id, _)| id.clone())
                .take(limit.get())
                .collect(),
        };
        Ok(found)
    }

    async fn search(
        &self,
        user_id: &UserId,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Page<SearchHit>> {
        let query = SearchQuery::parse(query)?;
        let skip = options.cursor.map_or(0, |c| c.offset() as usize);
        let needle = query.as_str().to_lowercase();
        let state = self.lock();
        let Some(index) = state.by_user.get(user_id) else {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        };
        // Newest conversations first, newest messages first within each.
        let hits = index
            .iter()
            .rev()
            .filter_map(|(_, id)| state.live(id).ok())
            .filter(|e| options.include_archived || !e.record.archived)
            .flat_map(|e| {
                e.messages
                    .contents()
                    .rev()
                    .filter(|(_, content)| content.to_lowercase().contains(&needle))
                    .map(move |(i, _)| (e, i))
            })
            .skip(skip)
            .take(options.limit.get() + 1)
            .filter_map(|(entry, i)| {
                let message = entry.messages.get(i)?;
                Some(SearchHit::new(entry.record.summary(), message, None))
            })
            .collect();
        let next = SearchCursor::at(skip + options.limit.get());
        Ok(Page::from_overfetch(hits, options.limit, |_| next.encode()))
    }
}

/// Attachment bytes held in memory, with their content types.
///
/// Has no signed URLs (`signed_url` answers [`Error::NotSupported`]). Streaming uploads
/// are buffered: the bytes end up in memory anyway.
#[derive(Debug, Default)]
pub struct MemoryFiles {
    blobs: Mutex<HashMap<StorageKey, (Bytes, ContentType)>>,
}

impl MemoryFiles {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys hold bytes (for tests that check nothing is left behind).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no bytes are stored.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<StorageKey, (Bytes, ContentType)>> {
        self.blobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl FilesBackend for MemoryFiles {
    fn capabilities(&self) -> FilesCapabilities {
        FilesCapabilities::basic()
    }

    async fn upload_stream(
        &self,
        key: &StorageKey,
        data: ByteStream,
        content_type: &ContentType,
    ) -> Result<u64> {
        let bytes = collect_stream(data)
            .await
            .map_err(|source| Error::UploadStream { source })?;
        let len = bytes.len() as u64;
        self.lock()
            .insert(key.clone(), (bytes, content_type.clone()));
        Ok(len)
    }

    async fn download_stream(&self, key: &StorageKey) -> Result<Option<ByteStream>> {
        Ok(self
            .lock()
            .get(key)
            .map(|(data, _)| bytes_stream(data.clone())))
    }

    async fn head(&self, key: &StorageKey) -> Result<Option<ObjectMeta>> {
        Ok(self
            .lock()
            .get(key)
            .map(|(data, ct)| ObjectMeta::new(data.len() as u64, ct.clone())))
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        Ok(self.lock().remove(key).is_some())
    }

    async fn signed_url(
        &self,
        _key: &StorageKey,
        _expires_in: Duration,
        _download_filename: Option<&str>,
    ) -> Result<String> {
        Err(Error::not_supported("memory", "signed URLs"))
    }
}
