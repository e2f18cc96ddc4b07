//! [`LocalMessages`]: conversations in append-only logs on the local file system.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use chatvault_core::keys::{MAX_SEGMENT_LEN, encode_component};
use chatvault_core::{
    Appended, ConversationHead, ConversationId, ConversationPatch, ConversationRecord,
    ConversationSummary, Error, FileAttachment, FileId, ListOptions, Message, MessageId,
    MessageRange, MessageUpdate, MessageUpdated, MessagesBackend, MessagesCapabilities, NewMessage,
    Page, Result, SearchHit, SearchOptions, StoredConversation, UserId, apply_add_file,
    apply_remove_file, async_trait, check_replay, now, revision_conflict,
};
use lru::LruCache;
use serde::{Deserialize, Serialize};

use crate::error::{BACKEND, CorruptData, corrupt, io_at, io_error, is_damage};
use crate::fsutil::{
    STALE_TEMP_AGE, TempPath, blocking, create_dir_all_durable, is_not_found, same_file, sweep,
    sync_all, sync_data, sync_dir, sync_tree, unique_name, write_atomic, write_replace_unsynced,
};
use crate::listing::{Claim, Found, Listing, Source};
use crate::log::{
    Body, DecodedFrame, EncodedFrame, FRAME_HEADER, FrameAt, INDEX_ENTRY, IndexEntry, MAGIC,
    MAX_RECORD_BYTES, decode_frame, encode_edit, encode_frame, encode_state, frame_ids, frame_len,
    header_crc,
};

/// The most messages one [`MessagesBackend::messages`] call returns; a longer range gets
/// a `next_cursor` to continue from.
pub const MAX_PAGE: usize = 1000;

/// The on-disk layout version this release writes (in `FORMAT` and every checkpoint).
///
/// Version 1 (chatvault-local 0.1) is read, and upgraded conversation by conversation the
/// first time each is opened.
pub const FORMAT_VERSION: u32 = 2;

/// The layout chatvault-local 0.1 wrote.
const LEGACY_FORMAT: u32 = 1;

/// Messages per log record when a whole conversation is written.
const SAVE_BATCH: usize = 1000;

/// A writer rewrites the checkpoint once this many records follow it...
const CHECKPOINT_FRAMES: usize = 32;
/// ... or this many bytes (what a reader replays is bounded by this plus one record).
const CHECKPOINT_BYTES: u64 = 64 << 10;

const FORMAT_FILE: &str = "FORMAT";
const HEADER: &str = "header.json";
const HEADER_TMP: &str = "header.json.tmp";
const LOCK: &str = "lock";
/// The first bytes of a checkpoint, followed by the CRC-32 of its JSON in hex and `\n`.
const CHECKPOINT_MAGIC: &[u8] = b"CVCP2 ";
/// Index bytes read at a time when the index is checked against the log.
const INDEX_WINDOW: u64 = 64 << 10;

fn log_name(generation: u64) -> String {
    format!("log-{generation}")
}

fn index_name(generation: u64) -> String {
    format!("index-{generation}")
}

/// `header.json`: a checkpoint of a conversation's state at a point of its log, so that
/// readers need not replay the whole log. Derived data: written without flushing, checked
/// (its own CRC, and the CRC of the log record it says ends at `log_len`) every time it is
/// read, and rebuilt from the log when it does not check out.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Checkpoint {
    format: u32,
    /// Which `log-N` / `index-N` pair holds the conversation.
    generation: u64,
    /// Bytes of the log the checkpoint accounts for.
    log_len: u64,
    /// Offset and header CRC of the record that ends at `log_len` (none when it is 0).
    last_frame: Option<(u64, u32)>,
    record: ConversationRecord,
    #[serde(default)]
    files: Vec<FileAttachment>,
    /// Marked by `begin_delete`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    deleting: bool,
}

fn encode_checkpoint(cp: &Checkpoint) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(cp).map_err(|e| Error::backend(BACKEND, e))?;
    let mut out = CHECKPOINT_MAGIC.to_vec();
    out.extend_from_slice(format!("{:08x}\n", crc32fast::hash(&json)).as_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

fn decode_checkpoint(bytes: &[u8]) -> Option<Checkpoint> {
    let rest = bytes.strip_prefix(CHECKPOINT_MAGIC)?;
    let (crc, json) = (rest.get(..8)?, rest.get(9..)?);
    if rest.get(8) != Some(&b'\n') {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
    if crc32fast::hash(json) != crc {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// `header.json` as chatvault-local 0.1 wrote it: the record's only copy.
#[derive(Debug, Deserialize)]
struct LegacyHeader {
    format: u32,
    generation: u64,
    log_len: u64,
    log_messages: u64,
    record: ConversationRecord,
    #[serde(default)]
    files: Vec<FileAttachment>,
}

/// What `header.json` turned out to be.
#[derive(Debug)]
enum HeaderRead {
    Missing,
    Damaged,
    Legacy(Box<LegacyHeader>),
    Checkpoint(Box<Checkpoint>),
}

#[derive(Serialize, Deserialize)]
struct FormatFile {
    format: u32,
    layout: String,
}

/// Conversations stored in a directory on the local file system: durable, crash-safe,
/// safe to share between threads, tasks and processes.
///
/// Each conversation is a directory holding an append-only log (the truth: messages and
/// every state change), a seq index and a checkpoint; listings go through an ordered
/// index. See the [crate documentation](crate) for the layout and the guarantees. Every
/// method runs its file I/O on tokio's blocking pool, so it needs a tokio runtime.
///
/// Clones share the same store.
#[derive(Clone, Debug)]
pub struct LocalMessages {
    store: Arc<Store>,
}

#[derive(Debug)]
struct Store {
    root: PathBuf,
    conversations: PathBuf,
    tmp: PathBuf,
    trash: PathBuf,
    index: Listing,
    /// Appends waiting for a conversation's group commit, by conversation id.
    queues: Mutex<HashMap<String, Arc<Queue>>>,
    /// Message id -> seq maps of recently written conversations (idempotent appends), the
    /// least recently used first out.
    ids: Mutex<LruCache<String, IdCache>>,
}

/// At most this many conversations' id maps are kept.
const MAX_ID_CACHES: usize = 256;
/// At most this many message ids are kept in all the id maps together (about 90 bytes
/// each, so about 90 MiB), whatever the conversations' lengths: past it, the least
/// recently used maps are dropped, and read again from their logs when next needed.
const MAX_IDS: usize = 1 << 20;
/// The most log bytes read at once by a replay or an id map's build (more only for one
/// larger record, or damage: see [`for_each_window`]).
const LOG_WINDOW: u64 = 4 << 20;

/// The message ids of one conversation's log, as far as this process has read it.
#[derive(Debug, Default)]
struct IdCache {
    /// Which log: its generation and file identity.
    log: (u64, u64),
    /// Log bytes read.
    end: u64,
    seqs: HashMap<MessageId, u64>,
}

/// Keeps the id maps within `max_maps` conversations and `max_ids` ids in all, dropping
/// the least recently used first; the most recently used (the one in use) is kept even
/// when it alone is over.
fn trim_id_maps(maps: &mut LruCache<String, IdCache>, max_maps: usize, max_ids: usize) {
    let mut ids: usize = maps.iter().map(|(_, m)| m.seqs.len()).sum();
    while maps.len() > 1 && (maps.len() > max_maps || ids > max_ids) {
        match maps.pop_lru() {
            Some((_, dropped)) => ids -= dropped.seqs.len(),
            None => break,
        }
    }
}

/// The appends waiting for one conversation: the first waiter commits everyone's.
#[derive(Debug, Default)]
struct Queue {
    state: Mutex<QueueState>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct QueueState {
    next: u64,
    waiting: Vec<(u64, Vec<NewMessage>)>,
    leader: bool,
    results: HashMap<u64, Result<Appended>>,
}

impl QueueState {
    fn idle(&self) -> bool {
        self.waiting.is_empty() && !self.leader && self.results.is_empty()
    }
}

fn poisoned() -> Error {
    Error::backend(
        BACKEND,
        io::Error::other("a thread panicked holding an append queue"),
    )
}

impl LocalMessages {
    /// Opens (creating it if needed) the store in directory `root`.
    ///
    /// Removes leftovers of interrupted deletes, and temporary files more than a day old.
    /// Fails if `root` holds a store written by a newer, incompatible release.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        create_dir_all_durable(root)?;
        // Absolute from here on: a later change of the working directory must not move
        // the store.
        let root = std::fs::canonicalize(root).map_err(io_at("resolve", root))?;
        let store = Store {
            conversations: root.join("conversations"),
            tmp: root.join("tmp"),
            trash: root.join("trash"),
            index: Listing::new(root.join("index"))?,
            queues: Mutex::new(HashMap::new()),
            ids: Mutex::new(LruCache::unbounded()),
            root,
        };
        // `users/` held 0.1's user index, which the listing index replaces; it is still
        // created (empty) so that the layout stays the one 0.1 tools expect.
        for dir in [
            &store.conversations,
            &store.tmp,
            &store.trash,
            &store.root.join("users"),
        ] {
            create_dir_all_durable(dir)?;
        }
        store.check_format()?;
        sweep(&store.trash, std::time::Duration::ZERO);
        sweep(&store.tmp, STALE_TEMP_AGE);
        Ok(LocalMessages {
            store: Arc::new(store),
        })
    }

    /// The directory this store lives in.
    pub fn root(&self) -> &Path {
        &self.store.root
    }

    /// Stores many new conversations at once, with two flushes in all instead of several
    /// per conversation: for imports and migrations.
    ///
    /// Each conversation is written whole into the store's `tmp/`, everything is flushed,
    /// then each is renamed into place. Fails with `AlreadyExists` (storing nothing more)
    /// at the first id already taken; the conversations before it are stored. Returns how
    /// many were stored. Records are validated like [`LocalMessages::save`]'s.
    pub async fn import(&self, conversations: Vec<StoredConversation>) -> Result<u64> {
        self.run(move |s| s.import(conversations)).await
    }

    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let store = Arc::clone(&self.store);
        blocking(move || f(&store)).await
    }
}

/// Whether a lock is shared (readers) or exclusive (writers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Shared,
    Exclusive,
}

/// A conversation's state as read under its lock.
#[derive(Debug)]
struct View {
    dir: PathBuf,
    generation: u64,
    record: ConversationRecord,
    files: Vec<FileAttachment>,
    /// End of the last complete record.
    valid_end: u64,
    /// The log file's length (past `valid_end` when a torn record is at the end).
    file_len: u64,
    /// Offset and header CRC of the record ending at `valid_end`.
    last_frame: Option<(u64, u32)>,
    /// Positions `1..=base` are read through the index; later ones are in `tail`.
    base: u64,
    tail: Vec<(Message, IndexEntry)>,
    /// Messages at positions `1..=base` updated after the checkpoint: newer than the
    /// index's entries until the next checkpoint rewrites them.
    edits: BTreeMap<u64, (Message, IndexEntry)>,
    /// Whether a message was updated since the checkpoint (the index is then flushed
    /// before the next checkpoint, which stops replaying the update).
    edited: bool,
    /// Marked by `begin_delete`: reads as gone.
    deleting: bool,
    /// Records and bytes past the checkpoint.
    tail_frames: usize,
    tail_bytes: u64,
    /// Whether the checkpoint must be rewritten (missing, damaged, old, or far behind).
    stale: bool,
    /// Written by 0.1 and not yet given a state record.
    legacy: bool,
}

impl View {
    fn count(&self) -> u64 {
        self.record.message_count
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(log_name(self.generation))
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join(index_name(self.generation))
    }

    /// Holds `message` (updated in place, at `entry`) as the newest version of its seq.
    fn put(&mut self, message: Message, entry: IndexEntry) {
        let seq = message.seq;
        if seq > self.base {
            if let Some(held) = self.tail.get_mut((seq - self.base - 1) as usize) {
                *held = (message, entry);
            }
        } else {
            self.edits.insert(seq, (message, entry));
        }
        self.edited = true;
    }
}

/// A record about to be committed.
#[derive(Debug)]
enum Pending {
    /// Appended messages (new positions).
    Messages(EncodedFrame, Vec<Message>),
    /// A state record.
    State(EncodedFrame),
    /// An updated message.
    Edit(EncodedFrame, Box<Message>),
}

impl Pending {
    fn frame(&self) -> &EncodedFrame {
        match self {
            Pending::Messages(f, _) | Pending::State(f) | Pending::Edit(f, _) => f,
        }
    }
}

/// A [`CorruptData`] error for `path`.
fn damaged(path: &Path, reason: impl Into<String>) -> Error {
    corrupt(CorruptData::new(path, reason))
}

/// Fails with [`CorruptData`] when `record`'s counters cannot take `new_messages` more
/// messages, one more file and one more version: only damaged data holds such numbers,
/// and the record rules must never overflow on them.
fn check_headroom(record: &ConversationRecord, new_messages: u64, path: &Path) -> Result<()> {
    let room = record.message_count.checked_add(new_messages).is_some()
        && record.version.checked_add(1).is_some()
        && record.file_count.checked_add(1).is_some();
    if room {
        Ok(())
    } else {
        Err(damaged(
            path,
            format!(
                "the record's counters leave no room for a change (message_count {}, \
                 version {}, file_count {})",
                record.message_count, record.version, record.file_count
            ),
        ))
    }
}

/// Whether an error opening a conversation's file means there is no conversation there:
/// the path is missing, or runs through a file (a stray file in `conversations/`).
fn is_absent(e: &io::Error) -> bool {
    is_not_found(e) || e.kind() == io::ErrorKind::NotADirectory
}

fn open_rw(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_at("open", path))
}

fn read_at(file: &mut File, path: &Path, offset: u64, len: u64) -> Result<Vec<u8>> {
    let len = usize::try_from(len).map_err(|_| {
        corrupt(CorruptData::new(
            path,
            format!("a read of {len} bytes is too large"),
        ))
    })?;
    let mut buf = vec![0; len];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut buf))
        .map_err(io_at("read", path))?;
    Ok(buf)
}

