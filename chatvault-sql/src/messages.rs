//! [`SqlMessages`]: the one backend over SQL, generic over the database's
//! [`Dialect`]; its [`MessagesBackend`](chatvault_core::MessagesBackend) impl is in
//! `backend.rs`, the statements in `statements.rs`.

use std::fmt;

use chatvault_core::backend::{
    ConversationId, ConversationRecord, Error, FileAttachment, Message, Page, Result, SearchCursor,
    SearchHit, SearchOptions, UserId,
};
use sqlx::{ColumnIndex, Decode, Encode, Executor, Pool, Row as _, Transaction, Type};

use crate::common::{
    RawRecord, commit_error, db_error, parse_json, parse_message, to_i64, to_json, tree_column,
};
use crate::dialect::Dialect;
use crate::statements::{INSERT_MIGRATION, SELECT_FILES, SELECT_SCHEMA_VERSION, UPDATE_COUNTERS};

/// Conversations in a SQL database `D`: one row per conversation, one per message, one
/// per attachment, with a full-text index over message text. Use it through its aliases
/// [`SqliteMessages`](crate::SqliteMessages) and
/// [`PostgresMessages`](crate::PostgresMessages), which document their databases.
pub struct SqlMessages<D: Dialect> {
    pub(crate) pool: Pool<D>,
    /// What the database needs besides the pool (SQLite: the in-process writer turn).
    pub(crate) local: D::Local,
}

impl<D: Dialect> Clone for SqlMessages<D> {
    fn clone(&self) -> Self {
        SqlMessages {
            pool: self.pool.clone(),
            local: self.local.clone(),
        }
    }
}

impl<D: Dialect> fmt::Debug for SqlMessages<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlMessages")
            .field("backend", &D::BACKEND)
            .field("pool", &self.pool)
            .field("local", &self.local)
            .finish()
    }
}

impl<D: Dialect> SqlMessages<D> {
    /// The connection pool this backend uses.
    pub fn pool(&self) -> &Pool<D> {
        &self.pool
    }
}

