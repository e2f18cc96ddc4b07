//! The behaviour every backend must show, as public async test functions.
//!
//! A backend crate (first-party or not) dev-depends on `chatvault-core` with the
//! `conformance` feature and calls these from its own tests against a fresh backend:
//!
//! ```no_run
//! use std::sync::Arc;
//! use chatvault_core::conformance::{self, FilesCapabilities, MessagesCapabilities, VaultCapabilities};
//! # use chatvault_memory::{MemoryFiles as MyFiles, MemoryMessages as MyMessages};
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn conformance() {
//!     let messages = Arc::new(MyMessages::new());
//!     let files = Arc::new(MyFiles::new());
//!     conformance::run_messages_suite(messages.clone(), MessagesCapabilities::full()).await;
//!     conformance::run_files_suite(files.clone(), FilesCapabilities::full()).await;
//!     let vault = chatvault_core::ChatVault::from_arcs(messages, files);
//!     conformance::run_vault_suite(vault, VaultCapabilities::full()).await;
//! }
//! # fn main() {}
//! ```
//!
//! Each function panics with a message naming the broken rule. The suites create their own
//! conversations under fresh random ids and user ids, so a backend that already holds data
//! (a shared table or bucket) can run them; only [`list_all_conversations`] looks at every
//! conversation. Capability flags switch off what a simple backend cannot promise, such as
//! atomic concurrent appends or signed URLs; a first-party backend runs everything.
//!
//! The functions need no particular async runtime: concurrency comes from polling many
//! futures at once.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use sha2::{Digest, Sha256};

use crate::backend::{ByteStream, FilesBackend, MessagesBackend, collect_stream};
use crate::error::{Error, Result};
use crate::keys;
use crate::model::{
    ConversationPatch, ConversationRecord, ConversationSummary, FileAttachment, ListOptions,
    Message, MessageRange, Metadata, NewMessage, Role, StoredConversation, auto_title, new_id, now,
};
use crate::vault::{ChatVault, sha256_hex};

/// What a messages backend promises beyond the basics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessagesCapabilities {
    /// Concurrent appends to one conversation: this many writers at once...
    /// (0 skips the check, for backends whose appends are not atomic).
    pub concurrent_writers: usize,
    /// ... each appending this many messages one at a time.
    pub appends_per_writer: usize,
    /// Listing every user's conversations (`list_conversations(None, ..)`).
    pub list_all: bool,
    /// Messages in the long-conversation check (appended in batches of 50).
    pub long_conversation: usize,
}

impl MessagesCapabilities {
    /// Everything, at the sizes the first-party backends are held to: 16 writers x 200
    /// appends, listing all, a 2,000-message conversation.
    pub fn full() -> Self {
        MessagesCapabilities {
            concurrent_writers: 16,
            appends_per_writer: 200,
            list_all: true,
            long_conversation: 2_000,
        }
    }

    /// What a backend implementing only the four required methods can pass: no
    /// concurrent appends, no listing of all users.
    pub fn minimal() -> Self {
        MessagesCapabilities {
            concurrent_writers: 0,
            appends_per_writer: 0,
            list_all: false,
            long_conversation: 300,
        }
    }

    /// Sets the concurrent-append check's size (0 writers skips it).
    pub fn concurrent_appends(mut self, writers: usize, appends_per_writer: usize) -> Self {
        self.concurrent_writers = writers;
        self.appends_per_writer = appends_per_writer;
        self
    }

    /// Sets whether listing every user's conversations is checked.
    pub fn list_all(mut self, yes: bool) -> Self {
        self.list_all = yes;
        self
    }

    /// Sets the long-conversation check's size.
    pub fn long_conversation(mut self, messages: usize) -> Self {
        self.long_conversation = messages;
        self
    }
}

/// What a files backend promises beyond the basics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FilesCapabilities {
    /// `signed_url` gives a URL for an existing key (and `None` for a missing one).
    pub signed_urls: bool,
    /// Size of the file streamed in and out in the large-file check.
    pub large_file_bytes: u64,
}

impl FilesCapabilities {
    /// Everything: signed URLs and a 64 MiB streamed file.
    pub fn full() -> Self {
        FilesCapabilities {
            signed_urls: true,
            large_file_bytes: 64 * 1024 * 1024,
        }
    }

    /// No signed URLs, and an 8 MiB streamed file (the default streaming methods buffer).
    pub fn minimal() -> Self {
        FilesCapabilities {
            signed_urls: false,
            large_file_bytes: 8 * 1024 * 1024,
        }
    }

    /// Sets whether signed URLs are checked.
    pub fn signed_urls(mut self, yes: bool) -> Self {
        self.signed_urls = yes;
        self
    }

    /// Sets the large file's size.
    pub fn large_file_bytes(mut self, bytes: u64) -> Self {
        self.large_file_bytes = bytes;
        self
    }
}

/// What the vault-level checks may rely on.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VaultCapabilities {
    /// The vault's files backend has signed URLs.
    pub signed_urls: bool,
}

impl VaultCapabilities {
    /// Everything.
    pub fn full() -> Self {
        VaultCapabilities { signed_urls: true }
    }

    /// No signed URLs.
    pub fn minimal() -> Self {
        VaultCapabilities { signed_urls: false }
    }
}

// ---------------------------------------------------------------------------------------
// helpers

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", new_id())
}

fn exact_metadata() -> Metadata {
    let json = r#"{
        "float": 0.1,
        "tiny": 1e-300,
        "pi": 3.141592653589793,
        "u64_max": 18446744073709551615,
        "i64_min": -9223372036854775808,
        "beyond_f64": 9007199254740993,
        "nested": {"list": [1, 2.5, "three", null, true], "empty": {}},
        "unicode": "日本語 ✓"
    }"#;
    serde_json::from_str(json).expect("valid JSON literal")
}

fn user_msg(content: impl Into<String>) -> NewMessage {
    NewMessage::new(Role::User, content)
}

async fn new_conversation(backend: &dyn MessagesBackend, user: Option<&str>) -> ConversationRecord {
    let record = ConversationRecord::new(user.map(str::to_owned));
    backend
        .create(&record)
        .await
        .expect("create a new conversation");
    record
}

async fn all_messages(backend: &dyn MessagesBackend, id: &str) -> Vec<Message> {
    let mut out = Vec::new();
    let mut range = MessageRange::all().limit(500);
    loop {
        let page = backend.messages(id, &range).await.expect("read messages");
        if let (Some(last), Some(first)) = (out.last(), page.items.first()) {
            let (last, first): (&Message, &Message) = (last, first);
            assert_eq!(first.seq, last.seq + 1, "pages must continue without gaps");
        }
        let empty = page.items.is_empty();
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => {
                assert!(!empty, "a page with next_cursor must not be empty");
                range = range.continue_from(&c).expect("valid cursor");
            }
            None => return out,
        }
    }
}

