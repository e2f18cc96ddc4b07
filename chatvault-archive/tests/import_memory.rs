//! Memory stays bounded by a few conversations, never the export: a 48 MB
//! conversations.json is streamed, not read whole. One test in this binary, so that the
//! process's peak resident memory is this test's.
#![allow(clippy::unwrap_used)]
#![cfg(target_os = "linux")]

mod common;
mod import_util;

use std::io::Write;

use chatvault_archive::import::Format;
use serde_json::json;

fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_export_is_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conversations.json");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    out.write_all(b"[").unwrap();
    let text = "x".repeat(1000);
    let conversations = 4000;
    for c in 0..conversations {
        let mut mapping = serde_json::Map::new();
        for i in 0..12 {
            let parent = if i == 0 {
                None
            } else {
                Some(format!("n{}", i - 1))
            };
            mapping.insert(
                format!("n{i}"),
                json!({"id": format!("n{i}"), "parent": parent, "message": {
                    "author": {"role": if i % 2 == 0 { "user" } else { "assistant" }},
                    "create_time": 1_700_000_000 + i,
                    "content": {"content_type": "text", "parts": [text]}}}),
            );
        }
        if c > 0 {
            out.write_all(b",").unwrap();
        }
        let conv = json!({"id": format!("c{c}"), "title": "t", "mapping": mapping});
        serde_json::to_writer(&mut out, &conv).unwrap();
    }
    out.write_all(b"]").unwrap();
    out.flush().unwrap();
    drop(out);
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size > 48_000_000, "{size}");

    let before = peak_rss_bytes();
    let store = common::memory();
    let report = import_util::import_as(Format::ChatGpt, &path, &store, true).await;
    assert_eq!(report.conversations, conversations);
    assert_eq!(report.messages_added, conversations * 12);
    let grown = peak_rss_bytes().saturating_sub(before);
    assert!(
        grown < size / 4,
        "peak memory grew by {grown} bytes for a {size}-byte export"
    );
}
