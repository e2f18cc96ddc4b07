#![doc = include_str!("../README.md")]
//!
//! Both types do their file I/O on tokio's blocking pool (`spawn_blocking`), so they must
//! be used inside a tokio runtime. A call waiting for a conversation's lock waits on a
//! blocking-pool thread; an operation, once started there, runs to its end even if its
//! future is dropped (so an append is never cut in half by a cancelled task).
//!
//! The sections below are the store's contract in detail: its files, what each operation
//! costs, how the listing index stays right, how attachments are kept, what survives a
//! crash, and how threads and processes share a store.
//!
#![doc = include_str!("../docs/layout.md")]
#![doc = include_str!("../docs/costs.md")]
#![doc = include_str!("../docs/listing-index.md")]
#![doc = include_str!("../docs/files.md")]
#![doc = include_str!("../docs/crash-safety.md")]
#![doc = include_str!("../docs/concurrency.md")]
#![forbid(unsafe_code)]

mod error;
mod files;
mod fsutil;
mod listing;
mod log;
mod messages;

pub use error::{CorruptData, IoError};
pub use files::{DOWNLOAD_CHUNK, LocalFiles};
pub use log::MAX_RECORD_BYTES;
pub use messages::{FORMAT_VERSION, LocalMessages, MAX_PAGE, RepairItem, RepairReport};

/// How many flushes to disk (`fsync`, `fdatasync`, `syncfs`) this process's
/// [`LocalMessages`] stores (and the helpers they share with [`LocalFiles`]) have issued
/// so far. For benchmarks and tests: the difference across an operation is its flush
/// count.
pub fn fsync_count() -> u64 {
    fsutil::fsync_count()
}
