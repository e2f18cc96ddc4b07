//! `HistoryOptions::recent`: what `prepare_history` reads of a long conversation (the
//! opening instructions and the newest messages only), counted on a backend with short
//! pages.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::sync::atomic::Ordering;

use chatvault_core::{NewMessage, Part, Role};
use chatvault_llm::{ApproxCounter, FileMode, HistoryOptions, PrepareHistory, ReplayMessage};
use common::paged;

/// `user` for even `i`, `assistant` for odd: the turns of a chat.
fn alternating(i: usize) -> Role {
    if i.is_multiple_of(2) {
        Role::User
    } else {
        Role::Assistant
    }
}

/// The roles and texts (or tool call ids) of prepared history, to compare in one line.
fn shape(history: &[ReplayMessage]) -> Vec<String> {
    history
        .iter()
        .map(|m| {
            let what: Vec<String> = m
                .parts
                .iter()
                .map(|p| match p {
                    Part::Text { text } => text.clone(),
                    Part::ToolCall(c) => format!("call {}", c.id),
                    Part::ToolResult(r) => format!("result {}", r.call_id),
                    other => format!("{other:?}"),
                })
                .collect();
            format!("{}: {}", m.role.as_str(), what.join(" + "))
        })
        .collect()
}

/// The [`shape`] of what `prepare_history` prepares with `options`.
async fn prepared(c: &chatvault_core::Conversation, options: &HistoryOptions) -> Vec<String> {
    shape(&c.prepare_history(options).await.expect("prepare_history"))
}

#[tokio::test]
async fn recent_history_reads_the_opening_instructions_and_the_newest_messages_only() {
    let (mut c, backend) = paged(5).await;
    c.add_message(Role::System, "be brief").await.unwrap();
    c.add_message(Role::Other("developer".into()), "answer in English")
        .await
        .unwrap();
    c.add_message(Role::User, "u0").await.unwrap();
    c.add(NewMessage::with_parts(
        Role::Assistant,
        vec![Part::tool_call("c0", "search", serde_json::json!({}))],
    ))
    .await
    .unwrap();
    c.add_message(Role::System, "a later instruction")
        .await
        .unwrap();
    for i in 1..1000 {
        c.add_message(alternating(i), format!("m{i}"))
            .await
            .unwrap();
    }
    // A tool call and its result, the late result of the call c0, then two more
    // messages: 1,009 in all.
    c.add(NewMessage::with_parts(
        Role::Assistant,
        vec![Part::tool_call("c1", "clock", serde_json::json!({}))],
    ))
    .await
    .unwrap();
    for call in ["c1", "c0"] {
        c.add(NewMessage::with_parts(
            Role::Tool,
            vec![Part::tool_result(call, "done", false)],
        ))
        .await
        .unwrap();
    }
    c.add_message(Role::User, "thanks").await.unwrap();
    c.add_message(Role::Assistant, "you're welcome")
        .await
        .unwrap();

    // The opening instructions, then the newest messages from the tool call on.
    let from_the_call = [
        "system: be brief",
        "developer: answer in English",
        "assistant: call c1",
        "tool: result c1",
        "user: thanks",
        "assistant: you're welcome",
    ];
    backend.read.store(0, Ordering::SeqCst);
    assert_eq!(
        prepared(&c, &HistoryOptions::new(FileMode::Base64).recent(5)).await,
        from_the_call,
        "the opening instructions, then the newest 5 but the result of c0, whose call is \
         older; the later instruction is not read"
    );
    // The newest 5 (pages of at most 5), and the first page from the start (5 messages,
    // of which the first 2 are the opening instructions).
    assert_eq!(backend.read.load(Ordering::SeqCst), 5 + 5);

    // The newest 4 start with the result of c1, whose call is older: left out too.
    assert_eq!(
        prepared(&c, &HistoryOptions::new(FileMode::Base64).recent(4)).await,
        [
            "system: be brief",
            "developer: answer in English",
            "user: thanks",
            "assistant: you're welcome",
        ]
    );

    // With a budget, the window is chosen among what was read. The whole history pins
    // the later instruction too (11 tokens), and the tool call's group (18) no longer
    // fits the 60: 8 + 12 + 11 pinned, 11 + 7 for the last two messages.
    let budget = HistoryOptions::new(FileMode::Base64).budget(60, ApproxCounter);
    assert_eq!(
        prepared(&c, &budget).await,
        [
            "system: be brief",
            "developer: answer in English",
            "system: a later instruction",
            "user: thanks",
            "assistant: you're welcome",
        ]
    );
    assert_eq!(
        prepared(&c, &budget.clone().recent(50)).await,
        from_the_call
    );

    // recent(0): the opening instructions alone; more than there are: every message.
    assert_eq!(
        prepared(&c, &HistoryOptions::new(FileMode::Base64).recent(0)).await,
        ["system: be brief", "developer: answer in English"]
    );
    let all = HistoryOptions::new(FileMode::Base64);
    assert_eq!(
        prepared(&c, &all.clone().recent(5000)).await,
        prepared(&c, &all).await
    );
}

#[tokio::test]
async fn recent_history_of_a_conversation_that_is_all_instructions_or_empty() {
    let (mut c, backend) = paged(5).await;
    let options = HistoryOptions::new(FileMode::Base64).recent(2);
    assert!(prepared(&c, &options).await.is_empty());
    // 40 instructions: the opening run is read page after page, up to the newest 2.
    for i in 0..40 {
        c.add_message(Role::System, format!("s{i}")).await.unwrap();
    }
    backend.read.store(0, Ordering::SeqCst);
    let expected: Vec<String> = (0..40).map(|i| format!("system: s{i}")).collect();
    assert_eq!(prepared(&c, &options).await, expected);
    // 2 newest, then pages of 5 from the start until the page that reaches them.
    assert_eq!(backend.read.load(Ordering::SeqCst), 2 + 40);
}
