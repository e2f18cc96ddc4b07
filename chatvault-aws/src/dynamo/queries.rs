//! The read path: the conversation item, messages (by range and by id) and GSI listings.

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use chatvault_core::{
    ConversationId, ConversationRecord, ConversationSummary, Error, FileAttachment, Message,
    MessageId, MessageRange, Page, Result,
};

use super::item::*;
use super::seen::Seen;
use super::{BACKEND, DynamoMessages};
use crate::sdk::sdk_error;

impl DynamoMessages {
    /// One item, read consistently.
    async fn get(&self, key: Item) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(BACKEND, e))?;
        Ok(out.item)
    }

    /// The conversation item, read consistently.
    pub(super) async fn read_item(&self, id: &ConversationId) -> Result<Option<Item>> {
        self.get(conversation_key(id)).await
    }

    /// Whether an append of `stored` committed: its first message is in the table.
    pub(super) async fn committed(&self, id: &ConversationId, stored: &[Message]) -> Result<bool> {
        let Some(first) = stored.first() else {
            return Ok(false);
        };
        Ok(self
            .get(key(id, message_sk(first.seq)))
            .await?
            .is_some_and(|item| decode_message(&item).is_ok_and(|m| m.id == first.id)))
    }

    /// The message stored under `message_id` in the conversation, through its id marker
    /// (two reads); for a message stored by 0.1, which has no marker, by a filtered
    /// `Query` of the conversation's messages.
    pub(super) async fn message_by_id(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        if let Some(marker) = self.get(key(id, marker_sk(message_id))).await? {
            let seq = get_n(&marker, SEQ)?;
            return match self.get(key(id, message_sk(seq))).await? {
                Some(item) => {
                    let message = decode_message(&item)?;
                    if &message.id != message_id {
                        return Err(corrupt(
                            &marker,
                            format!(
                                "the marker points at seq {seq}, which holds message {}",
                                message.id
                            ),
                        ));
                    }
                    Ok(Some(message))
                }
                // Being deleted: the markers and messages go item by item.
                None => Ok(None),
            };
        }
        let mut start = None;
        loop {
            let page = self
                .query_partition(id)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :m)")
                .filter_expression("#id = :id")
                .expression_attribute_names("#id", ID)
                .expression_attribute_values(":m", s(MESSAGE_PREFIX))
                .expression_attribute_values(":id", s(message_id.as_str()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error(BACKEND, e))?;
            if let Some(item) = page.items().first() {
                return decode_message(item).map(Some);
            }
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(None),
            }
        }
    }

    /// The conversation's record and attachments, `None` when it is missing or being
    /// deleted.
    pub(super) async fn read_head(
        &self,
        id: &ConversationId,
    ) -> Result<Option<(ConversationRecord, Vec<FileAttachment>)>> {
        match self.read_writable(id).await {
            Ok(head) => Ok(Some(head)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The conversation as a writer sees it: [`Error::NotFound`] when it is missing or
    /// being deleted.
    pub(super) async fn read_writable(
        &self,
        id: &ConversationId,
    ) -> Result<(ConversationRecord, Vec<FileAttachment>)> {
        let item = self.read_item(id).await?;
        self.writable(id, item)
    }

    /// What an append needs of the conversation, read: [`Error::NotFound`] when it is
    /// missing or being deleted.
    pub(super) async fn read_seen(&self, id: &ConversationId) -> Result<Seen> {
        let item = self.read_item(id).await?;
        self.seen_writable(id, item)
    }

    /// A strongly consistent `Query` on one conversation's partition, with `#pk = :pk`
    /// bound and `#sk` named; the caller adds the key condition and the rest.
    pub(super) fn query_partition(&self, id: &ConversationId) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(id.as_str()))
            .consistent_read(true)
    }

    /// The keys of every item under a conversation's partition key.
    pub(super) async fn all_keys(&self, id: &ConversationId) -> Result<Vec<Item>> {
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

    /// `messages`: a window of the conversation's messages, [`Error::NotFound`] when it is
    /// missing or being deleted.
    ///
    /// A window from the start (`after` 0, as a whole-conversation read begins) is one
    /// `Query` from the conversation item on: the conversation item comes first (is it
    /// there, and not being deleted?), then the messages, up to DynamoDB's 1 MB page. Any
    /// other window is a `Query` of its key range and, at the same time, a `GetItem` of the
    /// conversation item.
    pub(super) async fn read_messages(
        &self,
        id: &ConversationId,
        range: &MessageRange,
    ) -> Result<Page<Message>> {
        let gone = || Error::conversation_not_found(id.as_str());
        let Some(window) = Window::of(range) else {
            // Nothing to read but whether the conversation is there.
            return match self.read_item(id).await? {
                Some(item) if !is_deleting(&item) => Ok(Page {
                    items: Vec::new(),
                    next_cursor: None,
                }),
                _ => Err(gone()),
            };
        };
        if window.forward && window.low == 1 {
            let (head, page) = self.query_window(id, &window, true).await?;
            return match head {
                Some(item) if !is_deleting(&item) => Ok(page),
                _ => Err(gone()),
            };
        }
        let ((_, page), item) = futures_util::future::try_join(
            self.query_window(id, &window, false),
            self.read_item(id),
        )
        .await?;
        match item {
            Some(item) if !is_deleting(&item) => Ok(page),
            _ => Err(gone()),
        }
    }

    /// Queries a window's key range (from the conversation item on, when `with_head`) and
    /// pages the result; returns the conversation item too when it was read.
    async fn query_window(
        &self,
        id: &ConversationId,
        window: &Window,
        with_head: bool,
    ) -> Result<(Option<Item>, Page<Message>)> {
        let low = if with_head {
            CONVERSATION_SK.to_owned()
        } else {
            message_sk(window.low)
        };
        // One more than asked for tells whether more lie beyond (and one for the head).
        let query_limit = window.limit.map(|l| {
            i32::try_from(l.saturating_add(1 + usize::from(with_head))).unwrap_or(i32::MAX)
        });
        let mut head = None;
        let mut start = None;
        loop {
            let out = self
                .query_partition(id)
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :low AND :high")
                .expression_attribute_values(":low", s(&low))
                .expression_attribute_values(":high", s(message_sk(window.high)))
                .scan_index_forward(window.forward)
                .set_limit(query_limit)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error(BACKEND, e))?;
            let mut items = Vec::with_capacity(out.items().len());
            for item in out.items() {
                if matches!(item.get(SK), Some(AttributeValue::S(sk)) if sk == CONVERSATION_SK) {
                    head = Some(item.clone());
                } else {
                    items.push(decode_message(item)?);
                }
            }
            if items.is_empty() {
                if let Some(key) = out.last_evaluated_key {
                    start = Some(key);
                    continue;
                }
                return Ok((
                    head,
                    Page {
                        items,
                        next_cursor: None,
                    },
                ));
            }
            let mut more = out.last_evaluated_key.is_some();
            if let Some(limit) = window.limit
                && items.len() > limit
            {
                items.truncate(limit);
                more = true;
            }
            if !window.forward {
                items.reverse();
            }
            let next_cursor = match (more, window.forward) {
                (false, _) => None,
                (true, true) => items.last().map(|m| m.seq.to_string()),
                (true, false) => items.first().map(|m| m.seq.to_string()),
            };
            return Ok((head, Page { items, next_cursor }));
        }
    }

    /// Up to `want` summaries of one GSI partition, newest activity first, strictly after
    /// `after` (an activity key).
    pub(super) async fn query_index(
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

/// The key range of a [`MessageRange`]: `seq` from `low` to `high`, read forward or
/// backward, at most `limit` messages.
struct Window {
    low: u64,
    high: u64,
    forward: bool,
    limit: Option<usize>,
}

impl Window {
    /// `None` when the range holds nothing whatever the conversation.
    fn of(range: &MessageRange) -> Option<Window> {
        match *range {
            MessageRange::After { after, limit } => {
                let first = after.checked_add(1)?;
                if limit == Some(0) {
                    return None;
                }
                Some(Window {
                    low: first,
                    high: u64::MAX,
                    forward: true,
                    limit,
                })
            }
            MessageRange::Before { before, limit } => {
                let last = match before {
                    None => u64::MAX,
                    Some(0 | 1) => return None,
                    Some(b) => b - 1,
                };
                if limit == 0 {
                    return None;
                }
                Some(Window {
                    low: 0,
                    high: last,
                    forward: false,
                    limit: Some(limit),
                })
            }
        }
    }
}
