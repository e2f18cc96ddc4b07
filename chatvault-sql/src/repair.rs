//! [`SqliteMessages::repair_search_index`]: the one thing a SQLite store derives from its
//! rows, its full-text index, checked against the messages and rebuilt.

use chatvault_core::backend::Result;
use sqlx::Sqlite;

use crate::common::db_error;
use crate::messages::SqlMessages;

/// The backend name in errors.
const BACKEND: &str = "sqlite";

/// What [`SqliteMessages::repair_search_index`](crate::SqliteMessages::repair_search_index)
/// found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SearchIndexReport {
    /// Whether the full-text index held exactly the messages' text when checked.
    pub consistent: bool,
    /// Whether it was rebuilt from the messages (only when it did not match, and not in
    /// a dry run).
    pub rebuilt: bool,
}

impl SqlMessages<Sqlite> {
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
        let consistent = self.search_index_matches().await?;
        let rebuilt = !consistent && !dry_run;
        if rebuilt {
            let mut tx = self
                .pool()
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(|e| db_error(BACKEND, e))?;
            sqlx::query(
                "INSERT INTO chatvault_messages_fts (chatvault_messages_fts) VALUES ('rebuild')",
            )
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error(BACKEND, e))?;
            tx.commit().await.map_err(|e| db_error(BACKEND, e))?;
        }
        Ok(SearchIndexReport {
            consistent,
            rebuilt,
        })
    }

    /// Whether FTS5's `integrity-check`, against the content table (`rank` 1), passes: a
    /// mismatch is SQLite's "corrupt" answer (`SQLITE_CORRUPT_VTAB`); any other error is
    /// returned.
    async fn search_index_matches(&self) -> Result<bool> {
        let checked = sqlx::query(
            "INSERT INTO chatvault_messages_fts (chatvault_messages_fts, rank) \
             VALUES ('integrity-check', 1)",
        )
        .execute(self.pool())
        .await;
        match checked {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(e))
                if e.code()
                    .and_then(|c| c.parse::<u32>().ok())
                    .is_some_and(|c| c & 0xff == 11) =>
            {
                Ok(false)
            }
            Err(e) => Err(db_error(BACKEND, e)),
        }
    }
}
