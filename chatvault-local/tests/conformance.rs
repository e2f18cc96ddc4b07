//! The ChatVault 0.2 conformance suite against `LocalMessages` and `LocalFiles`, each on a
//! fresh temporary directory (kept for the test's life inside the backend value: the
//! directory is leaked on purpose, under the system's temp dir).
#![allow(clippy::unwrap_used)] // tests may unwrap

use chatvault_core::ChatVault;
use chatvault_local::{LocalFiles, LocalMessages};

fn fresh_dir() -> std::path::PathBuf {
    tempfile::tempdir().unwrap().keep()
}

chatvault_core::messages_backend_tests!(async { LocalMessages::open(fresh_dir()).unwrap() });
chatvault_core::files_backend_tests!(async { LocalFiles::new(fresh_dir()).unwrap() });
chatvault_core::vault_tests!(async {
    let dir = fresh_dir();
    ChatVault::new(
        LocalMessages::open(dir.join("messages")).unwrap(),
        LocalFiles::new(dir.join("files")).unwrap(),
    )
});
