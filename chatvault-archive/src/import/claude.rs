//! Claude's data export: `conversations.json`, an array of conversations with their
//! `chat_messages`; linear, or a tree when messages carry `parent_message_uuid` (the
//! conversation then names its `current_leaf_message_uuid`).

use bytes::Bytes;
use chatvault_core::{Part, ProviderPart, Reasoning, Role, ToolCall, ToolResult};
use serde_json::{Map, Value};

use super::fields::{self, Bad, Got, array, object, opt_id, opt_str, rest, time};
use super::files::Files;
use super::model::{Conv, Node};

const PROVIDER: &str = "claude";

/// Converts one conversation of the export.
pub(crate) fn convert(item: &Value, files: &mut Files<'_>) -> Got<Conv> {
    let top = object(item, "conversation")?;
    let source_id = fields::id(top, "uuid", "")?;
    let created_at = time(top, "created_at", "")?;
    files.start(&source_id, created_at);
    let mut conv = Conv {
        source_id,
        title: opt_str(top, "name", "")?
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        created_at,
        updated_at: time(top, "updated_at", "")?,
        extra: rest(
            top,
            &[
                "uuid",
                "name",
                "created_at",
                "updated_at",
                "chat_messages",
                "current_leaf_message_uuid",
            ],
        ),
        leaf: opt_id(top, "current_leaf_message_uuid", "")?,
        ..Conv::default()
    };
    let messages = array(top, "chat_messages", "")?;
    let tree = messages
        .iter()
        .any(|m| m.get("parent_message_uuid").is_some_and(|p| !p.is_null()));
    let mut previous: Option<String> = None;
    for (i, m) in messages.iter().enumerate() {
        let path = format!("chat_messages[{i}].");
        let m = object(m, &format!("chat_messages[{i}]"))?;
        let id = fields::id(m, "uuid", &path)?;
        let parent = if tree {
            opt_id(m, "parent_message_uuid", &path)?.filter(|p| !is_root_sentinel(p))
        } else {
            previous.clone()
        };
        let node = message(id.clone(), parent, m, &path, files, &mut conv)?;
        conv.nodes.push(node);
        previous = Some(id);
    }
    if conv.leaf.is_none() && !tree {
        conv.leaf = previous;
    }
    Ok(conv)
}

/// Claude's "no parent": a UUID of zeros but for its version and variant digits.
fn is_root_sentinel(id: &str) -> bool {
    id.chars().all(|c| matches!(c, '0' | '-' | '4' | '8'))
        && id.chars().filter(|&c| c != '0' && c != '-').count() <= 2
}

fn message(
    id: String,
    parent: Option<String>,
    m: &Map<String, Value>,
    path: &str,
    files: &mut Files<'_>,
    conv: &mut Conv,
) -> Got<Node> {
    let role = match opt_str(m, "sender", path)? {
        Some("human") => Role::User,
        Some("assistant") | None => Role::Assistant,
        Some(other) => {
            Role::parse(other).map_err(|e| Bad::new(format!("{path}sender"), e.to_string()))?
        }
    };
    let mut node = Node::new(id, parent, role);
    node.created_at = time(m, "created_at", path)?;
    let blocks = array(m, "content", path)?;
    for (i, block) in blocks.iter().enumerate() {
        let block = object(block, &format!("{path}content[{i}]"))?;
        if let Some(part) = content_block(block, &format!("{path}content[{i}]."), conv)? {
            node.parts.push(part);
        }
    }
    if blocks.is_empty()
        && let Some(text) = opt_str(m, "text", path)?
        && !text.is_empty()
    {
        node.parts.push(Part::text(text));
    }
    for (i, a) in array(m, "attachments", path)?.iter().enumerate() {
        let a = object(a, &format!("{path}attachments[{i}]"))?;
        node.parts.push(attachment(a, files, &node.id, i));
    }
    for (i, f) in array(m, "files", path)?.iter().enumerate() {
        let f = object(f, &format!("{path}files[{i}]"))?;
        let name = opt_str(f, "file_name", path)?;
        let pointer = opt_str(f, "file_uuid", path)?
            .map(|u| format!("claude-file:{u}"))
            .or_else(|| name.map(|n| format!("claude-file:{n}")))
            .unwrap_or_default();
        node.parts
            .push(files.missing(&pointer, name, opt_str(f, "file_type", path)?));
    }
    node.extra = rest(
        m,
        &[
            "uuid",
            "text",
            "content",
            "sender",
            "created_at",
            "attachments",
            "files",
            "parent_message_uuid",
        ],
    );
    if !blocks.is_empty()
        && let Some(text) = opt_str(m, "text", path)?
        && text != chatvault_core::text_of(&node.parts)
    {
        // The export's `text` repeats the thinking before the answer: kept as it was.
        node.extra
            .insert("text".into(), Value::String(text.to_owned()));
    }
    Ok(node)
}

