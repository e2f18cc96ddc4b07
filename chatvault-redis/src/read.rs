//! The reads: a conversation's head, one message, a window of messages, listings. Reads
//! never write, except that a listing removes the entries it meets of conversations that
//! are gone (see `prune`).

use chatvault_core::backend::{
    ConversationHead, ConversationId, ConversationRecord, ConversationSummary, Error, ListCursor,
    ListOptions, Message, MessageId, MessageRange, Page, Result, UserId,
};
use futures_util::future::try_join_all;
use redis::cmd;

use crate::conn::{BACKEND, read_error};
use crate::layout::{
    F_DELETING, F_FILES, F_FORMAT, F_RECORD, check_format, from_json, score, score_time,
};
use crate::messages::RedisMessages;

/// The most messages one read of a window returns (a natural page).
const MESSAGE_PAGE: u64 = 1000;

/// A listing entry: a conversation id and its score (last activity, microseconds).
pub(crate) type Entry = (String, f64);

/// A conversation hash's record and deletion mark, as `HMGET` answers them.
pub(crate) type RecordFields = (Option<Vec<u8>>, Option<Vec<u8>>);

impl RedisMessages {
    /// [`MessagesBackend::head`](chatvault_core::MessagesBackend::head): one `HMGET`.
    pub(crate) async fn read_head(&self, id: &ConversationId) -> Result<Option<ConversationHead>> {
        let location = self.inner.keys.conversation(id);
        let mut conn = self.inner.conn.clone();
        let [format, record, files, deleting]: [Option<Vec<u8>>; 4] = cmd("HMGET")
            .arg(&location)
            .arg(&[F_FORMAT, F_RECORD, F_FILES, F_DELETING])
            .query_async(&mut conn)
            .await
            .map_err(read_error)?;
        let (Some(record), None) = (record, deleting) else {
            return Ok(None);
        };
        check_format(&location, format.as_deref())?;
        Ok(Some(ConversationHead::new(
            from_json(&location, &record)?,
            from_json(&location, files.as_deref().unwrap_or(b"[]"))?,
        )))
    }

