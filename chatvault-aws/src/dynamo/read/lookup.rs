//! [`Lookup`]: messages found by id, in the tail or through their id markers.

use chatvault_core::backend::{ConversationId, Message, MessageId, Result};

use super::head::Heads;
use crate::dynamo::layout::chunks::{MAX_CHUNK_MESSAGES, decode_stored, decode_tail};
use crate::dynamo::layout::item::*;
use crate::dynamo::limits::BACKEND;
use crate::dynamo::table::Table;
use crate::sdk::sdk_error;

/// A sealed message's item as read: its messages, and where the message is among them.
pub(crate) struct SealedLocation {
    pub(crate) item: Item,
    pub(crate) messages: Vec<Message>,
    pub(crate) index: usize,
}

/// Finds messages by id: `message`, and what writes check (a retried append's ids, a
/// lost answer's commit, the message an update names).
#[derive(Clone)]
pub(crate) struct Lookup {
    table: Table,
    heads: Heads,
}

impl Lookup {
    /// Lookups in `table`, reading conversation items through `heads`.
    pub(crate) fn new(table: Table, heads: Heads) -> Self {
        Lookup { table, heads }
    }

    /// Whether a write of `stored` committed: its first message is stored, at its `seq`.
    pub(crate) async fn committed(&self, id: &ConversationId, stored: &[Message]) -> Result<bool> {
        let Some(first) = stored.first() else {
            return Ok(false);
        };
        Ok(self
            .message_by_id(id, &first.id)
            .await?
            .is_some_and(|m| m.seq == first.seq))
    }

    /// The message stored under `message_id` in the conversation now: in the tail (the
    /// conversation item, read first, so that a message sealed meanwhile is found by its
    /// marker), or sealed.
    pub(crate) async fn message_by_id(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        let Some(item) = self.table.read_item(id).await? else {
            return Ok(None);
        };
        let tail = decode_tail(&item)?;
        if let Some(found) = tail.into_iter().find(|e| &e.message.id == message_id) {
            return Ok(Some(found.message));
        }
        self.sealed_message(id, message_id).await
    }

    /// `message`: the message stored under `message_id`, on any branch;
    /// [`Error::NotFound`](chatvault_core::Error::NotFound) when the conversation is
    /// missing or being deleted.
    ///
    /// One consistent `GetItem` of the conversation item when the message is in its tail,
    /// or when its id sorts after every sealed id (so it is not stored); otherwise two
    /// more reads through its id marker. A conversation written by 0.1 and not written
    /// since has no markers: its message items are queried for the id.
    pub(crate) async fn read_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        let item = self.table.read_item(id).await?;
        let current = self.heads.seen_writable(id, item)?;
        if let Some(found) = current.tail.iter().find(|e| &e.message.id == message_id) {
            return Ok(Some(found.message.clone()));
        }
        if current.legacy {
            return self.legacy_message(id, message_id).await;
        }
        match &current.sealed_max {
            Some(max) if message_id.as_str() <= max.as_str() => {
                self.sealed_message(id, message_id).await
            }
            _ => Ok(None),
        }
    }

    /// A message of a conversation written by 0.1 (one item per message, no id markers
    /// yet), found by querying its message items for the id.
    async fn legacy_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        // Page after page, as far as the message is.
        let mut items = self
            .table
            .query_partition(id)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :m)")
            .filter_expression("#id = :id")
            .expression_attribute_names("#id", ID)
            .expression_attribute_values(":m", s(MESSAGE_PREFIX))
            .expression_attribute_values(":id", s(message_id.as_str()))
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items.next().await {
            let item = item.map_err(|e| sdk_error(BACKEND, e))?;
            let mut stored = decode_stored(&item)?.into_iter();
            if let Some(m) = stored.find(|m| &m.id == message_id) {
                return Ok(Some(m));
            }
        }
        Ok(None)
    }

    /// A sealed message, through its id marker (two reads); `None` when it has no marker.
    pub(crate) async fn sealed_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        Ok(self
            .sealed_location(id, message_id)
            .await?
            .map(|mut l| l.messages.swap_remove(l.index)))
    }

    /// The item holding a sealed message (found through its id marker), as read.
    pub(crate) async fn sealed_location(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<SealedLocation>> {
        let Some(marker) = self.table.get(key(id, marker_sk(message_id))).await? else {
            return Ok(None);
        };
        let seq = get_n(&marker, SEQ)?;
        let out = self
            .table
            .query_partition(id)
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :low AND :high")
            .expression_attribute_values(":low", s(message_sk(seq)))
            .expression_attribute_values(
                ":high",
                s(message_sk(seq.saturating_add(MAX_CHUNK_MESSAGES))),
            )
            .limit(1)
            .send()
            .await
            .map_err(|e| sdk_error(BACKEND, e))?;
        // None: being deleted (the markers and items go item by item).
        let Some(item) = out.items.and_then(|mut items| items.pop()) else {
            return Ok(None);
        };
        let messages = decode_stored(&item)?;
        let Some(index) = messages.iter().position(|m| m.seq == seq) else {
            return Ok(None);
        };
        if &messages[index].id != message_id {
            return Err(corrupt(
                &marker,
                format!(
                    "the marker points at seq {seq}, which holds message {}",
                    messages[index].id
                ),
            ));
        }
        Ok(Some(SealedLocation {
            item,
            messages,
            index,
        }))
    }
}
