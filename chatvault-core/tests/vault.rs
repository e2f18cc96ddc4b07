//! What only the vault can get right or wrong, whatever the backends: cleanup of failed
//! attaches, retried deletes, owner-scoped reads, history windows, the reply writer's
//! checkpoints and leases, and reading through backends with short or stalled pages.
//! (The backend-facing rules are the conformance suite's; `conformance_simple.rs` and
//! chatvault-memory run it.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chatvault_core::backend::{FilesBackendExt, async_trait};
use chatvault_core::conformance::{
    Call, FilesHook, Forward, MessagesHook, Recording, RecordingFiles, cap_range,
};
use chatvault_core::{
    ChatVault, ConversationId, ConversationRecord, Error, ErrorKind, FileAttachment, Message,
    MessageRange, MessageStatus, MessageUpdate, MessagesBackend, NewMessage, Page, Part,
    ReplyOptions, Result, Role, Usage, UserId,
};
use chatvault_memory::{MemoryFiles, MemoryMessages};

/// What `Hooked::add_file` does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum AddFile {
    #[default]
    Normal,
    /// Fails (temporarily) without storing anything.
    Fail,
    /// Stores the attachment, then loses the answer.
    LoseAnswer,
}

/// Faults a vault must survive, over MemoryMessages, and a count of message updates.
#[derive(Debug, Default)]
struct Hooked {
    add_file: AddFile,
    /// Pages of messages hold at most this many.
    page_cap: Option<usize>,
    /// Every page of messages is empty but claims more (a broken backend).
    stall: bool,
    updates: AtomicUsize,
}

/// MemoryMessages behind `Hooked`.
type HookedMessages = Forward<MemoryMessages, Hooked>;

