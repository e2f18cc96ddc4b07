#![doc = include_str!("../README.md")]
//!
#![doc = include_str!("../docs/format.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod blobs;
mod error;
mod export;
mod format;
pub mod import;
mod progress;
mod reader;
mod restore;
mod store;
mod verify;
mod writer;

pub use error::{ArchiveError, Result};
pub use export::{ExportOptions, export, export_with};
pub use format::{
    BLOBS_DIR, CONVERSATIONS_DIR, Counts, FORMAT_VERSION, FileEntry, FormatVersion, MANIFEST,
    Manifest, blob_path, conversation_path,
};
pub use import::archive::{ImportOptions, copy, import};
pub use progress::{OnProgress, Progress, no_progress};
pub use reader::{ArchiveReader, ConversationReader};
pub use restore::ImportReport;
pub use store::{ConversationIds, Scope, Store};
pub use verify::{MAX_LISTED_PROBLEMS, Problem, VerifyReport, verify_archive, verify_store};
pub use writer::{ArchiveWriter, Spool};
