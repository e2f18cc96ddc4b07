//! Checks of a [`FilesBackend`], each a public async function taking the backend and the
//! [`SuiteConfig`]. Run them on a tokio multi-thread runtime (the macro
//! [`files_backend_tests!`](crate::files_backend_tests) does).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};

use super::SuiteConfig;
use super::util::{assert_kind, failing_stream, generated_stream, join, ok, parse, stream_sha256};
use crate::backend::{ByteStream, FilesBackend, FilesBackendExt, ObjectMeta, collect_stream};
use crate::error::ErrorKind;
use crate::ids::{ContentType, ConversationId, FileId, StorageKey};
use crate::keys;

/// A key no other check uses, made as the vault makes them.
fn test_key(name: &str) -> StorageKey {
    ok(
        keys::storage_key(
            Some(&parse("conformance")),
            &ConversationId::new(),
            &FileId::new(),
            name,
        ),
        "storage key",
    )
}

/// Bytes in, the same bytes out (buffered and streamed), with size and content type in
/// `head`; an overwrite replaces; an empty file exists; missing keys are `None` / `false`,
/// never errors; delete says whether something was there.
pub async fn upload_download_delete(backend: Arc<dyn FilesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let key = test_key("all bytes.bin");
    let data: Bytes = (0..=255u8).cycle().take(70_000).collect::<Vec<_>>().into();
    let octets = ContentType::octet_stream();
    assert!(!ok(b.exists(&key).await, "exists"));
    assert_eq!(ok(b.head(&key).await, "head"), None);
    assert_eq!(ok(b.download(&key).await, "download"), None);
    assert!(ok(b.download_stream(&key).await, "download_stream").is_none());
    assert_eq!(
        ok(b.upload(&key, data.clone(), &octets).await, "upload"),
        70_000
    );
    assert!(ok(b.exists(&key).await, "exists"));
    assert_eq!(
        ok(b.head(&key).await, "head"),
        Some(ObjectMeta {
            size: 70_000,
            content_type: octets.clone()
        })
    );
    assert_eq!(ok(b.download(&key).await, "download"), Some(data.clone()));
    let streamed = match ok(b.download_stream(&key).await, "download_stream") {
        Some(s) => s,
        None => panic!("download_stream of a stored key must give a stream"),
    };
    assert_eq!(ok_io(collect_stream(streamed).await), data);

    let text: ContentType = parse("text/plain; charset=utf-8");
    ok(
        b.upload(&key, Bytes::from_static(b"v2"), &text).await,
        "overwrite",
    );
    assert_eq!(
        ok(b.download(&key).await, "download").as_deref(),
        Some(&b"v2"[..]),
        "an overwrite replaces the bytes"
    );
    assert_eq!(
        ok(b.head(&key).await, "head"),
        Some(ObjectMeta {
            size: 2,
            content_type: text.clone()
        }),
        "and the content type"
    );

    let empty = test_key("empty.txt");
    assert_eq!(
        ok(b.upload(&empty, Bytes::new(), &text).await, "upload empty"),
        0
    );
    assert!(ok(b.exists(&empty).await, "an empty file exists"));
    assert_eq!(ok(b.download(&empty).await, "download"), Some(Bytes::new()));

    assert!(ok(b.delete(&key).await, "delete"));
    assert!(!ok(b.exists(&key).await, "exists"));
    assert_eq!(ok(b.download(&key).await, "download"), None);
    assert!(
        !ok(b.delete(&key).await, "delete again"),
        "a second delete finds nothing"
    );
    assert!(ok(b.delete(&empty).await, "delete empty"));
}

#[track_caller]
fn ok_io<T>(r: std::io::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("a download stream failed: {e}"),
    }
}

/// Valid but unusual keys (unicode in both normal forms, `%` and escapes that must not be
/// decoded, spaces, case variants, Windows device names, trailing dots, 255-byte segments
/// that differ only at the end, a key near the length limit) each round-trip exactly under
/// their own name: no two keys alias, and deleting one leaves the others.
pub async fn odd_keys_round_trip_without_aliasing(
    backend: Arc<dyn FilesBackend>,
    _config: SuiteConfig,
) {
    let b = backend.as_ref();
    let root = format!("conformance-{}", uuid::Uuid::now_v7());
    let keys = odd_keys(&root);
    for (key, data, content_type) in &keys {
        let n = ok(
            b.upload(key, data.clone(), content_type).await,
            "upload an odd key",
        );
        assert_eq!(n, data.len() as u64, "upload of {key:?} reports its size");
    }
    for (key, data, content_type) in &keys {
        assert_eq!(
            ok(b.download(key).await, "download an odd key"),
            Some(data.clone()),
            "key {key:?} must give back its own bytes (another key aliased it)"
        );
        assert_eq!(
            ok(b.head(key).await, "head"),
            Some(ObjectMeta {
                size: data.len() as u64,
                content_type: content_type.clone()
            }),
            "head of {key:?}"
        );
    }
    // Delete every other key; the rest must stay.
    for (key, _, _) in keys.iter().step_by(2) {
        assert!(ok(b.delete(key).await, "delete"), "{key:?} was stored");
    }
    for (i, (key, data, _)) in keys.iter().enumerate() {
        let got = ok(b.download(key).await, "download");
        if i % 2 == 0 {
            assert_eq!(got, None, "{key:?} was deleted");
        } else {
            assert_eq!(
                got,
                Some(data.clone()),
                "deleting another key removed {key:?}"
            );
        }
    }
    for (key, _, _) in keys.iter().skip(1).step_by(2) {
        assert!(ok(b.delete(key).await, "delete"), "{key:?} was stored");
    }
    let missing = ok(StorageKey::parse(format!("{root}/never stored")), "key");
    assert_eq!(ok(b.download(&missing).await, "download"), None);
}

