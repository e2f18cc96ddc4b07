//! The JSON bodies the API takes and gives, with their OpenAPI schemas.
//!
//! Responses are views of the core types (`chatvault_core::ConversationRecord`, ...):
//! the same field names, minus what is internal to storage (an attachment's storage key).

use chatvault_core::{
    Conversation, ConversationId, ConversationRecord, ConversationSummary, FileAttachment, FileId,
    HitBranch, Message, MessageId, MessageStatus, Metadata, Part, Usage, UserId,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Token usage: of one model call (on a message) or running totals (on a conversation).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageView {
    /// Input (prompt) tokens, cached ones included.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output (completion) tokens, reasoning ones included.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens served from the provider's cache.
    #[serde(default)]
    pub cached_input_tokens: u64,
    /// Output tokens spent on reasoning.
    #[serde(default)]
    pub reasoning_tokens: u64,
    /// The model (on a message's usage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl From<Usage> for UsageView {
    fn from(u: Usage) -> Self {
        UsageView {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cached_input_tokens: u.cached_input_tokens,
            reasoning_tokens: u.reasoning_tokens,
            model: u.model,
        }
    }
}

impl From<UsageView> for Usage {
    fn from(u: UsageView) -> Self {
        Usage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cached_input_tokens: u.cached_input_tokens,
            reasoning_tokens: u.reasoning_tokens,
            model: u.model,
        }
    }
}

/// A conversation's record (its messages are read through the message routes, a page
/// at a time).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ConversationView {
    /// The conversation's id.
    #[schema(value_type = String)]
    pub id: ConversationId,
    /// Its owner.
    #[schema(value_type = Option<String>)]
    pub user_id: Option<UserId>,
    /// Its title (set, or from the first user message).
    pub title: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When a message or file was last added.
    pub last_active: DateTime<Utc>,
    /// Whether it is archived.
    pub archived: bool,
    /// Free-form metadata (a JSON object).
    #[schema(value_type = Object)]
    pub metadata: Metadata,
    /// How many messages it holds; also the `seq` of the newest.
    pub message_count: u64,
    /// How many attachments it holds.
    pub file_count: u64,
    /// Token usage totals.
    pub usage: UsageView,
    /// Revision of the record, growing with every change.
    pub version: u64,
    /// The `seq` of the active branch's last message (the leaf): `GET .../messages` pages
    /// the path from the first message to it. `null` when there are no messages.
    pub active_leaf: Option<u64>,
    /// How many messages the active path holds (`message_count` counts every branch).
    pub path_length: u64,
}

impl From<ConversationRecord> for ConversationView {
    fn from(r: ConversationRecord) -> Self {
        ConversationView {
            active_leaf: r.active_leaf(),
            path_length: r.path_len(),
            id: r.id,
            user_id: r.user_id,
            title: r.title,
            created_at: r.created_at,
            last_active: r.last_active,
            archived: r.archived,
            metadata: r.metadata,
            message_count: r.message_count,
            file_count: r.file_count,
            usage: r.usage.into(),
            version: r.version,
        }
    }
}

/// A conversation in a list.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SummaryView {
    /// The conversation's id.
    #[schema(value_type = String)]
    pub id: ConversationId,
    /// Its owner.
    #[schema(value_type = Option<String>)]
    pub user_id: Option<UserId>,
    /// Its title.
    pub title: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When a message or file was last added.
    pub last_active: DateTime<Utc>,
    /// Whether it is archived.
    pub archived: bool,
    /// How many messages it holds.
    pub message_count: u64,
    /// How many attachments it holds.
    pub file_count: u64,
    /// Token usage totals.
    pub usage: UsageView,
}

impl From<ConversationSummary> for SummaryView {
    fn from(s: ConversationSummary) -> Self {
        SummaryView {
            id: s.id,
            user_id: s.user_id,
            title: s.title,
            created_at: s.created_at,
            last_active: s.last_active,
            archived: s.archived,
            message_count: s.message_count,
            file_count: s.file_count,
            usage: s.usage.into(),
        }
    }
}

/// A file attached to a conversation.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FileView {
    /// The attachment's id: how every file route addresses it.
    #[schema(value_type = String)]
    pub id: FileId,
    /// The file name as uploaded (the download name).
    pub filename: String,
    /// Its media type, from the upload's part.
    #[schema(value_type = String)]
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
    /// When it was attached.
    pub uploaded_at: DateTime<Utc>,
    /// Free-form metadata.
    #[schema(value_type = Object)]
    pub metadata: Metadata,
}

