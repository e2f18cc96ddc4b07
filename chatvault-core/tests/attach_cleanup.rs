//! An attachment whose record cannot be stored leaves no bytes behind.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chatvault_core::{
    ChatVault, Error, FileAttachment, FilesBackend, MessagesBackend, Result, StoredConversation,
    async_trait, bytes_stream,
};
use chatvault_memory::{MemoryFiles, MemoryMessages};

/// Files backend that remembers every key it was asked to store.
#[derive(Debug, Default)]
struct Recording {
    inner: MemoryFiles,
    uploaded: Mutex<Vec<String>>,
}

#[async_trait]
impl FilesBackend for Recording {
    async fn upload(&self, key: &str, data: Bytes, content_type: &str) -> Result<()> {
        self.uploaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(key.to_owned());
        self.inner.upload(key, data, content_type).await
    }
    async fn download(&self, key: &str) -> Result<Option<Bytes>> {
        self.inner.download(key).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        self.inner.delete(key).await
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        self.inner.exists(key).await
    }
}

/// Messages backend whose `add_file` always fails.
#[derive(Debug, Default)]
struct NoFileRecords(MemoryMessages);

#[async_trait]
impl MessagesBackend for NoFileRecords {
    async fn save(&self, c: &StoredConversation) -> Result<()> {
        self.0.save(c).await
    }
    async fn get(&self, id: &str) -> Result<Option<StoredConversation>> {
        self.0.get(id).await
    }
    async fn get_by_user(&self, user: &str) -> Result<Vec<StoredConversation>> {
        self.0.get_by_user(user).await
    }
    async fn delete(&self, id: &str) -> Result<bool> {
        self.0.delete(id).await
    }
    async fn add_file(
        &self,
        _id: &str,
        _file: FileAttachment,
    ) -> Result<chatvault_core::ConversationRecord> {
        Err(Error::temporary(
            "test",
            std::io::Error::other("record store down"),
        ))
    }
}

#[tokio::test]
async fn failed_attach_deletes_its_bytes() {
    let files = Arc::new(Recording::default());
    let vault = ChatVault::from_arcs(Arc::new(NoFileRecords::default()), files.clone());
    let mut c = vault.create_conversation(Some("u")).await.unwrap();

    let err = c
        .attach_file("a.txt", &b"bytes"[..], "text/plain")
        .await
        .expect_err("the record store is down");
    assert!(err.is_temporary(), "the caller gets the cause: {err}");
    let err = c
        .attach_file_stream(
            "b.txt",
            bytes_stream(Bytes::from_static(b"more")),
            "text/plain",
        )
        .await
        .expect_err("the record store is down");
    assert!(err.is_temporary());

    let uploaded = files.uploaded.lock().unwrap().clone();
    // Both uploads reached the store (the default upload_stream buffers, then uploads)
    // before their records failed.
    assert_eq!(uploaded.len(), 2);
    for key in &uploaded {
        assert!(!files.exists(key).await.unwrap(), "{key} was orphaned");
    }
    assert!(c.files().is_empty());
    assert_eq!(c.record().file_count, 0);
}

#[tokio::test]
async fn attaching_to_a_deleted_conversation_leaves_nothing() {
    let files = Arc::new(Recording::default());
    let vault = ChatVault::from_arcs(Arc::new(MemoryMessages::new()), files.clone());
    let mut c = vault.create_conversation(None).await.unwrap();
    assert!(vault.delete_conversation(c.id()).await.unwrap());

    let err = c
        .attach_file("late.txt", &b"too late"[..], "text/plain")
        .await
        .expect_err("the conversation is gone");
    assert!(err.is_not_found(), "{err}");
    let uploaded = files.uploaded.lock().unwrap().clone();
    assert_eq!(uploaded.len(), 1);
    assert!(!files.exists(&uploaded[0]).await.unwrap());
}

/// Messages backend whose `add_file` stores the attachment, then loses the answer.
#[derive(Debug, Default)]
struct LostAnswers(MemoryMessages);

#[async_trait]
impl MessagesBackend for LostAnswers {
    async fn save(&self, c: &StoredConversation) -> Result<()> {
        self.0.save(c).await
    }
    async fn get(&self, id: &str) -> Result<Option<StoredConversation>> {
        self.0.get(id).await
    }
    async fn get_by_user(&self, user: &str) -> Result<Vec<StoredConversation>> {
        self.0.get_by_user(user).await
    }
    async fn delete(&self, id: &str) -> Result<bool> {
        self.0.delete(id).await
    }
    async fn get_record_with_files(
        &self,
        id: &str,
    ) -> Result<Option<(chatvault_core::ConversationRecord, Vec<FileAttachment>)>> {
        self.0.get_record_with_files(id).await
    }
    async fn add_file(
        &self,
        id: &str,
        file: FileAttachment,
    ) -> Result<chatvault_core::ConversationRecord> {
        self.0.add_file(id, file).await?;
        Err(Error::temporary(
            "test",
            std::io::Error::new(std::io::ErrorKind::TimedOut, "answer lost"),
        ))
    }
}

#[tokio::test]
async fn an_attach_that_committed_despite_a_lost_answer_keeps_its_bytes() {
    let files = Arc::new(Recording::default());
    let vault = ChatVault::from_arcs(Arc::new(LostAnswers::default()), files.clone());
    let mut c = vault.create_conversation(Some("u")).await.unwrap();
    let f = c
        .attach_file("kept.txt", &b"still here"[..], "text/plain")
        .await
        .expect("the attachment was stored, so the attach succeeded");
    assert_eq!(c.files(), &[f.clone()][..]);
    assert_eq!(c.record().file_count, 1);
    let fresh = vault.get_conversation(c.id()).await.unwrap().unwrap();
    assert_eq!(
        fresh.file_content(&f.id).await.unwrap().as_deref(),
        Some(&b"still here"[..]),
        "a stored attachment must never lose its bytes"
    );
}