/// The odd key segments (see [`odd_keys_round_trip_without_aliasing`]).
fn odd_segments() -> Vec<String> {
    let long_a = "a".repeat(255);
    let long_b = format!("{}b", "a".repeat(254));
    let long_c = format!("{}c", "a".repeat(254));
    let long_unicode = "é".repeat(127);
    let near_limit = [
        &"x".repeat(200)[..],
        &"y".repeat(200),
        &"z".repeat(200),
        &"w".repeat(200),
    ]
    .join("/");
    vec![
        "plain.txt".into(),
        "Plain.txt".into(),
        "PLAIN.TXT".into(),
        "A.txt".into(),
        "a.txt".into(),
        "%41.txt".into(),
        "%2541.txt".into(),
        "100%.txt".into(),
        "%%".into(),
        "%2F".into(),
        "with space.txt".into(),
        "with%20space.txt".into(),
        " leading space".into(),
        "trailing space ".into(),
        "trailing dot.".into(),
        "trailing dot".into(),
        "aux".into(),
        "CON.txt".into(),
        "nul".into(),
        "\u{e9}.txt".into(),
        "e\u{301}.txt".into(),
        "日本語 ✓ 👨‍👩‍👧.txt".into(),
        "~tilde#hash?query&x=1=".into(),
        "ß".into(),
        "SS".into(),
        "ss".into(),
        long_a,
        long_b,
        long_c,
        long_unicode,
        "nested/dir/file.txt".into(),
        "nested/dir/File.txt".into(),
        near_limit,
    ]
}

/// Each odd segment as a key under `root`, with its own bytes and content type.
fn odd_keys(root: &str) -> Vec<(StorageKey, Bytes, ContentType)> {
    let segments = odd_segments();
    let mut keys = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        let raw = format!("{root}/{segment}");
        let key = match StorageKey::parse(raw.as_str()) {
            Ok(k) => k,
            Err(e) => panic!("the suite's odd key {raw:?} must be a valid StorageKey: {e}"),
        };
        let content_type: ContentType = if i % 2 == 0 {
            parse("text/plain; charset=utf-8")
        } else {
            parse("application/vnd.odd+json")
        };
        let data = Bytes::from(format!("{i}:{segment}").repeat(i + 1));
        keys.push((key, data, content_type));
    }
    keys
}

/// A stream that fails part-way fails the upload and stores nothing, and leaves an older
/// file under the same key as it was.
pub async fn failed_stream_uploads_store_nothing(
    backend: Arc<dyn FilesBackend>,
    _config: SuiteConfig,
) {
    let b = backend.as_ref();
    let octets = ContentType::octet_stream();
    let fresh = test_key("fresh.bin");
    let r = b
        .upload_stream(&fresh, failing_stream(100_000), &octets)
        .await;
    assert!(
        r.is_err(),
        "a failing stream must fail the upload, got {r:?}"
    );
    assert!(
        !ok(b.exists(&fresh).await, "exists"),
        "a failed upload must leave nothing"
    );

    let existing = test_key("existing.txt");
    let text: ContentType = parse("text/plain");
    ok(
        b.upload(&existing, Bytes::from_static(b"keep me"), &text)
            .await,
        "upload",
    );
    let r = b
        .upload_stream(&existing, failing_stream(10), &octets)
        .await;
    assert!(
        r.is_err(),
        "a failing stream must fail the upload, got {r:?}"
    );
    assert_eq!(
        ok(b.download(&existing).await, "download").as_deref(),
        Some(&b"keep me"[..]),
        "a failed overwrite must keep the old bytes"
    );
    assert_eq!(
        ok(b.head(&existing).await, "head").map(|m| m.content_type),
        Some(text),
        "and the old content type"
    );
    assert!(ok(b.delete(&existing).await, "delete"));
}

