//! Checks of every `MessagesBackend` method, run against SQLite and PostgreSQL by
//! `sql_backend_tests!` (one `#[tokio::test]` per check).

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::HashSet;
use std::sync::Arc;

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::backend::now;
use chatvault_core::{
    ChatVault, ContentType, ConversationId, ConversationPatch, ConversationRecord, ErrorKind,
    FileAttachment, FileId, ListOptions, Message, MessageId, MessageRange, MessageStatus,
    MessageUpdate, MessagesBackend, Metadata, NewMessage, Part, Role, SearchOptions, Usage, UserId,
    keys,
};
use chatvault_memory::MemoryFiles;

#[cfg(feature = "postgres")]
pub mod pg;
pub mod v1;

pub type Backend = Arc<dyn MessagesBackend>;

/// Generates one `#[tokio::test]` per check; `$setup` is an async fn returning
/// `(Backend, guard)` (it fails the test when the database is not available). The
/// attributes in brackets go on every test, e.g. an `ignore` with the reason when the
/// database was not configured at build time.
#[macro_export]
macro_rules! sql_backend_tests {
    ($setup:path, $attrs:tt; $($check:ident),+ $(,)?) => {
        $(sql_backend_tests!(@one $setup, $attrs, $check);)+
    };
    (@one $setup:path, [$(#[$attr:meta])*], $check:ident) => {
        $(#[$attr])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $check() {
            let (backend, _guard) = $setup().await;
            common::$check(backend).await;
        }
    };
}

/// Every check, for `sql_backend_tests!`: `all_checks!(setup)`, or
/// `all_checks!(setup, #[attribute]...)` to put attributes on every test.
#[macro_export]
macro_rules! all_checks {
    ($setup:path $(, #[$attr:meta])* $(,)?) => {
        sql_backend_tests!($setup, [$(#[$attr])*];
            create_and_head,
            append_assigns_seq_and_updates_the_record,
            appends_are_idempotent_by_message_id,
            empty_append_stores_nothing,
            missing_conversation_is_not_found,
            message_ranges_page_by_seq,
            unlimited_ranges_come_in_natural_pages,
            update_message_is_versioned,
            list_pages_newest_first_without_skips,
            list_all_users,
            patch_updates_metadata_only,
            attachments_add_remove_in_order,
            begin_delete_hides_and_delete_removes,
            json_round_trips_exactly,
            large_message_round_trips,
            concurrent_appends_lose_nothing,
            concurrent_updates_one_winner,
            search_finds_own_messages_only,
            search_pages_and_follows_updates,
            search_query_syntax_is_harmless,
            vault_end_to_end,
            cancelled_writes_leave_no_trace,
            large_batch_appends_reads_and_searches,
        );
    };
}

pub fn user() -> UserId {
    UserId::parse(format!("user-{}", ConversationId::new())).unwrap()
}

pub async fn new_conversation(b: &Backend, user: Option<&UserId>) -> ConversationRecord {
    let record = ConversationRecord::new(user.cloned());
    b.create(&record).await.unwrap();
    record
}

fn text(role: Role, t: &str) -> NewMessage {
    NewMessage::new(role, t)
}

fn file(name: &str, conversation: &ConversationId) -> FileAttachment {
    let id = FileId::new();
    let storage_key = keys::storage_key(None, conversation, &id, name).unwrap();
    FileAttachment::new(
        id,
        name,
        ContentType::parse("text/plain").unwrap(),
        3,
        chatvault_core::sha256_hex(b"abc"),
        storage_key,
        now(),
    )
}

pub async fn create_and_head(b: Backend) {
    let u = user();
    let mut record = ConversationRecord::new(Some(u.clone()));
    record.title = Some("Hello".into());
    record
        .metadata
        .insert("k".into(), serde_json::json!({"n": 1}));
    b.create(&record).await.unwrap();
    let head = b.head(&record.id).await.unwrap().expect("stored");
    assert_eq!(head.record, record);
    assert!(head.files.is_empty());
    let again = b.create(&record).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::AlreadyExists);
    assert!(b.head(&ConversationId::new()).await.unwrap().is_none());
    let anonymous = new_conversation(&b, None).await;
    assert_eq!(
        b.head(&anonymous.id).await.unwrap().unwrap().record,
        anonymous
    );
}

pub async fn append_assigns_seq_and_updates_the_record(b: Backend) {
    let c = new_conversation(&b, Some(&user())).await;
    let out = b
        .append_messages(
            &c.id,
            vec![
                text(Role::System, "be brief"),
                text(Role::User, "What is a vault?").with_usage(Usage::new("m", 3, 0)),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        out.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(out.record.message_count, 2);
    assert_eq!(out.record.title.as_deref(), Some("What is a vault?"));
    assert_eq!(out.record.version, c.version + 1);
    assert_eq!(out.record.usage.input_tokens, 3);
    let more = b
        .append_messages(&c.id, vec![text(Role::Assistant, "A safe.")])
        .await
        .unwrap();
    assert_eq!(more.messages[0].seq, 3);
    let head = b.head(&c.id).await.unwrap().unwrap();
    assert_eq!(head.record, more.record);
    let all = b.messages(&c.id, &MessageRange::all()).await.unwrap();
    assert_eq!(all.items.len(), 3);
    assert_eq!(all.items[..2], out.messages[..]);
    assert_eq!(all.items[2], more.messages[0]);
    assert_eq!(all.next_cursor, None);
}

pub async fn appends_are_idempotent_by_message_id(b: Backend) {
    let c = new_conversation(&b, Some(&user())).await;
    let batch = vec![text(Role::User, "one"), text(Role::Assistant, "two")];
    let first = b.append_messages(&c.id, batch.clone()).await.unwrap();
    let replay = b.append_messages(&c.id, batch.clone()).await.unwrap();
    assert_eq!(replay.messages, first.messages);
    assert_eq!(replay.record, first.record, "a replay stores nothing");
    // Same id, other content: refused, nothing stored.
    let mut changed = batch[0].clone();
    changed.parts = vec![Part::text("other")];
    let err = b.append_messages(&c.id, vec![changed]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    // Part of a batch already stored: refused.
    let err = b
        .append_messages(&c.id, vec![batch[0].clone(), text(Role::User, "new")])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    // Duplicate ids within one append.
    let dup = text(Role::User, "dup");
    let err = b
        .append_messages(&c.id, vec![dup.clone(), dup])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(b.head(&c.id).await.unwrap().unwrap().record, first.record);
    // The same message id in another conversation is a different message.
    let other = new_conversation(&b, None).await;
    let out = b
        .append_messages(&other.id, vec![batch[0].clone()])
        .await
        .unwrap();
    assert_eq!(out.messages[0].seq, 1);
}

pub async fn empty_append_stores_nothing(b: Backend) {
    let c = new_conversation(&b, None).await;
    let out = b.append_messages(&c.id, Vec::new()).await.unwrap();
    assert!(out.messages.is_empty());
    assert_eq!(out.record, c);
}

pub async fn missing_conversation_is_not_found(b: Backend) {
    let id = ConversationId::new();
    let kind = |r: chatvault_core::Error| r.kind();
    assert_eq!(
        kind(
            b.append_messages(&id, vec![text(Role::User, "x")])
                .await
                .unwrap_err()
        ),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(b.messages(&id, &MessageRange::all()).await.unwrap_err()),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(
            b.update(&id, &ConversationPatch::default())
                .await
                .unwrap_err()
        ),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(b.add_file(&id, &file("a.txt", &id)).await.unwrap_err()),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(b.remove_file(&id, &FileId::new()).await.unwrap_err()),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(
            b.update_message(&id, &MessageId::new(), 1, &MessageUpdate::default())
                .await
                .unwrap_err()
        ),
        ErrorKind::NotFound
    );
    assert_eq!(b.begin_delete(&id).await.unwrap(), None);
    assert!(!b.delete(&id).await.unwrap());
}

fn seqs(p: &chatvault_core::Page<Message>) -> Vec<u64> {
    p.items.iter().map(|m| m.seq).collect()
}

pub async fn message_ranges_page_by_seq(b: Backend) {
    let c = new_conversation(&b, None).await;
    let batch = (1..=10)
        .map(|i| text(Role::User, &format!("m{i}")))
        .collect();
    b.append_messages(&c.id, batch).await.unwrap();
    let p = b
        .messages(&c.id, &MessageRange::after(3).limit(4))
        .await
        .unwrap();
    assert_eq!(seqs(&p), [4, 5, 6, 7]);
    assert_eq!(p.next_cursor.as_deref(), Some("7"));
    let range = MessageRange::after(3).limit(4);
    let p2 = b
        .messages(&c.id, &range.continue_from("7").unwrap())
        .await
        .unwrap();
    assert_eq!(seqs(&p2), [8, 9, 10]);
    assert_eq!(p2.next_cursor, None);
    let tail = b.messages(&c.id, &MessageRange::last(3)).await.unwrap();
    assert_eq!(seqs(&tail), [8, 9, 10]);
    assert_eq!(tail.next_cursor.as_deref(), Some("8"));
    let older = b
        .messages(&c.id, &MessageRange::last(3).continue_from("8").unwrap())
        .await
        .unwrap();
    assert_eq!(seqs(&older), [5, 6, 7]);
    assert!(
        b.messages(&c.id, &MessageRange::after(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        b.messages(&c.id, &MessageRange::after(u64::MAX))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        seqs(&b.messages(&c.id, &MessageRange::before(3)).await.unwrap()),
        [1, 2]
    );
    assert!(
        b.messages(&c.id, &MessageRange::last(0))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // Every range, read in one statement or in two (a `before` past the end, the newest
    // messages), gives the reference page.
    let all = b.messages(&c.id, &MessageRange::all()).await.unwrap().items;
    let mut ranges = Vec::new();
    for limit in [None, Some(0), Some(1), Some(3), Some(20)] {
        for after in (0..=12).chain([u64::MAX - 1, u64::MAX]) {
            ranges.push(MessageRange::After { after, limit });
        }
        let limit = limit.unwrap_or(usize::MAX);
        for before in [
            None,
            Some(0),
            Some(1),
            Some(2),
            Some(10),
            Some(11),
            Some(12),
            Some(99),
        ] {
            ranges.push(MessageRange::Before { before, limit });
        }
    }
    for range in ranges {
        let page = b.messages(&c.id, &range).await.unwrap();
        let expected = range.select(&all);
        assert_eq!(seqs(&page), seqs(&expected), "{range:?}");
        assert_eq!(page.next_cursor, expected.next_cursor, "{range:?}");
    }
}

pub async fn unlimited_ranges_come_in_natural_pages(b: Backend) {
    let c = new_conversation(&b, None).await;
    let total = 1_234u64;
    for chunk in (1..=total).collect::<Vec<_>>().chunks(400) {
        let batch = chunk
            .iter()
            .map(|i| text(Role::User, &format!("m{i}")))
            .collect();
        b.append_messages(&c.id, batch).await.unwrap();
    }
    // Forwards: every message once, in order, following next_cursor.
    let mut range = MessageRange::all();
    let mut got = Vec::new();
    let mut pages = 0;
    loop {
        let page = b.messages(&c.id, &range).await.unwrap();
        pages += 1;
        got.extend(seqs(&page));
        match page.next_cursor {
            Some(cursor) => range = range.continue_from(&cursor).unwrap(),
            None => break,
        }
    }
    assert_eq!(got, (1..=total).collect::<Vec<_>>());
    assert!(
        pages > 1,
        "a page of its own size, not the whole conversation"
    );
    // Backwards from the end without a limit.
    let mut range = MessageRange::Before {
        before: None,
        limit: usize::MAX,
    };
    let mut back = Vec::new();
    loop {
        let page = b.messages(&c.id, &range).await.unwrap();
        let s = seqs(&page);
        assert!(
            s.windows(2).all(|w| w[0] + 1 == w[1]),
            "ascending, contiguous"
        );
        back.splice(0..0, s);
        match page.next_cursor {
            Some(cursor) => range = range.continue_from(&cursor).unwrap(),
            None => break,
        }
    }
    assert_eq!(back, (1..=total).collect::<Vec<_>>());
}

pub async fn update_message_is_versioned(b: Backend) {
    let c = new_conversation(&b, Some(&user())).await;
    let out = b
        .append_messages(
            &c.id,
            vec![
                text(Role::User, "q"),
                NewMessage::new(Role::Assistant, "")
                    .with_status(MessageStatus::Streaming, Some(now()))
                    .with_usage(Usage::new("m", 5, 1)),
            ],
        )
        .await
        .unwrap();
    let reply = &out.messages[1];
    assert_eq!(reply.revision, 1);
    let update = MessageUpdate {
        parts: Some(vec![Part::text("the answer")]),
        status: Some(MessageStatus::Complete),
        usage: Some(Usage::new("m", 5, 40)),
        ..Default::default()
    };
    let done = b
        .update_message(&c.id, &reply.id, 1, &update)
        .await
        .unwrap();
    assert_eq!(done.message.revision, 2);
    assert_eq!(done.message.content(), "the answer");
    assert_eq!(done.message.status, MessageStatus::Complete);
    assert_eq!(done.record.usage.output_tokens, 40);
    assert_eq!(done.record.version, out.record.version + 1);
    let stale = b
        .update_message(&c.id, &reply.id, 1, &update)
        .await
        .unwrap_err();
    assert_eq!(stale.kind(), ErrorKind::Conflict);
    let missing = b
        .update_message(&c.id, &MessageId::new(), 1, &update)
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    let head = b.head(&c.id).await.unwrap().unwrap();
    assert_eq!(head.record, done.record, "a refused update writes nothing");
    let stored = b.messages(&c.id, &MessageRange::all()).await.unwrap();
    assert_eq!(stored.items[1], done.message);
    assert_eq!(stored.items[0], out.messages[0]);
}

pub async fn list_pages_newest_first_without_skips(b: Backend) {
    let u = user();
    let mut ids = Vec::new();
    for _ in 0..7 {
        ids.push(new_conversation(&b, Some(&u)).await.id);
    }
    // Activity moves one conversation to the front.
    b.append_messages(&ids[2], vec![text(Role::User, "bump")])
        .await
        .unwrap();
    b.update(
        &ids[4],
        &ConversationPatch {
            archived: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    let mut options = ListOptions::new().limit(2).unwrap();
    let mut first = true;
    loop {
        let page = b.list_conversations(Some(&u), &options).await.unwrap();
        if first {
            assert_eq!(page.items[0].id, ids[2], "most recent activity first");
            assert_eq!(page.items[0].title.as_deref(), Some("bump"));
            assert_eq!(page.items[0].message_count, 1);
            // A conversation created while paging sorts first: later pages are unchanged.
            new_conversation(&b, Some(&u)).await;
            first = false;
        }
        seen.extend(page.items.iter().map(|s| s.id.clone()));
        match page.next_cursor {
            Some(c) => options = options.cursor(&c).unwrap(),
            None => break,
        }
    }
    let expected: HashSet<_> = ids.iter().filter(|id| **id != ids[4]).cloned().collect();
    assert_eq!(seen.len(), 6, "no skips, no repeats: {seen:?}");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), expected);
    let with_archived = b
        .list_conversations(Some(&u), &ListOptions::new().include_archived(true))
        .await
        .unwrap();
    assert_eq!(with_archived.items.len(), 8);
    let mut sorted = with_archived.items.clone();
    chatvault_core::backend::sort_for_listing(&mut sorted);
    assert_eq!(with_archived.items, sorted, "listing order");
    assert!(
        b.list_conversations(Some(&user()), &ListOptions::new())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // A bad cursor is refused when the options are built, before any backend sees it.
    let bad = ListOptions::new().cursor("nonsense").unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidInput);
}

pub async fn list_all_users(b: Backend) {
    assert!(b.capabilities().list_all);
    let (u1, u2) = (user(), user());
    let a = new_conversation(&b, Some(&u1)).await;
    let c = new_conversation(&b, Some(&u2)).await;
    let d = new_conversation(&b, None).await;
    let mut options = ListOptions::new().limit(1000).unwrap();
    let mut all = Vec::new();
    loop {
        let page = b.list_conversations(None, &options).await.unwrap();
        all.extend(page.items);
        match page.next_cursor {
            Some(cursor) => options = options.cursor(&cursor).unwrap(),
            None => break,
        }
    }
    for id in [&a.id, &c.id, &d.id] {
        assert_eq!(all.iter().filter(|s| &s.id == id).count(), 1);
    }
    let mut sorted = all.clone();
    chatvault_core::backend::sort_for_listing(&mut sorted);
    assert_eq!(all, sorted);
}

pub async fn patch_updates_metadata_only(b: Backend) {
    let c = new_conversation(&b, Some(&user())).await;
    b.append_messages(&c.id, vec![text(Role::User, "hi")])
        .await
        .unwrap();
    let before = b.head(&c.id).await.unwrap().unwrap().record;
    let mut metadata = Metadata::new();
    metadata.insert("topic".into(), "vaults".into());
    let patch = ConversationPatch {
        title: Some("Renamed".into()),
        archived: Some(true),
        metadata: Some(metadata.clone()),
        active: None,
    };
    let after = b.update(&c.id, &patch).await.unwrap();
    assert_eq!(after.title.as_deref(), Some("Renamed"));
    assert!(after.archived);
    assert_eq!(after.metadata, metadata);
    assert_eq!(after.version, before.version + 1);
    assert_eq!(after.last_active, before.last_active);
    assert_eq!(after.message_count, 1);
    assert_eq!(b.head(&c.id).await.unwrap().unwrap().record, after);
    // A patch that changes nothing bumps nothing.
    let same = b.update(&c.id, &patch).await.unwrap();
    assert_eq!(same, after);
}

pub async fn attachments_add_remove_in_order(b: Backend) {
    let c = new_conversation(&b, Some(&user())).await;
    let (f1, f2, f3) = (
        file("b.txt", &c.id),
        file("a.txt", &c.id),
        file("c.txt", &c.id),
    );
    for f in [&f1, &f2, &f3] {
        b.add_file(&c.id, f).await.unwrap();
    }
    let dup = b.add_file(&c.id, &f1).await.unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::AlreadyExists);
    let head = b.head(&c.id).await.unwrap().unwrap();
    assert_eq!(head.files, vec![f1.clone(), f2.clone(), f3.clone()]);
    assert_eq!(head.record.file_count, 3);
    let rec = b
        .remove_file(&c.id, &f2.id)
        .await
        .unwrap()
        .expect("removed");
    assert_eq!(rec.file_count, 2);
    assert_eq!(b.remove_file(&c.id, &f2.id).await.unwrap(), None);
    let head = b.head(&c.id).await.unwrap().unwrap();
    assert_eq!(head.files, vec![f1, f3]);
    assert_eq!(head.record, rec);
}

pub async fn begin_delete_hides_and_delete_removes(b: Backend) {
    let u = user();
    let c = new_conversation(&b, Some(&u)).await;
    b.append_messages(&c.id, vec![text(Role::User, "secret words here")])
        .await
        .unwrap();
    let f = file("a.txt", &c.id);
    b.add_file(&c.id, &f).await.unwrap();
    let files = b.begin_delete(&c.id).await.unwrap().expect("exists");
    assert_eq!(files, vec![f.clone()]);
    assert!(b.head(&c.id).await.unwrap().is_none());
    let listed = b
        .list_conversations(Some(&u), &ListOptions::new().include_archived(true))
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    let hits = b.search(&u, "secret", &SearchOptions::new()).await.unwrap();
    assert!(
        hits.items.is_empty(),
        "a deleting conversation is not searched"
    );
    for err in [
        b.append_messages(&c.id, vec![text(Role::User, "x")])
            .await
            .unwrap_err(),
        b.add_file(&c.id, &file("b.txt", &c.id)).await.unwrap_err(),
        b.update(&c.id, &ConversationPatch::default())
            .await
            .unwrap_err(),
        b.messages(&c.id, &MessageRange::all()).await.unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    }
    // The id stays taken until delete.
    assert_eq!(
        b.create(&ConversationRecord::with_id(
            c.id.clone(),
            None,
            chatvault_core::backend::now(),
        ))
        .await
        .unwrap_err()
        .kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(b.begin_delete(&c.id).await.unwrap(), Some(vec![f]));
    assert!(b.delete(&c.id).await.unwrap());
    assert!(!b.delete(&c.id).await.unwrap(), "retry-safe");
    assert_eq!(b.begin_delete(&c.id).await.unwrap(), None);
    // Deleted without begin_delete, too; then the id is free again.
    let d = new_conversation(&b, None).await;
    b.append_messages(&d.id, vec![text(Role::User, "x")])
        .await
        .unwrap();
    assert!(b.delete(&d.id).await.unwrap());
    assert!(b.head(&d.id).await.unwrap().is_none());
    let again = ConversationRecord::with_id(d.id.clone(), None, chatvault_core::backend::now());
    b.create(&again).await.unwrap();
    assert!(
        b.messages(&d.id, &MessageRange::all())
            .await
            .unwrap()
            .items
            .is_empty(),
        "no message of the deleted conversation survives"
    );
}

pub async fn json_round_trips_exactly(b: Backend) {
    let json = r#"{"f":0.1,"neg0":-0.0,"e2":1e2,"tiny":1e-300,"big":18446744073709551615,
        "min":-9223372036854775808,"p53":9007199254740993,"pi":3.141592653589793,
        "nul":"a\u0000b","emoji":"👨‍👩‍👧","deep":{"a":[1,[2,[3]]]}}"#;
    let metadata: Metadata = serde_json::from_str(json).unwrap();
    let mut record = ConversationRecord::new(Some(user()));
    record.metadata = metadata.clone();
    b.create(&record).await.unwrap();
    let head = b.head(&record.id).await.unwrap().unwrap();
    assert_eq!(head.record.metadata, metadata);
    assert_eq!(
        serde_json::to_string(&head.record.metadata).unwrap(),
        serde_json::to_string(&metadata).unwrap()
    );
    let message = NewMessage::new(Role::User, "nul \0 inside, and \u{1F600}")
        .with_metadata(metadata.clone())
        .with_usage(Usage {
            input_tokens: u64::MAX / 2,
            ..Usage::new("m", 1, 2)
        });
    let out = b.append_messages(&record.id, vec![message]).await.unwrap();
    let stored = b.messages(&record.id, &MessageRange::all()).await.unwrap();
    assert_eq!(stored.items, out.messages);
    assert_eq!(stored.items[0].metadata, metadata);
    assert_eq!(stored.items[0].content(), "nul \0 inside, and \u{1F600}");
    assert_eq!(
        b.head(&record.id)
            .await
            .unwrap()
            .unwrap()
            .record
            .usage
            .input_tokens,
        u64::MAX / 2
    );
}

pub async fn large_message_round_trips(b: Backend) {
    let c = new_conversation(&b, Some(&user())).await;
    // ~7 MiB of distinct words: more than PostgreSQL could put in one tsvector.
    let mut big = String::with_capacity(7 << 20);
    let mut i = 0u64;
    while big.len() < 7 << 20 {
        big.push_str(&format!("w{i:x} "));
        i += 1;
    }
    let out = b
        .append_messages(&c.id, vec![NewMessage::new(Role::User, big.clone())])
        .await
        .unwrap();
    let stored = b.messages(&c.id, &MessageRange::all()).await.unwrap();
    assert_eq!(stored.items, out.messages);
    assert_eq!(stored.items[0].content(), big);
}

pub async fn concurrent_appends_lose_nothing(b: Backend) {
    const WRITERS: usize = 16;
    const EACH: usize = 200;
    let c = new_conversation(&b, Some(&user())).await;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let b = Arc::clone(&b);
        let id = c.id.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                b.append_messages(&id, vec![text(Role::User, &format!("w{w} m{i}"))])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let head = b.head(&c.id).await.unwrap().unwrap();
    assert_eq!(head.record.message_count, (WRITERS * EACH) as u64);
    let mut all = Vec::new();
    let mut range = MessageRange::all();
    loop {
        let page = b.messages(&c.id, &range).await.unwrap();
        all.extend(page.items);
        match page.next_cursor {
            Some(cursor) => range = range.continue_from(&cursor).unwrap(),
            None => break,
        }
    }
    assert_eq!(
        all.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=(WRITERS * EACH) as u64).collect::<Vec<_>>()
    );
    let texts: HashSet<String> = all.iter().map(|m| m.content()).collect();
    assert_eq!(texts.len(), WRITERS * EACH, "no message lost or duplicated");
    // Each writer's messages are in its own order.
    for w in 0..WRITERS {
        let mine: Vec<String> = all
            .iter()
            .map(|m| m.content())
            .filter(|t| t.starts_with(&format!("w{w} ")))
            .collect();
        let expected: Vec<String> = (0..EACH).map(|i| format!("w{w} m{i}")).collect();
        assert_eq!(mine, expected);
    }
}

pub async fn concurrent_updates_one_winner(b: Backend) {
    let c = new_conversation(&b, None).await;
    let out = b
        .append_messages(&c.id, vec![text(Role::Assistant, "draft")])
        .await
        .unwrap();
    let mid = out.messages[0].id.clone();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let b = Arc::clone(&b);
        let (id, mid) = (c.id.clone(), mid.clone());
        tasks.push(tokio::spawn(async move {
            let update = MessageUpdate {
                parts: Some(vec![Part::text(format!("final {i}"))]),
                ..Default::default()
            };
            b.update_message(&id, &mid, 1, &update).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "{e}"),
        }
    }
    assert_eq!(wins, 1, "exactly one writer wins");
    let stored = b.messages(&c.id, &MessageRange::all()).await.unwrap();
    assert_eq!(stored.items[0].revision, 2);
}

pub async fn search_finds_own_messages_only(b: Backend) {
    assert!(b.capabilities().search);
    let (alice, bob) = (user(), user());
    let a1 = new_conversation(&b, Some(&alice)).await;
    let a2 = new_conversation(&b, Some(&alice)).await;
    let b1 = new_conversation(&b, Some(&bob)).await;
    b.append_messages(
        &a1.id,
        vec![
            text(Role::User, "How do I bake sourdough bread?"),
            text(Role::Assistant, "Feed the starter, then bake."),
        ],
    )
    .await
    .unwrap();
    b.append_messages(&a2.id, vec![text(Role::User, "Sourdough in Café Zürich")])
        .await
        .unwrap();
    b.append_messages(&b1.id, vec![text(Role::User, "sourdough is Bob's too")])
        .await
        .unwrap();
    let hits = b
        .search(&alice, "sourdough", &SearchOptions::new())
        .await
        .unwrap();
    let found: HashSet<_> = hits
        .items
        .iter()
        .map(|h| (h.conversation.id.clone(), h.message.seq))
        .collect();
    assert_eq!(
        found,
        HashSet::from([(a1.id.clone(), 1), (a2.id.clone(), 1)]),
        "alice's two messages, never bob's"
    );
    for hit in &hits.items {
        assert_eq!(hit.conversation.user_id.as_ref(), Some(&alice));
        assert!(hit.message.content().to_lowercase().contains("sourdough"));
        assert!(
            hit.snippet
                .as_deref()
                .unwrap_or("")
                .to_lowercase()
                .contains("sourdough")
        );
    }
    // Case-insensitive words, all of which must appear.
    let hits = b
        .search(&alice, "CAFÉ zürich", &SearchOptions::new())
        .await
        .unwrap();
    assert_eq!(hits.items.len(), 1);
    assert_eq!(hits.items[0].conversation.id, a2.id);
    assert!(
        b.search(&alice, "sourdough pizza", &SearchOptions::new())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // Archived conversations only when asked.
    b.update(
        &a2.id,
        &ConversationPatch {
            archived: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let hits = b
        .search(&alice, "sourdough", &SearchOptions::new())
        .await
        .unwrap();
    assert_eq!(hits.items.len(), 1);
    assert_eq!(hits.items[0].conversation.id, a1.id);
    let mut with_archived = SearchOptions::new();
    with_archived.include_archived = true;
    assert_eq!(
        b.search(&alice, "sourdough", &with_archived)
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    // Deleted conversations leave the index.
    b.delete(&a1.id).await.unwrap();
    assert!(
        b.search(&alice, "starter", &SearchOptions::new())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

pub async fn search_pages_and_follows_updates(b: Backend) {
    let u = user();
    let c = new_conversation(&b, Some(&u)).await;
    let batch = (0..25)
        .map(|i| text(Role::User, &format!("needle number {i}")))
        .collect();
    let out = b.append_messages(&c.id, batch).await.unwrap();
    let mut options = SearchOptions::new().limit(10).unwrap();
    let mut seen = Vec::new();
    loop {
        let page = b.search(&u, "needle", &options).await.unwrap();
        assert!(page.items.len() <= 10);
        seen.extend(page.items.iter().map(|h| h.message.seq));
        match page.next_cursor {
            Some(cursor) => options = options.cursor(&cursor).unwrap(),
            None => break,
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=25).collect::<Vec<_>>());
    // An updated message is found by its new text only.
    let first = &out.messages[0];
    let update = MessageUpdate {
        parts: Some(vec![Part::text("haystack instead")]),
        ..Default::default()
    };
    b.update_message(&c.id, &first.id, 1, &update)
        .await
        .unwrap();
    let hits = b
        .search(&u, "haystack", &SearchOptions::new())
        .await
        .unwrap();
    assert_eq!(hits.items.len(), 1);
    assert_eq!(hits.items[0].message.revision, 2);
    let needles = b
        .search(&u, "needle", &SearchOptions::new().limit(100).unwrap())
        .await
        .unwrap();
    assert_eq!(needles.items.len(), 24);
    // A bad cursor or limit is refused when the options are built.
    let bad = SearchOptions::new().cursor("x").unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidInput);
    let bad = SearchOptions::new().limit(0).unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidInput);
}

pub async fn search_query_syntax_is_harmless(b: Backend) {
    let u = user();
    let c = new_conversation(&b, Some(&u)).await;
    b.append_messages(&c.id, vec![text(Role::User, "a \"quoted\" OR NEAR word*")])
        .await
        .unwrap();
    for q in [
        "\"", "\"quoted", "OR", "NEAR(", "word*", "*", "-", "a:b", "(", "'", "\\", "!!!", "^",
        "NOT", "AND",
    ] {
        let r = b.search(&u, q, &SearchOptions::new()).await;
        assert!(r.is_ok(), "query {q:?}: {:?}", r.err());
    }
    let hits = b
        .search(&u, "\"quoted\"", &SearchOptions::new())
        .await
        .unwrap();
    assert_eq!(hits.items.len(), 1);
}

pub async fn vault_end_to_end(b: Backend) {
    let vault = ChatVault::from_arcs(Arc::clone(&b), Arc::new(MemoryFiles::new()));
    let u = user();
    let mut chat = vault.create_conversation(Some(&u)).await.unwrap();
    chat.add_message(Role::User, "What is a vault?")
        .await
        .unwrap();
    chat.add_message(Role::Assistant, "A place to keep things.")
        .await
        .unwrap();
    let page = vault
        .list_conversations(&u, &ListOptions::new())
        .await
        .unwrap();
    assert_eq!(page.items[0].title.as_deref(), Some("What is a vault?"));
    assert_eq!(page.items[0].message_count, 2);
    let hits = vault
        .search(&u, "place", &SearchOptions::new())
        .await
        .unwrap();
    assert_eq!(hits.items.len(), 1);
    let file_id = chat
        .attach_file("notes.txt", bytes::Bytes::from_static(b"abc"), "text/plain")
        .await
        .unwrap()
        .id;
    let again = vault.get_conversation(chat.id()).await.unwrap().unwrap();
    assert_eq!(again.id(), chat.id());
    assert_eq!(again.messages().await.unwrap().len(), 2);
    assert_eq!(
        again.file_content(&file_id).await.unwrap().as_deref(),
        Some(&b"abc"[..])
    );
    assert!(vault.delete_conversation(chat.id()).await.unwrap());
    assert!(vault.get_conversation(chat.id()).await.unwrap().is_none());
}

/// Appends and updates cancelled at every point (their futures dropped after a few
/// microseconds to milliseconds) leave a consistent store: the count matches the stored
/// messages, seqs stay contiguous, and the backend keeps working.
pub async fn cancelled_writes_leave_no_trace(b: Backend) {
    use std::time::Duration;
    let c = new_conversation(&b, None).await;
    let mut cancelled = 0;
    for i in 0..200u64 {
        let batch = vec![
            text(Role::User, &format!("a{i}")),
            text(Role::User, &format!("b{i}")),
        ];
        let deadline = Duration::from_micros(i * 37 % 3_000);
        match tokio::time::timeout(deadline, b.append_messages(&c.id, batch)).await {
            Ok(done) => {
                done.unwrap();
            }
            Err(_) => cancelled += 1,
        }
    }
    assert!(
        cancelled > 0,
        "no append was cancelled: the check proved nothing"
    );
    let done = b
        .append_messages(&c.id, vec![text(Role::User, "after")])
        .await
        .unwrap();
    let head = b.head(&c.id).await.unwrap().unwrap();
    assert_eq!(head.record, done.record);
    let mut all = Vec::new();
    let mut range = MessageRange::all();
    loop {
        let page = b.messages(&c.id, &range).await.unwrap();
        all.extend(page.items);
        match page.next_cursor {
            Some(cursor) => range = range.continue_from(&cursor).unwrap(),
            None => break,
        }
    }
    assert_eq!(all.len() as u64, head.record.message_count);
    assert_eq!(
        all.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=head.record.message_count).collect::<Vec<_>>()
    );
    // Each batch was stored whole or not at all.
    for m in all.iter().filter(|m| m.content().starts_with('x')) {
        let partner = format!("y{}", &m.content()[1..]);
        assert_eq!(all[m.seq as usize].content(), partner, "batch split");
    }
}

/// How many messages [`large_batch_appends_reads_and_searches`] appends in one call: not
/// a multiple of any statement size, so the last rows go in smaller statements.
pub const LARGE_BATCH: u64 = 5_003;

/// One append of [`LARGE_BATCH`] messages (after 3 already stored; the first a new branch
/// from message 1) is stored whole, in order, each after the one before it, with the
/// branch table, and reads back, searches and replays exactly.
pub async fn large_batch_appends_reads_and_searches(b: Backend) {
    let u = user();
    let c = new_conversation(&b, Some(&u)).await;
    let first = b
        .append_messages(&c.id, vec![text(Role::User, "before the batch")])
        .await
        .unwrap();
    let head = b
        .append_messages(
            &c.id,
            vec![
                text(Role::Assistant, "still before"),
                text(Role::User, "the last one before"),
            ],
        )
        .await
        .unwrap()
        .record;
    assert_eq!(first.messages[0].seq, 1);
    let mut batch: Vec<NewMessage> = (0..LARGE_BATCH)
        .map(|i| {
            let role = [Role::User, Role::Assistant, Role::Tool][i as usize % 3].clone();
            let m = text(
                role,
                &format!("batch message {i}: marker{i} common \"quoted\" it's Zürich"),
            );
            if i % 100 == 7 {
                let mut meta = Metadata::new();
                meta.insert("n".into(), serde_json::json!(u64::MAX - i));
                m.with_metadata(meta).with_usage(Usage::new("m", 2, 3))
            } else {
                m
            }
        })
        .collect();
    batch[0] = batch[0].clone().with_parent(chatvault_core::Parent::Seq(1));
    let out = b.append_messages(&c.id, batch.clone()).await.unwrap();
    let seqs_out: Vec<u64> = out.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs_out, (4..4 + LARGE_BATCH).collect::<Vec<_>>());
    for (i, m) in out.messages.iter().enumerate() {
        assert_eq!(m.id, batch[i].id);
        let parent = if i == 0 { 1 } else { m.seq - 1 };
        assert_eq!(m.parent, Some(parent), "each follows the one before");
    }
    assert!(out.record.tree.is_some(), "a branch from message 1");
    assert_eq!(out.record.message_count, 3 + LARGE_BATCH);
    assert_eq!(out.record.version, head.version + 1);
    let with_usage = (0..LARGE_BATCH).filter(|i| i % 100 == 7).count() as u64;
    assert_eq!(out.record.usage.input_tokens, 2 * with_usage);
    assert_eq!(out.record.active_leaf(), Some(3 + LARGE_BATCH));
    // The record as written (its tree column with it) is the one read.
    assert_eq!(b.head(&c.id).await.unwrap().unwrap().record, out.record);
    // Every message reads back exactly, in order.
    let mut range = MessageRange::after(3);
    let mut got = Vec::new();
    loop {
        let page = b.messages(&c.id, &range).await.unwrap();
        got.extend(page.items);
        match page.next_cursor {
            Some(cursor) => range = range.continue_from(&cursor).unwrap(),
            None => break,
        }
    }
    assert_eq!(got, out.messages);
    for (i, m) in [(0, 4), (4_242, 4_246), (LARGE_BATCH - 1, 3 + LARGE_BATCH)] {
        let hits = b
            .search(&u, &format!("marker{i}"), &SearchOptions::new())
            .await
            .unwrap();
        let found: Vec<u64> = hits.items.iter().map(|h| h.message.seq).collect();
        assert_eq!(found, [m], "marker{i}");
        assert_eq!(hits.items[0].message, out.messages[(m - 4) as usize]);
    }
    let all = b
        .search(
            &u,
            "common zürich",
            &SearchOptions::new().limit(50).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(all.items.len(), 50);
    assert!(all.next_cursor.is_some());
    // A retry stores nothing and answers with what is stored; a batch of which one
    // message (far from the first) is stored is refused.
    let replay = b.append_messages(&c.id, batch.clone()).await.unwrap();
    assert_eq!(replay.messages, out.messages);
    assert_eq!(replay.record, out.record);
    let mut mixed: Vec<NewMessage> = (0..300)
        .map(|i| text(Role::User, &format!("n{i}")))
        .collect();
    mixed.insert(250, batch[4_000].clone());
    let err = b.append_messages(&c.id, mixed).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    // Someone else's append is refused before anything is written.
    let err = b
        .append_messages_as(Some(&user()), &c.id, batch[..10].to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(b.head(&c.id).await.unwrap().unwrap().record, out.record);
    // Deleted, the batch leaves the index.
    b.delete(&c.id).await.unwrap();
    let hits = b.search(&u, "common", &SearchOptions::new()).await.unwrap();
    assert!(hits.items.is_empty());
}