#[async_trait]
impl MessagesHook<MemoryMessages> for Hooked {
    fn before(&self, call: &Call<'_>) -> Result<()> {
        if call.method == "update_message" {
            self.updates.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
    async fn messages(
        &self,
        inner: &MemoryMessages,
        id: &ConversationId,
        range: &MessageRange,
    ) -> Result<Page<Message>> {
        if self.stall {
            inner.messages(id, range).await?;
            return Ok(Page {
                items: Vec::new(),
                next_cursor: Some("1".into()),
            });
        }
        match self.page_cap {
            None => inner.messages(id, range).await,
            Some(cap) => inner.messages(id, &cap_range(range, cap)).await,
        }
    }
    async fn add_file(
        &self,
        inner: &MemoryMessages,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> Result<ConversationRecord> {
        let lost = || {
            Error::temporary(
                "test",
                std::io::Error::new(std::io::ErrorKind::TimedOut, "answer lost"),
            )
        };
        match self.add_file {
            AddFile::Normal => inner.add_file(id, file).await,
            AddFile::Fail => Err(lost()),
            AddFile::LoseAnswer => {
                inner.add_file(id, file).await?;
                Err(lost())
            }
        }
    }
}

/// Over MemoryFiles: the n-th delete fails (temporarily), to interrupt a deletion.
#[derive(Debug)]
struct FlakyDeletes {
    fail_on: usize,
    deletes: AtomicUsize,
}

impl FilesHook<Arc<MemoryFiles>> for FlakyDeletes {
    fn before(&self, call: &Call<'_>) -> Result<()> {
        if call.method == "delete"
            && self.deletes.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_on
        {
            return Err(Error::temporary(
                "flaky",
                std::io::Error::new(std::io::ErrorKind::TimedOut, "injected failure"),
            ));
        }
        Ok(())
    }
}

fn user(name: &str) -> UserId {
    name.parse().expect("a valid user id")
}

fn hooked(h: Hooked) -> (ChatVault, Arc<HookedMessages>) {
    let messages = Arc::new(Forward::new(MemoryMessages::new(), h));
    (
        ChatVault::from_arcs(messages.clone(), Arc::new(MemoryFiles::new())),
        messages,
    )
}

#[tokio::test]
async fn a_failed_attach_deletes_its_bytes() {
    let files = Arc::new(RecordingFiles::new(
        Arc::new(MemoryFiles::new()),
        Recording::default(),
    ));
    let messages = Hooked {
        add_file: AddFile::Fail,
        ..Default::default()
    };
    let vault = ChatVault::from_arcs(
        Arc::new(Forward::new(MemoryMessages::new(), messages)),
        files.clone(),
    );
    let mut c = vault.create_conversation(Some(&user("u"))).await.unwrap();
    let err = c
        .attach_file("a.txt", &b"bytes"[..], "text/plain")
        .await
        .expect_err("the record store is down");
    assert!(err.is_temporary(), "the caller gets the cause: {err}");
    let err = c
        .attach_file_stream(
            "b.txt",
            chatvault_core::backend::bytes_stream(Bytes::from_static(b"more")),
            "text/plain",
        )
        .await
        .expect_err("the record store is down");
    assert!(err.is_temporary());
    let uploaded = files.uploaded();
    assert_eq!(uploaded.len(), 2, "both uploads reached the store first");
    for key in &uploaded {
        assert!(!files.exists(key).await.unwrap(), "{key} was orphaned");
    }
    assert!(c.files().is_empty());
    assert_eq!(c.record().file_count, 0);
}

#[tokio::test]
async fn attaching_to_a_deleted_conversation_leaves_nothing() {
    let files = Arc::new(RecordingFiles::new(
        Arc::new(MemoryFiles::new()),
        Recording::default(),
    ));
    let vault = ChatVault::from_arcs(Arc::new(MemoryMessages::new()), files.clone());
    let mut c = vault.create_conversation(None).await.unwrap();
    assert!(vault.delete_conversation(c.id()).await.unwrap());
    let err = c
        .attach_file("late.txt", &b"too late"[..], "text/plain")
        .await
        .expect_err("the conversation is gone");
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let uploaded = files.uploaded();
    assert_eq!(
        uploaded.len(),
        1,
        "the bytes were uploaded before the record failed"
    );
    assert!(!files.exists(&uploaded[0]).await.unwrap());
}

#[tokio::test]
async fn an_attach_that_committed_despite_a_lost_answer_keeps_its_bytes() {
    let (vault, _) = hooked(Hooked {
        add_file: AddFile::LoseAnswer,
        ..Default::default()
    });
    let mut c = vault.create_conversation(Some(&user("u"))).await.unwrap();
    let f = c
        .attach_file("kept.txt", &b"still here"[..], "text/plain")
        .await
        .expect("the attachment was stored, so the attach succeeded");
    assert_eq!(c.files(), &[f.clone()][..]);
    assert_eq!(c.record().file_count, 1);
    let fresh = vault.get_conversation(c.id()).await.unwrap().unwrap();
    assert_eq!(
        fresh.file_content(&f.id).await.unwrap().as_deref(),
        Some(&b"still here"[..]),
        "a stored attachment must never lose its bytes"
    );
}

#[tokio::test]
async fn an_interrupted_delete_is_finished_by_a_retry() {
    let memory = Arc::new(MemoryFiles::new());
    let messages: Arc<dyn MessagesBackend> = Arc::new(MemoryMessages::new());
    let flaky = ChatVault::from_arcs(
        messages.clone(),
        Arc::new(Forward::new(
            memory.clone(),
            FlakyDeletes {
                fail_on: 2,
                deletes: AtomicUsize::new(0),
            },
        )),
    );
    let mut c = flaky.create_conversation(Some(&user("u"))).await.unwrap();
    c.add_message(Role::User, "hello").await.unwrap();
    for i in 0..3u8 {
        c.attach_file(
            &format!("f{i}.bin"),
            Bytes::from(vec![i; 3]),
            "application/octet-stream",
        )
        .await
        .unwrap();
    }
    assert_eq!(memory.len(), 3);
    let err = flaky
        .delete_conversation(c.id())
        .await
        .expect_err("the injected failure surfaces");
    assert!(err.is_temporary());
    assert_eq!(memory.len(), 2, "the failure came after the first delete");
    assert!(
        flaky.get_conversation(c.id()).await.unwrap().is_none(),
        "a conversation being deleted reads as gone"
    );
    let err = c
        .add_message(Role::User, "too late")
        .await
        .expect_err("a conversation being deleted takes no messages");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let plain = ChatVault::from_arcs(messages.clone(), memory.clone());
    assert!(
        plain.delete_conversation(c.id()).await.unwrap(),
        "the retry finishes"
    );
    assert!(memory.is_empty(), "every attachment's bytes are gone");
    assert!(messages.begin_delete(c.id()).await.unwrap().is_none());
    assert!(!plain.delete_conversation(c.id()).await.unwrap());
}

#[tokio::test]
async fn get_conversation_for_user_is_owner_scoped() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let alice = user("alice");
    let c = vault.create_conversation(Some(&alice)).await.unwrap();
    assert!(
        vault
            .get_conversation_for_user(c.id(), &alice)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        vault
            .get_conversation_for_user(c.id(), &user("mallory"))
            .await
            .unwrap()
            .is_none(),
        "another user must not see it"
    );
    let anonymous = vault.create_conversation(None).await.unwrap();
    assert!(
        vault
            .get_conversation_for_user(anonymous.id(), &alice)
            .await
            .unwrap()
            .is_none(),
        "nobody owns an anonymous conversation"
    );
    assert!(
        vault
            .get_conversation_for_user(&ConversationId::new(), &alice)
            .await
            .unwrap()
            .is_none()
    );
}

/// `user` for even `i`, `assistant` for odd: the turns of a chat.
fn alternating(i: usize) -> Role {
    if i.is_multiple_of(2) {
        Role::User
    } else {
        Role::Assistant
    }
}

#[tokio::test]
async fn history_windows_and_stale_handles() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let mut c = vault.create_conversation(None).await.unwrap();
    for i in 0..30 {
        c.add_message(alternating(i), format!("turn {i}"))
            .await
            .unwrap();
    }
    let last = c.last_messages(4).await.unwrap();
    assert_eq!(
        last.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![27, 28, 29, 30]
    );
    assert_eq!(
        serde_json::to_value(c.history_last(2).await.unwrap()).unwrap(),
        serde_json::json!([
            {"role": "user", "content": "turn 28"},
            {"role": "assistant", "content": "turn 29"}
        ])
    );
    assert_eq!(c.last_messages(100).await.unwrap().len(), 30);
    assert!(c.last_messages(0).await.unwrap().is_empty());
    assert_eq!(c.history().await.unwrap().len(), 30);
    assert_eq!(c.title(), Some("turn 0"));

    let mut stale = vault.get_conversation(c.id()).await.unwrap().unwrap();
    c.rename("Renamed").await.unwrap();
    stale.refresh().await.unwrap();
    assert_eq!(stale.title(), Some("Renamed"));
    assert_eq!(stale.message_count(), 30);
    assert!(vault.delete_conversation(c.id()).await.unwrap());
    assert_eq!(
        stale.refresh().await.unwrap_err().kind(),
        ErrorKind::NotFound,
        "refresh of a deleted conversation"
    );
}

/// A new conversation on a backend whose pages hold at most `cap` messages.
async fn paged(cap: usize) -> (chatvault_core::Conversation, Arc<HookedMessages>) {
    let (vault, backend) = hooked(Hooked {
        page_cap: Some(cap),
        ..Default::default()
    });
    (
        vault.create_conversation(None).await.expect("create"),
        backend,
    )
}

#[tokio::test]
async fn reads_follow_short_pages_and_refuse_stalled_ones() {
    let (mut c, _) = paged(3).await;
    let batch = (0..10)
        .map(|i| NewMessage::new(Role::User, format!("m{i}")))
        .collect();
    c.append(batch).await.unwrap();
    let all = c.messages().await.unwrap();
    assert_eq!(
        all.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    let last = c.last_messages(7).await.unwrap();
    assert_eq!(
        last.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (4..=10).collect::<Vec<_>>()
    );

    let (vault, _) = hooked(Hooked {
        stall: true,
        ..Default::default()
    });
    let mut c = vault.create_conversation(None).await.unwrap();
    c.add_message(Role::User, "x").await.unwrap();
    let err = c
        .messages()
        .await
        .expect_err("a stalled backend is an error, not a loop");
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    let err = c.last_messages(5).await.expect_err("also backwards");
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
}

#[tokio::test]
async fn begin_reply_stores_a_pending_message_before_any_content() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let mut c = vault.create_conversation(None).await.unwrap();
    c.add_message(Role::User, "Hi").await.unwrap();
    let reply = c.begin_reply(ReplyOptions::default()).await.unwrap();
    let other = vault.get_conversation(c.id()).await.unwrap().unwrap();
    let stored = other.messages().await.unwrap();
    assert_eq!(
        stored.len(),
        2,
        "the reply has its seq before its first token"
    );
    assert_eq!(&stored[1].id, reply.message_id());
    assert_eq!(stored[1].status, MessageStatus::Pending);
    assert!(stored[1].parts.is_empty());
    assert_eq!(stored[1].role, Role::Assistant);
    assert!(
        stored[1].lease_expires_at.is_some(),
        "a pending reply has a lease"
    );
    reply.finish(None).await.unwrap();
}

#[tokio::test]
async fn checkpoints_are_rate_limited() {
    let (vault, counter) = hooked(Hooked::default());
    let mut c = vault.create_conversation(None).await.unwrap();
    let mut reply = c.begin_reply(ReplyOptions::default()).await.unwrap();
    for _ in 0..10_000 {
        reply.push_text("x").await.unwrap();
    }
    let during = counter.updates.load(Ordering::SeqCst);
    let message = reply
        .finish(Some(Usage::new("m", 1, 10_000)))
        .await
        .unwrap();
    let total = counter.updates.load(Ordering::SeqCst);
    assert!(
        during <= 4,
        "10,000 one-byte tokens under the default options made {during} checkpoint writes"
    );
    assert_eq!(total, during + 1, "finish is one write");
    assert_eq!(message.content().len(), 10_000);

    // By size: a checkpoint every 100 bytes, never one per token.
    let before = counter.updates.load(Ordering::SeqCst);
    let options = ReplyOptions::default()
        .checkpoint_bytes(100)
        .checkpoint_interval(Duration::from_secs(3600));
    let mut reply = c.begin_reply(options).await.unwrap();
    for _ in 0..1_000 {
        reply.push_text("y").await.unwrap();
    }
    assert_eq!(
        counter.updates.load(Ordering::SeqCst) - before,
        10,
        "one write per 100 bytes"
    );
    let reader = vault.get_conversation(c.id()).await.unwrap().unwrap();
    let stored = reader.last_messages(1).await.unwrap().remove(0);
    assert_eq!(stored.status, MessageStatus::Streaming);
    assert_eq!(
        stored.content(),
        "y".repeat(1_000),
        "the last checkpoint is stored"
    );
    reply.fail("the model went away").await.unwrap();
    let stored = reader.last_messages(1).await.unwrap().remove(0);
    assert_eq!(stored.status, MessageStatus::Failed);
    assert_eq!(stored.failure.as_deref(), Some("the model went away"));
}

#[tokio::test]
async fn finish_stores_content_status_and_usage_in_one_write() {
    let (vault, counter) = hooked(Hooked::default());
    let mut c = vault.create_conversation(None).await.unwrap();
    c.add_message(Role::User, "Weather?").await.unwrap();
    let mut reply = c.begin_reply(ReplyOptions::default()).await.unwrap();
    reply.push_reasoning("thinking").await.unwrap();
    reply
        .push_part(Part::tool_call(
            "call_1",
            "weather",
            serde_json::json!({"city": "Oslo"}),
        ))
        .await
        .unwrap();
    reply.push_text("Sunny").await.unwrap();
    let before = counter.updates.load(Ordering::SeqCst);
    let done = reply.finish(Some(Usage::new("m", 12, 34))).await.unwrap();
    assert_eq!(
        counter.updates.load(Ordering::SeqCst),
        before + 1,
        "one atomic write"
    );
    let c = vault.get_conversation(c.id()).await.unwrap().unwrap();
    let stored = c.last_messages(1).await.unwrap().remove(0);
    assert_eq!(stored, done);
    assert_eq!(stored.status, MessageStatus::Complete);
    assert_eq!(stored.lease_expires_at, None);
    assert_eq!(stored.parts.len(), 3);
    assert_eq!(stored.content(), "Sunny");
    assert_eq!((c.usage().input_tokens, c.usage().output_tokens), (12, 34));
}

#[tokio::test]
async fn a_dropped_writer_reads_as_interrupted_after_its_lease() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let mut c = vault.create_conversation(None).await.unwrap();
    let options = ReplyOptions::default()
        .lease(Duration::from_secs(1))
        .checkpoint_bytes(5);
    let mut reply = c.begin_reply(options).await.unwrap();
    reply.push_text("partial").await.unwrap(); // 7 bytes: a checkpoint
    reply.push_text(" lost").await.unwrap(); // 5 more: another
    reply.push_text("!").await.unwrap(); // not checkpointed
    drop(reply); // the process dies
    let stored = c.last_messages(1).await.unwrap().remove(0);
    assert_eq!(stored.status, MessageStatus::Streaming, "within its lease");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stored = c.last_messages(1).await.unwrap().remove(0);
    assert_eq!(stored.status, MessageStatus::Interrupted, "after its lease");
    assert_eq!(
        stored.content(),
        "partial lost",
        "the last checkpoint is kept"
    );
    assert_eq!(
        c.messages().await.unwrap()[0].status,
        MessageStatus::Interrupted
    );
}

