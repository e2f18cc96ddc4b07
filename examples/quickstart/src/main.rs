//! The ChatVault quick start. Run it with `cargo run -p quickstart`, then run it again:
//! the second run resumes what the first one stored.

use std::path::PathBuf;
use std::time::Duration;

use chatvault_core::{ChatVault, ListOptions, Role, UserId};
use chatvault_local::{LocalFiles, LocalMessages};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Everything lives under one data directory, created if absent.
    let data = std::env::var_os("CHATVAULT_DATA")
        .map_or_else(|| PathBuf::from("chatvault-data"), PathBuf::from);
    let vault = ChatVault::new(
        LocalMessages::open(data.join("messages"))?,
        LocalFiles::new(data.join("files"))?,
    );

    // Ids are checked once, when parsed.
    let user: UserId = "user-123".parse()?;

    // Conversations from earlier runs are still there.
    let earlier = vault.list_conversations(&user, &ListOptions::new()).await?;
    println!(
        "user-123 has {} conversation(s) from earlier runs",
        earlier.items.len()
    );
    for summary in &earlier.items {
        println!(
            "  {} {:?}, {} messages",
            summary.id, summary.title, summary.message_count
        );
    }

    // Create a conversation
    let mut conversation = vault.create_conversation(Some(&user)).await?;

    // Add messages
    conversation.add_message(Role::User, "Hello!").await?;
    conversation
        .add_message(Role::Assistant, "Hi there! How can I help you?")
        .await?;

    // Attach a file (made here, so the example needs no file on disk)
    let pdf = b"%PDF-1.4\n% a stand-in for document.pdf\n".to_vec();
    conversation
        .attach_file("document.pdf", pdf, "application/pdf")
        .await?;

    // Resume later
    let conversation = vault
        .get_conversation(conversation.id())
        .await?
        .ok_or("the conversation was just stored")?;

    println!("\nresumed {} {:?}", conversation.id(), conversation.title());
    for message in conversation.messages().await? {
        println!("  {}: {}", message.role, message.content());
    }
    for file in conversation.files() {
        let url = conversation
            .file_url(&file.id, Duration::from_secs(3600))
            .await?;
        println!(
            "  file {} ({} bytes, {}): {url}",
            file.filename, file.size, file.content_type
        );
    }
    Ok(())
}
