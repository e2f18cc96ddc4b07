//! The handlers: conversations (create, retrieve, update, delete) and their items (create,
//! list, retrieve, delete).

use axum::Json;
use axum::extract::State;
use chatvault_core::{Conversation, Message, MessageUpdate, Metadata, NewMessage};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::OaiError;
use super::items::{self, DELETED_KEY, PATCH_KEY};
use super::pages::{ListQuery, Window, list};
use super::{Caller, JsonBody, OaiState, Path, Query, public_id};

type OaiResult<T> = Result<T, OaiError>;

/// The most items one request may add, as the API allows.
const MAX_ITEMS_PER_REQUEST: usize = 20;

/// The body of `POST /conversations`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct CreateBody {
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    items: Option<Vec<Value>>,
}

/// The body of `POST /conversations/{id}`.
#[derive(Debug, Deserialize)]
pub(super) struct UpdateBody {
    #[serde(default)]
    metadata: Option<Metadata>,
}

/// The body of `POST /conversations/{id}/items`.
#[derive(Debug, Deserialize)]
pub(super) struct ItemsBody {
    items: Vec<Value>,
}

/// The conversation object.
fn conversation_object(conversation: &Conversation) -> Value {
    let record = conversation.record();
    json!({
        "id": public_id(&record.id),
        "object": "conversation",
        "created_at": record.created_at.timestamp(),
        "metadata": record.metadata,
    })
}