/// A large file streamed in and out comes back unchanged (same length and SHA-256): 64 MiB
/// for a backend with bounded memory, 8 MiB otherwise, unless configured.
pub async fn large_file_streams(backend: Arc<dyn FilesBackend>, config: SuiteConfig) {
    let b = backend.as_ref();
    let caps = b.capabilities();
    let mut bytes = config.large_file_bytes.unwrap_or(if caps.bounded_memory {
        64 * 1024 * 1024
    } else {
        8 * 1024 * 1024
    });
    if let Some(max) = caps.max_file_bytes {
        bytes = bytes.min(max);
    }
    let key = test_key("large.bin");
    let (stream, expected) = generated_stream(bytes, 42);
    let stored = ok(
        b.upload_stream(&key, stream, &ContentType::octet_stream())
            .await,
        "upload_stream",
    );
    assert_eq!(stored, bytes, "upload_stream reports the size stored");
    assert_eq!(ok(b.head(&key).await, "head").map(|m| m.size), Some(bytes));
    let out = match ok(b.download_stream(&key).await, "download_stream") {
        Some(s) => s,
        None => panic!("a stored large file must download"),
    };
    let (len, digest) = stream_sha256(out).await;
    assert_eq!(len, bytes, "the streamed file's length");
    assert_eq!(digest, expected, "the streamed file changed on the way");
    assert!(ok(b.delete(&key).await, "delete"));
}

fn version_stream(version: u8) -> (ByteStream, usize) {
    let chunks = 2 + usize::from(version % 4);
    let chunk = Bytes::from(vec![version; 16 * 1024]);
    (
        stream::iter((0..chunks).map(move |_| Ok(chunk.clone()))).boxed(),
        chunks * 16 * 1024,
    )
}

/// Writers overwrite one key while readers download it (spawned tasks): every read sees
/// one whole version, never a mix of two or a partial file.
pub async fn overwrites_are_never_mixed(backend: Arc<dyn FilesBackend>, _config: SuiteConfig) {
    let key = test_key("contended.bin");
    let octets = ContentType::octet_stream();
    let (first, _) = version_stream(0);
    ok(backend.upload_stream(&key, first, &octets).await, "upload");
    // Every task starts at once: writers spawned first must not be done before the
    // readers run.
    let start = Arc::new(tokio::sync::Barrier::new(8));
    let writers = (1..=4u8)
        .map(|w| {
            let backend = Arc::clone(&backend);
            let key = key.clone();
            let octets = octets.clone();
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                for round in 0..8u8 {
                    let (data, len) = version_stream(w * 10 + round);
                    let n = ok(
                        backend.upload_stream(&key, data, &octets).await,
                        "overwrite",
                    );
                    assert_eq!(n, len as u64);
                }
            })
        })
        .collect();
    // Readers read until every writer is done (at least 24 times each), so that they
    // overlap the overwrites however the tasks happen to be scheduled.
    let writing = Arc::new(AtomicBool::new(true));
    let readers = (0..4)
        .map(|_| {
            let backend = Arc::clone(&backend);
            let key = key.clone();
            let writing = Arc::clone(&writing);
            let start = Arc::clone(&start);
            tokio::spawn(async move {
                start.wait().await;
                let mut reads = 0;
                while reads < 24 || writing.load(Ordering::SeqCst) {
                    let Some(data) = ok(backend.download(&key).await, "download") else {
                        panic!("a key being overwritten must never read as missing");
                    };
                    let version = data.first().copied().unwrap_or(0);
                    let (_, len) = version_stream(version);
                    assert!(
                        data.len() == len && data.iter().all(|&x| x == version),
                        "a read saw a mix of versions or a partial file ({} bytes, expected {len} of {version})",
                        data.len()
                    );
                    reads += 1;
                    tokio::task::yield_now().await;
                }
                reads
            })
        })
        .collect();
    join(writers).await;
    writing.store(false, Ordering::SeqCst);
    let reads: usize = join(readers).await.into_iter().sum();
    assert!(
        reads >= 96,
        "every reader read at least 24 times, {reads} in all"
    );
    assert!(ok(backend.delete(&key).await, "delete"));
}

/// With `signed_urls`: a URL for a stored key, and NotFound (never a URL, never
/// NotSupported) for a missing one. Without: NotSupported for both.
pub async fn signed_urls(backend: Arc<dyn FilesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let key = test_key("résumé 2026.pdf");
    ok(
        b.upload(&key, Bytes::from_static(b"%PDF"), &parse("application/pdf"))
            .await,
        "upload",
    );
    let missing = test_key("missing.pdf");
    let expiry = Duration::from_secs(300);
    if b.capabilities().signed_urls {
        let url = ok(
            b.signed_url(&key, expiry, Some("résumé 2026.pdf")).await,
            "signed_url of a stored key",
        );
        assert!(url.contains("://"), "not a URL: {url}");
        let plain = ok(
            b.signed_url(&key, expiry, None).await,
            "signed_url without a name",
        );
        assert!(plain.contains("://"), "not a URL: {plain}");
        assert_kind(
            b.signed_url(&missing, expiry, None).await,
            ErrorKind::NotFound,
            "signed_url of a missing key",
        );
    } else {
        assert_kind(
            b.signed_url(&key, expiry, None).await,
            ErrorKind::NotSupported,
            "signed_url of a stored key without the signed_urls capability",
        );
        assert_kind(
            b.signed_url(&missing, expiry, None).await,
            ErrorKind::NotSupported,
            "signed_url of a missing key without the signed_urls capability",
        );
    }
    assert!(ok(b.delete(&key).await, "delete"));
}
