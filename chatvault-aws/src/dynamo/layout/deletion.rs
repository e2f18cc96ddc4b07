//! Deletion markers: one small item per conversation marked by `begin_delete` (or the
//! first step of `delete`), in a partition of their own, so that `list_deleting` finds
//! marked conversations with one consistent `Query` instead of a scan.
//!
//! The marker is put before the tombstone and deleted in the transaction that deletes
//! the conversation item, so every marked conversation has one; a marker without a
//! marked conversation (a crash between the two writes, or a delete of an earlier
//! release) is told apart by reading the conversation item.

use aws_sdk_dynamodb::types::AttributeValue;
use chatvault_core::backend::{ConversationId, Result, UserId};
use chrono::{DateTime, Utc};

use super::item::{Item, PK, SK, USER_ID, corrupt, format_time, get_s, s};

/// The markers' partition key. A conversation id never contains `#` (ids are ASCII
/// letters, digits and `-_.:@`), so no conversation's items share this partition, and
/// `delete`'s `Query` of a conversation's partition never meets a marker.
pub(crate) const DELETING_PK: &str = "#deleting";
/// S, on a marker: the conversation's id (also the end of the sort key).
pub(crate) const MARKED_CONVERSATION: &str = "conversation";
/// S, on a marker: the conversation's owner, absent when none. Not `user_id`: a marker
/// has none of the indexes' key attributes, so no index ever holds it.
pub(crate) const MARKED_OWNER: &str = "owner";
/// S, on a marker: a random value each put writes anew, so that a listing removes a
/// stale marker only if no `begin_delete` has put it again since the listing read it.
pub(crate) const MARKER_TOKEN: &str = "token";
/// S, on a marker: when it was put (RFC 3339), for operators.
pub(crate) const MARKER_WRITTEN_AT: &str = "written_at";

/// The start of the sort keys of `owner`'s markers: `u#` + the owner's length in bytes
/// (3 digits) + `#` + the owner + `#`; `n#` for conversations of no owner. The length
/// makes the prefix exact: a user id may contain `#`, but a key that starts with this
/// prefix has exactly this owner.
pub(crate) fn owner_prefix(owner: Option<&UserId>) -> String {
    match owner {
        Some(user) => format!("u#{:03}#{user}#", user.as_str().len()),
        None => "n#".to_owned(),
    }
}

/// The key of the marker of conversation `id`, owned by `owner`.
pub(crate) fn deletion_marker_key(owner: Option<&UserId>, id: &ConversationId) -> Item {
    Item::from([
        (PK.to_owned(), s(DELETING_PK)),
        (SK.to_owned(), s(format!("{}{id}", owner_prefix(owner)))),
    ])
}

/// The marker of conversation `id`, owned by `owner`, with a new `token`.
pub(crate) fn deletion_marker_item(
    owner: Option<&UserId>,
    id: &ConversationId,
    token: &str,
    now: DateTime<Utc>,
) -> Item {
    let mut item = deletion_marker_key(owner, id);
    item.insert(MARKED_CONVERSATION.into(), s(id.as_str()));
    if let Some(user) = owner {
        item.insert(MARKED_OWNER.into(), s(user.as_str()));
    }
    item.insert(MARKER_TOKEN.into(), s(token));
    item.insert(MARKER_WRITTEN_AT.into(), s(format_time(now)));
    item
}

/// The owner of a conversation item (its `user_id`), as its marker is keyed.
pub(crate) fn owner_of(item: &Item) -> Result<Option<UserId>> {
    match item.get(USER_ID) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(AttributeValue::S(user)) => UserId::parse(user.as_str())
            .map(Some)
            .map_err(|e| corrupt(item, e.to_string())),
        Some(_) => Err(corrupt(item, "attribute \"user_id\" is not a string")),
    }
}

/// A new marker token: 128 random bits, in hex.
pub(crate) fn new_token() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// A marker as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeletionMarker {
    pub(crate) id: ConversationId,
    pub(crate) owner: Option<UserId>,
    pub(crate) token: String,
}

