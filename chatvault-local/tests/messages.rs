//! `LocalMessages` beyond the conformance suite: durability across instances, the
//! append-only log, torn and unheadered records, the index, concurrency, deletes.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::backend::StoredConversation;
use chatvault_core::{
    ConversationPatch, ConversationRecord, Error, ListOptions, MessageRange, MessagesBackend,
    Metadata, NewMessage, Role,
};
use chatvault_local::{LocalMessages, MAX_PAGE};

fn cid(id: &str) -> chatvault_core::ConversationId {
    chatvault_core::ConversationId::parse(id).unwrap()
}

fn uid(id: &str) -> chatvault_core::UserId {
    chatvault_core::UserId::parse(id).unwrap()
}

fn msg(content: impl Into<String>) -> NewMessage {
    NewMessage::new(Role::User, content)
}

fn conv_dir(root: &Path, id: &str) -> PathBuf {
    root.join("conversations").join(id)
}

async fn new_conv(store: &LocalMessages, id: &str, user: Option<&str>) -> ConversationRecord {
    let mut record = ConversationRecord::new(user.map(uid));
    record.id = cid(id);
    store.create(&record).await.unwrap();
    record
}

async fn all_messages(store: &LocalMessages, id: &str) -> Vec<chatvault_core::Message> {
    let mut out = Vec::new();
    let mut range = MessageRange::all();
    loop {
        let page = store.messages(&cid(id), &range).await.unwrap();
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => range = range.continue_from(&c).unwrap(),
            None => return out,
        }
    }
}

