//! Attachments resolved for providers: base64 data URLs, signed URLs, the fallback, gone
//! files, files inside tool results, external URLs passing through.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::sync::Arc;
use std::time::Duration;

use chatvault_core::backend::{FilesCapabilities, async_trait};
use chatvault_core::conformance::{FilesHook, Forward};
use chatvault_core::{
    ChatVault, ContentType, ErrorKind, FilePart, FileSource, FilesBackend, NewMessage, Part,
    Result, Role, StorageKey, ToolResult,
};
use chatvault_llm::{
    self as llm, FileMode, HistoryOptions, PrepareHistory, ReplayMessage, resolve_files,
};
use chatvault_memory::{MemoryFiles, MemoryMessages};

/// Memory files that also make (fake, but checkable) signed URLs.
#[derive(Debug, Default)]
struct Signing;

/// `Signing` over MemoryFiles.
type SigningFiles = Forward<MemoryFiles, Signing>;

#[async_trait]
impl FilesHook<MemoryFiles> for Signing {
    fn capabilities(&self, _inner: &MemoryFiles) -> FilesCapabilities {
        FilesCapabilities::basic().with_signed_urls(true)
    }
    async fn signed_url(
        &self,
        inner: &MemoryFiles,
        key: &StorageKey,
        expires_in: Duration,
        download_filename: Option<&str>,
    ) -> Result<String> {
        if inner.head(key).await?.is_none() {
            return Err(chatvault_core::Error::NotFound {
                kind: "file",
                id: key.to_string(),
            });
        }
        Ok(format!(
            "https://files.test/{key}?expires={}&name={}",
            expires_in.as_secs(),
            download_filename.unwrap_or("")
        ))
    }
}

fn ct(s: &str) -> Option<ContentType> {
    Some(ContentType::parse(s).unwrap())
}

fn file_of(part: &Part) -> &FilePart {
    match part {
        Part::File(f) => f,
        other => panic!("not a file: {other:?}"),
    }
}

fn url_of(part: &Part) -> &str {
    match &file_of(part).source {
        FileSource::Url { url } => url,
        other => panic!("not resolved: {other:?}"),
    }
}

#[tokio::test]
async fn base64_inlines_bytes_and_keeps_names_and_types() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let mut chat = vault.create_conversation(None).await.unwrap();
    let pdf = chat
        .attach_file("report.pdf", &b"%PDF-1.4 hello"[..], "application/pdf")
        .await
        .unwrap();
    let png = chat
        .attach_file("chart.png", &b"\x89PNG\r\n"[..], "image/png")
        .await
        .unwrap();
    let messages = vec![
        ReplayMessage::new(
            Role::User,
            vec![
                Part::text("Read these"),
                Part::attachment(pdf.id.clone(), None),
                // The part's own type and name win over the attachment's.
                Part::File(FilePart {
                    source: FileSource::Attachment {
                        file_id: png.id.clone(),
                    },
                    media_type: ct("image/x-custom"),
                    filename: Some("renamed.png".into()),
                }),
                Part::url("https://example.com/external.png", None),
            ],
        ),
        ReplayMessage::new(
            Role::Tool,
            vec![Part::ToolResult(ToolResult {
                call_id: "c".into(),
                content: vec![Part::attachment(png.id.clone(), None)],
                is_error: false,
            })],
        ),
    ];
    let out = resolve_files(&chat, messages, FileMode::Base64)
        .await
        .unwrap();
    let parts = &out[0].parts;
    assert_eq!(parts[0], Part::text("Read these"));
    assert_eq!(
        url_of(&parts[1]),
        "data:application/pdf;base64,JVBERi0xLjQgaGVsbG8="
    );
    assert_eq!(file_of(&parts[1]).filename.as_deref(), Some("report.pdf"));
    assert_eq!(file_of(&parts[1]).media_type, ct("application/pdf"));
    assert_eq!(url_of(&parts[2]), "data:image/png;base64,iVBORw0K");
    assert_eq!(file_of(&parts[2]).media_type, ct("image/x-custom"));
    assert_eq!(file_of(&parts[2]).filename.as_deref(), Some("renamed.png"));
    assert_eq!(
        parts[3],
        Part::url("https://example.com/external.png", None)
    );
    let Part::ToolResult(r) = &out[1].parts[0] else {
        panic!()
    };
    assert_eq!(url_of(&r.content[0]), "data:image/png;base64,iVBORw0K");

    // Resolved history converts; the PDF goes to Chat Completions as a file part.
    let chat_json = llm::openai::to_messages(&out).unwrap();
    assert_eq!(chat_json[0]["content"][1]["type"], "file");
    assert_eq!(chat_json[0]["content"][1]["file"]["filename"], "report.pdf");
    let anthropic = llm::anthropic::to_request(&out).unwrap();
    assert_eq!(
        anthropic.messages[0]["content"][4]["content"][0]["source"]["data"],
        "iVBORw0K"
    );
}

