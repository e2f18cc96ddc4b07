//! What an append writes, decided without DynamoDB: the messages join the tail, or the
//! tail is sealed into chunk items, or the append is too large. [`plan_append`] and
//! [`plan_sealing`] only compute items; [`append`](super::append) sends them.

use aws_sdk_dynamodb::types::AttributeValue;
use chatvault_core::backend::{
    ConversationId, ConversationRecord, Error, Message, NewMessage, Result,
};
use chrono::{DateTime, Utc};

use super::actions::{ConvUpdate, TailChange, base_item, base_size, check_size, unchanged};
use crate::dynamo::layout::chunks::{
    Encoded, TAIL_HARD_BYTES, TAIL_HARD_MESSAGES, TAIL_MAX_BYTES, TAIL_MAX_MESSAGES, chunk_item,
    pack_sealed, planned_size, tail_entries,
};
use crate::dynamo::layout::item::*;
use crate::dynamo::limits::MAX_APPEND_MESSAGES;
use crate::dynamo::seen::Seen;

/// An append, planned against the conversation as `current` describes it.
#[derive(Debug)]
pub(crate) struct AppendPlan {
    /// The messages as they will be stored (numbered, timestamped).
    pub(crate) stored: Vec<Message>,
    /// What to write.
    pub(crate) step: Step,
}

/// The one write an append plan sends.
#[derive(Debug)]
pub(crate) enum Step {
    /// The steady state: the messages join the tail, in one conditional put of the whole
    /// conversation item `item` (what this backend knows of it, at the version the
    /// condition names, is all of it), which also drops the tail's pending entries whose
    /// chunk is written, or marks the tail pending once it is full. The conversation is
    /// `after` once it is written.
    PutTail { item: Item, after: Seen },
    /// The tail is full: it is sealed into chunk items, in one transaction, and the
    /// messages make the new tail (or are sealed with it, when they would not fit a tail
    /// of their own).
    Seal(Sealing),
    /// Too much for one transaction with the tail: the tail is sealed on its own first,
    /// then the append is planned again.
    SealTailFirst,
}

/// A transaction that seals messages into chunk items (with an id marker each) and
/// updates the conversation item: `update` first (its condition is action 0's), then
/// `chunks`, then `markers`.
#[derive(Debug)]
pub(crate) struct Sealing {
    pub(crate) update: ConvUpdate,
    /// Chunk items, each put whatever is stored under its key: the transaction holds
    /// only if the conversation is as read, so every key is past its sealed messages,
    /// where only a pending seal's copy can be.
    pub(crate) chunks: Vec<Item>,
    /// Id markers, put whatever is stored under their key.
    pub(crate) markers: Vec<Item>,
    /// The conversation as it will be.
    pub(crate) after: Seen,
    /// The transaction's size in bytes.
    pub(crate) total: u64,
}

impl Sealing {
    /// The transaction's number of actions.
    pub(crate) fn actions(&self) -> usize {
        1 + self.chunks.len() + self.markers.len()
    }

    /// Whether the transaction is within DynamoDB's 100 actions and 4 MB.
    fn fits_one_transaction(&self) -> bool {
        self.actions() <= MAX_TRANSACTION_ITEMS && self.total <= MAX_TRANSACTION_SIZE
    }
}

