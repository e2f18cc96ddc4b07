//! `POST /conversations/{id}/messages/{message_id}/redact` over real HTTP: the tombstone,
//! the attachments deleted with it, and the refusals that write nothing.

// Helpers outside #[test] fns: their unwraps are test assertions too.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use chatvault_core::{ConversationId, ReplyOptions};
use common::{Server, problem, start};
use serde_json::{Value, json};

/// The path of the redact route.
fn redact_path(id: &str, message_id: &str) -> String {
    format!("/conversations/{id}/messages/{message_id}/redact")
}

/// A GET that must answer 200: its JSON.
async fn get_json(s: &Server, user: &str, path: &str) -> Value {
    let res = s.get(user, path).send().await.unwrap();
    assert_eq!(res.status(), 200, "GET {path}");
    res.json().await.unwrap()
}

/// Uploads a text file to `id` and returns its id.
async fn upload(s: &Server, id: &str, name: &str, data: &[u8]) -> String {
    let res = s
        .upload("alice", id, name, "text/plain", data.to_vec())
        .await;
    assert_eq!(res.status(), 201);
    let file: Value = res.json().await.unwrap();
    file["id"].as_str().unwrap().to_owned()
}

/// Adds a message of `parts` to `id` as alice and returns it.
async fn add_parts(s: &Server, id: &str, parts: Value) -> Value {
    let res = s
        .post("alice", &format!("/conversations/{id}/messages"))
        .json(&json!({ "role": "user", "parts": parts }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{:?}", res.text().await);
    res.json().await.unwrap()
}

/// Alice's conversation: a message holding a secret and two attachments (`only`,
/// referenced by it alone, and `shared`, also referenced by the reply after it), and that
/// reply. Returns the conversation id, the two messages, and the ids of `only` and
/// `shared`.
async fn secret_conversation(s: &Server) -> (String, Value, Value, String, String) {
    let c = s.create("alice", "secrets").await;
    let id = c["id"].as_str().unwrap().to_owned();
    let only = upload(s, &id, "only.txt", b"only mine").await;
    let shared = upload(s, &id, "shared.txt", b"shared bytes").await;
    let secret = add_parts(
        s,
        &id,
        json!([
            {"type": "text", "text": "my password is hunter2"},
            {"type": "file", "file_id": only},
            {"type": "file", "file_id": shared},
        ]),
    )
    .await;
    let reply = add_parts(
        s,
        &id,
        json!([
            {"type": "text", "text": "noted, see the file"},
            {"type": "file", "file_id": shared},
        ]),
    )
    .await;
    (id, secret, reply, only, shared)
}

/// What a refused redaction must leave alone: alice's messages of `id` (every field,
/// revision included), its attachments, and the bytes of `files`.
async fn snapshot(s: &Server, id: &str, files: &[&str]) -> Value {
    let messages = get_json(s, "alice", &format!("/conversations/{id}/messages")).await;
    let detail = get_json(s, "alice", &format!("/conversations/{id}")).await;
    let mut bytes = Vec::new();
    for file in files {
        let res = s
            .get(
                "alice",
                &format!("/conversations/{id}/files/{file}/content"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{file} can be downloaded");
        bytes.push(String::from_utf8(res.bytes().await.unwrap().to_vec()).unwrap());
    }
    json!({ "messages": messages, "files": detail["files"], "bytes": bytes })
}

#[tokio::test]
async fn redact_leaves_a_tombstone_and_deletes_what_only_it_held() {
    let s = start().await;
    let (id, secret, reply, only, shared) = secret_conversation(&s).await;
    let hits = get_json(&s, "alice", "/search?q=hunter2").await;
    assert_eq!(hits["items"].as_array().unwrap().len(), 1);
    let message_id = secret["id"].as_str().unwrap();

    let res = s
        .post("alice", &redact_path(&id, message_id))
        .json(&json!({ "reason": "pasted a password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{:?}", res.text().await);
    let redacted: Value = res.json().await.unwrap();
    let tombstone = &redacted["message"];
    assert_eq!(tombstone["id"], secret["id"]);
    assert_eq!(tombstone["seq"], secret["seq"]);
    assert_eq!(tombstone["role"], "user");
    assert_eq!(tombstone["parent"], secret["parent"]);
    assert_eq!(tombstone["created_at"], secret["created_at"]);
    assert_eq!(tombstone["parts"], json!([]));
    assert_eq!(tombstone["content"], "");
    assert_eq!(tombstone["sibling_count"], 1);
    assert_eq!(
        tombstone["revision"].as_u64().unwrap(),
        secret["revision"].as_u64().unwrap() + 1
    );
    let metadata = tombstone["metadata"].as_object().unwrap();
    assert_eq!(metadata.len(), 1, "only the redaction: {metadata:?}");
    let redaction = &metadata[chatvault_core::REDACTION_KEY];
    assert_eq!(redaction["reason"], "pasted a password");
    assert!(redaction["at"].is_string(), "{redaction}");
    assert_eq!(redacted["files_deleted"], json!([only]));

    // The window of messages shows the tombstone in its place, the reply unchanged.
    let page = get_json(&s, "alice", &format!("/conversations/{id}/messages")).await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(&items[0], tombstone);
    assert_eq!(items[1], reply);
    let one = get_json(&s, "alice", &format!("/conversations/{id}/messages/1")).await;
    assert_eq!(&one, tombstone);

    // The attachment only it referenced is gone, bytes and record; the shared one stays.
    for path in [
        format!("/conversations/{id}/files/{only}/content"),
        format!("/conversations/{id}/files/{only}"),
        format!("/conversations/{id}/files/{only}/url"),
    ] {
        problem(s.get("alice", &path).send().await.unwrap(), 404).await;
    }
    let files = get_json(&s, "alice", &format!("/conversations/{id}/files")).await;
    assert_eq!(files.as_array().unwrap().len(), 1);
    assert_eq!(files[0]["id"], shared.as_str());
    let record = s
        .vault
        .get_conversation(&id.parse::<ConversationId>().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(record.files().iter().all(|f| f.id.as_str() != only));
    assert_eq!(s.files.len(), 1, "the only-referenced bytes are deleted");
    let res = s
        .get(
            "alice",
            &format!("/conversations/{id}/files/{shared}/content"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"shared bytes");

    // Search no longer finds its words.
    let hits = get_json(&s, "alice", "/search?q=hunter2").await;
    assert_eq!(hits["items"], json!([]));

    // Redacting the tombstone again replaces its reason and deletes nothing more.
    let again: Value = s
        .post("alice", &redact_path(&id, message_id))
        .json(&json!({ "reason": "second thoughts" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        again["message"]["metadata"][chatvault_core::REDACTION_KEY]["reason"],
        "second thoughts"
    );
    assert_eq!(again["files_deleted"], json!([]));
}

#[tokio::test]
async fn another_users_conversation_is_404_like_a_missing_one_and_unchanged() {
    let s = start().await;
    let (id, secret, _, only, shared) = secret_conversation(&s).await;
    let message_id = secret["id"].as_str().unwrap();
    let before = snapshot(&s, &id, &[&only, &shared]).await;
    let missing = ConversationId::new().to_string();
    s.messages.take_calls();

    let mut details = Vec::new();
    for target in [&id, &missing] {
        let res = s
            .post("bob", &redact_path(target, message_id))
            .json(&json!({ "reason": "bob wants it gone" }))
            .send()
            .await
            .unwrap();
        let body = problem(res, 404).await;
        assert_eq!(body["kind"], "not_found");
        details.push(
            body["detail"]
                .as_str()
                .unwrap()
                .replace(target.as_str(), "ID"),
        );
    }
    assert_eq!(details[0], details[1], "no difference leaks");
    let calls = s.messages.take_calls();
    assert!(
        !calls
            .iter()
            .any(|c| ["update_message", "remove_file"].contains(c)),
        "nothing written: {calls:?}"
    );
    assert_eq!(snapshot(&s, &id, &[&only, &shared]).await, before);
}

#[tokio::test]
async fn bad_reasons_and_bodies_are_400_and_write_nothing() {
    let s = start().await;
    let (id, secret, _, only, shared) = secret_conversation(&s).await;
    let path = redact_path(&id, secret["id"].as_str().unwrap());
    let before = snapshot(&s, &id, &[&only, &shared]).await;
    let too_long = "x".repeat(chatvault_core::MAX_REDACTION_REASON + 1);
    let bodies = [
        json!({ "reason": "" }).to_string(),
        json!({ "reason": " \n\t " }).to_string(),
        json!({ "reason": too_long }).to_string(),
        "{}".to_owned(),
        json!({ "reason": 5 }).to_string(),
        json!({ "reason": "ok", "colour": "red" }).to_string(),
        r#"["reason"]"#.to_owned(),
        "null".to_owned(),
        "{not json".to_owned(),
    ];
    for body in &bodies {
        let res = s
            .post("alice", &path)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let problem = problem(res, 400).await;
        assert_eq!(problem["kind"], "invalid_input", "{body}: {problem}");
    }
    // No body at all.
    problem(s.post("alice", &path).send().await.unwrap(), 400).await;
    assert_eq!(snapshot(&s, &id, &[&only, &shared]).await, before);

    // The longest reason allowed is taken.
    let longest = "x".repeat(chatvault_core::MAX_REDACTION_REASON);
    let res = s
        .post("alice", &path)
        .json(&json!({ "reason": longest }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn unknown_messages_and_conversations_are_404_and_write_nothing() {
    let s = start().await;
    let (id, secret, _, only, shared) = secret_conversation(&s).await;
    let before = snapshot(&s, &id, &[&only, &shared]).await;
    let reason = json!({ "reason": "gone" });
    let res = s
        .post("alice", &redact_path(&id, "no-such-message"))
        .json(&reason)
        .send()
        .await
        .unwrap();
    let body = problem(res, 404).await;
    assert!(
        body["detail"].as_str().unwrap().contains("no-such-message"),
        "{body}"
    );
    // A message of another conversation of alice's is not this one's.
    let other = s.create("alice", "other").await;
    let other = other["id"].as_str().unwrap();
    let res = s
        .post("alice", &redact_path(other, secret["id"].as_str().unwrap()))
        .json(&reason)
        .send()
        .await
        .unwrap();
    problem(res, 404).await;
    let missing = ConversationId::new().to_string();
    let res = s
        .post(
            "alice",
            &redact_path(&missing, secret["id"].as_str().unwrap()),
        )
        .json(&reason)
        .send()
        .await
        .unwrap();
    problem(res, 404).await;
    assert_eq!(snapshot(&s, &id, &[&only, &shared]).await, before);
}

#[tokio::test]
async fn a_reply_being_written_is_409_until_it_ends() {
    let s = start().await;
    let c = s.create("alice", "streaming").await;
    let id: ConversationId = c["id"].as_str().unwrap().parse().unwrap();
    s.say("alice", id.as_str(), "user", "Tell me a secret")
        .await;
    let mut chat = s.vault.get_conversation(&id).await.unwrap().unwrap();
    let mut reply = chat
        .begin_reply(ReplyOptions::default().checkpoint_interval(Duration::from_secs(3600)))
        .await
        .unwrap();
    reply.push_text("The secret is").await.unwrap();
    reply.checkpoint().await.unwrap();
    let reply_id = reply.message_id().to_string();
    let path = redact_path(id.as_str(), &reply_id);
    let reason = json!({ "reason": "leaked" });

    let res = s.post("alice", &path).json(&reason).send().await.unwrap();
    let body = problem(res, 409).await;
    assert_eq!(body["kind"], "conflict");
    let streaming = get_json(&s, "alice", &format!("/conversations/{id}/messages/2")).await;
    assert_eq!(streaming["status"], "streaming");
    assert_eq!(streaming["content"], "The secret is");

    // Once it ends, it can be redacted.
    reply.push_text(" 42.").await.unwrap();
    reply.finish(None).await.unwrap();
    let res = s.post("alice", &path).json(&reason).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let redacted: Value = res.json().await.unwrap();
    assert_eq!(redacted["message"]["id"], reply_id.as_str());
    assert_eq!(redacted["message"]["status"], "complete");
    assert_eq!(redacted["message"]["parts"], json!([]));
}
