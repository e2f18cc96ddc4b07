//! Stored history repaired into what providers accept.
//!
//! OpenAI and Anthropic reject a request whose history has a tool call without a result,
//! a tool result without its call, or a result that does not follow its call directly.
//! Stored history can hold all three: a reply's writer died after the model asked for a
//! tool, a tool's result was stored after the user had already typed again, a window cut
//! a call from its result. [`repair`] applies these rules, in this order, and nothing
//! else:
//!
//! 1. **Complete messages are kept**, every part, in order (rule 4 only moves tool
//!    results). A complete message is never dropped.
//! 2. **Messages still being written** (status pending or streaming with a live lease:
//!    another writer is producing them right now) are left out: they are not history yet.
//! 3. **Interrupted, failed and stopped replies** (a writer that died, whose lease ran
//!    out, one that called `fail`, one a reader stopped) are kept with the content of
//!    their last checkpoint, followed by a marker text part
//!    ([`ReplayOptions::interrupted_marker`], [`ReplayOptions::failed_marker`],
//!    [`ReplayOptions::stopped_marker`]; placed before the reply's tool calls, if any, and
//!    `None` turns it off). One with nothing checkpointed is left out: there is nothing
//!    to replay.
//! 4. **Tool results follow their calls.** Right after each message with tool calls comes
//!    one [`Role::Tool`] message holding a result for each call, in call order: the first
//!    result stored later in the history for that call id (moved there from wherever it
//!    was stored), or, for a call that never got one, a synthetic error result with the
//!    text [`ReplayOptions::missing_result`] ("The tool call was interrupted: it has no
//!    result."). A message left with nothing once its results moved is left out (its
//!    content moved, none is lost).
//! 5. **Orphaned tool results** (no earlier call with that id, or a second result for a
//!    call that already has one) are turned into a text part in place:
//!    `[Result of tool call call_1: ...]` (`[Error from tool call ...]` for an error
//!    result), keeping any files; a [`Role::Tool`] message that then holds no result
//!    becomes a [`Role::User`] message.
//! 6. Messages with no parts at all are left out (providers reject empty content).
//!
//! Statuses are read at the time of the call ([`Message::status_at`]), so a reply whose
//! writer died reads as interrupted once its lease has run out.
//!
//! ```
//! use chatvault_llm::{ReplayOptions, repair};
//! use chatvault_core::{MessageStatus, NewMessage, Part, Role};
//! use serde_json::json;
//!
//! let user = NewMessage::new(Role::User, "Weather?").into_message(1, None);
//! // A reply that asked for a tool, then its writer died (lease long gone).
//! let reply = NewMessage::with_parts(
//!     Role::Assistant,
//!     vec![Part::text("Let me check."), Part::tool_call("call_1", "weather", json!({}))],
//! )
//! .with_status(MessageStatus::Streaming, None)
//! .into_message(2, Some(1));
//!
//! let repaired = repair(&[user, reply], &ReplayOptions::default());
//! assert_eq!(repaired.len(), 3);
//! assert_eq!(repaired[1].parts[1], Part::text("[This reply was interrupted before it finished.]"));
//! assert_eq!(repaired[2].role, Role::Tool);
//! assert_eq!(
//!     repaired[2].parts,
//!     vec![Part::tool_result("call_1", "The tool call was interrupted: it has no result.", true)]
//! );
//! ```

use std::collections::{HashMap, HashSet};

use super::ReplayMessage;
use chatvault_core::Role;
use chatvault_core::backend::now;
use chatvault_core::{Message, MessageStatus, Part, ToolResult};

/// What [`repair`] writes where it repairs; see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayOptions {
    /// The text part added to an interrupted reply (`None`: none).
    pub interrupted_marker: Option<String>,
    /// The text part added to a failed reply (`None`: none).
    pub failed_marker: Option<String>,
    /// The text part added to a reply stopped by a reader (`None`: none).
    pub stopped_marker: Option<String>,
    /// The text of the synthetic error result given to a tool call that has none.
    pub missing_result: String,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            interrupted_marker: Some("[This reply was interrupted before it finished.]".into()),
            failed_marker: Some("[This reply failed before it finished.]".into()),
            stopped_marker: Some("[This reply was stopped before it finished.]".into()),
            missing_result: "The tool call was interrupted: it has no result.".into(),
        }
    }
}

impl ReplayOptions {
    /// Sets (or, with `None`, turns off) the marker of interrupted replies.
    pub fn interrupted_marker(mut self, marker: Option<String>) -> Self {
        self.interrupted_marker = marker;
        self
    }

    /// Sets (or, with `None`, turns off) the marker of failed replies.
    pub fn failed_marker(mut self, marker: Option<String>) -> Self {
        self.failed_marker = marker;
        self
    }

    /// Sets (or, with `None`, turns off) the marker of replies stopped by a reader.
    pub fn stopped_marker(mut self, marker: Option<String>) -> Self {
        self.stopped_marker = marker;
        self
    }

    /// Sets the text of synthetic results for calls that have none.
    pub fn missing_result(mut self, text: impl Into<String>) -> Self {
        self.missing_result = text.into();
        self
    }
}

