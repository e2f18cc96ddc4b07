//! `redis://` store URLs driven as a user would: copy a local store into Redis (under a
//! key prefix of the test's own, attachments in a `files=` directory), copy again (nothing
//! added), then `stat`, `verify --read-blobs` and `repair` on it.
//!
//! They need a server: `CHATVAULT_REDIS_URL` (scripts/redis.sh) when the tests are built
//! and run. Built without it (see `build.rs`), each test is listed as ignored with the
//! reason; with `CHATVAULT_REQUIRE_REDIS=1` (set by `scripts/test.sh`) it is built to run
//! and a missing server fails it.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::Path;

mod common;
use common::{chatvault, run, run_json, stderr, two_owner_store};

/// `CHATVAULT_REDIS_URL`; fails the test when it is not set (it was built to run).
fn server_url() -> String {
    match std::env::var("CHATVAULT_REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "this test was built to run against Redis (CHATVAULT_REQUIRE_REDIS=1 or \
             CHATVAULT_REDIS_URL at build time), but CHATVAULT_REDIS_URL is not set: run \
             ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" \
             first"
        ),
    }
}

/// A `redis://` store URL under a fresh key prefix, attachments in `files`.
fn redis_store(files: &Path) -> String {
    let url = server_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    let prefix = format!("cv-cli-{}", chatvault_core::ConversationId::new().as_str());
    format!("{url}{sep}prefix={prefix}&files={}", files.display())
}

#[cfg_attr(
    not(chatvault_redis_server),
    ignore = "needs Redis: CHATVAULT_REDIS_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"
)]
#[test]
fn copy_into_redis_then_stat_verify_and_repair() {
    let tmp = tempfile::tempdir().unwrap();
    let src = two_owner_store(&tmp.path().join("src"));
    let dst = redis_store(&tmp.path().join("redis-files"));

    let out = chatvault().args(["copy", &src, &dst]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("2 conversations"), "{}", stderr(&out));
    let out = chatvault().args(["copy", &src, &dst]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing to add"), "{}", stderr(&out));

    let stat = run_json(&dst, &["stat"]);
    assert_eq!(stat["conversations"], 2);
    assert_eq!(stat["messages"], 5);
    assert_eq!(stat["attachment_bytes"], 5_000);
    assert_eq!(stat["owners"], 2);

    let report = run_json(&dst, &["verify", "--read-blobs"]);
    assert_eq!(
        (report["clean"].as_bool(), report["messages"].as_u64()),
        (Some(true), Some(5)),
        "{report}"
    );

    let (code, out, err) = run(&dst, &["repair", "--dry-run"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("Redis"), "says why nothing is derived: {out}");
}

#[cfg_attr(
    not(chatvault_redis_server),
    ignore = "needs Redis: CHATVAULT_REDIS_URL was not set when the tests were built; run ./scripts/test.sh, or scripts/redis.sh start && eval \"$(scripts/redis.sh env)\" first"
)]
#[test]
fn prefixes_keep_stores_apart_and_a_store_without_files_refuses_attachments() {
    let tmp = tempfile::tempdir().unwrap();
    let src = two_owner_store(&tmp.path().join("src"));
    let url = server_url();
    let sep = if url.contains('?') { '&' } else { '?' };
    let prefix = format!("cv-cli-{}", chatvault_core::ConversationId::new().as_str());
    let no_files = format!("{url}{sep}prefix={prefix}");

    // Nowhere for the attachment's bytes: the copy fails and says where to put them.
    let out = chatvault()
        .args(["copy", &src, &no_files])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("files=DIR"), "{}", stderr(&out));

    // Another prefix on the same server sees none of it.
    let other = redis_store(&tmp.path().join("other-files"));
    let stat = run_json(&other, &["stat"]);
    assert_eq!(stat["conversations"], 0, "{stat}");
}