/// The part of the backend that runs statements: it needs the database to encode and
/// decode the column types this crate uses (`TEXT`, `BIGINT`, `BOOLEAN`, timestamps),
/// which both databases do. Rust does not carry these bounds from the trait to its users,
/// so this block and the `MessagesBackend` impl state them.
impl<D: Dialect> SqlMessages<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    usize: ColumnIndex<D::Row>,
    for<'q> &'q str: Encode<'q, D> + Type<D>,
    for<'q> Option<&'q str>: Encode<'q, D>,
    for<'q> Option<D::Ts>: Encode<'q, D>,
    for<'q> String: Encode<'q, D> + Decode<'q, D> + Type<D>,
    for<'q> i64: Encode<'q, D> + Decode<'q, D> + Type<D>,
    for<'q> bool: Encode<'q, D> + Decode<'q, D> + Type<D>,
{
    /// Creates the schema, or brings it up to date, recording each applied migration in
    /// the `chatvault_migrations` table. Safe to run concurrently from several processes
    /// (they serialize on a lock); a schema newer than this library is refused.
    pub async fn migrate(&self) -> Result<()> {
        let mut tx = D::begin_migration(&self.pool).await?;
        sqlx::raw_sql(D::MIGRATIONS_TABLE_SQL)
            .execute(&mut *tx)
            .await
            .map_err(read_error::<D>)?;
        let current: Option<i64> = sqlx::query_scalar(SELECT_SCHEMA_VERSION)
            .fetch_one(&mut *tx)
            .await
            .map_err(read_error::<D>)?;
        let current = current.unwrap_or(0);
        let latest = D::MIGRATIONS.last().map_or(0, |m| m.version);
        if current > latest {
            return Err(Error::backend(
                D::BACKEND,
                format!(
                    "the database schema is at version {current}, newer than the \
                     {latest} this chatvault-sql knows; upgrade chatvault-sql"
                ),
            ));
        }
        for migration in D::MIGRATIONS.iter().filter(|m| m.version > current) {
            tracing::info!(
                backend = D::BACKEND,
                version = migration.version,
                description = migration.description,
                "applying schema migration"
            );
            sqlx::raw_sql(migration.sql)
                .execute(&mut *tx)
                .await
                .map_err(read_error::<D>)?;
            sqlx::query(INSERT_MIGRATION)
                .bind(migration.version)
                .bind(migration.description)
                .execute(&mut *tx)
                .await
                .map_err(read_error::<D>)?;
        }
        commit(tx, "migrate").await
    }

    /// The schema version recorded in `chatvault_migrations` (0 before the first
    /// migration).
    pub async fn schema_version(&self) -> Result<i64> {
        let version: Option<i64> = sqlx::query_scalar(SELECT_SCHEMA_VERSION)
            .fetch_one(&self.pool)
            .await
            .map_err(read_error::<D>)?;
        Ok(version.unwrap_or(0))
    }

    /// Reads column `i`; a value of the wrong type is corrupt data.
    pub(crate) fn col<'r, T>(row: &'r D::Row, i: usize) -> Result<T>
    where
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
    pub(crate) fn raw_at(row: &D::Row, at: usize, full: bool) -> Result<RawRecord> {
        Ok(RawRecord {
            id: Self::col(row, at)?,
            user_id: Self::col(row, at + 1)?,
            title: Self::col(row, at + 2)?,
            created_at: D::dec_ts(Self::col::<D::Ts>(row, at + 3)?)?,
            last_active: D::dec_ts(Self::col::<D::Ts>(row, at + 4)?)?,
            archived: Self::col(row, at + 5)?,
            message_count: Self::col(row, at + 6)?,
            file_count: Self::col(row, at + 7)?,
            usage: Self::col(row, at + 8)?,
            tree: Self::col(row, at + 9)?,
            metadata: if full {
                Some(Self::col(row, at + 10)?)
            } else {
                None
            },
            version: if full { Self::col(row, at + 11)? } else { 0 },
        })
    }

    /// The full record whose columns start at column `at`.
    pub(crate) fn record_at(row: &D::Row, at: usize) -> Result<ConversationRecord> {
        Self::raw_at(row, at, true)?.into_record(D::BACKEND)
    }

    /// The message whose `body` is column `at`, of conversation `id`.
    pub(crate) fn message_at(row: &D::Row, at: usize, id: &ConversationId) -> Result<Message> {
        let body: String = Self::col(row, at)?;
        parse_message(
            D::BACKEND,
            &format!("a message of conversation {id}"),
            &body,
        )
    }

    /// Runs the dialect's `SEARCH` with `text` as its match expression: the page of
    /// `user_id`'s hits after `offset`.
    pub(crate) async fn search_page(
        &self,
        text: String,
        user_id: &UserId,
        options: &SearchOptions,
    ) -> Result<Page<SearchHit>> {
        let offset = i64::from(options.cursor.map_or(0, SearchCursor::offset));
        let limit = to_i64("limit", options.limit.get() as u64 + 1)?;
        let rows = sqlx::query(D::SEARCH)
            .bind(text)
            .bind(user_id.as_str())
            .bind(options.include_archived)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await
            .map_err(read_error::<D>)?;
        let next = SearchCursor::at(offset as usize + options.limit.get());
        let rows = Page::from_overfetch(rows, options.limit, |_| next.encode());
        let mut items = Vec::with_capacity(rows.items.len());
        for row in &rows.items {
            let conversation = Self::record_at(row, 2)?;
            let message = Self::message_at(row, 0, &conversation.id)?;
            let snippet: String = Self::col(row, 1)?;
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

    /// The conversation's record, locked against other writers until the transaction
    /// ends; [`Error::NotFound`] when it does not exist or is being deleted.
    pub(crate) async fn lock_live(
        conn: &mut D::Connection,
        id: &ConversationId,
    ) -> Result<ConversationRecord> {
        let row = sqlx::query(D::SELECT_LIVE_LOCKED)
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(read_error::<D>)?;
        match row {
            Some(row) => Self::record_at(&row, 0),
            None => Err(Error::conversation_not_found(id.as_str())),
        }
    }

    /// Writes the columns an append, a message update or a file change moves (the branch
    /// table with them: an append moves it).
    pub(crate) async fn write_counters(
        conn: &mut D::Connection,
        record: &ConversationRecord,
    ) -> Result<()> {
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
    pub(crate) async fn files_in(
        conn: &mut D::Connection,
        id: &ConversationId,
    ) -> Result<Vec<FileAttachment>> {
        let rows = sqlx::query(SELECT_FILES)
            .bind(id.as_str())
            .fetch_all(&mut *conn)
            .await
            .map_err(read_error::<D>)?;
        let location = format!("an attachment of conversation {id}");
        rows.iter()
            .map(|row| parse_json(D::BACKEND, &location, &Self::col::<String>(row, 0)?))
            .collect()
    }
}

/// Maps a driver error met while reading, or while writing inside a transaction that is
/// not yet committed (so nothing was written).
pub(crate) fn read_error<D: Dialect>(err: sqlx::Error) -> Error {
    db_error(D::BACKEND, err)
}

/// Commits a transaction of `operation` (see [`commit_error`] for what a failure means).
pub(crate) async fn commit<D: Dialect>(
    tx: Transaction<'static, D>,
    operation: &'static str,
) -> Result<()> {
    tx.commit()
        .await
        .map_err(|e| commit_error(D::BACKEND, operation, e))
}
