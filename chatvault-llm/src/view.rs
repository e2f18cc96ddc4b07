//! Which stored messages the model sees: the whole active branch, its newest messages, or
//! the latest compaction checkpoint and what follows what it covers.

use std::collections::HashSet;

use chatvault_core::{Checkpoint, Conversation, Message, MessageRange, Part, Result};

use super::is_instruction;

/// Messages asked for per read, walking the active branch backwards.
const PAGE: usize = 64;

/// Messages asked for per read of the instructions that open a conversation.
const OPENING_PAGE: usize = 16;

/// The messages the model's view is made of, in branch order, checkpoints left out but
/// for the one the view starts from.
///
/// With `use_checkpoints`, the view starts at the branch's latest checkpoint: the
/// instructions that open the conversation, the checkpoint, and the messages after the
/// ones it covers; the covered messages are not read. Without a checkpoint (or without
/// `use_checkpoints`), the whole branch. With `recent`, only the newest `recent` messages
/// are read (and the opening instructions): a checkpoint among them counts, an older one
/// is not looked for.
pub(crate) async fn model_view(
    conversation: &Conversation,
    use_checkpoints: bool,
    recent: Option<usize>,
) -> Result<Vec<Message>> {
    match recent {
        Some(n) => recent_view(conversation, use_checkpoints, n).await,
        None if use_checkpoints => checkpoint_view(conversation).await,
        None => {
            let mut messages = conversation.messages().await?;
            messages.retain(|m| !Checkpoint::is_checkpoint(m));
            Ok(messages)
        }
    }
}

/// The whole branch's view: read backwards from its end to its latest checkpoint, then on
/// to the message that checkpoint covers through.
async fn checkpoint_view(conversation: &Conversation) -> Result<Vec<Message>> {
    let mut back = Backwards::new(conversation);
    // The newest messages, newest first, down to the latest checkpoint.
    let mut tail = Vec::new();
    let found = loop {
        let Some(m) = back.next().await? else {
            break None;
        };
        if let Some(checkpoint) = Checkpoint::of(&m) {
            break Some((m, checkpoint));
        }
        tail.push(m);
    };
    let Some((checkpoint_message, checkpoint)) = found else {
        // No checkpoint on the branch: everything was read.
        tail.reverse();
        return Ok(tail);
    };
    // The messages after the covered ones, before the checkpoint (newest first).
    let mut between = Vec::new();
    let mut covered_seq = None;
    while let Some(m) = back.next().await? {
        if m.id == checkpoint.through {
            covered_seq = Some(m.seq);
            break;
        }
        if !Checkpoint::is_checkpoint(&m) {
            between.push(m);
        }
    }
    let Some(covered_seq) = covered_seq else {
        // The message it covers through is not on this branch (a damaged or hand-made
        // checkpoint): it covers nothing here, and everything was read.
        let mut all: Vec<Message> = tail.into_iter().chain(between).collect();
        all.reverse();
        return Ok(all);
    };
    let mut view = opening_instructions(conversation, covered_seq.saturating_add(1)).await?;
    view.push(checkpoint_message);
    view.extend(between.into_iter().rev());
    view.extend(tail.into_iter().rev());
    Ok(view)
}

/// The view from the newest `n` messages and the opening instructions.
async fn recent_view(
    conversation: &Conversation,
    use_checkpoints: bool,
    n: usize,
) -> Result<Vec<Message>> {
    let mut newest = conversation.last_messages(n).await?;
    let latest = newest
        .iter()
        .rposition(Checkpoint::is_checkpoint)
        .filter(|_| use_checkpoints);
    let Some(at) = latest else {
        newest.retain(|m| !Checkpoint::is_checkpoint(m));
        return with_opening(conversation, newest).await;
    };
    let tail = newest.split_off(at + 1);
    let checkpoint_message = newest.pop();
    let checkpoint = checkpoint_message.as_ref().and_then(Checkpoint::of);
    let (Some(checkpoint_message), Some(checkpoint)) = (checkpoint_message, checkpoint) else {
        return with_opening(conversation, tail).await;
    };
    // Of the older messages read, those after the covered ones (all of them when the
    // covered ones are older still).
    let covered = newest.iter().position(|m| m.id == checkpoint.through);
    let first_after = covered.map_or(0, |i| i + 1);
    let covered_seq = match covered {
        Some(i) => newest[i].seq,
        None => newest
            .first()
            .unwrap_or(&checkpoint_message)
            .seq
            .saturating_sub(1),
    };
    let mut after: Vec<Message> = newest
        .split_off(first_after)
        .into_iter()
        .filter(|m| !Checkpoint::is_checkpoint(m))
        .chain(tail)
        .collect();
    drop_results_of_unread_calls(&mut after);
    let mut view = opening_instructions(conversation, covered_seq.saturating_add(1)).await?;
    view.push(checkpoint_message);
    view.append(&mut after);
    Ok(view)
}

