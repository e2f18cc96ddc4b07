//! The data model: conversations, messages, attachments, and the page and range types
//! the backends exchange.
//!
//! Every type here is `serde`-serializable; the JSON field names are part of the stable
//! format and are listed on each type.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{ContentType, ConversationId, FileId, StorageKey, UserId};
use crate::keys;
pub use crate::message::Message;
use crate::message::{MAX_METADATA_BYTES, NewMessage, Usage, check_json_depth};
pub use crate::role::Role;

/// Free-form JSON metadata: a JSON object.
///
/// Integers within `i64`/`u64` and every finite `f64` survive every first-party backend's
/// round trip exactly (serde_json's `float_roundtrip` is enabled).
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// The current time, truncated to microseconds: the precision every backend keeps.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A conversation's record: everything about it except its messages and attachments.
///
/// JSON fields: `id`, `user_id` (null when none), `title` (null until set or auto-titled),
/// `created_at`, `last_active`, `archived`, `metadata`, `message_count`, `file_count`,
/// `usage` (running totals), `version`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// How many messages it holds; also the `seq` of the newest one.
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
}

impl ConversationRecord {
    /// A new, empty conversation record with a fresh id, created now.
    pub fn new(user_id: Option<UserId>) -> Self {
        let now = now();
        ConversationRecord {
            id: ConversationId::new(),
            user_id,
            title: None,
            created_at: now,
            last_active: now,
            archived: false,
            metadata: Metadata::new(),
            message_count: 0,
            file_count: 0,
            usage: Usage::default(),
            version: 1,
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
            message_count: self.message_count,
            file_count: self.file_count,
            usage: self.usage.clone(),
        }
    }

    /// Applies an append to this record and returns the stored messages.
    ///
    /// This is the one definition of what appending means, shared by every backend:
    /// messages get `seq` values `message_count + 1 ..`; `message_count` grows; their
    /// usage is added to the totals; `last_active` becomes `at` (never moving backwards);
    /// the title is set from the first user message with visible text when the
    /// conversation has none yet ([`auto_title`]); `version` grows by one.
    /// Roles are normalised as [`Role::from`] does (`Role::Other("User")` is stored as
    /// [`Role::User`]), so what is stored reads back the same from JSON.
    /// A backend calls it on the record it read, then writes the result atomically.
    pub fn apply_append(&mut self, messages: Vec<NewMessage>, at: DateTime<Utc>) -> Vec<Message> {
        let mut stored = Vec::with_capacity(messages.len());
        for mut message in messages {
            if let Role::Other(name) = &message.role {
                message.role = Role::from(name.as_str());
            }
            if self.title.is_none() && message.role == Role::User {
                self.title = auto_title(&message.content());
            }
            if let Some(usage) = &message.usage {
                self.usage.add(usage);
            }
            self.message_count += 1;
            stored.push(message.into_message(self.message_count));
        }
        if !stored.is_empty() {
            self.last_active = self.last_active.max(at);
            self.version += 1;
        }
        stored
    }

    /// Applies a message update to this record and to `message` (the stored one, at the
    /// revision the caller expected): usage totals move by the difference, `version` grows,
    /// `last_active` moves to `at` (never backwards). Shared by every backend.
    pub fn apply_message_update(
        &mut self,
        message: &mut Message,
        update: &crate::message::MessageUpdate,
        at: DateTime<Utc>,
    ) {
        if let Some(usage) = &update.usage {
            if let Some(old) = &message.usage {
                self.usage.subtract(old);
            }
            self.usage.add(usage);
        }
        message.apply_update(update, at);
        self.last_active = self.last_active.max(at);
        self.version += 1;
    }