/// Reads `from..to` of a log in windows of about [`LOG_WINDOW`] bytes and passes each to
/// `visit` with its log offset, until `visit` says to stop.
///
/// A window holds whole records only: one cut by the window's end starts the next
/// window, and a record larger than a window gets a window of its own. Only bytes that
/// are no record a header can delimit (a record whose length runs past `to`, or no record
/// header at all: a torn write, or damage) get a window running to `to`, so that what
/// follows them is seen with them. Memory stays bounded by the largest record, whatever
/// the log's length.
fn for_each_window(
    log: &mut File,
    path: &Path,
    from: u64,
    to: u64,
    mut visit: impl FnMut(&[u8], u64) -> Result<ControlFlow<()>>,
) -> Result<()> {
    let mut at = from;
    while at < to {
        let mut want = (to - at).min(LOG_WINDOW);
        let buf = loop {
            let buf = read_at(log, path, at, want)?;
            match frame_len(&buf) {
                Some(len) if len <= want => break buf,
                Some(len) if len <= to - at => want = len,
                // The rest of the log at once: the visitor tells a torn tail from damage.
                _ if want < to - at => want = to - at,
                _ => break buf,
            }
        };
        let reaches_end = at + buf.len() as u64 == to;
        // The whole records the window holds.
        let mut whole = 0usize;
        while let Some(len) = frame_len(&buf[whole..]) {
            match usize::try_from(len) {
                Ok(len) if len <= buf.len() - whole => whole += len,
                _ => break,
            }
        }
        let window = if reaches_end || whole == 0 {
            &buf[..]
        } else {
            &buf[..whole]
        };
        if visit(window, at)?.is_break() {
            return Ok(());
        }
        at += window.len() as u64;
    }
    Ok(())
}

fn write_at(file: &mut File, path: &Path, offset: u64, bytes: &[u8]) -> Result<()> {
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.write_all(bytes))
        .map_err(io_at("write", path))
}

/// The append a stored message came from (what the record rules are replayed with).
fn to_new(m: &Message) -> NewMessage {
    NewMessage {
        id: m.id.clone(),
        role: m.role.clone(),
        parts: m.parts.clone(),
        status: m.status,
        created_at: m.created_at,
        metadata: m.metadata.clone(),
        usage: m.usage.clone(),
        lease_expires_at: m.lease_expires_at,
    }
}

/// The generations of the logs in a conversation directory.
fn log_generations(dir: &Path) -> Result<Vec<u64>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if is_absent(&e) => return Ok(Vec::new()),
        Err(e) => return Err(io_error("list", dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_at("list", dir))?;
        if let Some(g) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_prefix("log-"))
            .and_then(|g| g.parse::<u64>().ok())
        {
            out.push(g);
        }
    }
    Ok(out)
}

/// Replays log records: the state they describe, checked record by record.
struct Scan<'a> {
    path: &'a Path,
    /// `None` until a state record (or an 0.1 header) says what the record is.
    record: Option<ConversationRecord>,
    files: Vec<FileAttachment>,
    count: u64,
    valid_end: u64,
    last_frame: Option<(u64, u32)>,
    keep: bool,
    tail: Vec<(Message, IndexEntry)>,
    frames: usize,
    /// Log bytes known to hold acknowledged records: an end found before it is damage.
    acknowledged: u64,
    /// The index, whose entry past the last message shows an acknowledged record.
    index: Option<PathBuf>,
    /// Messages before the replay's start: updates to them go to `edits`.
    start_count: u64,
    edits: BTreeMap<u64, (Message, IndexEntry)>,
    edited: bool,
    deleting: bool,
}

impl<'a> Scan<'a> {
    fn new(path: &'a Path, keep: bool) -> Self {
        Scan {
            acknowledged: 0,
            index: None,
            start_count: 0,
            edits: BTreeMap::new(),
            edited: false,
            deleting: false,
            path,
            record: None,
            files: Vec::new(),
            count: 0,
            valid_end: 0,
            last_frame: None,
            keep,
            tail: Vec::new(),
            frames: 0,
        }
    }

    /// Replays the records in `from..to` of `log`. A torn record ends the replay; one
    /// followed by intact records is damage, reported, never cut off.
    fn run(&mut self, log: &mut File, from: u64, to: u64) -> Result<()> {
        if to <= from {
            return self.check_unacknowledged(to, false);
        }
        let path = self.path;
        let mut torn = None;
        for_each_window(log, path, from, to, |buf, base| {
            let mut pos = 0usize;
            while pos < buf.len() {
                match decode_frame(path, buf, pos, base)? {
                    FrameAt::Torn => {
                        torn = Some(base + pos as u64);
                        return Ok(ControlFlow::Break(()));
                    }
                    FrameAt::Damaged => {
                        return Err(damaged(
                            path,
                            format!("damaged record at byte {}", base + pos as u64),
                        ));
                    }
                    FrameAt::Valid(frame) => {
                        let end = frame.end;
                        self.apply(frame, base + pos as u64)?;
                        pos = (end - base) as usize;
                    }
                }
            }
            Ok(ControlFlow::Continue(()))
        })?;
        if let Some(at) = torn {
            // A torn write ends a log: anything intact after it is damage, not a tail.
            let rest = read_at(log, path, at, to - at)?;
            check_torn(path, &rest, 0, at)?;
        }
        // Whether the log ends at a torn record or at a record boundary, it must not end
        // before what derived files show was acknowledged: a log cut exactly between two
        // records looks complete on its own.
        self.check_unacknowledged(self.valid_end, torn.is_some())
    }

    /// The log's valid records end at `end` (a torn record or the file's end follows):
    /// fails if acknowledged records were there. Derived files are written only after the
    /// records they describe were flushed, so none may describe more than the log holds:
    /// `end` must not be before the bytes a checkpoint accounted for, and no index entry
    /// of the replayed messages, of the last message (a streamed reply's newest
    /// checkpoint) or of the next position may point past `end`. After a torn record
    /// (a crash, or a cut inside a record: rare) every entry is checked, so that an
    /// update of an older message whose record was cut shows too.
    fn check_unacknowledged(&self, end: u64, torn: bool) -> Result<()> {
        if end < self.acknowledged {
            return Err(damaged(
                self.path,
                format!(
                    "the log's intact records end at byte {end}; {} bytes were acknowledged",
                    self.acknowledged
                ),
            ));
        }
        let Some(index_path) = &self.index else {
            return Ok(());
        };
        let first = if torn {
            0
        } else {
            self.start_count.min(self.count.saturating_sub(1))
        };
        let Some(offset) = first.checked_mul(INDEX_ENTRY) else {
            return Ok(());
        };
        let Ok(mut index) = File::open(index_path) else {
            return Ok(());
        };
        // Entries of positions `first + 1 ..= count + 1`, as far as the index has them,
        // read a window at a time.
        let mut left = (self.count - first + 1).saturating_mul(INDEX_ENTRY);
        if index.seek(SeekFrom::Start(offset)).is_err() {
            return Ok(());
        }
        let mut seq = first + 1;
        let mut raw = Vec::new();
        while left > 0 {
            raw.clear();
            let window = left.min(INDEX_WINDOW);
            match (&mut index).take(window).read_to_end(&mut raw) {
                Ok(read) if read > 0 => left -= read as u64,
                _ => break,
            }
            for raw in raw.chunks_exact(INDEX_ENTRY as usize) {
                if let Some(entry) = IndexEntry::decode(raw)
                    && shows_a_record_after(&entry, end)
                {
                    let what = if seq > self.count {
                        "was acknowledged"
                    } else {
                        "has an acknowledged version"
                    };
                    return Err(damaged(
                        self.path,
                        format!(
                            "message {seq} {what} at byte {} of the log, whose intact \
                             records end at byte {end}",
                            entry.offset
                        ),
                    ));
                }
                seq += 1;
            }
        }
        Ok(())
    }

