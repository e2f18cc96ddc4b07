//! [`EncryptedMessages`]: message content, titles, message metadata and attachment
//! records sealed over any messages backend.

mod seal;

use std::num::NonZeroUsize;
use std::sync::Mutex;

use async_trait::async_trait;
use chatvault_core::backend::{
    Appended, ConversationHead, ConversationPatch, ConversationRecord, ConversationSummary,
    FileAttachment, ListOptions, Message, MessageRange, MessageUpdate, MessageUpdated,
    MessagesBackend, MessagesCapabilities, NewMessage, Page, PageLimit, Role, SearchHit,
    SearchOptions, auto_title, check_replay,
};
use chatvault_core::{ConversationId, Error, FileId, MAX_MESSAGE_BYTES, MessageId, Result, UserId};

use crate::format::{Owner, is_key_conversation};
use crate::keyring::Keyring;
use seal::{MAX_SEALED_TITLE, Opener, Sealing, sealed_json_bound, sealed_json_len};
pub(crate) use seal::{message_headers, title_header};

/// How many conversations' owners the wrapper remembers (an owner never changes).
const OWNER_CACHE: usize = 100_000;
/// What sealing may add to a message beyond the base64 growth of its content.
const SEALING_MARGIN: u64 = 64 * 1024;

/// A [`MessagesBackend`] that seals what conversations say, over any other messages
/// backend; see the crate docs for what is sealed and what stays in clear.
///
/// Every operation is one call to the wrapped backend, plus, on a write to a
/// conversation this value has not seen yet, one `head` to learn its owner (remembered
/// for 100,000 conversations), and key look-ups that the [`Keyring`] caches. Atomicity,
/// idempotency and concurrency are the wrapped backend's: a retried append seals to the
/// same bytes (synthetic nonces), so the wrapped backend recognises it.
///
/// Declared differences from the wrapped backend's capabilities: no search
/// ([`Error::NotSupported`]: the backend holds no text to search), and a lower
/// `max_message_bytes` (three quarters of the wrapped limit, less 64 KiB, as sealed
/// values are base64). Titles are limited to 3,000 bytes (sealed, they must stay under
/// the core's 4,096). The ids under `chatvault-crypt.` are reserved for key stores: they
/// read as missing, are never listed, and cannot be created.
#[derive(Debug)]
pub struct EncryptedMessages<B: MessagesBackend> {
    inner: B,
    keyring: Keyring,
    owners: Mutex<lru::LruCache<ConversationId, Owner>>,
}

impl<B: MessagesBackend> EncryptedMessages<B> {
    /// Seals what is stored in `inner` with keys from `keyring`.
    pub fn new(inner: B, keyring: Keyring) -> Self {
        let cap = NonZeroUsize::new(OWNER_CACHE).unwrap_or(NonZeroUsize::MIN);
        EncryptedMessages {
            inner,
            keyring,
            owners: Mutex::new(lru::LruCache::new(cap)),
        }
    }

    /// The wrapped backend (which sees only what is stored).
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The keyring.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// The header new values of conversation `id` are sealed with.
    pub(crate) async fn current_header(
        &self,
        id: &ConversationId,
    ) -> Result<crate::format::Header> {
        let owner = self.owner_of(id).await?;
        Ok(self.keyring.for_writing(&owner).await?.0)
    }

    fn opener(&self) -> Opener<'_> {
        Opener {
            keyring: &self.keyring,
        }
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, lru::LruCache<ConversationId, Owner>> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The owner of conversation `id` (NotFound when it does not exist).
    async fn owner_of(&self, id: &ConversationId) -> Result<Owner> {
        if is_key_conversation(id) {
            return Err(Error::conversation_not_found(id.as_str()));
        }
        if let Some(owner) = self.owners().get(id).cloned() {
            return Ok(owner);
        }
        let head = self.inner.head(id).await?;
        let record = head
            .ok_or_else(|| Error::conversation_not_found(id.as_str()))?
            .record;
        let owner = Owner::of(record.user_id.as_ref());
        self.owners().put(id.clone(), owner.clone());
        Ok(owner)
    }

