//! Messages: typed content parts, status, usage, and the write types backends exchange.
//!
//! # The stored JSON form (stable)
//!
//! A message is an object with `id`, `seq`, `role`, `parts`, `status`, `created_at`,
//! `updated_at` (null until updated), `revision`, `metadata`, `usage` (null when none),
//! `failure` (null unless failed) and `lease_expires_at` (null unless streaming). Each part
//! is an object with a `type`:
//!
//! ```json
//! {"type": "text", "text": "Hello!"}
//! {"type": "file", "file_id": "0190...", "media_type": "application/pdf", "filename": "a.pdf"}
//! {"type": "file", "url": "https://example.com/cat.png", "media_type": "image/png"}
//! {"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}}
//! {"type": "tool_result", "call_id": "call_1", "content": [{"type": "text", "text": "4°C"}], "is_error": false}
//! {"type": "reasoning", "text": "Let me think...", "signature": "EqQBCkgI...", "redacted": false}
//! {"type": "provider", "provider": "openai", "kind": "web_search_call", "data": {"id": "ws_1"}}
//! ```
//!
//! A part whose `type` a release does not know (written by a later one) is kept as
//! [`Part::Unknown`] with its JSON exactly, and written back unchanged. Messages written by
//! 0.1 releases (`"content": "text"`, no `parts`) read as one text part.
//!
//! Every value that comes back from a backend is what was written: reasoning signatures and
//! provider data byte-exact, numbers in tool arguments and metadata exactly.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::ids::{ContentType, FileId, MessageId};
use crate::model::{Metadata, Role, now};

/// The deepest nesting of JSON (metadata, tool arguments, provider data, nested tool
/// results) that ChatVault accepts. Every backend reads back anything this deep.
pub const MAX_JSON_DEPTH: usize = 64;
/// The largest message ChatVault accepts, in bytes of its JSON form. A backend may declare
/// a lower limit in its capabilities
/// ([`MessagesCapabilities::max_message_bytes`](crate::MessagesCapabilities)).
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
/// The largest metadata object accepted on a conversation, in bytes of its JSON form.
pub const MAX_METADATA_BYTES: usize = 256 * 1024;
/// The most parts one message may have.
pub const MAX_PARTS: usize = 10_000;

/// One piece of a message's content.
///
/// See the [module docs](crate::message) for the JSON form of each kind.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Part {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// A file: one of the conversation's attachments, or an external URL.
    File(FilePart),
    /// The model asks for a tool to be run.
    ToolCall(ToolCall),
    /// A tool's answer to a [`Part::ToolCall`].
    ToolResult(ToolResult),
    /// The model's reasoning: text and/or an opaque provider signature, kept byte-exact.
    Reasoning(Reasoning),
    /// Provider-specific data that has no typed part (a typed escape hatch).
    Provider(ProviderPart),
    /// A part of a kind this release does not know (written by a later release), kept
    /// exactly as stored and written back unchanged.
    Unknown(serde_json::Value),
}

/// A file inside a message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FilePart {
    /// Where the bytes are.
    #[serde(flatten)]
    pub source: FileSource,
    /// The file's MIME type, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<ContentType>,
    /// The file's name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// Where a [`FilePart`]'s bytes are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FileSource {
    /// One of the conversation's attachments (`{"file_id": ...}`).
    Attachment {
        /// The attachment's id.
        file_id: FileId,
    },
    /// A URL (`{"url": ...}`): `https://`, or a `data:` URL.
    Url {
        /// The URL.
        url: String,
    },
}

/// A tool call made by the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, which its [`ToolResult::call_id`] repeats.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments, as JSON (providers that send a string of JSON are parsed; a string
    /// that is not JSON is kept as a JSON string).
    #[serde(default)]
    pub arguments: serde_json::Value,
}