    /// Applies a metadata-only update; returns whether anything changed.
    ///
    /// Bumps `version` when it changes something; never touches `last_active`.
    pub fn apply_patch(&mut self, patch: &ConversationPatch) -> bool {
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
        if changed {
            self.version += 1;
        }
        changed
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
/// use chatvault_core::auto_title;
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

/// Checks conversation metadata: at most [`MAX_METADATA_BYTES`](crate::message::MAX_METADATA_BYTES)
/// of JSON, nested at most [`MAX_JSON_DEPTH`](crate::message::MAX_JSON_DEPTH) levels.
pub fn validate_metadata(metadata: &Metadata) -> Result<()> {
    check_json_depth("metadata", metadata, 1)?;
    let size = serde_json::to_vec(metadata)
        .map_err(|e| Error::invalid_input("metadata", e.to_string()))?
        .len();
    if size > MAX_METADATA_BYTES {
        return Err(Error::TooLarge {
            what: "conversation metadata".into(),
            size: size as u64,
            limit: MAX_METADATA_BYTES as u64,
        });
    }
    Ok(())
}

/// A conversation with all its messages and attachments: what a
/// [`SimpleBackend`](crate::SimpleBackend) saves and loads whole.
///
/// JSON fields: `record`, `messages`, `files`, `deleting`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
pub struct ConversationHead {
    /// The record.
    pub record: ConversationRecord,
    /// Its attachments, oldest first.
    pub files: Vec<FileAttachment>,
}

/// Options for [`MessagesBackend::search`](crate::MessagesBackend::search).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchOptions {
    /// At most this many hits per page (1..=[`ListOptions::MAX_LIMIT`]).
    pub limit: usize,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Search archived conversations too.
    pub include_archived: bool,
}

impl SearchOptions {
    /// The first page of 20 hits, archived conversations excluded.
    pub fn new() -> Self {
        SearchOptions {
            limit: 20,
            cursor: None,
            include_archived: false,
        }
    }

    /// Sets the page size.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Continues after a previous page.
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// Checks the limit.
    pub fn validate(&self) -> Result<()> {
        if self.limit == 0 || self.limit > ListOptions::MAX_LIMIT {
            return Err(Error::invalid_input(
                "limit",
                format!("must be 1..={}, got {}", ListOptions::MAX_LIMIT, self.limit),
            ));
        }
        Ok(())
    }
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// One message that matched a search, with its conversation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SearchHit {
    /// The conversation the message belongs to.
    pub conversation: ConversationSummary,
    /// The message.
    pub message: Message,
    /// A short excerpt around the match, when the backend makes one.
    pub snippet: Option<String>,
}

/// What a list view needs about a conversation, without its messages.
///
/// JSON fields: `id`, `user_id`, `title`, `created_at`, `last_active`, `archived`,
/// `message_count`, `file_count`, `usage`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// How many messages it holds.
    pub message_count: u64,
    /// How many attachments it holds.
    pub file_count: u64,
    /// Token usage totals.
    #[serde(default)]
    pub usage: Usage,
}

/// A file attached to a conversation. The bytes live in the
/// [`FilesBackend`](crate::FilesBackend) under `storage_key`.
///
/// JSON fields: `id`, `filename`, `content_type`, `size`, `sha256` (lowercase hex),
/// `storage_key`, `uploaded_at`, `metadata`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Pass this back (in [`ListOptions::cursor`] or [`MessageRange`]) for the next
    /// page; `None` when there is none.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Whether there are more items after this page.
    pub fn has_more(&self) -> bool {
        self.next_cursor.is_some()
    }
}

/// Options for listing conversations.
///
/// ```
/// use chatvault_core::ListOptions;
///
/// let first = ListOptions::new().limit(20).include_archived(true);
/// assert_eq!(first.limit, 20);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListOptions {
    /// At most this many summaries per page (1..=[`ListOptions::MAX_LIMIT`]).
    pub limit: usize,
    /// The `next_cursor` of the previous page; `None` for the first page.
    pub cursor: Option<String>,
    /// Include archived conversations.
    pub include_archived: bool,
}

impl ListOptions {
    /// The default page size.
    pub const DEFAULT_LIMIT: usize = 50;
    /// The largest page size.
    pub const MAX_LIMIT: usize = 1000;

    /// The first page, [`DEFAULT_LIMIT`](Self::DEFAULT_LIMIT) items, archived excluded.
    pub fn new() -> Self {
        ListOptions {
            limit: Self::DEFAULT_LIMIT,
            cursor: None,
            include_archived: false,
        }
    }

    /// Sets the page size.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Continues after a previous page.
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// Includes archived conversations.
    pub fn include_archived(mut self, include: bool) -> Self {
        self.include_archived = include;
        self
    }

    /// Checks the limit and decodes the cursor.
    pub fn validate(&self) -> Result<Option<ListCursor>> {
        if self.limit == 0 || self.limit > Self::MAX_LIMIT {
            return Err(Error::invalid_input(
                "limit",
                format!("must be 1..={}, got {}", Self::MAX_LIMIT, self.limit),
            ));
        }
        self.cursor.as_deref().map(ListCursor::decode).transpose()
    }
}

