//! ChatGPT's export: the tree, the parts, metadata, times, attachments, idempotence,
//! a malformed conversation, the dry run.
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

async fn imported_zip() -> (tempfile::TempDir, chatvault_archive::Store) {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("export.zip");
    zip_dir(&fixture("chatgpt").join("export"), &zip);
    let store = common::memory();
    let report = import(Format::ChatGpt, &zip, &store).await;
    assert_eq!(report.conversations, 4);
    assert_eq!(report.conversations_created, 3, "{report:?}");
    assert_eq!(report.messages_added, 9 + 6);
    assert_eq!(report.files_added, 2);
    (dir, store)
}

#[tokio::test]
async fn the_tree_is_the_sources() {
    let (_dir, store) = imported_zip().await;
    let c = conversation(&store, "conv-a").await;
    let tree = tree(&store, c.id()).await;
    let parent_of = |s: &str| tree.iter().find(|(id, _)| id == s).unwrap().1.clone();
    // The hidden system node is kept, beside the path; the empty root is not a message.
    assert_eq!(tree.len(), 9);
    assert!(!tree.iter().any(|(id, _)| id == "root-node"));
    assert_eq!(parent_of("sys"), None);
    assert_eq!(parent_of("u1"), None);
    assert_eq!(parent_of("u1b"), None);
    assert_eq!(parent_of("a1"), some("u1"));
    assert_eq!(parent_of("t1"), some("a2"));
    assert_eq!(parent_of("a3"), some("t1"));
    assert_eq!(parent_of("a3b"), some("t1"));
    assert_eq!(parent_of("a4"), some("u1b"));
    // Parents are stored before their children.
    let pos = |s: &str| tree.iter().position(|(id, _)| id == s).unwrap();
    for (id, parent) in &tree {
        if let Some(p) = parent {
            assert!(pos(p) < pos(id), "{p} after {id}");
        }
    }
    // The active leaf is current_node (a3), not the newest (a4).
    assert_eq!(active_path(&c).await, ["u1", "a1", "a2", "t1", "a3"]);
    assert_eq!(c.record().summary().message_count, 5);
    let mut c = c;
    let a3 = message(&store, c.id(), "a3").await;
    let siblings = c.branches().siblings(&a3.id).await.unwrap();
    let ids: Vec<String> = siblings.messages.iter().map(sid).collect();
    assert_eq!(ids, ["a3", "a3b"]);
    assert_eq!(siblings.index, 0);
    let u1 = message(&store, c.id(), "u1").await;
    let firsts = c.branches().siblings(&u1.id).await.unwrap();
    let ids: Vec<String> = firsts.messages.iter().map(sid).collect();
    assert_eq!(ids, ["sys", "u1", "u1b"]);
}

