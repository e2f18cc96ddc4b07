//! The multi-row statements of an append on SQLite: the messages go in `INSERT`s of many
//! rows and the replay check looks their ids up many at a time, so that an append of `n`
//! messages runs a handful of statements instead of `2n`. Each statement is a trip to
//! sqlx's worker thread for the connection, which cost more than the rows themselves.
//!
//! A statement's size is one of a few fixed ones (powers of two up to [`MAX_ROWS`]), so
//! that every connection prepares each shape once and keeps it in sqlx's statement cache.

use std::sync::{Arc, LazyLock};

use sqlx::AssertSqlSafe;

/// The most rows (or ids) one statement carries; a power of two. An `INSERT` of 64 rows
/// binds 9 × 64 = 576 parameters, under the 999 of SQLite builds before 3.32 (the bundled
/// 3.51 allows 32,766), so no build refuses it; at 64 rows a statement's trip is already
/// small beside the cost of its rows (their indexes and full-text entries).
pub(super) const MAX_ROWS: usize = 64;

/// How many statement shapes there are: one per power of two from 1 to [`MAX_ROWS`].
const SHAPES: usize = MAX_ROWS.trailing_zeros() as usize + 1;

/// The parameters of one message row: `conversation_id, seq, message_id, role, revision,
/// created_at, updated_at, text, body`.
const ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// The `INSERT` of `2^i` message rows, at index `i`, each row's values in [`ROW`]'s order.
///
/// Parameters are anonymous (`?`), bound in order: sqlx looks each named parameter's name
/// up when it binds, which costs SQLite a scan of every name, so hundreds of `$N` would
/// cost the square of their number on every execution.
static INSERTS: LazyLock<[Arc<str>; SHAPES]> = LazyLock::new(|| {
    std::array::from_fn(|i| {
        let rows = vec![ROW; 1 << i].join(", ");
        Arc::from(format!(
            "INSERT INTO chatvault_messages (conversation_id, seq, message_id, role, revision, \
             created_at, updated_at, text, body) VALUES {rows}"
        ))
    })
});

/// The lookup of `2^i` message ids, at index `i`: the id and body of each stored message
/// of the conversation (the first parameter) whose id is among the others (one probe of
/// the `(conversation_id, message_id)` index per id).
static LOOKUPS: LazyLock<[Arc<str>; SHAPES]> = LazyLock::new(|| {
    std::array::from_fn(|i| {
        let ids = vec!["?"; 1 << i].join(", ");
        Arc::from(format!(
            "SELECT message_id, body FROM chatvault_messages \
             WHERE conversation_id = ? AND message_id IN ({ids})"
        ))
    })
});

/// The `INSERT`s that write `n` rows, each with its number of rows: [`MAX_ROWS`] while
/// that many remain, then the powers of two that sum to the rest, largest first.
pub(super) fn inserts(n: usize) -> impl Iterator<Item = (usize, AssertSqlSafe<Arc<str>>)> {
    let rest = n % MAX_ROWS;
    std::iter::repeat_n(SHAPES - 1, n / MAX_ROWS)
        .chain((0..SHAPES - 1).rev().filter(move |&i| rest & (1 << i) != 0))
        .map(|i| (1 << i, AssertSqlSafe(Arc::clone(&INSERTS[i]))))
}

/// The lookup of `n` ids (at most [`MAX_ROWS`]) and its number of id slots, the power of
/// two at or above `n`: the caller fills the slots past `n` with ids it already bound (a
/// repeated id in `IN (...)` finds nothing more).
pub(super) fn lookup(n: usize) -> (usize, AssertSqlSafe<Arc<str>>) {
    let slots = n.clamp(1, MAX_ROWS).next_power_of_two();
    let i = slots.trailing_zeros() as usize;
    (slots, AssertSqlSafe(Arc::clone(&LOOKUPS[i])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_cover_every_row_once() {
        let sizes = |n| inserts(n).map(|(rows, _)| rows).collect::<Vec<usize>>();
        for n in [0, 1, 2, 3, 50, 63, 64, 65, 127, 128, 5_000] {
            let sizes = sizes(n);
            assert_eq!(sizes.iter().sum::<usize>(), n, "{n}: {sizes:?}");
            assert!(sizes.iter().all(|s| s.is_power_of_two() && *s <= MAX_ROWS));
            assert!(sizes.is_sorted_by(|a, b| a >= b), "{sizes:?}");
        }
        assert_eq!(sizes(50), [32, 16, 2]);
        assert_eq!(sizes(130), [64, 64, 2]);
        for (rows, sql) in inserts(127) {
            assert_eq!(sql.0.matches(ROW).count(), rows);
        }
    }

    #[test]
    fn statements_bind_one_parameter_per_value() {
        for (i, sql) in INSERTS.iter().enumerate() {
            let rows = 1usize << i;
            assert_eq!(sql.matches('?').count(), rows * 9, "{sql}");
            assert_eq!(sql.matches(ROW).count(), rows, "{sql}");
            assert!(sql.ends_with(ROW));
        }
        for (i, sql) in LOOKUPS.iter().enumerate() {
            assert_eq!(sql.matches('?').count(), 1 + (1 << i), "{sql}");
        }
        assert!(LOOKUPS[0].ends_with("conversation_id = ? AND message_id IN (?)"));
        let slots = |n| lookup(n).0;
        assert_eq!(
            [slots(0), slots(1), slots(3), slots(50), slots(64)],
            [1, 1, 4, 64, 64]
        );
        assert_eq!(slots(500), MAX_ROWS);
        assert_eq!(lookup(5).1.0.matches('?').count(), 9);
    }
}
