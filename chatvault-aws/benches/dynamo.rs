//! What `DynamoMessages` costs on DynamoDB Local, printed as figures:
//!
//! - the median time of one append to a conversation of 10 messages and to one of 5,000,
//!   and their ratio (an append's cost must not grow with the conversation);
//! - the HTTP requests an append sends;
//! - the HTTP requests (and time) `Conversation::messages()` needs to load a
//!   5,000-message conversation.
//!
//! Needs the emulators' environment:
//!
//! ```text
//! scripts/emulators.sh start && eval "$(scripts/emulators.sh env)"
//! cargo bench -p chatvault-aws --bench dynamo
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatvault_aws::DynamoMessages;
use chatvault_core::{ChatVault, ConversationRecord, MessagesBackend, NewMessage, Role};

/// Samples per median.
const SAMPLES: usize = 40;
/// Messages of the long conversation.
const LONG: usize = 5_000;

fn message(k: usize) -> NewMessage {
    let role = if k.is_multiple_of(2) {
        Role::User
    } else {
        Role::Assistant
    };
    NewMessage::new(role, format!("message {k}: {}", "lorem ipsum ".repeat(36)))
}

async fn conversation_with(
    backend: &DynamoMessages,
    messages: usize,
) -> Result<ConversationRecord, Box<dyn Error>> {
    let record = ConversationRecord::new(Some("bench-user".into()));
    backend.create(&record).await?;
    let mut k = 0;
    while k < messages {
        let n = (messages - k).min(50);
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

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn run() -> Result<(), Box<dyn Error>> {
    let (backend, requests) = common::dynamo_counted().await;
    println!(
        "chatvault-aws DynamoMessages on {} (table {})",
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .unwrap_or_default(),
        backend.table_name()
    );

    // One conversation of 10 messages per sample, so that each append lands on exactly 10.
    let mut short = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        short.push(conversation_with(&backend, 10).await?);
    }
    let started = Instant::now();
    let long = conversation_with(&backend, LONG).await?;
    println!(
        "setup: {SAMPLES} conversations of 10 messages, one of {LONG} ({:.1} s)",
        started.elapsed().as_secs_f64()
    );

    // Warm up connections and the emulator.
    for r in short.iter().take(3) {
        backend.append_messages(&r.id, vec![message(0)]).await?;
    }
    let mut short = short.split_off(3);
    short.truncate(SAMPLES - 3);

    let vault = ChatVault::from_arcs(Arc::new(backend.clone()), Arc::new(common::NoFiles));
    let conversation = vault
        .get_conversation(&long.id)
        .await?
        .ok_or("the long conversation is gone")?;
    let mut loads = Vec::new();
    let mut load_requests = 0;
    let mut count = 0;
    for _ in 0..5 {
        requests.reset();
        let t = Instant::now();
        let messages = conversation.messages().await?;
        loads.push(t.elapsed());
        load_requests = requests.get();
        count = messages.len();
    }
    println!();
    println!("load the whole conversation with Conversation::messages():");
    println!("  messages:           {count}");
    println!("  HTTP requests:      {load_requests}");
    println!("  time (median of 5): {}", ms(median(loads)));

    let mut at_10 = Vec::new();
    let mut at_long = Vec::new();
    requests.reset();
    for r in &short {
        // Interleaved, so that both see the same machine load.
        let t = Instant::now();
        backend.append_messages(&r.id, vec![message(10)]).await?;
        at_10.push(t.elapsed());
        let t = Instant::now();
        backend
            .append_messages(&long.id, vec![message(LONG)])
            .await?;
        at_long.push(t.elapsed());
    }
    let per_append = requests.get() as f64 / (2 * short.len()) as f64;
    let (m10, mlong) = (median(at_10), median(at_long));
    println!();
    println!("append one message (median of {}):", short.len());
    println!("  at 10 existing messages:    {}", ms(m10));
    println!("  at 5,000 existing messages: {}", ms(mlong));
    println!(
        "  ratio 5,000 / 10:          {:.2}",
        mlong.as_secs_f64() / m10.as_secs_f64()
    );
    println!("  HTTP requests per append:   {per_append:.2} (GetItem + TransactWriteItems)");

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
    Ok(())
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
