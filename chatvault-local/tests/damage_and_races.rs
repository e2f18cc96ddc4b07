//! Damaged `LocalMessages` stores and racing writers: a damaged index, checkpoint or log
//! is detected and bypassed or reported (never a panic), and racing conversation
//! operations end in a state every later call can use.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ConversationRecord, ListOptions, MessageRange, MessagesBackend, NewMessage, Role,
};
use chatvault_local::LocalMessages;

fn cid(id: &str) -> chatvault_core::ConversationId {
    chatvault_core::ConversationId::parse(id).unwrap()
}

fn uid(id: &str) -> chatvault_core::UserId {
    chatvault_core::UserId::parse(id).unwrap()
}

fn conv_dir(root: &Path, id: &str) -> PathBuf {
    root.join("conversations").join(id)
}

async fn new_conv(store: &LocalMessages, id: &str, user: Option<&str>) {
    let mut record = ConversationRecord::new(user.map(uid));
    record.id = cid(id);
    store.create(&record).await.unwrap();
}

async fn filled(n: usize) -> (tempfile::TempDir, LocalMessages) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "c", None).await;
    for i in 0..n {
        store
            .append_messages(
                &cid("c"),
                vec![NewMessage::new(Role::User, format!("m{i}"))],
            )
            .await
            .unwrap();
    }
    (dir, store)
}

/// 1. An index overwritten with 0xFF bytes (damage) must be bypassed, like zeros are.
/// Debug: panics "attempt to add with overflow" in IndexEntry::end; release: I/O error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_of_ff_bytes_is_bypassed_for_the_log() {
    let (dir, store) = filled(3).await;
    let index = conv_dir(dir.path(), "c").join("index-1");
    fs::write(&index, vec![0xFFu8; 48]).unwrap();
    let page = store.messages(&cid("c"), &MessageRange::last(1)).await;
    assert_eq!(page.unwrap().items[0].content(), "m2");
}

/// 2. A checkpoint whose message count was changed (its CRC fixed up to match) is not
/// believed: the log says how many messages there are, and seqs continue from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_with_a_changed_count_is_not_believed() {
    let (dir, store) = filled(3).await;
    edit_checkpoint(dir.path(), "c", |h| {
        h["record"]["message_count"] = 2305843009213693952_u64.into()
    });
    let page = store
        .messages(&cid("c"), &MessageRange::last(1))
        .await
        .unwrap();
    assert_eq!(page.items[0].content(), "m2");
    assert_eq!(page.items[0].seq, 3);
    let appended = store
        .append_messages(&cid("c"), vec![NewMessage::new(Role::User, "m3")])
        .await
        .unwrap();
    assert_eq!(appended.messages[0].seq, 4);
    let all = store.get(&cid("c")).await.unwrap().unwrap();
    let seqs: Vec<u64> = all.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
}

/// 3. A missing index is damage too: reads and appends should fall back to / rebuild from the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_index_is_bypassed_for_the_log() {
    let (dir, store) = filled(3).await;
    fs::remove_file(conv_dir(dir.path(), "c").join("index-1")).unwrap();
    let page = store.messages(&cid("c"), &MessageRange::all()).await;
    assert_eq!(page.unwrap().items.len(), 3);
}

/// 4. A stray file in conversations/ (e.g. macOS .DS_Store) breaks every listing of all users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_file_in_conversations_does_not_break_listing() {
    let (dir, store) = filled(1).await;
    fs::write(dir.path().join("conversations").join(".DS_Store"), b"x").unwrap();
    let page = store.list_conversations(None, &ListOptions::new()).await;
    assert_eq!(page.unwrap().items.len(), 1);
}

/// 5. Crash between place()'s meta rename and data rename (or between delete()'s data
/// removal and meta removal) leaves meta/a without data/a: "invisible", says the doc,
/// but key a/b can then never be stored.
/// 5b. The converse: orphan meta/a/b (no data/a/b) blocks key a forever.
/// 6. Roll-forward re-derives the title from the deserialized role, which is normalized;
/// the appender used the in-memory role. Role::Other("User") is constructible (pub variant).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_forward_append_matches_what_the_appender_returned() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "c", None).await;
    let header = conv_dir(dir.path(), "c").join("header.json");
    let old = fs::read(&header).unwrap();
    let appended = store
        .append_messages(
            &cid("c"),
            vec![NewMessage::new(Role::Other("User".into()), "hello")],
        )
        .await
        .unwrap();
    fs::write(&header, old).unwrap(); // crash before the header write
    let rolled = store
        .head(&cid("c"))
        .await
        .map(|h| h.map(|h| h.record))
        .unwrap()
        .unwrap();
    assert_eq!(rolled, appended.record);
}

