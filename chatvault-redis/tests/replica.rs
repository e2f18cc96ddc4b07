//! Replicas and failover: reads served by a replica, and a replica promoted to primary
//! taking the writes on, the conversations' seqs continuing and a retried append stored
//! once.
//!
//! The first test reads through the replica `scripts/redis.sh` starts next to its server
//! (`CHATVAULT_REDIS_REPLICA_URL`). The failover test promotes a replica, which would
//! change the shared server under the other tests' feet: it starts a pair of its own
//! instead (`redis-server` from `PATH`, on free ports, in a temporary directory), and kills
//! it when done. Built without `CHATVAULT_REDIS_REPLICA_URL` (see `build.rs`), both are
//! listed as ignored with the reason; with `CHATVAULT_REQUIRE_REDIS=1` they are built to
//! run and a missing replica or `redis-server` fails them.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ConversationRecord, Error, ListOptions, MessageRange, MessagesBackend, NewMessage, Role, UserId,
};
use chatvault_redis::RedisMessages;
use common::{fresh, fresh_prefix, server_url};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;

fn user(name: &str) -> UserId {
    UserId::parse(format!("{name}-{}", fresh_prefix())).unwrap()
}

/// `CHATVAULT_REDIS_REPLICA_URL`; panics saying what is missing.
fn replica_url() -> String {
    match std::env::var("CHATVAULT_REDIS_REPLICA_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "CHATVAULT_REDIS_REPLICA_URL is not set: start a server and its replica with scripts/redis.sh start, then eval \"$(scripts/redis.sh env)\""
        ),
    }
}

/// A raw connection to `url` that waits for an answer as long as `WAIT` may take.
async fn connect(url: &str) -> MultiplexedConnection {
    let config = AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(15)));
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

async fn backend(url: &str, prefix: &str) -> RedisMessages {
    RedisMessages::builder(url)
        .prefix(prefix)
        .build()
        .await
        .unwrap()
}

/// Waits until a replica of the server at `url` has received every write the server had
/// taken so far: `WAIT` counts the replicas that acknowledged this connection's last write,
/// and the replication stream is in order, so a write made now comes after all of them.
async fn replicated(url: &str, prefix: &str) {
    let mut conn = connect(url).await;
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}:replicated"))
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(10_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        acked >= 1,
        "no replica of {url} acknowledged the writes within 10 s"
    );
}

/// A conversation of `owner` with `n` messages, through `b`.
async fn conversation(b: &RedisMessages, owner: &UserId, n: usize) -> ConversationRecord {
    let record = ConversationRecord::new(Some(owner.clone()));
    b.create(&record).await.unwrap();
    for i in 0..n {
        b.append_messages(
            &record.id,
            vec![NewMessage::new(Role::User, format!("message {i}"))],
        )
        .await
        .unwrap();
    }
    record
}

#[cfg_attr(
    not(chatvault_redis_replica),
    ignore = "needs Redis with a replica: CHATVAULT_REDIS_REPLICA_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"
)]
#[tokio::test]
async fn a_replica_serves_the_reads_and_refuses_the_writes() {
    let primary = fresh().await;
    let owner = user("replica");
    let mut written = Vec::new();
    for n in [1, 3, 5] {
        written.push(conversation(&primary, &owner, n).await);
    }
    replicated(&server_url(), primary.prefix()).await;

    let replica = backend(&replica_url(), primary.prefix()).await;
    for record in &written {
        let on_primary = primary
            .messages(&record.id, &MessageRange::all())
            .await
            .unwrap();
        let on_replica = replica
            .messages(&record.id, &MessageRange::all())
            .await
            .unwrap();
        assert_eq!(on_replica.items, on_primary.items);
        let head = replica.head(&record.id).await.unwrap().unwrap();
        assert_eq!(
            head.record,
            primary.head(&record.id).await.unwrap().unwrap().record
        );
        let last = on_primary.items.last().unwrap();
        let one = replica.message(&record.id, &last.id).await.unwrap();
        assert_eq!(one.as_ref(), Some(last));
    }
    let options = ListOptions::new();
    let listed = replica
        .list_conversations(Some(&owner), &options)
        .await
        .unwrap();
    let expected = primary
        .list_conversations(Some(&owner), &options)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 3);
    assert_eq!(listed.items, expected.items);

    // A read-only replica refuses a write: an error, and nothing changes anywhere.
    let target = &written[0].id;
    let refused = replica
        .append_messages(target, vec![NewMessage::new(Role::User, "to the replica")])
        .await;
    let Err(e) = refused else {
        panic!("a read-only replica took an append")
    };
    assert!(
        matches!(
            e,
            Error::Backend {
                temporary: false,
                ..
            }
        ) && format!("{e:?}").contains("ReadOnly"),
        "not the replica's refusal: {e:?}"
    );
    replicated(&server_url(), primary.prefix()).await;
    for b in [&primary, &replica] {
        let head = b.head(target).await.unwrap().unwrap();
        assert_eq!(head.record.message_count, 1);
    }
}

