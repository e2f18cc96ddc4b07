//! [`DynamoMessagesBuilder`]: every setting of a [`DynamoMessages`].

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::Client;
use chatvault_core::backend::{Error, Result};

use super::DynamoMessages;
use super::limits::DEFAULT_MAX_WRITE_ATTEMPTS;
use super::seen::DEFAULT_SEEN_CACHE_BYTES;
use super::table::Table;
use crate::sdk::{ClientSettings, Source};

/// Builds a [`DynamoMessages`]; from [`DynamoMessages::builder`].
#[derive(Clone, Debug)]
#[must_use = "call .build().await"]
pub struct DynamoMessagesBuilder {
    table: String,
    settings: ClientSettings<Client>,
    max_write_attempts: u32,
    seen_cache_bytes: u64,
    background_seals: bool,
}

impl DynamoMessagesBuilder {
    /// Every setting at its default, for the table `table`.
    pub(super) fn new(table: String) -> Self {
        DynamoMessagesBuilder {
            table,
            settings: ClientSettings::default(),
            max_write_attempts: DEFAULT_MAX_WRITE_ATTEMPTS,
            seen_cache_bytes: DEFAULT_SEEN_CACHE_BYTES,
            background_seals: true,
        }
    }

    /// Starts from a loaded SDK configuration (default: loaded from the environment at
    /// [`build`](Self::build)).
    pub fn sdk_config(mut self, sdk: &SdkConfig) -> Self {
        self.settings.source = Source::Sdk(Box::new(sdk.clone()));
        self
    }

    /// Starts from a ready client's configuration; the settings below are applied on top.
    pub fn client(mut self, client: Client) -> Self {
        self.settings.source = Source::Client(Box::new(client));
        self
    }

    /// Sends requests to this endpoint (DynamoDB Local: `http://localhost:8000`).
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.settings.endpoint_url = Some(url.into());
        self
    }

    /// Timeouts of the SDK client, e.g.
    /// `TimeoutConfig::builder().connect_timeout(Duration::from_secs(1)).operation_timeout(Duration::from_secs(10)).build()`.
    pub fn timeout_config(mut self, timeouts: TimeoutConfig) -> Self {
        self.settings.timeout_config = Some(timeouts);
        self
    }

    /// Retries of the SDK client (throttling, 5xx, connection errors), e.g.
    /// `RetryConfig::standard().with_max_attempts(2)`.
    pub fn retry_config(mut self, retries: RetryConfig) -> Self {
        self.settings.retry_config = Some(retries);
        self
    }

    /// How many times a conditional write (append, update, file change, and each step of
    /// a delete that a transaction in flight conflicts with) is tried while concurrent
    /// writers keep winning, before [`Error::Conflict`] (default
    /// [`DEFAULT_MAX_WRITE_ATTEMPTS`](crate::DEFAULT_MAX_WRITE_ATTEMPTS); at least 1).
    pub fn max_write_attempts(mut self, attempts: u32) -> Self {
        self.max_write_attempts = attempts;
        self
    }

    /// How many bytes of conversation records the backend keeps to append without
    /// reading (default [`DEFAULT_SEEN_CACHE_BYTES`](crate::DEFAULT_SEEN_CACHE_BYTES); 0: none).
    ///
    /// The backend remembers, per conversation, the record it last wrote or read (the
    /// least recently used are dropped first; attachment lists are not kept, only their
    /// size). An append writes against that version in one conditional `PutItem`; when
    /// another writer moved the conversation on, the condition fails, and DynamoDB
    /// returns the conversation as it is with the failure, so the retry needs no read
    /// either. With 0, every append reads the conversation item first (two requests).
    pub fn seen_cache_bytes(mut self, bytes: u64) -> Self {
        self.seen_cache_bytes = bytes;
        self
    }

    /// Whether tails are sealed outside the appends (default `true`).
    ///
    /// With `true`, once a conversation's tail holds 48 messages (or 48 KB), a task on the
    /// Tokio runtime copies them into a chunk item and a later append drops them from the
    /// tail in its own `PutItem`: no append waits for a seal, and the tail holds up to 96
    /// messages (96 KB) meanwhile. With `false`, the append that finds the tail full seals
    /// it in one `TransactWriteItems` (a transaction costs several times a `PutItem`), and
    /// nothing runs after an append returns: for environments that freeze between
    /// requests (AWS Lambda) and want every seal inside one. Both read what the other
    /// wrote. See also [`DynamoMessages::finish_seals`].
    pub fn background_seals(mut self, background: bool) -> Self {
        self.background_seals = background;
        self
    }

    /// Builds the backend. Fails with [`Error::InvalidInput`] for an empty table name or
    /// zero write attempts.
    pub async fn build(self) -> Result<DynamoMessages> {
        if self.table.is_empty() {
            return Err(Error::invalid_input("table", "must not be empty"));
        }
        if self.max_write_attempts == 0 {
            return Err(Error::invalid_input(
                "max_write_attempts",
                "must be at least 1",
            ));
        }
        let (config, _) = self
            .settings
            .config::<aws_sdk_dynamodb::config::Builder>()
            .await;
        let table = Table::new(
            Client::from_conf(config.build()),
            self.table,
            self.max_write_attempts,
        );
        Ok(DynamoMessages::assemble(
            table,
            self.seen_cache_bytes,
            self.background_seals,
        ))
    }
}