/// A tool's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The [`ToolCall::id`] this answers.
    pub call_id: String,
    /// The result's content: text, files, ...
    #[serde(default)]
    pub content: Vec<Part>,
    /// Whether the tool failed.
    #[serde(default)]
    pub is_error: bool,
}

/// Reasoning ("thinking") produced by a model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reasoning {
    /// The reasoning text or summary, when the provider shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// An opaque signature or encrypted blob the provider needs back byte-exact
    /// (Anthropic's `signature` or `redacted_thinking` data, OpenAI's
    /// `encrypted_content`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Whether the provider redacted the reasoning (the signature then holds its data).
    #[serde(default)]
    pub redacted: bool,
}

/// Provider-specific data kept as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderPart {
    /// The provider: `"openai"`, `"anthropic"`, ...
    pub provider: String,
    /// What it is, in the provider's terms: `"web_search_call"`, ...
    pub kind: String,
    /// The data, exactly as the provider gave it.
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Part {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Part::Text { text: text.into() }
    }

    /// A file part for one of the conversation's attachments.
    pub fn attachment(file_id: FileId, media_type: Option<ContentType>) -> Self {
        Part::File(FilePart {
            source: FileSource::Attachment { file_id },
            media_type,
            filename: None,
        })
    }

    /// A file part for a URL.
    pub fn url(url: impl Into<String>, media_type: Option<ContentType>) -> Self {
        Part::File(FilePart {
            source: FileSource::Url { url: url.into() },
            media_type,
            filename: None,
        })
    }

    /// A tool call part.
    pub fn tool_call(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: serde_json::Value,
    ) -> Self {
        Part::ToolCall(ToolCall {
            id: id.into(),
            name: name.into(),
            arguments,
        })
    }

    /// A tool result part holding text.
    pub fn tool_result(
        call_id: impl Into<String>,
        text: impl Into<String>,
        is_error: bool,
    ) -> Self {
        Part::ToolResult(ToolResult {
            call_id: call_id.into(),
            content: vec![Part::text(text)],
            is_error,
        })
    }

    /// The part's `type` in the JSON form.
    pub fn kind(&self) -> &str {
        match self {
            Part::Text { .. } => "text",
            Part::File(_) => "file",
            Part::ToolCall(_) => "tool_call",
            Part::ToolResult(_) => "tool_result",
            Part::Reasoning(_) => "reasoning",
            Part::Provider(_) => "provider",
            Part::Unknown(v) => v.get("type").and_then(|t| t.as_str()).unwrap_or("unknown"),
        }
    }

    /// The text of a text part.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Part::Text { text } => Some(text),
            _ => None,
        }
    }

    fn to_value(&self) -> std::result::Result<serde_json::Value, serde_json::Error> {
        use serde_json::{Value, json};
        let tagged = |tag: &str, mut v: Value| {
            if let Value::Object(map) = &mut v {
                map.insert("type".into(), Value::String(tag.into()));
            }
            v
        };
        Ok(match self {
            Part::Text { text } => json!({"type": "text", "text": text}),
            Part::File(p) => tagged("file", serde_json::to_value(p)?),
            Part::ToolCall(p) => tagged("tool_call", serde_json::to_value(p)?),
            Part::ToolResult(p) => tagged("tool_result", serde_json::to_value(p)?),
            Part::Reasoning(p) => tagged("reasoning", serde_json::to_value(p)?),
            Part::Provider(p) => tagged("provider", serde_json::to_value(p)?),
            Part::Unknown(v) => v.clone(),
        })
    }

    fn from_value(value: serde_json::Value) -> std::result::Result<Self, String> {
        let kind = value
            .get("type")
            .and_then(|t| t.as_str())
            .ok_or("a message part needs a string \"type\"")?
            .to_owned();
        let typed = |v| -> std::result::Result<Part, String> {
            Ok(match kind.as_str() {
                "text" => {
                    #[derive(Deserialize)]
                    struct T {
                        text: String,
                    }
                    let t: T = serde_json::from_value(v).map_err(|e| e.to_string())?;
                    Part::Text { text: t.text }
                }
                "file" => Part::File(serde_json::from_value(v).map_err(|e| e.to_string())?),
                "tool_call" => {
                    Part::ToolCall(serde_json::from_value(v).map_err(|e| e.to_string())?)
                }
                "tool_result" => {
                    Part::ToolResult(serde_json::from_value(v).map_err(|e| e.to_string())?)
                }
                "reasoning" => {
                    Part::Reasoning(serde_json::from_value(v).map_err(|e| e.to_string())?)
                }
                "provider" => Part::Provider(serde_json::from_value(v).map_err(|e| e.to_string())?),
                _ => Part::Unknown(v),
            })
        };
        typed(value).map_err(|e| format!("bad {kind:?} part: {e}"))
    }
}

