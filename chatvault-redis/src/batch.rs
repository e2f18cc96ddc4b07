//! Appends, written together: while one writer of this process has a conversation's turn,
//! the appends that come meanwhile queue, and the next writer to get the turn decides
//! them all, in order, and writes them in one script (group commit). Each append keeps its
//! own answer: its own owner check and errors, the record as it stood after it.
//!
//! When the batch cannot go as one (an id of it is already stored, or the write fails,
//! perhaps with its answer lost), each append of it is sent again on its own: ids make
//! that safe, a message stored by a lost write is answered as a replay.

use std::collections::HashSet;
use std::sync::Arc;

use chatvault_core::backend::{
    Appended, ConversationId, Error, NewMessage, Result, UserId, check_owner, check_replay,
    check_unique_ids, now,
};
use tokio::sync::oneshot;

use crate::commit::{Change, Committer, Decision, Outcome, Seen};
use crate::conn::BACKEND;
use crate::layout::Keys;
use crate::state::{Slots, Turn, Waiting};

/// The most appends one script writes together, so that no script holds the server up
/// for long.
const MAX_BATCH: usize = 256;

/// Appends messages, writing together those that wait for the same conversation's turn:
/// the slots they wait in, the committer that writes them, the key layout its errors name.
#[derive(Clone, Debug)]
pub(crate) struct Appender {
    slots: Arc<Slots>,
    committer: Committer,
    keys: Keys,
}

impl Appender {
    /// An appender queueing in `slots` and writing through `committer`, whose
    /// conversations' keys are `keys`.
    pub(crate) fn new(slots: Arc<Slots>, committer: Committer, keys: Keys) -> Self {
        Appender {
            slots,
            committer,
            keys,
        }
    }

    /// [`MessagesBackend::append_messages_as`](chatvault_core::MessagesBackend::append_messages_as):
    /// [`ConversationRecord::apply_append`](chatvault_core::backend::ConversationRecord::apply_append)
    /// decides, one script writes (and refuses ids already stored, which [`check_replay`]
    /// then judges), together with the appends queued behind the turn.
    pub(crate) async fn append(
        &self,
        owner: Option<&UserId>,
        id: &ConversationId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        check_unique_ids(&messages)?;
        let slot = self.slots.slot(id);
        let (answer, mut answered) = oneshot::channel();
        slot.wait(Waiting {
            owner: owner.cloned(),
            messages,
            answer,
        });
        // Answered by the writer that has the turn, or given the turn to write what waits.
        // An answered append leaves the turn to the next in line at once (`biased`): the
        // writers a batch's answers woke pass it along until it reaches one whose append
        // still waits, and by then those that appended again have queued behind it, so
        // their appends go in one script.
        let answer = tokio::select! {
            biased;
            answer = &mut answered => answer,
            mut turn = slot.turn() => {
                let batch = slot.take_waiting(MAX_BATCH);
                if !batch.is_empty() {
                    self.append_batch(&mut turn, id, batch).await;
                }
                drop(turn);
                answered.await
            }
        };
        // The writer that took it was cancelled (its caller gave up) mid-way.
        answer.unwrap_or_else(|_| {
            Err(Error::outcome_unknown(
                BACKEND,
                "append",
                "the writer that took this append was cancelled before it answered",
            ))
        })
    }

    /// Decides and writes `batch`, then answers each of its appends.
    async fn append_batch(&self, turn: &mut Turn, id: &ConversationId, batch: Vec<Waiting>) {
        if batch.len() > 1 && !shares_an_id(&batch) {
            let outcome = self
                .committer
                .change_in_turn(turn, id, &[], |seen| decide_batch(&seen, &batch))
                .await;
            if let Ok(Outcome::Done(answers)) = outcome {
                for (waiting, answer) in batch.into_iter().zip(answers) {
                    let _ = waiting.answer.send(answer);
                }
                return;
            }
        }
        for waiting in batch {
            let answer = self
                .append_one(turn, waiting.owner.as_ref(), id, &waiting.messages)
                .await;
            let _ = waiting.answer.send(answer);
        }
    }

    /// One append on its own.
    async fn append_one(
        &self,
        turn: &mut Turn,
        owner: Option<&UserId>,
        id: &ConversationId,
        messages: &[NewMessage],
    ) -> Result<Appended> {
        let outcome = self
            .committer
            .change_in_turn(turn, id, &[], |seen| {
                let mut record = seen.known.record.clone();
                check_owner(&record, owner)?;
                if messages.is_empty() {
                    return Ok(Decision::Answer(Appended::new(record, Vec::new())));
                }
                let stored = record.apply_append(messages.to_vec(), now())?;
                let change = Change {
                    record: record.clone(),
                    files: None,
                    messages: stored.clone(),
                    new_messages: true,
                };
                Ok(Decision::Write(
                    Box::new(change),
                    Appended::new(record, stored),
                ))
            })
            .await?;
        match outcome {
            Outcome::Done(appended) => Ok(appended),
            Outcome::Replayed(record, found) => {
                check_owner(&record, owner)?;
                match check_replay(messages, found)? {
                    Some(messages) => Ok(Appended::new(*record, messages)),
                    None => Err(Error::corrupt(
                        BACKEND,
                        self.keys.message_ids(id),
                        "a message id was reported stored, and is not",
                    )),
                }
            }
        }
    }
}

/// Whether two appends of `batch` carry the same message id (they then go one by one, so
/// that the second is judged as a retry of the first).
fn shares_an_id(batch: &[Waiting]) -> bool {
    let mut seen = HashSet::new();
    batch
        .iter()
        .flat_map(|w| &w.messages)
        .any(|m| !seen.insert(&m.id))
}

/// Decides every append of `batch` in order, each on the record the ones before it left.
/// An append that fails keeps its error and changes nothing; one decided from a recalled
/// state fails the whole decision, which is then made again from a fresh read.
fn decide_batch(seen: &Seen<'_>, batch: &[Waiting]) -> Result<Decision<Vec<Result<Appended>>>> {
    let at = now();
    let mut record = seen.known.record.clone();
    let mut stored_all = Vec::new();
    let mut answers = Vec::with_capacity(batch.len());
    for waiting in batch {
        let answer = check_owner(&record, waiting.owner.as_ref()).and_then(|()| {
            let mut next = record.clone();
            let stored = next.apply_append(waiting.messages.clone(), at)?;
            record = next;
            stored_all.extend(stored.iter().cloned());
            Ok(Appended::new(record.clone(), stored))
        });
        match answer {
            Err(e) if !seen.fresh => return Err(e),
            answer => answers.push(answer),
        }
    }
    if stored_all.is_empty() {
        return Ok(Decision::Answer(answers));
    }
    let change = Change {
        record,
        files: None,
        messages: stored_all,
        new_messages: true,
    };
    Ok(Decision::Write(Box::new(change), answers))
}
