//! [`SqliteMessages`]: conversations in one SQLite file: [`SqlMessages`] over
//! [`Sqlite`]'s [`Dialect`], and the work behind its SQLite methods (opening the pool,
//! reclaiming space), which are thin calls in `messages.rs`.

mod batch;
mod group;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use chatvault_core::backend::{
    ConversationId, Error, Message, MessagesCapabilities, NewMessage, Result, SearchQuery,
};
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};
use sqlx::{Sqlite, SqliteConnection, Transaction};

use crate::common::read_error;
use crate::common::{
    db_error, fts5_query, parse_message, role_column, search_text, to_i64, to_json,
};
use crate::dialect::{Dialect, Migration, Sealed};
use crate::rows::col;
use crate::statements::{SELECT_LIVE, record_columns_c};

use group::{SqliteWrite, Writers};

/// How long a writer waits for another process's write lock before failing with a
/// temporary error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Version 1 of the SQLite schema (also printed in the crate docs).
const SCHEMA_V1: &str = include_str!("sql/sqlite_v1.sql");

/// Version 2: the conversations' branch tables.
const SCHEMA_V2: &str = include_str!("sql/sqlite_v2.sql");

/// The full-text match drives the query: `CROSS JOIN` fixes SQLite's join order (left
/// to right), which otherwise may walk the user's conversations and probe the FTS index
/// once per message (minutes, not milliseconds, on a large conversation).
const SEARCH: &str = concat!(
    "SELECT m.body, snippet(chatvault_messages_fts, 0, '', '', '…', 16), ",
    record_columns_c!(),
    " FROM chatvault_messages_fts f \
     CROSS JOIN chatvault_messages m ON m.row_id = f.rowid \
     CROSS JOIN chatvault_conversations c ON c.id = m.conversation_id \
     WHERE chatvault_messages_fts MATCH $1 AND c.user_id = $2 AND NOT c.deleting \
     AND ($3 OR NOT c.archived) \
     ORDER BY f.rank, m.conversation_id, m.seq LIMIT $4 OFFSET $5"
);

/// What a [`SqliteMessages`] holds besides its pool.
#[derive(Debug, Clone)]
pub struct SqliteLocal {
    /// This value's (and its clones') writers: they take turns before they reach
    /// SQLite, and share its write transactions.
    writers: Writers,
    /// The database has no file (in memory): no other process shares it.
    in_memory: bool,
}

/// The connect options of the sqlx SQLite URL `url` (see
/// [`SqliteMessages::connect`](crate::SqliteMessages::connect)); [`Error::InvalidInput`]
/// when it is not one.
pub(crate) fn connect_options(url: &str) -> Result<SqliteConnectOptions> {
    if !url.starts_with("sqlite:") {
        return Err(Error::invalid_input(
            "url",
            format!("a SQLite URL starts with \"sqlite:\", got {url:?}"),
        ));
    }
    SqliteConnectOptions::from_str(url)
        .map_err(|e| Error::invalid_input("url", format!("not a SQLite URL: {e}")))
}

/// A pool on `options` with the WAL, busy-timeout, foreign-key, incremental auto-vacuum
/// and create-if-missing settings applied on top (one connection kept open for an
/// in-memory database).
pub(crate) async fn open_pool(options: SqliteConnectOptions) -> Result<SqlitePool> {
    let in_memory = options
        .get_filename()
        .to_str()
        .is_some_and(|name| name.starts_with("file:sqlx-in-memory-"))
        || options.get_filename().as_os_str() == ":memory:";
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        // Takes effect in a database created by this connection (before its tables),
        // so that reclaim_space can shrink the file; an older file keeps its mode.
        .auto_vacuum(SqliteAutoVacuum::Incremental)
        // A row's freed space on a page being written anyway is zeroed: a redacted
        // message's old text does not stay beside the new.
        .pragma("secure_delete", "FAST")
        .busy_timeout(BUSY_TIMEOUT);
    if in_memory {
        // The database lives as long as its one connection.
        SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        SqlitePoolOptions::new().max_connections(8)
    }
    // An in-process connection has no other end to lose: the ping sqlx would send
    // through the connection's worker thread before handing it out is a round trip per
    // operation for nothing (the ping on its return to the pool stays).
    .test_before_acquire(false)
    .connect_with(options)
    .await
    .map_err(|e| db_error(Sqlite::BACKEND, e))
}

/// What a backend on `pool` holds besides it: a fresh writer turn, and whether the
/// database is in memory (its main database has no file name: no other process can
/// reach it).
pub(crate) async fn local_for(pool: &SqlitePool) -> Result<SqliteLocal> {
    let file: Option<String> =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_optional(pool)
            .await
            .map_err(|e| db_error(Sqlite::BACKEND, e))?;
    Ok(SqliteLocal {
        writers: Writers::new(),
        in_memory: file.is_none_or(|f| f.is_empty()),
    })
}

