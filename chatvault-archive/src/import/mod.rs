//! Importers of other tools' exports: ChatGPT, Claude, Open WebUI and LibreChat, and the
//! stores of the Python library (chatvault 0.1.0).
//!
//! [`import_file`] reads an export (the zip the tool hands out, the directory it unpacks
//! to, or its JSON file) and writes every conversation into a [`Store`] for one owner:
//!
//! - **Every node becomes a message** in the conversation's tree, parents before
//!   children (edits and regenerations become siblings), and the conversation's active
//!   leaf is the source's (ChatGPT `current_node`, Claude `current_leaf_message_uuid`,
//!   Open WebUI `history.currentId`; LibreChat has none: its newest leaf). ChatGPT's
//!   empty root is not a message; its hidden system messages are kept beside the path.
//!   A later import moves the leaf only when it adds messages.
//! - **Nothing is dropped**: text, tool calls and results, reasoning and files become
//!   typed parts; content the model has no part for is kept as
//!   [`Part::Provider`](chatvault_core::Part::Provider) data, and the source's other
//!   fields are kept in each message's metadata under the format's name.
//! - **Original times and ids**: each message keeps its source time, and its metadata
//!   says where it came from: `{"source": {"format", "conversation_id", "message_id",
//!   "parent_id"}}` (the conversation's: `{"source": {"format", "conversation_id",
//!   "updated_at"}}`).
//! - **Idempotent**: conversation, message and attachment ids are derived from the
//!   source's ids, so importing the same export again adds nothing, and importing a later
//!   export of the same account adds only what is new. (The Python library's
//!   conversations keep their own ids and owners: [`Format::ChatVaultPy`].)
//! - **Not kept**: a conversation's `last_active` is the import's time (the store sets
//!   it on every append); the source's last update is kept in its metadata
//!   (`source.updated_at`).
//! - **Attachments**: bytes the export holds are uploaded (streamed from the zip);
//!   attachments without bytes become file parts whose URL is the source's pointer
//!   (`file-service://..`, `sediment://..`, `/api/v1/files/..`), counted in
//!   [`Notes::missing_files`].
//! - **A malformed conversation** is reported in [`ImportReport::failed`] with the field
//!   at fault, and nothing of it is written; the others go in.
//! - **Bounded memory**: the JSON is streamed one conversation at a time (a parser thread
//!   reads, converts and plans each and hands it to the writer, at most a few ahead), so
//!   a 2 GB `conversations.json` is never held whole.
//!
//! ```no_run
//! # async fn run() -> chatvault_archive::Result<()> {
//! use chatvault_archive::import::{Format, ImportOptions, import_file};
//! use chatvault_archive::{Store, no_progress};
//! use chatvault_memory::{MemoryFiles, MemoryMessages};
//!
//! let store = Store::new(MemoryMessages::new(), MemoryFiles::new());
//! let options = ImportOptions::new("alice".parse()?);
//! let report = import_file(
//!     Format::ChatGpt,
//!     "chatgpt-export.zip".as_ref(),
//!     &store,
//!     &options,
//!     &no_progress,
//! )
//! .await?;
//! println!("{} messages added", report.messages_added);
//! # Ok(()) }
//! ```
//!
//! The archive's own import ([`crate::import()`]) is the other direction of
//! [`crate::export()`]; this module is for data that comes from elsewhere.

pub(crate) mod archive;
mod chatgpt;
mod claude;
mod fields;
mod files;
mod ids;
mod json;
mod librechat;
mod model;
mod openwebui;
mod python;
mod report;
mod source;
mod write;

use std::collections::VecDeque;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use chatvault_core::UserId;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use serde_json::Value;

pub use report::{ConversationFailure, ImportReport, MAX_LISTED_MISSING, Notes};

use crate::error::{ArchiveError, Result};
use crate::progress::{OnProgress, Progress};
use crate::store::Store;
use fields::{Bad, Got};
use model::{Conv, Plan};
use source::Export;

/// How many parsed conversations may wait for the writer.
const QUEUE: usize = 4;

/// How many conversations are written at once.
const IN_FLIGHT: usize = 16;

