//! Reading one branch: a [`MessageRange`] over a path of [`Segment`]s, one range read per
//! segment it crosses, the reads of one page sent at once (so a page costs about one
//! round trip however many segments it crosses, on a backend that serves reads in
//! parallel).

use futures_util::future::join_all;

use crate::backend::MessagesBackend;
use crate::error::{Error, Result};
use crate::ids::ConversationId;
use crate::model::{Message, MessageRange, Page, Segment};

/// The most segment reads one page sends (at once): a page that crosses more segments
/// ends after these, with a cursor.
const MAX_READS: usize = 16;

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
    let mut left = limit.unwrap_or(usize::MAX) as u64;
    let mut plan = Vec::new();
    for seg in path.iter().filter(|s| s.last > after) {
        if left == 0 || plan.len() == MAX_READS {
            break;
        }
        let from = seg.first.max(after + 1);
        let n = (seg.last - from + 1).min(left);
        left -= n;
        plan.push((from, from + n - 1));
    }
    let ranges: Vec<MessageRange> = plan
        .iter()
        .map(|&(first, last)| MessageRange::after(first - 1).limit(len(first, last)))
        .collect();
    let reads = ranges.iter().map(|range| backend.messages(id, range));
    let pages = join_all(reads).await;
    let mut items = Vec::new();
    for (&(first, last), page) in plan.iter().zip(pages) {
        let (got, short) = check(id, page?, first, last)?;
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
    let mut left = limit as u64;
    let mut plan = Vec::new();
    for seg in path.iter().rev() {
        if left == 0 || plan.len() == MAX_READS {
            break;
        }
        let end = match before {
            Some(b) if b <= seg.first => continue,
            Some(b) => (b - 1).min(seg.last),
            None => seg.last,
        };
        let n = (end - seg.first + 1).min(left);
        left -= n;
        plan.push((end + 1 - n, end));
    }
    let ranges: Vec<MessageRange> = plan
        .iter()
        .map(|&(first, last)| MessageRange::before(last + 1).limit(len(first, last)))
        .collect();
    let reads = ranges.iter().map(|range| backend.messages(id, range));
    let pages = join_all(reads).await;
    let mut chunks = Vec::new();
    for (&(first, last), page) in plan.iter().zip(pages) {
        let (got, short) = check(id, page?, first, last)?;
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

/// How many messages `first..=last` holds, as a range limit.
fn len(first: u64, last: u64) -> usize {
    usize::try_from(last + 1 - first).unwrap_or(usize::MAX)
}

/// The messages of one segment read, and whether the backend ended it short with a page
/// of its own natural size (the page then ends there, with a cursor). A read that comes
/// back short without a cursor, or empty, names messages the table holds and the backend
/// does not return.
fn check(
    id: &ConversationId,
    page: Page<Message>,
    first: u64,
    last: u64,
) -> Result<(Vec<Message>, bool)> {
    let got = within(page.items, first, last);
    let short = (got.len() as u64) < last + 1 - first;
    if short && (got.is_empty() || page.next_cursor.is_none()) {
        return Err(missing(id, first, last));
    }
    Ok((got, short))
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