#[tokio::test]
async fn keep_alive_extends_the_lease() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let mut c = vault.create_conversation(None).await.unwrap();
    let mut reply = c
        .begin_reply(ReplyOptions::default().lease(Duration::from_secs(1)))
        .await
        .unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        reply.keep_alive().await.unwrap();
    }
    let stored = c.last_messages(1).await.unwrap().remove(0);
    assert_eq!(
        stored.status,
        MessageStatus::Pending,
        "kept alive past the first lease"
    );
    reply.finish(None).await.unwrap();
}

#[tokio::test]
async fn a_second_writer_of_one_message_gets_conflict() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let mut c = vault.create_conversation(None).await.unwrap();
    let mut reply = c.begin_reply(ReplyOptions::default()).await.unwrap();
    reply.push_text("mine").await.unwrap();
    let id = reply.message_id().clone();
    // Another writer (another process resuming the reply) takes it over.
    let mut other = vault.get_conversation(c.id()).await.unwrap().unwrap();
    let current = other.last_messages(1).await.unwrap().remove(0);
    other
        .update_message(
            &id,
            current.revision,
            &MessageUpdate {
                status: Some(MessageStatus::Failed),
                failure: Some("taken over".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let err = reply
        .finish(None)
        .await
        .expect_err("the first writer lost the race");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    let stored = c.last_messages(1).await.unwrap().remove(0);
    assert_eq!(
        stored.status,
        MessageStatus::Failed,
        "the winner's write stands"
    );

    // Two finishers from one revision, at the same time: one wins.
    let reply = c.begin_reply(ReplyOptions::default()).await.unwrap();
    let id = reply.message_id().clone();
    let revision = reply.message().revision;
    let tasks = (0..2u64).map(|i| {
        let vault = vault.clone();
        let conversation = c.id().clone();
        let id = id.clone();
        tokio::spawn(async move {
            vault
                .update_message(
                    &conversation,
                    &id,
                    revision,
                    &MessageUpdate {
                        parts: Some(vec![Part::text(format!("finisher {i}"))]),
                        status: Some(MessageStatus::Complete),
                        ..Default::default()
                    },
                )
                .await
        })
    });
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    let loser = results.into_iter().find_map(Result::err).unwrap();
    assert_eq!(loser.kind(), ErrorKind::Conflict);
    drop(reply);
}
