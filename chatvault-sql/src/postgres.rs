//! [`PostgresMessages`]: conversations in PostgreSQL: [`SqlMessages`] over
//! [`Postgres`]'s [`Dialect`], and the work behind its constructors (the URL, the
//! pool), which are thin calls in `messages.rs`.

use std::str::FromStr;

use chatvault_core::backend::{
    ConversationId, Error, Message, MessagesCapabilities, NewMessage, Result, SearchQuery,
};
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgQueryResult};
use sqlx::{Postgres, Transaction};

use crate::common::{commit, read_error};
use crate::common::{db_error, parse_message, role_column, search_text, to_i64, to_json};
use crate::dialect::{Dialect, Migration, Sealed};
use crate::rows::col;
use crate::statements::{record_columns, record_columns_c};

/// A fixed key for `pg_advisory_xact_lock`, so that concurrent migrators take turns
/// ("chatvault" in ASCII, truncated to 63 bits).
const MIGRATION_LOCK_KEY: i64 = 0x6368_6174_7661_756c;

/// How much of a message's text the search index covers: PostgreSQL refuses a
/// `tsvector` over 1 MB, which a message near the 8 MiB limit could otherwise reach.
pub const SEARCH_INDEXED_CHARS: usize = 100_000;

/// Version 1 of the PostgreSQL schema (also printed in the crate docs).
const SCHEMA_V1: &str = include_str!("sql/postgres_v1.sql");

/// Version 2: the conversations' branch tables.
const SCHEMA_V2: &str = include_str!("sql/postgres_v2.sql");

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

/// One unique-index probe per wanted id (a plain `message_id = ANY($2)` lets the planner
/// scan the whole conversation when it is large).
const SELECT_MESSAGES_BY_IDS: &str = "SELECT (SELECT m.body FROM chatvault_messages m \
    WHERE m.conversation_id = $1 AND m.message_id = wanted.id) \
    FROM UNNEST($2::TEXT[]) WITH ORDINALITY AS wanted(id, n) ORDER BY wanted.n";
const INSERT_MESSAGES: &str = "INSERT INTO chatvault_messages \
    (conversation_id, seq, message_id, role, revision, created_at, updated_at, text, body) \
    SELECT $1, * FROM UNNEST($2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], \
    $6::TIMESTAMPTZ[], $7::TIMESTAMPTZ[], $8::TEXT[], $9::TEXT[])";

/// The connect options of the PostgreSQL URL `url`
/// (`postgres://user:password@host:port/database`); [`Error::InvalidInput`] when it is
/// not one.
pub(crate) fn connect_options(url: &str) -> Result<PgConnectOptions> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(Error::invalid_input(
            "url",
            format!("a PostgreSQL URL starts with \"postgres://\", got {url:?}"),
        ));
    }
    PgConnectOptions::from_str(url)
        .map_err(|e| Error::invalid_input("url", format!("not a PostgreSQL URL: {e}")))
}

/// A pool of up to 10 connections on `options`.
pub(crate) async fn open_pool(options: PgConnectOptions) -> Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(10)
        .connect_with(options)
        .await
        .map_err(|e| db_error(Postgres::BACKEND, e))
}

impl Sealed for Postgres {}

impl Dialect for Postgres {
    const BACKEND: &'static str = "postgres";

    /// `TIMESTAMPTZ` (microsecond precision).
    type Ts = DateTime<Utc>;

    fn enc_ts(t: DateTime<Utc>) -> DateTime<Utc> {
        t
    }

    fn dec_ts(t: DateTime<Utc>) -> Result<DateTime<Utc>> {
        Ok(t)
    }

    /// PostgreSQL needs nothing besides the pool.
    type Local = ();
    type Write = Transaction<'static, Postgres>;

