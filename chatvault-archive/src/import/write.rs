//! Writing one converted conversation into a store, idempotently: what a previous import
//! stored (found by the deterministic ids) is left alone, the rest is appended in batches
//! along the plan, then the active leaf is set.

use std::collections::HashMap;
use std::sync::Arc;

use chatvault_core::backend::{ConversationHead, bytes_stream, into_byte_stream};
use chatvault_core::{
    ActiveLeaf, ByteStream, ConversationId, ConversationPatch, ConversationRecord, FileAttachment,
    MessageId, MessageRange, Metadata, NewMessage, Parent, UserId, keys, sha256_hex,
};
use serde_json::{Value, json};

use super::Format;
use super::fields::Bad;
use super::model::{Conv, FileBytes, PendingFile, Plan};
use super::report::ImportReport;
use super::source::Export;
use crate::error::{ArchiveError, Result};
use crate::store::Store;

/// The most messages one append carries (fewer when the backend says so).
const MAX_BATCH: usize = 1000;

/// The messages read per page when looking at what a previous import stored.
const READ_PAGE: usize = 500;

/// Where one conversation goes and how.
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) store: &'a Store,
    pub(crate) export: &'a Arc<Export>,
    pub(crate) format: Format,
    pub(crate) owner: &'a UserId,
    pub(crate) dry_run: bool,
}

/// Writes `conv` (planned as `plan`) into the store. `Ok(Err(bad))` when the store holds
/// a conversation of this id for another owner, or one not imported from this source
/// (nothing written); `Err` when the store fails.
///
/// The active leaf is set to the source's when the conversation is new or gains
/// messages; a conversation the import adds nothing to keeps the leaf it has (its owner
/// may have switched branches since).
pub(crate) async fn write(
    t: &Target<'_>,
    conv: &Conv,
    plan: Plan,
    report: &mut ImportReport,
) -> Result<std::result::Result<(), Bad>> {
    let owned;
    let t = match &conv.owner {
        Some(owner) => {
            owned = Target { owner, ..*t };
            &owned
        }
        None => t,
    };
    let id = match &conv.id {
        Some(id) => id.clone(),
        None => super::ids::conversation(t.format, &conv.source_id),
    };
    let head = head_or_create(t, &id, conv).await?;
    let (stored, count, leaf, held_files) = match &head {
        Some(h) if h.record.user_id.as_ref() != Some(t.owner) => {
            return Ok(Err(Bad::new(
                "owner",
                format!("conversation {id} was imported before for another owner"),
            )));
        }
        Some(h) if !imported_from(&h.record.metadata, t.format, &conv.source_id) => {
            return Ok(Err(Bad::new(
                "id",
                format!("the store holds conversation {id}, not imported from this source"),
            )));
        }
        Some(h) => {
            report.conversations_present += 1;
            let stored = stored_ids(t.store, &id).await?;
            let files: Vec<_> = h.files.iter().map(|f| f.id.clone()).collect();
            (
                stored,
                h.record.message_count,
                h.record.active_leaf(),
                files,
            )
        }
        None => {
            report.conversations_created += 1;
            (HashMap::new(), 0, None, Vec::new())
        }
    };
    let (seqs, new) = appends(plan.items, &stored, count);
    report.messages_present += (seqs.len() - new.len()) as u64;
    report.messages_added += new.len() as u64;
    let files: Vec<&PendingFile> = conv
        .files
        .iter()
        .filter(|f| !held_files.contains(&f.id))
        .collect();
    report.files_present += (conv.files.len() - files.len()) as u64;
    report.files_added += files.len() as u64;
    let grows = head.is_none() || !new.is_empty();
    let want_leaf = plan.leaf.map(|i| seqs[i]).filter(|_| grows);
    if t.dry_run {
        let after = if new.is_empty() {
            leaf
        } else {
            Some(count + new.len() as u64)
        };
        if want_leaf.is_some() && want_leaf != after {
            report.leaves_set += 1;
        }
        return Ok(Ok(()));
    }
    for file in files {
        report.bytes_uploaded += put_file(t, &id, conv, file).await?;
    }
    let leaf = append_all(t, &id, new, count).await?.or(leaf);
    if let Some(want) = want_leaf
        && leaf != Some(want)
    {
        let patch = ConversationPatch {
            active: Some(ActiveLeaf::At(want)),
            ..ConversationPatch::default()
        };
        t.store.messages.update(&id, &patch).await?;
        report.leaves_set += 1;
    }
    Ok(Ok(()))
}