    async fn sealing(&self, owner: &Owner) -> Result<Sealing> {
        let (header, keys) = self.keyring.for_writing(owner).await?;
        Ok(Sealing { header, keys })
    }

    /// The largest stored message the wrapped backend takes.
    fn inner_limit(&self) -> u64 {
        self.inner
            .capabilities()
            .max_message_bytes
            .unwrap_or(MAX_MESSAGE_BYTES as u64)
            .min(MAX_MESSAGE_BYTES as u64)
    }

    async fn open_messages(
        &self,
        id: &ConversationId,
        items: Vec<Message>,
    ) -> Result<Vec<Message>> {
        let opener = self.opener();
        let mut out = Vec::with_capacity(items.len());
        for m in items {
            out.push(opener.message(id, m).await?);
        }
        Ok(out)
    }

    /// The messages an append returned, in clear: those stored just now as sealed here
    /// take the caller's content (no need to open what was just sealed); others (a
    /// retry's stored messages, perhaps updated since) are opened.
    async fn appended(
        &self,
        id: &ConversationId,
        stored: Vec<Message>,
        sealed: &[NewMessage],
        clear: Vec<NewMessage>,
    ) -> Result<Vec<Message>> {
        let mut out = Vec::with_capacity(stored.len());
        for ((mut m, s), c) in stored.into_iter().zip(sealed).zip(clear) {
            if m.id == s.id && m.revision == 1 && m.parts == s.parts && m.metadata == s.metadata {
                m.parts = c.parts;
                m.metadata = c.metadata;
                out.push(m);
            } else {
                out.push(self.opener().message(id, m).await?);
            }
        }
        Ok(out)
    }

    /// An append the wrapped backend refused as AlreadyExists may be a retry sealed with
    /// another key version: compare in clear, as [`check_replay`] defines.
    async fn replay(&self, id: &ConversationId, new: &[NewMessage]) -> Result<Option<Appended>> {
        let mut stored = Vec::with_capacity(new.len());
        for m in new {
            stored.push(match self.inner.message(id, &m.id).await? {
                Some(s) => Some(self.opener().message(id, s).await?),
                None => None,
            });
        }
        let Some(messages) = check_replay(new, stored)? else {
            return Ok(None);
        };
        let head = self.inner.head(id).await?;
        let record = head
            .ok_or_else(|| Error::conversation_not_found(id.as_str()))?
            .record;
        let record = self.opener().record(record).await?;
        Ok(Some(Appended::new(record, messages)))
    }

    /// Titles the conversation with `title` (from [`first_user_title`]) when the append
    /// left it without one, as [`ConversationRecord::apply_append`] would have from the
    /// clear text (the wrapped backend sees none). A second write: a concurrent rename
    /// between the two can be overwritten, and a crash between them leaves the
    /// conversation untitled until its next user message.
    async fn auto_title(
        &self,
        sealing: &Sealing,
        id: &ConversationId,
        record: ConversationRecord,
        title: Option<String>,
    ) -> Result<ConversationRecord> {
        if record.title.is_some() {
            return Ok(record);
        }
        let Some(title) = title else {
            return Ok(record);
        };
        let title = truncate_title(title);
        let patch = ConversationPatch {
            title: Some(sealing.title(id, &title)?),
            ..Default::default()
        };
        let updated = self.inner.update(id, &patch).await?;
        self.opener().record(updated).await
    }
}

/// The auto-title of a batch: from its first user message that gives one.
fn first_user_title(batch: &[NewMessage]) -> Option<String> {
    batch
        .iter()
        .filter(|m| Role::from(m.role.as_str()) == Role::User)
        .find_map(|m| auto_title(&m.content()))
}

