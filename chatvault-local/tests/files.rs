//! `LocalFiles` beyond the conformance suite: layout, atomic replacement, failed and
//! abandoned uploads, streaming chunk sizes, `file://` URLs, key collisions.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::fs;
use std::time::Duration;

use bytes::Bytes;
use chatvault_core::backend::{FilesBackendExt, collect_stream};
use chatvault_core::{ByteStream, ContentType, Error, ErrorKind, FilesBackend, StorageKey};
use chatvault_local::{DOWNLOAD_CHUNK, LocalFiles};
use futures_util::StreamExt;
use futures_util::stream;

fn chunks(parts: Vec<Vec<u8>>) -> ByteStream {
    stream::iter(parts.into_iter().map(|p| Ok(Bytes::from(p)))).boxed()
}

fn key(k: &str) -> StorageKey {
    StorageKey::parse(k).unwrap()
}

fn ct(t: &str) -> ContentType {
    ContentType::parse(t).unwrap()
}

fn count_entries(dir: &std::path::Path) -> usize {
    fs::read_dir(dir).unwrap().count()
}

#[tokio::test]
async fn files_live_under_data_and_content_types_under_meta() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    let k = key("alice%40example.com/c1/f1/report%20final.pdf");
    files
        .upload(&k, Bytes::from_static(b"%PDF-1.7"), &ct("application/pdf"))
        .await
        .unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    assert_eq!(files.root(), root);
    assert_eq!(files.path_of(&k), root.join("data").join(k.as_str()));
    assert_eq!(
        fs::read(root.join("data").join(k.as_str())).unwrap(),
        b"%PDF-1.7"
    );
    assert!(root.join("meta").join(k.as_str()).is_file());
    assert_eq!(
        files.content_type(&k).await.unwrap(),
        Some(ct("application/pdf"))
    );
    assert!(files.exists(&k).await.unwrap());
    assert_eq!(
        files.download(&k).await.unwrap().as_deref(),
        Some(&b"%PDF-1.7"[..])
    );
    // Replacing keeps one file, with the new bytes and type.
    files
        .upload(
            &k,
            Bytes::from_static(b"v2"),
            &ct("text/plain; charset=utf-8"),
        )
        .await
        .unwrap();
    assert_eq!(
        files.download(&k).await.unwrap().as_deref(),
        Some(&b"v2"[..])
    );
    assert_eq!(
        files.content_type(&k).await.unwrap(),
        Some(ct("text/plain; charset=utf-8"))
    );
    // A prefix of a key is not a key.
    assert!(!files.exists(&key("alice%40example.com/c1")).await.unwrap());
    assert_eq!(
        files.download(&key("alice%40example.com")).await.unwrap(),
        None
    );
    assert!(!files.delete(&key("alice%40example.com/c1")).await.unwrap());

    assert!(files.delete(&k).await.unwrap());
    assert!(!files.delete(&k).await.unwrap());
    assert!(!files.exists(&k).await.unwrap());
    assert_eq!(files.download(&k).await.unwrap(), None);
    assert_eq!(files.content_type(&k).await.unwrap(), None);
    // The emptied directories are gone too.
    assert_eq!(count_entries(&root.join("data")), 0);
    assert_eq!(count_entries(&root.join("meta")), 0);
    assert_eq!(count_entries(&root.join("tmp")), 0);
}

