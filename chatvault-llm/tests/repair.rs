//! History repair: each rule of `llm::replay`, through stored conversations and directly,
//! and a property test that any history comes out as requests OpenAI and Anthropic accept
//! without losing a complete message.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::HashSet;
use std::time::Duration;

use chatvault_core::backend::now;
use chatvault_core::{
    ChatVault, Message, MessageStatus, NewMessage, Part, ReplyOptions, Role, ToolResult,
};
use chatvault_llm::{
    self as llm, FileMode, HistoryOptions, PrepareHistory, ReplayMessage, ReplayOptions, anthropic,
    openai, repair,
};
use chatvault_memory::{MemoryFiles, MemoryMessages};
use proptest::prelude::*;
use serde_json::{Value, json};

const MISSING: &str = "The tool call was interrupted: it has no result.";
const INTERRUPTED: &str = "[This reply was interrupted before it finished.]";
const FAILED: &str = "[This reply failed before it finished.]";

fn stored(messages: Vec<NewMessage>) -> Vec<Message> {
    messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| m.into_message(i as u64 + 1, (i > 0).then_some(i as u64)))
        .collect()
}

fn live() -> Option<chrono::DateTime<chrono::Utc>> {
    Some(now() + chrono::Duration::hours(1))
}

fn expired() -> Option<chrono::DateTime<chrono::Utc>> {
    Some(now() - chrono::Duration::seconds(1))
}

fn shape(history: &[ReplayMessage]) -> Vec<(String, Vec<Part>)> {
    history
        .iter()
        .map(|m| (m.role.as_str().to_owned(), m.parts.clone()))
        .collect()
}

// ---------- validity as the providers define it ----------

/// Chat Completions: an assistant message with tool calls is followed directly by one
/// tool message per call (same ids); no tool message anywhere else; no empty content.
fn assert_valid_openai(messages: &[Value]) {
    let mut i = 0;
    while i < messages.len() {
        let m = &messages[i];
        let role = m["role"].as_str().unwrap();
        assert_ne!(
            role, "tool",
            "tool message without a call before it at {i}: {messages:#?}"
        );
        match &m["content"] {
            Value::Null => assert!(m.get("tool_calls").is_some() || m.get("refusal").is_some()),
            Value::String(_) => {}
            Value::Array(parts) => assert!(!parts.is_empty(), "empty content at {i}"),
            other => panic!("bad content {other}"),
        }
        i += 1;
        if let Some(calls) = m.get("tool_calls") {
            let ids: Vec<&str> = calls
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap())
                .collect();
            let mut answered = Vec::new();
            while i < messages.len() && messages[i]["role"] == "tool" {
                answered.push(messages[i]["tool_call_id"].as_str().unwrap());
                i += 1;
            }
            let mut a = ids.clone();
            a.sort_unstable();
            answered.sort_unstable();
            assert_eq!(a, answered, "calls and results differ: {messages:#?}");
        }
    }
}

/// Anthropic: roles alternate; after an assistant turn with tool_use blocks comes a user
/// turn that starts with exactly their tool_result blocks; no tool_result elsewhere; no
/// empty content or empty text blocks.
fn assert_valid_anthropic(messages: &[Value]) {
    let mut pending: Option<Vec<String>> = None;
    let mut last_role = "";
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap();
        assert_ne!(role, last_role, "two {role} turns in a row at {i}");
        last_role = role;
        let blocks = m["content"].as_array().unwrap();
        assert!(!blocks.is_empty(), "empty content at {i}");
        for b in blocks {
            if b["type"] == "text" {
                assert_ne!(b["text"], "", "empty text block at {i}");
            }
        }
        let results: Vec<String> = blocks
            .iter()
            .take_while(|b| b["type"] == "tool_result")
            .map(|b| b["tool_use_id"].as_str().unwrap().to_owned())
            .collect();
        let all_results = blocks.iter().filter(|b| b["type"] == "tool_result").count();
        assert_eq!(
            results.len(),
            all_results,
            "tool_result after other blocks at {i}"
        );
        match pending.take() {
            Some(mut ids) => {
                assert_eq!(role, "user");
                let mut got = results.clone();
                ids.sort();
                got.sort();
                assert_eq!(ids, got, "results do not match calls at {i}: {messages:#?}");
            }
            None => assert!(results.is_empty(), "tool_result without a call at {i}"),
        }
        let calls: Vec<String> = blocks
            .iter()
            .filter(|b| b["type"] == "tool_use")
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect();
        if !calls.is_empty() {
            pending = Some(calls);
        }
    }
    assert!(pending.is_none(), "the last tool_use has no result turn");
}

