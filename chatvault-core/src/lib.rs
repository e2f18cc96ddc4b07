#![doc = include_str!("../README.md")]
#![doc = include_str!("../docs/writing-a-backend.md")]
#![doc = include_str!("../docs/semantics.md")]
#![doc = include_str!("../docs/branches.md")]
#![doc = include_str!("../docs/forgetting.md")]
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

// The crate root is what an app uses. A backend author imports
// `chatvault_core::backend::*`, which re-exports the traits, the capabilities, the
// exchange types, the shared rules, the stream helpers and the simple adapter.
pub use backend::{ByteStream, FilesBackend, MessagesBackend};
pub use digest::sha256_hex;
pub use error::{BoxError, Error, ErrorKind, Result};
pub use ids::{ContentType, ConversationId, FileId, MessageId, StorageKey, UserId};
pub use model::message::text_of;
pub use model::{
    ActiveLeaf, Appended, ConversationPatch, ConversationRecord, ConversationSummary, Expiry,
    FileAttachment, FilePart, FileSource, HistoryEntry, HitBranch, ListCursor, ListOptions,
    MAX_JSON_DEPTH, MAX_MESSAGE_BYTES, MAX_METADATA_BYTES, MAX_PARTS, Message, MessageRange,
    MessageStatus, MessageUpdate, MessageUpdated, Metadata, NewMessage, Page, PageLimit, Parent,
    Part, ProviderPart, Reasoning, Retention, Role, SearchCursor, SearchHit, SearchOptions,
    SearchQuery, Segment, ToolCall, ToolResult, Tree, Usage,
};
pub use vault::{
    Branches, CHECKPOINT_KEY, ChatVault, Checkpoint, Conversation, FollowOptions, ForgetOptions,
    ForgetProgress, ForgetReport, Forgetting, MAX_REDACTION_REASON, NewConversation,
    REDACTED_TITLE, REDACTION_KEY, Redacted, Redaction, RedactionPlan, ReplyEvent, ReplyFollower,
    ReplyOptions, ReplyWriter, Siblings,
};
