//! The context window: pinned system messages, tool calls kept with their results,
//! whole messages, newest first, no holes; the default and the tiktoken counters.

#![allow(clippy::unwrap_used)] // tests may unwrap

use chatvault_core::{ChatVault, NewMessage, Part, Role};
use chatvault_llm::{
    ApproxCounter, ChatMessage, FileMode, HistoryOptions, PrepareHistory, ReplayMessage,
    TokenCounter, select_window,
};
use chatvault_memory::{MemoryFiles, MemoryMessages};
use proptest::prelude::*;
use serde_json::json;

/// Counts one token per character, no overhead: makes budgets easy to reason about.
struct CharCounter;

impl TokenCounter for CharCounter {
    fn count_text(&self, text: &str) -> usize {
        text.chars().count()
    }
    fn message_overhead(&self) -> usize {
        0
    }
    fn count_message(&self, message: &dyn ChatMessage) -> usize {
        message.parts().iter().map(|p| self.count_part(p)).sum()
    }
}

fn msg(role: Role, parts: Vec<Part>) -> ReplayMessage {
    ReplayMessage::new(role, parts)
}

fn text(role: Role, t: &str) -> ReplayMessage {
    msg(role, vec![Part::text(t)])
}

#[test]
fn approx_counter_is_bytes_over_four_rounded_up() {
    let c = ApproxCounter;
    assert_eq!(c.count_text(""), 0);
    assert_eq!(c.count_text("abc"), 1);
    assert_eq!(c.count_text("abcd"), 1);
    assert_eq!(c.count_text("abcde"), 2);
    assert_eq!(c.count_text("ø"), 1); // 2 bytes
    // A message: 4 overhead + role + parts.
    let m = text(Role::User, "abcdefgh");
    assert_eq!(c.count_message(&m), 4 + 1 + 2);
    let call = msg(
        Role::Assistant,
        vec![Part::tool_call("c1", "f", json!({"a": 1}))],
    );
    // id "c1" (1) + name "f" (1) + arguments {"a":1} (7 bytes: 2) = 4
    assert_eq!(c.count_message(&call), 4 + 3 + 4);
    let file = msg(Role::User, vec![Part::url("https://x.test/a.png", None)]);
    assert_eq!(c.count_message(&file), 4 + 1 + 1_000);
}

#[test]
fn system_messages_are_pinned_and_the_newest_history_is_kept() {
    let history = vec![
        text(Role::System, "SSSS"),          // 4
        text(Role::User, "old question"),    // 12
        text(Role::Assistant, "old answer"), // 10
        text(Role::System, "late rule"),     // 9, pinned wherever it is
        text(Role::User, "new"),             // 3
        text(Role::Assistant, "reply"),      // 5
    ];
    let w = select_window(&history, 4 + 9 + 3 + 5, &CharCounter);
    assert_eq!(w.indices, vec![0, 3, 4, 5]);
    assert_eq!(w.tokens, 21);
    assert_eq!(w.omitted, 2);
    assert!(w.fits);
    // One more token does not let "old answer" in; ten more does.
    assert_eq!(
        select_window(&history, 22, &CharCounter).indices,
        vec![0, 3, 4, 5]
    );
    assert_eq!(
        select_window(&history, 31, &CharCounter).indices,
        vec![0, 2, 3, 4, 5]
    );
    // Everything fits.
    let all = select_window(&history, 1_000, &CharCounter);
    assert_eq!(all.indices, (0..6).collect::<Vec<_>>());
    assert_eq!(all.omitted, 0);
}

#[test]
fn a_tool_call_and_its_results_stay_together() {
    let history = vec![
        text(Role::User, "q"), // 1
        msg(
            Role::Assistant,
            vec![
                Part::tool_call("c1", "f", json!(1)), // 2 + 1 + 1
                Part::tool_call("c2", "f", json!(1)),
            ],
        ), // 8
        msg(Role::Tool, vec![Part::tool_result("c1", "r1", false)]), // 4
        msg(Role::Tool, vec![Part::tool_result("c2", "r2", false)]), // 4
        text(Role::User, "thanks"), // 6
    ];
    // 6 + the last tool message (4) would fit 10, but not without its call.
    let w = select_window(&history, 10, &CharCounter);
    assert_eq!(w.indices, vec![4]);
    // The whole group: 8 + 4 + 4 = 16, plus 6.
    assert_eq!(
        select_window(&history, 22, &CharCounter).indices,
        vec![1, 2, 3, 4]
    );
    assert_eq!(
        select_window(&history, 23, &CharCounter).indices,
        vec![0, 1, 2, 3, 4]
    );
}

#[test]
fn the_window_has_no_holes() {
    let history = vec![
        text(Role::User, "x"), // 1: would fit, but is older than a gap
        text(Role::Assistant, "a very long answer"), // 18
        text(Role::User, "hi"), // 2
    ];
    let w = select_window(&history, 5, &CharCounter);
    assert_eq!(w.indices, vec![2]);
}

#[test]
fn pinned_messages_over_the_budget_are_reported() {
    let history = vec![
        text(Role::System, "a long system prompt"),
        text(Role::User, "q"),
    ];
    let w = select_window(&history, 5, &CharCounter);
    assert!(!w.fits);
    assert_eq!(w.indices, vec![0]);
    assert_eq!(w.tokens, 20);
    let developer = vec![text(Role::from("developer"), "dev"), text(Role::User, "q")];
    assert_eq!(select_window(&developer, 3, &CharCounter).indices, vec![0]);
}

