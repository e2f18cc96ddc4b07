//! Branches on disk: the branch table and the parents survive a reopen, and are rebuilt
//! the same from the log alone when every derived file (checkpoint, index) is gone.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::fs;

use chatvault_core::backend::MessagesBackendExt;
use chatvault_core::{
    ActiveLeaf, ConversationPatch, ConversationRecord, MessageRange, MessagesBackend, NewMessage,
    Parent, Role,
};
use chatvault_local::LocalMessages;

#[tokio::test]
async fn branches_survive_a_reopen_and_a_replay_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let record = ConversationRecord::new(None);
    let id = record.id.clone();
    {
        let store = LocalMessages::open(dir.path()).unwrap();
        store.create(&record).await.unwrap();
        let line = (1..=6)
            .map(|i| NewMessage::new(Role::User, format!("m{i}")))
            .collect();
        store.append_messages(&id, line).await.unwrap();
        let edit = NewMessage::new(Role::User, "m3 edited").with_parent(Parent::Seq(2));
        store.append_messages(&id, vec![edit]).await.unwrap();
        let reply = NewMessage::new(Role::Assistant, "on the edit");
        store.append_messages(&id, vec![reply]).await.unwrap();
        let switch = ConversationPatch {
            active: Some(ActiveLeaf::Branch(4)),
            ..ConversationPatch::default()
        };
        store.update(&id, &switch).await.unwrap();
        let rewind = ConversationPatch {
            active: Some(ActiveLeaf::At(5)),
            ..ConversationPatch::default()
        };
        store.update(&id, &rewind).await.unwrap();
        let after = NewMessage::new(Role::User, "after the rewind");
        store.append_messages(&id, vec![after]).await.unwrap();
    }
    let store = LocalMessages::open(dir.path()).unwrap();
    let head = store.head(&id).await.unwrap().unwrap().record;
    let tree = head
        .tree
        .clone()
        .expect("a branched conversation stores its table");
    assert_eq!(tree.leaf, Some(9));
    assert_eq!(tree.parent_of(9), Some(5));
    assert_eq!(tree.parent_of(7), Some(2));
    assert_eq!(head.path_len(), 6);
    let messages = store.messages(&id, &MessageRange::all()).await.unwrap();
    let parents: Vec<_> = messages.items.iter().map(|m| m.parent).collect();
    assert_eq!(
        parents,
        vec![
            None,
            Some(1),
            Some(2),
            Some(3),
            Some(4),
            Some(5),
            Some(2),
            Some(7),
            Some(5)
        ]
    );
    drop(store);

    let conv = dir.path().join("conversations").join(id.as_str());
    let mut removed = 0;
    for entry in fs::read_dir(&conv).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("log") {
            fs::remove_file(&path).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 0, "the conversation had derived files to remove");
    let store = LocalMessages::open(dir.path()).unwrap();
    let replayed = store.head(&id).await.unwrap().unwrap().record;
    assert_eq!(
        replayed, head,
        "the log alone gives the same record and table"
    );
    let again = store.messages(&id, &MessageRange::all()).await.unwrap();
    assert_eq!(again.items, messages.items);
}
