//! ChatVault's HTTP API as an [`axum::Router`] an application mounts under any prefix.
//!
//! The routes serve one signed-in user's conversations to the app's frontend: list, create,
//! read (messages a window at a time), rename, archive, delete, add messages, upload and
//! download attachments, follow a reply while it streams, search, and `POST /chat` (create
//! the conversation if needed, upload files, add the user's message, in one call).
//!
//! - **Identity** comes from the application's own authentication, through an
//!   [`IdentityResolver`] (a closure over the request's parts, an extractor of the app's,
//!   ...). A request without one gets 401. Every conversation route checks the
//!   conversation's owner; someone else's conversation answers 404, exactly like one that
//!   does not exist.
//! - **Errors** are RFC 9457 problem documents ([`Problem`]), mapped from
//!   [`chatvault_core::ErrorKind`]: 400 invalid input, 401, 404, 409 conflict, 413 too
//!   large, 501 not supported by the backend, 503 with `Retry-After` for temporary backend
//!   failures, 504 when a write's outcome is unknown, 500 for the rest.
//! - **Uploads** stream from the multipart body to the files backend: memory stays bounded
//!   whatever the file's size, and a file over the limit is refused with 413 while it
//!   streams, leaving nothing stored.
//! - **Downloads** stream through the router, with the original filename (RFC 6266). A
//!   download link (`.../url`) is the files backend's own signed URL when it has them, and
//!   otherwise a link to this router's HMAC-signed download route, which expires.
//! - **OpenAPI**: `GET /openapi.json` serves the document generated from the handlers.
//!
//! ```no_run
//! use axum::Router;
//! use axum::http::request::Parts;
//! use chatvault_axum::ChatVaultApi;
//! use chatvault_core::{ChatVault, UserId};
//! use chatvault_memory::{MemoryFiles, MemoryMessages};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
//! let api = ChatVaultApi::new(vault)
//!     .identity(|parts: &Parts| {
//!         // Your auth here: a session lookup, a verified token, ...
//!         let user = parts.extensions.get::<UserId>().cloned();
//!         async move { user }
//!     })
//!     .max_upload_bytes(100 * 1024 * 1024)
//!     .into_router()?;
//! let app = Router::new().nest("/api/chat", api);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # Routes
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/conversations` | a page of the caller's conversations (`limit`, `cursor`, `include_archived`, `current`) |
//! | POST | `/conversations` | create one (`title`, `metadata`) |
//! | GET | `/conversations/{id}` | its record and attachments |
//! | PATCH | `/conversations/{id}` | change `title`, `metadata`, `archived` |
//! | DELETE | `/conversations/{id}` | delete it, its messages and its files' bytes |
//! | POST | `/conversations/{id}/archive` | archive |
//! | POST | `/conversations/{id}/unarchive` | unarchive |
//! | GET | `/conversations/{id}/usage` | token usage totals |
//! | GET | `/conversations/{id}/messages` | a window: `after`, `before`, `last`, `limit`, `cursor` |
//! | POST | `/conversations/{id}/messages` | add a message (`text` or `parts`) |
//! | GET | `/conversations/{id}/messages/{seq}` | one message, with its status and revision |
//! | GET | `/conversations/{id}/messages/{seq}/events` | server-sent events following a reply until it ends |
//! | GET | `/conversations/{id}/files` | the attachments |
//! | POST | `/conversations/{id}/files` | upload one (multipart part `file`) |
//! | GET | `/conversations/{id}/files/{file_id}` | one attachment's record |
//! | DELETE | `/conversations/{id}/files/{file_id}` | delete one |
//! | GET | `/conversations/{id}/files/{file_id}/content` | its bytes, streamed |
//! | GET | `/conversations/{id}/files/{file_id}/url` | a download link that expires |
//! | GET | `/downloads/{id}/{file_id}` | the signed download route (`expires`, `sig`; no identity needed) |
//! | POST | `/chat` | multipart `conversation_id?`, `title?`, `message`, `file`*: all in one call |
//! | GET | `/search` | full-text search (`q`); 501 when the backend has none |
//! | GET | `/openapi.json` | the OpenAPI document |

#![forbid(unsafe_code)]

mod error;
mod identity;
mod routes;
mod signing;
mod upload;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use chatvault_core::ChatVault;

pub use error::{ApiError, PROBLEM_JSON, Problem};
pub use identity::{ExtractorIdentity, HeaderIdentity, IdentityResolver};
pub use signing::MIN_SIGNING_KEY_BYTES;
pub use views::{
    AddMessage, ChatResult, ConversationDetail, ConversationList, ConversationView,
    CreateConversation, EventsQuery, FileUrl, FileView, ListQuery, MessagePage, MessageView,
    MessagesQuery, PatchConversation, SearchHitView, SearchPage, SearchQuery, SignedQuery,
    StatusView, SummaryView, UrlQuery, UsageView,
};

/// The default upload limit: 100 MiB per file.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;

/// The default lifetime of a download link: one hour.
pub const DEFAULT_URL_TTL: Duration = Duration::from_secs(3600);

/// The longest lifetime of a download link: seven days.
pub const MAX_URL_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why [`ChatVaultApi::into_router`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// No [`ChatVaultApi::identity`] was given: without one every request would be 401.
    NoIdentity,
    /// The signing key is shorter than [`MIN_SIGNING_KEY_BYTES`].
    ShortSigningKey,
    /// No signing key was given and the operating system gave no randomness for one.
    NoRandomness,
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BuildError::NoIdentity => "no identity resolver was given (ChatVaultApi::identity)",
            BuildError::ShortSigningKey => "the download signing key is shorter than 32 bytes",
            BuildError::NoRandomness => {
                "no signing key was given and the operating system gave no randomness for one"
            }
        })
    }
}

impl std::error::Error for BuildError {}

/// Builds the router: the vault, the identity, and the limits.
///
/// ```
/// use chatvault_axum::{ChatVaultApi, HeaderIdentity};
/// use chatvault_core::ChatVault;
/// use chatvault_memory::{MemoryFiles, MemoryMessages};
///
/// let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
/// let router: axum::Router = ChatVaultApi::new(vault)
///     // Demo only: trusts a header any client can set.
///     .identity(HeaderIdentity::new(axum::http::HeaderName::from_static("x-user-id")))
///     .max_upload_bytes(10 * 1024 * 1024)
///     .signing_key(b"a secret of at least thirty-two bytes!!".to_vec())
///     .into_router()
///     .expect("valid settings");
/// ```
#[must_use = "call .into_router() to get the Router"]
pub struct ChatVaultApi {
    vault: ChatVault,
    identity: Option<Arc<dyn IdentityResolver>>,
    max_upload_bytes: u64,
    signing_key: Option<Vec<u8>>,
    url_ttl: Duration,
    redirect_downloads: bool,
    poll_interval: Duration,
}

