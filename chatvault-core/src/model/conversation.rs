//! A conversation's record and the views of it: head, summary, attachments, patch.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::basics::{Metadata, Usage, now, validate_metadata};
use super::message::Message;
use super::role::Role;
use super::tree::{ActiveLeaf, Tree, tree_or_linear};
use crate::error::{Error, Result};
use crate::ids::{ContentType, ConversationId, FileId, StorageKey, UserId};
use crate::keys;

/// A conversation's record: everything about it except its messages and attachments.
///
/// JSON fields: `id`, `user_id` (null when none), `title` (null until set or auto-titled),
/// `created_at`, `last_active`, `archived`, `metadata`, `message_count`, `file_count`,
/// `usage` (running totals), `version`, and `tree` (the branch table, left out while the
/// conversation is one line read to its end; see [`Tree`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConversationRecord {
    /// The conversation's id.
    pub id: ConversationId,
    /// The user who owns it, if any.
    pub user_id: Option<UserId>,
    /// Its title: set by the caller, or from the first user message (see [`auto_title`]).
    pub title: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When a message or file was last added.
    pub last_active: DateTime<Utc>,
    /// Archived conversations are left out of listings unless asked for.
    #[serde(default)]
    pub archived: bool,
    /// Free-form metadata.
    #[serde(default)]
    pub metadata: Metadata,
    /// How many messages it holds on all branches; also the `seq` of the newest one.
    #[serde(default)]
    pub message_count: u64,
    /// How many attachments it holds.
    #[serde(default)]
    pub file_count: u64,
    /// Token usage totals of its messages, kept with every append and message update.
    #[serde(default)]
    pub usage: Usage,
    /// Revision: starts at 1 and grows by one with every change, for optimistic
    /// concurrency in backends that need it.
    #[serde(default)]
    pub version: u64,
    /// The branch table, when the conversation is not one line read to its end (`None`
    /// reads as [`Tree::linear`] of `message_count`): see [`tree`](Self::tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<Tree>,
}

impl ConversationRecord {
    /// A new, empty conversation record with a fresh id, created now.
    pub fn new(user_id: Option<UserId>) -> Self {
        ConversationRecord::with_id(ConversationId::new(), user_id, now())
    }

    /// The record of conversation `id`, owned by `user_id`, created at `created_at`: no
    /// title, messages, files or metadata yet, version 1. What a backend starts from when
    /// it reads a stored record back, setting the other fields from what it stored.
    pub fn with_id(id: ConversationId, user_id: Option<UserId>, created_at: DateTime<Utc>) -> Self {
        ConversationRecord {
            id,
            user_id,
            title: None,
            created_at,
            last_active: created_at,
            archived: false,
            metadata: Metadata::new(),
            message_count: 0,
            file_count: 0,
            usage: Usage::default(),
            version: 1,
            tree: None,
        }
    }

    /// The branch table: the stored one, or the linear one of `message_count` messages.
    pub fn tree(&self) -> Cow<'_, Tree> {
        tree_or_linear(&self.tree, self.message_count)
    }

    /// The active leaf's `seq` (`None` when there are no messages).
    pub fn active_leaf(&self) -> Option<u64> {
        match &self.tree {
            Some(t) => t.leaf,
            None => (self.message_count > 0).then_some(self.message_count),
        }
    }

    /// How many messages the active path holds (all of them in a conversation without
    /// branches).
    pub fn path_len(&self) -> u64 {
        match &self.tree {
            Some(t) => t.path_len(t.leaf),
            None => self.message_count,
        }
    }

    /// Checks the title and metadata this record carries (its ids are valid by type).
    pub fn validate(&self) -> Result<()> {
        if let Some(title) = &self.title {
            keys::validate_title(title)?;
        }
        validate_metadata(&self.metadata)
    }

    /// The list-view summary of this record.
    pub fn summary(&self) -> ConversationSummary {
        ConversationSummary {
            id: self.id.clone(),
            user_id: self.user_id.clone(),
            title: self.title.clone(),
            created_at: self.created_at,
            last_active: self.last_active,
            archived: self.archived,
            message_count: self.path_len(),
            file_count: self.file_count,
            usage: self.usage.clone(),
        }
    }

    /// Applies a metadata-only update; returns whether anything changed.
    ///
    /// Bumps `version` when it changes something; never touches `last_active`. A change
    /// of the active leaf ([`ConversationPatch::active`]) naming a `seq` that is not
    /// stored is [`Error::InvalidInput`] with nothing changed.
    pub fn apply_patch(&mut self, patch: &ConversationPatch) -> Result<bool> {
        let leaf = match patch.active {
            Some(active) => Some(self.leaf_after(active)?),
            None => None,
        };
        let mut changed = false;
        if let Some(title) = &patch.title
            && self.title.as_ref() != Some(title)
        {
            self.title = Some(title.clone());
            changed = true;
        }
        if let Some(archived) = patch.archived
            && self.archived != archived
        {
            self.archived = archived;
            changed = true;
        }
        if let Some(metadata) = &patch.metadata
            && &self.metadata != metadata
        {
            self.metadata = metadata.clone();
            changed = true;
        }
        if let Some(leaf) = leaf
            && self.active_leaf() != Some(leaf)
        {
            let mut tree = self.tree().into_owned();
            tree.leaf = Some(leaf);
            self.set_tree(tree);
            changed = true;
        }
        if changed {
            self.version += 1;
        }
        Ok(changed)
    }

    /// The leaf `active` asks for, checked against the stored messages.
    fn leaf_after(&self, active: ActiveLeaf) -> Result<u64> {
        let tree = self.tree();
        let seq = active.seq();
        if !tree.contains(seq) {
            return Err(Error::invalid_input(
                "active leaf",
                format!("conversation {} has no message at seq {seq}", self.id),
            ));
        }
        Ok(match active {
            ActiveLeaf::At(seq) => seq,
            ActiveLeaf::Branch(seq) => tree.newest_leaf_from(seq),
        })
    }

    /// Stores `tree`, or nothing when it is the linear one of `message_count`.
    pub(crate) fn set_tree(&mut self, tree: Tree) {
        self.tree = (!tree.is_linear(self.message_count)).then_some(tree);
    }
}

