//! Listing entries whose conversation is gone: its keys expired (`expire_keys`), or a
//! create failed after its entries went in. A sorted set's members cannot expire, so a
//! listing that meets such entries skips them and removes them.

use chatvault_core::backend::ConversationId;
use futures_util::future::join_all;
use redis::cmd;

use crate::conn::Conn;
use crate::layout::Keys;
use crate::scripts::{PRUNE, PRUNE_ENTRY};

/// Removes the entries of gone conversations from a sorted set of conversation ids (a
/// listing index or a marker set), on the connection and under the keys it was made with.
#[derive(Clone, Debug)]
pub(crate) struct Pruner {
    conn: Conn,
    keys: Keys,
}

/// A listing entry found without a live record.
struct Dead<'a> {
    /// The member: a conversation id.
    member: &'a str,
    /// Its score, as read.
    at: i64,
    /// The conversation's hash.
    key: String,
}

impl Pruner {
    /// A pruner of the sets under `keys`, on `conn`.
    pub(crate) fn new(conn: Conn, keys: Keys) -> Self {
        Pruner { conn, keys }
    }

    /// Removes from the listing index `index` (or a marker set of
    /// [`Markers`](crate::markers::Markers)) those of `dead` (members a listing found no
    /// live record for, with their scores) whose conversation is gone; a conversation
    /// being deleted keeps its entry, which its delete removes. Best effort: a failure is
    /// logged, and the next listing that meets the entries tries again.
    pub(crate) async fn prune(&self, index: &str, dead: &[(String, i64)]) {
        // A member that is no conversation id was refused by the listing before this.
        let dead: Vec<Dead<'_>> = dead
            .iter()
            .filter_map(|(member, at)| {
                let id = ConversationId::parse(member.as_str()).ok()?;
                Some(Dead {
                    member,
                    at: *at,
                    key: self.keys.conversation(&id),
                })
            })
            .collect();
        if dead.is_empty() {
            return;
        }
        let removed = if self.conn.is_cluster() {
            self.prune_in_cluster(index, &dead).await
        } else {
            self.prune_on_one_server(index, &dead).await
        };
        match removed {
            Ok(0) => {}
            Ok(n) => {
                tracing::debug!(%index, removed = n, "listing entries of gone conversations removed")
            }
            Err(e) => {
                tracing::warn!(%index, error = %e, "listing entries of gone conversations not removed")
            }
        }
    }

    /// On one server: one script checks each conversation and removes its entry, so no
    /// create or write comes between the check and the removal.
    async fn prune_on_one_server(&self, index: &str, dead: &[Dead<'_>]) -> redis::RedisResult<i64> {
        let mut invocation = PRUNE.prepare_invoke();
        invocation.key(index);
        for d in dead {
            invocation.key(&d.key);
        }
        for d in dead {
            invocation.arg(d.member);
        }
        let mut conn = self.conn.clone();
        invocation.invoke_async(&mut conn).await
    }

    /// In a cluster the entry and the conversation live in different slots: the entry is
    /// removed if it still has the score it was read with, then the conversation is looked
    /// at again, and the entry put back if it exists. With the create's own second add
    /// after its script ([`Listings::add_new`](crate::listing::Listings::add_new)), a create
    /// under way keeps its entry whichever comes first.
    async fn prune_in_cluster(&self, index: &str, dead: &[Dead<'_>]) -> redis::RedisResult<i64> {
        let removals = dead.iter().map(|d| {
            let mut conn = self.conn.clone();
            async move {
                let mut invocation = PRUNE_ENTRY.prepare_invoke();
                invocation.key(index).arg(d.member).arg(d.at);
                let removed: i64 = invocation.invoke_async(&mut conn).await?;
                if removed == 0 {
                    return Ok::<i64, redis::RedisError>(0);
                }
                let exists: i64 = cmd("EXISTS").arg(&d.key).query_async(&mut conn).await?;
                if exists == 0 {
                    return Ok(1);
                }
                cmd("ZADD")
                    .arg(index)
                    .arg("NX")
                    .arg(d.at)
                    .arg(d.member)
                    .query_async::<i64>(&mut conn)
                    .await?;
                Ok(0)
            }
        });
        let mut removed = 0;
        for outcome in join_all(removals).await {
            removed += outcome?;
        }
        Ok(removed)
    }
}