/// The tools whose exports [`import_file`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// ChatGPT's data export (the zip, or its `conversations.json`).
    ChatGpt,
    /// Claude's data export (`conversations.json`, linear or with parents).
    Claude,
    /// Open WebUI's chat export (JSON: chat rows with their `history`).
    OpenWebUi,
    /// LibreChat's conversation export (JSON: `messages` or `messagesTree`).
    LibreChat,
    /// The stores of the Python library (chatvault 0.1.0): its DynamoDB table's items as
    /// `aws dynamodb scan` prints them (`items.json`), beside its attachment bytes by
    /// storage key (its `LocalFiles` directory, or its S3 bucket copied with `aws s3
    /// sync`). Conversations keep their ids and owners (`owner` only for those without).
    ChatVaultPy,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 5] = [
        Format::ChatGpt,
        Format::Claude,
        Format::OpenWebUi,
        Format::LibreChat,
        Format::ChatVaultPy,
    ];

    /// The format's name on the command line and in metadata: `chatgpt`, `claude`,
    /// `open-webui`, `librechat`, `chatvault-py`.
    pub fn name(self) -> &'static str {
        match self {
            Format::ChatGpt => "chatgpt",
            Format::Claude => "claude",
            Format::OpenWebUi => "open-webui",
            Format::LibreChat => "librechat",
            Format::ChatVaultPy => "chatvault-py",
        }
    }

    /// The key of a top-level object whose array holds the conversations (DynamoDB's
    /// scan output), for the formats that have one.
    fn items_key(self) -> Option<&'static str> {
        match self {
            Format::ChatVaultPy => Some("Items"),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    /// Parses a [`name`](Format::name) (case-insensitive; `openwebui` and `chat-gpt`
    /// too).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let wanted: String = s
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        Format::ALL
            .into_iter()
            .find(|f| f.name().replace('-', "") == wanted)
            .ok_or_else(|| {
                format!(
                    "unknown format {s:?}: use chatgpt, claude, open-webui, librechat or \
                     chatvault-py"
                )
            })
    }
}

/// Options of [`import_file`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Who owns the imported conversations.
    pub owner: UserId,
    /// Only report what would be added; write nothing.
    pub dry_run: bool,
}

impl ImportOptions {
    /// Imports for `owner`, writing.
    pub fn new(owner: UserId) -> Self {
        ImportOptions {
            owner,
            dry_run: false,
        }
    }

    /// Sets [`dry_run`](Self::dry_run).
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }
}

/// Imports the export at `path` (a zip, a directory, or a JSON file) of `format` into
/// `store`, as the [module documentation](self) describes; `on_progress` is called after
/// each conversation.
///
/// Fails when the export cannot be opened or its JSON is not well formed (the
/// conversations before the syntax error are imported), or when the store fails; a
/// conversation that is malformed only fails itself ([`ImportReport::failed`]).
pub async fn import_file(
    format: Format,
    path: &Path,
    store: &Store,
    options: &ImportOptions,
    on_progress: OnProgress<'_>,
) -> Result<ImportReport> {
    let export = Arc::new(Export::open(path)?);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Parsed>(QUEUE);
    let reader = Arc::clone(&export);
    // The parser thread reads, converts and plans each conversation, so that this CPU
    // work overlaps the store's writes of the conversations before it.
    let parser = tokio::task::spawn_blocking(move || {
        let mut index = 0;
        reader.read_json(format.items_key(), &mut |item| {
            index += 1;
            tx.blocking_send(Parsed::new(format, &reader, index, item))
                .is_ok()
        })
    });
    let target = write::Target {
        store,
        export: &export,
        format,
        owner: &options.owner,
        dry_run: options.dry_run,
    };
    let mut report = ImportReport::default();
    let mut progress = Progress::default();
    // Up to IN_FLIGHT conversations are written at once (in this task), so that one's
    // reads and uploads overlap another's write; one whose id is in flight waits.
    let mut pending = FuturesOrdered::new();
    let mut keys: VecDeque<Option<String>> = VecDeque::new();
    let mut reading = true;
    loop {
        let done = if reading && pending.len() < IN_FLIGHT {
            tokio::select! {
                parsed = rx.recv() => {
                    match parsed {
                        Some(parsed) => {
                            report.conversations += 1;
                            while parsed.key.is_some() && keys.contains(&parsed.key) {
                                let done = pending.next().await;
                                keys.pop_front();
                                absorb(done, &mut report, &mut progress, on_progress)?;
                            }
                            keys.push_back(parsed.key.clone());
                            pending.push_back(one(&target, parsed));
                        }
                        None => reading = false,
                    }
                    continue;
                }
                done = pending.next(), if !pending.is_empty() => done,
            }
        } else {
            match pending.next().await {
                Some(done) => Some(done),
                None => break,
            }
        };
        keys.pop_front();
        absorb(done, &mut report, &mut progress, on_progress)?;
    }
    match parser.await {
        Ok(Ok(_)) => Ok(report),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(ArchiveError::malformed(
            export.path().display().to_string(),
            e,
        )),
    }
}

