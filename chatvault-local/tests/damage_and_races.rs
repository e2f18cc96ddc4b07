//! Damaged stores and racing writers: a damaged index, header, log or content-type file
//! is detected and bypassed or reported (never a panic, never a wedged key), and racing
//! uploads and conversation operations end in a state every later call can use.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use chatvault_core::{
    ConversationRecord, FilesBackend, ListOptions, MessageRange, MessagesBackend, NewMessage, Role,
};
use chatvault_local::{LocalFiles, LocalMessages};

fn conv_dir(root: &Path, id: &str) -> PathBuf {
    root.join("conversations").join(id)
}

async fn new_conv(store: &LocalMessages, id: &str, user: Option<&str>) {
    let mut record = ConversationRecord::new(user.map(str::to_owned));
    record.id = id.to_owned();
    store.create(&record).await.unwrap();
}

async fn filled(n: usize) -> (tempfile::TempDir, LocalMessages) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "c", None).await;
    for i in 0..n {
        store
            .append_messages("c", vec![NewMessage::new(Role::User, format!("m{i}"))])
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
    let page = store.messages("c", &MessageRange::last(1)).await;
    assert_eq!(page.unwrap().items[0].content, "m2");
}

/// 2. A checkpoint whose message count was changed (its CRC fixed up to match) is not
/// believed: the log says how many messages there are, and seqs continue from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_with_a_changed_count_is_not_believed() {
    let (dir, store) = filled(3).await;
    edit_checkpoint(dir.path(), "c", |h| {
        h["record"]["message_count"] = 2305843009213693952_u64.into()
    });
    let page = store.messages("c", &MessageRange::last(1)).await.unwrap();
    assert_eq!(page.items[0].content, "m2");
    assert_eq!(page.items[0].seq, 3);
    let appended = store
        .append_messages("c", vec![NewMessage::new(Role::User, "m3")])
        .await
        .unwrap();
    assert_eq!(appended.messages[0].seq, 4);
    let all = store.get("c").await.unwrap().unwrap();
    let seqs: Vec<u64> = all.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
}

/// 3. A missing index is damage too: reads and appends should fall back to / rebuild from the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_index_is_bypassed_for_the_log() {
    let (dir, store) = filled(3).await;
    fs::remove_file(conv_dir(dir.path(), "c").join("index-1")).unwrap();
    let page = store.messages("c", &MessageRange::all()).await;
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
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphaned_content_type_does_not_block_a_longer_key() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    files
        .upload("a", Bytes::from_static(b"x"), "text/plain")
        .await
        .unwrap();
    fs::remove_file(dir.path().join("data/a")).unwrap(); // the crash state
    assert!(!files.exists("a").await.unwrap());
    files
        .upload("a/b", Bytes::from_static(b"y"), "text/plain")
        .await
        .unwrap();
}

/// 5b. The converse: orphan meta/a/b (no data/a/b) blocks key a forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphaned_content_type_directory_does_not_block_a_shorter_key() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    files
        .upload("a/b", Bytes::from_static(b"x"), "text/plain")
        .await
        .unwrap();
    fs::remove_file(dir.path().join("data/a/b")).unwrap(); // the crash state
    fs::remove_dir(dir.path().join("data/a")).unwrap();
    assert!(!files.exists("a/b").await.unwrap());
    files
        .upload("a", Bytes::from_static(b"y"), "text/plain")
        .await
        .unwrap();
}

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
            "c",
            vec![NewMessage::new(Role::Other("User".into()), "hello")],
        )
        .await
        .unwrap();
    fs::write(&header, old).unwrap(); // crash before the header write
    let rolled = store.get_record("c").await.unwrap().unwrap();
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
        record.id = id.clone();
        local.create(&record).await.unwrap();
        mem.create(&record).await.unwrap();
        let mut left = n;
        while left > 0 {
            let k = left.min(700);
            let batch: Vec<_> = (0..k)
                .map(|j| NewMessage::new(Role::User, format!("{left}-{j}")))
                .collect();
            local.append_messages(&id, batch.clone()).await.unwrap();
            mem.append_messages(&id, batch).await.unwrap();
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
            let lp = local.messages(&id, &r).await.unwrap();
            let mp = mem.messages(&id, &r).await.unwrap();
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
    let p = b.messages(id, &r).await.unwrap();
    all.push(p.items.iter().map(|m| m.seq).collect::<Vec<_>>());
    let mut cur = p.next_cursor;
    let mut guard = 0;
    while let Some(c) = cur {
        guard += 1;
        assert!(guard < 10, "{r:?}");
        let p = b.messages(id, &r.continue_from(&c).unwrap()).await.unwrap();
        all.push(p.items.iter().map(|m| m.seq).collect());
        cur = p.next_cursor;
    }
    all
}

