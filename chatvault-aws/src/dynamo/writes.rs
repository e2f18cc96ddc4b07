//! The write path: one conditional-write helper ([`DynamoMessages::conditional_write`])
//! that sends a `TransactWriteItems` and maps every way it can fail onto what the caller
//! does next; appends (with their id markers), message updates, the read-modify-write
//! loop of the conversation item, and the batch writes and tombstone of deletes.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update, WriteRequest,
};
use chatvault_core::{
    Appended, ConversationId, ConversationRecord, Error, FileAttachment, MessageId, MessageUpdate,
    MessageUpdated, NewMessage, Result, check_replay, check_unique_ids, now, revision_conflict,
};
use futures_util::{StreamExt, TryStreamExt};

use super::item::*;
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
    write: Box<SdkError<TransactWriteItemsError, HttpResponse>>,
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

impl DynamoMessages {
    /// Remembers a conversation item just read (or forgets it when it is being deleted).
    pub(super) fn note(&self, item: &Item, record: &ConversationRecord) {
        if is_deleting(item) {
            self.seen.forget(&record.id);
            return;
        }
        let files_size = attribute_size(item, FILES);
        self.seen.remember(Seen {
            record: record.clone(),
            files_size,
            base_size: item_size(item).saturating_sub(files_size),
        });
    }

    /// The conversation and its attachments from a conversation item read by a writer: a
    /// missing item, or one carrying the tombstone of a deletion in progress, is
    /// [`Error::NotFound`].
    pub(super) fn writable(
        &self,
        id: &ConversationId,
        item: Option<Item>,
    ) -> Result<(ConversationRecord, Vec<FileAttachment>)> {
        match item {
            Some(item) if !is_deleting(&item) => {
                let (record, files) = decode_conversation(&item)?;
                self.note(&item, &record);
                Ok((record, files))
            }
            _ => {
                self.seen.forget(id);
                Err(Error::conversation_not_found(id.as_str()))
            }
        }
    }

