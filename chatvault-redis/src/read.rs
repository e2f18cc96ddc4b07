//! The reads of one conversation: its head, one message, a window of messages. They never
//! write (listings are read in `listing`).

use chatvault_core::backend::{
    ConversationHead, ConversationId, Error, Message, MessageId, MessageRange, Page, Result,
};
use redis::cmd;

use crate::conn::{BACKEND, Conn, read_error};
use crate::layout::{F_DELETING, F_FILES, F_FORMAT, F_RECORD, Keys, check_format, from_json};
use crate::load::Loader;

/// The most messages one read of a window returns (a natural page).
const MESSAGE_PAGE: u64 = 1000;

/// Reads conversations' heads and messages, on the connection and under the keys it was
/// made with.
#[derive(Clone, Debug)]
pub(crate) struct Reader {
    conn: Conn,
    keys: Keys,
    loader: Loader,
}

impl Reader {
    /// A reader of the conversations under `keys`, on `conn`.
    pub(crate) fn new(conn: Conn, keys: Keys) -> Self {
        Reader {
            loader: Loader::new(conn.clone(), keys.clone()),
            conn,
            keys,
        }
    }

    /// [`MessagesBackend::head`](chatvault_core::MessagesBackend::head): one `HMGET`.
    pub(crate) async fn head(&self, id: &ConversationId) -> Result<Option<ConversationHead>> {
        let location = self.keys.conversation(id);
        let mut conn = self.conn.clone();
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
    pub(crate) async fn message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        match self
            .loader
            .load(id, std::slice::from_ref(message_id))
            .await?
        {
            None => Err(Error::conversation_not_found(id.as_str())),
            Some((_, mut found)) => Ok(found.pop().flatten()),
        }
    }

    /// [`MessagesBackend::messages`](chatvault_core::MessagesBackend::messages): the
    /// record (for the count), then one `HMGET` of the window's seqs.
    pub(crate) async fn messages(
        &self,
        id: &ConversationId,
        range: &MessageRange,
    ) -> Result<Page<Message>> {
        let Some(head) = self.head(id).await? else {
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
        let location = self.keys.messages(id);
        let mut conn = self.conn.clone();
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
                if self.head(id).await?.is_none() {
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
}
