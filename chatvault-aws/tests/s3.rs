//! `S3Files` on LocalStack: presigned URLs fetched over plain HTTP (download name,
//! tampering, expiry), multipart streaming (and its abort on failure), settings, and
//! failure modes.

mod common;

use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::BoxError;
use bytes::Bytes;
use chatvault_aws::{S3Files, content_disposition};
use chatvault_core::backend::FilesBackendExt;
use chatvault_core::{ByteStream, ConversationId, Error, FileId, FilesBackend, StorageKey, keys};
use futures_util::StreamExt;

const MIB: u64 = 1024 * 1024;

fn key(name: &str) -> StorageKey {
    keys::storage_key(
        Some(&common::uid("user-s3")),
        &ConversationId::new(),
        &FileId::new(),
        name,
    )
    .expect("valid key")
}

async fn uploads_in_progress(files: &S3Files) -> usize {
    files
        .client()
        .list_multipart_uploads()
        .bucket(files.bucket())
        .send()
        .await
        .expect("list uploads")
        .uploads()
        .len()
}

async fn etag(files: &S3Files, key: &StorageKey) -> String {
    files
        .client()
        .head_object()
        .bucket(files.bucket())
        .key(files.object_key(key))
        .send()
        .await
        .expect("head")
        .e_tag()
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned()
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn presigned_url_downloads_with_the_original_file_name() {
    let files = common::s3().await;
    for name in ["résumé 2026.pdf", "plain.txt", "日本語 \"quoted\" 100%.pdf"] {
        let key = key(name);
        let data = Bytes::from(format!("contents of {name}"));
        files
            .upload(&key, data.clone(), &common::ct("application/pdf"))
            .await
            .expect("upload");
        let url = files
            .signed_url(&key, Duration::from_secs(300), Some(name))
            .await
            .expect("signed_url");
        let response = common::http_get(&url).await;
        assert_eq!(response.status, 200, "{name}: {response:?}");
        assert_eq!(response.body, data.as_ref());
        assert_eq!(
            response.header("content-disposition"),
            Some(content_disposition(name).as_str()),
            "{name}"
        );
        assert_eq!(response.header("content-type"), Some("application/pdf"));
    }
    // Without a download name: no Content-Disposition.
    let key = key("x.bin");
    files
        .upload(
            &key,
            Bytes::from_static(b"x"),
            &common::ct("application/octet-stream"),
        )
        .await
        .expect("upload");
    let url = files
        .signed_url(&key, Duration::from_secs(60), None)
        .await
        .expect("signed_url");
    let response = common::http_get(&url).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-disposition"), None);
    common::drop_bucket(&files).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn tampered_and_expired_presigned_urls_are_refused() {
    let files = common::s3().await;
    let conversation = ConversationId::new();
    let file = chatvault_core::FileId::new();
    let secret = keys::storage_key(
        Some(&common::uid("user-s3")),
        &conversation,
        &file,
        "secret.txt",
    )
    .expect("valid key");
    let other = keys::storage_key(
        Some(&common::uid("user-s3")),
        &conversation,
        &file,
        "other.txt",
    )
    .expect("valid key");
    for k in [&secret, &other] {
        files
            .upload(k, Bytes::from_static(b"secret"), &common::ct("text/plain"))
            .await
            .expect("upload");
    }
    let url = files
        .signed_url(&secret, Duration::from_secs(300), Some("download-name.txt"))
        .await
        .expect("signed_url");
    assert_eq!(
        common::http_get(&url).await.status,
        200,
        "the genuine URL works"
    );

    // One character of the signature changed.
    let at = url.find("X-Amz-Signature=").expect("signature") + "X-Amz-Signature=".len();
    let mut forged = url.clone().into_bytes();
    forged[at] = if forged[at] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).expect("ASCII");
    assert_eq!(
        common::http_get(&forged).await.status,
        403,
        "forged signature"
    );

    // The same signature on another (existing) key.
    let swapped = url.replacen("/secret.txt?", "/other.txt?", 1);
    assert_ne!(swapped, url, "the key appears in the URL");
    assert_eq!(common::http_get(&swapped).await.status, 403, "another key");

    // A changed download name (a signed query parameter) breaks the signature too.
    let renamed = url.replacen("download-name.txt", "download-nam3.txt", 1);
    assert_ne!(renamed, url);
    assert_eq!(
        common::http_get(&renamed).await.status,
        403,
        "changed filename"
    );

    // Expired: valid for 1 s, used after 3 s.
    let short = files
        .signed_url(&secret, Duration::from_secs(1), None)
        .await
        .expect("signed_url");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(common::http_get(&short).await.status, 403, "expired URL");
    common::drop_bucket(&files).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn signed_url_expiry_limits_and_missing_keys() {
    let files = common::s3().await;
    let k = key("a.txt");
    files
        .upload(&k, Bytes::from_static(b"a"), &common::ct("text/plain"))
        .await
        .expect("upload");
    assert!(matches!(
        files.signed_url(&k, Duration::ZERO, None).await,
        Err(Error::InvalidInput {
            field: "expires_in",
            ..
        })
    ));
    assert!(matches!(
        files
            .signed_url(&k, Duration::from_secs(604_801), None)
            .await,
        Err(Error::InvalidInput {
            field: "expires_in",
            ..
        })
    ));
    assert!(
        files
            .signed_url(&k, Duration::from_secs(604_800), None)
            .await
            .expect("7 days is the limit")
            .contains("X-Amz-Expires=604800")
    );
    // A missing key is NotFound, never a URL (and never "not supported").
    let missing = files
        .signed_url(&key("missing.txt"), Duration::from_secs(60), Some("m.txt"))
        .await;
    assert!(
        matches!(missing, Err(Error::NotFound { kind: "file", .. })),
        "{missing:?}"
    );
    // A hostile key cannot even be made.
    assert!(matches!(
        StorageKey::parse("../x"),
        Err(Error::InvalidInput { .. })
    ));
    common::drop_bucket(&files).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn fifty_mib_stream_goes_multipart_and_comes_back_identical() {
    let files = common::s3().await;
    let k = key("big.bin");
    let (stream, expected) = chatvault_core::conformance::generated_stream(50 * MIB, 7);
    let stored = files
        .upload_stream(&k, stream, &common::ct("application/octet-stream"))
        .await
        .expect("upload_stream");
    assert_eq!(stored, 50 * MIB);
    // A multipart object's ETag ends in "-<parts>": 50 MiB in 8 MiB parts is 7 parts.
    let tag = etag(&files, &k).await;
    assert!(
        tag.ends_with("-7"),
        "ETag {tag:?} is not that of a 7-part upload"
    );
    let download = files
        .download_stream(&k)
        .await
        .expect("download_stream")
        .expect("exists");
    let (len, digest) = chatvault_core::conformance::stream_sha256(download).await;
    assert_eq!(len, 50 * MIB);
    assert_eq!(digest, expected, "same SHA-256");
    assert_eq!(uploads_in_progress(&files).await, 0);

    // At and below the threshold: one PutObject (a plain ETag).
    let small = key("small.bin");
    let (stream, expected) = chatvault_core::conformance::generated_stream(8 * MIB, 8);
    files
        .upload_stream(&small, stream, &common::ct("application/octet-stream"))
        .await
        .expect("upload_stream");
    assert!(!etag(&files, &small).await.contains('-'));
    let (_, digest) = chatvault_core::conformance::stream_sha256(
        files
            .download_stream(&small)
            .await
            .expect("get")
            .expect("exists"),
    )
    .await;
    assert_eq!(digest, expected);
    common::drop_bucket(&files).await;
}

/// A stream of `good` bytes (in 1 MiB chunks) that then fails.
fn failing_after(good: u64) -> ByteStream {
    let chunks = (good / MIB) as usize;
    futures_util::stream::iter(
        (0..chunks)
            .map(|_| Ok(Bytes::from(vec![1u8; MIB as usize])))
            .chain(std::iter::once(Err(std::io::Error::other(
                "the client went away",
            )))),
    )
    .boxed()
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn a_failure_mid_stream_aborts_the_multipart_upload() {
    let files = common::s3().await;
    let k = key("half.bin");
    match files
        .upload_stream(
            &k,
            failing_after(20 * MIB),
            &common::ct("application/octet-stream"),
        )
        .await
    {
        Err(Error::UploadStream { .. }) => {}
        other => panic!("expected UploadStream, got {other:?}"),
    }
    assert_eq!(
        uploads_in_progress(&files).await,
        0,
        "the upload was aborted"
    );
    assert!(!files.exists(&k).await.expect("exists"), "no object left");

    // An older object under the key survives a failed multipart overwrite.
    files
        .upload(&k, Bytes::from_static(b"old"), &common::ct("text/plain"))
        .await
        .expect("upload");
    assert!(
        files
            .upload_stream(&k, failing_after(12 * MIB), &common::ct("text/plain"))
            .await
            .is_err()
    );
    assert_eq!(
        files.download(&k).await.expect("download").as_deref(),
        Some(&b"old"[..])
    );
    assert_eq!(uploads_in_progress(&files).await, 0);
    common::drop_bucket(&files).await;
}

/// Fails every `UploadPart` request for part 2, counting them.
#[derive(Clone, Debug, Default)]
struct FailSecondPart(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl Intercept for FailSecondPart {
    fn name(&self) -> &'static str {
        "FailSecondPart"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let uri = context.request().uri();
        if uri.contains("partNumber=2&") || uri.ends_with("partNumber=2") {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return Err("injected failure of part 2".into());
        }
        Ok(())
    }
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn a_failed_part_aborts_the_multipart_upload() {
    let plain = common::s3().await;
    let failing = FailSecondPart::default();
    let config = aws_sdk_s3::config::Builder::from(&common::sdk_config().await)
        .force_path_style(true)
        .interceptor(failing.clone())
        .build();
    let files = S3Files::from_client(aws_sdk_s3::Client::from_conf(config), plain.bucket());
    let k = key("parts.bin");
    let (stream, _) = chatvault_core::conformance::generated_stream(20 * MIB, 3);
    let err = files
        .upload_stream(&k, stream, &common::ct("application/octet-stream"))
        .await
        .expect_err("part 2 fails");
    assert!(
        failing.0.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "part 2 was failed"
    );
    assert!(
        matches!(err, Error::Backend { backend: "s3", .. }),
        "{err:?}"
    );
    assert_eq!(
        uploads_in_progress(&plain).await,
        0,
        "the upload was aborted"
    );
    assert!(!plain.exists(&k).await.expect("exists"));
    common::drop_bucket(&plain).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn a_dropped_upload_is_aborted_in_the_background() {
    let files = common::s3().await;
    let k = key("abandoned.bin");
    // 12 MiB, then the stream hangs: the upload is multipart and waits forever.
    let hanging =
        futures_util::stream::iter((0..12).map(|_| Ok(Bytes::from(vec![2u8; MIB as usize]))))
            .chain(futures_util::stream::pending())
            .boxed();
    let octets = common::ct("application/octet-stream");
    let upload = files.upload_stream(&k, hanging, &octets);
    assert!(
        tokio::time::timeout(Duration::from_secs(3), upload)
            .await
            .is_err(),
        "the upload waits for the stream"
    );
    // Dropping the future spawned the abort.
    let deadline = Instant::now() + Duration::from_secs(10);
    while uploads_in_progress(&files).await > 0 {
        assert!(
            Instant::now() < deadline,
            "the abandoned upload was not aborted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!files.exists(&k).await.expect("exists"));
    common::drop_bucket(&files).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn builder_settings_prefix_and_sizes() {
    let plain = common::s3().await;
    let sdk = common::sdk_config().await;
    let files = S3Files::builder(plain.bucket())
        .sdk_config(&sdk)
        .prefix("tenant-a/chats/")
        .multipart_threshold(MIB as usize)
        .part_size(5 * MIB as usize)
        .checksums_when_required(true)
        .build()
        .await
        .expect("build");
    assert_eq!(files.prefix(), "tenant-a/chats/");
    let k = key("in prefix.txt");
    files
        .upload(&k, Bytes::from_static(b"p"), &common::ct("text/plain"))
        .await
        .expect("upload");
    assert!(files.exists(&k).await.expect("exists"));
    assert!(
        !plain.exists(&k).await.expect("exists"),
        "stored under the prefix"
    );
    assert!(
        plain
            .exists(&common::skey(&format!("tenant-a/chats/{k}")))
            .await
            .expect("exists")
    );
    // Small threshold and parts: 11 MiB goes in 3 parts of 5, 5 and 1 MiB.
    let big = key("parts.bin");
    let (stream, expected) = chatvault_core::conformance::generated_stream(11 * MIB, 9);
    files
        .upload_stream(&big, stream, &common::ct("application/octet-stream"))
        .await
        .expect("upload_stream");
    let tag = etag(&files, &big).await;
    assert!(tag.ends_with("-3"), "{tag}");
    let (_, digest) = chatvault_core::conformance::stream_sha256(
        files
            .download_stream(&big)
            .await
            .expect("get")
            .expect("exists"),
    )
    .await;
    assert_eq!(digest, expected);

    for bad in ["../x", "/abs", "a//b"] {
        assert!(matches!(
            S3Files::builder("b")
                .sdk_config(&sdk)
                .prefix(bad)
                .build()
                .await,
            Err(Error::InvalidInput {
                field: "prefix",
                ..
            })
        ));
    }
    assert!(matches!(
        S3Files::builder("b")
            .sdk_config(&sdk)
            .part_size(MIB as usize)
            .build()
            .await,
        Err(Error::InvalidInput {
            field: "part_size",
            ..
        })
    ));
    plain.create_bucket_if_missing().await.expect("idempotent");
    common::drop_bucket(&plain).await;
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn a_missing_bucket_is_an_error_not_a_missing_file() {
    common::require_endpoint("AWS_ENDPOINT_URL_S3");
    let files =
        S3Files::from_sdk_config(&common::sdk_config().await, common::unique_name("nobucket"));
    let k = key("x.txt");
    for result in [
        files.download(&k).await.map(|_| ()),
        files
            .upload(&k, Bytes::from_static(b"x"), &common::ct("text/plain"))
            .await
            .map(|_| ()),
        files.download_stream(&k).await.map(|_| ()),
    ] {
        match result {
            Err(Error::Backend { backend: "s3", .. }) => {}
            other => panic!("expected a Backend error, got {other:?}"),
        }
    }
}

async fn unreachable(endpoint: &str) -> S3Files {
    S3Files::builder("chatvault-unreachable")
        .sdk_config(&common::sdk_config().await)
        .endpoint_url(endpoint)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(5))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(2))
        .build()
        .await
        .expect("build")
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn unreachable_endpoint_fails_within_bounded_time() {
    common::require_endpoint("AWS_ENDPOINT_URL_S3");
    let files = unreachable("http://127.0.0.1:1").await;
    let k = key("x.txt");
    let started = Instant::now();
    let err = files.exists(&k).await.expect_err("no server");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            err,
            Error::Backend {
                backend: "s3",
                temporary: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(std::error::Error::source(&err).is_some());
    let started = Instant::now();
    let (stream, _) = chatvault_core::conformance::generated_stream(10 * MIB, 1);
    assert!(
        files
            .upload_stream(&k, stream, &common::ct("application/octet-stream"))
            .await
            .is_err()
    );
    assert!(files.download(&k).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(20));

    // Accepts connections, never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let hold = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let files = unreachable(&format!("http://{address}")).await;
    let started = Instant::now();
    let err = files.download(&k).await.expect_err("no answer");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(err.is_temporary(), "{err:?}");
    hold.abort();
}

/// Records, at each `UploadPart` request, how many bytes the upload had pulled from its
/// stream so far.
#[derive(Clone, Debug, Default)]
struct PartWatcher {
    pulled: std::sync::Arc<std::sync::atomic::AtomicU64>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
}

impl Intercept for PartWatcher {
    fn name(&self) -> &'static str {
        "PartWatcher"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if context.request().uri().contains("partNumber=") {
            let pulled = self.pulled.load(std::sync::atomic::Ordering::SeqCst);
            self.seen.lock().map_err(|_| "poisoned")?.push(pulled);
        }
        Ok(())
    }
}

#[cfg_attr(
    not(chatvault_aws_emulators),
    ignore = "needs the AWS emulators: AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL_S3 (or AWS_ENDPOINT_URL) were not set when the tests were built; run ./scripts/test.sh, or scripts/emulators.sh start && eval \"$(scripts/emulators.sh env)\" first"
)]
#[tokio::test]
async fn multipart_memory_stays_near_one_part() {
    let plain = common::s3().await;
    let watcher = PartWatcher::default();
    let config = aws_sdk_s3::config::Builder::from(&common::sdk_config().await)
        .force_path_style(true)
        .interceptor(watcher.clone())
        .build();
    let files = S3Files::from_client(aws_sdk_s3::Client::from_conf(config), plain.bucket());
    let (stream, expected) = chatvault_core::conformance::generated_stream(40 * MIB, 11);
    let pulled = std::sync::Arc::clone(&watcher.pulled);
    let counted = stream
        .inspect(move |chunk| {
            if let Ok(chunk) = chunk {
                pulled.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::SeqCst);
            }
        })
        .boxed();
    let k = key("watched.bin");
    files
        .upload_stream(&k, counted, &common::ct("application/octet-stream"))
        .await
        .expect("upload_stream");
    let seen = watcher.seen.lock().expect("not poisoned").clone();
    assert_eq!(seen.len(), 5, "40 MiB in 8 MiB parts: {seen:?}");
    let part = files.part_size() as u64;
    let chunk = 64 * 1024;
    for (i, pulled) in seen.iter().enumerate() {
        let n = i as u64 + 1;
        // When part n leaves, the upload has read n parts and at most one chunk more:
        // never the whole stream.
        assert!(
            *pulled <= n * part + chunk,
            "part {n}: {pulled} bytes read ahead"
        );
    }
    let (_, digest) = chatvault_core::conformance::stream_sha256(
        files
            .download_stream(&k)
            .await
            .expect("get")
            .expect("exists"),
    )
    .await;
    assert_eq!(digest, expected);
    common::drop_bucket(&plain).await;
}
