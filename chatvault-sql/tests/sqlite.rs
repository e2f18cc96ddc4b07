//! The backend checks, migrations, corruption handling and multi-process appends on
//! SQLite.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::sync::Arc;

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ConversationRecord, ErrorKind, MessageRange, MessagesBackend, NewMessage, Role,
};
use chatvault_sql::SqliteMessages;
use common::{Backend, v1};
use tempfile::TempDir;

async fn setup() -> (Backend, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("chat.db").display());
    let backend = SqliteMessages::connect(&url).await.unwrap();
    (Arc::new(backend), dir)
}

all_checks!(setup);

async fn open(dir: &TempDir) -> SqliteMessages {
    let url = format!("sqlite://{}", dir.path().join("chat.db").display());
    SqliteMessages::connect(&url).await.unwrap()
}

#[tokio::test]
async fn fts5_is_compiled_in() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(&dir).await;
    let on: i64 = sqlx::query_scalar("SELECT sqlite_compileoption_used('ENABLE_FTS5')")
        .fetch_one(b.pool())
        .await
        .unwrap();
    assert_eq!(on, 1);
}

#[tokio::test]
async fn migrations_are_recorded_in_the_crates_own_table() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(&dir).await;
    assert_eq!(b.schema_version().await.unwrap(), 2);
    // Reopening (and migrating again) changes nothing.
    b.migrate().await.unwrap();
    let again = open(&dir).await;
    assert_eq!(again.schema_version().await.unwrap(), 2);
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chatvault_migrations")
        .fetch_one(b.pool())
        .await
        .unwrap();
    assert_eq!(rows, 2);
    let sqlx_table: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = '_sqlx_migrations'")
            .fetch_one(b.pool())
            .await
            .unwrap();
    assert_eq!(sqlx_table, 0, "never the host app's sqlx migrations table");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(b.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    // A schema from a newer release is refused, not misread.
    sqlx::query("INSERT INTO chatvault_migrations (version, description) VALUES (99, 'future')")
        .execute(b.pool())
        .await
        .unwrap();
    let err = b.migrate().await.unwrap_err();
    assert!(err.to_string().contains("version 99"), "{err}");
}

