//! Edge cases found in review: cursor precision, hand-built roles, misbehaving backends'
//! pages, auto-titles that must validate, and the crate docs' minimal backend.
#![allow(missing_docs, clippy::unwrap_used)]
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chatvault_core::*;
use chatvault_memory::{MemoryFiles, MemoryMessages};
use chrono::{TimeZone, Utc};

fn summary(id: &str, nanos: u32) -> ConversationSummary {
    let t = Utc.timestamp_opt(1_700_000_000, nanos).unwrap();
    ConversationSummary {
        id: id.into(),
        user_id: Some("u".into()),
        title: None,
        created_at: t,
        last_active: t,
        archived: false,
        message_count: 0,
        file_count: 0,
    }
}

/// Sub-microsecond last_active: the cursor truncates to micros, so paging skips.
#[test]
fn cursor_truncation_skips_items() {
    // Listing order: a (…000_500ns) then b (…000_100ns): same microsecond.
    let all = vec![summary("b", 100), summary("a", 500)];
    let p1 = paginate(all.clone(), &ListOptions::new().limit(1)).unwrap();
    assert_eq!(p1.items[0].id, "a");
    let p2 = paginate(
        all,
        &ListOptions::new().limit(1).cursor(p1.next_cursor.unwrap()),
    )
    .unwrap();
    assert_eq!(p2.items.len(), 1, "b was skipped");
}

/// Role::Other("user") is a user message on the wire but not for auto-title.
#[tokio::test]
async fn role_other_user_is_not_user() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let mut c = vault.create_conversation(None).await.unwrap();
    c.add_message(Role::Other("user".into()), "hello")
        .await
        .unwrap();
    assert_eq!(
        c.title(),
        Some("hello"),
        "no auto-title for a 'user' message"
    );
    assert_eq!(
        c.messages().await.unwrap()[0].role,
        Role::User,
        "stored normalised"
    );
}

/// The crate-level doc's MapMessages, run through the suite as the doc says to.
#[derive(Debug, Default)]
struct MapMessages(Mutex<HashMap<String, StoredConversation>>);
#[async_trait]
impl MessagesBackend for MapMessages {
    async fn save(&self, c: &StoredConversation) -> Result<()> {
        self.0
            .lock()
            .unwrap()
            .insert(c.record.id.clone(), c.clone());
        Ok(())
    }
    async fn get(&self, id: &str) -> Result<Option<StoredConversation>> {
        Ok(self.0.lock().unwrap().get(id).cloned())
    }
    async fn get_by_user(&self, u: &str) -> Result<Vec<StoredConversation>> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .values()
            .filter(|c| c.record.user_id.as_deref() == Some(u))
            .cloned()
            .collect())
    }
    async fn delete(&self, id: &str) -> Result<bool> {
        Ok(self.0.lock().unwrap().remove(id).is_some())
    }
}

#[tokio::test]
async fn doc_example_backend_passes_minimal_suite() {
    conformance::run_messages_suite(
        Arc::new(MapMessages::default()),
        conformance::MessagesCapabilities::minimal(),
    )
    .await;
}

/// A (non-conforming) backend that answers an empty page with a cursor: messages() spins.
#[derive(Debug, Default)]
struct Stuck(MemoryMessages);
#[async_trait]
impl MessagesBackend for Stuck {
    async fn save(&self, c: &StoredConversation) -> Result<()> {
        self.0.save(c).await
    }
    async fn get(&self, id: &str) -> Result<Option<StoredConversation>> {
        self.0.get(id).await
    }
    async fn get_by_user(&self, u: &str) -> Result<Vec<StoredConversation>> {
        self.0.get_by_user(u).await
    }
    async fn delete(&self, id: &str) -> Result<bool> {
        self.0.delete(id).await
    }
    async fn create(&self, r: &ConversationRecord) -> Result<()> {
        self.0.create(r).await
    }
    async fn messages(&self, _id: &str, _r: &MessageRange) -> Result<Page<Message>> {
        Ok(Page {
            items: vec![],
            next_cursor: Some("0".into()),
        })
    }
}

#[tokio::test]
async fn a_stalled_backend_is_an_error_not_an_endless_loop() {
    let vault = ChatVault::new(Stuck::default(), MemoryFiles::new());
    let c = vault.create_conversation(None).await.unwrap();
    let all = c.messages().await;
    assert!(matches!(all, Err(Error::Backend { .. })), "{all:?}");
    let last = c.last_messages(5).await;
    assert!(matches!(last, Err(Error::Backend { .. })), "{last:?}");
}

