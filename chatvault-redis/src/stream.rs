//! Live replies on Redis streams: a streaming reply's chunks go to a stream as they are
//! made, and readers in any process attach and resume from the offset they reached.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chatvault_core::backend::{
    ConversationId, Error, MessageId, MessageUpdate, MessageUpdated, MessagesBackend, Result,
};
use redis::cmd;
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};

use crate::conn::{BACKEND, Conn, read_error, write_error};
use crate::messages::RedisMessages;
use crate::scripts::REPLY_ADD;

/// The longest a [`ReplyReader`] waits for chunks in one call.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Field of a stream entry: a text delta.
const F_DELTA: &str = "d";
/// Field of a stream entry: the reply's end (`1`).
const F_END: &str = "end";
/// Field of an end entry: why the reply failed.
const F_FAILURE: &str = "failure";

/// A position in a reply's stream: a Redis stream entry id (`<ms>-<n>`). Readers resume
/// strictly after it; [`ChunkOffset::START`] is before the first chunk.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChunkOffset {
    ms: u64,
    n: u64,
}

impl ChunkOffset {
    /// Before the first chunk.
    pub const START: ChunkOffset = ChunkOffset { ms: 0, n: 0 };
}

impl fmt::Display for ChunkOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.n)
    }
}

impl FromStr for ChunkOffset {
    type Err = Error;

    /// Parses `<ms>-<n>` (what [`Display`](fmt::Display) writes); anything else is
    /// [`Error::InvalidInput`].
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid_input("chunk offset", format!("not a stream offset: {s:?}"));
        let (ms, n) = s.split_once('-').ok_or_else(bad)?;
        Ok(ChunkOffset {
            ms: ms.parse().map_err(|_| bad())?,
            n: n.parse().map_err(|_| bad())?,
        })
    }
}

/// What one stream entry says.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplyEvent {
    /// More text of the reply.
    Delta(String),
    /// The reply ended: the final message is stored (when it was finished through
    /// [`RedisReplyStream::finish`]). `failure` says why it failed, if it did.
    End {
        /// Why the reply failed; `None` when it completed.
        failure: Option<String>,
    },
}

/// One entry of a reply's stream, with its offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyChunk {
    /// Where it is: resume after it to read what follows.
    pub offset: ChunkOffset,
    /// What it says.
    pub event: ReplyEvent,
}

/// The chunks of one streaming reply (a message of a conversation) on a Redis stream.
///
/// The writer [`push`](Self::push)es each delta as the model makes it and
/// [`finish`](Self::finish)es with the final message (stored through the messages backend
/// first, then announced on the stream). Readers anywhere attach with
/// [`reader`](Self::reader) from [`ChunkOffset::START`] or from the offset they reached,
/// and follow it until [`ReplyEvent::End`]. The stream is a key of the conversation's
/// slot; it expires `ttl` after its last entry (default one hour), so finished replies
/// leave nothing behind: the stored message is the record. When the conversation's keys
/// have a deadline ([`RedisMessagesBuilder::expire_keys`](crate::RedisMessagesBuilder::expire_keys)),
/// an entry never keeps the stream past it.
#[derive(Clone, Debug)]
pub struct RedisReplyStream {
    messages: RedisMessages,
    key: String,
    conversation_key: String,
    ttl: Duration,
}

impl RedisReplyStream {
    /// The stream of message `message`'s reply in conversation `conversation`, on the
    /// server (and under the key prefix) of `messages`.
    pub fn new(
        messages: &RedisMessages,
        conversation: &ConversationId,
        message: &MessageId,
    ) -> Self {
        RedisReplyStream {
            key: messages.keys().reply_stream(conversation, message),
            conversation_key: messages.keys().conversation(conversation),
            messages: messages.clone(),
            ttl: Duration::from_secs(3600),
        }
    }

    /// How long the stream is kept after its last entry (at least 1 ms).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// The stream's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Appends a text delta; returns its offset. One round trip (a script: `XADD` and
    /// `PEXPIRE`, never past the deadline of the conversation's keys, when they have one).
    pub async fn push(&self, delta: &str) -> Result<ChunkOffset> {
        self.add(&[(F_DELTA, delta)]).await
    }

    /// Announces the end of the reply (`failure`: why it failed) without storing
    /// anything; [`finish`](Self::finish) stores the final message first.
    pub async fn end(&self, failure: Option<&str>) -> Result<ChunkOffset> {
        match failure {
            None => self.add(&[(F_END, "1")]).await,
            Some(why) => self.add(&[(F_END, "1"), (F_FAILURE, why)]).await,
        }
    }