#[tokio::test]
async fn a_failed_stream_stores_nothing_and_keeps_the_old_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    // 8 MiB in 64 KiB chunks, then a chunk larger than a buffer: whole buffers and the
    // large chunk are queued to the writer before the stream fails.
    let failing = || -> ByteStream {
        let mut parts: Vec<std::io::Result<Bytes>> = (0..128)
            .map(|_| Ok(Bytes::from(vec![1u8; 64 * 1024])))
            .collect();
        parts.push(Ok(Bytes::from(vec![2u8; 5 << 20])));
        parts.push(Err(std::io::Error::other("client went away")));
        stream::iter(parts).boxed()
    };
    let err = files
        .upload_stream(&key("k/new"), failing(), &ct("text/plain"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UploadStream { .. }), "{err}");
    assert!(!files.exists(&key("k/new")).await.unwrap());
    assert!(!dir.path().join("data/k/new").exists());

    files
        .upload(&key("k/old"), Bytes::from_static(b"old"), &ct("text/plain"))
        .await
        .unwrap();
    files
        .upload_stream(&key("k/old"), failing(), &ct("application/pdf"))
        .await
        .unwrap_err();
    assert_eq!(
        files.download(&key("k/old")).await.unwrap().as_deref(),
        Some(&b"old"[..])
    );
    assert_eq!(
        files.content_type(&key("k/old")).await.unwrap(),
        Some(ct("text/plain"))
    );
    assert_eq!(count_entries(&dir.path().join("tmp")), 0, "temp files left");
}

#[tokio::test]
async fn an_abandoned_upload_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    // One chunk, then a stream that never ends: the caller gives up (drops the future).
    let stalled: ByteStream = stream::iter(vec![Ok(Bytes::from(vec![9u8; 300_000]))])
        .chain(stream::pending())
        .boxed();
    let (k, t) = (key("u/c/f/big.bin"), ct("application/octet-stream"));
    let upload = files.upload_stream(&k, stalled, &t);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), upload)
            .await
            .is_err()
    );
    assert!(!files.exists(&key("u/c/f/big.bin")).await.unwrap());
    assert_eq!(count_entries(&dir.path().join("tmp")), 0, "temp file left");
    assert_eq!(count_entries(&dir.path().join("data")), 0);
}

#[tokio::test]
async fn streams_go_both_ways_in_bounded_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    let size = 3 * 1024 * 1024 + 123;
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    // Irregular incoming chunks.
    let parts: Vec<Vec<u8>> = data.chunks(77_777).map(<[u8]>::to_vec).collect();
    let stored = files
        .upload_stream(
            &key("s/t/r/eam"),
            chunks(parts),
            &ct("application/octet-stream"),
        )
        .await
        .unwrap();
    assert_eq!(stored, size as u64);
    let mut stream = files
        .download_stream(&key("s/t/r/eam"))
        .await
        .unwrap()
        .unwrap();
    let mut back = Vec::new();
    let mut full_chunks = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert!(!chunk.is_empty() && chunk.len() <= DOWNLOAD_CHUNK);
        full_chunks += usize::from(chunk.len() == DOWNLOAD_CHUNK);
        back.extend_from_slice(&chunk);
    }
    assert_eq!(back, data);
    assert!(full_chunks >= size / DOWNLOAD_CHUNK - 1, "{full_chunks}");
    assert!(
        files
            .download_stream(&key("s/t/r/none"))
            .await
            .unwrap()
            .is_none()
    );
    // An empty upload is a stored, empty file.
    let n = files
        .upload_stream(&key("empty"), chunks(Vec::new()), &ct("text/plain"))
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(
        files.download(&key("empty")).await.unwrap().as_deref(),
        Some(&b""[..])
    );
    let s = files.download_stream(&key("empty")).await.unwrap().unwrap();
    assert!(collect_stream(s).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_download_stream_keeps_reading_the_file_it_opened() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    let old = vec![b'o'; 500_000];
    files
        .upload(&key("k"), Bytes::from(old.clone()), &ct("text/plain"))
        .await
        .unwrap();
    let stream = files.download_stream(&key("k")).await.unwrap().unwrap();
    files
        .upload(&key("k"), Bytes::from(vec![b'n'; 10]), &ct("text/plain"))
        .await
        .unwrap();
    assert_eq!(collect_stream(stream).await.unwrap(), old);
    let stream = files.download_stream(&key("k")).await.unwrap().unwrap();
    assert!(files.delete(&key("k")).await.unwrap());
    assert_eq!(collect_stream(stream).await.unwrap(), vec![b'n'; 10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_the_old_bytes_or_the_new_never_a_mix() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    let size = 1 << 20;
    files
        .upload(&key("k"), Bytes::from(vec![b'a'; size]), &ct("text/plain"))
        .await
        .unwrap();
    let writer = {
        let files = files.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                let byte = if i % 2 == 0 { b'b' } else { b'a' };
                files
                    .upload(&key("k"), Bytes::from(vec![byte; size]), &ct("text/plain"))
                    .await
                    .unwrap();
            }
        })
    };
    for _ in 0..60 {
        let data = files.download(&key("k")).await.unwrap().unwrap();
        assert_eq!(data.len(), size);
        assert!(data.iter().all(|&b| b == data[0]), "a torn read");
    }
    writer.await.unwrap();
}

