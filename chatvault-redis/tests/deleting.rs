//! `RedisMessages::list_deleting`: conversations marked by `begin_delete` and not yet
//! deleted, found through their markers (`P:del:all`, `P:del:u:USER`), exactly, after
//! crashes too; on one server and on a cluster (where the markers and the conversation
//! live in different slots).
//!
//! Built without `CHATVAULT_REDIS_URL` / `CHATVAULT_REDIS_CLUSTER_URL` (see `build.rs`),
//! the tests of each are listed as ignored with the reason; with
//! `CHATVAULT_REQUIRE_REDIS=1` they are built to run and a missing URL fails them.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::BTreeSet;

use chatvault_core::backend::PageLimit;
use chatvault_core::{
    ConversationId, ConversationRecord, ErrorKind, ListOptions, MessagesBackend, UserId,
};
use chatvault_redis::RedisMessages;
use redis::{Cmd, FromRedisValue, cmd};

/// A backend, and how to reach its keys and make another client of them.
struct Setup {
    backend: RedisMessages,
    cluster: bool,
}

impl Setup {
    async fn new(cluster: bool) -> Setup {
        let backend = if cluster {
            common::fresh_cluster().await
        } else {
            common::fresh().await
        };
        Setup { backend, cluster }
    }

    /// Another client (another process, as far as the backend can tell) on the same keys.
    async fn another(&self) -> RedisMessages {
        if self.cluster {
            RedisMessages::cluster_builder(&common::cluster_urls())
                .prefix(self.backend.prefix())
                .build()
                .await
                .unwrap()
        } else {
            common::another(&self.backend).await
        }
    }

    /// Runs a raw command.
    async fn raw<T: FromRedisValue>(&self, command: &Cmd) -> T {
        if self.cluster {
            command
                .query_async(&mut common::raw_cluster().await)
                .await
                .unwrap()
        } else {
            command.query_async(&mut common::raw().await).await.unwrap()
        }
    }

    fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.backend.prefix())
    }

    /// The marker of `id` in marker set `set` (`del:all`, `del:u:USER`), as its score.
    async fn marker(&self, set: &str, id: &str) -> Option<f64> {
        self.raw(cmd("ZSCORE").arg(self.key(set)).arg(id)).await
    }

    /// Writes a marker the way `begin_delete` does, directly.
    async fn write_marker(&self, set: &str, id: &str) {
        let now = chrono::Utc::now().timestamp_micros();
        let _: i64 = self
            .raw(cmd("ZADD").arg(self.key(set)).arg(now).arg(id))
            .await;
    }
}

fn cid(id: &str) -> ConversationId {
    ConversationId::parse(id).unwrap()
}

fn uid(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

async fn new_conv(backend: &RedisMessages, id: &str, user: Option<&str>) {
    let mut record = ConversationRecord::new(user.map(uid));
    record.id = cid(id);
    backend.create(&record).await.unwrap();
}

async fn deleting(backend: &RedisMessages, user: Option<&str>) -> BTreeSet<String> {
    let user = user.map(uid);
    backend
        .list_deleting(user.as_ref(), PageLimit::new(1000).unwrap())
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect()
}

async fn listed(backend: &RedisMessages, user: &str) -> BTreeSet<String> {
    backend
        .list_conversations(Some(&uid(user)), &ListOptions::new())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.id.to_string())
        .collect()
}

