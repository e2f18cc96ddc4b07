//! The Python library's stores (chatvault 0.1.0), as its real code wrote them into
//! DynamoDB Local + LocalStack S3 and into its LocalFiles directory (the fixtures and
//! their generator are in tests/fixtures/import/chatvault-py).
#![allow(clippy::unwrap_used)]

mod common;
mod import_util;

use chatvault_archive::Store;
use chatvault_archive::import::Format;
use chatvault_core::{Conversation, ListOptions, Role, UserId};
use import_util::*;
use serde_json::{Value, json};

fn store_dir(name: &str) -> std::path::PathBuf {
    fixture("chatvault-py").join(name)
}

/// The items of a fixture's dump, plain.
fn items(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(store_dir(name).join("items.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["Items"].as_array().unwrap().clone()
}

async fn conversations_of(store: &Store, user: &str) -> Vec<Conversation> {
    let vault = vault(store);
    let user: UserId = user.parse().unwrap();
    let options = ListOptions::new().include_archived(true);
    let page = vault.list_conversations(&user, &options).await.unwrap();
    let mut out = Vec::new();
    for s in page.items {
        out.push(vault.get_conversation(&s.id).await.unwrap().unwrap());
    }
    out
}

async fn check_store(name: &str) {
    let store = common::memory();
    let report = import(Format::ChatVaultPy, &store_dir(name), &store).await;
    assert_eq!(report.conversations, 3, "{report:?}");
    assert_eq!(report.conversations_created, 3);
    assert_eq!(report.messages_added, 4 + 2);
    assert_eq!(report.files_added, 2);
    assert!(report.failed.is_empty());
    assert_eq!(report.notes.missing_count(), 1);
    assert!(report.notes.missing_files()[0].ends_with("/gone.bin"));
    assert_eq!(
        report
            .notes
            .count("chatvault-py message times without a zone (read as UTC)"),
        2
    );
    // Ids and owners are the store's own (alice owns nothing).
    assert!(conversations_of(&store, "alice").await.is_empty());
    let user1 = conversations_of(&store, "user-1").await;
    assert_eq!(user1.len(), 2);
    let trip = user1
        .iter()
        .find(|c| c.title() == Some("Oslo trip"))
        .unwrap();
    let item = items(name)
        .into_iter()
        .find(|i| i["title"]["S"] == "Oslo trip")
        .unwrap();
    assert_eq!(
        trip.id().as_str(),
        item["conversation_id"]["S"].as_str().unwrap()
    );
    assert_eq!(
        trip.record().created_at.timestamp().to_string(),
        item["created_at"]["N"].as_str().unwrap()
    );
    let messages = trip.messages().await.unwrap();
    let roles: Vec<&Role> = messages.iter().map(|m| &m.role).collect();
    assert_eq!(
        roles,
        [&Role::System, &Role::User, &Role::Assistant, &Role::User]
    );
    assert_eq!(messages[3].content(), "Thanks — «merci» 👍");
    assert_eq!(
        messages[2].metadata["chatvault-py"]["metadata"],
        json!({"model": "gpt-4", "tokens": 42})
    );
    assert_eq!(messages[2].parent, Some(messages[1].seq));
    let python: Vec<Value> = serde_json::from_str(item["messages"]["S"].as_str().unwrap()).unwrap();
    let naive = python[1]["timestamp"].as_str().unwrap();
    assert_eq!(
        messages[1]
            .created_at
            .format("%Y-%m-%dT%H:%M:%S%.6f")
            .to_string(),
        naive
    );
    assert_eq!(trip.files().len(), 2);
    let pdf = trip
        .files()
        .iter()
        .find(|f| f.filename == "itinerary.pdf")
        .unwrap();
    assert_eq!(pdf.content_type.as_str(), "application/pdf");
    assert_eq!(
        &trip.file_content(&pdf.id).await.unwrap().unwrap()[..],
        b"%PDF-1.4 fake itinerary"
    );
    let notes = trip
        .files()
        .iter()
        .find(|f| f.filename == "notes.txt")
        .unwrap();
    assert_eq!(
        &trip.file_content(&notes.id).await.unwrap().unwrap()[..],
        "Remember: Oslo Pass ✓".as_bytes()
    );
    assert!(user1.iter().any(|c| c.message_count() == 0));

    let user2 = conversations_of(&store, "user-2").await;
    let odd = &user2[0];
    let messages = odd.messages().await.unwrap();
    assert_eq!(messages[0].role, Role::Other("critic".into()));
    assert!(messages[1].parts.is_empty());
    // The attachment whose bytes are gone stays in the record's metadata.
    assert_eq!(
        odd.metadata()["chatvault-py"]["files"][0]["filename"],
        "gone.bin"
    );
    assert!(odd.files().is_empty());

    let again = import(Format::ChatVaultPy, &store_dir(name), &store).await;
    assert!(again.added_nothing(), "{again:?}");
    assert_eq!((again.messages_present, again.files_present), (6, 2));
}

#[tokio::test]
async fn dynamodb_and_s3() {
    check_store("dynamodb-s3").await;
}

#[tokio::test]
async fn dynamodb_and_local_files() {
    check_store("dynamodb-local").await;
}

#[tokio::test]
async fn a_broken_item_is_reported_and_the_others_go_in() {
    let mut list = items("dynamodb-s3");
    list[0]["messages"]["S"] = json!("[{\"role\": \"user\", \"content\": \"cut");
    list.push(json!({"conversation_id": {"S": "no owner"}, "user_id": {"S": "bad\nuser"}}));
    let dir = tempfile::tempdir().unwrap();
    let doc = json!({"Items": list, "Count": 4});
    std::fs::write(dir.path().join("items.json"), doc.to_string()).unwrap();
    let store = common::memory();
    let report = import(Format::ChatVaultPy, dir.path(), &store).await;
    assert_eq!(report.conversations, 4);
    assert_eq!(report.conversations_created, 2);
    let fields: Vec<&str> = report.failed.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(fields, ["messages", "user_id"]);
    assert!(report.failed[0].reason.starts_with("is not JSON"));
    assert_eq!(report.failed[1].conversation.as_deref(), Some("no owner"));
    assert!(report.failed[0].conversation.is_some());
}

#[tokio::test]
async fn a_conversation_of_the_same_id_made_here_is_left_alone() {
    let item = items("dynamodb-s3")
        .into_iter()
        .find(|i| i["title"]["S"] == "Oslo trip")
        .unwrap();
    let id: chatvault_core::ConversationId = item["conversation_id"]["S"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let store = common::memory();
    let mut native = vault(&store)
        .new_conversation()
        .id(id.clone())
        .user("user-1".parse().unwrap())
        .create()
        .await
        .unwrap();
    native.add_message(Role::User, "made here").await.unwrap();
    let report = import(Format::ChatVaultPy, &store_dir("dynamodb-s3"), &store).await;
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].field, "id");
    assert_eq!(report.conversations_created, 2);
    let native = vault(&store).get_conversation(&id).await.unwrap().unwrap();
    assert_eq!(native.message_count(), 1);
    assert!(native.files().is_empty());
}
