//! [`Deleter`]: `begin_delete` and `delete`: the deletion marker and the tombstone,
//! then the message items and id markers in batches, then the conversation item with its
//! deletion marker.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use chatvault_core::backend::{ConversationId, Error, FileAttachment, Result, UserId};
use chrono::Utc;

use super::actions::Op;
use super::outcome::{Written, conditional_write};
use crate::dynamo::layout::deletion::{
    deletion_marker_item, deletion_marker_key, new_token, owner_of,
};
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
    /// 1. The conversation's deletion marker is put, then the conversation item gets a
    ///    tombstone (`deleting`) and a new `version` (what `begin_delete` does; on a
    ///    conversation marked already, the `GetItem` that finds the tombstone is all).
    ///    From then on every append and every change fails with [`Error::NotFound`],
    ///    even one that read the conversation before: its transaction is conditional on
    ///    the version it read, which is gone.
    /// 2. Every message item and id marker under the conversation's key is deleted
    ///    (`Query`, then `BatchWriteItem`s, retrying unprocessed items).
    /// 3. The conversation item, conditional on the tombstone's version, and its deletion
    ///    marker are deleted in one transaction.
    ///
    /// If it fails part-way, the conversation stays marked (it reads as gone) and calling
    /// `delete` again finishes the job and answers `true`. For a conversation that does not exist it answers `false`, after deleting
    /// any message items left under the id.
    pub(crate) async fn delete(&self, id: &ConversationId) -> Result<bool> {
        self.heads.forget(id);
        let tombstoned = match self.identity(id).await? {
            // Marked already (by `begin_delete`, or a `delete` that did not finish): its
            // marker is there, and writers fail already.
            Some(item) if is_deleting(&item) => Some(item),
            Some(item) => self.mark(id, item).await?,
            None => None,
        };
        let Some(tombstoned) = tombstoned else {
            self.delete_message_items(id).await?;
            return Ok(false);
        };
        let mut version = get_n(&tombstoned, VERSION)?;
        let mut owner = owner_of(&tombstoned)?;
        for attempt in 0..self.table.max_write_attempts {
            self.delete_message_items(id).await?;
            let written = conditional_write(
                &self.table,
                Op {
                    operation: "delete",
                    id,
                },
                self.final_deletes(id, owner.as_ref(), version)?,
                || Error::backend(BACKEND, format!("delete of conversation {id}: too large")),
                // The answer was lost: gone means deleted (by this call or another).
                || async { Ok(self.table.read_item(id).await?.is_none()) },
            )
            .await?;
            match written {
                // Done, or gone: a concurrent delete finished first.
                Written::Done | Written::Moved(None) => return Ok(true),
                // Tombstoned again since (a concurrent delete): clean up again.
                Written::Moved(Some(item)) if is_deleting(&item) => {
                    version = get_n(&item, VERSION)?;
                    owner = owner_of(&item)?;
                }
                Written::Moved(Some(_)) => {
                    return Err(Error::backend(
                        BACKEND,
                        format!(
                            "conversation {id} was replaced while it was being deleted (by a writer that knows no tombstones); some of its message items may be gone"
                        ),
                    ));
                }
                Written::Other => {
                    return Err(Error::backend(
                        BACKEND,
                        format!(
                            "delete of conversation {id}: the deletion marker's delete, which has no condition, failed one"
                        ),
                    ));
                }
                Written::Conflicted => {}
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

    /// The last step of `delete`, one transaction: the conversation item, conditional
    /// on the tombstone's `version`, and its deletion marker (of `owner`), so that the
    /// marker goes exactly when the conversation does.
    fn final_deletes(
        &self,
        id: &ConversationId,
        owner: Option<&UserId>,
        version: u64,
    ) -> Result<Vec<TransactWriteItem>> {
        let conversation = Delete::builder()
            .table_name(&self.table.name)
            .set_key(Some(conversation_key(id)))
            .condition_expression("#version = :version AND #deleting = :true")
            .expression_attribute_names("#version", VERSION)
            .expression_attribute_names("#deleting", DELETING)
            .expression_attribute_values(":version", n(version))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| Error::backend(BACKEND, e))?;
        let marker = Delete::builder()
            .table_name(&self.table.name)
            .set_key(Some(deletion_marker_key(owner, id)))
            .build()
            .map_err(|e| Error::backend(BACKEND, e))?;
        Ok(vec![
            TransactWriteItem::builder().delete(conversation).build(),
            TransactWriteItem::builder().delete(marker).build(),
        ])
    }

    /// Marks the conversation item as being deleted (the tombstone) and moves its
    /// `version` on, so that every writer's condition fails from now on; removes its
    /// `activity`, which takes it out of both listing indexes. Returns the item as it is
    /// now, or `None` when there is none. Idempotent.
    ///
    /// Before the tombstone, the conversation's deletion marker is put (a new token each
    /// time), so a marked conversation always has one, whatever fails after. The tombstone
    /// is conditional on the owner and creation time read before the marker was put: if
    /// the conversation was deleted and created again meanwhile, the marker may not be
    /// the new one's, and both are written again.
    async fn tombstone(&self, id: &ConversationId) -> Result<Option<Item>> {
        self.heads.forget(id);
        match self.identity(id).await? {
            Some(current) => self.mark(id, current).await,
            None => Ok(None),
        }
    }

    /// The marker and the tombstone of [`tombstone`](Self::tombstone), for the
    /// conversation whose item (its [`identity`](Self::identity)) was read as `current`.
    async fn mark(&self, id: &ConversationId, mut current: Item) -> Result<Option<Item>> {
        for attempt in 0..self.table.max_write_attempts {
            self.put_marker(id, &current).await?;
            let updated = self
                .table
                .client
                .update_item()
                .table_name(&self.table.name)
                .set_key(Some(conversation_key(id)))
                .update_expression("SET #deleting = :true ADD #version :one REMOVE #activity")
                .condition_expression(format!(
                    "attribute_exists(#pk) AND {} AND {}",
                    same(&current, USER_ID, "#user", ":user"),
                    same(&current, CREATED_AT, "#created", ":created")
                ))
                .expression_attribute_names("#deleting", DELETING)
                .expression_attribute_names("#version", VERSION)
                .expression_attribute_names("#activity", ACTIVITY)
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#user", USER_ID)
                .expression_attribute_names("#created", CREATED_AT)
                .set_expression_attribute_values(Some(identity_values(&current)))
                .expression_attribute_values(":true", AttributeValue::Bool(true))
                .expression_attribute_values(":one", n(1))
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match updated {
                Ok(out) => return Ok(Some(out.attributes.unwrap_or_default())),
                Err(e) => match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                        // Gone; or deleted and created again: mark that one.
                        match failed.item() {
                            None => return Ok(None),
                            Some(item) => current = item.clone(),
                        }
                    }
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

    /// The conversation item's owner, creation time, version and tombstone (one
    /// consistent `GetItem`), or `None` when there is no conversation item.
    async fn identity(&self, id: &ConversationId) -> Result<Option<Item>> {
        let out = self
            .table
            .client
            .get_item()
            .table_name(&self.table.name)
            .set_key(Some(conversation_key(id)))
            .consistent_read(true)
            .projection_expression("#pk, #user, #created, #version, #deleting")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#user", USER_ID)
            .expression_attribute_names("#created", CREATED_AT)
            .expression_attribute_names("#version", VERSION)
            .expression_attribute_names("#deleting", DELETING)
            .send()
            .await
            .map_err(|e| sdk_error(BACKEND, e))?;
        Ok(out.item)
    }

    /// Puts the deletion marker of the conversation whose item is `current`.
    async fn put_marker(&self, id: &ConversationId, current: &Item) -> Result<()> {
        let owner = owner_of(current)?;
        let marker = deletion_marker_item(owner.as_ref(), id, &new_token(), Utc::now());
        self.table
            .client
            .put_item()
            .table_name(&self.table.name)
            .set_item(Some(marker))
            .send()
            .await
            .map_err(|e| sdk_error(BACKEND, e))?;
        Ok(())
    }

    /// Deletes every item under the conversation's key but the conversation item
    /// (messages and id markers). Idempotent.
    async fn delete_message_items(&self, id: &ConversationId) -> Result<()> {
        let deletes = self
            .all_keys(id)
            .await?
            .into_iter()
            .filter(|k| !matches!(k.get(SK), Some(AttributeValue::S(sk)) if sk == CONVERSATION_SK))
            .map(Table::delete_request)
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
}

/// The condition that `attribute` (named `name`) is as in `item`: equal to its value
/// there (bound to `value` by [`identity_values`]), or absent as there.
fn same(item: &Item, attribute: &str, name: &str, value: &str) -> String {
    if item.contains_key(attribute) {
        format!("{name} = {value}")
    } else {
        format!("attribute_not_exists({name})")
    }
}

/// The values [`same`] binds for the owner and the creation time of `item`.
fn identity_values(item: &Item) -> HashMap<String, AttributeValue> {
    [(USER_ID, ":user"), (CREATED_AT, ":created")]
        .into_iter()
        .filter_map(|(attribute, value)| item.get(attribute).map(|v| (value.to_owned(), v.clone())))
        .collect()
}
