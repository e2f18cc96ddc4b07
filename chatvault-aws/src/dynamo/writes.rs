//! The write path: one conditional-write helper ([`DynamoMessages::conditional_write`])
//! that sends a `TransactWriteItems` and maps every way it can fail onto what the caller
//! does next; appends (with their id markers), message updates, the read-modify-write
//! loop of the conversation item, and the batch writes and tombstone of deletes.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update, WriteRequest,
};
use chatvault_core::{
    Appended, ConversationId, ConversationRecord, Error, FileAttachment, Message, MessageId,
    MessageUpdate, MessageUpdated, NewMessage, Result, check_replay, check_unique_ids, now,
    revision_conflict,
};
use futures_util::{StreamExt, TryStreamExt};

use super::chunks::{
    Encoded, TAIL_MAX_BYTES, TAIL_MAX_MESSAGES, chunk_item, decode_tail, is_chunk, pack,
    tail_entries,
};
use super::item::*;
use super::queries::SealedLocation;
use super::seen::Seen;
use super::{
    BACKEND, BATCH_ATTEMPTS, BATCH_CONCURRENCY, BATCH_WRITE_MAX, DynamoMessages,
    MAX_APPEND_MESSAGES,
};
use crate::sdk::{self, sdk_error};

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

/// Why the outcome of a write is unknown: its answer was lost (the SDK gave up on a
/// timeout or a 5xx) and reading whether it committed failed too.
#[derive(Debug)]
struct LostAnswer {
    /// What was being written: `"add_file on conversation c1"`.
    what: String,
    /// The error of the read that was to tell whether the write committed.
    check: Error,
    /// The write's own error.
    write: Box<dyn std::error::Error + Send + Sync>,
}

impl fmt::Display for LostAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: the write's answer was lost ({}) and reading whether it committed failed ({}); retry with the same message ids, or read the conversation first",
            self.what,
            aws_sdk_dynamodb::error::DisplayErrorContext(&*self.write),
            self.check
        )
    }
}

impl std::error::Error for LostAnswer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.write)
    }
}

fn is_size_message(message: Option<&str>) -> bool {
    let message = message.unwrap_or_default().to_ascii_lowercase();
    message.contains("size") && message.contains("exceed")
}

/// What a transaction is, for its error messages: the operation (as
/// [`Error::OutcomeUnknown`] names it) and on what.
#[derive(Clone, Copy)]
pub(super) struct Op<'a> {
    pub(super) operation: &'static str,
    pub(super) id: &'a ConversationId,
}

impl fmt::Display for Op<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on conversation {}", self.operation, self.id)
    }
}

/// What a write does to the conversation item's tail.
pub(super) enum TailChange {
    /// Replaces it; with no entries, removes it.
    Replace(Vec<AttributeValue>),
    /// Replaces entry `.0`.
    Entry(usize, AttributeValue),
}

