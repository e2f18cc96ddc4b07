//! Issue 8, classes 1-3 on `LocalMessages`: whatever is accepted reads back (deep
//! metadata); nothing derived (checkpoint, index, listing index) is believed without
//! being checked against the checksummed log, or drives a truncation or a seq; and
//! housekeeping files (lock files, the listing index, 0.1's `users/`) are recreated or
//! rebuilt when someone deletes them.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::fs;
use std::path::{Path, PathBuf};

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::backend::StoredConversation;
use chatvault_core::{ContentType, ConversationId, FileId, StorageKey, UserId};
use chatvault_core::{
    ConversationPatch, ConversationRecord, FileAttachment, ListOptions, MessageRange,
    MessageUpdate, MessagesBackend, Metadata, NewMessage, Role,
};
use chatvault_local::LocalMessages;
use serde_json::{Value, json};

fn conv_dir(root: &Path, id: &str) -> PathBuf {
    root.join("conversations").join(id)
}

fn is_corrupt(err: &chatvault_core::Error) -> bool {
    err.kind() == chatvault_core::ErrorKind::Corrupt
}

fn cid(id: &str) -> ConversationId {
    ConversationId::parse(id).unwrap()
}

fn uid(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

async fn new_conv(store: &LocalMessages, id: &str, user: Option<&str>) {
    let mut record = ConversationRecord::new(user.map(uid));
    record.id = cid(id);
    store.create(&record).await.unwrap();
}

fn attachment(id: &str) -> FileAttachment {
    FileAttachment::new(
        FileId::parse(id).unwrap(),
        format!("{id}.txt"),
        ContentType::parse("text/plain").unwrap(),
        1,
        "0".repeat(64),
        StorageKey::parse(format!("_/c/{id}/{id}.txt")).unwrap(),
        chatvault_core::backend::now(),
    )
}

/// A conversation with 40 appends (so its checkpoint covers some and not others), an
/// update and an attachment.
async fn busy_conversation() -> (tempfile::TempDir, LocalMessages, StoredConversation) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "c", Some("u")).await;
    for i in 0..40 {
        store
            .append_messages(
                &cid("c"),
                vec![NewMessage::new(Role::User, format!("m{i}"))],
            )
            .await
            .unwrap();
    }
    store
        .update(
            &cid("c"),
            &ConversationPatch {
                title: Some("title 123".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store.add_file(&cid("c"), &attachment("f1")).await.unwrap();
    store
        .append_messages(&cid("c"), vec![NewMessage::new(Role::Assistant, "last")])
        .await
        .unwrap();
    let whole = store.get(&cid("c")).await.unwrap().unwrap();
    assert_eq!(whole.messages.len(), 41);
    (dir, store, whole)
}

fn snapshot_dir(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn restore_dir(dir: &Path, files: &[(PathBuf, Vec<u8>)]) {
    for e in fs::read_dir(dir).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    for (p, bytes) in files {
        fs::write(p, bytes).unwrap();
    }
}

/// After damage to derived state: everything acknowledged reads back, the next append
/// gets the next seq, and the log's acknowledged bytes were not touched.
async fn nothing_lost(store: &LocalMessages, want: &StoredConversation, log: &[u8], what: &str) {
    let got = store.get(&cid("c")).await.unwrap();
    assert_eq!(got.as_ref(), Some(want), "{what}: get");
    let page = store
        .messages(&cid("c"), &MessageRange::all())
        .await
        .unwrap();
    assert_eq!(page.items, want.messages, "{what}: messages");
    let last = store
        .messages(&cid("c"), &MessageRange::last(3))
        .await
        .unwrap();
    assert_eq!(
        last.items,
        want.messages[want.messages.len() - 3..],
        "{what}"
    );
    let n = want.messages.len() as u64;
    let appended = store
        .append_messages(&cid("c"), vec![NewMessage::new(Role::User, "after")])
        .await
        .unwrap();
    assert_eq!(appended.messages[0].seq, n + 1, "{what}: seq after");
    let after = store.get(&cid("c")).await.unwrap().unwrap();
    let seqs: Vec<u64> = after.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=n + 1).collect::<Vec<_>>(), "{what}: seqs");
    assert_eq!(after.messages[..n as usize], want.messages[..], "{what}");
    let now = fs::read(store.root().join("conversations/c/log-1")).unwrap();
    assert_eq!(
        &now[..log.len()],
        log,
        "{what}: acknowledged log bytes changed"
    );
}

/// Class 2: one changed digit anywhere in the checkpoint (the old header's counts, log
/// length, generation, record) is caught and the log replayed: never a truncation, never
/// a repeated seq, never a hidden message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_changed_digit_in_the_checkpoint_loses_nothing() {
    let (dir, store, want) = busy_conversation().await;
    let cdir = conv_dir(dir.path(), "c");
    let original = snapshot_dir(&cdir);
    let header = fs::read(cdir.join("header.json")).unwrap();
    let log = fs::read(cdir.join("log-1")).unwrap();
    let digits: Vec<usize> = (0..header.len())
        .filter(|&i| header[i].is_ascii_digit())
        .collect();
    assert!(digits.len() > 50, "{} digits", digits.len());
    for &i in &digits {
        restore_dir(&cdir, &original);
        let mut changed = header.clone();
        changed[i] = b'0' + (changed[i] - b'0' + 1) % 10;
        fs::write(cdir.join("header.json"), &changed).unwrap();
        nothing_lost(&store, &want, &log, &format!("digit at {i}")).await;
    }
}

