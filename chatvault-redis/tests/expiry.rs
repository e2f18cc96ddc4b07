//! Key expiry (`RedisMessagesBuilder::expire_keys`): what deadline each write gives a
//! conversation's keys, that Redis then removes them, and that listings let them go.
//!
//! Built without `CHATVAULT_REDIS_URL` (see `build.rs`), every test is listed as ignored
//! with the reason; with `CHATVAULT_REQUIRE_REDIS=1` they are built to run and a missing
//! URL fails them.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::time::Duration;

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ConversationId, ConversationPatch, ConversationRecord, Expiry, ListOptions, MessagesBackend,
    NewMessage, Retention, Role, UserId,
};
use chatvault_redis::{RedisMessages, RedisReplyStream};
use chrono::{DateTime, TimeDelta, Utc};
use common::{another, fresh_expiring, fresh_prefix, raw};
use redis::aio::MultiplexedConnection;

fn user(name: &str) -> UserId {
    UserId::parse(format!("{name}-{}", fresh_prefix())).unwrap()
}

/// The conversation's record, messages and message-id keys.
fn keys_of(b: &RedisMessages, id: &ConversationId) -> [String; 3] {
    let c = format!("{}:c:{{{id}}}", b.prefix());
    [c.clone(), format!("{c}:m"), format!("{c}:i")]
}

/// `PTTL` of each key: milliseconds left, -1 for no deadline, -2 for no key.
async fn pttl(conn: &mut MultiplexedConnection, keys: &[String]) -> Vec<i64> {
    let mut out = Vec::new();
    for key in keys {
        out.push(redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap());
    }
    out
}

/// `PEXPIRETIME` of each key: the deadline in milliseconds since the epoch.
async fn deadlines(conn: &mut MultiplexedConnection, keys: &[String]) -> Vec<i64> {
    let mut out = Vec::new();
    for key in keys {
        out.push(
            redis::cmd("PEXPIRETIME")
                .arg(key)
                .query_async(conn)
                .await
                .unwrap(),
        );
    }
    out
}

/// Whether `id` is in the sorted set `index`.
async fn listed_in(conn: &mut MultiplexedConnection, index: &str, id: &ConversationId) -> bool {
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg(index)
        .arg(id.as_str())
        .query_async(conn)
        .await
        .unwrap();
    score.is_some()
}

async fn sleep_until(at: DateTime<Utc>) {
    if let Ok(left) = (at - Utc::now()).to_std() {
        tokio::time::sleep(left).await;
    }
}

#[cfg_attr(
    not(chatvault_redis_server),
    ignore = "needs Redis: CHATVAULT_REDIS_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"
)]
#[tokio::test]
async fn keys_expire_after_last_activity_plus_grace_and_leave_listings() {
    let span = TimeDelta::seconds(2);
    let grace = Duration::from_secs(1);
    let b = fresh_expiring(Retention::new(Expiry::AfterLastActivity(span)), grace).await;
    let mut conn = raw().await;
    let u = user("u");
    let record = ConversationRecord::new(Some(u.clone()));
    b.create(&record).await.unwrap();
    let first = b
        .append_messages(&record.id, vec![NewMessage::new(Role::User, "hi")])
        .await
        .unwrap();
    let keys = keys_of(&b, &record.id);
    let after = |at: DateTime<Utc>| (at + span + TimeDelta::seconds(1)).timestamp_millis();

    // Every key carries the deadline: last activity + 2 s + the 1 s grace.
    for left in pttl(&mut conn, &keys).await {
        assert!(left > 0 && left <= 3000, "{left} ms left");
    }
    assert_eq!(
        deadlines(&mut conn, &keys).await,
        vec![after(first.record.last_active); 3]
    );
    // A live reply's stream (kept an hour by itself) goes no later than its conversation.
    let stream = RedisReplyStream::new(&b, &record.id, &first.messages[0].id);
    stream.push("chunk").await.unwrap();
    let stream_key = stream.key().to_owned();
    let stream_deadline = deadlines(&mut conn, std::slice::from_ref(&stream_key)).await[0];
    assert!(
        stream_deadline > 0 && stream_deadline <= after(first.record.last_active),
        "stream deadline {stream_deadline}"
    );

    // An append a second later moves every deadline on by as much.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = b
        .append_messages(&record.id, vec![NewMessage::new(Role::User, "again")])
        .await
        .unwrap();
    let moved = after(second.record.last_active);
    assert!(moved >= after(first.record.last_active) + 1000);
    assert_eq!(deadlines(&mut conn, &keys).await, vec![moved; 3]);
    // Still there, and listed.
    let listed = b
        .list_conversations(Some(&u), &ListOptions::new())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);

    // Past the deadline Redis has removed every key, the listings leave the conversation
    // out and drop its entries.
    sleep_until(second.record.last_active + span + TimeDelta::milliseconds(1300)).await;
    let mut all_keys = keys.to_vec();
    all_keys.push(stream_key);
    assert_eq!(pttl(&mut conn, &all_keys).await, vec![-2; 4], "all gone");
    assert!(b.head(&record.id).await.unwrap().is_none());
    let owner_index = format!("{}:u:{u}", b.prefix());
    let all_index = format!("{}:all", b.prefix());
    assert!(listed_in(&mut conn, &owner_index, &record.id).await);
    let listed = b
        .list_conversations(Some(&u), &ListOptions::new())
        .await
        .unwrap();
    assert!(listed.items.is_empty(), "{listed:?}");
    assert!(!listed_in(&mut conn, &owner_index, &record.id).await);
    assert!(listed_in(&mut conn, &all_index, &record.id).await);
    let everyone = b
        .list_conversations(None, &ListOptions::new())
        .await
        .unwrap();
    assert!(everyone.items.iter().all(|s| s.id != record.id));
    assert!(!listed_in(&mut conn, &all_index, &record.id).await);
}

