//! Compaction checkpoints in the model's view: `prepare_history` starts at the latest
//! checkpoint and reads only it and the tail; the transcript keeps every message; tool
//! calls and results stay together; checkpoints stack, follow branches and forks, survive
//! a copy by message id (what an import does) and another backend; trimmed tool output.

#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chatvault_core::{
    ChatVault, Checkpoint, Conversation, ErrorKind, Message, NewMessage, Part, Role,
};
use chatvault_llm::{
    FileMode, HistoryOptions, PrepareHistory, ReplayMessage, TrimToolResults, anthropic, openai,
};
use chatvault_local::{LocalFiles, LocalMessages};
use chatvault_memory::{MemoryFiles, MemoryMessages};
use common::paged;

/// Each prepared message in one line: `role: text` (tool calls and results by id).
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
            format!("{}: {}", m.role.as_str(), what.join(" "))
        })
        .collect()
}

async fn view(c: &Conversation, options: &HistoryOptions) -> Vec<String> {
    shape(&c.prepare_history(options).await.unwrap())
}

fn options() -> HistoryOptions {
    HistoryOptions::new(FileMode::Base64)
}

/// A system prompt, then `n` turns `q{i}` / `a{i}`; turn 3 holds a tool call and its
/// result. Returns the stored messages in order.
async fn chat(c: &mut Conversation, n: usize) -> Vec<Message> {
    let mut out = vec![c.add_message(Role::System, "be brief").await.unwrap()];
    for i in 1..=n {
        out.push(c.add_message(Role::User, format!("q{i}")).await.unwrap());
        if i == 3 {
            out.push(
                c.add(NewMessage::with_parts(
                    Role::Assistant,
                    vec![Part::tool_call("t3", "look", serde_json::json!({}))],
                ))
                .await
                .unwrap(),
            );
            out.push(
                c.add(NewMessage::with_parts(
                    Role::Tool,
                    vec![Part::tool_result("t3", "found", false)],
                ))
                .await
                .unwrap(),
            );
        }
        out.push(
            c.add_message(Role::Assistant, format!("a{i}"))
                .await
                .unwrap(),
        );
    }
    out
}

#[tokio::test]
async fn the_view_starts_at_the_latest_checkpoint_and_reads_only_the_tail() {
    let (mut c, backend) = paged(5).await;
    let stored = chat(&mut c, 200).await; // 1 + 200 * 2 + 2 = 403 messages
    let a197 = stored.iter().find(|m| m.content() == "a197").unwrap();
    let checkpoint = c
        .compact(
            "Summary: 197 turns about nothing much.",
            &a197.id,
            "test summarizer",
        )
        .await
        .unwrap();
    let info = Checkpoint::of(&checkpoint).unwrap();
    assert_eq!(info.through, a197.id);
    assert_eq!(info.covers, 1 + 197 * 2 + 2);
    assert_eq!(info.by, "test summarizer");
    assert_eq!(checkpoint.role, Role::System);
    c.add_message(Role::User, "q201").await.unwrap();

    backend.read.store(0, Ordering::SeqCst);
    let expected = [
        "system: be brief",
        "system: Summary: 197 turns about nothing much.",
        "user: q198",
        "assistant: a198",
        "user: q199",
        "assistant: a199",
        "user: q200",
        "assistant: a200",
        "user: q201",
    ];
    assert_eq!(view(&c, &options()).await, expected);
    // The tail and the checkpoint (8 messages), the page that holds the covered message
    // (pages of 5), and the first page of the branch for the opening instruction.
    let read = backend.read.load(Ordering::SeqCst);
    assert!(read <= 8 + 5 + 5, "read {read} messages of 405");

    // The transcript is complete: every message, the checkpoint among them.
    let transcript = c.messages().await.unwrap();
    assert_eq!(transcript.len(), stored.len() + 2);
    assert_eq!(transcript[..stored.len()], stored[..]);
    // Without checkpoints: every message but the checkpoint.
    assert_eq!(
        view(&c, &options().checkpoints(false)).await.len(),
        stored.len() + 1
    );
    // With recent(4): the newest 4 are q200, a200, the checkpoint and q201.
    assert_eq!(
        view(&c, &options().recent(4)).await,
        [
            "system: be brief",
            "system: Summary: 197 turns about nothing much.",
            "user: q200",
            "assistant: a200",
            "user: q201",
        ]
    );
    // The providers' shapes carry the summary.
    let history = c.prepare_history(&options()).await.unwrap();
    let request = openai::to_request("gpt-4o", &history).unwrap();
    assert_eq!(request["messages"][1]["role"], "system");
    assert_eq!(
        request["messages"][1]["content"],
        "Summary: 197 turns about nothing much."
    );
    let body = anthropic::to_request(&history)
        .unwrap()
        .into_body("claude", 100);
    assert!(
        body["system"].to_string().contains("197 turns"),
        "{}",
        body["system"]
    );
    assert_eq!(body["messages"][0]["content"][0]["text"], "q198");
}

