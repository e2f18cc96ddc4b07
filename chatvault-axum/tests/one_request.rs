//! Issue 20, item 6: an HTTP append is one backend request. The owner is checked inside
//! the backend's append (`append_messages_as`), not by reading the conversation first.

// Helpers outside #[test] fns: their unwraps are test assertions too.
#![allow(clippy::unwrap_used)]

mod common;

use common::{problem, start};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posting_a_message_is_one_backend_call() {
    let server = start().await;
    let created = server.create("alice", "t").await;
    let id = created["id"].as_str().unwrap();
    server.messages.take_calls();

    let stored = server.say("alice", id, "user", "hello").await;
    assert_eq!(stored["seq"], 1);
    assert_eq!(server.messages.take_calls(), ["append_messages"]);

    // A retry with the same id: still one call, and stored once.
    let message = json!({ "role": "user", "text": "again", "id": "m-retry" });
    for _ in 0..2 {
        let res = server
            .post("alice", &format!("/conversations/{id}/messages"))
            .json(&message)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        assert_eq!(server.messages.take_calls(), ["append_messages"]);
    }
    let head = server.vault.get_conversation(&id.parse().unwrap()).await;
    assert_eq!(head.unwrap().unwrap().message_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn someone_elses_conversation_is_404_in_one_call_and_nothing_is_stored() {
    let server = start().await;
    let created = server.create("alice", "t").await;
    let id = created["id"].as_str().unwrap();
    server.say("alice", id, "user", "mine").await;
    server.messages.take_calls();

    let res = server
        .post("mallory", &format!("/conversations/{id}/messages"))
        .json(&json!({ "role": "user", "text": "not yours" }))
        .send()
        .await
        .unwrap();
    problem(res, 404).await;
    assert_eq!(server.messages.take_calls(), ["append_messages"]);
    let conversation = server
        .vault
        .get_conversation(&id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conversation.message_count(), 1, "nothing stored");
    let texts: Vec<String> = conversation
        .history()
        .await
        .unwrap()
        .iter()
        .map(|m| m.content.clone())
        .collect();
    assert_eq!(texts, ["mine"]);
}