/// The messages to store for a batch of items, checked before anything is written.
fn to_messages(items: &[Value]) -> OaiResult<Vec<NewMessage>> {
    if items.len() > MAX_ITEMS_PER_REQUEST {
        return Err(OaiError::invalid(
            "items",
            format!(
                "at most {MAX_ITEMS_PER_REQUEST} items may be added at a time, got {}",
                items.len()
            ),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| items::to_message(item, index))
        .collect()
}

/// The items stored messages read as, in order.
fn items_of(messages: &[Message]) -> Vec<Value> {
    messages
        .iter()
        .flat_map(|m| items::to_items(m).into_iter().map(|(_, item)| item))
        .collect()
}

/// `POST /conversations`: a conversation with metadata and initial items (all or none).
pub(super) async fn create_conversation(
    State(state): State<OaiState>,
    Caller(user): Caller,
    JsonBody(body): JsonBody<CreateBody>,
) -> OaiResult<Json<Value>> {
    let messages = to_messages(body.items.as_deref().unwrap_or_default())?;
    let id = chatvault_core::ConversationId::parse(
        chatvault_core::ConversationId::new()
            .into_string()
            .replace('-', ""),
    )?;
    let mut builder = state.0.vault.new_conversation().user(user).id(id);
    if let Some(metadata) = body.metadata {
        builder = builder.metadata(metadata);
    }
    let mut conversation = builder.create().await?;
    if !messages.is_empty()
        && let Err(err) = conversation.append(messages).await
    {
        // All or none: the conversation goes with its items.
        if let Err(cleanup) = state.0.vault.delete_conversation(conversation.id()).await {
            tracing::error!(error = %cleanup, "could not delete a conversation whose items failed");
        }
        return Err(err.into());
    }
    Ok(Json(conversation_object(&conversation)))
}

/// `GET /conversations/{id}`.
pub(super) async fn get_conversation(
    State(state): State<OaiState>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> OaiResult<Json<Value>> {
    let conversation = state.owned(&user, &id).await?;
    Ok(Json(conversation_object(&conversation)))
}

/// `POST /conversations/{id}`: replaces the metadata.
pub(super) async fn update_conversation(
    State(state): State<OaiState>,
    Caller(user): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateBody>,
) -> OaiResult<Json<Value>> {
    let Some(metadata) = body.metadata else {
        return Err(OaiError::invalid("metadata", "metadata is required"));
    };
    let mut conversation = state.owned(&user, &id).await?;
    conversation.set_metadata(metadata).await?;
    Ok(Json(conversation_object(&conversation)))
}

/// `DELETE /conversations/{id}`: the conversation and everything in it.
pub(super) async fn delete_conversation(
    State(state): State<OaiState>,
    Caller(user): Caller,
    Path(id): Path<String>,
) -> OaiResult<Json<Value>> {
    let conversation = state.owned(&user, &id).await?;
    if !state.0.vault.delete_conversation(conversation.id()).await? {
        return Err(OaiError::no_conversation(&id));
    }
    Ok(Json(
        json!({"id": id, "object": "conversation.deleted", "deleted": true}),
    ))
}

/// `POST /conversations/{id}/items`: adds a batch of items, all or none; items with the
/// ids of stored ones are stored once.
pub(super) async fn create_items(
    State(state): State<OaiState>,
    Caller(user): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ItemsBody>,
) -> OaiResult<Json<Value>> {
    let messages = to_messages(&body.items)?;
    let mut conversation = state.owned(&user, &id).await?;
    let stored = if messages.is_empty() {
        Vec::new()
    } else {
        conversation.append(messages).await?
    };
    Ok(Json(list(items_of(&stored), false)))
}

/// `GET /conversations/{id}/items`: a page of items.
pub(super) async fn list_items(
    State(state): State<OaiState>,
    Caller(user): Caller,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
) -> OaiResult<Json<Value>> {
    let window = Window::parse(query)?;
    let conversation = state.owned(&user, &id).await?;
    let messages = conversation.messages().await?;
    Ok(Json(window.page(items_of(&messages))?))
}

/// The message holding the item `item_id`, and the item's index in it.
async fn find(conversation: &Conversation, item_id: &str) -> OaiResult<(Message, usize, Value)> {
    for message in conversation.messages().await? {
        let found = items::to_items(&message)
            .into_iter()
            .find(|(_, item)| item.get("id").and_then(Value::as_str) == Some(item_id));
        if let Some((index, item)) = found {
            return Ok((message, index, item));
        }
    }
    Err(OaiError::no_item(item_id))
}

/// `GET /conversations/{id}/items/{item_id}`.
pub(super) async fn get_item(
    State(state): State<OaiState>,
    Caller(user): Caller,
    Path((id, item_id)): Path<(String, String)>,
) -> OaiResult<Json<Value>> {
    let conversation = state.owned(&user, &id).await?;
    let (_, _, item) = find(&conversation, &item_id).await?;
    Ok(Json(item))
}

/// `DELETE /conversations/{id}/items/{item_id}`: answers with the conversation.
///
/// ChatVault keeps a message's place (`seq`) for good, so an item is deleted by
/// redaction: it is listed under [`DELETED_KEY`] in its message's metadata, and once every
/// item of the message is, the message's content is emptied.
pub(super) async fn delete_item(
    State(state): State<OaiState>,
    Caller(user): Caller,
    Path((id, item_id)): Path<(String, String)>,
) -> OaiResult<Json<Value>> {
    let mut conversation = state.owned(&user, &id).await?;
    let (message, index, _) = find(&conversation, &item_id).await?;
    let mut metadata = message.metadata.clone();
    let mut deleted = items::deleted_indexes(&metadata);
    deleted.push(index);
    deleted.sort_unstable();
    deleted.dedup();
    metadata.insert(DELETED_KEY.into(), json!(deleted));
    let mut after = message.clone();
    after.metadata = metadata.clone();
    let emptied = items::to_items(&after).is_empty();
    if emptied {
        metadata.remove(PATCH_KEY);
    }
    let update = MessageUpdate {
        parts: emptied.then(Vec::new),
        metadata: Some(metadata),
        ..MessageUpdate::default()
    };
    conversation
        .update_message(&message.id, message.revision, &update)
        .await?;
    Ok(Json(conversation_object(&conversation)))
}
