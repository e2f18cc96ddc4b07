//! Reading messages: ranges, cursors, natural pages, long conversations.

use std::sync::Arc;

use super::common::{head_record, user_msg};
use crate::backend::MessagesBackend;
use crate::backend::MessagesBackendExt;
use crate::conformance::SuiteConfig;
use crate::conformance::util::{all_messages, assert_seqs, batch_size, new_conversation, ok};
use crate::ids::ConversationId;
use crate::model::NewMessage;
use crate::model::{Message, MessageRange};

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
