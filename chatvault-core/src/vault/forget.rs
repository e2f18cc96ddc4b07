//! Forgetting on schedule and on request: [`Forgetting::purge_expired`] and
//! [`Forgetting::erase_owner`], with what they removed in a [`ForgetReport`].
//!
//! Both remove one conversation at a time: the attachments' bytes while it is still
//! listed, then [`ChatVault::delete_conversation`]'s steps (mark, the bytes of anything
//! attached meanwhile, record and messages). A run stopped before the mark is finished by
//! the next run, which lists the conversation again; see `docs/forgetting.md` for the
//! window after it.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::stream::{self, StreamExt};

use crate::backend::{FilesBackend, MessagesBackend};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{ConversationId, StorageKey, UserId};
use crate::model::{
    ConversationRecord, ConversationSummary, FileAttachment, ListOptions, PageLimit, Retention, now,
};

/// How many conversations one listing page asks for.
const PAGE: usize = 200;

/// How many conversations a purge or an erase removes at a time by default.
const DEFAULT_CONCURRENCY: usize = 32;

/// What a purge or an erase removed (or, in a dry run, would remove).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForgetReport {
    /// The conversations removed, in the order their removals finished.
    pub conversations: Vec<ConversationId>,
    /// Their messages, on every branch.
    pub messages: u64,
    /// Their attachments, whose bytes were deleted from the files backend.
    pub files: u64,
    /// The attachments' size in bytes.
    pub bytes: u64,
    /// Whether this was a dry run (nothing was removed).
    pub dry_run: bool,
    /// Conversations whose record could not be read (an error of kind
    /// [`Corrupt`](crate::ErrorKind::Corrupt): damaged, or sealed with a destroyed key):
    /// left as they are while the run went on. Remove them with
    /// [`ChatVault::delete_conversation`](crate::ChatVault::delete_conversation) over the
    /// backends themselves (under an encryption wrapper: the wrapped ones).
    pub unreadable: Vec<ConversationId>,
    /// Conversations an earlier deletion marked and did not finish (a crash between
    /// [`MessagesBackend::begin_delete`] and [`MessagesBackend::delete`]): hidden until
    /// now, removed by this run with their attachments' bytes (counted in `files` and
    /// `bytes`; their messages, which a marked conversation no longer shows, are not
    /// counted). A dry run lists at most 200.
    pub finished: Vec<ConversationId>,
}

impl fmt::Display for ForgetReport {
    /// `removed 3 conversations, 41 messages, 2 attachments (1024 bytes)`, then
    /// `; 1 unreadable left` when some were, and `; 2 stopped deletions finished`: one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} conversations, {} messages, {} attachments ({} bytes)",
            if self.dry_run {
                "would remove"
            } else {
                "removed"
            },
            self.conversations.len(),
            self.messages,
            self.files,
            self.bytes
        )?;
        if !self.unreadable.is_empty() {
            write!(f, "; {} unreadable left", self.unreadable.len())?;
        }
        if !self.finished.is_empty() {
            write!(f, "; {} stopped deletions finished", self.finished.len())?;
        }
        Ok(())
    }
}

/// Called after each conversation a purge or an erase removes, with the report so far.
pub type ForgetProgress = Arc<dyn Fn(&ForgetReport) + Send + Sync>;

/// Options of a purge or an erase.
#[derive(Clone)]
pub struct ForgetOptions {
    dry_run: bool,
    progress: Option<ForgetProgress>,
    concurrency: usize,
}

impl Default for ForgetOptions {
    fn default() -> Self {
        ForgetOptions {
            dry_run: false,
            progress: None,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

impl fmt::Debug for ForgetOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForgetOptions")
            .field("dry_run", &self.dry_run)
            .field("progress", &self.progress.is_some())
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl ForgetOptions {
    /// Removes for real, without progress reports.
    pub fn new() -> Self {
        ForgetOptions::default()
    }

    /// With `true`, nothing is removed: the report says what would be.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Removes up to `n` conversations at a time (at least 1; default 32): each removal is a
    /// few small writes that wait on the store (a flush, a round trip), which overlap.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Calls `progress` after each conversation, with the report so far.
    pub fn progress(mut self, progress: impl Fn(&ForgetReport) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(progress));
        self
    }
}

/// The vault's forgetting operations: `vault.forget()`.
///
/// ```
/// use chatvault_core::{ChatVault, Expiry, ForgetOptions, Retention, Role};
/// use chatvault_memory::{MemoryFiles, MemoryMessages};
/// use chrono::TimeDelta;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> chatvault_core::Result<()> {
/// let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
/// let user = "user-123".parse()?;
/// let mut conversation = vault.create_conversation(Some(&user)).await?;
/// conversation.add_message(Role::User, "Hello!").await?;
///
/// // A policy under which everything has expired: the conversation reads as gone...
/// let strict = vault.clone().with_retention(Retention::new(Expiry::AfterCreation(TimeDelta::zero())));
/// assert!(strict.get_conversation(conversation.id()).await?.is_none());
/// // ... and the purge removes it.
/// let report = strict.forget().purge_expired(&ForgetOptions::new()).await?;
/// assert_eq!(report.conversations, [conversation.id().clone()]);
/// assert_eq!(report.messages, 1);
///
/// // Erasing an owner removes everything they own.
/// vault.create_conversation(Some(&user)).await?;
/// let report = vault.forget().erase_owner(&user, &ForgetOptions::new()).await?;
/// assert_eq!(report.conversations.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy)]
pub struct Forgetting<'a> {
    messages: &'a dyn MessagesBackend,
    files: &'a dyn FilesBackend,
    retention: &'a Retention,
}

impl fmt::Debug for Forgetting<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forgetting")
            .field("retention", self.retention)
            .finish_non_exhaustive()
    }
}

