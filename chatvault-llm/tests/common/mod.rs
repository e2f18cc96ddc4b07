//! What the history tests share: a memory backend with short pages that counts the
//! messages it returns.

// Test support code: its unwraps are test assertions.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chatvault_core::backend::async_trait;
use chatvault_core::conformance::{Forward, MessagesHook, cap_range};
use chatvault_core::{
    ChatVault, ConversationId, Message, MessageRange, MessagesBackend, Page, Result,
};
use chatvault_memory::{MemoryFiles, MemoryMessages};

/// Over MemoryMessages: pages of messages hold at most `page_cap`, and the messages
/// returned are counted.
#[derive(Debug)]
pub struct Paged {
    pub page_cap: usize,
    /// How many messages `messages` has returned.
    pub read: AtomicUsize,
}

#[async_trait]
impl MessagesHook<MemoryMessages> for Paged {
    async fn messages(
        &self,
        inner: &MemoryMessages,
        id: &ConversationId,
        range: &MessageRange,
    ) -> Result<Page<Message>> {
        let page = inner.messages(id, &cap_range(range, self.page_cap)).await?;
        self.read.fetch_add(page.items.len(), Ordering::SeqCst);
        Ok(page)
    }
}

/// A new conversation on a backend whose pages hold at most `cap` messages.
pub async fn paged(
    cap: usize,
) -> (
    chatvault_core::Conversation,
    Arc<Forward<MemoryMessages, Paged>>,
) {
    let paged = Paged {
        page_cap: cap,
        read: AtomicUsize::new(0),
    };
    let backend = Arc::new(Forward::new(MemoryMessages::new(), paged));
    let vault = ChatVault::from_arcs(backend.clone(), Arc::new(MemoryFiles::new()));
    (
        vault.create_conversation(None).await.expect("create"),
        backend,
    )
}
