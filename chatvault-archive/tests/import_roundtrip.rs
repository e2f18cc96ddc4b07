//! Round trip: an export imported into memory, exported to an archive, the archive
//! imported into a local store: the same tree (every message of every branch, its parent,
//! parts, metadata and times), the same active leaf, the same attachment bytes; and the
//! export imported again into the local store adds nothing.
#![allow(clippy::unwrap_used)]

mod common;
mod import_util;

use chatvault_archive::import::Format;
use chatvault_archive::{ArchiveReader, ArchiveWriter, ImportOptions, Scope, no_progress};
use import_util::*;

#[tokio::test]
async fn import_export_import_keeps_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("export.zip");
    zip_dir(&fixture("chatgpt").join("export"), &zip);
    let memory = common::memory();
    import(Format::ChatGpt, &zip, &memory).await;
    for (format, path) in [
        (Format::Claude, fixture("claude").join("conversations.json")),
        (Format::OpenWebUi, fixture("open-webui").join("chats.json")),
        (Format::LibreChat, fixture("librechat").join("export.json")),
    ] {
        import(format, &path, &memory).await;
    }

    let archive = dir.path().join("archive");
    let writer = ArchiveWriter::create_dir(&archive).unwrap();
    let manifest = chatvault_archive::export(&memory, Scope::Owner(owner()), writer, &no_progress)
        .await
        .unwrap();
    assert_eq!(manifest.counts.conversations, 3 + 3 + 2 + 2);
    let local = common::local(&dir.path().join("local"));
    let reader = ArchiveReader::open(&archive).unwrap();
    chatvault_archive::import(&reader, &local, &ImportOptions::default(), &no_progress)
        .await
        .unwrap();

    let options = chatvault_core::ListOptions::new()
        .limit(100)
        .unwrap()
        .include_archived(true);
    let listed = vault(&memory)
        .list_conversations(&owner(), &options)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 10);
    for summary in listed.items {
        let a = memory.messages.head(&summary.id).await.unwrap().unwrap();
        let b = local.messages.head(&summary.id).await.unwrap().unwrap();
        assert_eq!(a.record.tree(), b.record.tree(), "{}", summary.id);
        assert_eq!(a.record.active_leaf(), b.record.active_leaf());
        assert_eq!(a.record.created_at, b.record.created_at);
        assert_eq!(a.record.metadata, b.record.metadata);
        assert_eq!(a.files, b.files);
        let (ma, mb) = (
            all_messages(&memory, &summary.id).await,
            all_messages(&local, &summary.id).await,
        );
        assert_eq!(ma, mb, "{}", summary.id);
        for file in &a.files {
            let bytes = |s: &chatvault_archive::Store| {
                let s = s.clone();
                let key = file.storage_key.clone();
                async move {
                    use chatvault_core::backend::FilesBackendExt;
                    s.files.download(&key).await.unwrap().unwrap()
                }
            };
            assert_eq!(bytes(&memory).await, bytes(&local).await);
        }
    }
    // The ids derive from the source's: the export imported into the copy adds nothing.
    let again = import(Format::ChatGpt, &zip, &local).await;
    assert!(again.added_nothing(), "{again:?}");
}
