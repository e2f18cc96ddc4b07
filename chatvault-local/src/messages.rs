//! [`LocalMessages`]: conversations in append-only logs on the local file system.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chatvault_core::keys::{self, MAX_SEGMENT_LEN, encode_component};
use chatvault_core::{
    Appended, ConversationPatch, ConversationRecord, ConversationSummary, Error, FileAttachment,
    ListOptions, Message, MessageRange, MessagesBackend, NewMessage, Page, Result,
    StoredConversation, apply_add_file, apply_remove_file, async_trait, new_id, now, paginate,
};
use serde::{Deserialize, Serialize};

use crate::error::{CorruptData, corrupt, io_at, io_error, is_damage};
use crate::fsutil::{
    STALE_TEMP_AGE, TempPath, blocking, create_dir_all_durable, is_not_found, same_file, sweep,
    sync_dir, write_atomic,
};
use crate::log::{
    DecodedFrame, FrameAt, INDEX_ENTRY, IndexEntry, MIN_MESSAGE_BYTES, decode_frame, encode_frame,
};

/// The most messages one [`MessagesBackend::messages`] call returns; a longer range gets
/// a `next_cursor` to continue from.
pub const MAX_PAGE: usize = 1000;

/// The on-disk layout version this release writes (in `FORMAT` and every `header.json`).
pub const FORMAT_VERSION: u32 = 1;

/// Messages per log record when [`MessagesBackend::save`] writes a whole conversation.
const SAVE_BATCH: usize = 1000;

const FORMAT_FILE: &str = "FORMAT";
const HEADER: &str = "header.json";
const HEADER_TMP: &str = "header.json.tmp";
const LOCK: &str = "lock";

fn log_name(generation: u64) -> String {
    format!("log-{generation}")
}

fn index_name(generation: u64) -> String {
    format!("index-{generation}")
}

/// `header.json`: a conversation's record and attachments, and how much of its log they
/// account for. Replaced atomically (temp file, fsync, rename) on every change.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Header {
    /// Layout version ([`FORMAT_VERSION`]).
    format: u32,
    /// Which `log-N` / `index-N` pair holds the messages; a whole-conversation `save`
    /// writes the next pair and switches to it with the header's rename.
    generation: u64,
    /// A random id of this conversation's directory, naming its user-index entry.
    incarnation: String,
    /// Bytes of the log the record accounts for. Complete records past it (an append
    /// interrupted between its log write and its header write) are rolled forward.
    log_len: u64,
    /// Messages in the log up to `log_len` (entries of the index that are valid).
    log_messages: u64,
    record: ConversationRecord,
    #[serde(default)]
    files: Vec<FileAttachment>,
}

#[derive(Serialize, Deserialize)]
struct FormatFile {
    format: u32,
    layout: String,
}