fn assert_seqs(messages: &[Message], expected: impl IntoIterator<Item = u64>, what: &str) {
    let got: Vec<u64> = messages.iter().map(|m| m.seq).collect();
    let want: Vec<u64> = expected.into_iter().collect();
    assert_eq!(got, want, "{what}: wrong seq values");
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T>, what: &str) {
    match result {
        Err(Error::InvalidInput { .. }) => {}
        other => panic!("{what}: expected Error::InvalidInput, got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T>, what: &str) {
    match result {
        Err(Error::NotFound { .. }) => {}
        other => panic!("{what}: expected Error::NotFound, got {other:?}"),
    }
}

async fn list_everything(
    backend: &dyn MessagesBackend,
    user: Option<&str>,
    include_archived: bool,
    limit: usize,
) -> Vec<ConversationSummary> {
    let mut options = ListOptions::new()
        .limit(limit)
        .include_archived(include_archived);
    let mut out = Vec::new();
    loop {
        let page = backend
            .list_conversations(user, &options)
            .await
            .expect("list conversations");
        assert!(page.items.len() <= limit, "page longer than its limit");
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => options = options.cursor(c),
            None => return out,
        }
    }
}

fn assert_listing_order(items: &[ConversationSummary]) {
    for pair in items.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            (a.last_active, a.id.as_str()) > (b.last_active, b.id.as_str()),
            "listing must be newest activity first, then id descending, without repeats: \
             {} ({}) before {} ({})",
            a.id,
            a.last_active,
            b.id,
            b.last_active
        );
    }
}

/// A deterministic pseudo-random byte stream of `len` bytes in 64 KiB chunks, generated
/// as it is read (never held whole), and the SHA-256 (lowercase hex) it will have.
///
/// A test utility for streaming checks of your own: the same `seed` gives the same bytes.
pub fn generated_stream(len: u64, seed: u64) -> (ByteStream, String) {
    const CHUNK: u64 = 64 * 1024;
    fn chunk(seed: u64, index: u64, size: usize) -> Bytes {
        let mut x = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut out = Vec::with_capacity(size);
        while out.len() < size {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.truncate(size);
        Bytes::from(out)
    }
    let chunks = len.div_ceil(CHUNK);
    let size_of = move |i: u64| (len - i * CHUNK).min(CHUNK) as usize;
    let mut hasher = Sha256::new();
    for i in 0..chunks {
        hasher.update(chunk(seed, i, size_of(i)));
    }
    let expected = crate::vault::hex(&hasher.finalize());
    let stream = stream::iter(0..chunks)
        .map(move |i| Ok::<_, io::Error>(chunk(seed, i, size_of(i))))
        .boxed();
    (stream, expected)
}

/// Reads a stream to its end; returns its length and SHA-256 (lowercase hex).
///
/// Panics if the stream yields an error.
pub async fn stream_sha256(mut stream: ByteStream) -> (u64, String) {
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("download stream chunk");
        len += chunk.len() as u64;
        hasher.update(&chunk);
    }
    (len, crate::vault::hex(&hasher.finalize()))
}

/// A stream that yields `good` bytes, then fails.
fn failing_stream(good: usize) -> ByteStream {
    stream::iter(vec![
        Ok(Bytes::from(vec![7u8; good])),
        Err(io::Error::other("the client went away")),
    ])
    .boxed()
}

// ---------------------------------------------------------------------------------------
// messages backend

/// Runs every messages-backend check that `caps` allows.
pub async fn run_messages_suite(backend: Arc<dyn MessagesBackend>, caps: MessagesCapabilities) {
    let b = backend.as_ref();
    create_and_read_back(b).await;
    save_and_get_whole_conversations(b).await;
    append_assigns_seq_and_title(b).await;
    missing_conversations_are_not_found(b).await;
    message_ranges_and_cursors(b).await;
    metadata_updates_leave_messages_alone(b).await;
    file_records(b).await;
    invalid_ids_are_rejected(b).await;
    list_user_conversations(b).await;
    listing_pages_survive_concurrent_creation(b).await;
    listing_ties_break_by_id(b).await;
    delete_conversations(b).await;
    long_conversation(b, caps.long_conversation).await;
    if caps.list_all {
        list_all_conversations(b).await;
    }
    if caps.concurrent_writers > 0 {
        concurrent_appends(
            Arc::clone(&backend),
            caps.concurrent_writers,
            caps.appends_per_writer,
        )
        .await;
    }
}

/// `create` stores the record exactly (times, metadata with exact numbers); a second
/// `create` of the same id is `AlreadyExists` and changes nothing.
pub async fn create_and_read_back(backend: &dyn MessagesBackend) {
    let mut record = ConversationRecord::new(Some(unique("user")));
    record.title = Some("Réunion 📅".into());
    record.metadata = exact_metadata();
    backend.create(&record).await.expect("create");
    let got = backend
        .get_record(&record.id)
        .await
        .expect("get_record")
        .expect("created conversation is found");
    assert_eq!(got, record, "record must round-trip exactly");
    assert_eq!(
        backend
            .get_record_with_files(&record.id)
            .await
            .expect("get_record_with_files"),
        Some((record.clone(), Vec::new()))
    );
    let whole = backend.get(&record.id).await.expect("get").expect("found");
    assert_eq!(whole.record, record);
    assert!(whole.messages.is_empty() && whole.files.is_empty());

    let mut again = ConversationRecord::new(None);
    again.id = record.id.clone();
    match backend.create(&again).await {
        Err(Error::AlreadyExists { .. }) => {}
        other => panic!("create with a taken id: expected AlreadyExists, got {other:?}"),
    }
    let still = backend.get_record(&record.id).await.expect("get_record");
    assert_eq!(
        still,
        Some(record),
        "a refused create must not change the record"
    );
    assert_eq!(
        backend.get_record(&unique("absent")).await.expect("get"),
        None
    );
}

/// The four required methods: `save` stores a whole conversation (messages, files,
/// last_active, archived, metadata) and `get` / `get_by_user` give it back exactly.
pub async fn save_and_get_whole_conversations(backend: &dyn MessagesBackend) {
    let user = unique("user");
    let mut record = ConversationRecord::new(Some(user.clone()));
    record.archived = true;
    record.metadata = exact_metadata();
    let messages: Vec<Message> = (1..=3)
        .map(|i| {
            let mut m = user_msg(format!("message {i}")).into_message(i);
            m.metadata = exact_metadata();
            m
        })
        .collect();
    record.message_count = 3;
    record.last_active = record.created_at + chrono::Duration::milliseconds(1234);
    let file = FileAttachment {
        id: new_id(),
        filename: "a.txt".into(),
        content_type: "text/plain".into(),
        size: 3,
        sha256: sha256_hex(b"abc"),
        storage_key: keys::storage_key(Some(&user), &record.id, "f", "a.txt").expect("valid key"),
        uploaded_at: now(),
        metadata: exact_metadata(),
    };
    record.file_count = 1;
    let conversation = StoredConversation {
        record: record.clone(),
        messages,
        files: vec![file],
    };
    backend.save(&conversation).await.expect("save");
    let got = backend.get(&record.id).await.expect("get").expect("saved");
    assert_eq!(got, conversation, "save/get must round-trip exactly");
    let by_user = backend.get_by_user(&user).await.expect("get_by_user");
    assert_eq!(by_user, vec![conversation.clone()]);
    assert!(
        backend
            .get_by_user(&unique("nobody"))
            .await
            .expect("get_by_user")
            .is_empty()
    );
    // Saving again replaces.
    let mut changed = conversation.clone();
    changed.record.title = Some("renamed".into());
    changed.messages.truncate(1);
    changed.record.message_count = 1;
    backend.save(&changed).await.expect("save again");
    assert_eq!(backend.get(&record.id).await.expect("get"), Some(changed));
    assert!(backend.delete(&record.id).await.expect("delete"));
}

