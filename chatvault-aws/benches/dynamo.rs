//! What `DynamoMessages` costs on DynamoDB Local, next to the seed's layout, measured in
//! the same run on the same emulator:
//!
//! - **the seed**: the Python chatvault 0.1.0 README's `DynamoMessages`: one item per
//!   conversation (hash key `conversation_id`, and the GSI on `user_id` its `get_by_user`
//!   needs) whose `messages` attribute is the JSON list of every message; `save` is one
//!   `PutItem` of the whole item, `get` one `GetItem`. The benchmark writes that table
//!   itself.
//! - **append**: HTTP requests per append (counted by an SDK interceptor on each client)
//!   and the median latency of one append to a conversation of 10 messages and to one of
//!   5,000, next to the seed's append at 10 messages (serialize the 10 messages, one
//!   `PutItem`), with the ratios; and the seed's same `PutItem` made conditional on the
//!   item's `last_active` (the check an append must make so that concurrent writers lose
//!   nothing, which the seed does not make): what the condition alone costs on the
//!   emulator; and the seed's same `PutItem` into ChatVault's table (keys `pk`/`sk`, the
//!   two listing GSIs; the item in neither): the least any write to that table costs, so
//!   the fastest an append to it could be;
//! - **load**: the median time to load a whole conversation of 2,000 messages (one
//!   `messages` call for every message: one `Query` page of up to 1 MB), next to the seed's
//!   `GetItem` of the same 2,000 messages (and parsing them), with the ratio; and the
//!   requests `Conversation::messages()` takes through the vault.
//! - **python** (issue #27): the same whole load next to the real Python chatvault 0.1.0
//!   on boto3, against the same DynamoDB Local, in the same run: `python/load.py`, a
//!   `MessagesBackend` for the Python package with its README's one-item layout, writes a
//!   conversation of [`LOAD`] messages once and loads it whole through the package's API
//!   (`get_conversation`, `get_messages`: one `GetItem` and the parse), timing each load
//!   itself (`time.perf_counter`); this benchmark takes turns with it, one load each at a
//!   time ([`PYTHON_TURNS`] of each after [`PYTHON_WARM_UP`] untimed), and prints the
//!   medians and the ratios (the target: ours at least 1.5x as fast), for `messages` and
//!   for `Conversation::messages()`; and, taking turns with them, the same `Query` sent
//!   raw and not decoded, whose time taken from ours is the client's own part. Needs the
//!   interpreter of `scripts/python-chatvault.sh` (`CHATVAULT_PYTHON_CHATVAULT`, else the
//!   script's venv, with boto3); skipped, with the reason, without it.
//! - **seal cycle** (issue #27): [`CYCLE`] consecutive appends of one message to one
//!   conversation, each timed: median, mean, p99 and max per append, and the ratios
//!   p99/median and mean/median, with seals in the background (the default) and with
//!   seals inside the appends. Whatever the layout does every so many appends (seal the
//!   tail) shows in the tail of that distribution.
//!
//! Needs the emulators' environment:
//!
//! ```text
//! scripts/emulators.sh start && eval "$(scripts/emulators.sh env)"
//! cargo bench -p chatvault-aws --bench dynamo               # everything
//! cargo bench -p chatvault-aws --bench dynamo -- seal_cycle # the seal cycle alone
//! cargo bench -p chatvault-aws --bench dynamo -- seed       # the seed's layout in Rust
//! cargo bench -p chatvault-aws --bench dynamo -- python     # the Python package's loads
//! bash scripts/python-chatvault.sh install                  # once, for the python section
//! ```

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "python/mod.rs"]
mod python;

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use chatvault_aws::DynamoMessages;
use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ChatVault, ConversationRecord, MessageRange, MessagesBackend, NewMessage, Role,
};
use serde::{Deserialize, Serialize};

