//! Throughput of copy, export, import and verify on a generated store.
//!
//! `cargo bench -p chatvault-archive --bench speed` (sizes: `CONVERSATIONS`, default
//! 1,000, and `MESSAGES` per conversation, default 100; `ATTACH_KIB`, default 0: one
//! attachment of that many KiB per conversation, distinct bytes each; `BASELINE=0` skips
//! the SQLite writes-only baseline). Prints messages/s for each step and the process's
//! peak resident memory after each (Linux `VmHWM`), which shows whether memory follows the
//! store's size.
#![allow(clippy::unwrap_used)] // a benchmark may unwrap: any failure is fatal anyway

use std::time::Instant;

use chatvault_archive::{
    ArchiveReader, ArchiveWriter, ImportOptions, Scope, Store, copy, export, import, no_progress,
    verify_archive, verify_store,
};
use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::backend::StoredConversation;
use chatvault_core::{ConversationRecord, NewMessage, Role, UserId};
use chatvault_local::{LocalFiles, LocalMessages};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or("?".into(), |kb| format!("{:.0} MiB", kb as f64 / 1024.0))
}

fn report(step: &str, messages: u64, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{step:<28} {messages:>9} messages in {secs:>7.2} s = {:>9.0} messages/s   peak RSS {}",
        messages as f64 / secs,
        peak_rss_mib()
    );
}

async fn fill(messages: &LocalMessages, conversations: usize, per: usize) {
    let users: Vec<UserId> = (0..10)
        .map(|u| format!("user-{u}").parse().unwrap())
        .collect();
    let mut batch = Vec::new();
    for c in 0..conversations {
        let mut record = ConversationRecord::new(Some(users[c % users.len()].clone()));
        let news = (0..per)
            .map(|i| {
                let role = if i % 2 == 0 {
                    Role::User
                } else {
                    Role::Assistant
                };
                NewMessage::new(
                    role,
                    format!(
                        "message {i} of conversation {c}: {}",
                        "lorem ipsum ".repeat(8)
                    ),
                )
            })
            .collect();
        let stored = record
            .apply_append(news, chatvault_core::backend::now())
            .unwrap();
        let mut conversation = StoredConversation::new(record);
        conversation.messages = stored;
        batch.push(conversation);
        if batch.len() == 100 {
            messages.import(std::mem::take(&mut batch)).await.unwrap();
        }
    }
    messages.import(batch).await.unwrap();
}

/// The destination's own bound: create + one append per conversation, nothing read.
async fn baseline(dir: &std::path::Path, conversations: usize, per: usize) {
    let total = (conversations * per) as u64;
    let url = format!("sqlite://{}", dir.join("baseline.db").display());
    let baseline = chatvault_sql::SqliteMessages::connect(&url).await.unwrap();
    let t = Instant::now();
    for c in 0..conversations {
        use chatvault_core::MessagesBackend;
        let record = ConversationRecord::new(None);
        baseline.create(&record).await.unwrap();
        let news = (0..per)
            .map(|i| {
                NewMessage::new(
                    Role::User,
                    format!("message {i} of {c}: {}", "lorem ipsum ".repeat(8)),
                )
            })
            .collect();
        baseline.append_messages(&record.id, news).await.unwrap();
    }
    report("baseline: sqlite writes only", total, t);
}

