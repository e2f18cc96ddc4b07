//! Deletes: `begin_delete` marks a conversation (its markers first, see `markers`) and
//! stops new attachments; `delete` removes its listing entries, then its keys, then its
//! markers.

use std::sync::Arc;

use chatvault_core::backend::{ConversationId, ConversationRecord, FileAttachment, Result};
use redis::cmd;

use crate::conn::{Conn, read_error, write_error};
use crate::layout::{F_RECORD, F_TOKEN, Keys, from_json};
use crate::listing::Listings;
use crate::markers::Markers;
use crate::scripts::BEGIN_DELETE;
use crate::state::Slots;

/// Marks and deletes conversations: the connection and key layout, the slots whose state
/// a delete forgets, and the listings and marker sets it keeps in step.
#[derive(Clone, Debug)]
pub(crate) struct Deleter {
    conn: Conn,
    keys: Keys,
    slots: Arc<Slots>,
    listings: Listings,
    markers: Markers,
}

impl Deleter {
    /// A deleter of the conversations under `keys`, on `conn`, forgetting them in `slots`
    /// and keeping `listings` and `markers` in step.
    pub(crate) fn new(
        conn: Conn,
        keys: Keys,
        slots: Arc<Slots>,
        listings: Listings,
        markers: Markers,
    ) -> Self {
        Deleter {
            conn,
            keys,
            slots,
            listings,
            markers,
        }
    }

    /// [`MessagesBackend::begin_delete`](chatvault_core::MessagesBackend::begin_delete):
    /// the conversation's markers go first (see
    /// [`Markers::list_deleting`](crate::markers::Markers::list_deleting)),
    /// then one script marks the conversation and returns its attachments.
    pub(crate) async fn begin(&self, id: &ConversationId) -> Result<Option<Vec<FileAttachment>>> {
        let location = self.keys.conversation(id);
        let mut conn = self.conn.clone();
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
        let markers = self.markers.add(id, user.as_ref()).await?;
        let mut invocation = BEGIN_DELETE.prepare_invoke();
        invocation
            .key(self.keys.conversation(id))
            .arg(uuid::Uuid::now_v7().simple().to_string());
        let mut conn = self.conn.clone();
        let files: Option<Vec<u8>> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(write_error("begin_delete"))?;
        self.slots.forget(id).await;
        if files.is_none() {
            // Deleted since it was read: its markers are those of a gone conversation.
            self.markers.remove(id, &markers).await;
        }
        files
            .map(|json| from_json(&self.keys.conversation(id), &json))
            .transpose()
    }

    /// [`MessagesBackend::delete`](chatvault_core::MessagesBackend::delete): the listing
    /// entries go first (a conversation left out of listings is what an interrupted delete
    /// may leave, and the retried delete removes it), then one `DEL` of its keys, then its
    /// markers (read before the `DEL`, removed only if unchanged since).
    pub(crate) async fn delete(&self, id: &ConversationId) -> Result<bool> {
        let keys = &self.keys;
        let location = keys.conversation(id);
        let mut conn = self.conn.clone();
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
                self.listings.remove(id, &record).await?;
            }
        }
        let markers = self.markers.of(id, user.as_ref()).await?;
        let removed: i64 = cmd("DEL")
            .arg(keys.conversation_keys(id).as_slice())
            .query_async(&mut conn)
            .await
            .map_err(write_error("delete"))?;
        self.slots.forget(id).await;
        // Last: until here, a crash leaves the conversation listed by `list_deleting`.
        self.markers.remove(id, &markers).await;
        Ok(removed > 0)
    }
}