impl<'a> Forgetting<'a> {
    /// The forgetting operations over these backends and policy
    /// ([`ChatVault::forget`](crate::ChatVault::forget)).
    pub(super) fn new(
        messages: &'a dyn MessagesBackend,
        files: &'a dyn FilesBackend,
        retention: &'a Retention,
    ) -> Self {
        Forgetting {
            messages,
            files,
            retention,
        }
    }

    /// Removes every conversation that has expired under the vault's
    /// [`Retention`](crate::Retention): records, messages on every branch, search entries
    /// and every attachment's bytes.
    ///
    /// Lists every user's conversations, so [`Error::NotSupported`] when the messages
    /// backend cannot ([`MessagesCapabilities::list_all`](crate::backend::MessagesCapabilities::list_all)).
    /// Each one is read again before it is removed, so one whose activity moved its expiry
    /// on since it was listed stays. Stopped part-way (an error, a crash), it leaves no
    /// half-deleted conversation visible and no orphan bytes; run it again to finish.
    pub async fn purge_expired(&self, options: &ForgetOptions) -> Result<ForgetReport> {
        if !self.messages.capabilities().list_all {
            return Err(Error::not_supported(
                "this messages backend",
                "listing every user's conversations (to purge the expired ones)",
            ));
        }
        let mut report = report(options);
        self.finish_marked(None, options, &mut report).await?;
        if self.retention.keeps_everything() {
            return Ok(report);
        }
        let mut seen = HashSet::new();
        loop {
            let at = now();
            let expired = self
                .list(None, &mut seen, |s| self.retention.summary_expired(s, at))
                .await?;
            if expired.is_empty() {
                return Ok(report);
            }
            self.remove_all(expired, options, &mut report, |r| {
                self.retention.is_expired(r, now())
            })
            .await?;
        }
    }

    /// Removes every conversation `user` owns, archived ones included: records, messages
    /// on every branch, search entries and every attachment's bytes. Lists the owner's
    /// conversations again once it has removed what it found, so conversations created
    /// while it ran are removed too; stopped part-way, it leaves no half-deleted
    /// conversation visible and no orphan bytes, and running it again finishes the job.
    pub async fn erase_owner(
        &self,
        user: &UserId,
        options: &ForgetOptions,
    ) -> Result<ForgetReport> {
        let mut report = report(options);
        self.finish_marked(Some(user), options, &mut report).await?;
        let mut seen = HashSet::new();
        loop {
            let owned = self.list(Some(user), &mut seen, |_| true).await?;
            if owned.is_empty() {
                return Ok(report);
            }
            self.remove_all(owned, options, &mut report, |r| {
                r.user_id.as_ref() == Some(user)
            })
            .await?;
        }
    }

    /// Finishes the deletions of `user`'s conversations (every user's with `None`) that an
    /// earlier run or [`ChatVault::delete_conversation`](crate::ChatVault::delete_conversation)
    /// marked and did not finish (in a dry run: lists up to a page of them).
    async fn finish_marked(
        &self,
        user: Option<&UserId>,
        options: &ForgetOptions,
        report: &mut ForgetReport,
    ) -> Result<()> {
        let limit = PageLimit::new(PAGE)?;
        let mut done = HashSet::new();
        loop {
            let marked = self.messages.list_deleting(user, limit).await?;
            if options.dry_run {
                report.finished.extend(marked);
                return Ok(());
            }
            if marked.is_empty() {
                return Ok(());
            }
            if marked.iter().all(|id| done.contains(id)) {
                return Err(Error::backend(
                    "messages",
                    "list_deleting still lists conversations whose delete has answered",
                ));
            }
            for id in marked {
                // `None`: another deletion finished it since the listing.
                let finished = delete_with_files(self.messages, self.files, &id, &[]).await?;
                let first = done.insert(id.clone());
                if let Some(files) = finished
                    && first
                {
                    report.files += files.len() as u64;
                    report.bytes += files.iter().map(|f| f.size).sum::<u64>();
                    report.finished.push(id);
                }
                if let Some(progress) = &options.progress {
                    progress(report);
                }
            }
        }
    }