async fn lists_marked_conversations_by_user_until_deleted(cluster: bool) {
    let s = Setup::new(cluster).await;
    let b = &s.backend;
    assert!(deleting(b, None).await.is_empty(), "fresh");
    new_conv(b, "a1", Some("A")).await;
    new_conv(b, "a2", Some("A")).await;
    new_conv(b, "b1", Some("B")).await;
    new_conv(b, "n1", None).await;
    assert!(deleting(b, None).await.is_empty(), "nothing marked yet");

    assert!(b.begin_delete(&cid("a1")).await.unwrap().is_some());
    assert!(b.begin_delete(&cid("b1")).await.unwrap().is_some());
    assert_eq!(deleting(b, Some("A")).await, set(&["a1"]));
    assert_eq!(deleting(b, Some("B")).await, set(&["b1"]));
    assert!(deleting(b, Some("C")).await.is_empty());
    assert_eq!(deleting(b, None).await, set(&["a1", "b1"]));
    let one = b
        .list_deleting(None, PageLimit::new(1).unwrap())
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert!(["a1", "b1"].contains(&one[0].as_str()));
    assert_eq!(listed(b, "A").await, set(&["a2"]));
    assert!(listed(b, "B").await.is_empty());
    // The markers are under the backend's prefix.
    assert!(s.marker("del:all", "a1").await.is_some());
    assert!(s.marker("del:u:A", "a1").await.is_some());
    assert!(s.marker("del:u:B", "a1").await.is_none());

    // Marking again changes nothing; one of no user is listed under `None` only.
    assert!(b.begin_delete(&cid("a1")).await.unwrap().is_some());
    assert!(b.begin_delete(&cid("n1")).await.unwrap().is_some());
    assert_eq!(deleting(b, None).await, set(&["a1", "b1", "n1"]));
    assert_eq!(deleting(b, Some("A")).await, set(&["a1"]));

    for id in ["a1", "b1", "n1"] {
        assert!(b.delete(&cid(id)).await.unwrap());
    }
    assert!(deleting(b, None).await.is_empty());
    assert!(deleting(b, Some("A")).await.is_empty());
    for marker_set in ["del:all", "del:u:A", "del:u:B"] {
        let left: i64 = s.raw(cmd("EXISTS").arg(s.key(marker_set))).await;
        assert_eq!(left, 0, "{marker_set} left");
    }
    assert!(!b.delete(&cid("a1")).await.unwrap());
    assert!(b.begin_delete(&cid("a1")).await.unwrap().is_none());
    assert_eq!(listed(b, "A").await, set(&["a2"]));
}

async fn a_mark_without_its_delete_is_listed_by_a_new_client(cluster: bool) {
    let s = Setup::new(cluster).await;
    new_conv(&s.backend, "c", Some("u")).await;
    new_conv(&s.backend, "d", Some("u")).await;
    s.backend.begin_delete(&cid("c")).await.unwrap();
    // The process dies here, before `delete`.
    let b = s.another().await;
    assert_eq!(deleting(&b, Some("u")).await, set(&["c"]));
    assert_eq!(deleting(&b, None).await, set(&["c"]));
    assert!(b.delete(&cid("c")).await.unwrap());
    assert!(deleting(&b, None).await.is_empty());
    assert!(deleting(&s.backend, Some("u")).await.is_empty());
}

async fn a_marker_without_its_mark_is_not_listed(cluster: bool) {
    let s = Setup::new(cluster).await;
    let b = &s.backend;
    new_conv(b, "c", Some("u")).await;
    // A crash between the markers and the mark's script.
    s.write_marker("del:all", "c").await;
    s.write_marker("del:u:u", "c").await;
    assert!(deleting(b, None).await.is_empty());
    assert!(deleting(b, Some("u")).await.is_empty());
    assert!(b.head(&cid("c")).await.unwrap().is_some(), "still live");
    assert_eq!(listed(b, "u").await, set(&["c"]));
    // A later mark is listed, and its delete removes the markers.
    b.begin_delete(&cid("c")).await.unwrap();
    assert_eq!(deleting(b, Some("u")).await, set(&["c"]));
    assert_eq!(deleting(b, None).await, set(&["c"]));
    b.delete(&cid("c")).await.unwrap();
    assert!(s.marker("del:all", "c").await.is_none());
    assert!(s.marker("del:u:u", "c").await.is_none());
}

