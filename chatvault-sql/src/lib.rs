#![doc = include_str!("../README.md")]
//!
#![doc = include_str!("../docs/how-it-works.md")]
#![doc = include_str!("../docs/migrations.md")]
//! # Capabilities
//!
//! Both declare [`MessagesCapabilities::full`](chatvault_core::backend::MessagesCapabilities::full):
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
mod migrate;
#[cfg(feature = "postgres")]
mod postgres;
mod ranges;
#[cfg(feature = "sqlite")]
mod repair;
mod rows;
mod search;
#[cfg(feature = "sqlite")]
mod sqlite;
mod statements;
mod steps;

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use messages::PostgresMessages;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use messages::SqliteMessages;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::SEARCH_INDEXED_CHARS;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use repair::SearchIndexReport;

pub use dialect::Dialect;
pub use messages::SqlMessages;

/// The database schema, for DBAs: what the migrations create (version 1, then version 2
/// adds the conversations' branch tables).
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
/// ```sql
#[doc = include_str!("sql/sqlite_v2.sql")]
/// ```
///
/// # PostgreSQL
///
/// ```sql
#[doc = include_str!("sql/postgres_v1.sql")]
/// ```
///
/// ```sql
#[doc = include_str!("sql/postgres_v2.sql")]
/// ```
pub mod schema {}
