//! Helpers the crate's tests share.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use chatvault_core::MessagesBackend;
use chatvault_crypt::{Keyring, StaticKeyProvider};

/// The key-encryption key of the tests.
pub const KEK: [u8; 32] = [42; 32];

/// A keyring over `store` with the tests' static key.
pub fn keyring(store: Arc<dyn MessagesBackend>) -> Keyring {
    Keyring::new(store, StaticKeyProvider::new(KEK))
}

/// A fresh directory under cargo's per-target temporary directory, kept.
pub fn fresh_dir() -> PathBuf {
    tempfile::Builder::new()
        .prefix("crypt-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep()
}

/// The URL of a fresh SQLite database file.
pub fn fresh_sqlite_url() -> String {
    format!("sqlite://{}", fresh_dir().join("chat.db").display())
}