impl Default for ListOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// The position in a conversation listing, which is ordered by `last_active`
/// descending, then `id` descending.
///
/// Encoded as an opaque string in [`Page::next_cursor`]. A listing continues strictly
/// after the cursor's position, so a conversation created while a client pages through
/// (which sorts first) never shifts the later pages: nothing is skipped or repeated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListCursor {
    /// `last_active` of the last summary returned.
    pub last_active: DateTime<Utc>,
    /// `id` of the last summary returned.
    pub id: ConversationId,
}

impl ListCursor {
    /// The cursor after `summary`.
    pub fn after(summary: &ConversationSummary) -> Self {
        ListCursor {
            last_active: summary.last_active,
            id: summary.id.clone(),
        }
    }

    /// The opaque string form. It keeps `last_active` to the nanosecond, so a cursor
    /// sorts exactly where its conversation does.
    pub fn encode(&self) -> String {
        format!(
            "v1.{}.{}.{}",
            self.last_active.timestamp(),
            self.last_active.timestamp_subsec_nanos(),
            self.id
        )
    }

    /// Parses [`encode`](Self::encode)'s output.
    pub fn decode(s: &str) -> Result<Self> {
        let bad =
            || Error::invalid_input("cursor", format!("not a cursor this library made: {s:?}"));
        let rest = s.strip_prefix("v1.").ok_or_else(bad)?;
        let (secs, rest) = rest.split_once('.').ok_or_else(bad)?;
        let (nanos, id) = rest.split_once('.').ok_or_else(bad)?;
        let secs: i64 = secs.parse().map_err(|_| bad())?;
        let nanos: u32 = nanos.parse().map_err(|_| bad())?;
        if nanos >= 1_000_000_000 {
            return Err(bad());
        }
        let last_active = DateTime::from_timestamp(secs, nanos).ok_or_else(bad)?;
        let id = ConversationId::parse(id).map_err(|_| bad())?;
        Ok(ListCursor { last_active, id })
    }

    /// Whether a conversation at (`last_active`, `id`) is listed strictly after this
    /// cursor, that is, belongs on a later page.
    pub fn comes_after(&self, last_active: DateTime<Utc>, id: &ConversationId) -> bool {
        (last_active, id) < (self.last_active, &self.id)
    }
}

/// Sorts summaries into listing order (newest activity first, then id descending).
pub fn sort_for_listing(items: &mut [ConversationSummary]) {
    items.sort_by(|a, b| (b.last_active, &b.id).cmp(&(a.last_active, &a.id)));
}

/// Which messages of a conversation to read, by `seq`.
///
/// Results are always in ascending `seq` order.
///
/// ```
/// use chatvault_core::MessageRange;
///
/// let everything = MessageRange::all();
/// let next_page = MessageRange::after(200).limit(100); // seq 201..=300
/// let tail = MessageRange::last(10);                    // the newest 10
/// let older = MessageRange::before(51).limit(50);       // seq 1..=50
/// # let _ = (everything, next_page, tail, older);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageRange {
    /// Messages with `seq > after`, oldest first, at most `limit` of them.
    After {
        /// Exclusive lower bound (0 for the start).
        after: u64,
        /// At most this many; `None` for no limit.
        limit: Option<usize>,
    },
    /// The newest `limit` messages with `seq < before` (`None`: the end), returned
    /// in ascending order.
    Before {
        /// Exclusive upper bound; `None` for the end of the conversation.
        before: Option<u64>,
        /// At most this many.
        limit: usize,
    },
}

impl MessageRange {
    /// Every message.
    pub fn all() -> Self {
        MessageRange::After {
            after: 0,
            limit: None,
        }
    }

    /// Messages after `seq` (exclusive).
    pub fn after(seq: u64) -> Self {
        MessageRange::After {
            after: seq,
            limit: None,
        }
    }

    /// Messages before `seq` (exclusive); set how many with [`limit`](Self::limit).
    pub fn before(seq: u64) -> Self {
        MessageRange::Before {
            before: Some(seq),
            limit: usize::MAX,
        }
    }

