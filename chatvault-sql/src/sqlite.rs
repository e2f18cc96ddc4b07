//! [`SqliteMessages`]: conversations in one SQLite file.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chatvault_core::{
    Appended, ConversationHead, ConversationId, ConversationPatch, ConversationRecord,
    ConversationSummary, Error, FileAttachment, FileId, ListCursor, ListOptions, Message,
    MessageId, MessageRange, MessageUpdate, MessageUpdated, MessagesBackend, MessagesCapabilities,
    NewMessage, Page, Result, SearchHit, SearchOptions, SearchQuery, UserId, apply_add_file,
    apply_remove_file, async_trait, check_replay, now, revision_conflict,
};
use chrono::{DateTime, Utc};
#[cfg(test)]
use sqlx::AssertSqlSafe;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::common::{
    MESSAGE_PAGE, Migration, RawRecord, commit_error, db_error, fts5_query, parse_json,
    parse_message, role_column, search_next_cursor, search_offset, search_text, to_i64, to_json,
    to_u64,
};

const BACKEND: &str = "sqlite";
type Db = Sqlite;
type DbRow = SqliteRow;
/// Timestamps are stored as microseconds since the Unix epoch (UTC), an `INTEGER`.
type Ts = i64;

fn enc_ts(t: DateTime<Utc>) -> Ts {
    t.timestamp_micros()
}

fn dec_ts(micros: Ts) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| {
        Error::corrupt(
            BACKEND,
            "a timestamp column",
            format!("{micros} µs is out of range"),
        )
    })
}

/// SQLite serializes writers itself (`BEGIN IMMEDIATE` takes the write lock at once, so the
/// conversation row read next cannot change before the commit).
const SELECT_LIVE_LOCKED: &str = SELECT_LIVE;
const SELECT_ANY_LOCKED: &str = "SELECT 1 FROM chatvault_conversations WHERE id = $1";

/// How long a writer waits for another process's write lock before failing with a
/// temporary error.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

const MIGRATIONS_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS chatvault_migrations (
    version INTEGER PRIMARY KEY NOT NULL,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)";

/// The schema, one migration per version. Never edit a released migration: add one.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "conversations, messages with FTS5 search, attachments",
    sql: SCHEMA_V1,
}];

/// Version 1 of the SQLite schema (also printed in the crate docs).
pub(crate) const SCHEMA_V1: &str = include_str!("sql/sqlite_v1.sql");

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

/// Conversations in a SQLite database: one row per conversation, one per message, one
/// per attachment, with an FTS5 index over message text.
///
/// Writers take SQLite's write lock at once (`BEGIN IMMEDIATE`) and wait up to 30 s
/// (`busy_timeout`) for another process's; within one process they queue on an async
/// mutex first, so they never spin on the busy handler. The database runs in WAL mode, so
/// readers never wait for writers. See the [crate docs](crate) for the schema.
#[derive(Debug, Clone)]
pub struct SqliteMessages {
    pool: SqlitePool,
    /// Serializes this value's (and its clones') writers before they reach SQLite.
    writer: Arc<Mutex<()>>,
    /// The database has no file (in memory): no other process shares it.
    in_memory: bool,
}

impl SqliteMessages {
    /// Opens (creating it if missing) the database at `url` and brings its schema up to
    /// date.
    ///
    /// `url` is a sqlx SQLite URL: `sqlite://path/to/chat.db`, `sqlite:chat.db`, or
    /// `sqlite::memory:` (one connection, gone when the value is dropped). Connections use
    /// WAL journaling, `synchronous = FULL`, foreign keys, and a 30 s busy timeout.
    pub async fn connect(url: &str) -> Result<Self> {
        if !url.starts_with("sqlite:") {
            return Err(Error::invalid_input(
                "url",
                format!("a SQLite URL starts with \"sqlite:\", got {url:?}"),
            ));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::invalid_input("url", format!("not a SQLite URL: {e}")))?;
        Self::connect_with(options).await
    }

