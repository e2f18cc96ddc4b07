//! [`DynamoMessages`]: conversations and messages in one DynamoDB table.

mod item;
mod table;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, Put, PutRequest, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update, WriteRequest,
};
use chatvault_core::{
    Appended, ConversationPatch, ConversationRecord, ConversationSummary, Error, FileAttachment,
    ListCursor, ListOptions, Message, MessageRange, MessagesBackend, NewMessage, Page, Result,
    StoredConversation, apply_add_file, apply_remove_file, async_trait, keys, now,
};
use futures_util::{StreamExt, TryStreamExt};

use crate::sdk::{self, ClientSettings, backoff, sdk_error};
use item::*;

pub(crate) const BACKEND: &str = "dynamodb";

/// The most messages one `append_messages` call takes: a DynamoDB transaction holds at
/// most 100 writes, and one of them is the conversation item.
pub const MAX_APPEND_MESSAGES: usize = 99;

/// The default of [`DynamoMessagesBuilder::max_write_attempts`].
pub const DEFAULT_MAX_WRITE_ATTEMPTS: u32 = 50;

const BACKOFF_BASE: Duration = Duration::from_millis(5);
const BACKOFF_CAP: Duration = Duration::from_millis(250);
/// BatchWriteItem takes at most 25 requests.
const BATCH_WRITE_MAX: usize = 25;
/// Attempts at writing a batch's `UnprocessedItems`.
const BATCH_ATTEMPTS: u32 = 10;
/// BatchWriteItem calls in flight at once (`save`, `delete`).
const BATCH_CONCURRENCY: usize = 4;
/// Conversations read at once by `get_by_user`.
const GET_CONCURRENCY: usize = 8;

/// Conversations and their messages in one DynamoDB table.
///
/// One item per message and one item per conversation (see the crate docs for the exact
/// layout), so a conversation has no size limit, and every operation but the whole-
/// conversation ones (`get`, `save`, `delete`) costs the same however long the
/// conversation is:
///
/// - `append_messages`: one consistent `GetItem` of the conversation item, then one
///   `TransactWriteItems` (the conversation item's update, conditional on its `version`,
///   plus one `Put` per message, each conditional on the item not existing). A writer
///   that lost a race re-reads and retries with jittered backoff, up to
///   [`max_write_attempts`](DynamoMessagesBuilder::max_write_attempts), then answers
///   [`Error::Conflict`]. At most [`MAX_APPEND_MESSAGES`] messages per call and 4 MB per
///   call (DynamoDB's transaction limits), each message at most 400 KB as an item: larger
///   appends are refused with [`Error::TooLarge`] before anything is written (split them
///   into several calls if they need not be atomic).
/// - `messages`: one consistent `Query` on the key range of the window (a backend page is
///   cut at DynamoDB's 1 MB, with `next_cursor` set); an empty window costs a `GetItem`
///   more, to tell an empty range from a missing conversation.
/// - `list_conversations`: a `Query` of a GSI, newest activity first.
/// - `update`, `add_file`, `remove_file`: `GetItem`, then an update of the conversation
///   item conditional on `version` (retried like appends), never touching the message
///   items.
/// - `create`: a put conditional on the id being free ([`Error::AlreadyExists`]).
/// - `delete`: first marks the conversation item as being deleted (a tombstone and a new
///   `version`), which makes every later append or change fail with [`Error::NotFound`],
///   even one that read the conversation before; then deletes the message items; then the
///   conversation item. However busy the conversation, the delete cannot be starved, and
///   no message item outlives it. Interrupted, it leaves the conversation readable (not
///   writable), and calling it again finishes the job.
///
/// Every conditional write is sent as a `TransactWriteItems`, even a single one, for its
/// idempotency token: when the SDK retries a write whose answer was lost (a timeout, a
/// 5xx), DynamoDB recognises the token and does not apply it twice. When the SDK gives up
/// on a write with a temporary error, the backend reads whether it committed before
/// answering (`append_messages`: is its first message stored; `create`: is the
/// conversation there as written; `update`, `add_file`, `remove_file`: does the
/// conversation, at the version written or later, hold the change), and answers success
/// when it did, so a caller never has to guess. When that read fails too, the answer is
/// a temporary error saying that the outcome is unknown. A transaction DynamoDB cancels
/// for throttling is a temporary error too; nothing of it was written. (Transactional
/// writes cost 2 WCU per KB instead of 1.)
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
    client: Client,
    table: String,
    max_write_attempts: u32,
}

impl fmt::Debug for DynamoMessages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamoMessages")
            .field("table", &self.table)
            .field("max_write_attempts", &self.max_write_attempts)
            .finish_non_exhaustive()
    }
}

/// Why a transaction failed.
enum TxError {
    /// The condition of action `index` failed; `item` is that item as it is now, when
    /// DynamoDB returned it.
    Condition { index: usize, item: Option<Item> },
    /// A concurrent transaction touched the same item (DynamoDB, not DynamoDB Local).
    Conflict,
    /// An item would exceed 400 KB.
    TooLarge,
    /// DynamoDB cancelled the transaction for throttling: nothing was written, and a
    /// later retry may succeed.
    Throttled(Box<SdkError<TransactWriteItemsError, HttpResponse>>),
    /// Anything else.
    Sdk(Box<SdkError<TransactWriteItemsError, HttpResponse>>),
}

/// A write whose answer was lost (the SDK gave up on a timeout or a 5xx) and whose effect
/// could not be read back either: whether it committed is unknown.
#[derive(Debug)]
struct OutcomeUnknown {
    /// What was being written: `"add_file on conversation c1"`.
    what: String,
    /// The error of the read that was to tell whether the write committed.
    check: Error,
    /// The write's own error.
    write: Box<SdkError<TransactWriteItemsError, HttpResponse>>,
}

