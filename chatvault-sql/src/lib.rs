#![doc = include_str!("../README.md")]
//!
//! # How it works
//!
//! - **Appends** are one transaction: lock the conversation row (PostgreSQL:
//!   `SELECT ... FOR UPDATE`; SQLite: `BEGIN IMMEDIATE`, which holds the database's write
//!   lock), look up each new message's id (the unique `(conversation_id, message_id)`
//!   index makes a retried append return the stored messages and write nothing, per
//!   [`check_replay`](chatvault_core::check_replay)), insert the messages with the next
//!   `seq` values (unique `(conversation_id, seq)`), update the conversation row, commit.
//!   The cost does not depend on the conversation's length: nothing reads the whole
//!   conversation on any path.
//! - **Message updates** compare the stored `revision` inside the same locked transaction
//!   and write the message and the record together.
//! - **Deletes**: `begin_delete` sets the row's `deleting` flag (from then on the
//!   conversation reads as gone and takes no writes); `delete` removes its rows.
//! - **Listings** walk the index `(user_id, last_active DESC, id DESC)` (or
//!   `(last_active DESC, id DESC)` for all users) from the cursor's position: a page costs
//!   the same wherever it is.
//! - **`messages()`** reads a `seq` range through the `(conversation_id, seq)` index; a range
//!   without a limit returns at most 500 messages and a `next_cursor`.
//! - **Search**: SQLite uses an FTS5 table (`unicode61` tokenizer, diacritics removed:
//!   `creme` finds `crème`) kept in step by triggers; PostgreSQL a generated `tsvector`
//!   column (`simple` configuration: no stemming, case folded, accents kept) with a GIN
//!   index, over the first 100,000 characters of each message ([`SEARCH_INDEXED_CHARS`]:
//!   PostgreSQL refuses larger `tsvector`s). Every word of the query must appear (query
//!   syntax characters are taken literally). Hits are ranked (`bm25` / `ts_rank`), scoped
//!   to the user, leave out archived conversations unless asked, and come in pages whose
//!   cursor is an offset (a write between two pages may shift hits by one). A rare word is
//!   found in about a millisecond; a word in many of the user's messages costs a ranking of
//!   all of them (about 130 ms for 100,000 matches).
//! - **JSON** (message bodies, metadata, usage, attachment records) is stored as `TEXT`
//!   exactly as serde_json wrote it, so every number reads back unchanged. Not `JSONB`:
//!   PostgreSQL's `JSONB` rewrites `-0.0` as `0.0` and `1e2` as `100` (an integer when read
//!   back) and refuses `\u0000`. Cast in SQL when you want to query it: `body::jsonb`.
//! - **Timestamps** are `TIMESTAMPTZ` on PostgreSQL and `INTEGER` microseconds since the
//!   Unix epoch (UTC) on SQLite: microsecond precision, the precision
//!   [`chatvault_core::now`] gives. (A message's own timestamps are also kept exactly in
//!   its JSON body.)
//!
//! # Schema and migrations
//!
//! The tables are all prefixed `chatvault_`; the [`schema`] page lists them for DBAs.
//! `connect` and `from_pool` create the schema or bring it up to date, recording every
//! applied migration in the crate's own table `chatvault_migrations` (never the app's
//! `_sqlx_migrations`); `migrate()` does it on demand. Concurrent migrators take turns
//! (an advisory lock on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), and a database whose
//! schema is newer than the library is refused rather than misread.
//!
//! # Capabilities
//!
//! Both declare [`MessagesCapabilities::full`](chatvault_core::MessagesCapabilities::full):
//! concurrent and multi-process appends, listing all users, search, no size limit below
//! the core's 8 MiB per message. An in-memory SQLite database (`sqlite::memory:`) is
//! single-process.

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without a database feature there is nothing to instantiate the shared code for.
#![cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(unused))]

mod backend;
mod common;
mod dialect;
mod messages;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
mod statements;

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::{PostgresMessages, SEARCH_INDEXED_CHARS};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteMessages;

pub use dialect::Dialect;
pub use messages::SqlMessages;

/// The database schema, for DBAs: what the migrations create (version 1).
///
/// Every table is prefixed `chatvault_`. Applied migrations are recorded in
/// `chatvault_migrations (version, description, applied_at)`. The `body` columns hold
/// the authoritative JSON of a message or attachment record; the other columns of those
/// rows are kept for indexes, search and people reading the tables.
///
/// # SQLite
///
/// ```sql
#[doc = include_str!("sql/sqlite_v1.sql")]
/// ```
///
/// # PostgreSQL
///
/// ```sql
#[doc = include_str!("sql/postgres_v1.sql")]
/// ```
pub mod schema {}
