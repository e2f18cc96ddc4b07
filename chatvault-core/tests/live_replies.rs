//! Live replies: following a streamed reply from an offset, resuming after the reader
//! goes away, and stopping a reply.

// Test support code outside #[test] fns: its unwraps are test assertions.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatvault_core::{
    ChatVault, Conversation, ErrorKind, FollowOptions, MessageId, MessageStatus, ReplyEvent,
    ReplyOptions, Role, Usage,
};
use chatvault_memory::{MemoryFiles, MemoryMessages};

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Tokens with multi-byte characters, so that a wrong offset would split one.
fn tokens(n: usize, rng: &mut Rng) -> Vec<String> {
    const WORDS: [&str; 8] = [
        "Ørsted ",
        "naïve ",
        "日本語 ",
        "🙂 ",
        "a",
        "bc ",
        "\n",
        "ünïcødé ",
    ];
    (0..n)
        .map(|i| format!("{}{i} ", WORDS[rng.below(WORDS.len() as u64) as usize]))
        .collect()
}

fn memory_vault() -> (ChatVault, Arc<MemoryMessages>) {
    let messages = Arc::new(MemoryMessages::new());
    let vault = ChatVault::from_arcs(messages.clone(), Arc::new(MemoryFiles::new()));
    (vault, messages)
}

async fn conversation(vault: &ChatVault) -> Conversation {
    let mut chat = vault.create_conversation(None).await.unwrap();
    chat.add_message(Role::User, "Tell me a story")
        .await
        .unwrap();
    chat
}