#[tokio::test]
async fn parts_metadata_and_times() {
    let (_dir, store) = imported_zip().await;
    let c = conversation(&store, "conv-a").await;
    let id = c.id().clone();
    assert_eq!(c.title(), Some("Trip to Oslo"));
    assert_eq!(c.record().created_at.timestamp_millis(), 1_700_000_000_500);
    assert_eq!(c.metadata()["chatgpt"]["default_model_slug"], "gpt-4o");

    let u1 = message(&store, &id, "u1").await;
    assert_eq!(u1.role, Role::User);
    assert_eq!(u1.created_at.timestamp_micros(), 1_700_000_010_123_456);
    assert_eq!(u1.parts.len(), 3);
    let Part::File(image) = &u1.parts[0] else {
        panic!("{:?}", u1.parts[0])
    };
    let FileSource::Attachment { file_id } = &image.source else {
        panic!("the image's bytes were in the zip")
    };
    assert_eq!(image.media_type.as_ref().unwrap().as_str(), "image/png");
    let bytes = c.file_content(file_id).await.unwrap().unwrap();
    assert_eq!(&bytes[..], b"\x89PNG\r\n\x1a\nphoto-bytes");
    assert_eq!(
        c.file(file_id).unwrap().metadata["source"]["pointer"],
        "file-service://file-Img1"
    );
    assert_eq!(
        u1.parts[1].as_text(),
        Some("Plan a trip to Oslo with this photo in mind.")
    );
    let Part::File(pdf) = &u1.parts[2] else {
        panic!()
    };
    assert_eq!(
        pdf.source,
        FileSource::Url {
            url: "file-service://file-Doc9".into()
        }
    );
    assert_eq!(pdf.filename.as_deref(), Some("notes.pdf"));
    assert_eq!(
        source(&u1.metadata),
        &json!({"format": "chatgpt", "conversation_id": "conv-a", "message_id": "u1", "parent_id": "sys"})
    );
    assert_eq!(u1.metadata["chatgpt"]["metadata"]["request_id"], "req-1");

    // No create_time: the parent's.
    let a1 = message(&store, &id, "a1").await;
    assert_eq!(a1.created_at, u1.created_at);
    let Part::Reasoning(r) = &a1.parts[0] else {
        panic!()
    };
    assert_eq!(
        r.text.as_deref(),
        Some("Planning\n\nOslo in winter is cold.")
    );

    let a2 = message(&store, &id, "a2").await;
    let call = a2.tool_calls().next().unwrap();
    assert_eq!((call.id.as_str(), call.name.as_str()), ("a2", "python"));
    assert_eq!(call.arguments, json!({"query": "Oslo weather"}));
    let t1 = message(&store, &id, "t1").await;
    assert_eq!(t1.role, Role::Tool);
    let result = t1.tool_results().next().unwrap();
    assert_eq!(result.call_id, "a2");
    assert_eq!(result.content, vec![Part::text("-3 C, snow")]);
    assert_eq!(t1.metadata["chatgpt"]["author_name"], "python");

    let a3 = message(&store, &id, "a3").await;
    assert_eq!(a3.metadata["chatgpt"]["metadata"]["model_slug"], "gpt-4o");
    assert_eq!(a3.created_at.timestamp(), 1_700_000_050);
    let a3b = message(&store, &id, "a3b").await;
    let Part::Provider(p) = &a3b.parts[0] else {
        panic!()
    };
    assert_eq!(
        (p.provider.as_str(), p.kind.as_str()),
        ("chatgpt", "weird_new_type")
    );
    assert_eq!(p.data["payload"], json!({"x": 1}));
    let a4 = message(&store, &id, "a4").await;
    assert_eq!(a4.status, MessageStatus::Interrupted);
    let u1b = message(&store, &id, "u1b").await;
    assert!(matches!(
        &u1b.parts[1],
        Part::File(f) if matches!(f.source, FileSource::Attachment { .. })
    ));
}

#[tokio::test]
async fn tools_hidden_context_and_empty_conversations() {
    let (_dir, store) = imported_zip().await;
    let d = conversation(&store, "conv-d").await;
    assert_eq!(active_path(&d).await, ["d2", "d3", "d4", "d5", "d6"]);
    let d1 = message(&store, d.id(), "d1").await;
    assert_eq!(d1.parent, None);
    assert_eq!(d1.metadata["source"]["hidden"], true);
    assert!(matches!(&d1.parts[0], Part::Provider(p) if p.kind == "user_editable_context"));
    let d3 = message(&store, d.id(), "d3").await;
    let call = d3.tool_calls().next().unwrap();
    assert_eq!(call.name, "browser");
    assert_eq!(call.arguments, json!("search(\"news\")"));
    let d4 = message(&store, d.id(), "d4").await;
    let result = d4.tool_results().next().unwrap();
    assert_eq!(result.call_id, "d3");
    assert_eq!(result.content, vec![Part::text("Headline: snow in Oslo")]);
    let b = conversation(&store, "conv-b").await;
    assert!(b.is_archived());
    assert_eq!(b.message_count(), 0);
}

