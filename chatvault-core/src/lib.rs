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

pub mod backend;
mod digest;
mod error;
pub mod ids;
pub mod keys;
mod model;
mod vault;

#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;

/// Messages: typed content parts, status, usage, and the write types backends exchange
/// (the path kept from 0.1; the same items are re-exported at the crate root).
pub mod message {
    pub use crate::backend::rules::{check_replay, check_unique_ids};
    pub use crate::model::message::*;
    pub use crate::model::{
        FilePart, FileSource, MAX_JSON_DEPTH, MAX_MESSAGE_BYTES, MAX_METADATA_BYTES, MAX_PARTS,
        Part, ProviderPart, Reasoning, ToolCall, ToolResult, Usage,
    };
}

pub use async_trait::async_trait;
pub use backend::simple;
pub use backend::{
    ByteStream, FilesBackend, FilesBackendExt, FilesCapabilities, MessagesBackend,
    MessagesCapabilities, ObjectMeta, apply_add_file, apply_remove_file, bytes_stream,
    check_replay, check_unique_ids, collect_stream, download_error, into_byte_stream, paginate,
    revision_conflict,
};
pub use backend::{SimpleAdapter, SimpleBackend};
pub use digest::sha256_hex;
pub use error::{BoxError, Error, ErrorKind, Result};
pub use ids::{ContentType, ConversationId, FileId, MessageId, StorageKey, UserId};
pub use model::{
    Appended, ConversationHead, ConversationPatch, ConversationRecord, ConversationSummary,
    FileAttachment, FilePart, FileSource, HistoryEntry, ListCursor, ListOptions, Message,
    MessageRange, MessageStatus, MessageUpdate, MessageUpdated, Metadata, NewMessage, Page, Part,
    ProviderPart, Reasoning, Role, SearchHit, SearchOptions, SearchQuery, StoredConversation,
    ToolCall, ToolResult, Usage, auto_title, now, sort_for_listing, validate_metadata,
};
pub use vault::{ChatVault, Conversation, NewConversation, ReplyOptions, ReplyWriter};