/// `append_messages` assigns seq 1, 2, 3..., counts, moves `last_active` forward, and
/// titles the conversation from its first user message (50 characters plus "...").
pub async fn append_assigns_seq_and_title(backend: &dyn MessagesBackend) {
    let record = new_conversation(backend, Some(&unique("user"))).await;
    let long_question = "¿Qué tiempo hará mañana en Zürich? ".repeat(4);
    let mut with_meta = NewMessage::new(Role::Assistant, "Sunny.");
    with_meta.metadata = exact_metadata();
    let first = backend
        .append_messages(
            &record.id,
            vec![
                NewMessage::new(Role::System, "You are terse."),
                user_msg(long_question.clone()),
                with_meta.clone(),
            ],
        )
        .await
        .expect("append");
    assert_seqs(&first.messages, 1..=3, "first append");
    assert_eq!(first.record.message_count, 3);
    assert_eq!(
        first.record.title.as_deref(),
        Some(auto_title(&long_question).as_str()),
        "title comes from the first user message"
    );
    assert_eq!(
        first.record.title.as_ref().map(|t| t.chars().count()),
        Some(53)
    );
    assert!(first.record.last_active >= record.last_active);
    assert!(first.record.version > record.version, "version must grow");
    assert_eq!(first.messages[2].metadata, exact_metadata());
    assert_eq!(first.messages[2].id, with_meta.id, "ids are kept");

    let second = backend
        .append_messages(
            &record.id,
            vec![user_msg("a second question must not retitle")],
        )
        .await
        .expect("append again");
    assert_seqs(&second.messages, [4], "second append");
    assert_eq!(second.record.title, first.record.title);
    assert!(second.record.last_active >= first.record.last_active);

    let empty = backend
        .append_messages(&record.id, Vec::new())
        .await
        .expect("an empty append is a no-op");
    assert!(empty.messages.is_empty());
    assert_eq!(empty.record.message_count, 4);

    let stored = all_messages(backend, &record.id).await;
    assert_seqs(&stored, 1..=4, "stored messages");
    assert_eq!(stored[2], first.messages[2], "stored exactly as returned");
    assert_eq!(stored[0].role, Role::System);
    assert_eq!(stored[1].content, long_question);
    let after = backend
        .get_record(&record.id)
        .await
        .expect("get_record")
        .expect("exists");
    assert_eq!(
        after, second.record,
        "get_record matches the append's result"
    );

    // A conversation opened by a non-user message keeps waiting for a user message.
    let other = new_conversation(backend, None).await;
    let a = backend
        .append_messages(&other.id, vec![NewMessage::new(Role::Assistant, "Hi!")])
        .await
        .expect("append");
    assert_eq!(a.record.title, None, "only user messages give a title");
    let custom = backend
        .append_messages(&other.id, vec![NewMessage::new("critic", "meh")])
        .await
        .expect("append a custom role");
    assert_eq!(custom.messages[0].role, Role::Other("critic".into()));
}

/// Operations on a conversation that does not exist fail with `NotFound` (reads of the
/// record give `None`), and create nothing.
pub async fn missing_conversations_are_not_found(backend: &dyn MessagesBackend) {
    let id = unique("missing");
    assert_not_found(
        backend.append_messages(&id, vec![user_msg("x")]).await,
        "append to a missing conversation",
    );
    assert_not_found(
        backend.messages(&id, &MessageRange::all()).await,
        "messages of a missing conversation",
    );
    assert_not_found(
        backend
            .update(
                &id,
                &ConversationPatch {
                    archived: Some(true),
                    ..Default::default()
                },
            )
            .await,
        "update of a missing conversation",
    );
    assert_not_found(backend.files(&id).await, "files of a missing conversation");
    assert_eq!(backend.get_record(&id).await.expect("get_record"), None);
    assert!(!backend.delete(&id).await.expect("delete of a missing one"));
    assert_eq!(
        backend.get(&id).await.expect("get"),
        None,
        "failed calls must not create the conversation"
    );
}

/// Windows by seq: `after`, `before`, `last`, limits, and cursors that walk the whole
/// conversation in either direction without gaps or repeats.
pub async fn message_ranges_and_cursors(backend: &dyn MessagesBackend) {
    let record = new_conversation(backend, None).await;
    let batch: Vec<NewMessage> = (1..=25).map(|i| user_msg(format!("m{i}"))).collect();
    backend
        .append_messages(&record.id, batch)
        .await
        .expect("append 25");
    let id = record.id.as_str();
    let read =
        |range: MessageRange| async move { backend.messages(id, &range).await.expect("messages") };

    let p = read(MessageRange::after(5).limit(7)).await;
    assert_seqs(&p.items, 6..=12, "after(5).limit(7)");
    assert!(p.has_more());
    let p = read(MessageRange::last(5)).await;
    assert_seqs(&p.items, 21..=25, "last(5)");
    assert!(p.has_more(), "older messages remain before last(5)");
    let p = read(MessageRange::before(6).limit(3)).await;
    assert_seqs(&p.items, 3..=5, "before(6).limit(3)");
    assert_eq!(
        p.next_cursor.as_deref(),
        Some("3"),
        "seq 1 and 2 remain before it"
    );
    let p = read(MessageRange::before(3).limit(5)).await;
    assert_seqs(&p.items, 1..=2, "before(3).limit(5)");
    assert!(!p.has_more(), "nothing before seq 1");
    let p = read(MessageRange::last(100)).await;
    assert_seqs(&p.items, 1..=25, "last(100)");
    assert!(!p.has_more());
    let p = read(MessageRange::after(25)).await;
    assert!(
        p.items.is_empty() && !p.has_more(),
        "after the end is empty"
    );
    let p = read(MessageRange::last(0)).await;
    assert!(p.items.is_empty(), "last(0) is empty");

    // Walk forward and backward with small pages.
    for range in [MessageRange::all().limit(4), MessageRange::last(4)] {
        let mut seen = Vec::new();
        let mut r = range.clone();
        for _ in 0..100 {
            let page = read(r.clone()).await;
            seen.extend(page.items.iter().map(|m| m.seq));
            match page.next_cursor {
                Some(c) => r = r.continue_from(&c).expect("cursor"),
                None => break,
            }
        }
        seen.sort_unstable();
        assert_eq!(
            seen,
            (1..=25).collect::<Vec<_>>(),
            "paging {range:?} must visit every message once"
        );
    }
}

/// Title, archive flag and metadata change without touching messages or `last_active`.
pub async fn metadata_updates_leave_messages_alone(backend: &dyn MessagesBackend) {
    let record = new_conversation(backend, Some(&unique("user"))).await;
    let appended = backend
        .append_messages(&record.id, vec![user_msg("hello"), user_msg("world")])
        .await
        .expect("append");
    let before = all_messages(backend, &record.id).await;

    let updated = backend
        .update(
            &record.id,
            &ConversationPatch {
                title: Some("New title".into()),
                archived: Some(true),
                metadata: Some(exact_metadata()),
            },
        )
        .await
        .expect("update");
    assert_eq!(updated.title.as_deref(), Some("New title"));
    assert!(updated.archived);
    assert_eq!(updated.metadata, exact_metadata());
    assert_eq!(updated.last_active, appended.record.last_active);
    assert_eq!(updated.message_count, 2);
    assert!(updated.version > appended.record.version);
    let stored = backend
        .get_record(&record.id)
        .await
        .expect("get_record")
        .expect("exists");
    assert_eq!(stored, updated);
    assert_eq!(all_messages(backend, &record.id).await, before);

    let unarchived = backend
        .update(
            &record.id,
            &ConversationPatch {
                archived: Some(false),
                ..Default::default()
            },
        )
        .await
        .expect("unarchive");
    assert!(!unarchived.archived);
    assert_eq!(unarchived.title.as_deref(), Some("New title"), "kept");
    assert_eq!(unarchived.metadata, exact_metadata(), "kept");

    // A later user message does not replace an explicit title.
    let a = backend
        .append_messages(&record.id, vec![user_msg("later")])
        .await
        .expect("append");
    assert_eq!(a.record.title.as_deref(), Some("New title"));
    assert_invalid(
        backend
            .update(
                &record.id,
                &ConversationPatch {
                    title: Some("nul\0".into()),
                    ..Default::default()
                },
            )
            .await,
        "a title with NUL",
    );
}

