//! A 1 GiB upload through the router keeps the server's memory bounded.
//!
//! The server runs in a child process (this test binary, re-run with
//! `CHATVAULT_AXUM_MEMORY_CHILD=1`), so its peak resident memory (`VmHWM` in
//! `/proc/<pid>/status`) is its own. The client streams a generated 1 GiB body, never
//! held in memory; the server's files backend counts and discards the bytes, so what is
//! measured is the router (multipart parsing, the upload stream, hashing).
//!
//! As a control that the measure can fail, a 128 MiB upload to a backend that buffers
//! (keys under the user `buffer`) must raise the peak by about 128 MiB (at least 100).
//!
//! `CHATVAULT_AXUM_UPLOAD_MIB=n` changes the size of the measured upload, for a quick run
//! while developing; the test prints the size it used.

// A test binary without the libtest harness: its unwraps are test assertions.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderName;
use bytes::Bytes;
use chatvault_axum::{ChatVaultApi, HeaderIdentity};
use chatvault_core::backend::{FilesCapabilities, ObjectMeta, async_trait};
use chatvault_core::{ByteStream, ChatVault, ContentType, Error, FilesBackend, Result, StorageKey};
use chatvault_memory::MemoryMessages;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

const CHILD_ENV: &str = "CHATVAULT_AXUM_MEMORY_CHILD";
const TEST_NAME: &str = "upload_of_1_gib_keeps_server_memory_bounded";
const GIB: u64 = 1024 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;
const CHUNK: usize = 64 * 1024;
/// The most the server's peak memory may grow during the 1 GiB upload.
const BOUND: u64 = 64 * MIB;

/// Size, content type, and the bytes when kept.
type Stored = (u64, ContentType, Option<Bytes>);

/// Counts the bytes and drops them; keys of the user `buffer` are kept in memory instead.
#[derive(Debug, Default)]
struct SinkFiles {
    sizes: Mutex<HashMap<StorageKey, Stored>>,
}

#[async_trait]
impl FilesBackend for SinkFiles {
    fn capabilities(&self) -> FilesCapabilities {
        FilesCapabilities::basic().with_bounded_memory(true)
    }

    async fn upload_stream(
        &self,
        key: &StorageKey,
        mut data: ByteStream,
        content_type: &ContentType,
    ) -> Result<u64> {
        let buffer = key.as_str().starts_with("buffer/");
        let mut kept = Vec::new();
        let mut size = 0u64;
        while let Some(chunk) = data.next().await {
            let chunk = chunk.map_err(|source| Error::UploadStream { source })?;
            size += chunk.len() as u64;
            if buffer {
                kept.extend_from_slice(&chunk);
            }
        }
        let kept = buffer.then(|| Bytes::from(kept));
        self.sizes
            .lock()
            .unwrap()
            .insert(key.clone(), (size, content_type.clone(), kept));
        Ok(size)
    }

    async fn download_stream(&self, _key: &StorageKey) -> Result<Option<ByteStream>> {
        Ok(None)
    }

    async fn head(&self, key: &StorageKey) -> Result<Option<ObjectMeta>> {
        Ok(self
            .sizes
            .lock()
            .unwrap()
            .get(key)
            .map(|(size, ct, _)| ObjectMeta::new(*size, ct.clone())))
    }

    async fn delete(&self, key: &StorageKey) -> Result<bool> {
        Ok(self.sizes.lock().unwrap().remove(key).is_some())
    }

    async fn signed_url(
        &self,
        _key: &StorageKey,
        _expires_in: Duration,
        _download_filename: Option<&str>,
    ) -> Result<String> {
        Err(Error::not_supported("sink", "signed URLs"))
    }
}

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child_server();
        return;
    }
    // The libtest conventions test runners rely on: `--list`, and name filters.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("{TEST_NAME}: test");
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let exact = args.iter().any(|a| a == "--exact");
    // `--ignored` runs only ignored tests, and this one is not ignored.
    let selected = !args.iter().any(|a| a == "--ignored")
        && (filters.is_empty()
            || filters.iter().any(|f| {
                if exact {
                    *f == TEST_NAME
                } else {
                    TEST_NAME.contains(f.as_str())
                }
            }));
    if !selected {
        println!(
            "\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out; finished in 0.00s\n"
        );
        return;
    }
    println!("\nrunning 1 test");
    let started = Instant::now();
    match std::panic::catch_unwind(parent) {
        Ok(()) => {
            println!("test {TEST_NAME} ... ok");
            println!(
                "\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in {:.2}s\n",
                started.elapsed().as_secs_f64()
            );
        }
        Err(_) => {
            println!("test {TEST_NAME} ... FAILED");
            println!(
                "\ntest result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n"
            );
            std::process::exit(101);
        }
    }
}

