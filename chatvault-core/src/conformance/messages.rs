//! Checks of a [`MessagesBackend`], each a public async function taking the backend and the
//! [`SuiteConfig`]. Run them on a tokio multi-thread runtime (the macro
//! [`messages_backend_tests!`](crate::messages_backend_tests) does).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::lock::Mutex as AsyncMutex;

use super::SuiteConfig;
use super::util::{
    all_messages, assert_kind, assert_listing_order, assert_seqs, batch_size, depth_limit,
    exact_metadata, fresh_user, join, list_everything, message_limit, metadata_with,
    new_conversation, ok, parse,
};
use crate::backend::MessagesBackend;
use crate::error::{ErrorKind, Result};
use crate::ids::{ConversationId, FileId, MessageId, UserId};
use crate::keys;
use crate::message::{
    FilePart, FileSource, MessageStatus, MessageUpdate, NewMessage, Part, ProviderPart, Reasoning,
    ToolResult, Usage,
};
use crate::model::{
    ConversationPatch, ConversationRecord, FileAttachment, ListOptions, Message, MessageRange,
    Role, auto_title, now, validate_metadata,
};
use crate::vault::sha256_hex;

pub use super::search::{
    nasty_queries, search, search_answers_arbitrary_queries, search_answers_nasty_queries,
};

/// 193 arbitrary bytes (ending in 0x00 0xFF 0xFE) in base64, as providers send reasoning
/// signatures: `+`, `/` and `=` padding included.
const SIGNATURE: &str = "pU3KGCUwux1tEyze1iN7LtkeP3IfyxlxF0SU1kk8nVw0YL4xIB5p/tqg7ui5mX9cfCmZ/a/lkyU81lSvTfrXFCegrrP+6SMvivIhH57kkcWxC+y1Vjv8Hm+TQn7LyP4pVeXNjkbcjtS3wnZNKlpNdncG+F2GkAJK1r2jQBvpyMvMyTX2zR9hImrhUziuGjQATTO6DSRqwEyBsbryPjv57vX3nytJNK+H9VILablLDZguhbtVtnKocmN6zXRm/AD//g==";

fn user_msg(text: impl Into<String>) -> NewMessage {
    NewMessage::new(Role::User, text)
}

async fn head_record(backend: &dyn MessagesBackend, id: &ConversationId) -> ConversationRecord {
    match ok(backend.head(id).await, "head") {
        Some(head) => head.record,
        None => panic!("head: conversation {id} is missing"),
    }
}

fn attachment(user: Option<&UserId>, conversation: &ConversationId, name: &str) -> FileAttachment {
    let id = FileId::new();
    FileAttachment {
        storage_key: ok(
            keys::storage_key(user, conversation, &id, name),
            "storage key",
        ),
        id,
        filename: name.into(),
        content_type: parse("application/pdf"),
        size: 10,
        sha256: sha256_hex(name.as_bytes()),
        uploaded_at: now(),
        metadata: exact_metadata(),
    }
}

/// Checks (as the vault would) that a message the suite sends is one the core accepts.
#[track_caller]
fn accepted(message: &NewMessage, limit: usize) {
    if let Err(e) = message.validate() {
        panic!("the suite built a message the core refuses: {e}");
    }
    assert!(
        message.json_len() <= limit,
        "the suite built a message of {} bytes, over the backend's limit {limit}",
        message.json_len()
    );
}

/// `create` stores the record exactly (times, unicode title, metadata with exact numbers);
/// a second `create` of the same id is AlreadyExists and changes nothing; an unknown id has
/// no head.
pub async fn create_and_read_back(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let mut record = ConversationRecord::new(Some(fresh_user("user")));
    record.title = Some("Réunion 📅".into());
    record.metadata = exact_metadata();
    ok(b.create(&record).await, "create");
    let head = ok(b.head(&record.id).await, "head");
    let head = match head {
        Some(h) => h,
        None => panic!("a created conversation must have a head"),
    };
    assert_eq!(head.record, record, "the record must round-trip exactly");
    assert!(head.files.is_empty(), "a new conversation has no files");

    let mut again = ConversationRecord::new(None);
    again.id = record.id.clone();
    assert_kind(
        b.create(&again).await,
        ErrorKind::AlreadyExists,
        "create with a taken id",
    );
    assert_eq!(
        head_record(b, &record.id).await,
        record,
        "a refused create must not change the record"
    );
    assert_eq!(
        ok(
            b.head(&ConversationId::new()).await,
            "head of an unknown id"
        ),
        None
    );
    // Two concurrent creates of one id: exactly one wins.
    let contested = ConversationRecord::new(None);
    let handles = (0..8)
        .map(|_| {
            let backend = Arc::clone(&backend);
            let record = contested.clone();
            tokio::spawn(async move { backend.create(&record).await })
        })
        .collect();
    let results = join(handles).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        wins, 1,
        "of 8 racing creates of one id, exactly one succeeds"
    );
    for r in results.into_iter().filter(Result::is_err) {
        assert_kind(r, ErrorKind::AlreadyExists, "a racing create that lost");
    }
}

/// `append_messages` assigns seq 1, 2, 3..., counts, moves `last_active` forward, grows the
/// version, keeps ids, and titles the conversation from its first user message.
pub async fn append_assigns_seq_and_title(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let record = new_conversation(b, Some(&fresh_user("user"))).await;
    let long_question = "¿Qué tiempo hará mañana en Zürich? ".repeat(4);
    let with_meta = NewMessage::new(Role::Assistant, "Sunny.").with_metadata(exact_metadata());
    let first = ok(
        b.append_messages(
            &record.id,
            vec![
                NewMessage::new(Role::System, "You are terse."),
                user_msg(long_question.clone()),
                with_meta.clone(),
            ],
        )
        .await,
        "append",
    );
    assert_seqs(&first.messages, 1..=3, "first append");
    assert_eq!(first.record.message_count, 3);
    assert_eq!(
        first.record.title,
        auto_title(&long_question),
        "the title comes from the first user message"
    );
    assert!(first.record.last_active >= record.last_active);
    assert!(
        first.record.version > record.version,
        "the version must grow"
    );
    assert_eq!(
        first.messages[2].metadata,
        exact_metadata(),
        "message metadata must round-trip exactly (numbers too)"
    );
    assert_eq!(first.messages[2].id, with_meta.id, "message ids are kept");

    let second = ok(
        b.append_messages(
            &record.id,
            vec![user_msg("a second question must not retitle")],
        )
        .await,
        "append again",
    );
    assert_seqs(&second.messages, [4], "second append");
    assert_eq!(second.record.title, first.record.title);
    assert!(second.record.last_active >= first.record.last_active);

    let empty = ok(
        b.append_messages(&record.id, Vec::new()).await,
        "an empty append",
    );
    assert!(empty.messages.is_empty(), "an empty append stores nothing");
    assert_eq!(empty.record.message_count, 4);

    let stored = all_messages(b, &record.id).await;
    assert_seqs(&stored, 1..=4, "stored messages");
    assert_eq!(
        stored[..3],
        first.messages[..],
        "stored exactly as returned"
    );
    assert_eq!(stored[3], second.messages[0], "stored exactly as returned");
    assert_eq!(stored[1].content(), long_question);
    assert_eq!(
        head_record(b, &record.id).await,
        second.record,
        "head matches the last append's record"
    );

    // A conversation opened by a non-user message waits for a user message's title.
    let other = new_conversation(b, None).await;
    let a = ok(
        b.append_messages(&other.id, vec![NewMessage::new(Role::Assistant, "Hi!")])
            .await,
        "append",
    );
    assert_eq!(a.record.title, None, "only user messages give a title");
    let custom = ok(
        b.append_messages(&other.id, vec![NewMessage::new("critic", "meh")])
            .await,
        "append a custom role",
    );
    assert_eq!(custom.messages[0].role, Role::Other("critic".into()));
    let stored = all_messages(b, &other.id).await;
    assert_eq!(stored[1].role, Role::Other("critic".into()));
}

