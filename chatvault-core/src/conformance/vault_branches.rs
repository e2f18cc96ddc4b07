//! Branches through the vault: edit, regenerate, versions, switch, rewind, fork, and the
//! active path paged in both directions.

use super::SuiteConfig;
use super::util::{fresh_user, ok};
use crate::model::{HitBranch, Message, MessageRange, NewMessage, Parent, Role, SearchOptions};
use crate::vault::{ChatVault, Conversation, ReplyOptions};

fn texts(messages: &[Message]) -> Vec<String> {
    messages.iter().map(Message::content).collect()
}

async fn path_texts(c: &Conversation) -> Vec<String> {
    texts(&ok(c.messages().await, "the active path"))
}

/// The chat product's flow: edit a user message, regenerate a reply (streamed), see the
/// versions ("2 of 2"), switch back, rewind and switch again, fork into another user's
/// conversation that outlives its source; every state read back through a fresh handle.
pub async fn branches_through_the_vault(vault: ChatVault, config: SuiteConfig) {
    let (alice, bob) = (fresh_user("alice"), fresh_user("bob"));
    let mut c = ok(vault.create_conversation(Some(&alice)).await, "create");
    ok(c.add_message(Role::User, "u1").await, "u1");
    let a1 = ok(c.add_message(Role::Assistant, "a1").await, "a1");
    let u2 = ok(c.add_message(Role::User, "u2").await, "u2");
    ok(c.add_message(Role::Assistant, "a2").await, "a2");

    let edited = ok(
        c.branches()
            .edit(&u2.id, NewMessage::new(Role::User, "u2 edited"))
            .await,
        "edit",
    );
    assert_eq!(path_texts(&c).await, ["u1", "a1", "u2 edited"]);
    let first_reply = ok(c.add_message(Role::Assistant, "b1").await, "reply");
    let mut writer = ok(
        c.branches()
            .regenerate(&first_reply.id, ReplyOptions::default())
            .await,
        "regenerate",
    );
    ok(writer.push_text("b2").await, "push");
    let second_reply = ok(writer.finish(None).await, "finish");
    ok(c.refresh().await, "refresh");
    assert_eq!(path_texts(&c).await, ["u1", "a1", "u2 edited", "b2"]);
    assert_eq!(c.version_of(second_reply.seq), (1, 2), "version 2 of 2");
    let versions = ok(c.branches().siblings(&second_reply.id).await, "siblings");
    assert_eq!(texts(&versions.messages), ["b1", "b2"]);
    assert_eq!(versions.index, 1);

    ok(
        c.branches().switch(&u2.id).await,
        "switch to the first version",
    );
    let fresh = reread(&vault, &c).await;
    assert_eq!(path_texts(&fresh).await, ["u1", "a1", "u2", "a2"]);
    assert_eq!(fresh.record().summary().message_count, 4);
    if vault.messages_backend().capabilities().search {
        let options = SearchOptions::default();
        let hits = ok(vault.search(&alice, "edited", &options).await, "search");
        let branches: Vec<_> = hits.items.iter().map(|h| h.branch).collect();
        let off_path = HitBranch {
            active: false,
            leaf: second_reply.seq,
        };
        assert_eq!(branches, [Some(off_path)], "search says which branch");
    }
    ok(c.branches().rewind(&a1.id).await, "rewind");
    assert_eq!(path_texts(&reread(&vault, &c).await).await, ["u1", "a1"]);
    ok(c.branches().switch(&edited.id).await, "switch to the edit");
    assert_eq!(path_texts(&c).await, ["u1", "a1", "u2 edited", "b2"]);

    let fork = ok(
        c.branches()
            .fork(&edited.id, vault.new_conversation().user(bob.clone()))
            .await,
        "fork",
    );
    assert_eq!(fork.user_id(), Some(&bob));
    ok(vault.delete_conversation(c.id()).await, "delete the source");
    let fork = reread(&vault, &fork).await;
    assert_eq!(path_texts(&fork).await, ["u1", "a1", "u2 edited"]);
    let _ = config;
    paged_paths(&vault).await;
    many_segments(&vault).await;
}

