//! Errors in the shape the OpenAI SDKs parse: `{"error": {"message", "type", "param",
//! "code"}}`, with the status codes they map to their exception classes.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ApiError;

/// An error of the OpenAI Conversations routes.
#[derive(Debug)]
pub(crate) struct OaiError {
    status: StatusCode,
    message: String,
    param: Option<&'static str>,
    code: Option<String>,
}

impl OaiError {
    /// 400 `invalid_request_error`, naming the parameter at fault.
    pub(crate) fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        OaiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            param: Some(param),
            code: Some("invalid_value".into()),
        }
    }

    /// 404 for a conversation that does not exist or is someone else's.
    pub(crate) fn no_conversation(id: &str) -> Self {
        OaiError {
            status: StatusCode::NOT_FOUND,
            message: format!("Conversation with id '{id}' not found."),
            param: None,
            code: Some("not_found".into()),
        }
    }

    /// 404 for an item the conversation does not hold.
    pub(crate) fn no_item(id: &str) -> Self {
        OaiError {
            status: StatusCode::NOT_FOUND,
            message: format!("Item with id '{id}' not found."),
            param: None,
            code: Some("not_found".into()),
        }
    }

    /// The error class the OpenAI API names for this status.
    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            400..=499 => "invalid_request_error",
            _ => "server_error",
        }
    }
}

/// Every ChatVault error keeps the router's own mapping (status, what is logged, what is
/// hidden from the client); only the body's shape changes.
impl From<ApiError> for OaiError {
    fn from(err: ApiError) -> Self {
        let problem = err.problem();
        OaiError {
            status: err.status(),
            message: problem.detail,
            param: None,
            code: Some(problem.kind),
        }
    }
}

impl From<chatvault_core::Error> for OaiError {
    fn from(err: chatvault_core::Error) -> Self {
        ApiError::from(err).into()
    }
}

impl From<JsonRejection> for OaiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::from(rejection).into()
    }
}

impl From<QueryRejection> for OaiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::from(rejection).into()
    }
}

impl From<PathRejection> for OaiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::from(rejection).into()
    }
}

impl IntoResponse for OaiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "message": self.message,
            "type": self.kind(),
            "param": self.param,
            "code": self.code,
        }});
        (self.status, Json(body)).into_response()
    }
}

/// The fallback for unknown paths.
pub(crate) async fn no_route() -> OaiError {
    OaiError {
        status: StatusCode::NOT_FOUND,
        message: "Unknown route.".into(),
        param: None,
        code: Some("not_found".into()),
    }
}

/// The answer for a known path with another method.
pub(crate) async fn wrong_method() -> OaiError {
    OaiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: "This path does not answer this method.".into(),
        param: None,
        code: Some("method_not_allowed".into()),
    }
}

/// 401: the identity resolver found no user.
pub(crate) fn unauthorized() -> OaiError {
    OaiError {
        status: StatusCode::UNAUTHORIZED,
        message: "This request carries no identity the server accepts.".into(),
        param: None,
        code: Some("invalid_api_key".into()),
    }
}