/// Every operation on a conversation that does not exist fails with NotFound (a head is
/// `None`, a delete `false`), and none creates it.
pub async fn missing_conversations_are_not_found(
    backend: Arc<dyn MessagesBackend>,
    _config: SuiteConfig,
) {
    let b = backend.as_ref();
    let id = ConversationId::new();
    assert_kind(
        b.append_messages(&id, vec![user_msg("x")]).await,
        ErrorKind::NotFound,
        "append to a missing conversation",
    );
    assert_kind(
        b.messages(&id, &MessageRange::all()).await,
        ErrorKind::NotFound,
        "messages of a missing conversation",
    );
    assert_kind(
        b.update(
            &id,
            &ConversationPatch {
                archived: Some(true),
                ..Default::default()
            },
        )
        .await,
        ErrorKind::NotFound,
        "update of a missing conversation",
    );
    assert_kind(
        b.update_message(&id, &MessageId::new(), 1, &MessageUpdate::default())
            .await,
        ErrorKind::NotFound,
        "update_message in a missing conversation",
    );
    assert_kind(
        b.add_file(&id, &attachment(None, &id, "x.pdf")).await,
        ErrorKind::NotFound,
        "add_file to a missing conversation",
    );
    assert_kind(
        b.remove_file(&id, &FileId::new()).await,
        ErrorKind::NotFound,
        "remove_file of a missing conversation",
    );
    assert_eq!(ok(b.begin_delete(&id).await, "begin_delete"), None);
    assert!(!ok(b.delete(&id).await, "delete of a missing conversation"));
    assert_eq!(
        ok(b.head(&id).await, "head"),
        None,
        "failed calls must not create the conversation"
    );
}

/// Reads `range` through the backend's pages until its limit is reached or nothing is
/// left; checks every page on the way. Returns the messages and whether the last page
/// said more lie beyond.
async fn read_range(
    backend: &dyn MessagesBackend,
    id: &ConversationId,
    range: MessageRange,
) -> (Vec<Message>, bool) {
    let (mut wanted, forward) = match range {
        MessageRange::After { limit, .. } => (limit.unwrap_or(usize::MAX), true),
        MessageRange::Before { limit, .. } => (limit, false),
    };
    let mut out: Vec<Message> = Vec::new();
    let mut range = range;
    loop {
        let page = ok(backend.messages(id, &range).await, "messages");
        assert!(
            page.items.len() <= wanted,
            "{range:?}: a page may be shorter than the limit, never longer ({} > {wanted})",
            page.items.len()
        );
        for pair in page.items.windows(2) {
            assert_eq!(
                pair[1].seq,
                pair[0].seq + 1,
                "{range:?}: a page is in seq order"
            );
        }
        match &range {
            MessageRange::After { after, .. } => {
                if let Some(first) = page.items.first() {
                    assert_eq!(
                        first.seq,
                        after + 1,
                        "{range:?} must start right after {after}"
                    );
                }
            }
            MessageRange::Before {
                before: Some(before),
                ..
            } => {
                if let Some(last) = page.items.last() {
                    assert_eq!(
                        last.seq + 1,
                        *before,
                        "{range:?} must end right before {before}"
                    );
                }
            }
            MessageRange::Before { before: None, .. } => {}
        }
        wanted -= page.items.len();
        let got = page.items.len();
        if forward {
            out.extend(page.items);
        } else {
            let mut items = page.items;
            items.append(&mut out);
            out = items;
        }
        match page.next_cursor {
            None => return (out, false),
            Some(_) if wanted == 0 => return (out, true),
            Some(cursor) => {
                assert!(
                    got > 0,
                    "{range:?}: a short page with a cursor must not be empty"
                );
                range = ok(range.continue_from(&cursor), "the backend's message cursor");
                range = match range {
                    MessageRange::After { after, .. } => MessageRange::After {
                        after,
                        limit: (wanted != usize::MAX).then_some(wanted),
                    },
                    MessageRange::Before { before, .. } => MessageRange::Before {
                        before,
                        limit: wanted,
                    },
                };
            }
        }
    }
}