    /// [`MessagesBackend::message`](chatvault_core::MessagesBackend::message): one script
    /// reads the conversation and the message by its id.
    pub(crate) async fn read_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        match self.load(id, std::slice::from_ref(message_id)).await? {
            None => Err(Error::conversation_not_found(id.as_str())),
            Some((_, mut found)) => Ok(found.pop().flatten()),
        }
    }

    /// [`MessagesBackend::messages`](chatvault_core::MessagesBackend::messages): the
    /// record (for the count), then one `HMGET` of the window's seqs.
    pub(crate) async fn read_messages(
        &self,
        id: &ConversationId,
        range: &MessageRange,
    ) -> Result<Page<Message>> {
        let Some(head) = self.read_head(id).await? else {
            return Err(Error::conversation_not_found(id.as_str()));
        };
        let count = head.record.message_count;
        let Some((mut first, mut last)) = range.resolve(count) else {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        };
        if last - first >= MESSAGE_PAGE {
            match range {
                MessageRange::After { .. } => last = first + MESSAGE_PAGE - 1,
                MessageRange::Before { .. } => first = last - (MESSAGE_PAGE - 1),
            }
        }
        let location = self.inner.keys.messages(id);
        let mut conn = self.inner.conn.clone();
        let bodies: Vec<Option<Vec<u8>>> = cmd("HMGET")
            .arg(&location)
            .arg((first..=last).collect::<Vec<u64>>())
            .query_async(&mut conn)
            .await
            .map_err(read_error)?;
        let mut items = Vec::with_capacity(bodies.len());
        for (seq, body) in (first..=last).zip(bodies) {
            let Some(body) = body else {
                // Deleted since the record was read, or damaged.
                if self.read_head(id).await?.is_none() {
                    return Err(Error::conversation_not_found(id.as_str()));
                }
                return Err(Error::corrupt(
                    BACKEND,
                    location,
                    format!("message {seq} of {count} is missing"),
                ));
            };
            items.push(from_json(&location, &body)?);
        }
        Ok(Page {
            items,
            next_cursor: range.next_cursor(first, last, count),
        })
    }

    /// [`MessagesBackend::list_conversations`](chatvault_core::MessagesBackend::list_conversations):
    /// the owner's (or every conversation's) sorted set from the cursor's position, then
    /// the records of the entries, read together. An entry whose conversation is gone,
    /// being deleted, someone else's or archived (unless asked) is skipped (and one whose
    /// conversation is gone, removed); the page's cursor is the position of its last entry
    /// in the set.
    pub(crate) async fn list(
        &self,
        user: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        let index = match user {
            Some(user) => self.inner.keys.owner_index(user),
            None if self.inner.list_all => self.inner.keys.all_index(),
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
            let entries = self.entries_after(&index, after.as_ref(), batch).await?;
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
            self.prune(&index, &dead).await;
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

    /// Up to `count` entries of the sorted set `index` strictly after `after` (score
    /// descending, then id descending), or from the top.
    pub(crate) async fn entries_after(
        &self,
        index: &str,
        after: Option<&(i64, String)>,
        count: usize,
    ) -> Result<Vec<Entry>> {
        // Entries of the cursor's score come in reverse id order: those below the
        // cursor's id, then the lower scores (from the top without a cursor).
        let (max, ties_at) = match after {
            Some((at, _)) => (format!("({at}"), at.to_string()),
            // No entry has a score above +inf: the ties read finds nothing.
            None => ("+inf".to_owned(), "+inf".to_owned()),
        };
        let mut conn = self.inner.conn.clone();
        let (ties, lower): (Vec<Entry>, Vec<Entry>) = redis::pipe()
            .cmd("ZREVRANGEBYSCORE")
            .arg(index)
            .arg(&ties_at)
            .arg(&ties_at)
            .arg("WITHSCORES")
            .cmd("ZREVRANGEBYSCORE")
            .arg(index)
            .arg(&max)
            .arg("-inf")
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(count)
            .query_async(&mut conn)
            .await
            .map_err(read_error)?;
        let below = |m: &String| after.is_some_and(|(_, id)| m < id);
        let mut out: Vec<Entry> = ties.into_iter().filter(|(m, _)| below(m)).collect();
        out.extend(lower);
        out.truncate(count);
        Ok(out)
    }

    /// The live records of `entries`' conversations, read together (`None` for one that
    /// is gone or being deleted): see [`record_fields`](Self::record_fields).
    async fn records(&self, entries: &[Entry]) -> Result<Vec<Option<ConversationRecord>>> {
        let read = self.record_fields(entries).await?;
        read.into_iter()
            .map(|(location, found)| match found {
                (Some(record), None) => from_json(&location, &record).map(Some),
                _ => Ok(None),
            })
            .collect()
    }

    /// The conversation hash (its key) and its record and deletion mark, as stored, of
    /// each of `entries`' conversations, read together: on one server in one pipeline (one
    /// round trip, one request whatever the page's size), in a cluster one `HMGET` each,
    /// sent at once (the conversations live in slots of their own). A member that is no
    /// conversation id is [`Error::Corrupt`].
    pub(crate) async fn record_fields(
        &self,
        entries: &[Entry],
    ) -> Result<Vec<(String, RecordFields)>> {
        let locations = entries
            .iter()
            .map(|(member, _)| {
                let id = ConversationId::parse(member.as_str()).map_err(|_| {
                    Error::corrupt(
                        BACKEND,
                        "a listing index",
                        format!("{member:?} is not a conversation id"),
                    )
                })?;
                Ok(self.inner.keys.conversation(&id))
            })
            .collect::<Result<Vec<String>>>()?;
        if locations.is_empty() {
            return Ok(Vec::new());
        }
        let fields = [F_RECORD, F_DELETING];
        let read: Vec<RecordFields> = if self.inner.conn.is_cluster() {
            try_join_all(locations.iter().map(|location| {
                let mut conn = self.inner.conn.clone();
                async move {
                    cmd("HMGET")
                        .arg(location)
                        .arg(&fields)
                        .query_async(&mut conn)
                        .await
                }
            }))
            .await
        } else {
            let mut pipe = redis::pipe();
            for location in &locations {
                pipe.cmd("HMGET").arg(location).arg(&fields);
            }
            pipe.query_async(&mut self.inner.conn.clone()).await
        }
        .map_err(read_error)?;
        Ok(locations.into_iter().zip(read).collect())
    }
}
