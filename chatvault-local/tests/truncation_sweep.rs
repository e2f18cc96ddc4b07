//! Issue 19, item 1: a log cut at any offset never answers `Ok` with less than was
//! acknowledged, and no later append reuses an acknowledged seq.
//!
//! Each scenario writes a conversation, keeps a pristine copy of the store, and then for
//! every truncation offset of the conversation's log opens a fresh copy with the log cut
//! there (every derived file intact: the checkpoint, the seq index, the listing index).
//! Every record of the log was acknowledged, so a cut anywhere short of the end must make
//! the conversation read as `Corrupt` (or, never here, read back exactly); it must not be
//! listed with fewer messages, and an append to it must fail instead of taking a seq that
//! an acknowledged message holds.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ConversationId, ConversationRecord, ErrorKind, ListOptions, Message, MessageRange,
    MessageStatus, MessageUpdate, MessagesBackend, NewMessage, Part, Role, UserId,
};
use chatvault_local::LocalMessages;

const USER: &str = "sweeper";
/// Cuts checked at once.
const PARALLEL_CUTS: usize = 32;

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

/// The newest log of the store's only conversation.
fn log_of(root: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = fs::read_dir(root.join("conversations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "one conversation: {dirs:?}");
    let dir = dirs.remove(0);
    let newest = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix("log-")?.parse::<u64>().ok()
        })
        .max()
        .unwrap();
    dir.join(format!("log-{newest}"))
}

async fn all_messages(
    store: &LocalMessages,
    id: &ConversationId,
) -> chatvault_core::Result<Vec<Message>> {
    let mut out = Vec::new();
    let mut range = MessageRange::all();
    loop {
        let page = store.messages(id, &range).await?;
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => range = range.continue_from(&c)?,
            None => return Ok(out),
        }
    }
}

/// What was acknowledged: the conversation as its writer last saw it.
struct Acknowledged {
    id: ConversationId,
    messages: Vec<Message>,
}

async fn create(store: &LocalMessages, id: &str) -> ConversationId {
    let mut record = ConversationRecord::new(Some(UserId::parse(USER).unwrap()));
    record.id = ConversationId::parse(id).unwrap();
    store.create(&record).await.unwrap();
    record.id
}

async fn append(store: &LocalMessages, id: &ConversationId, texts: &[&str]) {
    let batch = texts
        .iter()
        .map(|t| NewMessage::new(Role::User, *t))
        .collect();
    store.append_messages(id, batch).await.unwrap();
}

/// Plain appends, as in the issue: `["hello"]`, then `["a", "bb", "ccc"]`.
async fn plain(store: &LocalMessages, id: &str) -> ConversationId {
    let id = create(store, id).await;
    append(store, &id, &["hello"]).await;
    append(store, &id, &["a", "bb", "ccc"]).await;
    id
}

/// Enough appends to move the checkpoint into the log's middle, then a reply stored
/// before its first token, checkpointed several times, and finished.
async fn streamed(store: &LocalMessages, id: &str) -> ConversationId {
    let id = create(store, id).await;
    for i in 0..2 {
        append(store, &id, &[&format!("turn {i}")]).await;
    }
    let pending = NewMessage::with_parts(Role::Assistant, Vec::new())
        .with_status(MessageStatus::Pending, None);
    let appended = store.append_messages(&id, vec![pending]).await.unwrap();
    let mut message = appended.messages[0].clone();
    let mut text = String::new();
    for chunk in ["Once", " upon", " a", " time"] {
        text.push_str(chunk);
        let update = MessageUpdate {
            parts: Some(vec![Part::text(text.clone())]),
            status: Some(MessageStatus::Streaming),
            ..Default::default()
        };
        message = store
            .update_message(&id, &message.id, message.revision, &update)
            .await
            .unwrap()
            .message;
    }
    let finish = MessageUpdate {
        status: Some(MessageStatus::Complete),
        ..Default::default()
    };
    store
        .update_message(&id, &message.id, message.revision, &finish)
        .await
        .unwrap();
    id
}

/// Checks the store at `root` (whose log may be cut) against what was acknowledged.
/// Returns whether the conversation read back (exactly) rather than as `Corrupt`.
async fn check(root: &Path, want: &Acknowledged, what: &str) -> bool {
    let store = LocalMessages::open(root).unwrap();
    let head = store.head(&want.id).await;
    let messages = all_messages(&store, &want.id).await;
    let listed = store
        .list_conversations(Some(&UserId::parse(USER).unwrap()), &ListOptions::new())
        .await
        .unwrap();
    match (&head, &messages) {
        (Ok(Some(head)), Ok(messages)) => {
            assert_eq!(messages, &want.messages, "{what}: read back with less");
            assert_eq!(
                head.record.message_count,
                want.messages.len() as u64,
                "{what}"
            );
            let append = store
                .append_messages(&want.id, vec![NewMessage::new(Role::User, "next")])
                .await
                .unwrap();
            assert_eq!(
                append.messages[0].seq,
                want.messages.len() as u64 + 1,
                "{what}"
            );
            true
        }
        _ => {
            for result in [head.as_ref().err(), messages.as_ref().err()] {
                let err = result.unwrap_or_else(|| panic!("{what}: Ok with less: {head:?}"));
                assert_eq!(err.kind(), ErrorKind::Corrupt, "{what}: {err}");
            }
            for summary in &listed.items {
                assert_ne!(
                    summary.id, want.id,
                    "{what}: a damaged conversation is listed"
                );
            }
            let err = store
                .append_messages(&want.id, vec![NewMessage::new(Role::User, "next")])
                .await
                .unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::Corrupt,
                "{what}: the append took a seq"
            );
            false
        }
    }
}

