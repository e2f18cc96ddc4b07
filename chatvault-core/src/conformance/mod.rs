//! The conformance suite: the behaviour every backend must show, one test per check.
//!
//! A backend crate (first-party or not) dev-depends on `chatvault-core` with the
//! `conformance` feature and invokes the macros from one of its integration tests with a
//! constructor for a fresh backend:
//!
//! ```
//! // tests/conformance.rs of a backend crate
//! use chatvault_core::ChatVault;
//! use chatvault_core::conformance::SuiteConfig;
//! use chatvault_memory::{MemoryFiles, MemoryMessages};
//!
//! // One #[test] per messages-backend check, in `mod conformance_messages`.
//! chatvault_core::messages_backend_tests!(async { MemoryMessages::new() });
//! // One per files-backend check, in `mod conformance_files`.
//! chatvault_core::files_backend_tests!(async { MemoryFiles::new() });
//! // One per vault-level check (both backends behind the vault), in `mod conformance_vault`,
//! // here with smaller sizes than the defaults.
//! chatvault_core::vault_tests!(
//!     async { ChatVault::new(MemoryMessages::new(), MemoryFiles::new()) },
//!     SuiteConfig::default().long_conversation(500)
//! );
//! # fn main() {}
//! ```
//!
//! The dev-dependencies that needs:
//!
//! ```toml
//! [dev-dependencies]
//! chatvault-core = { version = "0.1", features = ["conformance"] }
//! ```
//!
//! Nothing else: each generated test is a plain `#[test]` that runs its check on a fresh
//! multi-thread tokio runtime with 4 worker threads (what
//! `#[tokio::test(flavor = "multi_thread", worker_threads = 4)]` gives), built by the suite,
//! and awaits the constructor on that runtime (so a constructor may use tokio, an SDK
//! client, a temporary directory: keep whatever must outlive the test inside the backend
//! value). The generated modules `use super::*`, so the constructor may name whatever the
//! test file imports. Run one check with `cargo test conformance_messages::concurrent_appends`.
//!
//! # What is checked
//!
//! Every check is also a public async function in [`messages`], [`files`] or [`vault`],
//! taking an `Arc<dyn MessagesBackend>`, an `Arc<dyn FilesBackend>` or a
//! [`ChatVault`](crate::ChatVault) and a [`SuiteConfig`] (by value, so a check can be spawned); call them yourself (on a tokio
//! multi-thread runtime: concurrent writers are spawned tasks) to compose your own tests.
//! Each panics with a message naming the broken rule, and every check can fail: the suite's
//! own tests run it against deliberately broken backends.
//!
//! The backend's declared capabilities
//! ([`MessagesCapabilities`](crate::backend::MessagesCapabilities),
//! [`FilesCapabilities`](crate::backend::FilesCapabilities)) decide what is checked: a capability a
//! backend declares is held to the full rule; one it lacks is held to the documented
//! refusal ([`Error::NotSupported`](crate::Error::NotSupported) for search, listing every
//! user and signed URLs) or, for `concurrent_appends`, to the sequential rule. Every search
//! query, whatever it holds, must give what [`SearchQuery::parse`](crate::SearchQuery::parse)
//! decides: results, or [`Error::InvalidInput`](crate::Error::InvalidInput), never another
//! error (a fixed list of nasty queries, then a property test over arbitrary strings). Checks create
//! their own conversations under fresh ids and user ids, so a backend over a shared store
//! (a table, a bucket) can run them; `list_all_conversations` only looks for its own.
//! `multi_process` cannot be checked from one process: test it in the backend's own tests.
//!
//! Behaviour that only the vault can get wrong (reply-writer checkpoints, cleanup of a
//! failed attach, retried deletes) is tested in `chatvault-core`'s own tests, not here.
//!
//! # Test support
//!
//! [`Forward`] wraps a backend and passes every call to it through a hook
//! ([`MessagesHook`], [`FilesHook`]) that overrides only what a test changes: a fault
//! before some calls, a counter, a changed answer. [`RecordingFiles`] records uploads and
//! fails deletes on demand.

use std::fmt;

mod forward;
mod search;
mod util;
mod vault_branches;
mod vault_forget;

