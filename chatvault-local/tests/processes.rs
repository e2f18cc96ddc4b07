//! `LocalMessages` across processes: a writer killed (SIGKILL) at random moments loses no
//! acknowledged message and leaves no torn record behind, and two processes appending to
//! one conversation lose nothing.
//!
//! The child processes are this test binary itself, re-run with `--exact child_process`
//! and an environment variable selecting what the child does.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ConversationRecord, Message, MessageRange, MessagesBackend, NewMessage, Role,
};
use chatvault_local::LocalMessages;

fn cid(id: &str) -> chatvault_core::ConversationId {
    chatvault_core::ConversationId::parse(id).unwrap()
}

fn uid(id: &str) -> chatvault_core::UserId {
    chatvault_core::UserId::parse(id).unwrap()
}

const MODE: &str = "CHATVAULT_LOCAL_CHILD";
const ROOT: &str = "CHATVAULT_LOCAL_CHILD_ROOT";
const CONV: &str = "CHATVAULT_LOCAL_CHILD_CONV";
const TAG: &str = "CHATVAULT_LOCAL_CHILD_TAG";
const COUNT: &str = "CHATVAULT_LOCAL_CHILD_COUNT";

/// A tiny xorshift generator, seeded from the clock (no dependency needed).
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng(nanos | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Not a test of its own: the body of the child processes. Without the environment
/// variable it does nothing.
#[test]
fn child_process() {
    let Ok(mode) = std::env::var(MODE) else {
        return;
    };
    let root = std::env::var(ROOT).unwrap();
    let conv = std::env::var(CONV).unwrap();
    let tag = std::env::var(TAG).unwrap();
    let count: u64 = std::env::var(COUNT).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = LocalMessages::open(&root).unwrap();
        let mut rng = Rng::new();
        let mut i = 0u64;
        while count == 0 || i < count {
            // Batches of 1 to 3 in "crash" mode, single messages otherwise.
            let n = if mode == "crash" { 1 + rng.below(3) } else { 1 };
            let batch: Vec<_> = (0..n)
                .map(|j| {
                    // Sizes vary so that kills land inside records of every length.
                    let pad = "x".repeat(rng.below(3000) as usize);
                    NewMessage::new(Role::User, format!("{tag}-{i}-{j} {pad}"))
                })
                .collect();
            let appended = store.append_messages(&cid(&conv), batch).await.unwrap();
            for m in &appended.messages {
                let content = m.content();
                let key = content.split(' ').next().unwrap();
                println!("APPENDED {} {key}", m.seq);
            }
            i += 1;
        }
    });
}

fn spawn_child(mode: &str, root: &Path, conv: &str, tag: &str, count: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MODE, mode)
        .env(ROOT, root)
        .env(CONV, conv)
        .env(TAG, tag)
        .env(COUNT, count.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// `(seq, key)` of each message a child reported as appended.
type Reports = Arc<Mutex<Vec<(u64, String)>>>;

/// Collects a child's `APPENDED <seq> <key>` lines as they come.
fn collect_reports(child: &mut Child) -> (Reports, std::thread::JoinHandle<()>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest may print "test child_process ... " on the same line first.
            if let Some((_, rest)) = line.split_once("APPENDED ") {
                let (seq, key) = rest.split_once(' ').unwrap();
                sink.lock()
                    .unwrap()
                    .push((seq.parse().unwrap(), key.to_owned()));
            }
        }
    });
    (lines, reader)
}

async fn read_all(store: &LocalMessages, conv: &str) -> Vec<Message> {
    let mut out = Vec::new();
    let mut range = MessageRange::all();
    loop {
        let page = store.messages(&cid(conv), &range).await.unwrap();
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => range = range.continue_from(&c).unwrap(),
            None => return out,
        }
    }
}