/// Conversations stored in a directory on the local file system: durable, crash-safe,
/// safe to share between threads, tasks and processes.
///
/// Each conversation is a directory holding an append-only message log, a seq index and
/// a small header; see the [crate documentation](crate) for the layout and the
/// guarantees. Every method runs its file I/O on tokio's blocking pool, so it needs a
/// tokio runtime.
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
    users: PathBuf,
    tmp: PathBuf,
    trash: PathBuf,
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
            users: root.join("users"),
            tmp: root.join("tmp"),
            trash: root.join("trash"),
            root,
        };
        for dir in [&store.conversations, &store.users, &store.tmp, &store.trash] {
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

/// A conversation's state as read under its lock, with any complete records past the
/// header's `log_len` rolled forward in memory.
#[derive(Debug)]
struct View {
    dir: PathBuf,
    /// The header as stored.
    disk: Header,
    /// The record with the rolled-forward records applied.
    record: ConversationRecord,
    files: Vec<FileAttachment>,
    /// Messages of the rolled-forward records, with their index entries.
    tail: Vec<(Message, IndexEntry)>,
    /// End of the last complete record.
    valid_end: u64,
    /// The log file's length (past `valid_end` when a torn record is at the end).
    file_len: u64,
}

impl View {
    /// Messages in the conversation: the committed ones and the rolled-forward ones.
    fn count(&self) -> Result<u64> {
        self.disk
            .log_messages
            .checked_add(self.tail.len() as u64)
            .ok_or_else(|| damaged(&self.dir.join(HEADER), "the message count overflows"))
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join(log_name(self.disk.generation))
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join(index_name(self.disk.generation))
    }
}

/// A [`CorruptData`] error for `path`.
fn damaged(path: &Path, reason: impl Into<String>) -> Error {
    corrupt(CorruptData::new(path, reason))
}

/// Fails with [`CorruptData`] when `record`'s counters (read from `header`) cannot take
/// `new_messages` more messages, one more file and one more version: only a damaged
/// header holds such numbers, and the record rules must never overflow on them.
fn check_headroom(record: &ConversationRecord, new_messages: u64, header: &Path) -> Result<()> {
    let room = record.message_count.checked_add(new_messages).is_some()
        && record.version.checked_add(1).is_some()
        && record.file_count.checked_add(1).is_some();
    if room {
        Ok(())
    } else {
        Err(damaged(
            header,
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

/// In a listing: a conversation whose files are damaged is left out (with a warning)
/// rather than failing the listing of everyone's conversations. Reading it by id still
/// reports the error.
fn skip_damaged<T>(dir: &Path, loaded: Result<Option<T>>) -> Result<Option<T>> {
    match loaded {
        Err(e) if is_damage(&e) => {
            tracing::warn!(
                conversation = %dir.display(),
                error = %e,
                "leaving a damaged conversation out of a listing"
            );
            Ok(None)
        }
        other => other,
    }
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

fn write_at(file: &mut File, path: &Path, offset: u64, bytes: &[u8]) -> Result<()> {
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.write_all(bytes))
        .map_err(io_at("write", path))
}

fn to_new(m: &Message) -> NewMessage {
    NewMessage {
        id: m.id.clone(),
        role: m.role.clone(),
        content: m.content.clone(),
        created_at: m.created_at,
        metadata: m.metadata.clone(),
    }
}

impl Store {
    fn check_format(&self) -> Result<()> {
        let path = self.root.join(FORMAT_FILE);
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
                Ok(())
            }
            Err(e) if is_not_found(&e) => {
                let body = serde_json::to_vec_pretty(&FormatFile {
                    format: FORMAT_VERSION,
                    layout: "chatvault-local messages".into(),
                })
                .map_err(|e| Error::backend(crate::error::BACKEND, e))?;
                let tmp = self.tmp.join(format!("format-{}", new_id()));
                write_atomic(&path, &tmp, &body, true)
            }
            Err(e) => Err(io_error("read", &path, e)),
        }
    }

    fn dir_name(id: &str) -> String {
        encode_component(id, MAX_SEGMENT_LEN)
    }

    fn conv_dir(&self, id: &str) -> PathBuf {
        self.conversations.join(Self::dir_name(id))
    }

    fn user_dir(&self, user: &str) -> PathBuf {
        self.users.join(encode_component(user, MAX_SEGMENT_LEN))
    }

    fn marker_path(&self, user: &str, id: &str, incarnation: &str) -> PathBuf {
        self.user_dir(user)
            .join(format!("{}.{incarnation}", Self::dir_name(id)))
    }

    /// Locks a conversation directory. `None` when there is no conversation there.
    ///
    /// The lock file lives in the directory, which a delete renames away while holding
    /// the lock; so after locking, the file at the path must still be the one locked,
    /// else the lock was taken on a deleted conversation and is taken again.
    fn lock(&self, dir: &Path, mode: Mode) -> Result<Option<File>> {
        let path = dir.join(LOCK);
        loop {
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if is_absent(&e) => return Ok(None),
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
                Err(e) if is_absent(&e) => return Ok(None),
                Err(e) => return Err(io_error("stat", &path, e)),
            }
        }
    }

    fn read_header(dir: &Path) -> Result<Header> {
        let path = dir.join(HEADER);
        let bytes = fs::read(&path).map_err(io_at("read", &path))?;
        let header: Header = serde_json::from_slice(&bytes).map_err(|e| {
            corrupt(CorruptData::with_source(
                &path,
                "not a conversation header",
                e,
            ))
        })?;
        if header.format > FORMAT_VERSION {
            return Err(corrupt(CorruptData::new(
                &path,
                format!(
                    "format {} is newer than this release's {FORMAT_VERSION}",
                    header.format
                ),
            )));
        }
        Ok(header)
    }

    /// Reads a locked conversation. `None` when the directory holds another id (ids
    /// that differ only in case on a case-insensitive file system).
    fn load(dir: &Path, id: Option<&str>) -> Result<Option<View>> {
        let disk = Self::read_header(dir)?;
        if id.is_some_and(|id| id != disk.record.id) {
            return Ok(None);
        }
        let log_path = dir.join(log_name(disk.generation));
        let mut log = File::open(&log_path).map_err(io_at("open", &log_path))?;
        let file_len = log.metadata().map_err(io_at("stat", &log_path))?.len();
        if file_len < disk.log_len {
            return Err(corrupt(CorruptData::new(
                &log_path,
                format!(
                    "the log has {file_len} bytes; its header accounts for {}",
                    disk.log_len
                ),
            )));
        }
        // Every later computation on the message count (index offsets, positions) stays
        // far from overflowing once it is bounded by the log's length.
        if disk.log_messages > disk.log_len / MIN_MESSAGE_BYTES {
            return Err(damaged(
                &dir.join(HEADER),
                format!(
                    "it counts {} messages in {} bytes of log",
                    disk.log_messages, disk.log_len
                ),
            ));
        }
        let mut record = disk.record.clone();
        let mut tail = Vec::new();
        let mut valid_end = disk.log_len;
        if file_len > disk.log_len {
            // Records past the header: the log is the truth, roll them forward.
            let buf = read_at(&mut log, &log_path, disk.log_len, file_len - disk.log_len)?;
            let mut pos = 0usize;
            while pos < buf.len() {
                match decode_frame(&log_path, &buf, pos, disk.log_len)? {
                    FrameAt::Torn => break,
                    FrameAt::Valid(frame) => {
                        let DecodedFrame {
                            at,
                            messages,
                            entries,
                            end,
                        } = frame;
                        check_headroom(&record, messages.len() as u64, &dir.join(HEADER))?;
                        record.apply_append(messages.iter().map(to_new).collect(), at);
                        tail.extend(messages.into_iter().zip(entries));
                        valid_end = end;
                        pos = (end - disk.log_len) as usize;
                    }
                }
            }
        }
        Ok(Some(View {
            dir: dir.to_owned(),
            files: disk.files.clone(),
            disk,
            record,
            tail,
            valid_end,
            file_len,
        }))
    }

    /// Locks and loads conversation `id`; `None` when it does not exist.
    fn open_conv(&self, id: &str, mode: Mode) -> Result<Option<(File, View)>> {
        keys::validate_id("conversation id", id)?;
        let dir = self.conv_dir(id);
        let Some(lock) = self.lock(&dir, mode)? else {
            return Ok(None);
        };
        Ok(Self::load(&dir, Some(id))?.map(|view| (lock, view)))
    }

    fn require(&self, id: &str, mode: Mode) -> Result<(File, View)> {
        self.open_conv(id, mode)?
            .ok_or_else(|| Error::conversation_not_found(id))
    }

    /// Writes a locked view back: truncates a torn tail, appends `frame` (if any),
    /// writes index entries for rolled-forward and new messages, then replaces the
    /// header with `view.record` / `view.files`.
    ///
    /// The header's rename is the commit point of metadata changes; for an append, the
    /// flushed log record is, and the header write only records it. If the header cannot
    /// be written, the new record is cut off the log again, so that a failed append
    /// stores nothing.
    fn persist(
        view: &mut View,
        frame: Option<&crate::log::EncodedFrame>,
        sync_parent: bool,
    ) -> Result<()> {
        let log_path = view.log_path();
        let index_path = view.index_path();
        let mut entries: Vec<IndexEntry> = view.tail.iter().map(|(_, e)| *e).collect();
        // The new totals, computed before anything is written: numbers from a damaged
        // header must fail here, not overflow halfway through.
        let header_path = view.dir.join(HEADER);
        let overflow = || damaged(&header_path, "the log's length or message count overflows");
        let new_messages = view.tail.len() as u64 + frame.map_or(0, |f| f.spans.len() as u64);
        let log_messages = view
            .disk
            .log_messages
            .checked_add(new_messages)
            .ok_or_else(overflow)?;
        let index_offset = view
            .disk
            .log_messages
            .checked_mul(INDEX_ENTRY)
            .ok_or_else(overflow)?;
        let log_end = view
            .valid_end
            .checked_add(frame.map_or(0, |f| f.bytes.len() as u64))
            .ok_or_else(overflow)?;
        let mut log_file = None;
        // Rolled-forward records may not be on disk yet (their writer died before its
        // fsync): flush them before a header accounts for them.
        if view.file_len != view.valid_end || frame.is_some() || !view.tail.is_empty() {
            let mut log = open_rw(&log_path)?;
            if view.file_len != view.valid_end {
                log.set_len(view.valid_end)
                    .map_err(io_at("truncate", &log_path))?;
                view.file_len = view.valid_end;
            }
            if let Some(frame) = frame {
                let written = write_at(&mut log, &log_path, view.valid_end, &frame.bytes);
                if let Err(e) = written {
                    let _ = log.set_len(view.valid_end);
                    return Err(e);
                }
                entries.extend(frame.entries(view.valid_end));
            }
            log.sync_data().map_err(io_at("sync", &log_path))?;
            log_file = Some(log);
        }
        let undo = |log_file: Option<File>| {
            if frame.is_some()
                && let Some(log) = log_file
            {
                let _ = log.set_len(view.valid_end).and_then(|()| log.sync_data());
            }
        };
        if !entries.is_empty() {
            let mut bytes = Vec::with_capacity(entries.len() * INDEX_ENTRY as usize);
            for e in &entries {
                e.encode(&mut bytes);
            }
            // A missing index is damage like any other: created again here, it gets the
            // new entries, and reads of the positions it lacks (zeros, or past its end)
            // fall back to the log.
            let written = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&index_path)
                .map_err(io_at("open", &index_path))
                .and_then(|mut index| {
                    write_at(&mut index, &index_path, index_offset, &bytes)?;
                    index.sync_data().map_err(io_at("sync", &index_path))
                });
            if let Err(e) = written {
                undo(log_file);
                return Err(e);
            }
        }
        let header = Header {
            format: FORMAT_VERSION,
            generation: view.disk.generation,
            incarnation: view.disk.incarnation.clone(),
            log_len: log_end,
            log_messages,
            record: view.record.clone(),
            files: view.files.clone(),
        };
        let body = match serde_json::to_vec(&header) {
            Ok(b) => b,
            Err(e) => {
                undo(log_file);
                return Err(Error::backend(crate::error::BACKEND, e));
            }
        };
        if let Err(e) = write_atomic(
            &view.dir.join(HEADER),
            &view.dir.join(HEADER_TMP),
            &body,
            false,
        ) {
            undo(log_file);
            return Err(e);
        }
        view.disk = header;
        view.tail.clear();
        view.valid_end = log_end;
        view.file_len = log_end;
        if sync_parent {
            sync_dir(&view.dir)?;
        }
        Ok(())
    }

    /// Every message of the committed part of the log (up to the header's `log_len`).
    fn scan_committed(view: &View) -> Result<Vec<Message>> {
        let path = view.log_path();
        let mut log = File::open(&path).map_err(io_at("open", &path))?;
        let buf = read_at(&mut log, &path, 0, view.disk.log_len)?;
        let mut out = Vec::with_capacity(view.disk.log_messages.min(1 << 20) as usize);
        let mut pos = 0usize;
        while pos < buf.len() {
            match decode_frame(&path, &buf, pos, 0)? {
                FrameAt::Valid(frame) => {
                    out.extend(frame.messages);
                    pos = frame.end as usize;
                }
                FrameAt::Torn => {
                    return Err(corrupt(CorruptData::new(
                        &path,
                        format!("damaged record at byte {pos}, inside the committed log"),
                    )));
                }
            }
        }
        if out.len() as u64 != view.disk.log_messages {
            return Err(corrupt(CorruptData::new(
                &path,
                format!(
                    "the log holds {} messages; its header says {}",
                    out.len(),
                    view.disk.log_messages
                ),
            )));
        }
        Ok(out)
    }

    /// Messages at committed positions `first..=last` through the index: reads the
    /// index entries and one contiguous span of the log. `None` if the index does not
    /// check out (then the caller scans the log instead).
    fn read_indexed(view: &View, first: u64, last: u64) -> Result<Option<Vec<Message>>> {
        let index_path = view.index_path();
        let mut index = match File::open(&index_path) {
            Ok(index) => index,
            // A missing index is bypassed like a damaged one.
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(io_error("open", &index_path, e)),
        };
        let index_len = index.metadata().map_err(io_at("stat", &index_path))?.len();
        // `first` and `last` are at most the header's message count, which `load` bounds
        // by the log's length: these cannot overflow unless the header lies.
        let header_path = view.dir.join(HEADER);
        let span_of = |from: u64, count: u64| {
            from.checked_mul(INDEX_ENTRY)
                .zip(count.checked_mul(INDEX_ENTRY))
                .ok_or_else(|| damaged(&header_path, "a message position overflows"))
        };
        let (_, needed) = span_of(0, last)?;
        if index_len < needed {
            return Ok(None);
        }
        let (offset, len) = span_of(first - 1, last - first + 1)?;
        let raw = read_at(&mut index, &index_path, offset, len)?;
        let entries: Vec<IndexEntry> = raw
            .chunks_exact(INDEX_ENTRY as usize)
            .filter_map(IndexEntry::decode)
            .collect();
        // An entry whose end overflows can only come from a damaged index.
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
        if !ordered || end > view.disk.log_len || entries.iter().any(|e| e.len == 0) {
            return Ok(None);
        }
        let log_path = view.log_path();
        let mut log = File::open(&log_path).map_err(io_at("open", &log_path))?;
        let span = read_at(&mut log, &log_path, start, end - start)?;
        let mut out = Vec::with_capacity(entries.len());
        for e in &entries {
            let from = (e.offset - start) as usize;
            let bytes = &span[from..from + e.len as usize];
            if crc32fast::hash(bytes) != e.crc {
                return Ok(None);
            }
            match serde_json::from_slice::<Message>(bytes) {
                Ok(m) => out.push(m),
                Err(_) => return Ok(None),
            }
        }
        Ok(Some(out))
    }

    /// Messages at positions `first..=last` (1-based, within `view.count()`).
    fn read_positions(view: &View, first: u64, last: u64) -> Result<Vec<Message>> {
        let committed = view.disk.log_messages;
        let mut out = Vec::with_capacity((last - first + 1) as usize);
        if first <= committed {
            let hi = last.min(committed);
            match Self::read_indexed(view, first, hi)? {
                Some(messages) => out.extend(messages),
                None => {
                    // A damaged index: the log is the truth.
                    let all = Self::scan_committed(view)?;
                    out.extend_from_slice(&all[(first - 1) as usize..hi as usize]);
                }
            }
        }
        for pos in first.max(committed.saturating_add(1))..=last {
            out.push(view.tail[(pos - committed - 1) as usize].0.clone());
        }
        Ok(out)
    }

    fn add_marker(&self, user: &str, id: &str, incarnation: &str) -> Result<()> {
        let path = self.marker_path(user, id, incarnation);
        let parent = self.user_dir(user);
        // A concurrent remove_marker may remove the user's emptied directory between
        // our create_dir and our create: try again.
        let mut attempts = 0;
        loop {
            create_dir_all_durable(&parent)?;
            match File::create(&path) {
                Ok(_) => break,
                Err(e) if is_not_found(&e) && attempts < 20 => attempts += 1,
                Err(e) => return Err(io_error("create", &path, e)),
            }
        }
        sync_dir(&parent)
    }

    fn remove_marker(&self, user: &str, id: &str, incarnation: &str) {
        let path = self.marker_path(user, id, incarnation);
        if fs::remove_file(&path).is_ok() {
            // Fails (and is meant to) while the user has other conversations.
            let _ = fs::remove_dir(self.user_dir(user));
        }
    }

    /// Writes a log and index of `messages` as generation `generation` in `dir`.
    fn write_generation(
        dir: &Path,
        generation: u64,
        messages: &[Message],
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(u64, u64)> {
        let log_path = dir.join(log_name(generation));
        let index_path = dir.join(index_name(generation));
        let mut log = File::create(&log_path).map_err(io_at("create", &log_path))?;
        let mut index = File::create(&index_path).map_err(io_at("create", &index_path))?;
        let mut offset = 0u64;
        let mut index_bytes = Vec::new();
        for chunk in messages.chunks(SAVE_BATCH) {
            let frame = encode_frame(at, chunk)?;
            log.write_all(&frame.bytes)
                .map_err(io_at("write", &log_path))?;
            index_bytes.clear();
            for e in frame.entries(offset) {
                e.encode(&mut index_bytes);
            }
            index
                .write_all(&index_bytes)
                .map_err(io_at("write", &index_path))?;
            offset += frame.bytes.len() as u64;
        }
        log.sync_all().map_err(io_at("sync", &log_path))?;
        index.sync_all().map_err(io_at("sync", &index_path))?;
        Ok((offset, messages.len() as u64))
    }

    /// Builds a conversation directory in `tmp/` and renames it into place. Returns
    /// `false` (and leaves nothing behind) when the id is taken.
    fn install_new(&self, conversation: &StoredConversation) -> Result<bool> {
        let record = &conversation.record;
        let dir = self.conv_dir(&record.id);
        if dir.join(LOCK).exists() {
            return Ok(false);
        }
        let tmp = TempPath::new(self.tmp.join(new_id()));
        fs::create_dir(tmp.path()).map_err(io_at("create directory", tmp.path()))?;
        let lock_path = tmp.path().join(LOCK);
        File::create(&lock_path)
            .and_then(|f| f.sync_all())
            .map_err(io_at("create", &lock_path))?;
        let (log_len, log_messages) =
            Self::write_generation(tmp.path(), 1, &conversation.messages, record.last_active)?;
        let header = Header {
            format: FORMAT_VERSION,
            generation: 1,
            incarnation: new_id(),
            log_len,
            log_messages,
            record: record.clone(),
            files: conversation.files.clone(),
        };
        let body =
            serde_json::to_vec(&header).map_err(|e| Error::backend(crate::error::BACKEND, e))?;
        write_atomic(
            &tmp.path().join(HEADER),
            &tmp.path().join(HEADER_TMP),
            &body,
            true,
        )?;
        // The user index entry goes first: a conversation must never exist without it.
        if let Some(user) = &record.user_id {
            self.add_marker(user, &record.id, &header.incarnation)?;
        }
        match fs::rename(tmp.path(), &dir) {
            Ok(()) => {
                let mut tmp = tmp;
                tmp.disarm();
                sync_dir(&self.conversations)?;
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty
                ) =>
            {
                if let Some(user) = &record.user_id {
                    self.remove_marker(user, &record.id, &header.incarnation);
                }
                Ok(false)
            }
            Err(e) => {
                if let Some(user) = &record.user_id {
                    self.remove_marker(user, &record.id, &header.incarnation);
                }
                Err(io_error("rename into place", &dir, e))
            }
        }
    }

    /// Replaces a locked, existing conversation whole: a new log generation, then the
    /// header switching to it (the commit point), then the old generation's removal.
    fn replace_locked(&self, dir: &Path, conversation: &StoredConversation) -> Result<()> {
        let old = Self::read_header(dir)?;
        let record = &conversation.record;
        let generation = old
            .generation
            .checked_add(1)
            .ok_or_else(|| damaged(&dir.join(HEADER), "its log generation overflows"))?;
        let (log_len, log_messages) =
            Self::write_generation(dir, generation, &conversation.messages, record.last_active)?;
        if let Some(user) = &record.user_id
            && old.record.user_id.as_ref() != Some(user)
        {
            self.add_marker(user, &record.id, &old.incarnation)?;
        }
        let header = Header {
            format: FORMAT_VERSION,
            generation,
            incarnation: old.incarnation.clone(),
            log_len,
            log_messages,
            record: record.clone(),
            files: conversation.files.clone(),
        };
        let body =
            serde_json::to_vec(&header).map_err(|e| Error::backend(crate::error::BACKEND, e))?;
        write_atomic(&dir.join(HEADER), &dir.join(HEADER_TMP), &body, true)?;
        for name in [log_name(old.generation), index_name(old.generation)] {
            let _ = fs::remove_file(dir.join(name));
        }
        if let Some(old_user) = &old.record.user_id
            && record.user_id.as_ref() != Some(old_user)
        {
            self.remove_marker(old_user, &record.id, &old.incarnation);
        }
        Ok(())
    }

    fn save(&self, conversation: &StoredConversation) -> Result<()> {
        let record = &conversation.record;
        record.validate()?;
        let dir = self.conv_dir(&record.id);
        for _ in 0..100 {
            match self.lock(&dir, Mode::Exclusive)? {
                Some(_lock) => {
                    let holder = Self::read_header(&dir)?;
                    if holder.record.id != record.id {
                        return Err(Error::AlreadyExists {
                            kind: "conversation directory (ids differing only in case)",
                            id: holder.record.id,
                        });
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
                id: record.id.clone(),
            })
        }
    }

    fn get(&self, id: &str) -> Result<Option<StoredConversation>> {
        let Some((_lock, view)) = self.open_conv(id, Mode::Shared)? else {
            return Ok(None);
        };
        let mut messages = Self::scan_committed(&view)?;
        messages.extend(view.tail.iter().map(|(m, _)| m.clone()));
        Ok(Some(StoredConversation {
            record: view.record,
            messages,
            files: view.files,
        }))
    }

    /// Conversation directories of `user` (by the user index), or of everyone.
    fn candidates(&self, user: Option<&str>) -> Result<Vec<PathBuf>> {
        let (dir, markers) = match user {
            Some(user) => (self.user_dir(user), true),
            None => (self.conversations.clone(), false),
        };
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if is_absent(&e) => return Ok(Vec::new()),
            Err(e) => return Err(io_error("list", &dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_at("list", &dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if markers {
                if let Some((conv, _incarnation)) = name.rsplit_once('.')
                    && !conv.is_empty()
                {
                    out.push(self.conversations.join(conv));
                }
            } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
                // Only directories are conversations: a stray file (`.DS_Store`) is not.
                out.push(entry.path());
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Loads every conversation of `user` (or everyone's), each under its shared lock.
    fn views(&self, user: Option<&str>) -> Result<Vec<View>> {
        if let Some(user) = user {
            keys::validate_user_id(user)?;
        }
        let mut out = Vec::new();
        for dir in self.candidates(user)? {
            let Some(_lock) = self.lock(&dir, Mode::Shared)? else {
                continue;
            };
            let Some(view) = skip_damaged(&dir, Self::load(&dir, None))? else {
                continue;
            };
            if user.is_none_or(|u| view.record.user_id.as_deref() == Some(u)) {
                out.push(view);
            }
        }
        Ok(out)
    }

    fn get_by_user(&self, user: &str) -> Result<Vec<StoredConversation>> {
        let mut out = Vec::new();
        for dir in self.candidates(Some(user))? {
            let Some(_lock) = self.lock(&dir, Mode::Shared)? else {
                continue;
            };
            let Some(view) = skip_damaged(&dir, Self::load(&dir, None))? else {
                continue;
            };
            if view.record.user_id.as_deref() != Some(user) {
                continue;
            }
            let Some(mut messages) = skip_damaged(&dir, Self::scan_committed(&view).map(Some))?
            else {
                continue;
            };
            messages.extend(view.tail.iter().map(|(m, _)| m.clone()));
            out.push(StoredConversation {
                record: view.record,
                messages,
                files: view.files,
            });
        }
        Ok(out)
    }

    fn delete(&self, id: &str) -> Result<bool> {
        keys::validate_id("conversation id", id)?;
        let dir = self.conv_dir(id);
        let Some(lock) = self.lock(&dir, Mode::Exclusive)? else {
            return Ok(false);
        };
        // A conversation whose header is damaged is deleted all the same: the id names
        // its directory. (Its user-index entry, named in the header, stays behind:
        // harmless, entries are checked against the conversation's header.)
        let header = match Self::read_header(&dir) {
            Ok(header) if header.record.id != id => return Ok(false),
            Ok(header) => Some(header),
            Err(e) if is_damage(&e) => {
                tracing::warn!(
                    conversation = id,
                    error = %e,
                    "deleting a conversation whose header is unreadable"
                );
                None
            }
            Err(e) => return Err(e),
        };
        let trash = self.trash.join(new_id());
        // The rename is the commit point: from here the conversation does not exist, and
        // an appender waiting for the lock finds the lock file gone.
        fs::rename(&dir, &trash).map_err(io_at("move to trash", &dir))?;
        sync_dir(&self.conversations)?;
        if let Some(header) = &header
            && let Some(user) = &header.record.user_id
        {
            self.remove_marker(user, id, &header.incarnation);
        }
        drop(lock);
        let _ = fs::remove_dir_all(&trash);
        Ok(true)
    }

    fn append(&self, id: &str, messages: Vec<NewMessage>) -> Result<Appended> {
        keys::validate_id("conversation id", id)?;
        for m in &messages {
            keys::validate_id("message id", &m.id)?;
        }
        let (_lock, mut view) = self.require(id, Mode::Exclusive)?;
        if messages.is_empty() {
            return Ok(Appended {
                record: view.record,
                messages: Vec::new(),
            });
        }
        check_headroom(&view.record, messages.len() as u64, &view.dir.join(HEADER))?;
        let at = now();
        let stored = view.record.apply_append(messages, at);
        let frame = encode_frame(at, &stored)?;
        Self::persist(&mut view, Some(&frame), false)?;
        Ok(Appended {
            record: view.record,
            messages: stored,
        })
    }

    fn messages(&self, id: &str, range: &MessageRange) -> Result<Page<Message>> {
        let (_lock, view) = self.require(id, Mode::Shared)?;
        let count = view.count()?;
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

    /// Applies `change` to a locked conversation's record and files, and writes the
    /// header if it says something changed.
    fn modify<T>(
        &self,
        id: &str,
        change: impl FnOnce(&mut ConversationRecord, &mut Vec<FileAttachment>) -> Result<(bool, T)>,
    ) -> Result<(ConversationRecord, T)> {
        let (_lock, mut view) = self.require(id, Mode::Exclusive)?;
        check_headroom(&view.record, 0, &view.dir.join(HEADER))?;
        let (changed, out) = change(&mut view.record, &mut view.files)?;
        if changed {
            Self::persist(&mut view, None, true)?;
        }
        Ok((view.record, out))
    }
}

#[async_trait]
impl MessagesBackend for LocalMessages {
    async fn save(&self, conversation: &StoredConversation) -> Result<()> {
        let conversation = conversation.clone();
        self.run(move |s| s.save(&conversation)).await
    }

    async fn get(&self, id: &str) -> Result<Option<StoredConversation>> {
        let id = id.to_owned();
        self.run(move |s| s.get(&id)).await
    }

    async fn get_by_user(&self, user_id: &str) -> Result<Vec<StoredConversation>> {
        keys::validate_user_id(user_id)?;
        let user = user_id.to_owned();
        self.run(move |s| s.get_by_user(&user)).await
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.run(move |s| s.delete(&id)).await
    }

    async fn create(&self, record: &ConversationRecord) -> Result<()> {
        let record = record.clone();
        self.run(move |s| s.create(&record)).await
    }

    async fn get_record(&self, id: &str) -> Result<Option<ConversationRecord>> {
        let id = id.to_owned();
        self.run(move |s| Ok(s.open_conv(&id, Mode::Shared)?.map(|(_, v)| v.record)))
            .await
    }

    async fn get_record_with_files(
        &self,
        id: &str,
    ) -> Result<Option<(ConversationRecord, Vec<FileAttachment>)>> {
        let id = id.to_owned();
        self.run(move |s| {
            Ok(s.open_conv(&id, Mode::Shared)?
                .map(|(_, v)| (v.record, v.files)))
        })
        .await
    }

    async fn append_messages(&self, id: &str, messages: Vec<NewMessage>) -> Result<Appended> {
        let id = id.to_owned();
        self.run(move |s| s.append(&id, messages)).await
    }

    async fn messages(&self, id: &str, range: &MessageRange) -> Result<Page<Message>> {
        let id = id.to_owned();
        let range = range.clone();
        self.run(move |s| s.messages(&id, &range)).await
    }

    async fn list_conversations(
        &self,
        user_id: Option<&str>,
        options: &ListOptions,
    ) -> Result<Page<ConversationSummary>> {
        options.validate()?;
        let user = user_id.map(str::to_owned);
        let options = options.clone();
        self.run(move |s| {
            let summaries = s
                .views(user.as_deref())?
                .into_iter()
                .map(|v| v.record.summary())
                .collect();
            paginate(summaries, &options)
        })
        .await
    }

    async fn update(&self, id: &str, patch: &ConversationPatch) -> Result<ConversationRecord> {
        patch.validate()?;
        let id = id.to_owned();
        let patch = patch.clone();
        self.run(move |s| {
            s.modify(&id, |record, _| Ok((record.apply_patch(&patch), ())))
                .map(|(r, ())| r)
        })
        .await
    }

    async fn files(&self, id: &str) -> Result<Vec<FileAttachment>> {
        let id = id.to_owned();
        self.run(move |s| s.require(&id, Mode::Shared).map(|(_, v)| v.files))
            .await
    }

    async fn add_file(&self, id: &str, file: FileAttachment) -> Result<ConversationRecord> {
        let id = id.to_owned();
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

    async fn remove_file(&self, id: &str, file_id: &str) -> Result<Option<ConversationRecord>> {
        let id = id.to_owned();
        let file_id = file_id.to_owned();
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
}