/// The auto-title of a conversation: its first user message's text as one clean line, cut
/// at 50 grapheme clusters, plus `"..."` when longer; `None` when the text has nothing
/// visible (the next user message is tried instead).
///
/// Line and paragraph breaks (`\n`, U+2028, U+2029), tabs and other control characters
/// become spaces, runs of white space fold into one, and invisible characters
/// (zero-width spaces and joiners outside an emoji, byte-order marks, soft hyphens) are
/// dropped. Cutting by grapheme cluster never splits an emoji sequence or an accent from
/// its letter.
///
/// ```
/// use chatvault_core::backend::auto_title;
///
/// assert_eq!(auto_title("Hello!").as_deref(), Some("Hello!"));
/// assert_eq!(auto_title("line one\u{2028}line two").as_deref(), Some("line one line two"));
/// assert_eq!(auto_title("\u{200B} \n"), None);
/// let family = "👨‍👩‍👧".repeat(60);
/// assert_eq!(auto_title(&family), Some(format!("{}...", "👨‍👩‍👧".repeat(50))));
/// ```
pub fn auto_title(content: &str) -> Option<String> {
    use unicode_segmentation::UnicodeSegmentation;
    const MAX: usize = 50;
    let mut clean = String::with_capacity(content.len().min(1024));
    let mut pending_space = false;
    for g in content.graphemes(true) {
        let mut visible = String::new();
        let mut space = false;
        for c in g.chars() {
            if c.is_whitespace() || c.is_control() {
                space = true;
            } else if !is_invisible(c) || (g.chars().count() > 1 && c == '\u{200D}') {
                visible.push(c);
            }
        }
        if visible.is_empty() || visible.chars().all(is_combining_only) {
            pending_space |= space;
            continue;
        }
        if pending_space && !clean.is_empty() {
            clean.push(' ');
        }
        pending_space = space;
        clean.push_str(&visible);
        // Enough to cut at MAX clusters and know whether more follows.
        if clean.len() > 4 * 1024 {
            break;
        }
    }
    if clean.is_empty() {
        return None;
    }
    let clusters: Vec<&str> = clean.graphemes(true).collect();
    if clusters.len() <= MAX {
        return Some(clean);
    }
    let mut title: String = clusters[..MAX].concat();
    title.truncate(title.trim_end().len());
    title.push_str("...");
    Some(title)
}

/// Characters that render as nothing on their own.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{E0000}'..='\u{E007F}')
}

/// Combining marks that would have nothing to combine with.
fn is_combining_only(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{20D0}'..='\u{20FF}')
}

/// A conversation with all its messages and attachments: what a
/// [`SimpleBackend`](crate::backend::SimpleBackend) saves and loads whole.
///
/// JSON fields: `record`, `messages`, `files`, `deleting`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredConversation {
    /// The record.
    pub record: ConversationRecord,
    /// All messages, in `seq` order.
    #[serde(default)]
    pub messages: Vec<Message>,
    /// All attachments, oldest first.
    #[serde(default)]
    pub files: Vec<FileAttachment>,
    /// Set by [`MessagesBackend::begin_delete`](crate::MessagesBackend::begin_delete): the
    /// conversation is being deleted, and reads as gone.
    #[serde(default)]
    pub deleting: bool,
}

