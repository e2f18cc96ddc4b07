//! No input makes an importer panic: arbitrary JSON shaped like the exports (their keys
//! and values, nested at random), and arbitrary bytes, each imported as every format.
#![allow(clippy::unwrap_used)]

mod common;
mod import_util;

use chatvault_archive::import::{Format, ImportOptions, import_file};
use proptest::prelude::*;
use serde_json::{Map, Value};

const KEYS: &[&str] = &[
    "id",
    "uuid",
    "title",
    "name",
    "mapping",
    "message",
    "parent",
    "children",
    "author",
    "role",
    "content",
    "content_type",
    "parts",
    "create_time",
    "current_node",
    "recipient",
    "metadata",
    "chat_messages",
    "sender",
    "text",
    "created_at",
    "parent_message_uuid",
    "current_leaf_message_uuid",
    "type",
    "attachments",
    "files",
    "chat",
    "history",
    "messages",
    "currentId",
    "parentId",
    "timestamp",
    "conversationId",
    "messageId",
    "parentMessageId",
    "isCreatedByUser",
    "createdAt",
    "messagesTree",
    "tool_call",
    "thoughts",
    "asset_pointer",
    "extracted_content",
    "url",
    "think",
    "usage",
    "error",
    "input",
    "tool_use_id",
    "file_name",
    "is_visually_hidden_from_conversation",
    "status",
    "args",
    "output",
];

const STRINGS: &[&str] = &[
    "a",
    "b",
    "n1",
    "user",
    "assistant",
    "tool",
    "system",
    "human",
    "text",
    "multimodal_text",
    "thoughts",
    "code",
    "image_asset_pointer",
    "tool_use",
    "tool_result",
    "thinking",
    "file-service://file-x",
    "sediment://file_0",
    "data:image/png;base64,aGk=",
    "data:image/png;base64,!!",
    "<details type=\"reasoning\">x</details>",
    "<details type=\"tool_calls\" id=\"1\" arguments=\"&quot;\">",
    "2024-01-01T00:00:00Z",
    "",
    "00000000-0000-4000-8000-000000000000",
    "in_progress",
    "python",
    "all",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(STRINGS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|kv| {
                Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn import_all(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conversations.json");
    std::fs::write(&path, bytes).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for format in Format::ALL {
        for dry_run in [false, true] {
            let store = common::memory();
            let options = ImportOptions::new(import_util::owner()).dry_run(dry_run);
            // Ok or a typed error: either is fine; a panic fails the test.
            let _ = runtime.block_on(import_file(
                format,
                &path,
                &store,
                &options,
                &chatvault_archive::no_progress,
            ));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn shaped_json_never_panics(items in prop::collection::vec(json(), 0..4)) {
        import_all(&serde_json::to_vec(&Value::Array(items)).unwrap());
    }

    #[test]
    fn bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        import_all(&bytes);
    }
}

/// The shapes the fixtures have, with each value replaced in turn by another type: every
/// field's wrong type is met at least once.
#[test]
fn every_field_of_the_fixtures_with_a_wrong_type() {
    for (dir, file) in [
        ("chatgpt", "export/conversations.json"),
        ("claude", "conversations.json"),
        ("open-webui", "chats.json"),
        ("librechat", "export.json"),
        ("chatvault-py", "dynamodb-s3/items.json"),
    ] {
        let text = std::fs::read(import_util::fixture(dir).join(file)).unwrap();
        let original: Value = serde_json::from_slice(&text).unwrap();
        let mut paths = Vec::new();
        collect_paths(&original, &mut Vec::new(), &mut paths);
        for path in paths.iter().step_by(3) {
            for replacement in [
                Value::Null,
                Value::from(7),
                Value::from("x"),
                Value::Array(vec![]),
            ] {
                let mut copy = original.clone();
                *pointer_mut(&mut copy, path) = replacement;
                import_all(&serde_json::to_vec(&copy).unwrap());
            }
        }
    }
}

fn collect_paths(v: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                at.push(k.clone());
                collect_paths(child, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                at.push(i.to_string());
                collect_paths(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn pointer_mut<'a>(v: &'a mut Value, path: &[String]) -> &'a mut Value {
    let mut at = v;
    for key in path {
        at = match at {
            Value::Object(m) => m.get_mut(key).unwrap(),
            Value::Array(a) => &mut a[key.parse::<usize>().unwrap()],
            _ => unreachable!(),
        };
    }
    at
}
