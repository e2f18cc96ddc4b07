//! `redact CONVERSATION MESSAGE --reason TEXT`: one message's content replaced by a
//! tombstone that keeps its place, and the attachments only it referenced deleted, over
//! `chatvault_core::Conversation::redact`.

use chatvault_archive::Store;
use chatvault_core::Redacted;
use chatvault_core::{ChatVault, Conversation, ConversationId, Error, ErrorKind, FileAttachment};
use chatvault_core::{FileId, Message, MessageId};
use clap::Args;
use serde::Serialize;

use crate::error::{CliError, Result};
use crate::output::json_line;

/// How many characters of the message's text a dry run shows.
const PREVIEW_CHARS: usize = 60;

/// `redact`'s arguments: which message, why, and how to report.
#[derive(Debug, Args)]
pub struct RedactArgs {
    /// The conversation's id.
    #[arg(value_name = "CONVERSATION_ID")]
    pub conversation: ConversationId,
    /// The message's id, on any branch (`show --json` prints each message's `id`).
    #[arg(value_name = "MESSAGE_ID")]
    pub message: MessageId,
    /// Why, kept in the tombstone: 1 to 1024 bytes, not blank.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    /// Only say what would be redacted and deleted; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What a dry run shows of the message: its place and the start of its text, never all
/// of it.
#[derive(Debug, Serialize)]
struct Preview<'a> {
    id: &'a MessageId,
    seq: u64,
    role: String,
    preview: String,
}

/// The report as `--json` prints it: the tombstone (in a dry run, the message's
/// [`Preview`]) and the attachments deleted (would be deleted).
#[derive(Debug, Serialize)]
struct Json<'a, M: Serialize> {
    dry_run: bool,
    message: &'a M,
    files_deleted: Vec<&'a FileId>,
}

/// `redact`: redacts the message (or with `--dry-run` says what that would do). A
/// missing conversation or message is not found (exit code 1, as `show`); a reason the
/// core refuses is a usage error (exit code 2) with its message.
pub(crate) async fn redact(store: &Store, args: &RedactArgs) -> Result<()> {
    let vault = ChatVault::from_arcs(store.messages.clone(), store.files.clone());
    let mut conversation = vault
        .get_conversation(&args.conversation)
        .await?
        .ok_or_else(|| Error::NotFound {
            kind: "conversation",
            id: args.conversation.to_string(),
        })?;
    if args.dry_run {
        return dry_run(&conversation, args).await;
    }
    let redacted = conversation
        .redact(&args.message, &args.reason)
        .await
        .map_err(usage_if_invalid)?;
    print(&redacted, args.json)
}

/// A core error, with a refused argument as a usage error.
fn usage_if_invalid(e: Error) -> CliError {
    match e.kind() {
        ErrorKind::InvalidInput => CliError::Usage(e.to_string()),
        _ => CliError::Store(e),
    }
}

/// `--dry-run`: the refusals `Conversation::redact` would give, else what it would
/// redact and delete.
async fn dry_run(conversation: &Conversation, args: &RedactArgs) -> Result<()> {
    let plan = conversation
        .plan_redaction(&args.message, &args.reason)
        .await
        .map_err(usage_if_invalid)?;
    let (message, files) = (&plan.message, plan.files.iter().collect::<Vec<_>>());
    let preview = Preview {
        id: &message.id,
        seq: message.seq,
        role: message.role.to_string(),
        preview: preview(message),
    };
    if args.json {
        let files_deleted = files.iter().map(|f| &f.id).collect();
        return json_line(&Json {
            dry_run: true,
            message: &preview,
            files_deleted,
        });
    }
    println!(
        "would redact message {} (seq {}, {}): {:?}",
        preview.id, preview.seq, preview.role, preview.preview
    );
    print_files("would delete", &files);
    Ok(())
}

/// The result on standard output: a line for the message and one per attachment
/// deleted, or one JSON object.
fn print(redacted: &Redacted, json: bool) -> Result<()> {
    let message = &redacted.message;
    if json {
        return json_line(&Json {
            dry_run: false,
            message,
            files_deleted: redacted.files_deleted.iter().map(|f| &f.id).collect(),
        });
    }
    println!(
        "redacted message {} (seq {}, {})",
        message.id, message.seq, message.role
    );
    let files: Vec<&FileAttachment> = redacted.files_deleted.iter().collect();
    print_files("deleted", &files);
    Ok(())
}

/// One line per attachment: `VERB attachment ID NAME (N bytes)`.
fn print_files(verb: &str, files: &[&FileAttachment]) {
    for f in files {
        println!(
            "{verb} attachment {} {} ({} bytes)",
            f.id, f.filename, f.size
        );
    }
}

/// The start of the message's text on one line (white space folded), `…` where it is
/// cut; `(no text)` for a message without any.
fn preview(message: &Message) -> String {
    let text = message.content();
    let words: Vec<&str> = text.split_whitespace().collect();
    let folded = words.join(" ");
    if folded.is_empty() {
        return "(no text)".to_owned();
    }
    let mut chars = folded.chars();
    let mut out: String = chars.by_ref().take(PREVIEW_CHARS).collect();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use chatvault_core::{NewMessage, Role};

    use super::*;

    #[test]
    fn a_preview_folds_white_space_and_cuts_long_text() {
        let vault = ChatVault::new(
            chatvault_memory::MemoryMessages::new(),
            chatvault_memory::MemoryFiles::new(),
        );
        let rt = tokio::runtime::Runtime::new().unwrap();
        let [short, long, empty] = rt.block_on(async {
            let mut c = vault.create_conversation(None).await.unwrap();
            let short = c.add_message(Role::User, "a\n\n b\tc ").await.unwrap();
            let long = c.add_message(Role::User, "x".repeat(100)).await.unwrap();
            let empty = c
                .add(NewMessage::with_parts(Role::User, Vec::new()))
                .await
                .unwrap();
            [short, long, empty]
        });
        assert_eq!(preview(&short), "a b c");
        assert_eq!(preview(&long), format!("{}…", "x".repeat(PREVIEW_CHARS)));
        assert_eq!(preview(&empty), "(no text)");
    }
}
