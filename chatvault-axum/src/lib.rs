#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod early;
mod error;
mod identity;
mod openai;
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
    CreateConversation, DeltaView, EventsQuery, FileUrl, FileView, ForkConversation, HitBranchView,
    ListQuery, MessagePage, MessageView, MessagesQuery, PatchConversation, RedactMessage,
    RedactedView, SearchHitView, SearchPage, SearchQuery, SiblingsView, SignedQuery, StatusView,
    StreamQuery, SummaryView, UrlQuery, UsageView,
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
    /// when it has `http(s)://` ones (S3), instead of streaming the bytes through this
    /// server (default off). Other backends' downloads are streamed either way.
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

    /// The OpenAI Conversations API router (`/conversations`, `/conversations/{id}/items`,
    /// in the shapes of OpenAI's API, for its SDKs) over the same vault and identity: mount
    /// it under `/v1` (or any prefix) and point an SDK's `base_url` at it. See the README,
    /// "Use it as an OpenAI Conversations server". Only the identity is used of the
    /// settings.
    pub fn into_openai_router(self) -> Result<Router, BuildError> {
        let identity = self.identity.ok_or(BuildError::NoIdentity)?;
        Ok(openai::build(self.vault, identity))
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