pub mod files;
pub mod messages;
pub mod shapes;
pub mod vault;

pub use forward::{Call, FilesHook, Forward, MessagesHook, cap_range};
pub use util::{Recording, RecordingFiles, generated_stream, stream_sha256};

/// Sizes of the suite's heavier checks. The defaults are what first-party backends are held
/// to; a slow backend (a remote store) may use smaller ones.
///
/// ```
/// use chatvault_core::conformance::SuiteConfig;
///
/// let config = SuiteConfig::default()
///     .concurrent_appends(8, 50)
///     .long_conversation(500);
/// assert_eq!(config.concurrent_writers, 8);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SuiteConfig {
    /// Concurrent appends to one conversation: this many writers (spawned tasks) at once...
    pub concurrent_writers: usize,
    /// ... each appending this many messages, one at a time.
    pub appends_per_writer: usize,
    /// Messages in the long-conversation checks (appended in batches of 50).
    pub long_conversation: usize,
    /// Size of the file streamed in and out in the large-file check; `None`: 64 MiB for a
    /// backend with bounded memory, 8 MiB otherwise.
    pub large_file_bytes: Option<u64>,
    /// Size of the large tool-call arguments; capped below the backend's
    /// `max_message_bytes`.
    pub large_arguments_bytes: usize,
    /// Tasks attaching files while another deletes the conversation.
    pub racing_attachers: usize,
    /// Arbitrary query strings each searching backend is asked in
    /// [`search_answers_arbitrary_queries`](messages::search_answers_arbitrary_queries).
    pub search_cases: u32,
}

impl Default for SuiteConfig {
    /// 16 writers x 200 appends, a 2,000-message conversation, 200 KB tool arguments,
    /// 8 racing attachers, 64 arbitrary search queries.
    fn default() -> Self {
        SuiteConfig {
            concurrent_writers: 16,
            appends_per_writer: 200,
            long_conversation: 2_000,
            large_file_bytes: None,
            large_arguments_bytes: 200 * 1024,
            racing_attachers: 8,
            search_cases: 64,
        }
    }
}

impl SuiteConfig {
    /// Sets the concurrent-append check's size.
    pub fn concurrent_appends(mut self, writers: usize, appends_per_writer: usize) -> Self {
        self.concurrent_writers = writers.max(1);
        self.appends_per_writer = appends_per_writer.max(1);
        self
    }

    /// Sets the long conversation's length.
    pub fn long_conversation(mut self, messages: usize) -> Self {
        self.long_conversation = messages.max(1);
        self
    }

    /// Sets the large file's size.
    pub fn large_file_bytes(mut self, bytes: u64) -> Self {
        self.large_file_bytes = Some(bytes);
        self
    }

    /// Sets the large tool arguments' size.
    pub fn large_arguments_bytes(mut self, bytes: usize) -> Self {
        self.large_arguments_bytes = bytes;
        self
    }

    /// Sets how many tasks attach files while the conversation is deleted.
    pub fn racing_attachers(mut self, tasks: usize) -> Self {
        self.racing_attachers = tasks.max(1);
        self
    }

    /// Sets how many arbitrary query strings the search property check tries.
    pub fn search_cases(mut self, cases: u32) -> Self {
        self.search_cases = cases.max(1);
        self
    }
}

impl fmt::Display for SuiteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} writers x {} appends, {} messages",
            self.concurrent_writers, self.appends_per_writer, self.long_conversation
        )
    }
}