    /// Every conversation of `user` (every user's with `None`), archived included, that
    /// `wanted` picks and that is not in `seen` yet (which it is added to).
    async fn list(
        &self,
        user: Option<&UserId>,
        seen: &mut HashSet<ConversationId>,
        wanted: impl Fn(&ConversationSummary) -> bool,
    ) -> Result<Vec<ConversationId>> {
        let mut options = ListOptions::new().limit(PAGE)?.include_archived(true);
        let mut found = Vec::new();
        loop {
            let page = self.messages.list_conversations(user, &options).await?;
            for summary in &page.items {
                if wanted(summary) && seen.insert(summary.id.clone()) {
                    found.push(summary.id.clone());
                }
            }
            match page.next_cursor {
                Some(cursor) => options = options.cursor(&cursor)?,
                None => return Ok(found),
            }
        }
    }

    /// Removes the conversations `ids` for which `still` holds when each is read again,
    /// up to [`ForgetOptions::concurrency`] at a time, adding each to `report` as it is
    /// done. After an error no new removal starts; the ones under way finish, then the
    /// first error is returned.
    async fn remove_all(
        &self,
        ids: Vec<ConversationId>,
        options: &ForgetOptions,
        report: &mut ForgetReport,
        still: impl Fn(&ConversationRecord) -> bool + Sync,
    ) -> Result<()> {
        let failed = AtomicBool::new(false);
        let mut removals = stream::iter(ids)
            .take_while(|_| std::future::ready(!failed.load(Ordering::Relaxed)))
            .map(|id| self.remove(id, options.dry_run, &still))
            .buffer_unordered(options.concurrency);
        let mut first_error = None;
        while let Some(done) = removals.next().await {
            match done {
                Ok(Done::Removed(removed)) => {
                    removed.add_to(report);
                    if let Some(progress) = &options.progress {
                        progress(report);
                    }
                }
                Ok(Done::Unreadable(id)) => report.unreadable.push(id),
                Ok(Done::Left) => {}
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Removes conversation `id` if it still exists and `still` holds for its record
    /// (in a dry run: only reads it). A record that cannot be read (`Corrupt`) is left
    /// and said so, so that one such conversation does not stop the run.
    async fn remove(
        &self,
        id: ConversationId,
        dry_run: bool,
        still: &impl Fn(&ConversationRecord) -> bool,
    ) -> Result<Done> {
        let head = match self.messages.head(&id).await {
            Ok(Some(head)) => head,
            Ok(None) => return Ok(Done::Left),
            Err(e) if e.kind() == ErrorKind::Corrupt => {
                tracing::warn!(conversation = %id, error = %e, "left unreadable conversation");
                return Ok(Done::Unreadable(id));
            }
            Err(e) => return Err(e),
        };
        if !still(&head.record) {
            return Ok(Done::Left);
        }
        let files = if dry_run {
            head.files
        } else {
            // The bytes first, while the conversation is still listed: stopped here, the
            // next run finds it and finishes. Then the mark, the bytes of any attachment
            // added meanwhile, and the record.
            for file in &head.files {
                self.files.delete(&file.storage_key).await?;
            }
            match delete_with_files(self.messages, self.files, &id, &head.files).await? {
                Some(files) => files,
                None => return Ok(Done::Left),
            }
        };
        Ok(Done::Removed(Removed {
            messages: head.record.message_count,
            files,
            id,
        }))
    }
}

/// What became of one conversation a purge or an erase looked at.
enum Done {
    /// Removed (in a dry run: would be).
    Removed(Removed),
    /// Gone already, or no longer qualifying.
    Left,
    /// Its record could not be read.
    Unreadable(ConversationId),
}

/// One conversation a purge or an erase removed.
struct Removed {
    id: ConversationId,
    messages: u64,
    files: Vec<FileAttachment>,
}

impl Removed {
    fn add_to(self, report: &mut ForgetReport) {
        report.conversations.push(self.id);
        report.messages += self.messages;
        report.files += self.files.len() as u64;
        report.bytes += self.files.iter().map(|f| f.size).sum::<u64>();
    }
}

fn report(options: &ForgetOptions) -> ForgetReport {
    ForgetReport {
        dry_run: options.dry_run,
        ..ForgetReport::default()
    }
}

/// Deletes conversation `id` and everything in it, returning its attachments (`None`:
/// there was no such conversation); see
/// [`ChatVault::delete_conversation`](crate::ChatVault::delete_conversation) for the order.
/// The bytes of the attachments in `deleted` are not deleted again.
pub(super) async fn delete_with_files(
    messages: &dyn MessagesBackend,
    files: &dyn FilesBackend,
    id: &ConversationId,
    deleted: &[FileAttachment],
) -> Result<Option<Vec<FileAttachment>>> {
    let Some(attached) = messages.begin_delete(id).await? else {
        return Ok(None);
    };
    let done: HashSet<&StorageKey> = deleted.iter().map(|f| &f.storage_key).collect();
    for file in attached.iter().filter(|f| !done.contains(&f.storage_key)) {
        files.delete(&file.storage_key).await?;
    }
    messages.delete(id).await?;
    Ok(Some(attached))
}
