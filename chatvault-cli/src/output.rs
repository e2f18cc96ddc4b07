//! Output helpers: JSON Lines, progress bars.

use std::io::{IsTerminal, Write};

use chatvault_archive::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::error::Result;

/// Writes `value` as one line of JSON to standard output.
pub(crate) fn json_line(value: &impl Serialize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value).map_err(std::io::Error::other)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// A progress bar on standard error, hidden when standard error is not a terminal (or
/// `quiet`); `verb` says what it counts.
pub(crate) fn bar(verb: &'static str, quiet: bool) -> ProgressBar {
    let target = if quiet || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(None, target);
    let style = ProgressStyle::with_template(
        "{spinner} {prefix} {pos} conversations, {msg} [{elapsed_precise}]",
    )
    .unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.set_prefix(verb);
    bar
}

/// The callback that moves `bar` with an operation's progress.
pub(crate) fn follow(bar: &ProgressBar) -> impl Fn(&Progress) + Send + Sync + use<> {
    let bar = bar.clone();
    move |p: &Progress| {
        if let Some(total) = p.total_conversations {
            bar.set_length(total);
        }
        bar.set_position(p.conversations);
        bar.set_message(format!("{} messages, {} bytes", p.messages, p.bytes));
    }
}
