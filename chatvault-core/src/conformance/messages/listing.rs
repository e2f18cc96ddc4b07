//! Listing conversations: per user and all, ordering, pages under concurrent creation.

use std::collections::HashSet;
use std::sync::Arc;

use super::common::user_msg;
use crate::backend::MessagesBackend;
use crate::backend::MessagesBackendExt;
use crate::conformance::SuiteConfig;
use crate::conformance::util::{
    assert_kind, assert_listing_order, fresh_user, join, list_everything, new_conversation, ok,
};
use crate::error::ErrorKind;
use crate::ids::ConversationId;
use crate::model::{ConversationPatch, ConversationRecord, ListOptions, now};

/// A user's listing: only theirs, newest activity first, archived left out unless asked,
/// pages that neither skip nor repeat.
pub async fn list_user_conversations(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let user = fresh_user("user");
    let other_user = fresh_user("user");
    let mut ids = Vec::new();
    for i in 0..7 {
        let r = new_conversation(b, Some(&user)).await;
        ok(
            b.append_messages(&r.id, vec![user_msg(format!("conversation {i}"))])
                .await,
            "append",
        );
        ids.push(r.id);
    }
    new_conversation(b, Some(&other_user)).await;
    for id in &ids[..2] {
        ok(
            b.update(
                id,
                &ConversationPatch {
                    archived: Some(true),
                    ..Default::default()
                },
            )
            .await,
            "archive",
        );
    }
    // Touch an older one so it becomes the newest.
    ok(
        b.append_messages(&ids[2], vec![user_msg("bump")]).await,
        "append",
    );

    for limit in [1, 2, 3, 1000] {
        let active = list_everything(b, Some(&user), false, limit).await;
        assert_listing_order(&active, "active listing");
        let active_ids: HashSet<&ConversationId> = active.iter().map(|s| &s.id).collect();
        let expected: HashSet<&ConversationId> = ids[2..].iter().collect();
        assert_eq!(
            active_ids, expected,
            "active listing in pages of {limit}: exactly the unarchived ones"
        );
        assert_eq!(active.len(), 5, "pages of {limit}: no repeats");
        assert_eq!(active[0].id, ids[2], "the most recently active comes first");
        assert_eq!(active[0].message_count, 2);
        assert_eq!(active[0].title.as_deref(), Some("conversation 2"));
        assert_eq!(active[0].user_id.as_ref(), Some(&user));

        let everything = list_everything(b, Some(&user), true, limit).await;
        assert_listing_order(&everything, "listing with archived ones");
        assert_eq!(everything.len(), 7, "pages of {limit}, archived included");
        assert_eq!(everything.iter().filter(|s| s.archived).count(), 2);
    }
    let none = ok(
        b.list_conversations(Some(&fresh_user("nobody")), &ListOptions::new())
            .await,
        "list for an unknown user",
    );
    assert!(none.items.is_empty() && !none.has_more());
}

/// Conversations created while a client pages through a listing (by spawned tasks, and
/// between page loads) never make it skip or repeat one that existed when it started.
pub async fn listing_pages_survive_concurrent_creation(
    backend: Arc<dyn MessagesBackend>,
    _config: SuiteConfig,
) {
    let b = backend.as_ref();
    let user = fresh_user("user");
    let mut original = HashSet::new();
    for _ in 0..15 {
        original.insert(new_conversation(b, Some(&user)).await.id);
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let creators: Vec<_> = (0..3)
        .map(|_| {
            let backend = Arc::clone(&backend);
            let user = user.clone();
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut made = 0usize;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) && made < 200 {
                    new_conversation(backend.as_ref(), Some(&user)).await;
                    made += 1;
                    tokio::task::yield_now().await;
                }
                made
            })
        })
        .collect();
    let mut options = ok(ListOptions::new().limit(2), "limit");
    let mut seen = Vec::new();
    loop {
        let page = ok(b.list_conversations(Some(&user), &options).await, "list");
        seen.extend(page.items);
        new_conversation(b, Some(&user)).await;
        match page.next_cursor {
            Some(c) => options = ok(options.cursor(&c), "cursor"),
            None => break,
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    join(creators).await;
    assert_listing_order(&seen, "listing while others create");
    let seen_original: Vec<&ConversationId> = seen
        .iter()
        .map(|s| &s.id)
        .filter(|id| original.contains(*id))
        .collect();
    let unique_seen: HashSet<&ConversationId> = seen_original.iter().copied().collect();
    assert_eq!(
        unique_seen.len(),
        seen_original.len(),
        "a conversation was repeated"
    );
    assert_eq!(
        unique_seen.len(),
        original.len(),
        "a conversation was skipped while others were created"
    );
}

/// Conversations with the same `last_active` are listed by id, descending, and pages split
/// between them neither skip nor repeat one.
pub async fn listing_ties_break_by_id(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let user = fresh_user("user");
    let at = now();
    let mut ids = Vec::new();
    for _ in 0..6 {
        let mut record = ConversationRecord::new(Some(user.clone()));
        record.created_at = at;
        record.last_active = at;
        ok(b.create(&record).await, "create");
        ids.push(record.id);
    }
    ids.sort_unstable_by(|a, c| c.cmp(a));
    for limit in [1, 2, 4, 6] {
        let listed: Vec<ConversationId> = list_everything(b, Some(&user), false, limit)
            .await
            .into_iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(listed, ids, "ties in last_active, pages of {limit}");
    }
}

/// With `list_all`: every user's conversations (and those without a user) are listed once,
/// in listing order. Without: `list_conversations(None, ..)` is NotSupported.
pub async fn list_all_conversations(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    if !b.capabilities().list_all {
        assert_kind(
            b.list_conversations(None, &ListOptions::new()).await,
            ErrorKind::NotSupported,
            "listing every user without the list_all capability",
        );
        return;
    }
    let mut mine = HashSet::new();
    for i in 0..5 {
        let user = (i % 2 == 0).then(|| fresh_user("user"));
        mine.insert(new_conversation(b, user.as_ref()).await.id);
    }
    let all = list_everything(b, None, true, 7).await;
    assert_listing_order(&all, "list all");
    let found = all.iter().filter(|s| mine.contains(&s.id)).count();
    assert_eq!(
        found,
        mine.len(),
        "every conversation, with or without a user, once"
    );
}