impl Serialize for Part {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Part {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Part::from_value(value).map_err(serde::de::Error::custom)
    }
}

/// Where a message is in its life.
///
/// Messages added whole are [`Complete`](MessageStatus::Complete). A streamed reply is
/// stored [`Streaming`](MessageStatus::Streaming) before its first token and ends
/// [`Complete`](MessageStatus::Complete) or [`Failed`](MessageStatus::Failed); one whose
/// writer died reads as [`Interrupted`](MessageStatus::Interrupted) once its lease expires
/// (see [`Message::status_at`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MessageStatus {
    /// Stored before any content (a reply about to stream).
    Pending,
    /// Content is arriving; what is stored is the last checkpoint.
    Streaming,
    /// Whole.
    #[default]
    Complete,
    /// Its writer stopped before finishing; the content is the last checkpoint.
    Interrupted,
    /// Its writer reported a failure (see [`Message::failure`]).
    Failed,
}

impl MessageStatus {
    /// Whether the message is still being written (pending or streaming).
    pub fn is_in_progress(self) -> bool {
        matches!(self, MessageStatus::Pending | MessageStatus::Streaming)
    }
}

/// Token usage of one model call, or running totals of a conversation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
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
    /// The model that produced them (per message; `None` in totals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl Usage {
    /// Usage of `input` and `output` tokens by `model`.
    pub fn new(model: impl Into<String>, input_tokens: u64, output_tokens: u64) -> Self {
        Usage {
            input_tokens,
            output_tokens,
            model: Some(model.into()),
            ..Usage::default()
        }
    }

    /// Adds `other`'s counts to these (saturating); the model is not kept in totals.
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cached_input_tokens = self
            .cached_input_tokens
            .saturating_add(other.cached_input_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(other.reasoning_tokens);
    }

    /// Takes `other`'s counts from these (saturating at zero).
    pub fn subtract(&mut self, other: &Usage) {
        self.input_tokens = self.input_tokens.saturating_sub(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_sub(other.output_tokens);
        self.cached_input_tokens = self
            .cached_input_tokens
            .saturating_sub(other.cached_input_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_sub(other.reasoning_tokens);
    }

    /// Input plus output tokens.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// A stored message.
///
/// Messages are ordered by `seq` (1, 2, 3, ... per conversation), never by time. See the
/// [module docs](crate::message) for the JSON form.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Message {
    /// The message's id (UUID v7 unless the caller chose one).
    pub id: MessageId,
    /// Position in the conversation: 1 for the first message, strictly increasing.
    pub seq: u64,
    /// Who wrote it.
    pub role: Role,
    /// The content, in order.
    pub parts: Vec<Part>,
    /// Where it is in its life (stored value; see [`status_at`](Self::status_at)).
    pub status: MessageStatus,
    /// When it was created (microsecond precision).
    pub created_at: DateTime<Utc>,
    /// When it was last updated, if ever.
    pub updated_at: Option<DateTime<Utc>>,
    /// Starts at 1, grows by one with every update: what
    /// [`MessagesBackend::update_message`](crate::MessagesBackend::update_message) checks.
    pub revision: u64,
    /// Free-form metadata.
    pub metadata: Metadata,
    /// Token usage of the model call that produced it.
    pub usage: Option<Usage>,
    /// Why it failed, when its status is [`MessageStatus::Failed`].
    pub failure: Option<String>,
    /// While in progress: when the writer's lease ends. A message still in progress after
    /// this reads as [`MessageStatus::Interrupted`].
    pub lease_expires_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct MessageWire {
    id: MessageId,
    seq: u64,
    role: Role,
    #[serde(default)]
    parts: Option<Vec<Part>>,
    /// 0.1 releases stored plain text here.
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    status: MessageStatus,
    created_at: DateTime<Utc>,
    #[serde(default)]
    updated_at: Option<DateTime<Utc>>,
    #[serde(default = "one")]
    revision: u64,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    failure: Option<String>,
    #[serde(default)]
    lease_expires_at: Option<DateTime<Utc>>,
}

fn one() -> u64 {
    1
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = MessageWire::deserialize(deserializer)?;
        let parts = match (w.parts, w.content) {
            (Some(parts), _) => parts,
            (None, Some(text)) => vec![Part::Text { text }],
            (None, None) => Vec::new(),
        };
        Ok(Message {
            id: w.id,
            seq: w.seq,
            role: w.role,
            parts,
            status: w.status,
            created_at: w.created_at,
            updated_at: w.updated_at,
            revision: w.revision,
            metadata: w.metadata,
            usage: w.usage,
            failure: w.failure,
            lease_expires_at: w.lease_expires_at,
        })
    }
}

impl Message {
    /// The text view: the message's text parts joined (no separator), other parts left out.
    pub fn content(&self) -> String {
        text_of(&self.parts)
    }

    /// The status as a reader should see it at `now`: a message still in progress whose
    /// lease has expired (or that has none) is [`MessageStatus::Interrupted`].
    pub fn status_at(&self, now: DateTime<Utc>) -> MessageStatus {
        if self.status.is_in_progress() && self.lease_expires_at.is_none_or(|lease| lease <= now) {
            MessageStatus::Interrupted
        } else {
            self.status
        }
    }

    /// The tool calls in this message.
    pub fn tool_calls(&self) -> impl Iterator<Item = &ToolCall> {
        self.parts.iter().filter_map(|p| match p {
            Part::ToolCall(c) => Some(c),
            _ => None,
        })
    }

    /// The tool results in this message.
    pub fn tool_results(&self) -> impl Iterator<Item = &ToolResult> {
        self.parts.iter().filter_map(|p| match p {
            Part::ToolResult(r) => Some(r),
            _ => None,
        })
    }

    /// Applies `update` (which the caller has validated) and bumps `revision`.
    pub fn apply_update(&mut self, update: &MessageUpdate, at: DateTime<Utc>) {
        if let Some(parts) = &update.parts {
            self.parts = parts.clone();
        }
        if let Some(status) = update.status {
            self.status = status;
            if !status.is_in_progress() {
                self.lease_expires_at = None;
            }
        }
        if let Some(lease) = update.lease_expires_at {
            self.lease_expires_at = Some(lease);
        }
        if let Some(usage) = &update.usage {
            self.usage = Some(usage.clone());
        }
        if let Some(metadata) = &update.metadata {
            self.metadata = metadata.clone();
        }
        if let Some(failure) = &update.failure {
            self.failure = Some(failure.clone());
        }
        self.updated_at = Some(self.updated_at.map_or(at, |u| u.max(at)));
        self.revision += 1;
    }
}

/// The text of `parts`: text parts joined, others left out.
pub fn text_of(parts: &[Part]) -> String {
    let mut out = String::new();
    for part in parts {
        if let Part::Text { text } = part {
            out.push_str(text);
        }
    }
    out
}

/// A message about to be appended: everything but its `seq`, which the backend assigns.
///
/// ```
/// use chatvault_core::{NewMessage, Part, Role, Usage};
///
/// let question = NewMessage::new(Role::User, "Weather in Oslo?");
/// let answer = NewMessage::with_parts(
///     Role::Assistant,
///     vec![Part::tool_call("call_1", "get_weather", serde_json::json!({"city": "Oslo"}))],
/// )
/// .with_usage(Usage::new("gpt-4o", 120, 18));
/// assert_eq!(question.content(), "Weather in Oslo?");
/// assert_eq!(answer.parts[0].kind(), "tool_call");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewMessage {
    /// The id the message will have: the idempotency key of the append.
    pub id: MessageId,
    /// Who wrote it.
    pub role: Role,
    /// The content.
    pub parts: Vec<Part>,
    /// Its status ([`MessageStatus::Complete`] unless streaming).
    #[serde(default)]
    pub status: MessageStatus,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Free-form metadata.
    #[serde(default)]
    pub metadata: Metadata,
    /// Token usage.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// While in progress: when the writer's lease ends.
    #[serde(default)]
    pub lease_expires_at: Option<DateTime<Utc>>,
}

