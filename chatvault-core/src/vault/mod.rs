//! [`ChatVault`] and the [`Conversation`] handle: what an application calls.

mod chat_vault;
mod conversation;
mod hashing;
mod reply;

pub use chat_vault::ChatVault;
pub use conversation::{Conversation, NewConversation};
pub use reply::{ReplyOptions, ReplyWriter};
