//! Shared by the core's integration tests: the smallest SimpleBackend (a map in memory).

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chatvault_core::backend::{SimpleBackend, StoredConversation, async_trait};
use chatvault_core::{ConversationId, Result, UserId};

/// Whole conversations in a HashMap, as the `simple` module's docs show.
#[derive(Debug, Default)]
pub struct MapStore(Mutex<HashMap<ConversationId, StoredConversation>>);

#[async_trait]
impl SimpleBackend for MapStore {
    async fn save(&self, conversation: &StoredConversation) -> Result<()> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(conversation.record.id.clone(), conversation.clone());
        Ok(())
    }

    async fn get(&self, id: &ConversationId) -> Result<Option<StoredConversation>> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned())
    }

    async fn get_by_user(&self, user_id: &UserId) -> Result<Vec<StoredConversation>> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(map
            .values()
            .filter(|c| c.record.user_id.as_ref() == Some(user_id))
            .cloned()
            .collect())
    }

    async fn delete(&self, id: &ConversationId) -> Result<bool> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
            .is_some())
    }
}