/// 5c. Racing uploads of `k` and `k/b`: the loser's content type is left behind and
/// wedges the key space (same root cause as 5/5b: meta placed before data, never undone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_uploads_of_a_key_and_a_longer_key_wedge_neither() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    for i in 0..300 {
        let (a, b) = (format!("k{i}"), format!("k{i}/b"));
        let (f1, f2) = (files.clone(), files.clone());
        let (a2, b2) = (a.clone(), b.clone());
        let t1 =
            tokio::spawn(
                async move { f1.upload(&a2, Bytes::from_static(b"1"), "text/plain").await },
            );
        let t2 =
            tokio::spawn(
                async move { f2.upload(&b2, Bytes::from_static(b"2"), "text/plain").await },
            );
        let (r1, r2) = (t1.await.unwrap(), t2.await.unwrap());
        let _ = (r1, r2);
        files.delete(&a).await.unwrap();
        files.delete(&b).await.unwrap();
        // Both keys are free again: each must be storable.
        files
            .upload(&b, Bytes::from_static(b"x"), "text/plain")
            .await
            .unwrap_or_else(|e| panic!("iteration {i}: {b} wedged: {e:?}"));
        files.delete(&b).await.unwrap();
        files
            .upload(&a, Bytes::from_static(b"x"), "text/plain")
            .await
            .unwrap_or_else(|e| panic!("iteration {i}: {a} wedged: {e:?}"));
    }
}

