//! A copy cut short at every point and run again finishes without duplicates; verify
//! finds damaged and missing attachment bytes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chatvault_archive::{
    ArchiveError, ImportOptions, Scope, Store, copy, no_progress, verify_archive, verify_store,
};
use chatvault_core::conformance::{Call, FilesHook, Forward, MessagesHook};
use chatvault_core::{Error, FilesBackend, MessagesBackend};
use common::*;

/// Counts writes (messages and files together); the write numbered `fail_at` and all
/// after it fail, as if the process had died there.
#[derive(Debug)]
struct Budget {
    writes: AtomicUsize,
    fail_at: usize,
}

impl Budget {
    fn spend(&self) -> chatvault_core::Result<()> {
        if self.writes.fetch_add(1, Ordering::SeqCst) >= self.fail_at {
            return Err(Error::backend("faulty", "injected failure"));
        }
        Ok(())
    }

    fn failed(&self) -> bool {
        self.writes.load(Ordering::SeqCst) > self.fail_at
    }
}

/// Spends the budget on every write, of messages and of files.
#[derive(Clone, Debug)]
struct Faulty(Arc<Budget>);

impl MessagesHook<Arc<dyn MessagesBackend>> for Faulty {
    fn before(&self, call: &Call<'_>) -> chatvault_core::Result<()> {
        if call.write { self.0.spend() } else { Ok(()) }
    }
}

impl FilesHook<Arc<dyn FilesBackend>> for Faulty {
    fn before(&self, call: &Call<'_>) -> chatvault_core::Result<()> {
        if call.write { self.0.spend() } else { Ok(()) }
    }
}

fn faulty(inner: &Store, fail_at: usize) -> (Store, Arc<Budget>) {
    let budget = Arc::new(Budget {
        writes: AtomicUsize::new(0),
        fail_at,
    });
    let store = Store {
        messages: Arc::new(Forward::new(
            Arc::clone(&inner.messages),
            Faulty(Arc::clone(&budget)),
        )),
        files: Arc::new(Forward::new(
            Arc::clone(&inner.files),
            Faulty(Arc::clone(&budget)),
        )),
    };
    (store, budget)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_cut_at_every_write_finishes_when_run_again_without_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let src = memory();
    fill(&src).await;
    export_dir(&src, &tmp.path().join("src")).await;
    let expected = conversation_files(&tmp.path().join("src"));
    // How many writes a whole copy makes: creates, appends (1,234 messages: 3 pages),
    // uploads and attachment records.
    let (counting, budget) = faulty(&memory(), usize::MAX);
    copy(
        &src,
        &counting,
        Scope::All,
        &ImportOptions::default(),
        &no_progress,
    )
    .await
    .unwrap();
    let total = budget.writes.load(Ordering::SeqCst);
    assert!(total >= 5 + 3 + 2 + 3, "{total} writes");

    for fail_at in 0..total {
        let dst = local(&tmp.path().join(format!("dst-{fail_at}")));
        let (cut, budget) = faulty(&dst, fail_at);
        let err = copy(
            &src,
            &cut,
            Scope::All,
            &ImportOptions::default(),
            &no_progress,
        )
        .await
        .unwrap_err();
        assert!(
            budget.failed(),
            "the fault at write {fail_at} did not happen"
        );
        assert!(err.to_string().contains("injected failure"), "{err}");
        let report = copy(
            &src,
            &dst,
            Scope::All,
            &ImportOptions::default(),
            &no_progress,
        )
        .await
        .unwrap();
        assert_eq!(
            report.messages_added + report.messages_present,
            1_240,
            "cut at write {fail_at}: {report:?}"
        );
        let again = copy(
            &src,
            &dst,
            Scope::All,
            &ImportOptions::default(),
            &no_progress,
        )
        .await
        .unwrap();
        assert!(again.added_nothing(), "cut at write {fail_at}: {again:?}");
        let got = export_dir(&dst, &tmp.path().join(format!("out-{fail_at}"))).await;
        assert_eq!(
            conversation_files(got.path()),
            expected,
            "cut at write {fail_at}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_changed_and_missing_bytes_and_nothing_on_a_clean_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = local(&dir);
    fill(&store).await;
    let clean = verify_store(&store, Scope::All, true, &no_progress)
        .await
        .unwrap();
    assert!(clean.is_clean(), "{:?}", clean.problems);
    assert_eq!(
        (clean.conversations, clean.messages, clean.attachments),
        (5, 1_240, 3)
    );

    let files = chatvault_local::LocalFiles::new(dir.join("files")).unwrap();
    let mut keys = Vec::new();
    let mut ids = chatvault_archive::ConversationIds::new(&store, Scope::All);
    while let Some(id) = ids.next().await.unwrap() {
        let head = store.messages.head(&id).await.unwrap().unwrap();
        keys.extend(head.files.into_iter().map(|f| (f.storage_key, f.size)));
    }
    keys.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
    // The big one changed in place (same size), a small one deleted.
    let changed = files.path_of(&keys[0].0);
    let mut bytes = std::fs::read(&changed).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&changed, &bytes).unwrap();
    std::fs::remove_file(files.path_of(&keys[1].0)).unwrap();

    let quick = verify_store(&store, Scope::All, false, &no_progress)
        .await
        .unwrap();
    assert_eq!(quick.problem_count, 1, "{:?}", quick.problems);
    assert!(
        quick.problems[0].what.contains("missing"),
        "{:?}",
        quick.problems
    );
    let full = verify_store(&store, Scope::All, true, &no_progress)
        .await
        .unwrap();
    assert_eq!(full.problem_count, 2, "{:?}", full.problems);
    let text: Vec<String> = full.problems.iter().map(ToString::to_string).collect();
    assert!(text.iter().any(|p| p.contains("missing")), "{text:?}");
    assert!(text.iter().any(|p| p.contains("sha256")), "{text:?}");

    // An export refuses the damaged bytes rather than carrying them.
    let writer = chatvault_archive::ArchiveWriter::create_dir(&tmp.path().join("a")).unwrap();
    let err = chatvault_archive::export(&store, Scope::All, writer, &no_progress)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::Checksum { .. } | ArchiveError::Missing { .. }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_archive_finds_a_changed_and_a_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let store = memory();
    fill(&store).await;
    let dir = tmp.path().join("a");
    let archive = export_dir(&store, &dir).await;
    assert!(verify_archive(&archive, &no_progress).is_clean());
    let blobs: Vec<String> = blobs(&archive).into_keys().collect();
    let changed = dir.join(&blobs[0]);
    let mut bytes = std::fs::read(&changed).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&changed, &bytes).unwrap();
    std::fs::remove_file(dir.join(&blobs[1])).unwrap();
    let report = verify_archive(&archive, &no_progress);
    let text: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|p| p.contains(&blobs[0]) && p.contains("sha256")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|p| p.contains(&blobs[1]) && p.contains("missing")),
        "{text:?}"
    );
}
