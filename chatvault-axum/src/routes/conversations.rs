//! The conversation routes: list, create, read, change, archive, delete, usage.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chatvault_core::{ConversationId, ConversationPatch, ListOptions};

use super::{ApiResult, ApiState, Caller, JsonBody, NoIdentity, Path, Query};
use crate::error::{ApiError, Problem};
use crate::views::{
    ConversationDetail, ConversationList, ConversationView, CreateConversation, FileView,
    ListQuery, PatchConversation, SummaryView, UsageView,
};

/// The caller's conversations, a page at a time, newest activity first.
#[utoipa::path(
    get, path = "/conversations", tag = "conversations",
    params(ListQuery),
    responses(
        (status = 200, description = "A page", body = ConversationList),
        (status = 400, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        NoIdentity,
    )
)]
pub(super) async fn list_conversations(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<ConversationList>> {
    let mut options = ListOptions::new()
        .limit(query.limit.unwrap_or(ListOptions::DEFAULT_LIMIT))?
        .include_archived(query.include_archived.unwrap_or(false));
    if let Some(cursor) = &query.cursor {
        options = options.cursor(cursor)?;
    }
    let page = state.0.vault.list_conversations(&user, &options).await?;
    let current = match &query.current {
        Some(id) => state
            .0
            .vault
            .get_conversation_for_user(id, &user)
            .await?
            .map(|c| ConversationView::from(c.record().clone())),
        None => None,
    };
    Ok(Json(ConversationList {
        items: page.items.into_iter().map(SummaryView::from).collect(),
        next_cursor: page.next_cursor,
        current,
    }))
}

/// Creates a conversation owned by the caller. Without a title (or with a blank one),
/// the first user message gives it one.
#[utoipa::path(
    post, path = "/conversations", tag = "conversations",
    request_body(content = CreateConversation, description = "Title and metadata, both optional"),
    responses(
        (status = 201, description = "Created", body = ConversationView),
        (status = 400, description = "Bad title or metadata", body = Problem, content_type = "application/problem+json"),
        NoIdentity,
        (status = 413, description = "Metadata too large", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn create_conversation(
    State(state): State<ApiState>,
    Caller(user): Caller,
    JsonBody(body): JsonBody<CreateConversation>,
) -> ApiResult<(StatusCode, Json<ConversationView>)> {
    let mut builder = state.0.vault.new_conversation().user(user);
    if let Some(title) = body.title.filter(|t| !t.trim().is_empty()) {
        builder = builder.title(title);
    }
    if let Some(metadata) = body.metadata {
        builder = builder.metadata(metadata);
    }
    let conversation = builder.create().await?;
    Ok((
        StatusCode::CREATED,
        Json(conversation.record().clone().into()),
    ))
}

/// One conversation: its record and attachments. Its messages come from the message
/// routes, a window at a time.
#[utoipa::path(
    get, path = "/conversations/{id}", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The conversation", body = ConversationDetail),
        NoIdentity,
        (status = 404, description = "No such conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn get_conversation(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path(id): Path<ConversationId>,
) -> ApiResult<Json<ConversationDetail>> {
    let conversation = state.owned(&user, &id).await?;
    Ok(Json(ConversationDetail {
        conversation: conversation.record().clone().into(),
        files: FileView::all(conversation.files()),
    }))
}

/// Changes a conversation's title, metadata or archived flag (fields left out are kept).
#[utoipa::path(
    patch, path = "/conversations/{id}", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    request_body = PatchConversation,
    responses(
        (status = 200, description = "The record after the change", body = ConversationView),
        (status = 400, description = "Bad title or metadata", body = Problem, content_type = "application/problem+json"),
        NoIdentity,
        (status = 404, description = "No such conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn patch_conversation(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path(id): Path<ConversationId>,
    JsonBody(body): JsonBody<PatchConversation>,
) -> ApiResult<Json<ConversationView>> {
    let mut conversation = state.owned(&user, &id).await?;
    conversation
        .patch(ConversationPatch {
            title: body.title,
            metadata: body.metadata,
            archived: body.archived,
            ..ConversationPatch::default()
        })
        .await?;
    Ok(Json(conversation.record().clone().into()))
}

/// Deletes a conversation, its messages and its files' bytes.
#[utoipa::path(
    delete, path = "/conversations/{id}", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 204, description = "Deleted"),
        NoIdentity,
        (status = 404, description = "No such conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn delete_conversation(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path(id): Path<ConversationId>,
) -> ApiResult<StatusCode> {
    state.owned(&user, &id).await?;
    if state.0.vault.delete_conversation(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("conversation not found: {id}")))
    }
}

/// Archives a conversation: it leaves listings unless `include_archived` is set.
#[utoipa::path(
    post, path = "/conversations/{id}/archive", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The record after the change", body = ConversationView),
        NoIdentity,
        (status = 404, description = "No such conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn archive_conversation(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path(id): Path<ConversationId>,
) -> ApiResult<Json<ConversationView>> {
    state.owned(&user, &id).await?;
    Ok(Json(state.0.vault.archive_conversation(&id).await?.into()))
}

/// Brings an archived conversation back into listings.
#[utoipa::path(
    post, path = "/conversations/{id}/unarchive", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The record after the change", body = ConversationView),
        NoIdentity,
        (status = 404, description = "No such conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn unarchive_conversation(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path(id): Path<ConversationId>,
) -> ApiResult<Json<ConversationView>> {
    state.owned(&user, &id).await?;
    Ok(Json(
        state.0.vault.unarchive_conversation(&id).await?.into(),
    ))
}

/// A conversation's token usage totals.
#[utoipa::path(
    get, path = "/conversations/{id}/usage", tag = "conversations",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "Usage totals of its messages", body = UsageView),
        NoIdentity,
        (status = 404, description = "No such conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn conversation_usage(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path(id): Path<ConversationId>,
) -> ApiResult<Json<UsageView>> {
    let conversation = state.owned(&user, &id).await?;
    Ok(Json(conversation.usage().clone().into()))
}
