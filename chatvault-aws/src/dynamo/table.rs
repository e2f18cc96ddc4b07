//! [`Table`]: the client, the table's name and write settings, and the requests every
//! part of the backend sends: point reads, partition queries, the conditional update
//! and puts of the conversation item, new items, and batches.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, Put, PutRequest, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update, WriteRequest,
};
use chatvault_core::backend::{ConversationId, ConversationRecord, Error, Result};
use futures_util::{StreamExt, TryStreamExt};

use super::layout::item::*;
use super::limits::{
    BACKEND, BACKOFF_BASE, BACKOFF_CAP, BATCH_ATTEMPTS, BATCH_CONCURRENCY, BATCH_WRITE_MAX,
};
use super::write::actions::{ConvUpdate, condition, unchanged};
use crate::sdk::{backoff, sdk_error};

/// The table, as every part of the backend reaches it (cheap to clone: the client is
/// shared).
#[derive(Clone)]
pub(crate) struct Table {
    pub(crate) client: Client,
    pub(crate) name: String,
    pub(crate) max_write_attempts: u32,
}

impl Table {
    /// The table `name` through `client`; a write that loses a race is tried
    /// `max_write_attempts` times.
    pub(crate) fn new(client: Client, name: String, max_write_attempts: u32) -> Self {
        Table {
            client,
            name,
            max_write_attempts,
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

    /// The conversation item's update that writes `record` (`SET`s the given attributes
    /// and its branches, see [`ConvUpdate::writing`]) if `version` is still `expected` and
    /// each attribute of `unchanged` still has its value (returning the item as it is when
    /// not), as a transaction's action.
    pub(crate) fn conditional_update(
        &self,
        record: &ConversationRecord,
        expected: u64,
        unchanged: &[(&'static str, AttributeValue)],
        set: Vec<(&'static str, AttributeValue)>,
    ) -> Result<TransactWriteItem> {
        self.update_action(
            &record.id,
            ConvUpdate::writing(record, expected, unchanged.to_vec(), set, None)?,
        )
    }

    /// `update` as a transaction's action.
    pub(crate) fn update_action(
        &self,
        id: &ConversationId,
        update: ConvUpdate,
    ) -> Result<TransactWriteItem> {
        let e = update.expressions();
        let update = Update::builder()
            .table_name(&self.name)
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
    pub(crate) fn update_request(
        &self,
        id: &ConversationId,
        update: ConvUpdate,
    ) -> UpdateItemFluentBuilder {
        let e = update.expressions();
        self.client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(conversation_key(id)))
            .update_expression(e.update)
            .condition_expression(e.condition)
            .set_expression_attribute_names(Some(e.names))
            .set_expression_attribute_values(Some(e.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
    }

    /// A `Put` of `item` if nothing is stored under its key.
    pub(crate) fn put_new(&self, item: Item) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.name)
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
    pub(crate) fn put(&self, item: Item) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.name)
            .set_item(Some(item))
            .build()
            .map_err(|e| Error::backend(BACKEND, e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// `item` (a whole conversation item) put if the conversation item is still as
    /// `current` was (its version, count and creation time).
    pub(crate) fn conversation_put(
        &self,
        current: &ConversationRecord,
        item: Item,
    ) -> PutItemFluentBuilder {
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let condition = condition(current.version, unchanged(current), &mut names, &mut values);
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
    }

    /// A [`batch_write`](Self::batch_write) request that puts `item`.
    pub(crate) fn put_request(item: Item) -> Result<WriteRequest> {
        let put = PutRequest::builder()
            .set_item(Some(item))
            .build()
            .map_err(|e| Error::backend(BACKEND, e))?;
        Ok(WriteRequest::builder().put_request(put).build())
    }

    /// A [`batch_write`](Self::batch_write) request that deletes the item under `key`.
    pub(crate) fn delete_request(key: Item) -> Result<WriteRequest> {
        let delete = DeleteRequest::builder()
            .set_key(Some(key))
            .build()
            .map_err(|e| Error::backend(BACKEND, e))?;
        Ok(WriteRequest::builder().delete_request(delete).build())
    }

    /// Writes `requests` with `BatchWriteItem`, 25 at a time (a few batches at once),
    /// retrying unprocessed items with backoff.
    pub(crate) async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<()> {
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
                .request_items(&self.name, batch)
                .send()
                .await
                .map_err(|e| sdk_error(BACKEND, e))?;
            batch = out
                .unprocessed_items
                .and_then(|mut m| m.remove(&self.name))
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
}