    /// [`writable`](Self::writable), as what an append needs: the record and sizes.
    pub(super) fn seen_writable(&self, id: &ConversationId, item: Option<Item>) -> Result<Seen> {
        match item {
            Some(item) if !is_deleting(&item) => {
                let (record, _) = decode_conversation(&item)?;
                let files_size = attribute_size(&item, FILES);
                let seen = Seen {
                    record,
                    files_size,
                    base_size: item_size(&item).saturating_sub(files_size),
                };
                self.seen.remember(seen.clone());
                Ok(seen)
            }
            _ => {
                self.seen.forget(id);
                Err(Error::conversation_not_found(id.as_str()))
            }
        }
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
    /// the item as it is when not).
    pub(super) fn conditional_update(
        &self,
        id: &ConversationId,
        expected: u64,
        unchanged: &[(&'static str, AttributeValue)],
        set: Vec<(&'static str, AttributeValue)>,
    ) -> Result<TransactWriteItem> {
        let mut names = HashMap::from([("#version".to_owned(), VERSION.to_owned())]);
        let mut values = HashMap::from([(":expected".to_owned(), n(expected))]);
        let mut conditions = vec!["#version = :expected".to_owned()];
        for (i, (name, value)) in unchanged.iter().enumerate() {
            conditions.push(format!("#c{i} = :c{i}"));
            names.insert(format!("#c{i}"), (*name).to_owned());
            values.insert(format!(":c{i}"), value.clone());
        }
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
            .condition_expression(conditions.join(" AND "))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| Error::backend(BACKEND, e))?;
        Ok(TransactWriteItem::builder().update(update).build())
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

    /// The one conditional write of the backend: sends `actions` as one
    /// `TransactWriteItems` and maps its failures, the same way for every caller:
    ///
    /// - committed: [`Written::Done`];
    /// - the condition of action 0 (the conversation item, or the item being created)
    ///   failed: [`Written::Moved`], with that item as it is now when DynamoDB returned it;
    /// - the condition of another action failed: [`Written::Other`] with its index;
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
            Err(TxError::Condition { index, .. }) => Ok(Written::Other(index)),
            Err(TxError::Conflict) => Ok(Written::Conflicted),
            Err(TxError::TooLarge) => Err(too_large()),
            Err(TxError::Throttled(e)) => Err(Error::temporary(BACKEND, *e)),
            Err(TxError::Sdk(e)) if sdk::is_temporary(&e) => match committed().await {
                Ok(true) => Ok(Written::Done),
                Ok(false) => Err(sdk_error(BACKEND, *e)),
                Err(check) => Err(Error::outcome_unknown(
                    BACKEND,
                    op.operation,
                    LostAnswer {
                        what: op.to_string(),
                        check,
                        write: e,
                    },
                )),
            },
            Err(TxError::Sdk(e)) => Err(sdk_error(BACKEND, *e)),
        }
    }

    /// `append_messages`: one transaction of the conversation item's update, and for each
    /// message a conditional `Put` of its item and of its id marker.
    ///
    /// The update is conditional on the conversation as this backend last saw it (its
    /// `version`, `message_count` and `created_at`, remembered from the last write or read
    /// of it, see [`SeenCache`](super::seen::SeenCache)), so that in the steady state an
    /// append is one request. When another writer moved the conversation on (or it was
    /// never seen), the condition fails and DynamoDB returns the conversation item as it
    /// is with the failure: the retry starts from that state, without a read. The
    /// conversation is read first only when this backend has not seen it.
    ///
    /// Idempotency: each message's id marker (`mid#` + id) is put only if absent, in the
    /// same transaction. When one exists, the message ids were stored before: their
    /// messages are read and [`check_replay`] decides (the stored messages, or
    /// [`Error::AlreadyExists`]). A retry after a lost answer is therefore safe.
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
                    "one append of {} messages (a DynamoDB transaction holds 100 writes: the conversation, and a message and its id marker for each message)",
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
        let mut current = match self.seen.get(id) {
            Some(seen) => seen,
            None => self.read_seen(id).await?,
        };
        for attempt in 0..self.max_write_attempts {
            let mut record = current.record.clone();
            let stored = record.apply_append(messages.clone(), now());
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
            // Version, count and creation time: a conversation deleted and created again
            // under the same id cannot pass for the one remembered.
            let unchanged = [
                (MESSAGE_COUNT, n(current.record.message_count)),
                (CREATED_AT, s(format_time(current.record.created_at))),
            ];
            let mut actions = Vec::with_capacity(2 * stored.len() + 1);
            actions.push(self.conditional_update(id, current.record.version, &unchanged, set)?);
            let mut total = 0;
            for m in &stored {
                let item = message_item(id, m)?;
                total += check_item_size(|| format!("message {} as a DynamoDB item", m.id), &item)?;
                actions.push(self.put_new(item)?);
                let marker = marker_item(id, m);
                total += item_size(&marker);
                actions.push(self.put_new(marker)?);
            }
            // The conversation item counts too, whole: DynamoDB counts the item as it is
            // after the update, attachment list included.
            let mut without_files = conversation_item(&record, &[])?;
            without_files.remove(FILES);
            let after = Seen {
                record,
                files_size: current.files_size,
                base_size: item_size(&without_files),
            };
            total += check_size(
                || format!("conversation {id} as a DynamoDB item"),
                after.item_size(),
            )?;
            let too_large = || Error::TooLarge {
                what: format!(
                    "one append of {} messages (a DynamoDB transaction holds 4 MB)",
                    stored.len()
                ),
                size: total,
                limit: MAX_TRANSACTION_SIZE,
            };
            if total > MAX_TRANSACTION_SIZE {
                return Err(too_large());
            }
            let written = self
                .conditional_write(
                    op,
                    actions,
                    too_large,
                    // The answer may have been lost after the transaction committed: is
                    // its first message stored?
                    || self.committed(id, &stored),
                )
                .await?;
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
                // An id marker exists: these ids were stored before.
                Written::Other(index) if index % 2 == 0 => {
                    if let Some(appended) = self.replay(id, &messages).await? {
                        return Ok(appended);
                    }
                    // The markers went away in between (a delete): start again.
                    None
                }
                Written::Other(index) => {
                    return Err(Error::corrupt(
                        BACKEND,
                        format!(
                            "item pk={id:?} sk={:?}",
                            message_sk(stored[(index - 1) / 2].seq)
                        ),
                        "a message item exists beyond the conversation's message_count",
                    ));
                }
                Written::Conflicted => None,
            };
            current = match latest {
                // The conversation as it is now, returned with the failure: retry at once,
                // on an equal footing with the writer that won (which knows the version it
                // wrote). Sleeping first would make it stale again.
                Some(item) => self.seen_writable(id, Some(item))?,
                // A conflict (or no item returned): back off, then read.
                None => {
                    Self::pause(attempt).await;
                    self.read_seen(id).await?
                }
            };
        }
        Err(self.conflict(id, "append"))
    }