    /// Like [`connect`](Self::connect), from connect options (the WAL, busy-timeout,
    /// foreign-key and create-if-missing settings are applied on top of them).
    pub async fn connect_with(options: SqliteConnectOptions) -> Result<Self> {
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
            .busy_timeout(BUSY_TIMEOUT);
        let pool = if in_memory {
            // The database lives as long as its one connection.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(8)
        }
        .connect_with(options)
        .await
        .map_err(|e| db_error(BACKEND, e))?;
        Self::from_pool(pool).await
    }

    /// Uses an existing pool, and brings the schema up to date ([`migrate`](Self::migrate)).
    ///
    /// The pool's connections should use WAL journaling and a busy timeout (as
    /// [`connect`](Self::connect) sets them), or concurrent writers in other processes
    /// fail fast with a temporary error instead of waiting their turn.
    pub async fn from_pool(pool: SqlitePool) -> Result<Self> {
        // An in-memory (or temporary) main database has no file name: no other process
        // can reach it.
        let file: Option<String> =
            sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_optional(&pool)
                .await
                .map_err(|e| db_error(BACKEND, e))?;
        let backend = SqliteMessages {
            pool,
            writer: Arc::new(Mutex::new(())),
            in_memory: file.is_none_or(|f| f.is_empty()),
        };
        backend.migrate().await?;
        Ok(backend)
    }

    fn capabilities_impl(&self) -> MessagesCapabilities {
        MessagesCapabilities::full().with_multi_process(!self.in_memory)
    }

    /// A write transaction holding SQLite's write lock, and this process's writer turn.
    async fn begin_write(&self) -> Result<(Transaction<'static, Db>, OwnedMutexGuard<()>)> {
        let guard = Arc::clone(&self.writer).lock_owned().await;
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| db_error(BACKEND, e))?;
        Ok((tx, guard))
    }

    /// A read transaction: in WAL mode its reads see one snapshot.
    async fn begin_read(&self) -> Result<Transaction<'static, Db>> {
        self.pool.begin().await.map_err(|e| db_error(BACKEND, e))
    }

    async fn search_impl(
        &self,
        user_id: &UserId,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Page<SearchHit>> {
        let offset = search_offset(options)?;
        let query = SearchQuery::parse(query)?;
        search_page(&self.pool, fts5_query(&query), user_id, options, offset).await
    }
}

const INSERT_MESSAGE: &str = "INSERT INTO chatvault_messages \
    (conversation_id, seq, message_id, role, revision, created_at, updated_at, text, body) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// The messages already stored under the ids of `messages` (for `check_replay`): one
/// indexed lookup each (statements are cheap in process).
async fn stored_messages(
    tx: &mut Transaction<'static, Db>,
    id: &ConversationId,
    messages: &[NewMessage],
) -> Result<Vec<Option<Message>>> {
    let mut stored = Vec::with_capacity(messages.len());
    for m in messages {
        let row = sqlx::query(SELECT_MESSAGE_BY_ID)
            .bind(id.as_str())
            .bind(m.id.as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(read_error)?;
        stored.push(row.map(|row| message_at(&row, 0, id)).transpose()?);
    }
    Ok(stored)
}

/// Inserts appended messages, one statement each.
async fn insert_messages(
    tx: &mut Transaction<'static, Db>,
    id: &ConversationId,
    messages: &[Message],
) -> Result<()> {
    for m in messages {
        sqlx::query(INSERT_MESSAGE)
            .bind(id.as_str())
            .bind(to_i64("seq", m.seq)?)
            .bind(m.id.as_str())
            .bind(role_column(m))
            .bind(to_i64("revision", m.revision)?)
            .bind(enc_ts(m.created_at))
            .bind(m.updated_at.map(enc_ts))
            .bind(search_text(m))
            .bind(to_json(BACKEND, m)?)
            .execute(&mut **tx)
            .await
            .map_err(read_error)?;
    }
    Ok(())
}

/// Begins the migration transaction: `BEGIN IMMEDIATE` makes concurrent migrators take
/// turns.
async fn begin_migration(pool: &SqlitePool) -> Result<Transaction<'static, Db>> {
    pool.begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| db_error(BACKEND, e))
}

messages_backend!(SqliteMessages);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests may unwrap
    use super::*;

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