#[tokio::test]
async fn signed_urls_come_from_the_files_backend() {
    let vault = ChatVault::new(MemoryMessages::new(), SigningFiles::default());
    let mut chat = vault.create_conversation(None).await.unwrap();
    let f = chat
        .attach_file("a b.pdf", &b"x"[..], "application/pdf")
        .await
        .unwrap();
    let messages = vec![ReplayMessage::new(
        Role::User,
        vec![Part::attachment(f.id.clone(), None)],
    )];
    for mode in [
        FileMode::SignedUrl(Duration::from_secs(600)),
        FileMode::SignedUrlOrBase64(Duration::from_secs(600)),
    ] {
        let out = resolve_files(&chat, messages.clone(), mode).await.unwrap();
        let url = url_of(&out[0].parts[0]);
        assert!(url.starts_with("https://files.test/"), "{url}");
        assert!(url.contains(f.storage_key.as_str()), "{url}");
        assert!(url.ends_with("expires=600&name=a b.pdf"), "{url}");
        assert_eq!(file_of(&out[0].parts[0]).media_type, ct("application/pdf"));
        // Responses takes documents by URL.
        let items = llm::responses::to_input_items(&out).unwrap();
        assert_eq!(items[0]["content"][0]["file_url"], url);
    }
    let out = resolve_files(&chat, messages, FileMode::Base64)
        .await
        .unwrap();
    assert_eq!(url_of(&out[0].parts[0]), "data:application/pdf;base64,eA==");
}

#[tokio::test]
async fn without_signed_urls_signed_mode_fails_and_the_fallback_inlines() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let mut chat = vault.create_conversation(None).await.unwrap();
    let f = chat
        .attach_file("a.txt", &b"hi"[..], "text/plain")
        .await
        .unwrap();
    let messages = vec![ReplayMessage::new(
        Role::User,
        vec![Part::attachment(f.id.clone(), None)],
    )];
    let err = resolve_files(
        &chat,
        messages.clone(),
        FileMode::SignedUrl(Duration::from_secs(60)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotSupported);
    let out = resolve_files(
        &chat,
        messages,
        FileMode::SignedUrlOrBase64(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    assert_eq!(url_of(&out[0].parts[0]), "data:text/plain;base64,aGk=");
    // A base64 text/plain file goes to Anthropic as a text document.
    let request = llm::anthropic::to_request(&out).unwrap();
    assert_eq!(
        request.messages[0]["content"][0],
        serde_json::json!({"type": "document", "title": "a.txt",
            "source": {"type": "text", "media_type": "text/plain", "data": "hi"}})
    );
}

#[tokio::test]
async fn gone_attachments_become_a_note_instead_of_failing_every_request() {
    let files = Arc::new(SigningFiles::default());
    let vault = ChatVault::from_arcs(Arc::new(MemoryMessages::new()), files.clone());
    let mut chat = vault.create_conversation(None).await.unwrap();
    let kept = chat
        .attach_file("kept.txt", &b"k"[..], "text/plain")
        .await
        .unwrap();
    let lost = chat
        .attach_file("lost.txt", &b"l"[..], "text/plain")
        .await
        .unwrap();
    let deleted = chat
        .attach_file("deleted.txt", &b"d"[..], "text/plain")
        .await
        .unwrap();
    chat.add(NewMessage::with_parts(
        Role::User,
        vec![
            Part::attachment(kept.id.clone(), None),
            Part::attachment(lost.id.clone(), None),
            Part::attachment(deleted.id.clone(), None),
        ],
    ))
    .await
    .unwrap();
    // Bytes vanish behind the vault's back; another attachment is deleted properly.
    assert!(files.delete(&lost.storage_key).await.unwrap());
    assert!(chat.delete_file(&deleted.id).await.unwrap());

    for mode in [
        FileMode::Base64,
        FileMode::SignedUrl(Duration::from_secs(5)),
    ] {
        let history = chat
            .prepare_history(&HistoryOptions::new(mode))
            .await
            .unwrap();
        let parts = &history[0].parts;
        assert!(matches!(file_of(&parts[0]).source, FileSource::Url { .. }));
        assert_eq!(
            parts[1],
            Part::text("[attachment lost.txt is no longer available]")
        );
        assert_eq!(
            parts[2],
            Part::text(format!(
                "[attachment {} is no longer available]",
                deleted.id
            ))
        );
    }
}

#[tokio::test]
async fn files_too_large_to_inline_are_refused() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let mut chat = vault.create_conversation(None).await.unwrap();
    let big = vec![0u8; llm::files::MAX_INLINE_BYTES as usize + 1];
    let f = chat
        .attach_file("big.bin", big, "application/octet-stream")
        .await
        .unwrap();
    let messages = vec![ReplayMessage::new(
        Role::User,
        vec![Part::attachment(f.id.clone(), None)],
    )];
    let err = resolve_files(&chat, messages, FileMode::Base64)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
}

#[tokio::test]
async fn attachments_added_through_another_handle_are_found() {
    let vault = ChatVault::new(MemoryMessages::new(), MemoryFiles::new());
    let stale = vault.create_conversation(None).await.unwrap();
    let mut other = vault.get_conversation(stale.id()).await.unwrap().unwrap();
    let f = other
        .attach_file("late.txt", &b"late"[..], "text/plain")
        .await
        .unwrap();
    assert!(stale.file(&f.id).is_none());
    let messages = vec![ReplayMessage::new(
        Role::User,
        vec![Part::attachment(f.id.clone(), None)],
    )];
    let out = resolve_files(&stale, messages, FileMode::Base64)
        .await
        .unwrap();
    assert_eq!(url_of(&out[0].parts[0]), "data:text/plain;base64,bGF0ZQ==");
}
