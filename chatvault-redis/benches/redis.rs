//! Benchmarks of `RedisMessages` (needs a server: `CHATVAULT_REDIS_URL`, see
//! `scripts/redis.sh`; without it the bench says so and measures nothing):
//!
//! 1. `append/at/N`: one single-message append to a conversation that holds N = 10 and
//!    100,000 messages. A backend whose append does not grow with the conversation shows
//!    the same time for both.
//! 2. `writers16`: 16 concurrent writers (tasks of one process) appending 10 messages each
//!    to one conversation, `RedisMessages` against `LocalMessages` (on a temporary
//!    directory); reported as appends per second.
//! 3. `list/at/N`: the first page (20) of one owner's listing when the owner has N = 10
//!    and 100,000 conversations.
//!
//! Criterion measures each of them on its own; then the bench prints the three ratios the
//! targets are about, each measured from samples of its two sides taken alternately in
//! the same run (median of each side), so that the machine's load weighs on both alike:
//! append at 100,000 over append at 10 (target: at most 1.2), Redis's appends/s with 16
//! writers over `LocalMessages`'s (at least 3), a listing page at 100,000 over one at 10
//! (at most 2).
//!
//! `cargo bench -p chatvault-redis --bench redis -- --warm-up-time 1 --measurement-time 3`
//! runs it briefly; `cargo bench -p chatvault-redis --bench redis -- ratios` only the
//! ratios (the filter matches none of criterion's benchmarks). Each run writes under a
//! fresh key prefix and deletes nothing: run it against a throwaway server
//! (`scripts/redis.sh` starts one).

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark may unwrap: any failure is fatal

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{ConversationRecord, ListOptions, MessagesBackend, NewMessage, Role, UserId};
use chatvault_local::LocalMessages;
use chatvault_redis::RedisMessages;
use criterion::{BenchmarkId, Criterion, Throughput};
use futures_util::future::join_all;
use tokio::runtime::Runtime;

const WRITERS: usize = 16;
const APPENDS_PER_WRITER: usize = 10;
/// The sizes compared: a small and a large conversation, or owner.
const SMALL: usize = 10;
const LARGE: usize = 100_000;
/// Samples of each side of a ratio (odd, for a plain median).
const ROUNDS: usize = 41;
/// Appends, or listings, timed together in one sample of a ratio.
const PER_SAMPLE: u32 = 50;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn server() -> Option<String> {
    let url = std::env::var("CHATVAULT_REDIS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    if url.is_none() {
        eprintln!("CHATVAULT_REDIS_URL is not set: nothing measured (scripts/redis.sh start)");
    }
    url
}

/// What every measurement works on, made once.
struct Fixture {
    rt: Runtime,
    redis: Arc<RedisMessages>,
    local: Arc<LocalMessages>,
    _dir: tempfile::TempDir,
    /// A conversation of `LARGE` messages.
    long: ConversationRecord,
    /// An owner of `SMALL` conversations, and one of `LARGE`.
    few: UserId,
    many: UserId,
}

impl Fixture {
    fn new(url: &str) -> Self {
        let rt = runtime();
        let prefix = format!("cvbench-{}", uuid::Uuid::now_v7().simple());
        let redis = rt.block_on(async {
            RedisMessages::builder(url)
                .prefix(prefix.clone())
                .build()
                .await
                .unwrap()
        });
        let dir = tempfile::tempdir().unwrap();
        let local = LocalMessages::open(dir.path()).unwrap();
        eprintln!(
            "setting up: a conversation of {LARGE} messages, owners of {SMALL} and {LARGE} conversations"
        );
        let long = rt.block_on(conversation_of(&redis, LARGE));
        let few = UserId::parse(format!("owner-{SMALL}")).unwrap();
        let many = UserId::parse(format!("owner-{LARGE}")).unwrap();
        rt.block_on(owner_of(&redis, &few, SMALL));
        rt.block_on(owner_of(&redis, &many, LARGE));
        Fixture {
            rt,
            redis: Arc::new(redis),
            local: Arc::new(local),
            _dir: dir,
            long,
            few,
            many,
        }
    }
}

