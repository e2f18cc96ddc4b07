//! Redacting one message: its content replaced by a tombstone that keeps its place, and
//! the attachments only it referenced deleted. See `docs/forgetting.md`.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::chat_vault::stalled;
use crate::backend::{FilesBackend, MessagesBackend};
use crate::error::{Error, Result};
use crate::ids::{ConversationId, FileId, MessageId};
use crate::model::message::text_of;
use crate::model::{
    ConversationPatch, ConversationRecord, FileAttachment, FileSource, Message, MessageRange,
    MessageStatus, MessageUpdate, Metadata, Part, auto_title, now,
};

/// The metadata key under which a redacted message keeps its [`Redaction`] (its only
/// metadata entry).
pub const REDACTION_KEY: &str = "chatvault_redacted";

/// The title a conversation gets when the message its title was made from is redacted.
pub const REDACTED_TITLE: &str = "(redacted)";

/// The longest redaction reason, in bytes.
pub const MAX_REDACTION_REASON: usize = 1024;

/// Why and when a message was redacted: what its tombstone says besides its place (id,
/// seq, parent, role, times and usage, which stay).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redaction {
    /// Why, as the caller gave it.
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The attachments the redaction deletes (only this message referenced them): kept
    /// so that a redaction stopped before it deleted them all is finished by redacting
    /// the tombstone again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileId>,
}

impl Redaction {
    /// The redaction of `message` when it is a tombstone, else `None`.
    pub fn of(message: &Message) -> Option<Redaction> {
        let value = message.metadata.get(REDACTION_KEY)?;
        serde_json::from_value(value.clone()).ok()
    }
}

/// What [`Conversation::redact`](crate::Conversation::redact) did.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Redacted {
    /// The tombstone as stored: no parts, only the [`Redaction`] in its metadata.
    pub message: Message,
    /// The attachments it referenced that no other message does: their bytes and
    /// records are deleted.
    pub files_deleted: Vec<FileAttachment>,
}

/// What a redaction of a message would do, checked and not written:
/// [`Conversation::plan_redaction`](crate::Conversation::plan_redaction).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RedactionPlan {
    /// The message as stored now.
    pub message: Message,
    /// The attachments it references that no other message does (on any branch): the
    /// ones the redaction deletes.
    pub files: Vec<FileAttachment>,
}

/// Checks a redaction of message `message_id` of conversation `id` (whose attachments
/// are `files_attached`) and says what it would do; see [`redact`] for the refusals.
pub(super) async fn plan(
    messages: &dyn MessagesBackend,
    files_attached: &[FileAttachment],
    id: &ConversationId,
    message_id: &MessageId,
    reason: &str,
) -> Result<RedactionPlan> {
    if reason.trim().is_empty() || reason.len() > MAX_REDACTION_REASON {
        return Err(Error::invalid_input(
            "reason",
            format!("must be 1 to {MAX_REDACTION_REASON} bytes and not blank"),
        ));
    }
    let Some(message) = messages.message(id, message_id).await? else {
        return Err(Error::message_not_found(message_id.as_str()));
    };
    if matches!(
        message.status_at(now()),
        MessageStatus::Pending | MessageStatus::Streaming
    ) {
        return Err(Error::Conflict {
            message: format!("message {message_id} is a reply still being written; stop it first"),
        });
    }
    // A tombstone already names what its redaction deletes (those still attached are
    // what a redaction stopped part-way left).
    let files = if let Some(earlier) = Redaction::of(&message) {
        let named: HashSet<&FileId> = earlier.files.iter().collect();
        files_attached
            .iter()
            .filter(|f| named.contains(&f.id))
            .cloned()
            .collect()
    } else {
        let referenced = attachments_in(&message.parts);
        if referenced.is_empty() {
            Vec::new()
        } else {
            let elsewhere = referenced_elsewhere(messages, id, message_id).await?;
            files_attached
                .iter()
                .filter(|f| referenced.contains(&f.id) && !elsewhere.contains(&f.id))
                .cloned()
                .collect()
        }
    };
    Ok(RedactionPlan { message, files })
}

