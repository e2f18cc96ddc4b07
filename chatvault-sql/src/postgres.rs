//! [`PostgresMessages`]: conversations in PostgreSQL.

use chatvault_core::{
    Appended, ConversationHead, ConversationId, ConversationPatch, ConversationRecord,
    ConversationSummary, Error, FileAttachment, FileId, ListCursor, ListOptions, Message,
    MessageId, MessageRange, MessageUpdate, MessageUpdated, MessagesBackend, MessagesCapabilities,
    NewMessage, Page, Result, SearchHit, SearchOptions, UserId, apply_add_file, apply_remove_file,
    async_trait, check_replay, now, revision_conflict,
};
use chrono::{DateTime, Utc};
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Transaction};

use crate::common::{
    MESSAGE_PAGE, Migration, RawRecord, commit_error, db_error, parse_json, parse_message,
    role_column, search_next_cursor, search_offset, search_text, to_i64, to_json, to_u64,
};

const BACKEND: &str = "postgres";
type Db = Postgres;
type DbRow = PgRow;
/// Timestamps are `TIMESTAMPTZ` (microsecond precision).
type Ts = DateTime<Utc>;

fn enc_ts(t: DateTime<Utc>) -> Ts {
    t
}

fn dec_ts(t: Ts) -> Result<DateTime<Utc>> {
    Ok(t)
}

/// The conversation row, locked until the transaction ends: writers to one conversation
/// take turns, writers to different conversations do not wait for each other.
const SELECT_LIVE_LOCKED: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM chatvault_conversations WHERE id = $1 AND NOT deleting FOR UPDATE"
);
const SELECT_ANY_LOCKED: &str = "SELECT 1 FROM chatvault_conversations WHERE id = $1 FOR UPDATE";

/// A fixed key for `pg_advisory_xact_lock`, so that concurrent migrators take turns
/// ("chatvault" in ASCII, truncated to 63 bits).
const MIGRATION_LOCK_KEY: i64 = 0x6368_6174_7661_756c;

const MIGRATIONS_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS chatvault_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)";

/// The schema, one migration per version. Never edit a released migration: add one.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "conversations, messages with tsvector search, attachments",
    sql: SCHEMA_V1,
}];

/// How much of a message's text the search index covers: PostgreSQL refuses a
/// `tsvector` over 1 MB, which a message near the 8 MiB limit could otherwise reach.
pub const SEARCH_INDEXED_CHARS: usize = 100_000;

/// Version 1 of the PostgreSQL schema (also printed in the crate docs).
pub(crate) const SCHEMA_V1: &str = r#"
CREATE TABLE chatvault_conversations (
    id            TEXT COLLATE "C" PRIMARY KEY,
    user_id       TEXT COLLATE "C",
    title         TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    last_active   TIMESTAMPTZ NOT NULL,
    archived      BOOLEAN NOT NULL DEFAULT FALSE,
    metadata      TEXT NOT NULL DEFAULT '{}',   -- JSON object, as serde_json wrote it
    message_count BIGINT NOT NULL DEFAULT 0,
    file_count    BIGINT NOT NULL DEFAULT 0,
    usage         TEXT NOT NULL DEFAULT '{}',   -- JSON: token totals
    version       BIGINT NOT NULL,
    deleting      BOOLEAN NOT NULL DEFAULT FALSE -- begin_delete was called
);
CREATE INDEX chatvault_conversations_by_user
    ON chatvault_conversations (user_id, last_active DESC, id DESC);
CREATE INDEX chatvault_conversations_by_activity
    ON chatvault_conversations (last_active DESC, id DESC);

