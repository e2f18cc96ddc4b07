//! Reading one branch: a [`MessageRange`] over a path of [`Segment`]s, one range read per
//! segment it crosses.

use crate::backend::MessagesBackend;
use crate::error::{Error, Result};
use crate::ids::ConversationId;
use crate::model::{Message, MessageRange, Page, Segment};

/// The page of `range` over the messages of `path` (segments in ascending `seq` order):
/// `seq` values and cursors are the stored ones, so a cursor from one page continues the
/// same path. A backend that returns a short page of its own natural size ends this page
/// there, with a cursor.
pub(super) async fn path_page(
    backend: &dyn MessagesBackend,
    id: &ConversationId,
    path: &[Segment],
    range: &MessageRange,
) -> Result<Page<Message>> {
    match *range {
        MessageRange::After { after, limit } => after_page(backend, id, path, after, limit).await,
        MessageRange::Before { before, limit } => {
            before_page(backend, id, path, before, limit).await
        }
    }
}

async fn after_page(
    backend: &dyn MessagesBackend,
    id: &ConversationId,
    path: &[Segment],
    after: u64,
    limit: Option<usize>,
) -> Result<Page<Message>> {
    let want = limit.unwrap_or(usize::MAX);
    let mut items: Vec<Message> = Vec::new();
    for seg in path.iter().filter(|s| s.last > after) {
        if items.len() >= want {
            break;
        }
        let from = seg.first.max(after + 1);
        let n = (seg.last - from + 1).min((want - items.len()) as u64);
        let page = backend
            .messages(id, &MessageRange::after(from - 1).limit(n as usize))
            .await?;
        let got = within(page.items, from, seg.last);
        let short = (got.len() as u64) < n;
        if short && (got.is_empty() || page.next_cursor.is_none()) {
            return Err(missing(id, from, seg.last));
        }
        items.extend(got);
        if short {
            break;
        }
    }
    let end = path.last().map_or(0, |s| s.last);
    let next_cursor = items
        .last()
        .filter(|m| m.seq < end)
        .map(|m| m.seq.to_string());
    Ok(Page { items, next_cursor })
}

async fn before_page(
    backend: &dyn MessagesBackend,
    id: &ConversationId,
    path: &[Segment],
    before: Option<u64>,
    limit: usize,
) -> Result<Page<Message>> {
    let mut chunks: Vec<Vec<Message>> = Vec::new();
    let mut held = 0usize;
    for seg in path.iter().rev() {
        if held >= limit {
            break;
        }
        let end = match before {
            Some(b) if b <= seg.first => continue,
            Some(b) => (b - 1).min(seg.last),
            None => seg.last,
        };
        let n = (end - seg.first + 1).min((limit - held) as u64);
        let page = backend
            .messages(id, &MessageRange::before(end + 1).limit(n as usize))
            .await?;
        let got = within(page.items, end + 1 - n, end);
        let short = (got.len() as u64) < n;
        if short && (got.is_empty() || page.next_cursor.is_none()) {
            return Err(missing(id, end + 1 - n, end));
        }
        held += got.len();
        chunks.push(got);
        if short {
            break;
        }
    }
    let items: Vec<Message> = chunks.into_iter().rev().flatten().collect();
    let start = path.first().map_or(0, |s| s.first);
    let next_cursor = items
        .first()
        .filter(|m| m.seq > start)
        .map(|m| m.seq.to_string());
    Ok(Page { items, next_cursor })
}

/// The messages of a read that lie in `first..=last` (a backend returns no others; this
/// keeps a faulty one from mixing branches).
fn within(items: Vec<Message>, first: u64, last: u64) -> Vec<Message> {
    items
        .into_iter()
        .filter(|m| first <= m.seq && m.seq <= last)
        .collect()
}

fn missing(id: &ConversationId, first: u64, last: u64) -> Error {
    Error::backend(
        "messages",
        format!(
            "conversation {id}: its branch table holds seq {first}..={last}, \
             which the backend did not return"
        ),
    )
}