#[test]
fn auto_title_can_produce_an_invalid_record() {
    let mut rec = ConversationRecord::new(None);
    rec.apply_append(vec![NewMessage::new(Role::User, "hi\0there")], now());
    assert!(
        rec.validate().is_ok(),
        "apply_append made a record validate() rejects: {:?}",
        rec.title
    );
}

#[tokio::test]
async fn other_user_role_gets_no_title() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let mut c = vault.create_conversation(None).await.unwrap();
    c.add_message(Role::Other("user".into()), "hello")
        .await
        .unwrap();
    let stored = c.messages().await.unwrap();
    assert_eq!(stored[0].role, Role::User);
    assert_eq!(
        c.title(),
        Some("hello"),
        "no auto-title for a 'user' message"
    );
}

/// A conforming backend that caps pages at 3 messages.
#[derive(Debug, Default)]
struct Capped(MemoryMessages);
#[async_trait]
impl MessagesBackend for Capped {
    async fn save(&self, c: &StoredConversation) -> Result<()> {
        self.0.save(c).await
    }
    async fn get(&self, id: &str) -> Result<Option<StoredConversation>> {
        self.0.get(id).await
    }
    async fn get_by_user(&self, u: &str) -> Result<Vec<StoredConversation>> {
        self.0.get_by_user(u).await
    }
    async fn delete(&self, id: &str) -> Result<bool> {
        self.0.delete(id).await
    }
    async fn create(&self, r: &ConversationRecord) -> Result<()> {
        self.0.create(r).await
    }
    async fn append_messages(&self, id: &str, m: Vec<NewMessage>) -> Result<Appended> {
        self.0.append_messages(id, m).await
    }
    async fn messages(&self, id: &str, r: &MessageRange) -> Result<Page<Message>> {
        let all = self.0.messages(id, &MessageRange::all()).await?.items;
        let count = all.len() as u64;
        let Some((mut first, mut last)) = r.resolve(count) else {
            return Ok(Page {
                items: vec![],
                next_cursor: None,
            });
        };
        match r {
            MessageRange::After { .. } => last = last.min(first + 2),
            MessageRange::Before { .. } => first = first.max(last.saturating_sub(2)),
        }
        Ok(Page {
            items: all[(first - 1) as usize..last as usize].to_vec(),
            next_cursor: r.next_cursor(first, last, count),
        })
    }
}

#[tokio::test]
async fn capped_backend_paging() {
    let vault = ChatVault::new(Capped::default(), MemoryFiles::new());
    let mut c = vault.create_conversation(None).await.unwrap();
    c.append(
        (1..=25)
            .map(|i| NewMessage::new(Role::User, format!("{i}")))
            .collect(),
    )
    .await
    .unwrap();
    let seqs = |v: Vec<Message>| v.iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(c.messages().await.unwrap()),
        (1..=25).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(c.last_messages(10).await.unwrap()),
        (16..=25).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(c.last_messages(100).await.unwrap()),
        (1..=25).collect::<Vec<_>>()
    );
}

/// A backend that ignores the limit on Before ranges (non-conforming): last_messages panics.
#[derive(Debug, Default)]
struct Greedy(MemoryMessages);
#[async_trait]
impl MessagesBackend for Greedy {
    async fn save(&self, c: &StoredConversation) -> Result<()> {
        self.0.save(c).await
    }
    async fn get(&self, id: &str) -> Result<Option<StoredConversation>> {
        self.0.get(id).await
    }
    async fn get_by_user(&self, u: &str) -> Result<Vec<StoredConversation>> {
        self.0.get_by_user(u).await
    }
    async fn delete(&self, id: &str) -> Result<bool> {
        self.0.delete(id).await
    }
    async fn create(&self, r: &ConversationRecord) -> Result<()> {
        self.0.create(r).await
    }
    async fn append_messages(&self, id: &str, m: Vec<NewMessage>) -> Result<Appended> {
        self.0.append_messages(id, m).await
    }
    async fn messages(&self, id: &str, _r: &MessageRange) -> Result<Page<Message>> {
        let mut p = self.0.messages(id, &MessageRange::after(1)).await?;
        p.next_cursor = Some("2".into());
        Ok(p)
    }
}
#[tokio::test]
async fn last_messages_underflows_on_oversized_page() {
    let vault = ChatVault::new(Greedy::default(), MemoryFiles::new());
    let mut c = vault.create_conversation(None).await.unwrap();
    c.append(
        (1..=25)
            .map(|i| NewMessage::new(Role::User, format!("{i}")))
            .collect(),
    )
    .await
    .unwrap();
    let last = c.last_messages(3).await.unwrap();
    assert_eq!(
        last.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![23, 24, 25],
        "an oversized page is cut to the newest n"
    );
}
