//! Attachment parts made ready for a provider: signed URLs or base64 `data:` URLs.
//!
//! A [`Part::File`] that names one of the conversation's attachments
//! ([`FileSource::Attachment`]) means nothing to a provider. [`resolve_files`] replaces
//! each with a [`FileSource::Url`] part the writers can send, reading the attachment
//! through the conversation ([`Conversation::file_url`] or [`Conversation::file_content`])
//! as the [`FileMode`] says. The part keeps its media type and file name (the
//! attachment's, when the part has none). Parts that already hold a URL (`https://` or
//! `data:`) pass through untouched; so do files inside tool results, which are resolved
//! the same way.
//!
//! An attachment that is gone (deleted, or its bytes missing from the files backend) is
//! replaced by a text part saying so (`[attachment report.pdf is no longer available]`),
//! so that one lost file does not make every later request fail. An attachment the
//! handle does not know yet (added through another handle or process) is looked up in
//! the backend first.

use std::collections::HashMap;
use std::time::Duration;

use super::{ReplayMessage, data_url};
use chatvault_core::Conversation;
use chatvault_core::ids::FileId;
use chatvault_core::{Error, ErrorKind, Result};
use chatvault_core::{FilePart, FileSource, Part};

/// The largest attachment [`FileMode::Base64`] inlines, in bytes (32 MiB: Anthropic's
/// whole-request limit; OpenAI's per-file limits are lower still).
pub const MAX_INLINE_BYTES: u64 = 32 * 1024 * 1024;

/// How [`resolve_files`] turns attachments into something a provider can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileMode {
    /// A signed URL valid for this long ([`Conversation::file_url`]): the provider
    /// downloads the file. [`Error::NotSupported`] when the files backend makes no signed
    /// URLs. The URL must be reachable by the provider (not a local `file:` store).
    SignedUrl(Duration),
    /// The bytes, inlined as a base64 `data:` URL. Works with every files backend; files
    /// over [`MAX_INLINE_BYTES`] are [`Error::TooLarge`].
    Base64,
    /// Signed URLs when the files backend makes them, base64 otherwise.
    SignedUrlOrBase64(Duration),
}

/// Replaces every attachment part in `messages` (tool results included) with a URL part,
/// as `mode` says; see the [module docs](self).
///
/// ```
/// use chatvault_llm::{FileMode, ReplayMessage, resolve_files};
/// use chatvault_core::{ChatVault, FileSource, Part, Role};
/// use chatvault_memory::{MemoryFiles, MemoryMessages};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> chatvault_core::Result<()> {
/// let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
/// let mut chat = vault.create_conversation(None).await?;
/// let file = chat.attach_file("note.txt", &b"hi"[..], "text/plain").await?;
/// let message = ReplayMessage::new(
///     Role::User,
///     vec![Part::text("Read this"), Part::attachment(file.id.clone(), None)],
/// );
/// let resolved = resolve_files(&chat, vec![message], FileMode::Base64).await?;
/// let Part::File(part) = &resolved[0].parts[1] else { unreachable!() };
/// assert_eq!(
///     part.source,
///     FileSource::Url { url: "data:text/plain;base64,aGk=".into() }
/// );
/// assert_eq!(part.filename.as_deref(), Some("note.txt"));
/// # Ok(()) }
/// ```
pub async fn resolve_files(
    conversation: &Conversation,
    mut messages: Vec<ReplayMessage>,
    mode: FileMode,
) -> Result<Vec<ReplayMessage>> {
    let mut wanted: Vec<FileId> = Vec::new();
    for message in &messages {
        collect_attachments(&message.parts, &mut wanted);
    }
    // Attachments added through another handle (or process) are not in this handle's
    // list: read the conversation afresh before calling any of them gone.
    let fresh;
    let mut conversation = conversation;
    if wanted.iter().any(|id| conversation.file(id).is_none()) {
        fresh = conversation
            .vault()
            .get_conversation(conversation.id())
            .await?
            .ok_or_else(|| Error::conversation_not_found(conversation.id().as_str()))?;
        conversation = &fresh;
    }
    let mut resolved: HashMap<FileId, Resolved> = HashMap::with_capacity(wanted.len());
    for id in wanted {
        if resolved.contains_key(&id) {
            continue;
        }
        let value = resolve_one(conversation, &id, mode).await?;
        resolved.insert(id, value);
    }
    for message in &mut messages {
        replace_attachments(&mut message.parts, &resolved);
    }
    Ok(messages)
}

fn collect_attachments(parts: &[Part], out: &mut Vec<FileId>) {
    for part in parts {
        match part {
            Part::File(FilePart {
                source: FileSource::Attachment { file_id },
                ..
            }) => out.push(file_id.clone()),
            Part::ToolResult(r) => collect_attachments(&r.content, out),
            _ => {}
        }
    }
}

enum Resolved {
    File(FilePart),
    Gone(String),
}

async fn resolve_one(conversation: &Conversation, id: &FileId, mode: FileMode) -> Result<Resolved> {
    let Some(attachment) = conversation.file(id) else {
        return Ok(Resolved::Gone(id.to_string()));
    };
    let signed = match mode {
        FileMode::Base64 => None,
        FileMode::SignedUrl(expires) => Some(expires),
        FileMode::SignedUrlOrBase64(expires) => conversation
            .vault()
            .files_backend()
            .capabilities()
            .signed_urls
            .then_some(expires),
    };
    let url = match signed {
        Some(expires) => match conversation.file_url(id, expires).await {
            Ok(url) => url,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok(Resolved::Gone(attachment.filename.clone()));
            }
            Err(e) => return Err(e),
        },
        None => {
            if attachment.size > MAX_INLINE_BYTES {
                return Err(Error::TooLarge {
                    what: format!("attachment {} for base64 inlining", attachment.filename),
                    size: attachment.size,
                    limit: MAX_INLINE_BYTES,
                });
            }
            match conversation.file_content(id).await {
                Ok(Some(bytes)) => data_url(attachment.content_type.as_str(), &bytes),
                Ok(None) => return Ok(Resolved::Gone(attachment.filename.clone())),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    return Ok(Resolved::Gone(attachment.filename.clone()));
                }
                Err(e) => return Err(e),
            }
        }
    };
    Ok(Resolved::File(FilePart {
        source: FileSource::Url { url },
        media_type: Some(attachment.content_type.clone()),
        filename: Some(attachment.filename.clone()),
    }))
}

fn replace_attachments(parts: &mut [Part], resolved: &HashMap<FileId, Resolved>) {
    for part in parts.iter_mut() {
        match part {
            Part::File(file) => {
                let FileSource::Attachment { file_id } = &file.source else {
                    continue;
                };
                match resolved.get(file_id) {
                    Some(Resolved::File(new)) => {
                        *file = FilePart {
                            source: new.source.clone(),
                            media_type: file.media_type.clone().or_else(|| new.media_type.clone()),
                            filename: file.filename.clone().or_else(|| new.filename.clone()),
                        };
                    }
                    Some(Resolved::Gone(name)) => {
                        *part = Part::text(format!("[attachment {name} is no longer available]"));
                    }
                    None => {}
                }
            }
            Part::ToolResult(r) => replace_attachments(&mut r.content, resolved),
            _ => {}
        }
    }
}