/// Attachment records: two files of the same name are both kept, ids are unique,
/// `file_count` follows, removal of a missing file is `None`.
pub async fn file_records(backend: &dyn MessagesBackend) {
    let user = unique("user");
    let record = new_conversation(backend, Some(&user)).await;
    let file = |name: &str| {
        let id = new_id();
        FileAttachment {
            storage_key: keys::storage_key(Some(&user), &record.id, &id, name).expect("valid key"),
            id,
            filename: name.into(),
            content_type: "application/pdf".into(),
            size: 10,
            sha256: sha256_hex(name.as_bytes()),
            uploaded_at: now(),
            metadata: exact_metadata(),
        }
    };
    let a = file("report.pdf");
    let b = file("report.pdf");
    let r1 = backend
        .add_file(&record.id, a.clone())
        .await
        .expect("add a");
    assert_eq!(r1.file_count, 1);
    assert!(r1.last_active >= record.last_active);
    let r2 = backend
        .add_file(&record.id, b.clone())
        .await
        .expect("add b");
    assert_eq!(r2.file_count, 2);
    assert!(r2.version > r1.version);
    assert_eq!(
        backend.files(&record.id).await.expect("files"),
        vec![a.clone(), b.clone()],
        "both same-named files are kept, oldest first, exactly"
    );
    assert_eq!(
        backend
            .get_record_with_files(&record.id)
            .await
            .expect("get_record_with_files"),
        Some((r2.clone(), vec![a.clone(), b.clone()])),
        "record and files read together agree with the writes"
    );
    match backend.add_file(&record.id, a.clone()).await {
        Err(Error::AlreadyExists { .. }) => {}
        other => panic!("adding a file id twice: expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(backend.files(&record.id).await.expect("files").len(), 2);

    let removed = backend
        .remove_file(&record.id, &a.id)
        .await
        .expect("remove")
        .expect("a existed");
    assert_eq!(removed.file_count, 1);
    assert_eq!(
        backend.files(&record.id).await.expect("files"),
        vec![b.clone()]
    );
    assert_eq!(
        backend
            .remove_file(&record.id, &a.id)
            .await
            .expect("remove again"),
        None
    );
    assert_not_found(
        backend.add_file(&unique("missing"), file("x.pdf")).await,
        "add_file to a missing conversation",
    );
}

/// Hostile ids are rejected with `InvalidInput` and store nothing.
pub async fn invalid_ids_are_rejected(backend: &dyn MessagesBackend) {
    for bad in ["../escape", "a/b", "", "..", "x\0y", "back\\slash"] {
        let mut record = ConversationRecord::new(None);
        record.id = bad.to_owned();
        assert_invalid(backend.create(&record).await, "create with a hostile id");
    }
    for bad in ["../escape", "a/b", "", "x\0y"] {
        let refused = |what: &str, r: Result<()>| match r {
            Err(Error::InvalidInput { .. } | Error::NotFound { .. }) => {}
            other => panic!(
                "{what} with hostile id {bad:?}: expected InvalidInput or NotFound, got {other:?}"
            ),
        };
        refused(
            "append_messages",
            backend
                .append_messages(bad, vec![user_msg("x")])
                .await
                .map(drop),
        );
        refused(
            "messages",
            backend.messages(bad, &MessageRange::all()).await.map(drop),
        );
        refused(
            "update",
            backend
                .update(
                    bad,
                    &ConversationPatch {
                        archived: Some(true),
                        ..Default::default()
                    },
                )
                .await
                .map(drop),
        );
        refused("files", backend.files(bad).await.map(drop));
        refused(
            "remove_file",
            backend.remove_file(bad, "f").await.and_then(|r| match r {
                None => Err(Error::conversation_not_found(bad)),
                Some(_) => Ok(()),
            }),
        );
        assert_eq!(
            backend.get_record_with_files(bad).await.ok().flatten(),
            None,
            "a hostile id names no conversation"
        );
    }
    let mut bad_user = ConversationRecord::new(Some("ctrl\u{7}".into()));
    bad_user.id = unique("c");
    assert_invalid(
        backend.create(&bad_user).await,
        "create with a control character in user_id",
    );
    assert_eq!(backend.get_record(&bad_user.id).await.expect("get"), None);
}

/// A user's listing: only theirs, newest activity first, archived left out unless asked,
/// pages that neither skip nor repeat, no messages loaded.
pub async fn list_user_conversations(backend: &dyn MessagesBackend) {
    let user = unique("user");
    let other_user = unique("user");
    let mut ids = Vec::new();
    for i in 0..7 {
        let r = new_conversation(backend, Some(&user)).await;
        backend
            .append_messages(&r.id, vec![user_msg(format!("conversation {i}"))])
            .await
            .expect("append");
        ids.push(r.id);
    }
    new_conversation(backend, Some(&other_user)).await;
    for id in &ids[..2] {
        backend
            .update(
                id,
                &ConversationPatch {
                    archived: Some(true),
                    ..Default::default()
                },
            )
            .await
            .expect("archive");
    }
    // Touch the oldest so it becomes the newest.
    backend
        .append_messages(&ids[2], vec![user_msg("bump")])
        .await
        .expect("append");

    let active = list_everything(backend, Some(&user), false, 2).await;
    assert_listing_order(&active);
    let active_ids: HashSet<&str> = active.iter().map(|s| s.id.as_str()).collect();
    let expected: HashSet<&str> = ids[2..].iter().map(String::as_str).collect();
    assert_eq!(
        active_ids, expected,
        "active listing: exactly the unarchived ones"
    );
    assert_eq!(active.len(), 5, "no repeats");
    assert_eq!(active[0].id, ids[2], "the most recently active comes first");
    assert_eq!(active[0].message_count, 2);
    assert_eq!(active[0].title.as_deref(), Some("conversation 2"));

    let everything = list_everything(backend, Some(&user), true, 3).await;
    assert_listing_order(&everything);
    assert_eq!(everything.len(), 7);
    assert!(everything.iter().filter(|s| s.archived).count() == 2);

    let one_page = backend
        .list_conversations(Some(&user), &ListOptions::new().limit(1000))
        .await
        .expect("list");
    assert_eq!(one_page.items.len(), 5);
    assert!(!one_page.has_more());
    assert_invalid(
        backend
            .list_conversations(Some(&user), &ListOptions::new().limit(0))
            .await,
        "limit 0",
    );
    assert_invalid(
        backend
            .list_conversations(Some(&user), &ListOptions::new().cursor("garbage"))
            .await,
        "a forged cursor",
    );
    let none = backend
        .list_conversations(Some(&unique("nobody")), &ListOptions::new())
        .await
        .expect("list for an unknown user");
    assert!(none.items.is_empty() && !none.has_more());
}

/// Conversations created while a client pages through a listing never make it skip or
/// repeat one of the conversations that existed when it started.
pub async fn listing_pages_survive_concurrent_creation(backend: &dyn MessagesBackend) {
    let user = unique("user");
    let mut original = HashSet::new();
    for _ in 0..9 {
        original.insert(new_conversation(backend, Some(&user)).await.id);
    }
    let mut options = ListOptions::new().limit(2);
    let mut seen: Vec<ConversationSummary> = Vec::new();
    let mut created = HashSet::new();
    loop {
        let page = backend
            .list_conversations(Some(&user), &options)
            .await
            .expect("list");
        seen.extend(page.items);
        // Someone starts a new conversation between our page loads.
        created.insert(new_conversation(backend, Some(&user)).await.id);
        match page.next_cursor {
            Some(c) => options = options.cursor(c),
            None => break,
        }
    }
    assert_listing_order(&seen);
    let seen_original: Vec<&str> = seen
        .iter()
        .map(|s| s.id.as_str())
        .filter(|id| original.contains(*id))
        .collect();
    let unique_seen: HashSet<&str> = seen_original.iter().copied().collect();
    assert_eq!(
        unique_seen.len(),
        seen_original.len(),
        "a conversation was repeated"
    );
    assert_eq!(
        unique_seen.len(),
        original.len(),
        "a conversation was skipped while others were created"
    );
    assert!(
        seen.iter().all(|s| original.contains(&s.id)),
        "conversations newer than the first page must not appear on later pages"
    );
}

/// Conversations with the same `last_active` are listed by id, descending, and pages
/// split between them neither skip nor repeat one.
pub async fn listing_ties_break_by_id(backend: &dyn MessagesBackend) {
    let user = unique("user");
    let at = now();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let mut record = ConversationRecord::new(Some(user.clone()));
        record.created_at = at;
        record.last_active = at;
        backend
            .save(&StoredConversation::new(record.clone()))
            .await
            .expect("save");
        ids.push(record.id);
    }
    ids.sort_unstable_by(|a, b| b.cmp(a));
    for limit in [1, 2, 5] {
        let listed: Vec<String> = list_everything(backend, Some(&user), false, limit)
            .await
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(listed, ids, "ties in last_active, pages of {limit}");
    }
}

/// Listing every user's conversations: each of ours once, in listing order.
pub async fn list_all_conversations(backend: &dyn MessagesBackend) {
    let mut mine = HashSet::new();
    for i in 0..5 {
        let user = (i % 2 == 0).then(|| unique("user"));
        mine.insert(new_conversation(backend, user.as_deref()).await.id);
    }
    let all = list_everything(backend, None, true, 7).await;
    assert_listing_order(&all);
    let found = all.iter().filter(|s| mine.contains(&s.id)).count();
    assert_eq!(
        found,
        mine.len(),
        "every conversation, with or without user"
    );
}

/// `delete` removes the conversation, its messages and its files' records.
pub async fn delete_conversations(backend: &dyn MessagesBackend) {
    let user = unique("user");
    let record = new_conversation(backend, Some(&user)).await;
    backend
        .append_messages(&record.id, vec![user_msg("bye")])
        .await
        .expect("append");
    let keep = new_conversation(backend, Some(&user)).await;
    assert!(backend.delete(&record.id).await.expect("delete"));
    assert_eq!(backend.get(&record.id).await.expect("get"), None);
    assert_eq!(
        backend.get_record(&record.id).await.expect("get_record"),
        None
    );
    assert!(!backend.delete(&record.id).await.expect("delete again"));
    let listed = list_everything(backend, Some(&user), true, 10).await;
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        vec![keep.id.as_str()],
        "a deleted conversation leaves listings"
    );
    assert_not_found(
        backend
            .append_messages(&record.id, vec![user_msg("x")])
            .await,
        "append after delete",
    );
}

