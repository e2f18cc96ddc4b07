//! What an import of another tool's export did, and what it could not carry exactly.

use std::collections::BTreeMap;
use std::fmt;

/// The most attachment pointers [`Notes::missing_files`] lists (the count goes on).
pub const MAX_LISTED_MISSING: usize = 50;

/// What could not be carried exactly: each kind of approximation with how often it
/// happened, and the pointers of attachments whose bytes the export does not hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Notes {
    counts: BTreeMap<String, u64>,
    missing: Vec<String>,
    missing_count: u64,
}

impl Notes {
    /// Counts one more of `what`.
    pub(crate) fn add(&mut self, what: impl Into<String>) {
        *self.counts.entry(what.into()).or_default() += 1;
    }

    /// Counts a content item kept as provider data.
    pub(crate) fn provider(&mut self, kind: &str) {
        self.add(format!("kept as provider data: {kind}"));
    }

    /// Records an attachment without bytes (a file part pointing at the source's
    /// pointer).
    pub(crate) fn missing(&mut self, pointer: &str) {
        self.missing_count += 1;
        if self.missing.len() < MAX_LISTED_MISSING {
            self.missing.push(pointer.to_owned());
        }
    }

    /// Adds `other`'s counts to these.
    pub(crate) fn merge(&mut self, other: Notes) {
        for (what, n) in other.counts {
            *self.counts.entry(what).or_default() += n;
        }
        self.missing_count += other.missing_count;
        for p in other.missing {
            if self.missing.len() < MAX_LISTED_MISSING {
                self.missing.push(p);
            }
        }
    }

    /// Each kind of approximation, with how many times it happened, by name.
    pub fn counts(&self) -> impl Iterator<Item = (&str, u64)> {
        self.counts.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// How many times `what` happened (0 when never).
    pub fn count(&self, what: &str) -> u64 {
        self.counts.get(what).copied().unwrap_or(0)
    }

    /// How many attachments had no bytes in the export.
    pub fn missing_count(&self) -> u64 {
        self.missing_count
    }

    /// The pointers of the first [`MAX_LISTED_MISSING`] attachments without bytes.
    pub fn missing_files(&self) -> &[String] {
        &self.missing
    }

    /// Whether everything was carried exactly.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.missing_count == 0
    }
}

/// A conversation that was not imported (nothing of it was written), and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationFailure {
    /// Its position in the export, from 1.
    pub index: u64,
    /// Its id in the source, when it has one.
    pub conversation: Option<String>,
    /// Its title in the source, when it has one.
    pub title: Option<String>,
    /// The field that is wrong, as a path inside the conversation.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for ConversationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.conversation {
            Some(id) => write!(f, "conversation {id}")?,
            None => write!(f, "conversation #{}", self.index)?,
        }
        if let Some(title) = &self.title {
            write!(f, " ({title:?})")?;
        }
        write!(f, ": {}: {}", self.field, self.reason)
    }
}

/// What an import of another tool's export did (or, with `dry_run`, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportReport {
    /// Conversations read from the export (imported, present or failed).
    pub conversations: u64,
    /// Conversations created.
    pub conversations_created: u64,
    /// Conversations a previous import had stored (completed where the export holds
    /// more).
    pub conversations_present: u64,
    /// Messages appended.
    pub messages_added: u64,
    /// Messages a previous import had stored.
    pub messages_present: u64,
    /// Attachments added (their bytes uploaded).
    pub files_added: u64,
    /// Attachments a previous import had stored.
    pub files_present: u64,
    /// Attachment bytes uploaded.
    pub bytes_uploaded: u64,
    /// Active leaves moved to the source's.
    pub leaves_set: u64,
    /// The conversations not imported, each with the field at fault.
    pub failed: Vec<ConversationFailure>,
    /// What could not be carried exactly.
    pub notes: Notes,
}

impl ImportReport {
    /// Adds `other`'s counts, failures and notes to these.
    pub(crate) fn absorb(&mut self, other: ImportReport) {
        self.conversations += other.conversations;
        self.conversations_created += other.conversations_created;
        self.conversations_present += other.conversations_present;
        self.messages_added += other.messages_added;
        self.messages_present += other.messages_present;
        self.files_added += other.files_added;
        self.files_present += other.files_present;
        self.bytes_uploaded += other.bytes_uploaded;
        self.leaves_set += other.leaves_set;
        self.failed.extend(other.failed);
        self.notes.merge(other.notes);
    }

    /// Whether nothing was (or would be) added.
    pub fn added_nothing(&self) -> bool {
        self.conversations_created == 0
            && self.messages_added == 0
            && self.files_added == 0
            && self.leaves_set == 0
    }
}
