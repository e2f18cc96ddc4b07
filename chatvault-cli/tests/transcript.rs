//! `chatvault export --conversation ID --format markdown|openai|anthropic`, against golden
//! files written by hand from the Markdown spec (the crate README) and chatvault-llm's
//! documented provider mappings.
#![allow(clippy::unwrap_used)] // tests may unwrap

use std::path::Path;

use chatvault_core::backend::MessagesBackend;
use chatvault_core::{
    ChatVault, ConversationId, ConversationRecord, MessageStatus, NewMessage, Part, Role, Usage,
};
use chatvault_local::{LocalFiles, LocalMessages};
use chrono::{DateTime, Utc};

mod common;
use common::{chatvault, stderr};

fn golden(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

fn at(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
}

fn message(role: Role, parts: Vec<Part>, t: &str) -> NewMessage {
    let mut m = NewMessage::with_parts(role, parts);
    m.created_at = at(t);
    m
}

/// A local store holding conversation `c-golden`: instructions, a user message with an
/// attachment, reasoning and a tool call, its result, a reply with a linked image, and a
/// reply cut short.
fn golden_store(dir: &Path) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let messages = LocalMessages::open(dir.join("messages")).unwrap();
        let mut record = ConversationRecord::new(Some("alice".parse().unwrap()));
        record.id = ConversationId::parse("c-golden").unwrap();
        record.title = Some("Weather in Oslo".into());
        record.created_at = at("2025-01-02T03:04:05Z");
        record.last_active = record.created_at;
        messages.create(&record).await.unwrap();
        let vault = ChatVault::new(messages, LocalFiles::new(dir.join("files")).unwrap());
        let mut c = vault.get_conversation(&record.id).await.unwrap().unwrap();
        let notes = c
            .attach_file("notes.txt", b"remember the milk".to_vec(), "text/plain")
            .await
            .unwrap();
        let call = message(
            Role::Assistant,
            vec![
                Part::Reasoning(chatvault_core::Reasoning {
                    text: Some("The user wants the weather: ask the tool.".into()),
                    signature: Some("sig-1".into()),
                    redacted: false,
                }),
                Part::tool_call(
                    "call_1",
                    "get_weather",
                    serde_json::json!({"city": "Oslo", "days": 1}),
                ),
            ],
            "2025-01-02T03:04:12Z",
        )
        .with_usage(Usage::new("gpt-4o", 120, 18));
        let cut_short = message(
            Role::Assistant,
            vec![Part::text("Tomorrow it will")],
            "2025-01-02T03:05:02Z",
        )
        .with_status(MessageStatus::Interrupted, None);
        c.append(vec![
            message(
                Role::System,
                vec![Part::text("You are terse.")],
                "2025-01-02T03:04:05Z",
            ),
            message(
                Role::User,
                vec![
                    Part::text("What's the weather in Oslo? My notes are attached."),
                    Part::attachment(notes.id.clone(), None),
                ],
                "2025-01-02T03:04:10Z",
            ),
            call,
            message(
                Role::Tool,
                vec![Part::tool_result("call_1", "4°C, light snow", false)],
                "2025-01-02T03:04:13Z",
            ),
            message(
                Role::Assistant,
                vec![
                    Part::text("It is 4°C with light snow."),
                    Part::File(chatvault_core::FilePart {
                        source: chatvault_core::FileSource::Url {
                            url: "https://example.com/oslo.png".into(),
                        },
                        media_type: Some("image/png".parse().unwrap()),
                        filename: Some("oslo.png".into()),
                    }),
                ],
                "2025-01-02T03:04:15Z",
            ),
            message(
                Role::User,
                vec![Part::text("And tomorrow?")],
                "2025-01-02T03:05:00Z",
            ),
            cut_short,
        ])
        .await
        .unwrap();
    });
    format!("local:{}", dir.display())
}

fn export(store: &str, format: &str) -> std::process::Output {
    chatvault()
        .args(["--store", store, "export", "--conversation", "c-golden"])
        .args(["--format", format])
        .output()
        .unwrap()
}

#[test]
fn markdown_is_the_golden_transcript() {
    let tmp = tempfile::tempdir().unwrap();
    let store = golden_store(&tmp.path().join("store"));
    let out = export(&store, "markdown");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, golden("transcript.md"));
}

#[test]
fn openai_and_anthropic_are_the_llm_writers_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let store = golden_store(&tmp.path().join("store"));
    for (format, file) in [("openai", "openai.json"), ("anthropic", "anthropic.json")] {
        let out = export(&store, format);
        assert!(out.status.success(), "{format}: {}", stderr(&out));
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let want: serde_json::Value = serde_json::from_str(&golden(file)).unwrap();
        assert_eq!(
            got,
            want,
            "{format}:\n{}",
            serde_json::to_string_pretty(&got).unwrap()
        );
    }
}

#[test]
fn a_transcript_file_is_new_whole_and_never_written_over() {
    let tmp = tempfile::tempdir().unwrap();
    let store = golden_store(&tmp.path().join("store"));
    let outdir = tmp.path().join("out");
    std::fs::create_dir(&outdir).unwrap();
    let path = outdir.join("chat.md");
    let out = chatvault()
        .args(["--store", &store, "export", "--conversation", "c-golden"])
        .args(["--format", "markdown", "-o"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        golden("transcript.md")
    );
    let names: Vec<_> = std::fs::read_dir(&outdir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["chat.md"], "no temporary file is left behind");

    std::fs::write(&path, "mine").unwrap();
    let out = chatvault()
        .args(["--store", &store, "export", "--conversation", "c-golden"])
        .args(["--format", "openai", "-o"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "mine");

    // An unknown conversation writes nothing.
    let missing = outdir.join("missing.md");
    let out = chatvault()
        .args(["--store", &store, "export", "--conversation", "nope"])
        .args(["--format", "markdown", "-o"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
    assert!(!missing.exists());
    assert_eq!(std::fs::read_dir(&outdir).unwrap().count(), 1);
}

#[test]
fn a_transcript_format_needs_one_conversation() {
    let tmp = tempfile::tempdir().unwrap();
    let store = golden_store(&tmp.path().join("store"));
    for args in [
        vec!["--format", "markdown"],
        vec!["--format", "anthropic", "--owner", "alice"],
    ] {
        let out = chatvault()
            .current_dir(tmp.path())
            .args(["--store", &store, "export"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("--conversation"), "{}", stderr(&out));
    }
    let out = chatvault()
        .args(["--store", &store, "export", "--conversation", "c-golden"])
        .args(["--format", "html"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "only the store: no export was written"
    );
}