/// Windows by seq (`after`, `before`, `last`, limits) hold exactly the right messages, and
/// say whether more lie beyond; cursors walk the conversation either way without gaps or
/// repeats. Pages may be shorter than asked (with a cursor); the check follows them.
pub async fn message_ranges_and_cursors(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let record = new_conversation(b, None).await;
    let batch: Vec<NewMessage> = (1..=25).map(|i| user_msg(format!("m{i}"))).collect();
    for chunk in batch.chunks(batch_size(b)) {
        ok(
            b.append_messages(&record.id, chunk.to_vec()).await,
            "append 25",
        );
    }
    let id = &record.id;

    let (items, more) = read_range(b, id, MessageRange::after(5).limit(7)).await;
    assert_seqs(&items, 6..=12, "after(5).limit(7)");
    assert!(more, "after(5).limit(7): more messages follow");
    let (items, more) = read_range(b, id, MessageRange::last(5)).await;
    assert_seqs(&items, 21..=25, "last(5)");
    assert!(more, "older messages remain before last(5)");
    let (items, more) = read_range(b, id, MessageRange::before(6).limit(3)).await;
    assert_seqs(&items, 3..=5, "before(6).limit(3)");
    assert!(more, "seq 1 and 2 remain before it");
    let (items, more) = read_range(b, id, MessageRange::before(3).limit(5)).await;
    assert_seqs(&items, 1..=2, "before(3).limit(5)");
    assert!(!more, "nothing before seq 1");
    let (items, more) = read_range(b, id, MessageRange::last(100)).await;
    assert_seqs(&items, 1..=25, "last(100)");
    assert!(!more);
    let (items, more) = read_range(b, id, MessageRange::after(20).limit(100)).await;
    assert_seqs(&items, 21..=25, "after(20).limit(100)");
    assert!(!more);
    let (items, more) = read_range(b, id, MessageRange::after(25)).await;
    assert!(items.is_empty() && !more, "after the end is empty");
    let (items, _) = read_range(b, id, MessageRange::last(0)).await;
    assert!(items.is_empty(), "last(0) is empty");

    // Walk forward and backward in small pages.
    for range in [MessageRange::all().limit(4), MessageRange::last(4)] {
        let mut seen = Vec::new();
        let mut r = range.clone();
        for _ in 0..1000 {
            let page = ok(b.messages(id, &r).await, "messages");
            seen.extend(page.items.iter().map(|m| m.seq));
            match page.next_cursor {
                Some(c) => r = ok(r.continue_from(&c), "cursor"),
                None => break,
            }
        }
        seen.sort_unstable();
        assert_eq!(
            seen,
            (1..=25).collect::<Vec<_>>(),
            "paging {range:?} must visit every message once"
        );
    }
}

/// Ranges without a limit come in the backend's natural pages: following the cursors from
/// the start, from the middle and backwards from the end visits every message once.
pub async fn natural_pages_cover_everything(
    backend: Arc<dyn MessagesBackend>,
    config: SuiteConfig,
) {
    let b = backend.as_ref();
    let n = config.long_conversation.clamp(1, 600) as u64;
    let record = new_conversation(b, None).await;
    let mut i = 0;
    while i < n {
        let k = (n - i).min(batch_size(b) as u64);
        let batch = (i..i + k)
            .map(|j| user_msg(format!("message {j}")))
            .collect();
        ok(b.append_messages(&record.id, batch).await, "append a batch");
        i += k;
    }
    let everything = all_messages(b, &record.id).await;
    assert_seqs(&everything, 1..=n, "all(), in natural pages");
    let middle = n / 2;
    let (rest, more) = read_range(b, &record.id, MessageRange::after(middle)).await;
    assert_seqs(&rest, middle + 1..=n, "after(middle), in natural pages");
    assert!(!more);
    let (back, _) = read_range(b, &record.id, MessageRange::last(n as usize)).await;
    assert_seqs(&back, 1..=n, "last(n), walked backwards");
}

/// Title, archive flag and metadata change without touching messages or `last_active`; a
/// later user message never replaces a title.
pub async fn metadata_updates_leave_messages_alone(
    backend: Arc<dyn MessagesBackend>,
    _config: SuiteConfig,
) {
    let b = backend.as_ref();
    let record = new_conversation(b, Some(&fresh_user("user"))).await;
    let appended = ok(
        b.append_messages(&record.id, vec![user_msg("hello"), user_msg("world")])
            .await,
        "append",
    );
    let before = all_messages(b, &record.id).await;

    let updated = ok(
        b.update(
            &record.id,
            &ConversationPatch {
                title: Some("New title ✓".into()),
                archived: Some(true),
                metadata: Some(exact_metadata()),
            },
        )
        .await,
        "update",
    );
    assert_eq!(updated.title.as_deref(), Some("New title ✓"));
    assert!(updated.archived);
    assert_eq!(updated.metadata, exact_metadata());
    assert_eq!(
        updated.last_active, appended.record.last_active,
        "last_active is kept"
    );
    assert_eq!(updated.message_count, 2);
    assert!(
        updated.version > appended.record.version,
        "the version grows"
    );
    assert_eq!(
        head_record(b, &record.id).await,
        updated,
        "stored as returned"
    );
    assert_eq!(
        all_messages(b, &record.id).await,
        before,
        "messages untouched"
    );

    let unarchived = ok(
        b.update(
            &record.id,
            &ConversationPatch {
                archived: Some(false),
                ..Default::default()
            },
        )
        .await,
        "unarchive",
    );
    assert!(!unarchived.archived);
    assert_eq!(
        unarchived.title.as_deref(),
        Some("New title ✓"),
        "title kept"
    );
    assert_eq!(unarchived.metadata, exact_metadata(), "metadata kept");

    let a = ok(
        b.append_messages(&record.id, vec![user_msg("later")]).await,
        "append",
    );
    assert_eq!(a.record.title.as_deref(), Some("New title ✓"));
}

