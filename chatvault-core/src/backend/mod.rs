//! The two traits a storage backend implements, and what backends share.
//!
//! Every operation the vault uses is a **required** method with documented atomicity:
//! there is no provided fallback that reads and rewrites a whole conversation behind a
//! backend author's back. A backend declares what it can do in its capabilities, which the
//! vault and the conformance suite read. For a quick prototype over a store that can only
//! save and load whole conversations, implement [`SimpleBackend`]
//! instead and wrap it in [`SimpleAdapter`].
//!
//! A backend author finds everything here: `use chatvault_core::backend::*;` brings the
//! traits, the capabilities, the model types the traits exchange, the shared rules
//! ([`rules`]), the stream helpers and the simple adapter ([`simple`]).

mod capabilities;
pub mod rules;
mod shared;
pub mod simple;
mod stream;
mod traits;

pub use capabilities::{FilesCapabilities, MessagesCapabilities, ObjectMeta};
pub use rules::{
    apply_add_file, apply_remove_file, check_owner, check_replay, check_unique_ids, paginate,
};
pub use simple::{SimpleAdapter, SimpleBackend};
pub use stream::{ByteStream, bytes_stream, collect_stream, download_error, into_byte_stream};
pub use traits::{FilesBackend, FilesBackendExt, MessagesBackend, MessagesBackendExt};

pub use crate::error::{BoxError, Error, ErrorKind, Result};
pub use crate::ids::{ContentType, ConversationId, FileId, MessageId, StorageKey, UserId};
pub use crate::model::{
    ActiveLeaf, Appended, ConversationHead, ConversationPatch, ConversationRecord,
    ConversationSummary, FileAttachment, FilePart, FileSource, HitBranch, ListCursor, ListOptions,
    Message, MessageRange, MessageStatus, MessageUpdate, MessageUpdated, Metadata, NewMessage,
    Page, PageLimit, Parent, Part, ProviderPart, Reasoning, Role, Run, SearchCursor, SearchHit,
    SearchOptions, SearchQuery, Segment, StoredConversation, ToolCall, ToolResult, Tree, Usage,
    auto_title, now, sort_for_listing, validate_metadata,
};
pub use async_trait::async_trait;