fn key_of(m: &Message) -> String {
    m.content().split(' ').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_at_random_moments_loses_nothing_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let conv = "crash-me";
    {
        let store = LocalMessages::open(dir.path()).unwrap();
        let mut record = ConversationRecord::new(Some(uid("u")));
        record.id = cid(conv);
        store.create(&record).await.unwrap();
    }
    let mut rng = Rng::new();
    let mut total_reported = 0;
    let mut parent_appends = 0u64;
    for round in 0..8 {
        let mut child = spawn_child("crash", dir.path(), conv, &format!("r{round}"), 0);
        let (reports, reader) = collect_reports(&mut child);
        // Let it get going (a random number of appends), then kill it mid-flight.
        let wanted = 1 + rng.below(40) as usize;
        let started = Instant::now();
        while reports.lock().unwrap().len() < wanted && started.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_micros(rng.below(20_000)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let reported = reports.lock().unwrap().clone();
        assert!(
            !reported.is_empty(),
            "round {round}: the child appended nothing"
        );
        total_reported += reported.len();

        // What the kill left (printed, not asserted: it depends on timing): the log's
        // length, which may end in a torn record.
        let conv_dir = dir.path().join("conversations").join(conv);
        let log_len = std::fs::metadata(conv_dir.join("log-1")).unwrap().len();
        println!(
            "round {round}: killed after {} acknowledged messages; log of {log_len} bytes",
            reported.len(),
        );

        // A fresh instance, as after a restart.
        let store = LocalMessages::open(dir.path()).unwrap();
        let messages = read_all(&store, conv).await;
        let n = messages.len() as u64;
        assert_eq!(
            messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            (1..=n).collect::<Vec<_>>(),
            "round {round}: seq must be 1..=n without gaps"
        );
        let by_key: HashMap<String, u64> = messages.iter().map(|m| (key_of(m), m.seq)).collect();
        assert_eq!(
            by_key.len(),
            messages.len(),
            "round {round}: a message twice"
        );
        for (seq, key) in &reported {
            assert_eq!(
                by_key.get(key),
                Some(seq),
                "round {round}: acknowledged message {key} (seq {seq}) lost"
            );
        }
        for m in &messages {
            let key = key_of(m);
            assert!(
                key.starts_with('r') || key.starts_with("parent-"),
                "round {round}: torn or foreign message {:?}",
                m.content()
            );
        }
        let record = store
            .head(&cid(conv))
            .await
            .map(|h| h.map(|h| h.record))
            .unwrap()
            .unwrap();
        assert_eq!(
            record.message_count, n,
            "round {round}: header rolled forward"
        );
        let whole = store.get(&cid(conv)).await.unwrap().unwrap();
        assert_eq!(whole.messages, messages);

        // The store takes new appends at the right place.
        let appended = store
            .append_messages(
                &cid(conv),
                vec![NewMessage::new(Role::User, format!("parent-{round}"))],
            )
            .await
            .unwrap();
        parent_appends += 1;
        assert_eq!(appended.messages[0].seq, n + 1);
        assert_eq!(appended.record.message_count, n + 1);
        let tail = store
            .messages(&cid(conv), &MessageRange::last(1))
            .await
            .unwrap();
        assert_eq!(tail.items[0].content(), format!("parent-{round}"));
    }
    assert!(total_reported as u64 >= 8 && parent_appends == 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_appending_to_one_conversation_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let conv = "shared";
    let store = LocalMessages::open(dir.path()).unwrap();
    let mut record = ConversationRecord::new(None);
    record.id = cid(conv);
    store.create(&record).await.unwrap();

    let mut children: Vec<_> = ["A", "B"]
        .into_iter()
        .map(|tag| spawn_child("append", dir.path(), conv, tag, 300))
        .collect();
    let collectors: Vec<_> = children.iter_mut().map(collect_reports).collect();
    for child in &mut children {
        assert!(child.wait().unwrap().success(), "a child failed");
    }
    let mut reported = Vec::new();
    for (lines, reader) in collectors {
        reader.join().unwrap();
        reported.extend(lines.lock().unwrap().clone());
    }
    assert_eq!(reported.len(), 600);

    let messages = read_all(&store, conv).await;
    assert_eq!(
        messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=600).collect::<Vec<_>>()
    );
    let by_key: HashMap<String, u64> = messages.iter().map(|m| (key_of(m), m.seq)).collect();
    assert_eq!(by_key.len(), 600, "each message exactly once");
    for (seq, key) in &reported {
        assert_eq!(by_key.get(key), Some(seq), "{key}");
    }
    for tag in ["A", "B"] {
        let order: Vec<u64> = (0..300).map(|i| by_key[&format!("{tag}-{i}-0")]).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{tag}'s order kept");
    }
    assert_eq!(
        store
            .head(&cid(conv))
            .await
            .map(|h| h.map(|h| h.record))
            .unwrap()
            .unwrap()
            .message_count,
        600
    );
}
