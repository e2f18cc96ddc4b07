//! [`DynamoMessages`]: conversations and messages in one DynamoDB table.

mod backend;
pub(crate) mod builder;
mod layout;
mod limits;
mod read;
mod schema;
mod seen;
mod table;
mod turns;
mod write;

use std::fmt;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::Client;
#[cfg(doc)]
use chatvault_core::Error;

pub use limits::{DEFAULT_MAX_WRITE_ATTEMPTS, MAX_APPEND_MESSAGES, MAX_MESSAGE_BYTES};
pub use seen::DEFAULT_SEEN_CACHE_BYTES;
use table::Table;

use crate::sdk;

/// Conversations and their messages in one DynamoDB table.
///
/// A conversation item that carries the most recent messages (its tail), and chunk items
/// of older messages sealed from it, a run each (see the crate docs for the exact layout),
/// so a conversation has no size limit, a whole conversation is read in few items, and
/// every operation but `delete` costs the same however long the conversation is:
///
/// - `append_messages`: one `PutItem` of the conversation item with the messages added
///   to its tail, conditional on its `version` as this backend last saw it (and knew
///   whole); once in 48 messages, one `TransactWriteItems` that also seals the tail into
///   a chunk item (with an id marker for each sealed message). Message ids are looked up
///   first (in the tail written against, and through the id markers of ids that sort at
///   or before the sealed ones): ids already stored make the append a retry, answered
///   with the stored messages or [`Error::AlreadyExists`]. A consistent `GetItem` first
///   only for a conversation this backend has not written or read yet (see
///   [`seen_cache_bytes`](crate::DynamoMessagesBuilder::seen_cache_bytes)). A writer that lost
///   a race retries from the conversation as DynamoDB returned it with the failure, up
///   to [`max_write_attempts`](crate::DynamoMessagesBuilder::max_write_attempts), then answers
///   [`Error::Conflict`]. At most [`MAX_APPEND_MESSAGES`] messages per call and 4 MB per
///   call (DynamoDB's transaction limits), each message at most [`MAX_MESSAGE_BYTES`]:
///   larger appends are refused with [`Error::TooLarge`] before anything is written
///   (split them into several calls if they need not be atomic).
/// - `update_message`: a message of the tail is one `UpdateItem` of the conversation item
///   (conditional on its version); a sealed one is found through its id marker and
///   rewritten in its chunk in one `TransactWriteItems` with the conversation item
///   (conditional on the chunk's revision; [`Error::Conflict`] when another writer moved
///   the message on).
/// - `messages`: one consistent `Query` of the chunk items of the window (a backend page
///   is cut at DynamoDB's 1 MB, with `next_cursor` set); from the start of the
///   conversation the `Query` begins at the conversation item (is it there, not being
///   deleted, and its tail), otherwise a `GetItem` of it runs alongside. A page of 8
///   items or more is decoded on two threads (half on Tokio's blocking pool). The last
///   messages read the conversation item first: its tail often holds them.
/// - `list_conversations`: a `Query` of a GSI, newest activity first.
/// - `update`, `add_file`, `remove_file`: `GetItem`, then an update of the conversation
///   item conditional on `version` (retried like appends), never touching the chunks.
/// - `create`: a put conditional on the id being free ([`Error::AlreadyExists`]).
/// - `begin_delete`, and the first step of `delete`: marks the conversation item as being
///   deleted (a tombstone and a new `version`, and no `activity`, so listings leave it
///   out), which makes every later append or change fail with [`Error::NotFound`], even
///   one that read the conversation before, and every read see no conversation; then
///   `delete` deletes the chunk items and markers, then the conversation item. However
///   busy the conversation, the delete cannot be starved, and no message item outlives
///   it. Interrupted, it leaves the conversation marked, and calling it again finishes
///   the job.
///
/// Lost answers: when the SDK retries a transaction whose answer was lost (a timeout, a
/// 5xx), its idempotency token makes DynamoDB answer success without applying it twice;
/// a retried `PutItem` or `UpdateItem` fails its condition instead, and the append or
/// update finds its own change in the conversation item that comes back with the
/// failure. When the SDK gives up on a write with a temporary error, the backend reads
/// whether it committed before answering (`append_messages`: is its first message
/// stored; `create`: is the conversation there as written; `update`, `add_file`,
/// `remove_file`: does the conversation, at the version written or later, hold the
/// change), and answers success when it did, so a caller never has to guess. When that
/// read fails too, the answer is [`Error::OutcomeUnknown`] (not temporary: retry an
/// append with the same message ids, which the id lookup makes safe). A transaction
/// DynamoDB cancels for throttling is a temporary error too; nothing of it was written.
///
/// ```no_run
/// use chatvault_aws::DynamoMessages;
///
/// # async fn example() -> chatvault_core::Result<()> {
/// // Endpoint, region and credentials from the SDK's own configuration
/// // (AWS_ENDPOINT_URL_DYNAMODB points it at DynamoDB Local).
/// let messages = DynamoMessages::from_env("chatvault").await;
/// messages.create_table().await?; // idempotent; or provision it with your IaC
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DynamoMessages {
    table: Table,
}

impl fmt::Debug for DynamoMessages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.table.fmt(f)
    }
}

impl DynamoMessages {
    /// Conversations in `table`, with a client built from the SDK's own configuration
    /// (environment, `~/.aws/config`, instance metadata; `AWS_ENDPOINT_URL_DYNAMODB` or
    /// `AWS_ENDPOINT_URL` points it elsewhere).
    pub async fn from_env(table: impl Into<String>) -> Self {
        let sdk = sdk::load_sdk_config().await;
        Self::from_sdk_config(&sdk, table)
    }

    /// Conversations in `table`, with a client built from a loaded [`SdkConfig`].
    pub fn from_sdk_config(sdk: &SdkConfig, table: impl Into<String>) -> Self {
        Self::from_client(Client::new(sdk), table)
    }

    /// Conversations in `table`, through a ready client, used as it is.
    pub fn from_client(client: Client, table: impl Into<String>) -> Self {
        DynamoMessages {
            table: Table::new(
                client,
                table.into(),
                DEFAULT_MAX_WRITE_ATTEMPTS,
                DEFAULT_SEEN_CACHE_BYTES,
            ),
        }
    }

    /// The SDK client.
    pub fn client(&self) -> &Client {
        &self.table.client
    }

    /// The table's name.
    pub fn table_name(&self) -> &str {
        &self.table.name
    }
}
