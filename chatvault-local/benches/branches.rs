//! Branches on `LocalMessages`, printed as plain figures
//! (`cargo bench -p chatvault-local --bench branches`):
//!
//! 1. Loading an active path of 1,000 messages through the vault in pages of 100
//!    (`messages_page`, following cursors), median of 15 loads, in a tree of about 10,000
//!    messages in 100 branches against a linear conversation of 1,000 in the same store.
//!    The tree's path is written in 10 stretches of 100, each followed by the edits at
//!    every 10th depth it reached (an edit and 90 messages on its branch), so a page
//!    crosses one or two path segments (`chatvault_core::conformance::shapes`).
//! 2. An edit (`branches().edit`: a lookup by id and one append) of the tree's message at
//!    seq 10 and of its message at seq 9,990: median of 20 edits each.

#![allow(clippy::unwrap_used, missing_docs)] // a benchmark may unwrap: any failure is fatal

use std::time::{Duration, Instant};

use chatvault_core::conformance::shapes::{self, TreeShape};
use chatvault_core::{ChatVault, Conversation, MessageId, MessageRange, NewMessage, Role};
use chatvault_local::{LocalFiles, LocalMessages};

const PATH: u64 = 1_000;
const PAGE: usize = 100;

/// The tree ([`shapes::branched`]: the path in 10 stretches of 100, an edit at every 10th
/// depth followed by 90 messages); returns it and the ids of its messages at seq 10 and
/// 9,990.
async fn tree(vault: &ChatVault) -> (Conversation, MessageId, MessageId) {
    let b = vault.messages_backend().as_ref();
    let shape = TreeShape::new(PATH).stretches(100, 100).edits(10, 90);
    let tree = shapes::branched(b, shape).await;
    let mut ids = Vec::new();
    for seq in [10, 9_990] {
        let range = MessageRange::after(seq - 1).limit(1);
        let page = b.messages(&tree.id, &range).await.unwrap();
        ids.push(page.items[0].id.clone());
    }
    let (early, late) = (ids[0].clone(), ids[1].clone());
    let c = vault.get_conversation(&tree.id).await.unwrap().unwrap();
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
        assert_eq!(load_path(c).await as u64, PATH);
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
    let line = shapes::linear(vault.messages_backend().as_ref(), PATH, 100).await;
    let linear = vault.get_conversation(&line).await.unwrap().unwrap();
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
