//! [`Conversation::prepare_history`]: repair, window and file resolution in one call.

use std::fmt;
use std::sync::Arc;

use super::{
    ApproxCounter, FileMode, ReplayMessage, ReplayOptions, TokenCounter, repair, resolve_files,
    select_window,
};
use crate::error::Result;
use crate::vault::Conversation;

/// What [`Conversation::prepare_history`] does: how files are sent, the repair texts, and
/// an optional token budget.
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
}

impl fmt::Debug for HistoryOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistoryOptions")
            .field("files", &self.files)
            .field("replay", &self.replay)
            .field("budget", &self.budget)
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
}

impl Conversation {
    /// The conversation's history, ready for a provider's writer
    /// ([`llm::openai::to_messages`](super::openai::to_messages),
    /// [`llm::anthropic::to_request`](super::anthropic::to_request), ...): every message
    /// read, [repaired](super::replay), cut to the budget if one is set
    /// ([`select_window`]), and attachments resolved ([`resolve_files`]).
    ///
    /// Files are resolved after the window, so left-out attachments are never read.
    pub async fn prepare_history(&self, options: &HistoryOptions) -> Result<Vec<ReplayMessage>> {
        let messages = self.messages().await?;
        let mut history = repair(&messages, &options.replay);
        if let Some(budget) = options.budget {
            history = select_window(&history, budget, options.counter.as_ref()).apply(&history);
        }
        resolve_files(self, history, options.files).await
    }
}
