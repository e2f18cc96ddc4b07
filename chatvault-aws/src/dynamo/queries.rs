//! The read path: the conversation item, message ranges and GSI listings.

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;
use chatvault_core::{
    ConversationRecord, ConversationSummary, Error, FileAttachment, Message, MessageRange, Page,
    Result, keys,
};

use super::item::*;
use super::seen::Seen;
use super::{BACKEND, DynamoMessages};
use crate::sdk::sdk_error;

impl DynamoMessages {
    /// The conversation item, read consistently.
    pub(super) async fn read_item(&self, id: &str) -> Result<Option<Item>> {
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
    pub(super) async fn committed(&self, id: &str, stored: &[Message]) -> Result<bool> {
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

    pub(super) async fn read_conversation(
        &self,
        id: &str,
    ) -> Result<Option<(ConversationRecord, Vec<FileAttachment>)>> {
        if keys::validate_id("conversation id", id).is_err() {
            // No such id can have been stored (create validates it).
            return Ok(None);
        }
        let Some(item) = self.read_item(id).await? else {
            self.seen.forget(id);
            return Ok(None);
        };
        let (record, files) = decode_conversation(&item)?;
        self.note(&item, &record);
        Ok(Some((record, files)))
    }

    /// The conversation as a writer sees it: [`Error::NotFound`] when it is missing or
    /// being deleted.
    pub(super) async fn read_writable(
        &self,
        id: &str,
    ) -> Result<(ConversationRecord, Vec<FileAttachment>)> {
        if keys::validate_id("conversation id", id).is_err() {
            return Err(Error::conversation_not_found(id));
        }
        let item = self.read_item(id).await?;
        self.writable(id, item)
    }

    /// What an append needs of the conversation, read: [`Error::NotFound`] when it is
    /// missing or being deleted.
    pub(super) async fn read_seen(&self, id: &str) -> Result<Seen> {
        if keys::validate_id("conversation id", id).is_err() {
            return Err(Error::conversation_not_found(id));
        }
        let item = self.read_item(id).await?;
        self.seen_writable(id, item)
    }

    pub(super) async fn require_conversation(
        &self,
        id: &str,
    ) -> Result<(ConversationRecord, Vec<FileAttachment>)> {
        self.read_conversation(id)
            .await?
            .ok_or_else(|| Error::conversation_not_found(id))
    }

    /// A strongly consistent `Query` on one conversation's partition, with `#pk = :pk`
    /// bound and `#sk` named; the caller adds the key condition and the rest.
    pub(super) fn query_partition(&self, id: &str) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(id))
            .consistent_read(true)
    }

    /// Every message item of a conversation, in `seq` order.
    pub(super) async fn all_messages(&self, id: &str) -> Result<Vec<Message>> {
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
    pub(super) async fn all_keys(&self, id: &str) -> Result<Vec<Item>> {
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
    /// Turns a range into a key range, queries it, and pages the result.
    pub(super) async fn query_range(
        &self,
        id: &str,
        range: &MessageRange,
    ) -> Result<Page<Message>> {
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