impl NewMessage {
    /// A text message with a fresh id, created now, with no metadata.
    pub fn new(role: impl Into<Role>, text: impl Into<String>) -> Self {
        Self::with_parts(role, vec![Part::text(text)])
    }

    /// A message made of `parts`, with a fresh id, created now.
    pub fn with_parts(role: impl Into<Role>, parts: Vec<Part>) -> Self {
        NewMessage {
            id: MessageId::new(),
            role: role.into(),
            parts,
            status: MessageStatus::Complete,
            created_at: now(),
            metadata: Metadata::new(),
            usage: None,
            lease_expires_at: None,
        }
    }

    /// Sets the metadata.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets a caller-chosen id.
    pub fn with_id(mut self, id: MessageId) -> Self {
        self.id = id;
        self
    }

    /// Sets the usage.
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = Some(usage);
        self
    }

    /// Sets the status (and, for an in-progress one, its lease).
    pub fn with_status(
        mut self,
        status: MessageStatus,
        lease_expires_at: Option<DateTime<Utc>>,
    ) -> Self {
        self.status = status;
        self.lease_expires_at = lease_expires_at;
        self
    }

    /// The text view (see [`Message::content`]).
    pub fn content(&self) -> String {
        text_of(&self.parts)
    }

    /// The stored message this becomes at position `seq`.
    pub fn into_message(self, seq: u64) -> Message {
        Message {
            id: self.id,
            seq,
            role: self.role,
            parts: self.parts,
            status: self.status,
            created_at: self.created_at,
            updated_at: None,
            revision: 1,
            metadata: self.metadata,
            usage: self.usage,
            failure: None,
            lease_expires_at: self.lease_expires_at,
        }
    }

    /// Whether `stored` is this message as an earlier append stored it (same id, role,
    /// parts, status, metadata and usage; `seq` and times are the backend's; a stored
    /// message updated since only needs the same id and role): what makes a retried append
    /// idempotent.
    pub fn is_stored_as(&self, stored: &Message) -> bool {
        self.id == stored.id
            && Role::from(self.role.as_str()) == stored.role
            // Updated since (a streamed reply that went on): the append itself happened.
            && (stored.revision > 1
                || (self.parts == stored.parts
                    && self.metadata == stored.metadata
                    && self.usage == stored.usage
                    && self.status == stored.status))
    }

    /// Checks what the message would store: its role ([`Role::validate`]), JSON depth,
    /// size, part count and part fields.
    pub fn validate(&self) -> Result<()> {
        self.validate_sized().map(|_| ())
    }

    /// [`validate`](Self::validate), returning the size of the message's JSON form.
    pub(crate) fn validate_sized(&self) -> Result<usize> {
        self.role.validate()?;
        if self.parts.len() > MAX_PARTS {
            return Err(Error::TooLarge {
                what: format!("message {} (parts)", self.id),
                size: self.parts.len() as u64,
                limit: MAX_PARTS as u64,
            });
        }
        validate_parts(&self.parts, 1)?;
        check_json_depth("metadata", &self.metadata, 1)?;
        if let Some(usage) = &self.usage
            && let Some(model) = &usage.model
        {
            check_len("usage.model", model, 256)?;
        }
        let size = self.json_len();
        if size > MAX_MESSAGE_BYTES {
            return Err(Error::TooLarge {
                what: format!("message {}", self.id),
                size: size as u64,
                limit: MAX_MESSAGE_BYTES as u64,
            });
        }
        Ok(size)
    }

    /// The size of the message's JSON form in bytes (what backends' limits count).
    pub fn json_len(&self) -> usize {
        serde_json::to_vec(self).map_or(usize::MAX, |v| v.len())
    }
}