/// A database written by schema version 1 (before branches) opens, migrates to version 2
/// and reads as one branch; see `common::v1`.
#[tokio::test]
async fn a_v1_database_migrates_and_reads_as_one_branch() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("chat.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE chatvault_migrations (version INTEGER PRIMARY KEY NOT NULL, \
         description TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT '2026-01-02')",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::raw_sql(include_str!("../src/sql/sqlite_v1.sql"))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO chatvault_migrations (version, description) VALUES (1, 'v1')")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(v1::INSERT_CONVERSATION)
        .bind(v1::CONVERSATION)
        .bind(v1::USER)
        .bind(v1::AT_MICROS)
        .bind(v1::AT_MICROS)
        .execute(&pool)
        .await
        .unwrap();
    for (seq, id, role, text, body) in v1::MESSAGES {
        sqlx::query(v1::INSERT_MESSAGE)
            .bind(v1::CONVERSATION)
            .bind(seq)
            .bind(id)
            .bind(role)
            .bind(v1::AT_MICROS)
            .bind(text)
            .bind(body)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    let b = open(&dir).await;
    assert_eq!(b.schema_version().await.unwrap(), 2);
    v1::check_reads_as_one_branch(Arc::new(b)).await;
    // The edit's run, and the leaf back on the v1 line after the switch.
    let tree: Option<String> =
        sqlx::query_scalar("SELECT tree FROM chatvault_conversations WHERE id = $1")
            .bind(v1::CONVERSATION)
            .fetch_one(open(&dir).await.pool())
            .await
            .unwrap();
    assert_eq!(
        tree.as_deref(),
        Some(r#"{"leaf":3,"runs":[[1,3,null],[4,4,2]]}"#)
    );
}

#[tokio::test]
async fn from_pool_migrates_an_app_pool() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE app_users (id INTEGER PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();
    let b = SqliteMessages::from_pool(pool.clone()).await.unwrap();
    let c = ConversationRecord::new(None);
    b.create(&c).await.unwrap();
    assert!(b.head(&c.id).await.unwrap().is_some());
    let app: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM app_users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(app, 0, "the app's own tables are untouched");
}

#[tokio::test]
async fn in_memory_databases_work_and_say_single_process() {
    let b = SqliteMessages::connect("sqlite::memory:").await.unwrap();
    assert!(!b.capabilities().multi_process);
    let c = ConversationRecord::new(None);
    b.create(&c).await.unwrap();
    b.append_messages(&c.id, vec![NewMessage::new(Role::User, "hi")])
        .await
        .unwrap();
    assert_eq!(
        b.head(&c.id).await.unwrap().unwrap().record.message_count,
        1
    );
    let dir = tempfile::tempdir().unwrap();
    assert!(open(&dir).await.capabilities().multi_process);
    // Also when the app's own pool is in memory.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let app = SqliteMessages::from_pool(pool).await.unwrap();
    assert!(!app.capabilities().multi_process);
}

#[tokio::test]
async fn bad_urls_are_invalid_input() {
    for url in ["postgres://nope", "chat.db", "sqlite://x.db?mode=bogus"] {
        let err = SqliteMessages::connect(url).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{url}: {err}");
    }
}

#[tokio::test]
async fn damaged_rows_are_corrupt_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(&dir).await;
    let c = ConversationRecord::new(None);
    b.create(&c).await.unwrap();
    b.append_messages(&c.id, vec![NewMessage::new(Role::User, "hi")])
        .await
        .unwrap();
    sqlx::query("UPDATE chatvault_messages SET body = '{not json' WHERE conversation_id = $1")
        .bind(c.id.as_str())
        .execute(b.pool())
        .await
        .unwrap();
    let err = b.messages(&c.id, &MessageRange::all()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    sqlx::query("UPDATE chatvault_conversations SET message_count = -5, usage = 'x' WHERE id = $1")
        .bind(c.id.as_str())
        .execute(b.pool())
        .await
        .unwrap();
    let err = b.head(&c.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    sqlx::query("UPDATE chatvault_conversations SET message_count = 1, usage = '{}', tree = '[1,' WHERE id = $1")
        .bind(c.id.as_str())
        .execute(b.pool())
        .await
        .unwrap();
    let err = b.head(&c.id).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Corrupt,
        "a damaged branch table: {err}"
    );
    sqlx::query("UPDATE chatvault_conversations SET user_id = '', tree = NULL WHERE id = $1")
        .bind(c.id.as_str())
        .execute(b.pool())
        .await
        .unwrap();
    let err = b
        .list_conversations(None, &chatvault_core::ListOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}

/// The child side of `two_processes_append_to_one_file`, which runs it (with
/// `--ignored`) in two child processes; the environment names the database and the
/// conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of two_processes_append_to_one_file, run by it"]
async fn child_appender() {
    let env = |name| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let url = env("CHATVAULT_SQL_CHILD_URL");
    let id = env("CHATVAULT_SQL_CHILD_CONVERSATION");
    let tag = env("CHATVAULT_SQL_CHILD_TAG");
    let gate = std::path::PathBuf::from(env("CHATVAULT_SQL_CHILD_GATE"));
    let b = SqliteMessages::connect(&url).await.unwrap();
    let id = id.parse().unwrap();
    // Connected: say so, then wait for the parent's go, so that all writers overlap.
    std::fs::write(gate.join(format!("ready-{tag}")), b"").unwrap();
    wait_for(&gate.join("go")).await;
    for i in 0..CHILD_APPENDS {
        b.append_messages(&id, vec![NewMessage::new(Role::User, format!("{tag} {i}"))])
            .await
            .unwrap();
        tokio::time::sleep(BETWEEN_APPENDS).await;
    }
}

const CHILD_APPENDS: usize = 300;

/// Each writer's pause after an append. Without it, one process can append all of its
/// messages while the others sleep in SQLite's busy handler (whose waits grow to 100 ms),
/// and the processes run one after the other instead of side by side.
const BETWEEN_APPENDS: std::time::Duration = std::time::Duration::from_millis(2);

async fn wait_for(path: &std::path::Path) {
    let start = std::time::Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed().as_secs() < 60,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn two_processes_append_to_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let b = SqliteMessages::connect(&url).await.unwrap();
    let c = ConversationRecord::new(None);
    b.create(&c).await.unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ["p1", "p2"]
        .iter()
        .map(|tag| {
            std::process::Command::new(&exe)
                .args(["--exact", "child_appender", "--ignored", "--nocapture"])
                .env("CHATVAULT_SQL_CHILD_URL", &url)
                .env("CHATVAULT_SQL_CHILD_CONVERSATION", c.id.as_str())
                .env("CHATVAULT_SQL_CHILD_TAG", tag)
                .env("CHATVAULT_SQL_CHILD_GATE", dir.path())
                .spawn()
                .unwrap()
        })
        .collect();
    for tag in ["p1", "p2"] {
        wait_for(&dir.path().join(format!("ready-{tag}"))).await;
    }
    std::fs::write(dir.path().join("go"), b"").unwrap();
    // This process appends too, at the same time.
    for i in 0..CHILD_APPENDS {
        b.append_messages(&c.id, vec![NewMessage::new(Role::User, format!("p0 {i}"))])
            .await
            .unwrap();
        tokio::time::sleep(BETWEEN_APPENDS).await;
    }
    for mut child in children {
        assert!(child.wait().unwrap().success(), "a child appender failed");
    }
    let mut all = Vec::new();
    let mut range = MessageRange::all();
    loop {
        let page = b.messages(&c.id, &range).await.unwrap();
        all.extend(page.items);
        match page.next_cursor {
            Some(cursor) => range = range.continue_from(&cursor).unwrap(),
            None => break,
        }
    }
    assert_eq!(all.len(), 3 * CHILD_APPENDS);
    assert_eq!(
        all.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=(3 * CHILD_APPENDS) as u64).collect::<Vec<_>>()
    );
    for tag in ["p0", "p1", "p2"] {
        let mine: Vec<String> = all
            .iter()
            .map(|m| m.content())
            .filter(|t| t.starts_with(&format!("{tag} ")))
            .collect();
        let expected: Vec<String> = (0..CHILD_APPENDS).map(|i| format!("{tag} {i}")).collect();
        assert_eq!(mine, expected, "{tag}'s appends, all there, in order");
    }
    let head = b.head(&c.id).await.unwrap().unwrap();
    assert_eq!(head.record.message_count, (3 * CHILD_APPENDS) as u64);
    // The writers really overlapped: three processes one after the other switch twice; any
    // more switches means their appends interleaved (how often depends on the machine).
    let tags: Vec<String> = all.iter().map(|m| m.content()[..2].to_owned()).collect();
    let switches = tags.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(
        switches > 2,
        "only {switches} switches between processes: no overlap"
    );
}

#[tokio::test]
async fn search_ignores_diacritics() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(&dir).await;
    let u = common::user();
    let c = common::new_conversation(&(Arc::new(b.clone()) as Backend), Some(&u)).await;
    b.append_messages(
        &c.id,
        vec![NewMessage::new(Role::User, "Crème brûlée in Zürich")],
    )
    .await
    .unwrap();
    let options = chatvault_core::SearchOptions::new();
    for q in ["creme brulee", "ZURICH", "crème"] {
        let hits = b.search(&u, q, &options).await.unwrap();
        assert_eq!(hits.items.len(), 1, "{q}");
    }
}

/// The FTS5 index that the insert trigger fills matches the messages table after one
/// append of many rows (multi-row inserts), by FTS5's own integrity check, which does
/// see an index that misses a row.
#[tokio::test]
async fn a_large_append_leaves_the_fts_index_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let b = open(&dir).await;
    let c = common::new_conversation(&(Arc::new(b.clone()) as Backend), None).await;
    let batch = (0..1_000)
        .map(|i| NewMessage::new(Role::User, format!("row {i} of a large append")))
        .collect();
    let out = b.append_messages(&c.id, batch).await.unwrap();
    let check = "INSERT INTO chatvault_messages_fts (chatvault_messages_fts, rank) \
                 VALUES ('integrity-check', 1)";
    sqlx::query(check).execute(b.pool()).await.unwrap();
    let indexed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM chatvault_messages_fts WHERE chatvault_messages_fts MATCH 'large'",
    )
    .fetch_one(b.pool())
    .await
    .unwrap();
    assert_eq!(indexed, 1_000);
    // Take one row out of the index: the same check fails.
    let last = out.messages.last().unwrap();
    sqlx::query(
        "INSERT INTO chatvault_messages_fts (chatvault_messages_fts, rowid, text) \
         SELECT 'delete', row_id, text FROM chatvault_messages WHERE message_id = $1",
    )
    .bind(last.id.as_str())
    .execute(b.pool())
    .await
    .unwrap();
    let err = sqlx::query(check).execute(b.pool()).await.unwrap_err();
    assert!(err.to_string().contains("malformed"), "{err}");
}

