//! Criterion benchmark of `Conversation::add_message` through a `ChatVault` over
//! `MemoryMessages` + `MemoryFiles`, and its comparison with the Python library:
//!
//! 1. `add_message/at/N`: one `add_message` to a conversation that already holds N = 10,
//!    1,000 and 100,000 messages (a fresh conversation of N is made, untimed, after every
//!    `max(N / 10, 100)` appends, so the length stays within 10% of N, or 100). After
//!    each run of timed appends it checks, untimed, that the conversation holds them all
//!    and that the last reads back from the store; it panics if not.
//! 2. `python 4,000 appends`: 4,000 `add_message` calls to a new conversation, timed here
//!    and in the Python `chatvault` 0.1.0 with its `MemoryMessages`, in the same run;
//!    prints both and the ratio. Needs the interpreter of `scripts/python-chatvault.sh`
//!    (`CHATVAULT_PYTHON_CHATVAULT`, else the script's venv); skipped, with the reason,
//!    without it.
//!
//! `cargo bench -p chatvault-memory --bench append` runs both.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // a benchmark may unwrap

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use chatvault_core::{ChatVault, Conversation, MessageRange, NewMessage, Role};
use chatvault_memory::{MemoryFiles, MemoryMessages};
use criterion::{BenchmarkId, Criterion};
use tokio::runtime::Runtime;

/// Appends in the Python comparison (the figure).
const PYTHON_APPENDS: usize = 4_000;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A new conversation holding `n` messages, written in batches of 1,000.
async fn conversation(vault: &ChatVault, n: usize) -> Conversation {
    let mut chat = vault.create_conversation(None).await.unwrap();
    let mut left = n;
    while left > 0 {
        let batch = left.min(1_000);
        let messages = (0..batch)
            .map(|i| NewMessage::new(Role::User, format!("message {i}")))
            .collect();
        chat.append(messages).await.unwrap();
        left -= batch;
    }
    chat
}

/// Panics unless `chat` holds `count` messages, the last of them the bench's (read
/// back from the store, untimed): what is timed must be appends that are kept.
async fn check_stored(chat: &Conversation, count: u64) {
    assert_eq!(chat.message_count(), count, "messages the vault counts");
    let last = chat
        .messages_page(&MessageRange::last(1))
        .await
        .unwrap()
        .items;
    assert!(
        matches!(last.as_slice(), [m] if m.seq == count && m.content() == "Hello, vault!"),
        "the last append is not stored: {last:?}"
    );
}

fn add_message(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("add_message/at");
    for n in [10usize, 1_000, 100_000] {
        let segment = (n / 10).max(100) as u64;
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
            // The conversation and how many appends it has had since it held n.
            let mut current: Option<(Conversation, u64)> = None;
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    let mut done = 0;
                    while done < iters {
                        if current.as_ref().is_none_or(|(_, grown)| *grown >= segment) {
                            current = Some((conversation(&vault, n).await, 0));
                        }
                        let (chat, grown) = current.as_mut().unwrap();
                        let these = (segment - *grown).min(iters - done);
                        let start = Instant::now();
                        for _ in 0..these {
                            chat.add_message(Role::User, "Hello, vault!").await.unwrap();
                        }
                        total += start.elapsed();
                        *grown += these;
                        done += these;
                        check_stored(chat, n as u64 + *grown).await;
                    }
                    total
                })
            });
        });
    }
    group.finish();
}

/// The interpreter with the Python `chatvault` installed, or why there is none.
fn python() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("CHATVAULT_PYTHON_CHATVAULT").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/python-chatvault.sh"
    );
    let out = Command::new("bash")
        .args([script, "path"])
        .output()
        .map_err(|e| format!("cannot run bash {script}: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Seconds the Python library takes for `n` appends with its `MemoryMessages`.
fn python_appends(python: &PathBuf, n: usize) -> Result<f64, String> {
    let files = std::env::temp_dir().join(format!("chatvault-bench-{}", std::process::id()));
    let snippet = format!(
        "import time\n\
         from chatvault import ChatVault\n\
         from chatvault.backends import MemoryMessages, LocalFiles\n\
         vault = ChatVault(messages=MemoryMessages(), files=LocalFiles(base_path={files:?}))\n\
         chat = vault.create_conversation(user_id='user-123')\n\
         start = time.perf_counter()\n\
         for _ in range({n}):\n    chat.add_message('user', 'Hello, vault!')\n\
         print(time.perf_counter() - start)\n"
    );
    let out = Command::new(python)
        .args(["-c", &snippet])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    let _ = std::fs::remove_dir_all(&files);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("unexpected output from Python: {e}"))
}

/// Seconds ChatVault takes for `n` appends to a new memory conversation.
fn rust_appends(n: usize) -> f64 {
    runtime().block_on(async {
        let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
        let mut chat = vault.create_conversation(None).await.unwrap();
        let start = Instant::now();
        for _ in 0..n {
            chat.add_message(Role::User, "Hello, vault!").await.unwrap();
        }
        let elapsed = start.elapsed().as_secs_f64();
        check_stored(&chat, n as u64).await;
        elapsed
    })
}

fn compare_with_python() {
    let python = match python() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("python {PYTHON_APPENDS} appends: skipped: {why}");
            return;
        }
    };
    let py = match python_appends(&python, PYTHON_APPENDS) {
        Ok(s) => s,
        Err(why) => {
            eprintln!("python {PYTHON_APPENDS} appends: skipped: {why}");
            return;
        }
    };
    // The best of three, as Criterion's figures are of a warm process.
    let rust = (0..3)
        .map(|_| rust_appends(PYTHON_APPENDS))
        .fold(f64::INFINITY, f64::min);
    println!(
        "{PYTHON_APPENDS} appends: Python chatvault 0.1.0 {:.3} s, ChatVault {:.3} ms: {:.0}x",
        py,
        rust * 1e3,
        py / rust
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    add_message(&mut c);
    c.final_summary();
    compare_with_python();
}
