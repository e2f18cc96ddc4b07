//! The official OpenAI Python SDKs (`openai`, `openai-agents`), unmodified, against the
//! Conversations router on 127.0.0.1: `tests/python/conversations_clients.py`.
//!
//! Needs `CHATVAULT_OPENAI_PYTHON`, the python of the virtual environment that
//! `scripts/openai-clients.sh install` makes (`eval "$(scripts/openai-clients.sh env)"`).
//! Without it the test is ignored, with the reason; `scripts/test.sh` sets
//! `CHATVAULT_REQUIRE_OPENAI_CLIENTS=1`, which makes it run and fail when the clients are
//! missing.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::Router;
use axum::http::request::Parts;
use chatvault_axum::ChatVaultApi;
use chatvault_core::{ChatVault, Role, UserId};
use chatvault_memory::{MemoryFiles, MemoryMessages};

/// The bearer token (the SDK's API key) is the user id: a test resolver.
fn bearer(parts: &Parts) -> impl Future<Output = Option<UserId>> + use<> {
    let user = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|v| UserId::parse(v).ok());
    async move { user }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(chatvault_openai_clients),
    ignore = "needs the OpenAI Python clients: run scripts/openai-clients.sh install and set \
              CHATVAULT_OPENAI_PYTHON (eval \"$(scripts/openai-clients.sh env)\")"
)]
async fn the_official_python_sdks_work_unchanged() {
    let python = std::env::var("CHATVAULT_OPENAI_PYTHON").expect(
        "CHATVAULT_OPENAI_PYTHON is not set: run scripts/openai-clients.sh install, then \
         eval \"$(scripts/openai-clients.sh env)\"",
    );
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let router = ChatVaultApi::new(vault.clone())
        .identity(bearer)
        .into_openai_router()
        .unwrap();
    let app = Router::new().nest("/v1", router);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    // A conversation written through ChatVault's own API, for the SDK to read and extend.
    let alice = UserId::parse("alice").unwrap();
    let mut native = vault.new_conversation().user(alice).create().await.unwrap();
    native
        .add_message(Role::User, "Written by ChatVault")
        .await
        .unwrap();
    native.add_message(Role::Assistant, "Noted.").await.unwrap();

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/conversations_clients.py"
    );
    let run = tokio::process::Command::new(&python)
        .arg(script)
        .arg(format!("http://{addr}/v1"))
        .arg(native.id().as_str())
        // No proxy, no real key, no telemetry: only this server is talked to.
        .env("NO_PROXY", "127.0.0.1")
        .env("OPENAI_API_KEY", "unused")
        .env("OPENAI_AGENTS_DISABLE_TRACING", "1")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the Python clients took over 5 minutes")
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the script failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for step in [
        "conversations.create",
        "conversations.items.list (auto-pagination",
        "conversations.delete",
        "OpenAIConversationsSession.get_items (with and without limit)",
        "OpenAIConversationsSession.clear_session",
        "all steps passed",
    ] {
        assert!(stdout.contains(step), "step {step:?} missing:\n{stdout}");
    }

    // What the SDK wrote reads back through ChatVault's own API.
    native.refresh().await.unwrap();
    let messages = native.messages().await.unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[2].role, Role::User);
    assert_eq!(messages[2].content(), "Written by the SDK");
    server.abort();
}
