//! The parts of ChatVault's conformance suite that a backend with only the required
//! methods can pass: everything but concurrent appends and listing every user's
//! conversations.

use std::sync::Arc;

use chatvault_core::ChatVault;
use chatvault_core::conformance::{
    self, FilesCapabilities, MessagesCapabilities, VaultCapabilities,
};
use custom_backend_example::{JsonDirMessages, MapFiles};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_suite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let messages = JsonDirMessages::new(dir.path()).expect("open");
    conformance::run_messages_suite(Arc::new(messages), MessagesCapabilities::minimal()).await;
}

#[tokio::test]
async fn files_suite() {
    conformance::run_files_suite(Arc::new(MapFiles::new()), FilesCapabilities::minimal()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_suite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vault = ChatVault::new(
        JsonDirMessages::new(dir.path()).expect("open"),
        MapFiles::new(),
    );
    conformance::run_vault_suite(vault, VaultCapabilities::minimal()).await;
}
