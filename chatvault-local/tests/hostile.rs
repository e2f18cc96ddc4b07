//! Property test: whatever user ids, conversation ids, file names and raw storage keys a
//! caller passes (`..`, `/`, `\`, NUL, absolute paths, very long names, any Unicode),
//! those that parse into typed ids only ever create files under the stores' roots, a
//! rejected file name is `Error::InvalidInput`, and nothing panics. Then: links planted
//! inside a `LocalFiles` store are never followed (module `links`).

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::backend::{FilesBackendExt, bytes_stream};
use chatvault_core::{
    ChatVault, ContentType, ConversationId, ConversationRecord, Error, FilesBackend, ListOptions,
    MessageRange, MessagesBackend, NewMessage, Result, Role, StorageKey, UserId, keys,
};
use chatvault_local::{LocalFiles, LocalMessages};
use proptest::prelude::*;

/// Hostile fragments, glued together in twos and threes.
fn hostile() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just("/".to_owned()),
        Just("\\".to_owned()),
        Just("\0".to_owned()),
        Just("/etc/passwd".to_owned()),
        Just("C:\\Windows\\win.ini".to_owned()),
        Just("a/../../b".to_owned()),
        Just("~".to_owned()),
        Just("%2e%2e%2f".to_owned()),
        Just("\n".to_owned()),
        Just("名前.txt".to_owned()),
        Just("👋🏽".to_owned()),
        "[a-zA-Z0-9._:@-]{1,20}",
        "\\PC{1,30}",
        ".{0,40}",
        "[a-z]{100,300}",
    ];
    prop::collection::vec(fragment, 1..4).prop_map(|parts| parts.concat())
}

fn is_invalid<T: std::fmt::Debug>(r: &Result<T>) -> bool {
    matches!(r, Err(Error::InvalidInput { .. }))
}

/// Every path under `dir` (not following symbolic links).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let file_type = entry.file_type().unwrap();
        assert!(
            !file_type.is_symlink(),
            "a symbolic link: {:?}",
            entry.path()
        );
        if file_type.is_dir() {
            walk(&entry.path(), out);
        }
        out.push(entry.path());
    }
}

