//! The message routes: windows of a conversation's messages, one message, adding one,
//! and full-text search.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chatvault_core::{
    Conversation, ConversationId, ListOptions, Message, MessageRange, NewMessage, Role,
    SearchOptions,
};

use super::{ApiResult, ApiState, Caller, JsonBody, NoIdentity, Path, Query};
use crate::error::{ApiError, Problem};
use crate::views::{
    AddMessage, MessagePage, MessageView, MessagesQuery, SearchHitView, SearchPage, SearchQuery,
};

/// The default size of a message window.
const DEFAULT_WINDOW: usize = 100;

/// The window a messages query asks for.
fn window(query: &MessagesQuery) -> ApiResult<MessageRange> {
    let limit = query.limit.unwrap_or(DEFAULT_WINDOW);
    if limit == 0 || limit > ListOptions::MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "invalid limit: must be 1..={}, got {limit}",
            ListOptions::MAX_LIMIT
        )));
    }
    let range = match (query.after, query.before, query.last) {
        (None, None, None) => MessageRange::after(0).limit(limit),
        (Some(after), None, None) => MessageRange::after(after).limit(limit),
        (None, Some(before), None) => MessageRange::before(before).limit(limit),
        (None, None, Some(last)) => {
            if last == 0 || last > ListOptions::MAX_LIMIT {
                return Err(ApiError::bad_request(format!(
                    "invalid last: must be 1..={}, got {last}",
                    ListOptions::MAX_LIMIT
                )));
            }
            MessageRange::last(last)
        }
        _ => {
            return Err(ApiError::bad_request(
                "give at most one of after, before and last",
            ));
        }
    };
    match &query.cursor {
        Some(cursor) => Ok(range.continue_from(cursor)?),
        None => Ok(range),
    }
}

