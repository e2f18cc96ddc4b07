//! How conversations are stored: the items and their attributes ([`item`]), and the
//! tail and chunks that hold the messages ([`chunks`]).

pub(crate) mod chunks;
pub(crate) mod item;
