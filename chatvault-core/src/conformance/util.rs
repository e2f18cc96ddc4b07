//! Helpers shared by the checks. Assertion helpers are `#[track_caller]`, so a failure
//! points at the line of the check that made it.

use std::collections::HashSet;
use std::fmt::Debug;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use sha2::{Digest, Sha256};

use super::forward::{FilesHook, Forward};
use crate::backend::{ByteStream, FilesBackend, MessagesBackend};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{ContentType, ConversationId, StorageKey, UserId};
use crate::model::{
    ConversationRecord, ConversationSummary, ListOptions, Message, MessageRange, Metadata,
};

/// The value of `result`, or a panic naming `what` and the error.
#[track_caller]
pub(crate) fn ok<T>(result: Result<T>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{what}: unexpected error ({:?}): {e}", e.kind()),
    }
}

/// Panics unless `result` is an error of `kind`.
#[track_caller]
pub(crate) fn assert_kind<T: Debug>(result: Result<T>, kind: ErrorKind, what: &str) {
    match result {
        Err(e) if e.kind() == kind => {}
        Err(e) => panic!("{what}: expected a {kind:?} error, got {:?}: {e}", e.kind()),
        Ok(value) => panic!("{what}: expected a {kind:?} error, got Ok({value:?})"),
    }
}

/// Panics unless the messages have exactly these seq values, in order.
#[track_caller]
pub(crate) fn assert_seqs(
    messages: &[Message],
    expected: impl IntoIterator<Item = u64>,
    what: &str,
) {
    let got: Vec<u64> = messages.iter().map(|m| m.seq).collect();
    let want: Vec<u64> = expected.into_iter().collect();
    assert_eq!(got, want, "{what}: wrong seq values");
}

/// Panics unless the summaries are in listing order without repeats.
#[track_caller]
pub(crate) fn assert_listing_order(items: &[ConversationSummary], what: &str) {
    for pair in items.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            (a.last_active, &a.id) > (b.last_active, &b.id),
            "{what}: a listing is newest activity first, then id descending, without repeats: \
             {} ({}) came before {} ({})",
            a.id,
            a.last_active,
            b.id,
            b.last_active
        );
    }
}

/// A user id no other check uses.
pub(crate) fn fresh_user(prefix: &str) -> UserId {
    match UserId::parse(format!("{prefix}-{}", uuid::Uuid::now_v7())) {
        Ok(user) => user,
        Err(e) => panic!("the suite made a bad user id: {e}"),
    }
}

/// Parses a value the suite itself spells (a content type, an id).
#[track_caller]
pub(crate) fn parse<T: std::str::FromStr<Err = Error>>(s: &str) -> T {
    match s.parse() {
        Ok(v) => v,
        Err(e) => panic!("the suite's own value {s:?} does not parse: {e}"),
    }
}

/// Metadata whose numbers must come back exactly.
pub(crate) fn exact_metadata() -> Metadata {
    let json = r#"{
        "float": 0.1,
        "tiny": 1e-300,
        "pi": 3.141592653589793,
        "u64_max": 18446744073709551615,
        "i64_min": -9223372036854775808,
        "beyond_f64": 9007199254740993,
        "nested": {"list": [1, 2.5, "three", null, true], "empty": {}},
        "unicode": "日本語 ✓ \u0000 \ud83d\ude00"
    }"#;
    match serde_json::from_str(json) {
        Ok(m) => m,
        Err(e) => panic!("the suite's metadata literal: {e}"),
    }
}

/// Creates a new conversation directly in the backend.
pub(crate) async fn new_conversation(
    backend: &dyn MessagesBackend,
    user: Option<&UserId>,
) -> ConversationRecord {
    let record = ConversationRecord::new(user.cloned());
    ok(backend.create(&record).await, "create a new conversation");
    record
}

/// The largest message the backend declares it stores (never above the core's limit).
pub(crate) fn message_limit(backend: &dyn MessagesBackend) -> usize {
    let core = crate::model::MAX_MESSAGE_BYTES;
    backend
        .capabilities()
        .max_message_bytes
        .map_or(core, |m| usize::try_from(m).map_or(core, |m| m.min(core)))
}

/// How many messages the checks put in one append: 50, or fewer if the backend says so.
pub(crate) fn batch_size(backend: &dyn MessagesBackend) -> usize {
    backend
        .capabilities()
        .max_append_messages
        .map_or(50, |max| max.clamp(1, 50))
}

/// Every message of a conversation, following the backend's pages; checks that pages
/// continue without gaps and that a page with a cursor is not empty.
pub(crate) async fn all_messages(
    backend: &dyn MessagesBackend,
    id: &ConversationId,
) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::new();
    let mut range = MessageRange::all();
    loop {
        let page = ok(backend.messages(id, &range).await, "read messages");
        if let (Some(last), Some(first)) = (out.last(), page.items.first()) {
            assert_eq!(
                first.seq,
                last.seq + 1,
                "pages of messages must continue without gaps or repeats"
            );
        }
        for pair in page.items.windows(2) {
            assert_eq!(pair[1].seq, pair[0].seq + 1, "a page must be in seq order");
        }
        let empty = page.items.is_empty();
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => {
                assert!(!empty, "a page with a next_cursor must not be empty");
                range = ok(range.continue_from(&c), "the backend's message cursor");
            }
            None => return out,
        }
    }
}