impl fmt::Display for OutcomeUnknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: the outcome is unknown: the write's answer was lost ({}) and reading whether it committed failed ({}); read the conversation before retrying",
            self.what,
            aws_sdk_dynamodb::error::DisplayErrorContext(&*self.write),
            self.check
        )
    }
}

impl std::error::Error for OutcomeUnknown {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.write)
    }
}

/// The temporary error of a write whose outcome is unknown (see [`OutcomeUnknown`]).
fn outcome_unknown(
    what: String,
    write: Box<SdkError<TransactWriteItemsError, HttpResponse>>,
    check: Error,
) -> Error {
    Error::temporary(BACKEND, OutcomeUnknown { what, check, write })
}

/// The conversation and its attachments from a conversation item read by a writer: a
/// missing item, or one carrying the tombstone of a deletion in progress, is
/// [`Error::NotFound`].
fn writable(id: &str, item: Option<Item>) -> Result<(ConversationRecord, Vec<FileAttachment>)> {
    match item {
        Some(item) if !is_deleting(&item) => decode_conversation(&item),
        _ => Err(Error::conversation_not_found(id)),
    }
}

fn is_size_message(message: Option<&str>) -> bool {
    let message = message.unwrap_or_default().to_ascii_lowercase();
    message.contains("size") && message.contains("exceed")
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
            client,
            table: table.into(),
            max_write_attempts: DEFAULT_MAX_WRITE_ATTEMPTS,
        }
    }

    /// A builder for every other setting: endpoint, timeouts, retries, write attempts.
    pub fn builder(table: impl Into<String>) -> DynamoMessagesBuilder {
        DynamoMessagesBuilder {
            table: table.into(),
            source: Source::Env,
            settings: ClientSettings::default(),
            max_write_attempts: DEFAULT_MAX_WRITE_ATTEMPTS,
        }
    }

    /// The SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table's name.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    async fn pause(attempt: u32) {
        tokio::time::sleep(backoff(attempt, BACKOFF_BASE, BACKOFF_CAP)).await;
    }

    fn conflict(&self, id: &str, what: &str) -> Error {
        Error::Conflict {
            message: format!(
                "{what} on conversation {id}: concurrent writers won {} attempts in a row",
                self.max_write_attempts
            ),
        }
    }

    /// The conversation item, read consistently.
    async fn read_item(&self, id: &str) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(conversation_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(BACKEND, e))?;
        Ok(out.item)
    }

    /// Whether an append of `stored` committed: its first message is in the table.
    async fn committed(&self, id: &str, stored: &[Message]) -> Result<bool> {
        let Some(first) = stored.first() else {
            return Ok(false);
        };
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(id, message_sk(first.seq))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(BACKEND, e))?;
        Ok(out
            .item
            .is_some_and(|item| decode_message(&item).is_ok_and(|m| m.id == first.id)))
    }

    async fn read_conversation(
        &self,
        id: &str,
    ) -> Result<Option<(ConversationRecord, Vec<FileAttachment>)>> {
        if keys::validate_id("conversation id", id).is_err() {
            // No such id can have been stored (create validates it).
            return Ok(None);
        }
        self.read_item(id)
            .await?
            .map(|item| decode_conversation(&item))
            .transpose()
    }

    /// The conversation as a writer sees it: [`Error::NotFound`] when it is missing or
    /// being deleted.
    async fn read_writable(&self, id: &str) -> Result<(ConversationRecord, Vec<FileAttachment>)> {
        if keys::validate_id("conversation id", id).is_err() {
            return Err(Error::conversation_not_found(id));
        }
        writable(id, self.read_item(id).await?)
    }

    async fn require_conversation(
        &self,
        id: &str,
    ) -> Result<(ConversationRecord, Vec<FileAttachment>)> {
        self.read_conversation(id)
            .await?
            .ok_or_else(|| Error::conversation_not_found(id))
    }

    /// A strongly consistent `Query` on one conversation's partition, with `#pk = :pk`
    /// bound and `#sk` named; the caller adds the key condition and the rest.
    fn query_partition(&self, id: &str) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(id))
            .consistent_read(true)
    }

    /// Every message item of a conversation, in `seq` order.
    async fn all_messages(&self, id: &str) -> Result<Vec<Message>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .query_partition(id)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :m)")
                .expression_attribute_values(":m", s(MESSAGE_PREFIX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error(BACKEND, e))?;
            for item in page.items() {
                out.push(decode_message(item)?);
            }
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(out),
            }
        }
    }

    /// The keys of every item under a conversation's partition key.
    async fn all_keys(&self, id: &str) -> Result<Vec<Item>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .query_partition(id)
                .key_condition_expression("#pk = :pk")
                .projection_expression("#pk, #sk")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error(BACKEND, e))?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(out),
            }
        }
    }

    /// Writes `requests` with `BatchWriteItem`, 25 at a time (a few batches at once),
    /// retrying unprocessed items with backoff.
    async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<()> {
        let mut batches = Vec::with_capacity(requests.len().div_ceil(BATCH_WRITE_MAX));
        let mut requests = requests.into_iter().peekable();
        while requests.peek().is_some() {
            batches.push(requests.by_ref().take(BATCH_WRITE_MAX).collect::<Vec<_>>());
        }
        futures_util::stream::iter(batches)
            .map(|batch| self.write_batch(batch))
            .buffer_unordered(BATCH_CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    async fn write_batch(&self, mut batch: Vec<WriteRequest>) -> Result<()> {
        let mut attempt = 0;
        loop {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, batch)
                .send()
                .await
                .map_err(|e| sdk_error(BACKEND, e))?;
            batch = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.table))
                .unwrap_or_default();
            if batch.is_empty() {
                return Ok(());
            }
            attempt += 1;
            if attempt >= BATCH_ATTEMPTS {
                return Err(Error::temporary(
                    BACKEND,
                    format!(
                        "BatchWriteItem left {} items unprocessed after {BATCH_ATTEMPTS} attempts",
                        batch.len()
                    ),
                ));
            }
            Self::pause(attempt + 3).await;
        }
    }

    fn delete_request(key: Item) -> Result<WriteRequest> {
        Ok(WriteRequest::builder()
            .delete_request(
                DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .map_err(|e| Error::backend(BACKEND, e))?,
            )
            .build())
    }

    fn put_request(item: Item) -> Result<WriteRequest> {
        Ok(WriteRequest::builder()
            .put_request(
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(|e| Error::backend(BACKEND, e))?,
            )
            .build())
    }

    /// Step 1 of `delete`: marks the conversation item as being deleted and moves its
    /// `version` on, so that every writer's condition fails from now on. Returns the new
    /// version, or `None` when there is no conversation item.
    async fn tombstone(&self, id: &str) -> Result<Option<u64>> {
        for attempt in 0..self.max_write_attempts {
            let updated = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(conversation_key(id)))
                .update_expression("SET #deleting = :true ADD #version :one")
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#deleting", DELETING)
                .expression_attribute_names("#version", VERSION)
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":true", AttributeValue::Bool(true))
                .expression_attribute_values(":one", n(1))
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await;
            match updated {
                Ok(out) => return get_n(&out.attributes.unwrap_or_default(), VERSION).map(Some),
                Err(e) => match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(_)) => return Ok(None),
                    // A transaction on the item is in flight: it loses to the next try.
                    Some(UpdateItemError::TransactionConflictException(_)) => {
                        Self::pause(attempt).await;
                    }
                    _ => return Err(sdk_error(BACKEND, e)),
                },
            }
        }
        Err(self.conflict(id, "delete"))
    }

    /// Step 2 of `delete`: deletes every item under the conversation's key but the
    /// conversation item. Idempotent.
    async fn delete_message_items(&self, id: &str) -> Result<()> {
        let deletes = self
            .all_keys(id)
            .await?
            .into_iter()
            .filter(|k| !matches!(k.get(SK), Some(AttributeValue::S(sk)) if sk == CONVERSATION_SK))
            .map(Self::delete_request)
            .collect::<Result<Vec<_>>>()?;
        self.batch_write(deletes).await
    }

    /// The conversation item's update that `SET`s the given attributes if `version` is
    /// still `expected` (returning the item as it is when it is not).
    fn conditional_update(
        &self,
        id: &str,
        expected: u64,
        set: Vec<(&'static str, AttributeValue)>,
    ) -> Result<TransactWriteItem> {
        let mut names = HashMap::from([("#version".to_owned(), VERSION.to_owned())]);
        let mut values = HashMap::from([(":expected".to_owned(), n(expected))]);
        let mut assignments = Vec::with_capacity(set.len());
        for (i, (name, value)) in set.into_iter().enumerate() {
            if name == VERSION {
                assignments.push("#version = :new_version".to_owned());
                values.insert(":new_version".to_owned(), value);
            } else {
                assignments.push(format!("#a{i} = :v{i}"));
                names.insert(format!("#a{i}"), name.to_owned());
                values.insert(format!(":v{i}"), value);
            }
        }
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(conversation_key(id)))
            .update_expression(format!("SET {}", assignments.join(", ")))
            .condition_expression("#version = :expected")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| Error::backend(BACKEND, e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Sends one `TransactWriteItems` and sorts out why it failed.
    ///
    /// Every conditional write goes through a transaction, even a single one, for its
    /// idempotency token: the SDK sends the same token when it retries after a timeout or
    /// a 5xx, and DynamoDB answers such a retry of a transaction that did commit with
    /// success, where a retried `UpdateItem` would fail its condition (and look like a
    /// lost race) or apply twice.
    async fn transact(&self, actions: Vec<TransactWriteItem>) -> std::result::Result<(), TxError> {
        let err = match self
            .client
            .transact_write_items()
            .set_transact_items(Some(actions))
            .send()
            .await
        {
            Ok(_) => return Ok(()),
            Err(err) => err,
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(canceled)) =
            err.as_service_error()
        else {
            if err.code() == Some("ValidationException") && is_size_message(err.message()) {
                return Err(TxError::TooLarge);
            }
            return Err(TxError::Sdk(Box::new(err)));
        };
        let reasons = canceled.cancellation_reasons();
        if let Some((index, reason)) = reasons
            .iter()
            .enumerate()
            .find(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
        {
            return Err(TxError::Condition {
                index,
                item: reason.item().cloned(),
            });
        }
        if reasons
            .iter()
            .any(|r| r.code() == Some("TransactionConflict"))
        {
            return Err(TxError::Conflict);
        }
        if reasons.iter().any(|r| {
            matches!(
                r.code(),
                Some("ThrottlingError" | "ProvisionedThroughputExceeded" | "RequestLimitExceeded")
            )
        }) {
            return Err(TxError::Throttled(Box::new(err)));
        }
        if reasons.iter().any(|r| is_size_message(r.message())) {
            return Err(TxError::TooLarge);
        }
        Err(TxError::Sdk(Box::new(err)))
    }

    /// The read-modify-write loop of `update`, `add_file` and `remove_file`:
    /// `change` computes the attributes to set from the current record and files
    /// (`Ok(None)`: nothing to write), and the write is retried while other writers win.
    ///
    /// When the SDK gives up on the write with a temporary error (its answer may have
    /// been lost after it committed), the conversation is read again: if its version is at
    /// least the one written and `holds` says it carries the change, the write committed
    /// and that record is the answer. If that read fails too, the error says that the
    /// outcome is unknown.
    async fn modify<T>(
        &self,
        id: &str,
        what: &str,
        mut change: impl FnMut(
            &mut ConversationRecord,
            &mut Vec<FileAttachment>,
        ) -> Result<Option<(Vec<(&'static str, AttributeValue)>, T)>>,
        holds: impl Fn(&ConversationRecord, &[FileAttachment]) -> bool,
    ) -> Result<(ConversationRecord, Option<T>)> {
        let mut current = self.read_item(id).await?;
        for attempt in 0..self.max_write_attempts {
            let (mut record, mut files) = writable(id, current)?;
            let expected = record.version;
            let Some((set, out)) = change(&mut record, &mut files)? else {
                return Ok((record, None));
            };
            let size = conversation_item_size(&conversation_item(&record, &files)?);
            if size > MAX_ITEM_SIZE {
                return Err(Error::TooLarge {
                    what: format!("conversation {id} as a DynamoDB item after {what}"),
                    size,
                    limit: MAX_ITEM_SIZE,
                });
            }
            let update = self.conditional_update(id, expected, set)?;
            let latest = match self.transact(vec![update]).await {
                Ok(()) => return Ok((record, Some(out))),
                Err(TxError::Condition { item, .. }) => item,
                Err(TxError::Conflict) => None,
                Err(TxError::TooLarge) => {
                    return Err(Error::TooLarge {
                        what: format!("conversation {id} as a DynamoDB item after {what}"),
                        size,
                        limit: MAX_ITEM_SIZE,
                    });
                }
                Err(TxError::Throttled(e)) => return Err(Error::temporary(BACKEND, *e)),
                Err(TxError::Sdk(e)) if sdk::is_temporary(&e) => {
                    // The answer may have been lost after the write committed: look.
                    let now = match self.read_item(id).await {
                        Ok(now) => now,
                        Err(check) => {
                            return Err(outcome_unknown(
                                format!("{what} on conversation {id}"),
                                e,
                                check,
                            ));
                        }
                    };
                    if let Some(item) = now {
                        let (now, now_files) = decode_conversation(&item)?;
                        if now.version >= record.version && holds(&now, &now_files) {
                            return Ok((now, Some(out)));
                        }
                    }
                    return Err(sdk_error(BACKEND, *e));
                }
                Err(TxError::Sdk(e)) => return Err(sdk_error(BACKEND, *e)),
            };
            Self::pause(attempt).await;
            current = match latest {
                Some(item) => Some(item),
                None => self.read_item(id).await?,
            };
        }
        Err(self.conflict(id, what))
    }

    /// Turns a range into a key range, queries it, and pages the result.
    async fn query_range(&self, id: &str, range: &MessageRange) -> Result<Page<Message>> {
        let empty = Page {
            items: Vec::new(),
            next_cursor: None,
        };
        let (low, high, forward, limit) = match *range {
            MessageRange::After { after, limit } => {
                let Some(first) = after.checked_add(1) else {
                    return Ok(empty);
                };
                if limit == Some(0) {
                    return Ok(empty);
                }
                (first, u64::MAX, true, limit)
            }
            MessageRange::Before { before, limit } => {
                let last = match before {
                    None => u64::MAX,
                    Some(0 | 1) => return Ok(empty),
                    Some(b) => b - 1,
                };
                if limit == 0 {
                    return Ok(empty);
                }
                (0, last, false, Some(limit))
            }
        };
        // One more than asked for tells whether more lie beyond.
        let query_limit = limit.map(|l| i32::try_from(l.saturating_add(1)).unwrap_or(i32::MAX));
        let mut start = None;
        loop {
            let out = self
                .query_partition(id)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :low AND :high")
                .expression_attribute_values(":low", s(message_sk(low)))
                .expression_attribute_values(":high", s(message_sk(high)))
                .scan_index_forward(forward)
                .set_limit(query_limit)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error(BACKEND, e))?;
            let mut items = out
                .items()
                .iter()
                .map(decode_message)
                .collect::<Result<Vec<_>>>()?;
            if items.is_empty() {
                if let Some(key) = out.last_evaluated_key {
                    start = Some(key);
                    continue;
                }
                return Ok(empty);
            }
            let mut more = out.last_evaluated_key.is_some();
            if let Some(limit) = limit
                && items.len() > limit
            {
                items.truncate(limit);
                more = true;
            }
            if !forward {
                items.reverse();
            }
            let next_cursor = match (more, forward) {
                (false, _) => None,
                (true, true) => items.last().map(|m| m.seq.to_string()),
                (true, false) => items.first().map(|m| m.seq.to_string()),
            };
            return Ok(Page { items, next_cursor });
        }
    }

    /// Up to `want` summaries of one GSI partition, newest activity first, strictly after
    /// `after` (an activity key).
    async fn query_index(
        &self,
        index: &'static str,
        hash_attribute: &'static str,
        hash_value: String,
        after: Option<&str>,
        include_archived: bool,
        want: usize,
    ) -> Result<Vec<(String, ConversationSummary)>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .expression_attribute_names("#h", hash_attribute)
                .expression_attribute_values(":h", s(hash_value.clone()))
                .scan_index_forward(false)
                .limit(i32::try_from(want.clamp(1, 1000)).unwrap_or(1000))
                .set_exclusive_start_key(start);
            query = match after {
                Some(after) => query
                    .key_condition_expression("#h = :h AND #act < :after")
                    .expression_attribute_names("#act", ACTIVITY)
                    .expression_attribute_values(":after", s(after)),
                None => query.key_condition_expression("#h = :h"),
            };
            if !include_archived {
                query = query
                    .filter_expression("#archived = :false")
                    .expression_attribute_names("#archived", ARCHIVED)
                    .expression_attribute_values(":false", AttributeValue::Bool(false));
            }
            let page = query.send().await.map_err(|e| sdk_error(BACKEND, e))?;
            for item in page.items() {
                let summary = decode_summary(item)?;
                out.push((activity(summary.last_active, &summary.id), summary));
                if out.len() >= want {
                    return Ok(out);
                }
            }
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(out),
            }
        }
    }
}