impl From<FileAttachment> for FileView {
    fn from(f: FileAttachment) -> Self {
        FileView {
            id: f.id,
            filename: f.filename,
            content_type: f.content_type.as_str().to_owned(),
            size: f.size,
            sha256: f.sha256,
            uploaded_at: f.uploaded_at,
            metadata: f.metadata,
        }
    }
}

impl FileView {
    /// The views of `files`, in their order.
    pub(crate) fn all(files: &[FileAttachment]) -> Vec<FileView> {
        files.iter().cloned().map(FileView::from).collect()
    }
}

/// Where a message is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusView {
    /// Stored before any content (a reply about to stream).
    Pending,
    /// Content is arriving; what is stored is the last checkpoint.
    Streaming,
    /// Whole.
    Complete,
    /// Its writer stopped before finishing.
    Interrupted,
    /// Its writer reported a failure.
    Failed,
    /// Stopped by a reader while it streamed (`POST .../stop`); the content is what was
    /// stored then.
    Stopped,
}

impl StatusView {
    /// Whether the message is still being written.
    pub fn is_in_progress(self) -> bool {
        matches!(self, StatusView::Pending | StatusView::Streaming)
    }
}

impl From<MessageStatus> for StatusView {
    fn from(s: MessageStatus) -> Self {
        match s {
            MessageStatus::Pending => StatusView::Pending,
            MessageStatus::Streaming => StatusView::Streaming,
            MessageStatus::Complete => StatusView::Complete,
            MessageStatus::Failed => StatusView::Failed,
            MessageStatus::Stopped => StatusView::Stopped,
            // Interrupted, and any status a later core release adds: not in progress.
            _ => StatusView::Interrupted,
        }
    }
}

/// A stored message.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MessageView {
    /// The message's id.
    #[schema(value_type = String)]
    pub id: MessageId,
    /// Its number in the conversation, in the order messages were stored on any branch:
    /// 1 for the first. Along a branch, `seq` grows.
    pub seq: u64,
    /// Who wrote it: `user`, `assistant`, `system`, `tool`, or another role.
    pub role: String,
    /// Its text parts joined: the plain-text view.
    pub content: String,
    /// The content, in order: `{"type": "text", "text": ...}`, `{"type": "file",
    /// "file_id": ...}`, `{"type": "tool_call", ...}`, `{"type": "tool_result", ...}`,
    /// `{"type": "reasoning", ...}`, `{"type": "provider", ...}`.
    #[schema(value_type = Vec<Object>)]
    pub parts: Vec<Part>,
    /// Where it is in its life; a reply whose writer died reads `interrupted`.
    pub status: StatusView,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last updated.
    pub updated_at: Option<DateTime<Utc>>,
    /// Grows by one with every update (a streamed reply's checkpoints).
    pub revision: u64,
    /// Free-form metadata.
    #[schema(value_type = Object)]
    pub metadata: Metadata,
    /// Token usage of the model call that produced it.
    pub usage: Option<UsageView>,
    /// Why it failed, when it did.
    pub failure: Option<String>,
    /// The `seq` of the message it follows; `null` for a first message.
    pub parent: Option<u64>,
    /// Its place among its versions (the messages that follow the same one, oldest
    /// first), from 0: a "< 2/3 >" control shows `sibling_index + 1` of `sibling_count`.
    pub sibling_index: usize,
    /// How many versions there are (1 when it was never edited or regenerated). 0 (with
    /// index 0) where the answer carries no branch table: in search hits.
    pub sibling_count: usize,
}

impl MessageView {
    /// The view of `m` with its place among its versions, `(index, count)` as
    /// `chatvault_core::Conversation::version_of` gives it.
    pub(crate) fn with_versions(m: Message, (index, count): (usize, usize)) -> Self {
        MessageView {
            sibling_index: index,
            sibling_count: count,
            ..MessageView::from(m)
        }
    }

    /// The views of `messages` of `conversation`, each with its place among its versions
    /// from the branch table the handle holds.
    pub(crate) fn all_in(messages: Vec<Message>, conversation: &Conversation) -> Vec<Self> {
        messages
            .into_iter()
            .map(|m| {
                let versions = conversation.version_of(m.seq);
                MessageView::with_versions(m, versions)
            })
            .collect()
    }
}

