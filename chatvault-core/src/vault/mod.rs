//! [`ChatVault`] and the [`Conversation`] handle: what an application calls.

mod branches;
mod chat_vault;
mod compact;
mod conversation;
mod follow;
mod forget;
mod hashing;
mod live;
mod new_conversation;
mod path;
mod redact;
mod reply;
mod timer;

pub use branches::{Branches, Siblings};
pub use chat_vault::ChatVault;
pub use compact::{CHECKPOINT_KEY, Checkpoint};
pub use conversation::Conversation;
pub use follow::{FollowOptions, ReplyEvent, ReplyFollower};
pub use forget::{ForgetOptions, ForgetProgress, ForgetReport, Forgetting};
pub use new_conversation::NewConversation;
pub use redact::{
    MAX_REDACTION_REASON, REDACTED_TITLE, REDACTION_KEY, Redacted, Redaction, RedactionPlan,
};
pub use reply::{ReplyOptions, ReplyWriter};
