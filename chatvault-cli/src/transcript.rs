//! `export --conversation ID --format markdown|openai|anthropic`: one conversation's
//! active path as a readable Markdown transcript, or as the request JSON of a provider
//! (through `chatvault-llm`'s writers).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chatvault_archive::Store;
use chatvault_core::backend::ConversationHead;
use chatvault_core::{
    ChatVault, Conversation, ConversationId, FileAttachment, FilePart, FileSource, Message,
    MessageRange, MessageStatus, Part, Reasoning, Role, ToolResult,
};
use chatvault_llm::{FileMode, HistoryOptions, PrepareHistory, anthropic, openai};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::error::{CliError, Result};

/// Messages read per page for a Markdown transcript.
const PAGE: usize = 200;

/// A format of one conversation (not an archive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transcript {
    /// A readable Markdown transcript.
    Markdown,
    /// OpenAI Chat Completions: `{"messages": [...]}`.
    OpenAi,
    /// Anthropic Messages: `{"system": ..., "messages": [...]}`.
    Anthropic,
}

/// Writes conversation `id`'s active path in `format` to `to` (a new file) or to
/// standard output (`None` or `-`). A file is written whole or not at all: to a
/// temporary file beside it, moved into place at the end, never over an existing file.
pub(crate) async fn export(
    store: &Store,
    id: &ConversationId,
    format: Transcript,
    to: Option<&Path>,
) -> Result<()> {
    let to = to.filter(|p| *p != Path::new("-"));
    if let Some(path) = to
        && path.exists()
    {
        return Err(exists(path));
    }
    let vault = ChatVault::from_arcs(store.messages.clone(), store.files.clone());
    let conversation = vault.get_conversation(id).await?.ok_or_else(|| {
        CliError::Store(chatvault_core::Error::NotFound {
            kind: "conversation",
            id: id.to_string(),
        })
    })?;
    let mut out = Output::open(to)?;
    match format {
        Transcript::Markdown => markdown(&conversation, &mut out).await?,
        Transcript::OpenAi | Transcript::Anthropic => {
            let body = request(&conversation, format).await?;
            serde_json::to_writer_pretty(&mut out, &body).map_err(io::Error::other)?;
            out.write_all(b"\n")?;
        }
    }
    out.finish()
}

/// The provider request JSON of the conversation's history, prepared by `chatvault-llm`
/// (repaired, attachments inlined as base64 `data:` URLs).
async fn request(conversation: &Conversation, format: Transcript) -> Result<Value> {
    let history = conversation
        .prepare_history(&HistoryOptions::new(FileMode::Base64))
        .await?;
    let mut body = Map::new();
    if format == Transcript::OpenAi {
        body.insert(
            "messages".into(),
            Value::Array(openai::to_messages(&history)?),
        );
    } else {
        let request = anthropic::to_request(&history)?;
        if let Some(system) = request.system {
            body.insert("system".into(), system);
        }
        body.insert("messages".into(), Value::Array(request.messages));
    }
    Ok(Value::Object(body))
}

/// Writes the Markdown transcript, one page of messages at a time.
async fn markdown(conversation: &Conversation, out: &mut impl Write) -> Result<()> {
    let head = ConversationHead::new(conversation.record().clone(), conversation.files().to_vec());
    write_head(out, &head)?;
    let mut range = MessageRange::after(0).limit(PAGE);
    let mut after = 0;
    loop {
        let page = conversation.messages_page(&range).await?;
        let got = page.items.len();
        for message in &page.items {
            write_message(out, message, &head.files)?;
        }
        let Some(cursor) = page.next_cursor else {
            return Ok(());
        };
        range = range.continue_from(&cursor)?;
        match &range {
            MessageRange::After { after: next, .. } if got > 0 && *next > after => after = *next,
            _ => {
                return Err(CliError::Store(chatvault_core::Error::backend(
                    "store",
                    format!("message pages stopped moving forward at {cursor:?}"),
                )));
            }
        }
    }
}

fn write_head(out: &mut impl Write, head: &ConversationHead) -> io::Result<()> {
    let r = &head.record;
    let title = r
        .title
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or("Untitled conversation");
    writeln!(out, "# {}\n", one_line(title))?;
    writeln!(out, "- Conversation: `{}`", r.id)?;
    writeln!(
        out,
        "- Owner: {}",
        r.user_id.as_ref().map_or("none", |u| u.as_str())
    )?;
    writeln!(out, "- Created: {}", time(r.created_at))?;
    if r.archived {
        writeln!(out, "- Archived")?;
    }
    if !head.files.is_empty() {
        writeln!(out, "- Attachments:")?;
        for f in &head.files {
            writeln!(out, "  - {}", attachment(f))?;
        }
    }
    Ok(())
}

