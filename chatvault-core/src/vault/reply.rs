//! A streamed reply: stored before its first token, checkpointed, finished atomically.

use std::time::{Duration, Instant};

use super::chat_vault::ChatVault;
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{ConversationId, MessageId};
use crate::model::*;

/// How a [`ReplyWriter`] stores a streamed reply.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReplyOptions {
    /// Checkpoint when this much time has passed since the last one (default 1 s)...
    pub checkpoint_interval: Duration,
    /// ... or when this many bytes of content arrived since (default 16 KiB).
    pub checkpoint_bytes: usize,
    /// How long a reply may go without a checkpoint before readers see it as interrupted
    /// (default 30 s). Each checkpoint renews it; [`ReplyWriter::keep_alive`] renews it
    /// without content (while a tool runs, say).
    pub lease: Duration,
    /// The reply's role (default assistant).
    pub role: Role,
    /// The reply's metadata.
    pub metadata: Metadata,
    /// What the reply follows (default: the active leaf). A regenerated reply follows
    /// what the reply it replaces follows (see
    /// [`Branches::regenerate`](crate::Branches::regenerate)).
    pub parent: Parent,
}

impl Default for ReplyOptions {
    fn default() -> Self {
        ReplyOptions {
            checkpoint_interval: Duration::from_secs(1),
            checkpoint_bytes: 16 * 1024,
            lease: Duration::from_secs(30),
            role: Role::Assistant,
            metadata: Metadata::new(),
            parent: Parent::Active,
        }
    }
}

impl ReplyOptions {
    /// Sets the checkpoint interval.
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// Sets the checkpoint size.
    pub fn checkpoint_bytes(mut self, bytes: usize) -> Self {
        self.checkpoint_bytes = bytes;
        self
    }

    /// Sets the lease.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets the metadata.
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets what the reply follows.
    pub fn parent(mut self, parent: Parent) -> Self {
        self.parent = parent;
        self
    }
}

/// Writes a streamed reply into its stored message: from
/// [`Conversation::begin_reply`](crate::Conversation::begin_reply).
///
/// Deltas accumulate in memory and reach the backend at checkpoints, at most one per
/// [`ReplyOptions::checkpoint_interval`] unless [`ReplyOptions::checkpoint_bytes`] arrive
/// sooner: never one write per token. [`finish`](Self::finish) and [`fail`](Self::fail)
/// write the final content and status atomically. Every write is conditioned on the
/// revision this writer last wrote, so a second writer of the same message gets
/// [`Error::Conflict`](crate::Error::Conflict). If the process dies, the stored message
/// keeps the last checkpoint and reads as [`MessageStatus::Interrupted`] once the lease
/// runs out; it never reads as complete.
///
/// Each write wakes the reply's followers that share this writer's [`ChatVault`] (see
/// [`ReplyFollower`](crate::ReplyFollower)). A reply stopped by a reader
/// ([`Conversation::stop_reply`](crate::Conversation::stop_reply)) is seen at the
/// writer's next write (checkpoint, keep-alive, finish or fail): it stores nothing and
/// fails with [`Error::Stopped`](crate::Error::Stopped), and so does every call after it;
/// the stored reply keeps the content of its last checkpoint. [`finish`](Self::finish)
/// still records its usage on the stopped reply (the tokens were paid for).
#[derive(Debug)]
#[must_use = "a reply that is never finished reads as interrupted"]
pub struct ReplyWriter {
    pub(super) vault: ChatVault,
    pub(super) conversation_id: ConversationId,
    pub(super) message: Message,
    pub(super) dirty_bytes: usize,
    pub(super) dirty: bool,
    pub(super) last_checkpoint: Instant,
    pub(super) options: ReplyOptions,
}

impl ReplyWriter {
    /// The reply's message id.
    pub fn message_id(&self) -> &MessageId {
        &self.message.id
    }