/// Every summary of a listing, following its pages.
pub(crate) async fn list_everything(
    backend: &dyn MessagesBackend,
    user: Option<&UserId>,
    include_archived: bool,
    limit: usize,
) -> Vec<ConversationSummary> {
    let mut options =
        ok(ListOptions::new().limit(limit), "limit").include_archived(include_archived);
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let page = ok(
            backend.list_conversations(user, &options).await,
            "list conversations",
        );
        assert!(page.items.len() <= limit, "a page longer than its limit");
        let empty = page.items.is_empty();
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => {
                assert!(
                    !empty,
                    "a listing page with a next_cursor must not be empty"
                );
                options = ok(options.cursor(&c), "cursor");
            }
            None => return out,
        }
    }
    panic!("a listing did not end after 100,000 pages")
}

/// Awaits spawned tasks; a panic in one is re-raised here (with its own message).
pub(crate) async fn join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        match handle.await {
            Ok(v) => out.push(v),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("a spawned task of the suite was cancelled: {e}"),
        }
    }
    out
}

/// The deepest JSON value (an array nest holding `1`) that still passes `accepts`, and the
/// shallowest that does not: the core's depth limit, found by asking the core.
pub(crate) fn depth_limit(
    accepts: impl Fn(&serde_json::Value) -> bool,
) -> (serde_json::Value, serde_json::Value) {
    let mut value = serde_json::json!(1);
    assert!(accepts(&value), "the core refuses a flat value");
    for _ in 0..1_000 {
        let deeper = serde_json::json!([value.clone()]);
        if !accepts(&deeper) {
            return (value, deeper);
        }
        value = deeper;
    }
    panic!("the core accepts JSON nested 1,000 levels deep")
}

/// A metadata object holding `value` under `"deep"`.
pub(crate) fn metadata_with(value: serde_json::Value) -> Metadata {
    let mut m = Metadata::new();
    m.insert("deep".into(), value);
    m
}

/// A deterministic pseudo-random byte stream of `len` bytes in 64 KiB chunks, generated
/// as it is read (never held whole), and the SHA-256 (lowercase hex) it will have.
///
/// A test utility for streaming checks of your own: the same `seed` gives the same bytes.
pub fn generated_stream(len: u64, seed: u64) -> (ByteStream, String) {
    const CHUNK: u64 = 64 * 1024;
    fn chunk(seed: u64, index: u64, size: usize) -> Bytes {
        let mut x = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut out = Vec::with_capacity(size + 8);
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
    let expected = crate::digest::hex(&hasher.finalize());
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
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => panic!("a download stream failed: {e}"),
        };
        len += chunk.len() as u64;
        hasher.update(&chunk);
    }
    (len, crate::digest::hex(&hasher.finalize()))
}

/// A stream that yields `good` bytes, then fails.
pub(crate) fn failing_stream(good: usize) -> ByteStream {
    stream::iter(vec![
        Ok(Bytes::from(vec![7u8; good])),
        Err(io::Error::other("the client went away")),
    ])
    .boxed()
}

/// A files backend that records every key an upload was attempted under, then passes
/// every call to the backend it wraps: for checks that nothing uploaded is left behind.
/// Build it with `Forward::new(inner, Recording::default())`; it reads the hook's
/// methods through [`Forward`]'s `Deref`.
pub type RecordingFiles = Forward<Arc<dyn FilesBackend>, Recording>;

/// The hook of [`RecordingFiles`]: records upload keys, and can delay or fail deletes.
#[derive(Debug, Default)]
pub struct Recording {
    uploaded: Mutex<Vec<StorageKey>>,
    delete_delay: Option<Duration>,
    /// How many of the next deletes fail (without deleting).
    failing_deletes: AtomicUsize,
}

impl Recording {
    /// Makes the next `count` deletes fail with a temporary error, deleting nothing: a
    /// crash between two steps of a deletion, for checks that a rerun finishes the job.
    pub fn fail_next_deletes(&self, count: usize) {
        self.failing_deletes.store(count, Ordering::SeqCst);
    }

    /// How many of the deletes [`fail_next_deletes`](Self::fail_next_deletes) asked to fail
    /// have not happened yet.
    pub fn deletes_still_failing(&self) -> usize {
        self.failing_deletes.load(Ordering::SeqCst)
    }

    /// Makes every delete wait `delay` first (as a remote store's would), which widens the
    /// window of races with a deletion.
    pub fn with_delete_delay(mut self, delay: Duration) -> Self {
        self.delete_delay = Some(delay);
        self
    }

    /// Every key an upload was attempted under, in order, without repeats.
    pub fn uploaded(&self) -> Vec<StorageKey> {
        let keys = self
            .uploaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut seen = HashSet::new();
        keys.into_iter()
            .filter(|k| seen.insert(k.clone()))
            .collect()
    }
}

#[async_trait]
impl FilesHook<Arc<dyn FilesBackend>> for Recording {
    async fn upload_stream(
        &self,
        inner: &Arc<dyn FilesBackend>,
        key: &StorageKey,
        data: ByteStream,
        content_type: &ContentType,
    ) -> Result<u64> {
        self.uploaded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(key.clone());
        inner.upload_stream(key, data, content_type).await
    }

    async fn delete(&self, inner: &Arc<dyn FilesBackend>, key: &StorageKey) -> Result<bool> {
        if let Some(delay) = self.delete_delay {
            tokio::time::sleep(delay).await;
        }
        let failing = self
            .failing_deletes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Err(Error::temporary(
                "recording files",
                format!("the delete of {key} failed on purpose"),
            ));
        }
        inner.delete(key).await
    }
}