fn write_message(out: &mut impl Write, m: &Message, files: &[FileAttachment]) -> io::Result<()> {
    write!(out, "\n## {} · {}", role(&m.role), time(m.created_at))?;
    if m.status != MessageStatus::Complete {
        let status = serde_json::to_value(m.status).unwrap_or(Value::Null);
        write!(out, " · {}", status.as_str().unwrap_or("unknown status"))?;
    }
    writeln!(out)?;
    if let Some(failure) = &m.failure {
        writeln!(out, "\n_Failed: {}_", one_line(failure))?;
    }
    for part in &m.parts {
        write_part(out, part, files)?;
    }
    Ok(())
}

/// One part, as a block after a blank line (nothing for an empty text).
fn write_part(out: &mut impl Write, part: &Part, files: &[FileAttachment]) -> io::Result<()> {
    match part {
        Part::Text { text } => {
            let text = text.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                return Ok(());
            }
            writeln!(out, "\n{text}")
        }
        Part::File(file) => writeln!(out, "\n**File:** {}", file_line(file, files)),
        Part::ToolCall(call) => {
            writeln!(out, "\n**Tool call** `{}` (`{}`):", call.name, call.id)?;
            code_block(out, "json", &pretty(&call.arguments))
        }
        Part::ToolResult(result) => write_result(out, result, files),
        Part::Reasoning(reasoning) => write_reasoning(out, reasoning),
        Part::Provider(p) => {
            writeln!(
                out,
                "\n<details>\n<summary>Provider data: {} {}</summary>",
                p.provider, p.kind
            )?;
            code_block(out, "json", &pretty(&p.data))?;
            writeln!(out, "\n</details>")
        }
        Part::Unknown(value) => {
            let kind = value.get("type").and_then(Value::as_str).unwrap_or("?");
            writeln!(
                out,
                "\n_A part of a kind this version does not know (`{kind}`)_"
            )
        }
        other => writeln!(
            out,
            "\n_A part of a kind this version does not know (`{}`)_",
            other.kind()
        ),
    }
}

fn write_result(out: &mut impl Write, r: &ToolResult, files: &[FileAttachment]) -> io::Result<()> {
    let what = if r.is_error {
        "Tool error"
    } else {
        "Tool result"
    };
    writeln!(out, "\n**{what}** (`{}`):", r.call_id)?;
    if r.content.is_empty() {
        return writeln!(out, "\n_(empty)_");
    }
    for part in &r.content {
        match part {
            Part::Text { text } => code_block(out, "text", text)?,
            other => write_part(out, other, files)?,
        }
    }
    Ok(())
}

fn write_reasoning(out: &mut impl Write, r: &Reasoning) -> io::Result<()> {
    match r.text.as_deref().map(str::trim_end) {
        _ if r.redacted => writeln!(out, "\n_Reasoning (redacted by the provider)_"),
        Some(text) if !text.is_empty() => writeln!(
            out,
            "\n<details>\n<summary>Reasoning</summary>\n\n{text}\n\n</details>"
        ),
        _ => writeln!(out, "\n_Reasoning (not shown)_"),
    }
}

/// A fenced code block whose fence is longer than any run of backticks in `text`.
fn code_block(out: &mut impl Write, lang: &str, text: &str) -> io::Result<()> {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let text = text.trim_end_matches(['\n', '\r']);
    writeln!(out, "\n{fence}{lang}\n{text}\n{fence}")
}

/// How a file part reads: an attachment by its record, a URL as a link, inline data by
/// its name.
fn file_line(file: &FilePart, files: &[FileAttachment]) -> String {
    let media = file
        .media_type
        .as_ref()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    match &file.source {
        FileSource::Attachment { file_id } => match files.iter().find(|f| &f.id == file_id) {
            Some(f) => attachment(f),
            None => format!("attachment `{file_id}` (not among the conversation's attachments)"),
        },
        FileSource::Url { url } if url.starts_with("data:") => {
            let name = file.filename.as_deref().unwrap_or("file");
            let media = file
                .media_type
                .as_ref()
                .map(|m| format!("{m}, "))
                .unwrap_or_default();
            format!("`{}` ({media}inline data)", one_line(name))
        }
        FileSource::Url { url } => {
            let name = file.filename.as_deref().unwrap_or(url);
            format!("[{}](<{url}>){media}", one_line(name))
        }
    }
}