/// Deleted conversations leave free pages; `reclaim_space` gives them back: the file
/// shrinks by what it reports, and the rest of the data reads back.
#[tokio::test]
async fn reclaim_space_shrinks_the_file_after_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir).await;
    let text = "x".repeat(4000);
    let mut ids = Vec::new();
    for _ in 0..20 {
        let record = ConversationRecord::new(None);
        db.create(&record).await.unwrap();
        let batch = (0..25)
            .map(|_| NewMessage::new(Role::User, text.clone()))
            .collect();
        db.append_messages(&record.id, batch).await.unwrap();
        ids.push(record.id);
    }
    let kept = ids.pop().unwrap();
    db.reclaim_space().await.unwrap();
    let path = dir.path().join("chat.db");
    let full = std::fs::metadata(&path).unwrap().len();
    for id in &ids {
        assert!(db.begin_delete(id).await.unwrap().is_some());
        assert!(db.delete(id).await.unwrap());
    }
    let freed = db.reclaim_space().await.unwrap();
    let after = std::fs::metadata(&path).unwrap().len();
    // 19 of 20 conversations of ~100 KB each went.
    assert!(freed > 1_000_000, "reclaimed only {freed} bytes");
    assert_eq!(full - after, freed, "the file shrank by what was reported");
    let left = db.messages(&kept, &MessageRange::after(0)).await.unwrap();
    assert_eq!(left.items.len(), 25);
    assert!(left.items.iter().all(|m| m.content() == text));
}

