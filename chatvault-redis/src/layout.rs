//! The stored format: key names, the fields of a conversation's hash, JSON bodies, and
//! listing scores. The crate docs' "Layout" section describes it for operators.

use chatvault_core::backend::{ConversationId, Error, MessageId, Result, UserId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::conn::BACKEND;

/// The stored format's version, kept in every conversation's hash (field `fmt`).
pub(crate) const FORMAT: &str = "1";

/// Field of the conversation hash: the format version.
pub(crate) const F_FORMAT: &str = "fmt";
/// Field of the conversation hash: the record, as JSON.
pub(crate) const F_RECORD: &str = "rec";
/// Field of the conversation hash: the attachments, a JSON array, oldest first.
pub(crate) const F_FILES: &str = "files";
/// Field of the conversation hash: the write token (set by every write, from the create).
pub(crate) const F_TOKEN: &str = "w";
/// Field of the conversation hash: `1` once `begin_delete` has marked it.
pub(crate) const F_DELETING: &str = "del";

/// Checks a key prefix: 1 to 64 bytes of ASCII letters, digits, `-` `_` `.` `:`;
/// [`Error::InvalidInput`] otherwise. [`RedisMessagesBuilder::build`] refuses a bad one
/// with this error; call it to check a prefix before connecting.
///
/// [`RedisMessagesBuilder::build`]: crate::RedisMessagesBuilder::build
pub fn check_prefix(prefix: &str) -> Result<()> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        return Ok(());
    }
    Err(Error::invalid_input(
        "key prefix",
        format!("must be 1 to 64 ASCII letters, digits, '-', '_', '.' or ':', got {prefix:?}"),
    ))
}

/// The key names under one prefix.
///
/// A conversation's keys carry its id as a hash tag (`{id}`), so that they share a
/// cluster slot and one script can change them together. Ids hold no `{` or `}` (see
/// `chatvault_core::ids`), so the tag is exactly the id and no two conversations' keys
/// collide.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (see [`check_prefix`]).
    pub(crate) fn new(prefix: &str) -> Result<Self> {
        check_prefix(prefix)?;
        Ok(Keys {
            prefix: prefix.to_owned(),
        })
    }

    /// The prefix.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The conversation's hash: format, record, attachments, write token, deleting mark.
    pub(crate) fn conversation(&self, id: &ConversationId) -> String {
        format!("{}:c:{{{id}}}", self.prefix)
    }

    /// The conversation's messages: a hash from `seq` (decimal) to the message's JSON.
    pub(crate) fn messages(&self, id: &ConversationId) -> String {
        format!("{}:c:{{{id}}}:m", self.prefix)
    }

    /// The conversation's message ids: a hash from message id to `seq`.
    pub(crate) fn message_ids(&self, id: &ConversationId) -> String {
        format!("{}:c:{{{id}}}:i", self.prefix)
    }

    /// The three keys of a conversation, in the order the scripts take them.
    pub(crate) fn conversation_keys(&self, id: &ConversationId) -> [String; 3] {
        [
            self.conversation(id),
            self.messages(id),
            self.message_ids(id),
        ]
    }

    /// One owner's listing index: a sorted set of conversation ids scored by
    /// `last_active` in microseconds.
    pub(crate) fn owner_index(&self, user: &UserId) -> String {
        format!("{}:u:{user}", self.prefix)
    }

    /// The listing index of every conversation (kept when the backend lists all users).
    pub(crate) fn all_index(&self) -> String {
        format!("{}:all", self.prefix)
    }

    /// The markers of every conversation marked by `begin_delete` and not yet deleted: a
    /// sorted set of conversation ids scored by the time of the mark in microseconds
    /// (the score tells a marker from a later one of the same id).
    pub(crate) fn deleting_all(&self) -> String {
        format!("{}:del:all", self.prefix)
    }

    /// The markers of one owner's conversations being deleted, the same way.
    pub(crate) fn deleting_owner(&self, user: &UserId) -> String {
        format!("{}:del:u:{user}", self.prefix)
    }

    /// The Redis stream of a live reply's chunks.
    pub(crate) fn reply_stream(&self, id: &ConversationId, message: &MessageId) -> String {
        format!("{}:c:{{{id}}}:r:{message}", self.prefix)
    }
}

/// A listing score: `at` in microseconds since the epoch (exact in a double until the
/// year 2255; the precision every backend keeps).
pub(crate) fn score(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// The time of a listing score.
pub(crate) fn score_time(score: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(score).ok_or_else(|| {
        Error::corrupt(
            BACKEND,
            "a listing index",
            format!("score {score} is not a time"),
        )
    })
}

/// `value` as JSON text.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::invalid_input("value", e.to_string()))
}

/// Decodes JSON stored at `location`; a failure is [`Error::Corrupt`].
pub(crate) fn from_json<T: DeserializeOwned>(location: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::corrupt(BACKEND, location, e.to_string()))
}

/// Checks the format version a conversation's hash says it was written in.
pub(crate) fn check_format(location: &str, format: Option<&[u8]>) -> Result<()> {
    match format {
        Some(f) if f == FORMAT.as_bytes() => Ok(()),
        Some(f) => Err(Error::corrupt(
            BACKEND,
            location,
            format!(
                "stored in format {:?}, which this release does not read (it reads {FORMAT})",
                String::from_utf8_lossy(f)
            ),
        )),
        None => Err(Error::corrupt(BACKEND, location, "no format version")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_conversations_keys_share_its_hash_tag() {
        let keys = Keys::new("cv").unwrap();
        let id = ConversationId::parse("a:b@c.d").unwrap();
        for key in keys.conversation_keys(&id) {
            assert!(key.starts_with("cv:c:{a:b@c.d}"), "{key}");
        }
        let message = MessageId::parse("m1").unwrap();
        assert_eq!(keys.reply_stream(&id, &message), "cv:c:{a:b@c.d}:r:m1");
        assert_eq!(
            keys.owner_index(&UserId::parse("ann {x}").unwrap()),
            "cv:u:ann {x}"
        );
    }

    #[test]
    fn prefixes_are_checked() {
        for bad in ["", "a{b", "a}b", "a b", &"x".repeat(65)] {
            let err = Keys::new(bad).unwrap_err();
            assert_eq!(
                err.kind(),
                chatvault_core::ErrorKind::InvalidInput,
                "{bad:?}"
            );
        }
        assert!(Keys::new("app-1:chatvault").is_ok());
    }

    #[test]
    fn scores_round_trip_microseconds() {
        let at = DateTime::from_timestamp_micros(1_765_000_000_123_456).unwrap();
        assert_eq!(score_time(score(at)).unwrap(), at);
        assert_eq!(score(at) as f64 as i64, score(at), "exact as a double");
    }

    #[test]
    fn unknown_formats_are_corrupt() {
        assert!(check_format("k", Some(b"1")).is_ok());
        let err = check_format("k", Some(b"2")).unwrap_err();
        assert_eq!(err.kind(), chatvault_core::ErrorKind::Corrupt);
        assert!(check_format("k", None).is_err());
    }
}
