//! What the conformance suite cannot check from one backend value: writers in two
//! "processes" (two backend values with their own connections and recalled state), live
//! replies read by another client, damaged keys, settings.
//!
//! Built without `CHATVAULT_REDIS_URL` (see `build.rs`), every test is listed as ignored
//! with the reason; with `CHATVAULT_REQUIRE_REDIS=1` they are built to run and a missing
//! URL fails them.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::collections::HashSet;
use std::time::Duration;

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ConversationPatch, ConversationRecord, ErrorKind, ListOptions, MessageRange, MessageStatus,
    MessageUpdate, MessagesBackend, NewMessage, Part, Role, UserId,
};
use chatvault_redis::{ChunkOffset, RedisMessages, RedisReplyStream, ReplyEvent};
use common::{another, fresh, fresh_prefix, raw, server_url};

fn user(name: &str) -> UserId {
    UserId::parse(format!("{name}-{}", fresh_prefix())).unwrap()
}

#[cfg_attr(
    not(chatvault_redis_server),
    ignore = "needs Redis: CHATVAULT_REDIS_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_appending_lose_nothing() {
    let a = fresh().await;
    let b = another(&a).await;
    let record = ConversationRecord::new(Some(user("u")));
    a.create(&record).await.unwrap();
    // Both recall their own last write, which the other makes stale at once: every
    // append is refused at first and decided again, and nothing is lost or doubled.
    let mut tasks = Vec::new();
    for (w, backend) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        let id = record.id.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                backend
                    .append_messages(&id, vec![NewMessage::new(Role::User, format!("{w}/{i}"))])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let head = b.head(&record.id).await.unwrap().unwrap();
    assert_eq!(head.record.message_count, 200);
    let all = a.messages(&record.id, &MessageRange::all()).await.unwrap();
    let texts: HashSet<String> = all.items.iter().map(|m| m.content()).collect();
    assert_eq!(texts.len(), 200, "every message once");
    assert!(all.items.iter().zip(1..).all(|(m, seq)| m.seq == seq));
}

#[cfg_attr(
    not(chatvault_redis_server),
    ignore = "needs Redis: CHATVAULT_REDIS_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"
)]
#[tokio::test]
async fn a_stale_recalled_state_never_overwrites() {
    let a = fresh().await;
    let b = another(&a).await;
    let record = ConversationRecord::new(None);
    a.create(&record).await.unwrap();
    a.append_messages(&record.id, vec![NewMessage::new(Role::User, "one")])
        .await
        .unwrap();
    // b changes the conversation behind a's back: title, then a message.
    let patch = ConversationPatch {
        title: Some("set by b".into()),
        ..Default::default()
    };
    b.update(&record.id, &patch).await.unwrap();
    b.append_messages(&record.id, vec![NewMessage::new(Role::User, "two")])
        .await
        .unwrap();
    // a recalls the state after "one"; its write is refused and decided again.
    let appended = a
        .append_messages(&record.id, vec![NewMessage::new(Role::User, "three")])
        .await
        .unwrap();
    assert_eq!(appended.messages[0].seq, 3);
    assert_eq!(appended.record.title.as_deref(), Some("set by b"));
    // The same patch again changes nothing, even though a recalled the old title.
    let again = a.update(&record.id, &patch).await.unwrap();
    assert_eq!(again.version, appended.record.version, "nothing written");
    // A retry of b's append through a: the stored message, nothing new.
    let head = a.head(&record.id).await.unwrap().unwrap();
    assert_eq!(head.record.message_count, 3);
    assert_eq!(head.record.title.as_deref(), Some("set by b"));
}

