//! Benchmarks of `chatvault-local`, printed as plain figures (`cargo bench -p chatvault-local`):
//!
//! 1. The time of one append after 10, 1,000 and 100,000 existing messages, for
//!    `MemoryMessages` and `LocalMessages`: per-append median, mean and p95 over 200
//!    single-message appends, and the ratio of the largest to the smallest median. A
//!    backend whose append cost does not grow with the conversation has a ratio near 1.
//!    The time of reading the last 20 messages is printed beside it.
//! 2. Appends per second and flushes per append: `LocalMessages` with one writer, with 16
//!    concurrent writers (tasks of one process) on one conversation (they share flushes:
//!    group commit), and with 16 writers on 16 conversations; the ratio of each to one
//!    writer. Flushes are counted by the crate's own counter
//!    ([`chatvault_local::fsync_count`]), around the measured appends only.
//! 3. The first-page latency of a user's conversation listing (page of 20, median of 21
//!    calls) at 10, 1,000, 10,000 and 100,000 conversations of that user, one message
//!    each, for `MemoryMessages` and `LocalMessages`, with the ratio largest / smallest.
//!    The local conversations are written with [`LocalMessages::import`] (bulk: one
//!    `syncfs` instead of flushes per conversation), each size in its own store; the
//!    first listing after an import rebuilds the listing index from the conversations,
//!    which is timed and printed apart, then the measured calls follow.
//!    `CHATVAULT_BENCH_LIST_MAX` caps the largest size (default 100,000);
//!    `CHATVAULT_BENCH_LIST_DIR` puts these stores in another directory (for example a
//!    tmpfs, where creating 100,000 conversation directories takes seconds instead of
//!    minutes on a busy disk).
//! 4. The peak memory (VmHWM, Linux) of a streamed upload and a streamed download through
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
use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::backend::StoredConversation;
use chatvault_core::{
    ByteStream, ContentType, ConversationId, ConversationRecord, FilesBackend, ListOptions,
    MessageRange, MessagesBackend, NewMessage, Role, StorageKey, UserId,
};
use chatvault_local::{LocalFiles, LocalMessages, fsync_count};
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

    println!();
    let rounds = if quick { 40 } else { 100 };
    println!(
        "== LocalMessages appends: 1 writer vs 16 concurrent writers ({rounds} appends each) =="
    );
    let local = LocalMessages::open(dir.path().join("writers")).unwrap();
    let one = runtime.block_on(writers(&local, 1, false, rounds * 4));
    let same = runtime.block_on(writers(&local, 16, false, rounds));
    let spread = runtime.block_on(writers(&local, 16, true, rounds));
    for (name, r) in [
        ("1 writer", &one),
        ("16 writers, one conversation", &same),
        ("16 writers, 16 conversations", &spread),
    ] {
        println!(
            "{name:<30} {:>9.0} appends/s  {:>5.3} flushes/append  ({:.2}x one writer)",
            r.0,
            r.1,
            r.0 / one.0
        );
    }

    println!();
    let list_max: usize = std::env::var("CHATVAULT_BENCH_LIST_MAX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 10_000 } else { 100_000 });
    let list_sizes: Vec<usize> = [10, 1_000, 10_000, 100_000]
        .into_iter()
        .filter(|&n| n <= list_max)
        .collect();
    println!("== first page (20) of one user's conversations: median of 21 calls ==");
    let mut list_ratios = Vec::new();
    for name in ["memory", "local"] {
        let mut medians = Vec::new();
        for &n in &list_sizes {
            let list_dir = std::env::var("CHATVAULT_BENCH_LIST_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|_| dir.path().to_owned());
            let local = (name == "local").then(|| {
                LocalMessages::open(list_dir.join(format!("chatvault-bench-list-{n}"))).unwrap()
            });
            let backend: Arc<dyn MessagesBackend> = match &local {
                Some(local) => Arc::new(local.clone()),
                None => Arc::new(MemoryMessages::new()),
            };
            let (fill, first, median) =
                runtime.block_on(listing_latency(&backend, local.as_ref(), n));
            if let Some(local) = local {
                // 100,000 conversation directories take room: remove each store after use.
                let _ = std::fs::remove_dir_all(local.root());
            }
            println!(
                "{name:<8} {n:>9} conversations: first page {:>12}  (filled in {:.1} s, first listing {})",
                fmt(median),
                fill.as_secs_f64(),
                fmt(first)
            );
            medians.push(median);
        }
        let smallest = medians.iter().min().copied().unwrap();
        let largest = medians.iter().max().copied().unwrap();
        // At 10 conversations the page holds 10, not 20: the same comparison between
        // full pages only (1,000 conversations and more) is printed beside it.
        let full: Vec<Duration> = list_sizes
            .iter()
            .zip(&medians)
            .filter(|(n, _)| **n >= 1_000)
            .map(|(_, m)| *m)
            .collect();
        let full_ratio = match (full.iter().min(), full.iter().max()) {
            (Some(lo), Some(hi)) => format!("{:.2}", hi.as_secs_f64() / lo.as_secs_f64()),
            _ => "n/a".into(),
        };
        list_ratios.push((
            name,
            largest.as_secs_f64() / smallest.as_secs_f64(),
            full_ratio,
        ));
    }
    for (name, ratio, full) in list_ratios {
        println!(
            "{name:<8} largest / smallest first-page median: {ratio:.2} (full pages only: {full})"
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
    let record = ConversationRecord::new(Some(UserId::parse("bench").unwrap()));
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
        .head(&record.id)
        .await
        .unwrap()
        .unwrap()
        .record
        .message_count;
    assert_eq!(count, existing + appends as u64);
    (append, read)
}

/// `writers` tasks each doing `appends` single-message appends, all on one conversation
/// or each on its own; returns appends per second and flushes per append.
async fn writers(
    store: &LocalMessages,
    writers: usize,
    spread: bool,
    appends: usize,
) -> (f64, f64) {
    let ids: Vec<ConversationId> = (0..if spread { writers } else { 1 })
        .map(|_| ConversationId::new())
        .collect();
    for id in &ids {
        let mut record = ConversationRecord::new(None);
        record.id = id.clone();
        store.create(&record).await.unwrap();
        // Warm up: the first append writes the first checkpoint.
        store
            .append_messages(id, vec![NewMessage::new(Role::User, "warm-up")])
            .await
            .unwrap();
    }
    let flushes = fsync_count();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let id = ids[w % ids.len()].clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..appends {
                store
                    .append_messages(&id, vec![NewMessage::new(Role::User, format!("w{w} {i}"))])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let total = (writers * appends) as f64;
    let flushes = (fsync_count() - flushes) as f64;
    let mut stored = 0;
    for id in &ids {
        stored += store.head(id).await.unwrap().unwrap().record.message_count - 1;
    }
    assert_eq!(stored, (writers * appends) as u64, "every append stored");
    (total / elapsed.as_secs_f64(), flushes / total)
}

/// Fills a backend with `n` conversations of one user, one message each, and times the
/// first page of that user's listing. Returns the fill time, the first listing's time
/// (an index rebuild on local after the import) and the median of 21 timed listings.
async fn listing_latency(
    backend: &Arc<dyn MessagesBackend>,
    local: Option<&LocalMessages>,
    n: usize,
) -> (Duration, Duration, Duration) {
    let user = UserId::parse("lister").unwrap();
    let base = chatvault_core::backend::now();
    let conversation = |i: usize| {
        let mut record = ConversationRecord::new(Some(user.clone()));
        record.created_at = base + chrono::Duration::microseconds(i as i64);
        record.last_active = record.created_at;
        let mut c = StoredConversation::new(record);
        c.messages
            .push(NewMessage::new(Role::User, "hello").into_message(1, None));
        c.record.message_count = 1;
        c.record.title = Some("hello".into());
        c
    };
    let started = Instant::now();
    if let Some(store) = local {
        for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
            let batch = chunk.iter().map(|&i| conversation(i)).collect();
            store.import(batch).await.unwrap();
        }
    } else {
        for i in 0..n {
            let c = conversation(i);
            let mut record = c.record.clone();
            record.message_count = 0;
            record.title = None;
            backend.create(&record).await.unwrap();
            backend
                .append_messages(&record.id, vec![NewMessage::new(Role::User, "hello")])
                .await
                .unwrap();
        }
    }
    let fill = started.elapsed();
    let options = ListOptions::new().limit(20).unwrap();
    let started = Instant::now();
    let page = backend
        .list_conversations(Some(&user), &options)
        .await
        .unwrap();
    let first = started.elapsed();
    assert_eq!(page.items.len(), n.min(20));
    let mut samples = Vec::with_capacity(21);
    for _ in 0..21 {
        let started = Instant::now();
        let page = backend
            .list_conversations(Some(&user), &options)
            .await
            .unwrap();
        samples.push(started.elapsed());
        assert_eq!(page.items.len(), n.min(20));
    }
    (fill, first, stats(samples).median)
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
        let key = StorageKey::parse("bench/c/f/big.bin").unwrap();
        let key = &key;
        let baseline = peak_rss_kib();
        let started = Instant::now();
        let moved = match mode {
            "upload" => files
                .upload_stream(
                    key,
                    generated(total),
                    &ContentType::parse("application/octet-stream").unwrap(),
                )
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
