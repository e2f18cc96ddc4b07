//! ChatVault's conformance suite against the example backend, with the capabilities it
//! declares: `SimpleAdapter` promises atomic appends within one process and nothing more
//! (no listing of every user, no search), `MapFiles` has no signed URLs. The suite checks
//! those refusals too.

//!
//! Every append through `SimpleAdapter` rewrites the whole conversation file, so the sizes
//! are smaller than the suite's defaults (which the built-in backends run).

use chatvault_core::conformance::SuiteConfig;
use chatvault_core::{ChatVault, ConversationId};
use custom_backend_example::{JsonDirMessages, MapFiles, SimpleAdapter};

/// A fresh store in its own directory under cargo's temporary directory for tests.
fn fresh_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("custom-backend")
        .join(ConversationId::new().as_str())
}

fn config() -> SuiteConfig {
    SuiteConfig::default()
        .concurrent_appends(4, 25)
        .long_conversation(200)
}

chatvault_core::messages_backend_tests!(
    async { SimpleAdapter::new(JsonDirMessages::new(fresh_dir()).expect("open")) },
    config()
);
chatvault_core::files_backend_tests!(async { MapFiles::new() });
chatvault_core::vault_tests!(
    async {
        ChatVault::new(
            SimpleAdapter::new(JsonDirMessages::new(fresh_dir()).expect("open")),
            MapFiles::new(),
        )
    },
    config()
);
