//! A key store inside the wrapped backend: its conversations are hidden from the wrapped
//! view (never listed, read as missing, not creatable, not deletable through it).
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use std::sync::Arc;

use chatvault_core::backend::{MessageRange, MessagesBackend, MessagesBackendExt};
use chatvault_core::{
    ConversationId, ConversationRecord, ErrorKind, ListOptions, NewMessage, Role, UserId,
};
use chatvault_crypt::EncryptedMessages;
use chatvault_local::LocalMessages;
use common::{fresh_dir, keyring};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_conversations_are_hidden_from_the_wrapped_view() {
    let store = LocalMessages::open(fresh_dir()).unwrap();
    let b = EncryptedMessages::new(store.clone(), keyring(Arc::new(store.clone())));
    let alice: UserId = "alice".parse().unwrap();
    for user in [Some(&alice), None] {
        let record = ConversationRecord::new(user.cloned());
        b.create(&record).await.unwrap();
        b.append_messages(&record.id, vec![NewMessage::new(Role::User, "hi")])
            .await
            .unwrap();
    }
    // The raw store holds the two key conversations (alice's, the vault-wide one).
    let everything = ListOptions::default().include_archived(true);
    let raw = store
        .list_conversations(None, &everything)
        .await
        .unwrap()
        .items;
    let keys: Vec<ConversationId> = raw
        .iter()
        .map(|s| s.id.clone())
        .filter(|id| id.as_str().starts_with("chatvault-crypt."))
        .collect();
    assert_eq!(keys.len(), 2, "{raw:?}");
    // The wrapped view shows only the two conversations.
    let listed = b.list_conversations(None, &everything).await.unwrap().items;
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .all(|s| !s.id.as_str().starts_with("chatvault-crypt."))
    );
    // One conversation per page: the pages of key stores are skipped, none is empty.
    let mut options = ListOptions::default()
        .include_archived(true)
        .limit(1)
        .unwrap();
    let mut seen = 0;
    loop {
        let page = b.list_conversations(None, &options).await.unwrap();
        assert!(
            !page.items.is_empty() || page.next_cursor.is_none(),
            "an empty page that is not the end"
        );
        seen += page.items.len();
        match page.next_cursor {
            Some(c) => options = options.cursor(&c).unwrap(),
            None => break,
        }
    }
    assert_eq!(seen, 2);
    for id in &keys {
        assert_eq!(b.head(id).await.unwrap(), None);
        assert_eq!(
            b.messages(id, &MessageRange::all())
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::NotFound
        );
        assert_eq!(b.begin_delete(id).await.unwrap(), None);
        assert!(
            !b.delete(id).await.unwrap(),
            "not deletable through the wrapper"
        );
        let mut taken = ConversationRecord::new(None);
        taken.id = id.clone();
        assert_eq!(
            b.create(&taken).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert!(
            store.head(id).await.unwrap().is_some(),
            "still in the store"
        );
    }
}