    fn apply(&mut self, frame: DecodedFrame, offset: u64) -> Result<()> {
        let DecodedFrame { at, body, crc, end } = frame;
        match body {
            Body::Messages(messages, entries) => {
                let n = messages.len() as u64;
                for (i, m) in messages.iter().enumerate() {
                    let want = self.count.checked_add(i as u64 + 1);
                    if Some(m.seq) != want {
                        return Err(damaged(
                            self.path,
                            format!(
                                "the record at byte {offset} holds seq {} where {} belongs",
                                m.seq,
                                self.count.saturating_add(i as u64 + 1)
                            ),
                        ));
                    }
                }
                if let Some(record) = &mut self.record {
                    check_headroom(record, n, self.path)?;
                    if record.message_count != self.count {
                        return Err(damaged(self.path, "the record's count disagrees"));
                    }
                    record.apply_append(messages.iter().map(to_new).collect(), at);
                }
                self.count += n;
                if self.keep {
                    self.tail.extend(messages.into_iter().zip(entries));
                }
            }
            Body::Edit(message, entry, record) => {
                let seq = message.seq;
                if seq == 0 || seq > self.count || record.message_count != self.count {
                    return Err(damaged(
                        self.path,
                        format!(
                            "the update at byte {offset} is of message {seq} of {}",
                            self.count
                        ),
                    ));
                }
                if self.keep {
                    if seq > self.start_count {
                        let slot = (seq - self.start_count - 1) as usize;
                        if let Some(held) = self.tail.get_mut(slot) {
                            *held = (*message, entry);
                        }
                    } else {
                        self.edits.insert(seq, (*message, entry));
                    }
                }
                self.edited = true;
                self.record = Some(*record);
            }
            Body::State(state) => {
                if state.record.message_count != self.count {
                    return Err(damaged(
                        self.path,
                        format!(
                            "the state record at byte {offset} counts {} messages after {}",
                            state.record.message_count, self.count
                        ),
                    ));
                }
                self.record = Some(state.record);
                self.files = state.files;
                self.deleting = state.deleting;
            }
        }
        self.valid_end = end;
        self.last_frame = Some((offset, crc));
        self.frames += 1;
        Ok(())
    }
}

/// Whether an index entry describes a message line in a record that starts at or after
/// `end`: a record the log no longer holds. Entries no writer could have written (empty,
/// longer than a record, past the largest file offset) are damage to the index itself,
/// which reads bypass; they prove nothing about the log.
fn shows_a_record_after(entry: &IndexEntry, end: u64) -> bool {
    entry.len > 0
        && u64::from(entry.len) <= MAX_RECORD_BYTES
        && entry.end().is_some_and(|e| e <= i64::MAX as u64)
        && entry.offset >= end.saturating_add(FRAME_HEADER)
}

/// After a torn record at `buf[pos..]`: fails when an intact record follows (damage in
/// the middle of the log, whose later records must not be cut off).
fn check_torn(path: &Path, buf: &[u8], pos: usize, base: u64) -> Result<()> {
    let mut at = pos + 1;
    while let Some(found) = buf
        .get(at..)
        .and_then(|rest| rest.windows(MAGIC.len()).position(|w| w == MAGIC))
    {
        let candidate = at + found;
        match decode_frame(path, buf, candidate, base) {
            Ok(FrameAt::Torn | FrameAt::Damaged) => at = candidate + 1,
            Ok(FrameAt::Valid(_)) | Err(_) => {
                return Err(damaged(
                    path,
                    format!(
                        "damaged record at byte {}, followed by an intact record at byte {}",
                        base + pos as u64,
                        base + candidate as u64
                    ),
                ));
            }
        }
    }
    Ok(())
}

impl Store {
    fn check_format(&self) -> Result<()> {
        let path = self.root.join(FORMAT_FILE);
        let write = || {
            let body = serde_json::to_vec_pretty(&FormatFile {
                format: FORMAT_VERSION,
                layout: "chatvault-local messages".into(),
            })
            .map_err(|e| Error::backend(BACKEND, e))?;
            let tmp = self.tmp.join(format!("format-{}", unique_name()));
            write_atomic(&path, &tmp, &body, true)
        };
        match fs::read(&path) {
            Ok(bytes) => {
                let f: FormatFile = serde_json::from_slice(&bytes).map_err(|e| {
                    corrupt(CorruptData::with_source(&path, "not a format file", e))
                })?;
                if f.format > FORMAT_VERSION {
                    return Err(corrupt(CorruptData::new(
                        &path,
                        format!(
                            "store format {} is newer than this release's {FORMAT_VERSION}",
                            f.format
                        ),
                    )));
                }
                // An 0.1 store: its conversations are upgraded as they are opened, and
                // 0.1 must not open it any more.
                if f.format < FORMAT_VERSION {
                    write()?;
                }
                Ok(())
            }
            Err(e) if is_not_found(&e) => write(),
            Err(e) => Err(io_error("read", &path, e)),
        }
    }

    fn dir_name(id: &str) -> String {
        encode_component(id, MAX_SEGMENT_LEN)
    }

    fn conv_dir(&self, id: &str) -> PathBuf {
        self.conversations.join(Self::dir_name(id))
    }

