//! The OpenAI Conversations routes over the router (memory backend), request by request.

#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, request::Parts};
use chatvault_axum::ChatVaultApi;
use chatvault_core::{ChatVault, ConversationId, Part, Role, UserId};
use chatvault_memory::{MemoryFiles, MemoryMessages};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The bearer token is the user id (a demo resolver: the SDKs send the API key this way).
fn bearer(parts: &Parts) -> impl Future<Output = Option<UserId>> + use<> {
    let user = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|v| UserId::parse(v).ok());
    async move { user }
}

struct Api {
    vault: ChatVault,
    router: Router,
}

fn api() -> Api {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let router = Router::new().nest(
        "/v1",
        ChatVaultApi::new(vault.clone())
            .identity(bearer)
            .into_openai_router()
            .unwrap(),
    );
    Api { vault, router }
}

impl Api {
    async fn call(
        &self,
        user: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(format!("/v1{path}"));
        if !user.is_empty() {
            req = req.header("authorization", format!("Bearer {user}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, value)
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.call("alice", method, path, body).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {value}");
        value
    }

    async fn create(&self, body: Value) -> String {
        let conv = self.ok("POST", "/conversations", Some(body)).await;
        conv["id"].as_str().unwrap().to_owned()
    }
}

fn user_text(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

/// The error body the SDKs parse, with its status.
fn assert_error(status: StatusCode, body: &Value, want: StatusCode, kind: &str) {
    assert_eq!(status, want, "{body}");
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(error["type"], kind, "{body}");
    assert!(
        error.get("param").is_some() && error.get("code").is_some(),
        "{body}"
    );
}

#[tokio::test]
async fn conversations_are_created_read_updated_and_deleted() {
    let api = api();
    let before = chrono::Utc::now().timestamp();
    let conv = api
        .ok(
            "POST",
            "/conversations",
            Some(json!({"metadata": {"topic": "demo"}, "items": [user_text("Hello")]})),
        )
        .await;
    let id = conv["id"].as_str().unwrap();
    assert!(id.starts_with("conv_"), "{conv}");
    assert_eq!(conv["object"], "conversation");
    assert_eq!(conv["metadata"], json!({"topic": "demo"}));
    let created = conv["created_at"].as_i64().unwrap();
    assert!(
        (before..=before + 5).contains(&created),
        "Unix seconds: {created}"
    );

    assert_eq!(
        api.ok("GET", &format!("/conversations/{id}"), None).await,
        conv
    );
    let updated = api
        .ok(
            "POST",
            &format!("/conversations/{id}"),
            Some(json!({"metadata": {"topic": "other"}})),
        )
        .await;
    assert_eq!(updated["metadata"], json!({"topic": "other"}));
    assert_eq!(
        api.ok("GET", &format!("/conversations/{id}"), None).await["metadata"],
        json!({"topic": "other"})
    );
    let items = api
        .ok("GET", &format!("/conversations/{id}/items?order=asc"), None)
        .await;
    assert_eq!(items["data"][0]["content"][0]["text"], "Hello");

    let deleted = api
        .ok("DELETE", &format!("/conversations/{id}"), None)
        .await;
    assert_eq!(
        deleted,
        json!({"id": id, "object": "conversation.deleted", "deleted": true})
    );
    let (status, body) = api
        .call("alice", "GET", &format!("/conversations/{id}"), None)
        .await;
    assert_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "invalid_request_error",
    );
    // An empty body creates an empty conversation.
    let (status, body) = api.call("alice", "POST", "/conversations", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn every_item_type_reads_back_as_written() {
    let api = api();
    let id = api.create(json!({})).await;
    let items = vec![
        json!({"id": "msg_user1", "type": "message", "role": "user", "status": "completed", "content": [
            {"type": "input_text", "text": "Look"},
            {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "high"},
            {"type": "input_file", "file_url": "https://example.com/a.pdf", "filename": "a.pdf"},
        ]}),
        json!({"id": "msg_dev", "type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Be brief"}]}),
        json!({"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": "gAAAA+/=\u{1}opaque"}),
        json!({"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "clock", "arguments": "{ \"tz\" : \"UTC\" }", "status": "completed"}),
        json!({"id": "fco_1", "type": "function_call_output", "call_id": "call_1", "output": "09:30"}),
        json!({"id": "msg_asst", "type": "message", "role": "assistant", "status": "completed", "content": [
            {"type": "output_text", "text": "It is 09:30", "annotations": [{"type": "url_citation", "url": "https://time.is"}]},
            {"type": "refusal", "refusal": "not that"},
        ]}),
        json!({"id": "ws_1", "type": "web_search_call", "status": "completed", "action": {"type": "search", "query": "time"}}),
        json!({"id": "msg_empty", "type": "message", "role": "user", "content": []}),
    ];
    let created = api
        .ok(
            "POST",
            &format!("/conversations/{id}/items"),
            Some(json!({"items": items})),
        )
        .await;
    assert_eq!(created["object"], "list");
    assert_eq!(created["first_id"], "msg_user1");
    assert_eq!(created["last_id"], "msg_empty");
    assert_eq!(created["has_more"], false);
    let listed = api
        .ok(
            "GET",
            &format!("/conversations/{id}/items?order=asc&limit=100"),
            None,
        )
        .await;
    let data = listed["data"].as_array().unwrap();
    assert_eq!(data.len(), items.len());
    for (got, sent) in data.iter().zip(&items) {
        // Every field sent comes back as sent; a message or call without a status gets one.
        let mut got = got.clone();
        let typed = ["message", "function_call", "function_call_output"]
            .contains(&got["type"].as_str().unwrap());
        if sent.get("status").is_none() && typed {
            assert_eq!(
                got.as_object_mut().unwrap().remove("status"),
                Some(json!("completed"))
            );
        }
        assert_eq!(&got, sent);
        let one = api
            .ok(
                "GET",
                &format!("/conversations/{id}/items/{}", sent["id"].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!(one["id"], sent["id"]);
    }
    // The byte-exact reasoning blob, as stored in ChatVault.
    let conv = api
        .vault
        .get_conversation(&ConversationId::parse(id.strip_prefix("conv_").unwrap()).unwrap())
        .await
        .unwrap()
        .unwrap();
    let messages = conv.messages().await.unwrap();
    assert_eq!(messages[2].id.as_str(), "rs_1");
    assert!(
        matches!(&messages[2].parts[0], Part::Provider(p) if p.data["encrypted_content"] == "gAAAA+/=\u{1}opaque")
    );
    assert_eq!(messages[3].role, Role::Assistant);
    assert_eq!(messages[4].role, Role::Tool);
}

#[tokio::test]
async fn a_retried_batch_is_stored_once_and_a_bad_batch_stores_nothing() {
    let api = api();
    let id = api.create(json!({})).await;
    let path = format!("/conversations/{id}/items");
    let batch = json!({"items": [
        {"id": "msg_a", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}]},
        {"id": "msg_b", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "b"}]},
    ]});
    let first = api.ok("POST", &path, Some(batch.clone())).await;
    let again = api.ok("POST", &path, Some(batch)).await;
    assert_eq!(first, again);
    let listed = api.ok("GET", &path, None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    // Without ids, fresh ones with the API's prefixes.
    let fresh = api
        .ok("POST", &path, Some(json!({"items": [user_text("c"), {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}]})))
        .await;
    assert!(
        fresh["data"][0]["id"].as_str().unwrap().starts_with("msg_"),
        "{fresh}"
    );
    assert!(
        fresh["data"][1]["id"].as_str().unwrap().starts_with("fc_"),
        "{fresh}"
    );
    // One bad item: 400, and none of the batch is stored.
    for bad in [
        json!({"items": [user_text("d"), {"type": "message", "role": "wizard", "content": "x"}]}),
        json!({"items": [user_text("d"), 7]}),
        json!({"items": [user_text("d"), {"id": "../x", "type": "message", "role": "user", "content": "x"}]}),
        json!({"items": (0..21).map(|i| user_text(&i.to_string())).collect::<Vec<_>>()}),
        json!({"items": "no"}),
        json!([]),
    ] {
        let (status, body) = api.call("alice", "POST", &path, Some(bad.clone())).await;
        assert_error(
            status,
            &body,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
        );
    }
    let listed = api.ok("GET", &path, None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 4);
    // The same id with other content: a conflict, nothing changed.
    let (status, body) = api
        .call("alice", "POST", &path, Some(json!({"items": [{"id": "msg_a", "type": "message", "role": "user", "content": "changed"}]})))
        .await;
    assert!(status.is_client_error(), "{status} {body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

#[tokio::test]
async fn pages_of_250_items_in_both_orders() {
    let api = api();
    let id = api.create(json!({})).await;
    let path = format!("/conversations/{id}/items");
    for chunk in 0..13 {
        let items: Vec<Value> = (chunk * 20..((chunk + 1) * 20).min(250))
            .map(|i| json!({"id": format!("msg_{i:03}"), "type": "message", "role": "user", "content": [{"type": "input_text", "text": i.to_string()}]}))
            .collect();
        api.ok("POST", &path, Some(json!({"items": items}))).await;
    }
    for (order, expected) in [
        ("asc", (0..250).collect::<Vec<_>>()),
        ("desc", (0..250).rev().collect()),
    ] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut url = format!("{path}?order={order}&limit=30");
            if let Some(a) = &after {
                url.push_str(&format!("&after={a}"));
            }
            let page = api.ok("GET", &url, None).await;
            let data = page["data"].as_array().unwrap();
            assert!(data.len() <= 30);
            assert_eq!(page["first_id"], data[0]["id"]);
            assert_eq!(page["last_id"], data[data.len() - 1]["id"]);
            seen.extend(data.iter().map(|i| {
                i["content"][0]["text"]
                    .as_str()
                    .unwrap()
                    .parse::<i32>()
                    .unwrap()
            }));
            if page["has_more"] == false {
                break;
            }
            after = Some(page["last_id"].as_str().unwrap().to_owned());
        }
        assert_eq!(seen, expected, "{order}");
    }
    // The default: 20, newest first; `before` pages back; include is accepted.
    let page = api
        .ok(
            "GET",
            &format!(
                "{path}?include=reasoning.encrypted_content&include[]=message.input_image.image_url"
            ),
            None,
        )
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 20);
    assert_eq!(page["first_id"], "msg_249");
    assert_eq!(page["has_more"], true);
    let page = api
        .ok(
            "GET",
            &format!("{path}?order=asc&before=msg_010&limit=5"),
            None,
        )
        .await;
    let ids: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["msg_005", "msg_006", "msg_007", "msg_008", "msg_009"]);
    assert_eq!(page["has_more"], true);
    for bad in [
        "limit=0",
        "limit=101",
        "limit=x",
        "order=up",
        "after=msg_nope",
    ] {
        let (status, body) = api
            .call("alice", "GET", &format!("{path}?{bad}"), None)
            .await;
        assert_error(
            status,
            &body,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
        );
    }
}

#[tokio::test]
async fn deleting_an_item_hides_it_and_empties_its_message() {
    let api = api();
    let id = api
        .create(json!({"items": [user_text("keep"), user_text("secret")]}))
        .await;
    let path = format!("/conversations/{id}/items");
    let listed = api.ok("GET", &format!("{path}?order=asc"), None).await;
    let secret = listed["data"][1]["id"].as_str().unwrap().to_owned();
    let answer = api.ok("DELETE", &format!("{path}/{secret}"), None).await;
    assert_eq!(answer["object"], "conversation");
    assert_eq!(answer["id"], id.as_str());
    let listed = api.ok("GET", &path, None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let (status, body) = api
        .call("alice", "GET", &format!("{path}/{secret}"), None)
        .await;
    assert_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "invalid_request_error",
    );
    let (status, body) = api
        .call("alice", "DELETE", &format!("{path}/{secret}"), None)
        .await;
    assert_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "invalid_request_error",
    );
    // In ChatVault: the message keeps its place, its content is gone, the mark says why.
    let conv = api
        .vault
        .get_conversation(&ConversationId::parse(id.strip_prefix("conv_").unwrap()).unwrap())
        .await
        .unwrap()
        .unwrap();
    let messages = conv.messages().await.unwrap();
    assert_eq!(messages.len(), 2);
    assert!(messages[1].parts.is_empty());
    assert!(!format!("{:?}", messages[1]).contains("secret"));
    assert_eq!(messages[1].metadata["openai_deleted"], json!([0]));
}

