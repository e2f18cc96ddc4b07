//! A tool-using agent on ChatVault, with no network: `cargo run -p agent-example`.
//!
//! 1. A user asks about the weather, with a map attached.
//! 2. A scripted model (a stand-in for an LLM API: it reads the OpenAI Chat Completions
//!    request it is given and answers from a script) streams a reply that calls a tool;
//!    the reply is stored before its first token and checkpointed as it streams.
//! 3. The agent runs the tool, stores the result, and the model streams its answer.
//! 4. The user asks again; this time the process "crashes" mid-reply, right after the
//!    model asked for a tool.
//! 5. The conversation is resumed from storage (a new vault opened on the same
//!    directory, as another process would): the crashed reply reads as interrupted, and
//!    the history is repaired (its tool call gets a synthetic error result) and printed as
//!    the request bodies for OpenAI Chat Completions and Anthropic Messages.
//!
//! Everything is stored on the local backends (`LocalMessages`, `LocalFiles`) under
//! `$CHATVAULT_DATA`, or under a temporary directory removed at exit when it is unset.

use std::path::Path;
use std::time::Duration;

use chatvault_core::{ChatVault, Conversation, NewMessage, Part, ReplyOptions, Role, UserId};
use chatvault_llm::{self as llm, ApproxCounter, FileMode, HistoryOptions, PrepareHistory};
use chatvault_local::{LocalFiles, LocalMessages};
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error>;

/// A 1x1 PNG: the "map" the user attaches.
const MAP_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0x64, 0xf8, 0xcf, 0x50,
    0x0f, 0x00, 0x03, 0x86, 0x01, 0x80, 0x5a, 0x34, 0x7d, 0x6b, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// One streamed event from the model.
enum Event {
    Text(String),
    ToolCall {
        id: String,
        name: String,
        arguments: Value,
    },
}

/// A stand-in for a streaming LLM API.
struct ScriptedModel;

impl ScriptedModel {
    /// Answers an OpenAI Chat Completions request body: after a tool result, with the
    /// weather it says; after a user message, by asking for the weather tool.
    /// Returns the streamed events and the final chunk (`model` and `usage`, in the Chat
    /// Completions shape).
    fn stream(&self, request: &Value) -> Result<(Vec<Event>, Value), Error> {
        let messages = request["messages"]
            .as_array()
            .ok_or("the request has no messages")?;
        let last = messages.last().ok_or("the request has no messages")?;
        let (text, call) = if last["role"] == "tool" {
            let result: Value = serde_json::from_str(last["content"].as_str().unwrap_or("{}"))?;
            (
                format!(
                    "It is {}°C and {} in {} right now. Bring a jacket!",
                    result["temperature_c"],
                    result["sky"].as_str().unwrap_or("?"),
                    result["city"].as_str().unwrap_or("?")
                ),
                None,
            )
        } else {
            let question = last["content"].to_string();
            let city = if question.contains("Bergen") {
                "Bergen"
            } else {
                "Oslo"
            };
            (
                format!("Let me check the weather in {city}."),
                Some(Event::ToolCall {
                    id: format!("call_{}", messages.len()),
                    name: "get_weather".into(),
                    arguments: json!({"city": city}),
                }),
            )
        };
        let mut events: Vec<Event> = text
            .split_inclusive(' ')
            .map(|t| Event::Text(t.to_owned()))
            .collect();
        let output_tokens = events.len() as u64 + u64::from(call.is_some()) * 10;
        events.extend(call);
        let input_tokens = (request.to_string().len() as u64).div_ceil(4);
        let last_chunk = json!({
            "model": "scripted-gpt",
            "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
                      "total_tokens": input_tokens + output_tokens},
        });
        Ok((events, last_chunk))
    }
}

/// The tool.
fn get_weather(arguments: &Value) -> String {
    let city = arguments["city"].as_str().unwrap_or("nowhere");
    let (temperature, sky) = if city == "Oslo" {
        (4, "clear")
    } else {
        (7, "rainy")
    };
    json!({"city": city, "temperature_c": temperature, "sky": sky}).to_string()
}

/// The newest history within 16,000 tokens. Every message costs at least
/// `ApproxCounter`'s 4 tokens of overhead, so the window never holds more than 4,000:
/// reading the newest 4,000 (and the opening system message) is enough, however long the
/// conversation grows.
fn history_options() -> HistoryOptions {
    HistoryOptions::new(FileMode::Base64)
        .budget(16_000, ApproxCounter)
        .recent(4_000)
}