impl StoredConversation {
    /// A conversation with no messages and no files.
    pub fn new(record: ConversationRecord) -> Self {
        StoredConversation {
            record,
            messages: Vec::new(),
            files: Vec::new(),
            deleting: false,
        }
    }
}

/// A conversation's record and its attachments: what
/// [`MessagesBackend::head`](crate::MessagesBackend::head) reads in one call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConversationHead {
    /// The record.
    pub record: ConversationRecord,
    /// Its attachments, oldest first.
    pub files: Vec<FileAttachment>,
}

impl ConversationHead {
    /// The head of the conversation `record` describes, with its attachments.
    pub fn new(record: ConversationRecord, files: Vec<FileAttachment>) -> Self {
        ConversationHead { record, files }
    }
}

/// What a list view needs about a conversation, without its messages.
///
/// JSON fields: `id`, `user_id`, `title`, `created_at`, `last_active`, `archived`,
/// `message_count`, `file_count`, `usage`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConversationSummary {
    /// The conversation's id.
    pub id: ConversationId,
    /// Its owner, if any.
    pub user_id: Option<UserId>,
    /// Its title, if any.
    pub title: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When a message or file was last added.
    pub last_active: DateTime<Utc>,
    /// Whether it is archived.
    pub archived: bool,
    /// How many messages its active path holds ([`ConversationRecord::path_len`]): all of
    /// them in a conversation without branches.
    pub message_count: u64,
    /// How many attachments it holds.
    pub file_count: u64,
    /// Token usage totals.
    #[serde(default)]
    pub usage: Usage,
}

impl ConversationSummary {
    /// The summary of conversation `id`, owned by `user_id`, created at `created_at`: no
    /// title, messages or files, last active when created, not archived. A backend that
    /// stores summaries apart from records sets the other fields from what it stored.
    pub fn new(id: ConversationId, user_id: Option<UserId>, created_at: DateTime<Utc>) -> Self {
        ConversationSummary {
            id,
            user_id,
            title: None,
            created_at,
            last_active: created_at,
            archived: false,
            message_count: 0,
            file_count: 0,
            usage: Usage::default(),
        }
    }
}

/// A file attached to a conversation. The bytes live in the
/// [`FilesBackend`](crate::FilesBackend) under `storage_key`.
///
/// JSON fields: `id`, `filename`, `content_type`, `size`, `sha256` (lowercase hex),
/// `storage_key`, `uploaded_at`, `metadata`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FileAttachment {
    /// The attachment's id.
    pub id: FileId,
    /// The file name as the user gave it (used as the download name).
    pub filename: String,
    /// Its MIME type.
    pub content_type: ContentType,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
    /// Where its bytes are in the files backend (see [`keys::storage_key`]).
    pub storage_key: StorageKey,
    /// When it was attached.
    pub uploaded_at: DateTime<Utc>,
    /// Free-form metadata.
    #[serde(default)]
    pub metadata: Metadata,
}

impl FileAttachment {
    /// An attachment with no metadata. `sha256` is the bytes' digest in lowercase hex;
    /// nothing here checks it against the bytes.
    pub fn new(
        id: FileId,
        filename: impl Into<String>,
        content_type: ContentType,
        size: u64,
        sha256: impl Into<String>,
        storage_key: StorageKey,
        uploaded_at: DateTime<Utc>,
    ) -> Self {
        FileAttachment {
            id,
            filename: filename.into(),
            content_type,
            size,
            sha256: sha256.into(),
            storage_key,
            uploaded_at,
            metadata: Metadata::new(),
        }
    }

    /// This attachment with `metadata`.
    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }
}

/// One entry of a conversation's history in the form LLM APIs take:
/// `{"role": "...", "content": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Who wrote it.
    pub role: Role,
    /// The text.
    pub content: String,
}

impl From<&Message> for HistoryEntry {
    fn from(m: &Message) -> Self {
        HistoryEntry {
            role: m.role.clone(),
            content: m.content(),
        }
    }
}

/// A metadata-only change to a conversation. Fields left `None` are kept.
///
/// Applying a patch never rewrites the conversation's messages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConversationPatch {
    /// A new title.
    pub title: Option<String>,
    /// Archive (`true`) or unarchive (`false`).
    pub archived: Option<bool>,
    /// New metadata, replacing the old.
    pub metadata: Option<Metadata>,
    /// A new active leaf: rewind to a message, or switch to a message's branch.
    pub active: Option<ActiveLeaf>,
}

impl ConversationPatch {
    /// Checks the values the patch would store.
    pub fn validate(&self) -> Result<()> {
        if let Some(title) = &self.title {
            keys::validate_title(title)?;
        }
        if let Some(metadata) = &self.metadata {
            validate_metadata(metadata)?;
        }
        Ok(())
    }
}
