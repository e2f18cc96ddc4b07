//! [`ChatVault`] and the [`Conversation`] handle: what an application calls.

mod branches;
mod chat_vault;
mod conversation;
mod hashing;
mod path;
mod reply;

pub use branches::{Branches, Siblings};
pub use chat_vault::ChatVault;
pub use conversation::{Conversation, NewConversation};
pub use reply::{ReplyOptions, ReplyWriter};
