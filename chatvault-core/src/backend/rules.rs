//! The rules every backend applies, in one place so that every backend's semantics are
//! identical: the record changes of an append, a message update and an attachment, the
//! idempotent-append rule, the revision conflict, and in-memory listing.

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::ids::UserId;
use crate::model::{
    ConversationRecord, ConversationSummary, FileAttachment, ListOptions, Message, NewMessage,
    Page, Parent, Role, Tree, auto_title, sort_for_listing,
};

/// Applies the record changes of
/// [`MessagesBackend::add_file`](crate::MessagesBackend::add_file): checks that the file id
/// is new among `existing`, then bumps `file_count`, `version` and `last_active`.
pub fn apply_add_file(
    record: &mut ConversationRecord,
    existing: &[FileAttachment],
    file: &FileAttachment,
) -> Result<()> {
    if existing.iter().any(|f| f.id == file.id) {
        return Err(Error::AlreadyExists {
            kind: "file",
            id: file.id.to_string(),
        });
    }
    record.file_count += 1;
    record.version += 1;
    record.last_active = record.last_active.max(file.uploaded_at);
    Ok(())
}

/// Applies the record changes of
/// [`MessagesBackend::remove_file`](crate::MessagesBackend::remove_file).
pub fn apply_remove_file(record: &mut ConversationRecord) {
    record.file_count = record.file_count.saturating_sub(1);
    record.version += 1;
}

/// Pages summaries held in memory: filters archived ones (unless asked), sorts them into
/// listing order, continues after the cursor, and cuts at the limit.
///
/// The reference listing semantics, used by in-memory backends and the simple adapter.
pub fn paginate(
    mut summaries: Vec<ConversationSummary>,
    options: &ListOptions,
) -> Result<Page<ConversationSummary>> {
    summaries.retain(|s| options.include_archived || !s.archived);
    if let Some(cursor) = &options.cursor {
        summaries.retain(|s| cursor.comes_after(s.last_active, &s.id));
    }
    sort_for_listing(&mut summaries);
    Ok(Page::of_listing(summaries, options.limit))
}

/// Decides what an append does with messages whose ids may already be stored: the one
/// rule of idempotent appends, shared by every backend.
///
/// `stored[i]` is the message already stored under `new[i].id` in this conversation, if
/// any. Returns `Ok(None)` when none is stored (append them), `Ok(Some(messages))` when all
/// are, unchanged (a retry: answer with the stored messages, store nothing), and
/// [`Error::AlreadyExists`] when some ids are taken by different content or only part of
/// the batch is stored. Duplicate ids within `new` are [`Error::InvalidInput`].
pub fn check_replay(
    new: &[NewMessage],
    stored: Vec<Option<Message>>,
) -> Result<Option<Vec<Message>>> {
    check_unique_ids(new)?;
    if stored.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(new.len());
    for (n, s) in new.iter().zip(stored) {
        match s {
            Some(s) if n.is_stored_as(&s) => out.push(s),
            _ => {
                return Err(Error::AlreadyExists {
                    kind: "message",
                    id: n.id.to_string(),
                });
            }
        }
    }
    Ok(Some(out))
}

/// Fails with [`Error::InvalidInput`] when two of `messages` share an id.
///
/// The vault applies it before a backend sees a batch, so that the answer comes before
/// any I/O. Backends apply it again (through [`check_replay`]) on purpose: the trait is
/// public and some callers reach a backend directly (the conformance suite,
/// `chatvault-archive`'s restore), and a batch holding one id twice would store two
/// messages under one id, which no later read could tell apart.
pub fn check_unique_ids(messages: &[NewMessage]) -> Result<()> {
    let twice = |m: &NewMessage| {
        Error::invalid_input(
            "message id",
            format!("{} appears twice in one append", m.id),
        )
    };
    // A small batch (the usual one message) is compared pairwise: no set to build.
    if messages.len() <= 16 {
        for (i, m) in messages.iter().enumerate() {
            if messages[..i].iter().any(|earlier| earlier.id == m.id) {
                return Err(twice(m));
            }
        }
        return Ok(());
    }
    let mut seen = std::collections::HashSet::with_capacity(messages.len());
    for m in messages {
        if !seen.insert(&m.id) {
            return Err(twice(m));
        }
    }
    Ok(())
}