/// Plans an append of `messages` (at most [`MAX_APPEND_MESSAGES`], ids checked before)
/// at time `at` to the conversation as `current` describes it, where the chunk of the
/// tail's first `fold` entries (0, or `current.pending`) is known written and equal to
/// them: the append drops them from the tail. With `background` seals, the tail grows to
/// [`TAIL_HARD_MESSAGES`] and is marked pending once full; without, a full tail is sealed
/// in the append's transaction (a pending mark left by another writer is honoured).
///
/// [`Error::TooLarge`] when a message would not fit a chunk item of its own, or the
/// messages would not fit one transaction even with the tail sealed first;
/// [`Error::InvalidInput`] when a message follows a `seq` that `current` does not hold
/// ([`ConversationRecord::apply_append`]).
pub(crate) fn plan_append(
    id: &ConversationId,
    current: &Seen,
    messages: Vec<NewMessage>,
    at: DateTime<Utc>,
    fold: usize,
    background: bool,
) -> Result<AppendPlan> {
    let mut record = current.record.clone();
    let stored = record.apply_append(messages, at)?;
    let encoded = stored
        .iter()
        .cloned()
        .map(Encoded::new)
        .collect::<Result<Vec<_>>>()?;
    for e in &encoded {
        check_size(
            || format!("message {} as a DynamoDB item", e.message.id),
            planned_size(id, std::slice::from_ref(e), 1)?,
        )?;
    }
    let added: u64 = encoded.iter().map(Encoded::size).sum();
    let fold = if fold > 0 && fold == current.pending {
        fold
    } else {
        0
    };
    let (folded, kept) = current.tail.split_at(fold);
    let sealed_max = folded
        .iter()
        .map(|m| &m.message.id)
        .chain(current.sealed_max.as_ref())
        .max_by(|a, b| a.as_str().cmp(b.as_str()))
        .cloned();
    let base = base_item(&record, sealed_max.as_ref())?;
    let base_size = item_size(&base);
    let (max_count, max_bytes) = if background {
        (TAIL_HARD_MESSAGES, TAIL_HARD_BYTES)
    } else {
        (TAIL_MAX_MESSAGES, TAIL_MAX_BYTES)
    };
    let fits = |count: usize, bytes: u64| {
        count <= max_count
            && bytes <= max_bytes
            && current.item_size_with(base_size, bytes) <= MAX_ITEM_SIZE
    };
    let kept_size: u64 = kept.iter().map(Encoded::size).sum();
    if fits(kept.len() + encoded.len(), kept_size + added) {
        let mut tail = kept.to_vec();
        tail.extend(encoded);
        let full =
            background && (tail.len() >= TAIL_MAX_MESSAGES || kept_size + added >= TAIL_MAX_BYTES);
        let pending = match current.pending - fold {
            0 if full => tail.len(),
            pending => pending,
        };
        let after = Seen {
            record,
            files_json: current.files_json.clone(),
            base_size,
            tail,
            sealed_max,
            pending,
            legacy: false,
        };
        let item = whole_item(base, &after);
        let step = Step::PutTail { item, after };
        return Ok(AppendPlan { stored, step });
    }
    let set = sealing_attributes(id, current, &record)?;
    let alone = fits(encoded.len(), added);
    let mut sealed = current.tail.clone();
    let tail = if alone {
        encoded
    } else {
        sealed.extend(encoded);
        Vec::new()
    };
    let sealing = plan_sealing(id, current, record, set, sealed, tail)?;
    let step = if sealing.fits_one_transaction() {
        Step::Seal(sealing)
    } else if !alone && !current.tail.is_empty() {
        Step::SealTailFirst
    } else {
        return Err(Error::TooLarge {
            what: format!(
                "one append of {} messages (a DynamoDB transaction holds 4 MB and 100 writes)",
                stored.len()
            ),
            size: sealing.total,
            limit: MAX_TRANSACTION_SIZE,
        });
    };
    Ok(AppendPlan { stored, step })
}

/// The conversation item `base` (without `files` and `tail`) with those of `after`.
fn whole_item(mut item: Item, after: &Seen) -> Item {
    item.insert(FILES.into(), s(after.files_json.clone()));
    if after.pending > 0 {
        item.insert(PENDING.into(), n(after.pending as u64));
    }
    if !after.tail.is_empty() {
        item.insert(TAIL.into(), AttributeValue::L(tail_entries(&after.tail)));
    }
    item
}

/// The attributes of the conversation item that an append which seals sets: what
/// `record` (the record after the append) changed of `current`'s (its branches are added
/// by [`ConvUpdate::writing`]).
fn sealing_attributes(
    id: &ConversationId,
    current: &Seen,
    record: &ConversationRecord,
) -> Result<Vec<(&'static str, AttributeValue)>> {
    let mut set = vec![
        (VERSION, n(record.version)),
        (FORMAT, n(FORMAT_VERSION)),
        (LAST_ACTIVE, s(format_time(record.last_active))),
        (ACTIVITY, s(activity(record.last_active, id))),
        (USAGE, s(json(&record.usage)?)),
    ];
    if record.title != current.record.title
        && let Some(title) = &record.title
    {
        set.push((TITLE, s(title)));
    }
    Ok(set)
}

