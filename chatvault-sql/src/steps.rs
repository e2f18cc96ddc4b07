//! The steps write transactions share, on the connection of one: locking the live
//! conversation's row, writing its counters back, reading its attachments.

use chatvault_core::backend::{ConversationId, ConversationRecord, Error, FileAttachment, Result};
use sqlx::{ColumnIndex, Decode, Encode, Executor, Type};

use crate::common::{parse_json, read_error, to_i64, to_json, tree_column};
use crate::dialect::Dialect;
use crate::rows::{col, record_at};
use crate::statements::{SELECT_FILES, UPDATE_COUNTERS};

/// The conversation's record, locked against other writers until the transaction
/// ends; [`Error::NotFound`] when it does not exist or is being deleted.
pub(crate) async fn lock_live<D>(
    conn: &mut D::Connection,
    id: &ConversationId,
) -> Result<ConversationRecord>
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
    let row = sqlx::query(D::SELECT_LIVE_LOCKED)
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(read_error::<D>)?;
    match row {
        Some(row) => record_at::<D>(&row, 0),
        None => Err(Error::conversation_not_found(id.as_str())),
    }
}

/// Writes the columns an append, a message update or a file change moves (the branch
/// table with them: an append moves it).
pub(crate) async fn write_counters<D>(
    conn: &mut D::Connection,
    record: &ConversationRecord,
) -> Result<()>
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
    let tree = tree_column(D::BACKEND, record)?;
    sqlx::query(UPDATE_COUNTERS)
        .bind(record.id.as_str())
        .bind(record.title.as_deref())
        .bind(D::enc_ts(record.last_active))
        .bind(to_i64("message_count", record.message_count)?)
        .bind(to_i64("file_count", record.file_count)?)
        .bind(to_json(D::BACKEND, &record.usage)?)
        .bind(to_i64("version", record.version)?)
        .bind(tree.as_deref())
        .execute(&mut *conn)
        .await
        .map_err(read_error::<D>)?;
    Ok(())
}

/// The conversation's attachment records, in upload order.
pub(crate) async fn files_in<D>(
    conn: &mut D::Connection,
    id: &ConversationId,
) -> Result<Vec<FileAttachment>>
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
    let rows = sqlx::query(SELECT_FILES)
        .bind(id.as_str())
        .fetch_all(&mut *conn)
        .await
        .map_err(read_error::<D>)?;
    let location = format!("an attachment of conversation {id}");
    rows.iter()
        .map(|row| parse_json(D::BACKEND, &location, &col::<D, String>(row, 0)?))
        .collect()
}