#[tokio::test]
async fn a_malformed_conversation_is_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("export.zip");
    zip_dir(&fixture("chatgpt").join("export"), &zip);
    let store = common::memory();
    let report = import(Format::ChatGpt, &zip, &store).await;
    assert_eq!(report.failed.len(), 1);
    let f = &report.failed[0];
    assert_eq!(f.conversation.as_deref(), Some("conv-c"));
    assert_eq!(f.index, 3);
    assert_eq!(f.field, "message n2: parent");
    assert!(f.reason.contains("ghost"), "{f}");
    assert!(
        f.to_string()
            .starts_with("conversation conv-c (\"Broken one\"): message n2")
    );
    // Nothing of it was written; the others were.
    let vault = vault(&store);
    let listed = vault
        .list_conversations(
            &owner(),
            &chatvault_core::ListOptions::new().include_archived(true),
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 3);
    assert!(
        !listed
            .items
            .iter()
            .any(|s| s.title.as_deref() == Some("Broken one"))
    );
}

#[tokio::test]
async fn importing_again_adds_nothing() {
    let (dir, store) = imported_zip().await;
    let zip = dir.path().join("export.zip");
    let again = import(Format::ChatGpt, &zip, &store).await;
    assert!(again.added_nothing(), "{again:?}");
    assert_eq!(again.conversations_present, 3);
    assert_eq!(again.messages_present, 15);
    assert_eq!(again.files_present, 2);
    assert_eq!(again.bytes_uploaded, 0);
    // The plain conversations.json names the same ids: nothing new either, though it
    // holds no bytes.
    let json = fixture("chatgpt").join("export/conversations.json");
    let plain = import(Format::ChatGpt, &json, &store).await;
    assert_eq!(plain.messages_added, 0);
}

#[tokio::test]
async fn the_dry_run_counts_and_reports_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("export.zip");
    zip_dir(&fixture("chatgpt").join("export"), &zip);
    let store = common::memory();
    let dry = import_as(Format::ChatGpt, &zip, &store, true).await;
    assert_eq!(dry.conversations_created, 3);
    assert_eq!(dry.messages_added, 15);
    assert_eq!(dry.files_added, 2);
    assert_eq!(dry.leaves_set, 1);
    assert_eq!(
        dry.notes
            .count("kept as provider data: chatgpt weird_new_type"),
        1
    );
    assert_eq!(
        dry.notes
            .count("kept as provider data: chatgpt reasoning_recap"),
        1
    );
    assert_eq!(dry.notes.missing_files(), ["file-service://file-Doc9"]);
    let listed = vault(&store)
        .list_conversations(&owner(), &chatvault_core::ListOptions::new())
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    let real = import(Format::ChatGpt, &zip, &store).await;
    assert_eq!(real.notes, dry.notes);
    assert_eq!(real.leaves_set, 1);
}

#[tokio::test]
async fn without_the_zip_files_point_at_their_pointers() {
    let store = common::memory();
    let json = fixture("chatgpt").join("export/conversations.json");
    let report = import(Format::ChatGpt, &json, &store).await;
    assert_eq!(report.files_added, 0);
    assert_eq!(report.notes.missing_count(), 3);
    assert!(
        report
            .notes
            .missing_files()
            .contains(&"sediment://file_00000000abc".to_owned())
    );
    // An unpacked export (a directory) holds the bytes again.
    let store = common::memory();
    let report = import(Format::ChatGpt, &fixture("chatgpt").join("export"), &store).await;
    assert_eq!(report.files_added, 2);
}

#[tokio::test]
async fn a_branch_switched_since_survives_importing_again() {
    let (dir, store) = imported_zip().await;
    let mut c = conversation(&store, "conv-a").await;
    let a4 = message(&store, c.id(), "a4").await;
    c.branches().switch(&a4.id).await.unwrap();
    let again = import(Format::ChatGpt, &dir.path().join("export.zip"), &store).await;
    assert!(again.added_nothing(), "{again:?}");
    assert_eq!(again.leaves_set, 0);
    let c = conversation(&store, "conv-a").await;
    assert_eq!(active_path(&c).await, ["u1b", "a4"]);
}