/// A conversation holding `n` messages, written in batches of 1,000.
async fn conversation_of(b: &dyn MessagesBackend, n: usize) -> ConversationRecord {
    let record = ConversationRecord::new(None);
    b.create(&record).await.unwrap();
    let mut left = n;
    while left > 0 {
        let batch = left.min(1000);
        let messages = (0..batch)
            .map(|i| NewMessage::new(Role::User, format!("message {i} of a long conversation")))
            .collect();
        b.append_messages(&record.id, messages).await.unwrap();
        left -= batch;
    }
    record
}

/// Gives `owner` `n` new conversations, created 500 at a time.
async fn owner_of(b: &dyn MessagesBackend, owner: &UserId, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        join_all(chunk.iter().map(|_| {
            let record = ConversationRecord::new(Some(owner.clone()));
            async move { b.create(&record).await.unwrap() }
        }))
        .await;
    }
}

async fn append_one(b: &dyn MessagesBackend, record: &ConversationRecord) {
    b.append_messages(&record.id, vec![NewMessage::new(Role::User, "one more")])
        .await
        .unwrap();
}

/// 16 tasks appending to one conversation at once, each one message at a time.
async fn sixteen_writers(b: Arc<dyn MessagesBackend>, record: &ConversationRecord) {
    let tasks = (0..WRITERS).map(|w| {
        let b = Arc::clone(&b);
        let id = record.id.clone();
        tokio::spawn(async move {
            for i in 0..APPENDS_PER_WRITER {
                let m = NewMessage::new(Role::User, format!("writer {w}, message {i}"));
                b.append_messages(&id, vec![m]).await.unwrap();
            }
        })
    });
    for t in join_all(tasks).await {
        t.unwrap();
    }
}

async fn first_page(b: &RedisMessages, owner: &UserId, n: usize) {
    let options = ListOptions::new().limit(20).unwrap();
    let page = b.list_conversations(Some(owner), &options).await.unwrap();
    assert_eq!(page.items.len(), n.min(20));
}

fn append(c: &mut Criterion, fx: &Fixture) {
    let short = fx.rt.block_on(conversation_of(fx.redis.as_ref(), SMALL));
    let mut group = c.benchmark_group("append");
    for (n, record) in [(SMALL, &short), (LARGE, &fx.long)] {
        group.bench_function(BenchmarkId::new("at", n), |bench| {
            bench
                .to_async(&fx.rt)
                .iter(|| append_one(fx.redis.as_ref(), record))
        });
    }
    group.finish();
}

fn writers16(c: &mut Criterion, fx: &Fixture) {
    let backends: [(&str, Arc<dyn MessagesBackend>); 2] =
        [("redis", fx.redis.clone()), ("local", fx.local.clone())];
    let mut group = c.benchmark_group("writers16");
    group.throughput(Throughput::Elements((WRITERS * APPENDS_PER_WRITER) as u64));
    for (name, b) in backends {
        let record = fx.rt.block_on(conversation_of(b.as_ref(), 0));
        group.bench_function(name, |bench| {
            bench
                .to_async(&fx.rt)
                .iter(|| sixteen_writers(Arc::clone(&b), &record))
        });
    }
    group.finish();
}

fn list(c: &mut Criterion, fx: &Fixture) {
    let mut group = c.benchmark_group("list");
    for (n, owner) in [(SMALL, &fx.few), (LARGE, &fx.many)] {
        group.bench_function(BenchmarkId::new("at", n), |bench| {
            bench
                .to_async(&fx.rt)
                .iter(|| first_page(fx.redis.as_ref(), owner, n))
        });
    }
    group.finish();
}