fn assert_valid(history: &[ReplayMessage]) {
    assert_valid_openai(&openai::to_messages(history).unwrap());
    assert_valid_anthropic(&anthropic::to_request(history).unwrap().messages);
}

// ---------- each rule ----------

#[test]
fn rule_1_complete_messages_are_kept_whole() {
    let history = stored(vec![
        NewMessage::new(Role::System, "sys"),
        NewMessage::new(Role::User, "q"),
        NewMessage::with_parts(
            Role::Assistant,
            vec![Part::text("a"), Part::tool_call("c1", "f", json!({"x": 1}))],
        ),
        NewMessage::with_parts(Role::Tool, vec![Part::tool_result("c1", "r", false)]),
        NewMessage::new(Role::Assistant, "done"),
    ]);
    let repaired = repair(&history, &ReplayOptions::default());
    assert_eq!(repaired.len(), history.len());
    for (r, m) in repaired.iter().zip(&history) {
        assert_eq!(r.parts, m.parts);
        assert_eq!(r.role, m.role);
        assert_eq!(
            r.source.as_ref(),
            Some(&m.id).filter(|_| m.role != Role::Tool)
        );
    }
    assert_valid(&repaired);
}

#[test]
fn rule_2_replies_still_being_written_are_left_out() {
    let history = stored(vec![
        NewMessage::new(Role::User, "q"),
        NewMessage::with_parts(
            Role::Assistant,
            vec![Part::text("half"), Part::tool_call("c1", "f", json!({}))],
        )
        .with_status(MessageStatus::Streaming, live()),
        NewMessage::with_parts(Role::Assistant, vec![]).with_status(MessageStatus::Pending, live()),
    ]);
    let repaired = repair(&history, &ReplayOptions::default());
    assert_eq!(
        shape(&repaired),
        vec![("user".into(), vec![Part::text("q")])]
    );
}

#[test]
fn rule_3_interrupted_and_failed_replies_keep_their_checkpoint_with_a_marker() {
    let history = stored(vec![
        NewMessage::new(Role::User, "q"),
        // Lease ran out: reads as interrupted.
        NewMessage::new(Role::Assistant, "The answer is")
            .with_status(MessageStatus::Streaming, expired()),
        NewMessage::new(Role::User, "again"),
        NewMessage::new(Role::Assistant, "Partial").with_status(MessageStatus::Failed, None),
        // Nothing checkpointed: nothing to replay.
        NewMessage::with_parts(Role::Assistant, vec![])
            .with_status(MessageStatus::Pending, expired()),
        NewMessage::new(Role::User, "third"),
    ]);
    let repaired = repair(&history, &ReplayOptions::default());
    assert_eq!(
        shape(&repaired),
        vec![
            ("user".into(), vec![Part::text("q")]),
            (
                "assistant".into(),
                vec![Part::text("The answer is"), Part::text(INTERRUPTED)]
            ),
            ("user".into(), vec![Part::text("again")]),
            (
                "assistant".into(),
                vec![Part::text("Partial"), Part::text(FAILED)]
            ),
            ("user".into(), vec![Part::text("third")]),
        ]
    );
    // Markers can be changed or turned off.
    let quiet = ReplayOptions::default()
        .interrupted_marker(None)
        .failed_marker(Some("(failed)".into()));
    let repaired = repair(&history, &quiet);
    assert_eq!(repaired[1].parts, vec![Part::text("The answer is")]);
    assert_eq!(
        repaired[3].parts,
        vec![Part::text("Partial"), Part::text("(failed)")]
    );
}