/// A message without its branch table: `sibling_index` and `sibling_count` are 0 (see
/// [`MessageView::sibling_count`]).
impl From<Message> for MessageView {
    fn from(m: Message) -> Self {
        MessageView {
            parent: m.parent,
            sibling_index: 0,
            sibling_count: 0,
            content: m.content(),
            id: m.id,
            seq: m.seq,
            role: m.role.as_str().to_owned(),
            parts: m.parts,
            status: m.status.into(),
            created_at: m.created_at,
            updated_at: m.updated_at,
            revision: m.revision,
            metadata: m.metadata,
            usage: m.usage.map(Into::into),
            failure: m.failure,
        }
    }
}

/// A conversation with its attachments (messages: see the message routes).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ConversationDetail {
    /// The record.
    pub conversation: ConversationView,
    /// The attachments, oldest first.
    pub files: Vec<FileView>,
}

/// A page of the caller's conversations.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ConversationList {
    /// This page, newest activity first.
    pub items: Vec<SummaryView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// The conversation named by the `current` query parameter, when the caller owns it.
    pub current: Option<ConversationView>,
}

/// A window of messages, in `seq` order.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MessagePage {
    /// The messages, oldest first.
    pub items: Vec<MessageView>,
    /// Pass as `cursor` (with the same other parameters) for the next window in the same
    /// direction; absent when there is none.
    pub next_cursor: Option<String>,
}

/// The versions of a message: it and its siblings (the messages that follow the same
/// one), oldest first.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SiblingsView {
    /// The versions, by ascending `seq`.
    pub items: Vec<MessageView>,
    /// The position of the message asked about in `items`, from 0.
    pub index: usize,
}

/// Body of `POST /conversations/{id}/messages/{message_id}/fork` (optional: no body
/// makes a fork with the source's title).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForkConversation {
    /// The new conversation's id (default: a new one). Retrying a fork with the same id
    /// finishes it rather than making a second one.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub id: Option<ConversationId>,
    /// Its title (default: the source's).
    #[serde(default)]
    pub title: Option<String>,
    /// Its metadata (default: none).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Metadata>,
}

/// Body of `POST /conversations/{id}/messages/{message_id}/redact`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedactMessage {
    /// Why the message is redacted: 1 to 1024 bytes
    /// (`chatvault_core::MAX_REDACTION_REASON`), not blank. Kept in the tombstone.
    pub reason: String,
}

/// What `POST /conversations/{id}/messages/{message_id}/redact` did.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RedactedView {
    /// The tombstone as stored: no parts, empty `content`, and only the redaction
    /// (`{"reason": ..., "at": ...}`) in its metadata under `chatvault_redacted`; its id,
    /// seq, parent, role, times and usage are the message's.
    pub message: MessageView,
    /// The ids of the attachments only this message referenced, now deleted (bytes and
    /// record); attachments another message also references stay.
    #[schema(value_type = Vec<String>)]
    pub files_deleted: Vec<FileId>,
}

/// A search hit.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SearchHitView {
    /// The conversation.
    pub conversation: SummaryView,
    /// The message that matched.
    pub message: MessageView,
    /// An excerpt around the match, when the backend makes one.
    pub snippet: Option<String>,
    /// Which branch the message is on (absent when it could not be told).
    pub branch: Option<HitBranchView>,
}

/// Where a search hit's message stands in its conversation's branches.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
pub struct HitBranchView {
    /// Whether the message is on the active path (what `GET .../messages` pages).
    pub active: bool,
    /// The leaf of the branch the message is on (the one a switch to it shows): page it
    /// with `GET .../messages?leaf=`.
    pub leaf: u64,
}

impl From<HitBranch> for HitBranchView {
    fn from(b: HitBranch) -> Self {
        HitBranchView {
            active: b.active,
            leaf: b.leaf,
        }
    }
}

/// A page of search hits.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SearchPage {
    /// The hits, best first.
    pub items: Vec<SearchHitView>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// A download link.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FileUrl {
    /// The URL: the files backend's own signed URL, or this router's signed download
    /// route (a path on this server) for backends without them.
    pub url: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// What `POST /chat` did.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ChatResult {
    /// The conversation, after the message was added.
    pub conversation: ConversationView,
    /// The user's message as stored (its parts reference the uploaded files).
    pub message: MessageView,
    /// The files uploaded with it.
    pub files: Vec<FileView>,
    /// Whether the conversation was created by this call.
    pub created: bool,
}

