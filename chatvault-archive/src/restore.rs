//! Writing one conversation into a destination store, idempotently: what import and copy
//! share.

use chatvault_core::backend::{ConversationHead, MessagesBackendExt};
use chatvault_core::{
    ActiveLeaf, ByteStream, ConversationId, ConversationPatch, ConversationRecord, Error,
    FileAttachment, Message, MessageRange, MessageUpdate, Usage,
};

use crate::error::{ArchiveError, Result};
use crate::export::MESSAGE_PAGE;
use crate::reader::{ArchiveReader, ConversationReader};
use crate::store::Store;

/// What an import or copy did (or, with `dry_run`, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportReport {
    /// Conversations created in the destination.
    pub conversations_created: u64,
    /// Conversations the destination held already (perhaps only in part).
    pub conversations_present: u64,
    /// Messages appended.
    pub messages_added: u64,
    /// Messages the destination held already (same ids at the same seqs).
    pub messages_present: u64,
    /// Attachment records added.
    pub files_added: u64,
    /// Attachment records the destination held already.
    pub files_present: u64,
    /// Attachment bytes uploaded.
    pub bytes_uploaded: u64,
}

impl ImportReport {
    /// Whether nothing was (or would be) added: the destination held everything already.
    pub fn added_nothing(&self) -> bool {
        self.conversations_created == 0 && self.messages_added == 0 && self.files_added == 0
    }

    /// Adds another report's counts to this one's.
    pub(crate) fn absorb(&mut self, other: &ImportReport) {
        self.conversations_created += other.conversations_created;
        self.conversations_present += other.conversations_present;
        self.messages_added += other.messages_added;
        self.messages_present += other.messages_present;
        self.files_added += other.files_added;
        self.files_present += other.files_present;
        self.bytes_uploaded += other.bytes_uploaded;
    }
}

/// Where a conversation's messages and blobs come from.
pub(crate) enum Source<'a> {
    /// An archive's conversation file.
    Archive(&'a ArchiveReader, Box<ConversationReader>),
    /// Another store, read page by page from seq `after`.
    Store(&'a Store, u64),
}

impl Source<'_> {
    async fn next_page(&mut self, id: &ConversationId, count: u64) -> Result<Option<Vec<Message>>> {
        match self {
            Source::Archive(_, conversation) => conversation.next_page(),
            Source::Store(store, after) => {
                if *after >= count {
                    return Ok(None);
                }
                let range = MessageRange::after(*after).limit(MESSAGE_PAGE);
                let mut page = store.messages.messages(id, &range).await?.items;
                page.retain(|m| m.seq <= count);
                match page.last() {
                    Some(last) => *after = last.seq,
                    None => return Ok(None),
                }
                Ok(Some(page))
            }
        }
    }

    async fn blob(&self, file: &FileAttachment) -> Result<ByteStream> {
        let stream = match self {
            Source::Archive(reader, _) => reader.blob_stream(&file.sha256)?,
            Source::Store(store, _) => store
                .files
                .download_stream(&file.storage_key)
                .await?
                .ok_or_else(|| ArchiveError::Missing {
                    file: format!("attachment {} ({})", file.id, file.storage_key),
                })?,
        };
        Ok(crate::blobs::checked(stream, file))
    }
}

/// The record to create: the source's, with nothing counted yet (appends and attachments
/// count again as they arrive).
fn fresh_record(record: &ConversationRecord) -> ConversationRecord {
    let mut fresh = record.clone();
    fresh.message_count = 0;
    fresh.file_count = 0;
    fresh.usage = Usage::default();
    fresh.tree = None;
    fresh
}

/// Brings the conversation `head` describes into `dst`: creates it if missing, adds the
/// attachments and messages it lacks, checks that what it holds matches the source.
pub(crate) async fn restore(
    dst: &Store,
    head: &ConversationHead,
    mut source: Source<'_>,
    dry_run: bool,
    report: &mut ImportReport,
) -> Result<u64> {
    let id = &head.record.id;
    let existing = match dst.messages.head(id).await? {
        Some(h) => Some(h),
        None if dry_run => None,
        None => match dst.messages.create(&fresh_record(&head.record)).await {
            Ok(()) => None,
            // Created since we looked (a concurrent import): continue as with an existing one.
            Err(Error::AlreadyExists { .. }) => dst.messages.head(id).await?,
            Err(e) => return Err(e.into()),
        },
    };
    let (present, present_files) = match &existing {
        Some(h) => {
            report.conversations_present += 1;
            (h.record.message_count, h.files.as_slice())
        }
        None => {
            report.conversations_created += 1;
            (0, &[][..])
        }
    };
    for file in &head.files {
        if present_files.iter().any(|f| f.id == file.id) {
            report.files_present += 1;
            continue;
        }
        report.files_added += 1;
        if !dry_run {
            report.bytes_uploaded += put_file(dst, id, file, &source).await?;
        }
    }
    let count = head.record.message_count;
    if present > count {
        return Err(diverged(
            id,
            format!("it holds {present} messages, the source {count}"),
        ));
    }
    if dry_run {
        report.messages_present += present;
        report.messages_added += count - present;
        return Ok(count);
    }
    while let Some(page) = source.next_page(id, count).await? {
        let split = page.partition_point(|m| m.seq <= present);
        let (old, new) = page.split_at(split);
        check_present(dst, id, old).await?;
        report.messages_present += old.len() as u64;
        append(dst, id, new).await?;
        report.messages_added += new.len() as u64;
    }
    restore_leaf(dst, &head.record).await?;
    Ok(count)
}