#[tokio::test]
async fn file_urls_name_the_absolute_path_percent_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path().join("my files")).unwrap();
    let k = key("_/c1/f1/r%C3%A9sum%C3%A9%20%231.pdf");
    files
        .upload(&k, Bytes::from_static(b"bytes"), &ct("application/pdf"))
        .await
        .unwrap();
    let url = files
        .signed_url(&k, Duration::from_secs(60), Some("résumé #1.pdf"))
        .await
        .unwrap();
    assert!(url.starts_with("file:///"), "{url}");
    assert!(
        url.contains("/my%20files/data/_/c1/f1/r%25C3%25A9sum"),
        "{url}"
    );
    assert!(!url.contains(' ') && !url.contains('#'), "{url}");
    let decoded = percent_encoding::percent_decode_str(&url["file://".len()..])
        .decode_utf8()
        .unwrap();
    assert_eq!(std::path::Path::new(decoded.as_ref()), files.path_of(&k));
    assert_eq!(fs::read(decoded.as_ref()).unwrap(), b"bytes");
    // A missing key is NotFound, never a URL.
    let missing = files
        .signed_url(&key("_/c1/f1/missing"), Duration::from_secs(60), None)
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing:?}");
}

#[tokio::test]
async fn a_key_cannot_be_both_a_file_and_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    files
        .upload(&key("a"), Bytes::from_static(b"1"), &ct("text/plain"))
        .await
        .unwrap();
    let err = files
        .upload(&key("a/b"), Bytes::from_static(b"2"), &ct("text/plain"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    let err = files
        .upload_stream(&key("a/b/c"), chunks(vec![vec![1]]), &ct("text/plain"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert!(!files.exists(&key("a/b")).await.unwrap());
    assert_eq!(files.download(&key("a/b")).await.unwrap(), None);
    files
        .upload(&key("x/y"), Bytes::from_static(b"1"), &ct("text/plain"))
        .await
        .unwrap();
    let err = files
        .upload(&key("x"), Bytes::from_static(b"2"), &ct("text/plain"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert_eq!(
        files.download(&key("a")).await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        files.download(&key("x/y")).await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(count_entries(&dir.path().join("tmp")), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_of_every_size_are_stored_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    // A first chunk larger than a whole 8 MiB buffer (written as it is without direct
    // I/O, copied into buffers with it), tiny chunks, empty ones, medium ones, one larger
    // than a buffer arriving into a partly filled one, and enough of them to fill several
    // buffers.
    let mut sizes = vec![9 * 1024 * 1024 + 3];
    for i in 0..3000 {
        sizes.push(i % 97);
    }
    sizes.extend([0, 16 * 1024 - 1, 16 * 1024, 20_000, 17 * 1024 * 1024 + 7]);
    for i in 0..200 {
        sizes.push(if i % 3 == 0 { 1 } else { 64 * 1024 + i });
    }
    let mut data = Vec::new();
    let mut parts = Vec::new();
    for (n, size) in sizes.into_iter().enumerate() {
        let part: Vec<u8> = (0..size).map(|i| ((i * 31 + n * 7) % 251) as u8).collect();
        data.extend_from_slice(&part);
        parts.push(part);
    }
    let stored = files
        .upload_stream(
            &key("u/c/f/mixed"),
            chunks(parts),
            &ct("application/octet-stream"),
        )
        .await
        .unwrap();
    assert_eq!(stored, data.len() as u64);
    let back = files.download(&key("u/c/f/mixed")).await.unwrap().unwrap();
    assert!(back == data, "the bytes came back different");
    assert_eq!(count_entries(&dir.path().join("tmp")), 0);
}

#[tokio::test]
async fn head_gives_size_and_content_type_never_hidden_by_a_damaged_side_file() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    let caps = files.capabilities();
    assert!(caps.signed_urls && caps.bounded_memory);
    let k = key("u/c/f/report.pdf");
    assert!(files.head(&k).await.unwrap().is_none());
    files
        .upload(
            &k,
            Bytes::from_static(b"%PDF-1.7 ..."),
            &ct("application/pdf"),
        )
        .await
        .unwrap();
    let head = files.head(&k).await.unwrap().unwrap();
    assert_eq!((head.size, head.content_type), (12, ct("application/pdf")));

    // A damaged content-type file: Corrupt from content_type(), the bytes still there
    // for head (as application/octet-stream) and download.
    let meta = files.root().join("meta").join(k.as_str());
    fs::write(&meta, b"{not json").unwrap();
    let err = files.content_type(&k).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err:?}");
    let head = files.head(&k).await.unwrap().unwrap();
    assert_eq!(
        (head.size, head.content_type),
        (12, ContentType::octet_stream())
    );
    assert!(files.exists(&k).await.unwrap());

    // A lost one: unknown content type.
    fs::remove_file(&meta).unwrap();
    assert_eq!(files.content_type(&k).await.unwrap(), None);
    let head = files.head(&k).await.unwrap().unwrap();
    assert_eq!(head.content_type, ContentType::octet_stream());

    // The next upload stores it again.
    files
        .upload(&k, Bytes::from_static(b"v2"), &ct("text/plain"))
        .await
        .unwrap();
    let head = files.head(&k).await.unwrap().unwrap();
    assert_eq!((head.size, head.content_type), (2, ct("text/plain")));
}

/// Copies a directory tree file by file (new inodes, new modification times), as a
/// backup restored with a plain copy would be.
#[cfg(unix)]
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::write(&target, fs::read(entry.path()).unwrap()).unwrap();
        }
    }
}

#[cfg(unix)]
fn inode(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).unwrap().ino()
}

#[cfg(unix)]
#[tokio::test]
async fn a_copied_store_keeps_its_content_types() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path().join("original")).unwrap();
    let stored = [
        ("u/c/f1/a.pdf", &b"%PDF-1.7"[..], "application/pdf"),
        ("u/c/f2/b.txt", &b"hello"[..], "text/plain; charset=utf-8"),
        ("u/c/f3/empty", &b""[..], "application/json"),
    ];
    for (k, bytes, t) in stored {
        files
            .upload(&key(k), Bytes::from_static(bytes), &ct(t))
            .await
            .unwrap();
    }
    copy_tree(files.root(), &dir.path().join("copy"));
    let copy = LocalFiles::new(dir.path().join("copy")).unwrap();
    for (k, bytes, t) in stored {
        let k = key(k);
        assert_ne!(
            inode(&files.path_of(&k)),
            inode(&copy.path_of(&k)),
            "not a copy"
        );
        let head = copy.head(&k).await.unwrap().unwrap();
        assert_eq!((head.size, head.content_type), (bytes.len() as u64, ct(t)));
        assert_eq!(copy.content_type(&k).await.unwrap(), Some(ct(t)));
        assert_eq!(copy.download(&k).await.unwrap().as_deref(), Some(bytes));
    }
}