/// Class 2 with the checkpoint's own CRC fixed up, as a deliberate edit would: the
/// comparison with the log's last record still catches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_checkpoint_is_checked_against_the_log() {
    let (dir, store, want) = busy_conversation().await;
    let cdir = conv_dir(dir.path(), "c");
    let original = snapshot_dir(&cdir);
    let log = fs::read(cdir.join("log-1")).unwrap();
    type Edit = Box<dyn Fn(&mut Value)>;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "log_len - 1",
            Box::new(|h| h["log_len"] = (h["log_len"].as_u64().unwrap() - 1).into()),
        ),
        (
            "log_len / 2",
            Box::new(|h| h["log_len"] = (h["log_len"].as_u64().unwrap() / 2).into()),
        ),
        (
            "log_len 0",
            Box::new(|h| {
                h["log_len"] = 0.into();
                h["last_frame"] = Value::Null;
            }),
        ),
        (
            "message_count - 5",
            Box::new(|h| {
                let n = h["record"]["message_count"].as_u64().unwrap();
                h["record"]["message_count"] = (n - 5).into();
            }),
        ),
        (
            "message_count + 1",
            Box::new(|h| {
                let n = h["record"]["message_count"].as_u64().unwrap();
                h["record"]["message_count"] = (n + 1).into();
            }),
        ),
        (
            "last frame offset",
            Box::new(|h| h["last_frame"][0] = 0.into()),
        ),
        (
            "last frame crc",
            Box::new(|h| h["last_frame"][1] = 7.into()),
        ),
        ("generation", Box::new(|h| h["generation"] = 2.into())),
        ("files dropped", Box::new(|h| h["files"] = json!([]))),
    ];
    for (what, edit) in &edits {
        restore_dir(&cdir, &original);
        let path = cdir.join("header.json");
        let bytes = fs::read(&path).unwrap();
        let mut header: Value = serde_json::from_slice(&bytes[15..]).unwrap();
        edit(&mut header);
        let json = serde_json::to_vec(&header).unwrap();
        let mut out = format!("CVCP2 {:08x}\n", crc32fast::hash(&json)).into_bytes();
        out.extend_from_slice(&json);
        fs::write(&path, out).unwrap();
        nothing_lost(&store, &want, &log, what).await;
    }
}

