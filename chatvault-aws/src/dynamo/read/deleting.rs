//! [`Deleting`]: `list_deleting`, the conversations marked for deletion and not yet
//! deleted, found through their deletion markers.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::KeysAndAttributes;
use chatvault_core::backend::{ConversationId, Error, PageLimit, Result, UserId};
use futures_util::{StreamExt, TryStreamExt};

use crate::dynamo::layout::deletion::{
    DELETING_PK, DeletionMarker, MARKER_TOKEN, owner_of, owner_prefix,
};
use crate::dynamo::layout::item::*;
use crate::dynamo::limits::{
    BACKEND, BATCH_ATTEMPTS, BATCH_CONCURRENCY, BATCH_GET_MAX, DELETING_CHECKS,
};
use crate::dynamo::table::Table;
use crate::sdk::sdk_error;

/// Lists conversations marked for deletion.
#[derive(Clone)]
pub(crate) struct Deleting {
    table: Table,
}

/// What the conversation item says of a marker.
enum Verdict {
    /// The conversation is marked: listed.
    Marked,
    /// The conversation is live, with the marker's owner: a `begin_delete` that is under
    /// way looks the same as one that died before its tombstone, so the marker stays.
    Live,
    /// No conversation of the marker's owner has this id: the marker is left from a
    /// conversation since deleted (or deleted by an earlier release), and goes.
    Stale,
}

impl Deleting {
    /// The marked conversations of `table`.
    pub(crate) fn new(table: Table) -> Self {
        Deleting { table }
    }

    /// `list_deleting`: at most `limit` conversations of `owner` (every owner's with
    /// `None`) that carry the tombstone, from a consistent `Query` of the markers'
    /// partition (by the owner's key prefix), each marker checked against its
    /// conversation item (consistent `BatchGetItem`s); stale markers are removed on the
    /// way.
    pub(crate) async fn list_deleting(
        &self,
        owner: Option<&UserId>,
        limit: PageLimit,
    ) -> Result<Vec<ConversationId>> {
        let want = limit.get();
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let mut query = self
                .table
                .client
                .query()
                .table_name(&self.table.name)
                .consistent_read(true)
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", s(DELETING_PK))
                .limit(i32::try_from(want - out.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start);
            query = match owner {
                Some(user) => query
                    .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                    .expression_attribute_names("#sk", SK)
                    .expression_attribute_values(":prefix", s(owner_prefix(Some(user)))),
                None => query.key_condition_expression("#pk = :pk"),
            };
            let page = query.send().await.map_err(|e| sdk_error(BACKEND, e))?;
            let markers = page
                .items()
                .iter()
                .map(DeletionMarker::decode)
                // The key prefix is exact; checked all the same.
                .filter(|m| !matches!((owner, m), (Some(_), Ok(m)) if m.owner.as_ref() != owner))
                .collect::<Result<Vec<_>>>()?;
            let items = self.conversation_items(&markers).await?;
            let mut stale = Vec::new();
            for marker in markers {
                match verdict(items.get(marker.id.as_str()), &marker)? {
                    Verdict::Marked => out.push(marker.id),
                    Verdict::Live => {}
                    Verdict::Stale => stale.push(marker),
                }
            }
            futures_util::stream::iter(&stale)
                .for_each_concurrent(DELETING_CHECKS, |marker| self.remove_stale(marker))
                .await;
            if out.len() >= want {
                out.truncate(want);
                return Ok(out);
            }
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(out),
            }
        }
    }

    /// The conversation items of `markers` (their owner and tombstone), by conversation
    /// id: consistent `BatchGetItem`s of up to 100 keys, a few at once.
    async fn conversation_items(
        &self,
        markers: &[DeletionMarker],
    ) -> Result<HashMap<String, Item>> {
        let ids: BTreeSet<&ConversationId> = markers.iter().map(|m| &m.id).collect();
        let keys: Vec<Item> = ids.into_iter().map(conversation_key).collect();
        // Owned batches: a stream over borrowed chunks is not `Send` for every lifetime,
        // which the trait's boxed future needs.
        let batches: Vec<Vec<Item>> = keys.chunks(BATCH_GET_MAX).map(<[Item]>::to_vec).collect();
        let found: Vec<Vec<Item>> = futures_util::stream::iter(batches)
            .map(|batch| self.batch_get(batch))
            .buffer_unordered(BATCH_CONCURRENCY)
            .try_collect()
            .await?;
        found
            .into_iter()
            .flatten()
            .map(|item| Ok((get_s(&item, PK)?.to_owned(), item)))
            .collect()
    }

    /// One `BatchGetItem` of `keys` (at most 100, no two alike), read consistently,
    /// retrying unprocessed keys with backoff.
    async fn batch_get(&self, mut keys: Vec<Item>) -> Result<Vec<Item>> {
        let mut found = Vec::new();
        let mut attempt = 0;
        loop {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .projection_expression("#pk, #user, #deleting")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#user", USER_ID)
                .expression_attribute_names("#deleting", DELETING)
                .build()
                .map_err(|e| Error::backend(BACKEND, e))?;
            let out = self
                .table
                .client
                .batch_get_item()
                .request_items(&self.table.name, request)
                .send()
                .await
                .map_err(|e| sdk_error(BACKEND, e))?;
            if let Some(mut responses) = out.responses {
                found.extend(responses.remove(&self.table.name).unwrap_or_default());
            }
            keys = out
                .unprocessed_keys
                .and_then(|mut m| m.remove(&self.table.name))
                .map(|k| k.keys)
                .unwrap_or_default();
            if keys.is_empty() {
                return Ok(found);
            }
            attempt += 1;
            if attempt >= BATCH_ATTEMPTS {
                return Err(Error::temporary(
                    BACKEND,
                    format!(
                        "BatchGetItem left {} keys unprocessed after {BATCH_ATTEMPTS} attempts",
                        keys.len()
                    ),
                ));
            }
            Table::pause(attempt + 3).await;
        }
    }

    /// Deletes a stale marker if it still holds the token read with it: a marker put
    /// again since belongs to a `begin_delete` that read the conversation after the
    /// listing did, and stays. Best effort: a failure is logged, and the next listing
    /// tries again.
    ///
    /// Why that is safe: the tombstone is conditional on the owner and creation time
    /// read before the marker was put, so a `begin_delete` whose put left this token
    /// could only mark a conversation that existed, with this owner, before the listing
    /// found none; such a conversation cannot come back, and its `delete` removed the
    /// marker with it (a later put has another token).
    async fn remove_stale(&self, marker: &DeletionMarker) {
        let deleted = self
            .table
            .client
            .delete_item()
            .table_name(&self.table.name)
            .set_key(Some(marker.key()))
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", MARKER_TOKEN)
            .expression_attribute_values(":token", s(&marker.token))
            .send()
            .await;
        match deleted {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(DeleteItemError::ConditionalCheckFailedException(_))
                ) => {}
            Err(e) => tracing::warn!(
                conversation = %marker.id,
                error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e),
                "could not remove a stale deletion marker; the next list_deleting tries again"
            ),
        }
    }
}

/// What `item`, the conversation item of `marker` (if there is one), says of the marker.
fn verdict(item: Option<&Item>, marker: &DeletionMarker) -> Result<Verdict> {
    Ok(match item {
        Some(item) if owner_of(item)? == marker.owner => {
            if is_deleting(item) {
                Verdict::Marked
            } else {
                Verdict::Live
            }
        }
        _ => Verdict::Stale,
    })
}
