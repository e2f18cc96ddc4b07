//! Values and errors both databases map the same way: value conversions, error mapping,
//! paging and search cursors.

use std::borrow::Borrow;

use chatvault_core::backend::{
    BoxError, ConversationId, ConversationRecord, ConversationSummary, Error, Message, Result,
    SearchQuery, Tree, UserId,
};
use chrono::{DateTime, Utc};
use sqlx::Transaction;

use crate::dialect::Dialect;

/// The most messages one `messages()` call returns for a range without a limit (or with a
/// larger one): a page of this size, with `next_cursor` set to continue.
pub(crate) const MESSAGE_PAGE: u64 = 500;

/// A conversation row as the databases return it, before its values are checked.
#[derive(Debug)]
pub(crate) struct RawRecord {
    pub(crate) id: String,
    pub(crate) user_id: Option<String>,
    pub(crate) title: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) last_active: DateTime<Utc>,
    pub(crate) archived: bool,
    pub(crate) message_count: i64,
    pub(crate) file_count: i64,
    pub(crate) usage: String,
    /// The branch table's JSON; `None` (SQL NULL) while the conversation is one line.
    pub(crate) tree: Option<String>,
    /// `None` when only the summary columns were read.
    pub(crate) metadata: Option<String>,
    pub(crate) version: i64,
}

impl RawRecord {
    /// The summary this row holds; [`Error::Corrupt`] when a stored value is not valid.
    pub(crate) fn into_summary(self, backend: &'static str) -> Result<ConversationSummary> {
        Ok(self.into_record(backend)?.summary())
    }

    /// The record this row holds; [`Error::Corrupt`] when a stored value is not valid.
    pub(crate) fn into_record(self, backend: &'static str) -> Result<ConversationRecord> {
        let location = format!("conversation {:?}", self.id);
        let corrupt = |e: Error| Error::corrupt(backend, location.clone(), e.to_string());
        let id = ConversationId::parse(&self.id).map_err(corrupt)?;
        let user_id = self
            .user_id
            .as_deref()
            .map(UserId::parse)
            .transpose()
            .map_err(corrupt)?;
        let mut record = ConversationRecord::with_id(id, user_id, self.created_at);
        record.title = self.title;
        record.last_active = self.last_active;
        record.archived = self.archived;
        if let Some(json) = &self.metadata {
            record.metadata = parse_json(backend, &location, json)?;
        }
        record.message_count = to_u64(backend, &location, self.message_count)?;
        record.file_count = to_u64(backend, &location, self.file_count)?;
        record.usage = parse_json(backend, &location, &self.usage)?;
        record.version = to_u64(backend, &location, self.version)?;
        if let Some(json) = &self.tree {
            record.tree = parse_json::<Option<Tree>>(backend, &location, json)?;
        }
        Ok(record)
    }
}

/// A count or revision as the databases store it (`BIGINT`).
pub(crate) fn to_i64(what: &'static str, value: u64) -> Result<i64> {
    i64::try_from(value)
        .map_err(|_| Error::invalid_input(what, format!("{value} exceeds the largest BIGINT")))
}

/// A stored `BIGINT` that must not be negative.
pub(crate) fn to_u64(backend: &'static str, location: &str, value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| {
        Error::corrupt(
            backend,
            location.to_owned(),
            format!("negative count {value}"),
        )
    })
}

/// The `tree` column of a record: its branch table's JSON, or NULL while it has none.
pub(crate) fn tree_column(
    backend: &'static str,
    record: &ConversationRecord,
) -> Result<Option<String>> {
    record
        .tree
        .as_ref()
        .map(|t| to_json(backend, t))
        .transpose()
}

/// The JSON text stored for a value (serde_json's own output, so numbers round-trip).
pub(crate) fn to_json<T: serde::Serialize>(backend: &'static str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::backend(backend, e))
}

/// Parses stored JSON; [`Error::Corrupt`] when it does not parse.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    backend: &'static str,
    location: &str,
    json: &str,
) -> Result<T> {
    serde_json::from_str(json)
        .map_err(|e| Error::corrupt(backend, location.to_owned(), format!("bad JSON: {e}")))
}

/// Parses a stored message (its `body` column).
pub(crate) fn parse_message(backend: &'static str, location: &str, json: &str) -> Result<Message> {
    parse_json(backend, location, json)
}

/// The text a message is searched by: its text view, with NUL characters (which
/// PostgreSQL's `TEXT` cannot hold) turned into spaces.
pub(crate) fn search_text(message: &Message) -> String {
    let text = message.content();
    if text.contains('\0') {
        text.replace('\0', " ")
    } else {
        text
    }
}

