//! The writes: each decides with the core's rules ([`chatvault_core::backend`]) and goes
//! through [`RedisMessages::change`], except create and delete, which make or remove the
//! keys.

use chatvault_core::backend::{
    ConversationId, ConversationPatch, ConversationRecord, Error, FileAttachment, FileId,
    MessageId, MessageUpdate, MessageUpdated, Result, apply_add_file, apply_remove_file, now,
};
use redis::cmd;

use crate::commit::{Change, Decision, Outcome};
use crate::conn::{BACKEND, read_error, write_error};
use crate::expiry::deadline_arg;
use crate::layout::{F_RECORD, F_TOKEN, FORMAT, from_json, score, to_json};
use crate::messages::RedisMessages;
use crate::scripts::{BEGIN_DELETE, CREATE};

impl RedisMessages {
    /// [`MessagesBackend::create`](chatvault_core::MessagesBackend::create): one script
    /// (in a cluster, the listing entries go first: an entry whose conversation does not
    /// exist is skipped by listings; and again after the script, in case a listing removed
    /// them as the entries of a conversation that is gone, in between: a failure then is
    /// logged, as the listings are an index and the next append puts the entries back).
    pub(crate) async fn create_conversation(&self, record: &ConversationRecord) -> Result<()> {
        let keys = &self.inner.keys;
        let cluster = self.inner.conn.is_cluster();
        if cluster {
            self.inner.listings.add_new(record).await?;
        }
        let mut invocation = CREATE.prepare_invoke();
        invocation.key(keys.conversation(&record.id));
        if !cluster {
            for key in self.inner.listings.keys_of(record) {
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
            .arg(deadline_arg(self.inner.expiry.as_ref(), record));
        let mut conn = self.inner.conn.clone();
        let reply: String = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(write_error("create"))?;
        match reply.as_str() {
            "ok" => {
                if cluster && let Err(e) = self.inner.listings.add_new(record).await {
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
    pub(crate) async fn update_one(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        let lookups = [message_id.clone()];
        let outcome = self
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
                    MessageUpdated { record, message },
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

    /// [`MessagesBackend::begin_delete`](chatvault_core::MessagesBackend::begin_delete):
    /// the conversation's markers go first (see
    /// [`Markers::list_deleting`](crate::markers::Markers::list_deleting)),
    /// then one script marks the conversation and returns its attachments.
    pub(crate) async fn mark_deleting(
        &self,
        id: &ConversationId,
    ) -> Result<Option<Vec<FileAttachment>>> {
        let location = self.inner.keys.conversation(id);
        let mut conn = self.inner.conn.clone();
        let [token, record]: [Option<Vec<u8>>; 2] = cmd("HMGET")
            .arg(&location)
            .arg(&[F_TOKEN, F_RECORD])
            .query_async(&mut conn)
            .await
            .map_err(read_error)?;
        if token.is_none() && record.is_none() {
            return Ok(None);
        }
        let user = record.and_then(|json| {
            match from_json::<ConversationRecord>(&location, &json) {
                Ok(record) => record.user_id,
                // Marked all the same, listed under every user's marker set only.
                Err(e) => {
                    tracing::warn!(conversation = %id, error = %e, "marking a conversation whose record cannot be read");
                    None
                }
            }
        });
        let markers = self.inner.markers.add(id, user.as_ref()).await?;
        let mut invocation = BEGIN_DELETE.prepare_invoke();
        invocation
            .key(self.inner.keys.conversation(id))
            .arg(uuid::Uuid::now_v7().simple().to_string());
        let mut conn = self.inner.conn.clone();
        let files: Option<Vec<u8>> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(write_error("begin_delete"))?;
        self.inner.slots.forget(id).await;
        if files.is_none() {
            // Deleted since it was read: its markers are those of a gone conversation.
            self.inner.markers.remove(id, &markers).await;
        }
        files
            .map(|json| from_json(&self.inner.keys.conversation(id), &json))
            .transpose()
    }

    /// [`MessagesBackend::delete`](chatvault_core::MessagesBackend::delete): the listing
    /// entries go first (a conversation left out of listings is what an interrupted delete
    /// may leave, and the retried delete removes it), then one `DEL` of its keys, then its
    /// markers (read before the `DEL`, removed only if unchanged since).
    pub(crate) async fn remove(&self, id: &ConversationId) -> Result<bool> {
        let keys = &self.inner.keys;
        let location = keys.conversation(id);
        let mut conn = self.inner.conn.clone();
        let record: Option<Vec<u8>> = cmd("HGET")
            .arg(&location)
            .arg(F_RECORD)
            .query_async(&mut conn)
            .await
            .map_err(read_error)?;
        let mut user = None;
        if let Some(json) = record {
            // A record that cannot be read still goes: its listing entries are skipped
            // by listings, as entries of deleted conversations are.
            if let Ok(record) = from_json::<ConversationRecord>(&location, &json) {
                user.clone_from(&record.user_id);
                self.inner.listings.remove(id, &record).await?;
            }
        }
        let markers = self.inner.markers.of(id, user.as_ref()).await?;
        let removed: i64 = cmd("DEL")
            .arg(keys.conversation_keys(id).as_slice())
            .query_async(&mut conn)
            .await
            .map_err(write_error("delete"))?;
        self.inner.slots.forget(id).await;
        // Last: until here, a crash leaves the conversation listed by `list_deleting`.
        self.inner.markers.remove(id, &markers).await;
        Ok(removed > 0)
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