/// A long conversation, appended in batches, reads back whole and in order.
pub async fn long_conversation(backend: &dyn MessagesBackend, messages: usize) {
    if messages == 0 {
        return;
    }
    let record = new_conversation(backend, None).await;
    let mut sent = Vec::with_capacity(messages);
    let mut i = 0;
    while i < messages {
        let n = (messages - i).min(50);
        let batch: Vec<NewMessage> = (i..i + n)
            .map(|k| user_msg(format!("message {k}: {}", "x".repeat(k % 200))))
            .collect();
        sent.extend(batch.iter().map(|m| m.id.clone()));
        backend
            .append_messages(&record.id, batch)
            .await
            .expect("append batch");
        i += n;
    }
    let got = all_messages(backend, &record.id).await;
    assert_seqs(&got, 1..=messages as u64, "long conversation");
    assert_eq!(
        got.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        sent,
        "every message, in order"
    );
    let tail = backend
        .messages(&record.id, &MessageRange::last(3))
        .await
        .expect("last 3");
    assert_seqs(
        &tail.items,
        messages as u64 - 2..=messages as u64,
        "last(3) of a long conversation",
    );
}

/// `writers` tasks append `per_writer` messages each, one at a time, to one conversation:
/// every message is stored exactly once, with seq 1..=writers*per_writer.
pub async fn concurrent_appends(
    backend: Arc<dyn MessagesBackend>,
    writers: usize,
    per_writer: usize,
) {
    let record = new_conversation(backend.as_ref(), Some(&unique("user"))).await;
    let tasks = (0..writers).map(|w| {
        let backend = Arc::clone(&backend);
        let id = record.id.clone();
        async move {
            let mut ids = Vec::with_capacity(per_writer);
            for i in 0..per_writer {
                let m = user_msg(format!("writer {w} message {i}"));
                ids.push(m.id.clone());
                let mut attempt = 0;
                loop {
                    match backend.append_messages(&id, vec![m.clone()]).await {
                        Ok(a) => {
                            assert_eq!(a.messages.len(), 1);
                            break;
                        }
                        // A backend may give up on contention with Conflict: nothing
                        // was written, so the caller retries.
                        Err(Error::Conflict { .. }) if attempt < 50 => attempt += 1,
                        Err(e) => panic!("concurrent append failed: {e}"),
                    }
                }
            }
            ids
        }
    });
    let sent: Vec<String> = join_all(tasks).await.into_iter().flatten().collect();
    let total = (writers * per_writer) as u64;
    let stored = all_messages(backend.as_ref(), &record.id).await;
    assert_seqs(&stored, 1..=total, "concurrent appends");
    let mut count: HashMap<&str, usize> = HashMap::new();
    for m in &stored {
        *count.entry(m.id.as_str()).or_default() += 1;
    }
    for id in &sent {
        assert_eq!(count.get(id.as_str()), Some(&1), "message {id} stored once");
    }
    let r = backend
        .get_record(&record.id)
        .await
        .expect("get_record")
        .expect("exists");
    assert_eq!(r.message_count, total);
    // Each writer's own messages keep their order.
    for w in 0..writers {
        let prefix = format!("writer {w} message ");
        let mine: Vec<usize> = stored
            .iter()
            .filter_map(|m| m.content.strip_prefix(&prefix))
            .filter_map(|n| n.parse().ok())
            .collect();
        assert_eq!(
            mine,
            (0..per_writer).collect::<Vec<_>>(),
            "writer {w} reordered"
        );
    }
}