/// A change to a stored message, applied atomically and only if the message is still at
/// the revision the writer last saw. Fields left `None` are kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageUpdate {
    /// New content, replacing the old.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<Part>>,
    /// A new status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<MessageStatus>,
    /// New usage; the conversation's totals move by the difference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// New metadata, replacing the old.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Why the message failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// A new lease end for an in-progress message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<DateTime<Utc>>,
}

impl MessageUpdate {
    /// Checks what the update would store (as [`NewMessage::validate`] does).
    pub fn validate(&self) -> Result<()> {
        if let Some(parts) = &self.parts {
            if parts.len() > MAX_PARTS {
                return Err(Error::TooLarge {
                    what: "message update (parts)".into(),
                    size: parts.len() as u64,
                    limit: MAX_PARTS as u64,
                });
            }
            validate_parts(parts, 1)?;
        }
        if let Some(metadata) = &self.metadata {
            check_json_depth("metadata", metadata, 1)?;
        }
        if let Some(failure) = &self.failure {
            check_len("failure", failure, 64 * 1024)?;
        }
        Ok(())
    }
}

/// The result of [`MessagesBackend::update_message`](crate::MessagesBackend::update_message).
#[derive(Clone, Debug, PartialEq)]
pub struct MessageUpdated {
    /// The conversation's record after the update (usage totals, version).
    pub record: crate::model::ConversationRecord,
    /// The message as stored now.
    pub message: Message,
}

