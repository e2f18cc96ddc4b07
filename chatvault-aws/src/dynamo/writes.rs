//! The write path: one conditional-write helper ([`DynamoMessages::conditional_write`])
//! that sends a `TransactWriteItems` and maps every way it can fail onto what the caller
//! does next, the read-modify-write loop of the conversation item, and the batch writes
//! and tombstone of `delete`.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, Put, PutRequest, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update, WriteRequest,
};
use chatvault_core::{
    Appended, ConversationRecord, Error, FileAttachment, NewMessage, Result, keys, now,
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

fn is_size_message(message: Option<&str>) -> bool {
    let message = message.unwrap_or_default().to_ascii_lowercase();
    message.contains("size") && message.contains("exceed")
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
        id: &str,
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
                Err(Error::conversation_not_found(id))
            }
        }
    }

    /// [`writable`](Self::writable), as what an append needs: the record and sizes.
    pub(super) fn seen_writable(&self, id: &str, item: Option<Item>) -> Result<Seen> {
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
                Err(Error::conversation_not_found(id))
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

    pub(super) fn put_request(item: Item) -> Result<WriteRequest> {
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
    pub(super) async fn tombstone(&self, id: &str) -> Result<Option<u64>> {
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
    pub(super) async fn delete_message_items(&self, id: &str) -> Result<()> {
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
        id: &str,
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
    /// - a concurrent transaction on the same items (DynamoDB, not DynamoDB Local):
    ///   [`Written::Conflicted`]; nothing was written;
    /// - the condition of another action failed: `other_condition(index)`;
    /// - an item over 400 KB, or the transaction over 4 MB: `too_large()`;
    /// - cancelled for throttling: a temporary error; nothing was written;
    /// - the SDK gave up with a temporary error (timeouts, 5xx: the answer may have been
    ///   lost after the write committed): `committed()` reads whether it did, and the
    ///   answer is [`Written::Done`] when it did, the SDK's error when it did not, and an
    ///   outcome-unknown error (naming `what()`) when that read fails too;
    /// - anything else: the SDK's error.
    pub(super) async fn conditional_write<Check>(
        &self,
        actions: Vec<TransactWriteItem>,
        what: impl FnOnce() -> String,
        too_large: impl FnOnce() -> Error,
        other_condition: impl FnOnce(usize) -> Error,
        committed: impl FnOnce() -> Check,
    ) -> Result<Written>
    where
        Check: Future<Output = Result<bool>>,
    {
        match self.transact(actions).await {
            Ok(()) => Ok(Written::Done),
            Err(TxError::Condition { index: 0, item }) => Ok(Written::Moved(item)),
            Err(TxError::Condition { index, .. }) => Err(other_condition(index)),
            Err(TxError::Conflict) => Ok(Written::Conflicted),
            Err(TxError::TooLarge) => Err(too_large()),
            Err(TxError::Throttled(e)) => Err(Error::temporary(BACKEND, *e)),
            Err(TxError::Sdk(e)) if sdk::is_temporary(&e) => match committed().await {
                Ok(true) => Ok(Written::Done),
                Ok(false) => Err(sdk_error(BACKEND, *e)),
                Err(check) => Err(outcome_unknown(what(), e, check)),
            },
            Err(TxError::Sdk(e)) => Err(sdk_error(BACKEND, *e)),
        }
    }

    /// `append_messages`: one transaction of the conversation item's update and one
    /// conditional `Put` per message.
    ///
    /// The update is conditional on the conversation as this backend last saw it (its
    /// `version`, `message_count` and `created_at`, remembered from the last write or read
    /// of it, see [`SeenCache`](super::seen::SeenCache)), so that in the steady state an
    /// append is one request. When another writer moved the conversation on (or it was
    /// never seen), the condition fails and DynamoDB returns the conversation item as it
    /// is with the failure: the retry starts from that state, without a read. The
    /// conversation is read first only when this backend has not seen it.
    pub(super) async fn append(&self, id: &str, messages: Vec<NewMessage>) -> Result<Appended> {
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
        let mut current = match self.seen.get(id) {
            Some(seen) => seen,
            None => self.read_seen(id).await?,
        };
        for attempt in 0..self.max_write_attempts {
            let mut record = current.record.clone();
            let stored = record.apply_append(messages.clone(), now());
            let mut set = vec![
                (VERSION, n(record.version)),
                (MESSAGE_COUNT, n(record.message_count)),
                (LAST_ACTIVE, s(format_time(record.last_active))),
                (ACTIVITY, s(activity(record.last_active, id))),
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
            let mut actions = Vec::with_capacity(stored.len() + 1);
            actions.push(self.conditional_update(id, current.record.version, &unchanged, set)?);
            let mut total = 0;
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
                    actions,
                    || format!("append to conversation {id}"),
                    too_large,
                    |index| {
                        Error::backend(
                            BACKEND,
                            format!(
                                "conversation {id}: a message item at seq {} exists already, beyond the conversation's message_count (stale items in the table?)",
                                stored.get(index - 1).map_or(0, |m| m.seq)
                            ),
                        )
                    },
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

    /// The read-modify-write loop of `update`, `add_file` and `remove_file`:
    /// `change` computes the attributes to set from the current record and files
    /// (`Ok(None)`: nothing to write), and the write is retried while other writers win.
    ///
    /// When the write's answer was lost, the conversation is read again: if its version
    /// is at least the one written and `holds` says it carries the change, the write
    /// committed.
    pub(super) async fn modify<T>(
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
            let (mut record, mut files) = self.writable(id, current)?;
            let expected = record.version;
            let Some((set, out)) = change(&mut record, &mut files)? else {
                return Ok((record, None));
            };
            let too_large = |size| Error::TooLarge {
                what: format!("conversation {id} as a DynamoDB item after {what}"),
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
                    vec![update],
                    || format!("{what} on conversation {id}"),
                    || too_large(size),
                    |index| unexpected_condition(id, index),
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
                Written::Moved(None) | Written::Conflicted => None,
            };
            // As in `append`: the item returned with the failure is fresh, retry at once;
            // after a conflict, back off and read.
            if current.is_none() {
                Self::pause(attempt).await;
                current = self.read_item(id).await?;
            }
        }
        Err(self.conflict(id, what))
    }
}

/// A condition on an action other than the first failed in a transaction whose other
/// actions carry none: not something this backend writes.
fn unexpected_condition(id: &str, index: usize) -> Error {
    Error::backend(
        BACKEND,
        format!("conversation {id}: the condition of write {index} of a transaction failed"),
    )
}

/// Maps an SDK error, turning DynamoDB's item-size `ValidationException` into
/// [`Error::TooLarge`].
pub(super) fn size_or_sdk_error<E>(err: SdkError<E, HttpResponse>, what: String, size: u64) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if err.code() == Some("ValidationException") && is_size_message(err.message()) {
        return Error::TooLarge {
            what,
            size,
            limit: MAX_ITEM_SIZE,
        };
    }
    sdk_error(BACKEND, err)
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
    /// A concurrent transaction touched the same items; nothing was written.
    Conflicted,
}