/// Maps an SDK error, turning DynamoDB's item-size `ValidationException` into
/// [`Error::TooLarge`].
fn size_or_sdk_error<E>(err: SdkError<E, HttpResponse>, what: String, size: u64) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = err.message().unwrap_or_default().to_ascii_lowercase();
    if err.code() == Some("ValidationException")
        && message.contains("size")
        && message.contains("exceed")
    {
        return Error::TooLarge {
            what,
            size,
            limit: MAX_ITEM_SIZE,
        };
    }
    sdk_error(BACKEND, err)
}

fn check_item_size(what: impl FnOnce() -> String, item: &Item) -> Result<u64> {
    check_size(what, item_size(item))
}

/// `size` if it is within DynamoDB's item limit, else [`Error::TooLarge`] for `what`.
fn check_size(what: impl FnOnce() -> String, size: u64) -> Result<u64> {
    if size > MAX_ITEM_SIZE {
        return Err(Error::TooLarge {
            what: what(),
            size,
            limit: MAX_ITEM_SIZE,
        });
    }
    Ok(size)
}

#[async_trait]
impl MessagesBackend for DynamoMessages {
    /// Rewrites the whole conversation: the conversation item, every message item, and
    /// deletes message items the new version no longer has.
    ///
    /// Not atomic (a reader may see a mix while it runs; a failure leaves a mix that
    /// another `save` repairs): it is meant for imports and migrations; the vault itself
    /// never calls it. Messages must have distinct, increasing `seq` values
    /// (1..=`message_count` as appends make them).
    async fn save(&self, conversation: &StoredConversation) -> Result<()> {
        let record = &conversation.record;
        record.validate()?;
        let id = &record.id;
        let mut previous = 0;
        let mut items = Vec::with_capacity(conversation.messages.len());
        for m in &conversation.messages {
            keys::validate_id("message id", &m.id)?;
            if m.seq <= previous {
                return Err(Error::invalid_input(
                    "messages",
                    format!(
                        "seq values must increase from 1: {} follows {previous}",
                        m.seq
                    ),
                ));
            }
            previous = m.seq;
            let item = message_item(id, m)?;
            check_item_size(|| format!("message {} as a DynamoDB item", m.id), &item)?;
            items.push(item);
        }
        let conversation_item = conversation_item(record, &conversation.files)?;
        check_size(
            || format!("conversation {id} as a DynamoDB item"),
            conversation_item_size(&conversation_item),
        )?;
        let keep: HashSet<String> = conversation
            .messages
            .iter()
            .map(|m| message_sk(m.seq))
            .collect();
        let stale: Vec<Item> = self
            .all_keys(id)
            .await?
            .into_iter()
            .filter(|k| match k.get(SK) {
                Some(AttributeValue::S(sk)) => sk != CONVERSATION_SK && !keep.contains(sk),
                _ => false,
            })
            .collect();
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(conversation_item))
            .send()
            .await
            .map_err(|e| size_or_sdk_error(e, format!("conversation {id}"), 0))?;
        let puts = items
            .into_iter()
            .map(Self::put_request)
            .collect::<Result<Vec<_>>>()?;
        self.batch_write(puts).await?;
        let deletes = stale
            .into_iter()
            .map(Self::delete_request)
            .collect::<Result<Vec<_>>>()?;
        self.batch_write(deletes).await
    }

    async fn get(&self, id: &str) -> Result<Option<StoredConversation>> {
        let Some((record, files)) = self.read_conversation(id).await? else {
            return Ok(None);
        };
        let messages = self.all_messages(id).await?;
        Ok(Some(StoredConversation {
            record,
            messages,
            files,
        }))
    }

    /// Lists the user's conversations on the `by_user` GSI (eventually consistent), then
    /// reads each.
    async fn get_by_user(&self, user_id: &str) -> Result<Vec<StoredConversation>> {
        if keys::validate_user_id(user_id).is_err() {
            return Ok(Vec::new());
        }
        let listed = self
            .query_index(
                BY_USER_INDEX,
                USER_ID,
                user_id.to_owned(),
                None,
                true,
                usize::MAX,
            )
            .await?;
        let conversations: Vec<Option<StoredConversation>> =
            futures_util::stream::iter(listed.into_iter().map(|(_, s)| s.id))
                .map(|id| async move { self.get(&id).await })
                .buffered(GET_CONCURRENCY)
                .try_collect()
                .await?;
        Ok(conversations
            .into_iter()
            .flatten()
            .filter(|c| c.record.user_id.as_deref() == Some(user_id))
            .collect())
    }

    /// Deletes the conversation in three steps, so that no concurrent writer can keep it
    /// alive:
    ///
    /// 1. The conversation item gets a tombstone (`deleting`) and a new `version`. From then
    ///    on every append and every change fails with [`Error::NotFound`], even one that
    ///    read the conversation before: its transaction is conditional on the version it
    ///    read, which is gone.
    /// 2. Every message item under the conversation's key is deleted (`Query`, then
    ///    `BatchWriteItem`s, retrying unprocessed items).
    /// 3. The conversation item is deleted, conditional on the tombstone's version.
    ///
    /// If it fails part-way, the conversation is still there (readers see it until
    /// step 3, writers do not) and calling `delete` again finishes the job and answers
    /// `true`. For a conversation that does not exist it answers `false`, after deleting
    /// any message items left under the id.
    async fn delete(&self, id: &str) -> Result<bool> {
        if keys::validate_id("conversation id", id).is_err() {
            return Ok(false);
        }
        let Some(mut version) = self.tombstone(id).await? else {
            self.delete_message_items(id).await?;
            return Ok(false);
        };
        for attempt in 0..self.max_write_attempts {
            self.delete_message_items(id).await?;
            let deleted = self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(conversation_key(id)))
                .condition_expression("#version = :version AND #deleting = :true")
                .expression_attribute_names("#version", VERSION)
                .expression_attribute_names("#deleting", DELETING)
                .expression_attribute_values(":version", n(version))
                .expression_attribute_values(":true", AttributeValue::Bool(true))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match deleted {
                Ok(_) => return Ok(true),
                Err(e) => match e.as_service_error() {
                    Some(DeleteItemError::ConditionalCheckFailedException(failed)) => {
                        match failed.item() {
                            // Gone: a concurrent delete finished first, or the SDK retried
                            // ours after losing the answer.
                            None => return Ok(true),
                            // Written since the tombstone (by a chatvault-aws that knows no
                            // tombstones): clean up again.
                            Some(item) if is_deleting(item) => version = get_n(item, VERSION)?,
                            Some(_) => {
                                return Err(Error::backend(
                                    BACKEND,
                                    format!(
                                        "conversation {id} was replaced (save) while it was being deleted; some of its message items may be gone"
                                    ),
                                ));
                            }
                        }
                    }
                    Some(DeleteItemError::TransactionConflictException(_)) => {}
                    _ => return Err(sdk_error(BACKEND, e)),
                },
            }
            Self::pause(attempt).await;
        }
        // Not a Conflict: the tombstone and some deletions are written. Another call
        // finishes the job.
        Err(Error::temporary(
            BACKEND,
            format!(
                "delete of conversation {id} is not finished: the conversation item changed or conflicted {} times in a row while its messages were deleted; call delete again",
                self.max_write_attempts
            ),
        ))
    }

    /// A transaction of one conditional put (see the type's docs). When the SDK gives up
    /// with a temporary error, the item is read back: if it is the conversation written
    /// (same creation time and owner, at least the version written), the create
    /// committed and the answer is `Ok`; if that read fails, the error says that the
    /// outcome is unknown.
    async fn create(&self, record: &ConversationRecord) -> Result<()> {
        record.validate()?;
        let item = conversation_item(record, &[])?;
        let size = check_size(
            || format!("conversation {} as a DynamoDB item", record.id),
            conversation_item_size(&item),
        )?;
        // What reads back if this create commits (times at the stored precision).
        let (written, _) = decode_conversation(&item)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(|e| Error::backend(BACKEND, e))?;
        // A transaction of one, for its idempotency token (see `transact`): a create that
        // the SDK retried after a timeout must not come back as AlreadyExists.
        match self
            .transact(vec![TransactWriteItem::builder().put(put).build()])
            .await
        {
            Ok(()) => Ok(()),
            Err(TxError::Condition { .. }) => Err(Error::AlreadyExists {
                kind: "conversation",
                id: record.id.clone(),
            }),
            Err(TxError::Conflict) => Err(Error::Conflict {
                message: format!("conversation {} is being created concurrently", record.id),
            }),
            Err(TxError::TooLarge) => Err(Error::TooLarge {
                what: format!("conversation {} as a DynamoDB item", record.id),
                size,
                limit: MAX_ITEM_SIZE,
            }),
            Err(TxError::Throttled(e)) => Err(Error::temporary(BACKEND, *e)),
            Err(TxError::Sdk(e)) if sdk::is_temporary(&e) => {
                // The answer may have been lost after the put committed: look.
                let now = match self.read_item(&record.id).await {
                    Ok(now) => now,
                    Err(check) => {
                        return Err(outcome_unknown(
                            format!("create of conversation {}", record.id),
                            e,
                            check,
                        ));
                    }
                };
                if let Some(item) = now {
                    let (now, _) = decode_conversation(&item)?;
                    if now.created_at == written.created_at
                        && now.user_id == written.user_id
                        && now.version >= written.version
                    {
                        return Ok(());
                    }
                }
                Err(sdk_error(BACKEND, *e))
            }
            Err(TxError::Sdk(e)) => Err(sdk_error(BACKEND, *e)),
        }
    }

    async fn get_record(&self, id: &str) -> Result<Option<ConversationRecord>> {
        Ok(self.read_conversation(id).await?.map(|(record, _)| record))
    }

    async fn get_record_with_files(
        &self,
        id: &str,
    ) -> Result<Option<(ConversationRecord, Vec<FileAttachment>)>> {
        // One GetItem: the attachments live in the conversation item.
        self.read_conversation(id).await
    }

    async fn append_messages(&self, id: &str, messages: Vec<NewMessage>) -> Result<Appended> {
        for m in &messages {
            keys::validate_id("message id", &m.id)?;
        }
        if messages.is_empty() {
            let (record, _) = self.read_writable(id).await?;
            return Ok(Appended {
                record,
                messages: Vec::new(),
            });
        }
        if messages.len() > MAX_APPEND_MESSAGES {
            return Err(Error::TooLarge {
                what: format!(
                    "one append of {} messages (a DynamoDB transaction holds 100 writes, one of them the conversation)",
                    messages.len()
                ),
                size: messages.len() as u64,
                limit: MAX_APPEND_MESSAGES as u64,
            });
        }
        let (mut current, mut files) = self.read_writable(id).await?;
        for attempt in 0..self.max_write_attempts {
            let expected = current.version;
            let mut record = current.clone();
            let stored = record.apply_append(messages.clone(), now());

            let mut actions = Vec::with_capacity(stored.len() + 1);
            let mut total = 0;
            let mut set = vec![
                (MESSAGE_COUNT, n(record.message_count)),
                (LAST_ACTIVE, s(format_time(record.last_active))),
                (ACTIVITY, s(activity(record.last_active, id))),
            ];
            if record.title != current.title
                && let Some(title) = &record.title
            {
                set.push((TITLE, s(title)));
            }
            let mut names = HashMap::from([("#version".to_owned(), VERSION.to_owned())]);
            let mut values = HashMap::from([
                (":expected".to_owned(), n(expected)),
                (":new_version".to_owned(), n(record.version)),
            ]);
            let mut assignments = vec!["#version = :new_version".to_owned()];
            for (i, (name, value)) in set.into_iter().enumerate() {
                names.insert(format!("#a{i}"), name.to_owned());
                values.insert(format!(":v{i}"), value);
                assignments.push(format!("#a{i} = :v{i}"));
            }
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(conversation_key(id)))
                .update_expression(format!("SET {}", assignments.join(", ")))
                .condition_expression("#version = :expected")
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(|e| Error::backend(BACKEND, e))?;
            actions.push(TransactWriteItem::builder().update(update).build());
            for m in &stored {
                let item = message_item(id, m)?;
                total += check_item_size(|| format!("message {} as a DynamoDB item", m.id), &item)?;
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(#pk)")
                    .expression_attribute_names("#pk", PK)
                    .build()
                    .map_err(|e| Error::backend(BACKEND, e))?;
                actions.push(TransactWriteItem::builder().put(put).build());
            }
            // The conversation item counts too, whole: DynamoDB counts the item as it is
            // after the update, attachment list included.
            total += check_size(
                || format!("conversation {id} as a DynamoDB item"),
                conversation_item_size(&conversation_item(&record, &files)?),
            )?;
            if total > MAX_TRANSACTION_SIZE {
                return Err(Error::TooLarge {
                    what: format!(
                        "one append of {} messages (a DynamoDB transaction holds 4 MB)",
                        stored.len()
                    ),
                    size: total,
                    limit: MAX_TRANSACTION_SIZE,
                });
            }

            let latest = match self.transact(actions).await {
                Ok(()) => {
                    return Ok(Appended {
                        record,
                        messages: stored,
                    });
                }
                // Another writer moved the conversation on: start again from its new
                // state (returned with the failure, or read again).
                Err(TxError::Condition { index: 0, item }) => item,
                // DynamoDB saw a concurrent transaction on the same items.
                Err(TxError::Conflict) => None,
                Err(TxError::Condition { index, .. }) => {
                    return Err(Error::backend(
                        BACKEND,
                        format!(
                            "conversation {id}: a message item at seq {} exists already, beyond the conversation's message_count (stale items in the table?)",
                            stored.get(index - 1).map_or(0, |m| m.seq)
                        ),
                    ));
                }
                Err(TxError::TooLarge) => {
                    return Err(Error::TooLarge {
                        what: format!("one append of {} messages", stored.len()),
                        size: total,
                        limit: MAX_TRANSACTION_SIZE,
                    });
                }
                Err(TxError::Throttled(e)) => return Err(Error::temporary(BACKEND, *e)),
                Err(TxError::Sdk(e)) if sdk::is_temporary(&e) => {
                    // The SDK gave up (timeouts, 5xx) without knowing whether the
                    // transaction committed: look before answering, so that the caller
                    // does not append the same messages twice on a retry.
                    return match self.committed(id, &stored).await {
                        Ok(true) => Ok(Appended {
                            record,
                            messages: stored,
                        }),
                        Ok(false) => Err(sdk_error(BACKEND, *e)),
                        Err(check) => Err(outcome_unknown(
                            format!("append to conversation {id}"),
                            e,
                            check,
                        )),
                    };
                }
                Err(TxError::Sdk(e)) => return Err(sdk_error(BACKEND, *e)),
            };
            Self::pause(attempt).await;
            (current, files) = match latest {
                Some(item) => writable(id, Some(item))?,
                None => writable(id, self.read_item(id).await?)?,
            };
        }
        Err(self.conflict(id, "append"))
    }

    async fn messages(&self, id: &str, range: &MessageRange) -> Result<Page<Message>> {
        if keys::validate_id("conversation id", id).is_err() {
            return Err(Error::conversation_not_found(id));
        }
        let page = self.query_range(id, range).await?;
        if page.items.is_empty() && self.read_item(id).await?.is_none() {
            return Err(Error::conversation_not_found(id));
        }
        Ok(page)
    }

    /// A page of summaries from a GSI: `by_user` for one user (one `Query`, more when
    /// archived conversations are filtered out), `by_activity` for everyone (one `Query`
    /// per shard, 8, merged). GSIs are eventually consistent: a change shows up in
    /// listings a moment after it is written on AWS.
    async fn list_conversations(
        &self,
        user_id: Option<&str>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        let cursor = options.validate()?;
        if user_id.is_some_and(|u| keys::validate_user_id(u).is_err()) {
            // No conversation can belong to it (create validates user ids), and DynamoDB
            // refuses an empty key value.
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        let after = cursor.map(|c| activity(c.last_active, &c.id));
        let want = options.limit + 1;
        let mut found = match user_id {
            Some(user) => {
                self.query_index(
                    BY_USER_INDEX,
                    USER_ID,
                    user.to_owned(),
                    after.as_deref(),
                    options.include_archived,
                    want,
                )
                .await?
            }
            None => {
                let shards = (0..LIST_SHARDS).map(|shard| {
                    self.query_index(
                        BY_ACTIVITY_INDEX,
                        LIST_SHARD,
                        shard_name(shard),
                        after.as_deref(),
                        options.include_archived,
                        want,
                    )
                });
                futures_util::future::try_join_all(shards)
                    .await?
                    .into_iter()
                    .flatten()
                    .collect()
            }
        };
        found.sort_by(|a, b| b.0.cmp(&a.0));
        let more = found.len() > options.limit;
        found.truncate(options.limit);
        let items: Vec<ConversationSummary> = found.into_iter().map(|(_, s)| s).collect();
        let next_cursor = if more {
            items.last().map(|s| ListCursor::after(s).encode())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn update(&self, id: &str, patch: &ConversationPatch) -> Result<ConversationRecord> {
        patch.validate()?;
        if keys::validate_id("conversation id", id).is_err() {
            return Err(Error::conversation_not_found(id));
        }
        let (record, _) = self
            .modify(
                id,
                "update",
                |record, _files| {
                    if !record.apply_patch(patch) {
                        return Ok(None);
                    }
                    let mut set = vec![
                        (VERSION, n(record.version)),
                        (ARCHIVED, AttributeValue::Bool(record.archived)),
                        (METADATA, s(json(&record.metadata)?)),
                    ];
                    if let Some(title) = &record.title {
                        set.push((TITLE, s(title)));
                    }
                    Ok(Some((set, ())))
                },
                |record, _files| {
                    patch
                        .title
                        .as_ref()
                        .is_none_or(|t| record.title.as_ref() == Some(t))
                        && patch.archived.is_none_or(|a| record.archived == a)
                        && patch
                            .metadata
                            .as_ref()
                            .is_none_or(|m| &record.metadata == m)
                },
            )
            .await?;
        Ok(record)
    }

    async fn files(&self, id: &str) -> Result<Vec<FileAttachment>> {
        Ok(self.require_conversation(id).await?.1)
    }

    async fn add_file(&self, id: &str, file: FileAttachment) -> Result<ConversationRecord> {
        if keys::validate_id("conversation id", id).is_err() {
            return Err(Error::conversation_not_found(id));
        }
        let (record, _) = self
            .modify(
                id,
                "add_file",
                |record, files| {
                    apply_add_file(record, files, &file)?;
                    files.push(file.clone());
                    Ok(Some((file_changes(record, files)?, ())))
                },
                |_record, files| files.iter().any(|f| f.id == file.id),
            )
            .await?;
        Ok(record)
    }

    async fn remove_file(&self, id: &str, file_id: &str) -> Result<Option<ConversationRecord>> {
        if keys::validate_id("conversation id", id).is_err() {
            return Err(Error::conversation_not_found(id));
        }
        let (record, removed) = self
            .modify(
                id,
                "remove_file",
                |record, files| {
                    let Some(pos) = files.iter().position(|f| f.id == file_id) else {
                        return Ok(None);
                    };
                    files.remove(pos);
                    apply_remove_file(record);
                    Ok(Some((file_changes(record, files)?, ())))
                },
                |_record, files| files.iter().all(|f| f.id != file_id),
            )
            .await?;
        Ok(removed.map(|()| record))
    }
}

/// The attributes an attachment change sets.
fn file_changes(
    record: &ConversationRecord,
    files: &[FileAttachment],
) -> Result<Vec<(&'static str, AttributeValue)>> {
    Ok(vec![
        (VERSION, n(record.version)),
        (FILES, s(json(files)?)),
        (FILE_COUNT, n(record.file_count)),
        (LAST_ACTIVE, s(format_time(record.last_active))),
        (ACTIVITY, s(activity(record.last_active, &record.id))),
    ])
}

/// Where a client for the builder comes from.
#[derive(Clone, Debug)]
enum Source {
    Env,
    Sdk(Box<SdkConfig>),
    Client(Box<Client>),
}

/// Builds a [`DynamoMessages`]; from [`DynamoMessages::builder`].
#[derive(Clone, Debug)]
#[must_use = "call .build().await"]
pub struct DynamoMessagesBuilder {
    table: String,
    source: Source,
    settings: ClientSettings,
    max_write_attempts: u32,
}

impl DynamoMessagesBuilder {
    /// Starts from a loaded SDK configuration (default: loaded from the environment at
    /// [`build`](Self::build)).
    pub fn sdk_config(mut self, sdk: &SdkConfig) -> Self {
        self.source = Source::Sdk(Box::new(sdk.clone()));
        self
    }

    /// Starts from a ready client's configuration; the settings below are applied on top.
    pub fn client(mut self, client: Client) -> Self {
        self.source = Source::Client(Box::new(client));
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
    /// [`DEFAULT_MAX_WRITE_ATTEMPTS`]; at least 1).
    pub fn max_write_attempts(mut self, attempts: u32) -> Self {
        self.max_write_attempts = attempts;
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
        let mut config = match self.source {
            Source::Env => aws_sdk_dynamodb::config::Builder::from(&sdk::load_sdk_config().await),
            Source::Sdk(sdk) => aws_sdk_dynamodb::config::Builder::from(&*sdk),
            Source::Client(client) => client.config().to_builder(),
        };
        if let Some(url) = self.settings.endpoint_url {
            config = config.endpoint_url(url);
        }
        if let Some(timeouts) = self.settings.timeout_config {
            config = config.timeout_config(timeouts);
        }
        if let Some(retries) = self.settings.retry_config {
            config = config.retry_config(retries);
        }
        Ok(DynamoMessages {
            client: Client::from_conf(config.build()),
            table: self.table,
            max_write_attempts: self.max_write_attempts,
        })
    }
}
