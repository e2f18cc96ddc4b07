//! Retention: when a conversation expires ([`Expiry`]), for every owner or per owner
//! ([`Retention`]).
//!
//! An expiry is derived from the record's own times (`created_at`, `last_active`) and the
//! policy in force, not stored: a policy made shorter applies at once to every
//! conversation already stored, and nothing is rewritten when it changes. See
//! `docs/forgetting.md`.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::ids::UserId;
use crate::model::{ConversationRecord, ConversationSummary};

/// When a conversation expires.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Expiry {
    /// Never: kept until deleted.
    #[default]
    Never,
    /// This long after it was created, whatever happened since.
    AfterCreation(TimeDelta),
    /// This long after a message or file was last added (`last_active`): activity moves
    /// the expiry on.
    AfterLastActivity(TimeDelta),
}

impl Expiry {
    /// When a conversation created at `created_at` and last active at `last_active`
    /// expires; `None` for [`Expiry::Never`] (or a time past what a date can hold). A
    /// zero or negative span expires a conversation at once.
    pub fn at(
        &self,
        created_at: DateTime<Utc>,
        last_active: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match *self {
            Expiry::Never => None,
            Expiry::AfterCreation(span) => created_at.checked_add_signed(span),
            Expiry::AfterLastActivity(span) => last_active.checked_add_signed(span),
        }
    }
}

/// A vault's retention policy: one [`Expiry`] for every conversation, with exceptions
/// per owner. The default policy keeps everything.
///
/// ```
/// use chatvault_core::{Expiry, Retention, UserId};
/// use chrono::TimeDelta;
///
/// let auditor: UserId = "auditor".parse()?;
/// let policy = Retention::new(Expiry::AfterLastActivity(TimeDelta::days(30)))
///     .owner(auditor.clone(), Expiry::Never);
/// assert_eq!(policy.expiry_for(Some(&auditor)), Expiry::Never);
/// assert_eq!(policy.expiry_for(None), Expiry::AfterLastActivity(TimeDelta::days(30)));
/// # Ok::<(), chatvault_core::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    default: Expiry,
    owners: HashMap<UserId, Expiry>,
}

impl Retention {
    /// A policy giving every conversation `default`.
    pub fn new(default: Expiry) -> Self {
        Retention {
            default,
            owners: HashMap::new(),
        }
    }

    /// Gives `user`'s conversations `expiry` instead of the default.
    pub fn owner(mut self, user: UserId, expiry: Expiry) -> Self {
        self.owners.insert(user, expiry);
        self
    }

    /// The expiry of conversations owned by `user` (`None`: conversations without an
    /// owner, which get the default).
    pub fn expiry_for(&self, user: Option<&UserId>) -> Expiry {
        user.and_then(|u| self.owners.get(u).copied())
            .unwrap_or(self.default)
    }

    /// Whether no conversation ever expires under this policy.
    pub fn keeps_everything(&self) -> bool {
        self.default == Expiry::Never && self.owners.values().all(|e| *e == Expiry::Never)
    }

    /// When the conversation of this record expires, if ever.
    pub fn expires_at(&self, record: &ConversationRecord) -> Option<DateTime<Utc>> {
        self.expiry_for(record.user_id.as_ref())
            .at(record.created_at, record.last_active)
    }

    /// Whether the conversation of this record has expired at `now`.
    pub fn is_expired(&self, record: &ConversationRecord, now: DateTime<Utc>) -> bool {
        self.expires_at(record).is_some_and(|at| at <= now)
    }

    /// Whether the listed conversation has expired at `now` (as [`is_expired`](Self::is_expired)).
    pub fn summary_expired(&self, summary: &ConversationSummary, now: DateTime<Utc>) -> bool {
        self.expiry_for(summary.user_id.as_ref())
            .at(summary.created_at, summary.last_active)
            .is_some_and(|at| at <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_follows_the_policy_and_the_owner() {
        let user: UserId = "u".parse().unwrap();
        let other: UserId = "v".parse().unwrap();
        let mut record = ConversationRecord::new(Some(user.clone()));
        let t0 = record.created_at;
        record.last_active = t0 + TimeDelta::days(10);
        let policy = Retention::new(Expiry::AfterCreation(TimeDelta::days(30)))
            .owner(user.clone(), Expiry::AfterLastActivity(TimeDelta::days(30)));
        assert_eq!(policy.expires_at(&record), Some(t0 + TimeDelta::days(40)));
        assert!(!policy.is_expired(&record, t0 + TimeDelta::days(39)));
        assert!(policy.is_expired(&record, t0 + TimeDelta::days(40)));
        record.user_id = Some(other);
        assert_eq!(policy.expires_at(&record), Some(t0 + TimeDelta::days(30)));
        assert!(!policy.keeps_everything());
        assert!(Retention::default().keeps_everything());
        assert_eq!(Retention::default().expires_at(&record), None);
        // A span no date can hold never expires rather than wrapping.
        assert_eq!(Expiry::AfterCreation(TimeDelta::MAX).at(t0, t0), None);
    }
}
