//! The web example's assistant on an OpenAI-compatible endpoint: a small fake Chat
//! Completions server streams answers, and the example, started with `OPENAI_BASE_URL`
//! pointing at it, stores them live; an error of the server is a failed reply that says
//! why; a stop closes the model's stream.

// Test support code outside #[test] fns: its unwraps are test assertions.
#![allow(clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::WebServer;
use futures_util::StreamExt;
use serde_json::{Value, json};

/// What the fake server saw.
#[derive(Default)]
struct Seen {
    /// Each request: its `Authorization` header and its body.
    requests: Mutex<Vec<(Option<String>, Value)>>,
    /// A slow answer's stream was dropped before its end (the client went away).
    abandoned: AtomicBool,
}

/// Sets `abandoned` when the slow answer's stream is dropped before its last chunk.
struct Abandon(Arc<Seen>, bool);

impl Drop for Abandon {
    fn drop(&mut self) {
        if !self.1 {
            self.0.abandoned.store(true, Ordering::SeqCst);
        }
    }
}

fn event(data: &Value) -> String {
    format!("data: {data}\n\n")
}

fn delta(text: &str) -> String {
    event(
        &json!({ "object": "chat.completion.chunk", "model": "fake-model",
        "choices": [{ "index": 0, "delta": { "content": text }, "finish_reason": null }] }),
    )
}

