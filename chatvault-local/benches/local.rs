//! Benchmarks of `chatvault-local`, printed as plain figures (`cargo bench -p chatvault-local`):
//!
//! 1. The time of one append after 10, 1,000 and 100,000 existing messages, for
//!    `MemoryMessages` and `LocalMessages`: per-append median, mean and p95 over 200
//!    single-message appends, and the ratio of the largest to the smallest median. A
//!    backend whose append cost does not grow with the conversation has a ratio near 1.
//!    The time of reading the last 20 messages is printed beside it.
//! 2. The peak memory (VmHWM, Linux) of a streamed upload and a streamed download through
//!    `LocalFiles`, each in a fresh child process so that nothing else inflates the
//!    figure. The bytes are generated as the stream is polled, never held whole.
//!    `CHATVAULT_BENCH_FILE_MIB` sets the file size in MiB (default 1024).
//!
//! `CHATVAULT_BENCH_QUICK=1` shrinks everything for a fast smoke run.

#![allow(clippy::unwrap_used)] // a benchmark may unwrap: any failure is fatal anyway

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chatvault_core::{
    ByteStream, ConversationRecord, FilesBackend, MessageRange, MessagesBackend, NewMessage, Role,
};
use chatvault_local::{LocalFiles, LocalMessages};
use chatvault_memory::MemoryMessages;
use futures_util::StreamExt;
use futures_util::stream;

const CHILD: &str = "CHATVAULT_BENCH_CHILD";
const CHILD_DIR: &str = "CHATVAULT_BENCH_DIR";
const CHILD_BYTES: &str = "CHATVAULT_BENCH_BYTES";
const CHUNK: usize = 64 * 1024;