/// Class 2: the seq index is derived too: damaged or missing, it is bypassed and the
/// log read instead, and it is written again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_missing_index_loses_nothing() {
    let (dir, store, want) = busy_conversation().await;
    let cdir = conv_dir(dir.path(), "c");
    let original = snapshot_dir(&cdir);
    let log = fs::read(cdir.join("log-1")).unwrap();
    let index = cdir.join("index-1");
    let good = fs::read(&index).unwrap();
    let damages: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("missing", None),
        ("empty", Some(Vec::new())),
        ("zeros", Some(vec![0; good.len()])),
        ("ff", Some(vec![0xff; good.len()])),
        ("shifted", Some(good[16..].to_vec())),
        (
            "entries swapped",
            Some([&good[16..32], &good[..16], &good[32..]].concat()),
        ),
    ];
    for (what, damage) in damages {
        restore_dir(&cdir, &original);
        match damage {
            None => fs::remove_file(&index).unwrap(),
            Some(bytes) => fs::write(&index, bytes).unwrap(),
        }
        nothing_lost(&store, &want, &log, what).await;
    }
    // A read that had to replay the log wrote the index again.
    restore_dir(&cdir, &original);
    fs::write(&index, vec![0; good.len()]).unwrap();
    store
        .messages(&cid("c"), &MessageRange::after(0).limit(2))
        .await
        .unwrap();
    assert_eq!(fs::read(&index).unwrap()[..32], good[..32]);
}

/// Class 3: a deleted lock file (people delete stale lock files after a crash) is
/// created again: the conversation stays visible, writable, deletable, and its id
/// usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_lock_file_is_recreated() {
    let (dir, store, want) = busy_conversation().await;
    let lock = conv_dir(dir.path(), "c").join("lock");
    fs::remove_file(&lock).unwrap();
    assert_eq!(store.get(&cid("c")).await.unwrap().as_ref(), Some(&want));
    assert!(lock.is_file(), "recreated");
    let listed = store
        .list_conversations(Some(&uid("u")), &ListOptions::new())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    fs::remove_file(&lock).unwrap();
    let appended = store
        .append_messages(&cid("c"), vec![NewMessage::new(Role::User, "x")])
        .await
        .unwrap();
    assert_eq!(appended.messages[0].seq, 42);
    fs::remove_file(&lock).unwrap();
    assert!(store.delete(&cid("c")).await.unwrap());
    assert!(store.get(&cid("c")).await.unwrap().is_none());
    new_conv(&store, "c", Some("u")).await;
    assert_eq!(
        store
            .head(&cid("c"))
            .await
            .map(|h| h.map(|h| h.record))
            .unwrap()
            .unwrap()
            .message_count,
        0
    );
}

async fn listing(store: &LocalMessages, user: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let mut options = ListOptions::new().limit(2).unwrap().include_archived(true);
    loop {
        let user = user.map(uid);
        let page = store
            .list_conversations(user.as_ref(), &options)
            .await
            .unwrap();
        out.extend(page.items.into_iter().map(|s| s.id.to_string()));
        match page.next_cursor {
            Some(c) => options = options.cursor(&c).unwrap(),
            None => return out,
        }
    }
}

