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
//!   FORMAT                           {"format":2,...}: layout version of the store
//!   conversations/<id>/              one directory per conversation (id percent-encoded)
//!     log-<g>                        the truth: append-only log of framed records
//!     header.json                    checkpoint: the state at a point of the log (derived)
//!     index-<g>                      16 bytes per message: log offset, length, CRC (derived)
//!     lock                           empty; locked shared by readers, exclusively by writers
//!   index/                           the listing index (derived; see below)
//!     snapshot  journal-<n>  lock
//!   users/                           0.1's user index: no longer used, kept empty
//!   tmp/  trash/                     conversations being created / deleted
//! files/                             LocalFiles::new(..)
//!   data/<key>                       the bytes of each key, as a plain file
//!   meta/<key>                       {"v":2,"content_type":...,"data":{...}}: the content
//!                                    type, and the identity of the data file it is for
//!   tmp/                             uploads in progress
//! ```
//!
//! A log record is `"CVL1"`, the payload length (u32 LE), the CRC-32 of length and payload
//! (u32 LE), then the payload, JSON lines. A message record is `{"v":1,"at":...,"n":...}`
//! (the append's time and message count) followed by one line per message, exactly
//! [`chatvault_core::Message`]'s JSON: an append of several messages is one record, stored
//! whole or not at all. A state record is `{"v":2,"at":...,"n":1,"k":"state"}` followed by
//! `{"record":...,"files":[...]}` (and `"deleting":true` once `begin_delete` marked it):
//! the conversation's record and attachments as of that point. Creating, saving, updating,
//! attaching, detaching and marking for deletion each write one. An edit record,
//! `{"v":2,...,"k":"edit"}`, holds an updated message (its seq unchanged, its revision
//! raised) and the record after the update. So the log alone says everything about a
//! conversation; everything else is derived from it.
//!
//! `header.json` is `CVCP2 <CRC-32 of the JSON, hex>` and a line of JSON: the generation,
//! how many log bytes it accounts for, the offset and CRC of the record ending there, and
//! the record and attachments at that point. Conversation ids (already restricted by
//! [`chatvault_core::ConversationId`]) are percent-encoded by
//! [`chatvault_core::keys::encode_component`] before they become path segments, so no id
//! can name a path outside the store.
//!
//! Stores written by chatvault-local 0.1 (format 1) are read: each conversation gets a
//! state record (and a checkpoint) the first time it is opened, after its 0.1 header
//! (the record's only copy there) was checked against its log. The `FORMAT` file is
//! raised to 2 when such a store is opened, so that 0.1 no longer opens it.
//!
//! # Derived state is checked, never trusted
//!
//! - A checkpoint is believed only if its own CRC is right, its log generation is the
//!   newest, and the record it names ends where it says with the CRC it says, with the
//!   same message count (the seq of its last message) or the same state. Otherwise the log
//!   is replayed from its start, record by record (each message's seq must be the next
//!   one; each state record must count the messages before it). What a writer rewrites
//!   afterwards is computed from the replay: no number from a checkpoint can drive a
//!   truncation or a seq.
//! - An index entry is used only if its message's CRC matches and its seq is the position
//!   asked for; otherwise the log is read, and the index written again from it.
//! - A lock file that was deleted is created again by the next operation.
//! - The listing index is rebuilt from the conversations when it is missing, damaged, cut,
//!   or from before a reboot (see below).
//!
//! # Costs
//!
//! - `append_messages` reads the checkpoint and the records after it (at most about 64
//!   KiB), writes one record at the end of the log and flushes it: **one `fdatasync`**.
//!   The new messages' index entries and, every 32 records or 64 KiB, a new checkpoint
//!   are written without flushing (they are derived). Its cost does not depend on the
//!   conversation's length. Concurrent appends to one conversation in one process share
//!   that flush (group commit): the first waiter writes every waiting append's record,
//!   each whole and in arrival order, and flushes once.
//! - `messages(id, range)` reads the range's index entries and one contiguous span of the
//!   log: O(window) whatever the conversation's length. A page holds at most
//!   [`MAX_PAGE`] messages; longer ranges continue through `next_cursor`.
//! - `update`, `add_file`, `remove_file` append one state record (one flush).
//! - `list_conversations` reads O(page) conversations, whatever their number: it walks the
//!   listing index in order and reads each listed conversation's checkpoint (its summary
//!   comes from the conversation itself). A process's first listing also lists the
//!   `conversations/` directory once (names only) to find conversations the index lost. `get` and `save` read or write whole
//!   conversations; `get_by_user` finds the user's conversations through the index.
//! - `update_message` appends one edit record (one flush) and points the message's index
//!   entry at the new version. Until a checkpoint covers it, readers replay the edit from
//!   the log; a checkpoint that covers edits is written only after the index is flushed.
//! - Appends are idempotent by message id: each process keeps a map from message id to
//!   seq per conversation (up to 256 conversations and 2^20 ids in all, about 90 MiB;
//!   past either, the least recently used maps are dropped and read again when needed),
//!   brought up to date from the log's records it has not read yet, so a retried append
//!   finds what an earlier attempt (in any process) stored. The first append to a
//!   conversation in a process reads its whole log once to build that map.
//! - Whatever reads a log from its start (that map; a replay when a checkpoint is missing
//!   or damaged, or a conversation written by 0.1) reads it 4 MiB at a time (one record at
//!   a time when a record is larger), so memory does not grow with the log's length.
//! - `begin_delete` appends a state record marking the conversation; from then on it reads
//!   as gone. `delete` renames the directory away as before. `search` is not supported.
//! - [`LocalMessages::import`] stores many new conversations with one `syncfs`.
//!
//! # The listing index
//!
//! `index/snapshot` holds one line per conversation (id, user, last activity, archived),
//! `index/journal-<n>` the changes since, one line each, written with a CRC. A change
//! writes a *tentative* line before its commit point and a *confirmed* one after it, a
//! delete one after its commit; none is flushed. Each process keeps the index in memory,
//! ordered by (user, last activity, id) and for everyone, and reads the journal's new lines
//! on each listing. A listing first reads the conversations of tentative lines (changes
//! in progress or cut short by a crash), then reads every conversation it returns and
//! corrects (and recomputes the page for) any line that disagrees. A killed process loses
//! nothing it wrote (the page cache keeps it); a reboot may, so the snapshot records the
//! boot id it was written under, and an index from another boot is rebuilt by reading every
//! conversation once (as on systems without a boot id, once per process). The snapshot's
//! first line carries its claim count and CRC: a snapshot cut or altered is rebuilt. A
//! journal cut at a line boundary cannot show it: so whenever a process loads the index
//! from its files, it lists `conversations/` and reads (and enters) each conversation the
//! index has no line for. The journal is folded into a new snapshot when it grows past 4
//! MiB and twice the snapshot.
//!
//! # Crash safety
//!
//! What survives a crash (a killed process, or a power cut on a file system that honours
//! `fsync`):
//!
//! - An append, update or attachment change that returned `Ok` is a record in the log,
//!   flushed. Checkpoints, index entries and listing lines are written after it and may be
//!   lost or torn by a crash: they are checked when read and rebuilt from the log.
//! - A record cut short by a crash (incomplete, or zeros where a power cut left the file
//!   longer than its data) is the torn end of a write that never returned: it is ignored
//!   by readers, never returned, and cut off by the next write. It is cut off only if
//!   nothing acknowledged is there: no intact record after it, no checkpoint accounting for
//!   it, no index entry pointing into it (entries are written only after their record was
//!   flushed). A complete record failing its CRC, or bytes that are not a record, are
//!   damage: reported as [`CorruptData`], never cut off.
//! - A log that ends early, torn or exactly between two records, while a derived file
//!   shows more was acknowledged (a checkpoint accounting for more bytes; an index entry of
//!   a replayed message, of the last message or of the next position pointing past the
//!   log's end; after a torn record, any index entry doing so) reads as [`CorruptData`]:
//!   never as the shorter conversation, and no later append reuses an acknowledged seq.
//! - Content-type and attachment files are replaced atomically: written to a temp file,
//!   flushed, renamed over the old one, and the directory flushed.
//! - An attachment's bytes are renamed into place first (the commit point), its
//!   content-type file second. That file records the identity of the data file it was
//!   written for (inode, size and modification time) and counts only while that file is
//!   the key's data: a crash between the two renames leaves the new bytes with an unknown
//!   content type, never the old bytes with the new one.
//! - Creating a conversation builds its directory in `tmp/` (log flushed) and renames it
//!   into place; a `save` writes a new log generation under a temporary name and renames
//!   it into place; deleting renames the directory to `trash/` (the commit point) before
//!   removing it. A crash leaves either the whole conversation or none of it; leftovers in
//!   `trash/` are removed by the next [`LocalMessages::open`], temp files older than a day
//!   too.
//!
//! Limits: data is only as durable as the disk's `fsync`. Bytes damaged *inside* the log
//! after they were written (bit rot, another program writing there) are reported as a
//! [`CorruptData`] error, not repaired. A damaged conversation is left out of listings
//! (with a `tracing` warning) instead of failing them, reading it by id reports the error,
//! and deleting it works. Zeros at the very end of a log, or a log cut short at a record
//! boundary, cannot be told from a power cut's unflushed tail when the checkpoint and the
//! index that would show otherwise are damaged too; nor can a cut exactly at the start of
//! an update of an older message (one before the checkpoint's last), whose index entry is
//! the only sign of it and is read only when that message is. Index entries no writer
//! could have written (empty, or longer than a record) are damage to the index, bypassed
//! for the log. A 0.1 header carries no checksum: a
//! changed digit in its record (not its counts, which are checked) goes unnoticed until
//! the conversation is upgraded.
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
//! one gets `AlreadyExists`. A lock file deleted while a process holds it no longer
//! excludes others (the next operation creates a new one): delete lock files only when no
//! process uses the store, as after a crash.
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
mod listing;
mod log;
mod messages;

pub use error::{CorruptData, IoError};
pub use files::{DOWNLOAD_CHUNK, LocalFiles};
pub use log::MAX_RECORD_BYTES;
pub use messages::{FORMAT_VERSION, LocalMessages, MAX_PAGE};

/// How many flushes to disk (`fsync`, `fdatasync`, `syncfs`) this process's
/// [`LocalMessages`] stores (and the helpers they share with [`LocalFiles`]) have issued
/// so far. For benchmarks and tests: the difference across an operation is its flush
/// count.
pub fn fsync_count() -> u64 {
    fsutil::fsync_count()
}
