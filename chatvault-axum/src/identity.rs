//! Who is calling: the application's own authentication, plugged into the router.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;

use async_trait::async_trait;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chatvault_core::UserId;

/// Resolves the user a request is made by, from the application's own authentication
/// (a session cookie, a bearer token, a header set by a trusted proxy, ...): the role of
/// the Python router's `get_user_id` dependency.
///
/// `None` means "no identity": the router answers 401 and touches nothing. Every
/// conversation route then checks that the conversation belongs to this user, and answers
/// 404 when it does not, so its existence does not leak.
///
/// Any `Fn(&Parts) -> impl Future<Output = Option<UserId>>` is a resolver; so is
/// [`HeaderIdentity`] and [`ExtractorIdentity`].
///
/// ```
/// use axum::http::request::Parts;
/// use chatvault_core::UserId;
///
/// // Reads a user id that an authenticating proxy put in a header.
/// let resolver = |parts: &Parts| {
///     let user = parts
///         .headers
///         .get("x-authenticated-user")
///         .and_then(|v| v.to_str().ok())
///         .and_then(|v| UserId::parse(v).ok());
///     async move { user }
/// };
/// # fn takes(_: impl chatvault_axum::IdentityResolver) {}
/// # takes(resolver);
/// ```
#[async_trait]
pub trait IdentityResolver: Send + Sync + 'static {
    /// The user making this request, or `None`.
    async fn resolve(&self, parts: &mut Parts) -> Option<UserId>;
}

#[async_trait]
impl<F, Fut> IdentityResolver for F
where
    F: Fn(&Parts) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<UserId>> + Send,
{
    async fn resolve(&self, parts: &mut Parts) -> Option<UserId> {
        self(parts).await
    }
}

/// Takes the user id from a request header, as given.
///
/// Only for a deployment where a trusted proxy in front of the app authenticates the
/// user and sets this header (removing any the client sent), and for tests and demos:
/// on its own it lets any client claim to be anyone.
#[derive(Clone, Debug)]
pub struct HeaderIdentity {
    header: axum::http::HeaderName,
}

impl HeaderIdentity {
    /// Reads the user id from the header `name`.
    pub fn new(name: axum::http::HeaderName) -> Self {
        HeaderIdentity { header: name }
    }
}

#[async_trait]
impl IdentityResolver for HeaderIdentity {
    async fn resolve(&self, parts: &mut Parts) -> Option<UserId> {
        let value = parts.headers.get(&self.header)?.to_str().ok()?;
        UserId::parse(value).ok()
    }
}

/// Uses an axum extractor of the application (its own session or token extractor) as
/// the identity: the request has an identity when the extractor succeeds, and the user
/// id is what it converts into.
///
/// ```
/// use axum::extract::FromRequestParts;
/// use axum::http::request::Parts;
/// use chatvault_axum::ExtractorIdentity;
/// use chatvault_core::UserId;
///
/// /// The app's own extractor.
/// struct SignedInUser(UserId);
///
/// impl<S: Send + Sync> FromRequestParts<S> for SignedInUser {
///     type Rejection = ();
///     async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ()> {
///         // ... check a session cookie here ...
///         # let _ = parts;
///         Err(())
///     }
/// }
///
/// impl From<SignedInUser> for UserId {
///     fn from(user: SignedInUser) -> UserId {
///         user.0
///     }
/// }
///
/// let identity = ExtractorIdentity::<SignedInUser>::new();
/// # fn takes(_: impl chatvault_axum::IdentityResolver) {}
/// # takes(identity);
/// ```
pub struct ExtractorIdentity<E, S = ()> {
    state: S,
    extractor: PhantomData<fn() -> E>,
}

impl<E> ExtractorIdentity<E> {
    /// The identity given by the extractor `E`, which needs no state.
    pub fn new() -> Self {
        Self::with_state(())
    }
}

impl<E, S> ExtractorIdentity<E, S> {
    /// The identity given by the extractor `E`, run with the app's state `S` (a session
    /// store, a token verifier's keys, ...).
    pub fn with_state(state: S) -> Self {
        ExtractorIdentity {
            state,
            extractor: PhantomData,
        }
    }
}

impl<E> Default for ExtractorIdentity<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E, S> fmt::Debug for ExtractorIdentity<E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtractorIdentity")
            .field("extractor", &std::any::type_name::<E>())
            .field("state", &std::any::type_name::<S>())
            .finish()
    }
}

#[async_trait]
impl<E, S> IdentityResolver for ExtractorIdentity<E, S>
where
    E: FromRequestParts<S> + Into<UserId> + 'static,
    S: Send + Sync + 'static,
{
    async fn resolve(&self, parts: &mut Parts) -> Option<UserId> {
        E::from_request_parts(parts, &self.state)
            .await
            .ok()
            .map(Into::into)
    }
}
