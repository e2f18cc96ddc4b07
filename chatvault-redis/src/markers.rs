//! The markers of conversations marked for deletion, so that
//! [`Markers::list_deleting`] finds them without reading every conversation.
//!
//! A marker is an entry (the conversation id, scored by the time of the mark in
//! microseconds) in `P:del:all` and, for a conversation of a user, in `P:del:u:USER`.
//! These sets live in slots of their own, so the mark's script (on the conversation's
//! slot) cannot write them; the markers go with separate commands:
//!
//! - `begin_delete` adds them *before* its script marks the conversation: a mark is
//!   never stored without its markers (a crash in between leaves markers of a live
//!   conversation, which listings skip);
//! - `delete` reads their scores before it removes the conversation's keys, and removes
//!   them after, each only if it still has the score it was read with: a conversation
//!   created again under the same id and marked meanwhile keeps its new markers;
//! - a listing checks each marker's conversation (`HMGET` of its record and mark): marked
//!   is listed, live is skipped (the marker stays until the conversation is deleted), gone
//!   is removed as listings remove the entries of gone conversations
//!   ([`Pruner::prune`]: atomically on one server, by score and checked
//!   again in a cluster).

use chatvault_core::backend::{ConversationId, ConversationRecord, PageLimit, Result, UserId, now};
use futures_util::future::{join_all, try_join_all};
use redis::cmd;

use crate::conn::{Conn, read_error, write_error};
use crate::entries::Entries;
use crate::layout::{Keys, from_json, score};
use crate::prune::Pruner;
use crate::scripts::PRUNE_ENTRY;

/// The most markers one read of a marker set takes.
const MARKER_BATCH: usize = 1000;

/// A marker as read before a delete: its set and its score.
pub(crate) type Marker = (String, i64);

/// The marker sets under one prefix, on one connection.
#[derive(Clone, Debug)]
pub(crate) struct Markers {
    conn: Conn,
    keys: Keys,
    entries: Entries,
    pruner: Pruner,
}

impl Markers {
    /// The marker sets under `keys`, on `conn`.
    pub(crate) fn new(conn: Conn, keys: Keys) -> Self {
        Markers {
            entries: Entries::new(conn.clone(), keys.clone()),
            pruner: Pruner::new(conn.clone(), keys.clone()),
            conn,
            keys,
        }
    }

