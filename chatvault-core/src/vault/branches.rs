//! Branches of one conversation: edit, regenerate, switch, rewind, siblings and fork.

use super::conversation::Conversation;
use super::new_conversation::NewConversation;
use super::reply::{ReplyOptions, ReplyWriter};
use crate::error::{Error, Result};
use crate::ids::MessageId;
use crate::model::{
    ActiveLeaf, ConversationPatch, Message, MessageRange, NewMessage, Parent, Tree,
};

/// How many messages a [`fork`](Branches::fork) copies per append.
const FORK_PAGE: usize = 100;

/// The versions of one message: it and its siblings (the messages that follow the same
/// one), oldest first, and where it stands among them: "< 2/3 >" is `index + 1` of
/// `messages.len()`.
#[derive(Clone, Debug, PartialEq)]
pub struct Siblings {
    /// The versions, by ascending `seq`.
    pub messages: Vec<Message>,
    /// The position of the message asked about in `messages`.
    pub index: usize,
}

/// The branch operations of a conversation, from [`Conversation::branches`].
///
/// Each operation is one append or one record change, whatever the conversation's length:
/// nothing is copied but by [`fork`](Self::fork), and nothing is deleted. Edits and
/// regenerations are appends, atomic and idempotent by message id like every append; a
/// switch or a rewind is a record change. The model and its costs are in
/// `docs/branches.md`.
#[derive(Debug)]
pub struct Branches<'c> {
    pub(super) conversation: &'c mut Conversation,
}

impl Branches<'_> {
    /// The branch table as the handle last saw it.
    pub fn tree(&self) -> Tree {
        self.conversation.record().tree().into_owned()
    }

    /// Stores `replacement` as a new version of the message `message_id`: a sibling that
    /// follows what the message follows, which becomes the active leaf. The old version
    /// and everything after it stay, one [`switch`](Self::switch) away.
    ///
    /// [`Error::NotFound`] when the conversation holds no such message.
    pub async fn edit(
        &mut self,
        message_id: &MessageId,
        replacement: NewMessage,
    ) -> Result<Message> {
        let old = self.stored(message_id).await?;
        self.conversation
            .add(replacement.with_parent(parent_of(&old)))
            .await
    }

    /// Starts a new version of the reply `message_id` as a streamed reply (see
    /// [`Conversation::begin_reply`]): a sibling of it, active once stored.
    pub async fn regenerate(
        &mut self,
        message_id: &MessageId,
        options: ReplyOptions,
    ) -> Result<ReplyWriter> {
        let old = self.stored(message_id).await?;
        self.conversation
            .begin_reply(options.parent(parent_of(&old)))
            .await
    }

    /// Makes the branch through `message_id` active: the active leaf becomes the newest
    /// message reached from it by always taking the newest follower
    /// ([`Tree::newest_leaf_from`]). Returns that leaf's `seq`.
    pub async fn switch(&mut self, message_id: &MessageId) -> Result<u64> {
        let target = self.stored(message_id).await?;
        self.set_active(ActiveLeaf::Branch(target.seq)).await
    }

    /// Rewinds to `message_id`: it becomes the active leaf, and the messages after it
    /// leave the active path. Nothing is deleted: a later [`switch`](Self::switch) to any
    /// of them brings them back; the next append follows `message_id`, on a new branch.
    pub async fn rewind(&mut self, message_id: &MessageId) -> Result<u64> {
        let target = self.stored(message_id).await?;
        self.set_active(ActiveLeaf::At(target.seq)).await
    }

    /// The versions of `message_id` and its place among them (reads the record and each
    /// version: one read per version).
    pub async fn siblings(&mut self, message_id: &MessageId) -> Result<Siblings> {
        let message = self.stored(message_id).await?;
        self.conversation.refresh().await?;
        let seqs = self.conversation.record().tree().siblings(message.seq);
        let mut messages = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let page = self
                .conversation
                .all_messages_page(&MessageRange::after(seq - 1).limit(1))
                .await?;
            messages.extend(page.items.into_iter().filter(|m| m.seq == seq));
        }
        let index = messages
            .iter()
            .position(|m| m.id == message.id)
            .ok_or_else(|| Error::message_not_found(message_id.as_str()))?;
        Ok(Siblings { messages, index })
    }

    /// A new conversation, made by `into`, whose history is this one's path from the first
    /// message to `message_id` (copied in pages of 100, in bounded memory, with the same
    /// message ids, times and content). It is independent of this one: deleting either
    /// leaves the other whole. Calling it again with the same conversation id (set on
    /// `into`) after a failure finishes the copy without storing a message twice.
    pub async fn fork(
        &mut self,
        message_id: &MessageId,
        into: NewConversation<'_>,
    ) -> Result<Conversation> {
        let upto = self.stored(message_id).await?;
        self.conversation.refresh().await?;
        let mut fork = into.create_or_resume().await?;
        let mut after = 0;
        loop {
            let range = MessageRange::after(after).limit(FORK_PAGE);
            let page = self.conversation.branch_page(upto.seq, &range).await?;
            let Some(last) = page.items.last().map(|m| m.seq) else {
                break;
            };
            let copies = page
                .items
                .iter()
                .map(|m| m.to_new().with_parent(Parent::Active))
                .collect();
            fork.append(copies).await?;
            if page.next_cursor.is_none() || last >= upto.seq {
                break;
            }
            after = last;
        }
        Ok(fork)
    }

    async fn stored(&self, message_id: &MessageId) -> Result<Message> {
        self.conversation
            .message(message_id)
            .await?
            .ok_or_else(|| Error::message_not_found(message_id.as_str()))
    }

    async fn set_active(&mut self, active: ActiveLeaf) -> Result<u64> {
        self.conversation
            .patch(ConversationPatch {
                active: Some(active),
                ..ConversationPatch::default()
            })
            .await?;
        self.conversation
            .record()
            .active_leaf()
            .ok_or_else(|| Error::backend("messages", "a switched conversation has no leaf"))
    }
}

/// What a new version of `message` follows: what `message` follows.
fn parent_of(message: &Message) -> Parent {
    message.parent.map_or(Parent::Root, Parent::Seq)
}
