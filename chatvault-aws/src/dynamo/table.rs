//! [`Table`]: what every read and write of the backend works with: the client, the
//! table's name and settings, and the state shared by clones of the backend.

use std::fmt;
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use chatvault_core::backend::{ConversationId, Error, Result};

use super::layout::item::{Item, PK, SK, conversation_key, s};
use super::limits::{BACKEND, BACKOFF_BASE, BACKOFF_CAP};
use super::seen::SeenCache;
use super::turns::Turns;
use crate::sdk::{backoff, sdk_error};

/// The table and the backend's state: the parts under `read/` and `write/` take it.
#[derive(Clone)]
pub(crate) struct Table {
    pub(crate) client: Client,
    pub(crate) name: String,
    pub(crate) max_write_attempts: u32,
    /// Conversations as last written or read, shared by clones.
    pub(crate) seen: Arc<SeenCache>,
    /// Appends from this process to one conversation take turns, shared by clones.
    pub(crate) turns: Arc<Turns>,
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoMessages")
            .field("table", &self.name)
            .field("max_write_attempts", &self.max_write_attempts)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl Table {
    /// The table `name` through `client`, with a seen cache of `seen_cache_bytes`.
    pub(crate) fn new(
        client: Client,
        name: String,
        max_write_attempts: u32,
        seen_cache_bytes: u64,
    ) -> Self {
        Table {
            client,
            name,
            max_write_attempts,
            seen: Arc::new(SeenCache::new(seen_cache_bytes)),
            turns: Arc::default(),
        }
    }

    /// Sleeps before try `attempt + 1` of a write that lost a race.
    pub(crate) async fn pause(attempt: u32) {
        tokio::time::sleep(backoff(attempt, BACKOFF_BASE, BACKOFF_CAP)).await;
    }

    /// The error of a write that lost `max_write_attempts` races in a row.
    pub(crate) fn conflict(&self, id: &ConversationId, what: &str) -> Error {
        Error::Conflict {
            message: format!(
                "{what} on conversation {id}: concurrent writers won {} attempts in a row",
                self.max_write_attempts
            ),
        }
    }

    /// One item, read consistently.
    pub(crate) async fn get(&self, key: Item) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(BACKEND, e))?;
        Ok(out.item)
    }

    /// The conversation item, read consistently.
    pub(crate) async fn read_item(&self, id: &ConversationId) -> Result<Option<Item>> {
        self.get(conversation_key(id)).await
    }

    /// A strongly consistent `Query` on one conversation's partition, with `#pk = :pk`
    /// bound and `#sk` named; the caller adds the key condition and the rest.
    pub(crate) fn query_partition(&self, id: &ConversationId) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.name)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(id.as_str()))
            .consistent_read(true)
    }
}
