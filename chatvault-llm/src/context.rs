//! The context window: the newest history that fits a token budget.
//!
//! [`select_window`] picks which messages to send when the whole history is too long:
//!
//! - **System messages are pinned**: every `system` (and `developer`) message is kept,
//!   wherever it is, and counted first.
//! - **A tool call is never separated from its result**: a message with tool calls and
//!   the messages holding their results are kept or left out together (a provider
//!   rejects either half alone).
//! - **Whole messages only**, and **the newest first**: groups are taken from the newest
//!   back while they fit; the first group that does not fit ends the window, so the kept
//!   history has no holes.
//!
//! Counting is a [`TokenCounter`]'s job. [`ApproxCounter`] is a cheap default (bytes / 4:
//! good for English and code, low for CJK text, so leave headroom); with the `tiktoken`
//! feature, `TiktokenCounter` counts OpenAI encodings exactly (its tables ship inside the
//! `tiktoken-rs` crate, so it works offline). Files are not tokens a counter can see:
//! each counts as [`TokenCounter::file_tokens`] (1,000 by default: roughly one image).
//!
//! Use it on [repaired](super::repair) history, where results sit right after their
//! calls; then the window is always a valid request.
//!
//! ```
//! use chatvault_llm::{ApproxCounter, ReplayMessage, select_window};
//! use chatvault_core::{Part, Role};
//! use serde_json::json;
//!
//! let history = vec![
//!     ReplayMessage::new(Role::System, vec![Part::text("Be brief.")]),
//!     ReplayMessage::new(Role::User, vec![Part::text("x".repeat(4000))]), // ~1000 tokens
//!     ReplayMessage::new(Role::Assistant, vec![Part::tool_call("c1", "clock", json!({}))]),
//!     ReplayMessage::new(Role::Tool, vec![Part::tool_result("c1", "09:30", false)]),
//!     ReplayMessage::new(Role::User, vec![Part::text("Thanks!")]),
//! ];
//! let window = select_window(&history, 100, &ApproxCounter::default());
//! assert_eq!(window.indices, vec![0, 2, 3, 4]); // the long message did not fit
//! assert!(window.tokens <= 100);
//! let kept = window.apply(&history);
//! assert_eq!(kept.len(), 4);
//! ```

use std::collections::HashMap;

use super::ChatMessage;
use chatvault_core::{FilePart, Part};

/// Counts tokens for [`select_window`].
///
/// Implement [`count_text`](Self::count_text); the other methods have defaults that build
/// on it.
pub trait TokenCounter: Send + Sync {
    /// The tokens of `text`.
    fn count_text(&self, text: &str) -> usize;

    /// The tokens a message costs besides its content (role, separators). Default 4.
    fn message_overhead(&self) -> usize {
        4
    }

    /// The tokens a file costs. Default 1,000 (roughly one image at OpenAI's or
    /// Anthropic's usual resolution); documents can cost far more.
    fn file_tokens(&self, file: &FilePart) -> usize {
        let _ = file;
        1_000
    }

    /// The tokens of one part: text as text, a tool call as its name and JSON arguments,
    /// a tool result as its content, reasoning as its text (signatures are not context),
    /// provider data as its JSON.
    fn count_part(&self, part: &Part) -> usize {
        match part {
            Part::Text { text } => self.count_text(text),
            Part::File(file) => self.file_tokens(file),
            Part::ToolCall(call) => {
                self.count_text(&call.id)
                    + self.count_text(&call.name)
                    + self.count_text(&call.arguments.to_string())
            }
            Part::ToolResult(result) => {
                self.count_text(&result.call_id)
                    + result
                        .content
                        .iter()
                        .map(|p| self.count_part(p))
                        .sum::<usize>()
            }
            Part::Reasoning(r) => r.text.as_deref().map_or(0, |t| self.count_text(t)),
            Part::Provider(p) => self.count_text(&p.data.to_string()),
            Part::Unknown(v) => self.count_text(&v.to_string()),
            // A part kind newer than this crate: counted as its stored JSON.
            other => serde_json::to_string(other).map_or(0, |json| self.count_text(&json)),
        }
    }

    /// The tokens of a whole message: overhead, role and parts.
    fn count_message(&self, message: &dyn ChatMessage) -> usize {
        self.message_overhead()
            + self.count_text(message.role().as_str())
            + message
                .parts()
                .iter()
                .map(|p| self.count_part(p))
                .sum::<usize>()
    }
}

/// The cheap default counter: one token per 4 bytes of UTF-8, rounded up.
///
/// OpenAI's rule of thumb for English; code is close, CJK and emoji-heavy text costs more
/// (up to about one token per 3-byte character). No tables, no allocation.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApproxCounter;

impl TokenCounter for ApproxCounter {
    fn count_text(&self, text: &str) -> usize {
        text.len().div_ceil(4)
    }
}

/// Exact token counts for OpenAI encodings (`o200k_base` for GPT-4o, GPT-4.1, GPT-5 and
/// the o-series; `cl100k_base` for GPT-4 and GPT-3.5), from `tiktoken-rs`, whose BPE
/// tables ship inside the crate: no download, works offline.
///
/// Text is encoded as ordinary text (special-token strings in user text count as text,
/// as the API treats them). A message costs 3 tokens besides its content, as OpenAI's
/// published counting recipe says.
///
/// ```
/// use chatvault_llm::{TiktokenCounter, TokenCounter};
///
/// let counter = TiktokenCounter::o200k_base();
/// assert_eq!(counter.count_text("hello world"), 2);
/// let gpt4 = TiktokenCounter::for_model("gpt-4")?;
/// assert_eq!(gpt4.count_text("hello world"), 2);
/// # Ok::<(), chatvault_core::Error>(())
/// ```
#[cfg(feature = "tiktoken")]
#[cfg_attr(docsrs, doc(cfg(feature = "tiktoken")))]
#[derive(Clone, Copy)]
pub struct TiktokenCounter {
    bpe: &'static tiktoken_rs::CoreBPE,
    name: &'static str,
}

