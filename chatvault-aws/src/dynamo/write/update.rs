//! [`Updater`]: `update_message`: a message of the tail is one `UpdateItem` of the
//! conversation item; a sealed one is rewritten in its chunk (or 0.1 message item) in one
//! transaction with the conversation item.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use chatvault_core::backend::{
    ConversationId, ConversationRecord, Error, Message, MessageId, MessageUpdate, MessageUpdated,
    Result, now,
};

use super::actions::{
    ConvUpdate, Op, TailChange, base_size, check_size, too_large_conversation, unchanged,
};
use super::outcome::{Written, conditional_write, single_write};
use super::seal::Sealer;
use crate::dynamo::layout::chunks::{
    Encoded, chunk_item, decode_tail, is_chunk, pack, planned_size,
};
use crate::dynamo::layout::item::*;
use crate::dynamo::limits::BACKEND;
use crate::dynamo::read::head::Heads;
use crate::dynamo::read::lookup::{Lookup, SealedLocation};
use crate::dynamo::seen::Seen;
use crate::dynamo::table::Table;

/// Where `update_message` found the message.
enum Found {
    /// At this index of the tail.
    Tail(usize),
    /// In a sealed item.
    Sealed(SealedLocation),
}

impl Found {
    /// The message found, as stored.
    fn message(&self, current: &Seen) -> Message {
        match self {
            Found::Tail(index) => current.tail[*index].message.clone(),
            Found::Sealed(location) => location.messages[location.index].clone(),
        }
    }
}

/// `message` updated by `update` against `current`: the attributes the write sets on
/// the conversation item, the message's tail entry, and the conversation as it will be.
fn updated(
    id: &ConversationId,
    current: &Seen,
    message: &mut Message,
    update: &MessageUpdate,
) -> Result<(Attributes, Encoded, Seen)> {
    let mut record = current.record.clone();
    record.apply_message_update(message, update, now());
    let set = vec![
        (VERSION, n(record.version)),
        (FORMAT, n(FORMAT_VERSION)),
        (LAST_ACTIVE, s(format_time(record.last_active))),
        (ACTIVITY, s(activity(record.last_active, id))),
        (USAGE, s(json(&record.usage)?)),
    ];
    let entry = Encoded::new(message.clone())?;
    let after = Seen {
        base_size: base_size(&record, current.sealed_max.as_ref())?,
        record,
        ..current.clone()
    };
    Ok((set, entry, after))
}

/// Updates stored messages.
#[derive(Clone)]
pub(crate) struct Updater {
    table: Table,
    heads: Heads,
    lookup: Lookup,
    sealer: Sealer,
}

impl Updater {
    /// Updates of `table`'s messages, through the other parts.
    pub(crate) fn new(table: Table, heads: Heads, lookup: Lookup, sealer: Sealer) -> Self {
        Updater {
            table,
            heads,
            lookup,
            sealer,
        }
    }

