//! The cost of a redaction on `LocalMessages` (`cargo bench -p chatvault-local --bench
//! redact`), printed as plain figures.
//!
//! A redaction has the conversation's log rewritten without the versions it superseded,
//! so its cost grows with the conversation. For conversations of 100, 1,000 and 10,000
//! messages (each message about 250 bytes of text, one in ten an assistant message with
//! a tool call), this times `Conversation::redact` of a message in the middle (the
//! update, then the rewrite of the whole log), 5 times on different messages, and prints
//! the median and the largest, the flushes per redaction (the crate's own counter,
//! [`chatvault_local::fsync_count`]), and the log's size; beside it, the median of an
//! ordinary `update_message` of the same conversation (one record appended, no
//! rewrite).
//!
//! `CHATVAULT_BENCH_QUICK=1` stops at 1,000 messages, for a fast smoke run.

#![allow(clippy::unwrap_used)] // a benchmark may unwrap: any failure is fatal anyway

use std::path::Path;
use std::time::{Duration, Instant};

use chatvault_core::{
    ChatVault, MessageId, MessageUpdate, MessagesBackend, NewMessage, Part, Role, UserId,
};
use chatvault_local::{LocalMessages, fsync_count};
use chatvault_memory::MemoryFiles;

/// Redactions (and ordinary updates) timed per conversation size.
const RUNS: usize = 5;

fn main() {
    let quick = std::env::var("CHATVAULT_BENCH_QUICK").is_ok_and(|v| v == "1");
    let sizes: &[usize] = if quick {
        &[100, 1_000]
    } else {
        &[100, 1_000, 10_000]
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    println!("== redact: Conversation::redact of one message, {RUNS} runs per size ==");
    println!(
        "{:>8} {:>10} {:>14} {:>14} {:>16} {:>18}",
        "messages", "log", "redact median", "redact max", "flushes/redact", "update median"
    );
    for &n in sizes {
        let root = dir.path().join(format!("n{n}"));
        runtime.block_on(measure(&root, n));
    }
}

/// Builds a conversation of `n` messages in a store at `root`, then times redactions and
/// ordinary updates of messages in its middle; prints one line.
async fn measure(root: &Path, n: usize) {
    let store = LocalMessages::open(root).unwrap();
    let vault = ChatVault::new(store.clone(), MemoryFiles::new());
    let user = UserId::parse("bench").unwrap();
    let mut c = vault.create_conversation(Some(&user)).await.unwrap();
    let text = "a chat message of about two hundred and fifty bytes: ".repeat(5);
    let mut ids: Vec<MessageId> = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let batch = chunk
            .iter()
            .map(|i| {
                if i % 10 == 9 {
                    NewMessage::with_parts(
                        Role::Assistant,
                        vec![
                            Part::text(format!("{i}: {text}")),
                            Part::tool_call(
                                format!("call-{i}"),
                                "search",
                                serde_json::json!({ "query": format!("question {i}") }),
                            ),
                        ],
                    )
                } else {
                    NewMessage::new(Role::User, format!("{i}: {text}"))
                }
            })
            .collect();
        ids.extend(c.append(batch).await.unwrap().into_iter().map(|m| m.id));
    }
    let id = c.id().clone();
    let log_bytes = log_len(root, &id);

    let mut redact = Vec::with_capacity(RUNS);
    let flushes_before = fsync_count();
    for k in 0..RUNS {
        let target = &ids[n / 2 + k];
        let started = Instant::now();
        c.redact(target, "bench").await.unwrap();
        redact.push(started.elapsed());
    }
    let flushes = (fsync_count() - flushes_before) as f64 / RUNS as f64;

    let mut update = Vec::with_capacity(RUNS);
    for k in 0..RUNS {
        let target = &ids[n / 3 + k];
        let current = store.message(&id, target).await.unwrap().unwrap();
        let change = MessageUpdate {
            parts: Some(vec![Part::text(format!("edited {k}"))]),
            ..MessageUpdate::default()
        };
        let started = Instant::now();
        store
            .update_message(&id, target, current.revision, &change)
            .await
            .unwrap();
        update.push(started.elapsed());
    }
    redact.sort_unstable();
    update.sort_unstable();
    println!(
        "{:>8} {:>10} {:>14} {:>14} {:>16.1} {:>18}",
        n,
        format!("{:.1} MiB", log_bytes as f64 / (1 << 20) as f64),
        fmt(redact[RUNS / 2]),
        fmt(redact[RUNS - 1]),
        flushes,
        fmt(update[RUNS / 2]),
    );
}

/// The size of the newest log of conversation `id` in the store at `root`.
fn log_len(root: &Path, id: &chatvault_core::ConversationId) -> u64 {
    let dir = root.join("conversations").join(id.as_str());
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let g: u64 = name.strip_prefix("log-")?.parse().ok()?;
            Some((g, e.metadata().unwrap().len()))
        })
        .max()
        .map_or(0, |(_, len)| len)
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}
