//! The data model: conversations, messages, attachments, and the page and range types
//! the backends exchange.
//!
//! Every type here is `serde`-serializable; the JSON field names are part of the stable
//! format and are listed on each type.

mod basics;
mod conversation;
pub(crate) mod message;
mod options;
mod page;
mod part;
mod retention;
mod role;
mod search;
#[cfg(test)]
mod tests;
mod tree;

pub use basics::{
    MAX_JSON_DEPTH, MAX_MESSAGE_BYTES, MAX_METADATA_BYTES, MAX_PARTS, Metadata, Usage, now,
    validate_metadata,
};
pub use conversation::{
    ConversationHead, ConversationPatch, ConversationRecord, ConversationSummary, FileAttachment,
    HistoryEntry, StoredConversation, auto_title,
};
pub use message::{Message, MessageStatus, MessageUpdate, MessageUpdated, NewMessage};
pub use options::{ListCursor, ListOptions, PageLimit, SearchCursor, SearchOptions};
pub use page::{Appended, HitBranch, MessageRange, Page, SearchHit, sort_for_listing};
pub use part::{FilePart, FileSource, Part, ProviderPart, Reasoning, ToolCall, ToolResult};
pub use retention::{Expiry, Retention};
pub use role::Role;
pub use search::SearchQuery;
pub use tree::{ActiveLeaf, Parent, Run, Segment, Tree};