    /// A retried append: the messages stored under `messages`' ids, judged by
    /// [`check_replay`], with the conversation's current record. `None` when none of the
    /// ids is stored (any more).
    async fn replay(
        &self,
        id: &ConversationId,
        messages: &[NewMessage],
    ) -> Result<Option<Appended>> {
        let stored = futures_util::future::try_join_all(
            messages.iter().map(|m| self.message_by_id(id, &m.id)),
        )
        .await?;
        match check_replay(messages, stored)? {
            None => Ok(None),
            Some(replayed) => {
                let (record, _) = self.read_writable(id).await?;
                Ok(Some(Appended {
                    record,
                    messages: replayed,
                }))
            }
        }
    }

    /// `update_message`: reads the message (through its id marker) and the conversation,
    /// then one transaction of the message item's update (conditional on its revision)
    /// and the conversation item's (usage totals, version, activity; conditional on its
    /// version). Retried while other writers move the conversation on; a changed revision
    /// is [`Error::Conflict`].
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
        let mut current = match self.seen.get(id) {
            Some(seen) => seen,
            None => self.read_seen(id).await?,
        };
        for attempt in 0..self.max_write_attempts {
            let Some(mut message) = self.message_by_id(id, message_id).await? else {
                // Gone with its conversation, or never there.
                self.read_seen(id).await?;
                return Err(Error::message_not_found(message_id.as_str()));
            };
            if message.revision != expected_revision {
                return Err(revision_conflict(
                    message_id,
                    expected_revision,
                    message.revision,
                ));
            }
            let mut record = current.record.clone();
            record.apply_message_update(&mut message, update, now());

            // The message item: every changeable attribute set or removed.
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
            for (i, (name, value)) in optional_message_fields(&message)?.into_iter().enumerate() {
                names.insert(format!("#f{i}"), name.to_owned());
                match value {
                    Some(value) => {
                        sets.push(format!("#f{i} = :f{i}"));
                        values.insert(format!(":f{i}"), value);
                    }
                    None => removes.push(format!("#f{i}")),
                }
            }
            // 0.1 items carry no revision: theirs is 1.
            let condition = if expected_revision == 1 {
                "attribute_exists(#parts) AND #rev = :expected OR attribute_not_exists(#rev) AND attribute_exists(#content)"
            } else {
                "#rev = :expected"
            };
            let message_update = Update::builder()
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
            let set = vec![
                (VERSION, n(record.version)),
                (FORMAT, n(FORMAT_VERSION)),
                (LAST_ACTIVE, s(format_time(record.last_active))),
                (ACTIVITY, s(activity(record.last_active, id))),
                (USAGE, s(json(&record.usage)?)),
            ];
            let unchanged = [(CREATED_AT, s(format_time(current.record.created_at)))];
            let actions = vec![
                self.conditional_update(id, current.record.version, &unchanged, set)?,
                TransactWriteItem::builder().update(message_update).build(),
            ];
            let size = check_item_size(
                || format!("message {message_id} as a DynamoDB item after the update"),
                &message_item(id, &message)?,
            )?;
            let mut without_files = conversation_item(&record, &[])?;
            without_files.remove(FILES);
            let after = Seen {
                record,
                files_size: current.files_size,
                base_size: item_size(&without_files),
            };
            check_size(
                || format!("conversation {id} as a DynamoDB item"),
                after.item_size(),
            )?;
            let written = self
                .conditional_write(
                    op,
                    actions,
                    || Error::TooLarge {
                        what: format!("message {message_id} as a DynamoDB item after the update"),
                        size,
                        limit: MAX_ITEM_SIZE,
                    },
                    // Lost answer: is the message at the new revision, as written?
                    || async {
                        Ok(self
                            .message_by_id(id, message_id)
                            .await?
                            .is_some_and(|now| now == message))
                    },
                )
                .await?;
            let latest = match written {
                Written::Done => {
                    let record = after.record.clone();
                    self.seen.remember(after);
                    return Ok(MessageUpdated { record, message });
                }
                Written::Moved(item) => item,
                // The message's revision moved on since it was read: read it again.
                Written::Other(_) => None,
                Written::Conflicted => None,
            };
            current = match latest {
                Some(item) => self.seen_writable(id, Some(item))?,
                None => {
                    Self::pause(attempt).await;
                    self.read_seen(id).await?
                }
            };
        }
        Err(self.conflict(id, "update_message"))
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
            let (mut record, mut files) = self.writable(id, current)?;
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
            let item = conversation_item(&record, &files)?;
            let size = conversation_item_size(&item);
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
                    self.note(&item, &record);
                    return Ok((record, Some(out)));
                }
                Written::Moved(Some(item)) => Some(item),
                Written::Moved(None) | Written::Other(_) | Written::Conflicted => None,
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
    /// The condition of action `.0` (not the first) failed.
    Other(usize),
    /// A concurrent transaction touched the same items; nothing was written.
    Conflicted,
}
