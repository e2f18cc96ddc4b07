//! The backend checks, migrations and corruption handling on PostgreSQL.
//!
//! They need a server: `CHATVAULT_POSTGRES_URL=postgres://user@127.0.0.1:port/db` when
//! the tests are built and run. Built without it (see `build.rs`), every test is listed as
//! ignored with the reason; with `CHATVAULT_REQUIRE_POSTGRES=1` they are built to run and a
//! missing URL fails them. Each test works in a schema of its own.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::sync::Arc;

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ConversationRecord, ErrorKind, ListOptions, MessageRange, MessagesBackend, NewMessage, Role,
};
use chatvault_sql::PostgresMessages;
use common::pg::{schema_pool, server_url};
use common::{Backend, v1};
use sqlx::PgPool;

async fn setup() -> (Backend, String) {
    let (pool, schema) = schema_pool(&server_url()).await;
    let backend = PostgresMessages::from_pool(pool).await.unwrap();
    (Arc::new(backend), schema)
}

all_checks!(
    setup,
    #[cfg_attr(
        not(chatvault_postgres_server),
        ignore = "needs PostgreSQL: CHATVAULT_POSTGRES_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/postgres.sh start && eval \"$(scripts/postgres.sh env)\" first"
    )]
);

#[cfg_attr(
    not(chatvault_postgres_server),
    ignore = "needs PostgreSQL: CHATVAULT_POSTGRES_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/postgres.sh start && eval \"$(scripts/postgres.sh env)\" first"
)]
#[tokio::test]
async fn migrations_are_recorded_in_the_crates_own_table() {
    let url = server_url();
    let (pool, schema) = schema_pool(&url).await;
    // Two migrators at once (two app instances starting): they take turns.
    let (a, b) = tokio::join!(
        PostgresMessages::from_pool(pool.clone()),
        PostgresMessages::from_pool(pool.clone())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.schema_version().await.unwrap(), 2);
    assert_eq!(b.schema_version().await.unwrap(), 2);
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chatvault_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 2);
    let sqlx_table: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables \
         WHERE table_schema = $1 AND table_name = '_sqlx_migrations'",
    )
    .bind(&schema)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(sqlx_table, 0, "never the host app's sqlx migrations table");
    sqlx::query("INSERT INTO chatvault_migrations (version, description) VALUES (99, 'future')")
        .execute(&pool)
        .await
        .unwrap();
    let err = a.migrate().await.unwrap_err();
    assert!(err.to_string().contains("version 99"), "{err}");
}

#[cfg_attr(
    not(chatvault_postgres_server),
    ignore = "needs PostgreSQL: CHATVAULT_POSTGRES_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/postgres.sh start && eval \"$(scripts/postgres.sh env)\" first"
)]
#[tokio::test]
async fn connect_takes_a_url() {
    let url = server_url();
    let (_pool, schema) = schema_pool(&url).await;
    let sep = if url.contains('?') { '&' } else { '?' };
    let with_schema = format!("{url}{sep}options=-c%20search_path%3D{schema}");
    let b = PostgresMessages::connect(&with_schema).await.unwrap();
    let c = ConversationRecord::new(None);
    b.create(&c).await.unwrap();
    assert!(b.head(&c.id).await.unwrap().is_some());
    for bad in ["mysql://x", "postgres://u@127.0.0.1:notaport/db"] {
        let err = PostgresMessages::connect(bad).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}: {err}");
    }
}

