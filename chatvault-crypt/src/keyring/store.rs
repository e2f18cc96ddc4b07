//! The key store's stored form: one conversation per owner, one message per data key
//! version (its `seq` is the version), the wrapped key in a provider part.

use chatvault_core::backend::{
    ConversationRecord, Error, MessageRange, MessagesBackend, MessagesBackendExt, NewMessage, Part,
    ProviderPart, Result, Role,
};
use chatvault_core::{ConversationId, MessageId};
use serde_json::json;

use crate::format::{b64, corrupt, unb64};

/// The provider name of the parts that hold wrapped keys.
const PROVIDER: &str = "chatvault-crypt";
/// Their kind.
const KIND: &str = "wrapped-data-key";

/// One stored data key version, still wrapped.
#[derive(Clone, Debug)]
pub(crate) struct Wrapped {
    /// The version (the message's `seq`).
    pub(crate) version: u32,
    /// The message holding it (for a rewrap).
    pub(crate) message_id: MessageId,
    /// Its revision (for a rewrap).
    pub(crate) revision: u64,
    /// The [`KeyProvider::id`](crate::KeyProvider::id) that wrapped it.
    pub(crate) provider: String,
    /// The wrapped bytes.
    pub(crate) bytes: Vec<u8>,
    /// Whether it was wrapped for the version it is stored at.
    pub(crate) valid: bool,
}

/// The part that stores a wrapped key.
pub(crate) fn key_part(provider: &str, owner: &str, version: u32, wrapped: &[u8]) -> Part {
    Part::Provider(ProviderPart {
        provider: PROVIDER.into(),
        kind: KIND.into(),
        data: json!({"provider": provider, "owner": owner, "version": version,
            "wrapped": b64(wrapped)}),
    })
}

/// Every version stored in `conversation`, oldest first; `None` when the conversation
/// does not exist (never created, or shredded).
pub(crate) async fn read_versions(
    store: &dyn MessagesBackend,
    conversation: &ConversationId,
) -> Result<Option<Vec<Wrapped>>> {
    let mut out = Vec::new();
    let mut range = MessageRange::all();
    loop {
        let page = match store.messages(conversation, &range).await {
            Ok(page) => page,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        for m in &page.items {
            out.push(parse(conversation, m)?);
        }
        match &page.next_cursor {
            Some(cursor) => range = range.continue_from(cursor)?,
            None => return Ok(Some(out)),
        }
    }
}

fn parse(conversation: &ConversationId, m: &chatvault_core::Message) -> Result<Wrapped> {
    let location = format!("key store {conversation} seq {}", m.seq);
    let data = match m.parts.as_slice() {
        [Part::Provider(p)] if p.provider == PROVIDER && p.kind == KIND => &p.data,
        _ => return Err(corrupt(location, "not a wrapped data key")),
    };
    let text = |field: &str| {
        data.get(field).and_then(|v| v.as_str()).ok_or_else(|| {
            corrupt(
                location.clone(),
                format!("no {field} in a wrapped data key"),
            )
        })
    };
    let version =
        u32::try_from(m.seq).map_err(|_| corrupt(location.clone(), "a key version past 2^32"))?;
    Ok(Wrapped {
        version,
        valid: data.get("version").and_then(|v| v.as_u64()) == Some(u64::from(version)),
        message_id: m.id.clone(),
        revision: m.revision,
        provider: text("provider")?.to_owned(),
        bytes: unb64(text("wrapped")?, &location)?,
    })
}

/// Creates `conversation` (no owner, so that no owner's listing shows it) unless it
/// exists, then appends one wrapped key as message `data-key-{version}`; returns its
/// `seq`. [`Error::AlreadyExists`] when another writer stored that version first.
pub(crate) async fn append_version(
    store: &dyn MessagesBackend,
    conversation: &ConversationId,
    owner: &str,
    version: u32,
    part: Part,
) -> Result<u32> {
    let mut record = ConversationRecord::new(None);
    record.id = conversation.clone();
    record.metadata.insert(
        "chatvault_crypt".into(),
        json!({"key_store": 1, "owner": owner}),
    );
    match store.create(&record).await {
        Ok(()) => {}
        Err(Error::AlreadyExists { .. }) => {}
        Err(e) => return Err(e),
    }
    let message = NewMessage::with_parts(Role::Other("data-key".into()), vec![part])
        .with_id(MessageId::parse(format!("data-key-{version}"))?);
    let appended = store.append_messages(conversation, vec![message]).await?;
    let seq = appended
        .messages
        .first()
        .map(|m| m.seq)
        .ok_or_else(|| corrupt(conversation.as_str(), "the key store stored no key"))?;
    u32::try_from(seq).map_err(|_| corrupt(conversation.as_str(), "a key version past 2^32"))
}
