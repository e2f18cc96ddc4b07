#![doc = include_str!("../README.md")]
#![doc = include_str!("../docs/writing-a-backend.md")]
#![doc = include_str!("../docs/semantics.md")]
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
};
pub use backend::{SimpleAdapter, SimpleBackend};
pub use digest::sha256_hex;
pub use error::{BoxError, Error, ErrorKind, Result};
pub use ids::{ContentType, ConversationId, FileId, MessageId, StorageKey, UserId};
pub use model::{
    Appended, ConversationHead, ConversationPatch, ConversationRecord, ConversationSummary,
    FileAttachment, FilePart, FileSource, HistoryEntry, ListCursor, ListOptions, Message,
    MessageRange, MessageStatus, MessageUpdate, MessageUpdated, Metadata, NewMessage, Page,
    PageLimit, Part, ProviderPart, Reasoning, Role, SearchCursor, SearchHit, SearchOptions,
    SearchQuery, StoredConversation, ToolCall, ToolResult, Usage, auto_title, now,
    sort_for_listing, validate_metadata,
};
pub use vault::{ChatVault, Conversation, NewConversation, ReplyOptions, ReplyWriter};
