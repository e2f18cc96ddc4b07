//! Reading a conversation for a decision (the `LOAD` script: its write token, record and
//! attachments, and stored messages by id, in one round trip), and decoding the scripts'
//! answers that carry that state.

use chatvault_core::backend::{ConversationId, Error, Message, MessageId, Result};

use crate::conn::{BACKEND, Conn, read_error};
use crate::layout::{self, FORMAT, Keys, from_json};
use crate::scripts::LOAD;
use crate::state::Known;

/// Reads conversations for decisions, on the connection and under the keys it was made
/// with.
#[derive(Clone, Debug)]
pub(crate) struct Loader {
    conn: Conn,
    keys: Keys,
}

impl Loader {
    /// A loader of the conversations under `keys`, on `conn`.
    pub(crate) fn new(conn: Conn, keys: Keys) -> Self {
        Loader { conn, keys }
    }

    /// Reads conversation `id` for a decision, with the stored messages of `lookups`;
    /// `None` when there is no such live conversation.
    pub(crate) async fn load(
        &self,
        id: &ConversationId,
        lookups: &[MessageId],
    ) -> Result<Option<(Known, Vec<Option<Message>>)>> {
        let keys = &self.keys;
        let mut invocation = LOAD.prepare_invoke();
        for key in keys.conversation_keys(id) {
            invocation.key(key);
        }
        for m in lookups {
            invocation.arg(m.as_str());
        }
        let mut conn = self.conn.clone();
        let reply: Vec<Vec<u8>> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(read_error)?;
        let location = keys.conversation(id);
        let mut reply = reply.into_iter();
        match reply.next().as_deref() {
            Some(b"gone") => return Ok(None),
            Some(b"ok") => {}
            _ => return Err(unexpected(&location)),
        }
        let (Some(token), Some(record), Some(files), Some(format)) =
            (reply.next(), reply.next(), reply.next(), reply.next())
        else {
            return Err(unexpected(&location));
        };
        layout::check_format(&location, Some(&format))?;
        let known = decode_known(&location, token, &record, &files)?;
        let found = reply
            .map(|m| message_or_none(keys, id, &m))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some((known, found)))
    }
}

/// A conversation's state from the fields of its hash.
pub(crate) fn decode_known(
    location: &str,
    token: Vec<u8>,
    record: &[u8],
    files: &[u8],
) -> Result<Known> {
    let token = String::from_utf8(token)
        .map_err(|_| Error::corrupt(BACKEND, location, "the write token is not text"))?;
    Ok(Known {
        token,
        record: from_json(location, record)?,
        files: from_json(location, files)?,
    })
}

/// A stored message's JSON, or `None` for `''`.
pub(crate) fn message_or_none(
    keys: &Keys,
    id: &ConversationId,
    json: &[u8],
) -> Result<Option<Message>> {
    if json.is_empty() {
        return Ok(None);
    }
    from_json(&keys.messages(id), json).map(Some)
}

/// A script's answer this release does not know.
pub(crate) fn unexpected(location: &str) -> Error {
    Error::corrupt(
        BACKEND,
        location,
        format!("unexpected answer from a script of format {FORMAT}"),
    )
}