fn attachment(f: &FileAttachment) -> String {
    format!(
        "`{}` ({}, {} bytes)",
        one_line(&f.filename),
        f.content_type,
        f.size
    )
}

fn role(role: &Role) -> &str {
    match role {
        Role::System => "System",
        Role::User => "User",
        Role::Assistant => "Assistant",
        Role::Tool => "Tool",
        other => other.as_str(),
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `s` on one line (line breaks as spaces), for headings and list items.
fn one_line(s: &str) -> String {
    s.split(['\n', '\r']).collect::<Vec<_>>().join(" ")
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

fn exists(path: &Path) -> CliError {
    CliError::Usage(format!(
        "{}: already exists; choose a new path",
        path.display()
    ))
}

/// Standard output, or a new file written through a temporary file beside it.
enum Output {
    Stdout(io::BufWriter<io::Stdout>),
    File(io::BufWriter<tempfile::NamedTempFile>, PathBuf),
}

impl Output {
    fn open(to: Option<&Path>) -> Result<Self> {
        let Some(path) = to else {
            return Ok(Output::Stdout(io::BufWriter::new(io::stdout())));
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".chatvault-transcript-")
            .tempfile_in(dir)?;
        Ok(Output::File(io::BufWriter::new(tmp), path.to_path_buf()))
    }

    /// Flushes; moves a file into place (never over an existing one).
    fn finish(self) -> Result<()> {
        match self {
            Output::Stdout(mut w) => Ok(w.flush()?),
            Output::File(w, path) => {
                let tmp = w.into_inner().map_err(|e| e.into_error())?;
                tmp.as_file().sync_all()?;
                tmp.persist_noclobber(&path).map_err(|e| {
                    if e.error.kind() == io::ErrorKind::AlreadyExists {
                        exists(&path)
                    } else {
                        CliError::Output(e.error)
                    }
                })?;
                Ok(())
            }
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Stdout(w) => w.write(buf),
            Output::File(w, _) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(w) => w.flush(),
            Output::File(w, _) => w.flush(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use super::*;

    fn render(parts: Vec<Part>) -> String {
        let mut out = Vec::new();
        for part in &parts {
            write_part(&mut out, part, &[]).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_fence_is_longer_than_any_backticks_inside() {
        let text = render(vec![Part::tool_result(
            "c",
            "use ```rust``` or ````",
            false,
        )]);
        assert_eq!(
            text,
            "\n**Tool result** (`c`):\n\n`````text\nuse ```rust``` or ````\n`````\n"
        );
    }

    #[test]
    fn every_other_kind_of_part_reads_as_the_spec_says() {
        let provider = Part::Provider(chatvault_core::ProviderPart {
            provider: "openai.chat".into(),
            kind: "refusal".into(),
            data: Value::String("No.".into()),
        });
        let text = render(vec![
            Part::text(""),
            Part::Reasoning(Reasoning {
                text: None,
                signature: Some("x".into()),
                redacted: true,
            }),
            Part::Reasoning(Reasoning {
                text: None,
                signature: Some("x".into()),
                redacted: false,
            }),
            Part::ToolResult(ToolResult {
                call_id: "c".into(),
                content: vec![],
                is_error: true,
            }),
            Part::url(
                "data:image/png;base64,AAAA",
                Some("image/png".parse().unwrap()),
            ),
            Part::attachment("f-gone".parse().unwrap(), None),
            provider,
            Part::Unknown(serde_json::json!({"type": "hologram"})),
        ]);
        let want = "
_Reasoning (redacted by the provider)_

_Reasoning (not shown)_

**Tool error** (`c`):

_(empty)_

**File:** `file` (image/png, inline data)

**File:** attachment `f-gone` (not among the conversation's attachments)

<details>
<summary>Provider data: openai.chat refusal</summary>

```json
\"No.\"
```

</details>

_A part of a kind this version does not know (`hologram`)_
";
        assert_eq!(text, want);
    }

    #[test]
    fn a_failed_reply_says_why_under_its_heading() {
        let mut m = chatvault_core::NewMessage::new(Role::Other("critic".into()), "Half")
            .with_status(MessageStatus::Failed, None)
            .into_message(3, Some(2));
        m.created_at = DateTime::parse_from_rfc3339("2025-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        m.failure = Some("rate\nlimited".into());
        let mut out = Vec::new();
        write_message(&mut out, &m, &[]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\n## critic · 2025-01-02 03:04:05 UTC · failed\n\n_Failed: rate limited_\n\nHalf\n"
        );
    }
}
