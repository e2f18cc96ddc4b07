//! The whole ChatVault conformance suite against `LocalMessages` and `LocalFiles`, each on
//! a fresh temporary directory.

use std::sync::Arc;

use chatvault_core::ChatVault;
use chatvault_core::conformance::{
    self, FilesCapabilities, MessagesCapabilities, VaultCapabilities,
};
use chatvault_local::{LocalFiles, LocalMessages};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_suite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = LocalMessages::open(dir.path()).expect("open");
    conformance::run_messages_suite(Arc::new(backend), MessagesCapabilities::full()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_suite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = LocalFiles::new(dir.path()).expect("open");
    conformance::run_files_suite(Arc::new(backend), FilesCapabilities::full()).await;
    // Nothing left behind in the temp area by the suite's failed and finished uploads.
    let tmp = std::fs::read_dir(dir.path().join("tmp"))
        .expect("tmp dir")
        .count();
    assert_eq!(tmp, 0, "temp files left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vault_suite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vault = ChatVault::new(
        LocalMessages::open(dir.path().join("messages")).expect("open messages"),
        LocalFiles::new(dir.path().join("files")).expect("open files"),
    );
    conformance::run_vault_suite(vault, VaultCapabilities::full()).await;
}