/// Samples per median.
const SAMPLES: usize = 100;
/// Messages of the long conversation (appends).
const LONG: usize = 5_000;
/// Messages of the conversation loaded whole (the most the seed's 400 KB item holds of
/// these messages is a little over 2,000).
const LOAD: usize = 2_000;
/// Messages the conversation item's tail holds before an append seals it (the layout's
/// `TAIL_MAX_MESSAGES`, for these small messages).
const TAIL: usize = 48;
/// Rounds of each request sent before anything is timed.
const WARM_UP: usize = 300;
/// Loads per median.
const LOADS: usize = 15;
/// Consecutive appends of the seal cycle.
const CYCLE: usize = 2_000;
/// Loads of each, taking turns, in the comparison with the Python package.
const PYTHON_TURNS: usize = 61;
/// Untimed turns before those.
const PYTHON_WARM_UP: usize = 30;
/// The speed over the Python package's whole load that issue #27 asks of ours.
const PYTHON_TARGET: f64 = 1.5;

fn text(k: usize) -> String {
    format!("message {k}: {}", "lorem ipsum ".repeat(4))
}

fn role(k: usize) -> Role {
    if k.is_multiple_of(2) {
        Role::User
    } else {
        Role::Assistant
    }
}

fn message(k: usize) -> NewMessage {
    NewMessage::new(role(k), text(k))
}

/// A message as the seed's `Message.to_dict()` keeps it.
#[derive(Serialize, Deserialize)]
struct SeedMessage {
    role: String,
    content: String,
    timestamp: String,
    metadata: serde_json::Map<String, serde_json::Value>,
}

fn seed_messages(count: usize) -> Vec<SeedMessage> {
    (0..count)
        .map(|k| SeedMessage {
            role: role(k).as_str().to_owned(),
            content: text(k),
            timestamp: chatvault_core::backend::now().to_rfc3339(),
            metadata: serde_json::Map::new(),
        })
        .collect()
}

/// Where the seed's item is put.
#[derive(Clone, Copy)]
enum Place<'a> {
    /// The seed's own table, keyed by `conversation_id`.
    Seed,
    /// ChatVault's table of this name, keyed by `pk` (the id) and `sk` (`#seed`). The item
    /// has `user_id` but neither `activity` nor `list_shard`, so it is in neither GSI: this
    /// is the least any write to that table costs.
    ChatVault(&'a str),
}

/// The seed's table: hash key `conversation_id`.
struct Seed {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl Seed {
    async fn create(client: aws_sdk_dynamodb::Client) -> Result<Self, Box<dyn Error>> {
        let table = common::unique_name("seed");
        client
            .create_table()
            .table_name(&table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("conversation_id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()?,
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("user_id")
                    .attribute_type(ScalarAttributeType::S)
                    .build()?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("conversation_id")
                    .key_type(KeyType::Hash)
                    .build()?,
            )
            // The README's `get_by_user` "requires a GSI on user_id"; it reads only the
            // keys from it (the lightest projection, so the seed is not slowed).
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name("user_id-index")
                    .key_schema(
                        KeySchemaElement::builder()
                            .attribute_name("user_id")
                            .key_type(KeyType::Hash)
                            .build()?,
                    )
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::KeysOnly)
                            .build(),
                    )
                    .build()?,
            )
            .send()
            .await?;
        Ok(Seed { client, table })
    }

    /// The seed's `save`: one `PutItem` of the whole conversation. With `expect`, the put
    /// is conditional on the item's `last_active` still being `expect` (the seed's item has
    /// no version; this is the same check ChatVault's append makes, on the seed's own
    /// item, to measure what the condition costs). Returns the `last_active` written.
    async fn save(
        &self,
        id: &chatvault_core::ConversationId,
        messages: &[SeedMessage],
        expect: Option<&str>,
    ) -> Result<String, Box<dyn Error>> {
        self.save_in(Place::Seed, id, messages, expect).await
    }

    /// `save`, of the same item, in `place`.
    async fn save_in(
        &self,
        place: Place<'_>,
        id: &chatvault_core::ConversationId,
        messages: &[SeedMessage],
        expect: Option<&str>,
    ) -> Result<String, Box<dyn Error>> {
        let now = chatvault_core::backend::now()
            .timestamp_micros()
            .to_string();
        let put = match place {
            Place::Seed => self
                .client
                .put_item()
                .table_name(&self.table)
                .item("conversation_id", AttributeValue::S(id.to_string())),
            Place::ChatVault(table) => self
                .client
                .put_item()
                .table_name(table)
                .item("pk", AttributeValue::S(id.to_string()))
                .item("sk", AttributeValue::S("#seed".into())),
        };
        let mut put = put
            .item("user_id", AttributeValue::S("bench-user".into()))
            .item("title", AttributeValue::S("bench".into()))
            .item(
                "messages",
                AttributeValue::S(serde_json::to_string(messages)?),
            )
            .item("files", AttributeValue::S("[]".into()))
            .item("created_at", AttributeValue::N(now.clone()))
            .item("last_active", AttributeValue::N(now.clone()));
        if let Some(expect) = expect {
            put = put
                .condition_expression("#last_active = :expect")
                .expression_attribute_names("#last_active", "last_active")
                .expression_attribute_values(":expect", AttributeValue::N(expect.to_owned()));
        }
        put.send().await?;
        Ok(now)
    }

    /// The seed's `get`: one `GetItem`, then the messages parsed.
    async fn get(
        &self,
        id: &chatvault_core::ConversationId,
    ) -> Result<Vec<SeedMessage>, Box<dyn Error>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("conversation_id", AttributeValue::S(id.to_string()))
            .send()
            .await?;
        let item = out.item.ok_or("seed conversation missing")?;
        let Some(AttributeValue::S(messages)) = item.get("messages") else {
            return Err("seed item without messages".into());
        };
        Ok(serde_json::from_str(messages)?)
    }

    async fn drop(&self) -> Result<(), Box<dyn Error>> {
        self.client
            .delete_table()
            .table_name(&self.table)
            .send()
            .await?;
        Ok(())
    }
}

