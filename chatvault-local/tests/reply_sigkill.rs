//! A streamed reply whose writer is killed (SIGKILL) mid-stream on the local backend: the
//! reply stays at its `seq` with the content of its last checkpoint (nothing acknowledged
//! is lost), reads as streaming while its lease runs and as interrupted after it, never as
//! complete, and the conversation goes on.
//!
//! The writer is this test binary itself, re-run with `--exact child_streams_a_reply` and
//! environment variables naming the store and the conversation.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use chatvault_core::{ChatVault, ConversationId, MessageStatus, ReplyOptions, Role};
use chatvault_local::LocalMessages;
use chatvault_memory::MemoryFiles;

const ROOT: &str = "CHATVAULT_REPLY_CHILD_ROOT";
const CONV: &str = "CHATVAULT_REPLY_CHILD_CONV";
/// The lease the child's writer takes: long enough to see the reply streaming after the
/// kill, short enough to wait for.
const LEASE: Duration = Duration::from_secs(3);

fn token(i: usize) -> String {
    format!("tok{i} ")
}

/// Not a test of its own: the body of the child process. Without the environment variables
/// it does nothing.
#[test]
fn child_streams_a_reply() {
    let (Ok(root), Ok(conv)) = (std::env::var(ROOT), std::env::var(CONV)) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let vault = ChatVault::new(LocalMessages::open(&root).unwrap(), MemoryFiles::new());
        let id = ConversationId::parse(conv).unwrap();
        let mut chat = vault.get_conversation(&id).await.unwrap().unwrap();
        // Every token is a checkpoint here, so the parent knows what was acknowledged.
        let options = ReplyOptions::default().checkpoint_bytes(1).lease(LEASE);
        let mut reply = chat.begin_reply(options).await.unwrap();
        println!("BEGUN {}", reply.message_id());
        for i in 0.. {
            // push_text checkpoints before it returns: the token is stored.
            reply.push_text(&token(i)).await.unwrap();
            println!("STORED {i}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_killed_mid_stream_keeps_its_checkpoint_and_reads_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("messages");
    let vault = ChatVault::new(LocalMessages::open(&root).unwrap(), MemoryFiles::new());
    let mut chat = vault.create_conversation(None).await.unwrap();
    chat.add_message(Role::User, "Tell me a long story")
        .await
        .unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_streams_a_reply",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROOT, &root)
        .env(CONV, chat.id().as_str())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut message_id = None;
    let mut stored = None;
    // Let it store a few dozen tokens, then kill it without warning.
    while stored.is_none_or(|n| n < 40) {
        let line = lines
            .next()
            .expect("the child ended before storing 40 tokens")
            .unwrap();
        // libtest may print its "test ... " prefix on the same line as the first output.
        if let Some((_, id)) = line.split_once("BEGUN ") {
            message_id = Some(id.trim().to_owned());
        } else if let Some(n) = line.strip_prefix("STORED ") {
            stored = Some(n.parse::<usize>().unwrap());
        }
    }
    child.kill().unwrap(); // SIGKILL on unix
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished");
    let acknowledged = stored.unwrap();
    let message_id = message_id.expect("the child reported its reply's id");

    // Another process (a fresh store on the same directory) reads what is left.
    let vault = ChatVault::new(LocalMessages::open(&root).unwrap(), MemoryFiles::new());
    let chat = vault.get_conversation(chat.id()).await.unwrap().unwrap();
    let messages = chat.messages().await.unwrap();
    assert_eq!(messages.len(), 2, "the reply kept its place");
    let reply = &messages[1];
    assert_eq!(reply.id.as_str(), message_id);
    assert_eq!(reply.seq, 2);
    assert_eq!(reply.role, Role::Assistant);
    // Every acknowledged token is there, in order; at most the tokens written after the
    // last report (before the kill landed) follow.
    let expected: String = (0..=acknowledged).map(token).collect();
    let content = reply.content();
    assert!(
        content.starts_with(&expected),
        "acknowledged content lost: stored {content:?}, acknowledged {expected:?}"
    );
    let full: String = (0..acknowledged + 1000).map(token).collect();
    assert!(
        full.starts_with(&content),
        "content not a prefix: {content:?}"
    );
    assert_ne!(reply.status, MessageStatus::Complete);
    let lease_end = reply
        .lease_expires_at
        .expect("a streaming reply has a lease");

    // After the lease, readers see it as interrupted (never complete).
    let wait = (lease_end - chatvault_core::backend::now())
        .to_std()
        .unwrap_or_default()
        + Duration::from_millis(50);
    tokio::time::sleep(wait).await;
    let later = chat.messages().await.unwrap();
    assert_eq!(later[1].status, MessageStatus::Interrupted);
    assert_eq!(later[1].content(), content, "nothing changed meanwhile");

    // The conversation goes on after it.
    let mut chat = chat;
    let next = chat.add_message(Role::User, "Go on?").await.unwrap();
    assert_eq!(next.seq, 3);
}
