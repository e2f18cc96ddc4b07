//! A conversation's branches: which message follows which, and which branch is active.
//!
//! Messages are numbered by `seq` in the order they were stored, whatever their branch. A
//! [`Tree`] describes the branches as *runs*: maximal ranges of consecutive `seq` values in
//! which every message follows the one before it. A run starts where a message follows
//! anything else (an edit, a regenerated reply, an append after a rewind, or appends to
//! two branches taking turns), so a conversation written in one line is one run, and the
//! table grows by one run per such jump, never with the length of a branch. The active
//! path (the messages a reader sees, from the first to the active leaf) is a list of
//! [`Segment`]s, each a range of consecutive `seq` values: what a backend reads in one
//! range read. The layout and its costs are in `docs/branches.md`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Where a new message goes in the tree: what it follows.
///
/// In one append, [`Active`](Parent::Active) means the message before it in the batch
/// (for the first, the conversation's active leaf), so a batch is a chain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parent {
    /// Continue the active branch (the default: what every append did before branches).
    #[default]
    Active,
    /// No parent: a new first message (an edit of the first message).
    Root,
    /// Follow the message with this `seq`; a new branch when it already has a follower.
    Seq(u64),
}

impl Parent {
    /// Whether this is [`Parent::Active`].
    pub fn is_active(&self) -> bool {
        matches!(self, Parent::Active)
    }
}

/// A change of the active leaf, carried by a
/// [`ConversationPatch`](crate::ConversationPatch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActiveLeaf {
    /// Rewind: the message with this `seq` becomes the leaf; the messages after it leave
    /// the active path (nothing is deleted).
    At(u64),
    /// Switch to this message's branch: the leaf becomes the newest message reached from
    /// it by always taking the newest follower ([`Tree::newest_leaf_from`]).
    Branch(u64),
}

impl ActiveLeaf {
    /// The `seq` the change names.
    pub fn seq(&self) -> u64 {
        match *self {
            ActiveLeaf::At(seq) | ActiveLeaf::Branch(seq) => seq,
        }
    }
}

/// A maximal range of consecutive `seq` values in which each message follows the one
/// before it; `parent` is what `first` follows (`None`: a first message).
///
/// JSON: `[first, last, parent]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(u64, u64, Option<u64>)", into = "(u64, u64, Option<u64>)")]
pub struct Run {
    /// The run's first `seq`.
    pub first: u64,
    /// The run's last `seq` (inclusive).
    pub last: u64,
    /// The `seq` that `first` follows, or `None` for a first message.
    pub parent: Option<u64>,
}

impl From<(u64, u64, Option<u64>)> for Run {
    fn from((first, last, parent): (u64, u64, Option<u64>)) -> Self {
        Run {
            first,
            last,
            parent,
        }
    }
}

impl From<Run> for (u64, u64, Option<u64>) {
    fn from(r: Run) -> Self {
        (r.first, r.last, r.parent)
    }
}

/// Consecutive `seq` values `first..=last` of one path: one range read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// First `seq` (inclusive).
    pub first: u64,
    /// Last `seq` (inclusive).
    pub last: u64,
}

impl Segment {
    /// How many messages the segment holds.
    pub fn len(&self) -> u64 {
        self.last + 1 - self.first
    }

    /// Always false: a segment holds at least one message.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A conversation's branch table: its runs in `seq` order and its active leaf.
///
/// Stored in the conversation's record ([`ConversationRecord::tree`](crate::ConversationRecord::tree))
/// only once the conversation is not one line read to its end; a record without one reads
/// as [`Tree::linear`]. JSON: `{"leaf": seq or null, "runs": [[first, last, parent], ...]}`.
///
/// Every method is total: a table damaged in storage gives wrong answers, never a panic
/// or an endless walk (walks only move to smaller `seq` values).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// The active leaf's `seq`, or `None` when the conversation has no messages.
    pub leaf: Option<u64>,
    /// The runs, by ascending `first`; together they hold `1..=message_count`.
    pub runs: Vec<Run>,
}

