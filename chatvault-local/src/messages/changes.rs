//! Changes to one conversation, each committed as records at the end of its log:
//! appends (through the group commit), message updates, record and attachment changes,
//! the mark of a delete; and reading a range of its messages.

use std::collections::HashMap;
use std::io;

use chatvault_core::backend::{
    Appended, ConversationHead, ConversationId, ConversationPatch, ConversationRecord, Error,
    FileAttachment, FileId, Message, MessageId, MessageRange, MessageUpdate, MessageUpdated,
    NewMessage, Page, Result, UserId, apply_add_file, apply_remove_file, check_owner, check_replay,
    now,
};

use super::conversation::lock::Mode;
use super::conversation::{MAX_PAGE, Pending, check_headroom};
use super::deleting::Markers;
use super::format::{HEADER, dir_name};
use super::rewrite;
use super::store::Store;
use crate::error::BACKEND;
use crate::listing::Claim;
use crate::log::{encode_edit, encode_frame, encode_state};

/// Changes to one conversation of a [`Store`], each committed at the end of its log, and
/// reads of its messages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Changes<'s> {
    /// The store they work on.
    store: &'s Store,
}

impl<'s> Changes<'s> {
    /// The changes to the conversations of `store`.
    pub(super) fn new(store: &'s Store) -> Self {
        Changes { store }
    }

    /// Appends `messages` to conversation `id`, in one commit with the appends waiting
    /// beside it (see [`append_batch`](Self::append_batch)).
    pub(crate) fn append(
        &self,
        owner: Option<&UserId>,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        if messages.is_empty() {
            let (_lock, view) = self.store.require(id, Mode::Shared)?;
            check_owner(&view.record, owner)?;
            return Ok(Appended::new(view.record, Vec::new()));
        }
        self.store
            .appends
            .submit(id, (owner.cloned(), messages), |batch| {
                self.append_batch(id, batch)
            })
    }

    /// Commits a batch of appends to one conversation with one flush: one record per
    /// append (each stored whole or not at all), in arrival order. An append whose
    /// message ids are already stored (earlier, or earlier in the batch) with the same
    /// content is answered with the stored messages and stores nothing.
    fn append_batch(
        &self,
        id: &ConversationId,
        batch: Vec<(Option<UserId>, Vec<NewMessage>)>,
    ) -> Vec<Result<Appended>> {
        let n = batch.len();
        let (_lock, mut view) = match self.store.require(id, Mode::Exclusive) {
            Ok(v) => v,
            Err(e) => return echo(e, n),
        };
        let header = view.dir().join(HEADER);
        let before = view.record.clone();
        let end_before = view.valid_end();
        let at = now();
        let mut results: Vec<Result<Appended>> = Vec::with_capacity(n);
        let mut pending = Vec::new();
        let mut new_messages: Vec<Message> = Vec::new();
        let mut in_batch: HashMap<MessageId, Message> = HashMap::new();
        for (owner, messages) in batch {
            let stored = (|| {
                check_owner(&view.record, owner.as_ref())?;
                let ids: Vec<&MessageId> = messages.iter().map(|m| &m.id).collect();
                let from_log = self.store.ids.stored(id, &view, &ids)?;
                let stored = ids
                    .iter()
                    .zip(from_log)
                    .map(|(m, logged)| in_batch.get(*m).cloned().or(logged))
                    .collect();
                check_replay(&messages, stored)
            })();
            match stored {
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
                Ok(Some(replayed)) => {
                    results.push(Ok(Appended::new(view.record.clone(), replayed)));
                    continue;
                }
                Ok(None) => {}
            }
            let record_before = view.record.clone();
            let outcome =
                check_headroom(&view.record, messages.len() as u64, &header).and_then(|()| {
                    let stored = view.record.apply_append(messages, at)?;
                    let frame = encode_frame(at, &stored)?;
                    Ok((frame, stored))
                });
            match outcome {
                Ok((frame, stored)) => {
                    for m in &stored {
                        in_batch.insert(m.id.clone(), m.clone());
                    }
                    new_messages.extend(stored.iter().cloned());
                    results.push(Ok(Appended::new(view.record.clone(), stored.clone())));
                    pending.push(Pending::Messages(frame, stored));
                }
                Err(e) => {
                    view.record = record_before;
                    results.push(Err(e));
                }
            }
        }
        if !pending.is_empty() {
            let committed = self
                .store
                .index
                .record(&Claim::tentative(&view.record))
                .and_then(|()| view.commit(pending));
            match committed {
                Ok(()) => {
                    self.store
                        .index
                        .record_after_commit(&Claim::confirmed(&view.record));
                    self.store.ids.note(id, &view, end_before, &new_messages);
                }
                Err(e) => {
                    view.record = before;
                    let new_ids: Vec<&MessageId> = new_messages.iter().map(|m| &m.id).collect();
                    let mut errors = echo(e, n).into_iter();
                    for r in &mut results {
                        let fresh = matches!(r, Ok(a) if a.messages.iter().any(|m| new_ids.contains(&&m.id)));
                        if fresh && let Some(err) = errors.next() {
                            *r = err;
                        }
                    }
                }
            }
        }
        results
    }