/// Two branches appended to in turn, 20 rounds: the path through one crosses 20
/// segments, more than one page reads at once; it reads whole, and in pages of 5.
async fn many_segments(vault: &ChatVault) {
    let mut c = ok(vault.create_conversation(None).await, "create");
    let root = ok(c.add_message(Role::User, "r").await, "root");
    let (mut a, mut b) = (root.seq, root.seq);
    let mut last_a = None;
    for i in 1..=20 {
        let x = NewMessage::new(Role::User, format!("a{i}")).with_parent(Parent::Seq(a));
        let stored = ok(c.add(x).await, "append to branch a");
        a = stored.seq;
        last_a = Some(stored.id);
        let y = NewMessage::new(Role::User, format!("b{i}")).with_parent(Parent::Seq(b));
        b = ok(c.add(y).await, "append to branch b").seq;
    }
    let Some(last_a) = last_a else { return };
    ok(c.branches().rewind(&last_a).await, "rewind to a20");
    let expected: Vec<String> = std::iter::once("r".to_owned())
        .chain((1..=20).map(|i| format!("a{i}")))
        .collect();
    assert_eq!(c.record().tree().active_path().len(), 20);
    assert_eq!(path_texts(&c).await, expected);
    let mut paged = Vec::new();
    let mut range = MessageRange::after(0).limit(5);
    loop {
        let page = ok(c.messages_page(&range).await, "a page across segments");
        paged.extend(page.items);
        match page.next_cursor {
            Some(cursor) => range = ok(range.continue_from(&cursor), "cursor"),
            None => break,
        }
    }
    assert_eq!(texts(&paged), expected);
    let tail = ok(c.last_messages(18).await, "the newest 18 across segments");
    assert_eq!(texts(&tail), expected[3..].to_vec());
}

/// A 30-message line with a 25-message branch from its 9th message: the active path
/// (34 messages) reads the same whole, in pages of 7 forward, and from the end backward;
/// the old branch reads by its leaf.
async fn paged_paths(vault: &ChatVault) {
    let mut c = ok(vault.create_conversation(None).await, "create");
    let line: Vec<NewMessage> = (1..=30)
        .map(|i| NewMessage::new(Role::User, format!("m{i}")))
        .collect();
    let line = ok(c.append(line).await, "append a line");
    ok(
        c.branches()
            .edit(&line[9].id, NewMessage::new(Role::User, "e10"))
            .await,
        "edit message 10",
    );
    let more: Vec<NewMessage> = (11..=34)
        .map(|i| NewMessage::new(Role::User, format!("e{i}")))
        .collect();
    ok(c.append(more).await, "append to the branch");
    let whole = ok(c.messages().await, "the active path");
    let expected: Vec<String> = (1..=9)
        .map(|i| format!("m{i}"))
        .chain((10..=34).map(|i| format!("e{i}")))
        .collect();
    assert_eq!(texts(&whole), expected);

    let mut paged = Vec::new();
    let mut range = MessageRange::after(0).limit(7);
    loop {
        let page = ok(c.messages_page(&range).await, "a page of the path");
        assert!(page.items.len() <= 7);
        paged.extend(page.items);
        match page.next_cursor {
            Some(cursor) => range = ok(range.continue_from(&cursor), "cursor"),
            None => break,
        }
    }
    assert_eq!(texts(&paged), expected, "forward pages");
    let tail = ok(c.last_messages(12).await, "the newest 12 of the path");
    assert_eq!(texts(&tail), expected[expected.len() - 12..].to_vec());
    let older = ok(
        c.messages_page(&MessageRange::before(whole[10].seq).limit(5))
            .await,
        "backward across the branch point",
    );
    assert_eq!(texts(&older.items), expected[5..10].to_vec());
    let old_branch = ok(
        c.branch_page(30, &MessageRange::after(25)).await,
        "the old branch by its leaf",
    );
    assert_eq!(
        texts(&old_branch.items),
        ["m26", "m27", "m28", "m29", "m30"]
    );
}

async fn reread(vault: &ChatVault, c: &Conversation) -> Conversation {
    match ok(vault.get_conversation(c.id()).await, "get_conversation") {
        Some(c) => c,
        None => panic!("conversation {} is missing", c.id()),
    }
}
