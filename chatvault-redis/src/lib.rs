#![doc = include_str!("../README.md")]
//!
#![doc = include_str!("../docs/layout.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod batch;
mod commit;
mod conn;
mod delete;
mod entries;
mod expiry;
mod layout;
mod listing;
mod load;
mod markers;
mod messages;
mod prune;
mod read;
mod scripts;
mod state;
mod stream;
mod write;

pub use layout::check_prefix;
pub use messages::{RedisMessages, RedisMessagesBuilder};
pub use stream::{ChunkOffset, MAX_WAIT, RedisReplyStream, ReplyChunk, ReplyEvent, ReplyReader};
