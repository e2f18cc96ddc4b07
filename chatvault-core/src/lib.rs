//! # ChatVault
//!
//! *Vault your conversations. Unlock your context.*
//!
//! ChatVault keeps AI chat conversations (messages with metadata, and file attachments)
//! behind two small async traits, [`MessagesBackend`] and [`FilesBackend`]. This crate holds
//! the model, the traits, the [`ChatVault`] entry point with its [`Conversation`] handle, and
//! the conformance suite every backend runs. Backends live in their own crates:
//!
//! | crate | backends | for |
//! |---|---|---|
//! | `chatvault-memory` | `MemoryMessages`, `MemoryFiles` | tests and prototypes |
//! | `chatvault-local` | `LocalMessages`, `LocalFiles` | one machine, durable |
//! | `chatvault-aws` | `DynamoMessages`, `S3Files` | DynamoDB + S3 |
//!
//! ```
//! use chatvault_core::{ChatVault, Role};
//! use chatvault_memory::{MemoryFiles, MemoryMessages};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> chatvault_core::Result<()> {
//! let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
//!
//! let mut conversation = vault.create_conversation(Some("user-123")).await?;
//! conversation.add_message(Role::User, "Hello!").await?;
//! conversation.add_message(Role::Assistant, "Hi there! How can I help you?").await?;
//! let file = conversation
//!     .attach_file("notes.txt", &b"remember the milk"[..], "text/plain")
//!     .await?;
//!
//! // Resume later, from anywhere that has the id.
//! let conversation = vault.get_conversation(conversation.id()).await?.expect("stored");
//! assert_eq!(conversation.title(), Some("Hello!")); // from the first user message
//! let history = conversation.history().await?;     // [{role, content}, ...] for an LLM API
//! assert_eq!(serde_json::to_value(&history[0]).unwrap()["role"], "user");
//! assert_eq!(
//!     conversation.file_content(&file.id).await?.as_deref(),
//!     Some(&b"remember the milk"[..])
//! );
//! # Ok(()) }
//! ```
//!
//! ## Writing a backend
//!
//! A backend implements four methods on each trait; the other methods have correct default
//! implementations built on those four (override them to be atomic and fast):
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//!
//! use chatvault_core::{async_trait, MessagesBackend, Result, StoredConversation};
//!
//! /// Conversations in a HashMap: the smallest possible backend.
//! #[derive(Debug, Default)]
//! struct MapMessages(Mutex<HashMap<String, StoredConversation>>);
//!
//! #[async_trait]
//! impl MessagesBackend for MapMessages {
//!     async fn save(&self, conversation: &StoredConversation) -> Result<()> {
//!         let mut map = self.0.lock().expect("not poisoned");
//!         map.insert(conversation.record.id.clone(), conversation.clone());
//!         Ok(())
//!     }
//!     async fn get(&self, id: &str) -> Result<Option<StoredConversation>> {
//!         Ok(self.0.lock().expect("not poisoned").get(id).cloned())
//!     }
//!     async fn get_by_user(&self, user_id: &str) -> Result<Vec<StoredConversation>> {
//!         let map = self.0.lock().expect("not poisoned");
//!         Ok(map
//!             .values()
//!             .filter(|c| c.record.user_id.as_deref() == Some(user_id))
//!             .cloned()
//!             .collect())
//!     }
//!     async fn delete(&self, id: &str) -> Result<bool> {
//!         Ok(self.0.lock().expect("not poisoned").remove(id).is_some())
//!     }
//! }
//! # let _ = MapMessages::default();
//! ```
//!
//! Then check it against the conformance suite from your crate's tests, with this crate's
//! `conformance` feature in your `[dev-dependencies]`:
//!
//! ```toml
//! [dev-dependencies]
//! chatvault-core = { version = "0.1", features = ["conformance"] }
//! ```
//!
//! ```text
//! // tests/conformance.rs of your backend crate
//! #[tokio::test]
//! async fn conformance() {
//!     use chatvault_core::conformance::{self, MessagesCapabilities};
//!     conformance::run_messages_suite(
//!         std::sync::Arc::new(MapMessages::default()),
//!         MessagesCapabilities::minimal(),
//!     )
//!     .await;
//! }
//! ```
//!
//! The workspace's `examples/custom_backend` crate is this, complete and tested.
//!
//! ## Semantics in brief
//!
//! - Ids are strings; new ones are UUID v7. Caller ids are checked by [`keys::validate_id`].
//! - Messages are ordered by `seq` (1, 2, 3, ...), assigned atomically on append.
//! - The title comes from the first user message unless set: [`auto_title`].
//! - Attachments are stored under [`keys::storage_key`]: one key per attachment, every
//!   component encoded so that no key leaves a backend's root.
//! - Listings are newest activity first, paged with an opaque cursor that never skips or
//!   repeats a conversation while new ones are created.
//! - Every failure is an [`Error`]; backend errors keep their source and say whether a
//!   retry may help ([`Error::is_temporary`]).

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod error;
pub mod keys;
mod model;
mod vault;

#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;

pub use async_trait::async_trait;
pub use backend::{
    ByteStream, FilesBackend, MessagesBackend, apply_add_file, apply_remove_file, bytes_stream,
    collect_stream, paginate,
};
pub use error::{BoxError, Error, Result};
pub use model::{
    Appended, ConversationPatch, ConversationRecord, ConversationSummary, FileAttachment,
    HistoryEntry, ListCursor, ListOptions, Message, MessageRange, Metadata, NewMessage, Page, Role,
    StoredConversation, auto_title, new_id, now, sort_for_listing,
};
pub use vault::{ChatVault, Conversation, NewConversation, sha256_hex};
