//! A database written by schema version 1 (chatvault-sql 0.1 and 0.2, before branches):
//! the rows those releases stored, and what the current library must read from them once
//! it has migrated the schema. Each database's test creates the v1 tables from the
//! crate's own `src/sql/*_v1.sql` (the released migration, never edited), records
//! migration 1, inserts these rows binding its own timestamp type, then opens the
//! database with the current library.

use std::sync::Arc;

use chatvault_core::{
    ChatVault, ConversationId, ListOptions, MessageId, MessageRange, NewMessage, Role, UserId,
};
use chatvault_memory::MemoryFiles;

use super::Backend;

/// The conversation's id.
pub const CONVERSATION: &str = "conv-v1";
/// Its owner.
pub const USER: &str = "user-v1";
/// When everything was written, µs since the Unix epoch (2026-01-02T03:04:05Z).
pub const AT_MICROS: i64 = 1_767_323_045_000_000;

/// The conversation row as version 1 stored it (no `tree` column): `$1` id, `$2` user,
/// `$3` created_at, `$4` last_active; archived, deleting and file_count take their
/// defaults.
pub const INSERT_CONVERSATION: &str = "INSERT INTO chatvault_conversations \
    (id, user_id, title, created_at, last_active, metadata, message_count, usage, version) \
    VALUES ($1, $2, 'Sourdough', $3, $4, '{\"k\":1}', 3, '{}', 4)";

/// A message row: `$1` conversation, `$2` seq, `$3` message id, `$4` role, `$5`
/// created_at, `$6` text, `$7` body.
pub const INSERT_MESSAGE: &str = "INSERT INTO chatvault_messages \
    (conversation_id, seq, message_id, role, revision, created_at, text, body) \
    VALUES ($1, $2, $3, $4, 1, $5, $6, $7)";

/// The messages: `(seq, id, role, text, body)`, the bodies as those releases wrote them
/// (no `parent`; both the `content` and the `parts` forms).
pub const MESSAGES: [(i64, &str, &str, &str, &str); 3] = [
    (
        1,
        "m1",
        "user",
        "How do I keep starter alive?",
        r#"{"id":"m1","seq":1,"role":"user","content":"How do I keep starter alive?","created_at":"2026-01-02T03:04:05Z","metadata":{}}"#,
    ),
    (
        2,
        "m2",
        "assistant",
        "Feed it daily.",
        r#"{"id":"m2","seq":2,"role":"assistant","parts":[{"type":"text","text":"Feed it daily."}],"status":"complete","revision":1,"created_at":"2026-01-02T03:04:05Z","metadata":{}}"#,
    ),
    (
        3,
        "m3",
        "user",
        "With what flour?",
        r#"{"id":"m3","seq":3,"role":"user","content":"With what flour?","created_at":"2026-01-02T03:04:05Z","metadata":{}}"#,
    ),
];

/// What the current library reads from the v1 rows (after migrating): one branch, each
/// message following the one before it; then an edit branches it, and the branch table
/// is stored in the migrated column.
pub async fn check_reads_as_one_branch(b: Backend) {
    let id = ConversationId::parse(CONVERSATION).unwrap();
    let user = UserId::parse(USER).unwrap();
    let head = b.head(&id).await.unwrap().unwrap();
    assert_eq!(head.record.message_count, 3);
    assert_eq!(
        head.record.tree, None,
        "a v1 conversation has no branch table"
    );
    assert_eq!(head.record.active_leaf(), Some(3));
    assert_eq!(head.record.version, 4);
    assert_eq!(head.record.title.as_deref(), Some("Sourdough"));
    let page = b.messages(&id, &MessageRange::all()).await.unwrap();
    let shape: Vec<(u64, Option<u64>, String)> = page
        .items
        .iter()
        .map(|m| (m.seq, m.parent, m.content()))
        .collect();
    assert_eq!(
        shape,
        MESSAGES
            .iter()
            .map(|&(seq, _, _, text, _)| (
                seq as u64,
                (seq > 1).then(|| seq as u64 - 1),
                text.to_owned()
            ))
            .collect::<Vec<_>>()
    );
    let m2 = b
        .message(&id, &MessageId::parse("m2").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((m2.seq, m2.parent), (2, Some(1)));
    let listed = b
        .list_conversations(Some(&user), &ListOptions::new())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].message_count, 3);

    // Branch it: an edit of m3 is a sibling; the active path is m1, m2, the edit.
    let vault = ChatVault::from_arcs(Arc::clone(&b), Arc::new(MemoryFiles::new()));
    let mut chat = vault.get_conversation(&id).await.unwrap().unwrap();
    let m3 = MessageId::parse("m3").unwrap();
    let edit = chat
        .branches()
        .edit(&m3, NewMessage::new(Role::User, "With rye?"))
        .await
        .unwrap();
    assert_eq!((edit.seq, edit.parent), (4, Some(2)));
    let path: Vec<String> = chat
        .messages()
        .await
        .unwrap()
        .iter()
        .map(|m| m.content())
        .collect();
    assert_eq!(
        path,
        [
            "How do I keep starter alive?",
            "Feed it daily.",
            "With rye?"
        ]
    );
    // Read back from the database, not the handle: the table was stored.
    let head = b.head(&id).await.unwrap().unwrap();
    let tree = head.record.tree.clone().expect("a stored branch table");
    assert_eq!(tree.leaf, Some(4));
    assert_eq!(tree.siblings(4), vec![3, 4]);
    let listed = b
        .list_conversations(Some(&user), &ListOptions::new())
        .await
        .unwrap();
    assert_eq!(listed.items[0].message_count, 3, "the active path's length");
    assert_eq!(head.record.message_count, 4);
    // Switching back restores the v1 line, unchanged.
    chat.branches().switch(&m3).await.unwrap();
    let again = vault.get_conversation(&id).await.unwrap().unwrap();
    let contents: Vec<String> = again
        .messages()
        .await
        .unwrap()
        .iter()
        .map(|m| m.content())
        .collect();
    assert_eq!(
        contents,
        MESSAGES
            .iter()
            .map(|&(_, _, _, text, _)| text.to_owned())
            .collect::<Vec<_>>()
    );
}
