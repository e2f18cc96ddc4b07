//! `messages()`: a range of a conversation's messages, by `seq`, in one statement when the
//! range alone says which rows it needs (the vault reads a branch as one such range per
//! path segment, so each statement saved is saved per segment).

use chatvault_core::backend::{ConversationId, Error, Message, MessageRange, Page, Result};
use sqlx::{ColumnIndex, Decode, Encode, Executor, Pool, Type};

use crate::common::{MESSAGE_PAGE, read_error, to_i64, to_u64};
use crate::dialect::Dialect;
use crate::rows::{bodies, col};
use crate::statements::{SELECT_COUNT_LIVE, SELECT_MESSAGES, SELECT_RANGE_LIVE};

/// The `seq` bounds `(first, last)` that `messages()` returns for `range` in a
/// conversation of `count` messages: the range's own ([`MessageRange::resolve`]), cut to a
/// natural page of at most [`MESSAGE_PAGE`] messages; `None` when it selects nothing.
pub(crate) fn page_bounds(range: &MessageRange, count: u64) -> Option<(u64, u64)> {
    let (mut first, mut last) = range.resolve(count)?;
    if last - first >= MESSAGE_PAGE {
        match range {
            MessageRange::After { .. } => last = first + MESSAGE_PAGE - 1,
            MessageRange::Before { .. } => first = last - (MESSAGE_PAGE - 1),
        }
    }
    Some((first, last))
}

/// Bounds `(lo, hi)` to read before the count is known: [`page_bounds`] lies within them
/// whatever the count for an `After` range, and whenever the bound is within the count
/// for a `Before` range (the caller checks). `None` when the range needs the count first
/// (the newest messages), or selects nothing, or its bounds do not fit a `BIGINT`.
pub(crate) fn probe_bounds(range: &MessageRange) -> Option<(u64, u64)> {
    let (lo, hi) = match *range {
        MessageRange::After { after, limit } => {
            let n = (limit.unwrap_or(usize::MAX) as u64).min(MESSAGE_PAGE);
            let lo = after.checked_add(1)?;
            (lo, lo.checked_add(n.checked_sub(1)?)?)
        }
        MessageRange::Before { before, limit } => {
            let hi = before?.checked_sub(1).filter(|&hi| hi > 0)?;
            let n = (limit as u64).min(MESSAGE_PAGE);
            (hi.saturating_sub(n.checked_sub(1)?).max(1), hi)
        }
    };
    (hi <= i64::MAX as u64).then_some((lo, hi))
}

/// The page of `range` in `pool`: one statement (the live conversation's count and the
/// rows of [`probe_bounds`]) when the probe holds the page, else the count, then the rows.
/// [`Error::NotFound`] when the conversation does not exist or is being deleted.
pub(crate) async fn range_page<D>(
    pool: &Pool<D>,
    id: &ConversationId,
    range: &MessageRange,
) -> Result<Page<Message>>
where
    D: Dialect,
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    usize: ColumnIndex<D::Row>,
    for<'q> &'q str: Encode<'q, D> + Type<D>,
    for<'q> Option<&'q str>: Encode<'q, D>,
    for<'q> Option<D::Ts>: Encode<'q, D>,
    for<'q> String: Encode<'q, D> + Decode<'q, D> + Type<D>,
    for<'q> i64: Encode<'q, D> + Decode<'q, D> + Type<D>,
    for<'q> bool: Encode<'q, D> + Decode<'q, D> + Type<D>,
{
    let mut read = None;
    let count = match probe_bounds(range) {
        Some((lo, hi)) => {
            let rows = sqlx::query(SELECT_RANGE_LIVE)
                .bind(id.as_str())
                .bind(to_i64("seq", lo)?)
                .bind(to_i64("seq", hi)?)
                .fetch_all(pool)
                .await
                .map_err(read_error::<D>)?;
            let Some(row) = rows.first() else {
                return Err(Error::conversation_not_found(id.as_str()));
            };
            let count = col::<D, i64>(row, 0)?;
            read = Some((lo, hi, bodies::<D>(&rows, 1, id)?));
            count
        }
        None => sqlx::query_scalar(SELECT_COUNT_LIVE)
            .bind(id.as_str())
            .fetch_optional(pool)
            .await
            .map_err(read_error::<D>)?
            .ok_or_else(|| Error::conversation_not_found(id.as_str()))?,
    };
    let count = to_u64(D::BACKEND, &format!("conversation {id}"), count)?;
    let Some((first, last)) = page_bounds(range, count) else {
        return Ok(Page {
            items: Vec::new(),
            next_cursor: None,
        });
    };
    let mut items = match read {
        Some((lo, hi, items)) if lo <= first && last <= hi => items,
        _ => {
            let rows = sqlx::query(SELECT_MESSAGES)
                .bind(id.as_str())
                .bind(to_i64("seq", first)?)
                .bind(to_i64("seq", last)?)
                .fetch_all(pool)
                .await
                .map_err(read_error::<D>)?;
            bodies::<D>(&rows, 0, id)?
        }
    };
    items.retain(|m| first <= m.seq && m.seq <= last);
    Ok(Page {
        items,
        next_cursor: range.next_cursor(first, last, count),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every range the probe answers gets the same page as reading the count first.
    #[test]
    fn probes_hold_the_page_or_say_so() {
        let limits = [
            None,
            Some(0),
            Some(1),
            Some(3),
            Some(500),
            Some(501),
            Some(9_999),
        ];
        let mut ranges = Vec::new();
        for after in [
            0,
            1,
            5,
            499,
            500,
            998,
            999,
            1_000,
            1_001,
            u64::MAX - 1,
            u64::MAX,
        ] {
            for limit in limits {
                ranges.push(MessageRange::After { after, limit });
            }
        }
        for before in [
            None,
            Some(0),
            Some(1),
            Some(2),
            Some(600),
            Some(1_000),
            Some(1_001),
            Some(5_000),
        ] {
            for limit in limits {
                let limit = limit.unwrap_or(usize::MAX);
                ranges.push(MessageRange::Before { before, limit });
            }
        }
        let mut held = 0;
        for count in [0, 1, 2, 999, 1_000, 1_001] {
            for range in &ranges {
                let Some((lo, hi)) = probe_bounds(range) else {
                    continue;
                };
                assert!(lo <= hi && hi <= i64::MAX as u64, "{range:?}");
                if let Some((first, last)) = page_bounds(range, count)
                    && lo <= first
                    && last <= hi
                {
                    held += 1;
                }
                if let MessageRange::After { .. } = range {
                    // After ranges: always held (or nothing to read).
                    let page = page_bounds(range, count);
                    assert!(
                        page.is_none_or(|(f, l)| lo <= f && l <= hi),
                        "{range:?} {count}"
                    );
                }
            }
        }
        assert!(held > 100, "the probe holds most pages ({held})");
        assert_eq!(probe_bounds(&MessageRange::last(5)), None);
        assert_eq!(
            probe_bounds(&MessageRange::after(0).limit(100)),
            Some((1, 100))
        );
        assert_eq!(probe_bounds(&MessageRange::after(7)), Some((8, 507)));
        assert_eq!(
            probe_bounds(&MessageRange::before(51).limit(50)),
            Some((1, 50))
        );
        assert_eq!(
            probe_bounds(&MessageRange::before(1_001)),
            Some((501, 1_000))
        );
    }
}
