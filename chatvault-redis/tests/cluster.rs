//! `RedisMessages` on a Redis Cluster (`RedisMessages::cluster_builder`): the core's whole
//! conformance suite (messages and vault checks, with the default settings and again with
//! key expiry on), that a conversation's keys share one hash slot, and that listings
//! (removing entries of conversations that are gone), deletes and live replies work when
//! owners' indexes and conversations sit on different nodes.
//!
//! Compiled to run when the tests are built with `CHATVAULT_REDIS_CLUSTER_URL` (the
//! cluster's nodes, comma-separated URLs; `scripts/redis.sh start` makes a 3-node cluster
//! and `scripts/redis.sh env` prints it) or `CHATVAULT_REQUIRE_REDIS=1` set: the build
//! script's `chatvault_redis_cluster` cfg. Otherwise the suite is not compiled and
//! `conformance_suite_needs_a_cluster` stands in for it, and the other tests are listed as
//! ignored with the reason (run, they fail saying what is missing).
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ConversationId, ConversationRecord, ListOptions, MessageStatus, MessageUpdate, MessagesBackend,
    NewMessage, Part, Role, UserId,
};
use chatvault_redis::{ChunkOffset, RedisMessages, RedisReplyStream, ReplyEvent};
use common::{fresh_cluster, fresh_prefix, raw_cluster};
use redis::Value;
use redis::cluster_async::ClusterConnection;

#[cfg(chatvault_redis_cluster)]
mod suite {
    use chatvault_core::ChatVault;
    use chatvault_memory::MemoryFiles;

    use crate::common::fresh_cluster;

    chatvault_core::messages_backend_tests!(fresh_cluster());
    chatvault_core::vault_tests!(async {
        ChatVault::new(fresh_cluster().await, MemoryFiles::new())
    });

    /// The suite again with key expiry on (see `tests/conformance.rs`): in a cluster the
    /// listing entries expire by another path than the conversation's keys.
    mod expiring {
        use std::time::Duration;

        use chatvault_core::{ChatVault, Expiry, Retention};
        use chatvault_memory::MemoryFiles;
        use chatvault_redis::RedisMessages;
        use chrono::TimeDelta;

        use crate::common::fresh_cluster_expiring;

        async fn backend() -> RedisMessages {
            let policy = Retention::new(Expiry::AfterLastActivity(TimeDelta::days(30)));
            fresh_cluster_expiring(policy, Duration::from_secs(3600)).await
        }

        chatvault_core::messages_backend_tests!(backend());
        chatvault_core::vault_tests!(async { ChatVault::new(backend().await, MemoryFiles::new()) });
    }
}

#[cfg(not(chatvault_redis_cluster))]
#[test]
#[ignore = "needs a Redis Cluster: CHATVAULT_REDIS_CLUSTER_URL was not set when the tests were built; the conformance suite's checks are not compiled; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"]
fn conformance_suite_needs_a_cluster() {
    // Fails saying what is missing; past it, the URL is set now but was not at build time.
    common::cluster_urls();
    panic!("CHATVAULT_REDIS_CLUSTER_URL is set now, but the tests were built without it: rebuild");
}

/// The cluster's slot map: (first slot, last slot, the port of the master serving them).
struct SlotMap(Vec<(i64, i64, i64)>);

impl SlotMap {
    async fn read(conn: &mut ClusterConnection) -> SlotMap {
        let ranges: Vec<Vec<Value>> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(conn)
            .await
            .unwrap();
        let int = |v: &Value| match v {
            Value::Int(i) => *i,
            other => panic!("CLUSTER SLOTS: not an integer: {other:?}"),
        };
        let map: Vec<_> = ranges
            .iter()
            .map(|r| {
                let Value::Array(master) = &r[2] else {
                    panic!("CLUSTER SLOTS: no master in {r:?}")
                };
                (int(&r[0]), int(&r[1]), int(&master[1]))
            })
            .collect();
        let covered: i64 = map.iter().map(|(a, b, _)| b - a + 1).sum();
        assert_eq!(covered, 16384, "every slot is served: {map:?}");
        SlotMap(map)
    }

