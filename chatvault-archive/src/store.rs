//! A store: the two backends an archive moves data between, and what to move.

use std::sync::Arc;

use chatvault_core::backend::MessagesCapabilities;
use chatvault_core::{ConversationId, FilesBackend, ListOptions, MessagesBackend, UserId};
use chrono::{DateTime, Utc};

use crate::error::Result;

/// The conversations per listing page.
pub(crate) const LIST_PAGE: usize = 100;

/// A messages backend and the files backend that holds its attachments' bytes.
#[derive(Clone, Debug)]
pub struct Store {
    /// Conversations and messages.
    pub messages: Arc<dyn MessagesBackend>,
    /// Attachment bytes.
    pub files: Arc<dyn FilesBackend>,
}

impl Store {
    /// A store of these two backends.
    pub fn new(messages: impl MessagesBackend, files: impl FilesBackend) -> Self {
        Store {
            messages: Arc::new(messages),
            files: Arc::new(files),
        }
    }

    /// What the messages backend can do.
    pub fn capabilities(&self) -> MessagesCapabilities {
        self.messages.capabilities()
    }
}

/// Which conversations an operation covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every conversation of every owner (needs a backend that lists all:
    /// [`MessagesCapabilities::list_all`]).
    All,
    /// Every conversation of one owner.
    Owner(UserId),
    /// One conversation.
    Conversation(ConversationId),
}

/// Lists the ids of the conversations in `scope`, archived ones included, one listing
/// page at a time: memory holds one page, never the store.
#[derive(Debug)]
pub struct ConversationIds {
    store: Store,
    scope: Scope,
    page: std::vec::IntoIter<ConversationId>,
    cursor: Option<String>,
    done: bool,
    since: Option<DateTime<Utc>>,
}

impl ConversationIds {
    /// Starts listing `scope` in `store`.
    pub fn new(store: &Store, scope: Scope) -> Self {
        ConversationIds {
            store: store.clone(),
            scope,
            page: Vec::new().into_iter(),
            cursor: None,
            done: false,
            since: None,
        }
    }

    /// Lists only conversations active at or after `since` (their `last_active`). A
    /// listing is newest activity first, so it stops at the first older conversation:
    /// what is read is bounded by what is listed. [`Scope::Conversation`] still yields
    /// its id (the caller checks the record's `last_active`).
    pub fn active_since(mut self, since: DateTime<Utc>) -> Self {
        self.since = Some(since);
        self
    }

    /// The next id, or `None` when the listing is done.
    pub async fn next(&mut self) -> Result<Option<ConversationId>> {
        loop {
            if let Some(id) = self.page.next() {
                return Ok(Some(id));
            }
            if self.done {
                return Ok(None);
            }
            let owner = match &self.scope {
                Scope::Conversation(id) => {
                    self.done = true;
                    self.page = vec![id.clone()].into_iter();
                    continue;
                }
                Scope::All => None,
                Scope::Owner(user) => Some(user),
            };
            let mut options = ListOptions::new().limit(LIST_PAGE)?.include_archived(true);
            if let Some(cursor) = self.cursor.take() {
                options = options.cursor(&cursor)?;
            }
            let page = self
                .store
                .messages
                .list_conversations(owner, &options)
                .await?;
            self.done = page.next_cursor.is_none();
            self.cursor = page.next_cursor;
            let since = self.since;
            let before = page.items.len();
            let ids: Vec<ConversationId> = page
                .items
                .into_iter()
                .take_while(|s| since.is_none_or(|t| s.last_active >= t))
                .map(|s| s.id)
                .collect();
            if ids.len() < before {
                // Newest activity first: everything after this one is older still.
                self.done = true;
            }
            self.page = ids.into_iter();
        }
    }
}