fn check_len(field: &'static str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(Error::invalid_input(
            field,
            format!("is {} bytes long; the limit is {max}", value.len()),
        ));
    }
    Ok(())
}

fn validate_parts(parts: &[Part], depth: usize) -> Result<()> {
    if depth > MAX_JSON_DEPTH / 2 {
        return Err(Error::invalid_input(
            "parts",
            format!(
                "tool results nest deeper than {} levels",
                MAX_JSON_DEPTH / 2
            ),
        ));
    }
    for part in parts {
        match part {
            Part::Text { .. } => {}
            Part::File(f) => {
                if let FileSource::Url { url } = &f.source
                    && url.is_empty()
                {
                    return Err(Error::invalid_input("file part", "the URL is empty"));
                }
                if let Some(name) = &f.filename {
                    crate::keys::validate_filename(name)?;
                }
            }
            Part::ToolCall(c) => {
                if c.id.is_empty() || c.name.is_empty() {
                    return Err(Error::invalid_input(
                        "tool call",
                        "id and name must not be empty",
                    ));
                }
                check_len("tool call id", &c.id, 256)?;
                check_len("tool call name", &c.name, 256)?;
                check_value_depth("tool call arguments", &c.arguments, depth + 1)?;
            }
            Part::ToolResult(r) => {
                if r.call_id.is_empty() {
                    return Err(Error::invalid_input(
                        "tool result",
                        "call_id must not be empty",
                    ));
                }
                check_len("tool result call_id", &r.call_id, 256)?;
                validate_parts(&r.content, depth + 1)?;
            }
            Part::Reasoning(_) => {}
            Part::Provider(p) => {
                check_len("provider", &p.provider, 256)?;
                check_len("provider kind", &p.kind, 256)?;
                check_value_depth("provider data", &p.data, depth + 1)?;
            }
            Part::Unknown(v) => check_value_depth("part", v, depth)?,
        }
    }
    Ok(())
}