    /// The port of the master that serves `slot`.
    fn node(&self, slot: i64) -> i64 {
        self.0
            .iter()
            .find(|(a, b, _)| (*a..=*b).contains(&slot))
            .map(|(_, _, port)| *port)
            .unwrap()
    }

    /// The masters' ports.
    fn nodes(&self) -> BTreeSet<i64> {
        self.0.iter().map(|(_, _, port)| *port).collect()
    }
}

async fn key_slot(conn: &mut ClusterConnection, key: &str) -> i64 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

/// Every key under `prefix`, from every master (`KEYS` goes to all of them).
async fn keys_under(conn: &mut ClusterConnection, prefix: &str) -> BTreeSet<String> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(conn)
        .await
        .unwrap();
    keys.into_iter().collect()
}

/// The master holding the conversation `id`'s keys (its record key `P:c:{ID}` decides).
async fn node_of(
    conn: &mut ClusterConnection,
    slots: &SlotMap,
    p: &str,
    id: &ConversationId,
) -> i64 {
    slots.node(key_slot(conn, &format!("{p}:c:{{{id}}}")).await)
}

/// One new conversation id per master, in the order of the masters' ports.
async fn ids_on_every_node(
    conn: &mut ClusterConnection,
    slots: &SlotMap,
    prefix: &str,
) -> Vec<ConversationId> {
    let mut by_node = BTreeMap::new();
    for _ in 0..1000 {
        let id = ConversationId::new();
        by_node
            .entry(node_of(conn, slots, prefix, &id).await)
            .or_insert(id);
        if by_node.len() == slots.nodes().len() {
            return by_node.into_values().collect();
        }
    }
    panic!("no ids found for every node in 1000 tries: {:?}", slots.0);
}

/// One new owner per master, each with its listing index (`P:u:USER`) on that master.
async fn owners_on_every_node(
    conn: &mut ClusterConnection,
    slots: &SlotMap,
    prefix: &str,
) -> Vec<UserId> {
    let mut by_node = BTreeMap::new();
    for i in 0..1000 {
        let user = UserId::parse(format!("owner-{i}-{}", fresh_prefix())).unwrap();
        let slot = key_slot(conn, &format!("{prefix}:u:{user}")).await;
        by_node.entry(slots.node(slot)).or_insert(user);
        if by_node.len() == slots.nodes().len() {
            return by_node.into_values().collect();
        }
    }
    panic!(
        "no owners found for every node in 1000 tries: {:?}",
        slots.0
    );
}

/// Every conversation `owner` lists (all of them when `None`), page by page of 2.
async fn list_all_pages(b: &RedisMessages, owner: Option<&UserId>) -> Vec<ConversationId> {
    let mut ids = Vec::new();
    let mut options = ListOptions::new().limit(2).unwrap();
    loop {
        let page = b.list_conversations(owner, &options).await.unwrap();
        assert!(page.items.len() <= 2);
        ids.extend(page.items.into_iter().map(|s| s.id));
        match page.next_cursor {
            Some(c) => options = options.cursor(&c).unwrap(),
            None => return ids,
        }
    }
}

