//! [`Appender`]: `append_messages`, a short loop that sends what [`plan_append`]
//! decides, and retries from the conversation as DynamoDB returns it when another writer
//! wins.

use std::sync::Arc;

use chatvault_core::backend::{
    Appended, ConversationId, Error, Message, NewMessage, Result, UserId, check_owner,
    check_replay, check_unique_ids, now,
};

use super::actions::{Op, chunk_exists, too_large_conversation};
use super::outcome::{Written, conditional_write, single_write};
use super::plan::{Sealing, Step, check_append_count, plan_append};
use super::preseal::Presealer;
use super::seal::Sealer;
use crate::dynamo::layout::item::Item;
use crate::dynamo::read::head::Heads;
use crate::dynamo::read::lookup::Lookup;
use crate::dynamo::seen::Seen;
use crate::dynamo::table::Table;
use crate::dynamo::turns::Turns;

/// Appends messages; owns the turns that appends from this process take.
#[derive(Clone)]
pub(crate) struct Appender {
    table: Table,
    heads: Heads,
    lookup: Lookup,
    sealer: Sealer,
    /// Writes the copies of pending seals, which later appends drop from the tail.
    presealer: Presealer,
    /// Whether tails are sealed outside the appends (through `presealer`).
    background_seals: bool,
    /// Appends from this process to one conversation take turns, shared by clones.
    turns: Arc<Turns>,
}

impl Appender {
    /// Appends to `table`'s conversations, through the other parts, sealing tails in
    /// the background or not.
    pub(crate) fn new(
        table: Table,
        heads: Heads,
        lookup: Lookup,
        sealer: Sealer,
        background_seals: bool,
    ) -> Self {
        Appender {
            presealer: Presealer::new(table.clone()),
            background_seals,
            table,
            heads,
            lookup,
            sealer,
            turns: Arc::default(),
        }
    }

    /// Waits for the copies of pending seals started so far (see [`Presealer`]).
    pub(crate) async fn finish_seals(&self) {
        self.presealer.finish().await;
    }

    /// `append_messages`, on the layout of [`chunks`](crate::dynamo::layout::chunks).
    ///
    /// Written against the conversation as this backend last saw it (its `version`,
    /// `message_count`, `created_at` and tail, remembered from the last write or read of
    /// it, see [`SeenCache`](crate::dynamo::seen::SeenCache)), so that in the steady state an
    /// append is one request: a `PutItem` of the conversation item with the messages
    /// added to the tail, which also drops the tail's first entries once a task has
    /// copied them into a chunk item (the pending seal, see
    /// [`Presealer`]), or, only when the tail passes its hard bounds, a
    /// `TransactWriteItems` that seals the tail into chunk items. When another writer
    /// moved the conversation on (or it was never seen), the condition fails and
    /// DynamoDB returns the conversation item as it is with the failure: the retry
    /// starts from that state, without a read. The conversation is read first only when
    /// this backend has not seen it.
    ///
    /// Idempotency: before writing, each message id is looked up in the tail and, when it
    /// sorts at or before the greatest sealed id (never, for the UUID v7 ids the vault
    /// makes, unless clocks disagree), through its id marker; [`check_replay`] decides on
    /// what is found (the stored messages, or [`Error::AlreadyExists`]). What is looked at
    /// is the state the write is conditional on: an id stored meanwhile fails the write,
    /// and the retry finds it. A retry after a lost answer is therefore safe.
    ///
    /// The owner check ([`check_owner`]) is made on the state the write is conditional on:
    /// a conversation's owner never changes, and the condition holds only for the
    /// conversation that state describes (not one deleted and created again since), so
    /// it costs no request. A refusal is answered only from a state read in this call.
    pub(crate) async fn append(
        &self,
        owner: Option<&UserId>,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        check_unique_ids(&messages)?;
        if messages.is_empty() {
            let (record, _) = self.heads.read_writable(id).await?;
            check_owner(&record, owner)?;
            return Ok(Appended::new(record, Vec::new()));
        }
        check_append_count(messages.len())?;
        let op = Op {
            operation: "append_messages",
            id,
        };
        // Writers in this process take turns (see `turns`); other processes contend below.
        let _turn = self.turns.take(id).await;
        // Whether `current` was read (or returned by DynamoDB) in this call, rather than
        // remembered: a write is conditional on what it says, but a replay answers from
        // it alone, so a replay is decided on a state read now (the remembered one may be
        // of a conversation since deleted and created again).
        let (mut current, mut fresh) = self.heads.seen_or_read(id).await?;
        for attempt in 0..self.table.max_write_attempts {
            if current.legacy {
                current = self.sealer.index_legacy(op, current).await?;
            }
            if let Err(e) = check_owner(&current.record, owner) {
                if fresh {
                    return Err(e);
                }
                (current, fresh) = (self.heads.read_seen(id).await?, true);
                continue;
            }
            match self.stored_already(id, &current, &messages).await {
                Ok(None) => {}
                Ok(Some(_)) | Err(Error::AlreadyExists { .. }) if !fresh => {
                    (current, fresh) = (self.heads.read_seen(id).await?, true);
                    continue;
                }
                Ok(Some(replayed)) => return Ok(replayed),
                Err(e) => return Err(e),
            }
            let fold = self.presealer.written(id, &current);
            let plan = plan_append(
                id,
                &current,
                messages.clone(),
                now(),
                fold,
                self.background_seals,
            );
            let plan = match plan {
                // A parent `seq` beyond what was remembered may have been stored since.
                Err(Error::InvalidInput { .. }) if !fresh => {
                    (current, fresh) = (self.heads.read_seen(id).await?, true);
                    continue;
                }
                plan => plan?,
            };
            let (written, after) = match plan.step {
                Step::PutTail { item, after } => {
                    let written = self.put_tail(op, &current, item, &after, &plan.stored);
                    (written.await?, after)
                }
                Step::Seal(sealing) => self.seal_with(op, sealing, &plan.stored).await?,
                Step::SealTailFirst => {
                    // Too much for one transaction: the tail is sealed on its own first.
                    current = self.sealer.seal_tail(op, &current, attempt).await?;
                    continue;
                }
            };
            let latest = match written {
                Written::Done => {
                    let record = after.record.clone();
                    if self.background_seals {
                        self.presealer.after_write(id, &after);
                    }
                    self.heads.remember(after);
                    return Ok(Appended::new(record, plan.stored));
                }
                // Another writer moved the conversation on (or what was remembered is
                // stale): start again from its new state, returned with the failure.
                Written::Moved(item) => item,
                Written::Other => return Err(chunk_exists(id)),
                Written::Conflicted => None,
            };
            (current, fresh) = (self.heads.retry_from(id, latest, attempt).await?, true);
        }
        Err(self.table.conflict(id, "append"))
    }