    /// Locks a conversation directory. `None` when there is no directory there.
    ///
    /// A missing lock file is created again (people delete stale lock files). The lock
    /// file lives in the directory, which a delete renames away while holding the lock;
    /// so after locking, the file at the path must still be the one locked, else the lock
    /// was taken on a deleted conversation (or a deleted lock file) and is taken again.
    fn lock(&self, dir: &Path, mode: Mode) -> Result<Option<File>> {
        let path = dir.join(LOCK);
        loop {
            let opened = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path);
            let file = match opened {
                Ok(f) => f,
                Err(e) if is_absent(&e) => return Ok(None),
                // A read-only store: locks work on read-only handles too.
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if is_absent(&e) => return Ok(None),
                    Err(e) => return Err(io_error("open", &path, e)),
                },
                Err(e) => return Err(io_error("open", &path, e)),
            };
            match mode {
                Mode::Shared => file.lock_shared(),
                Mode::Exclusive => file.lock(),
            }
            .map_err(io_at("lock", &path))?;
            let held = file.metadata().map_err(io_at("stat", &path))?;
            match fs::metadata(&path) {
                Ok(now) if same_file(&held, &now) => return Ok(Some(file)),
                Ok(_) => continue,
                Err(e) if is_absent(&e) => continue,
                Err(e) => return Err(io_error("stat", &path, e)),
            }
        }
    }

    fn read_header(dir: &Path) -> Result<HeaderRead> {
        let path = dir.join(HEADER);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if is_absent(&e) => return Ok(HeaderRead::Missing),
            Err(e) => return Err(io_error("read", &path, e)),
        };
        if bytes.starts_with(CHECKPOINT_MAGIC) {
            return Ok(match decode_checkpoint(&bytes) {
                Some(cp) if cp.format <= FORMAT_VERSION => HeaderRead::Checkpoint(Box::new(cp)),
                Some(cp) => {
                    return Err(damaged(
                        &path,
                        format!(
                            "format {} is newer than this release's {FORMAT_VERSION}",
                            cp.format
                        ),
                    ));
                }
                None => HeaderRead::Damaged,
            });
        }
        match serde_json::from_slice::<LegacyHeader>(&bytes) {
            Ok(h) if h.format == LEGACY_FORMAT => Ok(HeaderRead::Legacy(Box::new(h))),
            Ok(h) if h.format > FORMAT_VERSION => Err(damaged(
                &path,
                format!(
                    "format {} is newer than this release's {FORMAT_VERSION}",
                    h.format
                ),
            )),
            _ => Ok(HeaderRead::Damaged),
        }
    }

    /// Reads a locked conversation. `None` when there is none in `dir`, or it holds
    /// another id (ids that differ only in case on a case-insensitive file system).
    fn load(dir: &Path, id: Option<&str>) -> Result<Option<View>> {
        let view = match Self::read_header(dir)? {
            HeaderRead::Checkpoint(cp) => match Self::from_checkpoint(dir, &cp) {
                Ok(Some(view)) => Some(view),
                // An intact checkpoint that does not match the log, or records after it
                // that do not follow from it: the checkpoint is stale or wrong, or the log
                // is damaged; replaying the whole log tells which. What the checkpoint
                // accounted for was acknowledged: the replay must find it.
                Ok(None) => {
                    tracing::warn!(conversation = %dir.display(), "checkpoint does not match the log: replaying the log");
                    Self::rebuild(dir, true, Some((cp.generation, cp.log_len)))?
                }
                Err(e) if is_damage(&e) => {
                    tracing::warn!(conversation = %dir.display(), error = %e, "log does not follow from the checkpoint: replaying the log");
                    Self::rebuild(dir, true, Some((cp.generation, cp.log_len)))?
                }
                Err(e) => return Err(e),
            },
            HeaderRead::Legacy(h) => Some(Self::from_legacy(dir, *h)?),
            HeaderRead::Missing => Self::rebuild(dir, false, None)?,
            HeaderRead::Damaged => {
                tracing::warn!(conversation = %dir.display(), "damaged checkpoint: replaying the log");
                Self::rebuild(dir, true, None)?
            }
        };
        Ok(view.filter(|v| id.is_none_or(|id| id == v.record.id.as_str())))
    }

    /// The view a checkpoint gives, with the records after it replayed; `None` when the
    /// checkpoint does not match the log.
    fn from_checkpoint(dir: &Path, cp: &Checkpoint) -> Result<Option<View>> {
        let Some(next) = cp.generation.checked_add(1) else {
            return Ok(None);
        };
        if dir.join(log_name(next)).exists() {
            return Ok(None);
        }
        let log_path = dir.join(log_name(cp.generation));
        let mut log = match File::open(&log_path) {
            Ok(f) => f,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(io_error("open", &log_path, e)),
        };
        let file_len = log.metadata().map_err(io_at("stat", &log_path))?.len();
        if cp.log_len > file_len
            || check_headroom(&cp.record, 0, &log_path).is_err()
            || !Self::checkpoint_matches(dir, &mut log, &log_path, cp)?
        {
            return Ok(None);
        }
        let mut scan = Scan::new(&log_path, true);
        scan.index = Some(dir.join(index_name(cp.generation)));
        scan.record = Some(cp.record.clone());
        scan.files = cp.files.clone();
        scan.count = cp.record.message_count;
        scan.start_count = cp.record.message_count;
        scan.deleting = cp.deleting;
        scan.valid_end = cp.log_len;
        scan.last_frame = cp.last_frame;
        scan.run(&mut log, cp.log_len, file_len)?;
        let Some(record) = scan.record else {
            return Ok(None);
        };
        Ok(Some(View {
            dir: dir.to_owned(),
            generation: cp.generation,
            record,
            files: scan.files,
            valid_end: scan.valid_end,
            file_len,
            last_frame: scan.last_frame,
            base: cp.record.message_count,
            tail_bytes: scan.valid_end - cp.log_len,
            stale: scan.frames >= CHECKPOINT_FRAMES,
            tail_frames: scan.frames,
            tail: scan.tail,
            edits: scan.edits,
            edited: scan.edited,
            deleting: scan.deleting,
            legacy: false,
        }))
    }

    /// Whether the log record that a checkpoint says ends at its `log_len` is there and
    /// agrees with it: same CRC, and the same message count (the seq of its last
    /// message) or, for a state record, the same record and attachments.
    fn checkpoint_matches(
        dir: &Path,
        log: &mut File,
        path: &Path,
        cp: &Checkpoint,
    ) -> Result<bool> {
        let Some((offset, crc)) = cp.last_frame else {
            return Ok(cp.log_len == 0 && cp.record.message_count == 0);
        };
        if offset >= cp.log_len || cp.log_len - offset < FRAME_HEADER {
            return Ok(false);
        }
        let head = read_at(log, path, offset, FRAME_HEADER)?;
        let header_matches = header_crc(&head).is_some_and(|(len, c)| {
            c == crc && offset + FRAME_HEADER + u64::from(len) == cp.log_len
        });
        if !header_matches {
            return Ok(false);
        }
        // The cheap way: the index entry of the last message, which must be the record's
        // last line, CRC-checked, with the checkpoint's count as its seq.
        if Self::last_message_matches(dir, log, path, cp, offset)? {
            return Ok(true);
        }
        let bytes = read_at(log, path, offset, cp.log_len - offset)?;
        let frame = match decode_frame(path, &bytes, 0, offset) {
            Ok(FrameAt::Valid(frame)) => frame,
            Ok(FrameAt::Torn | FrameAt::Damaged) | Err(_) => return Ok(false),
        };
        if frame.crc != crc || frame.end != cp.log_len {
            return Ok(false);
        }
        Ok(match frame.body {
            Body::Messages(messages, _) => {
                messages.last().map(|m| m.seq) == Some(cp.record.message_count)
            }
            Body::State(state) => {
                state.record == cp.record
                    && state.files == cp.files
                    && state.deleting == cp.deleting
            }
            Body::Edit(_, _, record) => *record == cp.record,
        })
    }

    /// Whether the index entry of message `message_count` points at the last line of
    /// the record at `frame` (ending at `log_len`) and that line is that message.
    fn last_message_matches(
        dir: &Path,
        log: &mut File,
        path: &Path,
        cp: &Checkpoint,
        frame: u64,
    ) -> Result<bool> {
        let count = cp.record.message_count;
        let Some(at) = count
            .checked_sub(1)
            .and_then(|p| p.checked_mul(INDEX_ENTRY))
        else {
            return Ok(false);
        };
        let Ok(mut index) = File::open(dir.join(index_name(cp.generation))) else {
            return Ok(false);
        };
        let mut raw = [0u8; INDEX_ENTRY as usize];
        let read = index
            .seek(SeekFrom::Start(at))
            .and_then(|_| index.read_exact(&mut raw));
        let Some(entry) = read.ok().and_then(|()| IndexEntry::decode(&raw)) else {
            return Ok(false);
        };
        if entry.offset <= frame + FRAME_HEADER || entry.end() != Some(cp.log_len) {
            return Ok(false);
        }
        let line = read_at(log, path, entry.offset, u64::from(entry.len))?;
        Ok(crc32fast::hash(&line) == entry.crc
            && serde_json::from_slice::<Message>(&line).is_ok_and(|m| m.seq == count))
    }

    /// Replays a conversation's newest log from its start. `None` when the directory
    /// holds no conversation.
    ///
    /// `acknowledged`: a log generation and the bytes of it an intact checkpoint
    /// accounted for, which the replay must find intact.
    fn rebuild(
        dir: &Path,
        header_present: bool,
        acknowledged: Option<(u64, u64)>,
    ) -> Result<Option<View>> {
        let Some(generation) = log_generations(dir)?.into_iter().max() else {
            if header_present {
                return Err(damaged(&dir.join(HEADER), "its conversation has no log"));
            }
            return Ok(None);
        };
        let log_path = dir.join(log_name(generation));
        let mut log = File::open(&log_path).map_err(io_at("open", &log_path))?;
        let file_len = log.metadata().map_err(io_at("stat", &log_path))?.len();
        let mut scan = Scan::new(&log_path, true);
        scan.index = Some(dir.join(index_name(generation)));
        scan.acknowledged = acknowledged
            .filter(|&(g, _)| g == generation)
            .map_or(0, |(_, len)| len);
        scan.run(&mut log, 0, file_len)?;
        let Some(record) = scan.record else {
            return Err(damaged(
                &log_path,
                "no state record: the log was written by 0.1 and its header.json is lost",
            ));
        };
        Ok(Some(View {
            dir: dir.to_owned(),
            generation,
            record,
            files: scan.files,
            valid_end: scan.valid_end,
            file_len,
            last_frame: scan.last_frame,
            base: 0,
            tail_bytes: scan.valid_end,
            tail_frames: scan.frames,
            tail: scan.tail,
            edits: scan.edits,
            edited: scan.edited,
            deleting: scan.deleting,
            stale: true,
            legacy: false,
        }))
    }

    /// A conversation written by 0.1: its header is the record's only copy, checked
    /// against the log before it is believed.
    fn from_legacy(dir: &Path, h: LegacyHeader) -> Result<View> {
        let header_path = dir.join(HEADER);
        let log_path = dir.join(log_name(h.generation));
        let mut log = File::open(&log_path).map_err(io_at("open", &log_path))?;
        let file_len = log.metadata().map_err(io_at("stat", &log_path))?.len();
        if h.log_len > file_len {
            return Err(damaged(
                &header_path,
                format!(
                    "it accounts for {} bytes of a {file_len}-byte log",
                    h.log_len
                ),
            ));
        }
        let mut scan = Scan::new(&log_path, false);
        scan.run(&mut log, 0, h.log_len)?;
        if scan.valid_end != h.log_len
            || scan.count != h.log_messages
            || h.record.message_count != h.log_messages
        {
            return Err(damaged(
                &header_path,
                format!(
                    "it counts {} messages in {} bytes; the log holds {} in {}",
                    h.log_messages, h.log_len, scan.count, scan.valid_end
                ),
            ));
        }
        scan.record = Some(h.record);
        scan.files = h.files;
        scan.keep = true;
        scan.start_count = scan.count;
        scan.index = Some(dir.join(index_name(h.generation)));
        scan.frames = 0;
        scan.run(&mut log, h.log_len, file_len)?;
        let Some(record) = scan.record else {
            return Err(damaged(&header_path, "no record"));
        };
        Ok(View {
            dir: dir.to_owned(),
            generation: h.generation,
            record,
            files: scan.files,
            valid_end: scan.valid_end,
            file_len,
            last_frame: scan.last_frame,
            base: h.log_messages,
            tail_bytes: scan.valid_end - h.log_len,
            tail_frames: scan.frames,
            tail: scan.tail,
            edits: scan.edits,
            edited: scan.edited,
            deleting: scan.deleting,
            stale: true,
            legacy: true,
        })
    }

    /// Locks and loads conversation `id`; `None` when it does not exist. A conversation
    /// written by 0.1 is upgraded first (one state record), under the exclusive lock.
    fn open_conv(&self, id: &str, mode: Mode) -> Result<Option<(File, View)>> {
        let dir = self.conv_dir(id);
        loop {
            let Some(lock) = self.lock(&dir, mode)? else {
                return Ok(None);
            };
            let Some(mut view) = Self::load(&dir, Some(id))? else {
                return Ok(None);
            };
            if !view.legacy {
                return Ok(Some((lock, view)));
            }
            if mode == Mode::Exclusive {
                self.upgrade(&mut view)?;
                return Ok(Some((lock, view)));
            }
            drop(lock);
            drop(self.open_conv(id, Mode::Exclusive)?);
        }
    }

    /// Locks and loads a conversation that exists and is not being deleted.
    fn require(&self, id: &str, mode: Mode) -> Result<(File, View)> {
        match self.open_conv(id, mode)? {
            Some((lock, view)) if !view.deleting => Ok((lock, view)),
            _ => Err(Error::conversation_not_found(id)),
        }
    }

    /// Like [`require`](Self::require), `None` instead of `NotFound`.
    fn live(&self, id: &str, mode: Mode) -> Result<Option<(File, View)>> {
        Ok(self.open_conv(id, mode)?.filter(|(_, v)| !v.deleting))
    }

    /// Gives an 0.1 conversation a state record, so that its log alone describes it.
    fn upgrade(&self, view: &mut View) -> Result<()> {
        let frame = encode_state(view.record.last_active, &view.record, &view.files, false)?;
        Self::commit(view, vec![Pending::State(frame)])?;
        view.legacy = false;
        Ok(())
    }

    /// Writes records at the end of a locked conversation's log and flushes them: the
    /// commit point of every change, and the only flush of an append. `view.record`,
    /// `view.files` and `view.deleting` must already be the state after them.
    ///
    /// Cuts off a torn tail first (only one `Scan` showed to be torn: nothing intact
    /// after it). Then writes the new messages' index entries and, when it is due, the
    /// checkpoint: both derived, neither flushed.
    fn commit(view: &mut View, pending: Vec<Pending>) -> Result<()> {
        let log_path = view.log_path();
        let mut log = open_rw(&log_path)?;
        if view.file_len != view.valid_end {
            log.set_len(view.valid_end)
                .map_err(io_at("truncate", &log_path))?;
            view.file_len = view.valid_end;
        }
        let total: usize = pending.iter().map(|p| p.frame().bytes.len()).sum();
        let end = view
            .valid_end
            .checked_add(total as u64)
            .ok_or_else(|| damaged(&log_path, "the log's length overflows"))?;
        let mut bytes = Vec::with_capacity(total);
        let mut starts = Vec::with_capacity(pending.len());
        for p in &pending {
            starts.push(view.valid_end + bytes.len() as u64);
            bytes.extend_from_slice(&p.frame().bytes);
        }
        let written = write_at(&mut log, &log_path, view.valid_end, &bytes)
            .and_then(|()| sync_data(&log, &log_path));
        if let Err(e) = written {
            // Nothing of a failed commit may be read later.
            let _ = log.set_len(view.valid_end).and_then(|()| log.sync_data());
            return Err(e);
        }
        let appended: u64 = pending
            .iter()
            .map(|p| match p {
                Pending::Messages(_, m) => m.len() as u64,
                _ => 0,
            })
            .sum();
        let first_new = view.count() - appended + 1;
        let mut entries = Vec::new();
        let mut edited = Vec::new();
        for (p, start) in pending.into_iter().zip(starts) {
            if let Some((_, crc)) = header_crc(&p.frame().bytes) {
                view.last_frame = Some((start, crc));
            }
            view.tail_frames += 1;
            match p {
                Pending::Messages(frame, messages) => {
                    let frame_entries: Vec<IndexEntry> = frame.entries(start).collect();
                    entries.extend(frame_entries.iter().copied());
                    view.tail.extend(messages.into_iter().zip(frame_entries));
                }
                Pending::State(_) => {}
                Pending::Edit(frame, message) => {
                    if let Some(entry) = frame.entries(start).next() {
                        edited.push((message.seq, entry));
                        view.put(*message, entry);
                    }
                }
            }
        }
        view.tail_bytes += total as u64;
        view.valid_end = end;
        view.file_len = end;
        if !entries.is_empty()
            && let Err(e) = Self::write_index(view, first_new, &entries)
        {
            tracing::warn!(error = %e, "could not write index entries; reads fall back to the log");
        }
        for (seq, entry) in edited {
            if let Err(e) = Self::write_index(view, seq, &[entry]) {
                tracing::warn!(error = %e, "could not write an index entry");
            }
        }
        if view.stale
            || view.tail_frames >= CHECKPOINT_FRAMES
            || view.tail_bytes >= CHECKPOINT_BYTES
        {
            Self::checkpoint(view);
        }
        Ok(())
    }

    /// Writes index entries for positions `first..` (derived: not flushed).
    fn write_index(view: &View, first: u64, entries: &[IndexEntry]) -> Result<()> {
        let index_path = view.index_path();
        let offset = (first - 1)
            .checked_mul(INDEX_ENTRY)
            .ok_or_else(|| damaged(&index_path, "an index offset overflows"))?;
        let mut bytes = Vec::with_capacity(entries.len() * INDEX_ENTRY as usize);
        for e in entries {
            e.encode(&mut bytes);
        }
        let mut index = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&index_path)
            .map_err(io_at("open", &index_path))?;
        write_at(&mut index, &index_path, offset, &bytes)
    }

    /// Rewrites the checkpoint of a locked view (and the index entries of its tail).
    /// Best effort: a failure only means more replaying for later readers.
    fn checkpoint(view: &mut View) {
        let result = (|| {
            if !view.tail.is_empty() {
                let entries: Vec<IndexEntry> = view.tail.iter().map(|(_, e)| *e).collect();
                Self::write_index(view, view.base + 1, &entries)?;
            }
            for (&seq, (_, entry)) in &view.edits {
                Self::write_index(view, seq, &[*entry])?;
            }
            if view.edited {
                // The checkpoint stops the replay of these updates: from then on only the
                // index says where an updated message's newest version is, so it must be
                // on disk first.
                let index_path = view.index_path();
                let index = File::open(&index_path).map_err(io_at("open", &index_path))?;
                sync_data(&index, &index_path)?;
            }
            let cp = Checkpoint {
                format: FORMAT_VERSION,
                generation: view.generation,
                log_len: view.valid_end,
                last_frame: view.last_frame,
                record: view.record.clone(),
                files: view.files.clone(),
                deleting: view.deleting,
            };
            write_replace_unsynced(
                &view.dir.join(HEADER),
                &view.dir.join(HEADER_TMP),
                &encode_checkpoint(&cp)?,
            )
        })();
        match result {
            Ok(()) => {
                view.base = view.count();
                view.tail.clear();
                view.edits.clear();
                view.edited = false;
                view.tail_frames = 0;
                view.tail_bytes = 0;
                view.stale = false;
            }
            Err(e) => tracing::warn!(error = %e, "could not write a checkpoint"),
        }
    }

    /// Every message of the log, with its index entry, replayed and checked.
    fn scan_all(view: &View) -> Result<Vec<(Message, IndexEntry)>> {
        let path = view.log_path();
        let mut log = File::open(&path).map_err(io_at("open", &path))?;
        let mut scan = Scan::new(&path, true);
        scan.run(&mut log, 0, view.valid_end)?;
        if scan.count != view.count() || scan.valid_end != view.valid_end {
            return Err(damaged(
                &path,
                format!(
                    "the log holds {} messages; the conversation counts {}",
                    scan.count,
                    view.count()
                ),
            ));
        }
        Ok(scan.tail)
    }

    /// Messages at positions `first..=last` through the index: reads the index entries
    /// and one contiguous span of the log, and checks every message (CRC, seq). `None`
    /// if the index does not check out (then the caller replays the log instead).
    fn read_indexed(view: &View, first: u64, last: u64) -> Result<Option<Vec<Message>>> {
        let index_path = view.index_path();
        let mut index = match File::open(&index_path) {
            Ok(index) => index,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(io_error("open", &index_path, e)),
        };
        let index_len = index.metadata().map_err(io_at("stat", &index_path))?.len();
        let (Some(needed), Some(offset), Some(len)) = (
            last.checked_mul(INDEX_ENTRY),
            (first - 1).checked_mul(INDEX_ENTRY),
            (last - first + 1).checked_mul(INDEX_ENTRY),
        ) else {
            return Ok(None);
        };
        if index_len < needed {
            return Ok(None);
        }
        let raw = read_at(&mut index, &index_path, offset, len)?;
        let entries: Vec<IndexEntry> = raw
            .chunks_exact(INDEX_ENTRY as usize)
            .filter_map(IndexEntry::decode)
            .collect();
        let Some(ends) = entries
            .iter()
            .map(IndexEntry::end)
            .collect::<Option<Vec<u64>>>()
        else {
            return Ok(None);
        };
        let ordered = ends
            .iter()
            .zip(entries.iter().skip(1))
            .all(|(&end, next)| end <= next.offset);
        let (Some(start), Some(&end)) = (entries.first(), ends.last()) else {
            return Ok(None);
        };
        let start = start.offset;
        if !ordered || end > view.valid_end || entries.iter().any(|e| e.len == 0) {
            return Ok(None);
        }
        let log_path = view.log_path();
        let mut log = File::open(&log_path).map_err(io_at("open", &log_path))?;
        let span = read_at(&mut log, &log_path, start, end - start)?;
        let mut out = Vec::with_capacity(entries.len());
        for (e, seq) in entries.iter().zip(first..) {
            let from = (e.offset - start) as usize;
            let bytes = &span[from..from + e.len as usize];
            if crc32fast::hash(bytes) != e.crc {
                return Ok(None);
            }
            match serde_json::from_slice::<Message>(bytes) {
                Ok(m) if m.seq == seq => out.push(m),
                _ => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    /// Messages at positions `first..=last` (1-based, within the count).
    fn read_positions(view: &View, first: u64, last: u64) -> Result<Vec<Message>> {
        if first == 0 || first > last || last > view.count() {
            return Err(damaged(
                &view.log_path(),
                format!("messages {first}..={last} of {} asked for", view.count()),
            ));
        }
        let base = view.base;
        let mut out = Vec::with_capacity((last - first + 1).min(MAX_PAGE as u64) as usize);
        if first <= base {
            let hi = last.min(base);
            match Self::read_indexed(view, first, hi)? {
                Some(messages) => {
                    out.extend(messages);
                    // Updated since the checkpoint: newer than what the index points at.
                    for (&seq, (m, _)) in view.edits.range(first..=hi) {
                        out[(seq - first) as usize] = m.clone();
                    }
                }
                None => {
                    // A damaged or missing index: the log is the truth; the index is
                    // written again from it (entries are the same whoever writes them).
                    tracing::warn!(conversation = %view.dir.display(), "index does not match the log: replaying the log");
                    let all = Self::scan_all(view)?;
                    let entries: Vec<IndexEntry> = all.iter().map(|(_, e)| *e).collect();
                    if let Err(e) = Self::write_index(view, 1, &entries) {
                        tracing::warn!(error = %e, "could not repair an index");
                    }
                    out.extend(
                        all[(first - 1) as usize..hi as usize]
                            .iter()
                            .map(|(m, _)| m.clone()),
                    );
                }
            }
        }
        for pos in first.max(base + 1)..=last {
            out.push(view.tail[(pos - base - 1) as usize].0.clone());
        }
        Ok(out)
    }

    /// Encodes a whole conversation as a log: its messages, then a state record (whose
    /// `message_count` the replay checks against them). Returns the log's bytes, its
    /// index's bytes, and the checkpoint of generation `generation` over it.
    ///
    /// Fails with `InvalidInput` unless the messages have seq 1, 2, 3, ... and the
    /// record counts them: what is written must read back.
    fn encode_whole(
        conversation: &StoredConversation,
        generation: u64,
    ) -> Result<(Vec<u8>, Vec<u8>, Checkpoint)> {
        let record = &conversation.record;
        if conversation.messages.len() as u64 != record.message_count
            || conversation
                .messages
                .iter()
                .zip(1u64..)
                .any(|(m, seq)| m.seq != seq)
        {
            return Err(Error::invalid_input(
                "conversation",
                "its messages must have seq 1, 2, 3, ... and its message_count must be \
                 their number",
            ));
        }
        let mut log = Vec::new();
        let mut index = Vec::new();
        for chunk in conversation.messages.chunks(SAVE_BATCH) {
            let frame = encode_frame(record.last_active, chunk)?;
            for e in frame.entries(log.len() as u64) {
                e.encode(&mut index);
            }
            log.extend_from_slice(&frame.bytes);
        }
        let state = encode_state(
            record.last_active,
            record,
            &conversation.files,
            conversation.deleting,
        )?;
        let last_frame = header_crc(&state.bytes).map(|(_, crc)| (log.len() as u64, crc));
        log.extend_from_slice(&state.bytes);
        let cp = Checkpoint {
            format: FORMAT_VERSION,
            generation,
            log_len: log.len() as u64,
            last_frame,
            record: record.clone(),
            files: conversation.files.clone(),
            deleting: conversation.deleting,
        };
        Ok((log, index, cp))
    }

    /// Writes a whole conversation as generation `generation` in `dir`, its log under the
    /// name `log_file` (flushed when `flush`), its index and checkpoint (never flushed).
    ///
    /// In a `private` directory (one being built in `tmp/`) the checkpoint is written in
    /// place, and a bulk import (`flush` off) leaves the index out: both are derived, the
    /// first read writes them.
    fn write_whole(
        dir: &Path,
        generation: u64,
        conversation: &StoredConversation,
        log_file: &str,
        flush: bool,
        private: bool,
    ) -> Result<()> {
        let (log, index, cp) = Self::encode_whole(conversation, generation)?;
        let log_path = dir.join(log_file);
        let mut guard = TempPath::new(log_path.clone());
        let mut file = File::create(&log_path).map_err(io_at("create", &log_path))?;
        file.write_all(&log).map_err(io_at("write", &log_path))?;
        if flush {
            sync_all(&file, &log_path)?;
        }
        if flush && !index.is_empty() {
            let index_path = dir.join(index_name(generation));
            fs::write(&index_path, &index).map_err(io_at("write", &index_path))?;
        }
        let checkpoint = encode_checkpoint(&cp)?;
        if private {
            let path = dir.join(HEADER);
            fs::write(&path, &checkpoint).map_err(io_at("write", &path))?;
        } else {
            write_replace_unsynced(&dir.join(HEADER), &dir.join(HEADER_TMP), &checkpoint)?;
        }
        guard.disarm();
        Ok(())
    }

    /// Builds a conversation directory in `tmp/`, flushed unless `flush` is off (a bulk
    /// import flushes everything at once). Its lock file is created by the first lock.
    fn build_dir(&self, conversation: &StoredConversation, flush: bool) -> Result<TempPath> {
        let tmp = TempPath::new(self.tmp.join(unique_name()));
        fs::create_dir(tmp.path()).map_err(io_at("create directory", tmp.path()))?;
        Self::write_whole(tmp.path(), 1, conversation, &log_name(1), flush, true)?;
        if flush {
            sync_dir(tmp.path())?;
        }
        Ok(tmp)
    }

    /// Builds a conversation directory in `tmp/` and renames it into place. Returns
    /// `false` (and leaves nothing behind) when the id is taken.
    fn install_new(&self, conversation: &StoredConversation) -> Result<bool> {
        let record = &conversation.record;
        let dir = self.conv_dir(record.id.as_str());
        if dir.join(HEADER).exists() || !log_generations(&dir)?.is_empty() {
            return Ok(false);
        }
        let tmp = self.build_dir(conversation, true)?;
        self.index.record(&Claim::tentative(record))?;
        match fs::rename(tmp.path(), &dir) {
            Ok(()) => {
                let mut tmp = tmp;
                tmp.disarm();
                sync_dir(&self.conversations)?;
                self.index.record_after_commit(&Claim::confirmed(record));
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(io_error("rename into place", &dir, e)),
        }
    }

    fn import(&self, conversations: Vec<StoredConversation>) -> Result<u64> {
        let mut built = Vec::with_capacity(conversations.len());
        for conversation in &conversations {
            conversation.record.validate()?;
            built.push(self.build_dir(conversation, false)?);
        }
        // Everything written is flushed before anything is renamed into place.
        sync_tree(&self.tmp, built.iter().map(TempPath::path))?;
        let mut stored = 0;
        let outcome = (|| {
            for (mut tmp, conversation) in built.into_iter().zip(&conversations) {
                let record = &conversation.record;
                let dir = self.conv_dir(record.id.as_str());
                if dir.join(HEADER).exists() || !log_generations(&dir)?.is_empty() {
                    return Err(Error::AlreadyExists {
                        kind: "conversation",
                        id: record.id.to_string(),
                    });
                }
                fs::rename(tmp.path(), &dir).map_err(|e| match e.kind() {
                    io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty => {
                        Error::AlreadyExists {
                            kind: "conversation",
                            id: record.id.to_string(),
                        }
                    }
                    _ => io_error("rename into place", &dir, e),
                })?;
                tmp.disarm();
                stored += 1;
            }
            Ok(())
        })();
        sync_dir(&self.conversations)?;
        // Claims for this many conversations are cheaper rebuilt than written one by one.
        self.index.invalidate()?;
        outcome.map(|()| stored)
    }

    /// Replaces a locked conversation whole: a new log generation written under a
    /// temporary name, then renamed into place (the commit point), then the old
    /// generation's removal.
    fn replace_locked(&self, dir: &Path, conversation: &StoredConversation) -> Result<()> {
        let generation = log_generations(dir)?
            .into_iter()
            .max()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| damaged(&dir.join(HEADER), "its log generation overflows"))?;
        let log_path = dir.join(log_name(generation));
        let tmp_log = dir.join(format!("{}.tmp", log_name(generation)));
        Self::write_whole(
            dir,
            generation,
            conversation,
            &format!("{}.tmp", log_name(generation)),
            true,
            false,
        )?;
        self.index.record(&Claim::tentative(&conversation.record))?;
        fs::rename(&tmp_log, &log_path).map_err(io_at("rename into place", &log_path))?;
        sync_dir(dir)?;
        self.index
            .record_after_commit(&Claim::confirmed(&conversation.record));
        for g in log_generations(dir)? {
            if g < generation {
                let _ = fs::remove_file(dir.join(log_name(g)));
                let _ = fs::remove_file(dir.join(index_name(g)));
            }
        }
        Ok(())
    }

    fn save(&self, conversation: &StoredConversation) -> Result<()> {
        let record = &conversation.record;
        record.validate()?;
        let dir = self.conv_dir(record.id.as_str());
        for _ in 0..100 {
            match self.lock(&dir, Mode::Exclusive)? {
                Some(_lock) => {
                    match Self::load(&dir, None) {
                        Ok(Some(view)) if view.record.id != record.id => {
                            return Err(Error::AlreadyExists {
                                kind: "conversation directory (ids differing only in case)",
                                id: view.record.id.to_string(),
                            });
                        }
                        // A damaged conversation is replaced all the same.
                        Ok(_) => {}
                        Err(e) if is_damage(&e) => {}
                        Err(e) => return Err(e),
                    }
                    return self.replace_locked(&dir, conversation);
                }
                None => {
                    if self.install_new(conversation)? {
                        return Ok(());
                    }
                    // Created by someone else meanwhile: replace it.
                }
            }
        }
        Err(Error::Conflict {
            message: format!("conversation {} kept being created and deleted", record.id),
        })
    }

    fn create(&self, record: &ConversationRecord) -> Result<()> {
        record.validate()?;
        if self.install_new(&StoredConversation::new(record.clone()))? {
            Ok(())
        } else {
            Err(Error::AlreadyExists {
                kind: "conversation",
                id: record.id.to_string(),
            })
        }
    }

    fn get(&self, id: &str) -> Result<Option<StoredConversation>> {
        let Some((_lock, view)) = self.live(id, Mode::Shared)? else {
            return Ok(None);
        };
        let messages = if view.base == 0 {
            view.tail.iter().map(|(m, _)| m.clone()).collect()
        } else {
            Self::scan_all(&view)?.into_iter().map(|(m, _)| m).collect()
        };
        Ok(Some(StoredConversation {
            record: view.record,
            messages,
            files: view.files,
            deleting: false,
        }))
    }

    fn list(&self, user: Option<&str>, options: &ListOptions) -> Result<Page<ConversationSummary>> {
        self.index.page(user, options, self)
    }

    fn get_by_user(&self, user: &str) -> Result<Vec<StoredConversation>> {
        let ids = self.index.ids_of(user, self)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.get(&id) {
                Ok(Some(c))
                    if c.record
                        .user_id
                        .as_ref()
                        .is_some_and(|u| u.as_str() == user) =>
                {
                    out.push(c);
                }
                Ok(_) => {}
                Err(e) if is_damage(&e) => {
                    tracing::warn!(conversation = id, error = %e, "leaving a damaged conversation out");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn delete(&self, id: &str) -> Result<bool> {
        let dir = self.conv_dir(id);
        let Some(lock) = self.lock(&dir, Mode::Exclusive)? else {
            return Ok(false);
        };
        // A damaged conversation is deleted all the same: the id names its directory.
        match Self::load(&dir, None) {
            Ok(Some(view)) if view.record.id.as_str() != id => return Ok(false),
            Ok(Some(_)) => {}
            Ok(None) => return Ok(false),
            Err(e) if is_damage(&e) => {
                tracing::warn!(conversation = id, error = %e, "deleting a damaged conversation");
            }
            Err(e) => return Err(e),
        }
        let trash = self.trash.join(unique_name());
        // The rename is the commit point: from here the conversation does not exist, and
        // an appender waiting for the lock finds the lock file gone.
        fs::rename(&dir, &trash).map_err(io_at("move to trash", &dir))?;
        sync_dir(&self.conversations)?;
        self.index.record_after_commit(&Claim::deleted(id));
        self.forget_ids(id);
        drop(lock);
        let _ = fs::remove_dir_all(&trash);
        Ok(true)
    }

    /// Marks a conversation as being deleted (a state record: durable), so that it reads
    /// as gone and takes no more changes; returns its attachments, every time it is called.
    fn begin_delete(&self, id: &str) -> Result<Option<Vec<FileAttachment>>> {
        let Some((_lock, mut view)) = self.open_conv(id, Mode::Exclusive)? else {
            return Ok(None);
        };
        if !view.deleting {
            let frame = encode_state(now(), &view.record, &view.files, true)?;
            view.deleting = true;
            Self::commit(&mut view, vec![Pending::State(frame)])?;
            self.index.record_after_commit(&Claim::deleted(id));
        }
        Ok(Some(view.files))
    }

    /// The seq of each of `ids` in a locked conversation, through this process's map of
    /// its message ids (brought up to date with the log's records it has not seen).
    fn lookup(&self, id: &str, view: &View, ids: &[&MessageId]) -> Result<Vec<Option<u64>>> {
        let log_path = view.log_path();
        let meta = fs::metadata(&log_path).map_err(io_at("stat", &log_path))?;
        let identity = (view.generation, file_identity(&meta));
        let mut caches = self.ids.lock().map_err(|_| poisoned())?;
        let cache = caches.get_or_insert_mut(id.to_owned(), IdCache::default);
        if cache.log != identity || cache.end > view.valid_end {
            *cache = IdCache {
                log: identity,
                ..IdCache::default()
            };
        }
        if cache.end < view.valid_end {
            let mut log = File::open(&log_path).map_err(io_at("open", &log_path))?;
            // From where the map stopped; from the start if that is not a record boundary
            // any more (the log was replaced by one with the same identity).
            let mut found = Self::ids_in(&mut log, &log_path, cache.end, view.valid_end)?;
            if found.is_none() && cache.end > 0 {
                cache.seqs.clear();
                cache.end = 0;
                found = Self::ids_in(&mut log, &log_path, 0, view.valid_end)?;
            }
            let Some(found) = found else {
                return Err(damaged(&log_path, "a record the replay accepted changed"));
            };
            cache.seqs.extend(found);
            cache.end = view.valid_end;
        }
        let seqs = ids.iter().map(|m| cache.seqs.get(*m).copied()).collect();
        trim_id_maps(&mut caches, MAX_ID_CACHES, MAX_IDS);
        Ok(seqs)
    }

    /// The `(id, seq)` of every message appended in `from..to` of a log; `None` when
    /// `from` does not start a run of intact records up to `to`.
    ///
    /// Reads the log a window at a time ([`for_each_window`]).
    fn ids_in(
        log: &mut File,
        path: &Path,
        from: u64,
        to: u64,
    ) -> Result<Option<Vec<(MessageId, u64)>>> {
        let mut out = Vec::new();
        let mut intact = true;
        for_each_window(log, path, from, to, |buf, base| {
            let mut pos = 0usize;
            while pos < buf.len() {
                let Some((ids, end)) = frame_ids(buf, pos, base) else {
                    intact = false;
                    return Ok(ControlFlow::Break(()));
                };
                out.extend(ids);
                pos = (end - base) as usize;
            }
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(intact.then_some(out))
    }

    /// The stored messages with `ids` in a locked conversation (`None` for ids it does not
    /// hold). Every hit of the id map is checked against the message it names; a map that
    /// disagrees (its log was replaced by one that happens to have the same identity) is
    /// dropped and built again from the log.
    fn stored_by_id(
        &self,
        id: &str,
        view: &View,
        ids: &[&MessageId],
    ) -> Result<Vec<Option<Message>>> {
        for attempt in 0..2 {
            let seqs = self.lookup(id, view, ids)?;
            let mut out = Vec::with_capacity(ids.len());
            let mut stale = false;
            for (want, seq) in ids.iter().zip(seqs) {
                let Some(seq) = seq else {
                    out.push(None);
                    continue;
                };
                if seq == 0 || seq > view.count() {
                    stale = true;
                    break;
                }
                match Self::read_positions(view, seq, seq)?.pop() {
                    Some(m) if &m.id == *want => out.push(Some(m)),
                    _ => {
                        stale = true;
                        break;
                    }
                }
            }
            if !stale {
                return Ok(out);
            }
            if attempt == 0 {
                self.forget_ids(id);
            }
        }
        Err(damaged(
            &view.log_path(),
            "the message ids read from the log do not match its messages",
        ))
    }

    /// Notes the messages a commit appended (the map then covers the log to its end).
    fn note_ids(&self, id: &str, view: &View, before: u64, messages: &[Message]) {
        if let Ok(mut caches) = self.ids.lock()
            && let Some(cache) = caches.get_mut(id)
        {
            if cache.end == before {
                cache
                    .seqs
                    .extend(messages.iter().map(|m| (m.id.clone(), m.seq)));
                cache.end = view.valid_end;
            } else {
                caches.pop(id);
            }
        }
    }

    fn forget_ids(&self, id: &str) {
        if let Ok(mut caches) = self.ids.lock() {
            caches.pop(id);
        }
    }

    fn append(&self, id: &str, messages: Vec<NewMessage>) -> Result<Appended> {
        if messages.is_empty() {
            let (_lock, view) = self.require(id, Mode::Shared)?;
            return Ok(Appended {
                record: view.record,
                messages: Vec::new(),
            });
        }
        let queue = {
            let mut queues = self.queues.lock().map_err(|_| poisoned())?;
            Arc::clone(queues.entry(id.to_owned()).or_default())
        };
        let result = self.append_queued(&queue, id, messages);
        if let Ok(mut queues) = self.queues.lock()
            && let Some(q) = queues.get(id)
            && Arc::ptr_eq(q, &queue)
            && Arc::strong_count(q) == 2
            && q.state.lock().is_ok_and(|s| s.idle())
        {
            queues.remove(id);
        }
        result
    }

    fn append_queued(
        &self,
        queue: &Queue,
        id: &str,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        let mut state = queue.state.lock().map_err(|_| poisoned())?;
        let ticket = state.next;
        state.next += 1;
        state.waiting.push((ticket, messages));
        loop {
            if let Some(result) = state.results.remove(&ticket) {
                return result;
            }
            if state.leader {
                state = queue.done.wait(state).map_err(|_| poisoned())?;
                continue;
            }
            state.leader = true;
            let batch = std::mem::take(&mut state.waiting);
            let tickets: Vec<u64> = batch.iter().map(|(t, _)| *t).collect();
            drop(state);
            let outcome = catch_unwind(AssertUnwindSafe(|| self.append_batch(id, batch)));
            state = queue.state.lock().map_err(|_| poisoned())?;
            state.leader = false;
            match outcome {
                Ok(results) => state.results.extend(tickets.into_iter().zip(results)),
                Err(panic) => {
                    for t in tickets {
                        state.results.insert(
                            t,
                            Err(Error::backend(
                                BACKEND,
                                io::Error::other("an append panicked"),
                            )),
                        );
                    }
                    queue.done.notify_all();
                    drop(state);
                    resume_unwind(panic);
                }
            }
            queue.done.notify_all();
        }
    }
    /// Commits a batch of appends to one conversation with one flush: one record per
    /// append (each stored whole or not at all), in arrival order. An append whose
    /// message ids are already stored (earlier, or earlier in the batch) with the same
    /// content is answered with the stored messages and stores nothing.
    fn append_batch(&self, id: &str, batch: Vec<(u64, Vec<NewMessage>)>) -> Vec<Result<Appended>> {
        let n = batch.len();
        let (_lock, mut view) = match self.require(id, Mode::Exclusive) {
            Ok(v) => v,
            Err(e) => return echo(e, n),
        };
        let header = view.dir.join(HEADER);
        let before = view.record.clone();
        let end_before = view.valid_end;
        let at = now();
        let mut results: Vec<Result<Appended>> = Vec::with_capacity(n);
        let mut pending = Vec::new();
        let mut new_messages: Vec<Message> = Vec::new();
        let mut in_batch: HashMap<MessageId, Message> = HashMap::new();
        for (_, messages) in batch {
            let stored = (|| {
                let ids: Vec<&MessageId> = messages.iter().map(|m| &m.id).collect();
                let from_log = self.stored_by_id(id, &view, &ids)?;
                let stored = ids
                    .iter()
                    .zip(from_log)
                    .map(|(m, logged)| in_batch.get(*m).cloned().or(logged))
                    .collect();
                check_replay(&messages, stored)
            })();
            match stored {
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
                Ok(Some(replayed)) => {
                    results.push(Ok(Appended {
                        record: view.record.clone(),
                        messages: replayed,
                    }));
                    continue;
                }
                Ok(None) => {}
            }
            let record_before = view.record.clone();
            let outcome =
                check_headroom(&view.record, messages.len() as u64, &header).and_then(|()| {
                    let stored = view.record.apply_append(messages, at);
                    let frame = encode_frame(at, &stored)?;
                    Ok((frame, stored))
                });
            match outcome {
                Ok((frame, stored)) => {
                    for m in &stored {
                        in_batch.insert(m.id.clone(), m.clone());
                    }
                    new_messages.extend(stored.iter().cloned());
                    results.push(Ok(Appended {
                        record: view.record.clone(),
                        messages: stored.clone(),
                    }));
                    pending.push(Pending::Messages(frame, stored));
                }
                Err(e) => {
                    view.record = record_before;
                    results.push(Err(e));
                }
            }
        }
        if !pending.is_empty() {
            let committed = self
                .index
                .record(&Claim::tentative(&view.record))
                .and_then(|()| Self::commit(&mut view, pending));
            match committed {
                Ok(()) => {
                    self.index
                        .record_after_commit(&Claim::confirmed(&view.record));
                    self.note_ids(id, &view, end_before, &new_messages);
                }
                Err(e) => {
                    view.record = before;
                    let new_ids: Vec<&MessageId> = new_messages.iter().map(|m| &m.id).collect();
                    let mut errors = echo(e, n).into_iter();
                    for r in &mut results {
                        let fresh = matches!(r, Ok(a) if a.messages.iter().any(|m| new_ids.contains(&&m.id)));
                        if fresh && let Some(err) = errors.next() {
                            *r = err;
                        }
                    }
                }
            }
        }
        results
    }

    fn update_message(
        &self,
        id: &str,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        let (_lock, mut view) = self.require(id, Mode::Exclusive)?;
        let mut message = self
            .stored_by_id(id, &view, &[message_id])?
            .pop()
            .flatten()
            .ok_or_else(|| Error::message_not_found(message_id.as_str()))?;
        if message.revision != expected_revision {
            return Err(revision_conflict(
                message_id,
                expected_revision,
                message.revision,
            ));
        }
        check_headroom(&view.record, 0, &view.dir.join(HEADER))?;
        let before = view.record.clone();
        let at = now();
        view.record.apply_message_update(&mut message, update, at);
        let committed = encode_edit(at, &message, &view.record).and_then(|frame| {
            self.index.record(&Claim::tentative(&view.record))?;
            Self::commit(
                &mut view,
                vec![Pending::Edit(frame, Box::new(message.clone()))],
            )
        });
        if let Err(e) = committed {
            view.record = before;
            return Err(e);
        }
        self.index
            .record_after_commit(&Claim::confirmed(&view.record));
        Ok(MessageUpdated {
            record: view.record,
            message,
        })
    }

    fn messages(&self, id: &str, range: &MessageRange) -> Result<Page<Message>> {
        let (_lock, view) = self.require(id, Mode::Shared)?;
        let count = view.count();
        let Some((mut first, mut last)) = range.resolve(count) else {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        };
        let cap = MAX_PAGE as u64;
        if last - first + 1 > cap {
            match range {
                MessageRange::After { .. } => last = first + cap - 1,
                MessageRange::Before { .. } => first = last - cap + 1,
            }
        }
        let items = Self::read_positions(&view, first, last)?;
        Ok(Page {
            items,
            next_cursor: range.next_cursor(first, last, count),
        })
    }

    /// Applies `change` to a locked conversation's record and files, and commits a state
    /// record if it says something changed.
    fn modify<T>(
        &self,
        id: &str,
        change: impl FnOnce(&mut ConversationRecord, &mut Vec<FileAttachment>) -> Result<(bool, T)>,
    ) -> Result<(ConversationRecord, T)> {
        let (_lock, mut view) = self.require(id, Mode::Exclusive)?;
        check_headroom(&view.record, 0, &view.dir.join(HEADER))?;
        let (before, files_before) = (view.record.clone(), view.files.clone());
        let (changed, out) = change(&mut view.record, &mut view.files)?;
        if changed {
            let committed =
                encode_state(now(), &view.record, &view.files, false).and_then(|frame| {
                    self.index.record(&Claim::tentative(&view.record))?;
                    Self::commit(&mut view, vec![Pending::State(frame)])
                });
            if let Err(e) = committed {
                view.record = before;
                view.files = files_before;
                return Err(e);
            }
            self.index
                .record_after_commit(&Claim::confirmed(&view.record));
        }
        Ok((view.record, out))
    }
}

/// The identity of a file (its inode on Unix), to tell a log from its replacement.
fn file_identity(meta: &fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        meta.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0
    }
}

/// The error of a failed batch, for each of its `n` appends: the first gets `e` itself,
/// the others an error of the same class that names it.
fn echo(e: Error, n: usize) -> Vec<Result<Appended>> {
    let mut out = Vec::with_capacity(n);
    for _ in 1..n {
        let message = format!("the group commit of this append failed: {e}");
        out.push(Err(match &e {
            Error::NotFound { id, .. } => Error::conversation_not_found(id.clone()),
            other if other.is_temporary() => Error::temporary(BACKEND, io::Error::other(message)),
            _ => Error::backend(BACKEND, io::Error::other(message)),
        }));
    }
    out.insert(0, Err(e));
    out
}

impl LocalMessages {
    /// A whole conversation: record, every message, attachments (`None` when it does not
    /// exist or is being deleted). Reads the whole log: for exports and tests.
    pub async fn get(&self, id: &ConversationId) -> Result<Option<StoredConversation>> {
        let id = id.to_string();
        self.run(move |s| s.get(&id)).await
    }

    /// Stores a whole conversation, replacing any with its id (a new log generation,
    /// switched to atomically). Its messages must have seq 1, 2, 3, ... and its record must
    /// count them (`InvalidInput` otherwise).
    pub async fn save(&self, conversation: &StoredConversation) -> Result<()> {
        let conversation = conversation.clone();
        self.run(move |s| s.save(&conversation)).await
    }

    /// Every conversation of `user`, whole (see [`get`](Self::get)).
    pub async fn get_by_user(&self, user: &UserId) -> Result<Vec<StoredConversation>> {
        let user = user.to_string();
        self.run(move |s| s.get_by_user(&user)).await
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl MessagesBackend for LocalMessages {
    fn capabilities(&self) -> MessagesCapabilities {
        // Appends from any number of tasks and processes; no search index.
        MessagesCapabilities::full().with_search(false)
    }

    async fn create(&self, record: &ConversationRecord) -> Result<()> {
        let record = record.clone();
        self.run(move |s| s.create(&record)).await
    }

    async fn head(&self, id: &ConversationId) -> Result<Option<ConversationHead>> {
        let id = id.to_string();
        self.run(move |s| {
            Ok(s.live(&id, Mode::Shared)?.map(|(_, v)| ConversationHead {
                record: v.record,
                files: v.files,
            }))
        })
        .await
    }

    async fn append_messages(
        &self,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        let id = id.to_string();
        self.run(move |s| s.append(&id, messages)).await
    }

    async fn update_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        let id = id.to_string();
        let message_id = message_id.clone();
        let update = update.clone();
        self.run(move |s| s.update_message(&id, &message_id, expected_revision, &update))
            .await
    }

    async fn messages(&self, id: &ConversationId, range: &MessageRange) -> Result<Page<Message>> {
        let id = id.to_string();
        let range = range.clone();
        self.run(move |s| s.messages(&id, &range)).await
    }

    async fn list_conversations(
        &self,
        user_id: Option<&UserId>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        options.validate()?;
        let user = user_id.map(UserId::to_string);
        let options = options.clone();
        self.run(move |s| s.list(user.as_deref(), &options)).await
    }

    async fn update(
        &self,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> Result<ConversationRecord> {
        let id = id.to_string();
        let patch = patch.clone();
        self.run(move |s| {
            s.modify(&id, |record, _| Ok((record.apply_patch(&patch), ())))
                .map(|(r, ())| r)
        })
        .await
    }

    async fn add_file(
        &self,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> Result<ConversationRecord> {
        let id = id.to_string();
        let file = file.clone();
        self.run(move |s| {
            s.modify(&id, |record, files| {
                apply_add_file(record, files, &file)?;
                files.push(file);
                Ok((true, ()))
            })
            .map(|(r, ())| r)
        })
        .await
    }

    async fn remove_file(
        &self,
        id: &ConversationId,
        file_id: &FileId,
    ) -> Result<Option<ConversationRecord>> {
        let id = id.to_string();
        let file_id = file_id.clone();
        self.run(move |s| {
            let (record, removed) = s.modify(&id, |record, files| {
                let Some(pos) = files.iter().position(|f| f.id == file_id) else {
                    return Ok((false, false));
                };
                files.remove(pos);
                apply_remove_file(record);
                Ok((true, true))
            })?;
            Ok(removed.then_some(record))
        })
        .await
    }

    async fn begin_delete(&self, id: &ConversationId) -> Result<Option<Vec<FileAttachment>>> {
        let id = id.to_string();
        self.run(move |s| s.begin_delete(&id)).await
    }

    async fn delete(&self, id: &ConversationId) -> Result<bool> {
        let id = id.to_string();
        self.run(move |s| s.delete(&id)).await
    }

    async fn search(
        &self,
        _user_id: &UserId,
        _query: &str,
        _options: &SearchOptions,
    ) -> Result<Page<SearchHit>> {
        Err(Error::not_supported(BACKEND, "search"))
    }
}

/// What the listing index reads of the conversations themselves.
impl Source for Store {
    fn found(&self, id: &str) -> Result<Found> {
        if ConversationId::parse(id).is_err() {
            return Ok(Found::Missing);
        }
        match self.live(id, Mode::Shared) {
            Ok(Some((_, view))) => Ok(Found::Record(Box::new(view.record))),
            Ok(None) => Ok(Found::Missing),
            Err(e) if is_damage(&e) => {
                tracing::warn!(conversation = id, error = %e, "damaged conversation");
                Ok(Found::Damaged)
            }
            Err(e) => Err(e),
        }
    }

    fn found_all(&self) -> Result<Vec<Found>> {
        let mut out = Vec::new();
        for name in self.dir_names()? {
            let dir = self.conversations.join(name);
            let Some(_lock) = self.lock(&dir, Mode::Shared)? else {
                continue;
            };
            match Self::load(&dir, None) {
                Ok(Some(view)) if !view.deleting => {
                    out.push(Found::Record(Box::new(view.record)));
                }
                Ok(_) => {}
                Err(e) if is_damage(&e) => {
                    tracing::warn!(conversation = %dir.display(), error = %e, "damaged conversation");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    fn exists(&self, id: &str) -> Result<bool> {
        let dir = self.conv_dir(id);
        Ok(dir.join(HEADER).exists() || !log_generations(&dir)?.is_empty())
    }

    fn ids(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for name in self.dir_names()? {
            if let Some(id) = self.id_of_dir(&name)? {
                out.push(id);
            }
        }
        Ok(out)
    }
}

impl Store {
    /// The names of the directories in `conversations/` (a stray file, such as
    /// `.DS_Store`, is no conversation).
    fn dir_names(&self) -> Result<Vec<String>> {
        let entries =
            fs::read_dir(&self.conversations).map_err(io_at("list", &self.conversations))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_at("list", &self.conversations))?;
            if entry.file_type().is_ok_and(|t| t.is_dir())
                && let Some(name) = entry.file_name().to_str()
            {
                out.push(name.to_owned());
            }
        }
        Ok(out)
    }

    /// The id of the conversation in directory `name`: its decoded name, or (for a name
    /// shortened with a hash) the id in its record. `None` for a directory that is no
    /// conversation's, or whose record cannot be read.
    fn id_of_dir(&self, name: &str) -> Result<Option<String>> {
        if !name.contains('~') {
            let decoded = percent_encoding::percent_decode_str(name).decode_utf8();
            return Ok(decoded
                .ok()
                .map(|id| id.into_owned())
                .filter(|id| Self::dir_name(id) == name));
        }
        let dir = self.conversations.join(name);
        let Some(_lock) = self.lock(&dir, Mode::Shared)? else {
            return Ok(None);
        };
        match Self::load(&dir, None) {
            Ok(view) => Ok(view.map(|v| v.record.id.to_string())),
            Err(e) if is_damage(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(ids: usize) -> IdCache {
        IdCache {
            seqs: (1..=ids as u64)
                .map(|seq| (MessageId::new(), seq))
                .collect(),
            ..IdCache::default()
        }
    }

    #[test]
    fn id_maps_stay_within_their_bounds_dropping_the_least_recently_used() {
        let mut maps: LruCache<String, IdCache> = LruCache::unbounded();
        let keys = |maps: &LruCache<String, IdCache>| {
            let mut keys: Vec<String> = maps.iter().map(|(k, _)| k.clone()).collect();
            keys.sort();
            keys
        };
        for c in ["a", "b", "c"] {
            maps.put(c.to_owned(), map(10));
            trim_id_maps(&mut maps, 3, 30);
        }
        assert_eq!(keys(&maps), ["a", "b", "c"], "within both bounds: all kept");
        // "a" is used again; "b" grows by one id, one too many: the least recently used
        // ("c") goes, and only it.
        maps.get_mut("a");
        if let Some(m) = maps.get_mut("b") {
            m.seqs.insert(MessageId::new(), 11);
        }
        trim_id_maps(&mut maps, 3, 30);
        assert_eq!(keys(&maps), ["a", "b"]);
        // A fourth map: one map too many, the least recently used ("a") goes.
        maps.put("d".to_owned(), map(1));
        maps.put("e".to_owned(), map(1));
        trim_id_maps(&mut maps, 3, 30);
        assert_eq!(keys(&maps), ["b", "d", "e"]);
        // The map in use is kept even when it alone is over the bound.
        maps.put("big".to_owned(), map(40));
        trim_id_maps(&mut maps, 3, 30);
        assert_eq!(keys(&maps), ["big"]);
        assert_eq!(maps.peek("big").map(|m| m.seqs.len()), Some(40));
    }
}