#[cfg_attr(
    not(chatvault_redis_cluster),
    ignore = "needs a Redis Cluster: CHATVAULT_REDIS_CLUSTER_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversations_keys_share_one_slot() {
    let b = fresh_cluster().await;
    assert!(format!("{b:?}").contains("cluster: true"), "{b:?}");
    let mut conn = raw_cluster().await;
    let slots = SlotMap::read(&mut conn).await;
    assert!(
        slots.nodes().len() >= 2,
        "a cluster of one master proves nothing"
    );
    let owner = UserId::parse(format!("u-{}", fresh_prefix())).unwrap();
    let ids = ids_on_every_node(&mut conn, &slots, b.prefix()).await;

    let mut streams = Vec::new();
    for id in &ids {
        let mut record = ConversationRecord::new(Some(owner.clone()));
        record.id = id.clone();
        b.create(&record).await.unwrap();
        b.append_messages(id, vec![NewMessage::new(Role::User, "question")])
            .await
            .unwrap();
        // A live reply: its stream is one more key of the conversation.
        let pending = NewMessage::new(Role::Assistant, "").with_status(
            MessageStatus::Streaming,
            Some(chatvault_core::backend::now() + chrono::Duration::minutes(5)),
        );
        let message = b
            .append_messages(id, vec![pending])
            .await
            .unwrap()
            .messages
            .remove(0);
        let stream = RedisReplyStream::new(&b, id, &message.id);
        stream.push("answer").await.unwrap();
        streams.push((stream, message.id));
    }

    let all_keys = keys_under(&mut conn, b.prefix()).await;
    let mut nodes_used = BTreeSet::new();
    for (id, (stream, message)) in ids.iter().zip(&streams) {
        let p = b.prefix();
        let expected: BTreeSet<String> = [
            format!("{p}:c:{{{id}}}"),
            format!("{p}:c:{{{id}}}:m"),
            format!("{p}:c:{{{id}}}:i"),
            format!("{p}:c:{{{id}}}:r:{message}"),
        ]
        .into();
        assert_eq!(stream.key(), format!("{p}:c:{{{id}}}:r:{message}"));
        let found: BTreeSet<String> = all_keys
            .iter()
            .filter(|k| k.contains(&id.to_string()))
            .cloned()
            .collect();
        assert_eq!(found, expected, "the conversation's keys, all of them");
        let mut key_slots = BTreeSet::new();
        for key in &found {
            key_slots.insert(key_slot(&mut conn, key).await);
        }
        assert_eq!(key_slots.len(), 1, "one slot for {found:?}: {key_slots:?}");
        let slot = *key_slots.first().unwrap();
        // ... and they are all stored on the master of that slot.
        let in_slot: BTreeSet<String> = redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(slot)
            .arg(100)
            .query_async::<Vec<String>>(&mut conn)
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert!(in_slot.is_superset(&found), "{in_slot:?} holds {found:?}");
        nodes_used.insert(slots.node(slot));
    }
    assert_eq!(nodes_used, slots.nodes(), "conversations on every master");

    // The replies end and read back whole, on whichever node each stream lives.
    for (id, (stream, message)) in ids.iter().zip(&streams) {
        let mut reader = stream.reader(ChunkOffset::START).await.unwrap();
        let update = MessageUpdate {
            parts: Some(vec![Part::Text {
                text: "answer".into(),
            }]),
            status: Some(MessageStatus::Complete),
            ..Default::default()
        };
        stream.finish(&b, id, message, 1, &update).await.unwrap();
        let mut events = Vec::new();
        while !reader.ended() {
            let chunks = reader.next(Duration::from_secs(5)).await.unwrap();
            assert!(!chunks.is_empty(), "the stream ends within 5 s");
            events.extend(chunks.into_iter().map(|c| c.event));
        }
        assert_eq!(
            events,
            [
                ReplyEvent::Delta("answer".into()),
                ReplyEvent::End { failure: None }
            ]
        );
        let stored = b.message(id, message).await.unwrap().unwrap();
        assert_eq!(stored.content(), "answer");
        assert_eq!(stored.status, MessageStatus::Complete);
    }
}