/// 7. Windows at boundaries agree with MemoryMessages (following cursors).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_windows_and_cursors_match_memory_at_page_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalMessages::open(dir.path()).unwrap();
    let mem = chatvault_memory::MemoryMessages::new();
    for (i, n) in [0usize, 1, 2, 1000, 1001, 2500].into_iter().enumerate() {
        let id = format!("c{i}");
        let mut record = ConversationRecord::new(None);
        record.id = cid(&id);
        local.create(&record).await.unwrap();
        mem.create(&record).await.unwrap();
        let mut left = n;
        while left > 0 {
            let k = left.min(700);
            let batch: Vec<_> = (0..k)
                .map(|j| NewMessage::new(Role::User, format!("{left}-{j}")))
                .collect();
            local
                .append_messages(&cid(&id), batch.clone())
                .await
                .unwrap();
            mem.append_messages(&cid(&id), batch).await.unwrap();
            left -= k;
        }
        let n = n as u64;
        let mut ranges = vec![
            MessageRange::all(),
            MessageRange::last(0),
            MessageRange::last(1),
        ];
        for s in [
            0,
            1,
            n.saturating_sub(1),
            n,
            n + 1,
            999,
            1000,
            1001,
            u64::MAX,
        ] {
            ranges.push(MessageRange::after(s));
            ranges.push(MessageRange::before(s));
            for l in [0usize, 1, 999, 1000, 1001, usize::MAX] {
                ranges.push(MessageRange::after(s).limit(l));
                ranges.push(MessageRange::before(s).limit(l));
                ranges.push(MessageRange::last(l));
            }
        }
        for r in ranges {
            let lp = local.messages(&cid(&id), &r).await.unwrap();
            let mp = mem.messages(&cid(&id), &r).await.unwrap();
            let ls: Vec<u64> = lp.items.iter().map(|m| m.seq).collect();
            let ms: Vec<u64> = mp.items.iter().map(|m| m.seq).collect();
            if ms.len() <= 1000 {
                assert!(
                    (&ls, &lp.next_cursor) == (&ms, &mp.next_cursor),
                    "{r:?} n={n}: local {} {:?} mem {} {:?}",
                    ls.len(),
                    lp.next_cursor,
                    ms.len(),
                    mp.next_cursor
                );
            } else {
                assert_eq!(ls.len(), 1000, "{r:?} n={n}");
                assert!(lp.next_cursor.is_some(), "{r:?} n={n}");
                let want: Vec<u64> = match r {
                    MessageRange::After { .. } => ms[..1000].to_vec(),
                    MessageRange::Before { .. } => ms[ms.len() - 1000..].to_vec(),
                };
                assert!(
                    ls == want,
                    "{r:?} n={n}: first page {:?}..{:?}",
                    ls.first(),
                    ls.last()
                );
                // Following the cursors gives exactly the memory result.
                let all = collect(&local, &id, r.clone()).await;
                let mut flat: Vec<u64> = all.into_iter().flatten().collect();
                flat.sort();
                flat.dedup();
                let ok = match r {
                    MessageRange::After { .. } => flat.starts_with(&ms),
                    MessageRange::Before { .. } => flat.ends_with(&ms),
                };
                assert!(ok, "{r:?} n={n}: cursors gave {} messages", flat.len());
            }
        }
    }
}

async fn collect(b: &dyn MessagesBackend, id: &str, r: MessageRange) -> Vec<Vec<u64>> {
    let mut all = Vec::new();
    let p = b.messages(&cid(id), &r).await.unwrap();
    all.push(p.items.iter().map(|m| m.seq).collect::<Vec<_>>());
    let mut cur = p.next_cursor;
    let mut guard = 0;
    while let Some(c) = cur {
        guard += 1;
        assert!(guard < 10, "{r:?}");
        let p = b
            .messages(&cid(id), &r.continue_from(&c).unwrap())
            .await
            .unwrap();
        all.push(p.items.iter().map(|m| m.seq).collect());
        cur = p.next_cursor;
    }
    all
}

