//! The router over real HTTP: a server on 127.0.0.1, a reqwest client.

// Helpers outside #[test] fns: their unwraps are test assertions too.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chatvault_core::{ConversationId, Error, ReplyOptions, Usage};
use common::{Options, PREFIX, problem, start, start_with};
use serde_json::{Value, json};

/// Every route: method and path as the OpenAPI document names them.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/conversations"),
    ("post", "/conversations"),
    ("get", "/conversations/{id}"),
    ("patch", "/conversations/{id}"),
    ("delete", "/conversations/{id}"),
    ("post", "/conversations/{id}/archive"),
    ("post", "/conversations/{id}/unarchive"),
    ("get", "/conversations/{id}/usage"),
    ("get", "/conversations/{id}/messages"),
    ("post", "/conversations/{id}/messages"),
    ("get", "/conversations/{id}/messages/{seq}"),
    ("post", "/conversations/{id}/messages/{message_id}/redact"),
    ("get", "/conversations/{id}/messages/{seq}/events"),
    ("get", "/conversations/{id}/messages/{message_id}/stream"),
    ("post", "/conversations/{id}/messages/{message_id}/stop"),
    ("post", "/conversations/{id}/messages/{message_id}/edit"),
    (
        "post",
        "/conversations/{id}/messages/{message_id}/regenerate",
    ),
    ("get", "/conversations/{id}/messages/{message_id}/siblings"),
    ("post", "/conversations/{id}/messages/{message_id}/switch"),
    ("post", "/conversations/{id}/messages/{message_id}/rewind"),
    ("post", "/conversations/{id}/messages/{message_id}/fork"),
    ("get", "/conversations/{id}/files"),
    ("post", "/conversations/{id}/files"),
    ("get", "/conversations/{id}/files/{file_id}"),
    ("delete", "/conversations/{id}/files/{file_id}"),
    ("get", "/conversations/{id}/files/{file_id}/content"),
    ("get", "/conversations/{id}/files/{file_id}/url"),
    ("get", "/downloads/{id}/{file_id}"),
    ("post", "/chat"),
    ("get", "/search"),
    ("get", "/openapi.json"),
];

fn concrete(path: &str) -> String {
    path.replace("{id}", "c1")
        .replace("{seq}", "1")
        .replace("{message_id}", "m1")
        .replace("{file_id}", "f1")
}

fn method(name: &str) -> reqwest::Method {
    name.to_uppercase().parse().unwrap()
}

#[tokio::test]
async fn every_route_without_identity_is_401() {
    let s = start().await;
    for (m, path) in ROUTES {
        if path.starts_with("/downloads") || *path == "/openapi.json" {
            continue; // no identity needed: see their own tests
        }
        let res = s
            .client
            .request(method(m), s.url(&concrete(path)))
            .send()
            .await
            .unwrap();
        let body = problem(res, 401).await;
        assert_eq!(body["kind"], "unauthorized", "{m} {path}");
    }
    // An identity the resolver rejects (not a valid user id) is no identity either.
    let res = s
        .client
        .get(s.url("/conversations"))
        .header("x-user", "")
        .send()
        .await
        .unwrap();
    problem(res, 401).await;
}

