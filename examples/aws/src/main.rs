//! ChatVault on AWS: the Python README's DynamoDB + S3 usage, in Rust.
//!
//! It runs against local emulators (LocalStack for S3, DynamoDB Local), never against an
//! AWS account by accident:
//!
//! ```text
//! scripts/emulators.sh start && eval "$(scripts/emulators.sh env)" && cargo run -p aws-example
//! ```
//!
//! It creates the table and the bucket if needed (`CHATVAULT_TABLE`, default
//! `Conversations`; `CHATVAULT_BUCKET`, default `my-chat-files`), stores a conversation for
//! `user-123` with a message and an attachment, resumes it, and prints its history, its
//! files and a presigned download URL.

use std::error::Error;
use std::process::ExitCode;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use chatvault_aws::{DynamoMessages, S3Files};
use chatvault_core::{ChatVault, ListOptions, Role, UserId};

fn set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// The example only talks to emulators: both services need an endpoint.
fn check_endpoints() -> Result<(), String> {
    let missing: Vec<&str> = ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"]
        .into_iter()
        .filter(|name| !set(name) && !set("AWS_ENDPOINT_URL"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} not set (nor AWS_ENDPOINT_URL). This example runs against local emulators:\n\
         \n    scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" && cargo run -p aws-example\n\
         \n(with Docker: AWS_ENDPOINT_URL=http://localhost:4566 for LocalStack and \
         AWS_ENDPOINT_URL_DYNAMODB=http://localhost:8000 for DynamoDB Local)",
        missing.join(" and ")
    ))
}

async fn run() -> Result<(), Box<dyn Error>> {
    check_endpoints()?;
    let table = std::env::var("CHATVAULT_TABLE").unwrap_or_else(|_| "Conversations".into());
    let bucket = std::env::var("CHATVAULT_BUCKET").unwrap_or_else(|_| "my-chat-files".into());

    // The SDK's own configuration: region, credentials and the endpoints from the
    // environment. Short timeouts, so that a stopped emulator fails fast.
    let sdk = aws_config::load_from_env().await;
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(60))
        .build();
    let messages = DynamoMessages::builder(&table)
        .sdk_config(&sdk)
        .timeout_config(timeouts.clone())
        .build()
        .await?;
    messages.create_table().await?;
    let files = S3Files::builder(&bucket)
        .sdk_config(&sdk)
        .timeout_config(timeouts)
        .build()
        .await?;
    files.create_bucket_if_missing().await?;
    println!("DynamoDB table {table}, S3 bucket {bucket}");

    let vault = ChatVault::new(messages, files);

    // Create a conversation and add a message
    let user: UserId = "user-123".parse()?;
    let mut conversation = vault.create_conversation(Some(&user)).await?;
    conversation.add_message(Role::User, "Hello!").await?;
    conversation
        .add_message(Role::Assistant, "Hi there! How can I help you?")
        .await?;

    // Attach a small file (made here, so the example needs no file on disk)
    let pdf = b"%PDF-1.4\n% a stand-in for r\xc3\xa9sum\xc3\xa9.pdf\n".to_vec();
    conversation
        .attach_file("résumé.pdf", pdf, "application/pdf")
        .await?;

    // Resume it, as another process would
    let conversation = vault
        .get_conversation(conversation.id())
        .await?
        .ok_or("the conversation was just stored")?;
    println!(
        "\nconversation {} {:?} of {}",
        conversation.id(),
        conversation.title(),
        conversation.user_id().map_or("nobody", UserId::as_str)
    );
    println!("history:");
    for entry in conversation.history().await? {
        println!("  {}: {}", entry.role, entry.content);
    }
    println!("files:");
    for file in conversation.files() {
        println!(
            "  {} ({}, {} bytes, sha256 {})",
            file.filename, file.content_type, file.size, file.sha256
        );
        let url = conversation
            .file_url(&file.id, Duration::from_secs(3600))
            .await?;
        println!("  download for an hour: {url}");
    }

    let listed = vault.list_conversations(&user, &ListOptions::new()).await?;
    println!(
        "\nuser-123 has {} conversation(s) in {table}",
        listed.items.len()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("aws-example: {e}");
            ExitCode::FAILURE
        }
    }
}
