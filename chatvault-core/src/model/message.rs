//! Messages: typed content parts, status, usage, and the write types backends exchange.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use super::basics::{
    MAX_JSON_DEPTH, MAX_MESSAGE_BYTES, MAX_PARTS, Metadata, Usage, check_json_depth,
    check_value_depth, now,
};
use super::part::{FileSource, Part, ToolCall, ToolResult};
use super::role::Role;
use super::tree::Parent;
use crate::error::{Error, Result};
use crate::ids::MessageId;

/// Where a message is in its life.
///
/// Messages added whole are [`Complete`](MessageStatus::Complete). A streamed reply is
/// stored [`Streaming`](MessageStatus::Streaming) before its first token and ends
/// [`Complete`](MessageStatus::Complete), [`Failed`](MessageStatus::Failed) or
/// [`Stopped`](MessageStatus::Stopped); one whose writer died reads as
/// [`Interrupted`](MessageStatus::Interrupted) once its lease expires (see
/// [`Message::status_at`]).
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
    /// Stopped while it streamed, by whoever was reading it
    /// ([`Conversation::stop_reply`](crate::Conversation::stop_reply)): the content is
    /// what was stored when it was stopped; its writer wrote nothing after.
    Stopped,
}

impl MessageStatus {
    /// Whether the message is still being written (pending or streaming).
    pub fn is_in_progress(self) -> bool {
        matches!(self, MessageStatus::Pending | MessageStatus::Streaming)
    }
}

/// A stored message.
///
/// Messages are ordered by `seq` (1, 2, 3, ... per conversation), never by time.
///
#[doc = include_str!("../../docs/message-json.md")]
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Message {
    /// The message's id (UUID v7 unless the caller chose one).
    pub id: MessageId,
    /// Position in the conversation: 1 for the first message, strictly increasing, in the
    /// order messages were stored, whatever their branch.
    pub seq: u64,
    /// The `seq` of the message this one follows (`None`: a first message). Messages
    /// stored before branches existed follow `seq - 1`. See [`Tree`](crate::Tree).
    pub parent: Option<u64>,
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
    /// Absent in messages stored before branches (they follow `seq - 1`); `null` for a
    /// first message.
    #[serde(default, deserialize_with = "present")]
    parent: Option<Option<u64>>,
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

/// A field that is present (even as `null`): `Some`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

impl<'de> Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let w = MessageWire::deserialize(deserializer)?;
        let parts = match (w.parts, w.content) {
            (Some(parts), _) => parts,
            (None, Some(text)) => vec![Part::Text { text }],
            (None, None) => Vec::new(),
        };
        let parent = w.parent.unwrap_or_else(|| Message::parent_in_line(w.seq));
        Ok(Message {
            id: w.id,
            seq: w.seq,
            parent,
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
    /// The parent of message `seq` in a conversation without branches: `seq - 1`, none
    /// for the first. A stored message without a `parent` follows it, which lets a
    /// backend leave `parent` out whenever it equals this.
    pub fn parent_in_line(seq: u64) -> Option<u64> {
        seq.checked_sub(1).filter(|&p| p > 0)
    }

    /// A complete message at position `seq` following `parent`, created at `created_at`:
    /// revision 1, never updated, no metadata, usage, failure or lease. What a backend
    /// starts from when it reads a stored message back, setting the other fields from
    /// what it stored.
    pub fn new(
        id: MessageId,
        seq: u64,
        parent: Option<u64>,
        role: Role,
        parts: Vec<Part>,
        created_at: DateTime<Utc>,
    ) -> Self {
        Message {
            id,
            seq,
            parent,
            role,
            parts,
            status: MessageStatus::Complete,
            created_at,
            updated_at: None,
            revision: 1,
            metadata: Metadata::new(),
            usage: None,
            failure: None,
            lease_expires_at: None,
        }
    }

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

    /// The append that stores this message again, at the same place in the tree: its id
    /// (the idempotency key), content, times, and its parent by `seq` (what a replay, a
    /// copy or a restore in `seq` order writes).
    pub fn to_new(&self) -> NewMessage {
        NewMessage {
            id: self.id.clone(),
            role: self.role.clone(),
            parts: self.parts.clone(),
            status: self.status,
            created_at: self.created_at,
            metadata: self.metadata.clone(),
            usage: self.usage.clone(),
            lease_expires_at: self.lease_expires_at,
            parent: self.parent.map_or(Parent::Root, Parent::Seq),
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

    /// Checks that this message is still at `expected` revision: otherwise
    /// [`Error::Conflict`] (another writer updated it). What every backend's
    /// [`update_message`](crate::MessagesBackend::update_message) checks first.
    pub fn expect_revision(&self, expected: u64) -> Result<()> {
        if self.revision != expected {
            return Err(Error::Conflict {
                message: format!(
                    "message {} is at revision {}, not {expected}: another writer updated it",
                    self.id, self.revision
                ),
            });
        }
        Ok(())
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
    /// What it follows (by default the active branch's leaf).
    #[serde(default, skip_serializing_if = "Parent::is_active")]
    pub parent: Parent,
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
            parent: Parent::Active,
        }
    }

    /// Sets what the message follows (see [`Parent`]).
    pub fn with_parent(mut self, parent: Parent) -> Self {
        self.parent = parent;
        self
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

    /// The stored message this becomes at position `seq`, following `parent` (resolved
    /// from [`NewMessage::parent`] by [`ConversationRecord::apply_append`](crate::ConversationRecord::apply_append)).
    pub fn into_message(self, seq: u64, parent: Option<u64>) -> Message {
        Message {
            id: self.id,
            seq,
            parent,
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
        self.validate_sized(MAX_MESSAGE_BYTES).map(|_| ())
    }

    /// [`validate`](Self::validate), returning the size of the message's JSON form; or,
    /// when a cheap bound ([`Self::text_json_bound`]) already shows that size is at most
    /// `limit`, that bound, so the caller's `size <= limit` check answers the same
    /// without the message being serialised.
    pub(crate) fn validate_sized(&self, limit: usize) -> Result<usize> {
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
        if let Some(bound) = self.text_json_bound()
            && bound <= limit.min(MAX_MESSAGE_BYTES)
        {
            return Ok(bound);
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

    /// An upper bound on [`json_len`](Self::json_len) from string lengths alone, for a
    /// message of text parts with no metadata, usage or lease (the common case); `None`
    /// for any other. JSON writes a byte of a string as at most 6 (`\u001f`); the rest
    /// (keys, status, timestamps, a parent's seq, each part's tag) fits in the fixed
    /// allowances.
    pub(crate) fn text_json_bound(&self) -> Option<usize> {
        if !self.metadata.is_empty() || self.usage.is_some() || self.lease_expires_at.is_some() {
            return None;
        }
        let mut bound = 1024 + 6 * (self.id.as_str().len() + self.role.as_str().len());
        for part in &self.parts {
            let Part::Text { text } = part else {
                return None;
            };
            bound += 64 + 6 * text.len();
        }
        Some(bound)
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
#[non_exhaustive]
pub struct MessageUpdated {
    /// The conversation's record after the update (usage totals, version).
    pub record: crate::model::ConversationRecord,
    /// The message as stored now.
    pub message: Message,
}

impl MessageUpdated {
    /// What an update returns: the record it left and the message as stored.
    pub fn new(record: crate::model::ConversationRecord, message: Message) -> Self {
        MessageUpdated { record, message }
    }
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