    /// `update_message`: the message is found in the tail (as remembered, or as read) or,
    /// sealed, through its id marker. In the tail: one `UpdateItem` of the conversation
    /// item (the entry, usage totals, version, activity; conditional on its version). In a
    /// chunk (or a 0.1 message item): one transaction of that item's rewrite (conditional on
    /// its revision; a chunk that the update makes too large is split) and the conversation
    /// item's update. Retried while other writers move the conversation on; a changed
    /// revision is [`Error::Conflict`].
    pub(crate) async fn update_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        let op = Op {
            operation: "update_message",
            id,
        };
        // Whether `current` was read (or returned by DynamoDB) in this call, rather than
        // remembered: a remembered tail may be behind.
        let (mut current, mut fresh) = self.heads.seen_or_read(id).await?;
        for attempt in 0..self.table.max_write_attempts {
            if current.legacy {
                current = self.sealer.index_legacy(op, current).await?;
            }
            let found = match self.find(id, &current, message_id).await? {
                Some(found) => found,
                None if fresh => {
                    // Gone with its conversation, or never there.
                    self.heads.read_seen(id).await?;
                    return Err(Error::message_not_found(message_id.as_str()));
                }
                // Perhaps appended since this backend last saw the conversation.
                None => {
                    (current, fresh) = (self.heads.read_seen(id).await?, true);
                    continue;
                }
            };
            let mut message = found.message(&current);
            let in_tail = matches!(found, Found::Tail(_));
            if let Err(conflict) = message.expect_revision(expected_revision) {
                if in_tail && !fresh {
                    (current, fresh) = (self.heads.read_seen(id).await?, true);
                    continue;
                }
                return Err(conflict);
            }
            let (set, entry, mut after) = updated(id, &current, &mut message, update)?;
            // Lost answer: is the message at the new revision, as written?
            let committed = || async {
                Ok(self
                    .lookup
                    .message_by_id(id, message_id)
                    .await?
                    .is_some_and(|now| now == message))
            };
            let written = match found {
                Found::Tail(index) => {
                    after.tail[index] = entry.clone();
                    if after.item_size() > MAX_ITEM_SIZE {
                        // The tail no longer fits the conversation item: sealed first, the
                        // message is updated in its chunk.
                        current = self.sealer.seal_tail(op, &current, attempt).await?;
                        fresh = true;
                        continue;
                    }
                    let change = TailChange::Entry(index, s(entry.json));
                    self.update_in_tail(op, &current, set, change, &after, committed)
                        .await?
                }
                Found::Sealed(location) => {
                    let actions =
                        self.sealed_actions(&current, &after.record, set, location, &message)?;
                    let size = after.item_size();
                    conditional_write(
                        &self.table,
                        op,
                        actions,
                        || too_large_conversation(id, size),
                        committed,
                    )
                    .await?
                }
            };
            let latest = match self.updated_or_latest(id, written, after, message, in_tail)? {
                Ok(updated) => return Ok(updated),
                Err(latest) => latest,
            };
            current = self.heads.retry_from(id, latest, attempt).await?;
            fresh = true;
        }
        Err(self.table.conflict(id, "update_message"))
    }

    /// What became of an update's write: `Ok` with the answer when it committed (or
    /// when the item DynamoDB returned with a failed condition shows it did: a retry the
    /// SDK sent after losing the answer of this very update fails its condition), else
    /// `Err` with the item to retry from, when DynamoDB returned it.
    fn updated_or_latest(
        &self,
        id: &ConversationId,
        written: Written,
        after: Seen,
        message: Message,
        in_tail: bool,
    ) -> Result<std::result::Result<MessageUpdated, Option<Item>>> {
        Ok(match written {
            Written::Done => {
                let record = after.record.clone();
                self.heads.remember(after);
                Ok(MessageUpdated::new(record, message))
            }
            Written::Moved(Some(item))
                if in_tail
                    && !is_deleting(&item)
                    && decode_tail(&item)?.iter().any(|e| e.message == message) =>
            {
                let now = self.heads.seen_writable(id, Some(item))?;
                Ok(MessageUpdated::new(now.record, message))
            }
            Written::Moved(item) => Err(item),
            // The message's item moved on since it was read: read it again.
            Written::Other | Written::Conflicted => Err(None),
        })
    }

    /// The actions of an update of a sealed message: the conversation item's update
    /// (`set`, writing `record`, conditional on it being as `current` was), then the
    /// rewrite of the item holding the message.
    fn sealed_actions(
        &self,
        current: &Seen,
        record: &ConversationRecord,
        set: Vec<(&'static str, AttributeValue)>,
        location: SealedLocation,
        message: &Message,
    ) -> Result<Vec<TransactWriteItem>> {
        let id = &current.record.id;
        let mut actions = vec![self.table.conditional_update(
            record,
            current.record.version,
            &unchanged(&current.record),
            set,
        )?];
        actions.extend(self.rewrite_sealed(id, location, message)?);
        Ok(actions)
    }

    /// Where the message is: in the tail of `current`, or sealed (through its id
    /// marker); `None` when it is in neither.
    async fn find(
        &self,
        id: &ConversationId,
        current: &Seen,
        message_id: &MessageId,
    ) -> Result<Option<Found>> {
        if let Some(index) = current
            .tail
            .iter()
            .position(|e| &e.message.id == message_id)
        {
            return Ok(Some(Found::Tail(index)));
        }
        Ok(self
            .lookup
            .sealed_location(id, message_id)
            .await?
            .map(Found::Sealed))
    }

    /// A message of the tail updated (`change`), with `set` on the conversation item, in
    /// one `UpdateItem` conditional on the conversation being as `current` was.
    async fn update_in_tail<Check>(
        &self,
        op: Op<'_>,
        current: &Seen,
        set: Vec<(&'static str, AttributeValue)>,
        change: TailChange,
        after: &Seen,
        committed: impl FnOnce() -> Check,
    ) -> Result<Written>
    where
        Check: Future<Output = Result<bool>>,
    {
        let size = after.item_size();
        let request = self.table.update_request(
            op.id,
            ConvUpdate::writing(
                &after.record,
                current.record.version,
                unchanged(&current.record),
                set,
                Some(change),
            )?,
        );
        single_write(
            op,
            request.send().await,
            || too_large_conversation(op.id, size),
            committed,
        )
        .await
    }

    /// The actions that store `message` (updated) in its sealed item: a chunk rewritten
    /// (split into several when it no longer fits one item), conditional on the chunk's
    /// revision; or a 0.1 message item updated, conditional on the message's revision.
    fn rewrite_sealed(
        &self,
        id: &ConversationId,
        location: SealedLocation,
        message: &Message,
    ) -> Result<Vec<TransactWriteItem>> {
        let SealedLocation {
            item,
            mut messages,
            index,
        } = location;
        let expected_revision = messages[index].revision;
        if !is_chunk(&item) {
            return Ok(vec![self.legacy_message_update(
                id,
                message,
                expected_revision,
            )?]);
        }
        let revision = get_n(&item, REVISION)?;
        messages[index] = message.clone();
        let runs = pack(
            messages
                .into_iter()
                .map(Encoded::new)
                .collect::<Result<Vec<_>>>()?,
        );
        let last = runs.len() - 1;
        let mut actions = Vec::with_capacity(runs.len());
        for (k, run) in runs.iter().enumerate() {
            if k < last {
                actions.push(self.table.put_new(chunk_item(id, run, 1)?)?);
                continue;
            }
            check_size(
                || format!("message {} as a DynamoDB item", message.id),
                planned_size(id, run, revision + 1)?,
            )?;
            let chunk = chunk_item(id, run, revision + 1)?;
            let put = Put::builder()
                .table_name(&self.table.name)
                .set_item(Some(chunk))
                .condition_expression("#rev = :rev")
                .expression_attribute_names("#rev", REVISION)
                .expression_attribute_values(":rev", n(revision))
                .build()
                .map_err(|e| Error::backend(BACKEND, e))?;
            actions.push(TransactWriteItem::builder().put(put).build());
        }
        Ok(actions)
    }

    /// The update of a message item written by 0.1: every changeable attribute set or
    /// removed, conditional on its revision (0.1 items carry none: theirs is 1).
    fn legacy_message_update(
        &self,
        id: &ConversationId,
        message: &Message,
        expected_revision: u64,
    ) -> Result<TransactWriteItem> {
        let mut names = HashMap::from([
            ("#rev".to_owned(), REVISION.to_owned()),
            ("#parts".to_owned(), PARTS.to_owned()),
            ("#content".to_owned(), CONTENT.to_owned()),
        ]);
        let mut values = HashMap::from([
            (":expected".to_owned(), n(expected_revision)),
            (":rev".to_owned(), n(message.revision)),
            (":parts".to_owned(), s(json(&message.parts)?)),
        ]);
        let mut sets = vec!["#rev = :rev".to_owned(), "#parts = :parts".to_owned()];
        let mut removes = vec!["#content".to_owned()];
        for (i, (name, value)) in optional_message_fields(message)?.into_iter().enumerate() {
            names.insert(format!("#f{i}"), name.to_owned());
            match value {
                Some(value) => {
                    sets.push(format!("#f{i} = :f{i}"));
                    values.insert(format!(":f{i}"), value);
                }
                None => removes.push(format!("#f{i}")),
            }
        }
        let condition = if expected_revision == 1 {
            "attribute_exists(#parts) AND #rev = :expected OR attribute_not_exists(#rev) AND attribute_exists(#content)"
        } else {
            "#rev = :expected"
        };
        let update = Update::builder()
            .table_name(&self.table.name)
            .set_key(Some(key(id, message_sk(message.seq))))
            .update_expression(format!(
                "SET {} REMOVE {}",
                sets.join(", "),
                removes.join(", ")
            ))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(|e| Error::backend(BACKEND, e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}
