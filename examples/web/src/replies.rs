//! The app's own routes that start a reply: `POST /app/conversations/{id}/reply` answers
//! the question at the end of the active branch, `POST
//! /app/conversations/{id}/messages/{message_id}/regenerate` writes a new version of an
//! answer. Each stores the reply (pending) and answers 202 with it at once; the responder
//! then writes it in a task of its own, and the page follows it over the API's stream
//! route (`/api/conversations/{id}/messages/{message_id}/stream`) and may stop it
//! (`.../stop`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chatvault_axum::{ApiError, MessageView};
use chatvault_core::{
    ChatVault, Conversation, ConversationId, Error, MessageId, ReplyOptions, ReplyWriter, Role,
};

use crate::demo_user;
use crate::responder::{CHECKPOINT_EVERY, Responder};

/// What the reply routes share.
#[derive(Clone)]
pub(crate) struct Replies {
    pub(crate) vault: ChatVault,
    pub(crate) responder: Arc<Responder>,
}

/// How the app's replies are stored: checkpointed often, so that the page shows them
/// word by word.
fn reply_options() -> ReplyOptions {
    ReplyOptions::default().checkpoint_interval(CHECKPOINT_EVERY)
}

impl Replies {
    /// The signed-in user's conversation `id`, or the answer to give instead.
    async fn owned(&self, headers: &HeaderMap, id: &str) -> Result<Conversation, ApiError> {
        let user = demo_user(headers).ok_or_else(ApiError::unauthorized)?;
        let missing = || ApiError::not_found("conversation not found");
        let id: ConversationId = id.parse().map_err(|_| missing())?;
        self.vault
            .get_conversation_for_user(&id, &user)
            .await?
            .ok_or_else(missing)
    }

    /// Hands the reply to the responder and answers 202 with it.
    fn start(&self, conversation: Conversation, reply: ReplyWriter) -> Response {
        let versions = conversation.version_of(reply.message().seq);
        let mut view = MessageView::from(reply.message().clone());
        (view.sibling_index, view.sibling_count) = versions;
        let responder = Arc::clone(&self.responder);
        tokio::spawn(async move { responder.answer(conversation, reply).await });
        (StatusCode::ACCEPTED, Json(view)).into_response()
    }
}

/// `POST /app/conversations/{id}/reply`: an answer to the user message that ends the
/// active branch (409 when the branch ends with anything else: nothing to answer, or an
/// answer already there).
pub(crate) async fn reply(
    State(app): State<Replies>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let mut conversation = app.owned(&headers, &id).await?;
    let last = conversation.last_messages(1).await?;
    if !last.first().is_some_and(|m| m.role == Role::User) {
        return Err(Error::Conflict {
            message: "there is no new question to answer".into(),
        }
        .into());
    }
    let reply = conversation.begin_reply(reply_options()).await?;
    Ok(app.start(conversation, reply))
}

/// `POST /app/conversations/{id}/messages/{message_id}/regenerate`: a new version of
/// the answer `message_id`, written by the responder.
pub(crate) async fn regenerate(
    State(app): State<Replies>,
    headers: HeaderMap,
    Path((id, message_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let mut conversation = app.owned(&headers, &id).await?;
    let missing = || ApiError::not_found("message not found");
    let message_id: MessageId = message_id.parse().map_err(|_| missing())?;
    let old = conversation
        .message(&message_id)
        .await?
        .ok_or_else(missing)?;
    if old.role != Role::Assistant {
        return Err(ApiError::bad_request("only an answer can be regenerated"));
    }
    let reply = conversation
        .branches()
        .regenerate(&message_id, reply_options())
        .await?;
    Ok(app.start(conversation, reply))
}
