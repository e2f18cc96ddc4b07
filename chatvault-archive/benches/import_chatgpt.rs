//! Importing a generated ChatGPT export into SQLite (`SqliteMessages` on a file, WAL,
//! `synchronous = FULL`; attachments in `LocalFiles`).
//!
//! `cargo bench -p chatvault-archive --bench import_chatgpt` (sizes: `CONVERSATIONS`,
//! default 200, and `MESSAGES` per conversation, default 50; one conversation in five has
//! a regenerated reply and an edited question, so the tree has branches and the active
//! leaf is set). Criterion reports the time per import and its throughput in messages;
//! the lines printed before say messages/s of single runs: a dry run, an import into
//! memory, and the same messages appended straight to `SqliteMessages` (the backend's
//! ceiling). `BENCH_DIR=/dev/shm` puts the stores on a tmpfs (no disk flushes).
#![allow(clippy::unwrap_used, missing_docs)] // a benchmark may unwrap

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use chatvault_archive::Store;
use chatvault_archive::import::{Format, ImportOptions, import_file};
use chatvault_local::LocalFiles;
use chatvault_sql::SqliteMessages;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Map, Value, json};

/// The allocator of the `chatvault` command, so that this measures what `chatvault import`
/// does (remove these two lines to measure with the system's allocator).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A fresh directory for a store: under `BENCH_DIR` when set (e.g. a tmpfs, to see the
/// cost without the disk's flushes), else the system's temporary directory.
fn store_dir() -> tempfile::TempDir {
    match std::env::var_os("BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn node(id: &str, parent: Option<&str>, role: &str, text: &str, t: f64) -> Value {
    json!({
        "id": id,
        "parent": parent,
        "children": [],
        "message": {
            "id": id,
            "author": {"role": role, "name": null, "metadata": {}},
            "create_time": t,
            "content": {"content_type": "text", "parts": [text]},
            "status": "finished_successfully",
            "end_turn": role == "assistant",
            "weight": 1.0,
            "metadata": {"model_slug": "gpt-4o", "request_id": "req"},
            "recipient": "all"
        }
    })
}

/// A conversation of `per` messages in one chain (plus two branches every fifth one).
fn conversation(c: usize, per: usize) -> (Value, usize) {
    let mut mapping = Map::new();
    let t0 = 1_700_000_000.0 + c as f64 * 1000.0;
    mapping.insert(
        "root".into(),
        json!({"id": "root", "message": null, "parent": null, "children": []}),
    );
    let mut parent = "root".to_owned();
    for i in 0..per {
        let id = format!("m{i}");
        let role = if i.is_multiple_of(2) {
            "user"
        } else {
            "assistant"
        };
        let text = format!(
            "message {i} of conversation {c}: {}",
            "lorem ipsum ".repeat(8)
        );
        mapping.insert(
            id.clone(),
            node(&id, Some(&parent), role, &text, t0 + i as f64),
        );
        parent = id;
    }
    let mut count = per;
    let mut current = parent.clone();
    if c.is_multiple_of(5) && per >= 4 {
        let regenerated = node("r1", Some("m2"), "assistant", "another answer", t0 + 900.0);
        mapping.insert("r1".into(), regenerated);
        let edited = node("e1", Some("root"), "user", "an edited question", t0 + 950.0);
        mapping.insert("e1".into(), edited);
        count += 2;
        current = parent;
    }
    let conv = json!({
        "id": format!("conv-{c}"),
        "title": format!("Conversation {c}"),
        "create_time": t0,
        "update_time": t0 + 999.0,
        "mapping": mapping,
        "current_node": current,
        "is_archived": false,
        "default_model_slug": "gpt-4o"
    });
    (conv, count)
}

/// Writes the export; returns how many messages it holds.
fn generate(path: &Path, conversations: usize, per: usize) -> u64 {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut total = 0;
    out.write_all(b"[").unwrap();
    for c in 0..conversations {
        if c > 0 {
            out.write_all(b",").unwrap();
        }
        let (conv, n) = conversation(c, per);
        serde_json::to_writer(&mut out, &conv).unwrap();
        total += n as u64;
    }
    out.write_all(b"]").unwrap();
    out.flush().unwrap();
    total
}

async fn sqlite(dir: &Path) -> Store {
    let url = format!("sqlite://{}", dir.join("store.db").display());
    Store::new(
        SqliteMessages::connect(&url).await.unwrap(),
        LocalFiles::new(dir.join("files")).unwrap(),
    )
}

/// Where an import writes.
#[derive(Clone, Copy, Debug)]
enum Target {
    Sqlite,
    Memory,
    DryRun,
}

/// One import into a fresh store; the time of the import alone.
async fn import_once(export: &Path, expected: u64, into: Target) -> Duration {
    let dir = store_dir();
    let store = match into {
        Target::Sqlite | Target::DryRun => sqlite(dir.path()).await,
        Target::Memory => Store::new(
            chatvault_memory::MemoryMessages::new(),
            chatvault_memory::MemoryFiles::new(),
        ),
    };
    let options =
        ImportOptions::new("bench-user".parse().unwrap()).dry_run(matches!(into, Target::DryRun));
    let started = Instant::now();
    let report = import_file(
        Format::ChatGpt,
        export,
        &store,
        &options,
        &chatvault_archive::no_progress,
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert_eq!(report.messages_added, expected);
    assert!(report.failed.is_empty());
    took
}

/// The backend's ceiling: the conversations (imported into memory first) written to a
/// fresh SQLite store with one `create` and one append each, nothing else.
async fn backend_alone(export: &Path) -> Duration {
    use chatvault_core::backend::MessagesBackendExt;
    let memory = Store::new(
        chatvault_memory::MemoryMessages::new(),
        chatvault_memory::MemoryFiles::new(),
    );
    let options = ImportOptions::new("bench-user".parse().unwrap());
    let no = chatvault_archive::no_progress;
    import_file(Format::ChatGpt, export, &memory, &options, &no)
        .await
        .unwrap();
    let mut ids = chatvault_archive::ConversationIds::new(&memory, chatvault_archive::Scope::All);
    let mut conversations = Vec::new();
    while let Some(id) = ids.next().await.unwrap() {
        let head = memory.messages.head(&id).await.unwrap().unwrap();
        let range = chatvault_core::MessageRange::after(0).limit(100_000);
        let page = memory.messages.messages(&id, &range).await.unwrap();
        let news: Vec<_> = page
            .items
            .iter()
            .map(chatvault_core::Message::to_new)
            .collect();
        let mut record = head.record;
        record.message_count = 0;
        record.tree = None;
        record.title = None;
        conversations.push((record, news));
    }
    let dir = store_dir();
    let store = sqlite(dir.path()).await;
    let started = Instant::now();
    for (record, news) in conversations {
        store.messages.create(&record).await.unwrap();
        store
            .messages
            .append_messages(&record.id, news)
            .await
            .unwrap();
    }
    started.elapsed()
}

fn bench(c: &mut Criterion) {
    let (conversations, per) = (env("CONVERSATIONS", 200), env("MESSAGES", 50));
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("conversations.json");
    let messages = generate(&export, conversations, per);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for into in [Target::DryRun, Target::Memory, Target::Sqlite] {
        let took = rt.block_on(import_once(&export, messages, into));
        println!(
            "chatgpt -> {into:?}: {messages} messages in {conversations} conversations in \
             {:.2} s = {:.0} messages/s",
            took.as_secs_f64(),
            messages as f64 / took.as_secs_f64()
        );
    }
    let took = rt.block_on(backend_alone(&export));
    println!(
        "the same messages appended straight to SqliteMessages (one create and one append \
         per conversation): {:.2} s = {:.0} messages/s",
        took.as_secs_f64(),
        messages as f64 / took.as_secs_f64()
    );
    let mut group = c.benchmark_group("import");
    group.throughput(Throughput::Elements(messages));
    group.sample_size(10);
    group.bench_function("chatgpt_to_sqlite", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.block_on(import_once(&export, messages, Target::Sqlite)))
                .sum()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
