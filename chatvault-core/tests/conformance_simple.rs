//! The conformance suite against `SimpleAdapter` over the smallest `SimpleBackend`: it passes
//! with the capabilities the adapter declares (concurrent appends within one value; no
//! listing of all users, no search: those checks assert NotSupported).

mod common;

use chatvault_core::backend::{MessagesCapabilities, SimpleAdapter};
use chatvault_core::conformance::SuiteConfig;
use chatvault_core::{ChatVault, MessagesBackend};
use chatvault_memory::MemoryFiles;
use common::MapStore;

/// Every append rewrites the whole conversation: smaller sizes keep the run short.
fn config() -> SuiteConfig {
    SuiteConfig::default()
        .concurrent_appends(8, 50)
        .long_conversation(500)
}

chatvault_core::messages_backend_tests!(
    async { SimpleAdapter::new(MapStore::default()) },
    config()
);
chatvault_core::vault_tests!(
    async { ChatVault::new(SimpleAdapter::new(MapStore::default()), MemoryFiles::new()) },
    config()
);

#[test]
fn the_adapter_declares_what_the_suite_held_it_to() {
    assert_eq!(
        SimpleAdapter::new(MapStore::default()).capabilities(),
        MessagesCapabilities::basic().with_concurrent_appends(true)
    );
}
