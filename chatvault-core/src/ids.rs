//! Validated identifiers: parsed once, trusted everywhere after.
//!
//! Every id a caller hands to ChatVault is one of these newtypes. Each is checked when it is
//! made (`FromStr`, `TryFrom<&str>`, `TryFrom<String>`, or deserialization), so a backend
//! never re-checks a string, and a bad id is the same [`Error::InvalidInput`] whichever
//! backend is behind the vault.
//!
//! | type | rule |
//! |---|---|
//! | [`ConversationId`], [`MessageId`], [`FileId`] | 1 to [`MAX_ID_LEN`] bytes of ASCII letters, digits, `-` `_` `.` `:` `@`; not `.` or `..` |
//! | [`UserId`] | 1 to [`MAX_USER_ID_LEN`] bytes, no control characters (emails, `auth0\|123`, non-ASCII are fine) |
//! | [`StorageKey`] | a relative path of plain segments; see [`StorageKey`] |
//! | [`ContentType`] | a MIME type `type/subtype[; params]`, printable ASCII, at most 255 bytes |
//!
//! ```
//! use chatvault_core::{ConversationId, UserId};
//!
//! let user: UserId = "alice@example.com".parse()?;
//! let id = ConversationId::new(); // a fresh UUID v7
//! assert_eq!(id.as_str().len(), 36);
//! assert!("../etc".parse::<ConversationId>().is_err());
//! assert!("".parse::<UserId>().is_err());
//! # let _ = user;
//! # Ok::<(), chatvault_core::Error>(())
//! ```

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// The longest conversation, message or file id accepted, in bytes.
pub const MAX_ID_LEN: usize = 128;
/// The longest user id accepted, in bytes.
pub const MAX_USER_ID_LEN: usize = 256;
/// The longest storage key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// The longest content type accepted, in bytes.
pub const MAX_CONTENT_TYPE_LEN: usize = 255;

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident, $field:literal, $check:path) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Checks `value` and wraps it.
            pub fn parse(value: impl Into<String>) -> Result<Self> {
                let value = value.into();
                $check($field, &value)?;
                Ok($name(value))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as an owned `String`.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                $name::parse(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(s: &str) -> Result<Self> {
                $name::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(s: String) -> Result<Self> {
                $name::parse(s)
            }
        }

        impl TryFrom<&String> for $name {
            type Error = Error;
            fn try_from(s: &String) -> Result<Self> {
                $name::parse(s.as_str())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl TryFrom<&$name> for $name {
            type Error = Error;
            fn try_from(id: &$name) -> Result<Self> {
                Ok(id.clone())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                $name::parse(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

macro_rules! uuid_id {
    ($name:ident) => {
        impl $name {
            /// A fresh, time-ordered id (UUID v7, hyphenated).
            #[allow(clippy::new_without_default)]
            pub fn new() -> Self {
                let mut buffer = uuid::Uuid::encode_buffer();
                let text = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buffer);
                $name(text.to_owned())
            }
        }
    };
}

string_newtype!(
    /// A conversation's id. New ones are UUID v7 ([`ConversationId::new`]).
    ConversationId,
    "conversation id",
    check_id
);
uuid_id!(ConversationId);

string_newtype!(
    /// A message's id: unique within its conversation, and the idempotency key of an
    /// append (see [`MessagesBackend::append_messages_as`](crate::MessagesBackend::append_messages_as)).
    MessageId,
    "message id",
    check_id
);
uuid_id!(MessageId);

string_newtype!(
    /// An attachment's id. New ones are UUID v7 ([`FileId::new`]).
    FileId,
    "file id",
    check_id
);
uuid_id!(FileId);

string_newtype!(
    /// The id of the user who owns a conversation, as the app's authentication knows it.
    UserId,
    "user_id",
    check_user_id
);

string_newtype!(
    /// Where an attachment's bytes live in a [`FilesBackend`](crate::FilesBackend): a
    /// relative path of plain segments that cannot climb out of a backend's root.
    ///
    /// Rejected: the empty key, keys over [`MAX_KEY_LEN`] bytes, control characters (NUL
    /// included), `\`, `:`, a leading `/`, empty segments (`a//b`, a trailing `/`), `.` or
    /// `..` segments, and segments over 255 bytes. Keys made by
    /// [`keys::storage_key`](crate::keys::storage_key) always pass, and are never a Windows
    /// device name; keys that earlier releases stored keep passing.
    StorageKey,
    "storage key",
    check_key
);

string_newtype!(
    /// A MIME type such as `application/pdf` or `text/plain; charset=utf-8`: `type/subtype`
    /// with optional parameters, printable ASCII, at most [`MAX_CONTENT_TYPE_LEN`] bytes.
    ///
    /// Files backends store and return it as given; it is safe to put in an HTTP header.
    ContentType,
    "content_type",
    check_content_type
);

impl ContentType {
    /// `application/octet-stream`.
    pub fn octet_stream() -> Self {
        ContentType("application/octet-stream".to_owned())
    }
}

fn check_id(field: &'static str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid_input(field, "must not be empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(Error::invalid_input(
            field,
            format!("is {} bytes long; the limit is {MAX_ID_LEN}", id.len()),
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@')))
    {
        return Err(Error::invalid_input(
            field,
            format!("{c:?} is not allowed (use ASCII letters, digits, - _ . : @)"),
        ));
    }
    if id == "." || id == ".." {
        return Err(Error::invalid_input(field, "must not be . or .."));
    }
    Ok(())
}

fn check_user_id(field: &'static str, user_id: &str) -> Result<()> {
    if user_id.is_empty() {
        return Err(Error::invalid_input(field, "must not be empty"));
    }
    if user_id.len() > MAX_USER_ID_LEN {
        return Err(Error::invalid_input(
            field,
            format!(
                "is {} bytes long; the limit is {MAX_USER_ID_LEN}",
                user_id.len()
            ),
        ));
    }
    if user_id.chars().any(char::is_control) {
        return Err(Error::invalid_input(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn check_key(field: &'static str, key: &str) -> Result<()> {
    let bad = |reason: &str| Err(Error::invalid_input(field, format!("{key:?}: {reason}")));
    if key.is_empty() {
        return bad("must not be empty");
    }
    if key.len() > MAX_KEY_LEN {
        return bad("is too long");
    }
    if key.chars().any(char::is_control) {
        return bad("must not contain control characters");
    }
    if key.contains('\\') || key.contains(':') {
        return bad("must not contain \\ or :");
    }
    for segment in key.split('/') {
        match segment {
            "" => return bad("must be relative and have no empty segments"),
            "." | ".." => return bad("must not have . or .. segments"),
            s if s.len() > 255 => return bad("has a segment longer than 255 bytes"),
            _ => {}
        }
    }
    Ok(())
}

fn check_content_type(field: &'static str, content_type: &str) -> Result<()> {
    let ok = !content_type.is_empty()
        && content_type.len() <= MAX_CONTENT_TYPE_LEN
        && content_type.bytes().all(|b| (0x20..0x7f).contains(&b))
        && content_type
            .split(';')
            .next()
            .is_some_and(|essence| {
                let mut parts = essence.trim().splitn(2, '/');
                matches!((parts.next(), parts.next()), (Some(t), Some(s)) if !t.is_empty() && !s.is_empty())
            });
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(
            field,
            format!("{content_type:?} is not a MIME type like \"application/pdf\""),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "019a-b_c.d:e@f", &"x".repeat(128)] {
            ConversationId::parse(ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\\b",
            "a b",
            "é",
            "a\0",
            &"x".repeat(129),
        ] {
            let err = ConversationId::parse(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidInput {
                        field: "conversation id",
                        ..
                    }
                ),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn serde_validates() {
        let ok: MessageId = serde_json::from_str("\"m-1\"").unwrap();
        assert_eq!(ok, "m-1");
        assert!(serde_json::from_str::<MessageId>("\"a/b\"").is_err());
        assert!(serde_json::from_str::<UserId>("\"\"").is_err());
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"m-1\"");
    }

    #[test]
    fn keys() {
        for bad in [
            "", "/abs", "a//b", "a/", "../a", "a/./b", "a\\b", "c:/x", "a\0b",
        ] {
            assert!(StorageKey::parse(bad).is_err(), "{bad:?} accepted");
        }
        StorageKey::parse("u/c/f/name.txt").unwrap();
        StorageKey::parse("single").unwrap();
    }

    #[test]
    fn content_types() {
        ContentType::parse("application/pdf").unwrap();
        ContentType::parse("text/plain; charset=utf-8").unwrap();
        for bad in ["", "pdf", "/x", "a/", "text/plain\r\nX-Evil: 1"] {
            assert!(ContentType::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn new_ids_are_uuid_v7_and_valid() {
        let id = ConversationId::new();
        assert_eq!(
            uuid::Uuid::parse_str(id.as_str())
                .unwrap()
                .get_version_num(),
            7
        );
        ConversationId::parse(id.as_str()).unwrap();
    }
}