async fn exercise(sandbox: &Path, user: &str, conv: &str, filename: &str, key: &str) {
    let stores = sandbox.join("stores");
    let messages = LocalMessages::open(stores.join("messages")).unwrap();
    let files = LocalFiles::new(stores.join("files")).unwrap();
    let raw = LocalFiles::new(stores.join("raw")).unwrap();
    let vault = ChatVault::new(messages.clone(), files.clone());
    let text = ContentType::parse("text/plain").unwrap();

    // Ids that do not parse never reach a backend (they are typed): what parses must stay
    // inside the roots.
    let ids = (UserId::parse(user), ConversationId::parse(conv));
    if let (Ok(user_id), Ok(conv_id)) = &ids {
        let mut record = ConversationRecord::new(Some(user_id.clone()));
        record.id = conv_id.clone();
        messages.create(&record).await.unwrap();
        assert!(messages.head(conv_id).await.unwrap().is_some());
        let page = messages
            .messages(conv_id, &MessageRange::last(3))
            .await
            .unwrap();
        assert!(page.items.is_empty());
        let listed = messages
            .list_conversations(Some(user_id), &ListOptions::new())
            .await
            .unwrap();
        assert_eq!(listed.items.len(), 1, "{user:?} {conv:?}");
        messages
            .append_messages(conv_id, vec![NewMessage::new(Role::User, filename)])
            .await
            .unwrap();
        let mut conversation = vault
            .get_conversation_for_user(conv_id, user_id)
            .await
            .unwrap()
            .unwrap();
        let attached = conversation
            .attach_file(filename, Bytes::from_static(b"hostile"), "text/plain")
            .await;
        if keys::validate_filename(filename).is_ok() {
            let file = attached.unwrap();
            assert_eq!(
                conversation
                    .file_content(&file.id)
                    .await
                    .unwrap()
                    .as_deref(),
                Some(&b"hostile"[..])
            );
            let path = files.path_of(&file.storage_key);
            assert!(path.starts_with(files.root().join("data")), "{path:?}");
            let url = conversation
                .file_url(&file.id, Duration::from_secs(1))
                .await
                .unwrap();
            assert!(url.starts_with("file:///"));
        } else {
            assert!(is_invalid(&attached), "attach({filename:?}): {attached:?}");
        }
        assert!(vault.delete_conversation(conv_id).await.unwrap());
        assert!(messages.head(conv_id).await.unwrap().is_none());
        let listed = messages
            .list_conversations(Some(user_id), &ListOptions::new())
            .await
            .unwrap();
        assert!(listed.items.is_empty());
    }

    // Raw keys straight into a files backend.
    if let Ok(key) = StorageKey::parse(key) {
        raw.upload(&key, Bytes::from_static(b"raw"), &text)
            .await
            .unwrap();
        let streamed = raw
            .upload_stream(&key, bytes_stream(Bytes::from_static(b"raw")), &text)
            .await
            .unwrap();
        assert_eq!(streamed, 3);
        assert!(raw.exists(&key).await.unwrap());
        assert_eq!(
            raw.download(&key).await.unwrap().as_deref(),
            Some(&b"raw"[..])
        );
        let canonical = fs::canonicalize(raw.path_of(&key)).unwrap();
        assert!(
            canonical.starts_with(raw.root().join("data")),
            "{canonical:?}"
        );
        raw.signed_url(&key, Duration::from_secs(1), Some(filename))
            .await
            .unwrap();
        assert!(raw.delete(&key).await.unwrap());
    }

    // Nothing anywhere but under the three roots.
    let mut paths = Vec::new();
    walk(sandbox, &mut paths);
    let roots = ["messages", "files", "raw"].map(|r| stores.join(r));
    for path in &paths {
        assert!(
            path == &stores || roots.iter().any(|r| path.starts_with(r)),
            "{path:?} is outside the stores"
        );
    }
    // And after the deletes, no blob is left (the conversation's absence was checked
    // through the backend above: its on-disk layout is LocalMessages' business).
    for dir in [stores.join("files/data"), stores.join("raw/data")] {
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "{dir:?} not empty");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn hostile_names_stay_inside_the_roots(
        user in hostile(),
        conv in prop_oneof![hostile(), "[a-zA-Z0-9._:@-]{1,140}"],
        filename in hostile(),
        key in prop_oneof![
            hostile(),
            "[a-z%0-9._~-]{1,20}(/[a-z%0-9._~-]{1,20}){0,4}",
        ],
    ) {
        let sandbox = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(exercise(sandbox.path(), &user, &conv, &filename, &key));
    }
}

/// Links planted inside a `LocalFiles` store: at every level of the data and meta trees,
/// in place of `tmp`, and as hard links. No operation follows one: each that meets a link
/// fails with a `PermissionDenied` I/O error, and nothing outside the store changes.
#[cfg(unix)]
mod links {
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use bytes::Bytes;
    use chatvault_core::backend::{FilesBackendExt, bytes_stream, collect_stream};
    use chatvault_core::{ContentType, ErrorKind, FilesBackend, Result, StorageKey};
    use chatvault_local::LocalFiles;

    const KEY: &str = "u/c/f/name.bin";
    const REAL: &[u8] = b"the real bytes";

    fn k(key: &str) -> StorageKey {
        StorageKey::parse(key).unwrap()
    }

    fn text() -> ContentType {
        ContentType::parse("text/plain").unwrap()
    }

    /// A sandbox holding a store and, beside it, `outside/`: canary files at every path a
    /// followed link could lead a key to.
    struct Scene {
        _sandbox: tempfile::TempDir,
        sandbox: PathBuf,
        store: PathBuf,
        outside: PathBuf,
        files: LocalFiles,
    }