/// An attachment: Claude exports only its extracted text, which becomes the attachment's
/// bytes (a text file under the original name); the original type and size stay in the
/// part's neighbour metadata.
fn attachment(a: &Map<String, Value>, files: &mut Files<'_>, message: &str, i: usize) -> Part {
    let get = |k| a.get(k).and_then(Value::as_str);
    let name = get("file_name")
        .filter(|n| !n.is_empty())
        .unwrap_or("attachment.txt");
    let pointer = format!("claude-attachment:{message}/{i}/{name}");
    match get("extracted_content") {
        Some(text) => files.inline(
            &pointer,
            name,
            Some("text/plain; charset=utf-8"),
            Bytes::from(text.to_owned()),
        ),
        None => files.missing(&pointer, Some(name), get("file_type")),
    }
}

/// One content block: text, thinking, a tool use or result, or provider data.
fn content_block(b: &Map<String, Value>, path: &str, conv: &mut Conv) -> Got<Option<Part>> {
    let kind = opt_str(b, "type", path)?.unwrap_or("");
    Ok(Some(match kind {
        "text" => match opt_str(b, "text", path)? {
            Some("") | None => return Ok(None),
            Some(t) => Part::text(t),
        },
        "thinking" => Part::Reasoning(Reasoning {
            text: opt_str(b, "thinking", path)?.map(str::to_owned),
            signature: opt_str(b, "signature", path)?.map(str::to_owned),
            redacted: false,
        }),
        "redacted_thinking" => Part::Reasoning(Reasoning {
            text: None,
            signature: opt_str(b, "data", path)?.map(str::to_owned),
            redacted: true,
        }),
        "tool_use" => Part::ToolCall(ToolCall {
            id: opt_id(b, "id", path)?.unwrap_or_else(|| format!("{path}id")),
            name: opt_str(b, "name", path)?
                .filter(|n| !n.is_empty())
                .unwrap_or("tool")
                .to_owned(),
            arguments: b.get("input").cloned().unwrap_or(Value::Null),
        }),
        "tool_result" => Part::ToolResult(ToolResult {
            call_id: opt_id(b, "tool_use_id", path)?.unwrap_or_else(|| "unknown".into()),
            content: result_content(b.get("content"), conv),
            is_error: fields::flag(b, "is_error"),
        }),
        other => {
            conv.notes.provider(&format!("claude {other}"));
            Part::Provider(ProviderPart {
                provider: PROVIDER.into(),
                kind: if other.is_empty() {
                    "block".into()
                } else {
                    other.into()
                },
                data: Value::Object(b.clone()),
            })
        }
    }))
}

/// A tool result's `content`: a string, or a list of blocks (text kept as text, the rest
/// as provider data).
fn result_content(content: Option<&Value>, conv: &mut Conv) -> Vec<Part> {
    match content {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![Part::text(s.clone())],
        Some(Value::Array(items)) => items
            .iter()
            .map(
                |item| match (item.get("type").and_then(Value::as_str), item.get("text")) {
                    (Some("text"), Some(Value::String(t))) => Part::text(t.clone()),
                    _ => {
                        conv.notes.provider("claude tool_result content");
                        Part::Provider(ProviderPart {
                            provider: PROVIDER.into(),
                            kind: "tool_result_content".into(),
                            data: item.clone(),
                        })
                    }
                },
            )
            .collect(),
        Some(other) => vec![Part::Provider(ProviderPart {
            provider: PROVIDER.into(),
            kind: "tool_result_content".into(),
            data: other.clone(),
        })],
    }
}