/// Class 3: the listing index (and 0.1's `users/`) deleted, emptied or damaged, with the
/// store open or reopened: listings still show every conversation, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_or_damaged_listing_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    for (id, user) in [("a", "u"), ("b", "u"), ("c", "v"), ("d", "u"), ("e", "v")] {
        new_conv(&store, id, Some(user)).await;
    }
    new_conv(&store, "n", None).await;
    store
        .append_messages(&cid("a"), vec![NewMessage::new(Role::User, "newest")])
        .await
        .unwrap();
    store
        .update(
            &cid("d"),
            &ConversationPatch {
                archived: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let want_u = listing(&store, Some("u")).await;
    let want_v = listing(&store, Some("v")).await;
    let want_all = listing(&store, None).await;
    assert_eq!(want_u, ["a", "d", "b"]);
    assert_eq!(want_v, ["e", "c"]);
    assert_eq!(want_all.len(), 6);
    let index = dir.path().join("index");
    let check = |what: &'static str| {
        let store = store.clone();
        let (want_u, want_v, want_all) = (want_u.clone(), want_v.clone(), want_all.clone());
        let root = dir.path().to_owned();
        async move {
            for s in [store, LocalMessages::open(&root).unwrap()] {
                assert_eq!(listing(&s, Some("u")).await, want_u, "{what}");
                assert_eq!(listing(&s, Some("v")).await, want_v, "{what}");
                assert_eq!(listing(&s, None).await, want_all, "{what}");
                assert_eq!(s.get_by_user(&uid("u")).await.unwrap().len(), 3, "{what}");
                let active = s
                    .list_conversations(Some(&uid("u")), &ListOptions::new())
                    .await
                    .unwrap();
                assert_eq!(active.items.len(), 2, "{what}: archived left out");
            }
        }
    };
    fs::remove_dir_all(dir.path().join("users")).unwrap();
    check("users/ deleted").await;
    fs::remove_dir_all(&index).unwrap();
    check("index/ deleted").await;
    // Written after the deletion: claims go to a recreated index.
    store
        .append_messages(&cid("b"), vec![NewMessage::new(Role::User, "b is newest")])
        .await
        .unwrap();
    let want_u2 = listing(&store, Some("u")).await;
    assert_eq!(want_u2, ["b", "a", "d"]);
    fs::remove_dir_all(&index).unwrap();
    let reopened = LocalMessages::open(dir.path()).unwrap();
    assert_eq!(listing(&reopened, Some("u")).await, want_u2);
    store
        .append_messages(&cid("b"), vec![NewMessage::new(Role::User, "again")])
        .await
        .unwrap();
    let want_u = listing(&store, Some("u")).await;
    // Each file of the index (looked up again each time: a rebuild renames the journal),
    // emptied, its digits changed, cut in half, removed.
    let find = |kind: &str| {
        fs::read_dir(&index)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(kind))
    };
    for kind in ["snapshot", "journal", "lock"] {
        for variant in 0..4 {
            // A claim in the journal, so that it is not empty.
            store
                .append_messages(&cid("e"), vec![NewMessage::new(Role::User, "e")])
                .await
                .unwrap();
            let want_v = listing(&store, Some("v")).await;
            let want_all = listing(&store, None).await;
            let path = find(kind).unwrap_or_else(|| panic!("no {kind} in the index"));
            let bytes = fs::read(&path).unwrap();
            match variant {
                0 => fs::write(&path, b"").unwrap(),
                1 => fs::write(
                    &path,
                    bytes
                        .iter()
                        .map(|b| if b.is_ascii_digit() { b'9' } else { *b })
                        .collect::<Vec<u8>>(),
                )
                .unwrap(),
                2 => fs::write(&path, &bytes[..bytes.len() / 2]).unwrap(),
                _ => fs::remove_file(&path).unwrap(),
            }
            for s in [store.clone(), LocalMessages::open(dir.path()).unwrap()] {
                assert_eq!(listing(&s, Some("u")).await, want_u, "{kind} {variant}");
                assert_eq!(listing(&s, Some("v")).await, want_v, "{kind} {variant}");
                assert_eq!(listing(&s, None).await, want_all, "{kind} {variant}");
            }
            // Claims written after the damage count too: "c" becomes the newest of v.
            store
                .append_messages(&cid("c"), vec![NewMessage::new(Role::User, "c")])
                .await
                .unwrap();
            for s in [store.clone(), LocalMessages::open(dir.path()).unwrap()] {
                assert_eq!(listing(&s, Some("v")).await, ["c", "e"], "{kind} {variant}");
                assert_eq!(listing(&s, None).await[0], "c", "{kind} {variant}");
            }
        }
    }
    let _ = &want_u2;
}