#[cfg_attr(
    not(chatvault_redis_server),
    ignore = "needs Redis: CHATVAULT_REDIS_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"
)]
#[tokio::test]
async fn never_expiring_conversations_and_writes_without_the_setting_leave_no_deadline() {
    let keeper = user("keeper");
    let policy = Retention::new(Expiry::AfterLastActivity(TimeDelta::seconds(2)))
        .owner(keeper.clone(), Expiry::Never);
    let b = fresh_expiring(policy, Duration::from_secs(1)).await;
    let mut conn = raw().await;

    // The keeper's conversation (Expiry::Never): no deadline on any key.
    let kept = ConversationRecord::new(Some(keeper));
    b.create(&kept).await.unwrap();
    let appended = b
        .append_messages(&kept.id, vec![NewMessage::new(Role::User, "keep me")])
        .await
        .unwrap();
    assert_eq!(pttl(&mut conn, &keys_of(&b, &kept.id)).await, vec![-1; 3]);
    // Its reply stream keeps its own hour.
    let stream = RedisReplyStream::new(&b, &kept.id, &appended.messages[0].id);
    stream.push("chunk").await.unwrap();
    let left = pttl(&mut conn, &[stream.key().to_owned()]).await[0];
    assert!(left > 3_500_000 && left <= 3_600_000, "{left}");

    // Someone else's has one; a write by a backend without the setting removes it.
    let other = ConversationRecord::new(Some(user("other")));
    b.create(&other).await.unwrap();
    b.append_messages(&other.id, vec![NewMessage::new(Role::User, "hi")])
        .await
        .unwrap();
    let keys = keys_of(&b, &other.id);
    assert!(pttl(&mut conn, &keys).await.iter().all(|&t| t > 0));
    let plain = another(&b).await;
    let patch = ConversationPatch {
        title: Some("renamed".into()),
        ..Default::default()
    };
    plain.update(&other.id, &patch).await.unwrap();
    assert_eq!(pttl(&mut conn, &keys).await, vec![-1; 3]);
}

#[cfg_attr(
    not(chatvault_redis_server),
    ignore = "needs Redis: CHATVAULT_REDIS_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"
)]
#[tokio::test]
async fn after_creation_deadlines_stay_put_and_late_writes_get_the_grace() {
    let span = TimeDelta::hours(1);
    let grace = Duration::from_secs(60);
    let b = fresh_expiring(Retention::new(Expiry::AfterCreation(span)), grace).await;
    let mut conn = raw().await;

    let record = ConversationRecord::new(None);
    b.create(&record).await.unwrap();
    let keys = keys_of(&b, &record.id);
    let deadline = (record.created_at + span + TimeDelta::seconds(60)).timestamp_millis();
    assert_eq!(deadlines(&mut conn, &keys[..1]).await, vec![deadline]);
    // Activity does not move it; the messages' keys get the same one.
    b.append_messages(&record.id, vec![NewMessage::new(Role::User, "hi")])
        .await
        .unwrap();
    assert_eq!(deadlines(&mut conn, &keys).await, vec![deadline; 3]);

    // A conversation created a day ago expired long since: its keys get the grace period
    // from the write, not a deadline in the past (which would remove them at once).
    let mut old = ConversationRecord::new(None);
    old.created_at -= TimeDelta::days(1);
    old.last_active = old.created_at;
    b.create(&old).await.unwrap();
    let left = pttl(&mut conn, &keys_of(&b, &old.id)[..1]).await[0];
    assert!(left > 50_000 && left <= 60_000, "{left} ms left");
    assert!(b.head(&old.id).await.unwrap().is_some());
}