impl ConversationRecord {
    /// Applies an append to this record and returns the stored messages.
    ///
    /// This is the one definition of what appending means, shared by every backend:
    /// messages get `seq` values `message_count + 1 ..`; `message_count` grows; each
    /// message follows what its [`NewMessage::parent`] names ([`Parent::Active`]: the
    /// message before it in the batch, or the active leaf for the first) and becomes the
    /// active leaf, the branch table growing by a run where it does not follow the newest
    /// message ([`Tree`](crate::Tree)); their usage is added to the totals; `last_active` becomes `at`
    /// (never moving backwards); the title is set from the first user message with visible
    /// text when the conversation has none yet ([`auto_title`]); `version` grows by one.
    /// Roles are normalised as [`Role::from`] does (`Role::Other("User")` is stored as
    /// [`Role::User`]), so what is stored reads back the same from JSON.
    /// A backend calls it on the record it read, then writes the result atomically.
    ///
    /// [`Error::InvalidInput`] (the record unchanged) when a [`Parent::Seq`] names a
    /// message that is not stored.
    pub fn apply_append(
        &mut self,
        messages: Vec<NewMessage>,
        at: DateTime<Utc>,
    ) -> Result<Vec<Message>> {
        // Every parent is checked before anything changes, so a failure leaves the record
        // unchanged; the second pass resolves them again (no list of parents to allocate).
        let tree = self.appended_tree(&messages)?;
        let mut leaf = self.active_leaf();
        let mut stored = Vec::with_capacity(messages.len());
        for mut message in messages {
            let parent = match message.parent {
                Parent::Active => leaf,
                Parent::Root => None,
                Parent::Seq(seq) => Some(seq),
            };
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
            leaf = Some(self.message_count);
            stored.push(message.into_message(self.message_count, parent));
        }
        if !stored.is_empty() {
            if let Some(tree) = tree {
                self.set_tree(tree);
            }
            self.last_active = self.last_active.max(at);
            self.version += 1;
        }
        Ok(stored)
    }

    /// The branch table after appending `messages` (`None`: the conversation stays one
    /// line and keeps no table), checking that every [`Parent::Seq`] names a stored
    /// message (or one earlier in the batch).
    fn appended_tree(&self, messages: &[NewMessage]) -> Result<Option<Tree>> {
        // A conversation in one line that stays one line keeps no table (no allocation).
        let mut tree = self.tree.clone();
        let mut leaf = self.active_leaf();
        let mut count = self.message_count;
        for m in messages {
            let parent = match m.parent {
                Parent::Active => leaf,
                Parent::Root => None,
                Parent::Seq(seq) if seq >= 1 && seq <= count => Some(seq),
                Parent::Seq(seq) => {
                    return Err(Error::invalid_input(
                        "parent",
                        format!(
                            "message {} follows seq {seq}, which conversation {} does not hold",
                            m.id, self.id
                        ),
                    ));
                }
            };
            let follows_newest = parent == (count > 0).then_some(count);
            if tree.is_some() || !follows_newest {
                tree.get_or_insert_with(|| Tree::linear(count))
                    .push(count + 1, parent);
            }
            count += 1;
            leaf = Some(count);
        }
        Ok(tree)
    }

    /// Applies a message update to this record and to `message` (the stored one, at the
    /// revision the caller expected): usage totals move by the difference, `version` grows,
    /// `last_active` moves to `at` (never backwards). Shared by every backend.
    pub fn apply_message_update(
        &mut self,
        message: &mut Message,
        update: &crate::model::MessageUpdate,
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
}

/// The owner check of [`MessagesBackend::append_messages_as`](super::MessagesBackend::append_messages_as):
/// with `owner` given, `record` must belong to that user; otherwise
/// [`Error::NotFound`] for the conversation, as if it did not exist.
pub fn check_owner(record: &ConversationRecord, owner: Option<&UserId>) -> Result<()> {
    match owner {
        Some(owner) if record.user_id.as_ref() != Some(owner) => {
            Err(Error::conversation_not_found(record.id.as_str()))
        }
        _ => Ok(()),
    }
}