/// `ROUNDS` samples of each of two measurements, taken alternately (which goes first
/// alternates too); each sample is the time the measurement reports. The medians, `a`'s
/// then `b`'s.
async fn paired<A, B, FA, FB>(mut a: A, mut b: B) -> (Duration, Duration)
where
    A: FnMut() -> FA,
    B: FnMut() -> FB,
    FA: Future<Output = Duration>,
    FB: Future<Output = Duration>,
{
    let mut xs = Vec::with_capacity(ROUNDS);
    let mut ys = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            xs.push(a().await);
            ys.push(b().await);
        } else {
            ys.push(b().await);
            xs.push(a().await);
        }
    }
    (median(xs), median(ys))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// How long `n` runs of `f`, one after the other, take.
async fn timed<F, Fut>(n: u32, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let start = Instant::now();
    for _ in 0..n {
        f().await;
    }
    start.elapsed()
}

/// The three ratios of the targets, each from alternate samples of its two sides.
fn ratios(fx: &Fixture) {
    let redis = fx.redis.as_ref();
    fx.rt.block_on(async {
        // Each sample of the small side appends to a new conversation of SMALL messages
        // (after one untimed append, as the large one was appended to before), so that it
        // stays small.
        let (small, large) = paired(
            || async {
                let record = conversation_of(redis, SMALL).await;
                append_one(redis, &record).await;
                timed(PER_SAMPLE, || append_one(redis, &record)).await / PER_SAMPLE
            },
            || async { timed(PER_SAMPLE, || append_one(redis, &fx.long)).await / PER_SAMPLE },
        )
        .await;
        report(
            "append, conversation of 100,000 / of 10",
            ratio(large, small),
            format!("{large:?} / {small:?} an append"),
            "at most 1.2",
        );

        // Each sample: 16 writers on a new conversation of each backend.
        let appends = (WRITERS * APPENDS_PER_WRITER) as f64;
        let (r, l) = paired(
            || async {
                let record = conversation_of(redis, 0).await;
                let start = Instant::now();
                sixteen_writers(fx.redis.clone(), &record).await;
                start.elapsed()
            },
            || async {
                let record = conversation_of(fx.local.as_ref(), 0).await;
                let start = Instant::now();
                sixteen_writers(fx.local.clone(), &record).await;
                start.elapsed()
            },
        )
        .await;
        report(
            "16 writers, RedisMessages / LocalMessages appends/s",
            ratio(l, r),
            format!(
                "{:.0} / {:.0} appends/s",
                appends / r.as_secs_f64(),
                appends / l.as_secs_f64()
            ),
            "at least 3",
        );

        let (small, large) = paired(
            || async { timed(PER_SAMPLE, || first_page(redis, &fx.few, SMALL)).await / PER_SAMPLE },
            || async {
                timed(PER_SAMPLE, || first_page(redis, &fx.many, LARGE)).await / PER_SAMPLE
            },
        )
        .await;
        report(
            "first listing page, 100,000 conversations / 10",
            ratio(large, small),
            format!("{large:?} / {small:?} a page"),
            "at most 2",
        );
    });
}

fn ratio(over: Duration, under: Duration) -> f64 {
    over.as_secs_f64() / under.as_secs_f64()
}

/// Prints a ratio, what it was made of (the medians) and its target.
fn report(what: &str, ratio: f64, detail: String, target: &str) {
    println!("ratio {what}: {ratio:.2} ({detail}; target {target})");
}

fn main() {
    let Some(url) = server() else { return };
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let fx = Fixture::new(&url);
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    append(&mut c, &fx);
    writers16(&mut c, &fx);
    list(&mut c, &fx);
    c.final_summary();
    // `cargo test --benches` runs each benchmark once, as a test: no ratios then.
    if bench_mode {
        eprintln!(
            "ratios: {ROUNDS} alternate samples of each side, median (load {})",
            load()
        );
        ratios(&fx);
        eprintln!("load after the ratios: {}", load());
    }
}

/// The machine's load average (`/proc/loadavg`), to print with the ratios.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