/// Checks that `metadata` nests at most [`MAX_JSON_DEPTH`] levels (counting from `depth`).
pub(crate) fn check_json_depth(
    field: &'static str,
    metadata: &Metadata,
    depth: usize,
) -> Result<()> {
    for value in metadata.values() {
        check_value_depth(field, value, depth + 1)?;
    }
    Ok(())
}

/// Checks that `value` nests at most [`MAX_JSON_DEPTH`] levels, counting it as level
/// `depth`. Iterative, so a hostile value cannot overflow the stack.
pub(crate) fn check_value_depth(
    field: &'static str,
    value: &serde_json::Value,
    depth: usize,
) -> Result<()> {
    use serde_json::Value;
    let mut stack = vec![(value, depth)];
    while let Some((v, d)) = stack.pop() {
        if d > MAX_JSON_DEPTH {
            return Err(Error::invalid_input(
                field,
                format!("nests deeper than {MAX_JSON_DEPTH} levels"),
            ));
        }
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// Decides what an append does with messages whose ids may already be stored: the one
/// rule of idempotent appends, shared by every backend.
///
/// `stored[i]` is the message already stored under `new[i].id` in this conversation, if
/// any. Returns `Ok(None)` when none is stored (append them), `Ok(Some(messages))` when all
/// are, unchanged (a retry: answer with the stored messages, store nothing), and
/// [`Error::AlreadyExists`] when some ids are taken by different content or only part of
/// the batch is stored. Duplicate ids within `new` are [`Error::InvalidInput`].
pub fn check_replay(
    new: &[NewMessage],
    stored: Vec<Option<Message>>,
) -> Result<Option<Vec<Message>>> {
    check_unique_ids(new)?;
    if stored.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(new.len());
    for (n, s) in new.iter().zip(stored) {
        match s {
            Some(s) if n.is_stored_as(&s) => out.push(s),
            _ => {
                return Err(Error::AlreadyExists {
                    kind: "message",
                    id: n.id.to_string(),
                });
            }
        }
    }
    Ok(Some(out))
}

/// Fails with [`Error::InvalidInput`] when two of `messages` share an id.
pub fn check_unique_ids(messages: &[NewMessage]) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(messages.len());
    for m in messages {
        if !seen.insert(&m.id) {
            return Err(Error::invalid_input(
                "message id",
                format!("{} appears twice in one append", m.id),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_kind_round_trips() {
        let parts = vec![
            Part::text("héllo ✓"),
            Part::attachment(
                FileId::parse("f1").unwrap(),
                Some(ContentType::parse("image/png").unwrap()),
            ),
            Part::url("https://example.com/a.png", None),
            Part::tool_call(
                "c1",
                "f",
                serde_json::json!({"n": 9007199254740993u64, "x": 0.1}),
            ),
            Part::ToolResult(ToolResult {
                call_id: "c1".into(),
                content: vec![Part::text("ok")],
                is_error: true,
            }),
            Part::Reasoning(Reasoning {
                text: Some("hmm".into()),
                signature: Some("Eq+/=\u{0}sig".into()),
                redacted: false,
            }),
            Part::Provider(ProviderPart {
                provider: "openai".into(),
                kind: "web_search_call".into(),
                data: serde_json::json!({"id": "ws_1"}),
            }),
        ];
        let json = serde_json::to_string(&parts).unwrap();
        let back: Vec<Part> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, parts);
    }

    #[test]
    fn unknown_parts_are_kept_exactly() {
        let json = r#"{"type":"hologram","frames":[1,2,3],"x":{"y":null}}"#;
        let part: Part = serde_json::from_str(json).unwrap();
        assert!(matches!(part, Part::Unknown(_)));
        assert_eq!(part.kind(), "hologram");
        assert_eq!(
            serde_json::to_value(&part).unwrap(),
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );
        assert!(serde_json::from_str::<Part>(r#"{"text":"no type"}"#).is_err());
        assert!(serde_json::from_str::<Part>(r#"{"type":"text"}"#).is_err());
    }

    #[test]
    fn v0_1_messages_read_as_one_text_part() {
        let json = r#"{"id":"m1","seq":3,"role":"user","content":"old text","created_at":"2025-01-02T03:04:05.123456Z","metadata":{"a":1}}"#;
        let m: Message = serde_json::from_str(json).unwrap();
        assert_eq!(m.parts, vec![Part::text("old text")]);
        assert_eq!(m.status, MessageStatus::Complete);
        assert_eq!(m.revision, 1);
        assert_eq!(m.content(), "old text");
    }

    #[test]
    fn status_reads_interrupted_after_the_lease() {
        let t = now();
        let mut m = NewMessage::with_parts("assistant", vec![])
            .with_status(
                MessageStatus::Streaming,
                Some(t + chrono::Duration::seconds(30)),
            )
            .into_message(1);
        assert_eq!(m.status_at(t), MessageStatus::Streaming);
        assert_eq!(
            m.status_at(t + chrono::Duration::seconds(31)),
            MessageStatus::Interrupted
        );
        m.apply_update(
            &MessageUpdate {
                status: Some(MessageStatus::Complete),
                ..Default::default()
            },
            t,
        );
        assert_eq!(
            m.status_at(t + chrono::Duration::days(1)),
            MessageStatus::Complete
        );
        assert_eq!(m.revision, 2);
        assert_eq!(m.lease_expires_at, None);
    }

    #[test]
    fn depth_is_bounded() {
        let mut v = serde_json::json!(1);
        for _ in 0..MAX_JSON_DEPTH {
            v = serde_json::json!([v]);
        }
        let mut meta = Metadata::new();
        meta.insert("deep".into(), v);
        let m = NewMessage::new("user", "x").with_metadata(meta);
        assert!(matches!(m.validate(), Err(Error::InvalidInput { .. })));
        let mut ok = serde_json::json!(1);
        for _ in 0..MAX_JSON_DEPTH - 2 {
            ok = serde_json::json!([ok]);
        }
        let mut meta = Metadata::new();
        meta.insert("deep".into(), ok);
        NewMessage::new("user", "x")
            .with_metadata(meta)
            .validate()
            .unwrap();
    }

    #[test]
    fn replay_rules() {
        let a = NewMessage::new("user", "a");
        let b = NewMessage::new("user", "b");
        let stored_a = a.clone().into_message(1);
        let stored_b = b.clone().into_message(2);
        assert_eq!(
            check_replay(&[a.clone(), b.clone()], vec![None, None]).unwrap(),
            None
        );
        assert_eq!(
            check_replay(
                &[a.clone(), b.clone()],
                vec![Some(stored_a.clone()), Some(stored_b.clone())]
            )
            .unwrap(),
            Some(vec![stored_a.clone(), stored_b])
        );
        let mut changed = a.clone();
        changed.parts = vec![Part::text("other")];
        assert!(matches!(
            check_replay(&[changed], vec![Some(stored_a.clone())]),
            Err(Error::AlreadyExists { .. })
        ));
        assert!(matches!(
            check_replay(&[a.clone(), b], vec![Some(stored_a), None]),
            Err(Error::AlreadyExists { .. })
        ));
        assert!(matches!(
            check_replay(&[a.clone(), a], vec![None, None]),
            Err(Error::InvalidInput { .. })
        ));
    }
}
