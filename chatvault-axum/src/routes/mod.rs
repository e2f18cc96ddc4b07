//! The handlers, their OpenAPI descriptions, and the router that joins them: one module
//! per resource, and here what they share (state, extractors, the route list).

mod branches;
mod chat;
mod conversations;
mod events;
mod files;
mod messages;
mod redact;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::{Json, Router};
use chatvault_core::{ChatVault, Conversation, ConversationId, UserId};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, Problem};
use crate::identity::IdentityResolver;
use crate::signing::Signer;

/// The largest JSON body accepted: a message at the core's size limit, plus room.
const MAX_JSON_BODY: usize = chatvault_core::MAX_MESSAGE_BYTES + 1024 * 1024;

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

/// A JSON object body that may be left out: a request without a `Content-Type` and with
/// an empty body reads as `T::default()`; any other body is read as [`JsonBody`] reads it.
pub(crate) struct OptionalJsonBody<T>(T);

impl<T, S> axum::extract::FromRequest<S> for OptionalJsonBody<T>
where
    T: serde::de::DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        if req.headers().contains_key(axum::http::header::CONTENT_TYPE) {
            let JsonBody(value) = JsonBody::from_request(req, state).await?;
            return Ok(OptionalJsonBody(value));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| match rejection.status() {
                axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::too_large(rejection.body_text())
                }
                _ => ApiError::bad_request(rejection.body_text()),
            })?;
        if bytes.is_empty() {
            Ok(OptionalJsonBody(T::default()))
        } else {
            Err(ApiError::bad_request(
                "a request body needs Content-Type: application/json",
            ))
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The 401 answer of every route that needs an identity, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 401,
    description = "No identity",
    content_type = "application/problem+json"
)]
#[allow(dead_code)] // Only its description is used.
struct NoIdentity(Problem);

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
        (name = "branches", description = "Versions of messages: edit, regenerate, switch, rewind, fork"),
        (name = "files", description = "Attachments, streamed"),
        (name = "chat", description = "One call for a chat turn"),
    )
)]
struct ApiDoc;

/// The routes as an `OpenApiRouter`: the one list both the router and the document
/// come from.
fn api_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(
            conversations::list_conversations,
            conversations::create_conversation
        ))
        .routes(routes!(
            conversations::get_conversation,
            conversations::patch_conversation,
            conversations::delete_conversation
        ))
        .routes(routes!(conversations::archive_conversation))
        .routes(routes!(conversations::unarchive_conversation))
        .routes(routes!(conversations::conversation_usage))
        .routes(routes!(messages::list_messages, messages::add_message))
        .routes(routes!(messages::get_message))
        .routes(routes!(redact::redact_message))
        .routes(routes!(branches::edit_message))
        .routes(routes!(branches::regenerate_reply))
        .routes(routes!(branches::message_versions))
        .routes(routes!(branches::switch_branch))
        .routes(routes!(branches::rewind))
        .routes(routes!(branches::fork))
        .routes(routes!(events::follow_message))
        .routes(routes!(events::stream_reply))
        .routes(routes!(events::stop_reply))
        .routes(routes!(files::list_files, files::upload_file))
        .routes(routes!(files::get_file, files::delete_file))
        .routes(routes!(files::file_content))
        .routes(routes!(files::file_url))
        .routes(routes!(files::signed_download))
        .routes(routes!(chat::chat))
        .routes(routes!(messages::search))
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
