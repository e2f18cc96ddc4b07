//! The SQL statements both databases run: plain SQL that SQLite and PostgreSQL both
//! accept (`$N` parameters, `ON CONFLICT`, row-value comparisons). What differs per
//! database is a [`Dialect`](crate::Dialect) item.

/// The columns of a conversation summary, in the order
/// `rows::raw_at` reads them (`tree`: the active path's length is the summary's
/// message count).
macro_rules! summary_columns {
    () => {
        "id, user_id, title, created_at, last_active, archived, message_count, file_count, \
         usage, tree"
    };
}

/// The columns of a full record: the summary's, then `metadata` and `version`.
macro_rules! record_columns {
    () => {
        concat!(
            $crate::statements::summary_columns!(),
            ", metadata, version"
        )
    };
}

/// The columns of a full record, qualified by the table alias `c`.
macro_rules! record_columns_c {
    () => {
        "c.id, c.user_id, c.title, c.created_at, c.last_active, c.archived, c.message_count, \
         c.file_count, c.usage, c.tree, c.metadata, c.version"
    };
}

#[cfg_attr(not(feature = "postgres"), allow(unused_imports))]
pub(crate) use record_columns;
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(unused_imports)
)]
pub(crate) use record_columns_c;
pub(crate) use summary_columns;

/// The live conversation's record (`$1`: the id); SQLite's locked read of it.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) const SELECT_LIVE: &str = concat!(
    "SELECT ",
    record_columns!(),
    " FROM chatvault_conversations WHERE id = $1 AND NOT deleting"
);
/// The live conversation's record columns, then the `body` of each of its attachments in
/// upload order: one row per attachment, or one with a NULL body when it has none; no row
/// when it does not exist (`$1`: the id). One statement, so one snapshot.
pub(crate) const SELECT_HEAD: &str = concat!(
    "SELECT ",
    record_columns_c!(),
    ", a.body FROM chatvault_conversations c \
     LEFT JOIN chatvault_attachments a ON a.conversation_id = c.id \
     WHERE c.id = $1 AND NOT c.deleting ORDER BY a.position, a.file_id"
);
/// The column of [`SELECT_HEAD`] that holds an attachment's `body`: the one after the 12
/// record columns.
pub(crate) const HEAD_FILE_COLUMN: usize = 12;
pub(crate) const SELECT_COUNT_LIVE: &str =
    "SELECT message_count FROM chatvault_conversations WHERE id = $1 AND NOT deleting";
pub(crate) const INSERT_CONVERSATION: &str = "INSERT INTO chatvault_conversations \
    (id, user_id, title, created_at, last_active, archived, metadata, message_count, \
     file_count, usage, version, tree, deleting) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, FALSE) \
    ON CONFLICT (id) DO NOTHING";
pub(crate) const UPDATE_COUNTERS: &str = "UPDATE chatvault_conversations SET title = $2, \
    last_active = $3, message_count = $4, file_count = $5, usage = $6, version = $7, \
    tree = $8 WHERE id = $1";
pub(crate) const UPDATE_PATCH: &str = "UPDATE chatvault_conversations SET title = $2, \
    archived = $3, metadata = $4, version = $5, tree = $6 WHERE id = $1";
pub(crate) const MARK_DELETING: &str =
    "UPDATE chatvault_conversations SET deleting = TRUE WHERE id = $1";
pub(crate) const DELETE_MESSAGES: &str =
    "DELETE FROM chatvault_messages WHERE conversation_id = $1";
pub(crate) const DELETE_ATTACHMENTS: &str =
    "DELETE FROM chatvault_attachments WHERE conversation_id = $1";
pub(crate) const DELETE_CONVERSATION: &str = "DELETE FROM chatvault_conversations WHERE id = $1";
pub(crate) const SELECT_MESSAGE_BY_ID: &str = "SELECT body FROM chatvault_messages \
    WHERE conversation_id = $1 AND message_id = $2";
/// One row when the live conversation exists: the body of its message with id `$2`, or
/// NULL when it holds none (`$1`: the conversation id). Two unique-index probes.
pub(crate) const SELECT_LIVE_MESSAGE: &str = "SELECT m.body FROM chatvault_conversations c \
    LEFT JOIN chatvault_messages m ON m.conversation_id = c.id AND m.message_id = $2 \
    WHERE c.id = $1 AND NOT c.deleting";
