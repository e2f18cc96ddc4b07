//! A PostgreSQL server for the tests: its URL from the environment, and a fresh schema
//! per test.

use chatvault_core::ConversationId;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Executor, PgPool};

/// How to give the tests a server.
const HOW_TO_RUN: &str = "run ./scripts/test.sh -p chatvault-sql, or start a server and \
     export its URL before building the tests: scripts/postgres.sh start && \
     eval \"$(scripts/postgres.sh env)\"";

/// The server's URL; fails the test when `CHATVAULT_POSTGRES_URL` is not set.
///
/// Without a URL at build time the build script compiles every PostgreSQL test as ignored
/// (with the reason), so plain `cargo test` reports them as not run. A test only gets here
/// without a URL when it was built to run (under `CHATVAULT_REQUIRE_POSTGRES=1`, the test
/// command's setting, or built with the URL and run without it) or is run with
/// `--ignored`. Either way it must fail, never pass without having run.
pub fn server_url() -> String {
    match std::env::var("CHATVAULT_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ if std::env::var("CHATVAULT_REQUIRE_POSTGRES").is_ok_and(|v| v.trim() == "1") => {
            panic!(
                "CHATVAULT_REQUIRE_POSTGRES=1 requires the PostgreSQL tests to run, but \
                 CHATVAULT_POSTGRES_URL is not set: {HOW_TO_RUN}"
            )
        }
        _ => panic!(
            "this test needs a PostgreSQL server, but CHATVAULT_POSTGRES_URL is not set: \
             {HOW_TO_RUN}"
        ),
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
