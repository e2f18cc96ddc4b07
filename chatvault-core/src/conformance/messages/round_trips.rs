//! Round trips: every part kind, every message field, every accepted value.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::common::{SIGNATURE, accepted, head_record, user_msg};
use crate::backend::MessagesBackend;
use crate::backend::MessagesBackendExt;
use crate::conformance::SuiteConfig;
use crate::conformance::util::{
    all_messages, depth_limit, exact_metadata, fresh_user, message_limit, metadata_with,
    new_conversation, ok, parse,
};
use crate::ids::FileId;
use crate::model::{ConversationPatch, ConversationRecord, Role, now, validate_metadata};
use crate::model::{
    FilePart, FileSource, MessageStatus, MessageUpdate, NewMessage, Part, ProviderPart, Reasoning,
    ToolResult, Usage,
};

/// Every part kind round-trips exactly: text, unicode, a file by attachment and by URL
/// (also a `data:` URL), a tool call with large arguments and exact numbers, a nested tool
/// result, reasoning with a byte-exact signature (and redacted), provider data, and a part
/// kind from a later release.
pub async fn every_part_kind_round_trips(backend: Arc<dyn MessagesBackend>, config: SuiteConfig) {
    let b = backend.as_ref();
    let limit = message_limit(b);
    let record = new_conversation(b, None).await;
    let everything = NewMessage::with_parts(Role::Assistant, every_part_kind());
    accepted(&everything, limit);
    let large = large_arguments_message(config.large_arguments_bytes, limit);
    accepted(&large, limit);
    let result = NewMessage::with_parts(
        Role::Tool,
        vec![Part::tool_result("call_big", "written", false)],
    );

    let appended = ok(
        b.append_messages(
            &record.id,
            vec![everything.clone(), large.clone(), result.clone()],
        )
        .await,
        "append every part kind",
    );
    let read = all_messages(b, &record.id).await;
    assert_eq!(read, appended.messages, "read back as returned");
    for (sent, got) in [&everything, &large, &result].into_iter().zip(&read) {
        for (i, (s, g)) in sent.parts.iter().zip(&got.parts).enumerate() {
            assert_eq!(g, s, "part {i} ({}) changed on the way", s.kind());
        }
        assert_eq!(
            got.parts.len(),
            sent.parts.len(),
            "parts were lost or added"
        );
        assert_eq!(got.role, sent.role);
    }
}

/// One part of every kind: text, unicode, a file by attachment and by URL (also a `data:`
/// URL), a tool call with exact numbers, a nested tool result, reasoning with a byte-exact
/// signature (and redacted), provider data, and a part kind from a later release.
fn every_part_kind() -> Vec<Part> {
    let unknown: Part = match serde_json::from_value(serde_json::json!({
        "type": "hologram", "frames": [1, 2.5, null, 18446744073709551615u64], "x": {"y": "z ✓"}
    })) {
        Ok(p) => p,
        Err(e) => panic!("the suite's unknown part: {e}"),
    };
    assert!(
        matches!(unknown, Part::Unknown(_)),
        "the suite's unknown part must be unknown"
    );
    vec![
        Part::text("plain"),
        Part::text(
            "日本語, Ελληνικά, עברית, 👨‍👩‍👧, e\u{301}, \u{202E}rtl\u{202C}, \"quotes\" \\ \n\t",
        ),
        Part::File(FilePart {
            source: FileSource::Attachment {
                file_id: FileId::new(),
            },
            media_type: Some(parse("image/png")),
            filename: Some("cat picture ✓.png".into()),
        }),
        Part::url(
            "https://example.com/a%20b/cat.png?x=1&y=é#frag",
            Some(parse("image/png")),
        ),
        Part::url("data:text/plain;base64,SGVsbG8=", None),
        Part::tool_call(
            "call_1",
            "get_weather",
            serde_json::json!({"city": "Oslo", "n": 9007199254740993u64, "f": 0.1, "neg": -1e-300,
                "list": [true, null, {"deep": ["x"]}]}),
        ),
        Part::ToolResult(ToolResult {
            call_id: "call_1".into(),
            content: vec![
                Part::text("4°C"),
                Part::ToolResult(ToolResult {
                    call_id: "inner".into(),
                    content: vec![
                        Part::text("nested"),
                        Part::url("https://example.com/x", None),
                    ],
                    is_error: false,
                }),
            ],
            is_error: true,
        }),
        Part::Reasoning(Reasoning {
            text: Some("Let me think…".into()),
            signature: Some(SIGNATURE.into()),
            redacted: false,
        }),
        Part::Reasoning(Reasoning {
            text: None,
            signature: Some(format!("{SIGNATURE}{SIGNATURE}")),
            redacted: true,
        }),
        Part::Provider(ProviderPart {
            provider: "openai".into(),
            kind: "web_search_call".into(),
            data: serde_json::json!({"id": "ws_1", "score": 0.30000000000000004, "big": -9223372036854775808i64}),
        }),
        unknown,
    ]
}