// ---------------------------------------------------------------------------------------
// files backend

/// Runs every files-backend check that `caps` allows.
pub async fn run_files_suite(backend: Arc<dyn FilesBackend>, caps: FilesCapabilities) {
    let b = backend.as_ref();
    upload_download_delete(b).await;
    hostile_keys_are_rejected(b).await;
    failed_stream_uploads_store_nothing(b).await;
    large_file_streams(b, caps.large_file_bytes).await;
    signed_urls(b, caps.signed_urls).await;
}

fn test_key(name: &str) -> String {
    keys::storage_key(Some("conformance"), &new_id(), &new_id(), name).expect("valid key")
}

/// Bytes in, the same bytes out; overwrite replaces; missing keys are `None`/`false`,
/// never errors; delete reports whether something was there.
pub async fn upload_download_delete(backend: &dyn FilesBackend) {
    let key = test_key("all bytes.bin");
    let data: Bytes = (0..=255u8).cycle().take(70_000).collect::<Vec<_>>().into();
    assert!(!backend.exists(&key).await.expect("exists"));
    assert_eq!(backend.download(&key).await.expect("download"), None);
    assert!(
        backend
            .download_stream(&key)
            .await
            .expect("download_stream")
            .is_none()
    );
    backend
        .upload(&key, data.clone(), "application/octet-stream")
        .await
        .expect("upload");
    assert!(backend.exists(&key).await.expect("exists"));
    assert_eq!(
        backend.download(&key).await.expect("download"),
        Some(data.clone())
    );
    let streamed = backend
        .download_stream(&key)
        .await
        .expect("download_stream")
        .expect("exists");
    assert_eq!(collect_stream(streamed).await.expect("stream"), data);

    backend
        .upload(&key, Bytes::from_static(b"v2"), "text/plain")
        .await
        .expect("overwrite");
    assert_eq!(
        backend.download(&key).await.expect("download").as_deref(),
        Some(&b"v2"[..])
    );

    let empty = test_key("empty.txt");
    backend
        .upload(&empty, Bytes::new(), "text/plain")
        .await
        .expect("upload empty");
    assert!(backend.exists(&empty).await.expect("exists"));
    assert_eq!(
        backend.download(&empty).await.expect("download"),
        Some(Bytes::new())
    );

    assert!(backend.delete(&key).await.expect("delete"));
    assert!(!backend.exists(&key).await.expect("exists"));
    assert_eq!(backend.download(&key).await.expect("download"), None);
    assert!(!backend.delete(&key).await.expect("delete again"));
    assert!(backend.delete(&empty).await.expect("delete empty"));
}

/// Keys that could leave a backend's root are `InvalidInput` for every operation.
pub async fn hostile_keys_are_rejected(backend: &dyn FilesBackend) {
    let hostile = [
        "",
        "../outside",
        "a/../../outside",
        "/etc/passwd",
        "a//b",
        "a/./b",
        "trailing/",
        "back\\slash",
        "nul\0byte",
        "C:/windows",
    ];
    for key in hostile {
        assert_invalid(
            backend
                .upload(key, Bytes::from_static(b"x"), "text/plain")
                .await,
            "upload to a hostile key",
        );
        assert_invalid(backend.download(key).await, "download of a hostile key");
        assert_invalid(backend.exists(key).await, "exists of a hostile key");
        assert_invalid(backend.delete(key).await, "delete of a hostile key");
        assert_invalid(
            backend
                .upload_stream(
                    key,
                    crate::bytes_stream(Bytes::from_static(b"x")),
                    "text/plain",
                )
                .await,
            "upload_stream to a hostile key",
        );
    }
    assert_invalid(
        backend
            .upload(
                &test_key("x.txt"),
                Bytes::from_static(b"x"),
                "not a mime type",
            )
            .await,
        "a malformed content type",
    );
}

/// A stream that fails part-way stores nothing, and leaves an older file under the same
/// key as it was.
pub async fn failed_stream_uploads_store_nothing(backend: &dyn FilesBackend) {
    let fresh = test_key("fresh.bin");
    let r = backend
        .upload_stream(&fresh, failing_stream(100_000), "application/octet-stream")
        .await;
    assert!(r.is_err(), "a failing stream must fail the upload");
    assert!(
        !backend.exists(&fresh).await.expect("exists"),
        "a failed upload must leave nothing"
    );

    let existing = test_key("existing.txt");
    backend
        .upload(&existing, Bytes::from_static(b"keep me"), "text/plain")
        .await
        .expect("upload");
    let r = backend
        .upload_stream(&existing, failing_stream(10), "text/plain")
        .await;
    assert!(r.is_err());
    assert_eq!(
        backend
            .download(&existing)
            .await
            .expect("download")
            .as_deref(),
        Some(&b"keep me"[..]),
        "a failed overwrite must keep the old bytes"
    );
    assert!(backend.delete(&existing).await.expect("delete"));
}

/// A large file streamed in and out comes back unchanged (same length and SHA-256).
pub async fn large_file_streams(backend: &dyn FilesBackend, bytes: u64) {
    if bytes == 0 {
        return;
    }
    let key = test_key("large.bin");
    let (stream, expected) = generated_stream(bytes, 42);
    let stored = backend
        .upload_stream(&key, stream, "application/octet-stream")
        .await
        .expect("upload_stream");
    assert_eq!(stored, bytes, "upload_stream reports the size stored");
    let out = backend
        .download_stream(&key)
        .await
        .expect("download_stream")
        .expect("exists");
    let (len, digest) = stream_sha256(out).await;
    assert_eq!(len, bytes);
    assert_eq!(digest, expected, "streamed file changed on the way");
    assert!(backend.delete(&key).await.expect("delete"));
}

/// `signed_url` gives a URL for an existing key and `None` for a missing one (or `None`
/// always, for backends without signed URLs).
pub async fn signed_urls(backend: &dyn FilesBackend, supported: bool) {
    let key = test_key("résumé 2026.pdf");
    backend
        .upload(&key, Bytes::from_static(b"%PDF"), "application/pdf")
        .await
        .expect("upload");
    let url = backend
        .signed_url(&key, Duration::from_secs(300), Some("résumé 2026.pdf"))
        .await
        .expect("signed_url");
    if supported {
        let url = url.expect("a signed URL for an existing key");
        assert!(url.contains("://"), "not a URL: {url}");
        let missing = backend
            .signed_url(&test_key("missing.pdf"), Duration::from_secs(300), None)
            .await
            .expect("signed_url of a missing key");
        assert_eq!(missing, None, "no URL for a missing key");
    }
    assert!(backend.delete(&key).await.expect("delete"));
}

// ---------------------------------------------------------------------------------------
// vault

/// Runs every vault-level check: the application-facing behaviour over both backends.
pub async fn run_vault_suite(vault: ChatVault, caps: VaultCapabilities) {
    quick_start_flow(&vault, caps.signed_urls).await;
    same_name_attachments(&vault).await;
    hostile_names_are_contained(&vault).await;
    owner_scoped_get(&vault).await;
    archive_and_unarchive(&vault).await;
    delete_removes_blobs_then_record(&vault).await;
    retried_delete_finishes(&vault).await;
    streamed_attachments(&vault).await;
    history_and_last_messages(&vault).await;
}

