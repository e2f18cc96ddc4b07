//! OpenAI's Conversations API (`/conversations`, `/conversations/{id}/items`) over the
//! vault: the official SDKs, pointed at the router by their `base_url`, work unchanged.
//!
//! A conversation's id is `conv_` and its ChatVault id; an item's id is its message's id
//! (see [`items`]). Identity and owner checks are the same as the rest of the router's:
//! a conversation of someone else's is a 404.

mod error;
mod items;
mod pages;
mod routes;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{get, post};
use chatvault_core::{ChatVault, Conversation, ConversationId, UserId};

use crate::identity::IdentityResolver;
pub(crate) use error::OaiError;

/// The largest JSON body accepted: a batch of items (at most 20) of large messages.
const MAX_JSON_BODY: usize = 64 * 1024 * 1024;

/// The prefix of a conversation id.
const CONVERSATION_PREFIX: &str = "conv_";

/// What the handlers share.
pub(crate) struct Inner {
    vault: ChatVault,
    identity: Arc<dyn IdentityResolver>,
}

/// The routes' state.
#[derive(Clone)]
pub(crate) struct OaiState(Arc<Inner>);

impl OaiState {
    /// The caller's conversation by its public id, or 404 (also for an id that is not one).
    async fn owned(&self, user: &UserId, public_id: &str) -> Result<Conversation, OaiError> {
        let Some(id) = private_id(public_id) else {
            return Err(OaiError::no_conversation(public_id));
        };
        self.0
            .vault
            .get_conversation_for_user(&id, user)
            .await?
            .ok_or_else(|| OaiError::no_conversation(public_id))
    }
}

/// The public id of a conversation: `conv_` and its ChatVault id.
pub(crate) fn public_id(id: &ConversationId) -> String {
    format!("{CONVERSATION_PREFIX}{id}")
}

/// The ChatVault id of a public conversation id.
pub(crate) fn private_id(public_id: &str) -> Option<ConversationId> {
    let id = public_id.strip_prefix(CONVERSATION_PREFIX)?;
    ConversationId::parse(id).ok()
}

/// The signed-in user, from the router's resolver; 401 without one.
pub(crate) struct Caller(UserId);

impl FromRequestParts<OaiState> for Caller {
    type Rejection = OaiError;

    async fn from_request_parts(parts: &mut Parts, state: &OaiState) -> Result<Self, OaiError> {
        match state.0.identity.resolve(parts).await {
            Some(user) => Ok(Caller(user)),
            None => Err(error::unauthorized()),
        }
    }
}

/// `Path` with OpenAI-shaped rejections.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(OaiError))]
pub(crate) struct Path<T>(T);

/// `Query` with OpenAI-shaped rejections.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(OaiError))]
pub(crate) struct Query<T>(T);

/// A JSON body with OpenAI-shaped rejections (an empty body reads as `{}`).
pub(crate) struct JsonBody<T>(T);

impl<T, S> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = OaiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, OaiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| OaiError::invalid("body", e.body_text()))?;
        let value: serde_json::Value = if bytes.is_empty() {
            serde_json::Value::Object(serde_json::Map::new())
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| OaiError::invalid("body", format!("invalid JSON body: {e}")))?
        };
        if !value.is_object() {
            return Err(OaiError::invalid("body", "the body must be a JSON object"));
        }
        serde_json::from_value(value)
            .map(JsonBody)
            .map_err(|e| OaiError::invalid("body", format!("invalid request body: {e}")))
    }
}

/// The Conversations API router over `vault`, with this identity.
pub(crate) fn build(vault: ChatVault, identity: Arc<dyn IdentityResolver>) -> Router {
    let state = OaiState(Arc::new(Inner { vault, identity }));
    Router::new()
        .route("/conversations", post(routes::create_conversation))
        .route(
            "/conversations/{id}",
            get(routes::get_conversation)
                .post(routes::update_conversation)
                .delete(routes::delete_conversation),
        )
        .route(
            "/conversations/{id}/items",
            get(routes::list_items).post(routes::create_items),
        )
        .route(
            "/conversations/{id}/items/{item_id}",
            get(routes::get_item).delete(routes::delete_item),
        )
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::wrong_method)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_JSON_BODY))
        .with_state(state)
}