#[tokio::test]
async fn checkpoints_stack_and_never_split_a_tool_call_from_its_result() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let mut c = vault.create_conversation(None).await.unwrap();
    let stored = chat(&mut c, 5).await;
    let call = stored
        .iter()
        .find(|m| m.tool_calls().next().is_some())
        .unwrap();
    let result = stored.iter().find(|m| m.role == Role::Tool).unwrap();

    // Through the call: its result would be cut off.
    let err = c.compact("s", &call.id, "me").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = c.compact("  ", &result.id, "me").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    // Through the result: fine, both covered.
    c.compact("first summary", &result.id, "me").await.unwrap();
    assert_eq!(
        view(&c, &options()).await,
        [
            "system: be brief",
            "system: first summary",
            "assistant: a3",
            "user: q4",
            "assistant: a4",
            "user: q5",
            "assistant: a5",
        ]
    );
    // A second compaction, through a message after the first checkpoint: it counts.
    c.add_message(Role::User, "q6").await.unwrap();
    let a6 = c.add_message(Role::Assistant, "a6").await.unwrap();
    c.add_message(Role::User, "q7").await.unwrap();
    c.compact("second summary", &a6.id, "me").await.unwrap();
    assert_eq!(
        view(&c, &options()).await,
        ["system: be brief", "system: second summary", "user: q7"]
    );
    // A third one through a message before the second checkpoint (a4): the messages
    // after it, but neither older checkpoint.
    let a4 = stored.iter().find(|m| m.content() == "a4").unwrap();
    c.compact("third summary", &a4.id, "me").await.unwrap();
    assert_eq!(
        view(&c, &options()).await,
        [
            "system: be brief",
            "system: third summary",
            "user: q5",
            "assistant: a5",
            "user: q6",
            "assistant: a6",
            "user: q7",
        ]
    );
    // The same, reading only the newest 6: the third checkpoint is among them.
    assert_eq!(
        view(&c, &options().recent(6)).await,
        [
            "system: be brief",
            "system: third summary",
            "user: q6",
            "assistant: a6",
            "user: q7",
        ]
    );
    // A message still being written cannot be covered; a missing one is not found.
    let mut reply = c
        .begin_reply(chatvault_core::ReplyOptions::default())
        .await
        .unwrap();
    let err = c.compact("s", reply.message_id(), "me").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    reply.push_text("a7").await.unwrap();
    reply.finish(None).await.unwrap();
    let err = c
        .compact("s", &chatvault_core::MessageId::new(), "me")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn checkpoints_follow_branches_and_forks_and_copies() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let mut c = vault.create_conversation(None).await.unwrap();
    let stored = chat(&mut c, 6).await;
    let a4 = stored.iter().find(|m| m.content() == "a4").unwrap();
    c.compact("up to a4", &a4.id, "me").await.unwrap();
    let q7 = c.add_message(Role::User, "q7").await.unwrap();
    let compacted = [
        "system: be brief",
        "system: up to a4",
        "user: q5",
        "assistant: a5",
        "user: q6",
        "assistant: a6",
        "user: q7",
    ];
    assert_eq!(view(&c, &options()).await, compacted);

    // An edit after the checkpoint: the checkpoint is still on the branch.
    c.branches()
        .edit(&q7.id, NewMessage::new(Role::User, "q7, edited"))
        .await
        .unwrap();
    let mut edited = compacted.to_vec();
    edited[6] = "user: q7, edited";
    assert_eq!(view(&c, &options()).await, edited);

    // An edit of a covered message: a branch without the checkpoint, read whole.
    let q2 = stored.iter().find(|m| m.content() == "q2").unwrap();
    c.branches()
        .edit(&q2.id, NewMessage::new(Role::User, "q2, edited"))
        .await
        .unwrap();
    assert_eq!(
        view(&c, &options()).await,
        [
            "system: be brief",
            "user: q1",
            "assistant: a1",
            "user: q2, edited"
        ]
    );
    // Back to the compacted branch.
    c.branches().switch(&q2.id).await.unwrap();
    assert_eq!(view(&c, &options()).await, edited);

    // A fork keeps message ids: the checkpoint holds there too.
    let last = c.messages().await.unwrap().pop().unwrap();
    let fork = c
        .branches()
        .fork(&last.id, vault.new_conversation())
        .await
        .unwrap();
    assert_eq!(view(&fork, &options()).await, edited);

    // A copy message by message, by id, on another backend (what an export and an
    // import do): the same view there.
    let dir = tempfile::tempdir().unwrap();
    let local = ChatVault::from_arcs(
        Arc::new(LocalMessages::open(dir.path().join("m")).unwrap()),
        Arc::new(LocalFiles::new(dir.path().join("f")).unwrap()),
    );
    let mut copy = local.create_conversation(None).await.unwrap();
    let all = c
        .all_messages_page(&chatvault_core::MessageRange::all())
        .await
        .unwrap();
    copy.append(all.items.iter().map(Message::to_new).collect())
        .await
        .unwrap();
    // The import restores the active leaf too.
    copy.patch(chatvault_core::ConversationPatch {
        active: c.record().active_leaf().map(chatvault_core::ActiveLeaf::At),
        ..Default::default()
    })
    .await
    .unwrap();
    let fresh = local.get_conversation(copy.id()).await.unwrap().unwrap();
    assert_eq!(fresh.record().tree, c.record().tree);
    assert_eq!(view(&fresh, &options()).await, edited);
    let checkpoint = fresh
        .messages()
        .await
        .unwrap()
        .into_iter()
        .find(Checkpoint::is_checkpoint)
        .unwrap();
    assert_eq!(Checkpoint::of(&checkpoint).unwrap().through, a4.id);
}