/// Generates one `#[test]` per messages-backend check, in a module `conformance_messages`.
///
/// `messages_backend_tests!(constructor)` or `messages_backend_tests!(constructor, config)`:
/// the constructor is a future (an `async` block) giving a fresh
/// [`MessagesBackend`](crate::MessagesBackend); the optional config is a [`SuiteConfig`].
/// See the [module docs](crate::conformance).
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
#[macro_export]
macro_rules! messages_backend_tests {
    ($ctor:expr $(, $config:expr)? $(,)?) => {
        $crate::__conformance_tests!(conformance_messages, messages, $ctor, $crate::__conformance_config!($($config)?);
            create_and_read_back,
            append_assigns_seq_and_title,
            missing_conversations_are_not_found,
            message_ranges_and_cursors,
            natural_pages_cover_everything,
            metadata_updates_leave_messages_alone,
            file_records,
            list_user_conversations,
            listing_pages_survive_concurrent_creation,
            listing_ties_break_by_id,
            list_all_conversations,
            begin_delete_then_delete,
            marked_conversations_are_listed_until_deleted,
            long_conversation,
            concurrent_appends,
            idempotent_appends,
            concurrent_retries_store_once,
            append_checks_the_owner,
            update_message_is_versioned,
            racing_updates_one_wins,
            branches_edit_switch_rewind,
            racing_edits_keep_both,
            every_part_kind_round_trips,
            message_fields_round_trip,
            accepted_values_read_back,
            search,
            search_answers_nasty_queries,
            search_answers_arbitrary_queries,
        );
    };
}

/// Generates one `#[test]` per files-backend check, in a module `conformance_files`.
///
/// `files_backend_tests!(constructor)` or `files_backend_tests!(constructor, config)`: the
/// constructor is a future giving a fresh [`FilesBackend`](crate::FilesBackend). See the
/// [module docs](crate::conformance).
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
#[macro_export]
macro_rules! files_backend_tests {
    ($ctor:expr $(, $config:expr)? $(,)?) => {
        $crate::__conformance_tests!(conformance_files, files, $ctor, $crate::__conformance_config!($($config)?);
            upload_download_delete,
            odd_keys_round_trip_without_aliasing,
            failed_stream_uploads_store_nothing,
            large_file_streams,
            overwrites_are_never_mixed,
            signed_urls,
        );
    };
}

/// Generates one `#[test]` per vault-level check, in a module `conformance_vault`.
///
/// `vault_tests!(constructor)` or `vault_tests!(constructor, config)`: the constructor is a
/// future giving a fresh [`ChatVault`](crate::ChatVault) over the backends under test. See
/// the [module docs](crate::conformance).
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
#[macro_export]
macro_rules! vault_tests {
    ($ctor:expr $(, $config:expr)? $(,)?) => {
        $crate::__conformance_tests!(conformance_vault, vault, $ctor, $crate::__conformance_config!($($config)?);
            quick_start_flow,
            duplicate_ids_in_one_append_are_refused,
            refused_messages_store_nothing,
            largest_accepted_message_reads_back,
            delete_racing_attach_leaves_no_bytes,
            same_name_attachments,
            streamed_attachments,
            file_urls,
            archive_and_unarchive,
            reads_every_message,
            branches_through_the_vault,
            erase_owner_removes_everything_of_theirs,
            retention_hides_and_purge_removes,
            redact_leaves_a_tombstone,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($module:ident, $group:ident, $ctor:expr, $config:expr; $($check:ident),* $(,)?) => {
        #[allow(unused_imports)]
        mod $module {
            use super::*;
            $(
                #[test]
                fn $check() {
                    $crate::conformance::__private::run(async {
                        let config: $crate::conformance::SuiteConfig = $config;
                        let subject = $crate::conformance::__private::$group($ctor.await);
                        $crate::conformance::$group::$check(subject, config).await;
                    });
                }
            )*
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_config {
    () => {
        $crate::conformance::SuiteConfig::default()
    };
    ($config:expr) => {
        $config
    };
}

/// What the macros expand to; not a public API.
#[doc(hidden)]
pub mod __private {
    use std::future::Future;
    use std::sync::Arc;

    use crate::{ChatVault, FilesBackend, MessagesBackend};

    /// Runs a check on a fresh multi-thread runtime with 4 workers.
    pub fn run<F: Future<Output = ()>>(check: F) {
        match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(check),
            Err(e) => panic!("cannot start a tokio runtime for the conformance suite: {e}"),
        }
    }

    /// The messages backend under test.
    pub fn messages<B: MessagesBackend>(backend: B) -> Arc<dyn MessagesBackend> {
        Arc::new(backend)
    }

    /// The files backend under test.
    pub fn files<B: FilesBackend>(backend: B) -> Arc<dyn FilesBackend> {
        Arc::new(backend)
    }

    /// The vault under test.
    pub fn vault(vault: ChatVault) -> ChatVault {
        vault
    }
}
