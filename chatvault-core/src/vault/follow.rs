//! Following a streamed reply from an offset: what is stored from there, then each new
//! checkpoint's text, in order, until the reply ends.

use std::pin::pin;
use std::time::Duration;

use futures_core::Stream;
use futures_util::future::{Either, select};

use super::chat_vault::{ChatVault, settle};
use super::timer::sleep;
use crate::error::{Error, Result};
use crate::ids::{ConversationId, MessageId};
use crate::model::{Message, now};

/// How a [`ReplyFollower`] waits for the next checkpoint of a reply.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FollowOptions {
    /// How long the follower waits before reading the reply again when nothing told it
    /// of a checkpoint (default 250 ms). A writer using the same [`ChatVault`] (or a
    /// clone) wakes its followers at each checkpoint, so they read it within a
    /// millisecond or so; a writer in another process is seen at the next read, within
    /// this interval.
    pub poll_interval: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            poll_interval: Duration::from_millis(250),
        }
    }
}

impl FollowOptions {
    /// Sets the poll interval (at least 1 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }
}

/// What a [`ReplyFollower`] reads.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ReplyEvent {
    /// More of the reply's text ([`Message::content`]): `text` starts at byte `offset`
    /// of it, and the next delta at `offset + text.len()` (the offset to resume from).
    Delta {
        /// Where `text` starts, in bytes of the reply's text.
        offset: u64,
        /// The text stored after `offset`, up to the checkpoint just read.
        text: String,
    },
    /// The reply ended, after its last delta: the message as stored, with its status
    /// (complete, failed, [stopped](crate::MessageStatus::Stopped), or interrupted when
    /// its writer died), every part (tool calls, reasoning) and its usage. Nothing follows.
    End(Box<Message>),
}

/// Follows one streamed reply: from
/// [`Conversation::follow_reply`](crate::Conversation::follow_reply) or [`ChatVault::follow_reply`].
///
/// An **offset** is a byte position in the reply's text (its [`Message::content`], the
/// text parts joined): the text of a reply only grows, checkpoint after checkpoint, so the
/// same offset means the same place to every reader, in every process. A follower started
/// at offset `n` first gets what is stored after `n`, then the text each new checkpoint
/// adds, as [`ReplyEvent::Delta`]s that join up exactly (no gap, no byte twice), then
/// [`ReplyEvent::End`]. A reader that goes away resumes with a new follower from the
/// offset it reached (`offset + text.len()` of the last delta it kept): the joined text is
/// byte-identical to what a reader that never left gets.
///
/// Latency: the follower reads the reply when a writer sharing its vault checkpoints it
/// (woken in-process, at once) and otherwise every
/// [`FollowOptions::poll_interval`]; readers see a checkpoint, not each token, so the
/// writer's [`ReplyOptions::checkpoint_interval`](crate::ReplyOptions::checkpoint_interval)
/// bounds how fresh the text is. Each read is one
/// [`MessagesBackend::message`](crate::MessagesBackend::message) call.
#[derive(Debug)]
#[must_use = "a follower reads nothing until its next() is awaited"]
pub struct ReplyFollower {
    vault: ChatVault,
    conversation_id: ConversationId,
    message_id: MessageId,
    offset: u64,
    options: FollowOptions,
    /// The ended reply, read with the last delta: sent after it.
    ended: Option<Box<Message>>,
    done: bool,
}

impl ReplyFollower {
    /// A follower of `message_id` in `conversation_id` from byte `offset`: see
    /// [`ChatVault::follow_reply`].
    pub(super) fn new(
        vault: ChatVault,
        conversation_id: ConversationId,
        message_id: MessageId,
        offset: u64,
        options: FollowOptions,
    ) -> Self {
        ReplyFollower {
            vault,
            conversation_id,
            message_id,
            offset,
            options,
            ended: None,
            done: false,
        }
    }

    /// Where the next delta starts: the offset to resume from.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The reply's message id.
    pub fn message_id(&self) -> &MessageId {
        &self.message_id
    }

    /// The next event: a delta, then more, then the end; `None` after the end.
    ///
    /// Waits while the reply is stored as pending or streaming and nothing new is stored.
    /// Fails with [`Error::NotFound`] when the reply (or its conversation) is not stored,
    /// and with [`Error::InvalidInput`] when the offset is past the reply's text or
    /// inside a character (no offset this API gives out is); an error leaves the follower
    /// where it was, so `next` may be called again (after a temporary backend error, say).
    /// Cancel-safe: a `next` dropped before it returns (a client that went away) has
    /// moved nothing; the offset moves only with the event returned.
    pub async fn next(&mut self) -> Result<Option<ReplyEvent>> {
        if self.done {
            return Ok(None);
        }
        if let Some(message) = self.ended.take() {
            self.done = true;
            return Ok(Some(ReplyEvent::End(message)));
        }
        loop {
            // Subscribed before the read: a checkpoint stored after it wakes us.
            let mut woken = self
                .vault
                .live
                .subscribe(&self.conversation_id, &self.message_id);
            let message = self.read().await?;
            let text = message.content();
            let from = self.start_in(&text)?;
            let ended = !message.status.is_in_progress();
            if from < text.len() {
                let event = ReplyEvent::Delta {
                    offset: self.offset,
                    text: text[from..].to_owned(),
                };
                self.offset = text.len() as u64;
                if ended {
                    self.ended = Some(Box::new(message));
                }
                return Ok(Some(event));
            }
            if ended {
                self.done = true;
                return Ok(Some(ReplyEvent::End(Box::new(message))));
            }
            let poll = pin!(sleep(self.options.poll_interval));
            let wake = pin!(woken.woken());
            if let Either::Left((false, wake)) = select(poll, wake).await {
                // No timer thread (the system refused a thread): woken in-process only.
                wake.await;
            }
        }
    }

    /// The events as a stream, ending after [`ReplyEvent::End`] or after an error.
    pub fn into_stream(self) -> impl Stream<Item = Result<ReplyEvent>> + Send {
        futures_util::stream::unfold(Some(self), |follower| async move {
            let mut follower = follower?;
            match follower.next().await {
                Ok(Some(event)) => Some((Ok(event), Some(follower))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
    }

    /// The reply as stored now, as readers see it.
    async fn read(&self) -> Result<Message> {
        let mut message = self
            .vault
            .messages
            .message(&self.conversation_id, &self.message_id)
            .await?
            .ok_or_else(|| Error::message_not_found(self.message_id.as_str()))?;
        settle(&mut message, now());
        Ok(message)
    }

    /// Where this follower's offset is in `text`.
    fn start_in(&self, text: &str) -> Result<usize> {
        match usize::try_from(self.offset) {
            Ok(at) if text.is_char_boundary(at) => Ok(at),
            _ => Err(Error::invalid_input(
                "offset",
                format!(
                    "{} is not a character boundary of the reply's {} bytes of text",
                    self.offset,
                    text.len()
                ),
            )),
        }
    }
}