#[tokio::test]
async fn long_tool_results_of_older_turns_are_trimmed_in_the_view_only() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let mut c = vault.create_conversation(None).await.unwrap();
    let long = "L".repeat(2_000);
    for i in 1..=4 {
        c.add_message(Role::User, format!("q{i}")).await.unwrap();
        let call = format!("c{i}");
        c.add(NewMessage::with_parts(
            Role::Assistant,
            vec![Part::tool_call(&call, "read_file", serde_json::json!({}))],
        ))
        .await
        .unwrap();
        c.add(NewMessage::with_parts(
            Role::Tool,
            vec![Part::tool_result(&call, long.clone(), false)],
        ))
        .await
        .unwrap();
        c.add_message(Role::Assistant, format!("a{i}"))
            .await
            .unwrap();
    }
    let trimmed = options().trim_tool_results(TrimToolResults::default());
    let history = c.prepare_history(&trimmed).await.unwrap();
    let results: Vec<String> = history
        .iter()
        .flat_map(|m| &m.parts)
        .filter_map(|p| match p {
            Part::ToolResult(r) => Some(chatvault_core::text_of(&r.content)),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 4, "every result is still there");
    for old in &results[..2] {
        assert!(old.starts_with(&"L".repeat(200)));
        assert!(
            old.ends_with("[… tool output trimmed: 2000 characters in all]"),
            "{old}"
        );
        assert!(old.len() < 300);
    }
    assert_eq!(results[2], long, "the newest two turns are whole");
    assert_eq!(results[3], long);
    // Each result right after its call.
    let shape = shape(&history);
    assert_eq!(&shape[1..3], ["assistant: call c1", "tool: result c1"]);
    // The stored messages are unchanged.
    let stored = c.messages().await.unwrap();
    assert_eq!(
        chatvault_core::text_of(match &stored[2].parts[0] {
            Part::ToolResult(r) => &r.content,
            other => panic!("{other:?}"),
        }),
        long
    );
    // Without the option: whole.
    let whole = c.prepare_history(&options()).await.unwrap();
    assert_ne!(whole, history);
}