/// Returns the free pages of `pool`'s database to the file system ([`vacuum`], after
/// `local`'s other writers), and says how many bytes it shrank by.
pub(crate) async fn reclaim_space(pool: &SqlitePool, local: &SqliteLocal) -> Result<u64> {
    let before = database_bytes(pool).await?;
    vacuum(pool, local, false).await?;
    Ok(before.saturating_sub(database_bytes(pool).await?))
}

/// The size in bytes of `pool`'s database: its pages times the page size.
async fn database_bytes(pool: &SqlitePool) -> Result<u64> {
    let bytes: i64 = sqlx::query_scalar(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
    )
    .fetch_one(pool)
    .await
    .map_err(|e| db_error(Sqlite::BACKEND, e))?;
    Ok(u64::try_from(bytes).unwrap_or(0))
}

/// Under the write lock: with `optimize_index`, merges the search index into one segment
/// (dropping the terms of deleted and replaced rows); then returns the free pages to the
/// file system (incremental vacuum), and checkpoints the WAL into the file, truncating it.
async fn vacuum(pool: &SqlitePool, local: &SqliteLocal, optimize_index: bool) -> Result<()> {
    let failed = |e| db_error(Sqlite::BACKEND, e);
    let _turn = local.writers.exclusive().await;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(failed)?;
    if optimize_index {
        sqlx::query(
            "INSERT INTO chatvault_messages_fts (chatvault_messages_fts) VALUES ('optimize')",
        )
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    }
    sqlx::query("PRAGMA incremental_vacuum")
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(pool)
        .await
        .map_err(failed)?;
    Ok(())
}

impl Sealed for Sqlite {}

impl Dialect for Sqlite {
    const BACKEND: &'static str = "sqlite";

    /// Microseconds since the Unix epoch (UTC), an `INTEGER`.
    type Ts = i64;

    fn enc_ts(t: DateTime<Utc>) -> i64 {
        t.timestamp_micros()
    }

    fn dec_ts(micros: i64) -> Result<DateTime<Utc>> {
        DateTime::from_timestamp_micros(micros).ok_or_else(|| {
            Error::corrupt(
                Self::BACKEND,
                "a timestamp column",
                format!("{micros} µs is out of range"),
            )
        })
    }

    type Local = SqliteLocal;
    type Write = SqliteWrite;

    /// Merges the search index (its old terms go), gives the freed pages back and
    /// checkpoints the WAL: with `secure_delete = FAST`, no copy of the old version stays
    /// in the database's files. Costs a merge of the whole search index (seconds for
    /// millions of messages); redactions are rare.
    async fn scrub_after_redaction(pool: &SqlitePool, local: &SqliteLocal) -> Result<()> {
        vacuum(pool, local, true).await
    }

    /// SQLite serializes writers itself (`BEGIN IMMEDIATE` takes the write lock at once, so
    /// the conversation row read next cannot change before the commit).
    const SELECT_LIVE_LOCKED: &'static str = SELECT_LIVE;
    const SELECT_ANY_LOCKED: &'static str = "SELECT 1 FROM chatvault_conversations WHERE id = $1";
    const SEARCH: &'static str = SEARCH;

