//! [`SqliteMessages::repair_search_index`](crate::SqliteMessages::repair_search_index):
//! the one thing a SQLite store derives from its
//! rows, its full-text index, checked against the messages and rebuilt.

use chatvault_core::backend::Result;
use sqlx::SqlitePool;

use crate::common::db_error;

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

/// Checks the full-text index of `pool`'s database against its messages and, unless
/// `dry_run`, rebuilds it when it does not match: the contract of
/// [`SqliteMessages::repair_search_index`](crate::SqliteMessages::repair_search_index).
pub(crate) async fn repair_search_index(
    pool: &SqlitePool,
    dry_run: bool,
) -> Result<SearchIndexReport> {
    let consistent = search_index_matches(pool).await?;
    let rebuilt = !consistent && !dry_run;
    if rebuilt {
        let mut tx = pool
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
async fn search_index_matches(pool: &SqlitePool) -> Result<bool> {
    let checked = sqlx::query(
        "INSERT INTO chatvault_messages_fts (chatvault_messages_fts, rank) \
         VALUES ('integrity-check', 1)",
    )
    .execute(pool)
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
