//! Helpers shared by the importer tests.
#![allow(dead_code, unreachable_pub)]
#![allow(clippy::unwrap_used)] // test helpers may unwrap

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chatvault_archive::Store;
use chatvault_archive::import::{Format, ImportOptions, ImportReport, import_file};
use chatvault_core::{
    ChatVault, Conversation, ConversationId, Message, MessageRange, Metadata, UserId,
};
use serde_json::Value;

/// The fixture directory of a format.
pub fn fixture(format: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(format)
}

/// Zips every file of `dir` (conversations.json deflated, the rest stored) into `out`.
pub fn zip_dir(dir: &Path, out: &Path) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(out).unwrap());
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    for name in names {
        let method = if name.ends_with(".json") {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        zip.start_file(name.as_str(), options).unwrap();
        zip.write_all(&std::fs::read(dir.join(&name)).unwrap())
            .unwrap();
    }
    zip.finish().unwrap();
}

pub fn owner() -> UserId {
    "alice".parse().unwrap()
}

pub async fn import(format: Format, path: &Path, store: &Store) -> ImportReport {
    import_as(format, path, store, false).await
}

pub async fn import_as(format: Format, path: &Path, store: &Store, dry_run: bool) -> ImportReport {
    let options = ImportOptions::new(owner()).dry_run(dry_run);
    import_file(
        format,
        path,
        store,
        &options,
        &chatvault_archive::no_progress,
    )
    .await
    .unwrap()
}

pub fn vault(store: &Store) -> ChatVault {
    ChatVault::from_arcs(Arc::clone(&store.messages), Arc::clone(&store.files))
}

/// The conversation imported from source id `source` (found by listing the owner's).
pub async fn conversation(store: &Store, source: &str) -> Conversation {
    let vault = vault(store);
    let options = chatvault_core::ListOptions::new()
        .limit(100)
        .unwrap()
        .include_archived(true);
    let page = vault.list_conversations(&owner(), &options).await.unwrap();
    for summary in page.items {
        let c = vault.get_conversation(&summary.id).await.unwrap().unwrap();
        if c.metadata()["source"]["conversation_id"] == source {
            return c;
        }
    }
    panic!("no conversation imported from {source}")
}

/// Every stored message of a conversation, on every branch, in seq order.
pub async fn all_messages(store: &Store, id: &ConversationId) -> Vec<Message> {
    let mut out = Vec::new();
    loop {
        let after = out.last().map_or(0, |m: &Message| m.seq);
        let page = store
            .messages
            .messages(id, &MessageRange::after(after).limit(200))
            .await
            .unwrap();
        let done = page.next_cursor.is_none();
        out.extend(page.items);
        if done {
            return out;
        }
    }
}

/// The source id of a message.
pub fn sid(m: &Message) -> String {
    source(&m.metadata)["message_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub fn source(metadata: &Metadata) -> &Value {
    &metadata["source"]
}

/// `(source id, parent's source id)` of every message, in seq order: the tree.
pub async fn tree(store: &Store, id: &ConversationId) -> Vec<(String, Option<String>)> {
    let messages = all_messages(store, id).await;
    let by_seq = |seq: u64| sid(messages.iter().find(|m| m.seq == seq).unwrap());
    messages
        .iter()
        .map(|m| (sid(m), m.parent.map(by_seq)))
        .collect()
}

/// The source ids of the active path.
pub async fn active_path(c: &Conversation) -> Vec<String> {
    c.messages().await.unwrap().iter().map(sid).collect()
}

/// The message imported from source id `s`.
pub async fn message(store: &Store, id: &ConversationId, s: &str) -> Message {
    all_messages(store, id)
        .await
        .into_iter()
        .find(|m| sid(m) == s)
        .unwrap_or_else(|| panic!("no message {s}"))
}
