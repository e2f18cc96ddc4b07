//! What the listing index says about a conversation ([`Claim`]), and what it asks the
//! store ([`Source`]).

use chatvault_core::backend::{ConversationRecord, Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::BACKEND;

/// What the index says about one conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Claim {
    #[serde(rename = "i")]
    pub(super) id: String,
    #[serde(rename = "u")]
    pub(super) user: Option<String>,
    #[serde(rename = "t")]
    pub(super) last_active: DateTime<Utc>,
    #[serde(rename = "a")]
    pub(super) archived: bool,
    #[serde(rename = "s")]
    pub(super) state: ClaimState,
}

/// How far a claim can be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum ClaimState {
    /// Written before a change's commit point: the change may not have happened.
    #[serde(rename = "t")]
    Tentative,
    /// Written after the commit point.
    #[serde(rename = "c")]
    Confirmed,
    /// The conversation was deleted.
    #[serde(rename = "d")]
    Deleted,
}

impl Claim {
    fn of(record: &ConversationRecord, state: ClaimState) -> Self {
        Claim {
            id: record.id.to_string(),
            user: record.user_id.as_ref().map(ToString::to_string),
            last_active: record.last_active,
            archived: record.archived,
            state,
        }
    }

    /// The claim of a change about to be committed.
    pub(crate) fn tentative(record: &ConversationRecord) -> Self {
        Self::of(record, ClaimState::Tentative)
    }

    /// The claim of a committed change.
    pub(crate) fn confirmed(record: &ConversationRecord) -> Self {
        Self::of(record, ClaimState::Confirmed)
    }

    /// The claim of a committed delete.
    pub(crate) fn deleted(id: &str) -> Self {
        Claim {
            id: id.to_owned(),
            user: None,
            last_active: DateTime::<Utc>::MIN_UTC,
            archived: false,
            state: ClaimState::Deleted,
        }
    }

    /// Whether the claim says what `record` says (for listings).
    pub(super) fn agrees_with(&self, record: &ConversationRecord) -> bool {
        self.user.as_deref() == record.user_id.as_ref().map(|u| u.as_str())
            && self.last_active == record.last_active
            && self.archived == record.archived
    }

    /// The claim as a line of the index: its CRC in hex, its JSON, `\n`.
    pub(super) fn line(&self) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(self).map_err(|e| Error::backend(BACKEND, e))?;
        let mut out = format!("{:08x} ", crc32fast::hash(&json)).into_bytes();
        out.extend_from_slice(&json);
        out.push(b'\n');
        Ok(out)
    }

    /// Parses one line (without its `\n`); `None` if it is damaged.
    pub(super) fn parse(line: &[u8]) -> Option<Claim> {
        let (crc, json) = (line.get(..8)?, line.get(9..)?);
        if line.get(8) != Some(&b' ') {
            return None;
        }
        let crc = u32::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
        if crc32fast::hash(json) != crc {
            return None;
        }
        serde_json::from_slice(json).ok()
    }
}

/// What the store found when the index asked about a conversation.
#[derive(Debug)]
pub(crate) enum Found {
    /// The conversation and its current record.
    Record(Box<ConversationRecord>),
    /// No such conversation.
    Missing,
    /// Its files are damaged: left out of listings, its entry kept.
    Damaged,
}

/// The conversations the index is derived from: what it asks the store.
pub(crate) trait Source {
    /// What is stored under `id` now.
    fn found(&self, id: &str) -> Result<Found>;
    /// Whether a conversation directory `id` exists (without reading it).
    fn exists(&self, id: &str) -> Result<bool>;
    /// Every conversation, read from its own files (for a rebuild).
    fn found_all(&self) -> Result<Vec<Found>>;
    /// The id of every conversation directory, from its name (read from its record only
    /// where the name is a shortened one).
    fn ids(&self) -> Result<Vec<String>>;
}
