//! [`Deleting`]: `list_deleting`, the conversations marked for deletion and not yet
//! deleted, found through their deletion markers.

use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use chatvault_core::backend::{ConversationId, PageLimit, Result, UserId};
use futures_util::{StreamExt, TryStreamExt};

use crate::dynamo::layout::deletion::{
    DELETING_PK, DeletionMarker, MARKER_TOKEN, owner_of, owner_prefix,
};
use crate::dynamo::layout::item::*;
use crate::dynamo::limits::{BACKEND, DELETING_CHECKS};
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
    Marked(ConversationId),
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
    /// conversation item (a consistent `GetItem`); stale markers are removed on the way.
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
                .filter(|m| {
                    // The key prefix is exact; checked all the same.
                    owner.is_none() || m.as_ref().is_ok_and(|m| m.owner.as_ref() == owner)
                })
                .collect::<Result<Vec<_>>>()?;
            let verdicts: Vec<Verdict> = futures_util::stream::iter(markers)
                .map(|marker| self.check(marker))
                .buffered(DELETING_CHECKS)
                .try_collect()
                .await?;
            out.extend(verdicts.into_iter().filter_map(|v| match v {
                Verdict::Marked(id) => Some(id),
                Verdict::Live | Verdict::Stale => None,
            }));
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

    /// Reads the marker's conversation item (consistently) and says what it is; removes
    /// the marker when it is stale.
    async fn check(&self, marker: DeletionMarker) -> Result<Verdict> {
        let out = self
            .table
            .client
            .get_item()
            .table_name(&self.table.name)
            .set_key(Some(conversation_key(&marker.id)))
            .consistent_read(true)
            .projection_expression("#pk, #user, #deleting")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#user", USER_ID)
            .expression_attribute_names("#deleting", DELETING)
            .send()
            .await
            .map_err(|e| sdk_error(BACKEND, e))?;
        match out.item {
            Some(item) if owner_of(&item)? == marker.owner => Ok(if is_deleting(&item) {
                Verdict::Marked(marker.id)
            } else {
                Verdict::Live
            }),
            _ => {
                self.remove_stale(&marker).await;
                Ok(Verdict::Stale)
            }
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