/// Redacts message `message_id` of the conversation of `record`: when the conversation's
/// title was made from the message's text, it becomes [`REDACTED_TITLE`] first; then one
/// versioned message update (no
/// parts; metadata holding only the [`Redaction`], which names the attachments to
/// delete), then each attachment that only it referenced: its bytes, then its record.
/// Stopped part-way, redacting the tombstone again deletes what is left.
///
/// [`Error::InvalidInput`] for a blank reason or one over [`MAX_REDACTION_REASON`]
/// bytes; [`Error::NotFound`] for a missing conversation or message; [`Error::Conflict`]
/// while the message is a reply still being written (stop it first) or when another
/// writer changed it meanwhile (nothing written; retry). Redacting a tombstone again
/// replaces its reason.
pub(super) async fn redact(
    messages: &dyn MessagesBackend,
    files: &dyn FilesBackend,
    record: &ConversationRecord,
    files_attached: &[FileAttachment],
    message_id: &MessageId,
    reason: &str,
) -> Result<Redacted> {
    let id = &record.id;
    let plan = plan(messages, files_attached, id, message_id, reason).await?;
    // A title made from this message's text goes too, before the message (a store that
    // rewrites its log on the redaction then drops the old title's records as well).
    let derived = auto_title(&text_of(&plan.message.parts));
    if derived.is_some() && record.title == derived {
        let patch = ConversationPatch {
            title: Some(REDACTED_TITLE.to_owned()),
            ..ConversationPatch::default()
        };
        messages.update(id, &patch).await?;
    }
    let redaction = Redaction {
        reason: reason.to_owned(),
        at: now(),
        files: plan.files.iter().map(|f| f.id.clone()).collect(),
    };
    let mut metadata = Metadata::new();
    metadata.insert(
        REDACTION_KEY.to_owned(),
        serde_json::to_value(&redaction)
            .map_err(|e| Error::invalid_input("reason", e.to_string()))?,
    );
    let update = MessageUpdate {
        parts: Some(Vec::new()),
        metadata: Some(metadata),
        ..MessageUpdate::default()
    };
    let updated = messages
        .update_message(id, message_id, plan.message.revision, &update)
        .await?;
    for file in &plan.files {
        files.delete(&file.storage_key).await?;
        messages.remove_file(id, &file.id).await?;
    }
    Ok(Redacted {
        message: updated.message,
        files_deleted: plan.files,
    })
}

/// The attachments `parts` reference, tool results' content included.
fn attachments_in(parts: &[Part]) -> HashSet<FileId> {
    let mut found = HashSet::new();
    let mut stack: Vec<&Part> = parts.iter().collect();
    while let Some(part) = stack.pop() {
        match part {
            Part::File(file) => {
                if let FileSource::Attachment { file_id } = &file.source {
                    found.insert(file_id.clone());
                }
            }
            Part::ToolResult(result) => stack.extend(result.content.iter()),
            _ => {}
        }
    }
    found
}

/// The attachments referenced by any message of conversation `id` but `except`, on every
/// branch.
async fn referenced_elsewhere(
    messages: &dyn MessagesBackend,
    id: &ConversationId,
    except: &MessageId,
) -> Result<HashSet<FileId>> {
    let mut found = HashSet::new();
    let mut range = MessageRange::all();
    loop {
        let page = messages.messages(id, &range).await?;
        for m in page.items.iter().filter(|m| &m.id != except) {
            found.extend(attachments_in(&m.parts));
        }
        let Some(cursor) = page.next_cursor else {
            return Ok(found);
        };
        let next = range.continue_from(&cursor)?;
        if page.items.is_empty() || next == range {
            return Err(stalled(&cursor));
        }
        range = next;
    }
}
