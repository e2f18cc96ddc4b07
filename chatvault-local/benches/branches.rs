//! Branches on `LocalMessages`, printed as plain figures
//! (`cargo bench -p chatvault-local --bench branches`):
//!
//! 1. Loading an active path of 1,000 messages through the vault in pages of 100
//!    (`messages_page`, following cursors), median of 15 loads, in a tree of about 10,000
//!    messages in 100 branches against a linear conversation of 1,000 in the same store.
//!    The tree's path is written in 10 stretches of 100 with 10 branches of 91 messages
//!    between stretches (each starting at an edit of a message of the stretch just
//!    written), so a page crosses one or two path segments.
//! 2. An edit (`branches().edit`: a lookup by id and one append) of the tree's message at
//!    seq 10 and of its message at seq 9,990: median of 20 edits each.

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark may unwrap: any failure is fatal

use std::time::{Duration, Instant};

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ActiveLeaf, ChatVault, Conversation, ConversationPatch, MessageId, MessageRange, NewMessage,
    Parent, Role,
};
use chatvault_local::{LocalFiles, LocalMessages};

const PATH: usize = 1_000;
const PAGE: usize = 100;

fn line(n: usize, from: Parent) -> Vec<NewMessage> {
    (0..n)
        .map(|i| {
            let m = NewMessage::new(Role::User, format!("message {i} of a benchmark line"));
            if i == 0 { m.with_parent(from) } else { m }
        })
        .collect()
}

/// Builds the tree; returns it and the ids of its messages at seq 10 and 9,990.
async fn tree(vault: &ChatVault) -> (Conversation, MessageId, MessageId) {
    let c = vault.create_conversation(None).await.unwrap();
    let b = vault.messages_backend();
    let mut path_end: Option<u64> = None;
    let mut ids = Vec::new();
    for stretch in 0..PATH / 100 {
        let from = path_end.map_or(Parent::Root, Parent::Seq);
        let stored = b.append_messages(c.id(), line(100, from)).await.unwrap();
        ids.extend(stored.messages.iter().map(|m| (m.seq, m.id.clone())));
        let first = stored.messages[0].seq;
        path_end = stored.messages.last().map(|m| m.seq);
        let branches = if stretch == 0 { 9 } else { 10 };
        for k in 0..branches {
            let at = first + 10 * k as u64 + 5;
            let branch = b.append_messages(c.id(), line(91, Parent::Seq(at))).await;
            ids.extend(
                branch
                    .unwrap()
                    .messages
                    .iter()
                    .map(|m| (m.seq, m.id.clone())),
            );
        }
        let back = ConversationPatch {
            active: Some(ActiveLeaf::At(path_end.unwrap())),
            ..ConversationPatch::default()
        };
        b.update(c.id(), &back).await.unwrap();
    }
    let id_at = |seq: u64| ids.iter().find(|(s, _)| *s == seq).unwrap().1.clone();
    let (early, late) = (id_at(10), id_at(9_990));
    let c = vault.get_conversation(c.id()).await.unwrap().unwrap();
    (c, early, late)
}

async fn load_path(c: &Conversation) -> usize {
    let mut range = MessageRange::after(0).limit(PAGE);
    let mut n = 0;
    loop {
        let page = c.messages_page(&range).await.unwrap();
        n += page.items.len();
        match page.next_cursor {
            Some(cursor) => range = range.continue_from(&cursor).unwrap(),
            None => return n,
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn time_loads(c: &Conversation) -> Duration {
    let mut times = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        assert_eq!(load_path(c).await, PATH);
        times.push(t.elapsed());
    }
    median(times)
}

async fn time_edits(c: &mut Conversation, id: &MessageId) -> Duration {
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        c.branches()
            .edit(id, NewMessage::new(Role::User, "an edit"))
            .await
            .unwrap();
        times.push(t.elapsed());
    }
    median(times)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let vault = ChatVault::new(
        LocalMessages::open(dir.path().join("messages")).unwrap(),
        LocalFiles::new(dir.path().join("files")).unwrap(),
    );
    let mut linear = vault.create_conversation(None).await.unwrap();
    for _ in 0..PATH / 100 {
        linear.append(line(100, Parent::Active)).await.unwrap();
    }
    let (mut tree, early, late) = tree(&vault).await;
    let record = tree.record().clone();
    let segments = record.tree().active_path().len();
    println!(
        "tree: {} messages, {} runs, active path {} messages in {segments} segments",
        record.message_count,
        record.tree().runs.len(),
        record.path_len()
    );
    let (l, t) = (time_loads(&linear).await, time_loads(&tree).await);
    let ratio = t.as_secs_f64() / l.as_secs_f64();
    println!("path of {PATH} in pages of {PAGE}: linear {l:?}, tree {t:?}, tree/linear {ratio:.2}");
    let (e, la) = (
        time_edits(&mut tree, &early).await,
        time_edits(&mut tree, &late).await,
    );
    let ratio = la.as_secs_f64() / e.as_secs_f64();
    println!("edit: at seq 10 {e:?}, at seq 9,990 {la:?}, ratio {ratio:.2}");
}
