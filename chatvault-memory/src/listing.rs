//! A listing index: conversations in `(last_active, id)` order, the newest kept apart.

use std::collections::BTreeSet;
use std::ops::Bound;

use chatvault_core::backend::ConversationId;
use chrono::{DateTime, Utc};

/// Listing position: `(last_active, id)`; listings walk it in reverse.
pub(crate) type Position = (DateTime<Utc>, ConversationId);

/// Positions in order, the greatest (the conversation active last) held apart from the
/// others, so that an append to it, the usual append, moves it without touching the
/// tree of the others.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Every position but `newest`, each less than it.
    older: BTreeSet<Position>,
    /// The greatest position; `None` only when `older` is empty too.
    newest: Option<Position>,
}

impl Listing {
    /// Adds `position` (nothing when it is there already).
    pub(crate) fn insert(&mut self, position: Position) {
        match &self.newest {
            None => self.newest = Some(position),
            Some(newest) if position > *newest => {
                if let Some(previous) = self.newest.replace(position) {
                    self.older.insert(previous);
                }
            }
            Some(newest) if position == *newest => {}
            Some(_) => {
                self.older.insert(position);
            }
        }
    }

    /// Removes `position` (nothing when it is not there).
    pub(crate) fn remove(&mut self, position: &Position) {
        if self.newest.as_ref() == Some(position) {
            self.newest = self.older.pop_last();
        } else {
            self.older.remove(position);
        }
    }

    /// Moves conversation `id` from `before` to `after`: in place when it is the newest
    /// and stays so, else as a removal and an insertion.
    pub(crate) fn move_to(
        &mut self,
        id: &ConversationId,
        before: DateTime<Utc>,
        after: DateTime<Utc>,
    ) {
        if let Some(newest) = &mut self.newest
            && newest.0 == before
            && newest.1 == *id
            && after >= before
        {
            newest.0 = after;
            return;
        }
        let old = (before, id.clone());
        self.remove(&old);
        self.insert((after, old.1));
    }

    /// Whether it holds no position.
    pub(crate) fn is_empty(&self) -> bool {
        self.newest.is_none()
    }

    /// Every position, least first.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &Position> {
        self.older.iter().chain(&self.newest)
    }

    /// The positions less than `upper` (all of them when `None`), greatest first.
    pub(crate) fn rev_before<'a>(
        &'a self,
        upper: Option<&Position>,
    ) -> impl Iterator<Item = &'a Position> + use<'a> {
        let newest = self
            .newest
            .as_ref()
            .filter(|newest| upper.is_none_or(|upper| *newest < upper));
        let end = upper.map_or(Bound::Unbounded, Bound::Excluded);
        newest
            .into_iter()
            .chain(self.older.range((Bound::Unbounded, end)).rev())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_in_order_whatever_moves() {
        let ids: Vec<ConversationId> = (0..6).map(|_| ConversationId::new()).collect();
        let at = |s: i64| DateTime::from_timestamp(s, 0).unwrap_or_default();
        let mut listing = Listing::default();
        let mut model = BTreeSet::new();
        for (i, id) in ids.iter().enumerate() {
            listing.insert((at(i as i64), id.clone()));
            model.insert((at(i as i64), id.clone()));
        }
        // (conversation, new time): the newest moving on, an older one overtaking it,
        // a tie, and the newest being removed.
        for (i, t) in [(5, 10), (5, 11), (2, 12), (0, 12), (3, 13)] {
            let before = *model.iter().find(|p| p.1 == ids[i]).map(|p| &p.0).unwrap();
            listing.move_to(&ids[i], before, at(t));
            model.remove(&(before, ids[i].clone()));
            model.insert((at(t), ids[i].clone()));
            assert!(listing.iter().eq(model.iter()));
            assert!(listing.iter().rev().eq(model.iter().rev()));
            for upper in model.iter() {
                assert!(
                    listing
                        .rev_before(Some(upper))
                        .eq(model.range(..upper.clone()).rev())
                );
            }
            assert!(listing.rev_before(None).eq(model.iter().rev()));
        }
        for p in model.clone() {
            listing.remove(&p);
            model.remove(&p);
            assert!(listing.iter().eq(model.iter()));
        }
        assert!(listing.is_empty());
    }
}
