//! Edge cases found in review of 0.1, kept as regression tests: cursor precision, roles
//! spelled by hand, auto-titles that must validate.

use chatvault_core::backend::{now, paginate};
use chatvault_core::{
    ChatVault, ConversationId, ConversationRecord, ConversationSummary, ListOptions, NewMessage,
    Role,
};
use chatvault_memory::{MemoryFiles, MemoryMessages};
use chrono::{TimeZone, Utc};

fn summary(id: &str, nanos: u32) -> ConversationSummary {
    let t = Utc
        .timestamp_opt(1_700_000_000, nanos)
        .single()
        .expect("a valid time");
    ConversationSummary::new(
        id.parse::<ConversationId>().expect("a valid id"),
        Some("u".parse().expect("a valid user id")),
        t,
    )
}

/// Two conversations within one microsecond: a cursor that kept only microseconds would
/// skip the second on the next page.
#[test]
fn cursors_keep_nanoseconds() {
    let all = vec![summary("b", 100), summary("a", 500)];
    let one = ListOptions::new().limit(1).unwrap();
    let p1 = paginate(all.clone(), &one).unwrap();
    assert_eq!(p1.items[0].id, "a");
    let p2 = paginate(all, &one.cursor(&p1.next_cursor.unwrap()).unwrap()).unwrap();
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
        record
            .apply_append(vec![NewMessage::new(Role::User, text)], now())
            .unwrap();
        assert!(record.title.is_some(), "{text:?} has a visible character");
        record
            .validate()
            .unwrap_or_else(|e| panic!("the title of {text:?} does not validate: {e}"));
    }
}

/// The core's role rule (1..=64 bytes, not blank, no control characters) holds on every
/// path into a vault: a text message, an append of parts, a batch (refused whole), a
/// streamed reply. Each refusal is InvalidInput naming the role, and nothing is stored.
#[tokio::test]
async fn roles_the_core_refuses_are_invalid_input_on_every_path() {
    use chatvault_core::{ErrorKind, Part, ReplyOptions};

    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let mut c = vault.create_conversation(None).await.unwrap();
    let too_long = "r".repeat(Role::MAX_BYTES + 1);
    let refused = |result: chatvault_core::Result<_>, what: &str| match result {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}: {e}");
            assert!(e.to_string().starts_with("invalid role"), "{what}: {e}");
        }
        Ok(stored) => panic!("{what}: stored {stored:?}"),
    };
    for bad in [
        "",
        "   ",
        "\u{3000}",
        "critic\n",
        "a\0b",
        "\u{1B}[0m",
        too_long.as_str(),
    ] {
        let role = Role::from(bad);
        refused(c.add_message(role.clone(), "hi").await.map(|_| ()), bad);
        refused(
            c.add(NewMessage::with_parts(role.clone(), vec![Part::text("hi")]))
                .await
                .map(|_| ()),
            bad,
        );
        refused(
            c.append(vec![
                NewMessage::new(Role::User, "fine"),
                NewMessage::new(role.clone(), "hi"),
            ])
            .await
            .map(|_| ()),
            bad,
        );
        let mut options = ReplyOptions::default();
        options.role = role;
        refused(c.begin_reply(options).await.map(|_| ()), bad);
        refused(Role::parse(bad).map(|_| ()), bad);
    }
    c.refresh().await.unwrap();
    assert_eq!(c.message_count(), 0, "a refused message was stored");
    assert!(c.messages().await.unwrap().is_empty());

    // The longest role and one with inner spaces and Unicode are stored as given.
    let longest = "é".repeat(Role::MAX_BYTES / 2);
    for good in [longest.as_str(), "code reviewer", "Narrator-ü"] {
        let stored = c.add_message(Role::from(good), "hi").await.unwrap();
        assert_eq!(stored.role.as_str(), good);
    }
}