/// An auto-title over [`MAX_SEALED_TITLE`] bytes cut at a character boundary.
fn truncate_title(mut title: String) -> String {
    if title.len() > MAX_SEALED_TITLE {
        let mut cut = MAX_SEALED_TITLE - 3;
        while !title.is_char_boundary(cut) {
            cut -= 1;
        }
        title.truncate(cut);
        title.push_str("...");
    }
    title
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<B: MessagesBackend> MessagesBackend for EncryptedMessages<B> {
    fn capabilities(&self) -> MessagesCapabilities {
        let inner = self.inner.capabilities();
        let limit = (self.inner_limit() * 3 / 4).saturating_sub(SEALING_MARGIN);
        MessagesCapabilities::basic()
            .with_concurrent_appends(inner.concurrent_appends)
            .with_multi_process(inner.multi_process)
            .with_list_all(inner.list_all)
            .with_search(false)
            .with_max_message_bytes(Some(limit))
            .with_max_append_messages(inner.max_append_messages)
    }

    async fn create(&self, record: &ConversationRecord) -> Result<()> {
        if is_key_conversation(&record.id) {
            return Err(Error::invalid_input(
                "conversation id",
                "ids starting with \"chatvault-crypt.\" are reserved for key stores",
            ));
        }
        let owner = Owner::of(record.user_id.as_ref());
        let mut sealed = record.clone();
        if let Some(title) = &record.title {
            sealed.title = Some(self.sealing(&owner).await?.title(&record.id, title)?);
        }
        self.inner.create(&sealed).await?;
        self.owners().put(record.id.clone(), owner);
        Ok(())
    }

    async fn head(&self, id: &ConversationId) -> Result<Option<ConversationHead>> {
        if is_key_conversation(id) {
            return Ok(None);
        }
        let Some(head) = self.inner.head(id).await? else {
            return Ok(None);
        };
        let record = self.opener().record(head.record).await?;
        let mut files = Vec::with_capacity(head.files.len());
        for f in head.files {
            files.push(self.opener().attachment(id, f, false).await?);
        }
        Ok(Some(ConversationHead::new(record, files)))
    }

    async fn append_messages_as(
        &self,
        owner: Option<&UserId>,
        id: &ConversationId,
        mut messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        let key_owner = match owner {
            // The wrapped backend checks it in its atomic write: nothing is stored under
            // this owner's key unless the conversation is theirs.
            Some(user) if !is_key_conversation(id) => Owner::of(Some(user)),
            _ => self.owner_of(id).await?,
        };
        let sealing = self.sealing(&key_owner).await?;
        let limit = self.inner_limit() as usize;
        let mut sealed = Vec::with_capacity(messages.len());
        for m in &mut messages {
            let mut s = sealing.new_message(id, m)?;
            // A bound from string lengths where it settles it; the exact size otherwise.
            let size = match sealed_json_bound(&s) {
                Some(bound) if bound <= limit => bound,
                _ => sealed_json_len(&mut s),
            };
            if size > limit {
                return Err(Error::TooLarge {
                    what: format!("message {} (sealed)", m.id),
                    size: size as u64,
                    limit: limit as u64,
                });
            }
            sealed.push(s);
        }
        let appended = match self
            .inner
            .append_messages_as(owner, id, sealed.clone())
            .await
        {
            Ok(appended) => appended,
            Err(
                e @ Error::AlreadyExists {
                    kind: "message", ..
                },
            ) => {
                return match self.replay(id, &messages).await? {
                    Some(replayed) => Ok(replayed),
                    None => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        // The auto-title's text, taken before the messages move (only for a conversation
        // that has no title: a sealed title is stored whenever a clear one is).
        let title = match appended.record.title {
            None => first_user_title(&messages),
            Some(_) => None,
        };
        let opened = self
            .appended(id, appended.messages, &sealed, messages)
            .await?;
        let record = self.opener().record(appended.record).await?;
        let record = self.auto_title(&sealing, id, record, title).await?;
        Ok(Appended::new(record, opened))
    }

    async fn update_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        let owner = self.owner_of(id).await?;
        let sealed = self
            .sealing(&owner)
            .await?
            .update(id, message_id, update.clone())?;
        let updated = self
            .inner
            .update_message(id, message_id, expected_revision, &sealed)
            .await?;
        Ok(MessageUpdated::new(
            self.opener().record(updated.record).await?,
            self.opener().message(id, updated.message).await?,
        ))
    }

    async fn message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        if is_key_conversation(id) {
            return Err(Error::conversation_not_found(id.as_str()));
        }
        match self.inner.message(id, message_id).await? {
            Some(m) => Ok(Some(self.opener().message(id, m).await?)),
            None => Ok(None),
        }
    }

    async fn messages(&self, id: &ConversationId, range: &MessageRange) -> Result<Page<Message>> {
        if is_key_conversation(id) {
            return Err(Error::conversation_not_found(id.as_str()));
        }
        let page = self.inner.messages(id, range).await?;
        Ok(Page {
            items: self.open_messages(id, page.items).await?,
            next_cursor: page.next_cursor,
        })
    }

    async fn list_conversations(
        &self,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        let mut options = options.clone();
        loop {
            let page = self.inner.list_conversations(user_id, &options).await?;
            let mut items = Vec::with_capacity(page.items.len());
            for mut s in page.items {
                if is_key_conversation(&s.id) {
                    continue;
                }
                s.title = self.opener().title(&s.id, s.title.as_deref(), true).await?;
                items.push(s);
            }
            // A page of nothing but key stores: go on rather than answer an empty page
            // that is not the end.
            match page.next_cursor {
                Some(cursor) if items.is_empty() => options = options.cursor(&cursor)?,
                next_cursor => return Ok(Page { items, next_cursor }),
            }
        }
    }

    async fn update(
        &self,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> Result<ConversationRecord> {
        let mut sealed = patch.clone();
        if let Some(title) = &patch.title {
            let owner = self.owner_of(id).await?;
            sealed.title = Some(self.sealing(&owner).await?.title(id, title)?);
        } else if is_key_conversation(id) {
            return Err(Error::conversation_not_found(id.as_str()));
        }
        let record = self.inner.update(id, &sealed).await?;
        self.opener().record(record).await
    }

    async fn add_file(
        &self,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> Result<ConversationRecord> {
        let owner = self.owner_of(id).await?;
        let names = self.keyring.names().await?;
        let sealed = self.sealing(&owner).await?.attachment(&names, id, file)?;
        let record = self.inner.add_file(id, &sealed).await?;
        self.opener().record(record).await
    }

    async fn remove_file(
        &self,
        id: &ConversationId,
        file_id: &FileId,
    ) -> Result<Option<ConversationRecord>> {
        if is_key_conversation(id) {
            return Err(Error::conversation_not_found(id.as_str()));
        }
        match self.inner.remove_file(id, file_id).await? {
            Some(record) => Ok(Some(self.opener().record(record).await?)),
            None => Ok(None),
        }
    }

    async fn begin_delete(&self, id: &ConversationId) -> Result<Option<Vec<FileAttachment>>> {
        if is_key_conversation(id) {
            return Ok(None);
        }
        let Some(files) = self.inner.begin_delete(id).await? else {
            return Ok(None);
        };
        // Lenient: the attachments of an owner whose key was shredded keep their stored
        // keys, which still find the bytes, so that the delete removes them.
        let mut out = Vec::with_capacity(files.len());
        for f in files {
            out.push(self.opener().attachment(id, f, true).await?);
        }
        Ok(Some(out))
    }

    async fn delete(&self, id: &ConversationId) -> Result<bool> {
        if is_key_conversation(id) {
            return Ok(false);
        }
        let deleted = self.inner.delete(id).await?;
        self.owners().pop(id);
        Ok(deleted)
    }

    /// The inner backend's, without the wrapper's key conversations (ids are stored in
    /// clear).
    async fn list_deleting(
        &self,
        user_id: Option<&UserId>,
        limit: PageLimit,
    ) -> Result<Vec<ConversationId>> {
        let mut ids = self.inner.list_deleting(user_id, limit).await?;
        ids.retain(|id| !is_key_conversation(id));
        Ok(ids)
    }

    async fn search(
        &self,
        _user_id: &UserId,
        _query: &str,
        _options: &SearchOptions,
    ) -> Result<Page<SearchHit>> {
        Err(Error::search_not_supported("chatvault-crypt"))
    }
}
