//! How many flushes a `LocalFiles` delete issues: one, whatever it prunes. Alone in its
//! test binary because the flush counter is process-wide.
#![allow(clippy::unwrap_used)] // tests may unwrap

use bytes::Bytes;
use chatvault_core::backend::{ContentType, FilesBackend, FilesBackendExt, StorageKey};
use chatvault_local::{LocalFiles, fsync_count};

#[tokio::test]
async fn a_delete_is_flushed_once_and_prunes_what_it_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    let text = ContentType::parse("text/plain").unwrap();
    let key = StorageKey::parse("alice/c1/f1/a.txt").unwrap();
    let kept = StorageKey::parse("alice/c2/f2/b.txt").unwrap();
    files
        .upload(&key, Bytes::from_static(b"one"), &text)
        .await
        .unwrap();
    files
        .upload(&kept, Bytes::from_static(b"two"), &text)
        .await
        .unwrap();

    let before = fsync_count();
    assert!(files.delete(&key).await.unwrap());
    assert_eq!(fsync_count() - before, 1, "one flush per delete");

    assert!(!files.exists(&key).await.unwrap());
    assert_eq!(files.download(&kept).await.unwrap().unwrap(), "two");
    // The directories it emptied are gone, in both trees; the owner's stays (c2).
    let root = dir.path();
    for tree in ["data", "meta"] {
        assert!(
            !root.join(tree).join("alice/c1").exists(),
            "{tree}/alice/c1 pruned"
        );
    }
    assert!(root.join("data/alice/c2/f2/b.txt").exists());

    let before = fsync_count();
    assert!(files.delete(&kept).await.unwrap());
    assert_eq!(
        fsync_count() - before,
        1,
        "one flush, pruning up to the top"
    );
    assert!(!root.join("data/alice").exists(), "pruned up to the top");
    assert!(
        !files.delete(&kept).await.unwrap(),
        "gone: nothing to delete"
    );
}
