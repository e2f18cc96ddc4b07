//! Claude's export: linear and tree conversations, content blocks, attachments with and
//! without bytes, a malformed conversation, idempotence.
#![allow(clippy::unwrap_used)]

mod common;
mod import_util;

use chatvault_archive::import::Format;
use chatvault_core::{FileSource, Part, Role};
use import_util::*;
use serde_json::json;

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

async fn imported() -> chatvault_archive::Store {
    let store = common::memory();
    let report = import(
        Format::Claude,
        &fixture("claude").join("conversations.json"),
        &store,
    )
    .await;
    assert_eq!(report.conversations, 4);
    assert_eq!(report.conversations_created, 3, "{report:?}");
    assert_eq!(report.messages_added, 3 + 5);
    assert_eq!(report.files_added, 1);
    assert_eq!(report.failed.len(), 1);
    let f = &report.failed[0];
    assert_eq!(f.conversation.as_deref(), Some("c-bad"));
    assert_eq!(f.field, "chat_messages[0].created_at");
    assert!(f.reason.contains("yesterday-ish"));
    assert_eq!(
        report
            .notes
            .count("kept as provider data: claude token_budget"),
        1
    );
    assert_eq!(
        report
            .notes
            .count("kept as provider data: claude tool_result content"),
        1
    );
    assert_eq!(report.notes.missing_count(), 2);
    store
}

#[tokio::test]
async fn a_linear_conversation_and_its_blocks() {
    let store = imported().await;
    let c = conversation(&store, "c-linear").await;
    assert_eq!(c.title(), Some("Linear chat"));
    assert_eq!(active_path(&c).await, ["m1", "m2", "m3"]);
    assert_eq!(tree(&store, c.id()).await[1], ("m2".into(), some("m1")));
    let m1 = message(&store, c.id(), "m1").await;
    assert_eq!(m1.role, Role::User);
    assert_eq!(m1.created_at.timestamp(), 1_714_557_601);
    assert_eq!(m1.parts[0].as_text(), Some("Summarise the attached notes."));
    // The attachment's extracted text is its bytes; the file has none.
    let Part::File(notes) = &m1.parts[1] else {
        panic!("{:?}", m1.parts)
    };
    let FileSource::Attachment { file_id } = &notes.source else {
        panic!()
    };
    assert_eq!(
        &c.file_content(file_id).await.unwrap().unwrap()[..],
        b"hello notes"
    );
    assert_eq!(c.file(file_id).unwrap().filename, "notes.txt");
    let Part::File(diagram) = &m1.parts[2] else {
        panic!()
    };
    assert_eq!(
        diagram.source,
        FileSource::Url {
            url: "claude-file:diagram.png".into()
        }
    );
    let m2 = message(&store, c.id(), "m2").await;
    let kinds: Vec<&str> = m2.parts.iter().map(Part::kind).collect();
    assert_eq!(
        kinds,
        ["reasoning", "tool_call", "tool_result", "text", "provider"]
    );
    let Part::Reasoning(r) = &m2.parts[0] else {
        panic!()
    };
    assert_eq!(
        (r.text.as_deref(), r.signature.as_deref()),
        (Some("Let me think."), Some("sig-abc"))
    );
    assert_eq!(
        m2.tool_calls().next().unwrap().arguments,
        json!({"query": "hello"})
    );
    let result = m2.tool_results().next().unwrap();
    assert_eq!(result.call_id, "toolu_1");
    assert_eq!(result.content[0], Part::text("found hello"));
    assert_eq!(result.content[1].kind(), "provider");
    // The answer's text is the text block; `text` (thinking + answer) is kept as it was.
    assert_eq!(m2.content(), "The notes say hello.");
    assert_eq!(
        m2.metadata["claude"]["text"],
        "Let me think. The notes say hello."
    );
    assert_eq!(m2.created_at.timestamp_millis(), 1_714_557_605_500);
    // No content blocks: the top-level text.
    let m3 = message(&store, c.id(), "m3").await;
    assert_eq!(m3.content(), "Thanks!");
    assert_eq!(
        source(&m3.metadata),
        &json!({"format": "claude", "conversation_id": "c-linear", "message_id": "m3", "parent_id": "m2"})
    );
}

#[tokio::test]
async fn a_tree_conversation_follows_its_parents() {
    let store = imported().await;
    let c = conversation(&store, "c-tree").await;
    let tree = tree(&store, c.id()).await;
    let parent_of = |s: &str| tree.iter().find(|(id, _)| id == s).unwrap().1.clone();
    assert_eq!(parent_of("q1"), None);
    assert_eq!(parent_of("q2"), None);
    assert_eq!(parent_of("r1"), some("q1"));
    assert_eq!(parent_of("r2"), some("q1"));
    assert_eq!(parent_of("t2"), some("r1"));
    assert_eq!(active_path(&c).await, ["q1", "r1", "t2"]);
    let mut c = c;
    let r1 = message(&store, c.id(), "r1").await;
    let siblings = c.branches().siblings(&r1.id).await.unwrap();
    assert_eq!(
        siblings.messages.iter().map(sid).collect::<Vec<_>>(),
        ["r1", "r2"]
    );
    let empty = conversation(&store, "c-empty").await;
    assert_eq!(empty.title(), None);
    assert_eq!(empty.message_count(), 0);
}

#[tokio::test]
async fn importing_again_adds_nothing() {
    let store = imported().await;
    let again = import(
        Format::Claude,
        &fixture("claude").join("conversations.json"),
        &store,
    )
    .await;
    assert!(again.added_nothing(), "{again:?}");
    assert_eq!(again.messages_present, 8);
    assert_eq!(again.files_present, 1);
    assert_eq!(again.failed.len(), 1);
}

#[tokio::test]
async fn the_sources_last_update_is_kept_in_metadata() {
    let store = imported().await;
    let c = conversation(&store, "c-linear").await;
    assert_eq!(
        c.metadata()["source"],
        json!({"format": "claude", "conversation_id": "c-linear",
               "updated_at": "2024-05-01T10:05:00.123456+00:00"})
    );
}