async fn a_delete_cut_after_its_commit_leaves_nothing_listed(cluster: bool) {
    let s = Setup::new(cluster).await;
    let b = &s.backend;
    new_conv(b, "c", Some("u")).await;
    b.begin_delete(&cid("c")).await.unwrap();
    // `delete`'s `DEL`, then a crash before the markers went.
    let _: i64 = s
        .raw(cmd("DEL").arg(s.key("c:{c}")).arg(s.key("c:{c}:m")))
        .await;
    assert!(deleting(b, Some("u")).await.is_empty());
    assert!(
        s.marker("del:u:u", "c").await.is_none(),
        "stale marker removed"
    );
    assert!(s.marker("del:all", "c").await.is_some(), "not read yet");
    assert!(deleting(b, None).await.is_empty());
    assert!(
        s.marker("del:all", "c").await.is_none(),
        "stale marker removed"
    );

    // The same id, created and marked again, is listed.
    new_conv(b, "c", Some("v")).await;
    b.begin_delete(&cid("c")).await.unwrap();
    assert_eq!(deleting(b, Some("v")).await, set(&["c"]));
    assert_eq!(deleting(b, None).await, set(&["c"]));
    // `delete` of a missing conversation removes a stale marker too.
    s.write_marker("del:all", "ghost").await;
    assert!(!b.delete(&cid("ghost")).await.unwrap());
    assert!(s.marker("del:all", "ghost").await.is_none());
}

async fn the_markers_are_written_before_the_mark(cluster: bool) {
    let s = Setup::new(cluster).await;
    let b = &s.backend;
    new_conv(b, "c", Some("u")).await;
    // The marker set cannot take an entry: a string holds its key.
    let _: () = s
        .raw(cmd("SET").arg(s.key("del:all")).arg("in the way"))
        .await;
    let err = b.begin_delete(&cid("c")).await.unwrap_err();
    assert_ne!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(
        b.head(&cid("c")).await.unwrap().is_some(),
        "marked without its markers"
    );
    let _: i64 = s.raw(cmd("DEL").arg(s.key("del:all"))).await;
    b.begin_delete(&cid("c")).await.unwrap();
    assert!(b.head(&cid("c")).await.unwrap().is_none());
    assert_eq!(deleting(b, None).await, set(&["c"]));
}

async fn markers_past_a_thousand_stale_ones_are_found(cluster: bool) {
    let s = Setup::new(cluster).await;
    let b = &s.backend;
    new_conv(b, "c", Some("u")).await;
    b.begin_delete(&cid("c")).await.unwrap();
    // 1,500 markers of conversations that are gone, read before the real one (a listing
    // reads the newest first).
    let later = chrono::Utc::now().timestamp_micros() + 1_000_000;
    let mut add = cmd("ZADD");
    add.arg(s.key("del:all"));
    for i in 0..1500 {
        add.arg(later + i).arg(format!("ghost-{i}"));
    }
    let added: i64 = s.raw(&add).await;
    assert_eq!(added, 1500);
    let found = b
        .list_deleting(None, PageLimit::new(1).unwrap())
        .await
        .unwrap();
    assert_eq!(found, [cid("c")]);
    let left: i64 = s.raw(cmd("ZCARD").arg(s.key("del:all"))).await;
    assert_eq!(left, 1, "the gone ones removed");
}

/// One test per scenario and deployment.
macro_rules! on_both {
    ($($scenario:ident),* $(,)?) => {
        mod server {
            $(
                #[cfg_attr(
                    not(chatvault_redis_server),
                    ignore = "needs Redis: CHATVAULT_REDIS_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"
                )]
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(false).await;
                }
            )*
        }
        mod cluster {
            $(
                #[cfg_attr(
                    not(chatvault_redis_cluster),
                    ignore = "needs a Redis Cluster: CHATVAULT_REDIS_CLUSTER_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"
                )]
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(true).await;
                }
            )*
        }
    };
}

on_both!(
    lists_marked_conversations_by_user_until_deleted,
    a_mark_without_its_delete_is_listed_by_a_new_client,
    a_marker_without_its_mark_is_not_listed,
    a_delete_cut_after_its_commit_leaves_nothing_listed,
    the_markers_are_written_before_the_mark,
    markers_past_a_thousand_stale_ones_are_found,
);