    /// The conversation row, locked until the transaction ends: writers to one
    /// conversation take turns, writers to different conversations do not wait for each
    /// other.
    const SELECT_LIVE_LOCKED: &'static str = concat!(
        "SELECT ",
        record_columns!(),
        " FROM chatvault_conversations WHERE id = $1 AND NOT deleting FOR UPDATE"
    );
    const SELECT_ANY_LOCKED: &'static str =
        "SELECT 1 FROM chatvault_conversations WHERE id = $1 FOR UPDATE";
    const SEARCH: &'static str = SEARCH;

    const MIGRATIONS_TABLE_SQL: &'static str = "CREATE TABLE IF NOT EXISTS chatvault_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)";

    const MIGRATIONS: &'static [Migration] = &[
        Migration {
            version: 1,
            description: "conversations, messages with tsvector search, attachments",
            sql: SCHEMA_V1,
        },
        Migration {
            version: 2,
            description: "conversation branch tables",
            sql: SCHEMA_V2,
        },
    ];

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }

    fn capabilities(_local: &()) -> MessagesCapabilities {
        MessagesCapabilities::full()
    }

    /// The query itself: it is bound as a parameter of `plainto_tsquery`, which reads it
    /// as plain words (the query's rule refuses NUL, which PostgreSQL's `TEXT` cannot
    /// hold).
    fn match_expression(query: &SearchQuery) -> String {
        query.as_str().to_owned()
    }

    /// A transaction of its own (the conversation row is locked by the statements that
    /// read it).
    async fn begin_write(pool: &PgPool, _local: &()) -> Result<Transaction<'static, Postgres>> {
        pool.begin().await.map_err(read_error::<Postgres>)
    }

    async fn commit(tx: Transaction<'static, Postgres>, operation: &'static str) -> Result<()> {
        commit(tx, operation).await
    }

    /// Ends a transaction that wrote nothing. The answer is known already, so a failure
    /// here (a connection lost at this moment, which ends the transaction anyway) is only
    /// logged.
    async fn rollback(tx: Transaction<'static, Postgres>) {
        if let Err(e) = tx.rollback().await {
            tracing::debug!(backend = Self::BACKEND, error = %e, "rollback of a read-only transaction failed");
        }
    }

    /// Nothing: the old row version is a dead tuple until (auto)vacuum reclaims it, which
    /// cannot run inside the caller's work (see `docs/forgetting.md` in chatvault-core).
    async fn scrub_after_redaction(_pool: &PgPool, _local: &()) -> Result<()> {
        Ok(())
    }

    /// Holds an advisory lock, so that concurrent migrators take turns.
    async fn begin_migration(pool: &PgPool) -> Result<Transaction<'static, Postgres>> {
        let mut tx = pool.begin().await.map_err(read_error::<Postgres>)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&mut *tx)
            .await
            .map_err(read_error::<Postgres>)?;
        Ok(tx)
    }

    /// One query for all of them.
    async fn stored_messages(
        conn: &mut PgConnection,
        id: &ConversationId,
        messages: &[NewMessage],
    ) -> Result<Vec<Option<Message>>> {
        let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
        let rows = sqlx::query(SELECT_MESSAGES_BY_IDS)
            .bind(id.as_str())
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await
            .map_err(read_error::<Postgres>)?;
        rows.iter()
            .map(|row| {
                col::<Postgres, Option<String>>(row, 0)?
                    .map(|body| {
                        parse_message(
                            Self::BACKEND,
                            &format!("a message of conversation {id}"),
                            &body,
                        )
                    })
                    .transpose()
            })
            .collect()
    }

    /// One statement, columns as arrays.
    async fn insert_messages(
        conn: &mut PgConnection,
        id: &ConversationId,
        messages: &[Message],
    ) -> Result<()> {
        let n = messages.len();
        let (mut seq, mut mid, mut role, mut revision) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut created, mut updated, mut text, mut body) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for m in messages {
            seq.push(to_i64("seq", m.seq)?);
            mid.push(m.id.as_str());
            role.push(role_column(m));
            revision.push(to_i64("revision", m.revision)?);
            created.push(m.created_at);
            updated.push(m.updated_at);
            text.push(search_text(m));
            body.push(to_json(Self::BACKEND, m)?);
        }
        sqlx::query(INSERT_MESSAGES)
            .bind(id.as_str())
            .bind(seq)
            .bind(mid)
            .bind(role)
            .bind(revision)
            .bind(created)
            .bind(updated)
            .bind(text)
            .bind(body)
            .execute(&mut *conn)
            .await
            .map_err(read_error::<Postgres>)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_indexed_prefix_is_the_documented_one() {
        let prefix = format!("left(text, {SEARCH_INDEXED_CHARS})");
        assert!(SCHEMA_V1.contains(&prefix), "schema indexes {prefix}");
        let prefix = format!("left(m.text, {SEARCH_INDEXED_CHARS})");
        assert!(SEARCH.contains(&prefix), "search headlines {prefix}");
    }
}
