//! The backend's name, limits and retry settings.

use std::time::Duration;

pub(crate) const BACKEND: &str = "dynamodb";

/// The most messages one `append_messages` call takes: an append may seal the tail with
/// it in one DynamoDB transaction (at most 100 writes: the conversation item, the chunk
/// items, and an id marker for each sealed message).
pub const MAX_APPEND_MESSAGES: usize = 49;

/// The largest message `DynamoMessages` stores, in bytes of its JSON form (what
/// [`MessagesCapabilities::max_message_bytes`](chatvault_core::backend::MessagesCapabilities)
/// declares): sealed, a message may be a chunk item of its own, of at most DynamoDB's
/// 400 KB, which also holds its keys and attribute names.
pub const MAX_MESSAGE_BYTES: u64 = 400 * 1024 - 1024;

/// The default of [`DynamoMessagesBuilder::max_write_attempts`](crate::DynamoMessagesBuilder::max_write_attempts).
pub const DEFAULT_MAX_WRITE_ATTEMPTS: u32 = 50;

pub(crate) const BACKOFF_BASE: Duration = Duration::from_millis(5);
pub(crate) const BACKOFF_CAP: Duration = Duration::from_millis(250);
/// BatchWriteItem takes at most 25 requests.
pub(crate) const BATCH_WRITE_MAX: usize = 25;
/// Attempts at writing a batch's `UnprocessedItems`.
pub(crate) const BATCH_ATTEMPTS: u32 = 10;
/// BatchWriteItem calls in flight at once (`delete`); BatchGetItem calls
/// (`list_deleting`).
pub(crate) const BATCH_CONCURRENCY: usize = 4;
/// Stale deletion markers `list_deleting` removes at once.
pub(crate) const DELETING_CHECKS: usize = 8;
/// BatchGetItem takes at most 100 keys.
pub(crate) const BATCH_GET_MAX: usize = 100;
