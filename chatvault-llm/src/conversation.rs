//! [`PrepareHistory::prepare_history`]: repair, window and file resolution in one call.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::{
    ApproxCounter, FileMode, ReplayMessage, ReplayOptions, TokenCounter, is_instruction, repair,
    resolve_files, select_window,
};
use chatvault_core::Conversation;
use chatvault_core::MessageRange;
use chatvault_core::Result;
use chatvault_core::{Message, Part};

/// Messages asked for per read of the instructions that open a conversation
/// ([`HistoryOptions::recent`]).
const OPENING_PAGE: usize = 16;

/// What [`PrepareHistory::prepare_history`] does: how files are sent, the repair texts, an
/// optional token budget, and optionally how much of a long history is read.
#[derive(Clone)]
#[non_exhaustive]
pub struct HistoryOptions {
    /// How attachment parts are resolved.
    pub files: FileMode,
    /// The texts repair writes.
    pub replay: ReplayOptions,
    /// The token budget, if any: the newest history that fits is kept
    /// ([`select_window`]).
    pub budget: Option<usize>,
    /// The counter for the budget ([`ApproxCounter`] unless set).
    pub counter: Arc<dyn TokenCounter>,
    /// Read only the newest this many messages (and the instructions that open the
    /// conversation); `None` reads every message. See [`recent`](Self::recent).
    pub recent: Option<usize>,
}

impl fmt::Debug for HistoryOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistoryOptions")
            .field("files", &self.files)
            .field("replay", &self.replay)
            .field("budget", &self.budget)
            .field("recent", &self.recent)
            .finish_non_exhaustive()
    }
}

impl HistoryOptions {
    /// Whole history, repaired with the default texts, files resolved by `files`.
    pub fn new(files: FileMode) -> Self {
        HistoryOptions {
            files,
            replay: ReplayOptions::default(),
            budget: None,
            counter: Arc::new(ApproxCounter),
            recent: None,
        }
    }

    /// Keeps the newest history within `tokens`, counted by `counter`.
    pub fn budget(mut self, tokens: usize, counter: impl TokenCounter + 'static) -> Self {
        self.budget = Some(tokens);
        self.counter = Arc::new(counter);
        self
    }

    /// Sets the repair texts.
    pub fn replay(mut self, replay: ReplayOptions) -> Self {
        self.replay = replay;
        self
    }

    /// Reads only the newest `n` messages, plus the run of instructions (`system` or
    /// `developer` messages) that opens the conversation, instead of every message: what
    /// `prepare_history` reads no longer grows with the conversation's length.
    ///
    /// Without it, every message is read, so that every instruction, wherever it is, is
    /// pinned in the window (see [`select_window`]). With it:
    ///
    /// - instructions between the opening run and the newest `n` are not read, so not
    ///   sent;
    /// - a message of the newest `n` that holds only tool results whose calls are older is
    ///   left out with them (a result is never sent without its call);
    /// - with a budget, the window is chosen among what was read: pick `n` larger than the
    ///   most messages the budget can hold (at most the budget divided by
    ///   [`TokenCounter::message_overhead`]), or the window may end before the budget
    ///   does.
    ///
    /// `recent(0)` reads the opening instructions alone.
    pub fn recent(mut self, n: usize) -> Self {
        self.recent = Some(n);
        self
    }
}

/// History preparation on a stored conversation: [`prepare_history`](Self::prepare_history)
/// on a [`Conversation`] handle (`use chatvault_llm::PrepareHistory;`).
///
/// Sealed: implemented for [`Conversation`] only.
pub trait PrepareHistory: sealed::Sealed {
    /// The conversation's history, ready for a provider's writer
    /// ([`openai::to_messages`](crate::openai::to_messages),
    /// [`anthropic::to_request`](crate::anthropic::to_request), ...): every message
    /// read, [repaired](crate::replay), cut to the budget if one is set
    /// ([`select_window`]), and attachments resolved ([`resolve_files`]).
    ///
    /// Files are resolved after the window, so left-out attachments are never read. With
    /// [`HistoryOptions::recent`], only the newest messages and the opening instructions
    /// are read.
    fn prepare_history(
        &self,
        options: &HistoryOptions,
    ) -> impl Future<Output = Result<Vec<ReplayMessage>>> + Send;
}

mod sealed {
    /// Keeps [`PrepareHistory`](super::PrepareHistory) to the types of this crate.
    pub trait Sealed {}
    impl Sealed for chatvault_core::Conversation {}
}

impl PrepareHistory for Conversation {
    async fn prepare_history(&self, options: &HistoryOptions) -> Result<Vec<ReplayMessage>> {
        let messages = match options.recent {
            Some(n) => recent_messages(self, n).await?,
            None => self.messages().await?,
        };
        let mut history = repair(&messages, &options.replay);
        if let Some(budget) = options.budget {
            history = select_window(&history, budget, options.counter.as_ref()).apply(&history);
        }
        resolve_files(self, history, options.files).await
    }
}

/// The newest `n` messages of `conversation`, after the instructions that open it (read
/// [`OPENING_PAGE`] at a time until the first other message), without the messages that
/// only answer calls older than the newest `n`.
async fn recent_messages(conversation: &Conversation, n: usize) -> Result<Vec<Message>> {
    let mut newest = conversation.last_messages(n).await?;
    // The first seq of the newest n; every message when nothing came back (none stored,
    // or n = 0).
    let first = newest.first().map_or(u64::MAX, |m| m.seq);
    if first <= 1 {
        return Ok(newest);
    }
    // Results whose calls are older than the newest n: left out with them.
    let calls: HashSet<String> = newest
        .iter()
        .flat_map(|m| &m.parts)
        .filter_map(|p| match p {
            Part::ToolCall(c) => Some(c.id.clone()),
            _ => None,
        })
        .collect();
    newest.retain(|m| {
        let answers_unread =
            |p: &Part| matches!(p, Part::ToolResult(r) if !calls.contains(&r.call_id));
        m.parts.is_empty() || !m.parts.iter().all(answers_unread)
    });
    let mut out = Vec::new();
    let mut after = 0;
    'opening: loop {
        let range = MessageRange::after(after).limit(OPENING_PAGE);
        let page = conversation.messages_page(&range).await?;
        let got = page.items.len();
        for m in page.items {
            if m.seq >= first || !is_instruction(&m.role) {
                break 'opening;
            }
            after = m.seq;
            out.push(m);
        }
        if got == 0 || page.next_cursor.is_none() {
            break;
        }
    }
    out.append(&mut newest);
    Ok(out)
}