#[tokio::test]
async fn a_content_type_left_by_a_crash_is_not_taken_for_the_new_bytes() {
    // A crash between an upload's two renames: the new bytes are in place, the old
    // content-type file still is. Same size on purpose: the identity is more than that.
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    let k = key("u/c/f/doc");
    files
        .upload(&k, Bytes::from_static(b"first"), &ct("text/plain"))
        .await
        .unwrap();
    let meta = files.root().join("meta").join(k.as_str());
    let aside = dir.path().join("old-meta");
    fs::rename(&meta, &aside).unwrap();
    files
        .upload(&k, Bytes::from_static(b"other"), &ct("application/pdf"))
        .await
        .unwrap();
    fs::rename(&aside, &meta).unwrap();
    assert_eq!(files.content_type(&k).await.unwrap(), None);
    let head = files.head(&k).await.unwrap().unwrap();
    assert_eq!(
        (head.size, head.content_type),
        (5, ContentType::octet_stream())
    );
}

// Crash states and races (moved here from damage_and_races.rs, on the 0.2 API).

/// A crash between a delete's data removal and its meta removal leaves meta/a without
/// data/a: it must not block key a/b.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphaned_content_type_does_not_block_a_longer_key() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    files
        .upload(&key("a"), Bytes::from_static(b"x"), &ct("text/plain"))
        .await
        .unwrap();
    fs::remove_file(dir.path().join("data/a")).unwrap(); // the crash state
    assert!(!files.exists(&key("a")).await.unwrap());
    files
        .upload(&key("a/b"), Bytes::from_static(b"y"), &ct("text/plain"))
        .await
        .unwrap();
    assert_eq!(
        files.content_type(&key("a/b")).await.unwrap(),
        Some(ct("text/plain"))
    );
}