/// Class 3: a file of the listing index cut at a line boundary looks complete: a snapshot
/// reduced to its head line, a journal without its last claims, a snapshot of the
/// development layout (no claim count, no checksum). No conversation falls out of
/// listings, in a process that opens the store afterwards. (Found by the damage fuzzer:
/// a snapshot cut right after its head line hid every conversation.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_file_cut_at_a_line_boundary_hides_no_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "a", Some("u")).await;
    new_conv(&store, "b", Some("u")).await;
    // The first listing writes the snapshot; "c" is then only in the journal.
    assert_eq!(listing(&store, Some("u")).await, ["b", "a"]);
    new_conv(&store, "c", Some("u")).await;
    let want = ["c", "b", "a"];
    assert_eq!(listing(&store, Some("u")).await, want);
    let journal = || {
        fs::read_dir(&index)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("journal-")
            })
            .unwrap()
    };
    let head_len = |bytes: &[u8]| bytes.iter().position(|&b| b == b'\n').unwrap() + 1;

    // The snapshot cut after its head line: a valid head, no claims.
    let snapshot = index.join("snapshot");
    let bytes = fs::read(&snapshot).unwrap();
    assert!(bytes.len() > head_len(&bytes), "the snapshot holds claims");
    fs::write(&snapshot, &bytes[..head_len(&bytes)]).unwrap();
    let reopened = LocalMessages::open(dir.path()).unwrap();
    assert_eq!(listing(&reopened, Some("u")).await, want, "snapshot cut");
    assert_eq!(reopened.get_by_user(&uid("u")).await.unwrap().len(), 3);

    // The journal cut to nothing (a line boundary) after "d" was created: only its claims
    // knew "d".
    new_conv(&store, "d", Some("u")).await;
    let want = ["d", "c", "b", "a"];
    assert_eq!(listing(&store, Some("u")).await, want);
    let path = journal();
    assert!(
        !fs::read(&path).unwrap().is_empty(),
        "d's claims are in the journal"
    );
    fs::write(&path, b"").unwrap();
    let reopened = LocalMessages::open(dir.path()).unwrap();
    assert_eq!(listing(&reopened, Some("u")).await, want, "journal cut");
    // The process that had read the journal keeps what it read.
    assert_eq!(listing(&store, Some("u")).await, want);

    // A snapshot in the development layout (version 1): rebuilt, not trusted.
    let bytes = fs::read(&snapshot).unwrap();
    let head: serde_json::Value = serde_json::from_slice(&bytes[..head_len(&bytes) - 1]).unwrap();
    let old_head = serde_json::json!({"v": 1, "boot": head["boot"], "journal": head["journal"]});
    let mut old = serde_json::to_vec(&old_head).unwrap();
    old.push(b'\n');
    fs::write(&snapshot, old).unwrap();
    let reopened = LocalMessages::open(dir.path()).unwrap();
    assert_eq!(
        listing(&reopened, Some("u")).await,
        want,
        "version 1 snapshot"
    );
    let rewritten = fs::read(&snapshot).unwrap();
    let head: serde_json::Value =
        serde_json::from_slice(&rewritten[..head_len(&rewritten) - 1]).unwrap();
    assert_eq!(head["v"], 2, "rebuilt in this release's layout");
    assert_eq!(head["claims"], 4);
}

/// A conversation whose directory name is shortened (its id encodes to more than a path
/// segment holds) is still found when the index lost its line: its id comes from its
/// record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_index_line_of_a_shortened_directory_name_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "a", Some("u")).await;
    assert_eq!(listing(&store, Some("u")).await, ["a"]);
    let long = "x:".repeat(64);
    new_conv(&store, &long, Some("u")).await;
    let names: Vec<String> = fs::read_dir(dir.path().join("conversations"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.iter().any(|n| n.contains('~')),
        "the long id's directory name is shortened: {names:?}"
    );
    for entry in fs::read_dir(&index).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("journal-")
        {
            fs::write(&path, b"").unwrap();
        }
    }
    let reopened = LocalMessages::open(dir.path()).unwrap();
    assert_eq!(listing(&reopened, Some("u")).await, [long.as_str(), "a"]);
}