/// A window of the active branch's messages (the path from the first message to the
/// active leaf), in `seq` order: from the start, `after` a seq, `before` a seq, or the
/// `last` n; `leaf` pages the branch that ends at another message instead. Never the
/// whole conversation unasked: at most `limit` (default 100) per call, with a cursor for
/// the next window.
#[utoipa::path(
    get, path = "/conversations/{id}/messages", tag = "messages",
    params(("id" = String, Path, description = "Conversation id"), MessagesQuery),
    responses(
        (status = 200, description = "A window", body = MessagePage),
        (status = 400, description = "Bad window", body = Problem, content_type = "application/problem+json"),
        NoIdentity,
        (status = 404, description = "No such conversation of the caller's, or no message at `leaf`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn list_messages(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path(id): Path<ConversationId>,
    Query(query): Query<MessagesQuery>,
) -> ApiResult<Json<MessagePage>> {
    let range = window(&query)?;
    let conversation = state.owned(&user, &id).await?;
    let page = match query.leaf {
        None => conversation.messages_page(&range).await?,
        Some(leaf) if conversation.record().tree().contains(leaf) => {
            conversation.branch_page(leaf, &range).await?
        }
        Some(leaf) => return Err(seq_not_found(leaf)),
    };
    Ok(Json(MessagePage {
        items: MessageView::all_in(page.items, &conversation),
        next_cursor: page.next_cursor,
    }))
}

/// The message a body of `POST .../messages` (or of an edit or a regeneration) describes,
/// with `role` when the body gives none. A 400 problem for a bad role or content, before
/// anything is read or stored.
pub(super) fn new_message(body: AddMessage, role: Option<Role>) -> ApiResult<NewMessage> {
    // The core's rule (Role::validate).
    let role = match body.role.as_deref() {
        Some(given) => Role::parse(given)?,
        None => role.unwrap_or(Role::User),
    };
    let mut message = match (body.text, body.parts) {
        (Some(text), None) => NewMessage::new(role, text),
        (None, Some(parts)) => NewMessage::with_parts(role, parts),
        _ => {
            return Err(ApiError::bad_request("give exactly one of text and parts"));
        }
    };
    if let Some(id) = body.id {
        message = message.with_id(id);
    }
    if let Some(metadata) = body.metadata {
        message = message.with_metadata(metadata);
    }
    if let Some(usage) = body.usage {
        message = message.with_usage(usage.into());
    }
    Ok(message)
}

/// Adds a message (`text`, or `parts`) at the end of the active branch and returns it as
/// stored. Retrying with the same `id` stores it at most once.
#[utoipa::path(
    post, path = "/conversations/{id}/messages", tag = "messages",
    params(("id" = String, Path, description = "Conversation id")),
    request_body = AddMessage,
    responses(
        (status = 201, description = "Stored", body = MessageView),
        (status = 400, description = "Bad message", body = Problem, content_type = "application/problem+json"),
        NoIdentity,
        (status = 404, description = "No such conversation of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id is taken by another message", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Message too large", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn add_message(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path(id): Path<ConversationId>,
    JsonBody(body): JsonBody<AddMessage>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    let message = new_message(body, None)?;
    // One backend write: the owner is checked inside it, not by a read before it.
    let appended = state.0.vault.append_as(&user, &id, vec![message]).await?;
    let stored = appended.messages.into_iter().next().ok_or_else(|| {
        ApiError::from(chatvault_core::Error::backend(
            "messages",
            "append_messages returned no message for one appended",
        ))
    })?;
    let versions = appended.record.tree().version_of(stored.seq);
    Ok((
        StatusCode::CREATED,
        Json(MessageView::with_versions(stored, versions)),
    ))
}

/// 404 for a `seq` that names no message.
fn seq_not_found(seq: u64) -> ApiError {
    ApiError::not_found(format!("message not found: seq {seq}"))
}

/// Reads the message at `seq` (on any branch), or 404.
pub(super) async fn message_at(conversation: &Conversation, seq: u64) -> ApiResult<Message> {
    if seq == 0 {
        return Err(seq_not_found(seq));
    }
    let page = conversation
        .all_messages_page(&MessageRange::after(seq - 1).limit(1))
        .await?;
    page.items
        .into_iter()
        .find(|m| m.seq == seq)
        .ok_or_else(|| seq_not_found(seq))
}

/// One message by its `seq` (on any branch), with its status and revision: poll it to
/// follow a reply while it streams (or use the events route).
#[utoipa::path(
    get, path = "/conversations/{id}/messages/{seq}", tag = "messages",
    params(
        ("id" = String, Path, description = "Conversation id"),
        ("seq" = u64, Path, description = "The message's number, from 1"),
    ),
    responses(
        (status = 200, description = "The message", body = MessageView),
        NoIdentity,
        (status = 404, description = "No such message or conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn get_message(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path((id, seq)): Path<(ConversationId, u64)>,
) -> ApiResult<Json<MessageView>> {
    let conversation = state.owned(&user, &id).await?;
    let message = message_at(&conversation, seq).await?;
    let versions = conversation.version_of(seq);
    Ok(Json(MessageView::with_versions(message, versions)))
}

/// Full-text search over the caller's messages; 501 when the messages backend has none.
#[utoipa::path(
    get, path = "/search", tag = "messages",
    params(SearchQuery),
    responses(
        (status = 200, description = "Hits, best first", body = SearchPage),
        (status = 400, description = "A query that is blank, over 1024 bytes, or holds a control character (other than tab, CR, LF)", body = Problem, content_type = "application/problem+json"),
        NoIdentity,
        (status = 501, description = "The messages backend has no search", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn search(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Query(query): Query<SearchQuery>,
) -> ApiResult<Json<SearchPage>> {
    let mut options = SearchOptions::new()
        .limit(query.limit.unwrap_or(SearchOptions::DEFAULT_LIMIT))?
        .include_archived(query.include_archived.unwrap_or(false));
    if let Some(cursor) = &query.cursor {
        options = options.cursor(cursor)?;
    }
    let page = state.0.vault.search(&user, &query.q, &options).await?;
    Ok(Json(SearchPage {
        items: page
            .items
            .into_iter()
            .map(|hit| SearchHitView {
                conversation: hit.conversation.into(),
                message: hit.message.into(),
                snippet: hit.snippet,
                branch: hit.branch.map(Into::into),
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}
