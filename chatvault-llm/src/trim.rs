//! Old tool output, trimmed in what the model is sent: a tool result of an older turn
//! that is long becomes a preview and a marker. The stored message is never changed, and
//! a result stays right after its call.

use chatvault_core::{Part, Role};

use super::ReplayMessage;

/// Which tool results [`HistoryOptions::trim_tool_results`](crate::HistoryOptions::trim_tool_results)
/// trims, and to what.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrimToolResults {
    /// Results of the newest this many turns are sent whole (default 2). A turn starts
    /// at each user message.
    pub keep_turns: usize,
    /// Only results whose text is longer than this many characters are trimmed (default
    /// 500).
    pub max_chars: usize,
    /// How many characters of a trimmed result's text are kept as its preview (default
    /// 200).
    pub preview_chars: usize,
}

impl Default for TrimToolResults {
    fn default() -> Self {
        TrimToolResults {
            keep_turns: 2,
            max_chars: 500,
            preview_chars: 200,
        }
    }
}

impl TrimToolResults {
    /// Results of older turns than the newest `keep_turns`, longer than `max_chars`
    /// characters, are trimmed to a preview of 200 characters.
    pub fn new(keep_turns: usize, max_chars: usize) -> Self {
        TrimToolResults {
            keep_turns,
            max_chars,
            ..TrimToolResults::default()
        }
    }

    /// Sets the preview's length, in characters (at most `max_chars`).
    pub fn preview_chars(mut self, chars: usize) -> Self {
        self.preview_chars = chars;
        self
    }

    /// Trims the results of older turns in `history` (see the type's docs): each one's
    /// text parts become one text part, the first `preview_chars` characters followed by
    /// the marker `[… tool output trimmed: N characters in all]`; its other parts (files)
    /// stay. Returns how many results were trimmed.
    pub fn apply(&self, history: &mut [ReplayMessage]) -> usize {
        let Some(recent_start) = self.recent_start(history) else {
            return 0;
        };
        let preview = self.preview_chars.min(self.max_chars);
        let mut trimmed = 0;
        for message in &mut history[..recent_start] {
            for part in &mut message.parts {
                let Part::ToolResult(result) = part else {
                    continue;
                };
                let chars: usize = text_parts(&result.content).map(|t| t.chars().count()).sum();
                if chars <= self.max_chars {
                    continue;
                }
                let text: String = text_parts(&result.content).collect();
                let kept: String = text.chars().take(preview).collect();
                let marker = format!("{kept}[… tool output trimmed: {chars} characters in all]");
                let mut content = vec![Part::text(marker)];
                content.extend(
                    result
                        .content
                        .iter()
                        .filter(|p| !matches!(p, Part::Text { .. }))
                        .cloned(),
                );
                result.content = content;
                trimmed += 1;
            }
        }
        trimmed
    }

    /// Where the newest `keep_turns` turns start; `None` when there are no older turns.
    fn recent_start(&self, history: &[ReplayMessage]) -> Option<usize> {
        let mut turns = 0;
        for (i, message) in history.iter().enumerate().rev() {
            if message.role == Role::User {
                turns += 1;
                if turns == self.keep_turns {
                    return Some(i);
                }
            }
        }
        // Fewer user messages than turns kept: all of it is recent, unless none is kept.
        (self.keep_turns == 0).then_some(history.len())
    }
}

/// The text of the text parts of a tool result's content.
fn text_parts(content: &[Part]) -> impl Iterator<Item = &str> {
    content.iter().filter_map(|p| match p {
        Part::Text { text } => Some(text.as_str()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(question: &str, call: &str, output: &str) -> Vec<ReplayMessage> {
        vec![
            ReplayMessage::new(Role::User, vec![Part::text(question)]),
            ReplayMessage::new(
                Role::Assistant,
                vec![Part::tool_call(call, "read", serde_json::json!({}))],
            ),
            ReplayMessage::new(Role::Tool, vec![Part::tool_result(call, output, false)]),
            ReplayMessage::new(Role::Assistant, vec![Part::text("done")]),
        ]
    }

    fn result_text(m: &ReplayMessage) -> String {
        match &m.parts[0] {
            Part::ToolResult(r) => chatvault_core::text_of(&r.content),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn trims_long_results_of_older_turns_only() {
        let long = "x".repeat(1200);
        let mut history: Vec<ReplayMessage> = [
            turn("one", "c1", &long),
            turn("two", "c2", "short"),
            turn("three", "c3", &long),
            turn("four", "c4", &long),
        ]
        .concat();
        let before = history.clone();
        assert_eq!(TrimToolResults::default().apply(&mut history), 1);
        let first = result_text(&history[2]);
        assert!(first.starts_with(&"x".repeat(200)), "{first}");
        assert!(first.ends_with("[… tool output trimmed: 1200 characters in all]"));
        assert_eq!(
            first.chars().count(),
            200 + "[… tool output trimmed: 1200 characters in all]"
                .chars()
                .count()
        );
        // The short one, and the newest two turns, are whole; the call stays before it.
        assert_eq!(history[6], before[6]);
        assert_eq!(history[10], before[10]);
        assert_eq!(history[14], before[14]);
        assert_eq!(history[1], before[1]);
        assert_eq!(history.len(), before.len());
        // Keeping every turn, or fewer turns than there are: nothing trimmed.
        let mut whole = before.clone();
        assert_eq!(TrimToolResults::new(4, 500).apply(&mut whole), 0);
        assert_eq!(TrimToolResults::new(9, 500).apply(&mut whole), 0);
        assert_eq!(whole, before);
        // Keeping none: every long result.
        assert_eq!(TrimToolResults::new(0, 500).apply(&mut whole), 3);
    }
}
