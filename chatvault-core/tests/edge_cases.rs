//! Edge cases found in review of 0.1, kept as regression tests: cursor precision, roles
//! spelled by hand, auto-titles that must validate.

use chatvault_core::{
    ChatVault, ConversationId, ConversationRecord, ConversationSummary, ListOptions, NewMessage,
    Role, Usage, now, paginate,
};
use chatvault_memory::{MemoryFiles, MemoryMessages};
use chrono::{TimeZone, Utc};

fn summary(id: &str, nanos: u32) -> ConversationSummary {
    let t = Utc
        .timestamp_opt(1_700_000_000, nanos)
        .single()
        .expect("a valid time");
    ConversationSummary {
        id: id.parse::<ConversationId>().expect("a valid id"),
        user_id: Some("u".parse().expect("a valid user id")),
        title: None,
        created_at: t,
        last_active: t,
        archived: false,
        message_count: 0,
        file_count: 0,
        usage: Usage::default(),
    }
}

/// Two conversations within one microsecond: a cursor that kept only microseconds would
/// skip the second on the next page.
#[test]
fn cursors_keep_nanoseconds() {
    let all = vec![summary("b", 100), summary("a", 500)];
    let p1 = paginate(all.clone(), &ListOptions::new().limit(1)).unwrap();
    assert_eq!(p1.items[0].id, "a");
    let p2 = paginate(
        all,
        &ListOptions::new().limit(1).cursor(p1.next_cursor.unwrap()),
    )
    .unwrap();
    assert_eq!(p2.items.len(), 1, "b was skipped");
    assert_eq!(p2.items[0].id, "b");
    assert_eq!(p2.next_cursor, None);
}

/// `Role::Other("user")` is a user message: stored as `Role::User`, and it titles the
/// conversation.
#[tokio::test]
async fn a_hand_spelled_user_role_is_a_user_message() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let mut c = vault.create_conversation(None).await.unwrap();
    c.add_message(Role::Other("User".into()), "hello")
        .await
        .unwrap();
    assert_eq!(c.title(), Some("hello"));
    assert_eq!(
        c.messages().await.unwrap()[0].role,
        Role::User,
        "stored normalised"
    );
}

/// Whatever the first user message holds, the auto-title makes a record that validates.
#[test]
fn auto_titles_always_validate() {
    for text in [
        "hi\0there",
        "\u{2028}line\u{2029}",
        "\t\u{200B}x",
        &"é".repeat(500),
    ] {
        let mut record = ConversationRecord::new(None);
        record.apply_append(vec![NewMessage::new(Role::User, text)], now());
        assert!(record.title.is_some(), "{text:?} has a visible character");
        record
            .validate()
            .unwrap_or_else(|e| panic!("the title of {text:?} does not validate: {e}"));
    }
}
