//! Upload throughput of `LocalFiles` against `cp` + `sync` of the same file on the same
//! disk, in one run (`cargo bench -p chatvault-local --bench upload`):
//!
//! 1. `cp SRC DST && sync`, timed together: the disk's speed for a durable copy; and
//!    `dd bs=4M` + `sync`, the same with a plain loop of 4 MiB reads and writes.
//! 2. SHA-256 of as many bytes in memory (64 KiB updates), with sha2 0.10 (the
//!    version ChatVault uses) and sha2 0.11, and whether the CPU has the SHA extensions.
//! 3. `LocalFiles::upload_stream` of the file's bytes arriving in 64 KiB chunks, and the
//!    vault's `attach_file_stream` of the same (the upload plus the vault's SHA-256 as
//!    the bytes pass), each in a fresh child process that prints its peak RSS (VmHWM).
//!    The chunks are read from the source file (in the page cache) as the stream is
//!    polled, as from an always-ready network body. Every upload is durable when it returns
//!    (fsync of the file and of its directories).
//! 4. The same `attach_file_stream` into a files backend that counts the bytes and drops
//!    them ("attach, no disk"): the source and the vault's SHA-256 alone, the floor of
//!    the attach whatever the files backend does. The attach's time over this one's is
//!    printed last: what writing to disk adds to the hashing.
//!
//! Everything is measured `CHATVAULT_BENCH_UPLOAD_ROUNDS` times (default 3), the steps of a
//! round one after the other, so that a busy machine slows them alike; the median and
//! the best of each are printed with their ratio to `cp` + `sync`'s median and best, with
//! the load average before and after. The files live under Cargo's
//! target directory (the same file system as the sources). `CHATVAULT_BENCH_UPLOAD_MIB`
//! sets the size in MiB (default 1024).

#![allow(clippy::unwrap_used)] // a benchmark may unwrap: any failure is fatal anyway

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chatvault_core::backend::{FilesCapabilities, ObjectMeta, async_trait};
use chatvault_core::{ByteStream, ChatVault, ContentType, Error, FilesBackend, StorageKey, UserId};
use chatvault_local::LocalFiles;
use chatvault_memory::MemoryMessages;
use futures_util::StreamExt;

const CHILD: &str = "CHATVAULT_BENCH_UPLOAD_CHILD";
const CHILD_SRC: &str = "CHATVAULT_BENCH_UPLOAD_SRC";
const CHILD_DIR: &str = "CHATVAULT_BENCH_UPLOAD_DIR";
const CHUNK: usize = 64 * 1024;
const MIB: f64 = 1024.0 * 1024.0;

