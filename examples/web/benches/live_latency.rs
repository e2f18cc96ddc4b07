//! Checkpoint-to-reader latency of live replies (issue #25), on `LocalMessages` and
//! `SqliteMessages` (temporary directories).
//!
//! `REPLIES` replies stream at once for `SECONDS` seconds, each written by a
//! `ReplyWriter` with the **default checkpoint policy** (a checkpoint once a second, or
//! at 16 KiB) from a token of 4 to 7 bytes every 20 ms (a model at about 50 tokens/s),
//! each started at a random phase; each has one `ReplyFollower` reading it from offset 0.
//! A sample is one checkpoint: from the moment the writer's `push_text` that
//! checkpoints starts (so the write itself counts) to the moment the follower's `next()`
//! returns the text up to that checkpoint. Three readers:
//!
//! - `woken`: the follower shares the writer's `ChatVault` (in-process wake-up);
//! - `polled-250ms`: the follower reads through another `ChatVault` over the same store,
//!   as a reader in another process would (not woken), at the default poll interval;
//! - `polled-25ms`: the same at a poll interval of 25 ms.
//!
//! `cargo bench -p web-example --bench live_latency` prints, for each backend and reader,
//! the number of samples, p50, p90, p99 and max, and the p50 / p99 of the checkpoint
//! writes themselves.

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark may unwrap: any failure is fatal

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatvault_core::{
    ChatVault, FilesBackend, FollowOptions, MessagesBackend, ReplyEvent, ReplyOptions, Role,
};
use chatvault_local::{LocalFiles, LocalMessages};
use chatvault_sql::SqliteMessages;

/// Replies streaming at once.
const REPLIES: usize = 40;
/// How long each configuration runs.
const SECONDS: u64 = 12;
/// Time between two tokens of one reply.
const TOKEN_EVERY: Duration = Duration::from_millis(20);

/// One reply's checkpoints: (text length after it, when its write started, how long the
/// write took).
type Checkpoints = Arc<Mutex<Vec<(usize, Instant, Duration)>>>;
/// What one follower saw: (text length after the delta, when it got it).
type Seen = Arc<Mutex<Vec<(usize, Instant)>>>;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A small deterministic generator (xorshift64).
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Streams one reply for `SECONDS`, recording each checkpoint.
async fn write_reply(
    vault: ChatVault,
    user_seed: u64,
    started: tokio::sync::oneshot::Sender<(
        chatvault_core::ConversationId,
        chatvault_core::MessageId,
    )>,
    checkpoints: Checkpoints,
) {
    let mut seed = user_seed | 1;
    let mut chat = vault.create_conversation(None).await.unwrap();
    chat.add_message(Role::User, "Tell me everything")
        .await
        .unwrap();
    // A random phase, so that the replies do not checkpoint in step.
    tokio::time::sleep(Duration::from_millis(next(&mut seed) % 1000)).await;
    let mut reply = chat.begin_reply(ReplyOptions::default()).await.unwrap();
    started
        .send((chat.id().clone(), reply.message_id().clone()))
        .unwrap();
    let end = Instant::now() + Duration::from_secs(SECONDS);
    let mut tick = tokio::time::interval(TOKEN_EVERY);
    while Instant::now() < end {
        tick.tick().await;
        let token = &"word, words"[..4 + (next(&mut seed) % 4) as usize];
        let revision = reply.message().revision;
        let at = Instant::now();
        reply.push_text(token).await.unwrap();
        if reply.message().revision != revision {
            let len = reply.message().content().len();
            checkpoints.lock().unwrap().push((len, at, at.elapsed()));
        }
    }
    reply.finish(None).await.unwrap();
}

/// Follows one reply to its end, recording when each delta arrived.
async fn follow_reply(
    vault: ChatVault,
    started: tokio::sync::oneshot::Receiver<(
        chatvault_core::ConversationId,
        chatvault_core::MessageId,
    )>,
    options: FollowOptions,
    seen: Seen,
) {
    let (conversation, message) = started.await.unwrap();
    let mut follower = vault.follow_reply(&conversation, &message, 0, options);
    while let Some(event) = follower.next().await.unwrap() {
        if let ReplyEvent::Delta { offset, text } = event {
            let len = offset as usize + text.len();
            seen.lock().unwrap().push((len, Instant::now()));
        }
    }
}

/// Runs one configuration and prints its figures.
async fn run(
    backend: &str,
    reader: &str,
    messages: Arc<dyn MessagesBackend>,
    files: Arc<dyn FilesBackend>,
    poll: Option<Duration>,
) {
    let writer_vault = ChatVault::from_arcs(messages.clone(), files.clone());
    let reader_vault = match poll {
        None => writer_vault.clone(),
        Some(_) => ChatVault::from_arcs(messages, files),
    };
    let options =
        FollowOptions::default().poll_interval(poll.unwrap_or(Duration::from_millis(250)));
    let mut tasks = Vec::new();
    let mut all = Vec::new();
    for i in 0..REPLIES {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let checkpoints: Checkpoints = Arc::default();
        let seen: Seen = Arc::default();
        all.push((checkpoints.clone(), seen.clone()));
        let seed = 0x2545_f491_4f6c_dd1d_u64.wrapping_mul(i as u64 + 1);
        tasks.push(tokio::spawn(write_reply(
            writer_vault.clone(),
            seed,
            tx,
            checkpoints,
        )));
        tasks.push(tokio::spawn(follow_reply(
            reader_vault.clone(),
            rx,
            options.clone(),
            seen,
        )));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut latencies = Vec::new();
    let mut writes = Vec::new();
    for (checkpoints, seen) in all {
        let seen = seen.lock().unwrap();
        for &(len, at, write) in checkpoints.lock().unwrap().iter() {
            writes.push(write);
            let got = seen
                .iter()
                .find(|(covered, _)| *covered >= len)
                .expect("every checkpoint reaches the follower");
            latencies.push(got.1.saturating_duration_since(at));
        }
    }
    latencies.sort();
    writes.sort();
    println!(
        "{backend:<7} {reader:<13} samples {:>4}  p50 {:>9}  p90 {:>9}  p99 {:>9}  max {:>9}   (checkpoint write p50 {}, p99 {})",
        latencies.len(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.90)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
        ms(percentile(&writes, 0.50)),
        ms(percentile(&writes, 0.99)),
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let readers = [
            ("woken", None),
            ("polled-250ms", Some(Duration::from_millis(250))),
            ("polled-25ms", Some(Duration::from_millis(25))),
        ];
        for (reader, poll) in readers {
            let dir = tempfile::tempdir().unwrap();
            let messages = Arc::new(LocalMessages::open(dir.path().join("messages")).unwrap());
            let files = Arc::new(LocalFiles::new(dir.path().join("files")).unwrap());
            run("local", reader, messages, files, poll).await;
        }
        for (reader, poll) in readers {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("chat.db").display());
            let messages = Arc::new(SqliteMessages::connect(&url).await.unwrap());
            let files = Arc::new(LocalFiles::new(dir.path().join("files")).unwrap());
            run("sqlite", reader, messages, files, poll).await;
        }
    });
}
