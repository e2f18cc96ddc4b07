//! Reading the columns of a stored row: typed values, conversation records and message
//! bodies, for every [`Dialect`].

use chatvault_core::backend::{ConversationId, ConversationRecord, Error, Message, Result};
use sqlx::{ColumnIndex, Decode, Row as _, Type};

use crate::common::{RawRecord, parse_message};
use crate::dialect::Dialect;

/// Reads column `i`; a value of the wrong type is corrupt data.
pub(crate) fn col<'r, D, T>(row: &'r D::Row, i: usize) -> Result<T>
where
    D: Dialect,
    usize: ColumnIndex<D::Row>,
    T: Decode<'r, D> + Type<D>,
{
    row.try_get(i).map_err(|e| {
        Error::corrupt(
            D::BACKEND,
            format!("column {i} of a stored row"),
            e.to_string(),
        )
    })
}

/// The conversation columns of `summary_columns!` (and, when `full`, of
/// `record_columns!`) starting at column `at`.
pub(crate) fn raw_at<D>(row: &D::Row, at: usize, full: bool) -> Result<RawRecord>
where
    D: Dialect,
    usize: ColumnIndex<D::Row>,
    for<'r> String: Decode<'r, D> + Type<D>,
    for<'r> i64: Decode<'r, D> + Type<D>,
    for<'r> bool: Decode<'r, D> + Type<D>,
{
    Ok(RawRecord {
        id: col::<D, _>(row, at)?,
        user_id: col::<D, _>(row, at + 1)?,
        title: col::<D, _>(row, at + 2)?,
        created_at: D::dec_ts(col::<D, D::Ts>(row, at + 3)?)?,
        last_active: D::dec_ts(col::<D, D::Ts>(row, at + 4)?)?,
        archived: col::<D, _>(row, at + 5)?,
        message_count: col::<D, _>(row, at + 6)?,
        file_count: col::<D, _>(row, at + 7)?,
        usage: col::<D, _>(row, at + 8)?,
        tree: col::<D, _>(row, at + 9)?,
        metadata: if full {
            Some(col::<D, _>(row, at + 10)?)
        } else {
            None
        },
        version: if full { col::<D, _>(row, at + 11)? } else { 0 },
    })
}

/// The full record whose columns start at column `at`.
pub(crate) fn record_at<D>(row: &D::Row, at: usize) -> Result<ConversationRecord>
where
    D: Dialect,
    usize: ColumnIndex<D::Row>,
    for<'r> String: Decode<'r, D> + Type<D>,
    for<'r> i64: Decode<'r, D> + Type<D>,
    for<'r> bool: Decode<'r, D> + Type<D>,
{
    raw_at::<D>(row, at, true)?.into_record(D::BACKEND)
}

/// The message whose `body` is column `at`, of conversation `id`.
pub(crate) fn message_at<D>(row: &D::Row, at: usize, id: &ConversationId) -> Result<Message>
where
    D: Dialect,
    usize: ColumnIndex<D::Row>,
    for<'r> String: Decode<'r, D> + Type<D>,
{
    let body: String = col::<D, _>(row, at)?;
    parse_message(
        D::BACKEND,
        &format!("a message of conversation {id}"),
        &body,
    )
}

/// The messages whose bodies are column `at` of `rows` (a NULL body, the row of a
/// conversation without such messages, is no message).
pub(crate) fn bodies<D>(rows: &[D::Row], at: usize, id: &ConversationId) -> Result<Vec<Message>>
where
    D: Dialect,
    usize: ColumnIndex<D::Row>,
    for<'r> String: Decode<'r, D> + Type<D>,
{
    let location = format!("a message of conversation {id}");
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(body) = col::<D, Option<String>>(row, at)? {
            out.push(parse_message(D::BACKEND, &location, &body)?);
        }
    }
    Ok(out)
}
