//! Errors as RFC 9457 problem details (`application/problem+json`).

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chatvault_core::{Error, ErrorKind};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of a problem document.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// How long a client should wait before retrying after a temporary backend failure.
const RETRY_AFTER_SECONDS: u64 = 1;

/// An RFC 9457 problem document: what every failed call answers with.
///
/// `type` is a relative URI naming the class of problem (`problem:not-found`, ...); `kind`
/// repeats it as a plain word for clients that match on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem class, e.g. `problem:not-found`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the problem class.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this case.
    pub detail: String,
    /// The problem class as one word: `not_found`, `invalid_input`, `too_large`, ...
    pub kind: String,
}

/// An error answered as a problem document; every handler of the router returns it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, title: &'static str, detail: String) -> Self {
        ApiError {
            status,
            kind,
            title,
            detail,
            retry_after: None,
        }
    }

    /// 400: the request was malformed or a value was rejected.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "Invalid input",
            detail.into(),
        )
    }

    /// 401: the identity resolver found no user for the request.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Not signed in",
            "this request carries no identity the application accepts".into(),
        )
    }

    /// 403: a signed download link whose signature does not match or has expired.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            detail.into(),
        )
    }

    /// 404: nothing with this id that the caller may see.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not found",
            detail.into(),
        )
    }

    /// 413: an upload or a value over its limit.
    pub fn too_large(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "Too large",
            detail.into(),
        )
    }

    /// 405 for a known path with another method.
    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
            "this path does not answer this method".into(),
        )
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The problem document.
    pub fn problem(&self) -> Problem {
        Problem {
            type_uri: format!("problem:{}", self.kind.replace('_', "-")),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            kind: self.kind.to_owned(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let detail = err.to_string();
        match err.kind() {
            ErrorKind::InvalidInput => Self::bad_request(detail),
            ErrorKind::NotFound => Self::not_found(detail),
            ErrorKind::AlreadyExists => Self::new(
                StatusCode::CONFLICT,
                "already_exists",
                "Already exists",
                detail,
            ),
            ErrorKind::Conflict => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                "Conflict: another writer got there first; nothing was written",
                detail,
            ),
            ErrorKind::TooLarge => Self::too_large(detail),
            ErrorKind::NotSupported => Self::new(
                StatusCode::NOT_IMPLEMENTED,
                "not_supported",
                "Not supported by this storage backend",
                detail,
            ),
            ErrorKind::OutcomeUnknown => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "outcome_unknown",
                "Outcome unknown: the write may or may not have been stored; \
                 retry with the same message id, which stores it at most once",
                detail,
            ),
            _ if err.is_temporary() => {
                let mut e = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "Storage temporarily unavailable",
                    detail,
                );
                e.retry_after = Some(RETRY_AFTER_SECONDS);
                e
            }
            // PermissionDenied (the backend's own credentials), Corrupt and permanent
            // backend failures: nothing the client can change by asking differently. The
            // details (paths, keys) go to the server's log, not to the client.
            kind => {
                tracing::error!(error = %err, ?kind, "chatvault backend failure");
                let (kind, what) = match kind {
                    ErrorKind::PermissionDenied => (
                        "permission_denied",
                        "the storage backend was refused access",
                    ),
                    ErrorKind::Corrupt => ("corrupt", "stored data failed a check"),
                    _ => ("backend", "the storage backend failed"),
                };
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    kind,
                    "Storage failure",
                    format!("{what}; the server log has the details"),
                )
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::too_large(rejection.body_text());
        }
        Self::bad_request(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request(rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.problem())).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The router's fallback for unknown paths: a 404 problem.
pub(crate) async fn no_route() -> ApiError {
    ApiError::not_found("no such route")
}

/// The router's answer for a known path with another method: a 405 problem.
pub(crate) async fn wrong_method() -> ApiError {
    ApiError::method_not_allowed()
}