/// A `redis-server` of this test's own, on a free port in a temporary directory, killed
/// when dropped.
struct Server {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts a server (a replica of `primary`'s port, if given) and waits until it
    /// answers. Tries again on another port if the one it picked was taken meanwhile.
    async fn start(primary: Option<u16>) -> Server {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let mut command = Command::new("redis-server");
            command
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--protected-mode", "no", "--save", "", "--appendonly", "no"])
                // A replica's first sync starts at once, not after 5 s waiting for others.
                .args(["--repl-diskless-sync-delay", "0"])
                .arg("--dir")
                .arg(dir.path())
                .arg("--logfile")
                .arg(dir.path().join("redis.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Some(p) = primary {
                command.args(["--replicaof", "127.0.0.1", &p.to_string()]);
            }
            let child = command.spawn().unwrap_or_else(|e| {
                panic!("cannot run redis-server (install it with scripts/redis.sh install): {e}")
            });
            let mut server = Server { child, port, dir };
            if server.answering().await {
                return server;
            }
            eprintln!("redis-server on {port} did not come up: {}", server.log());
        }
        panic!("could not start a redis-server of this test's own in 5 tries");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Whether it answers `PING` within 10 s (false at once if it exited).
    async fn answering(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if let Ok(client) = redis::Client::open(self.url())
                && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && let Ok(pong) = redis::cmd("PING").query_async::<String>(&mut conn).await
            {
                return pong == "PONG";
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    fn log(&self) -> String {
        read_log(&self.dir.path().join("redis.log"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(no log: {e})"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Field `name` of `INFO replication` at `url`.
async fn replication(url: &str, name: &str) -> String {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut connect(url).await)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_default()
        .to_owned()
}

/// Waits until field `name` of `INFO replication` at `url` is `value` (10 s at most).
async fn until_replication(url: &str, name: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = replication(url, name).await;
        if now == value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url}: {name} is {now:?}, not {value:?}, after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg_attr(
    not(chatvault_redis_replica),
    ignore = "needs Redis with a replica: CHATVAULT_REDIS_REPLICA_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"
)]
#[tokio::test]
async fn a_promoted_replica_takes_the_writes_on() {
    let primary = Server::start(None).await;
    let replica = Server::start(Some(primary.port)).await;
    until_replication(&replica.url(), "master_link_status", "up").await;

    let prefix = fresh_prefix();
    let owner = user("failover");
    let before = backend(&primary.url(), &prefix).await;
    let first = conversation(&before, &owner, 3).await;
    let second = conversation(&before, &owner, 3).await;
    // The append whose answer the failover "loses": its writer will send it again.
    let retried = NewMessage::new(Role::User, "sent again after the failover");
    let stored = before
        .append_messages(&first.id, vec![retried.clone()])
        .await
        .unwrap();
    assert_eq!(stored.messages[0].seq, 4);
    replicated(&primary.url(), &prefix).await;

    // The primary goes; its replica is made the primary.
    let primary_log = primary.log();
    drop(primary);
    let promoted: String = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(&mut connect(&replica.url()).await)
        .await
        .unwrap();
    assert_eq!(promoted, "OK");
    until_replication(&replica.url(), "role", "master").await;

    let after = backend(&replica.url(), &prefix).await;
    let again = after
        .append_messages(&first.id, vec![retried.clone()])
        .await
        .unwrap_or_else(|e| panic!("retried append failed: {e}; old primary's log: {primary_log}"));
    assert_eq!(again.messages.len(), 1);
    assert_eq!(again.messages[0].seq, 4, "the retry is answered as stored");
    assert_eq!(again.messages[0].id, retried.id);
    assert_eq!(again.record.message_count, 4, "the retry stored nothing");

    let next = after
        .append_messages(&first.id, vec![NewMessage::new(Role::User, "fifth")])
        .await
        .unwrap();
    assert_eq!(next.messages[0].seq, 5);
    let next = after
        .append_messages(&second.id, vec![NewMessage::new(Role::User, "fourth")])
        .await
        .unwrap();
    assert_eq!(next.messages[0].seq, 4);

    let all = after
        .messages(&first.id, &MessageRange::all())
        .await
        .unwrap();
    let seqs: Vec<u64> = all.items.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    let ids: HashSet<_> = all.items.iter().map(|m| &m.id).collect();
    assert_eq!(ids.len(), 5, "no message twice");
    assert_eq!(all.items[3].id, retried.id);

    // The listing moved with the writes: the conversation written last comes first.
    let listed = after
        .list_conversations(Some(&owner), &ListOptions::new())
        .await
        .unwrap();
    let order: Vec<_> = listed
        .items
        .iter()
        .map(|s| (s.id.clone(), s.message_count))
        .collect();
    assert_eq!(order, [(second.id.clone(), 4), (first.id.clone(), 5)]);
}
