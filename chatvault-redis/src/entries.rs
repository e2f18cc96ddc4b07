//! Reading a sorted set of conversation ids (a listing index, a marker set) in order, and
//! the records of the conversations its entries name.

use chatvault_core::backend::{ConversationId, Error, Result};
use futures_util::future::try_join_all;
use redis::cmd;

use crate::conn::{BACKEND, Conn, read_error};
use crate::layout::{F_DELETING, F_RECORD, Keys};

/// A listing entry: a conversation id and its score (last activity, microseconds).
pub(crate) type Entry = (String, f64);

/// A conversation hash's record and deletion mark, as `HMGET` answers them.
pub(crate) type RecordFields = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Reads the entries of sorted sets of conversation ids, and their conversations' record
/// fields, on the connection and under the keys it was made with.
#[derive(Clone, Debug)]
pub(crate) struct Entries {
    conn: Conn,
    keys: Keys,
}

impl Entries {
    /// A reader of the sets under `keys`, on `conn`.
    pub(crate) fn new(conn: Conn, keys: Keys) -> Self {
        Entries { conn, keys }
    }

    /// Up to `count` entries of the sorted set `index` strictly after `after` (score
    /// descending, then id descending), or from the top.
    pub(crate) async fn after(
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
        let mut conn = self.conn.clone();
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
                Ok(self.keys.conversation(&id))
            })
            .collect::<Result<Vec<String>>>()?;
        if locations.is_empty() {
            return Ok(Vec::new());
        }
        let fields = [F_RECORD, F_DELETING];
        let read: Vec<RecordFields> = if self.conn.is_cluster() {
            try_join_all(locations.iter().map(|location| {
                let mut conn = self.conn.clone();
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
            pipe.query_async(&mut self.conn.clone()).await
        }
        .map_err(read_error)?;
        Ok(locations.into_iter().zip(read).collect())
    }
}