/// Moves the destination's active leaf to the source's, for a conversation with branches
/// (the appends left it at the last message; a record change where it differs).
async fn restore_leaf(dst: &Store, source: &ConversationRecord) -> Result<()> {
    let (Some(_), Some(leaf)) = (&source.tree, source.active_leaf()) else {
        return Ok(());
    };
    let patch = ConversationPatch {
        active: Some(ActiveLeaf::At(leaf)),
        ..ConversationPatch::default()
    };
    dst.messages.update(&source.id, &patch).await?;
    Ok(())
}

/// Uploads the attachment's bytes unless the destination has them, then records it.
async fn put_file(
    dst: &Store,
    id: &ConversationId,
    file: &FileAttachment,
    source: &Source<'_>,
) -> Result<u64> {
    let mut uploaded = 0;
    let held = dst.files.head(&file.storage_key).await?;
    if held.is_none_or(|meta| meta.size != file.size) {
        let stream = source.blob(file).await?;
        uploaded = dst
            .files
            .upload_stream(&file.storage_key, stream, &file.content_type)
            .await
            .map_err(|e| match e {
                Error::UploadStream { .. } => ArchiveError::Checksum {
                    file: format!("attachment {} ({})", file.id, file.storage_key),
                    expected: format!("sha256 {} and {} bytes", file.sha256, file.size),
                    found: e.to_string(),
                },
                other => other.into(),
            })?;
    }
    match dst.messages.add_file(id, file).await {
        Ok(_) | Err(Error::AlreadyExists { .. }) => Ok(uploaded),
        Err(e) => Err(e.into()),
    }
}

/// Checks that the destination holds these messages' ids at their seqs.
async fn check_present(dst: &Store, id: &ConversationId, old: &[Message]) -> Result<()> {
    let Some(first) = old.first() else {
        return Ok(());
    };
    let mut at = first.seq - 1;
    let mut expected = old.iter();
    while at < first.seq - 1 + old.len() as u64 {
        let range = MessageRange::after(at).limit(old.len());
        let page = dst.messages.messages(id, &range).await?.items;
        if page.is_empty() {
            return Err(diverged(id, format!("it has no message after seq {at}")));
        }
        for held in page.iter().take(old.len()) {
            match expected.next() {
                Some(want) if want.id == held.id && want.seq == held.seq => at = held.seq,
                Some(want) => {
                    let why = format!("seq {} is message {}, not {}", want.seq, held.id, want.id);
                    return Err(diverged(id, why));
                }
                None => return Ok(()),
            }
        }
    }
    Ok(())
}

/// Appends the messages (in batches the destination takes), checks they land at the
/// source's seqs, and restores each message's failure text.
async fn append(dst: &Store, id: &ConversationId, new: &[Message]) -> Result<()> {
    let batch = dst
        .capabilities()
        .max_append_messages
        .unwrap_or(MESSAGE_PAGE)
        .clamp(1, MESSAGE_PAGE);
    for chunk in new.chunks(batch) {
        let messages = chunk.iter().map(Message::to_new).collect();
        let appended = dst.messages.append_messages(id, messages).await?;
        for (want, got) in chunk.iter().zip(&appended.messages) {
            if want.seq != got.seq {
                let why = format!(
                    "message {} landed at seq {}, not {}",
                    want.id, got.seq, want.seq
                );
                return Err(diverged(id, why));
            }
        }
        for message in chunk.iter().filter(|m| m.failure.is_some()) {
            let update = MessageUpdate {
                failure: message.failure.clone(),
                ..MessageUpdate::default()
            };
            dst.messages
                .update_message(id, &message.id, 1, &update)
                .await?;
        }
    }
    Ok(())
}

fn diverged(id: &ConversationId, reason: String) -> ArchiveError {
    ArchiveError::Diverged {
        conversation: id.to_string(),
        reason,
    }
}
