//! Export -> import into PostgreSQL, into DynamoDB + S3, and into Redis -> export again: the same
//! conversation files (byte for byte, but for what the destination derives itself:
//! `last_active` and `version`) and the same blobs; a second import adds nothing.
//!
//! They need servers: `CHATVAULT_POSTGRES_URL` (scripts/postgres.sh), the AWS
//! emulators' endpoints (scripts/emulators.sh) and `CHATVAULT_REDIS_URL`
//! (scripts/redis.sh) when the tests are built and run. Built without them (see
//! `build.rs`), each test is listed as ignored with the reason; with
//! `CHATVAULT_REQUIRE_POSTGRES=1` / `CHATVAULT_REQUIRE_AWS=1` /
//! `CHATVAULT_REQUIRE_REDIS=1` (set by `scripts/test.sh`) they are built to run and a
//! missing server fails them. Each works in a PostgreSQL schema, a DynamoDB table and an
//! S3 bucket, or a Redis key prefix of its own.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::path::Path;

use chatvault_archive::{ImportOptions, Store, import, no_progress};
use common::*;

/// The original: `fill`'s varied set, and a conversation with branches.
async fn original() -> Store {
    let store = memory();
    fill(&store).await;
    branched(&store).await;
    store
}

/// Exports the original, imports it into `dst`, exports `dst`, and compares; then
/// imports again and expects nothing added.
async fn round_trip(dst: &Store, tmp: &Path) {
    let a1 = export_dir(&original().await, &tmp.join("a1")).await;
    let report = import(&a1, dst, &ImportOptions::default(), &no_progress)
        .await
        .unwrap();
    assert_eq!(report.conversations_created, 6, "{report:?}");
    assert_eq!(report.messages_added, a1.manifest().counts.messages);
    assert_eq!(report.files_added, 3);
    let a2 = export_dir(dst, &tmp.join("a2")).await;
    let (f1, f2) = (
        conversation_files(&tmp.join("a1")),
        conversation_files(&tmp.join("a2")),
    );
    assert_eq!(f1.len(), 6);
    for (name, text) in &f1 {
        assert_eq!(Some(text), f2.get(name), "conversation file {name} differs");
    }
    assert_eq!(f1, f2);
    assert_eq!(blobs(&a1), blobs(&a2));
    assert_eq!(a1.manifest().counts, a2.manifest().counts);
    let again = import(&a2, dst, &ImportOptions::default(), &no_progress)
        .await
        .unwrap();
    assert!(again.added_nothing(), "{again:?}");
    assert!(
        chatvault_archive::verify_store(dst, chatvault_archive::Scope::All, true, &no_progress)
            .await
            .unwrap()
            .is_clean()
    );
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// Fails the test when it was built to run (`CHATVAULT_REQUIRE_*=1`, or built with the
/// server configured) but the server is not configured now: never a pass without a run.
fn require(configured: bool, require_var: &str, how: &str) {
    if !configured {
        if std::env::var(require_var).is_ok_and(|v| v.trim() == "1") {
            panic!("{require_var}=1 requires this test to run, but {how}");
        }
        panic!("this test was built to run against a server, but {how}");
    }
}

const PG_HOW: &str = "CHATVAULT_POSTGRES_URL is not set: run ./scripts/test.sh, or \
     scripts/postgres.sh start && eval \"$(scripts/postgres.sh env)\" and export \
     CHATVAULT_POSTGRES_URL=$DATABASE_URL first";

const AWS_HOW: &str = "the AWS emulators' endpoints (AWS_ENDPOINT_URL_DYNAMODB and \
     AWS_ENDPOINT_URL_S3, or AWS_ENDPOINT_URL) are not set: run ./scripts/test.sh, or \
     scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first";

const REDIS_HOW: &str = "CHATVAULT_REDIS_URL is not set: run ./scripts/test.sh, or \
     scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first";

/// `PostgresMessages` in a fresh schema of the server, attachments in `LocalFiles`.
async fn postgres(dir: &Path) -> Store {
    use sqlx::{AssertSqlSafe, Executor};
    require(
        env_set("CHATVAULT_POSTGRES_URL"),
        "CHATVAULT_REQUIRE_POSTGRES",
        PG_HOW,
    );
    let url = std::env::var("CHATVAULT_POSTGRES_URL").unwrap();
    let schema = format!(
        "cv_archive_{}",
        chatvault_core::ConversationId::new()
            .as_str()
            .replace('-', "_")
    );
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    admin
        .execute(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await
        .unwrap();
    admin.close().await;
    let set_path = format!("SET search_path TO {schema}");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .after_connect(move |conn, _| {
            let set_path = set_path.clone();
            Box::pin(async move {
                conn.execute(AssertSqlSafe(set_path)).await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .unwrap();
    Store::new(
        chatvault_sql::PostgresMessages::from_pool(pool)
            .await
            .unwrap(),
        chatvault_local::LocalFiles::new(dir).unwrap(),
    )
}

/// `DynamoMessages` and `S3Files` on the emulators, in a fresh table and bucket.
async fn dynamo() -> Store {
    use chatvault_aws::reexports::aws_config::{self, BehaviorVersion, Region};
    use chatvault_aws::reexports::aws_sdk_dynamodb::config::Credentials;
    let endpoint = |service: &str| env_set(service) || env_set("AWS_ENDPOINT_URL");
    require(
        endpoint("AWS_ENDPOINT_URL_DYNAMODB") && endpoint("AWS_ENDPOINT_URL_S3"),
        "CHATVAULT_REQUIRE_AWS",
        AWS_HOW,
    );
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if !env_set("AWS_REGION") && !env_set("AWS_DEFAULT_REGION") {
        loader = loader.region(Region::new("us-east-1"));
    }
    if !env_set("AWS_ACCESS_KEY_ID") {
        let test = Credentials::new("test", "test", None, None, "chatvault-tests");
        loader = loader.credentials_provider(test);
    }
    let sdk = loader.load().await;
    let name = format!(
        "cv-archive-{}",
        chatvault_core::ConversationId::new().as_str()
    );
    let messages = chatvault_aws::DynamoMessages::builder(&name)
        .sdk_config(&sdk)
        .build()
        .await
        .unwrap();
    messages.create_table().await.unwrap();
    let files = chatvault_aws::S3Files::builder(&name)
        .sdk_config(&sdk)
        .build()
        .await
        .unwrap();
    files.create_bucket_if_missing().await.unwrap();
    Store::new(messages, files)
}

/// `RedisMessages` under a fresh key prefix of the server, attachments in `MemoryFiles`.
async fn redis() -> Store {
    require(
        env_set("CHATVAULT_REDIS_URL"),
        "CHATVAULT_REQUIRE_REDIS",
        REDIS_HOW,
    );
    let url = std::env::var("CHATVAULT_REDIS_URL").unwrap();
    let prefix = format!(
        "cv-archive-{}",
        chatvault_core::ConversationId::new().as_str()
    );
    let messages = chatvault_redis::RedisMessages::builder(&url)
        .prefix(prefix)
        .build()
        .await
        .unwrap();
    Store::new(messages, chatvault_memory::MemoryFiles::new())
}

#[cfg_attr(
    not(chatvault_postgres_server),
    ignore = "needs PostgreSQL: CHATVAULT_POSTGRES_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/postgres.sh start && eval \"$(scripts/postgres.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_every_conversation_file_and_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let store = postgres(&tmp.path().join("files")).await;
    round_trip(&store, tmp.path()).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_and_s3_keep_every_conversation_file_and_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let store = dynamo().await;
    round_trip(&store, tmp.path()).await;
}

#[cfg_attr(
    not(chatvault_redis_server),
    ignore = "needs Redis: CHATVAULT_REDIS_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keeps_every_conversation_file_and_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let store = redis().await;
    round_trip(&store, tmp.path()).await;
}