/// An update of the conversation item: `SET`s `set` (and changes the tail) if `version`
/// is still `expected` and each attribute of `unchanged` still has its value.
pub(super) struct ConvUpdate {
    pub(super) expected: u64,
    pub(super) unchanged: Vec<(&'static str, AttributeValue)>,
    pub(super) set: Vec<(&'static str, AttributeValue)>,
    pub(super) tail: Option<TailChange>,
}

/// The expressions of a [`ConvUpdate`].
struct Expressions {
    update: String,
    condition: String,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl ConvUpdate {
    fn expressions(self) -> Expressions {
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let condition = condition(self.expected, self.unchanged, &mut names, &mut values);
        let mut assignments = Vec::with_capacity(self.set.len() + 1);
        for (i, (name, value)) in self.set.into_iter().enumerate() {
            if name == VERSION {
                assignments.push("#version = :new_version".to_owned());
                values.insert(":new_version".to_owned(), value);
            } else {
                assignments.push(format!("#a{i} = :v{i}"));
                names.insert(format!("#a{i}"), name.to_owned());
                values.insert(format!(":v{i}"), value);
            }
        }
        let mut removes = Vec::new();
        if let Some(change) = self.tail {
            names.insert("#tail".to_owned(), TAIL.to_owned());
            match change {
                TailChange::Replace(entries) if entries.is_empty() => {
                    removes.push("#tail".to_owned());
                }
                TailChange::Replace(entries) => {
                    assignments.push("#tail = :tail".into());
                    values.insert(":tail".to_owned(), AttributeValue::L(entries));
                }
                TailChange::Entry(index, entry) => {
                    assignments.push(format!("#tail[{index}] = :tail"));
                    values.insert(":tail".to_owned(), entry);
                }
            }
        }
        let mut update = format!("SET {}", assignments.join(", "));
        if !removes.is_empty() {
            update.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        Expressions {
            update,
            condition,
            names,
            values,
        }
    }
}

/// The service errors of a single conditional write (`UpdateItem`, `PutItem`) that say
/// what became of it.
trait SingleWriteError: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static {
    /// A failed condition ([`Written::Moved`], with the item as it is) or a conflict with
    /// a transaction; `None` for any other error.
    fn written(&self) -> Option<Written>;
}

/// The same for each error enum: the SDK gives every operation its own.
macro_rules! single_write_errors {
    ($($error:ident),+) => {$(
        impl SingleWriteError for $error {
            fn written(&self) -> Option<Written> {
                match self {
                    $error::ConditionalCheckFailedException(failed) => {
                        Some(Written::Moved(failed.item().cloned()))
                    }
                    $error::TransactionConflictException(_) => Some(Written::Conflicted),
                    _ => None,
                }
            }
        }
    )+};
}

single_write_errors!(UpdateItemError, PutItemError);

/// The condition that the conversation item's `version` is still `expected` and each
/// attribute of `unchanged` still has its value (names and values added to the maps).
fn condition(
    expected: u64,
    unchanged: Vec<(&'static str, AttributeValue)>,
    names: &mut HashMap<String, String>,
    values: &mut HashMap<String, AttributeValue>,
) -> String {
    names.insert("#version".to_owned(), VERSION.to_owned());
    values.insert(":expected".to_owned(), n(expected));
    let mut conditions = vec!["#version = :expected".to_owned()];
    for (i, (name, value)) in unchanged.into_iter().enumerate() {
        conditions.push(format!("#c{i} = :c{i}"));
        names.insert(format!("#c{i}"), name.to_owned());
        values.insert(format!(":c{i}"), value);
    }
    conditions.join(" AND ")
}

impl DynamoMessages {
    /// The conversation item read by a writer, decoded and remembered: a missing item, or
    /// one carrying the tombstone of a deletion in progress, is [`Error::NotFound`].
    pub(super) fn seen_with_files(
        &self,
        id: &ConversationId,
        item: Option<Item>,
    ) -> Result<(Seen, Vec<FileAttachment>)> {
        match item {
            Some(item) if !is_deleting(&item) => {
                let (seen, files) = Seen::from_item(&item)?;
                self.seen.remember(seen.clone());
                Ok((seen, files))
            }
            _ => {
                self.seen.forget(id);
                Err(Error::conversation_not_found(id.as_str()))
            }
        }
    }

    /// [`seen_with_files`](Self::seen_with_files), as a reader of the record sees it.
    pub(super) fn writable(
        &self,
        id: &ConversationId,
        item: Option<Item>,
    ) -> Result<(ConversationRecord, Vec<FileAttachment>)> {
        let (seen, files) = self.seen_with_files(id, item)?;
        Ok((seen.record, files))
    }

    /// [`seen_with_files`](Self::seen_with_files), as what a write of messages needs.
    pub(super) fn seen_writable(&self, id: &ConversationId, item: Option<Item>) -> Result<Seen> {
        Ok(self.seen_with_files(id, item)?.0)
    }

    /// Writes `requests` with `BatchWriteItem`, 25 at a time (a few batches at once),
    /// retrying unprocessed items with backoff.
    pub(super) async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<()> {
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

    pub(super) fn delete_request(key: Item) -> Result<WriteRequest> {
        Ok(WriteRequest::builder()
            .delete_request(
                DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .map_err(|e| Error::backend(BACKEND, e))?,
            )
            .build())
    }

    /// Marks the conversation item as being deleted (the tombstone) and moves its
    /// `version` on, so that every writer's condition fails from now on; removes its
    /// `activity`, which takes it out of both listing indexes. Returns the item as it is
    /// now, or `None` when there is none. Idempotent.
    pub(super) async fn tombstone(&self, id: &ConversationId) -> Result<Option<Item>> {
        self.seen.forget(id);
        for attempt in 0..self.max_write_attempts {
            let updated = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(conversation_key(id)))
                .update_expression("SET #deleting = :true ADD #version :one REMOVE #activity")
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#deleting", DELETING)
                .expression_attribute_names("#version", VERSION)
                .expression_attribute_names("#activity", ACTIVITY)
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":true", AttributeValue::Bool(true))
                .expression_attribute_values(":one", n(1))
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match updated {
                Ok(out) => return Ok(Some(out.attributes.unwrap_or_default())),
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

    /// Deletes every item under the conversation's key but the conversation item
    /// (messages and id markers). Idempotent.
    pub(super) async fn delete_message_items(&self, id: &ConversationId) -> Result<()> {
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
    /// still `expected` and each attribute of `unchanged` still has its value (returning
    /// the item as it is when not), as a transaction's action.
    pub(super) fn conditional_update(
        &self,
        id: &ConversationId,
        expected: u64,
        unchanged: &[(&'static str, AttributeValue)],
        set: Vec<(&'static str, AttributeValue)>,
    ) -> Result<TransactWriteItem> {
        self.update_action(
            id,
            ConvUpdate {
                expected,
                unchanged: unchanged.to_vec(),
                set,
                tail: None,
            },
        )
    }

    /// `update` as a transaction's action.
    fn update_action(&self, id: &ConversationId, update: ConvUpdate) -> Result<TransactWriteItem> {
        let e = update.expressions();
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(conversation_key(id)))
            .update_expression(e.update)
            .condition_expression(e.condition)
            .set_expression_attribute_names(Some(e.names))
            .set_expression_attribute_values(Some(e.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| Error::backend(BACKEND, e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// `update` as one `UpdateItem` request.
    fn update_request(&self, id: &ConversationId, update: ConvUpdate) -> UpdateItemFluentBuilder {
        let e = update.expressions();
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(conversation_key(id)))
            .update_expression(e.update)
            .condition_expression(e.condition)
            .set_expression_attribute_names(Some(e.names))
            .set_expression_attribute_values(Some(e.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
    }

    /// A `Put` of `item` if nothing is stored under its key.
    fn put_new(&self, item: Item) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| Error::backend(BACKEND, e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A `Put` of `item`, whatever is stored under its key (id markers: a marker only
    /// ever holds its message's `seq`).
    fn put(&self, item: Item) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .build()
            .map_err(|e| Error::backend(BACKEND, e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Sends one `TransactWriteItems` and sorts out why it failed.
    ///
    /// Conditional writes of the record go through a transaction, even a single one, for
    /// its idempotency token: the SDK sends the same token when it retries after a timeout
    /// or a 5xx, and DynamoDB answers such a retry of a transaction that did commit with
    /// success, where a retried `UpdateItem` would fail its condition (and look like a
    /// lost race). Appends to the tail (`PutItem`) and updates of a message in it
    /// (`UpdateItem`), which recognise their own change, are single writes instead (see
    /// `single_write`).
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

    /// The one conditional write of the backend: sends `actions` as one
    /// `TransactWriteItems` and maps its failures, the same way for every caller:
    ///
    /// - committed: [`Written::Done`];
    /// - the condition of action 0 (the conversation item, or the item being created)
    ///   failed: [`Written::Moved`], with that item as it is now when DynamoDB returned it;
    /// - the condition of another action failed: [`Written::Other`];
    /// - a concurrent transaction on the same items (DynamoDB, not DynamoDB Local):
    ///   [`Written::Conflicted`]; nothing was written;
    /// - an item over 400 KB, or the transaction over 4 MB: `too_large()`;
    /// - cancelled for throttling: a temporary error; nothing was written;
    /// - the SDK gave up with a temporary error (timeouts, 5xx: the answer may have been
    ///   lost after the write committed): `committed()` reads whether it did, and the
    ///   answer is [`Written::Done`] when it did, the SDK's (temporary) error when it did
    ///   not, and [`Error::OutcomeUnknown`] when that read fails too;
    /// - anything else: the SDK's error.
    pub(super) async fn conditional_write<Check>(
        &self,
        op: Op<'_>,
        actions: Vec<TransactWriteItem>,
        too_large: impl FnOnce() -> Error,
        committed: impl FnOnce() -> Check,
    ) -> Result<Written>
    where
        Check: Future<Output = Result<bool>>,
    {
        match self.transact(actions).await {
            Ok(()) => Ok(Written::Done),
            Err(TxError::Condition { index: 0, item }) => Ok(Written::Moved(item)),
            Err(TxError::Condition { .. }) => Ok(Written::Other),
            Err(TxError::Conflict) => Ok(Written::Conflicted),
            Err(TxError::TooLarge) => Err(too_large()),
            Err(TxError::Throttled(e)) => Err(Error::temporary(BACKEND, *e)),
            Err(TxError::Sdk(e)) if sdk::is_temporary(&e) => Self::recover(op, *e, committed).await,
            Err(TxError::Sdk(e)) => Err(sdk_error(BACKEND, *e)),
        }
    }

    /// The answer to a write the SDK gave up on with a temporary error (its answer may
    /// have been lost after it committed): `committed()` reads whether it did.
    async fn recover<E, Check>(
        op: Op<'_>,
        err: SdkError<E, HttpResponse>,
        committed: impl FnOnce() -> Check,
    ) -> Result<Written>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        Check: Future<Output = Result<bool>>,
    {
        match committed().await {
            Ok(true) => Ok(Written::Done),
            Ok(false) => Err(sdk_error(BACKEND, err)),
            Err(check) => Err(Error::outcome_unknown(
                BACKEND,
                op.operation,
                LostAnswer {
                    what: op.to_string(),
                    check,
                    write: Box::new(err),
                },
            )),
        }
    }

    /// [`conditional_write`](Self::conditional_write) of one conversation item write that
    /// is not a transaction: an `UpdateItem` (a message of the tail updated, or a 0.1
    /// conversation indexed), which costs half a transaction's write units and on
    /// DynamoDB Local half its time; or a `PutItem` of the whole item (an append to the
    /// tail: on DynamoDB Local about a fifth quicker than the same change as an
    /// `UpdateItem`; the same write units, which DynamoDB counts on the whole item for
    /// both). `sent` is the request's outcome.
    ///
    /// Such a write has no idempotency token: a retry the SDK sends after a lost answer of
    /// a write that committed fails its condition, and comes back as [`Written::Moved`]
    /// with the item as it is, which shows the change; the callers recognise their own
    /// change there. Failures map as in `conditional_write`.
    async fn single_write<O, E, Check>(
        op: Op<'_>,
        sent: std::result::Result<O, SdkError<E, HttpResponse>>,
        too_large: impl FnOnce() -> Error,
        committed: impl FnOnce() -> Check,
    ) -> Result<Written>
    where
        E: SingleWriteError,
        Check: Future<Output = Result<bool>>,
    {
        let err = match sent {
            Ok(_) => return Ok(Written::Done),
            Err(err) => err,
        };
        if let Some(written) = err.as_service_error().and_then(SingleWriteError::written) {
            return Ok(written);
        }
        if err.code() == Some("ValidationException") && is_size_message(err.message()) {
            return Err(too_large());
        }
        if sdk::is_temporary(&err) {
            return Self::recover(op, err, committed).await;
        }
        Err(sdk_error(BACKEND, err))
    }

    /// The whole conversation item as `after` describes it (`base`: its item without
    /// `files` and `tail`), put if the item is still as `current` was (its version, count
    /// and creation time).
    fn conversation_put(
        &self,
        current: &Seen,
        mut item: Item,
        after: &Seen,
    ) -> Result<PutItemFluentBuilder> {
        item.insert(FILES.into(), s(after.files_json.clone()));
        if !after.tail.is_empty() {
            item.insert(TAIL.into(), AttributeValue::L(tail_entries(&after.tail)));
        }
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let condition = condition(
            current.record.version,
            unchanged(&current.record),
            &mut names,
            &mut values,
        );
        Ok(self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld))
    }

    /// `append_messages`, on the layout of [`chunks`](super::chunks).
    ///
    /// Written against the conversation as this backend last saw it (its `version`,
    /// `message_count`, `created_at` and tail, remembered from the last write or read of
    /// it, see [`SeenCache`](super::seen::SeenCache)), so that in the steady state an
    /// append is one request: a `PutItem` of the conversation item with the messages
    /// added to the tail, or, once in [`TAIL_MAX_MESSAGES`] messages, a
    /// `TransactWriteItems` that seals the tail into a chunk item. When another writer
    /// moved the conversation on (or it was never seen), the condition fails and
    /// DynamoDB returns the conversation item as it is with the failure: the retry
    /// starts from that state, without a read. The conversation is read first only when
    /// this backend has not seen it.
    ///
    /// Idempotency: before writing, each message id is looked up in the tail and, when it
    /// sorts at or before the greatest sealed id (never, for the UUID v7 ids the vault
    /// makes, unless clocks disagree), through its id marker; [`check_replay`] decides on
    /// what is found (the stored messages, or [`Error::AlreadyExists`]). What is looked at
    /// is the state the write is conditional on: an id stored meanwhile fails the write,
    /// and the retry finds it. A retry after a lost answer is therefore safe.
    pub(super) async fn append(
        &self,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        check_unique_ids(&messages)?;
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
                    "one append of {} messages (an append may seal the tail with it in one DynamoDB transaction, which holds 100 writes)",
                    messages.len()
                ),
                size: messages.len() as u64,
                limit: MAX_APPEND_MESSAGES as u64,
            });
        }
        let op = Op {
            operation: "append_messages",
            id,
        };
        // Writers in this process take turns (see `turns`); other processes contend below.
        let _turn = self.turns.take(id).await;
        // Whether `current` was read (or returned by DynamoDB) in this call, rather than
        // remembered: a write is conditional on what it says, but a replay answers from
        // it alone, so a replay is decided on a state read now (the remembered one may be
        // of a conversation since deleted and created again).
        let (mut current, mut fresh) = match self.seen.get(id) {
            Some(seen) => (seen, false),
            None => (self.read_seen(id).await?, true),
        };
        for attempt in 0..self.max_write_attempts {
            if current.legacy {
                current = self.index_legacy(op, current).await?;
            }
            match self.stored_already(id, &current, &messages).await {
                Ok(None) => {}
                Ok(Some(_)) | Err(Error::AlreadyExists { .. }) if !fresh => {
                    (current, fresh) = (self.read_seen(id).await?, true);
                    continue;
                }
                Ok(Some(replayed)) => return Ok(replayed),
                Err(e) => return Err(e),
            }
            let mut record = current.record.clone();
            let stored = record.apply_append(messages.clone(), now());
            let encoded = stored
                .iter()
                .cloned()
                .map(Encoded::new)
                .collect::<Result<Vec<_>>>()?;
            for e in &encoded {
                check_item_size(
                    || format!("message {} as a DynamoDB item", e.message.id),
                    &chunk_item(id, std::slice::from_ref(e), 1)?,
                )?;
            }
            let added: u64 = encoded.iter().map(Encoded::size).sum();
            let base = base_item(&record, current.sealed_max.as_ref())?;
            let base_size = item_size(&base);
            let fits = |count: usize, bytes: u64| {
                count <= TAIL_MAX_MESSAGES
                    && bytes <= TAIL_MAX_BYTES
                    && current.item_size_with(base_size, bytes) <= MAX_ITEM_SIZE
            };
            let (written, after) = if fits(
                current.tail.len() + encoded.len(),
                current.tail_size() + added,
            ) {
                // The steady state: the messages join the tail, in one conditional put of
                // the whole conversation item (what this backend knows of it, at the
                // version the condition names, is all of it).
                let mut tail = current.tail.clone();
                tail.extend(encoded.iter().cloned());
                let after = Seen {
                    record,
                    files_json: current.files_json.clone(),
                    base_size,
                    tail,
                    sealed_max: current.sealed_max.clone(),
                    legacy: false,
                };
                let request = self.conversation_put(&current, base, &after)?;
                let size = after.item_size();
                let written = Self::single_write(
                    op,
                    request.send().await,
                    || too_large_conversation(id, size),
                    // The answer may have been lost after the put committed: is its
                    // first message stored?
                    || self.committed(id, &stored),
                )
                .await?;
                (written, after)
            } else {
                // The tail is full: it is sealed into a chunk, and the messages make the new
                // tail (or are sealed with it, when they would not fit a tail of their own).
                let mut set = vec![
                    (VERSION, n(record.version)),
                    (FORMAT, n(FORMAT_VERSION)),
                    (MESSAGE_COUNT, n(record.message_count)),
                    (LAST_ACTIVE, s(format_time(record.last_active))),
                    (ACTIVITY, s(activity(record.last_active, id))),
                    (USAGE, s(json(&record.usage)?)),
                ];
                if record.title != current.record.title
                    && let Some(title) = &record.title
                {
                    set.push((TITLE, s(title)));
                }
                let alone = fits(encoded.len(), added);
                let mut sealed = current.tail.clone();
                let tail = if alone {
                    encoded
                } else {
                    sealed.extend(encoded);
                    Vec::new()
                };
                let (actions, after, total) =
                    self.sealing(id, &current, record, set, sealed, tail)?;
                if actions.len() > MAX_TRANSACTION_ITEMS || total > MAX_TRANSACTION_SIZE {
                    if !alone && !current.tail.is_empty() {
                        // Too much for one transaction: the tail is sealed on its own first.
                        current = self.seal_tail(op, &current, attempt).await?;
                        continue;
                    }
                    return Err(Error::TooLarge {
                        what: format!(
                            "one append of {} messages (a DynamoDB transaction holds 4 MB and 100 writes)",
                            stored.len()
                        ),
                        size: total,
                        limit: MAX_TRANSACTION_SIZE,
                    });
                }
                let written = self
                    .conditional_write(
                        op,
                        actions,
                        || too_large_conversation(id, total),
                        || self.committed(id, &stored),
                    )
                    .await?;
                (written, after)
            };
            let latest = match written {
                Written::Done => {
                    let record = after.record.clone();
                    self.seen.remember(after);
                    return Ok(Appended {
                        record,
                        messages: stored,
                    });
                }
                // Another writer moved the conversation on (or what was remembered is
                // stale): start again from its new state, returned with the failure.
                Written::Moved(item) => item,
                Written::Other => return Err(chunk_exists(id)),
                Written::Conflicted => None,
            };
            (current, fresh) = (self.retry_from(id, latest, attempt).await?, true);
        }
        Err(self.conflict(id, "append"))
    }

    /// A retried append: the messages already stored under `messages`' ids in `current`
    /// (its tail, and the id markers of ids that may be sealed), judged by
    /// [`check_replay`], with `current`'s record. `None` when none of the ids is stored.
    async fn stored_already(
        &self,
        id: &ConversationId,
        current: &Seen,
        messages: &[NewMessage],
    ) -> Result<Option<Appended>> {
        let lookups = messages.iter().map(|m| async move {
            if let Some(found) = current.tail.iter().find(|t| t.message.id == m.id) {
                return Ok(Some(found.message.clone()));
            }
            match &current.sealed_max {
                Some(max) if m.id.as_str() <= max.as_str() => self.sealed_message(id, &m.id).await,
                _ => Ok(None),
            }
        });
        let stored = futures_util::future::try_join_all(lookups).await?;
        Ok(check_replay(messages, stored)?.map(|messages| Appended {
            record: current.record.clone(),
            messages,
        }))
    }

    /// The transaction that seals `sealed` (messages in `seq` order, following those
    /// sealed before) into chunk items with an id marker each, leaves `tail` in the
    /// conversation item, and sets `set` on it (the record written is `record`), against
    /// `current`. Returns its actions, the conversation as it will be, and the
    /// transaction's size.
    fn sealing(
        &self,
        id: &ConversationId,
        current: &Seen,
        record: ConversationRecord,
        mut set: Vec<(&'static str, AttributeValue)>,
        sealed: Vec<Encoded>,
        tail: Vec<Encoded>,
    ) -> Result<(Vec<TransactWriteItem>, Seen, u64)> {
        let sealed_max = sealed
            .iter()
            .map(|m| &m.message.id)
            .chain(current.sealed_max.as_ref())
            .max_by(|a, b| a.as_str().cmp(b.as_str()))
            .cloned();
        if let Some(max) = &sealed_max {
            set.push((SEALED_MAX_ID, s(max.as_str())));
        }
        let after = Seen {
            base_size: base_size(&record, sealed_max.as_ref())?,
            record,
            files_json: current.files_json.clone(),
            tail: tail.clone(),
            sealed_max,
            legacy: false,
        };
        let mut total = after.item_size();
        let mut actions = vec![self.update_action(
            id,
            ConvUpdate {
                expected: current.record.version,
                unchanged: unchanged(&current.record),
                set,
                tail: Some(TailChange::Replace(tail_entries(&tail))),
            },
        )?];
        let mut markers = Vec::with_capacity(sealed.len());
        for run in pack(sealed) {
            let item = chunk_item(id, &run, 1)?;
            total += item_size(&item);
            actions.push(self.put_new(item)?);
            for m in &run {
                let marker = marker_item(id, &m.message.id, m.message.seq);
                total += item_size(&marker);
                markers.push(self.put(marker)?);
            }
        }
        actions.extend(markers);
        Ok((actions, after, total))
    }

    /// Seals the tail on its own (a write of the layout only: the record moves to a new
    /// version and nothing else), for an append or a message update that cannot do it in
    /// its own transaction. Returns the conversation as it is after.
    async fn seal_tail(&self, op: Op<'_>, current: &Seen, attempt: u32) -> Result<Seen> {
        let id = op.id;
        let mut record = current.record.clone();
        record.version += 1;
        let set = vec![(VERSION, n(record.version)), (FORMAT, n(FORMAT_VERSION))];
        let sealed = current.tail.clone();
        let (actions, after, total) = self.sealing(id, current, record, set, sealed, Vec::new())?;
        let written = self
            .conditional_write(
                op,
                actions,
                || too_large_conversation(id, total),
                // Nothing the caller asked for was written: let it try again.
                || async { Ok(false) },
            )
            .await?;
        match written {
            Written::Done => {
                self.seen.remember(after.clone());
                Ok(after)
            }
            Written::Moved(item) => self.retry_from(id, item, attempt).await,
            Written::Other => Err(chunk_exists(id)),
            Written::Conflicted => self.retry_from(id, None, attempt).await,
        }
    }

    /// The conversation to write against again after a failed write: `latest`, as
    /// DynamoDB returned it with the failure, at once (on an equal footing with the writer
    /// that won, which knows the version it wrote: sleeping first would make it stale
    /// again); or, after a conflict (or with no item returned), read after a backoff.
    async fn retry_from(
        &self,
        id: &ConversationId,
        latest: Option<Item>,
        attempt: u32,
    ) -> Result<Seen> {
        match latest {
            Some(item) => self.seen_writable(id, Some(item)),
            None => {
                Self::pause(attempt).await;
                self.read_seen(id).await
            }
        }
    }

    /// Gives the message items of a conversation written by 0.1 their id markers, and the
    /// conversation its greatest sealed id and format 2, before its first write of
    /// messages: one read of every message item's id, once per conversation. Returns the
    /// conversation as it is after.
    async fn index_legacy(&self, op: Op<'_>, mut current: Seen) -> Result<Seen> {
        let id = op.id;
        for attempt in 0..self.max_write_attempts {
            if !current.legacy {
                return Ok(current);
            }
            let (markers, max) = self.legacy_markers(id).await?;
            self.batch_write(markers).await?;
            let mut set = vec![(FORMAT, n(FORMAT_VERSION))];
            if let Some(max) = &max {
                set.push((SEALED_MAX_ID, s(max.as_str())));
            }
            let request = self.update_request(
                id,
                ConvUpdate {
                    expected: current.record.version,
                    unchanged: vec![(FORMAT, n(1))],
                    set,
                    tail: None,
                },
            );
            let size = current.item_size() + 64;
            let written = Self::single_write(
                op,
                request.send().await,
                || too_large_conversation(id, size),
                || async {
                    Ok(self
                        .read_item(id)
                        .await?
                        .is_some_and(|item| get_n(&item, FORMAT).is_ok_and(|f| f >= 2)))
                },
            )
            .await?;
            current = match written {
                Written::Done => {
                    let mut after = current;
                    after.legacy = false;
                    after.base_size = base_size(&after.record, max.as_ref())?;
                    after.sealed_max = max;
                    self.seen.remember(after.clone());
                    after
                }
                Written::Moved(item) => self.retry_from(id, item, attempt).await?,
                Written::Other | Written::Conflicted => self.retry_from(id, None, attempt).await?,
            };
        }
        Err(self.conflict(id, op.operation))
    }

    /// `update_message`: the message is found in the tail (as remembered, or as read) or,
    /// sealed, through its id marker. In the tail: one `UpdateItem` of the conversation
    /// item (the entry, usage totals, version, activity; conditional on its version). In a
    /// chunk (or a 0.1 message item): one transaction of that item's rewrite (conditional on
    /// its revision; a chunk that the update makes too large is split) and the conversation
    /// item's update. Retried while other writers move the conversation on; a changed
    /// revision is [`Error::Conflict`].
    pub(super) async fn update_one_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        let op = Op {
            operation: "update_message",
            id,
        };
        // Whether `current` was read (or returned by DynamoDB) in this call, rather than
        // remembered: a remembered tail may be behind.
        let (mut current, mut fresh) = match self.seen.get(id) {
            Some(seen) => (seen, false),
            None => (self.read_seen(id).await?, true),
        };
        for attempt in 0..self.max_write_attempts {
            if current.legacy {
                current = self.index_legacy(op, current).await?;
            }
            let found = match current
                .tail
                .iter()
                .position(|e| &e.message.id == message_id)
            {
                Some(index) => Found::Tail(index),
                None => match self.sealed_location(id, message_id).await? {
                    Some(location) => Found::Sealed(location),
                    None if fresh => {
                        // Gone with its conversation, or never there.
                        self.read_seen(id).await?;
                        return Err(Error::message_not_found(message_id.as_str()));
                    }
                    // Perhaps appended since this backend last saw the conversation.
                    None => {
                        (current, fresh) = (self.read_seen(id).await?, true);
                        continue;
                    }
                },
            };
            let mut message = match &found {
                Found::Tail(index) => current.tail[*index].message.clone(),
                Found::Sealed(location) => location.messages[location.index].clone(),
            };
            let in_tail = matches!(found, Found::Tail(_));
            if message.revision != expected_revision {
                if in_tail && !fresh {
                    (current, fresh) = (self.read_seen(id).await?, true);
                    continue;
                }
                return Err(revision_conflict(
                    message_id,
                    expected_revision,
                    message.revision,
                ));
            }
            let mut record = current.record.clone();
            record.apply_message_update(&mut message, update, now());
            let set = vec![
                (VERSION, n(record.version)),
                (FORMAT, n(FORMAT_VERSION)),
                (LAST_ACTIVE, s(format_time(record.last_active))),
                (ACTIVITY, s(activity(record.last_active, id))),
                (USAGE, s(json(&record.usage)?)),
            ];
            let entry = Encoded::new(message.clone())?;
            let mut after = Seen {
                base_size: base_size(&record, current.sealed_max.as_ref())?,
                record,
                ..current.clone()
            };
            // Lost answer: is the message at the new revision, as written?
            let committed = || async {
                Ok(self
                    .message_by_id(id, message_id)
                    .await?
                    .is_some_and(|now| now == message))
            };
            let written = match found {
                Found::Tail(index) => {
                    after.tail[index] = entry.clone();
                    if after.item_size() > MAX_ITEM_SIZE {
                        // The tail no longer fits the conversation item: sealed first, the
                        // message is updated in its chunk.
                        current = self.seal_tail(op, &current, attempt).await?;
                        fresh = true;
                        continue;
                    }
                    let size = after.item_size();
                    let request = self.update_request(
                        id,
                        ConvUpdate {
                            expected: current.record.version,
                            unchanged: unchanged(&current.record),
                            set,
                            tail: Some(TailChange::Entry(index, s(entry.json))),
                        },
                    );
                    Self::single_write(
                        op,
                        request.send().await,
                        || too_large_conversation(id, size),
                        committed,
                    )
                    .await?
                }
                Found::Sealed(location) => {
                    let mut actions = vec![self.conditional_update(
                        id,
                        current.record.version,
                        &unchanged(&current.record),
                        set,
                    )?];
                    actions.extend(self.rewrite_sealed(id, location, &message)?);
                    let size = after.item_size();
                    self.conditional_write(
                        op,
                        actions,
                        || too_large_conversation(id, size),
                        committed,
                    )
                    .await?
                }
            };
            let latest = match written {
                Written::Done => {
                    let record = after.record.clone();
                    self.seen.remember(after);
                    return Ok(MessageUpdated { record, message });
                }
                // A retry the SDK sent after losing the answer of this very update fails
                // its condition: the update is there, in the tail that came back.
                Written::Moved(Some(item))
                    if in_tail
                        && !is_deleting(&item)
                        && decode_tail(&item)?.iter().any(|e| e.message == message) =>
                {
                    let now = self.seen_writable(id, Some(item))?;
                    return Ok(MessageUpdated {
                        record: now.record,
                        message,
                    });
                }
                Written::Moved(item) => item,
                // The message's item moved on since it was read: read it again.
                Written::Other | Written::Conflicted => None,
            };
            current = self.retry_from(id, latest, attempt).await?;
            fresh = true;
        }
        Err(self.conflict(id, "update_message"))
    }

    /// The actions that store `message` (updated) in its sealed item: a chunk rewritten
    /// (split into several when it no longer fits one item), conditional on the chunk's
    /// revision; or a 0.1 message item updated, conditional on the message's revision.
    fn rewrite_sealed(
        &self,
        id: &ConversationId,
        location: SealedLocation,
        message: &Message,
    ) -> Result<Vec<TransactWriteItem>> {
        let SealedLocation {
            item,
            mut messages,
            index,
        } = location;
        let expected_revision = messages[index].revision;
        if !is_chunk(&item) {
            return Ok(vec![self.legacy_message_update(
                id,
                message,
                expected_revision,
            )?]);
        }
        let revision = get_n(&item, REVISION)?;
        messages[index] = message.clone();
        let runs = pack(
            messages
                .into_iter()
                .map(Encoded::new)
                .collect::<Result<Vec<_>>>()?,
        );
        let last = runs.len() - 1;
        let mut actions = Vec::with_capacity(runs.len());
        for (k, run) in runs.iter().enumerate() {
            if k < last {
                actions.push(self.put_new(chunk_item(id, run, 1)?)?);
                continue;
            }
            let chunk = chunk_item(id, run, revision + 1)?;
            check_item_size(
                || format!("message {} as a DynamoDB item", message.id),
                &chunk,
            )?;
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(chunk))
                .condition_expression("#rev = :rev")
                .expression_attribute_names("#rev", REVISION)
                .expression_attribute_values(":rev", n(revision))
                .build()
                .map_err(|e| Error::backend(BACKEND, e))?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        Ok(actions)
    }

    /// The update of a message item written by 0.1: every changeable attribute set or
    /// removed, conditional on its revision (0.1 items carry none: theirs is 1).
    fn legacy_message_update(
        &self,
        id: &ConversationId,
        message: &Message,
        expected_revision: u64,
    ) -> Result<TransactWriteItem> {
        let mut names = HashMap::from([
            ("#rev".to_owned(), REVISION.to_owned()),
            ("#parts".to_owned(), PARTS.to_owned()),
            ("#content".to_owned(), CONTENT.to_owned()),
        ]);
        let mut values = HashMap::from([
            (":expected".to_owned(), n(expected_revision)),
            (":rev".to_owned(), n(message.revision)),
            (":parts".to_owned(), s(json(&message.parts)?)),
        ]);
        let mut sets = vec!["#rev = :rev".to_owned(), "#parts = :parts".to_owned()];
        let mut removes = vec!["#content".to_owned()];
        for (i, (name, value)) in optional_message_fields(message)?.into_iter().enumerate() {
            names.insert(format!("#f{i}"), name.to_owned());
            match value {
                Some(value) => {
                    sets.push(format!("#f{i} = :f{i}"));
                    values.insert(format!(":f{i}"), value);
                }
                None => removes.push(format!("#f{i}")),
            }
        }
        let condition = if expected_revision == 1 {
            "attribute_exists(#parts) AND #rev = :expected OR attribute_not_exists(#rev) AND attribute_exists(#content)"
        } else {
            "#rev = :expected"
        };
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(id, message_sk(message.seq))))
            .update_expression(format!(
                "SET {} REMOVE {}",
                sets.join(", "),
                removes.join(", ")
            ))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| Error::backend(BACKEND, e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The read-modify-write loop of `update`, `add_file` and `remove_file`:
    /// `change` computes the attributes to set from the current record and files
    /// (`Ok(None)`: nothing to write), and the write is retried while other writers win.
    ///
    /// When the write's answer was lost, the conversation is read again: if its version
    /// is at least the one written and `holds` says it carries the change, the write
    /// committed.
    pub(super) async fn modify<T>(
        &self,
        op: Op<'_>,
        mut change: impl FnMut(
            &mut ConversationRecord,
            &mut Vec<FileAttachment>,
        ) -> Result<Option<(Vec<(&'static str, AttributeValue)>, T)>>,
        holds: impl Fn(&ConversationRecord, &[FileAttachment]) -> bool,
    ) -> Result<(ConversationRecord, Option<T>)> {
        let id = op.id;
        let mut current = self.read_item(id).await?;
        for attempt in 0..self.max_write_attempts {
            let (seen, mut files) = self.seen_with_files(id, current)?;
            let mut record = seen.record.clone();
            let expected = record.version;
            let Some((set, out)) = change(&mut record, &mut files)? else {
                return Ok((record, None));
            };
            let too_large = |size| Error::TooLarge {
                what: format!(
                    "conversation {id} as a DynamoDB item after {}",
                    op.operation
                ),
                size,
                limit: MAX_ITEM_SIZE,
            };
            let after = Seen {
                base_size: base_size(&record, seen.sealed_max.as_ref())?,
                files_json: json(&files)?,
                record: record.clone(),
                ..seen
            };
            let size = after.item_size();
            if size > MAX_ITEM_SIZE {
                return Err(too_large(size));
            }
            let update = self.conditional_update(id, expected, &[], set)?;
            let written = self
                .conditional_write(
                    op,
                    vec![update],
                    || too_large(size),
                    || async {
                        Ok(match self.read_item(id).await? {
                            Some(item) => {
                                let (now, now_files) = decode_conversation(&item)?;
                                now.version >= record.version && holds(&now, &now_files)
                            }
                            None => false,
                        })
                    },
                )
                .await?;
            current = match written {
                Written::Done => {
                    self.seen.remember(after);
                    return Ok((record, Some(out)));
                }
                Written::Moved(Some(item)) => Some(item),
                Written::Moved(None) | Written::Other | Written::Conflicted => None,
            };
            // As in `append`: the item returned with the failure is fresh, retry at once;
            // after a conflict, back off and read.
            if current.is_none() {
                Self::pause(attempt).await;
                current = self.read_item(id).await?;
            }
        }
        Err(self.conflict(id, op.operation))
    }
}

/// Where `update_message` found the message.
enum Found {
    /// At this index of the tail.
    Tail(usize),
    /// In a sealed item.
    Sealed(SealedLocation),
}

/// What a write of messages is conditional on besides the version: the count and the
/// creation time, so that a conversation deleted and created again under the same id
/// cannot pass for the one remembered.
fn unchanged(record: &ConversationRecord) -> Vec<(&'static str, AttributeValue)> {
    vec![
        (MESSAGE_COUNT, n(record.message_count)),
        (CREATED_AT, s(format_time(record.created_at))),
    ]
}

/// The conversation item of `record` without `files` and `tail`.
fn base_item(record: &ConversationRecord, sealed_max: Option<&MessageId>) -> Result<Item> {
    let mut item = conversation_item(record, &[])?;
    item.remove(FILES);
    if let Some(max) = sealed_max {
        item.insert(SEALED_MAX_ID.into(), s(max.as_str()));
    }
    Ok(item)
}

/// The bytes of [`base_item`].
fn base_size(record: &ConversationRecord, sealed_max: Option<&MessageId>) -> Result<u64> {
    Ok(item_size(&base_item(record, sealed_max)?))
}

fn too_large_conversation(id: &ConversationId, size: u64) -> Error {
    Error::TooLarge {
        what: format!("conversation {id} as a DynamoDB item"),
        size,
        limit: MAX_ITEM_SIZE,
    }
}

/// A chunk item already under the key a seal or a split writes: the conversation's items
/// disagree with its record.
fn chunk_exists(id: &ConversationId) -> Error {
    Error::corrupt(
        BACKEND,
        format!("conversation {id}"),
        "a chunk item exists beyond the conversation's sealed messages",
    )
}

pub(super) fn check_item_size(what: impl FnOnce() -> String, item: &Item) -> Result<u64> {
    check_size(what, item_size(item))
}

/// `size` if it is within DynamoDB's item limit, else [`Error::TooLarge`] for `what`.
pub(super) fn check_size(what: impl FnOnce() -> String, size: u64) -> Result<u64> {
    if size > MAX_ITEM_SIZE {
        return Err(Error::TooLarge {
            what: what(),
            size,
            limit: MAX_ITEM_SIZE,
        });
    }
    Ok(size)
}

/// The attributes an attachment change sets.
pub(super) fn file_changes(
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

/// What became of a [`DynamoMessages::conditional_write`] that did not fail.
pub(super) enum Written {
    /// It committed.
    Done,
    /// The condition on the first action's item failed: another writer moved it on (or,
    /// for a create, it exists). Holds that item as it is now when DynamoDB returned it.
    Moved(Option<Item>),
    /// The condition of another action (not the first) failed.
    Other,
    /// A concurrent transaction touched the same items; nothing was written.
    Conflicted,
}