#[tokio::test]
async fn openapi_document_lists_every_route_and_its_refs_resolve() {
    let s = start().await;
    let res = s.client.get(s.url("/openapi.json")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            documented.insert((m.clone(), path.clone()));
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{m} {path} documents its responses"
            );
        }
    }
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, expected);
    // Every $ref points at a schema the document defines.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 20, "the operations reference their schemas");
    for r in refs {
        let name = r.strip_prefix("#/components/schemas/").expect(&r);
        assert!(schemas.contains_key(name), "{r} is defined");
    }
    for name in [
        "Problem",
        "ConversationView",
        "MessageView",
        "FileView",
        "ChatResult",
        "SiblingsView",
        "ForkConversation",
    ] {
        assert!(schemas.contains_key(name), "{name}");
    }
    // The same document without a server.
    assert_eq!(
        serde_json::to_value(chatvault_axum::openapi()).unwrap(),
        doc
    );
    // And every documented route is served (an unknown path would be "no such route").
    for (m, path) in ROUTES {
        let res = s
            .client
            .request(method(m), s.url(&concrete(path)))
            .send()
            .await
            .unwrap();
        assert_ne!(res.status(), 404, "{m} {path} is routed");
        assert_ne!(res.status(), 405, "{m} {path} is routed");
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.push(v.as_str().unwrap().to_owned());
                } else {
                    collect_refs(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn conversation_lifecycle() {
    let s = start().await;
    let res = s
        .post("alice", "/conversations")
        .json(&json!({"title": "Trip to Oslo", "metadata": {"n": 12345678901234567u64, "x": 0.1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["title"], "Trip to Oslo");
    assert_eq!(created["user_id"], "alice");
    assert_eq!(created["metadata"]["n"], 12345678901234567u64);
    assert_eq!(created["metadata"]["x"], 0.1);

    let detail: Value = s
        .get("alice", &format!("/conversations/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["conversation"]["id"], id.as_str());
    assert_eq!(detail["files"], json!([]));
    assert!(
        detail.get("messages").is_none(),
        "messages are paged, never inline"
    );

    let res = s
        .patch("alice", &format!("/conversations/{id}"))
        .json(&json!({"title": "Oslo, June", "metadata": {"k": "v"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let patched: Value = res.json().await.unwrap();
    assert_eq!(patched["title"], "Oslo, June");
    assert_eq!(patched["metadata"], json!({"k": "v"}));
    assert!(patched["version"].as_u64() > created["version"].as_u64());

    // Archive: gone from the default listing, back with include_archived.
    let res = s
        .post("alice", &format!("/conversations/{id}/archive"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["archived"], true);
    let list: Value = s
        .get("alice", "/conversations")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], json!([]));
    let list: Value = s
        .get("alice", "/conversations?include_archived=true")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert_eq!(list["items"][0]["archived"], true);
    let res = s
        .post("alice", &format!("/conversations/{id}/unarchive"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["archived"], false);
    let res = s
        .patch("alice", &format!("/conversations/{id}"))
        .json(&json!({"archived": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["archived"], true);

    // Delete: its file's bytes go too.
    let up = s
        .upload("alice", &id, "a.txt", "text/plain", b"hello".to_vec())
        .await;
    assert_eq!(up.status(), 201);
    assert_eq!(s.files.len(), 1);
    let res = s
        .delete("alice", &format!("/conversations/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(s.files.len(), 0, "no blob left behind");
    let res = s
        .get("alice", &format!("/conversations/{id}"))
        .send()
        .await
        .unwrap();
    problem(res, 404).await;
    let res = s
        .delete("alice", &format!("/conversations/{id}"))
        .send()
        .await
        .unwrap();
    problem(res, 404).await;
}

#[tokio::test]
async fn listing_pages_with_a_cursor_and_returns_the_current_one() {
    let s = start().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let c = s.create("alice", &format!("chat {i}")).await;
        ids.push(c["id"].as_str().unwrap().to_owned());
        s.say("alice", &ids[i], "user", "hi").await;
    }
    s.create("bob", "bob's").await;
    let mut seen = Vec::new();
    let mut url = "/conversations?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page: Value = s
            .get("alice", &url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|c| c["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => url = format!("/conversations?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    // Newest activity first, each exactly once, only alice's.
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);

    // current: the open conversation in full; someone else's is simply absent.
    let page: Value = s
        .get(
            "alice",
            &format!("/conversations?limit=1&current={}", ids[0]),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["current"]["id"], ids[0].as_str());
    assert_eq!(page["current"]["message_count"], 1);
    let page: Value = s
        .get("bob", &format!("/conversations?current={}", ids[0]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["current"], Value::Null);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    for bad in [
        "/conversations?limit=0",
        "/conversations?limit=100000",
        "/conversations?limit=abc",
        "/conversations?cursor=garbage",
        "/conversations?current=..",
        "/conversations?surprise=1",
    ] {
        let res = s.get("alice", bad).send().await.unwrap();
        let body = problem(res, 400).await;
        assert_eq!(body["kind"], "invalid_input", "{bad}");
    }
}

#[tokio::test]
async fn messages_windows_parts_idempotency_and_usage() {
    let s = start().await;
    let c = s.create("alice", "").await;
    let id = c["id"].as_str().unwrap().to_owned();
    for i in 1..=10 {
        s.say(
            "alice",
            &id,
            if i % 2 == 1 { "user" } else { "assistant" },
            &format!("m{i}"),
        )
        .await;
    }
    let texts = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect()
    };
    let path = format!("/conversations/{id}/messages");
    let get = |q: &str| s.get("alice", &format!("{path}{q}")).send();

    let first: Value = get("?limit=4").await.unwrap().json().await.unwrap();
    assert_eq!(texts(&first), ["m1", "m2", "m3", "m4"]);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let next: Value = get(&format!("?limit=4&cursor={cursor}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(texts(&next), ["m5", "m6", "m7", "m8"]);
    let after: Value = get("?after=8").await.unwrap().json().await.unwrap();
    assert_eq!(texts(&after), ["m9", "m10"]);
    assert_eq!(after["next_cursor"], Value::Null);
    let last: Value = get("?last=3").await.unwrap().json().await.unwrap();
    assert_eq!(texts(&last), ["m8", "m9", "m10"]);
    let older_cursor = last["next_cursor"].as_str().unwrap().to_owned();
    let older: Value = get(&format!("?last=3&cursor={older_cursor}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(texts(&older), ["m5", "m6", "m7"]);
    let before: Value = get("?before=3&limit=5")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(texts(&before), ["m1", "m2"]);
    // The default window is bounded.
    let all: Value = get("").await.unwrap().json().await.unwrap();
    assert_eq!(texts(&all).len(), 10);

    for bad in [
        "?after=1&last=2",
        "?limit=0",
        "?limit=1001",
        "?last=0",
        "?cursor=x",
        "?after=-1",
    ] {
        let res = get(bad).await.unwrap();
        problem(res, 400).await;
    }

    // Auto-title from the first user message.
    let detail: Value = s
        .get("alice", &format!("/conversations/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["conversation"]["title"], "m1");

    // Parts, usage, and a chosen id: a retry stores it once; reusing the id is a 409.
    let body = json!({
        "id": "msg-tool-1",
        "role": "assistant",
        "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Oslo"}}],
        "usage": {"input_tokens": 120, "output_tokens": 18, "model": "gpt-4o"}
    });
    let res = s.post("alice", &path).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 201);
    let stored: Value = res.json().await.unwrap();
    assert_eq!(stored["seq"], 11);
    assert_eq!(stored["parts"][0]["type"], "tool_call");
    assert_eq!(stored["parts"][0]["arguments"]["city"], "Oslo");
    assert_eq!(stored["status"], "complete");
    let again: Value = s
        .post("alice", &path)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["seq"], 11, "a retried add is stored once");
    let mut changed = body.clone();
    changed["parts"] = json!([{"type": "text", "text": "different"}]);
    let res = s.post("alice", &path).json(&changed).send().await.unwrap();
    let p = problem(res, 409).await;
    assert_eq!(p["kind"], "already_exists");
    let usage: Value = s
        .get("alice", &format!("/conversations/{id}/usage"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(usage["input_tokens"], 120);
    assert_eq!(usage["output_tokens"], 18);

    // One message by seq.
    let one: Value = s
        .get("alice", &format!("{path}/11"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], "msg-tool-1");
    assert_eq!(one["revision"], 1);
    for missing in ["0", "12", "999999"] {
        let res = s
            .get("alice", &format!("{path}/{missing}"))
            .send()
            .await
            .unwrap();
        problem(res, 404).await;
    }

    for bad in [
        json!({"role": "user"}),
        json!({"role": "user", "text": "a", "parts": []}),
        json!({"role": "", "text": "a"}),
        json!({"text": "a", "extra": 1}),
        json!({"text": 5}),
        json!({"id": "../x", "text": "a"}),
        json!({"parts": [{"type": "text"}]}),
    ] {
        let res = s.post("alice", &path).json(&bad).send().await.unwrap();
        let status = res.status().as_u16();
        assert!(status == 400, "{bad} gave {status}");
        problem(res, 400).await;
    }
    let res = s
        .post("alice", &path)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    problem(res, 400).await;
    let res = s.post("alice", &path).body("text").send().await.unwrap();
    problem(res, 400).await;
}

#[tokio::test]
async fn a_streaming_reply_can_be_followed() {
    let s = start().await;
    let c = s.create("alice", "stream").await;
    let id: ConversationId = c["id"].as_str().unwrap().parse().unwrap();
    s.say("alice", id.as_str(), "user", "Count to three").await;
    let mut chat = s.vault.get_conversation(&id).await.unwrap().unwrap();
    let mut reply = chat
        .begin_reply(ReplyOptions::default().checkpoint_interval(Duration::from_secs(3600)))
        .await
        .unwrap();
    let path = format!("/conversations/{id}/messages/2");
    let pending: Value = s
        .get("alice", &path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pending["status"], "pending");

    // Follow it as server-sent events while the writer goes on.
    let events = s
        .get("alice", &format!("{path}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert!(
        events.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let reader = tokio::spawn(async move { events.text().await.unwrap() });

    reply.push_text("One").await.unwrap();
    reply.checkpoint().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let streaming: Value = s
        .get("alice", &path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(streaming["status"], "streaming");
    assert_eq!(streaming["content"], "One");
    assert_eq!(streaming["revision"], 2);
    reply.push_text(", two, three.").await.unwrap();
    reply.checkpoint().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    reply.finish(Some(Usage::new("m", 5, 7))).await.unwrap();

    let text = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the event stream ends when the reply does")
        .unwrap();
    let messages: Vec<Value> = text
        .split("\n\n")
        .filter(|e| e.contains("event: message"))
        .map(|e| {
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            serde_json::from_str(data).unwrap()
        })
        .collect();
    let statuses: Vec<&str> = messages
        .iter()
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.first(), Some(&"pending"));
    assert!(statuses.contains(&"streaming"), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&"complete"));
    let revisions: Vec<u64> = messages
        .iter()
        .map(|m| m["revision"].as_u64().unwrap())
        .collect();
    assert!(revisions.windows(2).all(|w| w[0] < w[1]), "{revisions:?}");
    let last = messages.last().unwrap();
    assert_eq!(last["content"], "One, two, three.");
    assert_eq!(last["usage"]["output_tokens"], 7);

    // A finished message: one event, then the end.
    let done = s
        .get("alice", &format!("{path}/events"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(done.matches("event: message").count(), 1);
    let res = s
        .get("alice", &format!("/conversations/{id}/messages/9/events"))
        .send()
        .await
        .unwrap();
    problem(res, 404).await;
}

#[tokio::test]
async fn files_upload_download_links_and_delete() {
    let s = start().await;
    let c = s.create("alice", "files").await;
    let id = c["id"].as_str().unwrap().to_owned();
    let name = "résumé 2026 \"final\".pdf";
    let res = s
        .upload("alice", &id, name, "application/pdf", b"%PDF one".to_vec())
        .await;
    assert_eq!(res.status(), 201);
    let one: Value = res.json().await.unwrap();
    assert_eq!(one["filename"], name, "the filename is kept as given");
    assert_eq!(one["content_type"], "application/pdf");
    assert_eq!(one["size"], 8);
    assert_eq!(one["sha256"], chatvault_core::sha256_hex(b"%PDF one"));
    assert!(one.get("storage_key").is_none());
    // Same name again: a file of its own.
    let two: Value = s
        .upload("alice", &id, name, "application/pdf", b"%PDF two!".to_vec())
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(one["id"], two["id"]);
    let files: Value = s
        .get("alice", &format!("/conversations/{id}/files"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(files.as_array().unwrap().len(), 2);
    let f1 = one["id"].as_str().unwrap();
    let f2 = two["id"].as_str().unwrap();
    let rec: Value = s
        .get("alice", &format!("/conversations/{id}/files/{f2}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rec["size"], 9);

    let res = s
        .get("alice", &format!("/conversations/{id}/files/{f1}/content"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/pdf");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(disposition.starts_with("attachment; "), "{disposition}");
    assert!(
        disposition.contains("filename*=UTF-8''r%C3%A9sum%C3%A9%202026%20%22final%22.pdf"),
        "{disposition}"
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"%PDF one");
    let res = s
        .get("alice", &format!("/conversations/{id}/files/{f2}/content"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"%PDF two!");

    // A signed link: works without identity, under the mount prefix; tampering is 403.
    let link: Value = s
        .get("alice", &format!("/conversations/{id}/files/{f1}/url"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{PREFIX}/downloads/{id}/{f1}?")),
        "{url}"
    );
    let res = s
        .client
        .get(format!("{}{url}", s.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("r%C3%A9sum%C3%A9")
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"%PDF one");
    let other_file = url.replace(f1, f2);
    let res = s
        .client
        .get(format!("{}{other_file}", s.origin))
        .send()
        .await
        .unwrap();
    problem(res, 403).await;
    let later = {
        let (head, sig) = url.split_once("&sig=").unwrap();
        let (base, expires) = head.split_once("expires=").unwrap();
        let e: i64 = expires.parse().unwrap();
        format!("{base}expires={}&sig={sig}", e + 1000)
    };
    let res = s
        .client
        .get(format!("{}{later}", s.origin))
        .send()
        .await
        .unwrap();
    problem(res, 403).await;
    let res = s
        .client
        .get(format!("{}{PREFIX}/downloads/{id}/{f1}", s.origin))
        .send()
        .await
        .unwrap();
    problem(res, 400).await;
    // Expiry.
    let short: Value = s
        .get(
            "alice",
            &format!("/conversations/{id}/files/{f1}/url?expires_in=1"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let short_url = short["url"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let res = s
        .client
        .get(format!("{}{short_url}", s.origin))
        .send()
        .await
        .unwrap();
    let p = problem(res, 403).await;
    assert!(p["detail"].as_str().unwrap().contains("expired"));
    for bad in ["0", "604801", "x"] {
        let res = s
            .get(
                "alice",
                &format!("/conversations/{id}/files/{f1}/url?expires_in={bad}"),
            )
            .send()
            .await
            .unwrap();
        problem(res, 400).await;
    }

    // Delete one: its bytes go, the other stays; its link now answers 404.
    assert_eq!(s.files.len(), 2);
    let res = s
        .delete("alice", &format!("/conversations/{id}/files/{f1}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(s.files.len(), 1);
    let res = s
        .delete("alice", &format!("/conversations/{id}/files/{f1}"))
        .send()
        .await
        .unwrap();
    problem(res, 404).await;
    let res = s
        .get("alice", &format!("/conversations/{id}/files/{f1}/content"))
        .send()
        .await
        .unwrap();
    problem(res, 404).await;
    let res = s
        .client
        .get(format!("{}{url}", s.origin))
        .send()
        .await
        .unwrap();
    problem(res, 404).await;
    let res = s
        .get("alice", &format!("/conversations/{id}/files/{f1}"))
        .send()
        .await
        .unwrap();
    problem(res, 404).await;
}

#[tokio::test]
async fn uploads_over_the_limit_are_413_and_leave_nothing() {
    let s = start_with(Options {
        max_upload_bytes: 64 * 1024,
        ..Options::default()
    })
    .await;
    let c = s.create("alice", "limits").await;
    let id = c["id"].as_str().unwrap().to_owned();
    let res = s
        .upload(
            "alice",
            &id,
            "big.bin",
            "application/octet-stream",
            vec![7u8; 64 * 1024 + 1],
        )
        .await;
    let p = problem(res, 413).await;
    assert_eq!(p["kind"], "too_large");
    assert_eq!(s.files.len(), 0, "nothing left stored");
    let files: Value = s
        .get("alice", &format!("/conversations/{id}/files"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(files, json!([]));
    // Exactly at the limit is fine.
    let res = s
        .upload(
            "alice",
            &id,
            "ok.bin",
            "application/octet-stream",
            vec![7u8; 64 * 1024],
        )
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(s.files.len(), 1);

    // Malformed uploads are 400, never 500.
    let path = format!("/conversations/{id}/files");
    let res = s.post("alice", &path).body("plain").send().await.unwrap();
    problem(res, 400).await;
    let res = s
        .post("alice", &path)
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nunterminated")
        .send()
        .await
        .unwrap();
    problem(res, 400).await;
    let form = reqwest::multipart::Form::new().text("note", "no file");
    let res = s.post("alice", &path).multipart(form).send().await.unwrap();
    problem(res, 400).await;
    let form = reqwest::multipart::Form::new();
    let res = s.post("alice", &path).multipart(form).send().await.unwrap();
    problem(res, 400).await;
    let part = reqwest::multipart::Part::bytes(b"x".to_vec());
    let form = reqwest::multipart::Form::new().part("file", part);
    let res = s.post("alice", &path).multipart(form).send().await.unwrap();
    let p = problem(res, 400).await;
    assert!(p["detail"].as_str().unwrap().contains("filename"));
    let part = reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("bad\nname");
    let form = reqwest::multipart::Form::new().part("file", part);
    let res = s.post("alice", &path).multipart(form).send().await.unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    assert_eq!(s.files.len(), 1);
}

#[tokio::test]
async fn two_users_never_see_each_other() {
    let s = start().await;
    let c = s.create("alice", "alice's secret").await;
    let id = c["id"].as_str().unwrap().to_owned();
    s.say("alice", &id, "user", "my secret").await;
    let file: Value = s
        .upload("alice", &id, "secret.txt", "text/plain", b"s3cret".to_vec())
        .await
        .json()
        .await
        .unwrap();
    let fid = file["id"].as_str().unwrap().to_owned();
    let missing = ConversationId::new().to_string();

    // Bob gets exactly what he gets for a conversation that does not exist.
    let attempts: Vec<(&str, String, Option<Value>)> = vec![
        ("get", "/conversations/{}".to_string(), None),
        (
            "patch",
            "/conversations/{}".to_string(),
            Some(json!({"title": "pwned"})),
        ),
        ("delete", "/conversations/{}".to_string(), None),
        ("post", "/conversations/{}/archive".to_string(), None),
        ("post", "/conversations/{}/unarchive".to_string(), None),
        ("get", "/conversations/{}/usage".to_string(), None),
        ("get", "/conversations/{}/messages".to_string(), None),
        (
            "post",
            "/conversations/{}/messages".to_string(),
            Some(json!({"text": "hi"})),
        ),
        ("get", "/conversations/{}/messages/1".to_string(), None),
        (
            "get",
            "/conversations/{}/messages/1/events".to_string(),
            None,
        ),
        ("get", "/conversations/{}/files".to_string(), None),
        ("get", format!("/conversations/{{}}/files/{fid}"), None),
        ("delete", format!("/conversations/{{}}/files/{fid}"), None),
        (
            "get",
            format!("/conversations/{{}}/files/{fid}/content"),
            None,
        ),
        ("get", format!("/conversations/{{}}/files/{fid}/url"), None),
    ];
    for (m, template, body) in &attempts {
        let mut answers = Vec::new();
        for target in [&id, &missing] {
            let mut req = s
                .client
                .request(method(m), s.url(&template.replace("{}", target)))
                .header("x-user", "bob");
            if let Some(b) = body {
                req = req.json(b);
            }
            let p = problem(req.send().await.unwrap(), 404).await;
            answers.push(p["detail"].as_str().unwrap().replace(target.as_str(), "ID"));
        }
        assert_eq!(
            answers[0], answers[1],
            "{m} {template}: no difference leaks"
        );
    }
    let res = s
        .upload("bob", &id, "x.txt", "text/plain", b"x".to_vec())
        .await;
    problem(res, 404).await;
    let form = reqwest::multipart::Form::new()
        .text("conversation_id", id.clone())
        .text("message", "hi");
    let res = s.post("bob", "/chat").multipart(form).send().await.unwrap();
    problem(res, 404).await;
    let list: Value = s
        .get("bob", "/conversations?include_archived=true")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], json!([]));
    let hits: Value = s
        .get("bob", "/search?q=secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hits["items"], json!([]));

    // Alice's conversation is untouched.
    let detail: Value = s
        .get("alice", &format!("/conversations/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["conversation"]["title"], "alice's secret");
    assert_eq!(detail["conversation"]["archived"], false);
    assert_eq!(detail["conversation"]["message_count"], 1);
    assert_eq!(detail["files"].as_array().unwrap().len(), 1);
    let hits: Value = s
        .get("alice", "/search?q=secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(hits["items"][0]["message"]["content"], "my secret");
    let res = s
        .get("alice", &format!("/conversations/{id}/files/{fid}/content"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"s3cret");
}

#[tokio::test]
async fn chat_creates_uploads_and_adds_the_message_in_one_call() {
    let s = start().await;
    let form = reqwest::multipart::Form::new()
        .text("title", "Holiday")
        .text("message", "What is in these?")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"photo".to_vec())
                .file_name("beach.jpg")
                .mime_str("image/jpeg")
                .unwrap(),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"notes".to_vec())
                .file_name("notes.txt")
                .mime_str("text/plain")
                .unwrap(),
        );
    let res = s
        .post("alice", "/chat")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let turn: Value = res.json().await.unwrap();
    assert_eq!(turn["created"], true);
    assert_eq!(turn["conversation"]["title"], "Holiday");
    assert_eq!(turn["conversation"]["message_count"], 1);
    assert_eq!(turn["conversation"]["file_count"], 2);
    let files = turn["files"].as_array().unwrap();
    assert_eq!(files[0]["filename"], "beach.jpg");
    assert_eq!(files[0]["content_type"], "image/jpeg");
    assert_eq!(files[1]["filename"], "notes.txt");
    let parts = turn["message"]["parts"].as_array().unwrap();
    assert_eq!(
        parts[0],
        json!({"type": "text", "text": "What is in these?"})
    );
    assert_eq!(parts[1]["type"], "file");
    assert_eq!(parts[1]["file_id"], files[0]["id"]);
    assert_eq!(parts[2]["file_id"], files[1]["id"]);
    assert_eq!(turn["message"]["role"], "user");
    let id = turn["conversation"]["id"].as_str().unwrap().to_owned();

    // The next turn in the same conversation, no files.
    let form = reqwest::multipart::Form::new()
        .text("conversation_id", id.clone())
        .text("message", "And now?");
    let turn2: Value = s
        .post("alice", "/chat")
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(turn2["created"], false);
    assert_eq!(turn2["conversation"]["id"], id.as_str());
    assert_eq!(turn2["message"]["seq"], 2);
    let msgs: Value = s
        .get("alice", &format!("/conversations/{id}/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(msgs["items"].as_array().unwrap().len(), 2);
    let res = s
        .get(
            "alice",
            &format!(
                "/conversations/{id}/files/{}/content",
                files[1]["id"].as_str().unwrap()
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"notes");

    // Bad forms.
    let form = reqwest::multipart::Form::new().text("title", "no message");
    problem(
        s.post("alice", "/chat")
            .multipart(form)
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    let form = reqwest::multipart::Form::new()
        .text("message", "x")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"1".to_vec()).file_name("a"),
        )
        .text("conversation_id", id.clone());
    problem(
        s.post("alice", "/chat")
            .multipart(form)
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    let form = reqwest::multipart::Form::new()
        .text("conversation_id", "../x")
        .text("message", "x");
    problem(
        s.post("alice", "/chat")
            .multipart(form)
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    let form = reqwest::multipart::Form::new()
        .text("conversation_id", ConversationId::new().to_string())
        .text("message", "x");
    problem(
        s.post("alice", "/chat")
            .multipart(form)
            .send()
            .await
            .unwrap(),
        404,
    )
    .await;
    let form = reqwest::multipart::Form::new()
        .text("message", "x")
        .text("other", "y");
    problem(
        s.post("alice", "/chat")
            .multipart(form)
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
    problem(
        s.post("alice", "/chat")
            .json(&json!({"message": "x"}))
            .send()
            .await
            .unwrap(),
        400,
    )
    .await;
}

#[tokio::test]
async fn chat_over_the_upload_limit_is_413() {
    let s = start_with(Options {
        max_upload_bytes: 1000,
        ..Options::default()
    })
    .await;
    let form = reqwest::multipart::Form::new().text("message", "big").part(
        "file",
        reqwest::multipart::Part::bytes(vec![1u8; 1001]).file_name("big.bin"),
    );
    let res = s
        .post("alice", "/chat")
        .multipart(form)
        .send()
        .await
        .unwrap();
    problem(res, 413).await;
    assert_eq!(s.files.len(), 0);
}

#[tokio::test]
async fn backend_errors_map_to_their_status() {
    let s = start_with(Options {
        search: false,
        ..Options::default()
    })
    .await;
    let c = s.create("alice", "errors").await;
    let id = c["id"].as_str().unwrap().to_owned();

    let res = s.get("alice", "/search?q=hello").send().await.unwrap();
    let p = problem(res, 501).await;
    assert_eq!(p["kind"], "not_supported");

    let cases: [(common::Fault, u16, &str); 6] = [
        (
            || Error::temporary("test", "throttled"),
            503,
            "temporarily_unavailable",
        ),
        (
            || Error::Conflict {
                message: "raced".into(),
            },
            409,
            "conflict",
        ),
        (
            || Error::outcome_unknown("test", "append", "timed out"),
            504,
            "outcome_unknown",
        ),
        (
            || Error::corrupt("test", "/secret/path/log-1", "bad checksum"),
            500,
            "corrupt",
        ),
        (
            || Error::permission_denied("test", "AccessDenied"),
            500,
            "permission_denied",
        ),
        (|| Error::backend("test", "disk on fire"), 500, "backend"),
    ];
    for (i, (fault, status, kind)) in cases.into_iter().enumerate() {
        s.messages.fail_next(fault);
        let res = s
            .get("alice", &format!("/conversations/{id}/messages"))
            .send()
            .await
            .unwrap();
        let retry_after = res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let p = problem(res, status).await;
        assert_eq!(p["kind"], kind);
        assert_eq!(
            s.messages.faults_raised(),
            i as u32 + 1,
            "the fault was raised"
        );
        if status == 503 {
            assert_eq!(retry_after.as_deref(), Some("1"));
        } else {
            assert_eq!(retry_after, None);
        }
        assert!(
            !p["detail"].as_str().unwrap().contains("/secret/path"),
            "no internals leak"
        );
    }
    // The backend works again afterwards.
    let res = s
        .get("alice", &format!("/conversations/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn bad_input_is_never_a_500() {
    let s = start().await;
    let c = s.create("alice", "x").await;
    let id = c["id"].as_str().unwrap().to_owned();
    let res = s.get("alice", "/no/such/route").send().await.unwrap();
    problem(res, 404).await;
    let res = s
        .client
        .put(s.url("/conversations"))
        .header("x-user", "a")
        .send()
        .await
        .unwrap();
    problem(res, 405).await;
    let big_meta = json!({"metadata": {"blob": "x".repeat(300 * 1024)}});
    let res = s
        .post("alice", "/conversations")
        .json(&big_meta)
        .send()
        .await
        .unwrap();
    problem(res, 413).await;
    let res = s
        .post("alice", "/conversations")
        .json(&json!({"title": "x".repeat(5000)}))
        .send()
        .await
        .unwrap();
    problem(res, 400).await;
    let deep = (0..100).fold(json!(1), |v, _| json!({"a": v}));
    let res = s
        .post("alice", "/conversations")
        .json(&json!({"metadata": deep}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16() / 100, 4);
    let huge = "x".repeat(10 * 1024 * 1024);
    let res = s
        .post("alice", &format!("/conversations/{id}/messages"))
        .json(&json!({"text": huge}))
        .send()
        .await
        .unwrap();
    problem(res, 413).await;
    let odd_paths = [
        "/conversations/a%2Fb",
        "/conversations/a%20b",
        "/conversations/%00",
        "/conversations/x/messages/-1",
        "/conversations/x/messages/99999999999999999999999",
        "/conversations/x/files/%2F%2F",
        "/search?q=",
        "/search",
        "/search?q=a&limit=0",
    ];
    for path in odd_paths {
        let res = s.get("alice", path).send().await.unwrap();
        let status = res.status().as_u16();
        assert!((400..500).contains(&status), "{path}: {status}");
        problem(res, status).await;
    }
    for body in [
        json!([]),
        json!(null),
        json!({"metadata": [1]}),
        json!({"title": 1}),
    ] {
        let res = s
            .post("alice", "/conversations")
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        assert!((400..500).contains(&status), "{body}: {status}");
    }
}

#[tokio::test]
async fn backends_with_signed_urls_give_theirs_and_can_redirect() {
    for redirect in [false, true] {
        let s = start_with(Options {
            signed_urls: Some("https"),
            redirect,
            ..Options::default()
        })
        .await;
        let c = s.create("alice", "s3-like").await;
        let id = c["id"].as_str().unwrap().to_owned();
        let file: Value = s
            .upload(
                "alice",
                &id,
                "report.pdf",
                "application/pdf",
                b"%PDF".to_vec(),
            )
            .await
            .json()
            .await
            .unwrap();
        let fid = file["id"].as_str().unwrap();
        let link: Value = s
            .get(
                "alice",
                &format!("/conversations/{id}/files/{fid}/url?expires_in=60"),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = link["url"].as_str().unwrap();
        assert!(url.starts_with("https://files.invalid/alice/"), "{url}");
        assert!(url.contains("expires_in=60&name=report.pdf"), "{url}");
        let no_follow = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let res = no_follow
            .get(s.url(&format!("/conversations/{id}/files/{fid}/content")))
            .header("x-user", "alice")
            .send()
            .await
            .unwrap();
        if redirect {
            assert_eq!(res.status(), 307);
            let location = res.headers()["location"].to_str().unwrap();
            assert!(
                location.starts_with("https://files.invalid/alice/"),
                "{location}"
            );
        } else {
            assert_eq!(res.status(), 200);
            assert_eq!(res.bytes().await.unwrap().as_ref(), b"%PDF");
        }
    }
}

/// The app's own extractor as the identity: a bearer token.
struct Bearer(chatvault_core::UserId);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Bearer {
    type Rejection = ();
    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, ()> {
        let token = parts
            .headers
            .get("authorization")
            .ok_or(())?
            .to_str()
            .map_err(|_| ())?;
        match token {
            "Bearer token-of-alice" => Ok(Bearer("alice".parse().unwrap())),
            _ => Err(()),
        }
    }
}

impl From<Bearer> for chatvault_core::UserId {
    fn from(b: Bearer) -> Self {
        b.0
    }
}

#[tokio::test]
async fn an_extractor_of_the_app_can_be_the_identity() {
    let vault = chatvault_core::ChatVault::new(
        chatvault_memory::MemoryMessages::new(),
        chatvault_memory::MemoryFiles::new(),
    );
    let app = axum::Router::new().nest(
        "/chat-api",
        chatvault_axum::ChatVaultApi::new(vault)
            .identity(chatvault_axum::ExtractorIdentity::<Bearer>::new())
            .into_router()
            .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/chat-api", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{base}/conversations"))
        .header("authorization", "Bearer token-of-alice")
        .json(&json!({"title": "via token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await.unwrap()["user_id"], "alice");
    for token in [None, Some("Bearer wrong")] {
        let mut req = client.get(format!("{base}/conversations"));
        if let Some(t) = token {
            req = req.header("authorization", t);
        }
        problem(req.send().await.unwrap(), 401).await;
    }
    // Without an identity resolver there is no router.
    let vault = chatvault_core::ChatVault::new(
        chatvault_memory::MemoryMessages::new(),
        chatvault_memory::MemoryFiles::new(),
    );
    assert_eq!(
        chatvault_axum::ChatVaultApi::new(vault.clone())
            .into_router()
            .err(),
        Some(chatvault_axum::BuildError::NoIdentity)
    );
    assert_eq!(
        chatvault_axum::ChatVaultApi::new(vault)
            .identity(chatvault_axum::ExtractorIdentity::<Bearer>::new())
            .signing_key(b"short".to_vec())
            .into_router()
            .err(),
        Some(chatvault_axum::BuildError::ShortSigningKey)
    );
    server.abort();
}

#[tokio::test]
async fn file_urls_of_a_local_store_are_replaced_by_the_signed_route() {
    // LocalFiles' signed URLs are file:// URLs, useless to a browser.
    let s = start_with(Options {
        signed_urls: Some("file"),
        redirect: true,
        ..Options::default()
    })
    .await;
    let c = s.create("alice", "local").await;
    let id = c["id"].as_str().unwrap().to_owned();
    let file: Value = s
        .upload("alice", &id, "a.txt", "text/plain", b"local bytes".to_vec())
        .await
        .json()
        .await
        .unwrap();
    let fid = file["id"].as_str().unwrap();
    let link: Value = s
        .get("alice", &format!("/conversations/{id}/files/{fid}/url"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = link["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{PREFIX}/downloads/{id}/{fid}?")),
        "{url}"
    );
    let res = s
        .client
        .get(format!("{}{url}", s.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"local bytes");
    // No redirect to a file:// URL either: the bytes are streamed.
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_follow
        .get(s.url(&format!("/conversations/{id}/files/{fid}/content")))
        .header("x-user", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"local bytes");
}
