//! A PostgreSQL server for the tests: its URL from the environment, and a fresh schema
//! per test.

use chatvault_core::ConversationId;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Executor, PgPool};

/// The server's URL, or `None` after saying loudly why the test does not run.
pub fn server_url() -> Option<String> {
    match std::env::var("CHATVAULT_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CHATVAULT_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!(
                    "CHATVAULT_REQUIRE_POSTGRES=1 but CHATVAULT_POSTGRES_URL is not set: \
                     start a server (scripts/postgres.sh start) and export its URL"
                );
            }
            eprintln!(
                "\n*** PostgreSQL test NOT RUN: CHATVAULT_POSTGRES_URL is not set \
                 (set it, or CHATVAULT_REQUIRE_POSTGRES=1 to make this a failure) ***\n"
            );
            None
        }
    }
}

/// A fresh schema, and a pool whose connections work in it.
pub async fn schema_pool(url: &str) -> (PgPool, String) {
    let schema = format!(
        "cv_test_{}",
        ConversationId::new().as_str().replace('-', "_")
    );
    let admin = PgPool::connect(url).await.unwrap();
    admin
        .execute(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await
        .unwrap();
    admin.close().await;
    let set_path = format!("SET search_path TO {schema}");
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .after_connect(move |conn, _| {
            let set_path = set_path.clone();
            Box::pin(async move {
                conn.execute(AssertSqlSafe(set_path)).await?;
                Ok(())
            })
        })
        .connect(url)
        .await
        .unwrap();
    (pool, schema)
}
