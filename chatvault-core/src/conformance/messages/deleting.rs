//! Finding conversations whose deletion was stopped between its two steps:
//! `list_deleting`.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::common::user_msg;
use crate::backend::MessagesBackend;
use crate::backend::MessagesBackendExt;
use crate::conformance::SuiteConfig;
use crate::conformance::util::{fresh_user, new_conversation, ok};
use crate::ids::{ConversationId, UserId};
use crate::model::PageLimit;

/// The marked conversations `list_deleting` gives for `user` (as a set).
async fn marked(
    b: &dyn MessagesBackend,
    user: Option<&UserId>,
    limit: usize,
) -> BTreeSet<ConversationId> {
    let limit = ok(PageLimit::new(limit), "limit");
    let listed = ok(b.list_deleting(user, limit).await, "list_deleting");
    let set: BTreeSet<_> = listed.iter().cloned().collect();
    assert_eq!(set.len(), listed.len(), "listed twice: {listed:?}");
    set
}

/// `list_deleting` lists exactly the conversations `begin_delete` marked and `delete` has
/// not removed: of one user, or of everyone (where the backend lists every user's), at
/// most `limit` of them; a live conversation never, a deleted one no more.
pub async fn marked_conversations_are_listed_until_deleted(
    backend: Arc<dyn MessagesBackend>,
    _config: SuiteConfig,
) {
    let b = backend.as_ref();
    let (alice, bob) = (fresh_user("marked-a"), fresh_user("marked-b"));
    let a1 = new_conversation(b, Some(&alice)).await.id;
    let a2 = new_conversation(b, Some(&alice)).await.id;
    let live = new_conversation(b, Some(&alice)).await.id;
    let b1 = new_conversation(b, Some(&bob)).await.id;
    let nobody = new_conversation(b, None).await.id;
    ok(
        b.append_messages(&a1, vec![user_msg("going")]).await,
        "append",
    );
    assert!(
        marked(b, Some(&alice), 10).await.is_empty(),
        "nothing marked yet"
    );

    for id in [&a1, &a1, &b1, &nobody] {
        assert!(ok(b.begin_delete(id).await, "begin_delete").is_some());
    }
    assert_eq!(
        marked(b, Some(&alice), 10).await,
        BTreeSet::from([a1.clone()])
    );
    assert_eq!(
        marked(b, Some(&bob), 10).await,
        BTreeSet::from([b1.clone()])
    );
    let all_users = b.capabilities().list_all;
    if all_users {
        // Other checks may run against the same store at once: ours are among them.
        let everyone = marked(b, None, 1000).await;
        for id in [&a1, &b1, &nobody] {
            assert!(everyone.contains(id), "{id} is marked: {everyone:?}");
        }
        for id in [&a2, &live] {
            assert!(!everyone.contains(id), "{id} is not marked");
        }
    }

    assert!(ok(b.begin_delete(&a2).await, "begin_delete").is_some());
    let one = marked(b, Some(&alice), 1).await;
    assert_eq!(one.len(), 1, "the limit holds: {one:?}");
    assert!(one.contains(&a1) || one.contains(&a2), "{one:?}");
    assert_eq!(
        marked(b, Some(&alice), 10).await,
        BTreeSet::from([a1.clone(), a2.clone()])
    );

    assert!(ok(b.delete(&a1).await, "delete"));
    assert_eq!(
        marked(b, Some(&alice), 10).await,
        BTreeSet::from([a2.clone()])
    );
    for id in [&a2, &b1, &nobody] {
        assert!(ok(b.delete(id).await, "delete"));
    }
    assert!(marked(b, Some(&alice), 10).await.is_empty(), "all deleted");
    assert!(marked(b, Some(&bob), 10).await.is_empty(), "all deleted");
    if all_users {
        let everyone = marked(b, None, 1000).await;
        for id in [&a1, &a2, &b1, &nobody, &live] {
            assert!(!everyone.contains(id), "{id} is deleted or live");
        }
    }
    assert!(
        ok(b.head(&live).await, "head").is_some(),
        "others are untouched"
    );
}