/// The transaction that seals `sealed` (messages in `seq` order, following those
/// sealed before: `current`'s tail first) into chunk items with an id marker each,
/// leaves `tail` in the conversation item, and sets `set` on it (the record written is
/// `record`), against `current`. The tail's pending entries get a chunk of their own
/// (replacing their pending copy, if written) and the mark is removed.
fn plan_sealing(
    id: &ConversationId,
    current: &Seen,
    record: ConversationRecord,
    mut set: Vec<(&'static str, AttributeValue)>,
    sealed: Vec<Encoded>,
    tail: Vec<Encoded>,
) -> Result<Sealing> {
    let sealed_max = sealed
        .iter()
        .map(|m| &m.message.id)
        .chain(current.sealed_max.as_ref())
        .max_by(|a, b| a.as_str().cmp(b.as_str()))
        .cloned();
    if let Some(max) = &sealed_max {
        set.push((SEALED_MAX_ID, s(max.as_str())));
    }
    let mut update = ConvUpdate::writing(
        &record,
        current.record.version,
        unchanged(&current.record),
        set,
        Some(TailChange::Replace(tail_entries(&tail))),
    )?;
    if current.pending > 0 {
        update.remove.push(PENDING);
    }
    let after = Seen {
        base_size: base_size(&record, sealed_max.as_ref())?,
        record,
        files_json: current.files_json.clone(),
        tail,
        sealed_max,
        pending: 0,
        legacy: false,
    };
    let mut total = after.item_size();
    let mut chunks = Vec::new();
    let mut markers = Vec::with_capacity(sealed.len());
    for run in pack_sealed(sealed, current.pending) {
        total += planned_size(id, &run, 1)?;
        chunks.push(chunk_item(id, &run, 1)?);
        for m in &run {
            let marker = marker_item(id, &m.message.id, m.message.seq);
            total += item_size(&marker);
            markers.push(marker);
        }
    }
    Ok(Sealing {
        update,
        chunks,
        markers,
        after,
        total,
    })
}

/// Seals the tail on its own (a write of the layout only: the record moves to a new
/// version and nothing else).
pub(crate) fn plan_seal_tail(id: &ConversationId, current: &Seen) -> Result<Sealing> {
    let mut record = current.record.clone();
    record.version += 1;
    let set = vec![(VERSION, n(record.version)), (FORMAT, n(FORMAT_VERSION))];
    plan_sealing(id, current, record, set, current.tail.clone(), Vec::new())
}

/// [`Error::TooLarge`] when an append of `count` messages is more than one transaction
/// that seals the tail with them holds.
pub(crate) fn check_append_count(count: usize) -> Result<()> {
    if count > MAX_APPEND_MESSAGES {
        return Err(Error::TooLarge {
            what: format!(
                "one append of {count} messages (an append may seal the tail with it in one DynamoDB transaction, which holds 100 writes)"
            ),
            size: count as u64,
            limit: MAX_APPEND_MESSAGES as u64,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chatvault_core::backend::{ActiveLeaf, ConversationPatch, ErrorKind, Parent, Role};

    use super::*;
    use crate::dynamo::layout::chunks::{decode_stored, decode_tail};

    fn id() -> ConversationId {
        ConversationId::parse("c1").expect("id")
    }

    /// A new conversation, as decoded from its item.
    fn created() -> Seen {
        let mut record = ConversationRecord::new(None);
        record.id = id();
        let item = conversation_item(&record, &[]).expect("item");
        Seen::from_item(&item).expect("decodes").0
    }

    fn texts(count: usize, bytes: usize) -> Vec<NewMessage> {
        (0..count)
            .map(|i| NewMessage::new(Role::User, format!("{i} {}", "x".repeat(bytes))))
            .collect()
    }

    fn plan(current: &Seen, messages: Vec<NewMessage>) -> Result<AppendPlan> {
        plan_folding(current, messages, 0)
    }

    /// [`plan`] with the chunk of the tail's first `fold` entries known written.
    fn plan_folding(current: &Seen, messages: Vec<NewMessage>, fold: usize) -> Result<AppendPlan> {
        // Whole seconds: the times survive the item's precision unchanged.
        let at = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        plan_append(&id(), current, messages, at, fold, true)
    }

    /// `current` after appends of `count` small messages, each joining the tail.
    fn with_tail(count: usize) -> Seen {
        let mut current = created();
        for _ in 0..count {
            match plan(&current, texts(1, 10)).expect("plans").step {
                Step::PutTail { after, .. } => current = after,
                other => panic!("expected the tail, got {other:?}"),
            }
        }
        current
    }

    #[test]
    fn a_few_messages_join_the_tail_in_the_item_put() {
        let current = created();
        let plan = plan(&current, texts(3, 10)).expect("plans");
        assert_eq!(
            plan.stored.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let Step::PutTail { item, after } = plan.step else {
            panic!("expected the tail, got {:?}", plan.step);
        };
        // The item put is the conversation as `after` says it will be.
        let (written, _) = Seen::from_item(&item).expect("decodes");
        assert_eq!(written.record, after.record);
        assert_eq!(written.item_size(), after.item_size());
        assert_eq!(get_n(&item, MESSAGE_COUNT).expect("count"), 3);
        let tail = decode_tail(&item).expect("tail");
        assert_eq!(
            tail.iter().map(|e| &e.message).collect::<Vec<_>>(),
            plan.stored.iter().collect::<Vec<_>>()
        );
        assert!(after.record.version > current.record.version);
        assert!(after.sealed_max.is_none());
    }

    #[test]
    fn a_full_tail_is_marked_pending_and_grows_while_its_copy_is_not_written() {
        let before = with_tail(TAIL_MAX_MESSAGES - 1);
        assert_eq!(before.pending, 0);
        let Step::PutTail { item, after } = plan(&before, texts(1, 10)).expect("plans").step else {
            panic!("expected the tail");
        };
        // The append that fills the tail marks all of it pending, in its own put.
        assert_eq!(after.pending, TAIL_MAX_MESSAGES);
        assert_eq!(
            get_n(&item, PENDING).expect("pending"),
            TAIL_MAX_MESSAGES as u64
        );
        let (written, _) = Seen::from_item(&item).expect("decodes");
        assert_eq!(written.pending, TAIL_MAX_MESSAGES);
        assert_eq!(written.item_size(), after.item_size());
        // Without the copy, later appends join the tail and leave the mark as it is.
        let grown = with_tail(TAIL_HARD_MESSAGES);
        assert_eq!(grown.tail.len(), TAIL_HARD_MESSAGES);
        assert_eq!(grown.pending, TAIL_MAX_MESSAGES);
        assert!(grown.sealed_max.is_none());
    }

    #[test]
    fn an_append_drops_the_pending_entries_whose_copy_is_written() {
        let current = with_tail(TAIL_MAX_MESSAGES + 5);
        let pending = current.pending;
        assert_eq!(pending, TAIL_MAX_MESSAGES);
        // A count other than the pending one is not a written copy: nothing is dropped.
        let Step::PutTail { after, .. } =
            plan_folding(&current, texts(1, 10), 3).expect("plans").step
        else {
            panic!("expected the tail");
        };
        assert_eq!(
            (after.tail.len(), after.pending),
            (TAIL_MAX_MESSAGES + 6, pending)
        );
        let plan = plan_folding(&current, texts(1, 10), pending).expect("plans");
        let Step::PutTail { item, after } = plan.step else {
            panic!("expected the tail, got {:?}", plan.step);
        };
        // The tail keeps what followed the pending entries, and the new message.
        assert_eq!(
            after.tail.iter().map(|e| e.message.seq).collect::<Vec<_>>(),
            (pending as u64 + 1..=pending as u64 + 6).collect::<Vec<_>>()
        );
        assert_eq!(after.pending, 0);
        assert!(!item.contains_key(PENDING));
        let max = current.tail[..pending]
            .iter()
            .map(|e| e.message.id.as_str())
            .max()
            .expect("pending entries");
        assert_eq!(after.sealed_max.as_ref().map(|m| m.as_str()), Some(max));
        assert_eq!(get_s(&item, SEALED_MAX_ID).expect("sealed max"), max);
        let (written, _) = Seen::from_item(&item).expect("decodes");
        assert_eq!(written.item_size(), after.item_size());
        assert_eq!(written.tail.len(), 6);
    }

    #[test]
    fn a_tail_at_its_hard_bound_is_sealed_into_chunks_with_a_marker_each() {
        let current = with_tail(TAIL_HARD_MESSAGES);
        assert_eq!(current.tail.len(), TAIL_HARD_MESSAGES);
        let plan = plan(&current, texts(2, 10)).expect("plans");
        let Step::Seal(sealing) = plan.step else {
            panic!("expected a seal, got {:?}", plan.step);
        };
        // The pending entries get a chunk of their own, under their copy's key.
        assert_eq!(
            get_s(&sealing.chunks[0], SK).expect("sk"),
            message_sk(TAIL_MAX_MESSAGES as u64)
        );
        assert!(!sealing.chunks[0].contains_key(PENDING_VERSION));
        assert!(sealing.update.remove.contains(&PENDING));
        assert_eq!(sealing.after.pending, 0);
        let sealed: Vec<Message> = sealing
            .chunks
            .iter()
            .flat_map(|c| decode_stored(c).expect("chunk decodes"))
            .collect();
        assert_eq!(
            sealed.iter().map(|m| m.seq).collect::<Vec<_>>(),
            (1..=TAIL_HARD_MESSAGES as u64).collect::<Vec<_>>()
        );
        assert_eq!(sealing.markers.len(), TAIL_HARD_MESSAGES);
        assert_eq!(
            sealing.actions(),
            1 + sealing.chunks.len() + TAIL_HARD_MESSAGES
        );
        // The new messages make the new tail; the condition is the version read.
        assert_eq!(sealing.after.tail.len(), 2);
        assert_eq!(sealing.after.tail[0].message, plan.stored[0]);
        assert_eq!(sealing.update.expected, current.record.version);
        let max = sealed.iter().map(|m| m.id.as_str()).max().expect("sealed");
        assert_eq!(
            sealing.after.sealed_max.as_ref().map(|m| m.as_str()),
            Some(max)
        );
        assert!(
            sealing
                .update
                .set
                .iter()
                .any(|(name, value)| *name == SEALED_MAX_ID && *value == s(max))
        );
        // The transaction is planned with the chunks' bodies uncompressed: what it
        // accepts does not depend on how well the text compresses.
        let planned: u64 = sealing
            .chunks
            .iter()
            .map(|c| {
                let run: Vec<Encoded> = decode_stored(c)
                    .expect("chunk decodes")
                    .into_iter()
                    .map(|m| Encoded::new(m).expect("encodes"))
                    .collect();
                planned_size(&id(), &run, 1).expect("size")
            })
            .sum();
        let stored: u64 = sealing.chunks.iter().map(item_size).sum();
        assert!(stored < planned, "{stored} compressed, {planned} planned");
        let markers: u64 = sealing.markers.iter().map(item_size).sum();
        assert_eq!(sealing.total, sealing.after.item_size() + planned + markers);
    }

    /// `current` with its active leaf moved by `active`, as a patch leaves it.
    fn with_active(mut current: Seen, active: ActiveLeaf) -> Seen {
        let patch = ConversationPatch {
            active: Some(active),
            ..ConversationPatch::default()
        };
        assert!(current.record.apply_patch(&patch).expect("patches"));
        current
    }

    /// The value a seal's update sets on `name`, and whether it removes it.
    fn sets(sealing: &Sealing, name: &str) -> (Option<AttributeValue>, bool) {
        let update = &sealing.update;
        let value = update.set.iter().find(|(n, _)| *n == name);
        (value.map(|(_, v)| v.clone()), update.remove.contains(&name))
    }

    #[test]
    fn appends_and_seals_write_the_branch_table_they_compute() {
        let edit = |parent| vec![NewMessage::new(Role::User, "edit").with_parent(parent)];
        // An edit joining the tail: the item put carries the table and the path's count.
        let joined = plan(&with_tail(3), edit(Parent::Seq(1))).expect("plans");
        assert_eq!(
            (joined.stored[0].seq, joined.stored[0].parent),
            (4, Some(1))
        );
        let Step::PutTail { item, after } = joined.step else {
            panic!("expected the tail, got {:?}", joined.step);
        };
        let tree = after.record.tree.clone().expect("a branch table");
        assert_eq!(
            get_s(&item, TREE).expect("tree"),
            json(&tree).expect("json")
        );
        assert_eq!(get_n(&item, MESSAGE_COUNT).expect("count"), 2);
        let (written, _) = Seen::from_item(&item).expect("decodes");
        assert_eq!(written.record, after.record);
        assert_eq!(written.item_size(), after.item_size());
        // An edit that seals: the update sets the table and the path's count.
        let full = with_tail(TAIL_HARD_MESSAGES);
        let edited = plan(&full, edit(Parent::Seq(2))).expect("plans");
        let Step::Seal(sealing) = edited.step else {
            panic!("expected a seal, got {:?}", edited.step);
        };
        let tree = sealing.after.record.tree.clone().expect("a branch table");
        assert_eq!(
            sets(&sealing, TREE),
            (Some(s(json(&tree).expect("json"))), false)
        );
        assert_eq!(sets(&sealing, MESSAGE_COUNT), (Some(n(3)), false));
        // Rewound, then continued where it was: one line again, the table removed.
        let rewound = with_active(full, ActiveLeaf::At(5));
        assert!(rewound.record.tree.is_some());
        let last = Parent::Seq(TAIL_HARD_MESSAGES as u64);
        let continued = plan(&rewound, edit(last)).expect("plans");
        let Step::Seal(sealing) = continued.step else {
            panic!("expected a seal, got {:?}", continued.step);
        };
        assert_eq!(sealing.after.record.tree, None);
        assert_eq!(sets(&sealing, TREE), (None, true));
        let count = TAIL_HARD_MESSAGES as u64 + 1;
        assert_eq!(sets(&sealing, MESSAGE_COUNT), (Some(n(count)), false));
        let rewound = with_active(with_tail(3), ActiveLeaf::At(1));
        match plan(&rewound, edit(Parent::Seq(3))).expect("plans").step {
            Step::PutTail { item, .. } => assert!(!item.contains_key(TREE)),
            other => panic!("expected the tail, got {other:?}"),
        }
    }

    #[test]
    fn a_parent_that_is_not_stored_is_refused() {
        let message = NewMessage::new(Role::User, "x").with_parent(Parent::Seq(4));
        let err = plan(&with_tail(3), vec![message]).expect_err("not stored");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err:?}");
    }

    #[test]
    fn a_message_too_large_for_an_item_is_refused() {
        let err = plan(&created(), texts(1, MAX_ITEM_SIZE as usize)).expect_err("too large");
        assert_eq!(err.kind(), ErrorKind::TooLarge, "{err:?}");
    }

    #[test]
    fn more_than_one_transaction_holds_seals_the_tail_first_or_is_refused() {
        // 20 messages of 300 KB: 6 MB, over a transaction's 4 MB.
        let big = texts(20, 300 * 1024);
        let step = plan(&with_tail(3), big.clone()).expect("plans").step;
        assert!(matches!(step, Step::SealTailFirst), "{step:?}");
        let err = plan(&created(), big).expect_err("too large");
        assert_eq!(err.kind(), ErrorKind::TooLarge, "{err:?}");
    }

    #[test]
    fn an_append_holds_at_most_max_append_messages() {
        assert!(check_append_count(MAX_APPEND_MESSAGES).is_ok());
        let err = check_append_count(MAX_APPEND_MESSAGES + 1).expect_err("too many");
        assert_eq!(err.kind(), ErrorKind::TooLarge, "{err:?}");
    }
}