CREATE TABLE chatvault_messages (
    conversation_id TEXT COLLATE "C" NOT NULL
        REFERENCES chatvault_conversations (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    message_id      TEXT COLLATE "C" NOT NULL,
    role            TEXT NOT NULL,
    revision        BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ,
    text            TEXT NOT NULL,              -- the text view, for search
    body            TEXT NOT NULL,              -- the whole message as JSON (authoritative)
    search          TSVECTOR GENERATED ALWAYS AS
                        (to_tsvector('simple'::regconfig, left(text, 100000))) STORED,
    PRIMARY KEY (conversation_id, seq),
    UNIQUE (conversation_id, message_id)
);
CREATE INDEX chatvault_messages_search ON chatvault_messages USING GIN (search);

CREATE TABLE chatvault_attachments (
    conversation_id TEXT COLLATE "C" NOT NULL
        REFERENCES chatvault_conversations (id) ON DELETE CASCADE,
    file_id         TEXT COLLATE "C" NOT NULL,
    position        BIGINT NOT NULL,            -- attachment order (oldest first)
    filename        TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    size            BIGINT NOT NULL,
    storage_key     TEXT NOT NULL,
    uploaded_at     TIMESTAMPTZ NOT NULL,
    body            TEXT NOT NULL,              -- the whole attachment record as JSON
    PRIMARY KEY (conversation_id, file_id)
);
"#;

const SEARCH: &str = concat!(
    "SELECT m.body, ts_headline('simple'::regconfig, left(m.text, 100000), q, \
     'StartSel=\"\", StopSel=\"\", MaxWords=24, MinWords=8, MaxFragments=1'), ",
    record_columns_c!(),
    " FROM chatvault_messages m \
     JOIN chatvault_conversations c ON c.id = m.conversation_id, \
     plainto_tsquery('simple'::regconfig, $1) q \
     WHERE m.search @@ q AND c.user_id = $2 AND NOT c.deleting \
     AND ($3 OR NOT c.archived) \
     ORDER BY ts_rank(m.search, q) DESC, m.conversation_id, m.seq LIMIT $4 OFFSET $5"
);

/// Conversations in a PostgreSQL database: one row per conversation, one per message
/// (with a `tsvector` column and a GIN index for search), one per attachment.
///
/// Every write is one transaction that first locks the conversation's row
/// (`SELECT ... FOR UPDATE`), so writers to one conversation take turns, from any number
/// of processes, and writers to different conversations run in parallel. See the
/// [crate docs](crate) for the schema.
#[derive(Debug, Clone)]
pub struct PostgresMessages {
    pool: PgPool,
}

impl PostgresMessages {
    /// Connects to `url` (`postgres://user:password@host:port/database`) with a pool of
    /// up to 10 connections, and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::invalid_input(
                "url",
                format!("a PostgreSQL URL starts with \"postgres://\", got {url:?}"),
            ));
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| Error::invalid_input("url", format!("not a PostgreSQL URL: {e}")))?;
        Self::connect_with(options).await
    }

    /// Like [`connect`](Self::connect), from connect options.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect_with(options)
            .await
            .map_err(|e| db_error(BACKEND, e))?;
        Self::from_pool(pool).await
    }

    /// Uses an existing pool, and brings the schema up to date ([`migrate`](Self::migrate)).
    pub async fn from_pool(pool: PgPool) -> Result<Self> {
        let backend = PostgresMessages { pool };
        backend.migrate().await?;
        Ok(backend)
    }

    fn capabilities_impl(&self) -> MessagesCapabilities {
        MessagesCapabilities::full()
    }

    /// A write transaction (the conversation row is locked by the statements that read
    /// it). The `()` stands for SQLite's in-process writer turn, which PostgreSQL needs
    /// not.
    async fn begin_write(&self) -> Result<(Transaction<'static, Db>, ())> {
        let tx = self.pool.begin().await.map_err(|e| db_error(BACKEND, e))?;
        Ok((tx, ()))
    }

    /// A read-only transaction whose statements all see one snapshot.
    async fn begin_read(&self) -> Result<Transaction<'static, Db>> {
        self.pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(|e| db_error(BACKEND, e))
    }

    async fn search_impl(
        &self,
        user_id: &UserId,
        query: &str,
        options: &SearchOptions,
    ) -> Result<Page<SearchHit>> {
        let offset = search_offset(options)?;
        let limit = to_i64("limit", options.limit as u64 + 1)?;
        let rows = sqlx::query(SEARCH)
            .bind(query.replace('\0', " "))
            .bind(user_id.as_str())
            .bind(options.include_archived)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error(BACKEND, e))?;
        let more = rows.len() > options.limit;
        let mut items = Vec::with_capacity(rows.len().min(options.limit));
        for row in rows.iter().take(options.limit) {
            let conversation = record_at(row, 2)?;
            let message = message_at(row, 0, &conversation.id)?;
            let snippet: String = col(row, 1)?;
            items.push(SearchHit {
                conversation: conversation.summary(),
                message,
                snippet: Some(snippet),
            });
        }
        let next_cursor = search_next_cursor(offset, items.len(), more);
        Ok(Page { items, next_cursor })
    }
}

/// Begins the migration transaction, holding an advisory lock so that concurrent
/// migrators take turns.
async fn begin_migration(pool: &PgPool) -> Result<Transaction<'static, Db>> {
    let mut tx = pool.begin().await.map_err(|e| db_error(BACKEND, e))?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error(BACKEND, e))?;
    Ok(tx)
}

messages_backend!(PostgresMessages);
