//! Crypto-shredding: destroying an owner's data key makes their data unreadable (in the
//! store and in a backup copy of it taken before), leaves other owners readable, and
//! still lets the vault delete what is left, bytes included.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::path::Path;
use std::sync::Arc;

use chatvault_core::backend::FilesBackend;
use chatvault_core::{ChatVault, ErrorKind, ListOptions, UserId};
use chatvault_crypt::{EncryptedFiles, EncryptedMessages, Keyring};
use chatvault_local::{LocalFiles, LocalMessages};
use common::{fresh_dir, keyring};

fn vault_over(data: &Path, keys: &Keyring) -> ChatVault {
    ChatVault::new(
        EncryptedMessages::new(
            LocalMessages::open(data.join("messages")).unwrap(),
            keys.clone(),
        ),
        EncryptedFiles::new(LocalFiles::new(data.join("files")).unwrap(), keys.clone()),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shredded_owner_is_unreadable_everywhere_and_others_are_not() {
    let root = fresh_dir();
    // The key store apart from the data, as the crate docs advise.
    let keys = keyring(Arc::new(LocalMessages::open(root.join("keys")).unwrap()));
    let data = root.join("data");
    let vault = vault_over(&data, &keys);
    let alice: UserId = "alice".parse().unwrap();
    let bob: UserId = "bob".parse().unwrap();
    let mut a = vault.create_conversation(Some(&alice)).await.unwrap();
    a.add_message("user", "alice's secret").await.unwrap();
    let fa = a
        .attach_file("a.txt", "alice's file", "text/plain")
        .await
        .unwrap();
    let mut b = vault.create_conversation(Some(&bob)).await.unwrap();
    b.add_message("user", "bob's note").await.unwrap();
    let fb = b
        .attach_file("b.txt", "bob's file", "text/plain")
        .await
        .unwrap();
    assert_eq!(a.messages().await.unwrap()[0].content(), "alice's secret");

    // A backup of the data store, taken before the shredding.
    let backup = root.join("backup");
    copy_dir(&data, &backup);

    assert!(keys.shred(Some(&alice)).await.unwrap(), "alice had a key");
    assert!(!keys.shred(Some(&alice)).await.unwrap(), "and has none now");
    assert_eq!(keys.current_version(Some(&alice)).await.unwrap(), None);

    for (place, v) in [("store", &vault), ("backup", &vault_over(&backup, &keys))] {
        assert_shredded(place, v, &alice, &a, &fa).await;
        // Bob is untouched.
        let bobs = v.get_conversation(b.id()).await.unwrap().unwrap();
        assert_eq!(
            bobs.messages().await.unwrap()[0].content(),
            "bob's note",
            "{place}"
        );
        assert_eq!(
            bobs.file_content(&fb.id).await.unwrap().as_deref(),
            Some(&b"bob's file"[..])
        );
    }

    // The vault still deletes alice's conversation and its bytes.
    let stored_key =
        EncryptedFiles::new(LocalFiles::new(data.join("files")).unwrap(), keys.clone())
            .stored_key(&fa.storage_key)
            .await
            .unwrap();
    let raw_files = LocalFiles::new(data.join("files")).unwrap();
    assert!(
        raw_files.head(&stored_key).await.unwrap().is_some(),
        "the bytes are there"
    );
    assert!(vault.delete_conversation(a.id()).await.unwrap());
    assert!(
        raw_files.head(&stored_key).await.unwrap().is_none(),
        "and are deleted"
    );
    assert!(
        vault
            .messages_backend()
            .head(a.id())
            .await
            .unwrap()
            .is_none()
    );

    // A new write for alice starts a new key, which opens nothing old.
    let mut again = vault.create_conversation(Some(&alice)).await.unwrap();
    again.add_message("user", "fresh start").await.unwrap();
    assert_eq!(keys.current_version(Some(&alice)).await.unwrap(), Some(1));
    let old = vault_over(&backup, &keys).get_conversation(a.id()).await;
    assert_eq!(
        old.err().map(|e| e.kind()),
        Some(ErrorKind::Corrupt),
        "the new key opens nothing old"
    );
}

/// Alice's conversation `a` and attachment `fa` are unreadable through `v`; her listing
/// still works, without the title.
async fn assert_shredded(
    place: &str,
    v: &ChatVault,
    alice: &UserId,
    a: &chatvault_core::Conversation,
    fa: &chatvault_core::FileAttachment,
) {
    let err = v.get_conversation(a.id()).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Corrupt,
        "{place}: alice's conversation"
    );
    let messages = v
        .messages_backend()
        .messages(a.id(), &chatvault_core::MessageRange::all())
        .await;
    assert_eq!(
        messages.unwrap_err().kind(),
        ErrorKind::Corrupt,
        "{place}: messages"
    );
    let bytes = v.files_backend().download_stream(&fa.storage_key).await;
    assert_eq!(
        bytes.err().map(|e| e.kind()),
        Some(ErrorKind::Corrupt),
        "{place}: file"
    );
    let listed = v
        .list_conversations(alice, &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1, "{place}");
    assert_eq!(
        listed.items[0].title, None,
        "{place}: the title is unreadable"
    );
}
