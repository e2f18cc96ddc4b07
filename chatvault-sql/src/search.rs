//! `search()`: a page of full-text hits, by the dialect's `SEARCH` statement.

use chatvault_core::backend::{Page, Result, SearchCursor, SearchHit, SearchOptions, UserId};
use sqlx::{ColumnIndex, Decode, Encode, Executor, Pool, Type};

use crate::common::{read_error, to_i64};
use crate::dialect::Dialect;
use crate::rows::{col, message_at, record_at};

/// Runs the dialect's `SEARCH` in `pool` with `text` as its match expression: the page of
/// `user_id`'s hits after `offset`.
pub(crate) async fn search_page<D>(
    pool: &Pool<D>,
    text: String,
    user_id: &UserId,
    options: &SearchOptions,
) -> Result<Page<SearchHit>>
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
    let offset = i64::from(options.cursor.map_or(0, SearchCursor::offset));
    let limit = to_i64("limit", options.limit.get() as u64 + 1)?;
    let rows = sqlx::query(D::SEARCH)
        .bind(text)
        .bind(user_id.as_str())
        .bind(options.include_archived)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await
        .map_err(read_error::<D>)?;
    let next = SearchCursor::at(offset as usize + options.limit.get());
    let rows = Page::from_overfetch(rows, options.limit, |_| next.encode());
    let mut items = Vec::with_capacity(rows.items.len());
    for row in &rows.items {
        let conversation = record_at::<D>(row, 2)?;
        let message = message_at::<D>(row, 0, &conversation.id)?;
        let snippet: String = col::<D, _>(row, 1)?;
        items.push(SearchHit::new(
            conversation.summary(),
            message,
            Some(snippet),
        ));
    }
    Ok(Page {
        items,
        next_cursor: rows.next_cursor,
    })
}