/// An assistant message with one tool call whose arguments are `configured` bytes long, at
/// most the backend's `limit` minus a margin.
fn large_arguments_message(configured: usize, limit: usize) -> NewMessage {
    // Large tool arguments: the configured size, or the backend's limit minus a margin.
    let margin = 16 * 1024;
    let size = configured.min(limit.saturating_sub(margin)).max(1);
    let blob: String = "0123456789abcdefghijklmnopqrstuvwxyzé✓"
        .chars()
        .cycle()
        .scan(0usize, |len, c| {
            *len += c.len_utf8();
            (*len <= size).then_some(c)
        })
        .collect();
    NewMessage::with_parts(
        Role::Assistant,
        vec![Part::tool_call(
            "call_big",
            "write_file",
            serde_json::json!({"content": blob, "n": 1}),
        )],
    )
}

/// Status, lease, usage (every count and the model), metadata, role and creation time
/// round-trip; revision starts at 1; an update's failure, status and time read back.
pub async fn message_fields_round_trip(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let record = new_conversation(b, Some(&fresh_user("user"))).await;
    let created: DateTime<Utc> = now() - chrono::Duration::days(400);
    let lease = now() + chrono::Duration::seconds(90);
    let usage = Usage {
        input_tokens: 1_234_567,
        output_tokens: u64::from(u32::MAX) + 7,
        cached_input_tokens: 1_000,
        reasoning_tokens: 42,
        model: Some("gpt-4o-2024-08-06 ✓".into()),
    };
    let mut streaming = NewMessage::with_parts("Narrator-ü", vec![Part::text("so far")])
        .with_status(MessageStatus::Streaming, Some(lease))
        .with_usage(usage.clone())
        .with_metadata(exact_metadata());
    streaming.created_at = created;
    let plain = user_msg("plain");
    let appended = ok(
        b.append_messages(&record.id, vec![streaming.clone(), plain.clone()])
            .await,
        "append",
    );
    let read = all_messages(b, &record.id).await;
    assert_eq!(read, appended.messages, "read back as returned");
    let m = &read[0];
    assert_eq!(m.id, streaming.id);
    assert_eq!(m.role, Role::Other("Narrator-ü".into()));
    assert_eq!(m.status, MessageStatus::Streaming);
    assert_eq!(m.lease_expires_at, Some(lease));
    assert_eq!(m.usage.as_ref(), Some(&usage));
    assert_eq!(m.metadata, exact_metadata());
    assert_eq!(
        m.created_at, created,
        "created_at is the message's, to the microsecond"
    );
    assert_eq!(
        (m.revision, m.updated_at, m.failure.as_deref()),
        (1, None, None)
    );
    assert_eq!(read[1].status, MessageStatus::Complete);
    assert_eq!(read[1].usage, None);
    assert_eq!(appended.record.usage.input_tokens, usage.input_tokens);
    assert_eq!(appended.record.usage.cached_input_tokens, 1_000);
    assert_eq!(appended.record.usage.reasoning_tokens, 42);
    assert_eq!(appended.record.usage.model, None, "totals carry no model");

    let failed = ok(
        b.update_message(
            &record.id,
            &streaming.id,
            1,
            &MessageUpdate {
                status: Some(MessageStatus::Failed),
                failure: Some("rate limited ✗".into()),
                ..Default::default()
            },
        )
        .await,
        "update_message",
    );
    let read = all_messages(b, &record.id).await;
    assert_eq!(read[0], failed.message, "read back as returned");
    assert_eq!(read[0].status, MessageStatus::Failed);
    assert_eq!(read[0].failure.as_deref(), Some("rate limited ✗"));
    assert_eq!(read[0].lease_expires_at, None);
    assert_eq!(read[0].revision, 2);
    assert!(read[0].updated_at.is_some_and(|u| u >= created));
    assert_eq!(
        read[0].parts,
        vec![Part::text("so far")],
        "parts kept when not given"
    );
    assert_eq!(
        read[1], appended.messages[1],
        "the other message is untouched"
    );
}