    /// Stores the final message (`backend.update_message`, which may be this stream's
    /// [`RedisMessages`] or any other backend), then announces the end on the stream, so
    /// a reader that sees [`ReplyEvent::End`] finds the final message stored. Nothing is
    /// announced when the update fails.
    pub async fn finish(
        &self,
        backend: &dyn MessagesBackend,
        conversation: &ConversationId,
        message: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        let updated = backend
            .update_message(conversation, message, expected_revision, update)
            .await?;
        self.end(updated.message.failure.as_deref()).await?;
        Ok(updated)
    }

    /// Up to `count` chunks strictly after `after`, without waiting (`XRANGE`).
    pub async fn read_after(&self, after: &ChunkOffset, count: usize) -> Result<Vec<ReplyChunk>> {
        let mut conn = self.messages.conn().clone();
        let reply: StreamRangeReply = cmd("XRANGE")
            .arg(&self.key)
            .arg(format!("({after}"))
            .arg("+")
            .arg("COUNT")
            .arg(count.max(1))
            .query_async(&mut conn)
            .await
            .map_err(read_error)?;
        reply.ids.iter().map(|e| chunk(&self.key, e)).collect()
    }

    /// A reader that follows the stream from strictly after `after`, on a connection of
    /// its own (its blocking reads hold nobody else's requests up).
    pub async fn reader(&self, after: ChunkOffset) -> Result<ReplyReader> {
        let conn = self.messages.connect_another(MAX_WAIT).await?;
        Ok(ReplyReader {
            conn,
            key: self.key.clone(),
            offset: after,
            ended: false,
        })
    }

    /// Adds an entry of `fields` (one script: `XADD`, then the stream's expiry); returns
    /// its offset.
    async fn add(&self, fields: &[(&str, &str)]) -> Result<ChunkOffset> {
        let mut conn = self.messages.conn().clone();
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        let mut invocation = REPLY_ADD.prepare_invoke();
        invocation
            .key(&self.key)
            .key(&self.conversation_key)
            .arg(ttl_ms)
            .arg(fields);
        let id: String = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(write_error("reply chunk"))?;
        id.parse()
            .map_err(|_| Error::corrupt(BACKEND, &self.key, format!("XADD answered {id:?}")))
    }
}

/// Follows one reply's stream from an offset; see [`RedisReplyStream::reader`].
pub struct ReplyReader {
    conn: Conn,
    key: String,
    offset: ChunkOffset,
    ended: bool,
}

impl fmt::Debug for ReplyReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplyReader")
            .field("key", &self.key)
            .field("offset", &self.offset)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl ReplyReader {
    /// The offset of the last chunk returned (where a new reader would resume).
    pub fn offset(&self) -> &ChunkOffset {
        &self.offset
    }

    /// Whether the reply's end has been read.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The next chunks (up to 100), waiting up to `wait` (at most [`MAX_WAIT`]) for one
    /// to come (`XREAD BLOCK`); empty when none came in time or the end was read before.
    pub async fn next(&mut self, wait: Duration) -> Result<Vec<ReplyChunk>> {
        if self.ended {
            return Ok(Vec::new());
        }
        let block_ms = u64::try_from(wait.min(MAX_WAIT).as_millis())
            .unwrap_or(0)
            .max(1);
        let reply: Option<StreamReadReply> = cmd("XREAD")
            .arg("COUNT")
            .arg(100)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(self.offset.to_string())
            .query_async(&mut self.conn)
            .await
            .map_err(read_error)?;
        let entries = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
        let mut out = Vec::new();
        for entry in entries {
            let c = chunk(&self.key, &entry)?;
            self.offset = c.offset.clone();
            self.ended |= matches!(c.event, ReplyEvent::End { .. });
            out.push(c);
            if self.ended {
                break;
            }
        }
        Ok(out)
    }
}

/// A stream entry as a chunk; an entry this crate did not write is [`Error::Corrupt`].
fn chunk(key: &str, entry: &StreamId) -> Result<ReplyChunk> {
    let bad = |what: &str| Error::corrupt(BACKEND, key, format!("entry {}: {what}", entry.id));
    let offset: ChunkOffset = entry.id.parse().map_err(|_| bad("not a stream id"))?;
    let text = |field: &str| -> Result<Option<String>> {
        match entry.map.get(field) {
            None => Ok(None),
            Some(v) => redis::from_redis_value_ref::<String>(v)
                .map(Some)
                .map_err(|_| bad("a field is not text")),
        }
    };
    let event = if let Some(delta) = text(F_DELTA)? {
        ReplyEvent::Delta(delta)
    } else if text(F_END)?.is_some() {
        ReplyEvent::End {
            failure: text(F_FAILURE)?,
        }
    } else {
        return Err(bad("neither a delta nor an end"));
    };
    Ok(ReplyChunk { offset, event })
}