/// Whether a stored conversation's metadata says it came from this source conversation.
fn imported_from(metadata: &Metadata, format: Format, source_id: &str) -> bool {
    let source = metadata.get("source");
    let field = |k| source.and_then(|s| s.get(k)).and_then(Value::as_str);
    field("format") == Some(format.name()) && field("conversation_id") == Some(source_id)
}

/// Appends `new` (numbered from `count + 1`) in batches the backend takes, checking that
/// each lands at its planned seq; returns the active leaf after the last append (`None`
/// when nothing was appended).
async fn append_all(
    t: &Target<'_>,
    id: &ConversationId,
    new: Vec<NewMessage>,
    count: u64,
) -> Result<Option<u64>> {
    let mut leaf = None;
    let batch = t
        .store
        .capabilities()
        .max_append_messages
        .unwrap_or(MAX_BATCH)
        .clamp(1, MAX_BATCH);
    let mut next = count + 1;
    for chunk in new.chunks(batch) {
        let mut chunk = chunk.to_vec();
        if let Some(first) = chunk.first_mut()
            && first.parent == Parent::Active
        {
            first.parent = Parent::Seq(next - 1);
        }
        let appended = t
            .store
            .messages
            .append_messages_as(Some(t.owner), id, chunk)
            .await?;
        for got in &appended.messages {
            if got.seq != next {
                return Err(ArchiveError::Diverged {
                    conversation: id.to_string(),
                    reason: format!(
                        "message {} landed at seq {}, not {next}: another writer appended",
                        got.id, got.seq
                    ),
                });
            }
            next += 1;
        }
        leaf = appended.record.active_leaf();
    }
    Ok(leaf)
}

