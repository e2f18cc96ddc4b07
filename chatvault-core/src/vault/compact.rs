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

impl Conversation {
    /// Stores a compaction checkpoint: `summary` (made by `by`) stands for the messages
    /// of the active branch from the first through `through`, for a model; the messages
    /// themselves stay as they are, and [`messages`](Self::messages) still returns every
    /// one. The checkpoint is appended at the end of the active branch (one append; a
    /// [`Role::System`] message whose metadata is a [`Checkpoint`]) and returned. Several
    /// compactions stack: the latest checkpoint on a branch is the one that counts.
    ///
    /// Reads the record (for the current branch) and the message after `through`.
    /// [`Error::InvalidInput`] when the summary is blank, when `through` is not on the
    /// active branch, is still being written, or is followed by the results of its tool
    /// calls (a checkpoint never separates a tool call from its result: compact through
    /// the results instead); [`Error::NotFound`] when there is no such message.
    ///
    /// ```
    /// use chatvault_core::{ChatVault, Checkpoint, Role};
    /// # use chatvault_memory::{MemoryFiles, MemoryMessages};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> chatvault_core::Result<()> {
    /// # let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    /// let mut chat = vault.create_conversation(None).await?;
    /// chat.add_message(Role::User, "I'm planning a trip to Oslo in May.").await?;
    /// let answer = chat.add_message(Role::Assistant, "Lovely! For how long?").await?;
    /// chat.add_message(Role::User, "Five days.").await?;
    ///
    /// let checkpoint = chat
    ///     .compact("The user plans a trip to Oslo in May.", &answer.id, "summarizer")
    ///     .await?;
    /// let info = Checkpoint::of(&checkpoint).expect("a checkpoint");
    /// assert_eq!((info.through, info.covers), (answer.id, 2));
    /// assert_eq!(chat.messages().await?.len(), 4); // nothing replaced
    /// # Ok(()) }
    /// ```
    pub async fn compact(
        &mut self,
        summary: impl Into<String>,
        through: &MessageId,
        by: impl Into<String>,
    ) -> Result<Message> {
        let summary = summary.into();
        if summary.trim().is_empty() {
            return Err(Error::invalid_input("summary", "must not be blank"));
        }
        self.refresh().await?;
        let covered = self
            .message(through)
            .await?
            .ok_or_else(|| Error::message_not_found(through.as_str()))?;
        let tree = self.record.tree();
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
        self.check_no_split(&covered).await?;
        let checkpoint = Checkpoint {
            through: through.clone(),
            covers,
            by: by.into(),
            at: now(),
        };
        let value = serde_json::to_value(&checkpoint)
            .map_err(|e| Error::backend("chatvault", format!("a checkpoint as JSON: {e}")))?;
        let mut metadata = Metadata::new();
        metadata.insert(CHECKPOINT_KEY.to_owned(), value);
        self.add(NewMessage::new(Role::System, summary).with_metadata(metadata))
            .await
    }

    /// [`Error::InvalidInput`] when the message after `covered` on the active branch
    /// holds results of tool calls: they answer calls the checkpoint would cover.
    async fn check_no_split(&self, covered: &Message) -> Result<()> {
        let next = self
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
}