#[test]
fn rule_3_marker_goes_before_the_tool_calls_and_rule_4_answers_them() {
    let history = stored(vec![
        NewMessage::new(Role::User, "q"),
        NewMessage::with_parts(
            Role::Assistant,
            vec![
                Part::text("Checking"),
                Part::tool_call("c1", "f", json!({})),
                Part::tool_call("c2", "g", json!({})),
            ],
        )
        .with_status(MessageStatus::Streaming, None),
    ]);
    let repaired = repair(&history, &ReplayOptions::default());
    assert_eq!(
        shape(&repaired)[1..],
        [
            (
                "assistant".into(),
                vec![
                    Part::text("Checking"),
                    Part::text(INTERRUPTED),
                    Part::tool_call("c1", "f", json!({})),
                    Part::tool_call("c2", "g", json!({})),
                ]
            ),
            (
                "tool".into(),
                vec![
                    Part::tool_result("c1", MISSING, true),
                    Part::tool_result("c2", MISSING, true)
                ]
            ),
        ]
    );
    assert_eq!(repaired[2].source, None);
    assert_valid(&repaired);
}

#[test]
fn rule_4_results_move_next_to_their_calls_and_missing_ones_are_synthesised() {
    let history = stored(vec![
        NewMessage::new(Role::User, "q"),
        NewMessage::with_parts(
            Role::Assistant,
            vec![
                Part::tool_call("a", "f", json!({})),
                Part::tool_call("b", "f", json!({})),
                Part::tool_call("c", "f", json!({})),
            ],
        ),
        // The user typed while the tools ran; results were stored after, out of order,
        // one inside a user message (as Anthropic's user turns hold them).
        NewMessage::new(Role::User, "hurry up"),
        NewMessage::with_parts(Role::Tool, vec![Part::tool_result("c", "C", true)]),
        NewMessage::with_parts(
            Role::User,
            vec![Part::tool_result("a", "A", false), Part::text("also this")],
        ),
    ]);
    let repaired = repair(&history, &ReplayOptions::default());
    assert_eq!(
        shape(&repaired),
        vec![
            ("user".into(), vec![Part::text("q")]),
            ("assistant".into(), history[1].parts.clone()),
            (
                "tool".into(),
                vec![
                    Part::tool_result("a", "A", false),
                    Part::tool_result("b", MISSING, true),
                    Part::tool_result("c", "C", true),
                ]
            ),
            ("user".into(), vec![Part::text("hurry up")]),
            // The tool message whose only result moved is gone; the user message keeps its text.
            ("user".into(), vec![Part::text("also this")]),
        ]
    );
    assert_valid(&repaired);
}

#[test]
fn rule_5_orphaned_and_duplicate_results_become_text() {
    let file = Part::url("https://example.com/plot.png", None);
    let history = stored(vec![
        NewMessage::with_parts(
            Role::Tool,
            vec![Part::ToolResult(ToolResult {
                call_id: "ghost".into(),
                content: vec![Part::text("boo"), file.clone()],
                is_error: false,
            })],
        ),
        NewMessage::with_parts(Role::Assistant, vec![Part::tool_call("c", "f", json!({}))]),
        NewMessage::with_parts(Role::Tool, vec![Part::tool_result("c", "first", false)]),
        NewMessage::with_parts(Role::Tool, vec![Part::tool_result("c", "second", true)]),
    ]);
    let repaired = repair(&history, &ReplayOptions::default());
    assert_eq!(
        shape(&repaired),
        vec![
            (
                "user".into(),
                vec![Part::text("[Result of tool call ghost: boo]"), file]
            ),
            ("assistant".into(), history[1].parts.clone()),
            ("tool".into(), vec![Part::tool_result("c", "first", false)]),
            (
                "user".into(),
                vec![Part::text("[Error from tool call c: second]")]
            ),
        ]
    );
    assert_valid(&repaired);
}