fn main() {
    if let Ok(mode) = std::env::var(CHILD) {
        child(&mode);
        return;
    }
    let mib: u64 = std::env::var("CHATVAULT_BENCH_UPLOAD_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let bytes = mib << 20;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let src = dir.path().join("source.bin");
    let digest = make_source(&src, bytes);
    sync();
    let rounds: usize = std::env::var("CHATVAULT_BENCH_UPLOAD_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    println!(
        "== {mib} MiB, 64 KiB chunks, {rounds} rounds, in {} ==",
        dir.path().display()
    );
    println!(
        "CPU SHA extensions: {}; load average at start: {}",
        if has_sha_extensions() { "yes" } else { "no" },
        load_average()
    );

    let names = [
        "cp + sync",
        "dd bs=4M + sync",
        "sha256 (sha2 0.10)",
        "sha256 (sha2 0.11)",
        "source only",
        "upload_stream",
        "attach_file_stream",
        "attach, no disk",
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    let mut peak_rss = vec![0u64; names.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for _ in 0..rounds {
        // 1. The source alone, then the uploads, each in a fresh process.
        for (i, mode) in names.iter().enumerate().skip(4) {
            sync();
            let out = Command::new(std::env::current_exe().unwrap())
                .env(CHILD, mode)
                .env(CHILD_SRC, &src)
                .env(CHILD_DIR, dir.path().join("store"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{mode} child failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // The child prints: nanoseconds, digest, peak RSS in KiB.
            let text = String::from_utf8(out.stdout).unwrap();
            let fields: Vec<&str> = text.split_whitespace().collect();
            times[i].push(Duration::from_nanos(fields[0].parse().unwrap()));
            if fields[1] != "-" {
                assert_eq!(fields[1], digest, "{mode}: stored digest");
            }
            peak_rss[i] = peak_rss[i].max(fields[2].parse().unwrap());
            cpu[i].push(fields[3].parse().unwrap());
            std::fs::remove_dir_all(dir.path().join("store")).unwrap();
        }

        // 2. cp + sync.
        let dst = dir.path().join("copy.bin");
        sync();
        let started = Instant::now();
        let status = Command::new("cp").arg(&src).arg(&dst).status().unwrap();
        assert!(status.success(), "cp failed");
        sync();
        times[0].push(started.elapsed());
        std::fs::remove_file(&dst).unwrap();

        // 2b. dd with 4 MiB writes + sync: a plain read/write loop of the same bytes.
        sync();
        let started = Instant::now();
        let status = Command::new("dd")
            .arg(format!("if={}", src.display()))
            .arg(format!("of={}", dst.display()))
            .args(["bs=4M", "status=none"])
            .status()
            .unwrap();
        assert!(status.success(), "dd failed");
        sync();
        times[1].push(started.elapsed());
        std::fs::remove_file(&dst).unwrap();

        // 3. Hashing alone.
        let (took, seen_010) = hash_time(&src, bytes, |data| {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            for chunk in data {
                h.update(chunk);
            }
            hex(&h.finalize())
        });
        times[2].push(took);
        let (took, seen) = hash_time(&src, bytes, |data| {
            use sha2_011::Digest;
            let mut h = sha2_011::Sha256::new();
            for chunk in data {
                h.update(chunk);
            }
            hex(&h.finalize())
        });
        // Both versions agree (on the bytes hashed, not the file's digest).
        assert_eq!(seen, seen_010);
        times[3].push(took);
    }
    println!("load average at the end: {}", load_average());
    println!();
    println!(
        "{:<22} {:>10} {:>12} {:>10} {:>12} {:>10}",
        "", "median", "MiB/s", "vs cp+sync", "best MiB/s", "vs cp+sync"
    );
    let medians: Vec<Duration> = times.iter().map(|t| median(t)).collect();
    let bests: Vec<Duration> = times
        .iter()
        .map(|t| t.iter().copied().min().unwrap())
        .collect();
    for (i, name) in names.iter().enumerate() {
        let (m, b) = (speed(bytes, medians[i]), speed(bytes, bests[i]));
        let (m0, b0) = (speed(bytes, medians[0]), speed(bytes, bests[0]));
        let rss = if peak_rss[i] > 0 {
            let mut c = cpu[i].clone();
            c.sort_by(f64::total_cmp);
            format!(
                "   peak RSS {:.1} MiB, CPU {:.2} s",
                peak_rss[i] as f64 / 1024.0,
                c[c.len() / 2]
            )
        } else {
            String::new()
        };
        println!(
            "{name:<22} {:>8.3} s {m:>12.1} {:>9.2}x {b:>12.1} {:>9.2}x{rss}",
            medians[i].as_secs_f64(),
            m / m0,
            b / b0,
        );
    }
    let (attach, floor) = (names.len() - 2, names.len() - 1);
    println!(
        "attach_file_stream / attach, no disk: {:.2}x (medians), {:.2}x (bests)",
        medians[attach].as_secs_f64() / medians[floor].as_secs_f64(),
        bests[attach].as_secs_f64() / bests[floor].as_secs_f64(),
    );
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2]
}

/// The system's load averages (Linux), to tell a quiet run from a busy one.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".to_owned())
}

fn speed(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / MIB / took.as_secs_f64()
}

fn sync() {
    let status = Command::new("sync").status().unwrap();
    assert!(status.success(), "sync failed");
}

fn has_sha_extensions() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        std::arch::is_x86_feature_detected!("sha")
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    false
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` of incompressible pseudo-random data to `path`, flushed; returns their
/// SHA-256 (hex).
fn make_source(path: &Path, bytes: u64) -> String {
    use sha2::Digest;
    let mut file = File::create(path).unwrap();
    let mut hasher = sha2::Sha256::new();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut block = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            word.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n]).unwrap();
        hasher.update(&block[..n]);
        left -= n as u64;
    }
    file.sync_all().unwrap();
    hex(&hasher.finalize())
}

/// Times `hash` over `bytes` bytes in 64 KiB slices: the first 64 MiB of `src`, read into
/// memory first (no I/O is timed), passed over as many times as needed. (Not the whole
/// file at once: a 1 GiB allocation here, freed, would change what the next steps pay
/// for fresh memory.) Returns the time and the digest.
fn hash_time(
    src: &Path,
    bytes: u64,
    hash: impl FnOnce(&mut dyn Iterator<Item = &[u8]>) -> String,
) -> (Duration, String) {
    let mut data = Vec::new();
    File::open(src)
        .unwrap()
        .take(64 << 20)
        .read_to_end(&mut data)
        .unwrap();
    let passes = bytes.div_ceil(data.len() as u64) as usize;
    let started = Instant::now();
    let mut slices = std::iter::repeat_n(&data[..], passes).flat_map(|d| d.chunks(CHUNK));
    let hex = hash(&mut slices);
    (started.elapsed(), hex)
}

/// A stream of the file at `path` in 64 KiB chunks, each read when the stream is polled
/// (a plain read from the page cache, where the source is after `make_source`): a source
/// that is always ready, as a fast network body would be.
fn file_stream(path: PathBuf) -> ByteStream {
    let file = File::open(path).unwrap();
    futures_util::stream::unfold(file, |mut file| async move {
        let mut chunk = vec![0u8; CHUNK];
        let n = file.read(&mut chunk).unwrap();
        if n == 0 {
            return None;
        }
        chunk.truncate(n);
        Some((Ok(Bytes::from(chunk)), file))
    })
    .boxed()
}

/// Peak resident set size of this process so far, in KiB (Linux), if known.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The CPU time (user and system, all threads) of this process so far, in seconds
/// (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses): utime is the 12th, stime
    // the 13th, in clock ticks (100 per second on Linux).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    ticks as f64 / 100.0
}

/// A files backend that reads a stream to its end and drops the bytes: the attach's
/// floor, the source and the hashing without a disk.
#[derive(Debug, Clone, Copy)]
struct NullFiles;

#[async_trait]
impl FilesBackend for NullFiles {
    fn capabilities(&self) -> FilesCapabilities {
        FilesCapabilities::basic()
    }

    async fn upload_stream(
        &self,
        _key: &StorageKey,
        mut data: ByteStream,
        _content_type: &ContentType,
    ) -> chatvault_core::Result<u64> {
        let mut n = 0;
        while let Some(chunk) = data.next().await {
            n += chunk
                .map_err(|source| Error::UploadStream { source })?
                .len() as u64;
        }
        Ok(n)
    }

    async fn download_stream(
        &self,
        _key: &StorageKey,
    ) -> chatvault_core::Result<Option<ByteStream>> {
        Ok(None)
    }

    async fn head(&self, _key: &StorageKey) -> chatvault_core::Result<Option<ObjectMeta>> {
        Ok(None)
    }

    async fn delete(&self, _key: &StorageKey) -> chatvault_core::Result<bool> {
        Ok(false)
    }

    async fn signed_url(
        &self,
        _key: &StorageKey,
        _expires_in: Duration,
        _download_filename: Option<&str>,
    ) -> chatvault_core::Result<String> {
        Err(Error::not_supported("null", "signed_url"))
    }
}

/// The body of a measurement child process.
fn child(mode: &str) {
    let src = PathBuf::from(std::env::var(CHILD_SRC).unwrap());
    let dir = PathBuf::from(std::env::var(CHILD_DIR).unwrap());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let files = LocalFiles::new(&dir).unwrap();
        let size = std::fs::metadata(&src).unwrap().len();
        let (took, digest) = match mode {
            "source only" => {
                // The chunks arriving, drained: what the uploads' source costs alone.
                let started = Instant::now();
                let mut stream = file_stream(src);
                let mut n = 0;
                while let Some(chunk) = stream.next().await {
                    n += chunk.unwrap().len() as u64;
                }
                let took = started.elapsed();
                assert_eq!(n, size);
                (took, "-".to_owned())
            }
            "upload_stream" => {
                let started = Instant::now();
                let n = files
                    .upload_stream(
                        &StorageKey::parse("bench/c/f/big.bin").unwrap(),
                        file_stream(src),
                        &ContentType::octet_stream(),
                    )
                    .await
                    .unwrap();
                let took = started.elapsed();
                assert_eq!(n, size);
                (took, "-".to_owned())
            }
            "attach_file_stream" | "attach, no disk" => {
                let vault = if mode == "attach, no disk" {
                    ChatVault::new(MemoryMessages::new(), NullFiles)
                } else {
                    ChatVault::new(MemoryMessages::new(), files.clone())
                };
                let mut conversation = vault
                    .create_conversation(Some(&UserId::parse("bench").unwrap()))
                    .await
                    .unwrap();
                let started = Instant::now();
                let file = conversation
                    .attach_file_stream("big.bin", file_stream(src), "application/octet-stream")
                    .await
                    .unwrap();
                let took = started.elapsed();
                assert_eq!(file.size, size);
                (took, file.sha256)
            }
            other => panic!("unknown child mode {other}"),
        };
        println!(
            "{} {digest} {} {}",
            took.as_nanos(),
            peak_rss_kib().unwrap_or(0),
            cpu_seconds()
        );
    });
}
