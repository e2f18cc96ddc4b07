//! The attachment routes: list, upload (streamed), read, delete, download (streamed, or
//! a redirect to the files backend), and download links (the backend's, or this router's
//! signed route).

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use chatvault_core::{Conversation, ConversationId, FileId, keys};

use super::{ApiResult, ApiState, Caller, NoIdentity, Path, Query};
use crate::error::{ApiError, Problem};
use crate::upload;
use crate::views::{FileUrl, FileView, SignedQuery, UploadForm, UrlQuery};

/// A conversation's attachments, oldest first.
#[utoipa::path(
    get, path = "/conversations/{id}/files", tag = "files",
    params(("id" = String, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The attachments", body = Vec<FileView>),
        NoIdentity,
        (status = 404, description = "No such conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn list_files(
    State(state): State<ApiState>,
    Caller(user): Caller,
    Path(id): Path<ConversationId>,
) -> ApiResult<Json<Vec<FileView>>> {
    let conversation = state.owned(&user, &id).await?;
    Ok(Json(FileView::all(conversation.files())))
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
        NoIdentity,
        (status = 404, description = "No such conversation of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Over the upload limit", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn upload_file(
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
        NoIdentity,
        (status = 404, description = "No such file in a conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn get_file(
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
        NoIdentity,
        (status = 404, description = "No such file in a conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn delete_file(
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
        NoIdentity,
        (status = 404, description = "No such file in a conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn file_content(
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
        NoIdentity,
        (status = 404, description = "No such file in a conversation of the caller's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(super) async fn file_url(
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
    let expires_at = chatvault_core::backend::now()
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
pub(super) async fn signed_download(
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
    if query.expires < chatvault_core::backend::now().timestamp() {
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