#[cfg_attr(
    not(chatvault_redis_server),
    ignore = "needs Redis: CHATVAULT_REDIS_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_reply_read_by_another_client_and_resumed() {
    let writer = fresh().await;
    let reader_backend = another(&writer).await;
    let record = ConversationRecord::new(None);
    writer.create(&record).await.unwrap();
    let pending = NewMessage::new(Role::Assistant, "").with_status(
        MessageStatus::Streaming,
        Some(chatvault_core::backend::now() + chrono::Duration::minutes(5)),
    );
    let message = writer
        .append_messages(&record.id, vec![pending])
        .await
        .unwrap()
        .messages
        .remove(0);
    let stream = RedisReplyStream::new(&writer, &record.id, &message.id);
    let view = RedisReplyStream::new(&reader_backend, &record.id, &message.id);
    assert_eq!(stream.key(), view.key());

    let mut reader = view.reader(ChunkOffset::START).await.unwrap();
    let deltas = ["Hel", "lo, ", "world"];
    let writing = {
        let stream = stream.clone();
        let writer = writer.clone();
        let id = record.id.clone();
        let message_id = message.id.clone();
        tokio::spawn(async move {
            for d in deltas {
                stream.push(d).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let update = MessageUpdate {
                parts: Some(vec![Part::Text {
                    text: deltas.concat(),
                }]),
                status: Some(MessageStatus::Complete),
                ..Default::default()
            };
            stream
                .finish(&writer, &id, &message_id, 1, &update)
                .await
                .unwrap()
        })
    };
    // The reader follows along, blocking on XREAD, until the end.
    let mut text = String::new();
    let mut first_offset = None;
    while !reader.ended() {
        for chunk in reader.next(Duration::from_secs(5)).await.unwrap() {
            first_offset.get_or_insert(chunk.offset.clone());
            match chunk.event {
                ReplyEvent::Delta(d) => text.push_str(&d),
                ReplyEvent::End { failure } => assert_eq!(failure, None),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(text, "Hello, world");
    let updated = writing.await.unwrap();
    // After the end, the final message is stored.
    let stored = reader_backend
        .message(&record.id, &message.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, updated.message);
    assert_eq!(stored.content(), "Hello, world");
    assert_eq!(stored.status, MessageStatus::Complete);

    // A reader that had seen the first chunk resumes after it, and gets the rest.
    let first: ChunkOffset = first_offset.unwrap().to_string().parse().unwrap();
    let rest = view.read_after(&first, 100).await.unwrap();
    let rest_text: String = rest
        .iter()
        .filter_map(|c| match &c.event {
            ReplyEvent::Delta(d) => Some(d.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(rest_text, "lo, world");
    assert!(matches!(rest.last().unwrap().event, ReplyEvent::End { .. }));
    // The stream expires by itself.
    let mut conn = raw().await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg(stream.key())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 3_600_000, "{ttl}");
}

#[cfg_attr(
    not(chatvault_redis_server),
    ignore = "needs Redis: CHATVAULT_REDIS_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"
)]
#[tokio::test]
async fn damaged_keys_are_corrupt_not_panics() {
    let b = fresh().await;
    let record = ConversationRecord::new(Some(user("u")));
    b.create(&record).await.unwrap();
    b.append_messages(&record.id, vec![NewMessage::new(Role::User, "hi")])
        .await
        .unwrap();
    let mut conn = raw().await;
    let key = format!("{}:c:{{{}}}", b.prefix(), record.id);
    let () = redis::cmd("HSET")
        .arg(format!("{key}:m"))
        .arg(1)
        .arg("{not json")
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = b
        .messages(&record.id, &MessageRange::all())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    let () = redis::cmd("HSET")
        .arg(&key)
        .arg("rec")
        .arg("[]")
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = b.head(&record.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    let err = b
        .list_conversations(record.user_id.as_ref(), &ListOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    let () = redis::cmd("HSET")
        .arg(&key)
        .arg("fmt")
        .arg("99")
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = b.head(&record.id).await.unwrap_err();
    assert!(err.to_string().contains("99"), "{err}");
    // Deleting a damaged conversation still removes it.
    assert!(b.delete(&record.id).await.unwrap());
    assert!(b.head(&record.id).await.unwrap().is_none());
}

#[cfg_attr(
    not(chatvault_redis_server),
    ignore = "needs Redis: CHATVAULT_REDIS_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"
)]
#[tokio::test]
async fn settings_prefix_list_all_and_no_recall() {
    let url = server_url();
    let a = fresh().await;
    let other = fresh().await;
    let record = ConversationRecord::new(None);
    a.create(&record).await.unwrap();
    assert!(
        other.head(&record.id).await.unwrap().is_none(),
        "prefixes keep apart"
    );
    other.create(&record).await.unwrap();

    let no_all = RedisMessages::builder(&url)
        .prefix(fresh_prefix())
        .list_all(false)
        .cached_conversations(0)
        .build()
        .await
        .unwrap();
    assert!(!no_all.capabilities().list_all);
    let err = no_all
        .list_conversations(None, &ListOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotSupported);
    let r = ConversationRecord::new(Some(user("v")));
    no_all.create(&r).await.unwrap();
    for i in 0..3 {
        let appended = no_all
            .append_messages(&r.id, vec![NewMessage::new(Role::User, format!("{i}"))])
            .await
            .unwrap();
        assert_eq!(appended.messages[0].seq, i + 1);
    }
    let mut conn = raw().await;
    let all_key = format!("{}:all", no_all.prefix());
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&all_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0, "no index of every conversation is kept");

    for bad in ["", "a b", "x{y}"] {
        let err = RedisMessages::builder(&url)
            .prefix(bad)
            .build()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
    }
    let err = RedisMessages::connect("mysql://x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

#[cfg_attr(
    not(chatvault_redis_server),
    ignore = "needs Redis: CHATVAULT_REDIS_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"
)]
#[tokio::test]
async fn listing_skips_and_removes_entries_of_deleted_conversations() {
    let b = fresh().await;
    let u = user("u");
    let mut ids = Vec::new();
    for _ in 0..5 {
        let r = ConversationRecord::new(Some(u.clone()));
        b.create(&r).await.unwrap();
        ids.push(r.id);
    }
    // An entry left behind (a delete interrupted between its steps, or racing an
    // append): its conversation's keys are gone, the entry is not.
    let mut conn = raw().await;
    let gone = &ids[2];
    let () = redis::cmd("DEL")
        .arg(format!("{}:c:{{{gone}}}", b.prefix()))
        .query_async(&mut conn)
        .await
        .unwrap();
    let listed: Vec<_> = b
        .list_conversations(Some(&u), &ListOptions::new().limit(2).unwrap())
        .await
        .unwrap()
        .items;
    assert_eq!(listed.len(), 2, "a page is filled past the skipped entry");
    let mut all = Vec::new();
    let mut options = ListOptions::new().limit(2).unwrap();
    loop {
        let page = b.list_conversations(Some(&u), &options).await.unwrap();
        all.extend(page.items.into_iter().map(|s| s.id));
        match page.next_cursor {
            Some(c) => options = options.cursor(&c).unwrap(),
            None => break,
        }
    }
    assert_eq!(all.len(), 4);
    assert!(!all.contains(gone));
    // The listing removed the entry it skipped; the live ones stay.
    let index = format!("{}:u:{u}", b.prefix());
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(&index)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(members.len(), 4, "{members:?}");
    assert!(!members.contains(&gone.to_string()));
}
