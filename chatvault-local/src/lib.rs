#![doc = include_str!("../README.md")]
//!
//! Both types do their file I/O on tokio's blocking pool (`spawn_blocking`), so they must
//! be used inside a tokio runtime. A call waiting for a conversation's lock waits on a
//! blocking-pool thread; an operation, once started there, runs to its end even if its
//! future is dropped (so an append is never cut in half by a cancelled task).
//!
//! # On-disk layout
//!
//! ```text
//! messages/                          LocalMessages::open(..)
//!   FORMAT                           {"format":1,...}: layout version of the store
//!   conversations/<id>/              one directory per conversation (id percent-encoded)
//!     lock                           empty; locked shared by readers, exclusively by writers
//!     header.json                    record + attachments + how much of the log they cover
//!     log-<g>                        append-only message log, one framed record per append
//!     index-<g>                      16 bytes per message: log offset, length, CRC-32
//!   users/<user>/<id>.<incarnation>  empty: user index entries (user id percent-encoded)
//!   tmp/  trash/                     conversations being created / deleted
//! files/                             LocalFiles::new(..)
//!   data/<key>                       the bytes of each key, as a plain file
//!   meta/<key>                       {"v":2,"content_type":...,"data":{...}}: the content
//!                                    type, and the identity of the data file it is for
//!   tmp/                             uploads in progress
//! ```
//!
//! A log record is `"CVL1"`, the payload length (u32 LE), the CRC-32 of length and payload
//! (u32 LE), then the payload: a JSON line `{"v":1,"at":...,"n":...}` (the record format
//! version, the append's time, the message count) followed by one JSON line per message,
//! exactly [`chatvault_core::Message`]'s JSON. An append of several messages is one record,
//! so it is stored whole or not at all. `header.json` carries `"format":1` too. Conversation
//! ids (already restricted by [`chatvault_core::keys::validate_id`]) and user ids are
//! percent-encoded by [`chatvault_core::keys::encode_component`] before they become path
//! segments, so no id can name a path outside the store.
//!
//! # Costs
//!
//! - `append_messages` reads the header, writes one record at the end of the log and the
//!   new messages' index entries, flushes both, and replaces the header: its cost does not
//!   depend on how long the conversation is.
//! - `messages(id, range)` reads the range's index entries and one contiguous span of the
//!   log: O(window) whatever the conversation's length. A page holds at most
//!   [`MAX_PAGE`] messages; longer ranges continue through `next_cursor`.
//! - `update`, `add_file`, `remove_file` rewrite only the header, never the messages.
//! - `list_conversations(Some(user), ..)` reads the headers of that user's conversations
//!   (found through `users/`), `list_conversations(None, ..)` the headers of all of them;
//!   neither reads any message. `get` and `save` read or write whole conversations.
//!
//! # Crash safety
//!
//! What survives a crash (a killed process, or a power cut on a file system that honours
//! `fsync`):
//!
//! - An append that returned `Ok` is in the log, flushed. Its header write comes after;
//!   if a crash falls between the two, the next read finds complete records past the
//!   header's `log_len` and rolls them forward with exactly
//!   [`ConversationRecord::apply_append`](chatvault_core::ConversationRecord::apply_append)'s
//!   rules (the record stores the time it was applied with), so the result is the same as
//!   if the header had been written. The next write stores the rolled-forward header.
//! - A record cut short by a crash (incomplete, or failing its CRC) is the torn end of an
//!   append that never returned: it is ignored by readers, never returned, and cut off by
//!   the next write. Messages are never half-appended and seq never has a gap.
//! - Header, content-type and attachment files are replaced atomically: written to a temp
//!   file, flushed, renamed over the old one, and the directory flushed. Metadata updates
//!   and attachment records are durable when they return.
//! - An attachment's bytes are renamed into place first (the commit point), its
//!   content-type file second. That file records the identity of the data file it was
//!   written for (inode, size and modification time) and counts only while that file is
//!   the key's data: a crash between the two renames leaves the new bytes with an unknown
//!   content type, never the old bytes with the new one.
//! - Creating a conversation builds its directory in `tmp/` and renames it into place;
//!   deleting renames it to `trash/` (the commit point) before removing it. A crash leaves
//!   either the whole conversation or none of it; leftovers in `trash/` are removed by the
//!   next [`LocalMessages::open`], temp files older than a day too.
//!
//! Limits: data is only as durable as the disk's `fsync`; bytes damaged *inside* the log
//! after they were written (bit rot, another program writing there) are reported as a
//! [`CorruptData`] error, not repaired; a damaged index is detected by its CRCs and
//! bypassed by reading the log (a missing index too). A damaged conversation is left out
//! of listings (with a `tracing` warning) instead of failing them, reading it by id
//! reports the error, and deleting it works. A crash can leave an unused user-index entry
//! (harmless: entries are checked against the conversation's header), a content-type
//! file or an empty directory without bytes (ignored: only the data tree says which keys
//! exist, and the next upload that needs the place clears it), or, from a `save` cut short,
//! a `log-<g+1>`/`index-<g+1>` pair the header never switched to (unused, overwritten by
//! the next `save`). If the header cannot be written after an append's record was, the
//! record is cut off again and the append fails; if even that cut fails (a dying disk),
//! the record is rolled forward later.
//!
//! # Several threads and processes
//!
//! Every operation on a conversation holds an OS file lock on its `lock` file
//! ([`std::fs::File::lock`], `flock` on Unix): shared for reads, exclusive for the
//! read-modify-write of an append, update or save. Locks work the same between threads,
//! tasks and processes, so any number of processes may open the same directory: two
//! processes appending to one conversation never lose, duplicate or reorder a message.
//! A delete takes the exclusive lock and renames the directory away while holding it; a
//! writer that was waiting for the lock notices that the lock file it holds is no longer
//! the one at the conversation's path, and answers `NotFound` instead of writing into a
//! deleted conversation. Creation is atomic too: of two processes creating the same id,
//! one gets `AlreadyExists`.
//!
//! Lock files must be on a local file system: network file systems may not implement
//! `flock` faithfully. On a case-insensitive file system two ids that differ only in case
//! cannot both exist (the second one's `create` is `AlreadyExists`).
//!
//! [`LocalFiles`] needs no locks: each commit is one atomic rename. Concurrent uploads to
//! the same key end with one of them whole; its content type is known unless the other
//! upload's content-type file was renamed last (then [`LocalFiles::content_type`] is
//! `None`: never a content type the bytes were not uploaded with). Of concurrent uploads
//! of colliding keys (`a` and `a/b`), the one that loses fails with `InvalidInput`.

#![forbid(unsafe_code)]

mod error;
mod files;
mod fsutil;
mod log;
mod messages;

pub use error::{CorruptData, IoError};
pub use files::{DOWNLOAD_CHUNK, LocalFiles};
pub use log::MAX_RECORD_BYTES;
pub use messages::{FORMAT_VERSION, LocalMessages, MAX_PAGE};
