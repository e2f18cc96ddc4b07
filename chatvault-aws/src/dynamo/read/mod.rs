//! The read path, a part per concern, each a type in its own file: the conversation
//! item ([`head::Heads`], which owns the seen cache), a window of messages
//! ([`range::Ranges`], its pages decoded by [`decode`]), messages by id ([`lookup::Lookup`]), the listings
//! ([`listing::Listing`]) and the conversations marked for deletion
//! ([`deleting::Deleting`]).

pub(crate) mod decode;
pub(crate) mod deleting;
pub(crate) mod head;
pub(crate) mod listing;
pub(crate) mod lookup;
pub(crate) mod range;
