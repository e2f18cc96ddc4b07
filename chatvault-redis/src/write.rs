//! The writes of a conversation's record, messages and attachments: create makes the
//! keys, and each other write decides with the core's rules ([`chatvault_core::backend`])
//! and goes through [`Committer::change`]. Appends are written by
//! [`Appender`](crate::batch::Appender), deletes by [`Deleter`](crate::delete::Deleter).

use chatvault_core::backend::{
    ConversationId, ConversationPatch, ConversationRecord, Error, FileAttachment, FileId,
    MessageId, MessageUpdate, MessageUpdated, Result, apply_add_file, apply_remove_file, now,
};

use crate::commit::{Change, Committer, Decision, Outcome};
use crate::conn::{BACKEND, Conn, write_error};
use crate::expiry::{KeyExpiry, deadline_arg};
use crate::layout::{FORMAT, Keys, score, to_json};
use crate::listing::Listings;
use crate::scripts::CREATE;

/// Creates conversations and changes their records, messages and attachments: the
/// connection and key layout, the key expiry and the listings a create writes, and the
/// committer every other write goes through.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    conn: Conn,
    keys: Keys,
    expiry: Option<KeyExpiry>,
    listings: Listings,
    committer: Committer,
}

impl Writer {
    /// A writer of the conversations under `keys`, on `conn`, giving keys the deadline of
    /// `expiry`, listing new conversations in `listings` and writing the rest through
    /// `committer`.
    pub(crate) fn new(
        conn: Conn,
        keys: Keys,
        expiry: Option<KeyExpiry>,
        listings: Listings,
        committer: Committer,
    ) -> Self {
        Writer {
            conn,
            keys,
            expiry,
            listings,
            committer,
        }
    }

    /// [`MessagesBackend::create`](chatvault_core::MessagesBackend::create): one script
    /// (in a cluster, the listing entries go first: an entry whose conversation does not
    /// exist is skipped by listings; and again after the script, in case a listing removed
    /// them as the entries of a conversation that is gone, in between: a failure then is
    /// logged, as the listings are an index and the next append puts the entries back).
    pub(crate) async fn create(&self, record: &ConversationRecord) -> Result<()> {
        let keys = &self.keys;
        let cluster = self.conn.is_cluster();
        if cluster {
            self.listings.add_new(record).await?;
        }
        let mut invocation = CREATE.prepare_invoke();
        invocation.key(keys.conversation(&record.id));
        if !cluster {
            for key in self.listings.keys_of(record) {
                invocation.key(key);
            }
        }
        let token = uuid::Uuid::now_v7().simple().to_string();
        invocation
            .arg(token)
            .arg(to_json(record)?)
            .arg(FORMAT)
            .arg(score(record.last_active))
            .arg(record.id.as_str())
            .arg(deadline_arg(self.expiry.as_ref(), record));
        let mut conn = self.conn.clone();
        let reply: String = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(write_error("create"))?;
        match reply.as_str() {
            "ok" => {
                if cluster && let Err(e) = self.listings.add_new(record).await {
                    // Created: the entries are there unless a listing removed them in
                    // between, and the next append puts them back.
                    tracing::warn!(conversation = %record.id, error = %e, "listing entries not checked after create");
                }
                Ok(())
            }
            _ => Err(Error::AlreadyExists {
                kind: "conversation",
                id: record.id.to_string(),
            }),
        }
    }

    /// [`MessagesBackend::update_message`](chatvault_core::MessagesBackend::update_message):
    /// [`ConversationRecord::apply_message_update`] decides on the message read with the
    /// record.
    pub(crate) async fn update_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        let lookups = [message_id.clone()];
        let outcome = self
            .committer
            .change(id, &lookups, |seen| {
                let Some(Some(stored)) = seen.found.first() else {
                    return Err(Error::message_not_found(message_id.as_str()));
                };
                let mut message = stored.clone();
                message.expect_revision(expected_revision)?;
                let mut record = seen.known.record.clone();
                record.apply_message_update(&mut message, update, now());
                let change = Change {
                    record: record.clone(),
                    files: None,
                    messages: vec![message.clone()],
                    new_messages: false,
                };
                Ok(Decision::Write(
                    Box::new(change),
                    MessageUpdated::new(record, message),
                ))
            })
            .await?;
        done(outcome, id)
    }

    /// [`MessagesBackend::update`](chatvault_core::MessagesBackend::update):
    /// [`ConversationRecord::apply_patch`] decides.
    pub(crate) async fn patch(
        &self,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> Result<ConversationRecord> {
        let outcome = self
            .committer
            .change(id, &[], |seen| {
                let mut record = seen.known.record.clone();
                if !record.apply_patch(patch)? {
                    return Ok(Decision::Answer(record));
                }
                Ok(Decision::Write(record_change(&record, None), record))
            })
            .await?;
        done(outcome, id)
    }

    /// [`MessagesBackend::add_file`](chatvault_core::MessagesBackend::add_file):
    /// [`apply_add_file`] decides.
    pub(crate) async fn attach(
        &self,
        id: &ConversationId,
        file: &FileAttachment,
    ) -> Result<ConversationRecord> {
        let outcome = self
            .committer
            .change(id, &[], |seen| {
                let mut record = seen.known.record.clone();
                let mut files = seen.known.files.clone();
                apply_add_file(&mut record, &files, file)?;
                files.push(file.clone());
                Ok(Decision::Write(record_change(&record, Some(files)), record))
            })
            .await?;
        done(outcome, id)
    }

    /// [`MessagesBackend::remove_file`](chatvault_core::MessagesBackend::remove_file):
    /// [`apply_remove_file`] decides.
    pub(crate) async fn detach(
        &self,
        id: &ConversationId,
        file_id: &FileId,
    ) -> Result<Option<ConversationRecord>> {
        let outcome = self
            .committer
            .change(id, &[], |seen| {
                let mut files = seen.known.files.clone();
                let Some(at) = files.iter().position(|f| &f.id == file_id) else {
                    return Ok(Decision::Answer(None));
                };
                files.remove(at);
                let mut record = seen.known.record.clone();
                apply_remove_file(&mut record);
                Ok(Decision::Write(
                    record_change(&record, Some(files)),
                    Some(record),
                ))
            })
            .await?;
        done(outcome, id)
    }
}

/// A change of the record (and maybe the attachments) alone.
fn record_change(record: &ConversationRecord, files: Option<Vec<FileAttachment>>) -> Box<Change> {
    Box::new(Change {
        record: record.clone(),
        files,
        messages: Vec::new(),
        new_messages: false,
    })
}

/// The answer of a write that stores no new message (so is never a replay).
fn done<T>(outcome: Outcome<T>, id: &ConversationId) -> Result<T> {
    match outcome {
        Outcome::Done(answer) => Ok(answer),
        Outcome::Replayed(..) => Err(Error::corrupt(
            BACKEND,
            id.as_str(),
            "a write without new messages was answered as a replay",
        )),
    }
}
