//! Re-encryption: an owner's data sealed again with the newest version of their key.

use chatvault_core::backend::{
    FilesBackend, ListOptions, MessageRange, MessageUpdate, MessagesBackend,
};
use chatvault_core::{ConversationId, ConversationPatch, Error, Result, UserId};

use crate::files::EncryptedFiles;
use crate::format::Header;
use crate::messages::{EncryptedMessages, message_headers, title_header};
use crate::stream::read_header;

/// What [`reencrypt`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReencryptReport {
    /// Conversations visited.
    pub conversations: u64,
    /// Messages sealed again (each one message update).
    pub messages: u64,
    /// Titles sealed again.
    pub titles: u64,
    /// Attachments whose bytes were sealed again (downloaded and uploaded in place).
    pub files: u64,
    /// Messages another writer updated while this ran (left as they were: run again).
    pub conflicts: u64,
    /// Attachment records still sealed with an older version: the backend traits have no
    /// atomic way to replace one, so they keep their version (their bytes are done).
    pub records_kept: u64,
}

/// Seals again, with the newest version of the owner's data key (`None`: the vault-wide
/// key of conversations without an owner), everything of the owner's conversations that
/// an older version sealed: titles, message content, metadata and failure reasons, and
/// attachment bytes. Run it after [`Keyring::rotate`](crate::Keyring::rotate) when the
/// old version must stop protecting data (a key thought exposed).
///
/// Each message is one versioned [`update_message`](MessagesBackend::update_message) at
/// the revision read (a message updated meanwhile is counted in `conflicts` and left: run
/// again); as any message update it moves the conversation's `last_active` and the
/// message's `updated_at`. Attachment bytes are uploaded again under the same key (a
/// reader sees the old bytes or the new). Resumable: what is already on the newest
/// version is skipped. Listing the conversations of `owner: None` needs a backend that
/// lists every conversation.
pub async fn reencrypt<B: MessagesBackend, F: FilesBackend>(
    messages: &EncryptedMessages<B>,
    files: &EncryptedFiles<F>,
    owner: Option<&UserId>,
) -> Result<ReencryptReport> {
    let mut report = ReencryptReport::default();
    let mut options = ListOptions::default().include_archived(true);
    loop {
        let page = messages.list_conversations(owner, &options).await?;
        for summary in page.items.iter().filter(|s| s.user_id.as_ref() == owner) {
            report.conversations += 1;
            conversation(messages, files, &summary.id, &mut report).await?;
        }
        match page.next_cursor {
            Some(cursor) => options = options.cursor(&cursor)?,
            None => return Ok(report),
        }
    }
}

async fn conversation<B: MessagesBackend, F: FilesBackend>(
    messages: &EncryptedMessages<B>,
    files: &EncryptedFiles<F>,
    id: &ConversationId,
    report: &mut ReencryptReport,
) -> Result<()> {
    let current = messages.current_header(id).await?;
    let stale = |h: &Header| h.key_ref != current.key_ref || h.version != current.version;
    let Some(head) = messages.inner().head(id).await? else {
        return Ok(());
    };
    let title_stale = head
        .record
        .title
        .as_deref()
        .and_then(title_header)
        .is_some_and(|h| stale(&h));
    if title_stale && let Some(open) = messages.head(id).await? {
        let patch = ConversationPatch {
            title: open.record.title,
            ..Default::default()
        };
        messages.update(id, &patch).await?;
        report.titles += 1;
    }
    let mut range = MessageRange::all();
    loop {
        let page = messages.inner().messages(id, &range).await?;
        for raw in &page.items {
            if !message_headers(raw).iter().any(stale) {
                continue;
            }
            let Some(open) = messages.message(id, &raw.id).await? else {
                continue;
            };
            let update = MessageUpdate {
                parts: Some(open.parts),
                metadata: Some(open.metadata),
                failure: open.failure,
                ..Default::default()
            };
            match messages
                .update_message(id, &raw.id, raw.revision, &update)
                .await
            {
                Ok(_) => report.messages += 1,
                Err(Error::Conflict { .. }) => report.conflicts += 1,
                Err(e) => return Err(e),
            }
        }
        match &page.next_cursor {
            Some(cursor) => range = range.continue_from(cursor)?,
            None => break,
        }
    }
    attachments(messages, files, id, &current, report).await
}

async fn attachments<B: MessagesBackend, F: FilesBackend>(
    messages: &EncryptedMessages<B>,
    files: &EncryptedFiles<F>,
    id: &ConversationId,
    current: &Header,
    report: &mut ReencryptReport,
) -> Result<()> {
    let Some(head) = messages.head(id).await? else {
        return Ok(());
    };
    let stored = messages
        .inner()
        .head(id)
        .await?
        .map(|h| h.files)
        .unwrap_or_default();
    for (file, raw) in head.files.iter().zip(&stored) {
        if raw
            .metadata
            .get("chatvault_crypt")
            .and_then(|v| v.as_str())
            .and_then(title_like)
            .is_some_and(|h| h.version != current.version || h.key_ref != current.key_ref)
        {
            report.records_kept += 1;
        }
        let key = files.stored_key(&file.storage_key).await?;
        let Some(mut bytes) = files.inner().download_stream(&key).await? else {
            continue;
        };
        let (header, _) = read_header(&mut bytes, key.as_str()).await?;
        drop(bytes);
        if header.header.version == current.version && header.header.key_ref == current.key_ref {
            continue;
        }
        let Some(plain) = files.download_stream(&file.storage_key).await? else {
            continue;
        };
        files
            .upload_stream(&file.storage_key, plain, &file.content_type)
            .await?;
        report.files += 1;
    }
    Ok(())
}

/// The header of a sealed base64 value (an attachment record's metadata).
fn title_like(text: &str) -> Option<Header> {
    title_header(&format!("{}{text}", crate::format::STRING_PREFIX))
}