proptest! {
    #[test]
    fn windows_respect_the_rules(
        spec in proptest::collection::vec((0u8..4, 1usize..30), 0..20),
        budget in 0usize..200,
    ) {
        // Build a history where every assistant message with a call is followed by its
        // result (as repair makes it).
        let mut history = Vec::new();
        for (i, (kind, len)) in spec.iter().enumerate() {
            let t = "x".repeat(*len);
            match kind {
                0 => history.push(text(Role::System, &t)),
                1 => history.push(text(Role::User, &t)),
                2 => history.push(text(Role::Assistant, &t)),
                _ => {
                    let id = format!("c{i}");
                    history.push(msg(Role::Assistant, vec![Part::tool_call(id.clone(), t, json!(null))]));
                    history.push(msg(Role::Tool, vec![Part::tool_result(id, "r", false)]));
                }
            }
        }
        let w = select_window(&history, budget, &CharCounter);
        let cost: usize = w.indices.iter().map(|&i| CharCounter.count_message(&history[i])).sum();
        prop_assert_eq!(cost, w.tokens);
        // System messages always in.
        for (i, m) in history.iter().enumerate() {
            if m.role == Role::System {
                prop_assert!(w.indices.contains(&i));
            }
        }
        if w.fits {
            prop_assert!(w.tokens <= budget);
        }
        // Calls and results together.
        for (i, m) in history.iter().enumerate() {
            if m.role == Role::Tool {
                prop_assert_eq!(w.indices.contains(&i), w.indices.contains(&(i - 1)));
            }
        }
        // No holes: the kept non-system messages are a suffix.
        let kept: Vec<usize> = w.indices.iter().copied().filter(|&i| history[i].role != Role::System).collect();
        let non_system: Vec<usize> = (0..history.len()).filter(|&i| history[i].role != Role::System).collect();
        prop_assert_eq!(&non_system[non_system.len() - kept.len()..], &kept[..]);
        prop_assert_eq!(w.omitted, history.len() - w.indices.len());
    }
}

#[tokio::test]
async fn prepare_history_applies_the_budget_after_repair() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let mut chat = vault.create_conversation(None).await.unwrap();
    chat.add_message(Role::System, "sys").await.unwrap();
    for i in 0..10 {
        chat.add_message(Role::User, format!("question {i} {}", "x".repeat(100)))
            .await
            .unwrap();
    }
    chat.add(NewMessage::with_parts(
        Role::Assistant,
        vec![Part::tool_call("c", "f", json!({}))],
    ))
    .await
    .unwrap();
    // No result stored: repair adds one, and the window keeps it with its call.
    let options = HistoryOptions::new(FileMode::Base64).budget(80, ApproxCounter);
    let history = chat.prepare_history(&options).await.unwrap();
    let roles: Vec<&str> = history.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool"]);
    assert!(
        history[1].parts[0]
            .as_text()
            .unwrap()
            .starts_with("question 9")
    );
}

#[cfg(feature = "tiktoken")]
mod tiktoken {
    use super::*;
    use chatvault_llm::TiktokenCounter;

    #[test]
    fn counts_match_openai_encodings() {
        let o200k = TiktokenCounter::o200k_base();
        let cl100k = TiktokenCounter::cl100k_base();
        assert_eq!(o200k.encoding(), "o200k_base");
        assert_eq!(cl100k.count_text("hello world"), 2);
        assert_eq!(o200k.count_text("hello world"), 2);
        // OpenAI's cookbook example: "tiktoken is great!" is 6 cl100k tokens.
        assert_eq!(cl100k.count_text("tiktoken is great!"), 6);
        assert_eq!(o200k.count_text(""), 0);
        // Special-token text counts as ordinary text, not as one special token.
        assert!(cl100k.count_text("<|endoftext|>") > 1);
        assert_eq!(
            TiktokenCounter::for_model("gpt-4o").unwrap().encoding(),
            "o200k_base"
        );
        assert_eq!(
            TiktokenCounter::for_model("gpt-3.5-turbo")
                .unwrap()
                .encoding(),
            "cl100k_base"
        );
        let err = TiktokenCounter::for_model("no-such-model").unwrap_err();
        assert_eq!(err.kind(), chatvault_core::ErrorKind::InvalidInput);
        // A message: 3 overhead + role + content.
        let m = text(Role::User, "hello world");
        assert_eq!(o200k.count_message(&m), 3 + 1 + 2);
    }

    #[test]
    fn exact_counts_change_what_fits() {
        // CJK text: bytes/4 undercounts it; tiktoken sees the real cost.
        let cjk = "東京の天気はどうですか。明日は雨が降りますか。";
        let history = vec![text(Role::User, cjk), text(Role::User, "ok")];
        let exact = TiktokenCounter::o200k_base();
        let approx_cost = ApproxCounter.count_message(&history[0]);
        let exact_cost = exact.count_message(&history[0]);
        assert_ne!(approx_cost, exact_cost);
        let budget = exact.count_message(&history[1]) + exact_cost;
        assert_eq!(select_window(&history, budget, &exact).indices, vec![0, 1]);
        assert_eq!(select_window(&history, budget - 1, &exact).indices, vec![1]);
    }
}