/// Nested `depth` levels: `{"k": {"k": ... 1}}`.
fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!({ "k": v });
    }
    v
}

/// Class 1: metadata nested as deep as the core accepts (64 levels) in a message and
/// in a conversation reads back, through every read path: the index, the log replay,
/// a new instance, a rebuilt checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_nested_as_deep_as_the_core_accepts_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    // The deepest metadata the core accepts (its MAX_JSON_DEPTH, counted its way).
    let meta_of = |depth: usize| {
        let mut meta = Metadata::new();
        meta.insert("deep".into(), nested(depth));
        meta
    };
    let deepest = (1..200)
        .take_while(|&d| chatvault_core::backend::validate_metadata(&meta_of(d)).is_ok())
        .last()
        .unwrap();
    assert!(
        deepest + 2 >= chatvault_core::MAX_JSON_DEPTH,
        "the core accepts {deepest}"
    );
    let meta = meta_of(deepest);
    let mut record = ConversationRecord::new(Some(uid("u")));
    record.id = cid("c");
    record.metadata = meta.clone();
    store.create(&record).await.unwrap();
    let appended = store
        .append_messages(
            &cid("c"),
            vec![NewMessage::new(Role::User, "deep").with_metadata(meta.clone())],
        )
        .await
        .unwrap();
    store
        .update(
            &cid("c"),
            &ConversationPatch {
                metadata: Some(meta.clone()),
                title: Some("t".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let check = |s: LocalMessages| {
        let meta = meta.clone();
        let want = appended.messages.clone();
        async move {
            let got = s.get(&cid("c")).await.unwrap().unwrap();
            assert_eq!(got.record.metadata, meta);
            assert_eq!(got.messages, want);
            let page = s.messages(&cid("c"), &MessageRange::last(1)).await.unwrap();
            assert_eq!(page.items, want);
            assert_eq!(
                s.head(&cid("c"))
                    .await
                    .map(|h| h.map(|h| h.record))
                    .unwrap()
                    .unwrap()
                    .metadata,
                meta
            );
            let listed = s
                .list_conversations(Some(&uid("u")), &ListOptions::new())
                .await
                .unwrap();
            assert_eq!(listed.items.len(), 1);
        }
    };
    check(store.clone()).await;
    check(LocalMessages::open(dir.path()).unwrap()).await;
    fs::remove_file(conv_dir(dir.path(), "c").join("header.json")).unwrap();
    fs::remove_file(conv_dir(dir.path(), "c").join("index-1")).unwrap();
    check(LocalMessages::open(dir.path()).unwrap()).await;
    let mut whole = store.get(&cid("c")).await.unwrap().unwrap();
    whole.record.user_id = Some(uid("w"));
    store.save(&whole).await.unwrap();
    assert_eq!(store.get(&cid("c")).await.unwrap().unwrap(), whole);
}

/// Class 2 on a store written by 0.1, whose header is the record's only copy and carries
/// no checksum: a changed digit is either harmless or a typed error; it never drives a
/// truncation of the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_digit_in_an_0_1_header_never_cuts_the_log() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0.1/messages");
    let header = fs::read(fixture.join("conversations/conv-alice-1/header.json")).unwrap();
    let log = fs::read(fixture.join("conversations/conv-alice-1/log-1")).unwrap();
    let digits: Vec<usize> = (0..header.len())
        .filter(|&i| header[i].is_ascii_digit())
        .collect();
    let (mut errors, mut fine) = (0, 0);
    for i in digits.into_iter().step_by(3) {
        let tmp = tempfile::tempdir().unwrap();
        let cdir = tmp.path().join("conversations/conv-alice-1");
        fs::create_dir_all(&cdir).unwrap();
        for name in ["header.json", "log-1", "index-1", "lock"] {
            fs::copy(
                fixture.join("conversations/conv-alice-1").join(name),
                cdir.join(name),
            )
            .unwrap();
        }
        let mut changed = header.clone();
        changed[i] = b'0' + (changed[i] - b'0' + 1) % 10;
        fs::write(cdir.join("header.json"), &changed).unwrap();
        let store = LocalMessages::open(tmp.path()).unwrap();
        match store.get(&cid("conv-alice-1")).await {
            Ok(Some(c)) => {
                fine += 1;
                let seqs: Vec<u64> = c.messages.iter().map(|m| m.seq).collect();
                assert_eq!(seqs, [1, 2, 3, 4, 5], "digit {i}");
                let appended = store
                    .append_messages(&cid("conv-alice-1"), vec![NewMessage::new(Role::User, "x")])
                    .await
                    .unwrap();
                assert_eq!(appended.messages[0].seq, 6, "digit {i}");
            }
            Ok(None) => panic!("digit {i}: the conversation vanished"),
            Err(e) => {
                errors += 1;
                assert!(is_corrupt(&e), "digit {i}: {e}");
                assert!(
                    store
                        .append_messages(
                            &cid("conv-alice-1"),
                            vec![NewMessage::new(Role::User, "x")]
                        )
                        .await
                        .is_err()
                );
            }
        }
        let now = fs::read(cdir.join("log-1")).unwrap();
        assert_eq!(&now[..log.len()], &log[..], "digit {i}: the log was cut");
    }
    assert!(errors > 0 && fine > 0, "errors {errors}, fine {fine}");
}

/// A message updated after later ones were appended (every streamed reply) has its index
/// entry pointing past theirs. A window that holds it is still read through the index,
/// not by a replay of the whole log: shown by a damaged record outside the window, which
/// a replay would trip over (the read then fails as `Corrupt`) and the index read never
/// touches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_with_an_updated_message_is_read_through_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(dir.path()).unwrap();
    new_conv(&store, "c", Some("u")).await;
    for i in 0..4 {
        store
            .append_messages(
                &cid("c"),
                vec![NewMessage::new(Role::User, format!("m{i}"))],
            )
            .await
            .unwrap();
    }
    let second = store.get(&cid("c")).await.unwrap().unwrap().messages[1].clone();
    let update = MessageUpdate {
        parts: Some(vec![chatvault_core::Part::text("m1 updated")]),
        ..Default::default()
    };
    store
        .update_message(&cid("c"), &second.id, second.revision, &update)
        .await
        .unwrap();
    // Enough records after the update that the checkpoint covers it and the index holds
    // its (out of order) entry.
    for i in 4..80 {
        store
            .append_messages(
                &cid("c"),
                vec![NewMessage::new(Role::User, format!("filler-{i:03}"))],
            )
            .await
            .unwrap();
    }
    let log_path = conv_dir(dir.path(), "c").join("log-1");
    let mut log = fs::read(&log_path).unwrap();
    let at = log
        .windows(10)
        .position(|w| w == b"filler-010")
        .expect("the record of message 11 is in the log");
    log[at + 7] = b'X';
    fs::write(&log_path, &log).unwrap();
    // A fresh store: nothing cached, the window is read from the files.
    let fresh = LocalMessages::open(dir.path()).unwrap();
    let page = fresh
        .messages(&cid("c"), &MessageRange::after(0).limit(3))
        .await
        .unwrap();
    let texts: Vec<String> = page
        .items
        .iter()
        .map(|m| chatvault_core::text_of(&m.parts))
        .collect();
    assert_eq!(texts, ["m0", "m1 updated", "m2"]);
    // The damage is real: a read of the whole conversation replays the log and finds it.
    let whole = fresh
        .messages(&cid("c"), &MessageRange::after(0).limit(1000))
        .await;
    assert!(
        whole.as_ref().is_err_and(is_corrupt),
        "the damaged record is read when asked for: {whole:?}"
    );
}