#[test]
fn rule_6_messages_with_no_parts_are_left_out() {
    let history = stored(vec![
        NewMessage::with_parts(Role::User, vec![]),
        NewMessage::new(Role::User, "x"),
    ]);
    let repaired = repair(&history, &ReplayOptions::default());
    assert_eq!(
        shape(&repaired),
        vec![("user".into(), vec![Part::text("x")])]
    );
}

// ---------- through a stored conversation ----------

#[tokio::test]
async fn a_reply_whose_writer_died_replays_as_a_valid_request() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let mut chat = vault.create_conversation(None).await.unwrap();
    chat.add_message(Role::System, "Be brief.").await.unwrap();
    chat.add_message(Role::User, "Weather in Oslo?")
        .await
        .unwrap();

    // A writer streams text and a tool call, checkpoints, then "dies" (is dropped) with
    // a short lease.
    let mut reply = chat
        .begin_reply(ReplyOptions::default().lease(Duration::from_millis(50)))
        .await
        .unwrap();
    reply.push_text("Let me look that up").await.unwrap();
    reply
        .push_part(Part::tool_call(
            "call_1",
            "weather",
            json!({"city": "Oslo"}),
        ))
        .await
        .unwrap();
    reply.checkpoint().await.unwrap();
    reply.push_text(" (never checkpointed)").await.unwrap();
    drop(reply);

    // While the lease is live, the reply is not history yet.
    let options = HistoryOptions::new(FileMode::Base64);
    let early = chat.prepare_history(&options).await.unwrap();
    assert_eq!(early.len(), 2);

    tokio::time::sleep(Duration::from_millis(80)).await;
    let history = chat.prepare_history(&options).await.unwrap();
    assert_eq!(
        shape(&history),
        vec![
            ("system".into(), vec![Part::text("Be brief.")]),
            ("user".into(), vec![Part::text("Weather in Oslo?")]),
            (
                "assistant".into(),
                vec![
                    Part::text("Let me look that up"),
                    Part::text(INTERRUPTED),
                    Part::tool_call("call_1", "weather", json!({"city": "Oslo"})),
                ]
            ),
            (
                "tool".into(),
                vec![Part::tool_result("call_1", MISSING, true)]
            ),
        ]
    );
    assert_valid(&history);

    // The user goes on; a failed reply keeps what it had.
    chat.add_message(Role::User, "Try again").await.unwrap();
    let mut reply = chat.begin_reply(ReplyOptions::default()).await.unwrap();
    reply.push_text("Sorry, the").await.unwrap();
    let failed = reply.fail("model overloaded").await.unwrap();
    assert_eq!(failed.status, MessageStatus::Failed);
    let history = chat.prepare_history(&options).await.unwrap();
    assert_eq!(
        history.last().unwrap().parts,
        vec![Part::text("Sorry, the"), Part::text(FAILED)]
    );
    assert_valid(&history);
    // Nothing stored was changed by preparing.
    let stored = chat.messages().await.unwrap();
    assert_eq!(stored.len(), 5);
    assert_eq!(stored[2].status, MessageStatus::Interrupted);
    assert_eq!(
        stored[2].parts,
        vec![
            Part::text("Let me look that up"),
            Part::tool_call("call_1", "weather", json!({"city": "Oslo"}))
        ]
    );
}

// ---------- any history ----------

#[derive(Clone, Debug)]
enum Status {
    Complete,
    Live,
    Expired,
    Failed,
}

fn status_strategy() -> impl Strategy<Value = Status> {
    prop_oneof![
        4 => Just(Status::Complete),
        1 => Just(Status::Live),
        1 => Just(Status::Expired),
        1 => Just(Status::Failed),
    ]
}

fn id_strategy() -> impl Strategy<Value = String> {
    (0u8..6).prop_map(|i| format!("c{i}"))
}

