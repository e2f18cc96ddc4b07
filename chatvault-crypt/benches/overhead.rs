//! What encryption at rest costs, measured against the same work in clear, in one run:
//!
//! ```text
//! cargo bench -p chatvault-crypt --bench overhead
//! CHATVAULT_CRYPT_BENCH_MIB=128 cargo bench -p chatvault-crypt --bench overhead   # quick
//! ```
//!
//! 1. **Append**: `LocalMessages::append_messages` of one ~1 KB user message (one fsync
//!    each), against the same through `EncryptedMessages` (key cached, as in a running
//!    app); then the same over `MemoryMessages`, which shows the wrapper's CPU time alone.
//!    `CHATVAULT_CRYPT_BENCH_APPENDS` appends per side per round (default 300).
//! 2. **Upload**: `LocalFiles::upload_stream` of `CHATVAULT_CRYPT_BENCH_MIB` MiB (default
//!    1024) arriving in 64 KiB chunks from memory, against the same through
//!    `EncryptedFiles` with XChaCha20-Poly1305 and with AES-256-GCM (the default). Every
//!    upload is durable when it returns.
//! 3. **Cipher speed**: sealing the same bytes in memory in 64 KiB segments with each
//!    algorithm, for reference.
//!
//! Appends are paired (a clear one, then an encrypted one, the order swapped every other
//! pair); uploads alternate within each of `CHATVAULT_CRYPT_BENCH_ROUNDS` rounds (default
//! 5), their order turning every round, so that a busy machine slows the sides alike. The
//! medians are printed, and their ratio (the overhead), with the load average. Files live
//! under Cargo's target directory.

#![allow(clippy::unwrap_used)] // a benchmark may unwrap: any failure is fatal anyway

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chatvault_core::backend::{ByteStream, MessagesBackendExt};
use chatvault_core::{
    ContentType, ConversationRecord, FilesBackend, MessagesBackend, NewMessage, Role, StorageKey,
};
use chatvault_crypt::{Algorithm, EncryptedFiles, EncryptedMessages, Keyring, StaticKeyProvider};
use chatvault_local::{LocalFiles, LocalMessages};
use futures_util::stream::{self, StreamExt};

const CHUNK: usize = 64 * 1024;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn keyring(dir: &std::path::Path, alg: Algorithm) -> Keyring {
    let store = Arc::new(LocalMessages::open(dir.join("keys")).unwrap());
    Keyring::new(store, StaticKeyProvider::new([3; 32])).with_algorithm(alg)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rounds = env("CHATVAULT_CRYPT_BENCH_ROUNDS", 5).max(1) as usize;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    println!(
        "== chatvault-crypt overhead, {rounds} rounds, in {} ==",
        dir.path().display()
    );
    println!("load average at start: {}", load_average());
    runtime.block_on(appends(dir.path(), rounds));
    runtime.block_on(uploads(dir.path(), rounds));
    ciphers();
    println!("load average at end: {}", load_average());
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

async fn appends(dir: &std::path::Path, rounds: usize) {
    let plain = LocalMessages::open(dir.join("plain")).unwrap();
    let sealed = EncryptedMessages::new(
        LocalMessages::open(dir.join("sealed")).unwrap(),
        keyring(dir, Algorithm::default()),
    );
    paired_appends("local", &plain, &sealed, rounds).await;
    let plain = chatvault_memory::MemoryMessages::new();
    let sealed = EncryptedMessages::new(
        chatvault_memory::MemoryMessages::new(),
        keyring(&dir.join("memory"), Algorithm::default()),
    );
    paired_appends("memory (the CPU cost alone)", &plain, &sealed, rounds).await;
}

async fn paired_appends(
    name: &str,
    plain: &dyn MessagesBackend,
    sealed: &dyn MessagesBackend,
    rounds: usize,
) {
    let n = env("CHATVAULT_CRYPT_BENCH_APPENDS", 300) as usize;
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(22);
    let sides: [&dyn MessagesBackend; 2] = [plain, sealed];
    let mut ids = Vec::new();
    for backend in sides {
        let record = ConversationRecord::new(Some("bench".parse().unwrap()));
        backend.create(&record).await.unwrap();
        // A warm-up append: the first key look-up, the auto-title, the first write.
        let first = NewMessage::new(Role::User, text.clone());
        backend
            .append_messages(&record.id, vec![first])
            .await
            .unwrap();
        ids.push(record.id);
    }
    // Paired: each clear append is followed by an encrypted one (the order swapped every
    // other pair), so that both see the same disk and the same load.
    let mut times = [Vec::new(), Vec::new()];
    for i in 0..n * rounds {
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            let m = NewMessage::new(Role::User, text.clone());
            let start = Instant::now();
            sides[side]
                .append_messages(&ids[side], vec![m])
                .await
                .unwrap();
            times[side].push(start.elapsed());
        }
    }
    let [clear_t, sealed_t] = times;
    let mean = |v: &[Duration]| v.iter().sum::<Duration>().as_secs_f64() / v.len() as f64;
    let (cm, sm) = (mean(&clear_t), mean(&sealed_t));
    let (c, s) = (median(clear_t), median(sealed_t));
    println!(
        "append on {name} ({} B text, {} paired appends): clear median {:.1} µs (mean {:.1}), encrypted median {:.1} µs (mean {:.1}): {:+.1}% by medians, {:+.1}% by means{}",
        text.len(),
        n * rounds,
        c.as_secs_f64() * 1e6,
        cm * 1e6,
        s.as_secs_f64() * 1e6,
        sm * 1e6,
        (s.as_secs_f64() / c.as_secs_f64() - 1.0) * 100.0,
        (sm / cm - 1.0) * 100.0,
        if name == "local" {
            " (target <= +15%)"
        } else {
            ""
        }
    );
}