/// Attachment records: two files of the same name are both kept, exactly, oldest first;
/// a taken file id is AlreadyExists; `file_count` follows; removing a missing file is
/// `None`.
pub async fn file_records(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let user = fresh_user("user");
    let record = new_conversation(b, Some(&user)).await;
    let a = attachment(Some(&user), &record.id, "report.pdf");
    let c = attachment(Some(&user), &record.id, "report.pdf");
    let r1 = ok(b.add_file(&record.id, &a).await, "add a");
    assert_eq!(r1.file_count, 1);
    assert!(r1.last_active >= record.last_active);
    let r2 = ok(b.add_file(&record.id, &c).await, "add c");
    assert_eq!(r2.file_count, 2);
    assert!(r2.version > r1.version);
    let head = ok(b.head(&record.id).await, "head");
    assert_eq!(
        head.map(|h| (h.record, h.files)),
        Some((r2.clone(), vec![a.clone(), c.clone()])),
        "head: the record and both same-named files, oldest first, exactly"
    );
    assert_kind(
        b.add_file(&record.id, &a).await,
        ErrorKind::AlreadyExists,
        "adding a file id twice",
    );
    let removed = ok(b.remove_file(&record.id, &a.id).await, "remove");
    let removed = match removed {
        Some(r) => r,
        None => panic!("remove_file of a stored attachment must return the record"),
    };
    assert_eq!(removed.file_count, 1);
    let head = ok(b.head(&record.id).await, "head");
    assert_eq!(head.map(|h| h.files), Some(vec![c.clone()]));
    assert_eq!(
        ok(b.remove_file(&record.id, &a.id).await, "remove again"),
        None
    );
}

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
    let mut options = ListOptions::new().limit(2);
    let mut seen = Vec::new();
    loop {
        let page = ok(b.list_conversations(Some(&user), &options).await, "list");
        seen.extend(page.items);
        new_conversation(b, Some(&user)).await;
        match page.next_cursor {
            Some(c) => options = options.cursor(c),
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

/// `begin_delete` marks a conversation: it reads as gone (no head, not listed, every write
/// and read NotFound), its id stays taken, a second `begin_delete` returns its files again,
/// and `delete` finishes (marked or not; retry-safe).
pub async fn begin_delete_then_delete(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let user = fresh_user("user");
    let record = new_conversation(b, Some(&user)).await;
    let keep = new_conversation(b, Some(&user)).await;
    let appended = ok(
        b.append_messages(&record.id, vec![user_msg("bye")]).await,
        "append",
    );
    let f1 = attachment(Some(&user), &record.id, "a.pdf");
    let f2 = attachment(Some(&user), &record.id, "b.pdf");
    ok(b.add_file(&record.id, &f1).await, "add_file");
    ok(b.add_file(&record.id, &f2).await, "add_file");

    let files = ok(b.begin_delete(&record.id).await, "begin_delete");
    assert_eq!(
        files,
        Some(vec![f1.clone(), f2.clone()]),
        "begin_delete returns the files"
    );
    assert_eq!(
        ok(b.head(&record.id).await, "head"),
        None,
        "a marked conversation has no head"
    );
    let listed = list_everything(b, Some(&user), true, 10).await;
    assert_eq!(
        listed.iter().map(|s| &s.id).collect::<Vec<_>>(),
        vec![&keep.id],
        "a marked conversation leaves listings"
    );
    if b.capabilities().list_all {
        let all = list_everything(b, None, true, 1000).await;
        assert!(all.iter().all(|s| s.id != record.id), "and the list of all");
    }
    assert_kind(
        b.append_messages(&record.id, vec![user_msg("x")]).await,
        ErrorKind::NotFound,
        "append to a marked conversation",
    );
    assert_kind(
        b.add_file(&record.id, &attachment(Some(&user), &record.id, "late.pdf"))
            .await,
        ErrorKind::NotFound,
        "add_file to a marked conversation",
    );
    assert_kind(
        b.update(
            &record.id,
            &ConversationPatch {
                title: Some("t".into()),
                ..Default::default()
            },
        )
        .await,
        ErrorKind::NotFound,
        "update of a marked conversation",
    );
    assert_kind(
        b.update_message(
            &record.id,
            &appended.messages[0].id,
            1,
            &MessageUpdate {
                status: Some(MessageStatus::Failed),
                ..Default::default()
            },
        )
        .await,
        ErrorKind::NotFound,
        "update_message in a marked conversation",
    );
    assert_kind(
        b.remove_file(&record.id, &f1.id).await,
        ErrorKind::NotFound,
        "remove_file of a marked conversation",
    );
    assert_kind(
        b.messages(&record.id, &MessageRange::all()).await,
        ErrorKind::NotFound,
        "messages of a marked conversation",
    );
    let mut taken = ConversationRecord::new(None);
    taken.id = record.id.clone();
    assert_kind(
        b.create(&taken).await,
        ErrorKind::AlreadyExists,
        "create over a marked conversation (its id stays taken)",
    );
    assert_eq!(
        ok(b.begin_delete(&record.id).await, "begin_delete again"),
        Some(vec![f1, f2]),
        "a second begin_delete returns the files again"
    );
    assert!(ok(b.delete(&record.id).await, "delete"));
    assert_eq!(ok(b.head(&record.id).await, "head"), None);
    assert_eq!(
        ok(
            b.begin_delete(&record.id).await,
            "begin_delete after delete"
        ),
        None
    );
    assert!(
        !ok(b.delete(&record.id).await, "delete again"),
        "a second delete finds nothing"
    );
    assert!(
        ok(b.head(&keep.id).await, "head").is_some(),
        "others are untouched"
    );

    // Deleting without marking first works too, and frees the id.
    ok(
        b.append_messages(&keep.id, vec![user_msg("soon gone")])
            .await,
        "append",
    );
    assert!(ok(
        b.delete(&keep.id).await,
        "delete an unmarked conversation"
    ));
    assert_eq!(ok(b.head(&keep.id).await, "head"), None);
    assert!(list_everything(b, Some(&user), true, 10).await.is_empty());
    assert_kind(
        b.append_messages(&keep.id, vec![user_msg("x")]).await,
        ErrorKind::NotFound,
        "append after delete",
    );
    let mut reused = ConversationRecord::new(Some(user.clone()));
    reused.id = keep.id.clone();
    ok(
        b.create(&reused).await,
        "create with the id of a deleted conversation",
    );
    assert_eq!(head_record(b, &keep.id).await, reused);
    assert!(
        all_messages(b, &keep.id).await.is_empty(),
        "a new conversation under a deleted one's id has none of its messages"
    );
}

/// A long conversation, appended in batches, reads back whole and in order.
pub async fn long_conversation(backend: Arc<dyn MessagesBackend>, config: SuiteConfig) {
    let b = backend.as_ref();
    let n = config.long_conversation.max(1);
    let record = new_conversation(b, None).await;
    let mut sent = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let k = (n - i).min(batch_size(b));
        let batch: Vec<NewMessage> = (i..i + k)
            .map(|j| user_msg(format!("message {j}: {}", "x".repeat(j % 200))))
            .collect();
        sent.extend(batch.iter().map(|m| m.id.clone()));
        ok(b.append_messages(&record.id, batch).await, "append a batch");
        i += k;
    }
    let got = all_messages(b, &record.id).await;
    assert_seqs(&got, 1..=n as u64, "long conversation");
    assert_eq!(
        got.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        sent,
        "every message, in order"
    );
    let (tail, _) = read_range(b, &record.id, MessageRange::last(3)).await;
    assert_seqs(
        &tail,
        n as u64 - 2..=n as u64,
        "last(3) of a long conversation",
    );
    assert_eq!(head_record(b, &record.id).await.message_count, n as u64);
}

/// Appends `messages`, retrying a Conflict (nothing written) a bounded number of times.
async fn append_retrying(
    backend: &dyn MessagesBackend,
    id: &ConversationId,
    messages: Vec<NewMessage>,
) -> crate::model::Appended {
    for attempt in 0..200u64 {
        match backend.append_messages(id, messages.clone()).await {
            // Nothing was written: back off a little and retry, as a caller would.
            Err(e) if e.kind() == ErrorKind::Conflict => {
                tokio::time::sleep(std::time::Duration::from_millis(attempt.min(20))).await;
            }
            other => return ok(other, "append"),
        }
    }
    panic!("an append met Conflict 200 times in a row")
}

/// Writers (spawned tasks on a multi-thread runtime) append one message at a time to one
/// conversation: every message is stored exactly once, at the seq its append returned,
/// each writer's in its order, and the count is right.
///
/// Without `concurrent_appends`, the same writers take turns (the backend is then only
/// held to sequential appends from many tasks).
pub async fn concurrent_appends(backend: Arc<dyn MessagesBackend>, config: SuiteConfig) {
    let record = new_conversation(backend.as_ref(), Some(&fresh_user("user"))).await;
    let (writers, per_writer) = (config.concurrent_writers, config.appends_per_writer);
    let turns = (!backend.capabilities().concurrent_appends).then(|| Arc::new(AsyncMutex::new(())));
    let handles = (0..writers)
        .map(|w| {
            let backend = Arc::clone(&backend);
            let id = record.id.clone();
            let turns = turns.clone();
            tokio::spawn(async move {
                let mut sent = Vec::with_capacity(per_writer);
                for i in 0..per_writer {
                    let m = user_msg(format!("writer {w} message {i}"));
                    let _turn = match &turns {
                        Some(t) => Some(t.lock().await),
                        None => None,
                    };
                    let a = append_retrying(backend.as_ref(), &id, vec![m.clone()]).await;
                    assert_eq!(a.messages.len(), 1, "one message appended, one returned");
                    assert_eq!(a.messages[0].id, m.id);
                    sent.push((m.id, a.messages[0].seq));
                }
                sent
            })
        })
        .collect();
    let sent: Vec<(MessageId, u64)> = join(handles).await.into_iter().flatten().collect();
    let total = (writers * per_writer) as u64;
    let stored = all_messages(backend.as_ref(), &record.id).await;
    let mut count: HashMap<&MessageId, usize> = HashMap::new();
    for m in &stored {
        *count.entry(&m.id).or_default() += 1;
    }
    let lost = sent
        .iter()
        .filter(|(id, _)| !count.contains_key(id))
        .count();
    assert_eq!(
        lost, 0,
        "concurrent appends lost {lost} of {total} acknowledged messages"
    );
    let duplicated = count.values().filter(|&&n| n > 1).count();
    assert_eq!(
        duplicated, 0,
        "concurrent appends stored {duplicated} messages twice"
    );
    assert_seqs(&stored, 1..=total, "concurrent appends");
    let at: HashMap<&MessageId, u64> = stored.iter().map(|m| (&m.id, m.seq)).collect();
    for (id, seq) in &sent {
        assert_eq!(
            at.get(id),
            Some(seq),
            "message {id} is stored at the seq its append returned"
        );
    }
    assert_eq!(
        head_record(backend.as_ref(), &record.id)
            .await
            .message_count,
        total
    );
    for w in 0..writers {
        let prefix = format!("writer {w} message ");
        let mine: Vec<usize> = stored
            .iter()
            .filter_map(|m| {
                m.content()
                    .strip_prefix(&prefix)
                    .and_then(|n| n.parse().ok())
            })
            .collect();
        assert_eq!(
            mine,
            (0..per_writer).collect::<Vec<_>>(),
            "writer {w}'s messages reordered"
        );
    }
}

/// Message ids are idempotency keys: the same messages again store nothing and return the
/// stored ones; the same id with other content, or a batch only partly stored, is
/// AlreadyExists and stores nothing; a message updated since is still recognised; ids are
/// per conversation.
pub async fn idempotent_appends(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let record = new_conversation(b, None).await;
    let a = user_msg("first").with_usage(Usage::new("m", 3, 4));
    let c = NewMessage::new(Role::Assistant, "second").with_metadata(exact_metadata());
    let first = ok(
        b.append_messages(&record.id, vec![a.clone(), c.clone()])
            .await,
        "append",
    );
    let stored = first.messages.clone();
    let again = ok(
        b.append_messages(&record.id, vec![a.clone(), c.clone()])
            .await,
        "the same append again",
    );
    assert_eq!(
        again.messages, stored,
        "a repeated append returns the stored messages"
    );
    assert_eq!(again.record.message_count, 2, "and stores nothing");
    assert_eq!(
        again.record.usage, first.record.usage,
        "nor counts usage twice"
    );
    let only_a = ok(
        b.append_messages(&record.id, vec![a.clone()]).await,
        "a stored message alone",
    );
    assert_eq!(only_a.messages, stored[..1].to_vec());
    assert_eq!(
        all_messages(b, &record.id).await,
        stored,
        "still two messages"
    );

    let mut other_text = a.clone();
    other_text.parts = vec![Part::text("not the first")];
    assert_kind(
        b.append_messages(&record.id, vec![other_text]).await,
        ErrorKind::AlreadyExists,
        "a stored id with other content",
    );
    let mut other_meta = c.clone();
    other_meta.metadata = metadata_with(serde_json::json!("changed"));
    assert_kind(
        b.append_messages(&record.id, vec![other_meta]).await,
        ErrorKind::AlreadyExists,
        "a stored id with other metadata",
    );
    let fresh = user_msg("third");
    assert_kind(
        b.append_messages(&record.id, vec![c.clone(), fresh.clone()])
            .await,
        ErrorKind::AlreadyExists,
        "a batch that is only partly stored",
    );
    let now_stored = all_messages(b, &record.id).await;
    assert_eq!(now_stored, stored, "refused appends store nothing");
    assert_eq!(head_record(b, &record.id).await.message_count, 2);

    // A message updated since (a streamed reply that went on) is still the same append.
    let updated = ok(
        b.update_message(
            &record.id,
            &c.id,
            stored[1].revision,
            &MessageUpdate {
                parts: Some(vec![Part::text("second, edited")]),
                ..Default::default()
            },
        )
        .await,
        "update_message",
    );
    let retried = ok(
        b.append_messages(&record.id, vec![c.clone()]).await,
        "re-append a message updated since",
    );
    assert_eq!(
        retried.messages,
        vec![updated.message],
        "returns it as stored now"
    );
    assert_eq!(head_record(b, &record.id).await.message_count, 2);

    // Ids are looked up in this conversation only.
    let elsewhere = new_conversation(b, None).await;
    let there = ok(
        b.append_messages(&elsewhere.id, vec![a.clone()]).await,
        "the same message id in another conversation",
    );
    assert_seqs(&there.messages, [1], "a message id of another conversation");
    assert_eq!(there.record.message_count, 1);
}

/// Many tasks retry the same batch at once (the recovery from an unknown outcome): each
/// batch is stored exactly once, and every task gets the stored messages back.
///
/// Without `concurrent_appends`, the retries take turns.
pub async fn concurrent_retries_store_once(
    backend: Arc<dyn MessagesBackend>,
    _config: SuiteConfig,
) {
    let record = new_conversation(backend.as_ref(), None).await;
    let turns = (!backend.capabilities().concurrent_appends).then(|| Arc::new(AsyncMutex::new(())));
    let rounds = 20;
    for round in 0..rounds {
        let batch: Vec<NewMessage> = (0..3)
            .map(|i| user_msg(format!("round {round} message {i}")))
            .collect();
        let handles = (0..8)
            .map(|_| {
                let backend = Arc::clone(&backend);
                let id = record.id.clone();
                let batch = batch.clone();
                let turns = turns.clone();
                tokio::spawn(async move {
                    let _turn = match &turns {
                        Some(t) => Some(t.lock().await),
                        None => None,
                    };
                    append_retrying(backend.as_ref(), &id, batch).await.messages
                })
            })
            .collect();
        let answers = join(handles).await;
        let stored = all_messages(backend.as_ref(), &record.id).await;
        assert_eq!(
            stored.len(),
            3 * (round + 1),
            "round {round}: 8 tasks appending the same batch must store it once"
        );
        let this_round = &stored[3 * round..];
        assert_eq!(
            this_round.iter().map(|m| &m.id).collect::<Vec<_>>(),
            batch.iter().map(|m| &m.id).collect::<Vec<_>>()
        );
        for answer in answers {
            assert_eq!(
                answer, this_round,
                "every retry gets the stored messages back"
            );
        }
    }
}

/// `update_message` is versioned: from the right revision it applies the update (revision
/// and record version grow, usage totals move by the difference, the lease ends with the
/// stream) atomically with the record; from a stale one it is Conflict and writes nothing;
/// a missing message is NotFound.
pub async fn update_message_is_versioned(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let record = new_conversation(b, None).await;
    let lease = now() + chrono::Duration::seconds(60);
    let pending = NewMessage::with_parts(Role::Assistant, Vec::new())
        .with_status(MessageStatus::Pending, Some(lease))
        .with_usage(Usage::new("model-a", 10, 5));
    let other = NewMessage::new(Role::Assistant, "done").with_usage(Usage::new("model-b", 1, 2));
    let appended = ok(
        b.append_messages(&record.id, vec![pending.clone(), other])
            .await,
        "append",
    );
    assert_eq!(
        appended.record.usage.input_tokens, 11,
        "usage totals after append"
    );
    assert_eq!(appended.record.usage.output_tokens, 7);
    let stored = &appended.messages[0];
    assert_eq!(stored.revision, 1, "a new message is at revision 1");

    let checkpoint = MessageUpdate {
        parts: Some(vec![Part::text("Hel")]),
        status: Some(MessageStatus::Streaming),
        lease_expires_at: Some(lease + chrono::Duration::seconds(30)),
        ..Default::default()
    };
    let first = ok(
        b.update_message(&record.id, &pending.id, 1, &checkpoint)
            .await,
        "update from revision 1",
    );
    assert_eq!(first.message.revision, 2, "the revision grows by one");
    assert_eq!(first.message.parts, vec![Part::text("Hel")]);
    assert_eq!(first.message.status, MessageStatus::Streaming);
    assert_eq!(first.message.lease_expires_at, checkpoint.lease_expires_at);
    assert!(first.message.updated_at.is_some(), "updated_at is set");
    assert_eq!(
        first.message.usage, pending.usage,
        "fields left None are kept"
    );
    assert_eq!(first.message.seq, 1);
    assert!(
        first.record.version > appended.record.version,
        "the record version grows"
    );

    let finish = MessageUpdate {
        parts: Some(vec![Part::text("Hello!")]),
        status: Some(MessageStatus::Complete),
        usage: Some(Usage::new("model-a", 100, 50)),
        metadata: Some(exact_metadata()),
        ..Default::default()
    };
    let done = ok(
        b.update_message(&record.id, &pending.id, 2, &finish).await,
        "update from revision 2",
    );
    assert_eq!(done.message.revision, 3);
    assert_eq!(done.message.status, MessageStatus::Complete);
    assert_eq!(
        done.message.lease_expires_at, None,
        "a finished message has no lease"
    );
    assert_eq!(done.message.metadata, exact_metadata());
    assert_eq!(done.message.usage, finish.usage);
    assert_eq!(
        (
            done.record.usage.input_tokens,
            done.record.usage.output_tokens
        ),
        (101, 52),
        "usage totals move by the difference (10/5 replaced by 100/50, plus 1/2)"
    );
    assert!(done.record.version > first.record.version);
    assert_eq!(
        head_record(b, &record.id).await,
        done.record,
        "the record is stored as returned"
    );
    let read = all_messages(b, &record.id).await;
    assert_eq!(read[0], done.message, "the message is stored as returned");

    for stale in [1, 2, 4, 99] {
        assert_kind(
            b.update_message(
                &record.id,
                &pending.id,
                stale,
                &MessageUpdate {
                    status: Some(MessageStatus::Failed),
                    failure: Some("stale".into()),
                    usage: Some(Usage::new("x", 1_000, 1_000)),
                    ..Default::default()
                },
            )
            .await,
            ErrorKind::Conflict,
            "update from a revision that is not the stored one",
        );
    }
    assert_eq!(
        all_messages(b, &record.id).await,
        read,
        "a Conflict writes nothing"
    );
    assert_eq!(
        head_record(b, &record.id).await,
        done.record,
        "nor changes the record"
    );

    let failed = ok(
        b.update_message(
            &record.id,
            &pending.id,
            3,
            &MessageUpdate {
                status: Some(MessageStatus::Failed),
                failure: Some("the model went away".into()),
                ..Default::default()
            },
        )
        .await,
        "mark failed",
    );
    assert_eq!(
        failed.message.failure.as_deref(),
        Some("the model went away")
    );
    assert_eq!(
        failed.message.usage, finish.usage,
        "usage kept when not given"
    );
    assert_eq!(
        failed.record.usage, done.record.usage,
        "totals unchanged when usage is not given"
    );

    assert_kind(
        b.update_message(&record.id, &MessageId::new(), 1, &checkpoint)
            .await,
        ErrorKind::NotFound,
        "update of a message that does not exist",
    );
    assert_eq!(
        head_record(b, &record.id).await.message_count,
        2,
        "and it creates none"
    );
}

/// Finishers race from one revision (spawned tasks): in every round exactly one wins, every
/// other gets Conflict, and the stored message is the winner's.
pub async fn racing_updates_one_wins(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let record = new_conversation(backend.as_ref(), None).await;
    let reply = NewMessage::with_parts(Role::Assistant, Vec::new()).with_status(
        MessageStatus::Pending,
        Some(now() + chrono::Duration::seconds(60)),
    );
    ok(
        backend
            .append_messages(&record.id, vec![reply.clone()])
            .await,
        "append",
    );
    let racers = 8;
    for round in 0..10u64 {
        let revision = round + 1;
        let handles = (0..racers)
            .map(|r| {
                let backend = Arc::clone(&backend);
                let id = record.id.clone();
                let message_id = reply.id.clone();
                tokio::spawn(async move {
                    let update = MessageUpdate {
                        parts: Some(vec![Part::text(format!("round {round} by {r}"))]),
                        usage: Some(Usage::new("m", r, round)),
                        ..Default::default()
                    };
                    (
                        r,
                        backend
                            .update_message(&id, &message_id, revision, &update)
                            .await,
                    )
                })
            })
            .collect();
        let results = join(handles).await;
        let mut winners = Vec::new();
        for (r, result) in results {
            match result {
                Ok(updated) => winners.push((r, updated)),
                Err(e) if e.kind() == ErrorKind::Conflict => {}
                Err(e) => panic!(
                    "round {round}: a racing update failed with {:?}: {e}",
                    e.kind()
                ),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: of {racers} updates from revision {revision}, exactly one must win"
        );
        let (r, updated) = &winners[0];
        assert_eq!(updated.message.revision, revision + 1);
        let stored = all_messages(backend.as_ref(), &record.id).await;
        assert_eq!(stored.len(), 1);
        assert_eq!(
            stored[0].content(),
            format!("round {round} by {r}"),
            "the winner's content is stored"
        );
        assert_eq!(stored[0], updated.message);
        let totals = head_record(backend.as_ref(), &record.id).await.usage;
        assert_eq!(
            (totals.input_tokens, totals.output_tokens),
            (*r, round),
            "round {round}: usage totals are the winner's alone"
        );
    }
}

/// Every part kind round-trips exactly: text, unicode, a file by attachment and by URL
/// (also a `data:` URL), a tool call with large arguments and exact numbers, a nested tool
/// result, reasoning with a byte-exact signature (and redacted), provider data, and a part
/// kind from a later release.
pub async fn every_part_kind_round_trips(backend: Arc<dyn MessagesBackend>, config: SuiteConfig) {
    let b = backend.as_ref();
    let limit = message_limit(b);
    let record = new_conversation(b, None).await;
    let unknown: Part = match serde_json::from_value(serde_json::json!({
        "type": "hologram", "frames": [1, 2.5, null, 18446744073709551615u64], "x": {"y": "z ✓"}
    })) {
        Ok(p) => p,
        Err(e) => panic!("the suite's unknown part: {e}"),
    };
    assert!(
        matches!(unknown, Part::Unknown(_)),
        "the suite's unknown part must be unknown"
    );
    let parts = vec![
        Part::text("plain"),
        Part::text(
            "日本語, Ελληνικά, עברית, 👨‍👩‍👧, e\u{301}, \u{202E}rtl\u{202C}, \"quotes\" \\ \n\t",
        ),
        Part::File(FilePart {
            source: FileSource::Attachment {
                file_id: FileId::new(),
            },
            media_type: Some(parse("image/png")),
            filename: Some("cat picture ✓.png".into()),
        }),
        Part::url(
            "https://example.com/a%20b/cat.png?x=1&y=é#frag",
            Some(parse("image/png")),
        ),
        Part::url("data:text/plain;base64,SGVsbG8=", None),
        Part::tool_call(
            "call_1",
            "get_weather",
            serde_json::json!({"city": "Oslo", "n": 9007199254740993u64, "f": 0.1, "neg": -1e-300,
                "list": [true, null, {"deep": ["x"]}]}),
        ),
        Part::ToolResult(ToolResult {
            call_id: "call_1".into(),
            content: vec![
                Part::text("4°C"),
                Part::ToolResult(ToolResult {
                    call_id: "inner".into(),
                    content: vec![
                        Part::text("nested"),
                        Part::url("https://example.com/x", None),
                    ],
                    is_error: false,
                }),
            ],
            is_error: true,
        }),
        Part::Reasoning(Reasoning {
            text: Some("Let me think…".into()),
            signature: Some(SIGNATURE.into()),
            redacted: false,
        }),
        Part::Reasoning(Reasoning {
            text: None,
            signature: Some(format!("{SIGNATURE}{SIGNATURE}")),
            redacted: true,
        }),
        Part::Provider(ProviderPart {
            provider: "openai".into(),
            kind: "web_search_call".into(),
            data: serde_json::json!({"id": "ws_1", "score": 0.30000000000000004, "big": -9223372036854775808i64}),
        }),
        unknown,
    ];
    let everything = NewMessage::with_parts(Role::Assistant, parts.clone());
    accepted(&everything, limit);

    // Large tool arguments: the configured size, or the backend's limit minus a margin.
    let margin = 16 * 1024;
    let size = config
        .large_arguments_bytes
        .min(limit.saturating_sub(margin))
        .max(1);
    let blob: String = "0123456789abcdefghijklmnopqrstuvwxyzé✓"
        .chars()
        .cycle()
        .scan(0usize, |len, c| {
            *len += c.len_utf8();
            (*len <= size).then_some(c)
        })
        .collect();
    let large = NewMessage::with_parts(
        Role::Assistant,
        vec![Part::tool_call(
            "call_big",
            "write_file",
            serde_json::json!({"content": blob, "n": 1}),
        )],
    );
    accepted(&large, limit);
    let result = NewMessage::with_parts(
        Role::Tool,
        vec![Part::tool_result("call_big", "written", false)],
    );

    let appended = ok(
        b.append_messages(
            &record.id,
            vec![everything.clone(), large.clone(), result.clone()],
        )
        .await,
        "append every part kind",
    );
    let read = all_messages(b, &record.id).await;
    assert_eq!(read, appended.messages, "read back as returned");
    for (sent, got) in [&everything, &large, &result].into_iter().zip(&read) {
        for (i, (s, g)) in sent.parts.iter().zip(&got.parts).enumerate() {
            assert_eq!(g, s, "part {i} ({}) changed on the way", s.kind());
        }
        assert_eq!(
            got.parts.len(),
            sent.parts.len(),
            "parts were lost or added"
        );
        assert_eq!(got.role, sent.role);
    }
}

/// Status, lease, usage (every count and the model), metadata, role and creation time
/// round-trip; revision starts at 1; an update's failure, status and time read back.
pub async fn message_fields_round_trip(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let record = new_conversation(b, Some(&fresh_user("user"))).await;
    let created: DateTime<Utc> = now() - chrono::Duration::days(400);
    let lease = now() + chrono::Duration::seconds(90);
    let usage = Usage {
        input_tokens: 1_234_567,
        output_tokens: u64::from(u32::MAX) + 7,
        cached_input_tokens: 1_000,
        reasoning_tokens: 42,
        model: Some("gpt-4o-2024-08-06 ✓".into()),
    };
    let mut streaming = NewMessage::with_parts("Narrator-ü", vec![Part::text("so far")])
        .with_status(MessageStatus::Streaming, Some(lease))
        .with_usage(usage.clone())
        .with_metadata(exact_metadata());
    streaming.created_at = created;
    let plain = user_msg("plain");
    let appended = ok(
        b.append_messages(&record.id, vec![streaming.clone(), plain.clone()])
            .await,
        "append",
    );
    let read = all_messages(b, &record.id).await;
    assert_eq!(read, appended.messages, "read back as returned");
    let m = &read[0];
    assert_eq!(m.id, streaming.id);
    assert_eq!(m.role, Role::Other("Narrator-ü".into()));
    assert_eq!(m.status, MessageStatus::Streaming);
    assert_eq!(m.lease_expires_at, Some(lease));
    assert_eq!(m.usage.as_ref(), Some(&usage));
    assert_eq!(m.metadata, exact_metadata());
    assert_eq!(
        m.created_at, created,
        "created_at is the message's, to the microsecond"
    );
    assert_eq!(
        (m.revision, m.updated_at, m.failure.as_deref()),
        (1, None, None)
    );
    assert_eq!(read[1].status, MessageStatus::Complete);
    assert_eq!(read[1].usage, None);
    assert_eq!(appended.record.usage.input_tokens, usage.input_tokens);
    assert_eq!(appended.record.usage.cached_input_tokens, 1_000);
    assert_eq!(appended.record.usage.reasoning_tokens, 42);
    assert_eq!(appended.record.usage.model, None, "totals carry no model");

    let failed = ok(
        b.update_message(
            &record.id,
            &streaming.id,
            1,
            &MessageUpdate {
                status: Some(MessageStatus::Failed),
                failure: Some("rate limited ✗".into()),
                ..Default::default()
            },
        )
        .await,
        "update_message",
    );
    let read = all_messages(b, &record.id).await;
    assert_eq!(read[0], failed.message, "read back as returned");
    assert_eq!(read[0].status, MessageStatus::Failed);
    assert_eq!(read[0].failure.as_deref(), Some("rate limited ✗"));
    assert_eq!(read[0].lease_expires_at, None);
    assert_eq!(read[0].revision, 2);
    assert!(read[0].updated_at.is_some_and(|u| u >= created));
    assert_eq!(
        read[0].parts,
        vec![Part::text("so far")],
        "parts kept when not given"
    );
    assert_eq!(
        read[1], appended.messages[1],
        "the other message is untouched"
    );
}

/// Whatever the core accepts reads back exactly: metadata, tool arguments and nested tool
/// results at the deepest nesting the core allows, conversation metadata at that depth (on
/// create and on update), and large text in every script, with NUL and the highest code
/// points.
pub async fn accepted_values_read_back(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let limit = message_limit(b);
    let (deep_meta, _) = depth_limit(|v| {
        NewMessage::new(Role::User, "x")
            .with_metadata(metadata_with(v.clone()))
            .validate()
            .is_ok()
    });
    let (deep_args, _) = depth_limit(|v| {
        NewMessage::with_parts(Role::Assistant, vec![Part::tool_call("c", "f", v.clone())])
            .validate()
            .is_ok()
    });
    let mut nested = Part::text("innermost");
    let mut deepest_result = nested.clone();
    for level in 0..1_000 {
        nested = Part::ToolResult(ToolResult {
            call_id: format!("call_{level}"),
            content: vec![nested],
            is_error: false,
        });
        if NewMessage::with_parts(Role::Tool, vec![nested.clone()])
            .validate()
            .is_err()
        {
            break;
        }
        deepest_result = nested.clone();
    }
    let alphabet = "Hello, мир, 世界, عالم, 🌍👨‍👩‍👧‍👦, e\u{301}, \u{0}, \u{FFFF}, \u{10FFFF}, \u{2028}\u{2029}, \"\\/\n\r\t ";
    let text_size = (limit / 2).min(1024 * 1024);
    let big_text: String = alphabet.repeat(text_size / alphabet.len() + 1);
    let messages = vec![
        NewMessage::new(Role::User, "deep metadata")
            .with_metadata(metadata_with(deep_meta.clone())),
        NewMessage::with_parts(Role::Assistant, vec![Part::tool_call("c", "f", deep_args)]),
        NewMessage::with_parts(Role::Tool, vec![deepest_result]),
        NewMessage::new(Role::User, big_text),
    ];
    for m in &messages {
        accepted(m, limit);
    }
    let mut record = ConversationRecord::new(Some(fresh_user("user ✓ ü")));
    let (deep_conversation_meta, _) =
        depth_limit(|v| validate_metadata(&metadata_with(v.clone())).is_ok());
    record.metadata = metadata_with(deep_conversation_meta.clone());
    record.title = Some("ü".repeat(100));
    if let Err(e) = record.validate() {
        panic!("the suite built a record the core refuses: {e}");
    }
    ok(b.create(&record).await, "create with the deepest metadata");
    assert_eq!(
        head_record(b, &record.id).await,
        record,
        "the record reads back"
    );
    let appended = ok(
        b.append_messages(&record.id, messages.clone()).await,
        "append the deepest and largest values the core accepts",
    );
    let read = all_messages(b, &record.id).await;
    assert_eq!(read, appended.messages, "everything reads back as returned");
    for (sent, got) in messages.iter().zip(&read) {
        assert_eq!(got.parts, sent.parts, "parts read back exactly");
        assert_eq!(got.metadata, sent.metadata, "metadata reads back exactly");
    }
    let mut patched = exact_metadata();
    patched.insert("deep".into(), deep_conversation_meta);
    let patch = ConversationPatch {
        metadata: Some(patched.clone()),
        ..Default::default()
    };
    if let Err(e) = patch.validate() {
        panic!("the suite built a patch the core refuses: {e}");
    }
    let updated = ok(
        b.update(&record.id, &patch).await,
        "update with deep metadata",
    );
    assert_eq!(updated.metadata, patched);
    assert_eq!(
        head_record(b, &record.id).await,
        updated,
        "the patched record reads back"
    );
}