#[cfg_attr(
    not(chatvault_redis_cluster),
    ignore = "needs a Redis Cluster: CHATVAULT_REDIS_CLUSTER_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_across_owners_on_every_node() {
    let b = fresh_cluster().await;
    let mut conn = raw_cluster().await;
    let slots = SlotMap::read(&mut conn).await;
    let p = b.prefix().to_owned();
    // An owner's listing index on every master, and each owner a conversation on every
    // master (round r gives owner o the id of master (o + r) mod n); creates interleave.
    let owners = owners_on_every_node(&mut conn, &slots, &p).await;
    let n = owners.len();
    let mut of_owner: HashMap<&UserId, Vec<ConversationId>> = HashMap::new();
    let mut created = Vec::new();
    for round in 0..n {
        let mut ids = ids_on_every_node(&mut conn, &slots, &p).await;
        ids.rotate_left(round);
        for (owner, id) in owners.iter().zip(ids) {
            let mut record = ConversationRecord::new(Some(owner.clone()));
            record.id = id.clone();
            b.create(&record).await.unwrap();
            of_owner.entry(owner).or_default().push(id.clone());
            created.push(id);
        }
    }
    for ids in of_owner.values() {
        let mut nodes = BTreeSet::new();
        for id in ids {
            nodes.insert(node_of(&mut conn, &slots, &p, id).await);
        }
        assert_eq!(
            nodes,
            slots.nodes(),
            "an owner's conversations on every master"
        );
    }

    // Activity in an order of its own: every conversation, oldest created first, then
    // the first of each owner again. A listing is newest activity first.
    let mut touched = created.clone();
    touched.extend(owners.iter().map(|o| of_owner[o][0].clone()));
    for (i, id) in touched.iter().enumerate() {
        b.append_messages(id, vec![NewMessage::new(Role::User, format!("m{i}"))])
            .await
            .unwrap();
    }
    let mut newest_first = Vec::new();
    for id in touched.iter().rev() {
        if !newest_first.contains(id) {
            newest_first.push(id.clone());
        }
    }
    for owner in &owners {
        let expected: Vec<_> = newest_first
            .iter()
            .filter(|id| of_owner[owner].contains(id))
            .cloned()
            .collect();
        assert_eq!(list_all_pages(&b, Some(owner)).await, expected, "{owner}");
    }
    assert_eq!(list_all_pages(&b, None).await, newest_first, "everyone's");

    // A delete crosses slots too: the conversation's keys and its listing entries go.
    let gone = of_owner[&owners[0]][1].clone();
    assert!(b.delete(&gone).await.unwrap());
    let left = keys_under(&mut conn, &p).await;
    assert!(
        !left.iter().any(|k| k.contains(&gone.to_string())),
        "no key of the deleted conversation: {left:?}"
    );
    let listed = list_all_pages(&b, Some(&owners[0])).await;
    assert_eq!(listed.len(), of_owner[&owners[0]].len() - 1);
    assert!(!listed.contains(&gone));
    let everyone = list_all_pages(&b, None).await;
    assert_eq!(everyone.len(), created.len() - 1);
    assert!(!everyone.contains(&gone));
}

#[cfg_attr(
    not(chatvault_redis_cluster),
    ignore = "needs a Redis Cluster: CHATVAULT_REDIS_CLUSTER_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"
)]
#[tokio::test]
async fn listings_remove_entries_of_conversations_gone_on_other_nodes() {
    let b = fresh_cluster().await;
    let mut conn = raw_cluster().await;
    let slots = SlotMap::read(&mut conn).await;
    let p = b.prefix().to_owned();
    let owner = UserId::parse(format!("u-{}", fresh_prefix())).unwrap();
    let index = format!("{p}:u:{owner}");
    let index_node = slots.node(key_slot(&mut conn, &index).await);
    let ids = ids_on_every_node(&mut conn, &slots, &p).await;
    for id in &ids {
        let mut record = ConversationRecord::new(Some(owner.clone()));
        record.id = id.clone();
        b.create(&record).await.unwrap();
    }
    // The conversations on the other masters lose their record, as when their keys
    // expire: their entries, in the owner's index and in everyone's, stay behind.
    let mut gone = Vec::new();
    for id in &ids {
        if node_of(&mut conn, &slots, &p, id).await != index_node {
            let deleted: i64 = redis::cmd("DEL")
                .arg(format!("{p}:c:{{{id}}}"))
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(deleted, 1);
            gone.push(id.clone());
        }
    }
    assert_eq!(gone.len(), ids.len() - 1);
    let kept: Vec<_> = ids
        .iter()
        .filter(|id| !gone.contains(id))
        .cloned()
        .collect();

    assert_eq!(list_all_pages(&b, Some(&owner)).await, kept, "the owner's");
    assert_eq!(list_all_pages(&b, None).await, kept, "everyone's");
    for listing in [index, format!("{p}:all")] {
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(&listing)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        let expected: Vec<String> = kept.iter().map(ToString::to_string).collect();
        assert_eq!(
            members, expected,
            "the listing removed the entries it skipped: {listing}"
        );
    }
}
