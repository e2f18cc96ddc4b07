//! Live replies over HTTP: the resumable stream route (`Last-Event-ID`, 204 when nothing
//! streams) and the stop route.

// Helpers outside #[test] fns: their unwraps are test assertions too.
#![allow(clippy::unwrap_used)]

mod common;

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use chatvault_core::{ConversationId, ErrorKind, ReplyOptions, ReplyWriter, Usage};
use common::{Server, problem, start};
use futures_util::{Stream, StreamExt};
use serde_json::Value;

/// One server-sent event.
#[derive(Debug)]
struct Sse {
    event: String,
    id: Option<String>,
    data: Value,
}

/// Reads server-sent events from a response as they arrive.
struct SseReader {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buffer: String,
}

impl SseReader {
    fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        SseReader {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped); `None` when the stream ends.
    async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::new(), None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if event.is_empty() {
                    continue; // a comment
                }
                let data = serde_json::from_str(&data).unwrap();
                return Some(Sse { event, id, data });
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .expect("an event within 10 s")?
                .unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

/// A conversation of alice's with a question, and a reply streaming into it (its
/// checkpoints only when the test asks).
async fn streaming(s: &Server) -> (ConversationId, ReplyWriter, String) {
    let c = s.create("alice", "live").await;
    let id: ConversationId = c["id"].as_str().unwrap().parse().unwrap();
    s.say("alice", id.as_str(), "user", "Say hello").await;
    let mut chat = s.vault.get_conversation(&id).await.unwrap().unwrap();
    let reply = chat
        .begin_reply(ReplyOptions::default().checkpoint_interval(Duration::from_secs(3600)))
        .await
        .unwrap();
    let path = format!("/conversations/{id}/messages/{}", reply.message_id());
    (id, reply, path)
}

async fn open(s: &Server, path: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut request = s.get("alice", &format!("{path}/stream"));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_stream_resumes_from_the_last_event_id() {
    let s = start().await;
    let (_, mut reply, path) = streaming(&s).await;
    reply.push_text("Hello").await.unwrap();
    reply.checkpoint().await.unwrap();

    let mut first = SseReader::new(open(&s, &path, None).await);
    let hello = first.next().await.unwrap();
    assert_eq!(hello.event, "delta");
    assert_eq!(hello.id.as_deref(), Some("5"));
    assert_eq!(hello.data["offset"], 0);
    assert_eq!(hello.data["text"], "Hello");
    drop(first); // the client goes away

    reply.push_text(", wörld").await.unwrap();
    reply.checkpoint().await.unwrap();
    // Back with the last id it got; the header wins over the query.
    let res = s
        .get("alice", &format!("{path}/stream?offset=0"))
        .header("last-event-id", "5")
        .send()
        .await
        .unwrap();
    let mut second = SseReader::new(res);
    let world = second.next().await.unwrap();
    assert_eq!(world.event, "delta");
    assert_eq!(world.data["offset"], 5);
    assert_eq!(world.data["text"], ", wörld");
    assert_eq!(world.id.as_deref(), Some("13"), "bytes, not characters");

    // The rest arrives as it is checkpointed, then the end, then the stream closes.
    reply.push_text("!").await.unwrap();
    reply.finish(Some(Usage::new("m", 2, 3))).await.unwrap();
    let bang = second.next().await.unwrap();
    assert_eq!(
        (bang.event.as_str(), bang.id.as_deref()),
        ("delta", Some("14"))
    );
    assert_eq!(bang.data["text"], "!");
    let end = second.next().await.unwrap();
    assert_eq!(end.event, "end");
    assert_eq!(end.id.as_deref(), Some("14"));
    assert_eq!(end.data["status"], "complete");
    assert_eq!(end.data["content"], "Hello, wörld!");
    assert_eq!(end.data["usage"]["output_tokens"], 3);
    assert!(
        second.next().await.is_none(),
        "the stream ends with the reply"
    );

    // Nothing streams any more: 204 (an EventSource stops reconnecting)...
    for last in [None, Some("14")] {
        let res = open(&s, &path, last).await;
        assert_eq!(res.status(), 204, "{last:?}");
    }
    // ... but a reader that missed the tail still gets it, then the end.
    let mut late = SseReader::new(open(&s, &path, Some("5")).await);
    let tail = late.next().await.unwrap();
    assert_eq!(tail.data["text"], ", wörld!");
    assert_eq!(late.next().await.unwrap().event, "end");
    assert!(late.next().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_refuses_bad_offsets_and_other_users() {
    let s = start().await;
    let (id, mut reply, path) = streaming(&s).await;
    reply.push_text("é").await.unwrap();
    reply.checkpoint().await.unwrap();
    for last in ["3", "1", "abc", "-1"] {
        let body = problem(open(&s, &path, Some(last)).await, 400).await;
        assert_eq!(body["kind"], "invalid_input", "{last}");
    }
    let res = s
        .get("alice", &format!("{path}/stream?offset=9"))
        .send()
        .await
        .unwrap();
    problem(res, 400).await;
    let res = s
        .get("bob", &format!("{path}/stream"))
        .send()
        .await
        .unwrap();
    problem(res, 404).await;
    let other = chatvault_core::MessageId::new();
    let res = s
        .get(
            "alice",
            &format!("/conversations/{id}/messages/{other}/stream"),
        )
        .send()
        .await
        .unwrap();
    problem(res, 404).await;
    reply.finish(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_keeps_the_partial_reply_and_ends_stream_and_writer() {
    let s = start().await;
    let (id, mut reply, path) = streaming(&s).await;
    reply.push_text("Half a").await.unwrap();
    reply.checkpoint().await.unwrap();
    reply.push_text(" sentence never stored").await.unwrap();
    let mut reader = SseReader::new(open(&s, &path, None).await);
    assert_eq!(reader.next().await.unwrap().data["text"], "Half a");

    // Someone else's conversation: 404, and nothing changes.
    let res = s.post("bob", &format!("{path}/stop")).send().await.unwrap();
    problem(res, 404).await;
    let still: Value = s
        .get("alice", &format!("/conversations/{id}/messages/2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(still["status"], "streaming");

    let res = s
        .post("alice", &format!("{path}/stop"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let stopped: Value = res.json().await.unwrap();
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(stopped["content"], "Half a");

    // The reader gets the end; the writer's next write is refused.
    let end = reader.next().await.unwrap();
    assert_eq!(end.event, "end");
    assert_eq!(end.data["status"], "stopped");
    assert_eq!(end.data["content"], "Half a");
    assert!(reader.next().await.is_none());
    let err = reply.checkpoint().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Stopped);

    // Stopping again is harmless; the stored reply is what the stop kept.
    let again: Value = s
        .post("alice", &format!("{path}/stop"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["revision"], stopped["revision"]);
    let stored: Value = s
        .get("alice", &format!("/conversations/{id}/messages/2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["status"], "stopped");
    assert_eq!(stored["content"], "Half a");
    assert_eq!(open(&s, &path, None).await.status(), 204);
}

/// A client that loses its connection at random many times, each time coming back with
/// the last event id it got, reads exactly the reply a client that never left reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_dropped_at_random_reads_the_whole_reply() {
    let s = start().await;
    let (id, mut reply, path) = streaming(&s).await;
    let writer = tokio::spawn(async move {
        let mut written = String::new();
        for i in 0..300 {
            let token = format!("tök{i} ");
            reply.push_text(&token).await.unwrap();
            written.push_str(&token);
            if i % 2 == 0 {
                reply.checkpoint().await.unwrap();
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        }
        reply.finish(None).await.unwrap();
        written
    });
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut text = String::new();
    let mut last_id: Option<String> = None;
    let mut connections = 0;
    let status = 'read: loop {
        connections += 1;
        let res = open(&s, &path, last_id.as_deref()).await;
        if res.status() == 204 {
            // The reply ended and the reader has all of its text: read the message.
            let seq_path = format!("/conversations/{id}/messages/2");
            let res = s.get("alice", &seq_path).send().await.unwrap();
            let message: Value = res.json().await.unwrap();
            assert_eq!(message["content"], text.as_str());
            break 'read message["status"].as_str().unwrap().to_owned();
        }
        let mut reader = SseReader::new(res);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let keep = seed % 4 + 1;
        for _ in 0..keep {
            let Some(event) = reader.next().await else {
                continue 'read;
            };
            match event.event.as_str() {
                "delta" => {
                    assert_eq!(event.data["offset"], text.len() as u64, "no gap or repeat");
                    text.push_str(event.data["text"].as_str().unwrap());
                    assert_eq!(event.id, Some(text.len().to_string()));
                    last_id = event.id;
                }
                "end" => break 'read event.data["status"].as_str().unwrap().to_owned(),
                other => panic!("{other}: {:?}", event.data),
            }
        }
        // Dropped here: the connection goes away mid-stream.
    };
    let written = writer.await.unwrap();
    assert_eq!(status, "complete");
    assert_eq!(text.as_bytes(), written.as_bytes());
    assert!(connections > 10, "{connections} connections");
}