/// The Python README's quick start: create, add messages, attach, resume.
pub async fn quick_start_flow(vault: &ChatVault, signed_urls: bool) {
    let user = unique("user");
    let mut conversation = vault
        .create_conversation(Some(&user))
        .await
        .expect("create_conversation");
    conversation
        .add_message(Role::User, "Hello!")
        .await
        .expect("add_message");
    let mut meta = Metadata::new();
    meta.insert("model".into(), "gpt-x".into());
    meta.insert("temperature".into(), serde_json::json!(0.7));
    conversation
        .add_message_with_metadata(
            Role::Assistant,
            "Hi there! How can I help you?",
            meta.clone(),
        )
        .await
        .expect("add_message_with_metadata");
    let pdf = Bytes::from_static(b"%PDF-1.4 fake document");
    let file = conversation
        .attach_file("document.pdf", pdf.clone(), "application/pdf")
        .await
        .expect("attach_file");
    assert_eq!(file.size, pdf.len() as u64);
    assert_eq!(file.sha256, sha256_hex(&pdf));
    assert_eq!(conversation.message_count(), 2);
    assert_eq!(conversation.record().file_count, 1);

    let resumed = vault
        .get_conversation(conversation.id())
        .await
        .expect("get_conversation")
        .expect("the conversation is found");
    assert_eq!(resumed.user_id(), Some(user.as_str()));
    assert_eq!(resumed.title(), Some("Hello!"));
    assert_eq!(resumed.record(), conversation.record(), "record survives");
    let history = resumed.history().await.expect("history");
    assert_eq!(
        serde_json::to_value(&history).expect("serialize"),
        serde_json::json!([
            {"role": "user", "content": "Hello!"},
            {"role": "assistant", "content": "Hi there! How can I help you?"}
        ])
    );
    let messages = resumed.messages().await.expect("messages");
    assert_eq!(messages[1].metadata, meta);
    assert_eq!(resumed.files(), &[file.clone()][..]);
    assert_eq!(
        resumed.file_content(&file.id).await.expect("file_content"),
        Some(pdf)
    );
    let url = resumed
        .file_url(&file.id, Duration::from_secs(60))
        .await
        .expect("file_url");
    if signed_urls {
        assert!(url.is_some(), "signed URL expected");
    }
    assert_not_found(
        resumed.file_content("no-such-file").await,
        "file_content of an unknown file id",
    );
    assert!(
        vault
            .get_conversation(&unique("missing"))
            .await
            .expect("get")
            .is_none()
    );
}

/// Two attachments of the same name get their own keys and both survive.
pub async fn same_name_attachments(vault: &ChatVault) {
    let mut c = vault
        .create_conversation(Some(&unique("user")))
        .await
        .expect("create");
    let a = c
        .attach_file("notes.txt", &b"first"[..], "text/plain")
        .await
        .expect("attach a");
    let b = c
        .attach_file("notes.txt", &b"second"[..], "text/plain")
        .await
        .expect("attach b");
    assert_ne!(a.storage_key, b.storage_key, "one key per attachment");
    assert_eq!(
        c.file_content(&a.id).await.expect("a").as_deref(),
        Some(&b"first"[..])
    );
    assert_eq!(
        c.file_content(&b.id).await.expect("b").as_deref(),
        Some(&b"second"[..])
    );
    assert!(c.delete_file(&a.id).await.expect("delete_file"));
    assert!(
        !vault
            .files_backend()
            .exists(&a.storage_key)
            .await
            .expect("exists")
    );
    assert_eq!(c.files(), &[b.clone()][..]);
    assert_eq!(c.record().file_count, 1);
    assert!(!c.delete_file(&a.id).await.expect("delete_file again"));
    c.refresh().await.expect("refresh");
    assert_eq!(c.files(), &[b.clone()][..], "the deletion is stored");

    // A handle that has not seen an attachment can still delete it.
    let mut stale = vault
        .get_conversation(c.id())
        .await
        .expect("get")
        .expect("exists");
    let late = c
        .attach_file("late.txt", &b"late"[..], "text/plain")
        .await
        .expect("attach");
    assert!(
        stale
            .delete_file(&late.id)
            .await
            .expect("delete through a stale handle")
    );
    assert!(
        !vault
            .files_backend()
            .exists(&late.storage_key)
            .await
            .expect("exists")
    );
    c.refresh().await.expect("refresh");
    assert_eq!(c.files(), &[b][..]);
}

/// Hostile user ids and file names are stored safely (or rejected with `InvalidInput`
/// when they cannot be, and then nothing is stored).
pub async fn hostile_names_are_contained(vault: &ChatVault) {
    for user in [
        "../../etc",
        "/root",
        "C:\\Users\\x",
        "a/../../b",
        "..",
        "名前",
    ] {
        let mut c = vault
            .create_conversation(Some(user))
            .await
            .expect("any printable user id is accepted");
        for name in [
            "../../passwd",
            "/etc/shadow",
            "..",
            "a\\b.txt",
            &"long".repeat(200),
        ] {
            let f = c
                .attach_file(name, &b"data"[..], "text/plain")
                .await
                .expect("attach under a hostile name");
            keys::validate_key(&f.storage_key).expect("a safe key");
            assert_eq!(f.filename, name, "the name is kept as given");
            assert_eq!(
                c.file_content(&f.id).await.expect("read").as_deref(),
                Some(&b"data"[..])
            );
        }
        assert!(vault.delete_conversation(c.id()).await.expect("delete"));
    }
    let mut c = vault
        .create_conversation(Some(&unique("user")))
        .await
        .expect("create");
    for name in ["", "nul\0.txt", "line\nbreak.txt"] {
        assert_invalid(
            c.attach_file(name, &b"x"[..], "text/plain").await,
            "a file name that cannot be stored",
        );
    }
    assert_invalid(
        c.attach_file("ok.txt", &b"x"[..], "text/plain\r\nX: y")
            .await,
        "a content type with a line break",
    );
    c.refresh().await.expect("refresh");
    assert!(c.files().is_empty(), "rejected attachments store nothing");
    for bad in ["", "tab\there", "nul\0"] {
        assert_invalid(
            vault.create_conversation(Some(bad)).await,
            "a user id that cannot be stored",
        );
    }
    assert_invalid(
        vault.new_conversation().id("../x").create().await,
        "a hostile conversation id",
    );
    assert_invalid(
        vault.get_conversation("../x").await,
        "get with a hostile id",
    );
}

/// `get_conversation_for_user` answers `None` for someone else's conversation.
pub async fn owner_scoped_get(vault: &ChatVault) {
    let alice = unique("alice");
    let c = vault
        .create_conversation(Some(&alice))
        .await
        .expect("create");
    assert!(
        vault
            .get_conversation_for_user(c.id(), &alice)
            .await
            .expect("get")
            .is_some()
    );
    assert!(
        vault
            .get_conversation_for_user(c.id(), &unique("mallory"))
            .await
            .expect("get")
            .is_none(),
        "another user must not see it"
    );
    let anonymous = vault.create_conversation(None).await.expect("create");
    assert!(
        vault
            .get_conversation_for_user(anonymous.id(), &alice)
            .await
            .expect("get")
            .is_none()
    );
}

