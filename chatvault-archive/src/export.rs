//! Streaming export of a store (or part of it) into an archive.

use std::io::Write;

use chatvault_core::backend::{ConversationHead, download_error};
use chatvault_core::{ConversationId, Error, MessageRange};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use crate::error::{ArchiveError, Result, io_at};
use crate::format::{Counts, Manifest, blob_path, conversation_path};
use crate::progress::{OnProgress, Progress};
use crate::store::{ConversationIds, Scope, Store};
use crate::writer::{ArchiveWriter, Spool};

/// Messages read from a store per call.
pub(crate) const MESSAGE_PAGE: usize = 500;

/// What an export leaves out, beyond its [`Scope`]. The default leaves out nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportOptions {
    /// Only conversations active at or after this time (their record's `last_active`):
    /// an incremental export of what changed since an earlier one. Every message of such
    /// a conversation is exported, not only the newer ones.
    pub since: Option<DateTime<Utc>>,
}

impl ExportOptions {
    /// Sets [`since`](Self::since).
    pub fn since(mut self, since: DateTime<Utc>) -> Self {
        self.since = Some(since);
        self
    }
}

/// Exports the conversations of `scope` from `store` into `writer`, then finishes the
/// archive (writes its manifest) and returns the manifest: [`export_with`] with the
/// default [`ExportOptions`].
pub async fn export(
    store: &Store,
    scope: Scope,
    writer: ArchiveWriter,
    on_progress: OnProgress<'_>,
) -> Result<Manifest> {
    export_with(store, scope, &ExportOptions::default(), writer, on_progress).await
}

/// Exports the conversations of `scope` that `options` keeps from `store` into `writer`,
/// then finishes the archive (writes its manifest) and returns the manifest.
///
/// Streams: memory holds one listing page, one message page and a write buffer; each
/// file is spooled to a temporary file. Attachment bytes are checked against their
/// record as they stream ([`ArchiveError::Checksum`], [`ArchiveError::Missing`]): an
/// export never carries damaged bytes silently. A conversation deleted while the export
/// runs is left out; [`Scope::Conversation`] of an unknown id is a not-found error (one
/// that [`ExportOptions::since`] leaves out is not: the archive is then empty).
pub async fn export_with(
    store: &Store,
    scope: Scope,
    options: &ExportOptions,
    mut writer: ArchiveWriter,
    on_progress: OnProgress<'_>,
) -> Result<Manifest> {
    let single = matches!(scope, Scope::Conversation(_));
    let mut ids = ConversationIds::new(store, scope);
    if let Some(since) = options.since {
        ids = ids.active_since(since);
    }
    let mut progress = Progress::default();
    while let Some(id) = ids.next().await? {
        let Some(head) = store.messages.head(&id).await? else {
            if single {
                return Err(Error::NotFound {
                    kind: "conversation",
                    id: id.to_string(),
                }
                .into());
            }
            continue;
        };
        // A listing checked the summary; `Scope::Conversation` lists nothing.
        if options.since.is_some_and(|t| head.record.last_active < t) {
            continue;
        }
        export_conversation(store, &head, &mut writer, &mut progress).await?;
        on_progress(&progress);
    }
    let counts = &mut writer.manifest_mut().counts;
    counts.conversations = progress.conversations;
    counts.messages = progress.messages;
    writer.finish()
}

/// Writes one conversation's file and its blobs; adds to `progress` and the counts.
async fn export_conversation(
    store: &Store,
    head: &ConversationHead,
    writer: &mut ArchiveWriter,
    progress: &mut Progress,
) -> Result<()> {
    let id = &head.record.id;
    let rel = conversation_path(id);
    let mut spool = writer.spool()?;
    write_line(&mut spool, head, &rel)?;
    let messages = write_messages(store, id, head.record.message_count, &mut spool, &rel).await?;
    writer.commit(&rel, spool)?;
    progress.conversations += 1;
    progress.messages += messages;
    for file in &head.files {
        writer.manifest_mut().counts.attachments += 1;
        if writer.has_blob(&file.sha256) {
            continue;
        }
        let blob = blob_path(&file.sha256).ok_or_else(|| {
            ArchiveError::malformed(
                format!("conversation {id}"),
                format!("attachment {} has no valid sha256", file.id),
            )
        })?;
        let Some(stream) = store.files.download_stream(&file.storage_key).await? else {
            return Err(ArchiveError::Missing {
                file: format!("attachment {} of {id} ({})", file.id, file.storage_key),
            });
        };
        let mut spool = writer.spool()?;
        let mut stream = crate::blobs::checked(stream, file);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| blob_error(e, &blob))?;
            spool
                .write_all(&chunk)
                .map_err(io_at("write", std::path::Path::new(&blob)))?;
        }
        let entry = writer.commit(&blob, spool)?;
        let counts: &mut Counts = &mut writer.manifest_mut().counts;
        counts.blobs += 1;
        counts.blob_bytes += entry.size;
        progress.bytes += entry.size;
    }
    Ok(())
}

/// Writes the conversation's messages 1..=count, page by page; returns how many.
async fn write_messages(
    store: &Store,
    id: &ConversationId,
    count: u64,
    spool: &mut Spool,
    rel: &str,
) -> Result<u64> {
    let mut after = 0u64;
    while after < count {
        let range = MessageRange::after(after).limit(MESSAGE_PAGE);
        let page = store.messages.messages(id, &range).await?;
        let before = after;
        for message in page.items.iter().take_while(|m| m.seq <= count) {
            if message.seq != after + 1 {
                return Err(ArchiveError::malformed(
                    rel,
                    format!("the store gave seq {} after {after}", message.seq),
                ));
            }
            write_line(spool, message, rel)?;
            after = message.seq;
        }
        if after == before {
            return Err(ArchiveError::malformed(
                rel,
                format!("the store gave {after} messages where its record counts {count}"),
            ));
        }
    }
    Ok(after)
}

fn write_line(spool: &mut Spool, value: &impl serde::Serialize, rel: &str) -> Result<()> {
    serde_json::to_writer(&mut *spool, value).map_err(|e| ArchiveError::malformed(rel, e))?;
    spool
        .write_all(b"\n")
        .map_err(io_at("write", std::path::Path::new(rel)))
}

/// A failed blob stream: a checksum mismatch, or the store's error.
fn blob_error(e: std::io::Error, blob: &str) -> ArchiveError {
    if e.kind() == std::io::ErrorKind::InvalidData && e.get_ref().is_some_and(|i| !i.is::<Error>())
    {
        ArchiveError::Checksum {
            file: blob.to_owned(),
            expected: "the attachment record's sha256 and size".to_owned(),
            found: e.to_string(),
        }
    } else {
        ArchiveError::Store(download_error(e))
    }
}