/// The active branch, read backwards a page at a time.
struct Backwards<'a> {
    conversation: &'a Conversation,
    /// The next page ends before this `seq` (`None`: at the end).
    before: Option<u64>,
    /// The page being handed out, oldest first (popped from the end).
    page: Vec<Message>,
    done: bool,
}

impl<'a> Backwards<'a> {
    fn new(conversation: &'a Conversation) -> Self {
        Backwards {
            conversation,
            before: None,
            page: Vec::new(),
            done: false,
        }
    }

    /// The message before the last one handed out; `None` at the start of the branch.
    async fn next(&mut self) -> Result<Option<Message>> {
        if self.page.is_empty() && !self.done {
            let range = MessageRange::Before {
                before: self.before,
                limit: PAGE,
            };
            let page = self.conversation.messages_page(&range).await?;
            let first = page.items.first().map(|m| m.seq);
            // The start of the branch, or a backend whose pages stop moving back.
            self.done = page.next_cursor.is_none()
                || first.is_none()
                || first.is_some_and(|f| self.before.is_some_and(|b| f >= b));
            self.before = first;
            self.page = page.items;
        }
        Ok(self.page.pop())
    }
}

/// The run of instructions (system or developer messages, checkpoints aside) that opens
/// the active branch, those with a `seq` below `before`.
async fn opening_instructions(conversation: &Conversation, before: u64) -> Result<Vec<Message>> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let range = MessageRange::after(after).limit(OPENING_PAGE);
        let page = conversation.messages_page(&range).await?;
        let got = page.items.len();
        for m in page.items {
            if m.seq >= before || !is_instruction(&m.role) || Checkpoint::is_checkpoint(&m) {
                return Ok(out);
            }
            after = m.seq;
            out.push(m);
        }
        if got == 0 || page.next_cursor.is_none() {
            return Ok(out);
        }
    }
}

/// The opening instructions of `conversation` (those before `newest`), then `newest` (the
/// newest messages of the branch) without the messages that only answer calls older than
/// them.
async fn with_opening(
    conversation: &Conversation,
    mut newest: Vec<Message>,
) -> Result<Vec<Message>> {
    // The first seq of the newest; every message when nothing came back (none stored, or
    // n = 0).
    let first = newest.first().map_or(u64::MAX, |m| m.seq);
    if first <= 1 {
        return Ok(newest);
    }
    drop_results_of_unread_calls(&mut newest);
    let mut out = opening_instructions(conversation, first).await?;
    out.append(&mut newest);
    Ok(out)
}

/// Leaves out the messages that hold only results of calls not in `messages` (a result
/// is never sent without its call).
pub(crate) fn drop_results_of_unread_calls(messages: &mut Vec<Message>) {
    let calls: HashSet<String> = messages
        .iter()
        .flat_map(|m| &m.parts)
        .filter_map(|p| match p {
            Part::ToolCall(c) => Some(c.id.clone()),
            _ => None,
        })
        .collect();
    messages.retain(|m| {
        let answers_unread =
            |p: &Part| matches!(p, Part::ToolResult(r) if !calls.contains(&r.call_id));
        m.parts.is_empty() || !m.parts.iter().all(answers_unread)
    });
}
