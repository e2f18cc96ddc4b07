//! LibreChat's export: flat messages and the nested messagesTree, the newest leaf as the
//! active one, content parts, a conversation with a missing id.
#![allow(clippy::unwrap_used)]

mod common;
mod import_util;

use chatvault_archive::import::Format;
use chatvault_core::{FileSource, MessageStatus, Part, Role};
use import_util::*;
use serde_json::json;

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

async fn imported() -> chatvault_archive::Store {
    let store = common::memory();
    let path = fixture("librechat").join("export.json");
    let report = import(Format::LibreChat, &path, &store).await;
    assert_eq!(report.conversations, 3);
    assert_eq!(report.conversations_created, 2, "{report:?}");
    assert_eq!(report.messages_added, 8);
    assert_eq!(report.files_added, 1);
    assert_eq!(report.failed.len(), 1);
    let f = &report.failed[0];
    assert_eq!(
        (
            f.conversation.as_deref(),
            f.field.as_str(),
            f.reason.as_str()
        ),
        (Some("lc-3"), "messages[0].messageId", "is missing")
    );
    assert_eq!(
        f.to_string(),
        "conversation lc-3 (\"Missing ids\"): messages[0].messageId: is missing"
    );
    assert_eq!(
        report
            .notes
            .count("kept as provider data: librechat agent_update"),
        1
    );
    assert_eq!(report.notes.missing_files(), ["/images/u/clock.png"]);
    store
}

#[tokio::test]
async fn flat_messages_and_the_newest_leaf() {
    let store = imported().await;
    let c = conversation(&store, "lc-1").await;
    let tree = tree(&store, c.id()).await;
    let parent_of = |s: &str| tree.iter().find(|(id, _)| id == s).unwrap().1.clone();
    assert_eq!(parent_of("l1"), None);
    assert_eq!(parent_of("l2"), some("l1"));
    assert_eq!(parent_of("l3"), some("l1"));
    assert_eq!(parent_of("l4"), some("l2"));
    assert_eq!(active_path(&c).await, ["l1", "l3"]);
    let l1 = message(&store, c.id(), "l1").await;
    assert_eq!(l1.role, Role::User);
    assert_eq!(l1.metadata["librechat"]["sender"], "User");
    let l2 = message(&store, c.id(), "l2").await;
    assert_eq!(l2.role, Role::Assistant);
    let kinds: Vec<&str> = l2.parts.iter().map(Part::kind).collect();
    assert_eq!(
        kinds,
        [
            "reasoning",
            "tool_call",
            "tool_result",
            "text",
            "file",
            "provider"
        ]
    );
    assert_eq!(
        l2.tool_calls().next().unwrap().arguments,
        json!({"tz": "Asia/Tokyo"})
    );
    assert_eq!(l2.tool_results().next().unwrap().call_id, "call_t");
    assert_eq!(l2.parts[3].as_text(), Some("It is 17:00 in Tokyo."));
    let Part::File(image) = &l2.parts[4] else {
        panic!()
    };
    let FileSource::Attachment { file_id } = &image.source else {
        panic!()
    };
    assert_eq!(
        &c.file_content(file_id).await.unwrap().unwrap()[..],
        b"jpeg-bytes"
    );
    assert_eq!(l2.created_at.timestamp(), 1_725_177_605);
    let l3 = message(&store, c.id(), "l3").await;
    assert_eq!(l3.status, MessageStatus::Interrupted);
    assert_eq!(l3.content(), "Regenerated: 5 PM.");
}

#[tokio::test]
async fn a_nested_tree() {
    let store = imported().await;
    let c = conversation(&store, "lc-2").await;
    let tree = tree(&store, c.id()).await;
    let parent_of = |s: &str| tree.iter().find(|(id, _)| id == s).unwrap().1.clone();
    assert_eq!(parent_of("n2"), some("n1"));
    assert_eq!(parent_of("n3"), some("n1"));
    assert_eq!(parent_of("n4"), some("n3"));
    assert_eq!(active_path(&c).await, ["n1", "n3", "n4"]);
    let n3 = message(&store, c.id(), "n3").await;
    assert_eq!(n3.status, MessageStatus::Failed);
}

#[tokio::test]
async fn importing_again_adds_nothing() {
    let store = imported().await;
    let path = fixture("librechat").join("export.json");
    let again = import(Format::LibreChat, &path, &store).await;
    assert!(again.added_nothing(), "{again:?}");
    assert_eq!(again.messages_present, 8);
}
