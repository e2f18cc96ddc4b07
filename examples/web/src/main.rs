//! ChatVault's HTTP API and a small chat-history web app, in one server.
//!
//! ```text
//! cargo run -p web-example
//! # open http://127.0.0.1:3000
//! ```
//!
//! - `/api/...`: the [`chatvault_axum`] router (its OpenAPI document at `/api/openapi.json`).
//! - `/`: a single-page chat (plain HTML + JS, embedded in the binary): your
//!   conversations; an assistant that answers each message, its reply shown live as it
//!   streams (server-sent events), with a Stop button that keeps what was written, and a
//!   reload in the middle of a reply picks it up where it was; edit a question, regenerate
//!   an answer, step through the versions ("< 2/3 >") of a message; upload and download
//!   files, rename, archive, delete; sign out. It fits a phone's screen.
//! - `/app/conversations/{id}/reply` and `/app/conversations/{id}/messages/{message_id}/regenerate`:
//!   start a reply (see [`replies`]), which the page follows through the API's stream route.
//!
//! The assistant is the built-in **offline responder** (a canned answer, streamed a word
//! every `CHATVAULT_DEMO_TOKEN_MS`, default 40 ms: no key, no network), or, when
//! `OPENAI_BASE_URL` is set (say `https://api.openai.com/v1`, or `http://localhost:11434/v1`
//! for Ollama), any OpenAI-compatible Chat Completions endpoint, streamed, with
//! `OPENAI_API_KEY` (if it needs one) and `OPENAI_MODEL` (default `gpt-4o-mini`).
//! - `/demo/login`, `/demo/logout`, `/demo/me`: **demo-only sign-in**. Anyone can sign in
//!   as anyone by typing a name: the name goes into a cookie, and the API's identity
//!   resolver trusts that cookie (or an `x-demo-user` header). A real app plugs its own
//!   authentication into [`chatvault_axum::ChatVaultApi::identity`] instead.
//!
//! Storage: the quick start's local backends, `LocalMessages` and `LocalFiles`, under
//! `CHATVAULT_DATA` (default `./chatvault-data`): conversations survive a restart, and the
//! quick start's data shows up here too (signed in as `user-123`).
//!
//! Settings (environment): `CHATVAULT_DATA`, `CHATVAULT_ADDR` (default `127.0.0.1:3000`;
//! port 0 picks a free one), `CHATVAULT_MAX_UPLOAD_MB` (default 100),
//! `CHATVAULT_SIGNING_KEY` (at least 32 bytes: download links then survive a restart;
//! without it a random key is made at start).

#![forbid(unsafe_code)]

mod openai;
mod replies;
mod responder;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use chatvault_axum::ChatVaultApi;
use chatvault_core::{ChatVault, UserId};
use chatvault_local::{LocalFiles, LocalMessages};
use responder::Responder;

/// The demo sign-in cookie.
const COOKIE: &str = "chatvault_demo_user";
/// The demo sign-in header (for scripts and tests).
const HEADER: &str = "x-demo-user";

const INDEX_HTML: &str = include_str!("../static/index.html");
const APP_JS: &str = include_str!("../static/app.js");
const APP_CSS: &str = include_str!("../static/app.css");

/// The demo user named by the request's cookie or header, if any.
fn demo_user(headers: &HeaderMap) -> Option<UserId> {
    if let Some(user) = headers.get(HEADER).and_then(|v| v.to_str().ok()) {
        return valid_name(user).then(|| UserId::parse(user).ok())?;
    }
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    cookies
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .filter(|(_, value)| valid_name(value))
        .and_then(|(_, value)| UserId::parse(value).ok())
}

/// Demo names: 1 to 64 of `A-Z a-z 0-9 . _ @ -` (safe in a cookie as they are).
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
}

/// `POST /demo/login` with a JSON body `{"user": "alice"}`: sets the demo cookie.
async fn login(body: axum::Json<serde_json::Value>) -> Response {
    let Some(user) = body.get("user").and_then(|u| u.as_str()) else {
        return (StatusCode::BAD_REQUEST, "expected {\"user\": \"name\"}").into_response();
    };
    if !valid_name(user) {
        return (
            StatusCode::BAD_REQUEST,
            "a demo name is 1 to 64 letters, digits, '.', '_', '@' or '-'",
        )
            .into_response();
    }
    let cookie = format!("{COOKIE}={user}; Path=/; HttpOnly; SameSite=Strict");
    match HeaderValue::from_str(&cookie) {
        Ok(value) => (StatusCode::NO_CONTENT, [(header::SET_COOKIE, value)]).into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// `POST /demo/logout`: clears the demo cookie.
async fn logout() -> impl IntoResponse {
    (
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            HeaderValue::from_static(
                "chatvault_demo_user=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
            ),
        )],
    )
}

/// `GET /demo/me`: who the cookie says you are (401 if nobody).
async fn me(headers: HeaderMap) -> Response {
    match demo_user(&headers) {
        Some(user) => axum::Json(serde_json::json!({ "user": user.as_str() })).into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// The whole app: the API under `/api`, the reply routes, the demo sign-in, the page.
fn app(
    vault: ChatVault,
    responder: Responder,
    max_upload_bytes: u64,
    signing_key: Option<Vec<u8>>,
) -> Result<Router, chatvault_axum::BuildError> {
    let replies = Router::new()
        .route("/app/conversations/{id}/reply", post(replies::reply))
        .route(
            "/app/conversations/{id}/messages/{message_id}/regenerate",
            post(replies::regenerate),
        )
        .with_state(replies::Replies {
            vault: vault.clone(),
            responder: Arc::new(responder),
        });
    let mut api = ChatVaultApi::new(vault)
        .identity(|parts: &Parts| {
            let user = demo_user(&parts.headers);
            async move { user }
        })
        .max_upload_bytes(max_upload_bytes);
    if let Some(key) = signing_key {
        api = api.signing_key(key);
    }
    let api = api.into_router()?;
    Ok(Router::new()
        .nest("/api", api)
        .merge(replies)
        .route("/demo/login", post(login))
        .route("/demo/logout", post(logout))
        .route("/demo/me", get(me))
        .route("/", get(|| async { Html(INDEX_HTML) }))
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        ))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::var("CHATVAULT_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".to_owned())
        .parse()?;
    let max_upload_mb: u64 = match std::env::var("CHATVAULT_MAX_UPLOAD_MB") {
        Ok(v) => v.parse()?,
        Err(_) => 100,
    };
    let data = std::env::var_os("CHATVAULT_DATA")
        .map_or_else(|| PathBuf::from("chatvault-data"), PathBuf::from);
    let vault = ChatVault::new(
        LocalMessages::open(data.join("messages"))?,
        LocalFiles::new(data.join("files"))?,
    );
    let signing_key = std::env::var("CHATVAULT_SIGNING_KEY")
        .ok()
        .map(String::into_bytes);
    let responder = Responder::from_env()?;
    let answers = responder.describe();
    let app = app(vault, responder, max_upload_mb * 1024 * 1024, signing_key)?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    println!("data in {}", data.display());
    println!("answers: {answers}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