/// Whatever the core accepts reads back exactly: metadata, tool arguments and nested tool
/// results at the deepest nesting the core allows, conversation metadata at that depth (on
/// create and on update), and large text in every script, with NUL and the highest code
/// points.
pub async fn accepted_values_read_back(backend: Arc<dyn MessagesBackend>, _config: SuiteConfig) {
    let b = backend.as_ref();
    let limit = message_limit(b);
    let (deep_meta, _) = depth_limit(|v| {
        NewMessage::new(Role::User, "x")
            .with_metadata(metadata_with(v.clone()))
            .validate()
            .is_ok()
    });
    let (deep_args, _) = depth_limit(|v| {
        NewMessage::with_parts(Role::Assistant, vec![Part::tool_call("c", "f", v.clone())])
            .validate()
            .is_ok()
    });
    let mut nested = Part::text("innermost");
    let mut deepest_result = nested.clone();
    for level in 0..1_000 {
        nested = Part::ToolResult(ToolResult {
            call_id: format!("call_{level}"),
            content: vec![nested],
            is_error: false,
        });
        if NewMessage::with_parts(Role::Tool, vec![nested.clone()])
            .validate()
            .is_err()
        {
            break;
        }
        deepest_result = nested.clone();
    }
    let alphabet = "Hello, мир, 世界, عالم, 🌍👨‍👩‍👧‍👦, e\u{301}, \u{0}, \u{FFFF}, \u{10FFFF}, \u{2028}\u{2029}, \"\\/\n\r\t ";
    let text_size = (limit / 2).min(1024 * 1024);
    let big_text: String = alphabet.repeat(text_size / alphabet.len() + 1);
    let messages = vec![
        NewMessage::new(Role::User, "deep metadata")
            .with_metadata(metadata_with(deep_meta.clone())),
        NewMessage::with_parts(Role::Assistant, vec![Part::tool_call("c", "f", deep_args)]),
        NewMessage::with_parts(Role::Tool, vec![deepest_result]),
        NewMessage::new(Role::User, big_text),
    ];
    for m in &messages {
        accepted(m, limit);
    }
    let mut record = ConversationRecord::new(Some(fresh_user("user ✓ ü")));
    let (deep_conversation_meta, _) =
        depth_limit(|v| validate_metadata(&metadata_with(v.clone())).is_ok());
    record.metadata = metadata_with(deep_conversation_meta.clone());
    record.title = Some("ü".repeat(100));
    if let Err(e) = record.validate() {
        panic!("the suite built a record the core refuses: {e}");
    }
    ok(b.create(&record).await, "create with the deepest metadata");
    assert_eq!(
        head_record(b, &record.id).await,
        record,
        "the record reads back"
    );
    let appended = ok(
        b.append_messages(&record.id, messages.clone()).await,
        "append the deepest and largest values the core accepts",
    );
    let read = all_messages(b, &record.id).await;
    assert_eq!(read, appended.messages, "everything reads back as returned");
    for (sent, got) in messages.iter().zip(&read) {
        assert_eq!(got.parts, sent.parts, "parts read back exactly");
        assert_eq!(got.metadata, sent.metadata, "metadata reads back exactly");
    }
    let mut patched = exact_metadata();
    patched.insert("deep".into(), deep_conversation_meta);
    let patch = ConversationPatch {
        metadata: Some(patched.clone()),
        ..Default::default()
    };
    if let Err(e) = patch.validate() {
        panic!("the suite built a patch the core refuses: {e}");
    }
    let updated = ok(
        b.update(&record.id, &patch).await,
        "update with deep metadata",
    );
    assert_eq!(updated.metadata, patched);
    assert_eq!(
        head_record(b, &record.id).await,
        updated,
        "the patched record reads back"
    );
}
