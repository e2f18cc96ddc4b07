//! A response sent before the request body was read to its end (413 over the upload
//! limit, 401, 404, ...) reaches a keep-alive client, says `Connection: close` when the
//! connection cannot be kept, and the client's next request succeeds (issue #19, item 4).
//!
//! Multi-threaded runtimes: with the server and the client on one thread the races these
//! tests are about do not happen.

// Helpers outside #[test] fns: their unwraps are test assertions too.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Options, Server, problem, start, start_with};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: usize = 1024 * 1024;

/// Asserts the response says `Connection: close` and is the problem `status`.
async fn refused_with_close(res: reqwest::Response, status: u16) {
    let connection = res
        .headers()
        .get("connection")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(connection.as_deref(), Some("close"), "{}", res.url());
    problem(res, status).await;
}

/// The client's next request works.
async fn next_request_succeeds(s: &Server, id: &str) {
    let res = s
        .get("alice", &format!("/conversations/{id}"))
        .send()
        .await
        .expect("the request after a refusal");
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_413_reaches_a_keep_alive_client_which_goes_on() {
    let s = start_with(Options {
        max_upload_bytes: 64 * 1024,
        ..Options::default()
    })
    .await;
    let c = s.create("alice", "limits").await;
    let id = c["id"].as_str().unwrap().to_owned();
    for round in 0..20 {
        let size = MIB << (round % 5);
        let data = vec![7u8; size];
        let res = s
            .upload("alice", &id, "big.bin", "application/octet-stream", data)
            .await;
        refused_with_close(res, 413).await;
        next_request_succeeds(&s, &id).await;
        let part = reqwest::multipart::Part::bytes(vec![7u8; size]).file_name("big.bin");
        let form = reqwest::multipart::Form::new()
            .text("message", "hi")
            .part("file", part);
        let res = s.post("alice", "/chat").multipart(form).send().await;
        refused_with_close(res.expect("the 413 of /chat"), 413).await;
        next_request_succeeds(&s, &id).await;
    }
    assert_eq!(s.files.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_sending_an_endless_body_gets_its_413() {
    let s = start_with(Options {
        max_upload_bytes: 64 * 1024,
        ..Options::default()
    })
    .await;
    let c = s.create("alice", "limits").await;
    let id = c["id"].as_str().unwrap().to_owned();
    // A file part whose bytes never end.
    let head =
        Bytes::from("--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\n");
    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    let endless = futures_util::stream::iter(
        std::iter::once(head)
            .chain(std::iter::repeat(chunk))
            .map(Ok::<_, std::io::Error>),
    );
    let started = Instant::now();
    let res = s
        .post("alice", &format!("/conversations/{id}/files"))
        .header("content-type", "multipart/form-data; boundary=B")
        .body(reqwest::Body::wrap_stream(endless))
        .send()
        .await
        .expect("the 413, not a reset");
    refused_with_close(res, 413).await;
    // The server reads on for a bounded while only.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    next_request_succeeds(&s, &id).await;
    assert_eq!(s.files.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_early_refusals_announce_the_close_too() {
    let s = start().await;
    let c = s.create("alice", "refusals").await;
    let id = c["id"].as_str().unwrap().to_owned();
    let big = || vec![7u8; 8 * MIB];
    // 401: no identity, the body never read.
    let res = s
        .client
        .post(s.url(&format!("/conversations/{id}/files")))
        .header("content-type", "multipart/form-data; boundary=B")
        .body(big())
        .send()
        .await;
    refused_with_close(res.expect("the 401"), 401).await;
    next_request_succeeds(&s, &id).await;
    // 404: someone else's conversation.
    let res = s
        .client
        .post(s.url(&format!("/conversations/{id}/files")))
        .header("x-user", "mallory")
        .header("content-type", "multipart/form-data; boundary=B")
        .body(big())
        .send()
        .await;
    refused_with_close(res.expect("the 404"), 404).await;
    next_request_succeeds(&s, &id).await;
    // 400: an upload whose first part is not the file.
    let mut body = b"--B\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n".to_vec();
    body.extend(big());
    let res = s
        .post("alice", &format!("/conversations/{id}/files"))
        .header("content-type", "multipart/form-data; boundary=B")
        .body(body)
        .send()
        .await;
    refused_with_close(res.expect("the 400"), 400).await;
    next_request_succeeds(&s, &id).await;
    // 413: a JSON body over the router's limit (9 MiB), cut off while read.
    let huge = "x".repeat(16 * MIB);
    let res = s
        .post("alice", &format!("/conversations/{id}/messages"))
        .json(&json!({ "text": huge }))
        .send()
        .await;
    refused_with_close(res.expect("the JSON 413"), 413).await;
    next_request_succeeds(&s, &id).await;
}

/// Reads one response with a `Content-Length` from `stream`: its head and body.
async fn read_response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(buf[..end].to_vec()).unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().unwrap())
                    })
                    .expect("a content-length");
                if buf.len() >= end + 4 + length {
                    let body = buf[end + 4..end + 4 + length].to_vec();
                    buf.drain(..end + 4 + length);
                    assert!(buf.is_empty(), "nothing after the response");
                    return (head, body);
                }
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the connection closed mid-response: {buf:?}");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("a response within 10 s")
}

/// The host and port of the test server.
fn authority(s: &Server) -> &str {
    s.origin.trim_start_matches("http://")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_whose_small_body_arrived_keeps_the_connection() {
    let s = start().await;
    let c = s.create("alice", "kept").await;
    let id = c["id"].as_str().unwrap().to_owned();
    let mut tcp = TcpStream::connect(authority(&s)).await.unwrap();
    // 401 before the JSON body is read: the rest is read before the answer, and the
    // connection serves the next request.
    let body = json!({ "title": "x" }).to_string();
    let request = format!(
        "POST /api/v1/conversations HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let (head, _) = read_response(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let request =
        format!("GET /api/v1/conversations/{id} HTTP/1.1\r\nHost: t\r\nX-User: alice\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let (head, body) = read_response(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(String::from_utf8(body).unwrap().contains(&id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_of_a_body_held_back_for_100_continue_closes_without_asking_for_it() {
    let s = start().await;
    let c = s.create("alice", "continue").await;
    let id = c["id"].as_str().unwrap().to_owned();
    let mut tcp = TcpStream::connect(authority(&s)).await.unwrap();
    let request = format!(
        "POST /api/v1/conversations/{id}/files HTTP/1.1\r\nHost: t\r\n\
         Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {}\r\n\
         Expect: 100-continue\r\n\r\n",
        100 * MIB
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    // No identity: 401, with no `100 Continue` before it, and the connection closes.
    let (head, _) = read_response(&mut tcp).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0))), "{closed:?} {rest:?}");
}