impl Tree {
    /// The tree of a conversation of `count` messages in one line, read to its end.
    pub fn linear(count: u64) -> Tree {
        if count == 0 {
            return Tree::default();
        }
        Tree {
            leaf: Some(count),
            runs: vec![Run {
                first: 1,
                last: count,
                parent: None,
            }],
        }
    }

    /// Whether this is [`Tree::linear`] of `count` (and need not be stored).
    pub fn is_linear(&self, count: u64) -> bool {
        *self == Tree::linear(count)
    }

    /// The number of stored messages the table describes.
    pub fn message_count(&self) -> u64 {
        self.runs.last().map_or(0, |r| r.last)
    }

    /// The index of the run holding `seq`.
    fn run_index(&self, seq: u64) -> Option<usize> {
        let i = self.runs.partition_point(|r| r.first <= seq);
        let i = i.checked_sub(1)?;
        (seq <= self.runs[i].last).then_some(i)
    }

    /// Whether a message with this `seq` is stored.
    pub fn contains(&self, seq: u64) -> bool {
        self.run_index(seq).is_some()
    }

    /// The `seq` the message `seq` follows (`None`: a first message, or no such message).
    pub fn parent_of(&self, seq: u64) -> Option<u64> {
        let run = &self.runs[self.run_index(seq)?];
        if seq == run.first {
            run.parent.filter(|&p| p < seq)
        } else {
            Some(seq - 1)
        }
    }

    /// The messages that follow `parent` (`None`: the first messages), by ascending `seq`.
    pub fn children_of(&self, parent: Option<u64>) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .runs
            .iter()
            .filter(|r| r.parent == parent && parent.is_none_or(|p| p < r.first))
            .map(|r| r.first)
            .collect();
        if let Some(p) = parent
            && let Some(i) = self.run_index(p)
            && self.runs[i].last > p
        {
            out.push(p + 1);
        }
        out.sort_unstable();
        out
    }

    /// The message `seq` and its siblings (the messages that follow the same one), by
    /// ascending `seq`: the versions a "< 2/3 >" control steps through. Empty when there
    /// is no such message.
    pub fn siblings(&self, seq: u64) -> Vec<u64> {
        if !self.contains(seq) {
            return Vec::new();
        }
        self.children_of(self.parent_of(seq))
    }

    /// Where the message `seq` stands among its versions: `(index, count)` of
    /// [`siblings`](Self::siblings) ("< index + 1 / count >"); `(0, 0)` for a `seq` the
    /// table does not hold.
    pub fn version_of(&self, seq: u64) -> (usize, usize) {
        let siblings = self.siblings(seq);
        let index = siblings.iter().position(|&s| s == seq).unwrap_or(0);
        (index, siblings.len())
    }

    /// The leaf reached from `seq` by always taking the newest follower: where
    /// [`ActiveLeaf::Branch`] moves the active leaf. `seq` itself when nothing follows it.
    pub fn newest_leaf_from(&self, seq: u64) -> u64 {
        let mut at = seq;
        while let Some(&next) = self.children_of(Some(at)).last() {
            if next <= at {
                break;
            }
            at = next;
        }
        at
    }

    /// The path from the first message to `leaf`, as segments in ascending `seq` order.
    pub fn path_to(&self, leaf: u64) -> Vec<Segment> {
        let mut out = Vec::new();
        let mut at = Some(leaf);
        while let Some(seq) = at {
            let Some(i) = self.run_index(seq) else { break };
            let run = self.runs[i];
            out.push(Segment {
                first: run.first,
                last: seq,
            });
            at = run.parent.filter(|&p| p < run.first);
        }
        out.reverse();
        out
    }

    /// The active path's segments (empty when there is no leaf).
    pub fn active_path(&self) -> Vec<Segment> {
        self.leaf.map(|l| self.path_to(l)).unwrap_or_default()
    }

    /// How many messages the path to `leaf` holds.
    pub fn path_len(&self, leaf: Option<u64>) -> u64 {
        leaf.map_or(0, |l| self.path_to(l).iter().map(Segment::len).sum())
    }

    /// Whether the message `seq` is on the path to `leaf` (its ancestor, or `leaf`).
    pub fn is_on_path(&self, seq: u64, leaf: Option<u64>) -> bool {
        leaf.is_some_and(|l| {
            self.path_to(l)
                .iter()
                .any(|s| s.first <= seq && seq <= s.last)
        })
    }

    /// Records a message stored at `seq` (one past the last) following `parent`, and makes
    /// it the active leaf.
    pub(crate) fn push(&mut self, seq: u64, parent: Option<u64>) {
        match self.runs.last_mut() {
            Some(run) if run.last + 1 == seq && parent == Some(run.last) => run.last = seq,
            _ => self.runs.push(Run {
                first: seq,
                last: seq,
                parent,
            }),
        }
        self.leaf = Some(seq);
    }
}

