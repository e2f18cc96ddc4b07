//! The handlers, their OpenAPI descriptions, and the router that joins them.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{FromRequestParts, OriginalUri, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Json, Router};
use chatvault_core::{
    ChatVault, Conversation, ConversationId, ConversationPatch, FileAttachment, FileId,
    ListOptions, Message, MessageRange, NewMessage, Part, Role, SearchOptions, UserId, keys,
};
use futures_util::Stream;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Problem};
use crate::identity::IdentityResolver;
use crate::signing::Signer;
use crate::upload;
use crate::views::{
    AddMessage, ChatForm, ChatResult, ConversationDetail, ConversationList, ConversationView,
    CreateConversation, EventsQuery, FileUrl, FileView, ListQuery, MessagePage, MessageView,
    MessagesQuery, PatchConversation, SearchHitView, SearchPage, SearchQuery, SignedQuery,
    SummaryView, UploadForm, UrlQuery, UsageView,
};

/// The largest JSON body accepted: a message at the core's size limit, plus room.
const MAX_JSON_BODY: usize = chatvault_core::message::MAX_MESSAGE_BYTES + 1024 * 1024;

/// The default size of a message window.
const DEFAULT_WINDOW: usize = 100;

/// The router's settings, shared by every handler.
pub(crate) struct Settings {
    pub(crate) vault: ChatVault,
    pub(crate) identity: Arc<dyn IdentityResolver>,
    pub(crate) max_upload_bytes: u64,
    pub(crate) signer: Signer,
    pub(crate) url_ttl: Duration,
    pub(crate) redirect_downloads: bool,
    pub(crate) poll_interval: Duration,
}

/// The router's state.
#[derive(Clone)]
pub(crate) struct ApiState(pub(crate) Arc<Settings>);

impl ApiState {
    /// The upload limit in force: the router's, or the files backend's when lower.
    fn upload_limit(&self) -> u64 {
        let backend = self.0.vault.files_backend().capabilities().max_file_bytes;
        backend.map_or(self.0.max_upload_bytes, |b| b.min(self.0.max_upload_bytes))
    }

    /// The caller's conversation, or 404 when it does not exist or is someone else's.
    async fn owned(&self, user: &UserId, id: &ConversationId) -> Result<Conversation, ApiError> {
        self.0
            .vault
            .get_conversation_for_user(id, user)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("conversation not found: {id}")))
    }
}

/// The signed-in user: from the app's [`IdentityResolver`]; 401 without one.
pub(crate) struct Caller(UserId);

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        match state.0.identity.resolve(parts).await {
            Some(user) => Ok(Caller(user)),
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// `Path` with problem+json rejections.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct Path<T>(T);

/// `Query` with problem+json rejections.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct Query<T>(T);

/// A JSON object body, with problem+json rejections (a JSON array or `null` where an
/// object is expected is a 400, not an empty object).
pub(crate) struct JsonBody<T>(T);

impl<T, S> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<serde_json::Value>::from_request(req, state).await?;
        if !value.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        serde_json::from_value(value)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
    }
}

type ApiResult<T> = Result<T, ApiError>;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ChatVault API",
        description = "Conversations, messages and files of the signed-in user. \
            Every failure is an RFC 9457 problem document (application/problem+json).",
    ),
    components(schemas(Problem)),
    tags(
        (name = "conversations", description = "The caller's conversations"),
        (name = "messages", description = "Messages, a window at a time"),
        (name = "files", description = "Attachments, streamed"),
        (name = "chat", description = "One call for a chat turn"),
    )
)]
struct ApiDoc;

/// The routes as an `OpenApiRouter`: the one list both the router and the document
/// come from.
fn api_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_conversations, create_conversation))
        .routes(routes!(
            get_conversation,
            patch_conversation,
            delete_conversation
        ))
        .routes(routes!(archive_conversation))
        .routes(routes!(unarchive_conversation))
        .routes(routes!(conversation_usage))
        .routes(routes!(list_messages, add_message))
        .routes(routes!(get_message))
        .routes(routes!(follow_message))
        .routes(routes!(list_files, upload_file))
        .routes(routes!(get_file, delete_file))
        .routes(routes!(file_content))
        .routes(routes!(file_url))
        .routes(routes!(signed_download))
        .routes(routes!(chat))
        .routes(routes!(search))
}