async fn conversation_with(
    backend: &DynamoMessages,
    messages: usize,
) -> Result<ConversationRecord, Box<dyn Error>> {
    let record = ConversationRecord::new(Some(common::uid("bench-user")));
    backend.create(&record).await?;
    let mut k = 0;
    while k < messages {
        let n = (messages - k).min(40);
        backend
            .append_messages(&record.id, (k..k + n).map(message).collect())
            .await?;
        k += n;
    }
    Ok(record)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn mean(samples: &[Duration]) -> Duration {
    samples.iter().sum::<Duration>() / u32::try_from(samples.len().max(1)).unwrap_or(u32::MAX)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// How many times faster `ours` is than `seed` (1.00: as fast; above: faster).
fn speed(seed: Duration, ours: Duration) -> f64 {
    seed.as_secs_f64() / ours.as_secs_f64()
}

/// The sample at quantile `q` (0..=1) of sorted `samples`.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let last = sorted.len().saturating_sub(1);
    let at = ((last as f64) * q).round() as usize;
    sorted.get(at.min(last)).copied().unwrap_or_default()
}

/// [`CYCLE`] consecutive appends of one message to one conversation, each timed: with
/// seals in the background (the default), with seals inside the appends (a transaction
/// once in [`TAIL`] appends), and, for the emulator's own spread, the same appends to
/// conversations that never reach [`TAIL`] messages (no seal at all), each on a fresh
/// table.
async fn seal_cycle() -> Result<(), Box<dyn Error>> {
    println!(
        "seal cycle: {CYCLE} consecutive appends of one message to one conversation, per mode"
    );
    let modes = [
        ("seals in the background (default)", true, CYCLE),
        (
            "seals inside the appends (background_seals(false))",
            false,
            CYCLE,
        ),
        (
            "no seal: conversations of at most 47 messages",
            true,
            TAIL - 1,
        ),
    ];
    let mut floor = None;
    for (mode, background, per_conversation) in modes {
        let (counted, requests) = common::dynamo_counted().await;
        let backend = DynamoMessages::builder(counted.table_name())
            .client(counted.client().clone())
            .background_seals(background)
            .build()
            .await?;
        let cycle = timed_cycle(&backend, &requests, per_conversation).await;
        common::drop_table(&backend).await;
        let (samples, requests_per_append) = cycle?;
        let average = mean(&samples);
        let mut sorted = samples;
        sorted.sort_unstable();
        let (mid, p99, max) = (
            quantile(&sorted, 0.5),
            quantile(&sorted, 0.99),
            quantile(&sorted, 1.0),
        );
        let (spread, skew) = (
            p99.as_secs_f64() / mid.as_secs_f64(),
            average.as_secs_f64() / mid.as_secs_f64(),
        );
        println!(
            "  {mode}: median {}, mean {}, p99 {}, max {}; {requests_per_append:.2} requests per append (the background's included)",
            ms(mid),
            ms(average),
            ms(p99),
            ms(max)
        );
        println!(
            "    p99/median {spread:.2} (target at most 3), mean/median {skew:.2} (target at most 1.3)"
        );
        if per_conversation < CYCLE {
            floor = Some((spread, skew));
        }
    }
    if let Some((spread, skew)) = floor {
        println!(
            "  (the emulator's own spread, with no seal: p99/median {spread:.2}, mean/median {skew:.2})"
        );
    }
    Ok(())
}

/// The times of [`CYCLE`] appends of one message on `backend` (after [`WARM_UP`]
/// untimed ones on a conversation of their own), `per_conversation` to each
/// conversation, one conversation after another, checked stored whole and in order;
/// and the requests `requests` counted per append, the background copies' included.
async fn timed_cycle(
    backend: &DynamoMessages,
    requests: &common::RequestCounter,
    per_conversation: usize,
) -> Result<(Vec<Duration>, f64), Box<dyn Error>> {
    let warm = conversation_with(backend, 0).await?;
    for k in 0..WARM_UP {
        backend.append_messages(&warm.id, vec![message(k)]).await?;
    }
    let mut conversations = Vec::with_capacity(CYCLE.div_ceil(per_conversation));
    for _ in 0..CYCLE.div_ceil(per_conversation) {
        conversations.push(conversation_with(backend, 0).await?);
    }
    backend.finish_seals().await;
    requests.reset();
    let mut samples = Vec::with_capacity(CYCLE);
    for k in 0..CYCLE {
        let conversation = &conversations[k / per_conversation];
        let t = Instant::now();
        backend
            .append_messages(&conversation.id, vec![message(k)])
            .await?;
        samples.push(t.elapsed());
    }
    backend.finish_seals().await;
    let sent = requests.get();
    for (c, conversation) in conversations.iter().enumerate() {
        let stored = backend
            .messages(&conversation.id, &MessageRange::all())
            .await?;
        let seqs: Vec<u64> = stored.items.iter().map(|m| m.seq).collect();
        let count = per_conversation.min(CYCLE - c * per_conversation) as u64;
        if seqs != (1..=count).collect::<Vec<_>>() {
            return Err(
                format!("stored {} of {count} messages, or out of order", seqs.len()).into(),
            );
        }
    }
    Ok((samples, sent as f64 / CYCLE as f64))
}

/// The sections `filter` (the benchmark's first argument that is not a flag) selects:
/// the comparison with the seed, the one with the Python package, and the seal cycle.
fn sections(filter: Option<&str>) -> (bool, bool, bool) {
    match filter {
        None => (true, true, true),
        Some(f) => (
            "seed".contains(f),
            "python".contains(f),
            "seal_cycle".contains(f),
        ),
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let (compare, python, cycle) = sections(filter.as_deref());
    if compare {
        compare_with_seed().await?;
    }
    if python {
        compare_with_python().await?;
    }
    if cycle {
        seal_cycle().await?;
    }
    Ok(())
}

async fn compare_with_seed() -> Result<(), Box<dyn Error>> {
    let (backend, requests) = common::dynamo_counted().await;
    let seed_requests = common::RequestCounter::default();
    let seed_client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&common::sdk_config().await)
            .interceptor(seed_requests.clone())
            .build(),
    );
    let seed = Seed::create(seed_client).await?;
    println!(
        "chatvault-aws DynamoMessages vs the seed's one-item layout, on {} (tables {}, {})",
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .unwrap_or_default(),
        backend.table_name(),
        seed.table
    );

    // One conversation of 10 messages per sample, so that each append lands on exactly
    // 10; the same for the seed.
    let started = Instant::now();
    let mut short = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        short.push(conversation_with(&backend, 10).await?);
    }
    let long = conversation_with(&backend, LONG).await?;
    let load = conversation_with(&backend, LOAD).await?;
    let seed_ten = seed_messages(10);
    let seed_load_id = chatvault_core::ConversationId::new();
    seed.save(&seed_load_id, &seed_messages(LOAD), None).await?;
    println!(
        "setup: {SAMPLES} conversations of 10 messages, one of {LONG}, one of {LOAD}, and the seed's ({:.1} s)",
        started.elapsed().as_secs_f64()
    );

    // Warm up connections and the emulator (a JVM: its compiler needs many requests of
    // each kind before their cost settles), on a conversation of its own.
    let warm = conversation_with(&backend, 0).await?;
    let floor = Place::ChatVault(backend.table_name());
    for k in 0..WARM_UP {
        backend.append_messages(&warm.id, vec![message(k)]).await?;
        let written = seed.save(&warm.id, &seed_ten, None).await?;
        seed.save(&warm.id, &seed_ten, Some(&written)).await?;
        seed.save_in(floor, &warm.id, &seed_ten, None).await?;
    }
    for _ in 0..3 {
        backend.messages(&load.id, &MessageRange::all()).await?;
        seed.get(&seed_load_id).await?;
    }

    // Appends, interleaved so that all three see the same machine load.
    let mut at_10 = Vec::new();
    let mut at_long = Vec::new();
    let mut seed_10 = Vec::new();
    let mut seed_conditional = Vec::new();
    let mut seed_in_ours = Vec::new();
    requests.reset();
    seed_requests.reset();
    for r in &short {
        let t = Instant::now();
        backend.append_messages(&r.id, vec![message(10)]).await?;
        at_10.push(t.elapsed());
        let t = Instant::now();
        backend
            .append_messages(&long.id, vec![message(LONG)])
            .await?;
        at_long.push(t.elapsed());
        let t = Instant::now();
        let written = seed.save(&r.id, &seed_ten, None).await?;
        seed_10.push(t.elapsed());
        let t = Instant::now();
        seed.save(&r.id, &seed_ten, Some(&written)).await?;
        seed_conditional.push(t.elapsed());
        let t = Instant::now();
        seed.save_in(floor, &r.id, &seed_ten, None).await?;
        seed_in_ours.push(t.elapsed());
    }
    let per_append = requests.get() as f64 / (2 * short.len()) as f64;
    let seed_per_append = seed_requests.get() as f64 / (3 * short.len()) as f64;
    let (a10, along, aseed) = (mean(&at_10), mean(&at_long), mean(&seed_10));
    let (m10, mlong, mseed) = (median(at_10), median(at_long), median(seed_10));
    let mseed_conditional = median(seed_conditional);
    let mfloor = median(seed_in_ours);
    println!();
    println!("append one message (median of {}):", short.len());
    println!(
        "  seed, PutItem of a 10-message item:  {} ({seed_per_append:.2} requests)",
        ms(mseed)
    );
    println!(
        "  chatvault at 10 messages:            {} ({per_append:.2} requests per append, counted)",
        ms(m10)
    );
    println!("  chatvault at {LONG} messages:          {}", ms(mlong));
    println!(
        "  seed's PutItem made conditional:      {} (on the item's last_active: what the condition costs)",
        ms(mseed_conditional)
    );
    println!(
        "  seed's PutItem into chatvault's table: {} (same item, keyed pk/sk, in neither GSI)",
        ms(mfloor)
    );
    println!(
        "  speed vs the seed at 10 messages:    {:.2}x (seed time / chatvault time)",
        speed(mseed, m10)
    );
    println!(
        "  conditional seed vs the seed:         {:.2}x; chatvault at 10 vs the conditional seed: {:.2}x",
        speed(mseed, mseed_conditional),
        speed(mseed_conditional, m10)
    );
    println!(
        "  the table's floor vs the seed:        {:.2}x (the seed's own put, in chatvault's table: the most any write to it reaches)",
        speed(mseed, mfloor)
    );
    println!(
        "  speed vs the seed, {LONG} vs 10 msgs:  {:.2}x (the seed cannot hold {LONG} such messages in one 400 KB item)",
        speed(mseed, mlong)
    );
    println!(
        "  chatvault {LONG} / 10 messages:        {:.2} (time ratio: flat in length)",
        mlong.as_secs_f64() / m10.as_secs_f64()
    );
    println!(
        "  means (over whole seal cycles at {LONG}): seed {}, chatvault at 10 {}, at {LONG} {}; speed vs the seed {:.2}x / {:.2}x",
        ms(aseed),
        ms(a10),
        ms(along),
        speed(aseed, a10),
        speed(aseed, along)
    );

    // Loads of the whole 2,000-message conversation, interleaved with the seed's.
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut load_requests = 0;
    let mut loaded = 0;
    let mut seed_loaded = 0;
    for _ in 0..LOADS {
        requests.reset();
        let t = Instant::now();
        let page = backend.messages(&load.id, &MessageRange::all()).await?;
        ours.push(t.elapsed());
        load_requests = requests.get();
        loaded = page.items.len();
        if page.next_cursor.is_some() {
            return Err("a 2,000-message conversation did not fit one page".into());
        }
        let t = Instant::now();
        seed_loaded = seed.get(&seed_load_id).await?.len();
        theirs.push(t.elapsed());
    }
    let (mours, mtheirs) = (median(ours), median(theirs));
    if loaded != LOAD || seed_loaded != LOAD {
        return Err(format!("loaded {loaded} and {seed_loaded} messages, not {LOAD}").into());
    }
    println!();
    println!("load a whole {LOAD}-message conversation (median of {LOADS}):");
    println!("  seed, GetItem + parse:                {}", ms(mtheirs));
    println!(
        "  chatvault, messages(all):             {} ({load_requests} request{})",
        ms(mours),
        if load_requests == 1 { "" } else { "s" }
    );
    println!(
        "  chatvault time / seed time:           {:.2} (speed {:.2}x)",
        mours.as_secs_f64() / mtheirs.as_secs_f64(),
        speed(mtheirs, mours)
    );

    // Through the vault, whose reads page as chatvault-core decides.
    let vault = ChatVault::from_arcs(Arc::new(backend.clone()), Arc::new(common::NoFiles));
    let conversation = vault
        .get_conversation(&load.id)
        .await?
        .ok_or("the conversation is gone")?;
    let mut through_vault = Vec::new();
    let mut vault_requests = 0;
    for _ in 0..5 {
        requests.reset();
        let t = Instant::now();
        let all = conversation.messages().await?;
        through_vault.push(t.elapsed());
        vault_requests = requests.get();
        if all.len() != LOAD {
            return Err("Conversation::messages() did not return every message".into());
        }
    }
    println!(
        "  Conversation::messages() (vault):     {} ({vault_requests} requests: the vault's page size)",
        ms(median(through_vault))
    );

    requests.reset();
    let t = Instant::now();
    let tail = conversation.last_messages(20).await?;
    println!();
    println!(
        "last 20 messages: {} requests, {} ({} messages)",
        requests.get(),
        ms(t.elapsed()),
        tail.len()
    );

    common::drop_table(&backend).await;
    seed.drop().await?;
    Ok(())
}