fn main() {
    if let Ok(mode) = std::env::var(CHILD) {
        child(&mode);
        return;
    }
    let quick = std::env::var("CHATVAULT_BENCH_QUICK").is_ok_and(|v| v == "1");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    let sizes: &[u64] = if quick {
        &[10, 1_000, 10_000]
    } else {
        &[10, 1_000, 100_000]
    };
    let appends = if quick { 50 } else { 200 };
    println!("== append: {appends} single-message appends after N existing messages ==");
    println!(
        "{:<8} {:>9} {:>12} {:>12} {:>12} {:>16}",
        "backend", "N", "median", "mean", "p95", "read last(20)"
    );
    let backends: Vec<(&str, Arc<dyn MessagesBackend>)> = vec![
        ("memory", Arc::new(MemoryMessages::new())),
        (
            "local",
            Arc::new(LocalMessages::open(dir.path().join("messages")).unwrap()),
        ),
    ];
    let mut ratios = Vec::new();
    for (name, backend) in &backends {
        let mut medians = Vec::new();
        for &size in sizes {
            let (append, read) = runtime.block_on(append_latency(backend.as_ref(), size, appends));
            let s = stats(append);
            let r = stats(read);
            println!(
                "{name:<8} {size:>9} {:>12} {:>12} {:>12} {:>16}",
                fmt(s.median),
                fmt(s.mean),
                fmt(s.p95),
                fmt(r.median)
            );
            medians.push(s.median);
        }
        let smallest = medians.iter().min().copied().unwrap();
        let largest = medians.last().copied().unwrap();
        ratios.push((name, largest.as_secs_f64() / smallest.as_secs_f64()));
    }
    for (name, ratio) in ratios {
        println!(
            "{name:<8} median at N={} / smallest median: {ratio:.2}",
            sizes[sizes.len() - 1]
        );
    }

    let mib: u64 = std::env::var("CHATVAULT_BENCH_FILE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 64 } else { 1024 });
    let bytes = mib * 1024 * 1024;
    println!();
    println!("== LocalFiles streaming, {mib} MiB, each in a fresh process ==");
    let files_dir = dir.path().join("files");
    for mode in ["upload", "download"] {
        let out = Command::new(std::env::current_exe().unwrap())
            .env(CHILD, mode)
            .env(CHILD_DIR, &files_dir)
            .env(CHILD_BYTES, bytes.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{mode} child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}

/// Times `appends` single-message appends (and as many reads of the last 20 messages)
/// on a conversation prefilled with `existing` messages.
async fn append_latency(
    backend: &dyn MessagesBackend,
    existing: u64,
    appends: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let record = ConversationRecord::new(Some("bench".into()));
    backend.create(&record).await.unwrap();
    let content = "a typical chat message of about a hundred bytes, give or take a few words here";
    let mut left = existing;
    while left > 0 {
        let n = left.min(1000);
        let batch = (0..n)
            .map(|_| NewMessage::new(Role::User, content))
            .collect();
        backend.append_messages(&record.id, batch).await.unwrap();
        left -= n;
    }
    let mut append = Vec::with_capacity(appends);
    let mut read = Vec::with_capacity(appends);
    for i in 0..appends as u64 {
        let started = Instant::now();
        backend
            .append_messages(&record.id, vec![NewMessage::new(Role::Assistant, content)])
            .await
            .unwrap();
        append.push(started.elapsed());
        let started = Instant::now();
        let page = backend
            .messages(&record.id, &MessageRange::last(20))
            .await
            .unwrap();
        read.push(started.elapsed());
        assert_eq!(page.items.len() as u64, 20.min(existing + i + 1));
    }
    let count = backend
        .get_record(&record.id)
        .await
        .unwrap()
        .unwrap()
        .message_count;
    assert_eq!(count, existing + appends as u64);
    (append, read)
}

struct Stats {
    median: Duration,
    mean: Duration,
    p95: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort_unstable();
    let n = samples.len();
    Stats {
        median: samples[n / 2],
        mean: samples.iter().sum::<Duration>() / n as u32,
        p95: samples[(n * 95 / 100).min(n - 1)],
    }
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{:.3} ms", us / 1000.0)
    }
}

/// Peak resident set size of this process so far, in KiB (Linux), if known.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "n/a".to_owned(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}

/// A stream of `total` bytes in 64 KiB chunks, made as it is polled.
fn generated(total: u64) -> ByteStream {
    stream::unfold(0u64, move |sent| async move {
        if sent >= total {
            return None;
        }
        let n = (total - sent).min(CHUNK as u64) as usize;
        let chunk: Vec<u8> = (0..n).map(|i| ((sent as usize + i) % 251) as u8).collect();
        Some((Ok(Bytes::from(chunk)), sent + n as u64))
    })
    .boxed()
}

/// The body of a measurement child process.
fn child(mode: &str) {
    let dir = std::env::var(CHILD_DIR).unwrap();
    let total: u64 = std::env::var(CHILD_BYTES).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let files = LocalFiles::new(Path::new(&dir)).unwrap();
        let key = "bench/c/f/big.bin";
        let baseline = peak_rss_kib();
        let started = Instant::now();
        let moved = match mode {
            "upload" => files
                .upload_stream(key, generated(total), "application/octet-stream")
                .await
                .unwrap(),
            "download" => {
                let mut stream = files.download_stream(key).await.unwrap().unwrap();
                let mut n = 0u64;
                let mut largest = 0;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.unwrap();
                    assert_eq!(chunk[0], ((n % 251) as u8), "bytes at {n}");
                    largest = largest.max(chunk.len());
                    n += chunk.len() as u64;
                }
                assert!(largest <= CHUNK);
                n
            }
            other => panic!("unknown child mode {other}"),
        };
        let elapsed = started.elapsed();
        assert_eq!(moved, total);
        println!(
            "{mode:<8} {:>8.0} MiB in {:>6.2} s ({:>7.1} MiB/s): peak RSS {} (baseline before the transfer {})",
            total as f64 / 1048576.0,
            elapsed.as_secs_f64(),
            total as f64 / 1048576.0 / elapsed.as_secs_f64(),
            mib(peak_rss_kib()),
            mib(baseline),
        );
    });
}