/// The server: prints its port, serves until its stdin closes.
fn child_server() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let vault = ChatVault::new(MemoryMessages::new(), SinkFiles::default());
        let api = ChatVaultApi::new(vault)
            .identity(HeaderIdentity::new(HeaderName::from_static("x-user")))
            .max_upload_bytes(2 * GIB)
            .into_router()
            .unwrap();
        let app = axum::Router::new().nest("/api", api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("PORT {}", listener.local_addr().unwrap().port());
        std::io::stdout().flush().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin()
                .read_line(&mut sink)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
        })
        .await
        .unwrap();
        server.abort();
    });
}

/// Peak resident memory of process `pid`, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/<pid>/status");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// The generated body: `size` bytes in 64 KiB chunks, each a window of one pattern
/// buffer at a shifting offset (no two neighbours alike), hashed as they go.
fn generated(size: u64, hash: std::sync::Arc<Mutex<Sha256>>) -> reqwest::Body {
    let pattern = Bytes::from(
        (0..CHUNK + 251)
            .map(|j| (j % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let chunks = size.div_ceil(CHUNK as u64);
    let stream = futures_util::stream::iter(0..chunks).map(move |i| {
        let len = (size - i * CHUNK as u64).min(CHUNK as u64) as usize;
        let offset = (i as usize * 7) % 251;
        let chunk = pattern.slice(offset..offset + len);
        hash.lock().unwrap().update(&chunk);
        Ok::<_, std::io::Error>(chunk)
    });
    reqwest::Body::wrap_stream(stream)
}

async fn upload(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    size: u64,
) -> (serde_json::Value, String) {
    let res = client
        .post(format!("{base}/conversations"))
        .header("x-user", user)
        .json(&serde_json::json!({"title": "memory"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let id = res.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let hash = std::sync::Arc::new(Mutex::new(Sha256::new()));
    let part = reqwest::multipart::Part::stream_with_length(generated(size, hash.clone()), size)
        .file_name("big.bin")
        .mime_str("application/octet-stream")
        .unwrap();
    let form = reqwest::multipart::Form::new().part("file", part);
    let res = client
        .post(format!("{base}/conversations/{id}/files"))
        .header("x-user", user)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let file: serde_json::Value = res.json().await.unwrap();
    let digest = hash.lock().unwrap().clone().finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    (file, hex)
}

fn parent() {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line.trim().strip_prefix("PORT ").unwrap().parse().unwrap();
    let base = format!("http://127.0.0.1:{port}/api");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            let client = reqwest::Client::new();
            let size = std::env::var("CHATVAULT_AXUM_UPLOAD_MIB")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(GIB, |mib| mib * MIB);
            // Warm up: the server's steady state (threads, buffers, allocator arenas).
            upload(&client, &base, "alice", 8 * MIB).await;
            let before = peak_rss(pid);
            let started = Instant::now();
            let (file, sha) = upload(&client, &base, "alice", size).await;
            let elapsed = started.elapsed();
            let after = peak_rss(pid);
            assert_eq!(file["size"], size);
            assert_eq!(file["sha256"], sha.as_str(), "every byte arrived, in order");
            let growth = after.saturating_sub(before);
            println!(
                "{} MiB upload: {:.1} s ({:.0} MiB/s); server peak RSS {:.1} MiB before, {:.1} MiB after: grew {:.1} MiB (bound {} MiB)",
                size / MIB,
                elapsed.as_secs_f64(),
                size as f64 / MIB as f64 / elapsed.as_secs_f64(),
                before as f64 / MIB as f64,
                after as f64 / MIB as f64,
                growth as f64 / MIB as f64,
                BOUND / MIB
            );
            assert!(growth < BOUND, "the server's memory grew by {} MiB", growth / MIB);

            // Control: a backend that buffers must show up in the same measure.
            let (file, _) = upload(&client, &base, "buffer", 128 * MIB).await;
            assert_eq!(file["size"], 128 * MIB);
            let buffered = peak_rss(pid);
            println!(
                "control: 128 MiB kept in memory by the backend raised the peak to {} MiB (+{} MiB)",
                buffered / MIB,
                buffered.saturating_sub(after) / MIB
            );
            assert!(
                buffered.saturating_sub(after) >= 100 * MIB,
                "the measure sees memory the server holds"
            );
        });
    }));
    drop(child.stdin.take());
    let _ = child.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
