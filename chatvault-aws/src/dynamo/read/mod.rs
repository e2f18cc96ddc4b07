//! The read path: the conversation item ([`head`]), a window of messages ([`range`]),
//! messages by id ([`lookup`]) and the listings ([`listing`]), each as methods of
//! [`Table`](super::table::Table).

pub(crate) mod head;
pub(crate) mod listing;
pub(crate) mod lookup;
pub(crate) mod range;