/// After a redaction no file of the database (main file, WAL, shared memory) holds the
/// old text: not the row, not the search index's terms, not a freed page. The secret is
/// first found in the files, so the scan can fail.
#[tokio::test]
async fn a_redacted_message_is_in_no_file_of_the_database() {
    const SECRET: &[u8] = b"zebrasecret4711";
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(open(&dir).await);
    let vault = chatvault_core::ChatVault::from_arcs(
        db.clone(),
        Arc::new(chatvault_memory::MemoryFiles::new()),
    );
    let mut c = vault.create_conversation(None).await.unwrap();
    c.add_message(Role::User, "hello there").await.unwrap();
    let secret = c
        .add_message(Role::User, "my key is zebrasecret4711, keep it")
        .await
        .unwrap();
    // Enough other messages, appended one at a time, that the search index has several
    // segments.
    for i in 0..40 {
        c.add_message(Role::Assistant, format!("reply number {i}"))
            .await
            .unwrap();
    }
    let files = |dir: &TempDir| -> Vec<(String, Vec<u8>)> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
            .collect()
    };
    let holds = |files: &[(String, Vec<u8>)]| -> Vec<String> {
        files
            .iter()
            .filter(|(_, bytes)| bytes.windows(SECRET.len()).any(|w| w == SECRET))
            .map(|(name, _)| name.clone())
            .collect()
    };
    db.reclaim_space().await.unwrap();
    assert!(
        !holds(&files(&dir)).is_empty(),
        "the secret is in the files at first"
    );

    c.redact(&secret.id, "pasted a key").await.unwrap();
    let left = holds(&files(&dir));
    assert!(left.is_empty(), "the secret is still in {left:?}");
    // Everything else reads back, and search finds the rest and not the secret.
    let all = db.messages(c.id(), &MessageRange::after(0)).await.unwrap();
    assert_eq!(all.items.len(), 42);
    assert_eq!(all.items[0].content(), "hello there");
    assert!(all.items[1].parts.is_empty());
}
