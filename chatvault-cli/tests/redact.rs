//! `redact CONVERSATION_ID MESSAGE_ID --reason TEXT` driven as a user would, against a
//! local store; what it leaves is read back through the command (`show`, `stat`).
#![allow(clippy::unwrap_used)] // test helpers may unwrap

use std::path::Path;

use chatvault_core::{NewMessage, Part, Role};

mod common;
use common::{local_vault, run, run_json};

/// The words that must go.
const SECRET: &str = "hunter2-correct-horse";

/// The conversation of a local store, and its messages' and attachments' ids.
struct Chat {
    url: String,
    id: String,
    /// The message holding the secret (seq 2).
    secret: String,
    /// The attachment only the secret message references.
    only: String,
    /// The attachment the secret message and the reply both reference.
    shared: String,
}

/// A local store with one conversation of alice's: a greeting, then a message with the
/// secret and two attachments (one only it references, one the reply references too),
/// then the reply.
fn make_store(dir: &Path) -> Chat {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let vault = local_vault(dir);
        let alice = "alice".parse().unwrap();
        let mut c = vault.create_conversation(Some(&alice)).await.unwrap();
        c.add_message(Role::User, "hello").await.unwrap();
        let only = c
            .attach_file("keys.txt", SECRET.as_bytes().to_vec(), "text/plain")
            .await
            .unwrap();
        let shared = c
            .attach_file("diagram.png", vec![7u8; 3_000], "image/png")
            .await
            .unwrap();
        let parts = vec![
            Part::text(format!("my password is {SECRET}, see the files")),
            Part::attachment(only.id.clone(), None),
            Part::attachment(shared.id.clone(), None),
        ];
        let secret = c
            .add(NewMessage::with_parts(Role::User, parts))
            .await
            .unwrap();
        let reply = vec![
            Part::text("noted; about the diagram"),
            Part::attachment(shared.id.clone(), None),
        ];
        c.add(NewMessage::with_parts(Role::Assistant, reply))
            .await
            .unwrap();
        Chat {
            url: format!("local:{}", dir.display()),
            id: c.id().to_string(),
            secret: secret.id.to_string(),
            only: only.id.to_string(),
            shared: shared.id.to_string(),
        }
    })
}

/// `show ID` and `show ID --json`, both of which must succeed, as one text.
fn show(chat: &Chat) -> String {
    let (code, text, err) = run(&chat.url, &["show", &chat.id]);
    assert_eq!(code, Some(0), "{err}");
    let (code, json, err) = run(&chat.url, &["show", &chat.id, "--json"]);
    assert_eq!(code, Some(0), "{err}");
    format!("{text}{json}")
}

/// How many attachments and messages `stat` counts.
fn counts(chat: &Chat) -> (u64, u64) {
    let stat = run_json(&chat.url, &["stat"]);
    (
        stat["attachments"].as_u64().unwrap(),
        stat["messages"].as_u64().unwrap(),
    )
}

fn redact<'a>(chat: &'a Chat, extra: &[&'a str]) -> Vec<&'a str> {
    let base = [
        "redact",
        &chat.id,
        &chat.secret,
        "--reason",
        "pasted a password",
    ];
    [&base[..], extra].concat()
}

#[test]
fn redact_removes_the_text_and_the_attachment_only_it_referenced() {
    let tmp = tempfile::tempdir().unwrap();
    let chat = make_store(tmp.path());
    assert!(show(&chat).contains(SECRET));
    assert_eq!(counts(&chat), (2, 3));

    let report = run_json(&chat.url, &redact(&chat, &[]));
    assert_eq!(report["dry_run"], false);
    let tombstone = &report["message"];
    assert_eq!(tombstone["id"], chat.secret.as_str());
    assert_eq!(tombstone["seq"], 2);
    assert_eq!(tombstone["role"], "user");
    assert!(
        tombstone["parts"].as_array().is_none_or(Vec::is_empty),
        "{tombstone}"
    );
    assert_eq!(
        tombstone["metadata"]["chatvault_redacted"]["reason"],
        "pasted a password"
    );
    assert_eq!(report["files_deleted"], serde_json::json!([chat.only]));
    assert!(!report.to_string().contains(SECRET), "{report}");

    // No trace of the secret; the shared attachment and every message's place stay.
    let shown = show(&chat);
    assert!(!shown.contains(SECRET), "{shown}");
    // (The tombstone's redaction names the deleted attachment's id; no attachment line
    // does.)
    assert!(!shown.contains(&format!("file {}", chat.only)), "{shown}");
    assert!(!shown.contains("keys.txt"), "{shown}");
    assert!(shown.contains(&chat.shared), "{shown}");
    assert!(shown.contains("[2] user: \n"), "{shown}");
    assert!(
        shown.contains("[3] assistant: noted; about the diagram"),
        "{shown}"
    );
    assert_eq!(counts(&chat), (1, 3));

    // Again, in text: the tombstone's reason is replaced, nothing else is deleted.
    let (code, out, err) = run(&chat.url, &redact(&chat, &[]));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        format!("redacted message {} (seq 2, user)\n", chat.secret)
    );
    assert_eq!(counts(&chat), (1, 3));
}