/// What a previous import stored of the conversation (`None`: nothing, and, unless this
/// is a dry run, it is created now). Creating first saves a read for new conversations.
async fn head_or_create(
    t: &Target<'_>,
    id: &ConversationId,
    conv: &Conv,
) -> Result<Option<ConversationHead>> {
    if t.dry_run {
        return Ok(t.store.messages.head(id).await?);
    }
    match t.store.messages.create(&record(t, id, conv)).await {
        Ok(()) => Ok(None),
        Err(chatvault_core::Error::AlreadyExists { .. }) => {
            let head = t.store.messages.head(id).await?;
            head.map(Some).ok_or_else(|| ArchiveError::Diverged {
                conversation: id.to_string(),
                reason: "it exists but cannot be read (being deleted?)".into(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The seq of every planned message (stored or to be), and the appends of the new ones:
/// each follows its parent by seq, or the message before it in the batch
/// ([`Parent::Active`]) when that is its parent.
fn appends(
    items: Vec<super::model::Planned>,
    stored: &HashMap<MessageId, u64>,
    count: u64,
) -> (Vec<u64>, Vec<NewMessage>) {
    let mut seqs = Vec::with_capacity(items.len());
    let mut new: Vec<NewMessage> = Vec::new();
    let mut next = count + 1;
    for item in items {
        if let Some(&seq) = stored.get(&item.message.id) {
            seqs.push(seq);
            continue;
        }
        let mut message = item.message;
        message.parent = match item.parent.map(|p| seqs[p]) {
            None => Parent::Root,
            Some(p) if p + 1 == next && !new.is_empty() => Parent::Active,
            Some(p) => Parent::Seq(p),
        };
        seqs.push(next);
        next += 1;
        new.push(message);
    }
    (seqs, new)
}

/// The ids (and seqs) of the messages the store holds in conversation `id`.
async fn stored_ids(store: &Store, id: &ConversationId) -> Result<HashMap<MessageId, u64>> {
    let mut out = HashMap::new();
    let mut after = 0;
    loop {
        let range = MessageRange::after(after).limit(READ_PAGE);
        let page = store.messages.messages(id, &range).await?;
        for m in &page.items {
            out.insert(m.id.clone(), m.seq);
            after = after.max(m.seq);
        }
        if page.next_cursor.is_none() || page.items.is_empty() {
            return Ok(out);
        }
    }
}

/// The new conversation's record: the source's title, times and archived flag, and its
/// ids in metadata.
fn record(t: &Target<'_>, id: &ConversationId, conv: &Conv) -> ConversationRecord {
    let mut record = ConversationRecord::new(Some(t.owner.clone()));
    record.id = id.clone();
    record.title = conv
        .title
        .clone()
        .filter(|title| keys::validate_title(title).is_ok());
    if let Some(created) = conv.created_at {
        record.created_at = created;
        record.last_active = conv.updated_at.unwrap_or(created).max(created);
    }
    record.archived = conv.archived;
    let mut metadata = Metadata::new();
    let mut source = json!({"format": t.format.name(), "conversation_id": conv.source_id});
    if let Some(updated) = conv.updated_at {
        // The store sets last_active itself on every append: the source's is kept here.
        source["updated_at"] = Value::String(updated.to_rfc3339());
    }
    metadata.insert("source".into(), source);
    if !conv.extra.is_empty() {
        metadata.insert(t.format.name().into(), Value::Object(conv.extra.clone()));
    }
    if chatvault_core::backend::validate_metadata(&metadata).is_err() {
        metadata.remove(t.format.name());
    }
    record.metadata = metadata;
    record
}

/// Uploads an attachment's bytes under its own key and records it; returns the bytes
/// uploaded.
async fn put_file(
    t: &Target<'_>,
    id: &ConversationId,
    conv: &Conv,
    file: &PendingFile,
) -> Result<u64> {
    let key = keys::storage_key(Some(t.owner), id, &file.id, &file.filename)?;
    let mut _spooled = None;
    let (stream, sha256, size): (ByteStream, String, u64) = match &file.bytes {
        FileBytes::Inline(bytes) => (
            bytes_stream(bytes.clone()),
            sha256_hex(bytes),
            bytes.len() as u64,
        ),
        FileBytes::Entry(entry) => {
            let export = Arc::clone(t.export);
            let entry = entry.clone();
            let spooled = tokio::task::spawn_blocking(move || export.spool(&entry))
                .await
                .map_err(|e| ArchiveError::malformed(&file.pointer, e))??;
            let reader = spooled
                .file
                .reopen()
                .map_err(crate::error::io_at("read", spooled.file.path()))?;
            let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(reader));
            let (sha, size) = (spooled.sha256.clone(), spooled.size);
            _spooled = Some(spooled);
            (into_byte_stream(stream), sha, size)
        }
    };
    let uploaded = t
        .store
        .files
        .upload_stream(&key, stream, &file.content_type)
        .await?;
    let metadata = match json!({"source": {
        "format": t.format.name(),
        "conversation_id": conv.source_id,
        "pointer": file.pointer,
    }}) {
        Value::Object(m) => m,
        _ => Metadata::new(),
    };
    let uploaded_at = file
        .uploaded_at
        .or(conv.created_at)
        .unwrap_or_else(chatvault_core::backend::now);
    let attachment = FileAttachment::new(
        file.id.clone(),
        file.filename.clone(),
        file.content_type.clone(),
        size,
        sha256,
        key,
        uploaded_at,
    )
    .with_metadata(metadata);
    match t.store.messages.add_file(id, &attachment).await {
        Ok(_) | Err(chatvault_core::Error::AlreadyExists { .. }) => Ok(uploaded),
        Err(e) => Err(e.into()),
    }
}
