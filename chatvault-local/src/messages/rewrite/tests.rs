//! Crash tests of the rewrite after a redaction: a process redacting a message is
//! aborted (no destructor runs, as in a crash) at each step of the rewrite, and the store
//! it leaves is opened and finished in each way there is (a read, a write, a repair).
//! Each must give the redacted state (or, before the commit, the state before it) with
//! nothing lost, one log generation, no mark, and no trace of the secret once the
//! redaction is committed.
//!
//! The crashing processes are this test binary itself, re-run with `--exact` on
//! [`crash_child`] and the environment saying where to stop, as in `tests/processes.rs`.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use chatvault_core::backend::{ConversationHead, MessagesBackend, MessagesBackendExt};
use chatvault_core::{
    ChatVault, ConversationId, Message, MessageId, MessageRange, MessageUpdate, NewMessage, Parent,
    Part, REDACTION_KEY, Redaction, Role, UserId,
};

use super::REWRITE_MARK;
use crate::{LocalFiles, LocalMessages};

/// Where [`crash_point`] aborts the process (unset: nowhere).
const CRASH_AT: &str = "CHATVAULT_LOCAL_CRASH_AT";
const CHILD_ROOT: &str = "CHATVAULT_LOCAL_CRASH_ROOT";
const CHILD_CONV: &str = "CHATVAULT_LOCAL_CRASH_CONV";
const CHILD_MESSAGE: &str = "CHATVAULT_LOCAL_CRASH_MESSAGE";
/// What a crashing child prints just before it aborts.
const CRASHING: &str = "CRASHING AT ";

/// The steps of a redaction, in order: after the mark is written, after the redaction
/// is committed, after the new generation is written (not yet in place), after the
/// switch to it, after the old generation is removed (the mark not yet).
const POINTS: [&str; 5] = ["marked", "committed", "written", "switched", "removed"];

/// A secret no other byte sequence of the store holds by chance.
const SECRET: &str = "wombat-3f9a61c2-hunter2";

pub(super) fn crash_point(point: &str) {
    if std::env::var(CRASH_AT).is_ok_and(|p| p == point) {
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{CRASHING}{point}");
        let _ = out.flush();
        std::process::abort();
    }
}

