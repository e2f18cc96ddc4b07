//! [`Deleter`]: `begin_delete` and `delete`: the tombstone, then the message items and
//! id markers in batches, then the conversation item.

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, ReturnValue, ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use chatvault_core::backend::{ConversationId, Error, FileAttachment, Result};

use crate::dynamo::layout::item::*;
use crate::dynamo::limits::BACKEND;
use crate::dynamo::read::head::Heads;
use crate::dynamo::table::Table;
use crate::sdk::sdk_error;

/// Deletes conversations.
#[derive(Clone)]
pub(crate) struct Deleter {
    table: Table,
    heads: Heads,
}

impl Deleter {
    /// Deletes in `table`, forgetting what `heads` remembers of the conversation.
    pub(crate) fn new(table: Table, heads: Heads) -> Self {
        Deleter { table, heads }
    }

    /// Marks the conversation (the tombstone of `delete`'s first step) and returns its
    /// attachments, as the tombstoned item holds them.
    pub(crate) async fn begin_delete(
        &self,
        id: &ConversationId,
    ) -> Result<Option<Vec<FileAttachment>>> {
        match self.tombstone(id).await? {
            None => Ok(None),
            Some(item) => Ok(Some(decode_conversation(&item)?.1)),
        }
    }

    /// Deletes the conversation in three steps, so that no concurrent writer can keep it
    /// alive:
    ///
    /// 1. The conversation item gets a tombstone (`deleting`) and a new `version` (what
    ///    `begin_delete` does; a second time changes nothing that matters). From then on
    ///    every append and every change fails with [`Error::NotFound`], even one that read
    ///    the conversation before: its transaction is conditional on the version it read,
    ///    which is gone.
    /// 2. Every message item and id marker under the conversation's key is deleted
    ///    (`Query`, then `BatchWriteItem`s, retrying unprocessed items).
    /// 3. The conversation item is deleted, conditional on the tombstone's version.
    ///
    /// If it fails part-way, the conversation stays marked (it reads as gone) and calling
    /// `delete` again finishes the job and answers `true`. For a conversation that does not exist it answers `false`, after deleting
    /// any message items left under the id.
    pub(crate) async fn delete(&self, id: &ConversationId) -> Result<bool> {
        let Some(tombstoned) = self.tombstone(id).await? else {
            self.delete_message_items(id).await?;
            return Ok(false);
        };
        let mut version = get_n(&tombstoned, VERSION)?;
        for attempt in 0..self.table.max_write_attempts {
            self.delete_message_items(id).await?;
            let deleted = self
                .table
                .client
                .delete_item()
                .table_name(&self.table.name)
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
                            // Tombstoned again since (a concurrent delete): clean up again.
                            Some(item) if is_deleting(item) => version = get_n(item, VERSION)?,
                            Some(_) => {
                                return Err(Error::backend(
                                    BACKEND,
                                    format!(
                                        "conversation {id} was replaced while it was being deleted (by a writer that knows no tombstones); some of its message items may be gone"
                                    ),
                                ));
                            }
                        }
                    }
                    Some(DeleteItemError::TransactionConflictException(_)) => {}
                    _ => return Err(sdk_error(BACKEND, e)),
                },
            }
            Table::pause(attempt).await;
        }
        // Not a Conflict: the tombstone and some deletions are written. Another call
        // finishes the job.
        Err(Error::temporary(
            BACKEND,
            format!(
                "delete of conversation {id} is not finished: the conversation item changed or conflicted {} times in a row while its messages were deleted; call delete again",
                self.table.max_write_attempts
            ),
        ))
    }

    /// Marks the conversation item as being deleted (the tombstone) and moves its
    /// `version` on, so that every writer's condition fails from now on; removes its
    /// `activity`, which takes it out of both listing indexes. Returns the item as it is
    /// now, or `None` when there is none. Idempotent.
    async fn tombstone(&self, id: &ConversationId) -> Result<Option<Item>> {
        self.heads.forget(id);
        for attempt in 0..self.table.max_write_attempts {
            let updated = self
                .table
                .client
                .update_item()
                .table_name(&self.table.name)
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
                        Table::pause(attempt).await;
                    }
                    _ => return Err(sdk_error(BACKEND, e)),
                },
            }
        }
        Err(self.table.conflict(id, "delete"))
    }

    /// Deletes every item under the conversation's key but the conversation item
    /// (messages and id markers). Idempotent.
    async fn delete_message_items(&self, id: &ConversationId) -> Result<()> {
        let deletes = self
            .all_keys(id)
            .await?
            .into_iter()
            .filter(|k| !matches!(k.get(SK), Some(AttributeValue::S(sk)) if sk == CONVERSATION_SK))
            .map(Self::delete_request)
            .collect::<Result<Vec<_>>>()?;
        self.table.batch_write(deletes).await
    }

    /// The keys of every item under a conversation's partition key.
    async fn all_keys(&self, id: &ConversationId) -> Result<Vec<Item>> {
        self.table
            .query_partition(id)
            .key_condition_expression("#pk = :pk")
            .projection_expression("#pk, #sk")
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .map_err(|e| sdk_error(BACKEND, e))
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
}
