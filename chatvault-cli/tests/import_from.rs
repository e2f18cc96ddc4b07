//! `chatvault import --from FORMAT PATH --owner USER [--dry-run]`.
#![allow(clippy::unwrap_used)] // test helpers may unwrap

use std::path::{Path, PathBuf};

mod common;
use common::chatvault;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../chatvault-archive/tests/fixtures/import")
        .join(rel)
}

/// Runs `chatvault --store STORE import ARGS..` and returns its exit code and stderr.
fn run(store: &str, args: &[&str]) -> (Option<i32>, String) {
    let (code, _, err) = common::run(store, &[&["import"], args].concat());
    (code, err)
}

#[test]
fn imports_once_reports_failures_and_adds_nothing_again() {
    let tmp = tempfile::tempdir().unwrap();
    let store = format!("local:{}", tmp.path().join("store").display());
    let claude = fixture("claude/conversations.json");
    let claude = claude.to_str().unwrap();
    let (code, err) = run(&store, &["--from", "claude", claude, "--owner", "alice"]);
    // One conversation of the fixture is malformed: the others go in, the exit code says so.
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("added 3 conversations (0 present already), 8 messages"),
        "{err}"
    );
    assert!(
        err.contains("FAILED conversation c-bad (\"Bad times\"): chat_messages[0].created_at"),
        "{err}"
    );
    assert!(err.contains("claude-file:diagram.png"), "{err}");
    assert!(
        err.contains("1 of 4 conversations could not be imported"),
        "{err}"
    );
    let (code, err) = run(&store, &["--from", "claude", claude, "--owner", "alice"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("added 0 conversations (3 present already), 0 messages (8 present)"),
        "{err}"
    );
    // The store holds them, for alice.
    let out = chatvault()
        .args([
            "--store",
            &store,
            "ls",
            "--owner",
            "alice",
            "--archived",
            "--json",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
}

#[test]
fn the_dry_run_writes_nothing_and_says_what_is_inexact() {
    let tmp = tempfile::tempdir().unwrap();
    let store = format!("local:{}", tmp.path().join("store").display());
    let webui = fixture("open-webui/chats.json");
    let (code, _) = run(
        &store,
        &[
            "--from",
            "open-webui",
            webui.to_str().unwrap(),
            "--owner",
            "bob",
        ],
    );
    assert_eq!(code, Some(4));
    let librechat = fixture("librechat/export.json");
    let librechat = librechat.to_str().unwrap();
    let (code, err) = run(
        &store,
        &[
            "--from",
            "librechat",
            librechat,
            "--owner",
            "bob",
            "--dry-run",
        ],
    );
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("would add 2 conversations"), "{err}");
    assert!(err.contains("not carried exactly:"), "{err}");
    assert!(
        err.contains("kept as provider data: librechat agent_update: 1"),
        "{err}"
    );
    assert!(err.contains("/images/u/clock.png"), "{err}");
    let (_, err) = run(
        &store,
        &["--from", "librechat", librechat, "--owner", "bob"],
    );
    assert!(
        err.contains("added 2 conversations (0 present already), 8 messages"),
        "{err}"
    );
}

#[test]
fn usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let store = format!("local:{}", tmp.path().join("store").display());
    let json = fixture("claude/conversations.json");
    let json = json.to_str().unwrap();
    let (code, err) = run(&store, &["--from", "claude", json]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--owner"), "{err}");
    let (code, err) = run(&store, &["--from", "bard", json, "--owner", "alice"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unknown format \"bard\""), "{err}");
    let (code, err) = run(
        &store,
        &["--from", "claude", "/no/such/file", "--owner", "alice"],
    );
    assert_eq!(code, Some(2), "{err}");
    let (code, err) = run(&store, &[json, "--owner", "alice"]);
    assert_eq!(code, Some(2), "--owner needs --from: {err}");
    assert!(!tmp.path().join("store").exists());
}

#[test]
fn the_python_librarys_store_keeps_its_owners() {
    let tmp = tempfile::tempdir().unwrap();
    let store = format!("local:{}", tmp.path().join("store").display());
    let dir = fixture("chatvault-py/dynamodb-s3");
    let dir = dir.to_str().unwrap();
    let (code, err) = run(
        &store,
        &["--from", "chatvault-py", dir, "--owner", "fallback"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(
            "added 3 conversations (0 present already), 6 messages (0 present), 2 attachments"
        ),
        "{err}"
    );
    assert!(err.contains("/gone.bin"), "{err}");
    let ls = |owner: &str| {
        let out = chatvault()
            .args(["--store", &store, "ls", "--owner", owner, "--json"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert_eq!((ls("user-1"), ls("user-2"), ls("fallback")), (2, 1, 0));
}

/// The Python library's live table and bucket: the fixture's items and objects loaded into
/// the emulators (scripts/emulators.sh), then imported from `dynamodb://`. Needs the
/// emulators' endpoints in the environment (CHATVAULT_REQUIRE_AWS=1 makes their absence
/// a failure, as scripts/test.sh sets it).
#[cfg(feature = "aws")]
#[test]
fn the_python_librarys_live_table_and_bucket() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
        ScalarAttributeType,
    };
    use chatvault_aws::reexports::{aws_config, aws_sdk_dynamodb, aws_sdk_s3};

    if std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_none() {
        assert!(
            std::env::var_os("CHATVAULT_REQUIRE_AWS").is_none(),
            "CHATVAULT_REQUIRE_AWS is set but the emulators' endpoints are not"
        );
        eprintln!("skipped: no AWS_ENDPOINT_URL_DYNAMODB (run scripts/emulators.sh)");
        return;
    }
    let name = format!("chatvault-py-cli-{}", std::process::id());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fixture = fixture("chatvault-py/dynamodb-s3");
    rt.block_on(async {
        let sdk = aws_config::from_env().load().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        dynamo
            .create_table()
            .table_name(&name)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("conversation_id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("conversation_id")
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap();
        let doc: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixture.join("items.json")).unwrap()).unwrap();
        for item in doc["Items"].as_array().unwrap() {
            let mut put = dynamo.put_item().table_name(&name);
            for (k, v) in item.as_object().unwrap() {
                let value = match (v.get("S"), v.get("N")) {
                    (Some(s), _) => AttributeValue::S(s.as_str().unwrap().to_owned()),
                    (_, Some(n)) => AttributeValue::N(n.as_str().unwrap().to_owned()),
                    _ => panic!("the fixture holds only S and N: {v}"),
                };
                put = put.item(k, value);
            }
            put.send().await.unwrap();
        }
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        s3.create_bucket().bucket(&name).send().await.unwrap();
        for user in std::fs::read_dir(&fixture).unwrap() {
            let user = user.unwrap().path();
            if !user.is_dir() {
                continue;
            }
            for conv in std::fs::read_dir(&user).unwrap() {
                for file in std::fs::read_dir(conv.unwrap().path()).unwrap() {
                    let file = file.unwrap().path();
                    let key = file
                        .strip_prefix(&fixture)
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_owned();
                    let body = std::fs::read(&file).unwrap();
                    s3.put_object()
                        .bucket(&name)
                        .key(key)
                        .body(body.into())
                        .send()
                        .await
                        .unwrap();
                }
            }
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let store = format!("local:{}", tmp.path().join("store").display());
    let url = format!("dynamodb://{name}?bucket={name}");
    let (code, err) = run(
        &store,
        &["--from", "chatvault-py", &url, "--owner", "fallback"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("added 3 conversations (0 present already), 6 messages (0 present), 2 attachments (0 present), 46 bytes"),
        "{err}"
    );
    let (code, err) = run(
        &store,
        &["--from", "chatvault-py", &url, "--owner", "fallback"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("added 0 conversations (3 present already)"),
        "{err}"
    );
    let (code, err) = run(&store, &["--from", "claude", &url, "--owner", "fallback"]);
    assert_eq!(code, Some(2), "{err}");
    // Leave the emulators as they were.
    rt.block_on(async {
        let sdk = aws_config::from_env().load().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
        let _ = dynamo.delete_table().table_name(&name).send().await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        if let Ok(list) = s3.list_objects_v2().bucket(&name).send().await {
            for object in list.contents() {
                let key = object.key().unwrap_or_default();
                let _ = s3.delete_object().bucket(&name).key(key).send().await;
            }
        }
        let _ = s3.delete_bucket().bucket(&name).send().await;
    });
}
