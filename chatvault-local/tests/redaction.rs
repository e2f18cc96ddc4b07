//! Issue 24, point 3, on the local backend: a redaction has the conversation's log
//! rewritten, so that the redacted content is in no file of the store afterwards, while
//! everything else reads back unchanged (also after a reopen), and readers in other
//! stores (as in other processes) see one conversation throughout.
//!
//! The crash tests of the rewrite (a process aborted at each of its steps) are unit
//! tests, in `src/messages/rewrite/tests.rs`: the points where they stop the process
//! exist only in the crate's own test build.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chatvault_core::backend::{ConversationHead, MessagesBackendExt};
use chatvault_core::{
    ChatVault, ConversationId, Message, MessageId, MessageRange, MessageUpdate, MessagesBackend,
    NewMessage, Parent, Part, Redaction, ReplyOptions, Role, UserId,
};
use chatvault_local::{LocalFiles, LocalMessages};

/// A secret no other byte sequence of the store holds by chance.
const SECRET: &str = "wombat-8d1e07b4-correct-horse";

fn vault(root: &Path) -> ChatVault {
    ChatVault::new(
        LocalMessages::open(root.join("messages")).unwrap(),
        LocalFiles::new(root.join("files")).unwrap(),
    )
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

/// The names in conversation `id`'s directory, sorted.
fn conversation_files(root: &Path, id: &ConversationId) -> Vec<String> {
    let dir = root.join("messages/conversations").join(id.as_str());
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    out.sort();
    out
}

/// The record, attachments and every message (all branches, in seq order).
async fn snapshot(store: &LocalMessages, id: &ConversationId) -> (ConversationHead, Vec<Message>) {
    let head = store.head(id).await.unwrap().unwrap();
    let page = store.messages(id, &MessageRange::all()).await.unwrap();
    assert!(page.next_cursor.is_none());
    (head, page.items)
}

/// The parts of the secret message: [`SECRET`] in its text and a tool call's arguments,
/// and two attachments.
fn secret_parts(
    text: &str,
    only: &chatvault_core::FileAttachment,
    shared: &chatvault_core::FileAttachment,
) -> Vec<Part> {
    vec![
        Part::text(format!("{text} {SECRET}")),
        Part::tool_call(
            "call-7",
            "login",
            serde_json::json!({ "user": "alice", "password": SECRET }),
        ),
        Part::attachment(only.id.clone(), None),
        Part::attachment(shared.id.clone(), None),
    ]
}

/// A conversation with branches, checkpoints, a streamed reply and attachments, whose
/// message (returned) holds [`SECRET`] in two versions, in its text and a tool call's
/// arguments, and references an attachment holding it too (and one that another message
/// references as well).
async fn populate(vault: &ChatVault) -> (ConversationId, MessageId) {
    let user = UserId::parse("alice").unwrap();
    let mut c = vault.create_conversation(Some(&user)).await.unwrap();
    let only = c
        .attach_file(
            "only.txt",
            format!("only: {SECRET}").into_bytes(),
            "text/plain",
        )
        .await
        .unwrap();
    let shared = c
        .attach_file("shared.txt", &b"shared bytes"[..], "text/plain")
        .await
        .unwrap();
    c.add_message(Role::User, "Log me in, please")
        .await
        .unwrap();
    let secret = c
        .add(NewMessage::with_parts(
            Role::User,
            secret_parts("my password is", &only, &shared),
        ))
        .await
        .unwrap();
    let mut reply = c
        .begin_reply(ReplyOptions::default().checkpoint_bytes(1))
        .await
        .unwrap();
    for token in ["Logging ", "you ", "in ", "now."] {
        reply.push_text(token).await.unwrap();
    }
    reply.finish(None).await.unwrap();
    c.add(NewMessage::with_parts(
        Role::User,
        vec![
            Part::text("and this file"),
            Part::attachment(shared.id.clone(), None),
        ],
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
        parts: Some(secret_parts("my password, edited, is", &only, &shared)),
        ..MessageUpdate::default()
    };
    c.update_message(&secret.id, secret.revision, &edit)
        .await
        .unwrap();
    let branch = NewMessage::new(Role::User, "another way in").with_parent(Parent::Seq(1));
    c.add(branch).await.unwrap();
    c.add_message(Role::Assistant, "on the other branch")
        .await
        .unwrap();
    (c.id().clone(), secret.id)
}

#[tokio::test]
async fn a_redacted_message_is_in_no_file_of_the_store_and_the_rest_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let v = vault(root);
    let (id, secret) = populate(&v).await;
    let store = LocalMessages::open(root.join("messages")).unwrap();
    let (head, before) = snapshot(&store, &id).await;
    let shared = head
        .files
        .iter()
        .find(|f| f.filename == "shared.txt")
        .unwrap()
        .clone();
    let only = head
        .files
        .iter()
        .find(|f| f.filename == "only.txt")
        .unwrap()
        .clone();
    // The scan finds the secret where it is: the log (both versions) and the attachment.
    let found = holding_secret(root);
    assert!(
        found.iter().any(|p| p.ends_with("log-1")) && found.iter().any(|p| p.ends_with("only.txt")),
        "{found:?}"
    );

    let mut c = v.get_conversation(&id).await.unwrap().unwrap();
    let done = c.redact(&secret, "pasted a password").await.unwrap();
    assert_eq!(done.files_deleted, vec![only.clone()]);

    assert_eq!(holding_secret(root), Vec::<PathBuf>::new());
    assert_eq!(
        conversation_files(root, &id),
        ["header.json", "index-2", "lock", "log-2"],
        "one generation, rewritten; no mark left"
    );
    let (head_after, after) = snapshot(&store, &id).await;
    assert_eq!(after.len(), before.len());
    for (a, b) in after.iter().zip(&before) {
        if a.id == secret {
            assert_eq!(a, &done.message, "the tombstone reads back");
            assert!(a.parts.is_empty());
            assert_eq!(Redaction::of(a).unwrap().reason, "pasted a password");
            assert_eq!(
                (a.seq, a.parent, &a.role, a.created_at),
                (b.seq, b.parent, &b.role, b.created_at)
            );
        } else {
            assert_eq!(a, b, "an untouched message changed");
        }
    }
    let (r, h) = (&head_after.record, &head.record);
    assert_eq!(
        (&r.id, &r.user_id, &r.title, &r.metadata, &r.tree),
        (&h.id, &h.user_id, &h.title, &h.metadata, &h.tree)
    );
    assert_eq!(
        (r.message_count, r.created_at, r.archived, &r.usage),
        (h.message_count, h.created_at, h.archived, &h.usage)
    );
    assert_eq!(head_after.files, vec![shared.clone()], "only.txt is gone");
    let files = v.files_backend();
    assert!(files.head(&only.storage_key).await.unwrap().is_none());
    let bytes = c.file_content(&shared.id).await.unwrap().unwrap();
    assert_eq!(&bytes[..], b"shared bytes");
    drop((c, v, store));

    // Reopened: the same, exactly; and the conversation goes on.
    let v = vault(root);
    let store = LocalMessages::open(root.join("messages")).unwrap();
    let reopened = snapshot(&store, &id).await;
    assert_eq!(reopened, (head_after.clone(), after.clone()));
    let mut c = v.get_conversation(&id).await.unwrap().unwrap();
    assert_eq!(
        c.history().await.unwrap().len(),
        3,
        "the branch path: the first message and the other branch"
    );
    let next = c.add_message(Role::User, "still here").await.unwrap();
    assert_eq!(next.seq, head_after.record.message_count + 1);
    let whole = store.get(&id).await.unwrap().unwrap();
    assert_eq!(&whole.messages[..after.len()], &after[..]);
    let bytes = c.file_content(&shared.id).await.unwrap().unwrap();
    assert_eq!(&bytes[..], b"shared bytes");
    assert_eq!(holding_secret(root), Vec::<PathBuf>::new());
    assert!(store.repair(true).await.unwrap().is_clean());
}

#[tokio::test]
async fn an_update_that_redacts_nothing_keeps_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let v = vault(root);
    let mut c = v.create_conversation(None).await.unwrap();
    let m = c.add_message(Role::User, "first version").await.unwrap();
    let edit = MessageUpdate {
        parts: Some(vec![Part::text("second version")]),
        ..MessageUpdate::default()
    };
    c.update_message(&m.id, m.revision, &edit).await.unwrap();
    assert_eq!(
        conversation_files(root, c.id()),
        ["header.json", "index-1", "lock", "log-1"],
        "an ordinary update is one more record: no rewrite"
    );
}