/// One attachment of `kib` KiB (distinct bytes) in every conversation of the store.
async fn attach(messages: &LocalMessages, files: &LocalFiles, kib: usize) {
    let vault = chatvault_core::ChatVault::new(messages.clone(), files.clone());
    let store = Store::new(messages.clone(), files.clone());
    let mut ids = chatvault_archive::ConversationIds::new(&store, Scope::All);
    let mut n = 0u64;
    while let Some(id) = ids.next().await.unwrap() {
        let mut chat = vault.get_conversation(&id).await.unwrap().unwrap();
        let mut bytes = vec![0u8; kib * 1024];
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            let word = (n << 32 | i as u64).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        chat.attach_file("data.bin", bytes, "application/octet-stream")
            .await
            .unwrap();
        n += 1;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let conversations = env("CONVERSATIONS", 1_000);
    let per = env("MESSAGES", 100);
    let total = (conversations * per) as u64;
    let tmp = tempfile::tempdir().unwrap();
    println!(
        "{conversations} conversations x {per} messages, in {}",
        tmp.path().display()
    );

    let local_messages = LocalMessages::open(tmp.path().join("local/messages")).unwrap();
    fill(&local_messages, conversations, per).await;
    let local_files = LocalFiles::new(tmp.path().join("local/files")).unwrap();
    let attach_kib = env("ATTACH_KIB", 0);
    if attach_kib > 0 {
        attach(&local_messages, &local_files, attach_kib).await;
    }
    let local = Store::new(local_messages.clone(), local_files);
    println!(
        "generated ({} MiB of attachments); peak RSS {}",
        conversations * attach_kib / 1024,
        peak_rss_mib()
    );

    if env("BASELINE", 1) == 1 {
        baseline(tmp.path(), conversations, per).await;
    }

    let copy_url = format!("sqlite://{}", tmp.path().join("copy.db").display());
    let sqlite = Store::new(
        chatvault_sql::SqliteMessages::connect(&copy_url)
            .await
            .unwrap(),
        LocalFiles::new(tmp.path().join("copy.files")).unwrap(),
    );
    let t = Instant::now();
    let r = copy(
        &local,
        &sqlite,
        Scope::All,
        &ImportOptions::default(),
        &no_progress,
    )
    .await
    .unwrap();
    assert_eq!(r.messages_added, total);
    report("copy local -> sqlite", total, t);

    let t = Instant::now();
    let r = copy(
        &local,
        &sqlite,
        Scope::All,
        &ImportOptions::default(),
        &no_progress,
    )
    .await
    .unwrap();
    assert!(r.added_nothing());
    report("copy again (nothing to add)", total, t);

    let t = Instant::now();
    let dir = tmp.path().join("archive");
    let m = export(
        &local,
        Scope::All,
        ArchiveWriter::create_dir(&dir).unwrap(),
        &no_progress,
    )
    .await
    .unwrap();
    assert_eq!(m.counts.messages, total);
    report("export local -> directory", total, t);

    let t = Instant::now();
    let m = export(
        &sqlite,
        Scope::All,
        ArchiveWriter::create_tar(&tmp.path().join("a.tar")).unwrap(),
        &no_progress,
    )
    .await
    .unwrap();
    assert_eq!(m.counts.messages, total);
    report("export sqlite -> .tar", total, t);

    let t = Instant::now();
    let v = verify_store(&local, Scope::All, true, &no_progress)
        .await
        .unwrap();
    assert!(v.is_clean() && v.messages == total);
    report("verify local store", total, t);

    let t = Instant::now();
    let v = verify_store(&sqlite, Scope::All, true, &no_progress)
        .await
        .unwrap();
    assert!(v.is_clean() && v.messages == total);
    report("verify sqlite store", total, t);

    // What `chatvault verify` checks before it reads a store, and `repair --dry-run`.
    let t = Instant::now();
    let r = local_messages.repair(true).await.unwrap();
    assert!(
        r.is_clean() && r.conversations == conversations as u64,
        "{r:?}"
    );
    report("repair --dry-run local", total, t);

    let t = Instant::now();
    let db = chatvault_sql::SqliteMessages::connect(&copy_url)
        .await
        .unwrap();
    assert!(db.repair_search_index(true).await.unwrap().consistent);
    report("search index check sqlite", total, t);

    let archive = ArchiveReader::open(&dir).unwrap();
    let t = Instant::now();
    let v = verify_archive(&archive, &no_progress);
    assert!(v.is_clean() && v.messages == total);
    report("verify archive", total, t);

    let url = format!("sqlite://{}", tmp.path().join("import.db").display());
    let dst = Store::new(
        chatvault_sql::SqliteMessages::connect(&url).await.unwrap(),
        LocalFiles::new(tmp.path().join("import.files")).unwrap(),
    );
    let t = Instant::now();
    let r = import(&archive, &dst, &ImportOptions::default(), &no_progress)
        .await
        .unwrap();
    assert_eq!(r.messages_added, total);
    report("import archive -> sqlite", total, t);
}
