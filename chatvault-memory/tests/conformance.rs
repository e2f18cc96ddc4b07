//! The whole conformance suite against the in-memory backends.

use std::sync::Arc;

use chatvault_core::ChatVault;
use chatvault_core::conformance::{
    self, FilesCapabilities, MessagesCapabilities, VaultCapabilities,
};
use chatvault_memory::{MemoryFiles, MemoryMessages};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_suite() {
    conformance::run_messages_suite(
        Arc::new(MemoryMessages::new()),
        MessagesCapabilities::full(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn files_suite() {
    // MemoryFiles has no signed URLs; everything else is checked.
    conformance::run_files_suite(
        Arc::new(MemoryFiles::new()),
        FilesCapabilities::full().signed_urls(false),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vault_suite() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    conformance::run_vault_suite(vault, VaultCapabilities::minimal()).await;
}
