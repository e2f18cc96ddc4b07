//! A copy cut short at every point and run again finishes without duplicates; verify
//! finds damaged and missing attachment bytes.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chatvault_archive::{
    ArchiveError, ImportOptions, Scope, Store, copy, no_progress, verify_archive, verify_store,
};
use chatvault_core::backend::{
    ConversationHead, FilesCapabilities, MessagesCapabilities, ObjectMeta, async_trait,
};
use chatvault_core::{
    Appended, ByteStream, ConversationId, ConversationPatch, ConversationRecord,
    ConversationSummary, Error, FileAttachment, FileId, FilesBackend, ListOptions, Message,
    MessageId, MessageRange, MessageUpdate, MessageUpdated, MessagesBackend, NewMessage, Page,
    SearchHit, SearchOptions, StorageKey, UserId,
};
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

#[derive(Debug)]
struct FaultyMessages(Arc<dyn MessagesBackend>, Arc<Budget>);

#[async_trait]
impl MessagesBackend for FaultyMessages {
    fn capabilities(&self) -> MessagesCapabilities {
        self.0.capabilities()
    }
    async fn create(&self, record: &ConversationRecord) -> chatvault_core::Result<()> {
        self.1.spend()?;
        self.0.create(record).await
    }
    async fn head(&self, id: &ConversationId) -> chatvault_core::Result<Option<ConversationHead>> {
        self.0.head(id).await
    }
    async fn message(
        &self,
        id: &ConversationId,
        message_id: &chatvault_core::MessageId,
    ) -> chatvault_core::Result<Option<chatvault_core::Message>> {
        self.0.message(id, message_id).await
    }
    async fn append_messages_as(
        &self,
        owner: Option<&chatvault_core::UserId>,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> chatvault_core::Result<Appended> {
        self.1.spend()?;
        self.0.append_messages_as(owner, id, messages).await
    }
    async fn update_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> chatvault_core::Result<MessageUpdated> {
        self.1.spend()?;
        self.0
            .update_message(id, message_id, expected_revision, update)
            .await
    }
    async fn messages(
        &self,
        id: &ConversationId,
        range: &MessageRange,
    ) -> chatvault_core::Result<Page<Message>> {
        self.0.messages(id, range).await
    }
    async fn list_conversations(
        &self,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> chatvault_core::Result<Page<ConversationSummary>> {
        self.0.list_conversations(user_id, options).await
    }
    async fn update(
        &self,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> chatvault_core::Result<ConversationRecord> {
        self.1.spend()?;
        self.0.update(id, patch).await
    }
    async fn add_file(
        &self,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> chatvault_core::Result<ConversationRecord> {
        self.1.spend()?;
        self.0.add_file(id, file).await
    }
    async fn remove_file(
        &self,
        id: &ConversationId,
        file_id: &FileId,
    ) -> chatvault_core::Result<Option<ConversationRecord>> {
        self.1.spend()?;
        self.0.remove_file(id, file_id).await
    }
    async fn begin_delete(
        &self,
        id: &ConversationId,
    ) -> chatvault_core::Result<Option<Vec<FileAttachment>>> {
        self.1.spend()?;
        self.0.begin_delete(id).await
    }
    async fn delete(&self, id: &ConversationId) -> chatvault_core::Result<bool> {
        self.1.spend()?;
        self.0.delete(id).await
    }
    async fn search(
        &self,
        user_id: &UserId,
        query: &str,
        options: &SearchOptions,
    ) -> chatvault_core::Result<Page<SearchHit>> {
        self.0.search(user_id, query, options).await
    }
}

#[derive(Debug)]
struct FaultyFiles(Arc<dyn FilesBackend>, Arc<Budget>);

#[async_trait]
impl FilesBackend for FaultyFiles {
    fn capabilities(&self) -> FilesCapabilities {
        self.0.capabilities()
    }
    async fn upload_stream(
        &self,
        key: &StorageKey,
        data: ByteStream,
        content_type: &chatvault_core::ContentType,
    ) -> chatvault_core::Result<u64> {
        self.1.spend()?;
        self.0.upload_stream(key, data, content_type).await
    }
    async fn download_stream(
        &self,
        key: &StorageKey,
    ) -> chatvault_core::Result<Option<ByteStream>> {
        self.0.download_stream(key).await
    }
    async fn head(&self, key: &StorageKey) -> chatvault_core::Result<Option<ObjectMeta>> {
        self.0.head(key).await
    }
    async fn delete(&self, key: &StorageKey) -> chatvault_core::Result<bool> {
        self.1.spend()?;
        self.0.delete(key).await
    }
    async fn signed_url(
        &self,
        key: &StorageKey,
        expires_in: Duration,
        download_filename: Option<&str>,
    ) -> chatvault_core::Result<String> {
        self.0.signed_url(key, expires_in, download_filename).await
    }
}

fn faulty(inner: &Store, fail_at: usize) -> (Store, Arc<Budget>) {
    let budget = Arc::new(Budget {
        writes: AtomicUsize::new(0),
        fail_at,
    });
    let store = Store {
        messages: Arc::new(FaultyMessages(
            Arc::clone(&inner.messages),
            Arc::clone(&budget),
        )),
        files: Arc::new(FaultyFiles(Arc::clone(&inner.files), Arc::clone(&budget))),
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