fn message_strategy() -> impl Strategy<Value = NewMessage> {
    let text = "[a-z ]{1,12}";
    prop_oneof![
        text.prop_map(|t| NewMessage::new(Role::User, t)),
        text.prop_map(|t| NewMessage::new(Role::System, t)),
        (
            proptest::option::of(text),
            proptest::collection::vec(id_strategy(), 0..3),
            status_strategy()
        )
            .prop_map(|(t, ids, status)| {
                let mut parts: Vec<Part> = t.into_iter().map(Part::text).collect();
                let mut seen = HashSet::new();
                for id in ids {
                    if seen.insert(id.clone()) {
                        parts.push(Part::tool_call(id, "tool", json!({"q": 1})));
                    }
                }
                let m = NewMessage::with_parts(Role::Assistant, parts);
                match status {
                    Status::Complete => m,
                    Status::Live => m.with_status(MessageStatus::Streaming, live()),
                    Status::Expired => m.with_status(MessageStatus::Streaming, expired()),
                    Status::Failed => m.with_status(MessageStatus::Failed, None),
                }
            }),
        (id_strategy(), text, any::<bool>()).prop_map(|(id, t, err)| NewMessage::with_parts(
            Role::Tool,
            vec![Part::tool_result(id, t, err)]
        )),
        (id_strategy(), text).prop_map(|(id, t)| NewMessage::with_parts(
            Role::User,
            vec![Part::tool_result(id, "r", false), Part::text(t)]
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn any_history_repairs_into_valid_requests_without_losing_complete_messages(
        messages in proptest::collection::vec(message_strategy(), 0..14)
    ) {
        let history = stored(messages);
        let repaired = repair(&history, &ReplayOptions::default());
        assert_valid(&repaired);

        // Every tool call is answered exactly once, right after its message.
        for (i, m) in repaired.iter().enumerate() {
            let calls: Vec<&str> = m.parts.iter().filter_map(|p| match p {
                Part::ToolCall(c) => Some(c.id.as_str()),
                _ => None,
            }).collect();
            if !calls.is_empty() {
                let next = &repaired[i + 1];
                prop_assert_eq!(&next.role, &Role::Tool);
                let answered: Vec<&str> = next.parts.iter().filter_map(|p| match p {
                    Part::ToolResult(r) => Some(r.call_id.as_str()),
                    _ => None,
                }).collect();
                prop_assert_eq!(calls, answered);
            }
        }

        // No complete message is lost: its non-result parts are all in the message made
        // from it, in order; each of its results is somewhere in the output, as a result
        // or as text naming its call.
        let all_parts: Vec<&Part> = repaired.iter().flat_map(|m| &m.parts).collect();
        for m in history.iter().filter(|m| m.status == MessageStatus::Complete) {
            let kept: Vec<Part> = m.parts.iter()
                .filter(|p| !matches!(p, Part::ToolResult(_))).cloned().collect();
            if !kept.is_empty() {
                let out = repaired.iter().find(|r| r.source.as_ref() == Some(&m.id));
                prop_assert!(out.is_some(), "complete message {} lost", m.id);
                let out: Vec<Part> = out.unwrap().parts.iter()
                    .filter(|p| kept.contains(p)).cloned().collect();
                prop_assert_eq!(out, kept);
            }
            for r in m.tool_results() {
                let found = all_parts.iter().any(|p| match p {
                    Part::ToolResult(x) => x == r,
                    Part::Text { text } => text.contains(&format!("tool call {}:", r.call_id)),
                    _ => false,
                });
                prop_assert!(found, "result for {} lost", r.call_id);
            }
        }
    }
}

#[test]
fn repaired_history_also_converts_to_responses_items() {
    let history = stored(vec![
        NewMessage::new(Role::User, "q"),
        NewMessage::with_parts(Role::Assistant, vec![Part::tool_call("c", "f", json!({}))])
            .with_status(MessageStatus::Streaming, None),
    ]);
    let items =
        llm::responses::to_input_items(&repair(&history, &ReplayOptions::default())).unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "message",
            "message",
            "function_call",
            "function_call_output"
        ]
    );
    assert_eq!(items[3]["output"], MISSING);
}