fn vault(root: &Path) -> ChatVault {
    ChatVault::new(
        LocalMessages::open(root.join("messages")).unwrap(),
        LocalFiles::new(root.join("files")).unwrap(),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Not a test of its own: the body of the crashing processes (does nothing without the
/// environment variables).
#[test]
fn crash_child() {
    let (Ok(root), Ok(conv), Ok(message)) = (
        std::env::var(CHILD_ROOT),
        std::env::var(CHILD_CONV),
        std::env::var(CHILD_MESSAGE),
    ) else {
        return;
    };
    runtime().block_on(async move {
        let vault = vault(Path::new(&root));
        let id = ConversationId::parse(&conv).unwrap();
        let mut c = vault.get_conversation(&id).await.unwrap().unwrap();
        let message = MessageId::parse(&message).unwrap();
        c.redact(&message, "pasted a password").await.unwrap();
        println!("NO CRASH");
    });
}

/// A conversation with branches, checkpoints, edits and attachments, whose message
/// `secret` holds [`SECRET`] (in its text and a tool call's arguments, in two versions).
async fn populate(vault: &ChatVault) -> (ConversationId, MessageId) {
    let user = UserId::parse("alice").unwrap();
    let mut c = vault.create_conversation(Some(&user)).await.unwrap();
    let shared = c
        .attach_file("shared.txt", &b"shared bytes"[..], "text/plain")
        .await
        .unwrap();
    c.add_message(Role::User, "What is the weather in Paris?")
        .await
        .unwrap();
    let parts = |text: String| {
        vec![
            Part::text(text),
            Part::tool_call(
                "call-1",
                "login",
                serde_json::json!({ "user": "alice", "password": SECRET }),
            ),
            Part::attachment(shared.id.clone(), None),
        ]
    };
    let secret = c
        .add(NewMessage::with_parts(
            Role::Assistant,
            parts(format!("logging in with {SECRET}")),
        ))
        .await
        .unwrap();
    // Enough appends that checkpoints follow the secret's first version.
    for i in 0..40 {
        c.add_message(Role::User, format!("message {i}"))
            .await
            .unwrap();
    }
    let edit = MessageUpdate {
        parts: Some(parts(format!("logging in with {SECRET}, edited"))),
        ..MessageUpdate::default()
    };
    c.update_message(&secret.id, secret.revision, &edit)
        .await
        .unwrap();
    let branch = NewMessage::new(Role::User, "another way").with_parent(Parent::Seq(1));
    c.add(branch).await.unwrap();
    c.add_message(Role::Assistant, "on the other branch")
        .await
        .unwrap();
    (c.id().clone(), secret.id)
}

/// The record, attachments and every message (all branches, in seq order).
async fn snapshot(store: &LocalMessages, id: &ConversationId) -> (ConversationHead, Vec<Message>) {
    let head = store.head(id).await.unwrap().unwrap();
    let messages = store.messages(id, &MessageRange::all()).await.unwrap();
    assert!(messages.next_cursor.is_none());
    (head, messages.items)
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.extend(files_under(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}

/// The files under `dir` whose bytes hold [`SECRET`].
fn holding_secret(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            fs::read(p)
                .unwrap()
                .windows(SECRET.len())
                .any(|w| w == SECRET.as_bytes())
        })
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The names in a conversation's directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    out.sort();
    out
}

/// Runs a child that redacts `message` and must abort at `point`; asserts it did.
fn crash_at(point: &str, root: &Path, id: &ConversationId, message: &MessageId) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "messages::rewrite::tests::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_AT, point)
        .env(CHILD_ROOT, root)
        .env(CHILD_CONV, id.as_str())
        .env(CHILD_MESSAGE, message.as_str())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{CRASHING}{point}")) && !stdout.contains("NO CRASH"),
        "the child did not stop at {point}: {stdout}"
    );
    assert!(
        !out.status.success(),
        "the child at {point} exited normally"
    );
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGABRT),
            "the child at {point} was not aborted: {:?}",
            out.status
        );
    }
}

/// What the crash left in the conversation's directory `conv` (generation 1 before the
/// redaction): the files each step leaves, so that the crash is known to have happened
/// where it was asked to.
fn check_left(point: &str, conv: &Path) {
    let all = names(conv);
    let has = |n: &str| all.iter().any(|a| a == n);
    assert!(has(REWRITE_MARK), "{point}: the mark is there: {all:?}");
    let log1 = conv.join("log-1");
    let redacted_in_log1 = log1.exists()
        && fs::read(&log1)
            .unwrap()
            .windows(REDACTION_KEY.len())
            .any(|w| w == REDACTION_KEY.as_bytes());
    let expected = match point {
        "marked" => has("log-1") && !redacted_in_log1 && !has("log-2"),
        "committed" => redacted_in_log1 && !has("log-2") && !has("log-2.tmp"),
        "written" => redacted_in_log1 && has("log-2.tmp") && !has("log-2"),
        "switched" => redacted_in_log1 && has("log-2"),
        "removed" => !has("log-1") && !has("index-1") && has("log-2"),
        _ => unreachable!(),
    };
    assert!(expected, "{point}: unexpected files {all:?}");
}

/// How the interrupted rewrite is finished.
#[derive(Clone, Copy, Debug)]
enum Finish {
    Read,
    Write,
    Repair,
}

