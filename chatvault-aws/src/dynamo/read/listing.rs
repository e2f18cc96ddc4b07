//! [`Listing`]: `list_conversations`, summaries from the two listing indexes, newest
//! activity first.

use aws_sdk_dynamodb::types::AttributeValue;
use chatvault_core::backend::{ConversationSummary, ListOptions, Page, Result, UserId};

use crate::dynamo::layout::item::*;
use crate::dynamo::limits::BACKEND;
use crate::dynamo::table::Table;
use crate::sdk::sdk_error;

/// Lists conversations.
#[derive(Clone)]
pub(crate) struct Listing {
    table: Table,
}

impl Listing {
    /// Listings of `table`'s conversations.
    pub(crate) fn new(table: Table) -> Self {
        Listing { table }
    }

    /// `list_conversations`: a page of summaries from a GSI, `by_user` for one user,
    /// `by_activity` for everyone (one `Query` per shard, merged).
    pub(crate) async fn list_conversations(
        &self,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        let after = options
            .cursor
            .as_ref()
            .map(|c| activity(c.last_active, &c.id));
        let want = options.limit.get() + 1;
        let mut found = match user_id {
            Some(user) => {
                self.query_index(
                    BY_USER_INDEX,
                    USER_ID,
                    user.as_str().to_owned(),
                    after.as_deref(),
                    options.include_archived,
                    want,
                )
                .await?
            }
            None => {
                let shards = (0..LIST_SHARDS).map(|shard| {
                    self.query_index(
                        BY_ACTIVITY_INDEX,
                        LIST_SHARD,
                        shard_name(shard),
                        after.as_deref(),
                        options.include_archived,
                        want,
                    )
                });
                futures_util::future::try_join_all(shards)
                    .await?
                    .into_iter()
                    .flatten()
                    .collect()
            }
        };
        found.sort_by(|a, b| b.0.cmp(&a.0));
        let items: Vec<ConversationSummary> = found.into_iter().map(|(_, s)| s).collect();
        Ok(Page::of_listing(items, options.limit))
    }

    /// Up to `want` summaries of one GSI partition, newest activity first, strictly after
    /// `after` (an activity key).
    async fn query_index(
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
                .table
                .client
                .query()
                .table_name(&self.table.name)
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