/// Archived conversations leave listings unless asked for, and come back.
pub async fn archive_and_unarchive(vault: &ChatVault) {
    let user = unique("user");
    let mut keep = vault
        .create_conversation(Some(&user))
        .await
        .expect("create");
    keep.add_message(Role::User, "keep").await.expect("add");
    let old = vault
        .create_conversation(Some(&user))
        .await
        .expect("create");
    let archived = vault.archive_conversation(old.id()).await.expect("archive");
    assert!(archived.archived);
    let ids = |page: crate::Page<ConversationSummary>| {
        page.items.into_iter().map(|s| s.id).collect::<Vec<_>>()
    };
    let listed = ids(vault
        .list_conversations(&user, &ListOptions::new())
        .await
        .expect("list"));
    assert_eq!(listed, vec![keep.id().to_owned()]);
    let with_archived = ids(vault
        .list_conversations(&user, &ListOptions::new().include_archived(true))
        .await
        .expect("list"));
    assert_eq!(with_archived.len(), 2);
    let reread = vault
        .get_conversation(old.id())
        .await
        .expect("get")
        .expect("archived ones stay readable");
    assert!(reread.is_archived());
    vault
        .unarchive_conversation(old.id())
        .await
        .expect("unarchive");
    let listed = ids(vault
        .list_conversations(&user, &ListOptions::new())
        .await
        .expect("list"));
    assert_eq!(listed.len(), 2);
    keep.archive().await.expect("archive via handle");
    assert!(keep.is_archived());
    keep.unarchive().await.expect("unarchive via handle");
    assert!(!keep.is_archived());
}

/// Deleting a conversation deletes its blobs and its record.
pub async fn delete_removes_blobs_then_record(vault: &ChatVault) {
    let mut c = vault
        .create_conversation(Some(&unique("user")))
        .await
        .expect("create");
    c.add_message(Role::User, "soon gone").await.expect("add");
    let mut keys = Vec::new();
    for i in 0..3 {
        let f = c
            .attach_file(&format!("f{i}.txt"), Bytes::from(vec![i; 10]), "text/plain")
            .await
            .expect("attach");
        keys.push(f.storage_key);
    }
    assert!(vault.delete_conversation(c.id()).await.expect("delete"));
    for key in &keys {
        assert!(
            !vault.files_backend().exists(key).await.expect("exists"),
            "blob {key} outlived its conversation"
        );
    }
    assert!(vault.get_conversation(c.id()).await.expect("get").is_none());
    assert!(
        !vault
            .delete_conversation(c.id())
            .await
            .expect("delete again")
    );
}

/// A files backend that fails the n-th delete, to interrupt a conversation's deletion.
#[derive(Debug)]
struct FlakyDeletes {
    inner: Arc<dyn FilesBackend>,
    fail_on: usize,
    deletes: AtomicUsize,
}

#[async_trait]
impl FilesBackend for FlakyDeletes {
    async fn upload(&self, key: &str, data: Bytes, content_type: &str) -> Result<()> {
        self.inner.upload(key, data, content_type).await
    }
    async fn download(&self, key: &str) -> Result<Option<Bytes>> {
        self.inner.download(key).await
    }
    async fn delete(&self, key: &str) -> Result<bool> {
        if self.deletes.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_on {
            return Err(Error::temporary(
                "flaky",
                io::Error::new(io::ErrorKind::TimedOut, "injected failure"),
            ));
        }
        self.inner.delete(key).await
    }
    async fn exists(&self, key: &str) -> Result<bool> {
        self.inner.exists(key).await
    }
}

/// A deletion interrupted part-way leaves the conversation readable, and calling delete
/// again finishes the job.
pub async fn retried_delete_finishes(vault: &ChatVault) {
    let flaky = ChatVault::from_arcs(
        Arc::clone(vault.messages_backend()),
        Arc::new(FlakyDeletes {
            inner: Arc::clone(vault.files_backend()),
            fail_on: 2,
            deletes: AtomicUsize::new(0),
        }),
    );
    let mut c = flaky
        .create_conversation(Some(&unique("user")))
        .await
        .expect("create");
    let mut keys = Vec::new();
    for i in 0..3 {
        keys.push(
            c.attach_file(
                &format!("f{i}.bin"),
                Bytes::from(vec![i; 3]),
                "application/octet-stream",
            )
            .await
            .expect("attach")
            .storage_key,
        );
    }
    let err = flaky
        .delete_conversation(c.id())
        .await
        .expect_err("the injected failure surfaces");
    assert!(err.is_temporary());
    assert!(
        vault.get_conversation(c.id()).await.expect("get").is_some(),
        "the record stays until every blob is gone"
    );
    assert!(vault.delete_conversation(c.id()).await.expect("retry"));
    for key in &keys {
        assert!(!vault.files_backend().exists(key).await.expect("exists"));
    }
    assert!(vault.get_conversation(c.id()).await.expect("get").is_none());
}

/// Attachments streamed in record their true size and SHA-256 and stream back unchanged.
pub async fn streamed_attachments(vault: &ChatVault) {
    let mut c = vault.create_conversation(None).await.expect("create");
    let size = 3 * 1024 * 1024 + 17;
    let (stream, expected) = generated_stream(size, 7);
    let f = c
        .attach_file_stream("big.bin", stream, "application/octet-stream")
        .await
        .expect("attach_file_stream");
    assert_eq!(f.size, size);
    assert_eq!(f.sha256, expected);
    let out = c
        .file_stream(&f.id)
        .await
        .expect("file_stream")
        .expect("exists");
    assert_eq!(stream_sha256(out).await, (size, expected));

    let r = c
        .attach_file_stream(
            "broken.bin",
            failing_stream(1000),
            "application/octet-stream",
        )
        .await;
    assert!(r.is_err(), "a failing stream fails the attach");
    assert_eq!(c.files().len(), 1, "and records nothing");
    c.refresh().await.expect("refresh");
    assert_eq!(c.files().len(), 1);
}

/// `history`, `last_messages`, `history_last`, and resume after `refresh`.
pub async fn history_and_last_messages(vault: &ChatVault) {
    let mut c = vault.create_conversation(None).await.expect("create");
    for i in 0..30 {
        let role = if i % 2 == 0 {
            Role::User
        } else {
            Role::Assistant
        };
        c.add_message(role, format!("turn {i}")).await.expect("add");
    }
    let last = c.last_messages(4).await.expect("last_messages");
    assert_seqs(&last, 27..=30, "last_messages(4)");
    let window = c.history_last(2).await.expect("history_last");
    assert_eq!(
        serde_json::to_value(&window).expect("json"),
        serde_json::json!([
            {"role": "user", "content": "turn 28"},
            {"role": "assistant", "content": "turn 29"}
        ])
    );
    assert_eq!(c.last_messages(100).await.expect("last 100").len(), 30);
    assert!(c.last_messages(0).await.expect("last 0").is_empty());
    assert_eq!(c.history().await.expect("history").len(), 30);
    assert_eq!(c.title(), Some("turn 0"));

    let mut stale = vault
        .get_conversation(c.id())
        .await
        .expect("get")
        .expect("exists");
    c.rename("Renamed").await.expect("rename");
    let mut meta = exact_metadata();
    meta.insert("k".into(), "v".into());
    c.set_metadata(meta.clone()).await.expect("set_metadata");
    stale.refresh().await.expect("refresh");
    assert_eq!(stale.title(), Some("Renamed"));
    assert_eq!(stale.metadata(), &meta);
    assert_eq!(stale.record().last_active, c.record().last_active);
    assert_eq!(stale.message_count(), 30);

    assert!(vault.delete_conversation(c.id()).await.expect("delete"));
    assert_not_found(stale.refresh().await, "refresh of a deleted conversation");
}