/// Streams `tokens` into a new reply of `chat`, a short pause between tokens, and
/// returns the reply's id at once and the finished text when done.
async fn stream_reply(
    chat: &mut Conversation,
    tokens: Vec<String>,
    options: ReplyOptions,
) -> (MessageId, tokio::task::JoinHandle<String>) {
    let mut reply = chat.begin_reply(options).await.unwrap();
    let id = reply.message_id().clone();
    let writer = tokio::spawn(async move {
        for (i, token) in tokens.iter().enumerate() {
            reply.push_text(token).await.unwrap();
            if i % 3 == 0 {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        reply.finish(None).await.unwrap().content()
    });
    (id, writer)
}

/// Follows the reply with readers that go away at random (dropped after a few events,
/// or killed at a random instant in the middle of waiting), each new one resuming from
/// the offset of the text kept so far, until one sees the end. Returns the text the
/// readers assembled, the final status, and how many readers it took.
async fn follow_with_kills(
    vault: &ChatVault,
    chat: &Conversation,
    id: &MessageId,
    options: FollowOptions,
    rng: &mut Rng,
) -> (String, MessageStatus, usize) {
    let kept = Arc::new(Mutex::new(String::new()));
    let end = Arc::new(Mutex::new(None));
    let mut readers = 0;
    loop {
        readers += 1;
        let offset = kept.lock().unwrap().len() as u64;
        let mut follower = match readers % 2 {
            0 => chat.follow_reply(id, offset, options.clone()),
            _ => vault.follow_reply(chat.id(), id, offset, options.clone()),
        };
        let (kept2, end2) = (kept.clone(), end.clone());
        let events_before_drop = rng.below(4) + 1;
        let task = tokio::spawn(async move {
            for _ in 0..events_before_drop {
                match follower.next().await.unwrap() {
                    Some(ReplyEvent::Delta { offset, text }) => {
                        let mut kept = kept2.lock().unwrap();
                        assert_eq!(offset, kept.len() as u64, "no gap, no duplicate");
                        kept.push_str(&text);
                        assert_eq!(follower.offset(), kept.len() as u64);
                    }
                    Some(ReplyEvent::End(message)) => {
                        *end2.lock().unwrap() = Some(message.status);
                        return;
                    }
                    Some(other) => panic!("unexpected event {other:?}"),
                    None => panic!("next() after the end"),
                }
            }
        });
        if rng.below(2) == 0 {
            // Killed at a random instant: the task is aborted wherever it waits.
            tokio::time::sleep(Duration::from_micros(rng.below(3_000))).await;
            task.abort();
            let _ = task.await;
        } else {
            task.await.unwrap();
        }
        if let Some(status) = *end.lock().unwrap() {
            let text = kept.lock().unwrap().clone();
            return (text, status, readers);
        }
        assert!(readers < 100_000, "the reply never ended");
    }
}

/// The test the issue asks for: a reader killed or dropped at random chunks many times,
/// each time resuming from its last offset, assembles a reply byte-identical to the
/// uninterrupted one; readers on the writer's vault (woken) and on another vault over the
/// same store (polling, as another process would) alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_killed_at_random_resume_to_the_identical_reply() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let (vault, messages) = memory_vault();
    // Another vault over the same store: no in-process wake-ups, it polls.
    let elsewhere = ChatVault::from_arcs(messages, Arc::new(MemoryFiles::new()));
    let mut total_readers = 0;
    for round in 0..24 {
        let mut chat = conversation(&vault).await;
        let tokens = tokens(150 + rng.below(150) as usize, &mut rng);
        let expected: String = tokens.concat();
        let options = ReplyOptions::default().checkpoint_interval(Duration::from_millis(1));
        let (id, writer) = stream_reply(&mut chat, tokens, options).await;
        let (reader_vault, follow) = if round % 2 == 0 {
            (&vault, FollowOptions::default())
        } else {
            let poll = FollowOptions::default().poll_interval(Duration::from_millis(2));
            (&elsewhere, poll)
        };
        let reader_chat = reader_vault
            .get_conversation(chat.id())
            .await
            .unwrap()
            .unwrap();
        let (text, status, readers) =
            follow_with_kills(reader_vault, &reader_chat, &id, follow, &mut rng).await;
        let written = writer.await.unwrap();
        assert_eq!(written, expected);
        assert_eq!(status, MessageStatus::Complete);
        assert_eq!(text.as_bytes(), expected.as_bytes(), "round {round}");
        // An uninterrupted reader from 0 after the end gets the same bytes at once.
        let mut whole = chat.follow_reply(&id, 0, FollowOptions::default());
        match whole.next().await.unwrap() {
            Some(ReplyEvent::Delta { offset: 0, text }) => assert_eq!(text, expected),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            whole.next().await.unwrap(),
            Some(ReplyEvent::End(_))
        ));
        assert_eq!(whole.next().await.unwrap(), None);
        total_readers += readers;
    }
    // The readers really went away many times.
    assert!(total_readers > 24 * 10, "{total_readers} readers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_gets_each_checkpoint_then_the_end_with_every_part() {
    let (vault, _) = memory_vault();
    let mut chat = conversation(&vault).await;
    let mut reply = chat
        .begin_reply(ReplyOptions::default().checkpoint_interval(Duration::from_secs(3600)))
        .await
        .unwrap();
    let id = reply.message_id().clone();
    let mut follower = chat.follow_reply(&id, 0, FollowOptions::default());
    let reader = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(event) = follower.next().await.unwrap() {
            events.push(event);
        }
        events
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    reply.push_text("Hello").await.unwrap();
    reply.checkpoint().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    reply.push_text(", wörld").await.unwrap();
    reply
        .push_part(chatvault_core::Part::tool_call(
            "c1",
            "lookup",
            serde_json::json!({}),
        ))
        .await
        .unwrap();
    reply.checkpoint().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    reply.push_text("!").await.unwrap();
    reply.finish(Some(Usage::new("m", 3, 4))).await.unwrap();
    let events = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .unwrap()
        .unwrap();
    let deltas: Vec<(u64, &str)> = events
        .iter()
        .filter_map(|e| match e {
            ReplyEvent::Delta { offset, text } => Some((*offset, text.as_str())),
            _ => None,
        })
        .collect();
    // Woken at each checkpoint: one delta each, in order.
    assert_eq!(deltas, [(0, "Hello"), (5, ", wörld"), (13, "!")]);
    let Some(ReplyEvent::End(message)) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(message.status, MessageStatus::Complete);
    assert_eq!(message.content(), "Hello, wörld!");
    assert_eq!(message.tool_calls().count(), 1);
    assert_eq!(message.usage.as_ref().unwrap().output_tokens, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_keeps_the_stored_reply_and_ends_writer_and_followers() {
    let (vault, messages) = memory_vault();
    let mut chat = conversation(&vault).await;
    let mut reply = chat
        .begin_reply(ReplyOptions::default().checkpoint_interval(Duration::from_secs(3600)))
        .await
        .unwrap();
    let id = reply.message_id().clone();
    reply.push_text("Once upon a time").await.unwrap();
    reply.checkpoint().await.unwrap();
    reply.push_text(", never seen").await.unwrap(); // not checkpointed
    let mut follower = chat.follow_reply(&id, 0, FollowOptions::default());
    assert_eq!(
        follower.next().await.unwrap(),
        Some(ReplyEvent::Delta {
            offset: 0,
            text: "Once upon a time".into()
        })
    );
    let waiting = tokio::spawn(async move { (follower.next().await, follower.next().await) });

    // Stopped from another vault over the same store (another process, say).
    let elsewhere = ChatVault::from_arcs(messages, Arc::new(MemoryFiles::new()));
    let mut other = elsewhere
        .get_conversation(chat.id())
        .await
        .unwrap()
        .unwrap();
    let before = other.record().version;
    let stopped = other.stop_reply(&id).await.unwrap();
    assert_eq!(stopped.status, MessageStatus::Stopped);
    assert_eq!(stopped.content(), "Once upon a time");
    assert_eq!(stopped.lease_expires_at, None);
    assert_eq!(
        other.record().version,
        before + 1,
        "the handle has the new record"
    );

    // The follower (polling: the stop came through another vault) gets the end.
    let (end, after) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    match end.unwrap() {
        Some(ReplyEvent::End(m)) => {
            assert_eq!(m.status, MessageStatus::Stopped);
            assert_eq!(m.content(), "Once upon a time");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(after.unwrap(), None);

    // The writer's next write stores nothing and says why; so does every one after.
    assert!(!reply.is_stopped());
    let err = reply.checkpoint().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Stopped);
    assert!(!err.is_temporary());
    assert!(reply.is_stopped());
    let err = reply.push_text("more").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Stopped);
    // Finishing records the usage on the stopped reply, and fails.
    let err = reply
        .finish(Some(Usage::new("m", 10, 20)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Stopped);
    let stored = chat.message(&id).await.unwrap().unwrap();
    assert_eq!(stored.status, MessageStatus::Stopped);
    assert_eq!(stored.content(), "Once upon a time");
    assert_eq!(stored.usage.as_ref().unwrap().output_tokens, 20);
    chat.refresh().await.unwrap();
    assert_eq!(chat.usage().output_tokens, 20);

    // Stopping again, or stopping a complete message, changes nothing.
    let again = chat.stop_reply(&id).await.unwrap();
    assert_eq!(again.revision, stored.revision);
    let question = chat.messages().await.unwrap()[0].clone();
    let unchanged = chat.stop_reply(&question.id).await.unwrap();
    assert_eq!(unchanged.status, MessageStatus::Complete);
    assert_eq!(unchanged.revision, question.revision);
    let missing = chat.stop_reply(&MessageId::new()).await.unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_between_checkpoints_is_seen_at_the_next_one() {
    let (vault, _) = memory_vault();
    let mut chat = conversation(&vault).await;
    let options = ReplyOptions::default().checkpoint_interval(Duration::from_millis(5));
    let mut reply = chat.begin_reply(options).await.unwrap();
    let id = reply.message_id().clone();
    let writer = tokio::spawn(async move {
        let mut pushed = 0;
        loop {
            match reply.push_text("token ").await {
                Ok(()) => pushed += 1,
                Err(e) => return (e.kind(), pushed),
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            assert!(pushed < 100_000, "never stopped");
        }
    });
    tokio::time::sleep(Duration::from_millis(60)).await;
    let stopped = chat.stop_reply(&id).await.unwrap();
    let (kind, pushed) = tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kind, ErrorKind::Stopped);
    assert!(pushed > 0);
    let stored = chat.message(&id).await.unwrap().unwrap();
    assert_eq!(stored, stopped, "the writer wrote nothing after the stop");
    assert!(stored.content().starts_with("token "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_outside_the_text_are_refused_and_dead_writers_end_interrupted() {
    let (vault, _) = memory_vault();
    let mut chat = conversation(&vault).await;
    let options = ReplyOptions::default().lease(Duration::from_millis(300));
    let mut reply = chat.begin_reply(options).await.unwrap();
    let id = reply.message_id().clone();
    reply.push_text("é!").await.unwrap();
    reply.checkpoint().await.unwrap();
    // Inside the "é" (2 bytes), and past the end.
    for offset in [1, 4] {
        let mut follower = chat.follow_reply(&id, offset, FollowOptions::default());
        let err = follower.next().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{offset}");
    }
    let missing = MessageId::new();
    let err = chat
        .follow_reply(&missing, 0, FollowOptions::default())
        .next()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    // The writer dies (dropped without finishing): its lease runs out, the follower
    // ends with the reply as interrupted.
    drop(reply);
    let poll = FollowOptions::default().poll_interval(Duration::from_millis(20));
    let mut follower = chat.follow_reply(&id, 3, poll);
    let end = tokio::time::timeout(Duration::from_secs(5), follower.next())
        .await
        .unwrap()
        .unwrap();
    match end {
        Some(ReplyEvent::End(m)) => {
            assert_eq!(m.status, MessageStatus::Interrupted);
            assert_eq!(m.content(), "é!");
        }
        other => panic!("{other:?}"),
    }
}