/// The converse: an orphaned meta/a/b (no data/a/b) must not block key a.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphaned_content_type_directory_does_not_block_a_shorter_key() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    files
        .upload(&key("a/b"), Bytes::from_static(b"x"), &ct("text/plain"))
        .await
        .unwrap();
    fs::remove_file(dir.path().join("data/a/b")).unwrap(); // the crash state
    fs::remove_dir(dir.path().join("data/a")).unwrap();
    assert!(!files.exists(&key("a/b")).await.unwrap());
    files
        .upload(&key("a"), Bytes::from_static(b"y"), &ct("text/plain"))
        .await
        .unwrap();
    assert_eq!(
        files.content_type(&key("a")).await.unwrap(),
        Some(ct("text/plain"))
    );
}

/// Racing uploads of `k` and `k/b`, then both deleted: neither key is wedged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_uploads_of_a_key_and_a_longer_key_wedge_neither() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    for i in 0..300 {
        let (a, b) = (key(&format!("k{i}")), key(&format!("k{i}/b")));
        let (f1, f2) = (files.clone(), files.clone());
        let (a2, b2) = (a.clone(), b.clone());
        let t1 = tokio::spawn(async move {
            f1.upload(&a2, Bytes::from_static(b"1"), &ct("text/plain"))
                .await
        });
        let t2 = tokio::spawn(async move {
            f2.upload(&b2, Bytes::from_static(b"2"), &ct("text/plain"))
                .await
        });
        let (r1, r2) = (t1.await.unwrap(), t2.await.unwrap());
        // `k` and `k/b` cannot both be stored: exactly one wins, the other is refused.
        assert!(r1.is_ok() != r2.is_ok(), "{i}: {r1:?} and {r2:?}");
        for e in [&r1, &r2].into_iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{i}: {e:?}");
        }
        files.delete(&a).await.unwrap();
        files.delete(&b).await.unwrap();
        // Both keys are free again: each must be storable.
        files
            .upload(&b, Bytes::from_static(b"x"), &ct("text/plain"))
            .await
            .unwrap_or_else(|e| panic!("iteration {i}: {b} wedged: {e:?}"));
        files.delete(&b).await.unwrap();
        files
            .upload(&a, Bytes::from_static(b"x"), &ct("text/plain"))
            .await
            .unwrap_or_else(|e| panic!("iteration {i}: {a} wedged: {e:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_content_type_counts_only_for_the_bytes_it_was_uploaded_with() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    let k = key("k");
    files
        .upload(&k, Bytes::from_static(b"old"), &ct("text/plain"))
        .await
        .unwrap();
    assert_eq!(
        files.content_type(&k).await.unwrap(),
        Some(ct("text/plain"))
    );
    // A crash after a replacement's bytes were renamed into place, before its content
    // type: the old content-type file names the old bytes.
    let tmp = dir.path().join("replacement");
    fs::write(&tmp, b"new bytes").unwrap();
    fs::rename(&tmp, dir.path().join("data/k")).unwrap();
    assert!(files.exists(&k).await.unwrap());
    assert_eq!(
        files.download(&k).await.unwrap().as_deref(),
        Some(&b"new bytes"[..])
    );
    assert_eq!(files.content_type(&k).await.unwrap(), None);
    // The next upload stores both again.
    files
        .upload(&k, Bytes::from_static(b"png"), &ct("image/png"))
        .await
        .unwrap();
    assert_eq!(files.content_type(&k).await.unwrap(), Some(ct("image/png")));
    // Another key's content-type file does not describe this key's bytes, even when
    // they have the same size.
    files
        .upload(&key("a/b"), Bytes::from_static(b"png"), &ct("text/csv"))
        .await
        .unwrap();
    fs::copy(dir.path().join("meta/k"), dir.path().join("meta/a/b")).unwrap();
    assert_eq!(files.content_type(&key("a/b")).await.unwrap(), None);
    // A content-type file of the first format (no identity) is taken as it is.
    fs::write(
        dir.path().join("meta/k"),
        br#"{"v":1,"content_type":"text/html"}"#,
    )
    .unwrap();
    assert_eq!(files.content_type(&k).await.unwrap(), Some(ct("text/html")));
    // A content-type file without bytes is not a key, and goes away with the next upload.
    fs::remove_file(dir.path().join("data/k")).unwrap();
    assert!(!files.exists(&k).await.unwrap());
    assert_eq!(files.content_type(&k).await.unwrap(), None);
    assert!(!files.delete(&k).await.unwrap());
    files
        .upload(
            &key("k/deeper"),
            Bytes::from_static(b"d"),
            &ct("text/plain"),
        )
        .await
        .unwrap();
    assert!(dir.path().join("meta/k").is_dir());
    assert_eq!(
        files.content_type(&key("k/deeper")).await.unwrap(),
        Some(ct("text/plain"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_directories_left_in_the_data_tree_do_not_block_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    // A crash between a delete's removal of k/x/y and its pruning of the emptied
    // directories.
    fs::create_dir_all(dir.path().join("data/k/x")).unwrap();
    assert!(!files.exists(&key("k")).await.unwrap());
    files
        .upload(&key("k"), Bytes::from_static(b"k"), &ct("text/plain"))
        .await
        .unwrap();
    assert_eq!(
        files.download(&key("k")).await.unwrap().as_deref(),
        Some(&b"k"[..])
    );
    assert_eq!(
        files.content_type(&key("k")).await.unwrap(),
        Some(ct("text/plain"))
    );
    // A directory that holds a key still blocks it.
    files
        .upload(&key("j/x/y"), Bytes::from_static(b"y"), &ct("text/plain"))
        .await
        .unwrap();
    let err = files
        .upload(&key("j"), Bytes::from_static(b"j"), &ct("text/plain"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_racing_uploads_of_colliding_keys_the_loser_gets_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    for i in 0..200 {
        let (a, b) = (key(&format!("k{i}")), key(&format!("k{i}/b")));
        let (f1, f2) = (files.clone(), files.clone());
        let (a2, b2) = (a.clone(), b.clone());
        let t1 = tokio::spawn(async move {
            f1.upload(&a2, Bytes::from_static(b"1"), &ct("text/one"))
                .await
        });
        let t2 = tokio::spawn(async move {
            f2.upload(&b2, Bytes::from_static(b"2"), &ct("text/two"))
                .await
        });
        let (r1, r2) = (t1.await.unwrap(), t2.await.unwrap());
        for r in [&r1, &r2] {
            if let Err(e) = r {
                assert_eq!(e.kind(), ErrorKind::InvalidInput, "{i}: {e:?}");
            }
        }
        assert!(
            r1.is_ok() != r2.is_ok(),
            "{i}: exactly one wins: {r1:?} and {r2:?}"
        );
        for (k, ok, bytes, t) in [
            (&a, r1.is_ok(), b"1", "text/one"),
            (&b, r2.is_ok(), b"2", "text/two"),
        ] {
            assert_eq!(files.exists(k).await.unwrap(), ok, "{i}: {k}");
            if ok {
                assert_eq!(
                    files.download(k).await.unwrap().as_deref(),
                    Some(&bytes[..])
                );
                assert_eq!(files.content_type(k).await.unwrap(), Some(ct(t)));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_uploads_of_one_key_never_pair_bytes_with_another_content_type() {
    let dir = tempfile::tempdir().unwrap();
    let files = LocalFiles::new(dir.path()).unwrap();
    for i in 0..200 {
        let k = key(&format!("k{i}"));
        let mut tasks = Vec::new();
        for (bytes, t) in [(&b"1"[..], "text/one"), (&b"22"[..], "text/two")] {
            let (f, k) = (files.clone(), k.clone());
            tasks.push(tokio::spawn(async move {
                f.upload(&k, Bytes::from_static(bytes), &ct(t)).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let bytes = files.download(&k).await.unwrap().unwrap();
        let head = files.head(&k).await.unwrap().unwrap();
        assert_eq!(head.size, bytes.len() as u64);
        match files.content_type(&k).await.unwrap() {
            None => assert_eq!(head.content_type, ContentType::octet_stream()),
            Some(t) if t == ct("text/one") => assert_eq!(&bytes[..], b"1", "{i}"),
            Some(t) if t == ct("text/two") => assert_eq!(&bytes[..], b"22", "{i}"),
            Some(other) => panic!("{i}: {other}"),
        }
    }
}

/// Uploads and deletes of keys sharing their first directories, from several threads:
/// each delete prunes the directories it emptied while other uploads create them again.
/// Every operation succeeds (the walk tells a directory removed or created meanwhile from
/// one it cannot open), and nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_and_deletes_sharing_directories_never_fail_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let files = std::sync::Arc::new(LocalFiles::new(dir.path()).unwrap());
    let tasks = (0..6)
        .map(|t| {
            let files = std::sync::Arc::clone(&files);
            tokio::spawn(async move {
                for i in 0..300 {
                    let k = key(&format!("user/conversation/t{t}-{i}.txt"));
                    files
                        .upload(&k, Bytes::from(format!("{t} {i}")), &ct("text/plain"))
                        .await
                        .unwrap_or_else(|e| panic!("upload {k}: {e} ({e:?})"));
                    assert!(
                        files
                            .delete(&k)
                            .await
                            .unwrap_or_else(|e| panic!("delete {k}: {e} ({e:?})"))
                    );
                }
            })
        })
        .collect::<Vec<_>>();
    for task in tasks {
        task.await.unwrap();
    }
    for tree in ["data", "meta"] {
        assert_eq!(
            count_entries(&dir.path().join(tree)),
            0,
            "{tree}/ is empty again"
        );
    }
}
