//! An upload answered with anything but 2xx stores nothing: no attachment record, no
//! bytes in the files backend, no change to the conversation's counts, however the
//! multipart body goes wrong after its file part (issue #19, item 3).

// Helpers outside #[test] fns: their unwraps are test assertions too.
#![allow(clippy::unwrap_used)]

mod common;

use chatvault_core::Error;
use common::{Options, Server, problem, start, start_with};
use serde_json::{Value, json};

const BOUNDARY: &str = "chatvault-test-boundary";

/// A file part (without the delimiter that ends it, which the next part or the closing
/// boundary starts with).
fn file(filename: &str, data: &str) -> String {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: text/plain\r\n\r\n{data}\r\n"
    )
}

/// A text part.
fn text(name: &str, value: &str) -> String {
    format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
}

/// `part` without its last `n` bytes.
fn cut(part: &str, n: usize) -> &str {
    &part[..part.len() - n]
}

/// The closing boundary.
fn end() -> String {
    format!("--{BOUNDARY}--\r\n")
}

/// Sends `body` as a multipart form to `path`.
async fn post_form(s: &Server, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    s.post("alice", path)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The caller's view of a conversation: its `file_count` and attachment list.
async fn files_of(s: &Server, id: &str) -> (u64, Value) {
    let detail: Value = s
        .get("alice", &format!("/conversations/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list: Value = s
        .get("alice", &format!("/conversations/{id}/files"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["files"], list, "the detail and the list agree");
    (detail["conversation"]["file_count"].as_u64().unwrap(), list)
}

/// The ids of alice's conversations.
async fn conversations(s: &Server) -> Vec<String> {
    let list: Value = s
        .get("alice", "/conversations?include_archived=true")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Bodies that go wrong after a complete file part, each with the status it gets.
fn bad_upload_bodies() -> Vec<(&'static str, String, u16)> {
    let f = file("a.txt", "the first file");
    vec![
        (
            "a second file part",
            format!("{f}{}{}", file("b.txt", "another"), end()),
            400,
        ),
        (
            "an unexpected field after the file",
            format!("{f}{}{}", text("note", "hello"), end()),
            400,
        ),
        (
            "a part without a name after the file",
            format!("{f}--{BOUNDARY}\r\n\r\nnameless\r\n{}", end()),
            400,
        ),
        (
            "cut before the closing boundary's dashes",
            format!("{f}--{BOUNDARY}"),
            400,
        ),
        (
            "cut right after the file's delimiter line",
            format!("{f}--{BOUNDARY}\r\n"),
            400,
        ),
        (
            "cut in the next part's headers",
            format!("{f}--{BOUNDARY}\r\nContent-Disposition: form-da"),
            400,
        ),
        (
            "cut in the next part's data",
            format!("{f}{}", cut(&file("b.txt", "cut short"), 5)),
            400,
        ),
        (
            "next part's headers malformed",
            format!("{f}--{BOUNDARY}\r\nno colon here\r\n\r\nx\r\n{}", end()),
            400,
        ),
    ]
}

#[tokio::test]
async fn an_upload_refused_after_its_file_part_stores_nothing() {
    let s = start().await;
    let c = s.create("alice", "uploads").await;
    let id = c["id"].as_str().unwrap().to_owned();
    let path = format!("/conversations/{id}/files");
    for (shape, body, status) in bad_upload_bodies() {
        let p = problem(post_form(&s, &path, body).await, status).await;
        assert_eq!(p["kind"], "invalid_input", "{shape}");
        assert_eq!(files_of(&s, &id).await, (0, json!([])), "{shape}");
        assert_eq!(s.files.len(), 0, "{shape}: no bytes in the files backend");
    }
    // The same file in a well-formed body is stored: the checks above can see one.
    let res = post_form(
        &s,
        &path,
        format!("{}{}", file("a.txt", "the first file"), end()),
    )
    .await;
    assert_eq!(res.status(), 201);
    let (count, list) = files_of(&s, &id).await;
    assert_eq!((count, list.as_array().unwrap().len()), (1, 1));
    assert_eq!(s.files.len(), 1);
    // An epilogue after the closing boundary is no reason to refuse.
    let body = format!("{}{}trailing epilogue", file("b.txt", "ok"), end());
    assert_eq!(post_form(&s, &path, body).await.status(), 201);
    assert_eq!(files_of(&s, &id).await.0, 2);
    assert_eq!(s.files.len(), 2);
}

#[tokio::test]
async fn a_chat_turn_refused_after_a_file_stores_nothing() {
    let s = start_with(Options {
        max_upload_bytes: 1000,
        ..Options::default()
    })
    .await;
    let c = s.create("alice", "existing").await;
    let id = c["id"].as_str().unwrap().to_owned();
    let f = file("a.txt", "the first file");
    let message = text("message", "what is this?");
    let big = "x".repeat(1001);
    // Forms that go wrong after a file part, each with its status; each is sent for a
    // new conversation and for the existing one.
    let shapes: Vec<(&str, String, u16)> = vec![
        (
            "an unexpected field after the file",
            format!("{message}{f}{}{}", text("other", "y"), end()),
            400,
        ),
        (
            "a title after the file",
            format!("{message}{f}{}{}", text("title", "late"), end()),
            400,
        ),
        ("files but no message", format!("{f}{}", end()), 400),
        (
            "a second file over the upload limit",
            format!("{message}{f}{}{}", file("big.bin", &big), end()),
            413,
        ),
        (
            "a message over its limit after the file",
            format!(
                "{f}{}{}",
                text(
                    "message",
                    &"m".repeat(chatvault_core::MAX_MESSAGE_BYTES + 1)
                ),
                end()
            ),
            413,
        ),
        (
            "cut before the closing boundary",
            format!("{message}{f}--{BOUNDARY}"),
            400,
        ),
        (
            "cut in the second file's data",
            format!("{message}{f}{}", cut(&file("b.txt", "cut short"), 5)),
            400,
        ),
    ];
    for (shape, body, status) in shapes {
        // A new conversation: it is removed again, with its file.
        let p = problem(post_form(&s, "/chat", body.clone()).await, status).await;
        assert_ne!(p["kind"], "backend", "{shape}");
        assert_eq!(conversations(&s).await, vec![id.clone()], "{shape}");
        assert_eq!(s.files.len(), 0, "{shape}: no bytes in the files backend");
        // The existing conversation: its counts and attachments are unchanged.
        let body = format!("{}{body}", text("conversation_id", &id));
        problem(post_form(&s, "/chat", body).await, status).await;
        assert_eq!(files_of(&s, &id).await, (0, json!([])), "{shape}");
        assert_eq!(s.files.len(), 0, "{shape}: no bytes in the files backend");
        let messages: Value = s
            .get("alice", &format!("/conversations/{id}/messages"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(messages["items"], json!([]), "{shape}: no message");
    }
    // A part that is not UTF-8 after the file.
    let mut body =
        format!("{f}--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\n")
            .into_bytes();
    body.extend_from_slice(b"\xff\xfe\r\n");
    body.extend_from_slice(end().as_bytes());
    problem(post_form(&s, "/chat", body).await, 400).await;
    assert_eq!(conversations(&s).await, vec![id.clone()]);
    assert_eq!(s.files.len(), 0);
    // The same turn, well formed, is stored: the checks above can see it.
    let body = format!("{}{message}{f}{}", text("conversation_id", &id), end());
    let res = post_form(&s, "/chat", body).await;
    assert_eq!(res.status(), 201);
    assert_eq!(files_of(&s, &id).await.0, 1);
    assert_eq!(s.files.len(), 1);
}

#[tokio::test]
async fn a_chat_turn_whose_message_fails_to_store_keeps_no_file() {
    let s = start().await;
    let c = s.create("alice", "existing").await;
    let id = c["id"].as_str().unwrap().to_owned();
    let form = || {
        format!(
            "{}{}{}{}",
            text("message", "what is this?"),
            file("a.txt", "one"),
            file("b.txt", "two"),
            end()
        )
    };
    let fault = || Error::backend("test", "the append failed");
    // A new conversation.
    s.messages.fail_next_call_of("append_messages", fault);
    let p = problem(post_form(&s, "/chat", form()).await, 500).await;
    assert_eq!(p["kind"], "backend");
    assert_eq!(s.messages.faults_raised(), 1, "the append failed");
    assert_eq!(conversations(&s).await, vec![id.clone()]);
    assert_eq!(s.files.len(), 0);
    // An existing conversation.
    s.messages.fail_next_call_of("append_messages", fault);
    let body = format!("{}{}", text("conversation_id", &id), form());
    problem(post_form(&s, "/chat", body).await, 500).await;
    assert_eq!(s.messages.faults_raised(), 2, "the append failed");
    assert_eq!(files_of(&s, &id).await, (0, json!([])));
    assert_eq!(s.files.len(), 0);
}