/// Body of `POST /conversations`.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConversation {
    /// A title (otherwise the first user message gives one).
    #[serde(default)]
    pub title: Option<String>,
    /// Metadata (a JSON object).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Metadata>,
}

/// Body of `PATCH /conversations/{id}`: fields left out are kept.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchConversation {
    /// A new title.
    #[serde(default)]
    pub title: Option<String>,
    /// New metadata, replacing the old.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Metadata>,
    /// Archive (`true`) or unarchive (`false`).
    #[serde(default)]
    pub archived: Option<bool>,
}

/// Body of `POST /conversations/{id}/messages`: `text` or `parts`, not both.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMessage {
    /// The message id to store it under (default: a new one). Retrying an add with the
    /// same id stores the message at most once.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub id: Option<MessageId>,
    /// Who wrote it (default `user`).
    #[serde(default)]
    pub role: Option<String>,
    /// Plain text: one text part.
    #[serde(default)]
    pub text: Option<String>,
    /// The parts (see [`MessageView::parts`]).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub parts: Option<Vec<Part>>,
    /// Metadata.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Metadata>,
    /// Token usage of the model call that produced it.
    #[serde(default)]
    pub usage: Option<UsageView>,
}

/// Query of `GET /conversations`.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size, 1..=1000 (default 50).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Include archived conversations (default false).
    pub include_archived: Option<bool>,
    /// A conversation to return in full beside the page (the one the app has open).
    #[param(value_type = Option<String>)]
    pub current: Option<ConversationId>,
}

/// Query of `GET /conversations/{id}/messages`: at most one of `after`, `before`,
/// `last`; none means from the start. The window is of the active branch's messages
/// (from the first to the active leaf), or of the branch that ends at `leaf`.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MessagesQuery {
    /// Messages with `seq` greater than this, oldest first.
    pub after: Option<u64>,
    /// The newest messages with `seq` less than this.
    pub before: Option<u64>,
    /// The newest `last` messages.
    pub last: Option<usize>,
    /// At most this many, 1..=1000 (default 100).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous window: continues in the same direction.
    pub cursor: Option<String>,
    /// Page the branch that ends at this message (a `seq`, on any branch) instead of the
    /// active one.
    pub leaf: Option<u64>,
}

/// Query of `GET /conversations/{id}/files/{file_id}/url`.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UrlQuery {
    /// Seconds the link works for, 1..=604800 (default: the router's setting).
    pub expires_in: Option<u64>,
}

/// Query of the signed download route.
#[derive(Clone, Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignedQuery {
    /// When the link stops working (Unix seconds).
    pub expires: i64,
    /// The link's signature.
    pub sig: String,
}

/// Query of `GET /search`.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// What to look for.
    pub q: String,
    /// Page size, 1..=1000 (default 20).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Search archived conversations too.
    pub include_archived: Option<bool>,
}

/// Query of `GET /conversations/{id}/messages/{seq}/events`.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only send the message once its revision is above this (default 0: at once).
    pub after_revision: Option<u64>,
}

/// The query of the stream route.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Where to start, in bytes (UTF-8) of the reply's text: the `id` of the last event
    /// received (default 0). A `Last-Event-ID` header, which a browser's `EventSource`
    /// sends when it reconnects, takes precedence.
    pub offset: Option<u64>,
}

/// The data of a `delta` event of the stream route: more of the reply's text.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DeltaView {
    /// Where `text` starts, in bytes (UTF-8) of the reply's text.
    pub offset: u64,
    /// The text stored after `offset`; the event's `id` is `offset` plus its length in
    /// bytes: the offset to resume from.
    pub text: String,
}

/// The multipart form of an upload: one `file` part.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct UploadForm {
    /// The file; its part's filename and content type are kept.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    file: String,
}

/// The multipart form of `POST /chat`. Text fields must come before the files.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ChatForm {
    /// The conversation to add to; absent: a new one is created.
    conversation_id: Option<String>,
    /// The title of a new conversation.
    title: Option<String>,
    /// The user's message text.
    message: String,
    /// Files to attach (any number of parts named `file`).
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    file: Option<Vec<String>>,
}