/// 5c. Racing uploads of `k` and `k/b`: the loser's content type is left behind and
/// wedges the key space (same root cause as 5/5b: meta placed before data, never undone).
/// Stress (hunting): every operation racing on 3 ids; only NotFound/AlreadyExists allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_operation_racing_on_three_ids_fails_only_with_not_found_or_already_exists() {
    use chatvault_core::backend::StoredConversation;
    use chatvault_core::{ConversationPatch, Error};
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut x = t * 7919 + 1;
            for _ in 0..300 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let id = format!("c{}", x % 3);
                let user = format!("u{}", (x >> 8) % 2);
                let r: chatvault_core::Result<()> = match (x >> 16) % 8 {
                    0 => {
                        let mut rec = ConversationRecord::new(Some(uid(&user)));
                        rec.id = cid(&id);
                        s.create(&rec).await
                    }
                    1 => s.delete(&cid(&id)).await.map(|_| ()),
                    2 | 3 => s
                        .append_messages(&cid(&id), vec![NewMessage::new(Role::User, "x")])
                        .await
                        .map(|_| ()),
                    4 => s
                        .update(
                            &cid(&id),
                            &ConversationPatch {
                                title: Some(format!("t{x}")),
                                ..Default::default()
                            },
                        )
                        .await
                        .map(|_| ()),
                    5 => {
                        let mut rec = ConversationRecord::new(Some(uid(&user)));
                        rec.id = cid(&id);
                        s.save(&StoredConversation::new(rec)).await
                    }
                    6 => s
                        .list_conversations(Some(&uid(&user)), &ListOptions::new())
                        .await
                        .map(|_| ()),
                    _ => s
                        .list_conversations(None, &ListOptions::new())
                        .await
                        .map(|_| ()),
                };
                match r {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(Error::AlreadyExists { .. }) => {}
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Per-user listings agree with the headers.
    let all = store
        .list_conversations(None, &ListOptions::new().limit(100).unwrap())
        .await
        .unwrap();
    for c in &all.items {
        let u = c.user_id.as_ref().unwrap();
        let mine = store
            .list_conversations(Some(u), &ListOptions::new().limit(100).unwrap())
            .await
            .unwrap();
        assert!(
            mine.items.iter().any(|m| m.id == c.id),
            "{} missing from {u}'s listing",
            c.id
        );
    }
}

// Regressions for the fixes of the findings above.

fn is_corrupt(err: &chatvault_core::Error) -> bool {
    err.kind() == chatvault_core::ErrorKind::Corrupt
}

/// Edits a conversation's checkpoint (`CVCP2 <crc>\n<json>`) and fixes its CRC up, as a
/// deliberate edit would: the checkpoint then passes its own check and must be caught by
/// its comparison with the log.
fn edit_checkpoint(root: &Path, id: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = conv_dir(root, id).join("header.json");
    let bytes = fs::read(&path).unwrap();
    let json = &bytes[b"CVCP2 12345678\n".len()..];
    let mut header: serde_json::Value = serde_json::from_slice(json).unwrap();
    edit(&mut header);
    let json = serde_json::to_vec(&header).unwrap();
    let mut out = format!("CVCP2 {:08x}\n", crc32fast::hash(&json)).into_bytes();
    out.extend_from_slice(&json);
    fs::write(&path, out).unwrap();
}

async fn two_conversations_of(user: &str) -> (tempfile::TempDir, LocalMessages) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    for id in ["bad", "good"] {
        new_conv(&store, id, Some(user)).await;
        store
            .append_messages(
                &cid(id),
                vec![NewMessage::new(Role::User, format!("{id} 1"))],
            )
            .await
            .unwrap();
    }
    (dir, store)
}

