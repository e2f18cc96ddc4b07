//! Key rotation: new writes use the new version, old data stays readable (each
//! ciphertext names its version), a retry across a rotation is still idempotent,
//! `reencrypt` moves everything to the newest version, `rewrap` moves the wrapped keys
//! to a new key-encryption key.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chatvault_core::backend::{MessageRange, MessagesBackend, MessagesBackendExt};
use chatvault_core::{ChatVault, ErrorKind, Message, NewMessage, Part, Role, UserId};
use chatvault_crypt::{EncryptedFiles, EncryptedMessages, Keyring, StaticKeyProvider, reencrypt};
use chatvault_memory::{MemoryFiles, MemoryMessages};
use common::{KEK, keyring};

/// The key versions a stored message's sealed parts name (bytes 18..22 of each header).
fn versions(m: &Message) -> Vec<u32> {
    m.parts
        .iter()
        .map(|p| match p {
            Part::Unknown(v) => {
                let text = v["data"].as_str().unwrap();
                let bytes = URL_SAFE_NO_PAD.decode(text).unwrap();
                u32::from_be_bytes(bytes[18..22].try_into().unwrap())
            }
            other => panic!("a part in clear: {other:?}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_old_data_readable_and_reencrypt_moves_it() {
    let keys = keyring(Arc::new(MemoryMessages::new()));
    let messages = Arc::new(EncryptedMessages::new(MemoryMessages::new(), keys.clone()));
    let files = Arc::new(EncryptedFiles::new(MemoryFiles::new(), keys.clone()));
    let vault = ChatVault::from_arcs(messages.clone(), files.clone());
    let alice: UserId = "alice".parse().unwrap();
    let mut c = vault.create_conversation(Some(&alice)).await.unwrap();
    let old = NewMessage::new(Role::User, "written with v1");
    c.add(old.clone()).await.unwrap();
    let file = c
        .attach_file(
            "a.bin",
            Bytes::from(vec![9u8; 100_000]),
            "application/octet-stream",
        )
        .await
        .unwrap();
    assert_eq!(keys.current_version(Some(&alice)).await.unwrap(), Some(1));

    assert_eq!(keys.rotate(Some(&alice)).await.unwrap(), 2);
    c.add_message("assistant", "written with v2").await.unwrap();
    let raw = messages
        .inner()
        .messages(c.id(), &MessageRange::all())
        .await
        .unwrap()
        .items;
    assert_eq!(versions(&raw[0]), [1], "the old message names version 1");
    assert_eq!(versions(&raw[1]), [2], "the new one version 2");
    let read = c.messages().await.unwrap();
    assert_eq!(
        read[0].content(),
        "written with v1",
        "old data stays readable"
    );
    assert_eq!(read[1].content(), "written with v2");

    // A retry of the v1 append, now sealed with v2: still recognised, nothing stored.
    let again = messages
        .append_messages(c.id(), vec![old.clone()])
        .await
        .unwrap();
    assert_eq!(again.messages, read[..1].to_vec());
    assert_eq!(again.record.message_count, 2);

    // Everything on version 2 after reencrypt, and still the same content.
    let report = reencrypt(&messages, &files, Some(&alice)).await.unwrap();
    assert_eq!(
        (report.conversations, report.messages, report.files),
        (1, 1, 1),
        "{report:?}"
    );
    let raw = messages
        .inner()
        .messages(c.id(), &MessageRange::all())
        .await
        .unwrap()
        .items;
    assert_eq!((versions(&raw[0]), versions(&raw[1])), (vec![2], vec![2]));
    let read = c.messages().await.unwrap();
    assert_eq!(read[0].content(), "written with v1");
    assert_eq!(
        c.file_content(&file.id).await.unwrap(),
        Some(Bytes::from(vec![9u8; 100_000]))
    );
    let again = reencrypt(&messages, &files, Some(&alice)).await.unwrap();
    assert_eq!(
        (again.messages, again.files, again.titles),
        (0, 0, 0),
        "resumable: nothing left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_sees_a_rotation_when_its_cache_expires() {
    let store: Arc<dyn MessagesBackend> = Arc::new(MemoryMessages::new());
    let one = keyring(Arc::clone(&store));
    let two = Keyring::new(Arc::clone(&store), StaticKeyProvider::new(KEK))
        .with_cache_ttl(std::time::Duration::ZERO);
    let bob: UserId = "bob".parse().unwrap();
    assert_eq!(one.rotate(Some(&bob)).await.unwrap(), 1);
    assert_eq!(two.current_version(Some(&bob)).await.unwrap(), Some(1));
    assert_eq!(one.rotate(Some(&bob)).await.unwrap(), 2);
    assert_eq!(two.current_version(Some(&bob)).await.unwrap(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrap_moves_keys_to_a_new_key_encryption_key() {
    let store: Arc<dyn MessagesBackend> = Arc::new(MemoryMessages::new());
    let data = Arc::new(MemoryMessages::new());
    let old = keyring(Arc::clone(&store));
    let alice: UserId = "alice".parse().unwrap();
    let writer = EncryptedMessages::new(Arc::clone(&data), old.clone());
    let mut record = chatvault_core::ConversationRecord::new(Some(alice.clone()));
    record.title = Some("kept".into());
    writer.create(&record).await.unwrap();
    old.rotate(Some(&alice)).await.unwrap();

    // Only the new key-encryption key: the stored keys do not unwrap.
    let new_kek = [9u8; 32];
    let fresh = || Keyring::new(Arc::clone(&store), StaticKeyProvider::new(new_kek));
    let reader = EncryptedMessages::new(Arc::clone(&data), fresh());
    assert_eq!(
        reader.head(&record.id).await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );

    let both = fresh().with_previous_provider(StaticKeyProvider::new(KEK));
    let report = both.rewrap().await.unwrap();
    assert_eq!(report.rewrapped, 2, "alice's two versions: {report:?}");
    let reader = EncryptedMessages::new(Arc::clone(&data), fresh());
    let head = reader.head(&record.id).await.unwrap().unwrap();
    assert_eq!(head.record.title.as_deref(), Some("kept"));
    assert_eq!(
        fresh().rewrap().await.unwrap().rewrapped,
        0,
        "nothing left to rewrap"
    );
}