#[tokio::test]
async fn a_redacting_update_rewrites_the_log_before_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let store = LocalMessages::open(root.join("messages")).unwrap();
    let record = chatvault_core::ConversationRecord::new(None);
    let id = record.id.clone();
    store.create(&record).await.unwrap();
    let line = vec![
        NewMessage::new(Role::User, "hello"),
        NewMessage::new(Role::User, format!("the key is {SECRET}")),
        NewMessage::new(Role::Assistant, "noted"),
    ];
    let stored = store.append_messages(&id, line).await.unwrap().messages;
    let secret = &stored[1];
    let mut metadata = chatvault_core::Metadata::new();
    metadata.insert(
        chatvault_core::REDACTION_KEY.to_owned(),
        serde_json::json!({ "reason": "by hand", "at": chatvault_core::backend::now() }),
    );
    let redaction = MessageUpdate {
        parts: Some(Vec::new()),
        metadata: Some(metadata),
        ..MessageUpdate::default()
    };
    store
        .update_message(&id, &secret.id, secret.revision, &redaction)
        .await
        .unwrap();
    // Looked at before anything else opens the conversation.
    assert_eq!(
        conversation_files(root, &id),
        ["header.json", "index-2", "lock", "log-2"]
    );
    assert_eq!(holding_secret(root), Vec::<PathBuf>::new());
    let page = store.messages(&id, &MessageRange::all()).await.unwrap();
    assert_eq!(page.items[0], stored[0]);
    assert_eq!(page.items[2], stored[2]);
    assert!(page.items[1].parts.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_of_another_store_see_one_conversation_throughout_the_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("messages");
    let writer = ChatVault::new(
        LocalMessages::open(&root).unwrap(),
        chatvault_memory::MemoryFiles::new(),
    );
    let mut c = writer.create_conversation(None).await.unwrap();
    let mut originals = Vec::new();
    for i in 0..60 {
        originals.push(
            c.add_message(Role::User, format!("message {i}"))
                .await
                .unwrap(),
        );
    }
    let id = c.id().clone();
    // Another store on the same directory: its own caches, as another process has.
    let reader = LocalMessages::open(&root).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let reads = {
        let (done, id, originals) = (Arc::clone(&done), id.clone(), originals.clone());
        tokio::spawn(async move {
            let mut reads = 0u32;
            while !done.load(Ordering::Relaxed) || reads == 0 {
                let page = reader.messages(&id, &MessageRange::all()).await.unwrap();
                assert_eq!(page.items.len(), originals.len());
                for (m, o) in page.items.iter().zip(&originals) {
                    if Redaction::of(m).is_some() {
                        assert!(m.parts.is_empty() && m.seq == o.seq && m.id == o.id);
                    } else {
                        assert_eq!(m, o);
                    }
                }
                let one = &originals[7];
                let got = reader.message(&id, &one.id).await.unwrap().unwrap();
                assert_eq!(got.seq, one.seq);
                reads += 1;
            }
            reads
        })
    };
    for m in originals.iter().step_by(6) {
        c.redact(&m.id, "test").await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let reads = reads.await.unwrap();
    assert!(reads > 0);
    let page = writer
        .messages_backend()
        .messages(&id, &MessageRange::all())
        .await
        .unwrap();
    let redacted = page
        .items
        .iter()
        .filter(|m| Redaction::of(m).is_some())
        .count();
    assert_eq!(redacted, 10);
}
