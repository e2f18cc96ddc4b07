//! Uses the custom backend through `ChatVault`, exactly as an app would use a built-in one.
//!
//! Run with `cargo run -p custom-backend-example`.

use chatvault_core::ChatVault;
use chatvault_core::backend::{ListOptions, Role, UserId};
use custom_backend_example::{JsonDirMessages, MapFiles, SimpleAdapter};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("chatvault-custom-{}", std::process::id()));
    let vault = ChatVault::new(
        SimpleAdapter::new(JsonDirMessages::new(&dir)?),
        MapFiles::new(),
    );

    let user: UserId = "user-123".parse()?;
    let mut conversation = vault.create_conversation(Some(&user)).await?;
    conversation
        .add_message(Role::User, "Does a custom backend need much code?")
        .await?;
    conversation
        .add_message(
            Role::Assistant,
            "Four methods for messages (through SimpleAdapter), five for files.",
        )
        .await?;
    conversation
        .attach_file(
            "notes.txt",
            &b"save, get, get_by_user, delete"[..],
            "text/plain",
        )
        .await?;

    let page = vault.list_conversations(&user, &ListOptions::new()).await?;
    for summary in &page.items {
        println!(
            "{} {:?}: {} messages, {} files",
            summary.id, summary.title, summary.message_count, summary.file_count
        );
    }
    let resumed = vault
        .get_conversation(conversation.id())
        .await?
        .ok_or("the conversation was just stored")?;
    println!(
        "{}",
        serde_json::to_string_pretty(&resumed.history().await?)?
    );
    println!("stored as JSON under {}", dir.display());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
