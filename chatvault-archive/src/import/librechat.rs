//! LibreChat's conversation export: `{conversationId, title, messages[]}` or
//! `{.., messagesTree[]}` (each message with its `children`), one object or an array of
//! them. There is no active-leaf pointer: the newest leaf is taken. `sender` is a display
//! name; the role is `isCreatedByUser`.

use chatvault_core::{MessageStatus, Part, ProviderPart, Reasoning, Role, ToolResult};
use serde_json::{Map, Value};

use super::fields::{self, Got, array, object, opt_id, opt_str, rest, time};
use super::files::Files;
use super::model::{Conv, Node};
use super::report::Notes;

const PROVIDER: &str = "librechat";

/// LibreChat's parent of a first message.
const NO_PARENT: &str = "00000000-0000-0000-0000-000000000000";

/// Converts one exported conversation.
pub(crate) fn convert(item: &Value, files: &mut Files<'_>) -> Got<Conv> {
    let top = object(item, "conversation")?;
    let source_id = fields::id(top, "conversationId", "")?;
    let created_at = time(top, "createdAt", "")?;
    files.start(&source_id, created_at);
    let mut conv = Conv {
        source_id,
        title: opt_str(top, "title", "")?
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        created_at,
        updated_at: time(top, "updatedAt", "")?,
        archived: fields::flag(top, "isArchived"),
        extra: rest(
            top,
            &[
                "conversationId",
                "title",
                "createdAt",
                "updatedAt",
                "messages",
                "messagesTree",
                "isArchived",
            ],
        ),
        ..Conv::default()
    };
    // (message, path, parent from the tree's nesting)
    let mut queue: Vec<(&Value, String, Option<String>)> = Vec::new();
    if top.get("messagesTree").is_some_and(|t| !t.is_null()) {
        for (i, m) in array(top, "messagesTree", "")?.iter().enumerate().rev() {
            queue.push((m, format!("messagesTree[{i}]"), None));
        }
    } else {
        for (i, m) in array(top, "messages", "")?.iter().enumerate().rev() {
            queue.push((m, format!("messages[{i}]"), None));
        }
    }
    while let Some((m, path, nested_parent)) = queue.pop() {
        let m = object(m, &path)?;
        let dot = format!("{path}.");
        let id = fields::id(m, "messageId", &dot)?;
        let parent = opt_id(m, "parentMessageId", &dot)?
            .filter(|p| p != NO_PARENT)
            .or(nested_parent);
        let children = array(m, "children", &dot)?;
        for (i, c) in children.iter().enumerate().rev() {
            queue.push((c, format!("{path}.children[{i}]"), Some(id.clone())));
        }
        let node = message(id, parent, m, &dot, files, &mut conv.notes)?;
        conv.nodes.push(node);
    }
    if conv.nodes.iter().any(|n| n.created_at.is_some()) {
        conv.notes
            .add("active leaf taken as the newest leaf (LibreChat keeps none)");
    }
    Ok(conv)
}

fn message(
    id: String,
    parent: Option<String>,
    m: &Map<String, Value>,
    path: &str,
    files: &mut Files<'_>,
    notes: &mut Notes,
) -> Got<Node> {
    let role = if fields::flag(m, "isCreatedByUser") {
        Role::User
    } else {
        Role::Assistant
    };
    let mut node = Node::new(id, parent, role);
    node.created_at = time(m, "createdAt", path)?;
    let content = array(m, "content", path)?;
    for (i, c) in content.iter().enumerate() {
        let c = object(c, &format!("{path}content[{i}]"))?;
        node.parts.extend(content_part(c, files, notes));
    }
    if content.is_empty()
        && let Some(text) = opt_str(m, "text", path)?
        && !text.is_empty()
    {
        node.parts.push(Part::text(text));
    }
    for (i, f) in array(m, "files", path)?.iter().enumerate() {
        let f = object(f, &format!("{path}files[{i}]"))?;
        let get = |k| f.get(k).and_then(Value::as_str);
        let pointer = get("filepath")
            .or(get("file_id"))
            .map(str::to_owned)
            .unwrap_or_default();
        node.parts
            .push(files.missing(&pointer, get("filename"), get("type")));
    }
    if fields::flag(m, "error") {
        node.status = MessageStatus::Failed;
    } else if fields::flag(m, "unfinished") {
        node.status = MessageStatus::Interrupted;
    }
    node.extra = rest(
        m,
        &[
            "messageId",
            "parentMessageId",
            "isCreatedByUser",
            "content",
            "createdAt",
            "files",
            "children",
        ],
    );
    if !content.is_empty() {
        node.extra.remove("text");
    }
    Ok(node)
}

/// A string, or LibreChat's older `{value}` form.
fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("value").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn content_part(c: &Map<String, Value>, files: &mut Files<'_>, notes: &mut Notes) -> Vec<Part> {
    let kind = c.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "text" => text_of(c.get("text"))
            .filter(|t| !t.is_empty())
            .map(Part::text)
            .into_iter()
            .collect(),
        "think" => vec![Part::Reasoning(Reasoning {
            text: text_of(c.get("think")),
            ..Reasoning::default()
        })],
        "tool_call" => tool_call(c.get("tool_call")),
        "image_url" => {
            let url = c
                .get("image_url")
                .and_then(|u| u.get("url").or(Some(u)))
                .and_then(Value::as_str)
                .unwrap_or("");
            match files.data_url(url, None) {
                Some(part) => vec![part],
                None => vec![files.missing(url, None, None)],
            }
        }
        "image_file" => {
            let f = c.get("image_file");
            let get = |k| f.and_then(|f| f.get(k)).and_then(Value::as_str);
            let pointer = get("filepath").or(get("file_id")).unwrap_or("");
            vec![files.missing(pointer, get("filename"), None)]
        }
        other => {
            notes.provider(&format!("librechat {other}"));
            vec![Part::Provider(ProviderPart {
                provider: PROVIDER.into(),
                kind: if other.is_empty() {
                    "content".into()
                } else {
                    other.into()
                },
                data: Value::Object(c.clone()),
            })]
        }
    }
}

/// `{id, name, args, output}`: the call, and its result when the output is there.
fn tool_call(call: Option<&Value>) -> Vec<Part> {
    let get = |k| call.and_then(|c| c.get(k));
    let id = get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("call")
        .to_owned();
    let name = get("name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("tool")
        .to_owned();
    let args = match get("args") {
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
        Some(v) => v.clone(),
        None => Value::Null,
    };
    let mut parts = vec![Part::tool_call(id.clone(), name, args)];
    if let Some(output) = text_of(get("output")) {
        parts.push(Part::ToolResult(ToolResult {
            call_id: id,
            content: vec![Part::text(output)],
            is_error: false,
        }));
    }
    parts
}
