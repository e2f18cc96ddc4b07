//! A redacted message is left out of the model's view, and so is a tool result whose call
//! it held.

#![allow(clippy::unwrap_used)] // tests may unwrap

use chatvault_core::{ChatVault, NewMessage, Part, Role, ToolCall, ToolResult};
use chatvault_llm::{FileMode, HistoryOptions, PrepareHistory};
use chatvault_memory::{MemoryFiles, MemoryMessages};

#[tokio::test]
async fn redacted_messages_are_left_out_of_the_history() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let mut c = vault.create_conversation(None).await.unwrap();
    c.add_message(Role::User, "hello").await.unwrap();
    let secret = c.add_message(Role::User, "my key is sk-123").await.unwrap();
    let call = c
        .add(NewMessage::with_parts(
            Role::Assistant,
            vec![Part::ToolCall(ToolCall {
                id: "call-1".into(),
                name: "lookup".into(),
                arguments: serde_json::json!({"key": "sk-123"}),
            })],
        ))
        .await
        .unwrap();
    c.add(NewMessage::with_parts(
        Role::Tool,
        vec![Part::ToolResult(ToolResult {
            call_id: "call-1".into(),
            content: vec![Part::text("found")],
            is_error: false,
        })],
    ))
    .await
    .unwrap();
    c.add_message(Role::Assistant, "done").await.unwrap();
    let before = c
        .prepare_history(&HistoryOptions::new(FileMode::Base64))
        .await
        .unwrap();
    assert_eq!(before.len(), 5);

    c.redact(&secret.id, "pasted a key").await.unwrap();
    c.redact(&call.id, "pasted a key").await.unwrap();
    let after = c
        .prepare_history(&HistoryOptions::new(FileMode::Base64))
        .await
        .unwrap();
    let texts: Vec<String> = after
        .iter()
        .map(|m| format!("{}: {}", m.role.as_str(), chatvault_core::text_of(&m.parts)))
        .collect();
    assert_eq!(texts, ["user: hello", "assistant: done"]);
    // The transcript keeps both tombstones in place.
    assert_eq!(c.messages().await.unwrap().len(), 5);
}