/// The tree of a record: its stored table, or the linear one of `count` messages.
pub(crate) fn tree_or_linear(tree: &Option<Tree>, count: u64) -> Cow<'_, Tree> {
    match tree {
        Some(t) => Cow::Borrowed(t),
        None => Cow::Owned(Tree::linear(count)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1-2-3, then 4 follows 1 (an edit of 2), then 5 follows 3, then 6 is a new first.
    fn sample() -> Tree {
        let mut t = Tree::linear(3);
        t.push(4, Some(1));
        t.push(5, Some(3));
        t.push(6, None);
        t
    }

    #[test]
    fn runs_grow_only_on_jumps() {
        let mut t = Tree::linear(2);
        t.push(3, Some(2));
        assert_eq!(t, Tree::linear(3));
        assert_eq!(sample().runs.len(), 4);
    }

    #[test]
    fn parents_children_and_siblings() {
        let t = sample();
        assert_eq!(t.parent_of(1), None);
        assert_eq!(t.parent_of(3), Some(2));
        assert_eq!(t.parent_of(4), Some(1));
        assert_eq!(t.parent_of(5), Some(3));
        assert_eq!(t.parent_of(6), None);
        assert_eq!(t.parent_of(7), None);
        assert_eq!(t.children_of(Some(1)), vec![2, 4]);
        assert_eq!(t.children_of(None), vec![1, 6]);
        assert_eq!(t.siblings(4), vec![2, 4]);
        assert_eq!(t.siblings(5), vec![5]);
        assert!(t.siblings(9).is_empty());
    }

    #[test]
    fn paths_cross_segments() {
        let t = sample();
        assert_eq!(
            t.path_to(5),
            vec![Segment { first: 1, last: 3 }, Segment { first: 5, last: 5 }]
        );
        assert_eq!(
            t.path_to(4),
            vec![Segment { first: 1, last: 1 }, Segment { first: 4, last: 4 }]
        );
        assert_eq!(t.path_len(Some(5)), 4);
        assert_eq!(t.active_path(), vec![Segment { first: 6, last: 6 }]);
        assert!(t.is_on_path(2, Some(5)));
        assert!(!t.is_on_path(4, Some(5)));
    }

    #[test]
    fn newest_leaf_takes_newest_followers() {
        let t = sample();
        assert_eq!(t.newest_leaf_from(1), 4);
        assert_eq!(t.newest_leaf_from(2), 5);
        assert_eq!(t.newest_leaf_from(6), 6);
    }

    #[test]
    fn damaged_tables_never_loop_or_panic() {
        let t = Tree {
            leaf: Some(9),
            runs: vec![
                Run {
                    first: 1,
                    last: 2,
                    parent: Some(5),
                },
                Run {
                    first: 3,
                    last: 9,
                    parent: Some(3),
                },
            ],
        };
        assert_eq!(t.path_to(9), vec![Segment { first: 3, last: 9 }]);
        assert_eq!(t.newest_leaf_from(1), 2);
        assert_eq!(t.parent_of(1), None);
    }

    #[test]
    fn json_is_compact() {
        let json = serde_json::to_string(&sample()).unwrap();
        assert_eq!(
            json,
            r#"{"leaf":6,"runs":[[1,3,null],[4,4,1],[5,5,3],[6,6,null]]}"#
        );
        assert_eq!(serde_json::from_str::<Tree>(&json).unwrap(), sample());
    }
}
