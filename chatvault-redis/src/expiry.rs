//! Key expiry ([`RedisMessagesBuilder::expire_keys`](crate::RedisMessagesBuilder::expire_keys)):
//! the deadline each write gives a conversation's keys.

use std::time::Duration;

use chatvault_core::Retention;
use chatvault_core::backend::{ConversationRecord, now};
use chrono::{DateTime, TimeDelta, Utc};

/// A retention policy mapped to key expiry: a conversation's keys expire `grace` after the
/// policy's expiry of it.
#[derive(Clone, Debug)]
pub(crate) struct KeyExpiry {
    retention: Retention,
    grace: TimeDelta,
}

impl KeyExpiry {
    /// Keys expire `grace` after `retention` says their conversation does.
    pub(crate) fn new(retention: Retention, grace: Duration) -> Self {
        KeyExpiry {
            retention,
            grace: TimeDelta::from_std(grace).unwrap_or(TimeDelta::MAX),
        }
    }

    /// When the keys of the conversation of `record`, written at `at`, expire: its expiry
    /// plus the grace period, and never before `at` plus the grace period (a write to a
    /// conversation that expired while its keys had no deadline leaves the purge the grace
    /// period to remove it with its attachments' bytes). `None`: never.
    pub(crate) fn deadline(
        &self,
        record: &ConversationRecord,
        at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.retention
            .expires_at(record)?
            .max(at)
            .checked_add_signed(self.grace)
    }
}

/// The deadline argument of the write scripts for `record` written now: milliseconds since
/// the epoch, or `''` for none (the keys are made persistent).
pub(crate) fn deadline_arg(expiry: Option<&KeyExpiry>, record: &ConversationRecord) -> String {
    expiry
        .and_then(|e| e.deadline(record, now()))
        .map(|d| d.timestamp_millis().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chatvault_core::{Expiry, UserId};

    use super::*;

    #[test]
    fn deadlines_follow_the_policy_plus_grace() {
        let keeper: UserId = "keeper".parse().unwrap();
        let policy = Retention::new(Expiry::AfterCreation(TimeDelta::hours(1)))
            .owner(keeper.clone(), Expiry::Never);
        let expiry = KeyExpiry::new(policy, Duration::from_secs(60));
        let mut record = ConversationRecord::new(None);
        let t0 = record.created_at;
        let deadline = TimeDelta::hours(1) + TimeDelta::seconds(60);
        assert_eq!(expiry.deadline(&record, t0), Some(t0 + deadline));
        let arg: i64 = deadline_arg(Some(&expiry), &record).parse().unwrap();
        assert_eq!(arg, (t0 + deadline).timestamp_millis());
        // Past its expiry: the grace period from the write, not a deadline in the past.
        let late = t0 + TimeDelta::hours(5);
        assert_eq!(
            expiry.deadline(&record, late),
            Some(late + TimeDelta::seconds(60))
        );
        record.user_id = Some(keeper);
        assert_eq!(expiry.deadline(&record, t0), None);
        assert_eq!(deadline_arg(Some(&expiry), &record), "");
        assert_eq!(deadline_arg(None, &record), "");
        // A grace period no date can hold never expires rather than wrapping.
        let huge = KeyExpiry::new(
            Retention::new(Expiry::AfterLastActivity(TimeDelta::zero())),
            Duration::MAX,
        );
        assert_eq!(huge.deadline(&record, t0), None);
    }
}