    /// At most `limit` conversations marked by `begin_delete` and not yet deleted, of
    /// `user_id` (every user's, and those of no user, with `None`), in no particular
    /// order. `delete` takes a conversation off this list, so a caller that finishes each
    /// conversation it gets calls again until the answer is empty.
    ///
    /// Exact after any crash for conversations marked by this release: `begin_delete`
    /// adds the conversation to the marker sets (`P:del:all`, `P:del:u:USER`) before it
    /// marks it, and `delete` removes it from them after the conversation's keys. A
    /// conversation marked by an earlier release has no marker and is not found until
    /// `begin_delete` is called on it again. Reads the marker set (the user's, or every
    /// conversation's with `None`) and one `HMGET` per marker (on one server in one
    /// pipeline per 1,000 markers): never a live conversation without a marker, nor a
    /// message. Does not depend on [`list_all`](crate::RedisMessagesBuilder::list_all).
    pub(crate) async fn list_deleting(
        &self,
        user_id: Option<&UserId>,
        limit: PageLimit,
    ) -> Result<Vec<ConversationId>> {
        let index = match user_id {
            Some(user) => self.keys.deleting_owner(user),
            None => self.keys.deleting_all(),
        };
        let limit = limit.get();
        let mut out = Vec::new();
        let mut after: Option<(i64, String)> = None;
        while out.len() < limit {
            let entries = self
                .entries
                .after(&index, after.as_ref(), MARKER_BATCH)
                .await?;
            let Some(last) = entries.last() else { break };
            after = Some((last.1 as i64, last.0.clone()));
            let full = entries.len() == MARKER_BATCH;
            let mut gone = Vec::new();
            for ((member, at), (location, (record, deleting))) in entries
                .iter()
                .zip(self.entries.record_fields(&entries).await?)
            {
                match (record, deleting) {
                    (None, None) => gone.push((member.clone(), *at as i64)),
                    // Live: a crash between the marker and the mark.
                    (Some(_), None) => {}
                    (record, Some(_)) => {
                        if mine(&location, record.as_deref(), user_id) && out.len() < limit {
                            out.push(ConversationId::parse(member)?);
                        }
                    }
                }
            }
            self.pruner.prune(&index, &gone).await;
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// The marker sets of a conversation of `user`.
    fn marker_sets(&self, user: Option<&UserId>) -> Vec<String> {
        let keys = &self.keys;
        let mut sets = vec![keys.deleting_all()];
        sets.extend(user.map(|u| keys.deleting_owner(u)));
        sets
    }

    /// Adds conversation `id` (of `user`) to the marker sets, scored now: before its mark.
    /// Returns the markers written.
    pub(crate) async fn add(
        &self,
        id: &ConversationId,
        user: Option<&UserId>,
    ) -> Result<Vec<Marker>> {
        let at = score(now());
        let sets = self.marker_sets(user);
        let adds = sets.iter().map(|set| {
            let mut conn = self.conn.clone();
            async move {
                cmd("ZADD")
                    .arg(set)
                    .arg(at)
                    .arg(id.as_str())
                    .query_async::<i64>(&mut conn)
                    .await
            }
        });
        try_join_all(adds)
            .await
            .map_err(write_error("begin_delete"))?;
        Ok(sets.into_iter().map(|set| (set, at)).collect())
    }

    /// The markers of conversation `id` (of `user`) with their scores, before its delete.
    pub(crate) async fn of(
        &self,
        id: &ConversationId,
        user: Option<&UserId>,
    ) -> Result<Vec<Marker>> {
        let reads = self.marker_sets(user).into_iter().map(|set| {
            let mut conn = self.conn.clone();
            async move {
                let at: Option<f64> = cmd("ZSCORE")
                    .arg(&set)
                    .arg(id.as_str())
                    .query_async(&mut conn)
                    .await?;
                Ok::<_, redis::RedisError>(at.map(|at| (set, at as i64)))
            }
        });
        let found = try_join_all(reads).await.map_err(read_error)?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Removes `markers` of conversation `id`, each only if it still has its score: after
    /// the delete (or after a mark that found no conversation). Best effort: a marker
    /// left is one of a conversation that is gone, which listings remove.
    pub(crate) async fn remove(&self, id: &ConversationId, markers: &[Marker]) {
        let removals = markers.iter().map(|(set, at)| {
            let mut conn = self.conn.clone();
            async move {
                let mut invocation = PRUNE_ENTRY.prepare_invoke();
                invocation.key(set).arg(id.as_str()).arg(*at);
                invocation.invoke_async::<i64>(&mut conn).await
            }
        });
        for outcome in join_all(removals).await {
            if let Err(e) = outcome {
                tracing::warn!(conversation = %id, error = %e, "marker of a deleted conversation not removed");
            }
        }
    }
}

/// Whether a marked conversation whose record reads `record` (`None`: none stored) is
/// `user`'s (any is, for `None`). A record that cannot be read is listed under its marker
/// set: `delete` removes it all the same.
fn mine(location: &str, record: Option<&[u8]>, user: Option<&UserId>) -> bool {
    let Some(user) = user else { return true };
    match record.map(|json| from_json::<ConversationRecord>(location, json)) {
        Some(Ok(record)) => record.user_id.as_ref() == Some(user),
        Some(Err(e)) => {
            tracing::warn!(conversation = location, error = %e, "listing a marked conversation whose record cannot be read");
            true
        }
        None => true,
    }
}
