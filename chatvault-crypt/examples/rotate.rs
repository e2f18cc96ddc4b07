//! Encryption at rest, key rotation, re-encryption and crypto-shredding, end to end, on
//! the local backends in a temporary directory:
//!
//! ```text
//! cargo run -p chatvault-crypt --example rotate
//! ```
//!
//! The key-encryption key comes from `CHATVAULT_MASTER_KEY` (64 hex digits or base64 of
//! 32 bytes) when set, else from a fixed demo key. The key store is a separate
//! `LocalMessages` directory: back it up on its own terms (see the crate docs,
//! "Crypto-shredding and backups").

use std::sync::Arc;

use chatvault_core::{ChatVault, UserId};
use chatvault_crypt::{EncryptedFiles, EncryptedMessages, Keyring, StaticKeyProvider, reencrypt};
use chatvault_local::{LocalFiles, LocalMessages};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let provider = match StaticKeyProvider::from_env(StaticKeyProvider::ENV) {
        Ok(p) => p,
        Err(_) => StaticKeyProvider::new([7; 32]),
    };
    let key_store = Arc::new(LocalMessages::open(dir.path().join("keys"))?);
    let keyring = Keyring::new(key_store, provider);
    let messages = Arc::new(EncryptedMessages::new(
        LocalMessages::open(dir.path().join("messages"))?,
        keyring.clone(),
    ));
    let files = Arc::new(EncryptedFiles::new(
        LocalFiles::new(dir.path().join("files"))?,
        keyring.clone(),
    ));
    let vault = ChatVault::from_arcs(messages.clone(), files.clone());

    let alice: UserId = "alice@example.com".parse()?;
    let mut chat = vault.create_conversation(Some(&alice)).await?;
    chat.add_message("user", "My card number is 4111 1111 1111 1111")
        .await?;
    println!(
        "written with key version {:?}",
        keyring.current_version(Some(&alice)).await?
    );

    let v2 = keyring.rotate(Some(&alice)).await?;
    chat.add_message("assistant", "Noted; I will not repeat it.")
        .await?;
    println!("rotated to version {v2}; both messages read back:");
    for m in chat.messages().await? {
        println!("  {}: {}", m.role, m.content());
    }

    let report = reencrypt(&messages, &files, Some(&alice)).await?;
    println!("re-encrypted with version {v2}: {report:?}");

    keyring.shred(Some(&alice)).await?;
    match vault.get_conversation(chat.id()).await {
        Err(e) => println!("after shredding alice's key, her conversation reads as: {e}"),
        Ok(_) => println!("unexpected: alice's conversation is still readable"),
    }
    // Erasing what is left works without the key (the bytes are found and deleted).
    vault.delete_conversation(chat.id()).await?;
    Ok(())
}