/// Runs the agent loop until the model answers without a tool call. With `crash`, the
/// process "dies" right after the model's first tool call: the reply is checkpointed
/// and never finished.
async fn agent_turn(
    chat: &mut Conversation,
    model: &ScriptedModel,
    crash: bool,
) -> Result<(), Error> {
    loop {
        let history = chat.prepare_history(&history_options()).await?;
        let request = llm::openai::to_request("scripted-gpt", &history)?;
        let (events, last_chunk) = model.stream(&request)?;

        let options = ReplyOptions::default()
            .checkpoint_interval(Duration::from_millis(100))
            .lease(Duration::from_millis(300));
        let mut reply = chat.begin_reply(options).await?;
        print!("assistant (streaming): ");
        let mut calls = Vec::new();
        for event in events {
            match event {
                Event::Text(delta) => {
                    print!("{delta}");
                    reply.push_text(&delta).await?;
                }
                Event::ToolCall {
                    id,
                    name,
                    arguments,
                } => {
                    println!();
                    println!("assistant calls {name}({arguments}) [{id}]");
                    reply
                        .push_part(Part::tool_call(id.clone(), name, arguments.clone()))
                        .await?;
                    calls.push((id, arguments));
                }
            }
        }
        if calls.is_empty() {
            println!();
        }
        if crash && !calls.is_empty() {
            reply.checkpoint().await?;
            println!("*** the process crashes before the tool runs ***");
            drop(reply);
            return Ok(());
        }
        let message = reply
            .finish(llm::openai::usage_from_response(&last_chunk))
            .await?;
        println!(
            "  (stored reply {} as {:?}, revision {})",
            message.seq, message.status, message.revision
        );
        if calls.is_empty() {
            return Ok(());
        }
        for (id, arguments) in calls {
            let result = get_weather(&arguments);
            println!("tool {id} -> {result}");
            chat.add(NewMessage::with_parts(
                Role::Tool,
                vec![Part::tool_result(id, result, false)],
            ))
            .await?;
        }
    }
}

/// The vault on the local backends under `data`.
fn open_vault(data: &Path) -> Result<ChatVault, Error> {
    Ok(ChatVault::new(
        LocalMessages::open(data.join("messages"))?,
        LocalFiles::new(data.join("files"))?,
    ))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // $CHATVAULT_DATA, or a temporary directory removed at exit.
    let temp;
    let data = match std::env::var_os("CHATVAULT_DATA") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let vault = open_vault(&data)?;
    println!("backends: local, under {}", data.display());
    let model = ScriptedModel;

    let user: UserId = "demo-user".parse()?;
    let mut chat = vault.create_conversation(Some(&user)).await?;
    let id = chat.id().clone();
    println!("conversation {id}");

    chat.add_message(
        Role::System,
        "You are a weather assistant. Use get_weather for current conditions.",
    )
    .await?;
    let map = chat.attach_file("map.png", MAP_PNG, "image/png").await?;
    chat.add(NewMessage::with_parts(
        Role::User,
        vec![
            Part::text("What's the weather where I'm going? I marked it on the map."),
            Part::attachment(map.id.clone(), None),
        ],
    ))
    .await?;
    println!("user: What's the weather where I'm going? [map.png]");
    agent_turn(&mut chat, &model, false).await?;

    chat.add_message(Role::User, "And in Bergen?").await?;
    println!("user: And in Bergen?");
    agent_turn(&mut chat, &model, true).await?;
    drop(chat);
    drop(vault);

    // Later, as another process would: open the store again and resume.
    tokio::time::sleep(Duration::from_millis(400)).await; // the crashed writer's lease runs out
    let vault = open_vault(&data)?;
    let chat = vault
        .get_conversation(&id)
        .await?
        .ok_or("the conversation is stored")?;
    println!();
    println!(
        "resumed {id}: {} messages, {} input + {} output tokens so far",
        chat.message_count(),
        chat.usage().input_tokens,
        chat.usage().output_tokens
    );
    for message in chat.messages().await? {
        let kinds: Vec<&str> = message.parts.iter().map(Part::kind).collect();
        println!(
            "  {} {:<9} {:<11} {}",
            message.seq,
            message.role.as_str(),
            format!("{:?}", message.status).to_lowercase(),
            kinds.join(",")
        );
    }

    let history = chat.prepare_history(&history_options()).await?;
    println!();
    println!("=== OpenAI Chat Completions request ===");
    let openai = llm::openai::to_request("gpt-4o", &history)?;
    println!("{}", serde_json::to_string_pretty(&openai)?);
    println!("=== Anthropic Messages request ===");
    let anthropic = llm::anthropic::to_request(&history)?.into_body("claude-sonnet-4-5", 1024);
    println!("{}", serde_json::to_string_pretty(&anthropic)?);
    println!("=== end ===");
    Ok(())
}