    async fn scene() -> Scene {
        let sandbox_dir = tempfile::tempdir().unwrap();
        let sandbox = fs::canonicalize(sandbox_dir.path()).unwrap();
        let outside = sandbox.join("outside");
        for canary in [
            "secret",
            "name.bin",
            "f/name.bin",
            "c/f/name.bin",
            "u/c/f/name.bin",
        ] {
            let path = outside.join(canary);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, format!("canary {canary}")).unwrap();
        }
        let store = sandbox.join("store");
        let files = LocalFiles::new(&store).unwrap();
        files
            .upload(&k(KEY), Bytes::from_static(REAL), &text())
            .await
            .unwrap();
        Scene {
            _sandbox: sandbox_dir,
            sandbox,
            store,
            outside,
            files,
        }
    }

    /// Every entry under `dir` but `skip`, links not followed: kind and bytes (or target).
    fn snapshot(dir: &Path, skip: &Path) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path == skip {
                    continue;
                }
                let m = fs::symlink_metadata(&path).unwrap();
                let what = if m.is_symlink() {
                    format!("link to {:?}", fs::read_link(&path).unwrap())
                } else if m.is_dir() {
                    stack.push(path.clone());
                    "dir".to_owned()
                } else {
                    format!("file {:?}", fs::read(&path).unwrap())
                };
                out.insert(path, what);
            }
        }
        out
    }

    /// Replaces `path` (a file or directory in the store) with a symbolic link to `target`.
    fn plant_symlink(path: &Path, target: &Path) {
        let m = fs::symlink_metadata(path).unwrap();
        if m.is_dir() {
            fs::remove_dir_all(path).unwrap();
        } else {
            fs::remove_file(path).unwrap();
        }
        symlink(target, path).unwrap();
    }

    #[track_caller]
    fn assert_link_error<T: std::fmt::Debug>(r: Result<T>, what: &str) {
        match &r {
            Err(e) if e.kind() == ErrorKind::PermissionDenied => {}
            _ => panic!("{what}: expected a PermissionDenied link error, got {r:?}"),
        }
    }

    /// Every operation on `key`, named, with its result shown as text.
    async fn every_operation(files: &LocalFiles, key: &str) -> Vec<(&'static str, Result<String>)> {
        let key = k(key);
        let bytes = Bytes::from_static(b"written through a link?");
        vec![
            (
                "upload",
                files
                    .upload(&key, bytes.clone(), &text())
                    .await
                    .map(|n| n.to_string()),
            ),
            (
                "upload_stream",
                files
                    .upload_stream(&key, bytes_stream(bytes), &text())
                    .await
                    .map(|n| n.to_string()),
            ),
            (
                "download",
                files.download(&key).await.map(|d| format!("{d:?}")),
            ),
            ("download_stream", {
                match files.download_stream(&key).await {
                    Ok(Some(s)) => Ok(format!("{:?}", collect_stream(s).await.unwrap())),
                    Ok(None) => Ok("None".to_owned()),
                    Err(e) => Err(e),
                }
            }),
            ("head", files.head(&key).await.map(|h| format!("{h:?}"))),
            ("exists", files.exists(&key).await.map(|b| b.to_string())),
            (
                "signed_url",
                files
                    .signed_url(&key, Duration::from_secs(60), None)
                    .await
                    .map(|u| format!("{u:?}")),
            ),
            (
                "content_type",
                files.content_type(&key).await.map(|t| format!("{t:?}")),
            ),
            ("delete", files.delete(&key).await.map(|b| b.to_string())),
        ]
    }

    /// All operations use the data tree.
    const DATA_OPS: [&str; 9] = [
        "upload",
        "upload_stream",
        "download",
        "download_stream",
        "head",
        "exists",
        "signed_url",
        "content_type",
        "delete",
    ];
    /// The operations that use the meta tree (`exists` through `head`).
    const META_OPS: [&str; 6] = [
        "upload",
        "upload_stream",
        "head",
        "exists",
        "content_type",
        "delete",
    ];
    /// The operations that use the tmp directory.
    const TMP_OPS: [&str; 2] = ["upload", "upload_stream"];

    /// Plants a symbolic link at `planted` (relative to the store) pointing to `target`
    /// (relative to `outside/`), runs every operation on `keys`, and checks that those in
    /// `must_fail` fail with a link error, the others work on the real bytes, the link is
    /// still there, and nothing outside the store changed.
    async fn check_symlink(planted: &str, target: &str, keys: &[&str], must_fail: &[&str]) {
        let s = scene().await;
        let before = snapshot(&s.sandbox, &s.store);
        let link = s.store.join(planted);
        plant_symlink(&link, &s.outside.join(target));
        for key in keys {
            for (op, result) in every_operation(&s.files, key).await {
                if must_fail.contains(&op) {
                    assert_link_error(result, &format!("{op}({key:?}) with a link at {planted}"));
                } else if let Err(e) = result
                    && e.kind() != ErrorKind::NotFound
                {
                    // The others work as without the link (NotFound: signed_url of a
                    // key that is not stored).
                    panic!("{op}({key:?}) with a link at {planted}: {e:?}");
                }
            }
        }
        assert!(
            fs::symlink_metadata(&link).unwrap().is_symlink(),
            "{planted}: link removed"
        );
        assert_eq!(
            snapshot(&s.sandbox, &s.store),
            before,
            "{planted}: outside changed"
        );
        if ["data", "meta", "tmp"].contains(&planted) {
            assert_link_error(
                LocalFiles::new(&s.store),
                &format!("new() with {planted} a link"),
            );
        }
    }

    #[tokio::test]
    async fn symlinks_in_the_data_tree_are_never_followed() {
        // (planted, target in outside/, the keys tried)
        for (planted, target, keys) in [
            ("data", "", &[KEY, "u/c/f/new.bin", "fresh"][..]),
            ("data/u", "", &[KEY, "u/c/f/new.bin", "u/new"][..]),
            ("data/u/c", "", &[KEY, "u/c/f/new.bin", "u/c/new"][..]),
            ("data/u/c/f", "", &[KEY, "u/c/f/new.bin"][..]),
            ("data/u/c/f/name.bin", "secret", &[KEY][..]),
        ] {
            check_symlink(planted, target, keys, &DATA_OPS).await;
        }
    }

    #[tokio::test]
    async fn symlinks_in_the_meta_tree_are_never_followed() {
        for planted in ["meta", "meta/u", "meta/u/c", "meta/u/c/f"] {
            check_symlink(planted, "", &[KEY], &META_OPS).await;
        }
        check_symlink("meta/u/c/f/name.bin", "secret", &[KEY], &META_OPS).await;
    }

    #[tokio::test]
    async fn a_symlinked_tmp_directory_is_never_followed() {
        check_symlink("tmp", "", &[KEY, "u/c/f/new.bin"], &TMP_OPS).await;
    }

    #[tokio::test]
    async fn a_failed_upload_through_a_meta_link_commits_nothing() {
        let s = scene().await;
        plant_symlink(&s.store.join("meta/u/c"), &s.outside);
        assert_link_error(
            s.files
                .upload(&k(KEY), Bytes::from_static(b"new"), &text())
                .await,
            "upload",
        );
        assert_eq!(
            s.files.download(&k(KEY)).await.unwrap().as_deref(),
            Some(REAL)
        );
        assert_link_error(s.files.delete(&k(KEY)).await, "delete");
        assert!(
            s.files.root().join("data").join(KEY).is_file(),
            "delete removed the bytes"
        );
        assert_eq!(fs::read_dir(s.store.join("tmp")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn hard_links_are_refused() {
        let s = scene().await;
        let before = snapshot(&s.sandbox, &s.store);
        let path = s.store.join("data").join(KEY);
        fs::remove_file(&path).unwrap();
        fs::hard_link(s.outside.join("secret"), &path).unwrap();
        for (op, result) in every_operation(&s.files, KEY).await {
            assert_link_error(result, &format!("{op} of a hard link"));
        }
        assert_eq!(snapshot(&s.sandbox, &s.store), before);
        // A hard link in the meta tree is not read either.
        let s = scene().await;
        let meta = s.store.join("meta").join(KEY);
        fs::remove_file(&meta).unwrap();
        fs::hard_link(s.outside.join("secret"), &meta).unwrap();
        assert_link_error(s.files.content_type(&k(KEY)).await, "content_type");
    }

    #[tokio::test]
    async fn a_fifo_at_a_key_is_no_key_and_never_blocks() {
        let s = scene().await;
        let path = s.store.join("data").join(KEY);
        fs::remove_file(&path).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        let files = s.files.clone();
        let checks = async move {
            let key = k(KEY);
            assert_eq!(files.download(&key).await.unwrap(), None);
            assert!(files.download_stream(&key).await.unwrap().is_none());
            assert!(files.head(&key).await.unwrap().is_none());
            assert!(!files.exists(&key).await.unwrap());
            assert_eq!(files.content_type(&key).await.unwrap(), None);
            assert!(!files.delete(&key).await.unwrap());
        };
        tokio::time::timeout(Duration::from_secs(10), checks)
            .await
            .expect("an operation blocked on the FIFO");
        assert!(
            fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_fifo_like()
        );
    }

    trait FifoLike {
        fn is_fifo_like(&self) -> bool;
    }

    impl FifoLike for fs::FileType {
        fn is_fifo_like(&self) -> bool {
            use std::os::unix::fs::FileTypeExt;
            self.is_fifo()
        }
    }

    /// A directory on the keys' way is swapped with a link to `outside/` and back, as
    /// fast as possible, while uploads, downloads and deletes run: whatever each one
    /// answers, nothing outside the store changes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn links_swapped_in_during_operations_are_never_followed() {
        let s = scene().await;
        let before = snapshot(&s.sandbox, &s.store);
        let dir = s.store.join("data/u/c");
        let aside = s.store.join("data/u/c-aside");
        let stop = Arc::new(AtomicBool::new(false));
        let flips = Arc::new(AtomicUsize::new(0));
        let flipper = {
            let (stop, flips, outside) = (Arc::clone(&stop), Arc::clone(&flips), s.outside.clone());
            std::thread::spawn(move || {
                // Every step may fail: the operations create, fill and prune these
                // directories meanwhile.
                while !stop.load(Ordering::Relaxed) {
                    if fs::rename(&dir, &aside).is_ok() {
                        if symlink(&outside, &dir).is_ok() {
                            flips.fetch_add(1, Ordering::Relaxed);
                            std::thread::yield_now();
                            let _ = fs::remove_file(&dir);
                        }
                        let _ = fs::rename(&aside, &dir);
                    }
                    std::thread::yield_now();
                }
            })
        };
        let mut link_errors = 0;
        let mut successes = 0;
        for i in 0..300 {
            let key = format!("u/c/f/k{}", i % 5);
            for (_, result) in every_operation(&s.files, &key).await {
                match result {
                    Ok(_) => successes += 1,
                    Err(e) if e.kind() == ErrorKind::PermissionDenied => link_errors += 1,
                    // Racing a directory's rename away is not a link: any other answer
                    // is allowed, as long as nothing outside changes.
                    Err(_) => {}
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        flipper.join().unwrap();
        let flips = flips.load(Ordering::Relaxed);
        eprintln!("{flips} links planted; {link_errors} link errors, {successes} successes");
        assert!(flips > 0, "the link was never planted");
        assert!(link_errors > 0, "no operation ever met the link");
        assert!(successes > 0, "no operation ever succeeded");
        assert_eq!(snapshot(&s.sandbox, &s.store), before, "outside changed");
    }
}