#[tokio::test]
async fn someone_elses_conversation_is_404_and_no_identity_is_401() {
    let api = api();
    let id = api
        .create(
            json!({"items": [{"id": "msg_x", "type": "message", "role": "user", "content": "hi"}]}),
        )
        .await;
    for (method, path, body) in [
        ("GET", format!("/conversations/{id}"), None),
        (
            "POST",
            format!("/conversations/{id}"),
            Some(json!({"metadata": {}})),
        ),
        ("DELETE", format!("/conversations/{id}"), None),
        ("GET", format!("/conversations/{id}/items"), None),
        (
            "POST",
            format!("/conversations/{id}/items"),
            Some(json!({"items": [user_text("x")]})),
        ),
        ("GET", format!("/conversations/{id}/items/msg_x"), None),
        ("DELETE", format!("/conversations/{id}/items/msg_x"), None),
    ] {
        let (status, res) = api.call("mallory", method, &path, body.clone()).await;
        assert_error(status, &res, StatusCode::NOT_FOUND, "invalid_request_error");
        let (status, res) = api.call("", method, &path, body).await;
        assert_error(
            status,
            &res,
            StatusCode::UNAUTHORIZED,
            "authentication_error",
        );
    }
    // Nothing of mallory's attempts changed alice's conversation.
    let listed = api
        .ok("GET", &format!("/conversations/{id}/items"), None)
        .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    // Ids that are not ours, unknown routes, wrong methods, bad bodies.
    for (method, path, want) in [
        (
            "GET",
            "/conversations/conv_nope".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            "GET",
            "/conversations/abc".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        ("GET", "/nothing".to_owned(), StatusCode::NOT_FOUND),
        (
            "PUT",
            format!("/conversations/{id}"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ] {
        let (status, res) = api.call("alice", method, &path, None).await;
        assert_eq!(status, want, "{method} {path}: {res}");
        assert!(res["error"]["message"].is_string());
    }
    let (status, res) = api
        .call(
            "alice",
            "POST",
            &format!("/conversations/{id}"),
            Some(json!({})),
        )
        .await;
    assert_error(
        status,
        &res,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
    );
    assert_eq!(res["error"]["param"], "metadata");
}

#[tokio::test]
async fn chatvault_and_openai_views_of_one_conversation_agree() {
    let api = api();
    // Written through ChatVault, read as items.
    let user = UserId::parse("alice").unwrap();
    let mut conv = api
        .vault
        .new_conversation()
        .user(user)
        .create()
        .await
        .unwrap();
    conv.add_message(Role::User, "What time is it?")
        .await
        .unwrap();
    conv.add(chatvault_core::NewMessage::with_parts(
        Role::Assistant,
        vec![
            Part::text("Let me check."),
            Part::tool_call("call_9", "clock", json!({})),
        ],
    ))
    .await
    .unwrap();
    let id = format!("conv_{}", conv.id());
    let listed = api
        .ok("GET", &format!("/conversations/{id}/items?order=asc"), None)
        .await;
    let data = listed["data"].as_array().unwrap();
    assert_eq!(data.len(), 3, "{listed}");
    assert_eq!(data[0]["content"][0]["text"], "What time is it?");
    assert_eq!(data[1]["content"][0]["text"], "Let me check.");
    assert_eq!(data[2]["type"], "function_call");
    // The second item of a message: `{message id}:1`, addressable like any other.
    let second = data[2]["id"].as_str().unwrap();
    assert_eq!(second, format!("{}:1", data[1]["id"].as_str().unwrap()));
    assert_eq!(
        api.ok("GET", &format!("/conversations/{id}/items/{second}"), None)
            .await,
        data[2]
    );

    // Written as items, read through ChatVault.
    api.ok("POST", &format!("/conversations/{id}/items"), Some(json!({"items": [
        {"type": "function_call_output", "call_id": "call_9", "output": "09:30"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "09:30."}]},
    ]}))).await;
    conv.refresh().await.unwrap();
    let messages = conv.messages().await.unwrap();
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[2].role, Role::Tool);
    assert!(matches!(&messages[2].parts[0], Part::ToolResult(r) if r.call_id == "call_9"));
    assert_eq!(messages[3].content(), "09:30.");
    assert_eq!(conv.message_count(), 4);
}