fn ids(page: &chatvault_core::Page<chatvault_core::ConversationSummary>) -> Vec<&str> {
    page.items.iter().map(|c| c.id.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_checkpoint_is_rebuilt_from_the_log() {
    let (dir, store) = two_conversations_of("u").await;
    let before = store.get(&cid("bad")).await.unwrap().unwrap();
    fs::write(
        conv_dir(dir.path(), "bad").join("header.json"),
        b"{not json",
    )
    .unwrap();
    assert_eq!(store.get(&cid("bad")).await.unwrap().unwrap(), before);
    let all = store
        .list_conversations(None, &ListOptions::new())
        .await
        .unwrap();
    assert_eq!(ids(&all).len(), 2);
    let appended = store
        .append_messages(&cid("bad"), vec![NewMessage::new(Role::User, "after")])
        .await
        .unwrap();
    assert_eq!(appended.messages[0].seq, 2);
    // The next write put an intact checkpoint back.
    let header = fs::read(conv_dir(dir.path(), "bad").join("header.json")).unwrap();
    assert!(
        header.starts_with(b"CVCP2 "),
        "{:?}",
        String::from_utf8_lossy(&header)
    );
    assert!(store.delete(&cid("bad")).await.unwrap());
    assert!(store.get(&cid("bad")).await.unwrap().is_none());
    new_conv(&store, "bad", Some("u")).await;
    let mine = store
        .list_conversations(Some(&uid("u")), &ListOptions::new())
        .await
        .unwrap();
    assert_eq!(mine.items.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_with_a_damaged_or_missing_log_are_left_out_of_listings() {
    let (dir, store) = two_conversations_of("u").await;
    // Damage inside the committed log: only reading the messages notices.
    let log = conv_dir(dir.path(), "bad").join("log-1");
    let mut bytes = fs::read(&log).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x55;
    fs::write(&log, &bytes).unwrap();
    assert!(is_corrupt(&store.get(&cid("bad")).await.unwrap_err()));
    let full = store.get_by_user(&uid("u")).await.unwrap();
    assert_eq!(full.len(), 1);
    assert_eq!(full[0].record.id, "good");
    // A missing log: even the header's listing cannot load it.
    fs::remove_file(&log).unwrap();
    assert!(store.get(&cid("bad")).await.is_err());
    let all = store
        .list_conversations(None, &ListOptions::new())
        .await
        .unwrap();
    assert_eq!(ids(&all), ["good"]);
    assert_eq!(store.get_by_user(&uid("u")).await.unwrap().len(), 1);
    assert!(store.delete(&cid("bad")).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_at_their_maximum_in_a_checkpoint_are_not_believed() {
    for field in ["version", "message_count", "file_count"] {
        let (dir, store) = filled(1).await;
        let want = store
            .head(&cid("c"))
            .await
            .map(|h| h.map(|h| h.record))
            .unwrap()
            .unwrap();
        edit_checkpoint(dir.path(), "c", |h| h["record"][field] = u64::MAX.into());
        let s = store.clone();
        let read =
            tokio::spawn(async move { s.head(&cid("c")).await.map(|h| h.map(|h| h.record)) })
                .await
                .expect("no panic");
        assert_eq!(read.unwrap().unwrap(), want, "{field}");
        let s = store.clone();
        let appended = tokio::spawn(async move {
            s.append_messages(&cid("c"), vec![NewMessage::new(Role::User, "more")])
                .await
        })
        .await
        .expect("no panic");
        assert_eq!(appended.unwrap().messages[0].seq, 2, "{field}");
        let patch = chatvault_core::ConversationPatch {
            title: Some("t".into()),
            ..Default::default()
        };
        let updated = store.update(&cid("c"), &patch).await.unwrap();
        assert_eq!(updated.version, want.version + 2, "{field}");
    }
    // The log generation of a whole-conversation save.
    let (dir, store) = filled(1).await;
    edit_checkpoint(dir.path(), "c", |h| h["generation"] = u64::MAX.into());
    let mut record = ConversationRecord::new(None);
    record.id = cid("c");
    let s = store.clone();
    let saved = tokio::spawn(async move {
        s.save(&chatvault_core::backend::StoredConversation::new(record))
            .await
    })
    .await
    .expect("no panic");
    saved.unwrap();
    assert_eq!(
        store.get(&cid("c")).await.unwrap().unwrap().messages.len(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_after_the_index_went_missing_are_read_back() {
    let (dir, store) = filled(3).await;
    let index = conv_dir(dir.path(), "c").join("index-1");
    fs::remove_file(&index).unwrap();
    for i in 3..5 {
        store
            .append_messages(
                &cid("c"),
                vec![NewMessage::new(Role::User, format!("m{i}"))],
            )
            .await
            .unwrap();
    }
    assert!(index.is_file(), "the index is created again");
    let all = store
        .messages(&cid("c"), &MessageRange::all())
        .await
        .unwrap();
    let contents: Vec<String> = all.items.iter().map(|m| m.content()).collect();
    assert_eq!(contents, ["m0", "m1", "m2", "m3", "m4"]);
    let last = store
        .messages(&cid("c"), &MessageRange::last(2))
        .await
        .unwrap();
    let contents: Vec<String> = last.items.iter().map(|m| m.content()).collect();
    assert_eq!(contents, ["m3", "m4"]);
    assert_eq!(
        store.get(&cid("c")).await.unwrap().unwrap().messages.len(),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stray_files_where_directories_belong_are_not_conversations() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "c", Some("u")).await;
    fs::write(dir.path().join("conversations").join("stray"), b"x").unwrap();
    fs::write(dir.path().join("index").join(".DS_Store"), b"x").unwrap();
    fs::create_dir(dir.path().join("conversations").join("empty-dir")).unwrap();
    assert!(store.get(&cid("empty-dir")).await.unwrap().is_none());
    assert!(store.get(&cid("stray")).await.unwrap().is_none());
    assert!(
        store
            .head(&cid("stray"))
            .await
            .map(|h| h.map(|h| h.record))
            .unwrap()
            .is_none()
    );
    assert!(!store.delete(&cid("stray")).await.unwrap());
    let all = store
        .list_conversations(None, &ListOptions::new())
        .await
        .unwrap();
    assert_eq!(ids(&all), ["c"]);
    let mine = store
        .list_conversations(Some(&uid("u")), &ListOptions::new())
        .await
        .unwrap();
    assert_eq!(ids(&mine), ["c"]);
    assert_eq!(store.get_by_user(&uid("u")).await.unwrap().len(), 1);
    let none = store
        .list_conversations(Some(&uid("v")), &ListOptions::new())
        .await
        .unwrap();
    assert!(none.items.is_empty());
    assert!(store.get_by_user(&uid("v")).await.unwrap().is_empty());
}