pub(crate) const SELECT_MESSAGES: &str = "SELECT body FROM chatvault_messages \
    WHERE conversation_id = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq";
/// The live conversation's message count and the bodies of its messages with `seq`
/// between `$2` and `$3`, in order: no row when it does not exist, one row with a NULL
/// body when it holds none of them.
pub(crate) const SELECT_RANGE_LIVE: &str = "SELECT c.message_count, m.body \
    FROM chatvault_conversations c LEFT JOIN chatvault_messages m \
    ON m.conversation_id = c.id AND m.seq BETWEEN $2 AND $3 \
    WHERE c.id = $1 AND NOT c.deleting ORDER BY m.seq";
pub(crate) const UPDATE_MESSAGE: &str = "UPDATE chatvault_messages SET role = $3, \
    revision = $4, updated_at = $5, text = $6, body = $7 \
    WHERE conversation_id = $1 AND message_id = $2";
pub(crate) const SELECT_FILES: &str = "SELECT body FROM chatvault_attachments \
    WHERE conversation_id = $1 ORDER BY position, file_id";
pub(crate) const SELECT_FILE: &str = "SELECT body FROM chatvault_attachments \
    WHERE conversation_id = $1 AND file_id = $2";
pub(crate) const INSERT_FILE: &str = "INSERT INTO chatvault_attachments \
    (conversation_id, file_id, position, filename, content_type, size, storage_key, \
     uploaded_at, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(crate) const DELETE_FILE: &str =
    "DELETE FROM chatvault_attachments WHERE conversation_id = $1 AND file_id = $2";
pub(crate) const SELECT_SCHEMA_VERSION: &str = "SELECT MAX(version) FROM chatvault_migrations";
pub(crate) const INSERT_MIGRATION: &str =
    "INSERT INTO chatvault_migrations (version, description) VALUES ($1, $2)";

/// A user's conversations, newest first (`$1` user, `$2` include archived, `$3` limit).
pub(crate) const LIST_USER: &str = concat!(
    "SELECT ",
    summary_columns!(),
    " FROM chatvault_conversations WHERE user_id = $1 AND NOT deleting \
     AND ($2 OR NOT archived) ORDER BY last_active DESC, id DESC LIMIT $3"
);
/// [`LIST_USER`] after a cursor (`$4` last_active, `$5` id).
pub(crate) const LIST_USER_AFTER: &str = concat!(
    "SELECT ",
    summary_columns!(),
    " FROM chatvault_conversations WHERE user_id = $1 AND NOT deleting \
     AND ($2 OR NOT archived) AND (last_active, id) < ($4, $5) \
     ORDER BY last_active DESC, id DESC LIMIT $3"
);
/// Every user's conversations, newest first (`$1` include archived, `$2` limit).
pub(crate) const LIST_ALL: &str = concat!(
    "SELECT ",
    summary_columns!(),
    " FROM chatvault_conversations WHERE NOT deleting \
     AND ($1 OR NOT archived) ORDER BY last_active DESC, id DESC LIMIT $2"
);
/// [`LIST_ALL`] after a cursor (`$3` last_active, `$4` id).
pub(crate) const LIST_ALL_AFTER: &str = concat!(
    "SELECT ",
    summary_columns!(),
    " FROM chatvault_conversations WHERE NOT deleting \
     AND ($1 OR NOT archived) AND (last_active, id) < ($3, $4) \
     ORDER BY last_active DESC, id DESC LIMIT $2"
);

/// Up to `$2` conversations of user `$1` marked by `begin_delete` (the user's listing
/// index, then the flag).
pub(crate) const LIST_DELETING_OF_USER: &str =
    "SELECT id FROM chatvault_conversations WHERE user_id = $1 AND deleting LIMIT $2";
/// Up to `$1` conversations marked by `begin_delete`, of every user (a scan of the
/// conversations table, not of the messages).
pub(crate) const LIST_DELETING: &str =
    "SELECT id FROM chatvault_conversations WHERE deleting LIMIT $1";
