//! The one way a conversation changes: read (or recall) it, decide the change with the
//! core's rules, and send the decision in one script that writes it only if the
//! conversation is still as it was read. A refused decision is made again from the state
//! the refusal carries.

use std::sync::Arc;

use chatvault_core::backend::{
    ConversationId, ConversationRecord, Error, FileAttachment, Message, MessageId, Result,
};

use crate::conn::{Conn, write_error};
use crate::expiry::{KeyExpiry, deadline_arg};
use crate::layout::{Keys, from_json, score, to_json};
use crate::listing::Listings;
use crate::load::{Loader, decode_known, message_or_none, unexpected};
use crate::scripts::COMMIT;
use crate::state::{Known, Slots, Turn};

/// How many refused decisions a write makes again before it gives up with
/// [`Error::Conflict`]. Writers of one process take turns, so only writers of other
/// processes cause refusals.
const MAX_ATTEMPTS: usize = 100;

/// A conversation as read for a decision, with the stored messages asked for.
#[derive(Debug)]
pub(crate) struct Seen<'a> {
    /// The conversation at its write token.
    pub(crate) known: &'a Known,
    /// The stored message of each id asked for, in order.
    pub(crate) found: &'a [Option<Message>],
    /// Whether it was read just now (not recalled from this process's last write).
    pub(crate) fresh: bool,
}

/// What a write decided to store.
#[derive(Debug)]
pub(crate) struct Change {
    /// The new record.
    pub(crate) record: ConversationRecord,
    /// The new attachment list, if it changed.
    pub(crate) files: Option<Vec<FileAttachment>>,
    /// Messages to store at their `seq`.
    pub(crate) messages: Vec<Message>,
    /// Whether the messages are new (their ids are indexed, and must not be stored yet).
    pub(crate) new_messages: bool,
}

/// A decision: answer without writing, or write a change and then answer.
#[derive(Debug)]
pub(crate) enum Decision<T> {
    /// Nothing to write.
    Answer(T),
    /// Write this, then answer.
    Write(Box<Change>, T),
}

/// How a write ended.
#[derive(Debug)]
pub(crate) enum Outcome<T> {
    /// Decided and, for a change, written.
    Done(T),
    /// Some of the new messages' ids were already stored: nothing was written. The record
    /// and the stored message of each new message's id (in order) as they are now.
    Replayed(Box<ConversationRecord>, Vec<Option<Message>>),
}

/// The server's answer to a decision.
enum Reply {
    Written,
    Gone,
    Stale(Known),
    Replay(ConversationRecord, Vec<Option<Message>>),
}

/// A fresh write token: no two writes ever use the same one.
fn new_token() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// Changes conversations (see the module docs): the writers' turns and last written
/// states of this process, the connection and key layout, the key expiry and the listings
/// a written conversation moves in.
#[derive(Clone, Debug)]
pub(crate) struct Committer {
    conn: Conn,
    keys: Keys,
    slots: Arc<Slots>,
    expiry: Option<KeyExpiry>,
    listings: Listings,
    loader: Loader,
}

impl Committer {
    /// A committer of the conversations under `keys`, on `conn`, taking turns in `slots`,
    /// giving keys the deadline of `expiry` and moving conversations in `listings`.
    pub(crate) fn new(
        conn: Conn,
        keys: Keys,
        slots: Arc<Slots>,
        expiry: Option<KeyExpiry>,
        listings: Listings,
    ) -> Self {
        Committer {
            loader: Loader::new(conn.clone(), keys.clone()),
            conn,
            keys,
            slots,
            expiry,
            listings,
        }
    }

