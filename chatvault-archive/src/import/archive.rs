//! Streaming import of an archive into a store, and store-to-store copy.

use chatvault_core::ConversationId;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use crate::error::{ArchiveError, Result};
use crate::export::MESSAGE_PAGE;
use crate::format::{FileEntry, hash_reader};
use crate::progress::{OnProgress, Progress};
use crate::reader::ArchiveReader;
use crate::restore::{ImportReport, Source, restore};
use crate::store::{ConversationIds, Scope, Store};

/// Options of [`import`] and [`copy`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Only report what would be added; write nothing.
    pub dry_run: bool,
}

impl ImportOptions {
    /// Sets [`dry_run`](Self::dry_run).
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }
}

/// Imports every conversation of the archive into `dst`, idempotently.
///
/// By conversation id: a conversation the destination lacks is created; one it holds is
/// completed. By message id: the destination's messages must be the archive's first ones
/// (same ids at the same seqs; [`ArchiveError::Diverged`](crate::ArchiveError::Diverged)
/// otherwise), and only those after them are appended. Attachments are added by file id,
/// their bytes uploaded (checked against their record's SHA-256 and size as they stream)
/// unless the destination holds bytes of that size under the key. So importing the same
/// archive twice adds nothing the second time ([`ImportReport::added_nothing`]), and an
/// import cut short finishes when run again. Memory holds one message page.
///
/// Each conversation file's SHA-256 is checked against the manifest before anything of it
/// is written ([`ArchiveError::Checksum`]); blobs are checked as they stream.
pub async fn import(
    archive: &ArchiveReader,
    dst: &Store,
    options: &ImportOptions,
    on_progress: OnProgress<'_>,
) -> Result<ImportReport> {
    let mut report = ImportReport::default();
    let mut progress = Progress {
        total_conversations: Some(archive.manifest().counts.conversations),
        ..Progress::default()
    };
    for (rel, entry) in archive.manifest().conversation_entries() {
        // The file's checksum first, so a damaged conversation writes nothing.
        check_file(archive, rel, entry)?;
        let conversation = archive.conversation(rel, MESSAGE_PAGE)?;
        let head = conversation.head().clone();
        let source = Source::Archive(archive, Box::new(conversation));
        let bytes = report.bytes_uploaded;
        progress.messages += restore(dst, &head, source, options.dry_run, &mut report).await?;
        progress.conversations += 1;
        progress.bytes += report.bytes_uploaded - bytes;
        on_progress(&progress);
    }
    Ok(report)
}

/// Fails with [`ArchiveError::Checksum`] unless the file's bytes are the manifest's.
fn check_file(archive: &ArchiveReader, rel: &str, entry: &FileEntry) -> Result<()> {
    let found =
        hash_reader(archive.open_file(rel)?).map_err(|e| ArchiveError::malformed(rel, e))?;
    if &found != entry {
        return Err(ArchiveError::Checksum {
            file: rel.to_owned(),
            expected: format!("sha256 {} ({} bytes)", entry.sha256, entry.size),
            found: format!("sha256 {} ({} bytes)", found.sha256, found.size),
        });
    }
    Ok(())
}

/// How many conversations [`copy`] brings over at once: one's reads from the source
/// overlap another's writes to the destination (and SQLite's writers share commits).
const COPY_IN_FLIGHT: usize = 4;

/// Copies the conversations of `scope` from `src` to `dst`, with [`import`]'s rules: it
/// resumes where an earlier, interrupted copy stopped, and never duplicates a message.
/// Up to 4 conversations are copied at once; memory holds one listing page and one
/// message page for each.
pub async fn copy(
    src: &Store,
    dst: &Store,
    scope: Scope,
    options: &ImportOptions,
    on_progress: OnProgress<'_>,
) -> Result<ImportReport> {
    let mut report = ImportReport::default();
    let mut progress = Progress::default();
    let mut ids = ConversationIds::new(src, scope);
    let mut pending = FuturesUnordered::new();
    let mut listing = true;
    loop {
        while listing && pending.len() < COPY_IN_FLIGHT {
            match ids.next().await? {
                Some(id) => pending.push(copy_one(src, dst, id, options.dry_run)),
                None => listing = false,
            }
        }
        let Some(done) = pending.next().await else {
            return Ok(report);
        };
        let Some((part, messages)) = done? else {
            continue;
        };
        progress.messages += messages;
        progress.conversations += 1;
        progress.bytes += part.bytes_uploaded;
        report.absorb(&part);
        on_progress(&progress);
    }
}

/// Copies one conversation; `None` when the source no longer holds it.
async fn copy_one(
    src: &Store,
    dst: &Store,
    id: ConversationId,
    dry_run: bool,
) -> Result<Option<(ImportReport, u64)>> {
    let Some(head) = src.messages.head(&id).await? else {
        return Ok(None);
    };
    let mut part = ImportReport::default();
    let source = Source::Store(src, 0);
    let messages = restore(dst, &head, source, dry_run, &mut part).await?;
    Ok(Some((part, messages)))
}