fn seqs(messages: &[chatvault_core::Message]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_instance_reads_back_everything_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut metadata = Metadata::new();
    let json = r#"{"f":0.1,"tiny":1e-300,"max":18446744073709551615,"min":-9223372036854775808,"p53":9007199254740993,"nested":{"a":[1,2.5,"x"]}}"#;
    metadata = serde_json::from_str::<Metadata>(json).unwrap_or(metadata);
    let (record, messages, files) = {
        let store = LocalMessages::open(dir.path()).unwrap();
        let mut record = ConversationRecord::new(Some(uid("alice@example.com")));
        record.id = cid("conv-1");
        record.metadata = metadata.clone();
        store.create(&record).await.unwrap();
        let appended = store
            .append_messages(
                &cid("conv-1"),
                vec![
                    NewMessage::new(Role::System, "be brief"),
                    msg("What is 0.1 + 0.2?").with_metadata(metadata.clone()),
                    NewMessage::new(Role::Assistant, "0.30000000000000004"),
                    NewMessage::new(Role::from("critic"), "pedantic"),
                ],
            )
            .await
            .unwrap();
        assert_eq!(seqs(&appended.messages), vec![1, 2, 3, 4]);
        store
            .update(
                &cid("conv-1"),
                &ConversationPatch {
                    archived: Some(true),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let file = chatvault_core::FileAttachment::new(
            chatvault_core::FileId::parse("file-1").unwrap(),
            "résumé.pdf",
            chatvault_core::ContentType::parse("application/pdf").unwrap(),
            3,
            "00".repeat(32),
            chatvault_core::StorageKey::parse("k").unwrap(),
            chatvault_core::backend::now(),
        )
        .with_metadata(metadata.clone());
        store.add_file(&cid("conv-1"), &file).await.unwrap();
        let whole = store.get(&cid("conv-1")).await.unwrap().unwrap();
        (whole.record, whole.messages, whole.files)
    };
    assert!(record.archived);
    assert_eq!(record.title.as_deref(), Some("What is 0.1 + 0.2?"));

    let store = LocalMessages::open(dir.path()).unwrap();
    let back = store.get(&cid("conv-1")).await.unwrap().unwrap();
    assert_eq!(
        back.record, record,
        "record (last_active, archived, metadata) exact"
    );
    assert_eq!(back.messages, messages);
    assert_eq!(back.files, files);
    assert_eq!(back.record.metadata["max"].as_u64(), Some(u64::MAX));
    assert_eq!(back.record.metadata["min"].as_i64(), Some(i64::MIN));
    assert_eq!(back.record.metadata["f"].as_f64(), Some(0.1));
    assert_eq!(back.record.metadata["tiny"].as_f64(), Some(1e-300));
    assert_eq!(back.messages[1].metadata, metadata);
    assert_eq!(back.messages[3].role, Role::Other("critic".into()));
    assert_eq!(
        store
            .head(&cid("conv-1"))
            .await
            .map(|h| h.map(|h| h.record))
            .unwrap()
            .unwrap(),
        record
    );
    // Archived: listed only when asked for.
    let listed = store
        .list_conversations(Some(&uid("alice@example.com")), &ListOptions::new())
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    let listed = store
        .list_conversations(
            Some(&uid("alice@example.com")),
            &ListOptions::new().include_archived(true),
        )
        .await
        .unwrap();
    assert_eq!(listed.items, vec![record.summary()]);
}

/// Splits a log into its frames' byte lengths.
fn frame_lengths(log: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < log.len() {
        assert_eq!(&log[pos..pos + 4], b"CVL1", "frame magic at {pos}");
        let len = u32::from_le_bytes(log[pos + 4..pos + 8].try_into().unwrap()) as usize;
        out.push(12 + len);
        pos += 12 + len;
    }
    assert_eq!(pos, log.len());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_adds_one_record_and_never_rewrites_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "c", None).await;
    let batch: Vec<_> = (0..500).map(|i| msg(format!("m{i}"))).collect();
    store.append_messages(&cid("c"), batch).await.unwrap();
    let log_path = conv_dir(dir.path(), "c").join("log-1");
    let index_path = conv_dir(dir.path(), "c").join("index-1");
    for round in 0..5 {
        let before = fs::read(&log_path).unwrap();
        let index_before = fs::read(&index_path).unwrap();
        let frames_before = frame_lengths(&before);
        let n = round + 1;
        let appended = store
            .append_messages(
                &cid("c"),
                (0..n).map(|i| msg(format!("r{round}-{i}"))).collect(),
            )
            .await
            .unwrap();
        assert_eq!(appended.messages.len(), n);
        let after = fs::read(&log_path).unwrap();
        let index_after = fs::read(&index_path).unwrap();
        assert_eq!(
            &after[..before.len()],
            &before[..],
            "earlier log bytes changed"
        );
        let frames_after = frame_lengths(&after);
        assert_eq!(
            frames_after.len(),
            frames_before.len() + 1,
            "one record per append"
        );
        assert_eq!(after.len() - before.len(), *frames_after.last().unwrap());
        assert_eq!(&index_after[..index_before.len()], &index_before[..]);
        assert_eq!(index_after.len(), index_before.len() + 16 * n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_and_garbage_tails_are_ignored_then_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "c", Some("u")).await;
    store
        .append_messages(&cid("c"), (1..=5).map(|i| msg(format!("m{i}"))).collect())
        .await
        .unwrap();
    let record = store
        .head(&cid("c"))
        .await
        .map(|h| h.map(|h| h.record))
        .unwrap()
        .unwrap();
    let log_path = conv_dir(dir.path(), "c").join("log-1");
    let good = fs::read(&log_path).unwrap();

    // A real record, cut short (what a kill in the middle of write() leaves), and zeros
    // (what a power cut can leave past the end of the file's data).
    let other = tempfile::tempdir().unwrap();
    let scratch = LocalMessages::open(other.path()).unwrap();
    new_conv(&scratch, "c", None).await;
    scratch
        .append_messages(&cid("c"), vec![msg("never stored"), msg("never stored 2")])
        .await
        .unwrap();
    let scratch_log = fs::read(conv_dir(other.path(), "c").join("log-1")).unwrap();
    let last_len = *frame_lengths(&scratch_log).last().unwrap();
    let frame = scratch_log[scratch_log.len() - last_len..].to_vec();
    let tails: Vec<Vec<u8>> = vec![
        frame[..frame.len() / 2].to_vec(),
        frame[..7].to_vec(),
        frame[..2].to_vec(),
        vec![0u8; 100],
    ];
    for (i, tail) in tails.iter().enumerate() {
        let mut damaged = good.clone();
        damaged.extend_from_slice(tail);
        fs::write(&log_path, &damaged).unwrap();
        for reader in [store.clone(), LocalMessages::open(dir.path()).unwrap()] {
            let messages = all_messages(&reader, "c").await;
            assert_eq!(seqs(&messages), vec![1, 2, 3, 4, 5], "tail {i}");
            assert!(messages.iter().all(|m| !m.content().contains("never")));
            assert_eq!(
                reader
                    .head(&cid("c"))
                    .await
                    .map(|h| h.map(|h| h.record))
                    .unwrap()
                    .unwrap(),
                record
            );
            let whole = reader.get(&cid("c")).await.unwrap().unwrap();
            assert_eq!(whole.messages, messages);
            let last = reader
                .messages(&cid("c"), &MessageRange::last(2))
                .await
                .unwrap();
            assert_eq!(seqs(&last.items), vec![4, 5]);
            let listed = reader
                .list_conversations(Some(&uid("u")), &ListOptions::new())
                .await
                .unwrap();
            assert_eq!(listed.items[0].message_count, 5);
        }
        // Reading repairs nothing (readers do not write)...
        assert_eq!(fs::read(&log_path).unwrap(), damaged);
    }
    // Bytes no interrupted write leaves (a complete record failing its checksum, garbage)
    // are damage: reported, and never cut off by a later append.
    let mut bad_crc = frame.clone();
    let last = bad_crc.len() - 3;
    bad_crc[last] ^= 0xff;
    for tail in [bad_crc, b"\0\0\0\0garbage".to_vec()] {
        let mut damaged = good.clone();
        damaged.extend_from_slice(&tail);
        fs::write(&log_path, &damaged).unwrap();
        let err = store
            .messages(&cid("c"), &MessageRange::all())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), chatvault_core::ErrorKind::Corrupt, "{err}");
        assert!(
            store
                .append_messages(&cid("c"), vec![msg("x")])
                .await
                .is_err()
        );
        assert_eq!(fs::read(&log_path).unwrap(), damaged, "nothing cut off");
    }
    fs::write(&log_path, [&good[..], &frame[..frame.len() / 2]].concat()).unwrap();
    // ... the next append cuts the torn tail off and lands right after the good records.
    let appended = store
        .append_messages(&cid("c"), vec![msg("m6")])
        .await
        .unwrap();
    assert_eq!(appended.messages[0].seq, 6);
    let after = fs::read(&log_path).unwrap();
    assert_eq!(&after[..good.len()], &good[..]);
    assert_eq!(frame_lengths(&after).len(), frame_lengths(&good).len() + 1);
    let messages = all_messages(&store, "c").await;
    assert_eq!(seqs(&messages), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(messages[5].content(), "m6");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_past_the_header_are_rolled_forward() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "c", Some("u")).await;
    store
        .append_messages(&cid("c"), vec![NewMessage::new(Role::System, "sys")])
        .await
        .unwrap();
    let header_path = conv_dir(dir.path(), "c").join("header.json");
    let old_header = fs::read(&header_path).unwrap();
    let appended = store
        .append_messages(
            &cid("c"),
            vec![
                msg("the title comes from this first user message, which is long"),
                NewMessage::new(Role::Assistant, "ok"),
            ],
        )
        .await
        .unwrap();
    let second = store
        .append_messages(&cid("c"), vec![msg("third")])
        .await
        .unwrap();
    // A crash between the log write and the header write: the header is two appends behind.
    fs::write(&header_path, &old_header).unwrap();

    let reopened = LocalMessages::open(dir.path()).unwrap();
    let record = reopened
        .head(&cid("c"))
        .await
        .map(|h| h.map(|h| h.record))
        .unwrap()
        .unwrap();
    assert_eq!(record, second.record, "rolled forward exactly as applied");
    assert_eq!(record.message_count, 4);
    assert_eq!(
        record.title.as_deref(),
        appended.record.title.as_deref(),
        "auto-title from the rolled-forward record"
    );
    let listed = reopened
        .list_conversations(Some(&uid("u")), &ListOptions::new())
        .await
        .unwrap();
    assert_eq!(listed.items, vec![second.record.summary()]);
    assert_eq!(seqs(&all_messages(&reopened, "c").await), vec![1, 2, 3, 4]);
    let tail = reopened
        .messages(&cid("c"), &MessageRange::last(3))
        .await
        .unwrap();
    assert_eq!(seqs(&tail.items), vec![2, 3, 4]);
    assert_eq!(tail.items[2].content(), "third");

    // A metadata update writes the rolled-forward header; nothing is applied twice.
    let updated = reopened
        .update(
            &cid("c"),
            &ConversationPatch {
                title: Some("renamed".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.message_count, 4);
    assert_eq!(updated.version, second.record.version + 1);
    let next = reopened
        .append_messages(&cid("c"), vec![msg("fifth")])
        .await
        .unwrap();
    assert_eq!(next.messages[0].seq, 5);
    assert_eq!(seqs(&all_messages(&store, "c").await), vec![1, 2, 3, 4, 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_read_only_their_part_of_a_long_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "long", None).await;
    for batch in 0..20 {
        let messages = (0..1000).map(|i| msg(format!("b{batch}-{i}"))).collect();
        store.append_messages(&cid("long"), messages).await.unwrap();
    }
    let last = store
        .messages(&cid("long"), &MessageRange::last(5))
        .await
        .unwrap();
    assert_eq!(seqs(&last.items), (19_996..=20_000).collect::<Vec<_>>());
    assert_eq!(last.next_cursor.as_deref(), Some("19996"));
    let page = store
        .messages(&cid("long"), &MessageRange::after(12_345).limit(10))
        .await
        .unwrap();
    assert_eq!(seqs(&page.items), (12_346..=12_355).collect::<Vec<_>>());
    assert_eq!(page.items[0].content(), "b12-345");
    // Pages are capped; the cursor continues.
    let capped = store
        .messages(&cid("long"), &MessageRange::all())
        .await
        .unwrap();
    assert_eq!(capped.items.len(), MAX_PAGE);
    assert_eq!(capped.next_cursor.as_deref(), Some("1000"));
    let capped = store
        .messages(&cid("long"), &MessageRange::last(5000))
        .await
        .unwrap();
    assert_eq!(capped.items.len(), MAX_PAGE);
    assert_eq!(capped.items[0].seq, 19_001);
    assert_eq!(capped.next_cursor.as_deref(), Some("19001"));

    // Damage the first records of the log: a window at the end never reads them (no
    // scan of the whole log), while a whole-conversation read reports the damage.
    let log_path = conv_dir(dir.path(), "long").join("log-1");
    let mut log = fs::read(&log_path).unwrap();
    for b in &mut log[100..50_000] {
        *b = b'#';
    }
    fs::write(&log_path, &log).unwrap();
    let last = store
        .messages(&cid("long"), &MessageRange::last(5))
        .await
        .unwrap();
    assert_eq!(last.items[4].content(), "b19-999");
    let page = store
        .messages(&cid("long"), &MessageRange::after(15_000).limit(3))
        .await
        .unwrap();
    assert_eq!(seqs(&page.items), vec![15_001, 15_002, 15_003]);
    let err = store.get(&cid("long")).await.unwrap_err();
    assert_eq!(err.kind(), chatvault_core::ErrorKind::Corrupt, "{err}");
    // Appends still work: they never read old records.
    let next = store
        .append_messages(&cid("long"), vec![msg("after")])
        .await
        .unwrap();
    assert_eq!(next.messages[0].seq, 20_001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_index_falls_back_to_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "c", None).await;
    for i in 0..10 {
        store
            .append_messages(&cid("c"), vec![msg(format!("m{i}")), msg(format!("n{i}"))])
            .await
            .unwrap();
    }
    let expected = all_messages(&store, "c").await;
    let index_path = conv_dir(dir.path(), "c").join("index-1");
    let len = fs::metadata(&index_path).unwrap().len() as usize;
    fs::write(&index_path, vec![0u8; len]).unwrap();
    assert_eq!(all_messages(&store, "c").await, expected);
    let tail = store
        .messages(&cid("c"), &MessageRange::last(3))
        .await
        .unwrap();
    assert_eq!(tail.items, expected[17..]);
    fs::write(&index_path, b"short").unwrap();
    assert_eq!(all_messages(&store, "c").await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_tasks_appending_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "busy", None).await;
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for i in 0..200 {
                let appended = store
                    .append_messages(&cid("busy"), vec![msg(format!("{t}-{i}"))])
                    .await
                    .unwrap();
                seen.push(appended.messages[0].seq);
            }
            seen
        }));
    }
    let mut reported = Vec::new();
    for task in tasks {
        let seen = task.await.unwrap();
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "one task's seqs increase"
        );
        reported.extend(seen);
    }
    reported.sort_unstable();
    assert_eq!(reported, (1..=3200).collect::<Vec<_>>());
    let messages = all_messages(&store, "busy").await;
    assert_eq!(seqs(&messages), (1..=3200).collect::<Vec<_>>());
    let contents: HashSet<_> = messages.iter().map(|m| m.content().clone()).collect();
    assert_eq!(contents.len(), 3200, "each message once");
    let record = store
        .head(&cid("busy"))
        .await
        .map(|h| h.map(|h| h.record))
        .unwrap()
        .unwrap();
    assert_eq!(record.message_count, 3200);
    assert_eq!(record.version, 1 + 3200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creators_of_one_id_get_one_success() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    for round in 0..5 {
        let id = format!("race-{round}");
        let tasks: Vec<_> = (0..8)
            .map(|u| {
                let (store, id) = (store.clone(), id.clone());
                tokio::spawn(async move {
                    let mut record = ConversationRecord::new(Some(uid(&format!("user-{u}"))));
                    record.id = cid(&id);
                    store.create(&record).await
                })
            })
            .collect();
        let mut ok = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => ok += 1,
                Err(Error::AlreadyExists { .. }) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(ok, 1, "exactly one creator wins");
        let owner = store
            .head(&cid(&id))
            .await
            .unwrap()
            .unwrap()
            .record
            .user_id
            .unwrap()
            .to_string();
        // Only the winner's user lists it.
        for u in 0..8 {
            let user = format!("user-{u}");
            let listed = store
                .list_conversations(Some(&uid(&user)), &ListOptions::new())
                .await
                .unwrap();
            let has = listed.items.iter().any(|s| s.id.as_str() == id);
            assert_eq!(has, user == owner, "{user}");
        }
    }
    assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_is_never_undone_by_a_concurrent_appender() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    for round in 0..10 {
        let id = format!("doomed-{round}");
        new_conv(&store, &id, Some("u")).await;
        let appenders: Vec<_> = (0..4)
            .map(|t| {
                let (store, id) = (store.clone(), id.clone());
                tokio::spawn(async move {
                    let mut ok = 0;
                    loop {
                        match store
                            .append_messages(&cid(&id), vec![msg(format!("{t}"))])
                            .await
                        {
                            Ok(_) => ok += 1,
                            Err(e) if e.is_not_found() => return ok,
                            Err(e) => panic!("unexpected {e}"),
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(5 * round)).await;
        assert!(store.delete(&cid(&id)).await.unwrap());
        for a in appenders {
            a.await.unwrap();
        }
        assert!(store.get(&cid(&id)).await.unwrap().is_none());
        assert!(store.head(&cid(&id)).await.unwrap().is_none());
        assert!(!conv_dir(dir.path(), &id).exists(), "resurrected");
        assert!(!store.delete(&cid(&id)).await.unwrap());
        // The id can be used again, from scratch.
        new_conv(&store, &id, Some("u")).await;
        let again = store
            .append_messages(&cid(&id), vec![msg("new")])
            .await
            .unwrap();
        assert_eq!(again.messages[0].seq, 1);
        assert!(store.delete(&cid(&id)).await.unwrap());
    }
    assert_eq!(fs::read_dir(dir.path().join("trash")).unwrap().count(), 0);
    let listed = store
        .list_conversations(Some(&uid("u")), &ListOptions::new())
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    assert!(
        !dir.path().join("users").join("u").exists(),
        "the user index entry of deleted conversations is removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_replaces_the_whole_conversation_and_moves_the_user_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    let record = new_conv(&store, "c", Some("old-owner")).await;
    store
        .append_messages(&cid("c"), (0..30).map(|i| msg(format!("m{i}"))).collect())
        .await
        .unwrap();
    let mut whole = store.get(&cid("c")).await.unwrap().unwrap();
    whole.messages.truncate(10);
    whole.record.message_count = 10;
    whole.record.user_id = Some(uid("new-owner"));
    store.save(&whole).await.unwrap();
    let back = store.get(&cid("c")).await.unwrap().unwrap();
    assert_eq!(back, whole);
    let dir_entries: Vec<_> = fs::read_dir(conv_dir(dir.path(), "c"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(dir_entries.contains(&"log-2".to_owned()), "{dir_entries:?}");
    assert!(
        !dir_entries.contains(&"log-1".to_owned()),
        "old generation removed"
    );
    for (user, n) in [("old-owner", 0), ("new-owner", 1)] {
        let listed = store
            .list_conversations(Some(&uid(user)), &ListOptions::new())
            .await
            .unwrap();
        assert_eq!(listed.items.len(), n, "{user}");
        assert_eq!(store.get_by_user(&uid(user)).await.unwrap().len(), n);
    }
    let next = store
        .append_messages(&cid("c"), vec![msg("next")])
        .await
        .unwrap();
    assert_eq!(next.messages[0].seq, 11);
    let range = store
        .messages(&cid("c"), &MessageRange::after(8))
        .await
        .unwrap();
    assert_eq!(seqs(&range.items), vec![9, 10, 11]);
    // Saving a conversation that does not exist creates it, messages and all.
    let mut fresh = StoredConversation::new(ConversationRecord::new(None));
    fresh.record.id = cid("saved-new");
    fresh.messages = whole.messages.clone();
    // A record that does not count its messages would not read back: refused.
    let refused = store.save(&fresh).await;
    assert!(
        matches!(refused, Err(Error::InvalidInput { .. })),
        "{refused:?}"
    );
    assert!(store.get(&cid("saved-new")).await.unwrap().is_none());
    fresh.record.message_count = fresh.messages.len() as u64;
    store.save(&fresh).await.unwrap();
    assert_eq!(store.get(&cid("saved-new")).await.unwrap().unwrap(), fresh);
    let _ = record;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_with_every_allowed_character_touches_only_its_own_files() {
    // Typed ids make ids that could name other paths unrepresentable (the core refuses
    // them when parsed); what remains is that an allowed id stays in its directory.
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    let before = walk(dir.path());
    new_conv(&store, "ok:id@host.example_1-2", None).await;
    assert!(chatvault_core::MessageId::parse("../../etc").is_err());
    store
        .append_messages(&cid("ok:id@host.example_1-2"), vec![msg("x")])
        .await
        .unwrap();
    // Only the valid conversation's files and the listing index were created.
    let after = walk(dir.path());
    let conversation = dir.path().join("conversations/ok%3Aid%40host.example_1-2");
    let index = dir.path().join("index");
    let new: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
    assert!(
        new.iter()
            .all(|p| p.starts_with(&conversation) || p.starts_with(&index)),
        "{new:#?}"
    );
    let conversations = fs::read_dir(dir.path().join("conversations"))
        .unwrap()
        .count();
    assert_eq!(conversations, 1);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_append_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    let record = new_conv(&store, "c", None).await;
    let appended = store.append_messages(&cid("c"), Vec::new()).await.unwrap();
    assert!(appended.messages.is_empty());
    assert_eq!(appended.record, record);
    let missing = store
        .append_messages(&cid("nope"), Vec::new())
        .await
        .unwrap_err();
    assert!(missing.is_not_found());
}

#[test]
fn a_newer_store_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(LocalMessages::open(dir.path()).unwrap());
    fs::write(dir.path().join("FORMAT"), br#"{"format":99,"layout":"x"}"#).unwrap();
    let err = LocalMessages::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("newer"), "{err}");
}

/// Conversation `id` with 18 messages in 13 records, 14 MB of log: records of 700 KB
/// that windows of 4 MiB cut, and one of 5.4 MB, larger than a window. Returns what was
/// sent.
async fn long_log(store: &LocalMessages, id: &str) -> Vec<NewMessage> {
    new_conv(store, id, None).await;
    let text = |k: usize| format!("{k:04} {}", "x".repeat(700 * 1024));
    let mut sent = Vec::new();
    for k in 0..8 {
        let m = msg(text(k));
        store
            .append_messages(&cid(id), vec![m.clone()])
            .await
            .unwrap();
        sent.push(m);
    }
    // One record of 5.4 MB: larger than a window.
    let big: Vec<NewMessage> = (8..14)
        .map(|k| msg(format!("{k:04} {}", "y".repeat(900 * 1024))))
        .collect();
    store.append_messages(&cid(id), big.clone()).await.unwrap();
    sent.extend(big);
    for k in 14..18 {
        let m = msg(text(k));
        store
            .append_messages(&cid(id), vec![m.clone()])
            .await
            .unwrap();
        sent.push(m);
    }
    sent
}

/// Conversation `id`'s log file (its only generation).
fn log_file(root: &Path, id: &str) -> PathBuf {
    fs::read_dir(conv_dir(root, id))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("log-"))
        .unwrap()
}

/// A process's first append to a conversation builds its map of message ids from the log
/// a window at a time: a log several windows long, with a record larger than a window,
/// still answers retries of any of its messages (in a process that never wrote them)
/// with the stored messages, and stores no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_recognised_in_a_new_process_whatever_the_log_length() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    let sent = long_log(&store, "long").await;
    let log_len = fs::metadata(log_file(dir.path(), "long")).unwrap().len();
    assert!(
        log_len > 12 << 20,
        "the log spans several 4 MiB windows ({log_len} bytes)"
    );

    for (pick, message) in sent.iter().enumerate() {
        // A new store value: nothing of the id map written above is known to it.
        let fresh = LocalMessages::open(dir.path()).unwrap();
        let again = fresh
            .append_messages(&cid("long"), vec![message.clone()])
            .await
            .unwrap();
        assert_eq!(again.messages.len(), 1);
        assert_eq!(again.messages[0].id, message.id, "message {pick}");
        assert_eq!(
            again.messages[0].seq,
            pick as u64 + 1,
            "message {pick}'s seq"
        );
        assert_eq!(again.record.message_count, 18, "no duplicate stored");
    }
    let fresh = LocalMessages::open(dir.path()).unwrap();
    let next = fresh
        .append_messages(&cid("long"), vec![msg("new")])
        .await
        .unwrap();
    assert_eq!(next.messages[0].seq, 19);
}

/// A log replayed whole (its checkpoint and index gone) is read a window at a time: every
/// message of a 14 MB log comes back, records cut by a window's end and one larger than
/// a window included; damage in a later window is reported, never cut off; a torn
/// record at the end is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_log_is_replayed_a_window_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    let sent = long_log(&store, "long").await;
    let want = all_messages(&store, "long").await;
    assert_eq!(want.len(), sent.len());
    let cdir = conv_dir(dir.path(), "long");
    let derived = || {
        for entry in fs::read_dir(&cdir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name == "header.json" || name.starts_with("index-") {
                fs::remove_file(cdir.join(name)).unwrap();
            }
        }
    };
    derived();
    let fresh = LocalMessages::open(dir.path()).unwrap();
    assert_eq!(all_messages(&fresh, "long").await, want, "replayed whole");

    // A torn record at the end: the first half of a copy of the log's first record.
    let log = log_file(dir.path(), "long");
    let bytes = fs::read(&log).unwrap();
    let first = 12 + u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    let mut torn = bytes.clone();
    torn.extend_from_slice(&bytes[..first / 2]);
    fs::write(&log, &torn).unwrap();
    derived();
    let fresh = LocalMessages::open(dir.path()).unwrap();
    assert_eq!(
        all_messages(&fresh, "long").await,
        want,
        "torn tail ignored"
    );

    // A flipped byte in the middle of the log (in the third window): damage, reported.
    let mut damaged = bytes.clone();
    let middle = 9 << 20;
    damaged[middle] ^= 0x5a;
    fs::write(&log, &damaged).unwrap();
    derived();
    let fresh = LocalMessages::open(dir.path()).unwrap();
    let err = fresh.get(&cid("long")).await.unwrap_err();
    assert_eq!(err.kind(), chatvault_core::ErrorKind::Corrupt, "{err}");
    assert_eq!(fs::read(&log).unwrap(), damaged, "nothing cut off");
}