    /// The reply as this writer has it (content not yet checkpointed included).
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Whether this writer has seen that its reply was stopped (then every write fails
    /// with [`Error::Stopped`](crate::Error::Stopped)).
    pub fn is_stopped(&self) -> bool {
        self.message.status == MessageStatus::Stopped
    }

    /// Adds text at the end of the reply; checkpoints when due.
    pub async fn push_text(&mut self, delta: &str) -> Result<()> {
        self.check_stopped()?;
        match self.message.parts.last_mut() {
            Some(Part::Text { text }) => text.push_str(delta),
            _ => self.message.parts.push(Part::text(delta)),
        }
        self.touched(delta.len()).await
    }

    /// Adds reasoning text at the end of the reply's reasoning; checkpoints when due.
    pub async fn push_reasoning(&mut self, delta: &str) -> Result<()> {
        self.check_stopped()?;
        match self.message.parts.last_mut() {
            Some(Part::Reasoning(r)) => r.text.get_or_insert_with(String::new).push_str(delta),
            _ => self.message.parts.push(Part::Reasoning(crate::Reasoning {
                text: Some(delta.to_owned()),
                ..Default::default()
            })),
        }
        self.touched(delta.len()).await
    }

    /// Adds a whole part (a tool call, a reasoning block with its signature, a file);
    /// checkpoints when due.
    pub async fn push_part(&mut self, part: Part) -> Result<()> {
        self.check_stopped()?;
        let size = serde_json::to_vec(&part).map_or(0, |v| v.len());
        self.message.parts.push(part);
        self.touched(size).await
    }

    async fn touched(&mut self, bytes: usize) -> Result<()> {
        self.dirty = true;
        self.dirty_bytes = self.dirty_bytes.saturating_add(bytes);
        if self.dirty_bytes >= self.options.checkpoint_bytes
            || self.last_checkpoint.elapsed() >= self.options.checkpoint_interval
        {
            self.checkpoint().await?;
        }
        Ok(())
    }

    fn lease_end(&self) -> chrono::DateTime<chrono::Utc> {
        now() + chrono::Duration::from_std(self.options.lease).unwrap_or(chrono::Duration::MAX)
    }

    /// Stores the content so far (status streaming) and renews the lease, now.
    pub async fn checkpoint(&mut self) -> Result<()> {
        let update = MessageUpdate {
            parts: Some(self.message.parts.clone()),
            status: Some(MessageStatus::Streaming),
            lease_expires_at: Some(self.lease_end()),
            ..Default::default()
        };
        self.write(update).await
    }

    /// Renews the lease without new content (a long tool call, a slow model).
    pub async fn keep_alive(&mut self) -> Result<()> {
        if self.dirty {
            return self.checkpoint().await;
        }
        let update = MessageUpdate {
            lease_expires_at: Some(self.lease_end()),
            ..Default::default()
        };
        self.write(update).await
    }

    /// Stores the final content with status complete and the usage, atomically.
    ///
    /// On a stopped reply: stores only the usage (conditioned on the stopped revision,
    /// best effort), then fails with [`Error::Stopped`](crate::Error::Stopped).
    pub async fn finish(mut self, usage: Option<Usage>) -> Result<Message> {
        let update = MessageUpdate {
            parts: Some(self.message.parts.clone()),
            status: Some(MessageStatus::Complete),
            usage: usage.clone(),
            ..Default::default()
        };
        match self.write(update).await {
            Err(Error::Stopped { message_id }) => {
                if let Some(usage) = usage {
                    self.record_usage(usage).await;
                }
                Err(Error::Stopped { message_id })
            }
            Err(e) => Err(e),
            Ok(()) => Ok(self.message),
        }
    }

    /// Stores `usage` on the stopped reply, content and status unchanged; a failure is
    /// logged (the stop already ended the reply).
    async fn record_usage(&mut self, usage: Usage) {
        let update = MessageUpdate {
            usage: Some(usage),
            ..Default::default()
        };
        let stored = self
            .vault
            .update_message(
                &self.conversation_id,
                &self.message.id,
                self.message.revision,
                &update,
            )
            .await;
        if let Err(error) = stored {
            tracing::warn!(
                message = %self.message.id, %error,
                "could not record the usage of a stopped reply"
            );
        }
    }

    /// Stores the content so far with status failed and the reason, atomically.
    pub async fn fail(mut self, reason: impl Into<String>) -> Result<Message> {
        let update = MessageUpdate {
            parts: Some(self.message.parts.clone()),
            status: Some(MessageStatus::Failed),
            failure: Some(reason.into()),
            ..Default::default()
        };
        self.write(update).await?;
        Ok(self.message)
    }

    async fn write(&mut self, update: MessageUpdate) -> Result<()> {
        self.check_stopped()?;
        let written = self
            .vault
            .update_message(
                &self.conversation_id,
                &self.message.id,
                self.message.revision,
                &update,
            )
            .await;
        let updated = match written {
            Ok(updated) => updated,
            Err(e) if e.kind() == ErrorKind::Conflict => return Err(self.conflicted(e).await),
            Err(e) => return Err(e),
        };
        self.message = updated.message;
        self.dirty = false;
        self.dirty_bytes = 0;
        self.last_checkpoint = Instant::now();
        self.vault
            .live
            .notify(&self.conversation_id, &self.message.id);
        Ok(())
    }

    /// Why a write conflicted: [`Error::Stopped`] when a reader stopped the reply
    /// (which this writer then keeps as it is stored), else the conflict itself.
    async fn conflicted(&mut self, conflict: Error) -> Error {
        let stored = self
            .vault
            .messages
            .message(&self.conversation_id, &self.message.id)
            .await;
        match stored {
            Ok(Some(stored)) if stored.status == MessageStatus::Stopped => {
                self.message = stored;
                self.stopped_error()
            }
            _ => conflict,
        }
    }

    fn check_stopped(&self) -> Result<()> {
        if self.is_stopped() {
            return Err(self.stopped_error());
        }
        Ok(())
    }

    fn stopped_error(&self) -> Error {
        Error::Stopped {
            message_id: self.message.id.to_string(),
        }
    }
}
