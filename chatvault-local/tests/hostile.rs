//! Property test: whatever user ids, conversation ids, file names and raw storage keys a
//! caller passes (`..`, `/`, `\`, NUL, absolute paths, very long names, any Unicode),
//! every accepted operation creates files only under the stores' roots, every rejected one
//! is `Error::InvalidInput`, and nothing panics.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use chatvault_core::{
    ChatVault, ConversationRecord, Error, FilesBackend, ListOptions, MessageRange, MessagesBackend,
    NewMessage, Result, Role, bytes_stream, keys,
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

    // Conversations under hostile ids and users.
    let id_ok = keys::validate_id("conversation id", conv).is_ok();
    let user_ok = keys::validate_user_id(user).is_ok();
    let mut record = ConversationRecord::new(Some(user.to_owned()));
    record.id = conv.to_owned();
    let created = messages.create(&record).await;
    if id_ok && user_ok {
        created.unwrap();
    } else {
        assert!(
            is_invalid(&created),
            "create({conv:?}, {user:?}): {created:?}"
        );
    }
    for r in [
        messages.get(conv).await.map(|c| c.is_some()),
        messages.get_record(conv).await.map(|c| c.is_some()),
        match messages.messages(conv, &MessageRange::last(3)).await {
            Err(e) if e.is_not_found() => Ok(true), // a valid id, not created
            r => r.map(|p| p.items.is_empty()),
        },
    ] {
        if id_ok {
            r.unwrap();
        } else {
            assert!(is_invalid(&r), "{conv:?}: {r:?}");
        }
    }
    let listed = messages
        .list_conversations(Some(user), &ListOptions::new())
        .await;
    if user_ok {
        let listed = listed.unwrap();
        assert_eq!(listed.items.len(), usize::from(id_ok), "{user:?} {conv:?}");
        assert_eq!(
            messages.get_by_user(user).await.unwrap().len(),
            usize::from(id_ok)
        );
    } else {
        assert!(is_invalid(&listed), "list({user:?}): {listed:?}");
    }
    if id_ok && user_ok {
        messages
            .append_messages(conv, vec![NewMessage::new(Role::User, filename)])
            .await
            .unwrap();
        let mut conversation = vault
            .get_conversation_for_user(conv, user)
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
            let path = files.path_of(&file.storage_key).unwrap();
            assert!(path.starts_with(files.root().join("data")), "{path:?}");
            let url = conversation
                .file_url(&file.id, Duration::from_secs(1))
                .await
                .unwrap()
                .unwrap();
            assert!(url.starts_with("file:///"));
        } else {
            assert!(is_invalid(&attached), "attach({filename:?}): {attached:?}");
        }
    }

    // Raw keys straight into a files backend.
    let key_ok = keys::validate_key(key).is_ok();
    let uploaded = raw
        .upload(key, Bytes::from_static(b"raw"), "text/plain")
        .await;
    let streamed = raw
        .upload_stream(key, bytes_stream(Bytes::from_static(b"raw")), "text/plain")
        .await;
    let checks = [
        raw.exists(key).await.map(|b| b.to_string()),
        raw.download(key).await.map(|d| format!("{d:?}")),
        raw.signed_url(key, Duration::from_secs(1), Some(filename))
            .await
            .map(|u| format!("{u:?}")),
    ];
    if key_ok {
        uploaded.unwrap();
        assert_eq!(streamed.unwrap(), 3);
        assert!(raw.exists(key).await.unwrap());
        let path = raw.path_of(key).unwrap();
        let canonical = fs::canonicalize(&path).unwrap();
        assert!(
            canonical.starts_with(raw.root().join("data")),
            "{canonical:?}"
        );
        for c in checks {
            c.unwrap();
        }
        assert!(raw.delete(key).await.unwrap());
    } else {
        assert!(is_invalid(&uploaded), "upload({key:?}): {uploaded:?}");
        assert!(
            is_invalid(&streamed),
            "upload_stream({key:?}): {streamed:?}"
        );
        for c in checks {
            assert!(is_invalid(&c), "{key:?}: {c:?}");
        }
        assert!(is_invalid(&raw.delete(key).await));
    }

    if id_ok {
        // Created only if the user id was valid too.
        assert_eq!(vault.delete_conversation(conv).await.unwrap(), user_ok);
    } else {
        assert!(is_invalid(&vault.delete_conversation(conv).await));
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
    // And after the deletes, no blob or conversation is left.
    for dir in [
        stores.join("files/data"),
        stores.join("raw/data"),
        stores.join("messages/conversations"),
        stores.join("messages/users"),
    ] {
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