    /// Updates a stored message whose revision is `expected_revision` (one edit record).
    ///
    /// A redaction (an update carrying [`REDACTION_KEY`](chatvault_core::REDACTION_KEY))
    /// then has the log rewritten without the versions it superseded (see [`rewrite`]).
    /// Should that fail (a full disk, say), the redaction is committed all the same but
    /// the call fails with the rewrite's error, since the old content is still on disk:
    /// the next operation on the conversation, or a repair, finishes the rewrite, and
    /// redacting again does too.
    pub(crate) fn update_message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
        expected_revision: u64,
        update: &MessageUpdate,
    ) -> Result<MessageUpdated> {
        let (_lock, mut view) = self.store.require(id, Mode::Exclusive)?;
        let mut message = self
            .store
            .ids
            .stored(id, &view, &[message_id])?
            .pop()
            .flatten()
            .ok_or_else(|| Error::message_not_found(message_id.as_str()))?;
        message.expect_revision(expected_revision)?;
        check_headroom(&view.record, 0, &view.dir().join(HEADER))?;
        let before = view.record.clone();
        let at = now();
        view.record.apply_message_update(&mut message, update, at);
        let redaction = rewrite::redacts(update);
        let committed = encode_edit(at, &message, &view.record).and_then(|frame| {
            if redaction {
                // Before the commit: a crash after it must find the rewrite due.
                rewrite::mark(view.dir(), view.generation())?;
                rewrite::crash_point("marked");
            }
            self.store.index.record(&Claim::tentative(&view.record))?;
            view.commit(vec![Pending::Edit(frame, Box::new(message.clone()))])
        });
        if let Err(e) = committed {
            view.record = before;
            return Err(e);
        }
        self.store
            .index
            .record_after_commit(&Claim::confirmed(&view.record));
        if redaction {
            rewrite::crash_point("committed");
            rewrite::rewrite(&view)?;
        }
        Ok(MessageUpdated::new(view.record, message))
    }

    /// The stored message with this id, or `None`.
    pub(crate) fn message(
        &self,
        id: &ConversationId,
        message_id: &MessageId,
    ) -> Result<Option<Message>> {
        let (_lock, view) = self.store.require(id, Mode::Shared)?;
        Ok(self
            .store
            .ids
            .stored(id, &view, &[message_id])?
            .pop()
            .flatten())
    }

    /// The messages of `range` (at most [`MAX_PAGE`]).
    pub(crate) fn messages(
        &self,
        id: &ConversationId,
        range: &MessageRange,
    ) -> Result<Page<Message>> {
        let (_lock, view) = self.store.require(id, Mode::Shared)?;
        let count = view.count();
        let Some((mut first, mut last)) = range.resolve(count) else {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        };
        let cap = MAX_PAGE as u64;
        if last - first + 1 > cap {
            match range {
                MessageRange::After { .. } => last = first + cap - 1,
                MessageRange::Before { .. } => first = last - cap + 1,
            }
        }
        let items = view.read_positions(first, last)?;
        Ok(Page {
            items,
            next_cursor: range.next_cursor(first, last, count),
        })
    }

    /// Applies `change` to a locked conversation's record and files, and commits a state
    /// record if it says something changed.
    pub(crate) fn modify<T>(
        &self,
        id: &ConversationId,
        change: impl FnOnce(&mut ConversationRecord, &mut Vec<FileAttachment>) -> Result<(bool, T)>,
    ) -> Result<(ConversationRecord, T)> {
        let (_lock, mut view) = self.store.require(id, Mode::Exclusive)?;
        check_headroom(&view.record, 0, &view.dir().join(HEADER))?;
        let (before, files_before) = (view.record.clone(), view.files.clone());
        let (changed, out) = change(&mut view.record, &mut view.files)?;
        if changed {
            let committed =
                encode_state(now(), &view.record, &view.files, false).and_then(|frame| {
                    self.store.index.record(&Claim::tentative(&view.record))?;
                    view.commit(vec![Pending::State(frame)])
                });
            if let Err(e) = committed {
                view.record = before;
                view.files = files_before;
                return Err(e);
            }
            self.store
                .index
                .record_after_commit(&Claim::confirmed(&view.record));
        }
        Ok((view.record, out))
    }

    /// The record and attachments of a conversation that exists and is not being deleted.
    pub(crate) fn head(&self, id: &ConversationId) -> Result<Option<ConversationHead>> {
        Ok(self
            .store
            .live(id, Mode::Shared)?
            .map(|(_, v)| ConversationHead::new(v.record, v.files)))
    }

    /// Applies `patch` to a conversation's record (a state record if it changes it).
    pub(crate) fn update(
        &self,
        id: &ConversationId,
        patch: &ConversationPatch,
    ) -> Result<ConversationRecord> {
        self.modify(id, |record, _| Ok((record.apply_patch(patch)?, ())))
            .map(|(r, ())| r)
    }

    /// Attaches `file` (a state record).
    pub(crate) fn add_file(
        &self,
        id: &ConversationId,
        file: FileAttachment,
    ) -> Result<ConversationRecord> {
        self.modify(id, |record, files| {
            apply_add_file(record, files, &file)?;
            files.push(file);
            Ok((true, ()))
        })
        .map(|(r, ())| r)
    }

    /// Detaches file `file_id`; `None` when it was not attached (nothing written).
    pub(crate) fn remove_file(
        &self,
        id: &ConversationId,
        file_id: &FileId,
    ) -> Result<Option<ConversationRecord>> {
        let (record, removed) = self.modify(id, |record, files| {
            let Some(pos) = files.iter().position(|f| f.id == *file_id) else {
                return Ok((false, false));
            };
            files.remove(pos);
            apply_remove_file(record);
            Ok((true, true))
        })?;
        Ok(removed.then_some(record))
    }

    /// Marks a conversation as being deleted (a state record: durable), so that it reads
    /// as gone and takes no more changes; returns its attachments, every time it is called.
    /// Its marker in `deleting/` is written (flushed) before the mark is committed.
    pub(crate) fn begin_delete(&self, id: &ConversationId) -> Result<Option<Vec<FileAttachment>>> {
        let Some((_lock, mut view)) = self.store.open_conv(id, Mode::Exclusive)? else {
            return Ok(None);
        };
        let name = dir_name(id.as_str());
        if view.deleting {
            // Marked by an earlier release, without a marker: written now.
            Markers::new(self.store).ensure(&name)?;
        } else {
            let frame = encode_state(now(), &view.record, &view.files, true)?;
            // Before the commit: a crash after it must leave the marker.
            Markers::new(self.store).write(&name)?;
            view.deleting = true;
            view.commit(vec![Pending::State(frame)])?;
            self.store
                .index
                .record_after_commit(&Claim::deleted(id.as_str()));
        }
        Ok(Some(view.files))
    }
}

/// The error of a failed batch, for each of its `n` appends: the first gets `e` itself,
/// the others an error of the same class that names it.
fn echo(e: Error, n: usize) -> Vec<Result<Appended>> {
    let mut out = Vec::with_capacity(n);
    for _ in 1..n {
        let message = format!("the group commit of this append failed: {e}");
        out.push(Err(match &e {
            Error::NotFound { id, .. } => Error::conversation_not_found(id.clone()),
            other if other.is_temporary() => Error::temporary(BACKEND, io::Error::other(message)),
            _ => Error::backend(BACKEND, io::Error::other(message)),
        }));
    }
    out.insert(0, Err(e));
    out
}
