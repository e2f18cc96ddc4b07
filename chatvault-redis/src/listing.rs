//! The listing indexes: the sorted sets each conversation is listed in (its owner's, and
//! every conversation's when the backend lists all), pages read from them, and, where a
//! conversation's script cannot reach them (a cluster, a delete), their entries kept in
//! step with it.

use chatvault_core::backend::{
    ConversationId, ConversationRecord, ConversationSummary, Error, ListCursor, ListOptions, Page,
    Result, UserId,
};
use futures_util::future::{join_all, try_join_all};
use redis::cmd;

use crate::conn::{BACKEND, Conn, write_error};
use crate::entries::{Entries, Entry};
use crate::layout::{Keys, from_json, score, score_time};
use crate::prune::Pruner;

/// The listing indexes under one prefix, on one connection.
#[derive(Clone, Debug)]
pub(crate) struct Listings {
    conn: Conn,
    keys: Keys,
    list_all: bool,
    entries: Entries,
    pruner: Pruner,
}

impl Listings {
    /// The listing indexes under `keys`, on `conn`; with `list_all`, every conversation is
    /// also kept in the index of all.
    pub(crate) fn new(conn: Conn, keys: Keys, list_all: bool) -> Self {
        Listings {
            entries: Entries::new(conn.clone(), keys.clone()),
            pruner: Pruner::new(conn.clone(), keys.clone()),
            conn,
            keys,
            list_all,
        }
    }

    /// Whether every conversation is kept in the index of all (`list_conversations(None,
    /// ..)` answers).
    pub(crate) fn lists_all(&self) -> bool {
        self.list_all
    }

    /// The listing indexes `record` belongs in: its owner's, and every conversation's
    /// when this backend lists all.
    pub(crate) fn keys_of(&self, record: &ConversationRecord) -> Vec<String> {
        let mut out = Vec::with_capacity(2);
        if let Some(user) = &record.user_id {
            out.push(self.keys.owner_index(user));
        }
        if self.list_all {
            out.push(self.keys.all_index());
        }
        out
    }

    /// [`MessagesBackend::list_conversations`](chatvault_core::MessagesBackend::list_conversations):
    /// the owner's (or every conversation's) sorted set from the cursor's position, then
    /// the records of the entries, read together. An entry whose conversation is gone,
    /// being deleted, someone else's or archived (unless asked) is skipped (and one whose
    /// conversation is gone, removed); the page's cursor is the position of its last entry
    /// in the set.
    pub(crate) async fn page(
        &self,
        user: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        let index = match user {
            Some(user) => self.keys.owner_index(user),
            None if self.list_all => self.keys.all_index(),
            None => {
                return Err(Error::not_supported(
                    BACKEND,
                    "listing every user's conversations",
                ));
            }
        };
        let want = options.limit.get() + 1;
        let mut after = options
            .cursor
            .as_ref()
            .map(|c| (score(c.last_active), c.id.to_string()));
        let mut items: Vec<(ConversationSummary, i64)> = Vec::with_capacity(want);
        let mut batch = want;
        while items.len() < want {
            let entries = self.entries.after(&index, after.as_ref(), batch).await?;
            let Some(last) = entries.last() else { break };
            after = Some((last.1 as i64, last.0.clone()));
            let full = entries.len() == batch;
            let records = self.records(&entries).await?;
            let mut dead = Vec::new();
            for ((member, at), record) in entries.iter().zip(records) {
                let Some(record) = record else {
                    dead.push((member.clone(), *at as i64));
                    continue;
                };
                let mine = user.is_none_or(|u| record.user_id.as_ref() == Some(u));
                if mine && (options.include_archived || !record.archived) {
                    items.push((record.summary(), *at as i64));
                }
            }
            self.pruner.prune(&index, &dead).await;
            if !full {
                break;
            }
            // Skipped entries (archived ones, mostly) make the next read larger.
            batch = (batch * 2).min(1000);
        }
        let page = Page::from_overfetch(items, options.limit, |(summary, at)| {
            match score_time(*at) {
                Ok(last_active) => ListCursor {
                    last_active,
                    id: summary.id.clone(),
                },
                Err(_) => ListCursor::after(summary),
            }
            .encode()
        });
        Ok(Page {
            items: page.items.into_iter().map(|(s, _)| s).collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// The live records of `entries`' conversations, read together (`None` for one that
    /// is gone or being deleted): see [`Entries::record_fields`].
    async fn records(&self, entries: &[Entry]) -> Result<Vec<Option<ConversationRecord>>> {
        let read = self.entries.record_fields(entries).await?;
        read.into_iter()
            .map(|(location, found)| match found {
                (Some(record), None) => from_json(&location, &record).map(Some),
                _ => Ok(None),
            })
            .collect()
    }

    /// In a cluster, adds a new conversation to its listings (unless it is there already).
    pub(crate) async fn add_new(&self, record: &ConversationRecord) -> Result<()> {
        let at = score(record.last_active);
        let adds = self.keys_of(record).into_iter().map(|key| {
            let mut conn = self.conn.clone();
            async move {
                cmd("ZADD")
                    .arg(key)
                    .arg("NX")
                    .arg(at)
                    .arg(record.id.as_str())
                    .query_async::<i64>(&mut conn)
                    .await
            }
        });
        try_join_all(adds).await.map_err(write_error("create"))?;
        Ok(())
    }

    /// In a cluster, moves a written conversation in its listings (on one server the
    /// write's script did). The listings are an index, not the record: a failure here is
    /// logged, and the next write of the conversation moves it.
    pub(crate) async fn move_entry(&self, before: &ConversationRecord, after: &ConversationRecord) {
        if !self.conn.is_cluster() || before.last_active == after.last_active {
            return;
        }
        let at = score(after.last_active);
        let sends = self.keys_of(after).into_iter().map(|key| {
            let mut conn = self.conn.clone();
            let id = after.id.clone();
            async move {
                let added: redis::RedisResult<i64> = cmd("ZADD")
                    .arg(&key)
                    .arg("GT")
                    .arg(at)
                    .arg(id.as_str())
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = added {
                    tracing::warn!(%key, conversation = %id, error = %e, "listing index not moved");
                }
            }
        });
        join_all(sends).await;
    }

    /// Removes conversation `id` (whose record is `record`) from its listings, before its
    /// keys are deleted.
    pub(crate) async fn remove(
        &self,
        id: &ConversationId,
        record: &ConversationRecord,
    ) -> Result<()> {
        let removes = self.keys_of(record).into_iter().map(|key| {
            let mut conn = self.conn.clone();
            async move {
                cmd("ZREM")
                    .arg(key)
                    .arg(id.as_str())
                    .query_async::<i64>(&mut conn)
                    .await
            }
        });
        try_join_all(removes).await.map_err(write_error("delete"))?;
        Ok(())
    }
}
