#![doc = include_str!("../README.md")]
//!
//! ## Writing a backend
//!
//! Two ways, both checked by the same conformance suite:
//!
//! - **Quick**: implement [`SimpleBackend`]'s four methods (save, get, get by user, delete
//!   a whole conversation: the Python library's shape) and wrap it in [`SimpleAdapter`].
//!   Atomic within one process, not across processes, and every append rewrites the
//!   conversation; the [`simple`] module says exactly what it guarantees.
//! - **Full**: implement [`MessagesBackend`] directly. Every method is required and says
//!   what must be atomic; shared rules ([`ConversationRecord::apply_append`],
//!   [`ConversationRecord::apply_message_update`], [`check_replay`], [`apply_add_file`],
//!   [`paginate`], [`SearchQuery::parse`]) keep every backend's semantics identical.
//!
//! Then run the conformance suite from your crate's tests (feature `conformance`); see the
//! `conformance` module.
//!
//! ## Semantics in brief
//!
//! - Ids are validated newtypes ([`ids`]): parse once, and no backend sees a bad id. New
//!   ids are UUID v7.
//! - Messages are ordered by `seq` (1, 2, 3, ...), assigned atomically on append; message
//!   ids make appends idempotent, so a retry after a lost answer stores nothing twice.
//! - Updating a message is versioned ([`Message::revision`]): of two racing writers,
//!   exactly one wins, the other gets [`Error::Conflict`].
//! - The title comes from the first user message unless set: [`auto_title`].
//! - Attachments are stored under [`keys::storage_key`]: one key per attachment, every
//!   component encoded so that no key leaves a backend's root.
//! - Listings are newest activity first, paged with an opaque cursor that never skips or
//!   repeats a conversation while new ones are created.
//! - Every failure is an [`Error`] with an [`ErrorKind`]; [`Error::is_temporary`] is true
//!   only where a blind retry is safe.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod error;
pub mod ids;
pub mod keys;
pub mod message;
mod model;
mod role;
mod search;
pub mod simple;
mod vault;

#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;

pub use async_trait::async_trait;
pub use backend::{
    ByteStream, FilesBackend, FilesBackendExt, FilesCapabilities, MessagesBackend,
    MessagesCapabilities, ObjectMeta, apply_add_file, apply_remove_file, bytes_stream,
    collect_stream, download_error, into_byte_stream, paginate,
};
pub use error::{BoxError, Error, ErrorKind, Result};
pub use ids::{ContentType, ConversationId, FileId, MessageId, StorageKey, UserId};
pub use message::{
    FilePart, FileSource, MessageStatus, MessageUpdate, MessageUpdated, NewMessage, Part,
    ProviderPart, Reasoning, ToolCall, ToolResult, Usage, check_replay, check_unique_ids,
};
pub use model::{
    Appended, ConversationHead, ConversationPatch, ConversationRecord, ConversationSummary,
    FileAttachment, HistoryEntry, ListCursor, ListOptions, Message, MessageRange, Metadata, Page,
    Role, SearchHit, SearchOptions, StoredConversation, auto_title, now, sort_for_listing,
    validate_metadata,
};
pub use search::SearchQuery;
pub use simple::{SimpleAdapter, SimpleBackend, revision_conflict};
pub use vault::{ChatVault, Conversation, NewConversation, ReplyOptions, ReplyWriter, sha256_hex};
