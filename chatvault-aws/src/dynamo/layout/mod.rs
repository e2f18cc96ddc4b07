//! How conversations are stored: the items and their attributes ([`item`]), the
//! tail and chunks that hold the messages ([`chunks`]), and the markers of conversations
//! being deleted ([`deletion`]).

pub(crate) mod chunks;
pub(crate) mod deletion;
pub(crate) mod item;
