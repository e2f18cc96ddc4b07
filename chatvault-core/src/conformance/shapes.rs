//! Conversations of known shapes, for benchmarks and tests: a line, and a tree whose
//! active path crosses a chosen number of segments.

use crate::backend::{MessagesBackend, MessagesBackendExt};
use crate::conformance::util::ok;
use crate::ids::ConversationId;
use crate::model::{ActiveLeaf, ConversationPatch, ConversationRecord, NewMessage, Parent, Role};

/// The shape of a branched conversation (see [`branched`]).
///
/// ```
/// use chatvault_core::conformance::shapes::TreeShape;
///
/// // 1,000 messages on the path, written in 11 stretches (55, then 100 each), with an edit
/// // at every 10th depth followed by 90 messages on its branch: 10,009 messages.
/// let shape = TreeShape::new(1_000).stretches(55, 100).edits(10, 90);
/// assert_eq!(shape.message_count(), 10_009);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TreeShape {
    /// Messages on the active path.
    pub path: u64,
    /// The path is written in stretches ending at depths `first`, `first + every`, ...
    /// and `path`, each followed by the edits at the depths it reached.
    pub first: u64,
    /// See [`first`](Self::first).
    pub every: u64,
    /// An edit at every `edit_every`-th depth of the path (below `path`)...
    pub edit_every: u64,
    /// ... each followed by this many messages on its branch.
    pub followers: u64,
    /// The most messages one append carries.
    pub batch: usize,
}

impl TreeShape {
    /// A path of `path` messages written in one stretch, with no edits, in appends of 100.
    pub fn new(path: u64) -> Self {
        TreeShape {
            path,
            first: path,
            every: path.max(1),
            edit_every: 0,
            followers: 0,
            batch: 100,
        }
    }

    /// Writes the path in stretches ending at depths `first`, `first + every`, ...
    pub fn stretches(mut self, first: u64, every: u64) -> Self {
        self.first = first.max(1);
        self.every = every.max(1);
        self
    }

    /// An edit at every `every`-th depth, each followed by `followers` messages.
    pub fn edits(mut self, every: u64, followers: u64) -> Self {
        self.edit_every = every;
        self.followers = followers;
        self
    }

    /// The most messages one append carries (a backend's `max_append_messages`).
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// How many edits the shape makes.
    pub fn edit_count(&self) -> u64 {
        match self.edit_every {
            0 => 0,
            e => self.path.saturating_sub(1) / e,
        }
    }

    /// How many messages the conversation stores.
    pub fn message_count(&self) -> u64 {
        self.path + self.edit_count() * (self.followers + 1)
    }
}

/// A branched conversation [`branched`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct Branched {
    /// The conversation.
    pub id: ConversationId,
    /// The record after the last write (the path's end made the active leaf).
    pub record: ConversationRecord,
    /// The `seq` of the active path's message at each depth (`path[0]`: depth 1).
    pub path: Vec<u64>,
}

/// Appends `messages` as a chain in appends of at most `batch`; returns their seqs.
async fn chain(
    b: &dyn MessagesBackend,
    id: &ConversationId,
    messages: Vec<NewMessage>,
    batch: usize,
) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(messages.len());
    let mut rest = messages.into_iter().peekable();
    while rest.peek().is_some() {
        let part: Vec<NewMessage> = rest.by_ref().take(batch.max(1)).collect();
        let stored = ok(b.append_messages(id, part).await, "append");
        seqs.extend(stored.messages.iter().map(|m| m.seq));
    }
    seqs
}

fn text(what: &str, i: u64) -> NewMessage {
    NewMessage::new(Role::User, format!("{what} {i} of a shaped conversation"))
}

/// A new conversation of `n` messages in one line, in appends of at most `batch`.
pub async fn linear(b: &dyn MessagesBackend, n: u64, batch: usize) -> ConversationId {
    let record = ConversationRecord::new(None);
    ok(b.create(&record).await, "create");
    chain(
        b,
        &record.id,
        (1..=n).map(|i| text("line", i)).collect(),
        batch,
    )
    .await;
    record.id
}

/// A new conversation of `shape`: its active path written in stretches, each followed by
/// the edits at the depths it reached (an edit and its followers, on a branch of its own);
/// then the path's end is made the active leaf. Panics (as the suite's checks do) when
/// the backend fails or the stored table is not the shape's.
pub async fn branched(b: &dyn MessagesBackend, shape: TreeShape) -> Branched {
    let record = ConversationRecord::new(None);
    ok(b.create(&record).await, "create");
    let id = record.id;
    let mut path: Vec<u64> = Vec::with_capacity(shape.path as usize);
    let mut next_edit = shape.edit_every;
    let mut end = shape.first;
    while (path.len() as u64) < shape.path {
        let from = path.len() as u64 + 1;
        let to = end.min(shape.path);
        let stretch = (from..=to)
            .map(|depth| {
                let m = text("path message", depth);
                match (depth == from, path.last()) {
                    (true, Some(&seq)) => m.with_parent(Parent::Seq(seq)),
                    (true, None) => m.with_parent(Parent::Root),
                    (false, _) => m,
                }
            })
            .collect();
        path.extend(chain(b, &id, stretch, shape.batch).await);
        while next_edit > 0 && next_edit < shape.path && next_edit <= to {
            let parent = match next_edit {
                1 => Parent::Root,
                d => Parent::Seq(path[d as usize - 2]),
            };
            let mut branch = vec![text("edit of depth", next_edit).with_parent(parent)];
            branch.extend((1..=shape.followers).map(|i| text("branch message", i)));
            chain(b, &id, branch, shape.batch).await;
            next_edit += shape.edit_every;
        }
        end = to + shape.every;
    }
    let patch = ConversationPatch {
        active: path.last().map(|&leaf| ActiveLeaf::At(leaf)),
        ..ConversationPatch::default()
    };
    let record = ok(b.update(&id, &patch).await, "make the path's end active");
    assert_eq!(record.path_len(), shape.path, "the shape's active path");
    assert_eq!(record.message_count, shape.message_count());
    Branched { id, record, path }
}
