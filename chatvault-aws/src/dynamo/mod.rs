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
use chatvault_core::backend::Error;
use chatvault_core::backend::Result;

use builder::DynamoMessagesBuilder;
pub use limits::{DEFAULT_MAX_WRITE_ATTEMPTS, MAX_APPEND_MESSAGES, MAX_MESSAGE_BYTES};
use read::deleting::Deleting;
use read::head::Heads;
use read::listing::Listing;
use read::lookup::Lookup;
use read::range::Ranges;
pub use seen::DEFAULT_SEEN_CACHE_BYTES;
use table::Table;
use write::append::Appender;
use write::delete::Deleter;
use write::record::Records;
use write::seal::Sealer;
use write::update::Updater;

use crate::sdk;

/// Conversations and their messages in one DynamoDB table.
///
/// A conversation item carries the most recent messages (its tail); older messages are
/// sealed from it into chunk items, so a conversation has no size limit and every
/// operation but `delete` costs the same however long the conversation is. The crate
/// docs give the [table's layout](crate#the-dynamodb-table) and the
/// [requests of each operation](crate#costs-and-limits).
///
/// - Appends are atomic, ordered under any number of writers, and idempotent by message
///   id: ids already stored make the append a retry, answered with the stored messages
///   or [`Error::AlreadyExists`]. At most [`MAX_APPEND_MESSAGES`] messages and 4 MB per
///   call, each message at most [`MAX_MESSAGE_BYTES`]: larger appends are refused with
///   [`Error::TooLarge`] before anything is written.
/// - A write that keeps losing races to other writers answers [`Error::Conflict`] after
///   [`max_write_attempts`](crate::DynamoMessagesBuilder::max_write_attempts); so does
///   `update_message` when another writer moved the message on.
/// - A write whose answer was lost is checked before it is reported: success when it
///   committed, and [`Error::OutcomeUnknown`] (not temporary) only when that check
///   fails too. Retry an append with the same message ids.
/// - `begin_delete` makes every later write fail with [`Error::NotFound`] and every read
///   see no conversation; an interrupted `delete` is finished by calling it again.
/// - No append waits for a seal: a full tail is copied into its chunk item by a task on
///   the Tokio runtime and dropped from the tail by a later append's own write
///   ([`background_seals`](crate::DynamoMessagesBuilder::background_seals),
///   [`finish_seals`](Self::finish_seals)).
/// - Branches: each message's JSON keeps its parent, and the branch table travels in the
///   conversation item, written with every change of it; an edit or a regenerated reply
///   is an append, a switch or a rewind one conditional write, at any depth.
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
    /// The client, the table's name and write settings.
    table: Table,
    /// Conversation items, and the seen cache.
    heads: Heads,
    lookup: Lookup,
    ranges: Ranges,
    listing: Listing,
    deleting: Deleting,
    appender: Appender,
    updater: Updater,
    records: Records,
    deleter: Deleter,
}

impl fmt::Debug for DynamoMessages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoMessages")
            .field("table", &self.table.name)
            .field("max_write_attempts", &self.table.max_write_attempts)
            .field("seen", &self.heads)
            .finish_non_exhaustive()
    }
}

impl DynamoMessages {
    /// A builder for every other setting: endpoint, timeouts, retries, write attempts.
    pub fn builder(table: impl Into<String>) -> DynamoMessagesBuilder {
        DynamoMessagesBuilder::new(table.into())
    }

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
        let table = Table::new(client, table.into(), DEFAULT_MAX_WRITE_ATTEMPTS);
        Self::assemble(table, DEFAULT_SEEN_CACHE_BYTES, true)
    }

    /// The backend on `table`, its parts sharing one seen cache of `seen_cache_bytes`,
    /// sealing tails in the background or not.
    fn assemble(table: Table, seen_cache_bytes: u64, background_seals: bool) -> Self {
        let heads = Heads::new(table.clone(), seen_cache_bytes);
        let lookup = Lookup::new(table.clone(), heads.clone());
        let sealer = Sealer::new(table.clone(), heads.clone());
        DynamoMessages {
            ranges: Ranges::new(table.clone(), heads.clone()),
            listing: Listing::new(table.clone()),
            deleting: Deleting::new(table.clone()),
            appender: Appender::new(
                table.clone(),
                heads.clone(),
                lookup.clone(),
                sealer.clone(),
                background_seals,
            ),
            updater: Updater::new(table.clone(), heads.clone(), lookup.clone(), sealer),
            records: Records::new(table.clone(), heads.clone()),
            deleter: Deleter::new(table.clone(), heads.clone()),
            lookup,
            heads,
            table,
        }
    }

    /// Creates the table with its two GSIs (on-demand capacity) unless it exists, and
    /// waits until the table and its indexes are ACTIVE.
    ///
    /// Idempotent: an existing table is accepted if its key schema and indexes are the
    /// ones described in the crate docs; one of another shape is refused with
    /// [`Error::InvalidInput`]. Meant for tests, examples and first runs; production
    /// tables are usually provisioned with infrastructure code from the same definition.
    pub async fn create_table(&self) -> Result<()> {
        schema::create_table(&self.table.client, &self.table.name).await
    }

    /// Waits until the seals this backend began outside any append have ended.
    ///
    /// Once a conversation's tail holds 48 messages, a task no caller waits for copies
    /// them into a chunk item, and a later append drops them from the tail (see the
    /// crate's README, "The seal cycle"). Nothing depends on a copy finishing: one
    /// that never does (the process stopped, or an AWS Lambda environment frozen after
    /// its response) is redone, or the tail is sealed in a transaction once it reaches
    /// 96 messages. Call this before a process ends, or before freezing, to spare that
    /// work; tests call it to count requests without the copies'.
    pub async fn finish_seals(&self) {
        self.appender.finish_seals().await;
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