    /// Sends [`Step::PutTail`]: `item`, the whole conversation item as `after` describes
    /// it, put if the conversation is still as `current` was.
    async fn put_tail(
        &self,
        op: Op<'_>,
        current: &Seen,
        item: Item,
        after: &Seen,
        stored: &[Message],
    ) -> Result<Written> {
        let request = self.table.conversation_put(&current.record, item);
        let size = after.item_size();
        single_write(
            op,
            request.send().await,
            || too_large_conversation(op.id, size),
            // The answer may have been lost after the put committed: is its first
            // message stored?
            || self.lookup.committed(op.id, stored),
        )
        .await
    }

    /// Sends [`Step::Seal`]; returns what became of it and the conversation as it is
    /// once it is written.
    async fn seal_with(
        &self,
        op: Op<'_>,
        sealing: Sealing,
        stored: &[Message],
    ) -> Result<(Written, Seen)> {
        let (actions, after, total) = self.sealer.sealing_actions(op.id, sealing)?;
        let written = conditional_write(
            &self.table,
            op,
            actions,
            || too_large_conversation(op.id, total),
            || self.lookup.committed(op.id, stored),
        )
        .await?;
        Ok((written, after))
    }

    /// A retried append: the messages already stored under `messages`' ids in `current`
    /// (its tail, and the id markers of ids that may be sealed), judged by
    /// [`check_replay`], with `current`'s record. `None` when none of the ids is stored.
    async fn stored_already(
        &self,
        id: &ConversationId,
        current: &Seen,
        messages: &[NewMessage],
    ) -> Result<Option<Appended>> {
        let lookups = messages.iter().map(|m| async move {
            if let Some(found) = current.tail.iter().find(|t| t.message.id == m.id) {
                return Ok(Some(found.message.clone()));
            }
            match &current.sealed_max {
                Some(max) if m.id.as_str() <= max.as_str() => {
                    self.lookup.sealed_message(id, &m.id).await
                }
                _ => Ok(None),
            }
        });
        let stored = futures_util::future::try_join_all(lookups).await?;
        Ok(check_replay(messages, stored)?
            .map(|messages| Appended::new(current.record.clone(), messages)))
    }
}
