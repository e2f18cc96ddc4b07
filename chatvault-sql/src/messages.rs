//! [`SqlMessages`]: the one backend over SQL, generic over the database's
//! [`Dialect`], and every inherent method it has: each a thin call into the module that
//! does the work (`migrate.rs`; `sqlite.rs`, `repair.rs` and `postgres.rs` per
//! database). Its [`MessagesBackend`](chatvault_core::MessagesBackend) impl is in
//! `backend.rs`, the statements in `statements.rs`.

use std::fmt;

use chatvault_core::backend::Result;
#[cfg(feature = "postgres")]
use sqlx::Postgres;
#[cfg(feature = "sqlite")]
use sqlx::Sqlite;
#[cfg(feature = "postgres")]
use sqlx::postgres::{PgConnectOptions, PgPool};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::{ColumnIndex, Decode, Encode, Executor, Pool, Type};

use crate::dialect::Dialect;
use crate::migrate;
#[cfg(feature = "postgres")]
use crate::postgres;
#[cfg(feature = "sqlite")]
use crate::repair::{self, SearchIndexReport};
#[cfg(feature = "sqlite")]
use crate::sqlite;

/// Conversations in a SQL database `D`: one row per conversation, one per message, one
/// per attachment, with a full-text index over message text. Use it through its aliases
/// [`SqliteMessages`](crate::SqliteMessages) and
/// [`PostgresMessages`](crate::PostgresMessages), which document their databases.
pub struct SqlMessages<D: Dialect> {
    pub(crate) pool: Pool<D>,
    /// What the database needs besides the pool (SQLite: the in-process writer turn).
    pub(crate) local: D::Local,
}

/// Conversations in a SQLite database: one row per conversation, one per message, one
/// per attachment, with an FTS5 index over message text.
///
/// Writers take SQLite's write lock at once (`BEGIN IMMEDIATE`) and wait up to 30 s
/// (`busy_timeout`) for another process's; within one process they queue on an async
/// mutex first, so they never spin on the busy handler. The database runs in WAL mode, so
/// readers never wait for writers. See the [`schema`](crate::schema) page for the tables.
#[cfg(feature = "sqlite")]
pub type SqliteMessages = SqlMessages<Sqlite>;

/// Conversations in a PostgreSQL database: one row per conversation, one per message
/// (with a `tsvector` column and a GIN index for search), one per attachment.
///
/// Every write is one transaction that first locks the conversation's row
/// (`SELECT ... FOR UPDATE`), so writers to one conversation take turns, from any number
/// of processes, and writers to different conversations run in parallel. See the
/// [`schema`](crate::schema) page for the tables.
#[cfg(feature = "postgres")]
pub type PostgresMessages = SqlMessages<Postgres>;

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

/// The methods that run statements need the database to encode and decode the column
/// types this crate uses (`TEXT`, `BIGINT`, `BOOLEAN`, timestamps), which both databases
/// do. Rust does not carry these bounds from the trait to its users, so those methods
/// (and the `MessagesBackend` impl) state them.
impl<D: Dialect> SqlMessages<D> {
    /// The connection pool this backend uses.
    pub fn pool(&self) -> &Pool<D> {
        &self.pool
    }

    /// The backend over `pool` and `local`, its schema brought up to date
    /// ([`migrate`](Self::migrate)).
    async fn open(pool: Pool<D>, local: D::Local) -> Result<Self>
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
        let backend = SqlMessages { pool, local };
        backend.migrate().await?;
        Ok(backend)
    }

    /// Creates the schema, or brings it up to date, recording each applied migration in
    /// the `chatvault_migrations` table. Safe to run concurrently from several processes
    /// (they serialize on a lock); a schema newer than this library is refused.
    pub async fn migrate(&self) -> Result<()>
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
        migrate::migrate(&self.pool).await
    }

    /// The schema version recorded in `chatvault_migrations` (0 before the first
    /// migration).
    pub async fn schema_version(&self) -> Result<i64>
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
        migrate::schema_version(&self.pool).await
    }
}

#[cfg(feature = "sqlite")]
impl SqlMessages<Sqlite> {
    /// Opens (creating it if missing) the database at `url` and brings its schema up to
    /// date.
    ///
    /// `url` is a sqlx SQLite URL: `sqlite://path/to/chat.db`, `sqlite:chat.db`, or
    /// `sqlite::memory:` (one connection, gone when the value is dropped). Connections use
    /// WAL journaling, `synchronous = FULL`, foreign keys, and a 30 s busy timeout.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(sqlite::connect_options(url)?).await
    }

    /// Like [`connect`](Self::connect), from connect options (the WAL, busy-timeout,
    /// foreign-key, incremental auto-vacuum and create-if-missing settings are applied on
    /// top of them).
    pub async fn connect_with(options: SqliteConnectOptions) -> Result<Self> {
        Self::from_pool(sqlite::open_pool(options).await?).await
    }

    /// Uses an existing pool, and brings the schema up to date ([`migrate`](Self::migrate)).
    ///
    /// The pool's connections should use WAL journaling and a busy timeout (as
    /// [`connect`](Self::connect) sets them), or concurrent writers in other processes
    /// fail fast with a temporary error instead of waiting their turn.
    pub async fn from_pool(pool: SqlitePool) -> Result<Self> {
        let local = sqlite::local_for(&pool).await?;
        Self::open(pool, local).await
    }

    /// Returns the database's free pages (left by deleted conversations) to the file
    /// system, and says how many bytes the database shrank by.
    ///
    /// Works on a database created by [`connect`](Self::connect) since 0.3 (incremental
    /// auto-vacuum); an older file answers 0 until a `VACUUM` (which rewrites the whole file
    /// and needs as much free disk again) switches it over. Waits for this process's other
    /// writers and takes SQLite's write lock while it runs.
    pub async fn reclaim_space(&self) -> Result<u64> {
        sqlite::reclaim_space(&self.pool, &self.local).await
    }

    /// Checks the full-text index (`chatvault_messages_fts`) against the messages table
    /// with FTS5's `integrity-check` (which compares it with its content table) and,
    /// unless `dry_run`, rebuilds it from the messages when it does not match (FTS5's
    /// `rebuild`, in one write transaction). Messages are never changed: the index is
    /// derived from them, and it is all a SQLite store derives (the other indexes are
    /// SQLite's own).
    ///
    /// Reads every message's text and the whole index: for maintenance, not for a hot
    /// path.
    pub async fn repair_search_index(&self, dry_run: bool) -> Result<SearchIndexReport> {
        repair::repair_search_index(&self.pool, dry_run).await
    }
}

#[cfg(feature = "postgres")]
impl SqlMessages<Postgres> {
    /// Connects to `url` (`postgres://user:password@host:port/database`) with a pool of
    /// up to 10 connections, and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(postgres::connect_options(url)?).await
    }

    /// Like [`connect`](Self::connect), from connect options.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self> {
        Self::from_pool(postgres::open_pool(options).await?).await
    }

    /// Uses an existing pool, and brings the schema up to date ([`migrate`](Self::migrate)).
    pub async fn from_pool(pool: PgPool) -> Result<Self> {
        Self::open(pool, ()).await
    }
}