    /// The newest `n` messages.
    pub fn last(n: usize) -> Self {
        MessageRange::Before {
            before: None,
            limit: n,
        }
    }

    /// Caps how many messages are returned.
    pub fn limit(self, n: usize) -> Self {
        match self {
            MessageRange::After { after, .. } => MessageRange::After {
                after,
                limit: Some(n),
            },
            MessageRange::Before { before, .. } => MessageRange::Before { before, limit: n },
        }
    }

    /// The range continuing in the same direction from a page's `next_cursor`.
    pub fn continue_from(&self, cursor: &str) -> Result<Self> {
        let seq: u64 = cursor.parse().map_err(|_| {
            Error::invalid_input("cursor", format!("not a message cursor: {cursor:?}"))
        })?;
        Ok(match self {
            MessageRange::After { limit, .. } => MessageRange::After {
                after: seq,
                limit: *limit,
            },
            MessageRange::Before { limit, .. } => MessageRange::Before {
                before: Some(seq),
                limit: *limit,
            },
        })
    }

    /// The seq bounds `(first, last)`, inclusive, that this range selects in a
    /// conversation of `count` messages; `None` when it selects nothing. Whether more
    /// messages lie beyond them is [`next_cursor`](Self::next_cursor)'s answer.
    ///
    /// Backends that store messages by `seq` use this to turn a range into a key range.
    pub fn resolve(&self, count: u64) -> Option<(u64, u64)> {
        match *self {
            MessageRange::After { after, limit } => {
                let first = after.checked_add(1)?;
                if first > count {
                    return None;
                }
                let last = match limit {
                    Some(0) => return None,
                    Some(n) => count.min(first.saturating_add(n as u64 - 1)),
                    None => count,
                };
                Some((first, last))
            }
            MessageRange::Before { before, limit } => {
                let last = match before {
                    Some(b) => b.saturating_sub(1).min(count),
                    None => count,
                };
                if last == 0 || limit == 0 {
                    return None;
                }
                let first = last.saturating_sub(limit as u64 - 1).max(1);
                Some((first, last))
            }
        }
    }

    /// The `next_cursor` for a page that returned seq `first..=last` of this range
    /// (before any backend-side truncation): `Some` when more messages lie beyond.
    pub fn next_cursor(&self, first: u64, last: u64, count: u64) -> Option<String> {
        match self {
            MessageRange::After { .. } => (last < count).then(|| last.to_string()),
            MessageRange::Before { .. } => (first > 1).then(|| first.to_string()),
        }
    }

    /// Selects this range from messages held in `seq` order with seq `1..=len`
    /// (the reference implementation used by in-memory backends and the defaults).
    pub fn select(&self, messages: &[Message]) -> Page<Message> {
        let count = messages.len() as u64;
        match self.resolve(count) {
            None => Page {
                items: Vec::new(),
                next_cursor: None,
            },
            Some((first, last)) => Page {
                items: messages[(first - 1) as usize..last as usize].to_vec(),
                next_cursor: self.next_cursor(first, last, count),
            },
        }
    }
}

/// The result of [`MessagesBackend::append_messages`](crate::MessagesBackend::append_messages).
#[derive(Clone, Debug, PartialEq)]
pub struct Appended {
    /// The conversation's record after the append.
    pub record: ConversationRecord,
    /// The messages as stored, with their `seq`.
    pub messages: Vec<Message>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(n: u64) -> Vec<Message> {
        (1..=n)
            .map(|i| NewMessage::new(Role::User, format!("m{i}")).into_message(i))
            .collect()
    }

