//! The branch routes: edit a message, regenerate a reply, a message's versions, switch to
//! another branch, rewind, and fork into a new conversation.
//!
//! A message is addressed here by its id (the versions of one place share nothing else);
//! each route checks the owner first, like every conversation route. Nothing is ever
//! deleted: an edit or a regenerated reply is a new sibling that becomes active, and the
//! old versions stay one switch away.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chatvault_core::{Conversation, ConversationId, Message, MessageId, Role};

use super::messages::new_message;
use super::{ApiResult, ApiState, Caller, JsonBody, NoIdentity, OptionalJsonBody, Path};
use crate::error::{ApiError, Problem};
use crate::views::{AddMessage, ConversationView, ForkConversation, MessageView, SiblingsView};

/// The stored message `message_id` of `conversation` (on any branch), or 404.
async fn stored(conversation: &Conversation, message_id: &MessageId) -> ApiResult<Message> {
    conversation
        .message(message_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("message not found: {message_id}")))
}

/// `message` as stored in `conversation`, with its place among its versions.
fn view(conversation: &Conversation, message: Message) -> MessageView {
    let versions = conversation.version_of(message.seq);
    MessageView::with_versions(message, versions)
}

/// Stores a new version of a message: a sibling (it follows what the message follows)
/// with the body's content, which becomes the active leaf. The old version and what
/// follows it stay, one switch away. The body is the one of `POST .../messages`; without
/// a `role` the new version keeps the old one's. Retrying with the same `id` stores it at
/// most once.
#[utoipa::path(
    post, path = "/conversations/{id}/messages/{message_id}/edit", tag = "branches",
    params(
        ("id" = String, Path, description = "Conversation id"),
        ("message_id" = String, Path, description = "The id of the message to edit"),
    ),
    request_body = AddMessage,
    responses(
        (status = 201, description = "The new version, as stored", body = MessageView),
        (status = 400, description = "Bad message", body = Problem, content_type = "application/problem+json"),
        NoIdentity,
        (status = 404, description = "No such message or conversation of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id is taken by another message", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Message too large", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn edit_message(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path((id, message_id)): Path<(ConversationId, MessageId)>,
    JsonBody(body): JsonBody<AddMessage>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    let keep_role = body.role.is_none();
    let mut replacement = new_message(body, None)?;
    let mut conversation = state.owned(&user, &id).await?;
    if keep_role {
        replacement.role = stored(&conversation, &message_id).await?.role;
    }
    let edited = conversation
        .branches()
        .edit(&message_id, replacement)
        .await?;
    Ok((StatusCode::CREATED, Json(view(&conversation, edited))))
}

/// Stores a new version of an assistant reply, given in the body (the body of
/// `POST .../messages`; `role`, when given, must be `assistant`): a sibling of the reply,
/// which becomes the active leaf. The old reply stays, one switch away. Retrying with the
/// same `id` stores it at most once. To stream the new reply while a model writes it, use
/// `chatvault_core::Branches::regenerate` in the app and follow the stored message with
/// the events route.
#[utoipa::path(
    post, path = "/conversations/{id}/messages/{message_id}/regenerate", tag = "branches",
    params(
        ("id" = String, Path, description = "Conversation id"),
        ("message_id" = String, Path, description = "The id of the assistant reply to regenerate"),
    ),
    request_body = AddMessage,
    responses(
        (status = 201, description = "The new reply, as stored", body = MessageView),
        (status = 400, description = "Bad reply, or the message is not an assistant reply", body = Problem, content_type = "application/problem+json"),
        NoIdentity,
        (status = 404, description = "No such message or conversation of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id is taken by another message", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Message too large", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn regenerate_reply(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path((id, message_id)): Path<(ConversationId, MessageId)>,
    JsonBody(body): JsonBody<AddMessage>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    let reply = new_message(body, Some(Role::Assistant))?;
    if reply.role != Role::Assistant {
        return Err(ApiError::bad_request(format!(
            "a regenerated reply has the role assistant, not {}",
            reply.role.as_str()
        )));
    }
    let mut conversation = state.owned(&user, &id).await?;
    let old = stored(&conversation, &message_id).await?;
    if old.role != Role::Assistant {
        return Err(ApiError::bad_request(format!(
            "message {message_id} is a {} message, not an assistant reply: edit it instead",
            old.role.as_str()
        )));
    }
    let regenerated = conversation.branches().edit(&message_id, reply).await?;
    Ok((StatusCode::CREATED, Json(view(&conversation, regenerated))))
}

/// The versions of a message: it and its siblings (the messages that follow the same
/// one), oldest first, with its position among them ("< 2/3 >" is `index + 1` of the
/// number of items).
#[utoipa::path(
    get, path = "/conversations/{id}/messages/{message_id}/siblings", tag = "branches",
    params(
        ("id" = String, Path, description = "Conversation id"),
        ("message_id" = String, Path, description = "Message id"),
    ),
    responses(
        (status = 200, description = "The versions", body = SiblingsView),
        NoIdentity,
        (status = 404, description = "No such message or conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn message_versions(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path((id, message_id)): Path<(ConversationId, MessageId)>,
) -> ApiResult<Json<SiblingsView>> {
    let mut conversation = state.owned(&user, &id).await?;
    let siblings = conversation.branches().siblings(&message_id).await?;
    Ok(Json(SiblingsView {
        items: MessageView::all_in(siblings.messages, &conversation),
        index: siblings.index,
    }))
}

/// Makes the branch through a message active: the active leaf becomes the newest
/// message reached from it (always taking the newest follower). Answers the
/// conversation with its new `active_leaf`.
#[utoipa::path(
    post, path = "/conversations/{id}/messages/{message_id}/switch", tag = "branches",
    params(
        ("id" = String, Path, description = "Conversation id"),
        ("message_id" = String, Path, description = "A message of the branch to make active"),
    ),
    responses(
        (status = 200, description = "The conversation after the switch", body = ConversationView),
        NoIdentity,
        (status = 404, description = "No such message or conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn switch_branch(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path((id, message_id)): Path<(ConversationId, MessageId)>,
) -> ApiResult<Json<ConversationView>> {
    let mut conversation = state.owned(&user, &id).await?;
    conversation.branches().switch(&message_id).await?;
    Ok(Json(conversation.record().clone().into()))
}

/// Rewinds to a message: it becomes the active leaf and the messages after it leave the
/// active path. Nothing is deleted: a switch to any of them brings them back, and the
/// next message added follows this one, on a new branch. Answers the conversation with
/// its new `active_leaf`.
#[utoipa::path(
    post, path = "/conversations/{id}/messages/{message_id}/rewind", tag = "branches",
    params(
        ("id" = String, Path, description = "Conversation id"),
        ("message_id" = String, Path, description = "The message to rewind to"),
    ),
    responses(
        (status = 200, description = "The conversation after the rewind", body = ConversationView),
        NoIdentity,
        (status = 404, description = "No such message or conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn rewind(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path((id, message_id)): Path<(ConversationId, MessageId)>,
) -> ApiResult<Json<ConversationView>> {
    let mut conversation = state.owned(&user, &id).await?;
    conversation.branches().rewind(&message_id).await?;
    Ok(Json(conversation.record().clone().into()))
}

/// A new conversation of the caller's whose history is this one's path from the first
/// message to the one named (copied: the two are independent from then on). The body is
/// optional: `id`, `title` (default: the source's) and `metadata` of the new
/// conversation. Retrying with the same `id` finishes an interrupted fork instead of
/// making a second one.
#[utoipa::path(
    post, path = "/conversations/{id}/messages/{message_id}/fork", tag = "branches",
    params(
        ("id" = String, Path, description = "Conversation id"),
        ("message_id" = String, Path, description = "The last message the fork holds"),
    ),
    request_body(content = Option<ForkConversation>, description = "The new conversation's id, title and metadata, all optional; the body may be left out"),
    responses(
        (status = 201, description = "The new conversation", body = ConversationView),
        (status = 400, description = "Bad id, title or metadata", body = Problem, content_type = "application/problem+json"),
        NoIdentity,
        (status = 404, description = "No such message or conversation of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id is taken by another conversation", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Metadata too large", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn fork(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path((id, message_id)): Path<(ConversationId, MessageId)>,
    OptionalJsonBody(body): OptionalJsonBody<ForkConversation>,
) -> ApiResult<(StatusCode, Json<ConversationView>)> {
    let mut conversation = state.owned(&user, &id).await?;
    let mut into = state.0.vault.new_conversation().user(user);
    let title = body.title.filter(|t| !t.trim().is_empty());
    if let Some(title) = title.or_else(|| conversation.title().map(str::to_owned)) {
        into = into.title(title);
    }
    if let Some(fork_id) = body.id {
        into = into.id(fork_id);
    }
    if let Some(metadata) = body.metadata {
        into = into.metadata(metadata);
    }
    let forked = conversation.branches().fork(&message_id, into).await?;
    Ok((StatusCode::CREATED, Json(forked.record().clone().into())))
}