#[test]
fn redact_in_text_names_the_attachments_it_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let chat = make_store(tmp.path());
    let (code, out, err) = run(&chat.url, &redact(&chat, &[]));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        format!(
            "redacted message {} (seq 2, user)\ndeleted attachment {} keys.txt ({} bytes)\n",
            chat.secret,
            chat.only,
            SECRET.len()
        )
    );
}

#[test]
fn a_dry_run_says_what_would_go_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let chat = make_store(tmp.path());
    let before = show(&chat);

    let (code, out, err) = run(&chat.url, &redact(&chat, &["--dry-run"]));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        format!(
            "would redact message {} (seq 2, user): \"my password is {SECRET}, see the \
             files\"\nwould delete attachment {} keys.txt ({} bytes)\n",
            chat.secret,
            chat.only,
            SECRET.len()
        )
    );

    let report = run_json(&chat.url, &redact(&chat, &["--dry-run"]));
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["message"]["seq"], 2);
    assert_eq!(report["message"]["role"], "user");
    assert_eq!(report["files_deleted"], serde_json::json!([chat.only]));

    assert_eq!(show(&chat), before);
    assert_eq!(counts(&chat), (2, 3));
}

#[test]
fn an_unknown_message_or_conversation_is_not_found_as_in_show() {
    let tmp = tempfile::tempdir().unwrap();
    let chat = make_store(tmp.path());
    let (show_code, _, show_err) = run(&chat.url, &["show", "no-such-conversation"]);
    assert!(show_err.contains("not found"), "{show_err}");
    for dry in [&[][..], &["--dry-run"]] {
        let args = [&["redact", &chat.id, "m-unknown", "--reason", "x"][..], dry].concat();
        let (code, out, err) = run(&chat.url, &args);
        assert_eq!(code, show_code, "{args:?}: {err}");
        assert!(out.is_empty(), "{out}");
        assert!(err.contains("message not found: m-unknown"), "{err}");

        let args = [
            &[
                "redact",
                "no-such-conversation",
                &chat.secret,
                "--reason",
                "x",
            ][..],
            dry,
        ]
        .concat();
        let (code, _, err) = run(&chat.url, &args);
        assert_eq!(code, show_code, "{args:?}: {err}");
        assert!(
            err.contains("conversation not found: no-such-conversation"),
            "{err}"
        );
    }
    assert!(show(&chat).contains(SECRET));
}

#[test]
fn a_blank_or_long_reason_is_a_usage_error_that_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let chat = make_store(tmp.path());
    let long = "x".repeat(1025);
    for reason in ["", "  \n", long.as_str()] {
        for dry in [&[][..], &["--dry-run"]] {
            let base = ["redact", &chat.id, &chat.secret, "--reason", reason];
            let (code, out, err) = run(&chat.url, &[&base[..], dry].concat());
            assert_eq!(code, Some(2), "{reason:?} {dry:?}: {err}");
            assert!(out.is_empty(), "{out}");
            assert!(
                err.contains("invalid reason: must be 1 to 1024 bytes and not blank"),
                "{reason:?} {dry:?}: {err}"
            );
        }
    }
    // A reason is required; a malformed id is refused before the store is read.
    for args in [
        &["redact", &chat.id, &chat.secret][..],
        &["redact", &chat.id, "a/b", "--reason", "x"],
    ] {
        let (code, _, err) = run(&chat.url, args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
    }
    assert!(show(&chat).contains(SECRET));
    assert_eq!(counts(&chat), (2, 3));
}