/// Stress (hunting): every operation racing on 3 ids; only NotFound/AlreadyExists allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_operation_racing_on_three_ids_fails_only_with_not_found_or_already_exists() {
    use chatvault_core::{ConversationPatch, Error, StoredConversation};
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
                        let mut rec = ConversationRecord::new(Some(user));
                        rec.id = id.clone();
                        s.create(&rec).await
                    }
                    1 => s.delete(&id).await.map(|_| ()),
                    2 | 3 => s
                        .append_messages(&id, vec![NewMessage::new(Role::User, "x")])
                        .await
                        .map(|_| ()),
                    4 => s
                        .update(
                            &id,
                            &ConversationPatch {
                                title: Some(format!("t{x}")),
                                ..Default::default()
                            },
                        )
                        .await
                        .map(|_| ()),
                    5 => {
                        let mut rec = ConversationRecord::new(Some(user));
                        rec.id = id.clone();
                        s.save(&StoredConversation::new(rec)).await
                    }
                    6 => s
                        .list_conversations(Some(&user), &ListOptions::new())
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
        .list_conversations(None, &ListOptions::new().limit(100))
        .await
        .unwrap();
    for c in &all.items {
        let u = c.user_id.as_deref().unwrap();
        let mine = store
            .list_conversations(Some(u), &ListOptions::new().limit(100))
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
    std::error::Error::source(err).is_some_and(|s| s.is::<chatvault_local::CorruptData>())
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
            .append_messages(id, vec![NewMessage::new(Role::User, format!("{id} 1"))])
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
    let before = store.get("bad").await.unwrap().unwrap();
    fs::write(
        conv_dir(dir.path(), "bad").join("header.json"),
        b"{not json",
    )
    .unwrap();
    assert_eq!(store.get("bad").await.unwrap().unwrap(), before);
    let all = store
        .list_conversations(None, &ListOptions::new())
        .await
        .unwrap();
    assert_eq!(ids(&all).len(), 2);
    let appended = store
        .append_messages("bad", vec![NewMessage::new(Role::User, "after")])
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
    assert!(store.delete("bad").await.unwrap());
    assert!(store.get("bad").await.unwrap().is_none());
    new_conv(&store, "bad", Some("u")).await;
    let mine = store
        .list_conversations(Some("u"), &ListOptions::new())
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
    assert!(is_corrupt(&store.get("bad").await.unwrap_err()));
    let full = store.get_by_user("u").await.unwrap();
    assert_eq!(full.len(), 1);
    assert_eq!(full[0].record.id, "good");
    // A missing log: even the header's listing cannot load it.
    fs::remove_file(&log).unwrap();
    assert!(store.get("bad").await.is_err());
    let all = store
        .list_conversations(None, &ListOptions::new())
        .await
        .unwrap();
    assert_eq!(ids(&all), ["good"]);
    assert_eq!(store.get_by_user("u").await.unwrap().len(), 1);
    assert!(store.delete("bad").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_at_their_maximum_in_a_checkpoint_are_not_believed() {
    for field in ["version", "message_count", "file_count"] {
        let (dir, store) = filled(1).await;
        let want = store.get_record("c").await.unwrap().unwrap();
        edit_checkpoint(dir.path(), "c", |h| h["record"][field] = u64::MAX.into());
        let s = store.clone();
        let read = tokio::spawn(async move { s.get_record("c").await })
            .await
            .expect("no panic");
        assert_eq!(read.unwrap().unwrap(), want, "{field}");
        let s = store.clone();
        let appended = tokio::spawn(async move {
            s.append_messages("c", vec![NewMessage::new(Role::User, "more")])
                .await
        })
        .await
        .expect("no panic");
        assert_eq!(appended.unwrap().messages[0].seq, 2, "{field}");
        let patch = chatvault_core::ConversationPatch {
            title: Some("t".into()),
            ..Default::default()
        };
        let updated = store.update("c", &patch).await.unwrap();
        assert_eq!(updated.version, want.version + 2, "{field}");
    }
    // The log generation of a whole-conversation save.
    let (dir, store) = filled(1).await;
    edit_checkpoint(dir.path(), "c", |h| h["generation"] = u64::MAX.into());
    let mut record = ConversationRecord::new(None);
    record.id = "c".into();
    let s = store.clone();
    let saved = tokio::spawn(async move {
        s.save(&chatvault_core::StoredConversation::new(record))
            .await
    })
    .await
    .expect("no panic");
    saved.unwrap();
    assert_eq!(store.get("c").await.unwrap().unwrap().messages.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_after_the_index_went_missing_are_read_back() {
    let (dir, store) = filled(3).await;
    let index = conv_dir(dir.path(), "c").join("index-1");
    fs::remove_file(&index).unwrap();
    for i in 3..5 {
        store
            .append_messages("c", vec![NewMessage::new(Role::User, format!("m{i}"))])
            .await
            .unwrap();
    }
    assert!(index.is_file(), "the index is created again");
    let all = store.messages("c", &MessageRange::all()).await.unwrap();
    let contents: Vec<&str> = all.items.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["m0", "m1", "m2", "m3", "m4"]);
    let last = store.messages("c", &MessageRange::last(2)).await.unwrap();
    let contents: Vec<&str> = last.items.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["m3", "m4"]);
    assert_eq!(store.get("c").await.unwrap().unwrap().messages.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stray_files_where_directories_belong_are_not_conversations() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "c", Some("u")).await;
    fs::write(dir.path().join("conversations").join("stray"), b"x").unwrap();
    fs::write(dir.path().join("index").join(".DS_Store"), b"x").unwrap();
    fs::create_dir(dir.path().join("conversations").join("empty-dir")).unwrap();
    assert!(store.get("empty-dir").await.unwrap().is_none());
    assert!(store.get("stray").await.unwrap().is_none());
    assert!(store.get_record("stray").await.unwrap().is_none());
    assert!(!store.delete("stray").await.unwrap());
    let all = store
        .list_conversations(None, &ListOptions::new())
        .await
        .unwrap();
    assert_eq!(ids(&all), ["c"]);
    let mine = store
        .list_conversations(Some("u"), &ListOptions::new())
        .await
        .unwrap();
    assert_eq!(ids(&mine), ["c"]);
    assert_eq!(store.get_by_user("u").await.unwrap().len(), 1);
    let none = store
        .list_conversations(Some("v"), &ListOptions::new())
        .await
        .unwrap();
    assert!(none.items.is_empty());
    assert!(store.get_by_user("v").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_type_counts_only_for_the_bytes_it_was_uploaded_with() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    files
        .upload("k", Bytes::from_static(b"old"), "text/plain")
        .await
        .unwrap();
    assert_eq!(
        files.content_type("k").await.unwrap().as_deref(),
        Some("text/plain")
    );
    // A crash after a replacement's bytes were renamed into place, before its content
    // type: the old content-type file names the old bytes.
    let tmp = dir.path().join("replacement");
    fs::write(&tmp, b"new bytes").unwrap();
    fs::rename(&tmp, dir.path().join("data/k")).unwrap();
    assert!(files.exists("k").await.unwrap());
    assert_eq!(
        files.download("k").await.unwrap().as_deref(),
        Some(&b"new bytes"[..])
    );
    assert_eq!(files.content_type("k").await.unwrap(), None);
    // The next upload stores both again.
    files
        .upload("k", Bytes::from_static(b"png"), "image/png")
        .await
        .unwrap();
    assert_eq!(
        files.content_type("k").await.unwrap().as_deref(),
        Some("image/png")
    );
    // Another key's content-type file does not describe this key's bytes.
    files
        .upload("a/b", Bytes::from_static(b"png"), "text/csv")
        .await
        .unwrap();
    fs::copy(dir.path().join("meta/k"), dir.path().join("meta/a/b")).unwrap();
    assert_eq!(files.content_type("a/b").await.unwrap(), None);
    // A content-type file of the first format (no identity) is taken as it is.
    fs::write(
        dir.path().join("meta/k"),
        br#"{"v":1,"content_type":"text/html"}"#,
    )
    .unwrap();
    assert_eq!(
        files.content_type("k").await.unwrap().as_deref(),
        Some("text/html")
    );
    // A content-type file without bytes is not a key, and goes away with the next upload.
    fs::remove_file(dir.path().join("data/k")).unwrap();
    assert!(!files.exists("k").await.unwrap());
    assert_eq!(files.content_type("k").await.unwrap(), None);
    assert!(!files.delete("k").await.unwrap());
    files
        .upload("k/deeper", Bytes::from_static(b"d"), "text/plain")
        .await
        .unwrap();
    assert!(dir.path().join("meta/k").is_dir());
    assert_eq!(
        files.content_type("k/deeper").await.unwrap().as_deref(),
        Some("text/plain")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_directories_left_in_the_data_tree_do_not_block_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    // A crash between a delete's removal of k/x/y and its pruning of the emptied
    // directories.
    fs::create_dir_all(dir.path().join("data/k/x")).unwrap();
    assert!(!files.exists("k").await.unwrap());
    files
        .upload("k", Bytes::from_static(b"k"), "text/plain")
        .await
        .unwrap();
    assert_eq!(
        files.download("k").await.unwrap().as_deref(),
        Some(&b"k"[..])
    );
    assert_eq!(
        files.content_type("k").await.unwrap().as_deref(),
        Some("text/plain")
    );
    // A directory that holds a key still blocks it.
    files
        .upload("j/x/y", Bytes::from_static(b"y"), "text/plain")
        .await
        .unwrap();
    let err = files
        .upload("j", Bytes::from_static(b"j"), "text/plain")
        .await
        .unwrap_err();
    assert!(
        matches!(err, chatvault_core::Error::InvalidInput { .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_racing_uploads_of_colliding_keys_the_loser_gets_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    for i in 0..200 {
        let (a, b) = (format!("k{i}"), format!("k{i}/b"));
        let (f1, f2) = (files.clone(), files.clone());
        let (a2, b2) = (a.clone(), b.clone());
        let t1 =
            tokio::spawn(async move { f1.upload(&a2, Bytes::from_static(b"1"), "text/one").await });
        let t2 =
            tokio::spawn(async move { f2.upload(&b2, Bytes::from_static(b"2"), "text/two").await });
        let (r1, r2) = (t1.await.unwrap(), t2.await.unwrap());
        for r in [&r1, &r2] {
            if let Err(e) = r {
                assert!(
                    matches!(e, chatvault_core::Error::InvalidInput { .. }),
                    "{i}: {e:?}"
                );
            }
        }
        assert!(r1.is_ok() || r2.is_ok(), "{i}: both failed");
        for (key, r, bytes, ct) in [(&a, &r1, b"1", "text/one"), (&b, &r2, b"2", "text/two")] {
            assert_eq!(files.exists(key).await.unwrap(), r.is_ok(), "{i}: {key}");
            if r.is_ok() {
                assert_eq!(
                    files.download(key).await.unwrap().as_deref(),
                    Some(&bytes[..])
                );
                assert_eq!(files.content_type(key).await.unwrap().as_deref(), Some(ct));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_uploads_of_one_key_never_pair_bytes_with_another_content_type() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    for i in 0..200 {
        let key = format!("k{i}");
        let mut tasks = Vec::new();
        for (bytes, ct) in [(&b"1"[..], "text/one"), (&b"22"[..], "text/two")] {
            let (f, key) = (files.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                f.upload(&key, Bytes::from_static(bytes), ct).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let bytes = files.download(&key).await.unwrap().unwrap();
        match files.content_type(&key).await.unwrap().as_deref() {
            None => {}
            Some("text/one") => assert_eq!(&bytes[..], b"1", "{i}"),
            Some("text/two") => assert_eq!(&bytes[..], b"22", "{i}"),
            Some(other) => panic!("{i}: {other}"),
        }
    }
}