    fn seqs(p: &Page<Message>) -> Vec<u64> {
        p.items.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn auto_title_counts_grapheme_clusters() {
        assert_eq!(auto_title(""), None);
        let exactly_50 = "a".repeat(50);
        assert_eq!(auto_title(&exactly_50), Some(exactly_50));
        assert_eq!(
            auto_title(&"a".repeat(51)),
            Some(format!("{}...", "a".repeat(50)))
        );
        let emoji = "👋🏽".repeat(40); // 40 clusters of two scalars each
        assert_eq!(auto_title(&emoji), Some(emoji.clone()));
        let more = "👋🏽".repeat(60);
        let t = auto_title(&more).unwrap();
        assert_eq!(t, format!("{}...", "👋🏽".repeat(50)));
        // An accent is never cut from its letter.
        let accents = "e\u{301}".repeat(60);
        assert_eq!(
            auto_title(&accents),
            Some(format!("{}...", "e\u{301}".repeat(50)))
        );
    }

    #[test]
    fn auto_titles_are_one_visible_line() {
        assert_eq!(
            auto_title("hi\0there\nfriend").as_deref(),
            Some("hi there friend")
        );
        assert_eq!(
            auto_title("one\u{2028}two\u{2029}three\r\n\tfour").as_deref(),
            Some("one two three four")
        );
        assert_eq!(
            auto_title("  lots   of\n\n space  ").as_deref(),
            Some("lots of space")
        );
        for blank in [
            "",
            "   ",
            "\u{200B}\u{200B}",
            "\u{FEFF}\n\u{2028}",
            "\u{301}",
            "\u{E0041}",
        ] {
            assert_eq!(auto_title(blank), None, "{blank:?}");
        }
        assert_eq!(
            auto_title("zero\u{200B}width").as_deref(),
            Some("zerowidth")
        );
        // A zero-width joiner inside an emoji sequence is kept.
        assert_eq!(auto_title("👨‍👩‍👧").as_deref(), Some("👨‍👩‍👧"));
    }

    #[test]
    fn append_assigns_seq_and_titles_from_first_user_message() {
        let mut rec = ConversationRecord::new(Some(UserId::parse("u").unwrap()));
        let at = rec.last_active + chrono::Duration::seconds(5);
        let out = rec.apply_append(
            vec![
                NewMessage::new(Role::System, "be nice"),
                NewMessage::new(Role::User, "first question"),
                NewMessage::new(Role::User, "second"),
            ],
            at,
        );
        assert_eq!(out.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(rec.title.as_deref(), Some("first question"));
        assert_eq!(rec.message_count, 3);
        assert_eq!(rec.last_active, at);
        assert_eq!(rec.version, 2);
        // An explicit title is never replaced, and last_active never goes back.
        rec.title = Some("mine".into());
        let earlier = at - chrono::Duration::seconds(60);
        let out = rec.apply_append(vec![NewMessage::new(Role::User, "x")], earlier);
        assert_eq!(out[0].seq, 4);
        assert_eq!(rec.title.as_deref(), Some("mine"));
        assert_eq!(rec.last_active, at);
    }

    #[test]
    fn blank_first_messages_do_not_block_the_title() {
        let mut rec = ConversationRecord::new(None);
        rec.apply_append(vec![NewMessage::new(Role::User, "a\0b")], now());
        rec.validate().expect("an auto-title always validates");
        let mut blank = ConversationRecord::new(None);
        blank.apply_append(vec![NewMessage::new(Role::User, "  \n \u{200B}")], now());
        assert_eq!(blank.title, None, "a blank message gives no title");
        blank.apply_append(vec![NewMessage::new(Role::User, "real question")], now());
        assert_eq!(blank.title.as_deref(), Some("real question"));
    }

    #[test]
    fn usage_totals_follow_appends_and_updates() {
        use crate::message::{MessageUpdate, Usage};
        let mut rec = ConversationRecord::new(None);
        let mut out = rec.apply_append(
            vec![
                NewMessage::new(Role::Assistant, "a").with_usage(Usage::new("m", 10, 5)),
                NewMessage::new(Role::Assistant, "b").with_usage(Usage::new("m", 1, 2)),
            ],
            now(),
        );
        assert_eq!((rec.usage.input_tokens, rec.usage.output_tokens), (11, 7));
        assert_eq!(rec.usage.model, None);
        let update = MessageUpdate {
            usage: Some(Usage::new("m", 20, 30)),
            ..Default::default()
        };
        rec.apply_message_update(&mut out[0], &update, now());
        assert_eq!((rec.usage.input_tokens, rec.usage.output_tokens), (21, 32));
        assert_eq!(out[0].revision, 2);
    }

    #[test]
    fn cursors_keep_sub_microsecond_order() {
        let t = |nanos| DateTime::from_timestamp(1_700_000_000, nanos).unwrap();
        let summary = |id: &str, nanos| ConversationSummary {
            id: ConversationId::parse(id).unwrap(),
            user_id: None,
            title: None,
            created_at: t(nanos),
            last_active: t(nanos),
            archived: false,
            message_count: 0,
            file_count: 0,
            usage: Usage::default(),
        };
        // Same microsecond, different nanoseconds: listed a, then b.
        let all = vec![summary("b", 100), summary("a", 500)];
        let p1 = crate::paginate(all.clone(), &ListOptions::new().limit(1)).unwrap();
        assert_eq!(p1.items[0].id, "a");
        let next = ListOptions::new().limit(1).cursor(p1.next_cursor.unwrap());
        let p2 = crate::paginate(all, &next).unwrap();
        assert_eq!(
            p2.items.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
    }

    #[test]
    fn append_normalises_roles_built_by_hand() {
        let mut rec = ConversationRecord::new(None);
        let mut m = NewMessage::new(Role::Assistant, "hello");
        m.role = Role::Other("User".into());
        let out = rec.apply_append(vec![m, NewMessage::new("Critic", "meh")], now());
        assert_eq!(out[0].role, Role::User);
        assert_eq!(
            rec.title.as_deref(),
            Some("hello"),
            "a user message, so a title"
        );
        assert_eq!(
            out[1].role,
            Role::Other("Critic".into()),
            "unknown roles kept as given"
        );
        let json = serde_json::to_string(&out[0]).unwrap();
        assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), out[0]);
    }

    #[test]
    fn ranges_select_by_seq() {
        let m = msgs(10);
        assert_eq!(
            seqs(&MessageRange::all().select(&m)),
            (1..=10).collect::<Vec<_>>()
        );
        let p = MessageRange::after(3).limit(4).select(&m);
        assert_eq!(seqs(&p), vec![4, 5, 6, 7]);
        assert_eq!(p.next_cursor.as_deref(), Some("7"));
        let p2 = MessageRange::after(3)
            .limit(4)
            .continue_from("7")
            .unwrap()
            .select(&m);
        assert_eq!(seqs(&p2), vec![8, 9, 10]);
        assert_eq!(p2.next_cursor, None);
        let tail = MessageRange::last(3).select(&m);
        assert_eq!(seqs(&tail), vec![8, 9, 10]);
        assert_eq!(tail.next_cursor.as_deref(), Some("8"));
        let older = MessageRange::last(3).continue_from("8").unwrap().select(&m);
        assert_eq!(seqs(&older), vec![5, 6, 7]);
        assert_eq!(seqs(&MessageRange::last(50).select(&m)).len(), 10);
        assert!(MessageRange::last(0).select(&m).items.is_empty());
        assert!(MessageRange::after(10).select(&m).items.is_empty());
        assert!(MessageRange::after(u64::MAX).select(&m).items.is_empty());
        assert!(MessageRange::before(1).select(&m).items.is_empty());
        assert_eq!(seqs(&MessageRange::before(3).select(&m)), vec![1, 2]);
        assert!(MessageRange::all().select(&[]).items.is_empty());
        assert!(MessageRange::last(5).select(&[]).items.is_empty());
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = ListCursor {
            last_active: now(),
            id: ConversationId::new(),
        };
        assert_eq!(ListCursor::decode(&c.encode()).unwrap(), c);
        for bad in [
            "",
            "v1.",
            "v1.x.y",
            "v2.1.abc",
            "v1.1.a/b",
            "v1.99999999999999999999.a",
        ] {
            assert!(
                matches!(ListCursor::decode(bad), Err(Error::InvalidInput { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn role_serde_keeps_unknown_roles() {
        let r: Role = serde_json::from_str("\"Critic\"").unwrap();
        assert_eq!(r, Role::Other("Critic".into()));
        assert_eq!(serde_json::to_string(&r).unwrap(), "\"Critic\"");
        let u: Role = serde_json::from_str("\"USER\"").unwrap();
        assert_eq!(u, Role::User);
    }

    #[test]
    fn metadata_numbers_round_trip_exactly_through_json() {
        let json = r#"{"f":0.1,"tiny":1e-300,"big":18446744073709551615,"neg":-9223372036854775808,"p53":9007199254740993,"pi":3.141592653589793}"#;
        let m: Metadata = serde_json::from_str(json).unwrap();
        let back: Metadata = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(m, back);
        assert_eq!(back["big"].as_u64(), Some(u64::MAX));
        assert_eq!(back["p53"].as_u64(), Some(9_007_199_254_740_993));
        assert_eq!(back["f"].as_f64(), Some(0.1));
    }
}