/// `POST /v1/chat/completions`: the answer depends on the last user message:
/// "fail please" is a 401, "slow please" streams 100 chunks 100 ms apart, anything else
/// streams "Hello, wörld!" in pieces, then the usage, then `[DONE]`.
async fn completions(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    seen.requests.lock().unwrap().push((auth, body.0.clone()));
    let last = body.0["messages"]
        .as_array()
        .and_then(|m| m.last())
        .map(|m| m["content"].clone())
        .unwrap_or_default();
    let sse = [("content-type", "text/event-stream")];
    match last.as_str() {
        Some("fail please") => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": { "message": "Incorrect API key provided",
                "type": "invalid_request_error", "code": "invalid_api_key" } })),
        )
            .into_response(),
        Some("slow please") => {
            let guard = Arc::new(Mutex::new(Abandon(seen.clone(), false)));
            let chunks = futures_util::stream::iter(0..100).then(move |i| {
                let guard = guard.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if i == 99 {
                        guard.lock().unwrap().1 = true;
                        return Ok::<_, Infallible>("data: [DONE]\n\n".to_owned());
                    }
                    Ok(delta(&format!("word{i} ")))
                }
            });
            (sse, Body::from_stream(chunks)).into_response()
        }
        _ => {
            let mut out = String::from(": a comment line\n\n");
            out +=
                &event(&json!({ "choices": [{ "index": 0, "delta": { "role": "assistant" } }] }));
            for piece in ["Hel", "lo, ", "wö", "rld!"] {
                out += &delta(piece);
            }
            out += &event(&json!({ "model": "fake-model", "choices": [],
                "usage": { "prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15 } }));
            out += "data: [DONE]\n\n";
            // In several writes, split inside a line and inside a character.
            let bytes = out.into_bytes();
            let cut = bytes.len() / 3;
            let parts: Vec<Result<Vec<u8>, Infallible>> = vec![
                Ok(bytes[..cut].to_vec()),
                Ok(bytes[cut..2 * cut].to_vec()),
                Ok(bytes[2 * cut..].to_vec()),
            ];
            (sse, Body::from_stream(futures_util::stream::iter(parts))).into_response()
        }
    }
}

/// The fake server on a free port; its base URL (with `/v1`).
async fn fake_openai(seen: Arc<Seen>) -> String {
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(completions))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v1")
}

/// A client of the example, signed in as alice.
struct Alice {
    client: reqwest::Client,
    base: String,
}

impl Alice {
    async fn post(&self, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("x-demo-user", "alice");
        if let Some(body) = body {
            request = request.json(&body);
        }
        let res = request.send().await.unwrap();
        assert!(res.status().is_success(), "{path}: {}", res.status());
        res.json().await.unwrap()
    }

    /// A new conversation with `question`, and the reply the assistant starts.
    async fn ask(&self, question: &str) -> (String, Value) {
        let c = self
            .post("/api/conversations", Some(json!({ "title": question })))
            .await;
        let id = c["id"].as_str().unwrap().to_owned();
        self.post(
            &format!("/api/conversations/{id}/messages"),
            Some(json!({ "role": "user", "text": question })),
        )
        .await;
        let reply = self
            .post(&format!("/app/conversations/{id}/reply"), None)
            .await;
        (id, reply)
    }

    /// The reply's message once it is no longer in progress.
    async fn finished(&self, id: &str, seq: u64) -> Value {
        for _ in 0..200 {
            let m: Value = self
                .client
                .get(format!(
                    "{}/api/conversations/{id}/messages/{seq}",
                    self.base
                ))
                .header("x-demo-user", "alice")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if !matches!(m["status"].as_str(), Some("pending" | "streaming")) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the reply never finished");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assistant_streams_from_an_openai_compatible_endpoint() {
    let seen = Arc::new(Seen::default());
    let endpoint = fake_openai(seen.clone()).await;
    let data = tempfile::tempdir().unwrap();
    let server = WebServer::start_with(
        data.path(),
        &[
            ("OPENAI_BASE_URL", &format!("{endpoint}/")),
            ("OPENAI_API_KEY", "sk-test-123"),
            ("OPENAI_MODEL", "fake-model"),
        ],
    );
    let alice = Alice {
        client: reqwest::Client::new(),
        base: server.base.clone(),
    };

    // An answer, streamed in pieces, stored whole with its usage.
    let (id, reply) = alice.ask("Say hello").await;
    assert_eq!(reply["status"], "pending");
    assert_eq!(reply["role"], "assistant");
    let answer = alice.finished(&id, 2).await;
    assert_eq!(answer["status"], "complete");
    assert_eq!(answer["content"], "Hello, wörld!");
    assert_eq!(answer["usage"]["input_tokens"], 11);
    assert_eq!(answer["usage"]["output_tokens"], 4);
    assert_eq!(answer["usage"]["model"], "fake-model");
    {
        let requests = seen.requests.lock().unwrap();
        let (auth, body) = &requests[0];
        assert_eq!(auth.as_deref(), Some("Bearer sk-test-123"));
        assert_eq!(body["model"], "fake-model");
        assert_eq!(body["stream"], true);
        assert_eq!(
            body["messages"],
            json!([{ "role": "user", "content": "Say hello" }]),
            "the history, without the reply being written"
        );
    }
    // The stream route gives the whole answer to a late reader, then 204.
    let stream = alice
        .client
        .get(format!(
            "{}/api/conversations/{id}/messages/{}/stream?offset=0",
            alice.base,
            answer["id"].as_str().unwrap()
        ))
        .header("x-demo-user", "alice")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(stream.contains("\"text\":\"Hello, wörld!\""), "{stream}");
    assert!(stream.contains("event: end"), "{stream}");

    // A refusal of the server: a failed reply saying why, with no key in it.
    let (id, _) = alice.ask("fail please").await;
    let failed = alice.finished(&id, 2).await;
    assert_eq!(failed["status"], "failed");
    let failure = failed["failure"].as_str().unwrap();
    assert!(failure.contains("401"), "{failure}");
    assert!(failure.contains("Incorrect API key provided"), "{failure}");
    assert!(!failure.contains("sk-test"), "{failure}");

    // Stopped mid-answer: the words so far stay, and the model's stream is closed.
    let (id, reply) = alice.ask("slow please").await;
    let message_id = reply["id"].as_str().unwrap().to_owned();
    for _ in 0..100 {
        let m: Value = alice
            .client
            .get(format!("{}/api/conversations/{id}/messages/2", alice.base))
            .header("x-demo-user", "alice")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if m["content"].as_str().unwrap().contains("word3") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped = alice
        .post(
            &format!("/api/conversations/{id}/messages/{message_id}/stop"),
            None,
        )
        .await;
    assert_eq!(stopped["status"], "stopped");
    let kept = stopped["content"].as_str().unwrap().to_owned();
    assert!(kept.starts_with("word0 word1 word2 word3"), "{kept}");
    let mut closed = false;
    for _ in 0..60 {
        if seen.abandoned.load(Ordering::SeqCst) {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        closed,
        "the responder closed the model's stream after the stop"
    );
    let after = alice.finished(&id, 2).await;
    assert_eq!(after["status"], "stopped");
    assert_eq!(after["content"].as_str().unwrap(), kept);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_cannot_be_reached_is_a_failed_reply() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let data = tempfile::tempdir().unwrap();
    let base = format!("http://127.0.0.1:{port}/v1");
    let server = WebServer::start_with(data.path(), &[("OPENAI_BASE_URL", &base)]);
    let alice = Alice {
        client: reqwest::Client::new(),
        base: server.base.clone(),
    };
    let (id, _) = alice.ask("Anyone there?").await;
    let failed = alice.finished(&id, 2).await;
    assert_eq!(failed["status"], "failed");
    let failure = failed["failure"].as_str().unwrap();
    assert!(failure.contains("could not be reached"), "{failure}");
    drop(server);
}