impl std::fmt::Debug for ChatVaultApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatVaultApi")
            .field("vault", &self.vault)
            .field("identity", &self.identity.is_some())
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field(
                "signing_key",
                &self.signing_key.as_ref().map(|_| "<redacted>"),
            )
            .field("url_ttl", &self.url_ttl)
            .field("redirect_downloads", &self.redirect_downloads)
            .field("poll_interval", &self.poll_interval)
            .finish()
    }
}

impl ChatVaultApi {
    /// The API over `vault`, with the default limits; set an identity before building.
    pub fn new(vault: ChatVault) -> Self {
        ChatVaultApi {
            vault,
            identity: None,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            signing_key: None,
            url_ttl: DEFAULT_URL_TTL,
            redirect_downloads: false,
            poll_interval: Duration::from_millis(500),
        }
    }

    /// Who is calling: see [`IdentityResolver`]. Required.
    pub fn identity(mut self, identity: impl IdentityResolver) -> Self {
        self.identity = Some(Arc::new(identity));
        self
    }

    /// The largest file one upload may store (default [`DEFAULT_MAX_UPLOAD_BYTES`]); the
    /// files backend's own `max_file_bytes`, when lower, wins. Larger uploads get 413.
    pub fn max_upload_bytes(mut self, limit: u64) -> Self {
        self.max_upload_bytes = limit;
        self
    }

    /// The key that signs download links of the router's own download route (at least
    /// [`MIN_SIGNING_KEY_BYTES`] bytes). Without one a random key is made, and links stop
    /// working when the process restarts or on another instance behind a load balancer:
    /// give every instance the same secret key.
    pub fn signing_key(mut self, key: Vec<u8>) -> Self {
        self.signing_key = Some(key);
        self
    }

    /// How long download links work by default (default [`DEFAULT_URL_TTL`], at most
    /// [`MAX_URL_TTL`]).
    pub fn url_ttl(mut self, ttl: Duration) -> Self {
        self.url_ttl = ttl.min(MAX_URL_TTL);
        self
    }

    /// Answer `GET .../content` with a redirect (307) to the files backend's signed URL
    /// when it has them, instead of streaming the bytes through this server (default off).
    pub fn redirect_downloads(mut self, yes: bool) -> Self {
        self.redirect_downloads = yes;
        self
    }

    /// How often the events route re-reads a streaming reply (default 500 ms).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// The router, to mount with [`Router::nest`] under any prefix.
    pub fn into_router(self) -> Result<Router, BuildError> {
        let (router, _) = self.into_parts()?;
        Ok(router)
    }

    /// The router and the OpenAPI document it serves at `/openapi.json`.
    pub fn into_parts(self) -> Result<(Router, utoipa::openapi::OpenApi), BuildError> {
        let identity = self.identity.ok_or(BuildError::NoIdentity)?;
        let signer = match self.signing_key {
            Some(key) => signing::Signer::new(&key).ok_or(BuildError::ShortSigningKey)?,
            None => signing::Signer::random().ok_or(BuildError::NoRandomness)?,
        };
        let state = routes::ApiState(Arc::new(routes::Settings {
            vault: self.vault,
            identity,
            max_upload_bytes: self.max_upload_bytes,
            signer,
            url_ttl: self.url_ttl,
            redirect_downloads: self.redirect_downloads,
            poll_interval: self.poll_interval,
        }));
        Ok(routes::build(state))
    }
}

/// The router over `vault` with this identity and the default settings: shorthand for
/// `ChatVaultApi::new(vault).identity(identity).into_router()`.
pub fn router(vault: ChatVault, identity: impl IdentityResolver) -> Result<Router, BuildError> {
    ChatVaultApi::new(vault).identity(identity).into_router()
}

/// The OpenAPI document of the routes, without building a router.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes::openapi()
}