    const MIGRATIONS_TABLE_SQL: &'static str = "CREATE TABLE IF NOT EXISTS chatvault_migrations (
    version INTEGER PRIMARY KEY NOT NULL,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)";

    const MIGRATIONS: &'static [Migration] = &[
        Migration {
            version: 1,
            description: "conversations, messages with FTS5 search, attachments",
            sql: SCHEMA_V1,
        },
        Migration {
            version: 2,
            description: "conversation branch tables",
            sql: SCHEMA_V2,
        },
    ];

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    /// An in-memory database is single-process.
    fn capabilities(local: &SqliteLocal) -> MessagesCapabilities {
        MessagesCapabilities::full().with_multi_process(!local.in_memory)
    }

    /// Every word as an FTS5 phrase ([`fts5_query`]).
    fn match_expression(query: &SearchQuery) -> String {
        fts5_query(query)
    }

    /// This process's writer turn, in the write transaction its concurrent writers share
    /// (holding SQLite's write lock): see [`group`].
    async fn begin_write(pool: &SqlitePool, local: &SqliteLocal) -> Result<SqliteWrite> {
        local.writers.begin(pool).await
    }

    async fn commit(write: SqliteWrite, operation: &'static str) -> Result<()> {
        write.commit(operation).await
    }

    async fn rollback(write: SqliteWrite) {
        write.rollback().await;
    }

    /// `BEGIN IMMEDIATE` makes concurrent migrators take turns.
    async fn begin_migration(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>> {
        pool.begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(read_error::<Sqlite>)
    }

    /// One statement per 64 ids (see `batch.rs`), each a probe of the unique
    /// `(conversation_id, message_id)` index per id; only the stored ones come back.
    async fn stored_messages(
        conn: &mut SqliteConnection,
        id: &ConversationId,
        messages: &[NewMessage],
    ) -> Result<Vec<Option<Message>>> {
        let mut found = HashMap::new();
        for chunk in messages.chunks(batch::MAX_ROWS) {
            let (slots, sql) = batch::lookup(chunk.len());
            let mut query = sqlx::query(sql).bind(id.as_str());
            for m in chunk
                .iter()
                .chain(chunk.last().into_iter().cycle())
                .take(slots)
            {
                query = query.bind(m.id.as_str());
            }
            let rows = query
                .fetch_all(&mut *conn)
                .await
                .map_err(read_error::<Sqlite>)?;
            for row in &rows {
                let message_id: String = col::<Sqlite, _>(row, 0)?;
                found.insert(message_id, col::<Sqlite, String>(row, 1)?);
            }
        }
        if found.is_empty() {
            return Ok(vec![None; messages.len()]);
        }
        let location = format!("a message of conversation {id}");
        messages
            .iter()
            .map(|m| {
                found
                    .get(m.id.as_str())
                    .map(|body| parse_message(Self::BACKEND, &location, body))
                    .transpose()
            })
            .collect()
    }

    /// Multi-row `INSERT`s of up to 64 rows (see `batch.rs`); the FTS5 index is filled
    /// by its trigger, row by row, as for any insert.
    async fn insert_messages(
        conn: &mut SqliteConnection,
        id: &ConversationId,
        messages: &[Message],
    ) -> Result<()> {
        let mut rest = messages.iter();
        for (rows, sql) in batch::inserts(messages.len()) {
            let mut query = sqlx::query(sql);
            for m in rest.by_ref().take(rows) {
                query = query
                    .bind(id.as_str())
                    .bind(to_i64("seq", m.seq)?)
                    .bind(m.id.as_str())
                    .bind(role_column(m))
                    .bind(to_i64("revision", m.revision)?)
                    .bind(Self::enc_ts(m.created_at))
                    .bind(m.updated_at.map(Self::enc_ts))
                    .bind(search_text(m))
                    .bind(to_json(Self::BACKEND, m)?);
            }
            query
                .execute(&mut *conn)
                .await
                .map_err(read_error::<Sqlite>)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may unwrap
    use super::*;
    use crate::SqliteMessages;
    use chatvault_core::backend::{
        ConversationRecord, MessagesBackend, MessagesBackendExt, UserId,
    };
    use sqlx::AssertSqlSafe;

    /// A range read is one probe of the conversation's key and one range of the message
    /// index, already in `seq` order (no sort, no scan).
    #[tokio::test]
    async fn range_reads_walk_the_seq_index() {
        let b = SqliteMessages::connect("sqlite::memory:").await.unwrap();
        let plan = sqlx::query(AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            crate::statements::SELECT_RANGE_LIVE
        )))
        .bind("c")
        .bind(1_i64)
        .bind(100_i64)
        .fetch_all(b.pool())
        .await
        .unwrap();
        let steps: Vec<String> = plan.iter().map(|row| sqlx::Row::get(row, 3)).collect();
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert!(steps[0].starts_with("SEARCH c USING INDEX"), "{steps:?}");
        assert!(
            steps[1].starts_with("SEARCH m USING INDEX") && steps[1].contains("seq>? AND seq<?"),
            "{steps:?}"
        );
    }

    /// The replay check's lookup of many ids probes the unique index once per id,
    /// whatever the conversation's size (no scan of its messages).
    #[tokio::test]
    async fn id_lookups_probe_the_unique_index() {
        let b = SqliteMessages::connect("sqlite::memory:").await.unwrap();
        let (slots, sql) = batch::lookup(batch::MAX_ROWS);
        let mut plan =
            sqlx::query(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {}", sql.0))).bind("c");
        for i in 0..slots {
            plan = plan.bind(format!("m{i}"));
        }
        let plan = plan.fetch_all(b.pool()).await.unwrap();
        let steps: Vec<String> = plan.iter().map(|row| sqlx::Row::get(row, 3)).collect();
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert!(
            steps[0].starts_with("SEARCH chatvault_messages USING INDEX")
                && steps[0].contains("(conversation_id=? AND message_id=?)"),
            "{steps:?}"
        );
    }

    /// The full-text match must drive the search (see [`SEARCH`]): SQLite would otherwise
    /// probe the FTS index once per message of the user's conversations.
    #[tokio::test]
    async fn search_is_driven_by_the_full_text_index() {
        let b = SqliteMessages::connect("sqlite::memory:").await.unwrap();
        let user = UserId::parse("u").unwrap();
        let record = ConversationRecord::new(Some(user.clone()));
        b.create(&record).await.unwrap();
        let batch = (0..200)
            .map(|i| NewMessage::new(chatvault_core::Role::User, format!("filler {i}")))
            .collect();
        b.append_messages(&record.id, batch).await.unwrap();
        let plan = sqlx::query(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {SEARCH}")))
            .bind("\"filler\"")
            .bind(user.as_str())
            .bind(false)
            .bind(21_i64)
            .bind(0_i64)
            .fetch_all(b.pool())
            .await
            .unwrap();
        let steps: Vec<String> = plan.iter().map(|row| sqlx::Row::get(row, 3)).collect();
        assert!(
            steps[0].starts_with("SCAN f VIRTUAL TABLE"),
            "the plan starts elsewhere: {steps:?}"
        );
    }
}
