//! Helpers shared by the archive's tests.
#![allow(dead_code, unreachable_pub)]
#![allow(clippy::unwrap_used)] // test helpers may unwrap

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chatvault_archive::{ArchiveReader, ArchiveWriter, Scope, Store, no_progress};
use chatvault_core::{ChatVault, ConversationPatch, NewMessage, Part, Role, Usage, UserId};
use chatvault_local::{LocalFiles, LocalMessages};
use chatvault_memory::{MemoryFiles, MemoryMessages};

pub fn memory() -> Store {
    Store::new(MemoryMessages::new(), MemoryFiles::new())
}

pub fn local(dir: &Path) -> Store {
    Store::new(
        LocalMessages::open(dir.join("messages")).unwrap(),
        LocalFiles::new(dir.join("files")).unwrap(),
    )
}

pub async fn sqlite(dir: &Path) -> Store {
    std::fs::create_dir_all(dir).unwrap();
    let url = format!("sqlite://{}", dir.join("store.db").display());
    Store::new(
        chatvault_sql::SqliteMessages::connect(&url).await.unwrap(),
        LocalFiles::new(dir.join("files")).unwrap(),
    )
}

/// Fills `store` with a small but varied set: two owners and an ownerless conversation,
/// tool calls, usage, metadata, an archived conversation, a titled one, attachments (one
/// blob shared by two conversations).
pub async fn fill(store: &Store) {
    let vault = ChatVault::from_arcs(Arc::clone(&store.messages), Arc::clone(&store.files));
    let alice: UserId = "alice".parse().unwrap();
    let bob: UserId = "bob@example.com".parse().unwrap();
    let mut a = vault.create_conversation(Some(&alice)).await.unwrap();
    a.add_message(Role::System, "You are terse.").await.unwrap();
    a.add_message(Role::User, "Weather in Oslo? ✓ «quotes» \u{2028} line")
        .await
        .unwrap();
    let call = NewMessage::with_parts(
        Role::Assistant,
        vec![Part::tool_call(
            "call_1",
            "get_weather",
            serde_json::json!({"city": "Oslo", "n": 9007199254740993u64, "x": 0.1}),
        )],
    )
    .with_usage(Usage::new("gpt-4o", 120, 18));
    a.add(call).await.unwrap();
    a.add_message(Role::Assistant, "Cold.").await.unwrap();
    a.attach_file("notes.txt", b"shared bytes".to_vec(), "text/plain")
        .await
        .unwrap();
    a.attach_file("photo.bin", vec![7u8; 70_000], "application/octet-stream")
        .await
        .unwrap();

    let mut b = vault
        .new_conversation()
        .user(bob.clone())
        .title("Bob's plans")
        .create()
        .await
        .unwrap();
    for i in 0..1_234 {
        let role = if i % 2 == 0 {
            Role::User
        } else {
            Role::Assistant
        };
        b.add_message(role, format!("message {i}")).await.unwrap();
    }
    b.attach_file("copy.txt", b"shared bytes".to_vec(), "text/plain")
        .await
        .unwrap();
    let mut meta = serde_json::Map::new();
    meta.insert(
        "source".into(),
        serde_json::json!({"tool": "test", "v": [1, 2]}),
    );
    b.patch(ConversationPatch {
        metadata: Some(meta),
        ..ConversationPatch::default()
    })
    .await
    .unwrap();

    let mut c = vault.create_conversation(Some(&alice)).await.unwrap();
    c.add_message(Role::User, "old question").await.unwrap();
    c.archive().await.unwrap();

    let mut d = vault.create_conversation(None).await.unwrap();
    d.add_message(Role::User, "no owner").await.unwrap();
    // An empty conversation too.
    vault.create_conversation(Some(&bob)).await.unwrap();
}

/// Adds a conversation with branches to `store`: a question and its answer, the question
/// edited and answered again, then the first answer made the active leaf again. Returns
/// its handle.
pub async fn branched(store: &Store) -> chatvault_core::Conversation {
    let vault = ChatVault::from_arcs(Arc::clone(&store.messages), Arc::clone(&store.files));
    let mut c = vault.create_conversation(None).await.unwrap();
    let q = c.add_message(Role::User, "question").await.unwrap();
    let a = c.add_message(Role::Assistant, "answer").await.unwrap();
    c.branches()
        .edit(&q.id, NewMessage::new(Role::User, "better question"))
        .await
        .unwrap();
    c.add_message(Role::Assistant, "better answer")
        .await
        .unwrap();
    c.branches().switch(&a.id).await.unwrap();
    c
}

/// Exports the whole store into a new directory `dir`.
pub async fn export_dir(store: &Store, dir: &Path) -> ArchiveReader {
    let writer = ArchiveWriter::create_dir(dir).unwrap();
    chatvault_archive::export(store, Scope::All, writer, &no_progress)
        .await
        .unwrap();
    ArchiveReader::open(dir).unwrap()
}

/// Every conversation file of a directory archive by path, its first line with the
/// fields the destination derives itself (`last_active`, `version`) blanked.
pub fn conversation_files(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("conversations")).unwrap() {
        let entry = entry.unwrap();
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let (first, rest) = text.split_once('\n').unwrap();
        let mut head: serde_json::Value = serde_json::from_str(first).unwrap();
        head["record"]["last_active"] = serde_json::Value::Null;
        head["record"]["version"] = serde_json::Value::Null;
        let name = entry.file_name().to_string_lossy().into_owned();
        out.insert(name, format!("{head}\n{rest}"));
    }
    out
}

/// The blobs of an archive: path -> checksum, from its manifest.
pub fn blobs(archive: &ArchiveReader) -> BTreeMap<String, String> {
    archive
        .manifest()
        .files
        .iter()
        .filter(|(p, _)| p.starts_with("blobs/"))
        .map(|(p, e)| (p.clone(), e.sha256.clone()))
        .collect()
}