    /// Changes conversation `id` as `decide` says, from its state now and the stored
    /// messages of `lookups`. [`Error::NotFound`] when the conversation does not exist or
    /// is being deleted.
    ///
    /// `decide` may run several times (once per refused attempt). Only a change is ever
    /// decided from a recalled state: an answer or an error decided from it is decided
    /// again from a fresh read.
    pub(crate) async fn change<T>(
        &self,
        id: &ConversationId,
        lookups: &[MessageId],
        decide: impl FnMut(Seen<'_>) -> Result<Decision<T>>,
    ) -> Result<Outcome<T>> {
        let mut turn = self.slots.turn(id).await;
        self.change_in_turn(&mut turn, id, lookups, decide).await
    }

    /// [`change`](Self::change), for a writer that holds the conversation's turn.
    pub(crate) async fn change_in_turn<T>(
        &self,
        turn: &mut Turn,
        id: &ConversationId,
        lookups: &[MessageId],
        mut decide: impl FnMut(Seen<'_>) -> Result<Decision<T>>,
    ) -> Result<Outcome<T>> {
        let slots = &self.slots;
        let mut next = match &**turn {
            Some(known) if lookups.is_empty() && slots.keeps() => Some((known.clone(), None)),
            _ => None,
        };
        for _ in 0..MAX_ATTEMPTS {
            let (known, found) = match next.take() {
                Some(state) => state,
                None => match self.loader.load(id, lookups).await? {
                    Some((known, found)) => (known, Some(found)),
                    None => {
                        **turn = None;
                        return Err(Error::conversation_not_found(id.as_str()));
                    }
                },
            };
            let fresh = found.is_some();
            let found = found.unwrap_or_default();
            let decision = decide(Seen {
                known: &known,
                found: &found,
                fresh,
            });
            let (change, answer) = match decision {
                Ok(Decision::Write(change, answer)) => (change, answer),
                _ if !fresh => continue,
                Ok(Decision::Answer(answer)) => {
                    **turn = slots.keeps().then_some(known);
                    return Ok(Outcome::Done(answer));
                }
                Err(e) => return Err(e),
            };
            let token = new_token();
            match self.commit(id, &known, &change, &token).await? {
                Reply::Written => {
                    self.listings
                        .move_entry(&known.record, &change.record)
                        .await;
                    **turn = slots.keeps().then(|| Known {
                        token,
                        files: change.files.unwrap_or(known.files),
                        record: change.record,
                    });
                    return Ok(Outcome::Done(answer));
                }
                Reply::Gone => {
                    **turn = None;
                    return Err(Error::conversation_not_found(id.as_str()));
                }
                Reply::Stale(now) => {
                    if lookups.is_empty() {
                        next = Some((now, Some(Vec::new())));
                    }
                }
                Reply::Replay(record, found) => {
                    **turn = None;
                    return Ok(Outcome::Replayed(Box::new(record), found));
                }
            }
        }
        Err(Error::Conflict {
            message: format!(
                "conversation {id} changed {MAX_ATTEMPTS} times while this write was decided"
            ),
        })
    }

    /// Sends a decision made at `known`'s token, to be written under `token`.
    async fn commit(
        &self,
        id: &ConversationId,
        known: &Known,
        change: &Change,
        token: &str,
    ) -> Result<Reply> {
        let keys = &self.keys;
        let mut invocation = COMMIT.prepare_invoke();
        for key in keys.conversation_keys(id) {
            invocation.key(key);
        }
        let moved = known.record.last_active != change.record.last_active;
        if !self.conn.is_cluster() && moved {
            for key in self.listings.keys_of(&change.record) {
                invocation.key(key);
            }
        }
        invocation
            .arg(&known.token)
            .arg(token)
            .arg(to_json(&change.record)?)
            .arg(match &change.files {
                Some(files) => to_json(files)?,
                None => String::new(),
            })
            .arg(if moved {
                score(change.record.last_active).to_string()
            } else {
                String::new()
            })
            .arg(id.as_str())
            .arg(deadline_arg(self.expiry.as_ref(), &change.record));
        if change.new_messages {
            invocation.arg(change.messages.len());
            for m in &change.messages {
                invocation.arg(m.id.as_str());
            }
        } else {
            invocation.arg(0);
        }
        invocation.arg(change.messages.len());
        for m in &change.messages {
            invocation.arg(m.seq).arg(to_json(m)?);
            invocation.arg(if change.new_messages {
                m.id.as_str()
            } else {
                ""
            });
        }
        let mut conn = self.conn.clone();
        let reply: Vec<Vec<u8>> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(write_error("write"))?;
        let location = keys.conversation(id);
        let mut reply = reply.into_iter();
        match reply.next().as_deref() {
            Some(b"ok" | b"done") => Ok(Reply::Written),
            Some(b"gone") => Ok(Reply::Gone),
            Some(b"stale") => match (reply.next(), reply.next(), reply.next()) {
                (Some(token), Some(record), Some(files)) => Ok(Reply::Stale(decode_known(
                    &location, token, &record, &files,
                )?)),
                _ => Err(unexpected(&location)),
            },
            Some(b"replay") => {
                let (Some(_token), Some(record)) = (reply.next(), reply.next()) else {
                    return Err(unexpected(&location));
                };
                let record = from_json(&location, &record)?;
                let found = reply
                    .map(|m| message_or_none(keys, id, &m))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Reply::Replay(record, found))
            }
            _ => Err(unexpected(&location)),
        }
    }
}