/// The SDK's `Query` of the items a whole load reads (the conversation item and the
/// chunks), without decoding them: what the emulator and the SDK cost. Returns the items.
async fn raw_query(
    backend: &DynamoMessages,
    id: &chatvault_core::ConversationId,
) -> Result<usize, Box<dyn Error>> {
    let out = backend
        .client()
        .query()
        .table_name(backend.table_name())
        .key_condition_expression("pk = :pk AND sk BETWEEN :low AND :high")
        .expression_attribute_values(":pk", AttributeValue::S(id.to_string()))
        .expression_attribute_values(":low", AttributeValue::S("#conversation".into()))
        .expression_attribute_values(":high", AttributeValue::S(format!("m#{:020}", u64::MAX)))
        .consistent_read(true)
        .send()
        .await?;
    if out.last_evaluated_key.is_some() {
        return Err("the raw Query was cut".into());
    }
    Ok(out.items.map_or(0, |items| items.len()))
}

/// Our whole load of [`LOAD`] messages next to the Python package's, taking turns.
async fn compare_with_python() -> Result<(), Box<dyn Error>> {
    let skip = |why: &str| println!("\npython: skipped: {why}");
    let interpreter = match python::interpreter() {
        Ok(p) => p,
        Err(why) => {
            skip(&why);
            return Ok(());
        }
    };
    let started = Instant::now();
    let mut py =
        match tokio::task::block_in_place(|| python::PythonLoads::start(&interpreter, LOAD)) {
            Ok(py) => py,
            Err(why) => {
                skip(&why);
                return Ok(());
            }
        };
    let (backend, requests) = common::dynamo_counted().await;
    let load = conversation_with(&backend, LOAD).await?;
    let vault = ChatVault::from_arcs(Arc::new(backend.clone()), Arc::new(common::NoFiles));
    let conversation = vault
        .get_conversation(&load.id)
        .await?
        .ok_or("the conversation is gone")?;
    println!();
    println!(
        "load a whole {LOAD}-message conversation vs the Python chatvault 0.1.0 on boto3 ({}), tables {} and {} ({:.1} s setup)",
        interpreter.display(),
        backend.table_name(),
        py.table,
        started.elapsed().as_secs_f64()
    );
    let (mut theirs, mut ours, mut through_vault, mut raw) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut load_requests, mut vault_requests, mut raw_items) = (0, 0, 0);
    for turn in 0..PYTHON_WARM_UP + PYTHON_TURNS {
        // Who goes first alternates.
        let python_first = turn.is_multiple_of(2);
        let mut python_turn = || -> Result<Duration, Box<dyn Error>> {
            let (took, count) = tokio::task::block_in_place(|| py.load())?;
            if count != LOAD {
                return Err(format!("the Python package loaded {count} messages").into());
            }
            Ok(took)
        };
        let first = if python_first {
            Some(python_turn()?)
        } else {
            None
        };
        requests.reset();
        let t = Instant::now();
        let page = backend.messages(&load.id, &MessageRange::all()).await?;
        let ours_took = t.elapsed();
        load_requests = requests.get();
        requests.reset();
        let t = Instant::now();
        let all = conversation.messages().await?;
        let vault_took = t.elapsed();
        vault_requests = requests.get();
        let t = Instant::now();
        raw_items = raw_query(&backend, &load.id).await?;
        let raw_took = t.elapsed();
        let python_took = match first {
            Some(took) => took,
            None => python_turn()?,
        };
        if page.items.len() != LOAD || page.next_cursor.is_some() || all.len() != LOAD {
            return Err(format!(
                "loaded {} and {} messages, not {LOAD}",
                page.items.len(),
                all.len()
            )
            .into());
        }
        if turn >= PYTHON_WARM_UP {
            theirs.push(python_took);
            ours.push(ours_took);
            through_vault.push(vault_took);
            raw.push(raw_took);
        }
    }
    let (mtheirs, mours, mvault, mraw) = (
        median(theirs),
        median(ours),
        median(through_vault),
        median(raw),
    );
    println!(
        "  (medians of {PYTHON_TURNS} turns, after {PYTHON_WARM_UP} untimed; load average {})",
        load_average()
    );
    println!(
        "  Python chatvault, get_conversation + get_messages: {} (one GetItem + parse, timed in Python)",
        ms(mtheirs)
    );
    println!(
        "  chatvault, messages(all):                          {} ({load_requests} request{}): {:.2}x the Python package's speed (target {PYTHON_TARGET:.1}x)",
        ms(mours),
        if load_requests == 1 { "" } else { "s" },
        speed(mtheirs, mours)
    );
    println!(
        "  chatvault, Conversation::messages() (vault):       {} ({vault_requests} request{}): {:.2}x",
        ms(mvault),
        if vault_requests == 1 { "" } else { "s" },
        speed(mtheirs, mvault)
    );
    println!(
        "  the same Query alone, not decoded:                 {} ({raw_items} items): what the emulator and the SDK take",
        ms(mraw)
    );
    println!(
        "  messages(all) less the Query alone:                {:.2} ms (decoding {LOAD} messages, the client's own part)",
        (mours.as_secs_f64() - mraw.as_secs_f64()) * 1e3
    );
    tokio::task::block_in_place(|| py.finish())?;
    common::drop_table(&backend).await;
    Ok(())
}

/// The system's load averages (1, 5, 15 minutes), or `?` where they cannot be read.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() -> ExitCode {
    if let Some(message) = common::missing_endpoint("AWS_ENDPOINT_URL_DYNAMODB") {
        eprintln!("dynamo bench: {message}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("dynamo bench: no Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dynamo bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}