#[cfg(feature = "tiktoken")]
impl std::fmt::Debug for TiktokenCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TiktokenCounter")
            .field("encoding", &self.name)
            .finish()
    }
}

#[cfg(feature = "tiktoken")]
impl TiktokenCounter {
    /// The `o200k_base` encoding (GPT-4o, GPT-4.1, GPT-5, o1/o3/o4).
    pub fn o200k_base() -> Self {
        TiktokenCounter {
            bpe: tiktoken_rs::o200k_base_singleton(),
            name: "o200k_base",
        }
    }

    /// The `cl100k_base` encoding (GPT-4, GPT-3.5-turbo, text-embedding-3).
    pub fn cl100k_base() -> Self {
        TiktokenCounter {
            bpe: tiktoken_rs::cl100k_base_singleton(),
            name: "cl100k_base",
        }
    }

    /// The encoding of an OpenAI model by name (`"gpt-4o"`, `"gpt-4o-2024-08-06"`, ...);
    /// [`Error::InvalidInput`](chatvault_core::Error::InvalidInput) for a model tiktoken-rs does not
    /// know.
    pub fn for_model(model: &str) -> chatvault_core::Result<Self> {
        use tiktoken_rs::tokenizer::{Tokenizer, get_tokenizer};
        match get_tokenizer(model) {
            Some(Tokenizer::O200kBase) => Ok(Self::o200k_base()),
            Some(Tokenizer::Cl100kBase) => Ok(Self::cl100k_base()),
            Some(other) => {
                let bpe = tiktoken_rs::bpe_for_tokenizer(other).map_err(|e| {
                    chatvault_core::Error::invalid_input("model", format!("{model:?}: {e}"))
                })?;
                Ok(TiktokenCounter { bpe, name: "other" })
            }
            None => Err(chatvault_core::Error::invalid_input(
                "model",
                format!("tiktoken-rs knows no encoding for {model:?}"),
            )),
        }
    }

    /// The encoding's name (`"o200k_base"`, `"cl100k_base"`, or `"other"`).
    pub fn encoding(&self) -> &'static str {
        self.name
    }
}

#[cfg(feature = "tiktoken")]
impl TokenCounter for TiktokenCounter {
    fn count_text(&self, text: &str) -> usize {
        self.bpe.count_ordinary(text)
    }

    fn message_overhead(&self) -> usize {
        3
    }
}

/// Which messages [`select_window`] keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// The kept messages' indices, ascending.
    pub indices: Vec<usize>,
    /// Their tokens, by the counter.
    pub tokens: usize,
    /// How many messages were left out.
    pub omitted: usize,
    /// Whether the pinned (system) messages alone fit the budget. When they do not, the
    /// window holds them and nothing else, and `tokens` is over the budget.
    pub fits: bool,
}

impl Window {
    /// The kept messages, cloned, in order.
    pub fn apply<M: Clone>(&self, messages: &[M]) -> Vec<M> {
        self.indices
            .iter()
            .filter_map(|&i| messages.get(i).cloned())
            .collect()
    }
}

/// Picks the newest history within `budget` tokens; see the [module docs](self).
pub fn select_window<M: ChatMessage>(
    messages: &[M],
    budget: usize,
    counter: &dyn TokenCounter,
) -> Window {
    let n = messages.len();
    let costs: Vec<usize> = messages.iter().map(|m| counter.count_message(m)).collect();
    let pinned: Vec<bool> = messages
        .iter()
        .map(|m| super::is_instruction(m.role()))
        .collect();

    // Group messages joined by a tool call id (union-find over message indices).
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut first_with_id: HashMap<&str, usize> = HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        if pinned[i] {
            continue;
        }
        for part in m.parts() {
            let id = match part {
                Part::ToolCall(c) => c.id.as_str(),
                Part::ToolResult(r) => r.call_id.as_str(),
                _ => continue,
            };
            match first_with_id.get(id) {
                Some(&j) => {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    if a != b {
                        parent[a] = b;
                    }
                }
                None => {
                    first_with_id.insert(id, i);
                }
            }
        }
    }
    let mut groups: HashMap<usize, (usize, usize, Vec<usize>)> = HashMap::new();
    for i in 0..n {
        if pinned[i] {
            continue;
        }
        let r = root(&mut parent, i);
        let g = groups.entry(r).or_insert((0, 0, Vec::new()));
        g.0 = g.0.max(i);
        g.1 += costs[i];
        g.2.push(i);
    }
    let mut groups: Vec<(usize, usize, Vec<usize>)> = groups.into_values().collect();
    groups.sort_by_key(|g| std::cmp::Reverse(g.0));

    let pinned_tokens: usize = (0..n).filter(|&i| pinned[i]).map(|i| costs[i]).sum();
    let mut keep: Vec<usize> = (0..n).filter(|&i| pinned[i]).collect();
    let mut tokens = pinned_tokens;
    let fits = pinned_tokens <= budget;
    if fits {
        for (_, cost, members) in groups {
            if tokens + cost > budget {
                break;
            }
            tokens += cost;
            keep.extend(members);
        }
    }
    keep.sort_unstable();
    Window {
        omitted: n - keep.len(),
        indices: keep,
        tokens,
        fits,
    }
}