/// Opens the crashed store at `root` and finishes the rewrite in the `how` way; returns
/// the message a write appended.
async fn finish(how: Finish, root: &Path, id: &ConversationId) -> Option<Message> {
    let store = LocalMessages::open(root.join("messages")).unwrap();
    match how {
        Finish::Read => {
            store.head(id).await.unwrap().unwrap();
            None
        }
        Finish::Write => {
            let m = NewMessage::new(Role::User, "after the crash");
            let appended = store.append_messages(id, vec![m]).await.unwrap();
            Some(appended.messages[0].clone())
        }
        Finish::Repair => {
            let seen = store.repair(true).await.unwrap();
            assert!(
                seen.rebuilt
                    .iter()
                    .any(|i| i.path.ends_with(REWRITE_MARK) && i.problem.contains("redaction")),
                "a dry run reports the unfinished rewrite: {seen:?}"
            );
            assert!(seen.damaged.is_empty(), "{seen:?}");
            store.repair(false).await.unwrap();
            let after = store.repair(true).await.unwrap();
            assert!(after.is_clean(), "repaired: {after:?}");
            None
        }
    }
}

#[tokio::test]
async fn a_redaction_crashed_at_any_step_is_finished_with_nothing_lost() {
    let base = tempfile::tempdir().unwrap();
    for point in POINTS {
        let root = base.path().join(point);
        let (id, secret) = populate(&vault(&root)).await;
        let store = LocalMessages::open(root.join("messages")).unwrap();
        let (head, before) = snapshot(&store, &id).await;
        drop(store);
        let conv = root.join("messages/conversations").join(id.as_str());
        assert_eq!(
            names(&conv),
            ["header.json", "index-1", "lock", "log-1"],
            "one generation before the redaction"
        );

        crash_at(point, &root, &id, &secret);
        check_left(point, &conv);
        let committed = point != "marked";

        for how in [Finish::Read, Finish::Write, Finish::Repair] {
            let copy = base.path().join(format!("{point}-{how:?}"));
            copy_tree(&root, &copy);
            let appended = finish(how, &copy, &id).await;
            let conv = copy.join("messages/conversations").join(id.as_str());
            let left = names(&conv);
            assert!(
                left == ["header.json", "index-2", "lock", "log-2"]
                    || (!committed && left == ["header.json", "index-1", "lock", "log-1"]),
                "{point}, {how:?}: one generation and no mark left: {left:?}"
            );
            let store = LocalMessages::open(copy.join("messages")).unwrap();
            let (mut head_after, mut after) = snapshot(&store, &id).await;
            if let Some(m) = appended {
                assert_eq!(after.pop(), Some(m), "{point}, {how:?}: the append");
                // The append moved the branch table on: it is checked without it.
                head_after.record.tree.clone_from(&head.record.tree);
            }
            assert_eq!(after.len(), before.len(), "{point}, {how:?}");
            for (a, b) in after.iter().zip(&before) {
                if a.id != secret {
                    assert_eq!(a, b, "{point}, {how:?}: an untouched message changed");
                } else if committed {
                    assert!(a.parts.is_empty(), "{point}, {how:?}: {a:?}");
                    assert!(Redaction::of(a).is_some(), "{point}, {how:?}: {a:?}");
                    assert_eq!((a.seq, a.parent, &a.role), (b.seq, b.parent, &b.role));
                } else {
                    assert_eq!(a, b, "{point}, {how:?}: not redacted yet");
                }
            }
            assert_eq!(head_after.files, head.files, "{point}, {how:?}");
            let (r, h) = (&head_after.record, &head.record);
            assert_eq!(
                (&r.id, &r.user_id, &r.title, &r.tree, &r.created_at),
                (&h.id, &h.user_id, &h.title, &h.tree, &h.created_at),
                "{point}, {how:?}"
            );
            let messages_root = copy.join("messages");
            if committed {
                assert_eq!(holding_secret(&messages_root), Vec::<PathBuf>::new());
            } else {
                // Nothing was redacted: the content is all there; redacting again
                // removes it.
                assert!(!holding_secret(&messages_root).is_empty());
                drop(store);
                let v = vault(&copy);
                let mut c = v.get_conversation(&id).await.unwrap().unwrap();
                c.redact(&secret, "again").await.unwrap();
                assert_eq!(holding_secret(&messages_root), Vec::<PathBuf>::new());
            }
        }
    }
}