/// Repairs stored history (in `seq` order) into what providers accept, by the rules in
/// the [module docs](self).
pub fn repair(messages: &[Message], options: &ReplayOptions) -> Vec<ReplayMessage> {
    let kept = keep_with_markers(messages, options);
    let mut placement = ResultPlacement::of(&kept);
    let mut out = Vec::with_capacity(kept.len() + 4);
    for (i, mut m) in kept.into_iter().enumerate() {
        let had_parts = !m.parts.is_empty();
        placement.rewrite(i, &mut m);
        let calls: Vec<String> = if m.role == Role::Assistant {
            m.parts
                .iter()
                .filter_map(|p| match p {
                    Part::ToolCall(c) => Some(c.id.clone()),
                    _ => None,
                })
                .collect()
        } else {
            Vec::new()
        };
        if had_parts && !m.parts.is_empty() {
            out.push(m);
        }
        if !calls.is_empty() {
            let results = calls
                .into_iter()
                .map(|id| {
                    Part::ToolResult(placement.answers.remove(&id).unwrap_or_else(|| ToolResult {
                        call_id: id,
                        content: vec![Part::text(options.missing_result.clone())],
                        is_error: true,
                    }))
                })
                .collect();
            out.push(ReplayMessage::new(Role::Tool, results));
        }
    }
    out
}

/// Rules 2, 3 and 6: which messages, with which parts (markers added), as of now.
fn keep_with_markers(messages: &[Message], options: &ReplayOptions) -> Vec<ReplayMessage> {
    let at = now();
    let mut kept: Vec<ReplayMessage> = Vec::with_capacity(messages.len());
    for message in messages {
        if message.parts.is_empty() {
            continue;
        }
        let marker = match message.status_at(at) {
            MessageStatus::Pending | MessageStatus::Streaming => continue,
            MessageStatus::Interrupted => options.interrupted_marker.as_ref(),
            MessageStatus::Failed => options.failed_marker.as_ref(),
            MessageStatus::Stopped => options.stopped_marker.as_ref(),
            _ => None,
        };
        let mut replay = ReplayMessage::from(message);
        if let Some(marker) = marker {
            let at = replay
                .parts
                .iter()
                .position(|p| matches!(p, Part::ToolCall(_)))
                .unwrap_or(replay.parts.len());
            replay.parts.insert(at, Part::text(marker.clone()));
        }
        kept.push(replay);
    }
    kept
}

/// Rules 4 and 5: which result answers each call (moved after it), and which results are
/// orphans (turned into text in place); parts are named by (message, part) index.
struct ResultPlacement {
    /// The first result stored after its call, by call id.
    answers: HashMap<String, ToolResult>,
    /// Results that move to follow their call.
    moved: HashSet<(usize, usize)>,
    /// Results with no earlier call, or a second result for a call.
    orphans: HashSet<(usize, usize)>,
}

impl ResultPlacement {
    fn of(kept: &[ReplayMessage]) -> Self {
        let mut call_at: HashMap<String, usize> = HashMap::new();
        for (i, m) in kept.iter().enumerate() {
            if m.role == Role::Assistant {
                for part in &m.parts {
                    if let Part::ToolCall(c) = part {
                        call_at.entry(c.id.clone()).or_insert(i);
                    }
                }
            }
        }
        let mut placement = ResultPlacement {
            answers: HashMap::new(),
            moved: HashSet::new(),
            orphans: HashSet::new(),
        };
        for (i, m) in kept.iter().enumerate() {
            for (j, part) in m.parts.iter().enumerate() {
                if let Part::ToolResult(r) = part {
                    let answers_a_call = call_at.get(&r.call_id).is_some_and(|&c| c < i);
                    if answers_a_call && !placement.answers.contains_key(&r.call_id) {
                        placement.answers.insert(r.call_id.clone(), r.clone());
                        placement.moved.insert((i, j));
                    } else {
                        placement.orphans.insert((i, j));
                    }
                }
            }
        }
        placement
    }

    /// Message `i` without its moved results, its orphans as text (a tool message left
    /// with no result becomes a user message).
    fn rewrite(&self, i: usize, m: &mut ReplayMessage) {
        let mut parts = Vec::with_capacity(m.parts.len());
        let mut turned_to_text = false;
        for (j, part) in std::mem::take(&mut m.parts).into_iter().enumerate() {
            if self.moved.contains(&(i, j)) {
                continue;
            }
            if self.orphans.contains(&(i, j))
                && let Part::ToolResult(r) = part
            {
                parts.push(Part::text(orphan_text(&r)));
                parts.extend(r.content.into_iter().filter(|p| matches!(p, Part::File(_))));
                turned_to_text = true;
                continue;
            }
            parts.push(part);
        }
        m.parts = parts;
        if turned_to_text
            && m.role == Role::Tool
            && !m.parts.iter().any(|p| matches!(p, Part::ToolResult(_)))
        {
            m.role = Role::User;
        }
    }
}

fn orphan_text(result: &ToolResult) -> String {
    let text = chatvault_core::text_of(&result.content);
    if result.is_error {
        format!("[Error from tool call {}: {text}]", result.call_id)
    } else {
        format!("[Result of tool call {}: {text}]", result.call_id)
    }
}
