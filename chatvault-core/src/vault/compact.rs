//! Compaction checkpoints: a summary of the older part of a conversation, stored as one
//! more message that says which messages it covers, who made it and when. Nothing is
//! replaced or deleted: the transcript keeps every message, and what a model is sent
//! starts at the latest checkpoint (`chatvault_llm`'s `prepare_history`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::conversation::Conversation;
use crate::error::{Error, Result};
use crate::ids::MessageId;
use crate::model::{Message, MessageRange, Metadata, NewMessage, Role, now};

/// The metadata key of a checkpoint message: its value is a [`Checkpoint`].
pub const CHECKPOINT_KEY: &str = "chatvault_checkpoint";

/// What a compaction checkpoint says about itself: stored in its message's metadata
/// under [`CHECKPOINT_KEY`] (JSON: `{"through": "<message id>", "covers": 120, "by":
/// "...", "at": "<RFC 3339>"}`), so it survives every backend, export and import, and a
/// fork (which keeps message ids).
///
/// The checkpoint message itself is a [`Role::System`] message whose text is the summary,
/// stored at the end of the branch it summarizes (after the active leaf of the time).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Checkpoint {
    /// The last message the summary covers: it and every message before it on the
    /// checkpoint's branch.
    pub through: MessageId,
    /// How many messages that is (the position of `through` on its branch, from 1).
    pub covers: u64,
    /// Who made the summary: a model, a person, a job; whatever the caller said.
    pub by: String,
    /// When the checkpoint was stored.
    pub at: DateTime<Utc>,
}

impl Checkpoint {
    /// The checkpoint `message` holds, if it is one (its metadata has a well-formed
    /// [`CHECKPOINT_KEY`] entry); `None` for every other message.
    pub fn of(message: &Message) -> Option<Checkpoint> {
        let value = message.metadata.get(CHECKPOINT_KEY)?;
        serde_json::from_value(value.clone()).ok()
    }

    /// Whether `message` is a checkpoint.
    pub fn is_checkpoint(message: &Message) -> bool {
        Self::of(message).is_some()
    }
}

/// [`Conversation::compact`]: checks that `through` may be covered, then appends the
/// checkpoint.
pub(super) async fn compact(
    conversation: &mut Conversation,
    summary: String,
    through: &MessageId,
    by: String,
) -> Result<Message> {
    if summary.trim().is_empty() {
        return Err(Error::invalid_input("summary", "must not be blank"));
    }
    conversation.refresh().await?;
    let covered = conversation
        .message(through)
        .await?
        .ok_or_else(|| Error::message_not_found(through.as_str()))?;
    let tree = conversation.record().tree();
    let leaf = tree.leaf;
    if !tree.is_on_path(covered.seq, leaf) {
        return Err(Error::invalid_input(
            "through",
            format!("message {through} is not on the active branch"),
        ));
    }
    if covered.status.is_in_progress() {
        return Err(Error::invalid_input(
            "through",
            format!("message {through} is still being written"),
        ));
    }
    let covers = tree.path_len(Some(covered.seq));
    drop(tree);
    check_no_split(conversation, &covered).await?;
    let checkpoint = Checkpoint {
        through: through.clone(),
        covers,
        by,
        at: now(),
    };
    let value = serde_json::to_value(&checkpoint)
        .map_err(|e| Error::backend("chatvault", format!("a checkpoint as JSON: {e}")))?;
    let mut metadata = Metadata::new();
    metadata.insert(CHECKPOINT_KEY.to_owned(), value);
    conversation
        .add(NewMessage::new(Role::System, summary).with_metadata(metadata))
        .await
}

/// [`Error::InvalidInput`] when the message after `covered` on the active branch
/// holds results of tool calls: they answer calls the checkpoint would cover.
async fn check_no_split(conversation: &Conversation, covered: &Message) -> Result<()> {
    let next = conversation
        .messages_page(&MessageRange::after(covered.seq).limit(1))
        .await?;
    let split = next
        .items
        .first()
        .is_some_and(|m| m.tool_results().next().is_some());
    if split {
        return Err(Error::invalid_input(
            "through",
            format!(
                "message {} is followed by tool results: a checkpoint would separate \
                 them from their calls; compact through the results",
                covered.id
            ),
        ));
    }
    Ok(())
}
