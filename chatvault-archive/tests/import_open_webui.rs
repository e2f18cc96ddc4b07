//! Open WebUI's export: the history tree and its current leaf, reasoning and tool call
//! blocks in the text, data-URL images, files without bytes, a chat without history, a
//! cycle.
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
    let path = fixture("open-webui").join("chats.json");
    let report = import(Format::OpenWebUi, &path, &store).await;
    assert_eq!(report.conversations, 3);
    assert_eq!(report.conversations_created, 2, "{report:?}");
    assert_eq!(report.messages_added, 4 + 3);
    assert_eq!(report.files_added, 1);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].conversation.as_deref(), Some("ow-3"));
    assert!(report.failed[0].field.ends_with(": parent"));
    assert_eq!(report.failed[0].reason, "the parents form a cycle");
    assert_eq!(report.notes.missing_files(), ["/api/v1/files/f-77"]);
    assert_eq!(
        report
            .notes
            .count("kept as provider data: open-webui details code_interpreter"),
        1
    );
    store
}

#[tokio::test]
async fn the_history_tree_and_its_parts() {
    let store = imported().await;
    let c = conversation(&store, "ow-1").await;
    assert_eq!(c.title(), Some("Regenerated answer"));
    assert_eq!(c.record().created_at.timestamp(), 1_710_000_000);
    assert_eq!(
        c.metadata()["open-webui"]["meta"],
        json!({"tags": ["poems"]})
    );
    let tree = tree(&store, c.id()).await;
    let parent_of = |s: &str| tree.iter().find(|(id, _)| id == s).unwrap().1.clone();
    assert_eq!(parent_of("w1"), None);
    assert_eq!(parent_of("w2"), some("w1"));
    assert_eq!(parent_of("w3"), some("w1"));
    assert_eq!(parent_of("w4"), some("w2"));
    assert_eq!(active_path(&c).await, ["w1", "w3"]);

    let w1 = message(&store, c.id(), "w1").await;
    assert_eq!(w1.created_at.timestamp(), 1_710_000_010);
    let Part::File(image) = &w1.parts[1] else {
        panic!("{:?}", w1.parts)
    };
    let FileSource::Attachment { file_id } = &image.source else {
        panic!()
    };
    assert_eq!(
        &c.file_content(file_id).await.unwrap().unwrap()[..],
        b"image-bytes"
    );
    let Part::File(pdf) = &w1.parts[2] else {
        panic!()
    };
    assert_eq!(pdf.media_type.as_ref().unwrap().as_str(), "application/pdf");

    let w2 = message(&store, c.id(), "w2").await;
    let kinds: Vec<&str> = w2.parts.iter().map(Part::kind).collect();
    assert_eq!(
        kinds,
        ["text", "tool_call", "tool_result", "text", "provider"]
    );
    let call = w2.tool_calls().next().unwrap();
    assert_eq!(
        (call.id.as_str(), call.name.as_str()),
        ("call_9", "get_time")
    );
    assert_eq!(call.arguments, json!({"tz": "UTC"}));
    assert_eq!(
        w2.tool_results().next().unwrap().content,
        vec![Part::text("12:00")]
    );
    assert_eq!(w2.parts[3].as_text(), Some("It is noon."));

    let w3 = message(&store, c.id(), "w3").await;
    let Part::Reasoning(r) = &w3.parts[0] else {
        panic!("{:?}", w3.parts)
    };
    assert_eq!(
        r.text.as_deref(),
        Some("The user wants a haiku.\nKeep it short.")
    );
    assert_eq!(w3.parts[1].as_text(), Some("Snow falls on the fjord"));
    let usage = w3.usage.as_ref().unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (12, 7));
    assert_eq!(usage.model.as_deref(), Some("llama3"));
    assert_eq!(w3.metadata["open-webui"]["modelName"], "Llama 3");
    assert_eq!(w3.metadata["source"]["parent_id"], "w1");
}

#[tokio::test]
async fn a_chat_without_history_is_its_messages_in_order() {
    let store = imported().await;
    let c = conversation(&store, "ow-2").await;
    assert!(c.is_archived());
    assert_eq!(active_path(&c).await, ["x1", "x2", "x3"]);
    let x1 = message(&store, c.id(), "x1").await;
    assert_eq!(x1.role, Role::System);
    let x3 = message(&store, c.id(), "x3").await;
    assert_eq!(x3.status, MessageStatus::Failed);
    assert_eq!(
        x3.metadata["open-webui"]["error"]["content"],
        "model offline"
    );
}

#[tokio::test]
async fn importing_again_adds_nothing() {
    let store = imported().await;
    let path = fixture("open-webui").join("chats.json");
    let again = import(Format::OpenWebUi, &path, &store).await;
    assert!(again.added_nothing(), "{again:?}");
    assert_eq!(again.messages_present, 7);
}