/// Writes a conversation with `write`, then checks every cut of its log from the offset
/// `write` returns (0: every cut).
async fn sweep<F, Fut>(id: &str, write: F)
where
    F: FnOnce(LocalMessages) -> Fut,
    Fut: std::future::Future<Output = (ConversationId, u64)>,
{
    let pristine = tempfile::tempdir().unwrap();
    let store = LocalMessages::open(pristine.path()).unwrap();
    let (conversation, first_cut) = write(store.clone()).await;
    let want = Acknowledged {
        messages: all_messages(&store, &conversation).await.unwrap(),
        id: conversation,
    };
    drop(store);
    let log = log_of(pristine.path());
    let relative = log.strip_prefix(pristine.path()).unwrap().to_owned();
    let full = fs::metadata(&log).unwrap().len();

    let whole = tempfile::tempdir().unwrap();
    copy_tree(pristine.path(), whole.path());
    assert!(
        check(whole.path(), &want, "the whole log").await,
        "the uncut log reads back"
    );

    // The cuts are checked a few at a time: each is mostly waiting on the file system.
    let want = std::sync::Arc::new(want);
    let pristine_path = std::sync::Arc::new(pristine.path().to_owned());
    let mut cuts = first_cut..full;
    let mut running = tokio::task::JoinSet::new();
    let mut corrupt = 0;
    loop {
        while running.len() < PARALLEL_CUTS {
            let Some(cut) = cuts.next() else { break };
            let (want, pristine, relative) =
                (want.clone(), pristine_path.clone(), relative.clone());
            let what = format!("{id}: log cut at byte {cut} of {full}");
            running.spawn(async move {
                let copy = tempfile::tempdir().unwrap();
                copy_tree(&pristine, copy.path());
                let log = copy.path().join(&relative);
                OpenOptions::new()
                    .write(true)
                    .open(&log)
                    .unwrap()
                    .set_len(cut)
                    .unwrap();
                assert_eq!(fs::metadata(&log).unwrap().len(), cut, "{what}");
                check(copy.path(), &want, &what).await
            });
        }
        match running.join_next().await {
            Some(read_back) => corrupt += u64::from(!read_back.unwrap()),
            None => break,
        }
    }
    // Every record was acknowledged: no cut can leave all of them.
    assert!(first_cut < full);
    assert_eq!(corrupt, full - first_cut, "every cut reads as Corrupt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_cut_of_a_log_of_plain_appends_reads_as_corrupt() {
    sweep(
        "plain",
        |store| async move { (plain(&store, "plain").await, 0) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_cut_of_the_log_of_a_long_id_reads_as_corrupt() {
    // Encodes to more than a path segment holds: the directory name is shortened.
    let long = "x:".repeat(64);
    let id = long.clone();
    sweep(&long, |store| async move { (plain(&store, &id).await, 0) }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_cut_of_a_log_holding_a_streamed_reply_reads_as_corrupt() {
    sweep("streamed", |store| async move {
        (streamed(&store, "streamed").await, 0)
    })
    .await;
}

/// An update of an older message (not the newest, not in the replayed tail) whose record
/// is cut short: the index entry pointing into the lost record shows it. (A cut exactly
/// at that record's start leaves no torn bytes, and is found only when the index entry
/// is one the open checks: see the crate's "Crash safety" limits.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_cut_inside_an_update_of_an_older_message_reads_as_corrupt() {
    sweep("older", |store| async move {
        let id = create(&store, "older").await;
        for i in 0..3 {
            append(&store, &id, &[&format!("turn {i}")]).await;
        }
        // A checkpoint past the first message, so that the open replays only what
        // follows it: the checkpoint is lost, and the next append writes it anew.
        let header = log_of(store.root()).with_file_name("header.json");
        fs::remove_file(&header).unwrap();
        let store = LocalMessages::open(store.root()).unwrap();
        append(&store, &id, &["turn 3"]).await;
        assert!(header.exists(), "the append wrote a checkpoint");
        let first = all_messages(&store, &id).await.unwrap().remove(0);
        let before = fs::metadata(log_of(store.root())).unwrap().len();
        let update = MessageUpdate {
            parts: Some(vec![Part::text("turn 0, corrected")]),
            ..Default::default()
        };
        store
            .update_message(&id, &first.id, first.revision, &update)
            .await
            .unwrap();
        // Cuts inside the update's record (past its first byte: torn).
        (id, before + 1)
    })
    .await;
}
