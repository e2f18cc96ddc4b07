//! Checking a store or an archive: everything read, every checksum compared.

use chatvault_core::backend::{ConversationHead, download_error};
use chatvault_core::{ConversationId, MessageRange};

use crate::blobs::digest;
use crate::error::{ArchiveError, Result};
use crate::export::MESSAGE_PAGE;
use crate::format::{blob_path, hash_reader};
use crate::progress::{OnProgress, Progress};
use crate::reader::ArchiveReader;
use crate::store::{ConversationIds, Scope, Store};

/// The most problems a report lists (all are counted).
pub const MAX_LISTED_PROBLEMS: usize = 1000;

/// One piece of damage found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where: a conversation id, or a file inside the archive.
    pub place: String,
    /// What is wrong.
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.place, self.what)
    }
}

/// What a verify read and found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Conversations read.
    pub conversations: u64,
    /// Messages read.
    pub messages: u64,
    /// Attachment records checked.
    pub attachments: u64,
    /// Attachment bytes read and hashed.
    pub bytes_read: u64,
    /// How many problems were found.
    pub problem_count: u64,
    /// The first [`MAX_LISTED_PROBLEMS`] of them.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problem_count == 0
    }

    fn problem(&mut self, place: impl Into<String>, what: impl ToString) {
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED_PROBLEMS {
            self.problems.push(Problem {
                place: place.into(),
                what: what.to_string(),
            });
        }
    }

    fn progress(&self) -> Progress {
        Progress {
            conversations: self.conversations,
            messages: self.messages,
            bytes: self.bytes_read,
            total_conversations: None,
        }
    }
}

/// Reads every conversation of `scope` in `store`: every message page (seqs must run 1
/// to the record's count), every attachment's bytes present with the recorded size, and
/// with `read_blobs` their SHA-256 too. Damage is reported, not returned as an error; an
/// error means the store could not be listed at all.
pub async fn verify_store(
    store: &Store,
    scope: Scope,
    read_blobs: bool,
    on_progress: OnProgress<'_>,
) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut ids = ConversationIds::new(store, scope);
    while let Some(id) = ids.next().await? {
        let head = match store.messages.head(&id).await {
            Ok(Some(head)) => head,
            Ok(None) => continue,
            Err(e) => {
                report.problem(format!("conversation {id}"), e);
                continue;
            }
        };
        report.conversations += 1;
        if let Err(e) = verify_messages(store, &id, head.record.message_count, &mut report).await {
            report.problem(format!("conversation {id}"), e);
        }
        verify_files(store, &head, read_blobs, &mut report).await;
        on_progress(&report.progress());
    }
    Ok(report)
}

async fn verify_messages(
    store: &Store,
    id: &ConversationId,
    count: u64,
    report: &mut VerifyReport,
) -> Result<()> {
    let mut after = 0;
    while after < count {
        let range = MessageRange::after(after).limit(MESSAGE_PAGE);
        let page = store.messages.messages(id, &range).await?;
        let before = after;
        for m in page.items.iter().take_while(|m| m.seq <= count) {
            if m.seq != after + 1 {
                let what = format!("seq {} follows {after}", m.seq);
                report.problem(format!("conversation {id}"), what);
                return Ok(());
            }
            after = m.seq;
            report.messages += 1;
        }
        if after == before {
            let what = format!("{after} messages readable where its record counts {count}");
            report.problem(format!("conversation {id}"), what);
            return Ok(());
        }
    }
    Ok(())
}

async fn verify_files(store: &Store, head: &ConversationHead, read: bool, r: &mut VerifyReport) {
    for file in &head.files {
        r.attachments += 1;
        let place = format!(
            "conversation {} attachment {} ({})",
            head.record.id, file.id, file.storage_key
        );
        let stored = match store.files.head(&file.storage_key).await {
            Ok(Some(meta)) => meta,
            Ok(None) => {
                r.problem(place, "bytes missing");
                continue;
            }
            Err(e) => {
                r.problem(place, e);
                continue;
            }
        };
        if stored.size != file.size {
            r.problem(
                place,
                format!("{} bytes, recorded {}", stored.size, file.size),
            );
            continue;
        }
        if !read {
            continue;
        }
        let found = match store.files.download_stream(&file.storage_key).await {
            Ok(Some(stream)) => digest(stream).await.map_err(download_error),
            Ok(None) => {
                r.problem(place, "bytes missing");
                continue;
            }
            Err(e) => Err(e),
        };
        match found {
            Ok((sha, size)) => {
                r.bytes_read += size;
                if sha != file.sha256 || size != file.size {
                    let what = format!(
                        "sha256 {sha} ({size} bytes), recorded {} ({} bytes)",
                        file.sha256, file.size
                    );
                    r.problem(place, what);
                }
            }
            Err(e) => r.problem(place, e),
        }
    }
}

/// Checks an archive: every file the manifest lists is present with its SHA-256 and
/// size; every conversation file parses with seqs 1 to its record's count; every
/// attachment's blob is listed with the attachment's size.
pub fn verify_archive(archive: &ArchiveReader, on_progress: OnProgress<'_>) -> VerifyReport {
    let mut report = VerifyReport::default();
    let manifest = archive.manifest();
    for (rel, entry) in &manifest.files {
        match archive
            .open_file(rel)
            .and_then(|f| hash_reader(f).map_err(|e| ArchiveError::malformed(rel.as_str(), e)))
        {
            Ok(found) if &found == entry => {}
            Ok(found) => report.problem(
                rel.as_str(),
                format!(
                    "sha256 {} ({} bytes), the manifest says {} ({} bytes)",
                    found.sha256, found.size, entry.sha256, entry.size
                ),
            ),
            Err(e) => report.problem(rel.as_str(), e),
        }
        if rel.starts_with("blobs/") {
            report.bytes_read += entry.size;
        }
    }
    for rel in manifest.conversation_files() {
        if let Err(e) = verify_conversation_file(archive, rel, &mut report) {
            report.problem(rel, e);
        }
        on_progress(&report.progress());
    }
    report
}

fn verify_conversation_file(
    archive: &ArchiveReader,
    rel: &str,
    report: &mut VerifyReport,
) -> Result<()> {
    let mut conversation = archive.conversation(rel, MESSAGE_PAGE)?;
    report.conversations += 1;
    for file in &conversation.head().files {
        report.attachments += 1;
        let listed = blob_path(&file.sha256).and_then(|p| archive.manifest().files.get(&p));
        match listed {
            None => report.problem(
                rel,
                format!("attachment {}: blob {} missing", file.id, file.sha256),
            ),
            Some(entry) if entry.size != file.size => report.problem(
                rel,
                format!(
                    "attachment {}: blob of {} bytes, recorded {}",
                    file.id, entry.size, file.size
                ),
            ),
            Some(_) => {}
        }
    }
    while let Some(page) = conversation.next_page()? {
        report.messages += page.len() as u64;
    }
    Ok(())
}
