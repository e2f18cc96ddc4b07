//! Export -> import -> export through every embedded backend, tar archives, idempotent
//! imports, format versions.

mod common;

use chatvault_archive::{
    ArchiveError, ArchiveReader, ArchiveWriter, ImportOptions, Scope, import, no_progress,
};
use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_to_local_to_sqlite_keeps_every_conversation_file_and_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let original = memory();
    fill(&original).await;
    let a1 = export_dir(&original, &tmp.path().join("a1")).await;
    assert_eq!(a1.manifest().counts.conversations, 5);
    assert_eq!(a1.manifest().counts.messages, 4 + 1_234 + 1 + 1);
    assert_eq!(a1.manifest().counts.attachments, 3);
    assert_eq!(
        a1.manifest().counts.blobs,
        2,
        "the shared bytes are stored once"
    );

    let local_store = local(&tmp.path().join("local"));
    let report = import(&a1, &local_store, &ImportOptions::default(), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.conversations_created, 5);
    assert_eq!(report.messages_added, 1_240);
    assert_eq!(report.files_added, 3);
    let a2 = export_dir(&local_store, &tmp.path().join("a2")).await;

    let sqlite_store = sqlite(&tmp.path().join("sqlite")).await;
    import(&a2, &sqlite_store, &ImportOptions::default(), &no_progress)
        .await
        .unwrap();
    let a3 = export_dir(&sqlite_store, &tmp.path().join("a3")).await;

    let f1 = conversation_files(&tmp.path().join("a1"));
    let f2 = conversation_files(&tmp.path().join("a2"));
    let f3 = conversation_files(&tmp.path().join("a3"));
    assert_eq!(f1.len(), 5);
    assert_eq!(f1, f2, "memory -> local changed a conversation file");
    assert_eq!(f2, f3, "local -> sqlite changed a conversation file");
    assert_eq!(blobs(&a1), blobs(&a2));
    assert_eq!(blobs(&a2), blobs(&a3));
    // Message lines are byte-identical: every file but line 1 is compared raw above; the
    // manifests agree on every conversation file's message count too.
    assert_eq!(a1.manifest().counts, a3.manifest().counts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_the_same_archive_twice_adds_nothing_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let original = memory();
    fill(&original).await;
    let archive = export_dir(&original, &tmp.path().join("a")).await;
    let dst = local(&tmp.path().join("dst"));
    let first = import(&archive, &dst, &ImportOptions::default(), &no_progress)
        .await
        .unwrap();
    assert!(!first.added_nothing());
    let dry = import(
        &archive,
        &dst,
        &ImportOptions::default().dry_run(true),
        &no_progress,
    )
    .await
    .unwrap();
    assert!(dry.added_nothing(), "{dry:?}");
    let second = import(&archive, &dst, &ImportOptions::default(), &no_progress)
        .await
        .unwrap();
    assert!(second.added_nothing(), "{second:?}");
    assert_eq!(second.conversations_present, 5);
    assert_eq!(second.messages_present, 1_240);
    assert_eq!(second.files_present, 3);
    assert_eq!(second.bytes_uploaded, 0);
    let again = export_dir(&dst, &tmp.path().join("again")).await;
    assert_eq!(again.manifest().counts, archive.manifest().counts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_into_an_empty_store_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let original = memory();
    fill(&original).await;
    let archive = export_dir(&original, &tmp.path().join("a")).await;
    let dst = memory();
    let dry = import(
        &archive,
        &dst,
        &ImportOptions::default().dry_run(true),
        &no_progress,
    )
    .await
    .unwrap();
    assert_eq!(dry.conversations_created, 5);
    assert_eq!(dry.messages_added, 1_240);
    let empty = export_dir(&dst, &tmp.path().join("empty")).await;
    assert_eq!(empty.manifest().counts.conversations, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tar_archive_holds_what_a_directory_does() {
    let tmp = tempfile::tempdir().unwrap();
    let original = memory();
    fill(&original).await;
    let dir = export_dir(&original, &tmp.path().join("dir")).await;
    let tar_path = tmp.path().join("a.tar");
    let writer = ArchiveWriter::create_tar(&tar_path).unwrap();
    chatvault_archive::export(&original, Scope::All, writer, &no_progress)
        .await
        .unwrap();
    let tar = ArchiveReader::open(&tar_path).unwrap();
    assert_eq!(tar.manifest().files, dir.manifest().files);
    assert!(chatvault_archive::verify_archive(&tar, &no_progress).is_clean());
    let dst = memory();
    import(&tar, &dst, &ImportOptions::default(), &no_progress)
        .await
        .unwrap();
    export_dir(&dst, &tmp.path().join("back")).await;
    assert_eq!(
        conversation_files(&tmp.path().join("dir")),
        conversation_files(&tmp.path().join("back"))
    );
    // Never written over.
    let again = ArchiveWriter::create_tar(&tar_path).unwrap_err();
    assert!(
        matches!(again, ArchiveError::DestinationExists(_)),
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_major_version_is_refused_and_a_newer_minor_read() {
    let tmp = tempfile::tempdir().unwrap();
    let original = memory();
    fill(&original).await;
    let dir = tmp.path().join("a");
    export_dir(&original, &dir).await;
    let manifest_path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    let current = format!("\"{}\"", chatvault_archive::FORMAT_VERSION);
    std::fs::write(&manifest_path, text.replace(&current, "\"1.7\"")).unwrap();
    let minor = ArchiveReader::open(&dir).unwrap();
    assert_eq!(minor.manifest().format, "1.7");
    std::fs::write(&manifest_path, text.replace(&current, "\"2.0\"")).unwrap();
    let err = ArchiveReader::open(&dir).unwrap_err();
    match &err {
        ArchiveError::NewerFormat { found, supported } => {
            assert_eq!((found.as_str(), supported.as_str()), ("2.0", "1.1"));
        }
        other => panic!("expected NewerFormat, got {other:?}"),
    }
    assert!(
        err.to_string().contains("newer than this release reads"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_owner_and_one_conversation_export_only_theirs() {
    let tmp = tempfile::tempdir().unwrap();
    let original = memory();
    fill(&original).await;
    let writer = ArchiveWriter::create_dir(&tmp.path().join("bob")).unwrap();
    let bob = Scope::Owner("bob@example.com".parse().unwrap());
    let manifest = chatvault_archive::export(&original, bob, writer, &no_progress)
        .await
        .unwrap();
    assert_eq!(manifest.counts.conversations, 2);
    assert_eq!(manifest.counts.messages, 1_234);
    let reader = ArchiveReader::open(&tmp.path().join("bob")).unwrap();
    let first = reader
        .manifest()
        .conversation_files()
        .next()
        .unwrap()
        .to_owned();
    let id = reader
        .conversation(&first, 10)
        .unwrap()
        .head()
        .record
        .id
        .clone();
    let writer = ArchiveWriter::create_dir(&tmp.path().join("one")).unwrap();
    let manifest =
        chatvault_archive::export(&original, Scope::Conversation(id), writer, &no_progress)
            .await
            .unwrap();
    assert_eq!(manifest.counts.conversations, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_conversation_file_is_refused_before_anything_of_it_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let original = memory();
    fill(&original).await;
    let dir = tmp.path().join("a");
    let archive = export_dir(&original, &dir).await;
    let rel = archive
        .manifest()
        .conversation_files()
        .next()
        .unwrap()
        .to_owned();
    let id = archive
        .conversation(&rel, 1)
        .unwrap()
        .head()
        .record
        .id
        .clone();
    let text = std::fs::read_to_string(dir.join(&rel)).unwrap();
    let damaged = text.replacen("\"seq\":1", "\"seq\":1 ", 1);
    assert_ne!(damaged, text, "the damage was not applied");
    std::fs::write(dir.join(&rel), damaged).unwrap();
    let dst = memory();
    let err = import(&archive, &dst, &ImportOptions::default(), &no_progress)
        .await
        .unwrap_err();
    assert!(matches!(err, ArchiveError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains(&rel), "{err}");
    assert!(dst.messages.head(&id).await.unwrap().is_none());
}

/// A branched conversation (an edit, a regenerated reply, a switch back) keeps its tree,
/// its parents and its active leaf through memory -> local -> SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branches_survive_export_and_import_through_every_backend() {
    use chatvault_core::ChatVault;
    let tmp = tempfile::tempdir().unwrap();
    let original = memory();
    let c = branched(&original).await;
    let tree = c.record().tree.clone().expect("a branched record");
    let a1 = export_dir(&original, &tmp.path().join("a1")).await;
    let local_store = local(&tmp.path().join("local"));
    import(&a1, &local_store, &ImportOptions::default(), &no_progress)
        .await
        .unwrap();
    let a2 = export_dir(&local_store, &tmp.path().join("a2")).await;
    let sqlite_store = sqlite(&tmp.path().join("sqlite")).await;
    import(&a2, &sqlite_store, &ImportOptions::default(), &no_progress)
        .await
        .unwrap();
    export_dir(&sqlite_store, &tmp.path().join("a3")).await;
    let f1 = conversation_files(&tmp.path().join("a1"));
    assert_eq!(f1, conversation_files(&tmp.path().join("a2")));
    assert_eq!(f1, conversation_files(&tmp.path().join("a3")));
    let dst = ChatVault::from_arcs(sqlite_store.messages, sqlite_store.files);
    let copy = dst.get_conversation(c.id()).await.unwrap().unwrap();
    assert_eq!(copy.record().tree.as_ref(), Some(&tree));
    let path: Vec<String> = copy
        .messages()
        .await
        .unwrap()
        .iter()
        .map(|m| m.content())
        .collect();
    assert_eq!(path, ["question", "answer"]);
    // Importing again adds nothing and leaves the tree as it is.
    let again = import(&a2, &local_store, &ImportOptions::default(), &no_progress)
        .await
        .unwrap();
    assert!(again.added_nothing());
}

/// `ExportOptions::since` keeps the conversations active at or after a time, with all of
/// their messages, in every scope; one that names an older conversation exports nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_since_a_time_keeps_only_conversations_active_since() {
    use chatvault_archive::{ExportOptions, export_with};
    use chatvault_core::{ChatVault, Role};
    use std::sync::Arc;
    let tmp = tempfile::tempdir().unwrap();
    let store = memory();
    let vault = ChatVault::from_arcs(Arc::clone(&store.messages), Arc::clone(&store.files));
    let alice = "alice".parse().unwrap();
    let bob = "bob".parse().unwrap();
    let mut touched = vault.create_conversation(Some(&alice)).await.unwrap();
    touched.add_message(Role::User, "old 1").await.unwrap();
    touched.add_message(Role::User, "old 2").await.unwrap();
    let mut old = vault.create_conversation(Some(&alice)).await.unwrap();
    old.add_message(Role::User, "old").await.unwrap();
    let mut old_bob = vault.create_conversation(Some(&bob)).await.unwrap();
    old_bob.add_message(Role::User, "old").await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let since = chatvault_core::backend::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    touched.add_message(Role::User, "new").await.unwrap();
    let mut new_bob = vault.create_conversation(Some(&bob)).await.unwrap();
    new_bob.add_message(Role::User, "new").await.unwrap();

    let ids_in = |dir: &std::path::Path| -> std::collections::BTreeSet<String> {
        let reader = ArchiveReader::open(dir).unwrap();
        let files: Vec<String> = reader
            .manifest()
            .conversation_files()
            .map(str::to_owned)
            .collect();
        files
            .iter()
            .map(|rel| {
                let c = reader.conversation(rel, 10).unwrap();
                c.head().record.id.to_string()
            })
            .collect()
    };
    let options = ExportOptions::default().since(since);
    let all = tmp.path().join("all");
    let manifest = export_with(
        &store,
        Scope::All,
        &options,
        ArchiveWriter::create_dir(&all).unwrap(),
        &no_progress,
    )
    .await
    .unwrap();
    let want: std::collections::BTreeSet<String> =
        [touched.id().to_string(), new_bob.id().to_string()].into();
    assert_eq!(ids_in(&all), want);
    assert_eq!(
        (manifest.counts.conversations, manifest.counts.messages),
        (2, 3 + 1),
        "a conversation active since is exported whole"
    );

    let alices = tmp.path().join("alice");
    export_with(
        &store,
        Scope::Owner(alice),
        &options,
        ArchiveWriter::create_dir(&alices).unwrap(),
        &no_progress,
    )
    .await
    .unwrap();
    assert_eq!(ids_in(&alices), [touched.id().to_string()].into());

    let one_old = tmp.path().join("one-old");
    let manifest = export_with(
        &store,
        Scope::Conversation(old.id().clone()),
        &options,
        ArchiveWriter::create_dir(&one_old).unwrap(),
        &no_progress,
    )
    .await
    .unwrap();
    assert_eq!(manifest.counts.conversations, 0);

    // Without `since`, everything.
    let everything = tmp.path().join("everything");
    export_with(
        &store,
        Scope::All,
        &ExportOptions::default(),
        ArchiveWriter::create_dir(&everything).unwrap(),
        &no_progress,
    )
    .await
    .unwrap();
    assert_eq!(ids_in(&everything).len(), 4);
}
