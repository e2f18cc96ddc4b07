//! The whole conformance suite against the in-memory backends, at the default sizes.

use chatvault_core::ChatVault;
use chatvault_memory::{MemoryFiles, MemoryMessages};

chatvault_core::messages_backend_tests!(async { MemoryMessages::new() });
chatvault_core::files_backend_tests!(async { MemoryFiles::new() });
chatvault_core::vault_tests!(async { ChatVault::new(MemoryMessages::new(), MemoryFiles::new()) });