impl DeletionMarker {
    /// The marker an item holds; [`Error::Corrupt`](chatvault_core::Error) when it is not
    /// one, or its key does not match its attributes.
    pub(crate) fn decode(item: &Item) -> Result<Self> {
        let id = ConversationId::parse(get_s(item, MARKED_CONVERSATION)?)
            .map_err(|e| corrupt(item, e.to_string()))?;
        let owner = match item.get(MARKED_OWNER) {
            None => None,
            Some(AttributeValue::S(user)) => {
                Some(UserId::parse(user.as_str()).map_err(|e| corrupt(item, e.to_string()))?)
            }
            Some(_) => return Err(corrupt(item, "attribute \"owner\" is not a string")),
        };
        let token = get_s(item, MARKER_TOKEN)?.to_owned();
        if item.get(SK) != deletion_marker_key(owner.as_ref(), &id).get(SK) {
            return Err(corrupt(
                item,
                "a deletion marker whose key is not its conversation's and owner's",
            ));
        }
        Ok(DeletionMarker { id, owner, token })
    }

    /// The marker's key.
    pub(crate) fn key(&self) -> Item {
        deletion_marker_key(self.owner.as_ref(), &self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamo::layout::item::{CONVERSATION_SK, MARKER_PREFIX, MESSAGE_PREFIX};

    fn user(u: &str) -> UserId {
        UserId::parse(u).expect("user")
    }

    fn sk(item: &Item) -> &str {
        get_s(item, SK).expect("sk")
    }

    #[test]
    fn the_partition_is_no_conversation_id() {
        assert!(ConversationId::parse(DELETING_PK).is_err());
    }

    #[test]
    fn prefixes_are_exact_even_with_hashes_in_user_ids() {
        let c = ConversationId::parse("c1").expect("id");
        let a = deletion_marker_item(Some(&user("a")), &c, "t", chrono::Utc::now());
        let a_hash = deletion_marker_item(Some(&user("a#1")), &c, "t", chrono::Utc::now());
        let none = deletion_marker_item(None, &c, "t", chrono::Utc::now());
        assert_eq!(sk(&a), "u#001#a#c1");
        assert_eq!(sk(&none), "n#c1");
        // Neither user's prefix matches the other's markers.
        assert!(!sk(&a_hash).starts_with(&owner_prefix(Some(&user("a")))));
        assert!(!sk(&a).starts_with(&owner_prefix(Some(&user("a#1")))));
        // No user's prefix matches the markers of no user, nor the other way round.
        assert!(!sk(&none).starts_with(&owner_prefix(Some(&user("n")))));
        assert!(!sk(&a).starts_with(&owner_prefix(None)));
        // A 256-byte user id (the longest) still fits 3 digits.
        let long = user(&"x".repeat(256));
        assert!(owner_prefix(Some(&long)).starts_with("u#256#"));
        // Keys never look like a conversation's own sort keys (another partition anyway).
        for item in [&a, &a_hash, &none] {
            let key = sk(item);
            assert!(key != CONVERSATION_SK && !key.starts_with(MESSAGE_PREFIX));
            assert!(!key.starts_with(MARKER_PREFIX));
        }
    }

    #[test]
    fn markers_round_trip_and_refuse_mismatched_keys() {
        let c = ConversationId::parse("c-2").expect("id");
        for owner in [Some(user("ü #x")), None] {
            let item = deletion_marker_item(owner.as_ref(), &c, "tok", chrono::Utc::now());
            let marker = DeletionMarker::decode(&item).expect("decodes");
            assert_eq!(
                marker,
                DeletionMarker {
                    id: c.clone(),
                    owner: owner.clone(),
                    token: "tok".into()
                }
            );
            assert_eq!(marker.key(), deletion_marker_key(owner.as_ref(), &c));
        }
        let mut item = deletion_marker_item(Some(&user("a")), &c, "tok", chrono::Utc::now());
        item.insert(MARKED_OWNER.into(), s("b"));
        let err = DeletionMarker::decode(&item).expect_err("mismatch");
        assert_eq!(err.kind(), chatvault_core::ErrorKind::Corrupt, "{err}");
        assert_ne!(new_token(), new_token());
    }
}