/// One conversation of the export as the parser thread hands it on: converted and
/// planned, or why it cannot be.
struct Parsed {
    /// The id it seems to have, to keep two writes of one id apart.
    key: Option<String>,
    /// Its place, id and title in the export, for a failure report.
    ident: Ident,
    got: Got<(Conv, Plan)>,
}

impl Parsed {
    /// Converts and plans conversation `index` (1-based) of the export.
    fn new(format: Format, export: &Export, index: u64, item: Value) -> Self {
        let got = convert(format, &item, export).and_then(|mut conv| {
            let plan = model::plan(format, &mut conv)?;
            Ok((conv, plan))
        });
        let ident = Ident::of(index, &item);
        Parsed {
            key: ident.conversation.clone(),
            ident,
            got,
        }
    }
}

/// What writing one conversation did.
struct Done {
    part: ImportReport,
    messages: u64,
    failure: Option<ConversationFailure>,
}

/// Writes one converted and planned conversation of the export.
async fn one(target: &write::Target<'_>, parsed: Parsed) -> Result<Done> {
    let mut part = ImportReport::default();
    let mut messages = 0;
    let outcome = match parsed.got {
        Ok((conv, plan)) => {
            let count = plan.items.len() as u64;
            let written = write::write(target, &conv, plan, &mut part).await?;
            if written.is_ok() {
                part.notes.merge(conv.notes);
                messages = count;
            }
            written
        }
        Err(bad) => Err(bad),
    };
    Ok(Done {
        part,
        messages,
        failure: outcome.err().map(|bad| parsed.ident.failure(bad)),
    })
}

/// Adds a written conversation to the totals and reports progress.
fn absorb(
    done: Option<Result<Done>>,
    report: &mut ImportReport,
    progress: &mut Progress,
    on_progress: OnProgress<'_>,
) -> Result<()> {
    let Some(done) = done else {
        return Ok(());
    };
    let done = done?;
    report.absorb(done.part);
    report.failed.extend(done.failure);
    progress.conversations += 1;
    progress.messages += done.messages;
    progress.bytes = report.bytes_uploaded;
    on_progress(progress);
    Ok(())
}

/// One conversation of the export, converted.
fn convert(format: Format, item: &Value, export: &Export) -> Got<Conv> {
    let mut files = files::Files::new(format, export);
    let mut conv = match format {
        Format::ChatGpt => chatgpt::convert(item, &mut files),
        Format::Claude => claude::convert(item, &mut files),
        Format::OpenWebUi => openwebui::convert(item, &mut files),
        Format::LibreChat => librechat::convert(item, &mut files),
        Format::ChatVaultPy => python::convert(item, &mut files),
    }?;
    files.finish(&mut conv);
    Ok(conv)
}

/// Where a conversation stands in the export, and the id and title it seems to have.
struct Ident {
    index: u64,
    conversation: Option<String>,
    title: Option<String>,
}

impl Ident {
    /// Conversation `index` of the export, as `item` names it.
    fn of(index: u64, item: &Value) -> Self {
        // Plain strings, or DynamoDB's typed ones (`{"S": ".."}`).
        let pick = |keys: &[&str]| {
            keys.iter()
                .filter_map(|k| item.get(k))
                .find_map(|v| v.as_str().or_else(|| v.get("S").and_then(Value::as_str)))
                .map(str::to_owned)
        };
        Ident {
            index,
            conversation: pick(&["id", "uuid", "conversation_id", "conversationId"]),
            title: pick(&["title", "name"]),
        }
    }

    /// The failure report of this conversation.
    fn failure(self, bad: Bad) -> ConversationFailure {
        ConversationFailure {
            index: self.index,
            conversation: self.conversation,
            title: self.title,
            field: bad.field,
            reason: bad.reason,
        }
    }
}