/// The OpenAPI document of the routes.
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = api_routes().split_for_parts();
    doc.paths.paths.insert(
        "/openapi.json".to_owned(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .operation_id(Some("openapi"))
                .summary(Some("This OpenAPI document"))
                .response("200", utoipa::openapi::Response::new("The document")),
        ),
    );
    doc
}

/// The router with its state, and the document it serves.
pub(crate) fn build(state: ApiState) -> (Router, utoipa::openapi::OpenApi) {
    let doc = openapi();
    let served = Arc::new(doc.clone());
    let (router, _) = api_routes().split_for_parts();
    let router = router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = Arc::clone(&served);
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(crate::error::no_route)
        .method_not_allowed_fallback(crate::error::wrong_method)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(axum::middleware::from_fn(crate::early::guard))
        .with_state(state);
    (router, doc)
}

// ---------------------------------------------------------------- conversations

/// The caller's conversations, a page at a time, newest activity first.
#[utoipa::path(
    get, path = "/conversations", tag = "conversations",
    params(ListQuery),
    responses(
        (status = 200, description = "A page", body = ConversationList),
        (status = 400, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No identity", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_conversations(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<ConversationList>> {
    let mut options = ListOptions::new()
        .limit(query.limit.unwrap_or(ListOptions::DEFAULT_LIMIT))
        .include_archived(query.include_archived.unwrap_or(false));
    if let Some(cursor) = query.cursor {
        options = options.cursor(cursor);
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
        (status = 401, description = "No identity", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Metadata too large", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_conversation(
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
        (status = 401, description = "No identity", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_conversation(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path(id): Path<ConversationId>,
) -> ApiResult<Json<ConversationDetail>> {
    let conversation = state.owned(&user, &id).await?;
    Ok(Json(ConversationDetail {
        conversation: conversation.record().clone().into(),
        files: conversation
            .files()
            .iter()
            .cloned()
            .map(FileView::from)
            .collect(),
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
        (status = 401, description = "No identity", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn patch_conversation(
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
        (status = 401, description = "No identity", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_conversation(
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
        (status = 401, description = "No identity", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn archive_conversation(
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
        (status = 401, description = "No identity", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn unarchive_conversation(
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
        (status = 401, description = "No identity", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn conversation_usage(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path(id): Path<ConversationId>,
) -> ApiResult<Json<UsageView>> {
    let conversation = state.owned(&user, &id).await?;
    Ok(Json(conversation.usage().clone().into()))
}

// ---------------------------------------------------------------- messages

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

/// A window of a conversation's messages, in `seq` order: from the start, `after` a seq,
/// `before` a seq, or the `last` n. Never the whole conversation unasked: at most
/// `limit` (default 100) per call, with a cursor for the next window.
#[utoipa::path(
    get, path = "/conversations/{id}/messages", tag = "messages",
    params(("id" = String, Path, description = "Conversation id"), MessagesQuery),
    responses(
        (status = 200, description = "A window", body = MessagePage),
        (status = 400, description = "Bad window", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No identity", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_messages(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path(id): Path<ConversationId>,
    Query(query): Query<MessagesQuery>,
) -> ApiResult<Json<MessagePage>> {
    let range = window(&query)?;
    let conversation = state.owned(&user, &id).await?;
    let page = conversation.messages_page(&range).await?;
    Ok(Json(MessagePage {
        items: page.items.into_iter().map(MessageView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Adds a message (`text`, or `parts`) and returns it as stored. Retrying with the same
/// `id` stores it at most once.
#[utoipa::path(
    post, path = "/conversations/{id}/messages", tag = "messages",
    params(("id" = String, Path, description = "Conversation id")),
    request_body = AddMessage,
    responses(
        (status = 201, description = "Stored", body = MessageView),
        (status = 400, description = "Bad message", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No identity", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conversation of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The id is taken by another message", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Message too large", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn add_message(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path(id): Path<ConversationId>,
    JsonBody(body): JsonBody<AddMessage>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    // The core's rule (Role::validate): a 400 problem before the conversation is looked up.
    let role = Role::parse(body.role.as_deref().unwrap_or("user"))?;
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
    let mut conversation = state.owned(&user, &id).await?;
    let stored = conversation.add(message).await?;
    Ok((StatusCode::CREATED, Json(stored.into())))
}

/// Reads the message at `seq`, or 404.
async fn message_at(conversation: &Conversation, seq: u64) -> ApiResult<Message> {
    let not_found = || ApiError::not_found(format!("message not found: seq {seq}"));
    if seq == 0 {
        return Err(not_found());
    }
    let page = conversation
        .messages_page(&MessageRange::after(seq - 1).limit(1))
        .await?;
    page.items
        .into_iter()
        .find(|m| m.seq == seq)
        .ok_or_else(not_found)
}

/// One message by its `seq`, with its status and revision: poll it to follow a reply
/// while it streams (or use the events route).
#[utoipa::path(
    get, path = "/conversations/{id}/messages/{seq}", tag = "messages",
    params(
        ("id" = String, Path, description = "Conversation id"),
        ("seq" = u64, Path, description = "The message's position, from 1"),
    ),
    responses(
        (status = 200, description = "The message", body = MessageView),
        (status = 401, description = "No identity", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such message or conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_message(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path((id, seq)): Path<(ConversationId, u64)>,
) -> ApiResult<Json<MessageView>> {
    let conversation = state.owned(&user, &id).await?;
    Ok(Json(message_at(&conversation, seq).await?.into()))
}

/// Follows a message as server-sent events: a `message` event (the message as JSON) each
/// time its revision grows, until it is no longer pending or streaming; then the stream
/// ends. A reply whose writer died ends as `interrupted` once its lease runs out. An
/// `error` event (a problem document) ends the stream if the message cannot be read.
#[utoipa::path(
    get, path = "/conversations/{id}/messages/{seq}/events", tag = "messages",
    params(
        ("id" = String, Path, description = "Conversation id"),
        ("seq" = u64, Path, description = "The message's position, from 1"),
        EventsQuery,
    ),
    responses(
        (status = 200, description = "text/event-stream of `message` events", content_type = "text/event-stream", body = String),
        (status = 401, description = "No identity", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such message or conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn follow_message(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path((id, seq)): Path<(ConversationId, u64)>,
    Query(query): Query<EventsQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let conversation = state.owned(&user, &id).await?;
    // The first read answers 404 as a plain response, before the stream starts.
    let first = message_at(&conversation, seq).await?;
    let interval = state.0.poll_interval;
    let start = Follow {
        conversation,
        seq,
        sent_revision: query.after_revision.unwrap_or(0),
        pending: Some(first),
        done: false,
    };
    let stream = futures_util::stream::unfold(start, move |mut f| async move {
        loop {
            if f.done {
                return None;
            }
            let message = match f.pending.take() {
                Some(m) => m,
                None => {
                    tokio::time::sleep(interval).await;
                    match message_at(&f.conversation, f.seq).await {
                        Ok(m) => m,
                        Err(e) => {
                            f.done = true;
                            let event = Event::default()
                                .event("error")
                                .json_data(e.problem())
                                .unwrap_or_else(|_| Event::default().event("error"));
                            return Some((Ok(event), f));
                        }
                    }
                }
            };
            let view = MessageView::from(message);
            let finished = !view.status.is_in_progress();
            if view.revision > f.sent_revision || finished {
                f.sent_revision = view.revision;
                f.done = finished;
                let event = Event::default()
                    .event("message")
                    .id(view.revision.to_string())
                    .json_data(&view)
                    .unwrap_or_else(|_| Event::default().event("message"));
                return Some((Ok(event), f));
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The state of an events stream.
struct Follow {
    conversation: Conversation,
    seq: u64,
    sent_revision: u64,
    pending: Option<Message>,
    done: bool,
}

// ---------------------------------------------------------------- files

/// A conversation's attachments, oldest first.
#[utoipa::path(
    get, path = "/conversations/{id}/files", tag = "files",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The attachments", body = Vec<FileView>),
        (status = 401, description = "No identity", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_files(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path(id): Path<ConversationId>,
) -> ApiResult<Json<Vec<FileView>>> {
    let conversation = state.owned(&user, &id).await?;
    Ok(Json(
        conversation
            .files()
            .iter()
            .cloned()
            .map(FileView::from)
            .collect(),
    ))
}

/// Uploads one file (multipart part `file`), streamed to the files backend. The filename
/// and content type are the part's. Over the upload limit: 413. Any answer but 201
/// leaves nothing stored.
#[utoipa::path(
    post, path = "/conversations/{id}/files", tag = "files",
    params(("id" = String, Path, description = "Conversation id")),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored", body = FileView),
        (status = 400, description = "Not a multipart form with one file part", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No identity", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such conversation of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Over the upload limit", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn upload_file(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path(id): Path<ConversationId>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<FileView>)> {
    let mut conversation = state.owned(&user, &id).await?;
    let mut form = upload::Form::open(&headers, body)?;
    let field = match form.next().await? {
        Some(field) if field.name() == Some("file") => field,
        Some(field) => return Err(not_the_file_part(field.name())),
        None => return Err(ApiError::bad_request("no part named \"file\"")),
    };
    // The file is recorded only once the form has ended after it.
    let check: upload::FollowCheck = Box::new(|next| match next {
        None => Ok(()),
        Some("file") => Err(ApiError::bad_request(
            "one file per upload; send the next in another request",
        )),
        Some(other) => Err(not_the_file_part(Some(other))),
    });
    let file = form
        .attach(&mut conversation, field, state.upload_limit(), check)
        .await?;
    Ok((StatusCode::CREATED, Json(file.into())))
}

/// 400 for a part of an upload other than its `file` part.
fn not_the_file_part(name: Option<&str>) -> ApiError {
    ApiError::bad_request(format!(
        "unexpected form field {:?}; an upload has one part named \"file\"",
        name.unwrap_or("")
    ))
}

/// One attachment's record.
#[utoipa::path(
    get, path = "/conversations/{id}/files/{file_id}", tag = "files",
    params(
        ("id" = String, Path, description = "Conversation id"),
        ("file_id" = String, Path, description = "Attachment id"),
    ),
    responses(
        (status = 200, description = "The attachment", body = FileView),
        (status = 401, description = "No identity", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such file in a conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_file(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path((id, file_id)): Path<(ConversationId, FileId)>,
) -> ApiResult<Json<FileView>> {
    let conversation = state.owned(&user, &id).await?;
    let file = conversation
        .file(&file_id)
        .ok_or_else(|| file_not_found(&file_id))?;
    Ok(Json(file.clone().into()))
}

fn file_not_found(file_id: &FileId) -> ApiError {
    ApiError::not_found(format!("file not found: {file_id}"))
}

/// Deletes an attachment: its bytes and its record.
#[utoipa::path(
    delete, path = "/conversations/{id}/files/{file_id}", tag = "files",
    params(
        ("id" = String, Path, description = "Conversation id"),
        ("file_id" = String, Path, description = "Attachment id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No identity", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such file in a conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_file(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path((id, file_id)): Path<(ConversationId, FileId)>,
) -> ApiResult<StatusCode> {
    let mut conversation = state.owned(&user, &id).await?;
    if conversation.delete_file(&file_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(file_not_found(&file_id))
    }
}

/// `Content-Disposition: attachment` with the filename (RFC 6266).
fn content_disposition(filename: &str) -> HeaderValue {
    HeaderValue::from_str(&keys::content_disposition(filename))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Streams an attachment's bytes as a download response.
async fn stream_file(conversation: &Conversation, file_id: &FileId) -> ApiResult<Response> {
    let file = conversation
        .file(file_id)
        .ok_or_else(|| file_not_found(file_id))?
        .clone();
    let stream = conversation.file_stream(file_id).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "the bytes of file {file_id} are missing from the files backend"
        ))
    })?;
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(file.content_type.as_str()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.size));
    headers.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(&file.filename),
    );
    // Uploaded bytes are never rendered as this origin's pages.
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}

/// An attachment's bytes, streamed with its filename and content type (or, when the
/// router is set to redirect and the files backend has signed URLs, a 307 to one).
#[utoipa::path(
    get, path = "/conversations/{id}/files/{file_id}/content", tag = "files",
    params(
        ("id" = String, Path, description = "Conversation id"),
        ("file_id" = String, Path, description = "Attachment id"),
    ),
    responses(
        (status = 200, description = "The bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 307, description = "Redirect to the files backend's signed URL"),
        (status = 401, description = "No identity", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such file in a conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn file_content(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path((id, file_id)): Path<(ConversationId, FileId)>,
) -> ApiResult<Response> {
    let conversation = state.owned(&user, &id).await?;
    if state.0.redirect_downloads
        && let Some(url) = backend_url(&state, &conversation, &file_id, state.0.url_ttl).await?
    {
        return Ok(Redirect::temporary(&url).into_response());
    }
    stream_file(&conversation, &file_id).await
}

/// The files backend's own signed URL for a file, when it has them and they are web URLs
/// (`http://`, `https://`): a `file://` URL (LocalFiles) is useless to a browser, so for
/// those the router's own signed route is used instead.
async fn backend_url(
    state: &ApiState,
    conversation: &Conversation,
    file_id: &FileId,
    ttl: Duration,
) -> ApiResult<Option<String>> {
    if !state.0.vault.files_backend().capabilities().signed_urls {
        return Ok(None);
    }
    let url = conversation.file_url(file_id, ttl).await?;
    let scheme = url
        .split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    Ok(matches!(scheme.as_deref(), Some("http" | "https")).then_some(url))
}

/// The path the router is mounted under: the request's original path minus the path the
/// router saw.
fn mount_prefix(original: &Uri, seen: &Uri) -> String {
    let full = original.path();
    full.strip_suffix(seen.path())
        .unwrap_or("")
        .trim_end_matches('/')
        .to_owned()
}

/// A download link that works without the caller's credentials until it expires: the
/// files backend's signed URL when it has `http(s)://` ones (S3), otherwise this router's
/// signed download route (a path on this server, HMAC-signed): for memory, and for
/// LocalFiles, whose `file://` URLs a browser cannot use.
#[utoipa::path(
    get, path = "/conversations/{id}/files/{file_id}/url", tag = "files",
    params(
        ("id" = String, Path, description = "Conversation id"),
        ("file_id" = String, Path, description = "Attachment id"),
        UrlQuery,
    ),
    responses(
        (status = 200, description = "The link", body = FileUrl),
        (status = 400, description = "Bad expires_in", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No identity", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such file in a conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn file_url(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path((id, file_id)): Path<(ConversationId, FileId)>,
    Query(query): Query<UrlQuery>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
) -> ApiResult<Json<FileUrl>> {
    let ttl = match query.expires_in {
        None => state.0.url_ttl,
        Some(s) if (1..=crate::MAX_URL_TTL.as_secs()).contains(&s) => Duration::from_secs(s),
        Some(s) => {
            return Err(ApiError::bad_request(format!(
                "invalid expires_in: must be 1..={} seconds, got {s}",
                crate::MAX_URL_TTL.as_secs()
            )));
        }
    };
    let conversation = state.owned(&user, &id).await?;
    if conversation.file(&file_id).is_none() {
        return Err(file_not_found(&file_id));
    }
    let expires_at = chatvault_core::now()
        + chrono::Duration::from_std(ttl).map_err(|_| ApiError::bad_request("bad expires_in"))?;
    if let Some(url) = backend_url(&state, &conversation, &file_id, ttl).await? {
        return Ok(Json(FileUrl { url, expires_at }));
    }
    let expires = expires_at.timestamp();
    let sig = state.0.signer.sign(&id, &file_id, expires);
    let prefix = mount_prefix(&original, &uri);
    Ok(Json(FileUrl {
        url: format!("{prefix}/downloads/{id}/{file_id}?expires={expires}&sig={sig}"),
        expires_at,
    }))
}

/// The signed download route: streams the file when the link's signature is valid and it
/// has not expired (403 otherwise). Needs no identity: the signature is the credential.
#[utoipa::path(
    get, path = "/downloads/{id}/{file_id}", tag = "files",
    params(
        ("id" = String, Path, description = "Conversation id"),
        ("file_id" = String, Path, description = "Attachment id"),
        SignedQuery,
    ),
    responses(
        (status = 200, description = "The bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 403, description = "Bad signature, or expired", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The file is gone", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn signed_download(
    State(state): State<ApiState>,
    Path((id, file_id)): Path<(ConversationId, FileId)>,
    Query(query): Query<SignedQuery>,
) -> ApiResult<Response> {
    if !state
        .0
        .signer
        .verify(&id, &file_id, query.expires, &query.sig)
    {
        return Err(ApiError::forbidden(
            "this download link's signature is not valid",
        ));
    }
    if query.expires < chatvault_core::now().timestamp() {
        return Err(ApiError::forbidden("this download link has expired"));
    }
    let conversation = state
        .0
        .vault
        .get_conversation(&id)
        .await?
        .ok_or_else(|| file_not_found(&file_id))?;
    stream_file(&conversation, &file_id).await
}

// ---------------------------------------------------------------- chat and search

/// The largest `conversation_id` or `title` form field.
const MAX_SHORT_FIELD: usize = keys::MAX_TITLE_LEN;

/// One chat turn: creates the conversation unless `conversation_id` names one of the
/// caller's, uploads the `file` parts (streamed), and adds the user's `message` with a
/// file part for each upload. Text fields must come before the files.
///
/// Any answer but 201 leaves nothing of the turn stored: no new conversation, no file,
/// no message (except a 504, whose message may have been stored).
#[utoipa::path(
    post, path = "/chat", tag = "chat",
    request_body(content = ChatForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "The turn was stored", body = ChatResult),
        (status = 400, description = "Bad form", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No identity", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "conversation_id names no conversation of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "A file over the upload limit", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn chat(
    State(state): State<ApiState>,
    Caller(user): Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<ChatResult>)> {
    let mut form = upload::Form::open(&headers, body)?;
    let mut turn = Turn::default();
    match take_turn(&state, &user, &mut form, &mut turn).await {
        Ok(result) => Ok((StatusCode::CREATED, Json(result))),
        Err(error) => {
            turn.undo(&state).await;
            Err(error)
        }
    }
}

/// What a chat turn has read and stored so far.
#[derive(Default)]
struct Turn {
    conversation_id: Option<ConversationId>,
    title: Option<String>,
    text: Option<String>,
    conversation: Option<Conversation>,
    /// The conversation was created by this turn.
    created: bool,
    files: Vec<FileAttachment>,
    /// The message may have been stored (its outcome is unknown): its files stay.
    keep: bool,
}

impl Turn {
    /// The turn's conversation: the caller's one named by `conversation_id`, or a new
    /// one, made when first needed.
    async fn conversation(
        &mut self,
        state: &ApiState,
        user: &UserId,
    ) -> ApiResult<&mut Conversation> {
        let conversation = match (self.conversation.take(), &self.conversation_id) {
            (Some(c), _) => c,
            (None, Some(id)) => state.owned(user, id).await?,
            (None, None) => {
                let mut builder = state.0.vault.new_conversation().user(user.clone());
                if let Some(title) = self.title.take() {
                    builder = builder.title(title);
                }
                let c = builder.create().await?;
                self.created = true;
                c
            }
        };
        Ok(self.conversation.insert(conversation))
    }

    /// Removes what the turn stored (best effort: a failure is logged).
    async fn undo(self, state: &ApiState) {
        let Some(mut conversation) = self.conversation else {
            return;
        };
        if self.created {
            if let Err(error) = state.0.vault.delete_conversation(conversation.id()).await {
                tracing::warn!(
                    conversation = %conversation.id(), %error,
                    "could not delete the conversation of a refused chat turn"
                );
            }
        } else if !self.keep {
            upload::discard(&mut conversation, &self.files).await;
        }
    }
}

/// Reads the form of a chat turn and stores it, keeping in `turn` what it stored.
async fn take_turn(
    state: &ApiState,
    user: &UserId,
    form: &mut upload::Form,
    turn: &mut Turn,
) -> ApiResult<ChatResult> {
    while let Some(field) = form.next().await? {
        let name = field.name().unwrap_or("").to_owned();
        match name.as_str() {
            "conversation_id" | "title" if turn.conversation.is_some() => {
                return Err(chat_field_error(Some(&name), true));
            }
            "conversation_id" => {
                let raw = upload::read_text(field, &name, MAX_SHORT_FIELD).await?;
                turn.conversation_id = Some(raw.parse()?);
            }
            "title" => turn.title = Some(upload::read_text(field, &name, MAX_SHORT_FIELD).await?),
            "message" => {
                let limit = chatvault_core::message::MAX_MESSAGE_BYTES;
                turn.text = Some(upload::read_text(field, &name, limit).await?);
            }
            "file" => {
                // The file is recorded only once the part after it is one that may follow.
                let has_text = turn.text.is_some();
                let check: upload::FollowCheck = Box::new(move |next| match next {
                    Some("file" | "message") => Ok(()),
                    None if has_text => Ok(()),
                    other => Err(chat_field_error(other, true)),
                });
                let limit = state.upload_limit();
                let conversation = turn.conversation(state, user).await?;
                let file = form.attach(conversation, field, limit, check).await?;
                turn.files.push(file);
            }
            other => return Err(chat_field_error(Some(other), false)),
        }
    }
    let text = turn
        .text
        .take()
        .ok_or_else(|| chat_field_error(None, false))?;
    let mut parts = vec![Part::text(text)];
    for file in &turn.files {
        let mut part = Part::attachment(file.id.clone(), Some(file.content_type.clone()));
        if let Part::File(f) = &mut part {
            f.filename = Some(file.filename.clone());
        }
        parts.push(part);
    }
    let conversation = turn.conversation(state, user).await?;
    let message = match conversation
        .add(NewMessage::with_parts(Role::User, parts))
        .await
    {
        Ok(message) => message,
        Err(error) => {
            turn.keep = error.kind() == chatvault_core::ErrorKind::OutcomeUnknown;
            return Err(error.into());
        }
    };
    Ok(ChatResult {
        conversation: conversation.record().clone().into(),
        message: message.into(),
        files: turn.files.iter().cloned().map(FileView::from).collect(),
        created: turn.created,
    })
}

/// 400 for a part of a chat form that does not belong where it is (`None`: the form
/// ended without a message).
fn chat_field_error(name: Option<&str>, after_files: bool) -> ApiError {
    match name {
        None => ApiError::bad_request("the form has no \"message\" field"),
        Some(name @ ("conversation_id" | "title")) if after_files => ApiError::bad_request(
            format!("the form field {name:?} must come before the files"),
        ),
        Some(other) => ApiError::bad_request(format!(
            "unexpected form field {other:?}; expected conversation_id, title, message, file"
        )),
    }
}

/// Full-text search over the caller's messages; 501 when the messages backend has none.
#[utoipa::path(
    get, path = "/search", tag = "messages",
    params(SearchQuery),
    responses(
        (status = 200, description = "Hits, best first", body = SearchPage),
        (status = 400, description = "Blank or too long a query", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No identity", body = Problem, content_type = "application/problem+json"),
        (status = 501, description = "The messages backend has no search", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn search(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Query(query): Query<SearchQuery>,
) -> ApiResult<Json<SearchPage>> {
    let mut options = SearchOptions::new().limit(query.limit.unwrap_or(20));
    options.include_archived = query.include_archived.unwrap_or(false);
    if let Some(cursor) = query.cursor {
        options = options.cursor(cursor);
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
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}