fn source(bytes: u64) -> ByteStream {
    let chunk = Bytes::from((0..CHUNK).map(|i| (i * 31 % 251) as u8).collect::<Vec<_>>());
    let chunks = bytes.div_ceil(CHUNK as u64);
    stream::iter((0..chunks).map(move |i| {
        let left = bytes - i * CHUNK as u64;
        Ok(chunk.slice(..(left.min(CHUNK as u64) as usize)))
    }))
    .boxed()
}

async fn uploads(dir: &std::path::Path, rounds: usize) {
    let mib = env("CHATVAULT_CRYPT_BENCH_MIB", 1024);
    let bytes = mib << 20;
    let clear = LocalFiles::new(dir.join("files-clear")).unwrap();
    let xchacha = EncryptedFiles::new(
        LocalFiles::new(dir.join("files-x")).unwrap(),
        keyring(&dir.join("kx"), Algorithm::XChaCha20Poly1305),
    );
    let aes = EncryptedFiles::new(
        LocalFiles::new(dir.join("files-a")).unwrap(),
        keyring(&dir.join("ka"), Algorithm::Aes256Gcm),
    );
    let key: StorageKey = "bench/c/f/big.bin".parse().unwrap();
    let octets = ContentType::octet_stream();
    let sides: [(&str, &dyn FilesBackend); 3] = [
        ("clear", &clear),
        ("XChaCha20-Poly1305", &xchacha),
        ("AES-256-GCM", &aes),
    ];
    let mut times = vec![Vec::new(); sides.len()];
    for round in 0..rounds {
        // The order turns every round, so that no side always follows the same one.
        for k in 0..sides.len() {
            let i = (k + round) % sides.len();
            let backend = sides[i].1;
            // A small upload first: the key look-up is not part of the measure.
            backend
                .upload_stream(&key, source(1), &octets)
                .await
                .unwrap();
            let start = Instant::now();
            let n = backend
                .upload_stream(&key, source(bytes), &octets)
                .await
                .unwrap();
            times[i].push(start.elapsed());
            assert_eq!(n, bytes);
            backend.delete(&key).await.unwrap();
        }
    }
    let medians: Vec<Duration> = times.into_iter().map(median).collect();
    for ((name, _), t) in sides.iter().zip(&medians) {
        println!(
            "upload {mib} MiB, {name}: {:.2} s ({:.0} MiB/s): {:+.1}% against clear (target <= +10%)",
            t.as_secs_f64(),
            mib as f64 / t.as_secs_f64(),
            (t.as_secs_f64() / medians[0].as_secs_f64() - 1.0) * 100.0
        );
    }
}

fn ciphers() {
    use chacha20poly1305::aead::{AeadInOut, KeyInit};
    let data = vec![7u8; CHUNK];
    let total = 256u32; // 16 MiB
    let x = chacha20poly1305::XChaCha20Poly1305::new_from_slice(&[1; 32]).unwrap();
    let a = aes_gcm::Aes256Gcm::new_from_slice(&[1; 32]).unwrap();
    let time = |f: &dyn Fn(&mut Vec<u8>)| {
        let start = Instant::now();
        for _ in 0..total {
            let mut buf = data.clone();
            f(&mut buf);
        }
        (total as f64 * CHUNK as f64 / (1 << 20) as f64) / start.elapsed().as_secs_f64()
    };
    let xs = time(&|b| x.encrypt_in_place(&[0u8; 24].into(), b"", b).unwrap());
    let as_ = time(&|b| a.encrypt_in_place(&[0u8; 12].into(), b"", b).unwrap());
    println!(
        "in memory, 64 KiB segments: XChaCha20-Poly1305 {xs:.0} MiB/s, AES-256-GCM {as_:.0} MiB/s"
    );
}