#[cfg_attr(
    not(chatvault_postgres_server),
    ignore = "needs PostgreSQL: CHATVAULT_POSTGRES_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/postgres.sh start && eval \"$(scripts/postgres.sh env)\" first"
)]
#[tokio::test]
async fn damaged_rows_are_corrupt_not_panics() {
    let url = server_url();
    let (pool, _schema) = schema_pool(&url).await;
    let b = PostgresMessages::from_pool(pool.clone()).await.unwrap();
    let c = ConversationRecord::new(None);
    b.create(&c).await.unwrap();
    b.append_messages(&c.id, vec![NewMessage::new(Role::User, "hi")])
        .await
        .unwrap();
    sqlx::query("UPDATE chatvault_messages SET body = '{not json' WHERE conversation_id = $1")
        .bind(c.id.as_str())
        .execute(&pool)
        .await
        .unwrap();
    let err = b.messages(&c.id, &MessageRange::all()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    sqlx::query("UPDATE chatvault_conversations SET message_count = -5 WHERE id = $1")
        .bind(c.id.as_str())
        .execute(&pool)
        .await
        .unwrap();
    let err = b.head(&c.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    sqlx::query("UPDATE chatvault_conversations SET message_count = 1, tree = '[1,' WHERE id = $1")
        .bind(c.id.as_str())
        .execute(&pool)
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
        .execute(&pool)
        .await
        .unwrap();
    let err = b
        .list_conversations(None, &ListOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}

/// A database written by schema version 1 (before branches) opens, migrates to version 2
/// and reads as one branch; see `common::v1`.
#[cfg_attr(
    not(chatvault_postgres_server),
    ignore = "needs PostgreSQL: CHATVAULT_POSTGRES_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/postgres.sh start && eval \"$(scripts/postgres.sh env)\" first"
)]
#[tokio::test]
async fn a_v1_database_migrates_and_reads_as_one_branch() {
    let (pool, _schema) = schema_pool(&server_url()).await;
    sqlx::raw_sql(
        "CREATE TABLE chatvault_migrations (version BIGINT PRIMARY KEY, \
         description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::raw_sql(include_str!("../src/sql/postgres_v1.sql"))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO chatvault_migrations (version, description) VALUES (1, 'v1')")
        .execute(&pool)
        .await
        .unwrap();
    let at = chrono::DateTime::from_timestamp_micros(v1::AT_MICROS).unwrap();
    sqlx::query(v1::INSERT_CONVERSATION)
        .bind(v1::CONVERSATION)
        .bind(v1::USER)
        .bind(at)
        .bind(at)
        .execute(&pool)
        .await
        .unwrap();
    for (seq, id, role, text, body) in v1::MESSAGES {
        sqlx::query(v1::INSERT_MESSAGE)
            .bind(v1::CONVERSATION)
            .bind(seq)
            .bind(id)
            .bind(role)
            .bind(at)
            .bind(text)
            .bind(body)
            .execute(&pool)
            .await
            .unwrap();
    }
    let b = PostgresMessages::from_pool(pool.clone()).await.unwrap();
    assert_eq!(b.schema_version().await.unwrap(), 2);
    v1::check_reads_as_one_branch(Arc::new(b)).await;
    let tree: Option<String> =
        sqlx::query_scalar("SELECT tree FROM chatvault_conversations WHERE id = $1")
            .bind(v1::CONVERSATION)
            .fetch_one(&pool)
            .await
            .unwrap();
    // The edit's run, and the leaf back on the v1 line after the switch.
    assert_eq!(
        tree.as_deref(),
        Some(r#"{"leaf":3,"runs":[[1,3,null],[4,4,2]]}"#)
    );
}

/// Why the schema keeps JSON as TEXT: `JSONB` would change numbers and refuse `\u0000`.
#[cfg_attr(
    not(chatvault_postgres_server),
    ignore = "needs PostgreSQL: CHATVAULT_POSTGRES_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/postgres.sh start && eval \"$(scripts/postgres.sh env)\" first"
)]
#[tokio::test]
async fn jsonb_would_change_stored_json() {
    let url = server_url();
    let pool = PgPool::connect(&url).await.unwrap();
    let through_jsonb: String = sqlx::query_scalar("SELECT ($1::jsonb)::text")
        .bind(r#"{"a":-0.0,"b":1e2}"#)
        .fetch_one(&pool)
        .await
        .unwrap();
    let back: serde_json::Value = serde_json::from_str(&through_jsonb).unwrap();
    let original: serde_json::Value = serde_json::from_str(r#"{"a":-0.0,"b":1e2}"#).unwrap();
    assert_ne!(back, original, "JSONB rewrote {original} as {back}");
    let nul = sqlx::query_scalar::<_, String>("SELECT ($1::jsonb)::text")
        .bind(r#"{"s":"\u0000"}"#)
        .fetch_one(&pool)
        .await;
    assert!(nul.is_err(), "JSONB refuses \\u0000");
}