/// The role as stored in the informational `role` column.
pub(crate) fn role_column(message: &Message) -> String {
    message.role.as_str().replace('\0', " ")
}

/// The words of a search query, as FTS5 phrases that must all appear: every word
/// ([`SearchQuery::terms`]) is an FTS5 string literal (in double quotes, its own double
/// quotes doubled), so that no character of the query is FTS5 syntax, and the phrases are
/// joined by spaces (FTS5's implicit AND). The query's rule keeps NUL out, which would end
/// FTS5's parse of a literal early ("unterminated string").
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn fts5_query(query: &SearchQuery) -> String {
    let phrases: Vec<String> = query
        .terms()
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect();
    phrases.join(" ")
}

/// Maps a driver error met while reading, or while writing inside a transaction that is
/// not yet committed (so nothing was written).
pub(crate) fn db_error(backend: &'static str, err: sqlx::Error) -> Error {
    if is_temporary(&err) {
        Error::temporary(backend, err)
    } else if let sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) = err {
        Error::corrupt(backend, "a stored row", err.to_string())
    } else {
        Error::backend(backend, err)
    }
}

/// Maps a driver error met while committing `operation` (the error itself, or a value
/// that stands for it, such as one shared by the operations of a transaction): the
/// database's own refusal is a definite failure (nothing written; temporary when retrying
/// may cure it), a lost connection leaves the outcome unknown.
pub(crate) fn commit_error<E>(backend: &'static str, operation: &'static str, err: E) -> Error
where
    E: Borrow<sqlx::Error> + Into<BoxError>,
{
    let cause: &sqlx::Error = err.borrow();
    let refused = matches!(
        cause,
        sqlx::Error::Database(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
    );
    if !refused {
        Error::outcome_unknown(backend, operation, err)
    } else if is_temporary(cause) {
        Error::temporary(backend, err)
    } else {
        Error::backend(backend, err)
    }
}

/// Maps a driver error of dialect `D` met while reading, or while writing inside a
/// transaction that is not yet committed (so nothing was written): [`db_error`].
pub(crate) fn read_error<D: Dialect>(err: sqlx::Error) -> Error {
    db_error(D::BACKEND, err)
}

/// Commits a transaction of `operation` (see [`commit_error`] for what a failure means).
pub(crate) async fn commit<D: Dialect>(
    tx: Transaction<'static, D>,
    operation: &'static str,
) -> Result<()> {
    tx.commit()
        .await
        .map_err(|e| commit_error(D::BACKEND, operation, e))
}

/// Whether retrying may cure the error: a busy or locked database, a serialization
/// failure or deadlock, a pool or connection timeout.
fn is_temporary(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => matches!(
            db.code().as_deref(),
            // SQLite: BUSY, LOCKED, BUSY_RECOVERY, BUSY_SNAPSHOT, BUSY_TIMEOUT
            Some(
                "5" | "6" | "261" | "517" | "773"
            // PostgreSQL: serialization_failure, deadlock_detected, lock_not_available,
            // admin_shutdown, cannot_connect_now
            | "40001" | "40P01" | "55P03" | "57P01" | "57P03"
            )
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts5_queries_quote_every_word() {
        let fts = |q: &str| fts5_query(&SearchQuery::parse(q).expect("a valid query"));
        assert_eq!(fts("hello\tworld "), "\"hello\" \"world\"");
        assert_eq!(
            fts("say \"hi\" OR NEAR(x) *"),
            "\"say\" \"\"\"hi\"\"\" \"OR\" \"NEAR(x)\" \"*\""
        );
    }

    #[test]
    fn lost_commit_answers_are_outcome_unknown() {
        use chatvault_core::backend::ErrorKind;
        let io = || sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(
            commit_error("b", "append", io()).kind(),
            ErrorKind::OutcomeUnknown
        );
        // Before the commit, nothing was written: a temporary failure, safe to retry.
        let before = db_error("b", io());
        assert_eq!(before.kind(), ErrorKind::Backend);
        assert!(before.is_temporary());
        let timeout = commit_error("b", "append", sqlx::Error::PoolTimedOut);
        assert!(timeout.is_temporary(), "{timeout}");
        let other = db_error("b", sqlx::Error::RowNotFound);
        assert!(!other.is_temporary());
    }

    #[test]
    fn counts_must_fit() {
        assert!(to_i64("version", u64::MAX).is_err());
        assert_eq!(to_i64("version", 7).unwrap(), 7);
        assert!(to_u64("b", "x", -1).is_err());
    }
}
