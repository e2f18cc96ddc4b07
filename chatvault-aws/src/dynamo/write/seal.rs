//! [`Sealer`]: the layout's own writes, which appends and message updates make before
//! theirs when they must: sealing the tail into chunk items on its own, and giving a
//! conversation written by 0.1 its id markers.

use aws_sdk_dynamodb::types::{TransactWriteItem, WriteRequest};
use chatvault_core::backend::{ConversationId, MessageId, Result};

use super::actions::{ConvUpdate, Op, base_size, chunk_exists, too_large_conversation};
use super::outcome::{Written, conditional_write, single_write};
use super::plan::{Sealing, plan_seal_tail};
use crate::dynamo::layout::item::*;
use crate::dynamo::limits::BACKEND;
use crate::dynamo::read::head::Heads;
use crate::dynamo::seen::Seen;
use crate::dynamo::table::Table;
use crate::sdk::sdk_error;

/// Seals tails on their own and indexes conversations written by 0.1.
#[derive(Clone)]
pub(crate) struct Sealer {
    table: Table,
    heads: Heads,
}

impl Sealer {
    /// The layout's writes in `table`, remembered through `heads`.
    pub(crate) fn new(table: Table, heads: Heads) -> Self {
        Sealer { table, heads }
    }

    /// The actions of `sealing`, in its order (the update, the chunks, the markers), the
    /// conversation as it will be, and the transaction's size.
    pub(crate) fn sealing_actions(
        &self,
        id: &ConversationId,
        sealing: Sealing,
    ) -> Result<(Vec<TransactWriteItem>, Seen, u64)> {
        let mut actions = Vec::with_capacity(sealing.actions());
        actions.push(self.table.update_action(id, sealing.update)?);
        for chunk in sealing.chunks {
            actions.push(self.table.put(chunk)?);
        }
        for marker in sealing.markers {
            actions.push(self.table.put(marker)?);
        }
        Ok((actions, sealing.after, sealing.total))
    }

    /// Seals the tail on its own (a write of the layout only: the record moves to a new
    /// version and nothing else), for an append or a message update that cannot do it in
    /// its own transaction. Returns the conversation as it is after.
    pub(crate) async fn seal_tail(&self, op: Op<'_>, current: &Seen, attempt: u32) -> Result<Seen> {
        let id = op.id;
        let (actions, after, total) = self.sealing_actions(id, plan_seal_tail(id, current)?)?;
        let written = conditional_write(
            &self.table,
            op,
            actions,
            || too_large_conversation(id, total),
            // Nothing the caller asked for was written: let it try again.
            || async { Ok(false) },
        )
        .await?;
        match written {
            Written::Done => {
                self.heads.remember(after.clone());
                Ok(after)
            }
            Written::Moved(item) => self.heads.retry_from(id, item, attempt).await,
            Written::Other => Err(chunk_exists(id)),
            Written::Conflicted => self.heads.retry_from(id, None, attempt).await,
        }
    }

    /// Gives the message items of a conversation written by 0.1 their id markers, and the
    /// conversation its greatest sealed id and format 2, before its first write of
    /// messages: one read of every message item's id, once per conversation. Returns the
    /// conversation as it is after.
    pub(crate) async fn index_legacy(&self, op: Op<'_>, mut current: Seen) -> Result<Seen> {
        let id = op.id;
        for attempt in 0..self.table.max_write_attempts {
            if !current.legacy {
                return Ok(current);
            }
            let (markers, max) = self.legacy_markers(id).await?;
            self.table.batch_write(markers).await?;
            let mut set = vec![(FORMAT, n(FORMAT_VERSION))];
            if let Some(max) = &max {
                set.push((SEALED_MAX_ID, s(max.as_str())));
            }
            let request = self.table.update_request(
                id,
                ConvUpdate::writing(
                    &current.record,
                    current.record.version,
                    vec![(FORMAT, n(1))],
                    set,
                    None,
                )?,
            );
            let size = current.item_size() + 64;
            let written = single_write(
                op,
                request.send().await,
                || too_large_conversation(id, size),
                || async {
                    Ok(self
                        .table
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
                    self.heads.remember(after.clone());
                    after
                }
                Written::Moved(item) => self.heads.retry_from(id, item, attempt).await?,
                Written::Other | Written::Conflicted => {
                    self.heads.retry_from(id, None, attempt).await?
                }
            };
        }
        Err(self.table.conflict(id, op.operation))
    }

    /// The id markers a conversation written by 0.1 lacks (one per message item), as
    /// writes, and the greatest of its message ids.
    async fn legacy_markers(
        &self,
        id: &ConversationId,
    ) -> Result<(Vec<WriteRequest>, Option<MessageId>)> {
        let mut markers = Vec::new();
        let mut max: Option<MessageId> = None;
        let mut items = self
            .table
            .query_partition(id)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :m)")
            .projection_expression("#pk, #sk, #id, #seq")
            .expression_attribute_names("#id", ID)
            .expression_attribute_names("#seq", SEQ)
            .expression_attribute_values(":m", s(MESSAGE_PREFIX))
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items.next().await {
            let item = item.map_err(|e| sdk_error(BACKEND, e))?;
            let message_id =
                MessageId::parse(get_s(&item, ID)?).map_err(|e| corrupt(&item, e.to_string()))?;
            let marker = marker_item(id, &message_id, get_n(&item, SEQ)?);
            markers.push(Table::put_request(marker)?);
            if max
                .as_ref()
                .is_none_or(|m| m.as_str() < message_id.as_str())
            {
                max = Some(message_id);
            }
        }
        Ok((markers, max))
    }
}
