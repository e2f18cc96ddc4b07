//! [`Dialect`]: what differs between the databases [`SqlMessages`](crate::SqlMessages)
//! runs on. The implementations are in `sqlite.rs` and `postgres.rs`; everything else
//! (the statements in `statements.rs`, the operations in `backend.rs` and the modules it
//! calls: `ranges.rs`, `search.rs`, `steps.rs`, `rows.rs`, `migrate.rs`) is written once.

use std::fmt::Debug;
use std::future::Future;
use std::ops::DerefMut;

use chatvault_core::backend::{
    ConversationId, Message, MessagesCapabilities, NewMessage, Result, SearchQuery,
};
use chrono::{DateTime, Utc};
use sqlx::{Database, Decode, Encode, IntoArguments, Pool, Transaction, Type};

mod sealed {
    /// Keeps [`Dialect`](super::Dialect) implemented by this crate only.
    pub trait Sealed {}
}
pub(crate) use sealed::Sealed;

/// A database that [`SqlMessages`](crate::SqlMessages) runs on: [`sqlx::Sqlite`] (feature
/// `sqlite`) and [`sqlx::Postgres`] (feature `postgres`). Sealed: its items are the
/// per-database SQL, transactions and value mapping that the one implementation calls, and
/// are not part of the public API.
pub trait Dialect: Database<Arguments: IntoArguments<Self>> + Sealed {
    /// The backend's name in errors and logs.
    #[doc(hidden)]
    const BACKEND: &'static str;

    /// How a timestamp column is stored (bound and decoded).
    #[doc(hidden)]
    type Ts: for<'q> Encode<'q, Self> + for<'r> Decode<'r, Self> + Type<Self> + Send + Sync;

    /// A timestamp as its column stores it.
    #[doc(hidden)]
    fn enc_ts(t: DateTime<Utc>) -> Self::Ts;

    /// A timestamp column's value; [`Error::Corrupt`](chatvault_core::Error::Corrupt)
    /// when it is out of range.
    #[doc(hidden)]
    fn dec_ts(t: Self::Ts) -> Result<DateTime<Utc>>;

    /// What a backend value holds besides its pool (SQLite: the in-process writer turn).
    #[doc(hidden)]
    type Local: Clone + Debug + Send + Sync + 'static;

    /// One write operation's transaction (SQLite: its savepoint in a transaction shared
    /// with this process's concurrent writers); its statements run on the connection it
    /// derefs to.
    #[doc(hidden)]
    type Write: Send + DerefMut<Target = Self::Connection>;

    /// The live conversation's record columns, locked against other writers until the
    /// transaction ends (`$1`: the id).
    #[doc(hidden)]
    const SELECT_LIVE_LOCKED: &'static str;

    /// `1` when the conversation row exists, deleting or not, locked like
    /// [`SELECT_LIVE_LOCKED`](Self::SELECT_LIVE_LOCKED).
    #[doc(hidden)]
    const SELECT_ANY_LOCKED: &'static str;

    /// A page of search hits: message body, snippet, then the record columns of the
    /// conversation (`$1` match expression, `$2` user, `$3` include archived, `$4` limit,
    /// `$5` offset).
    #[doc(hidden)]
    const SEARCH: &'static str;

    /// Creates `chatvault_migrations` when missing.
    #[doc(hidden)]
    const MIGRATIONS_TABLE_SQL: &'static str;

    /// The schema, one migration per version. Never edit a released migration: add one.
    #[doc(hidden)]
    const MIGRATIONS: &'static [Migration];

    /// The rows one statement wrote.
    #[doc(hidden)]
    fn rows_affected(done: &Self::QueryResult) -> u64;

    /// What a backend value over this database declares.
    #[doc(hidden)]
    fn capabilities(local: &Self::Local) -> MessagesCapabilities;

    /// The match expression [`SEARCH`](Self::SEARCH) takes for `query`.
    #[doc(hidden)]
    fn match_expression(query: &SearchQuery) -> String;

    /// A write operation in which the conversation row can be locked.
    #[doc(hidden)]
    fn begin_write(
        pool: &Pool<Self>,
        local: &Self::Local,
    ) -> impl Future<Output = Result<Self::Write>> + Send;

    /// Keeps what `operation` wrote: answers once it is committed (see
    /// [`commit_error`](crate::common::commit_error) for what a failure means).
    #[doc(hidden)]
    fn commit(
        write: Self::Write,
        operation: &'static str,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Undoes what the operation wrote. The answer is known already, so a failure here
    /// (a connection lost at this moment, which ends the transaction anyway) is only
    /// logged.
    #[doc(hidden)]
    fn rollback(write: Self::Write) -> impl Future<Output = ()> + Send;

    /// After a redaction committed (an update carrying
    /// [`REDACTION_KEY`](chatvault_core::REDACTION_KEY)): drops what the store still keeps
    /// of the message's old version where it can (old search terms, freed pages).
    #[doc(hidden)]
    fn scrub_after_redaction(
        pool: &Pool<Self>,
        local: &Self::Local,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The migration transaction, in which concurrent migrators take turns.
    #[doc(hidden)]
    fn begin_migration(
        pool: &Pool<Self>,
    ) -> impl Future<Output = Result<Transaction<'static, Self>>> + Send;

    /// The messages already stored under the ids of `messages`, in their order (for
    /// [`check_replay`](chatvault_core::backend::check_replay)).
    #[doc(hidden)]
    fn stored_messages(
        conn: &mut Self::Connection,
        id: &ConversationId,
        messages: &[NewMessage],
    ) -> impl Future<Output = Result<Vec<Option<Message>>>> + Send;

    /// Inserts appended messages.
    #[doc(hidden)]
    fn insert_messages(
        conn: &mut Self::Connection,
        id: &ConversationId,
        messages: &[Message],
    ) -> impl Future<Output = Result<()>> + Send;
}

/// One schema migration: its version, a description, and the SQL (several statements).
#[derive(Debug)]
pub struct Migration {
    pub(crate) version: i64,
    pub(crate) description: &'static str,
    pub(crate) sql: &'static str,
}
