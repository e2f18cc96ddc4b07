//! [`PrepareHistory::prepare_history`]: repair, window and file resolution in one call.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::trim::TrimToolResults;
use super::view::{drop_results_of_unread_calls, model_view};
use super::{
    ApproxCounter, FileMode, ReplayMessage, ReplayOptions, TokenCounter, repair, resolve_files,
    select_window,
};
use chatvault_core::Result;
use chatvault_core::{Conversation, Redaction};

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
    /// Start at the latest compaction checkpoint of the branch (default `true`); see
    /// [`checkpoints`](Self::checkpoints).
    pub checkpoints: bool,
    /// Trim long tool results of older turns; `None` (the default) sends them whole. See
    /// [`trim_tool_results`](Self::trim_tool_results).
    pub trim: Option<TrimToolResults>,
}

impl fmt::Debug for HistoryOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistoryOptions")
            .field("files", &self.files)
            .field("replay", &self.replay)
            .field("budget", &self.budget)
            .field("recent", &self.recent)
            .field("checkpoints", &self.checkpoints)
            .field("trim", &self.trim)
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
            checkpoints: true,
            trim: None,
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

    /// Whether the model's view starts at the branch's latest compaction checkpoint
    /// ([`Conversation::compact`]; default `true`).
    ///
    /// With `true`, the active branch is read from its end back to its latest checkpoint
    /// and on to the message the checkpoint covers through, and the history is: the
    /// instructions that open the conversation, the checkpoint (a system message holding
    /// the summary), and the messages after the covered ones. The covered messages are
    /// not read, so what this reads depends on the tail, not on the conversation's
    /// length; the transcript is untouched. With [`recent`](Self::recent) as well, at
    /// most the newest `n` messages of that tail. A branch without a checkpoint reads as
    /// without this option. Other checkpoints (older ones) are left out of the history,
    /// and so is every checkpoint with `false`: the messages they summarize are there.
    pub fn checkpoints(mut self, use_them: bool) -> Self {
        self.checkpoints = use_them;
        self
    }

    /// Trims the long tool results of older turns in the history sent (the stored
    /// messages are unchanged): see [`TrimToolResults`]. Applied after repair (a result
    /// stays right after its call) and before the budget, so the budget counts the
    /// trimmed text.
    pub fn trim_tool_results(mut self, trim: TrimToolResults) -> Self {
        self.trim = Some(trim);
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
        let mut messages = model_view(self, options.checkpoints, options.recent).await?;
        // A redacted message has nothing to say: the model never sees its tombstone, nor
        // the results of the tool calls it held.
        let read = messages.len();
        messages.retain(|m| Redaction::of(m).is_none());
        if messages.len() < read {
            drop_results_of_unread_calls(&mut messages);
        }
        let mut history = repair(&messages, &options.replay);
        if let Some(trim) = &options.trim {
            trim.apply(&mut history);
        }
        if let Some(budget) = options.budget {
            history = select_window(&history, budget, options.counter.as_ref()).apply(&history);
        }
        resolve_files(self, history, options.files).await
    }
}
