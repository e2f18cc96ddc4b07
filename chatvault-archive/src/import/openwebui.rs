//! Open WebUI's chat export: an array of chat rows, each with `chat.history.messages`
//! (`{id: {id, parentId, childrenIds, role, content, timestamp, files, ..}}`) and
//! `chat.history.currentId`. `chat.messages` repeats the active path and is not read
//! when `history` is there.

use chatvault_core::{MessageStatus, Part, ProviderPart, Reasoning, Role, ToolResult, Usage};
use serde_json::{Map, Value};

use super::fields::{self, Bad, Got, array, object, opt_id, opt_str, rest, time};
use super::files::Files;
use super::model::{Conv, Node};

const PROVIDER: &str = "open-webui";

/// Converts one chat row of the export (or a bare chat object).
pub(crate) fn convert(item: &Value, files: &mut Files<'_>) -> Got<Conv> {
    let top = object(item, "chat row")?;
    let (chat, prefix) = match top.get("chat") {
        Some(c) => (object(c, "chat")?, "chat."),
        None => (top, ""),
    };
    let source_id = match opt_id(top, "id", "")? {
        Some(id) => id,
        None => fields::id(chat, "id", prefix)?,
    };
    let created_at = match time(top, "created_at", "")? {
        Some(t) => Some(t),
        None => time(chat, "timestamp", prefix)?,
    };
    files.start(&source_id, created_at);
    let title = match opt_str(top, "title", "")? {
        Some(t) => Some(t),
        None => opt_str(chat, "title", prefix)?,
    };
    let mut extra = rest(
        top,
        &[
            "id",
            "title",
            "chat",
            "created_at",
            "updated_at",
            "archived",
        ],
    );
    if !prefix.is_empty() {
        let chat_rest = rest(chat, &["id", "title", "history", "messages", "timestamp"]);
        extra.insert("chat".into(), Value::Object(chat_rest));
    }
    let mut conv = Conv {
        source_id,
        title: title.filter(|t| !t.is_empty()).map(str::to_owned),
        created_at,
        updated_at: time(top, "updated_at", "")?,
        archived: fields::flag(top, "archived"),
        extra,
        ..Conv::default()
    };
    let history = match chat.get("history") {
        Some(h) if !h.is_null() => Some(object(h, &format!("{prefix}history"))?),
        _ => None,
    };
    match history {
        Some(h) => {
            let path = format!("{prefix}history.");
            conv.leaf = opt_id(h, "currentId", &path)?;
            let messages = match h.get("messages") {
                None | Some(Value::Null) => &Map::new(),
                Some(m) => object(m, &format!("{path}messages"))?,
            };
            for (key, m) in messages {
                let mpath = format!("{path}messages.{key}.");
                let m = object(m, &format!("{path}messages.{key}"))?;
                let id = opt_id(m, "id", &mpath)?.unwrap_or_else(|| key.clone());
                let parent = opt_id(m, "parentId", &mpath)?;
                conv.nodes
                    .push(message(id, parent, m, &mpath, files, &mut conv.notes)?);
            }
        }
        None => {
            // No tree: `chat.messages` in order, each following the one before.
            let mut previous = None;
            for (i, m) in array(chat, "messages", prefix)?.iter().enumerate() {
                let mpath = format!("{prefix}messages[{i}].");
                let m = object(m, &format!("{prefix}messages[{i}]"))?;
                let id = fields::id(m, "id", &mpath)?;
                let parent = opt_id(m, "parentId", &mpath)?.or(previous.clone());
                conv.nodes.push(message(
                    id.clone(),
                    parent,
                    m,
                    &mpath,
                    files,
                    &mut conv.notes,
                )?);
                previous = Some(id);
            }
            conv.leaf = previous;
        }
    }
    Ok(conv)
}

fn message(
    id: String,
    parent: Option<String>,
    m: &Map<String, Value>,
    path: &str,
    files: &mut Files<'_>,
    notes: &mut super::report::Notes,
) -> Got<Node> {
    let role_name = opt_str(m, "role", path)?.unwrap_or("assistant");
    let role =
        Role::parse(role_name).map_err(|e| Bad::new(format!("{path}role"), e.to_string()))?;
    let mut node = Node::new(id, parent, role);
    node.created_at = time(m, "timestamp", path)?;
    match m.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => node.parts = text_parts(s, notes),
        Some(other) => {
            notes.provider("open-webui content");
            node.parts.push(Part::Provider(ProviderPart {
                provider: PROVIDER.into(),
                kind: "content".into(),
                data: other.clone(),
            }));
        }
    }
    for (i, f) in array(m, "files", path)?.iter().enumerate() {
        let f = object(f, &format!("{path}files[{i}]"))?;
        node.parts.push(file(f, files));
    }
    let model = opt_str(m, "model", path)?;
    node.usage = usage(m.get("usage"), model);
    if m.get("error")
        .is_some_and(|e| !e.is_null() && e != &Value::Bool(false))
    {
        node.status = MessageStatus::Failed;
    }
    node.extra = rest(
        m,
        &[
            "id",
            "parentId",
            "childrenIds",
            "role",
            "content",
            "timestamp",
            "files",
        ],
    );
    Ok(node)
}

fn file(f: &Map<String, Value>, files: &mut Files<'_>) -> Part {
    let get = |k| f.get(k).and_then(Value::as_str);
    let meta = f.get("file").and_then(|x| x.get("meta"));
    let name = get("name").or_else(|| meta.and_then(|m| m.get("name")).and_then(Value::as_str));
    let media = meta
        .and_then(|m| m.get("content_type"))
        .and_then(Value::as_str);
    let url = get("url").unwrap_or("");
    if let Some(part) = files.data_url(url, name) {
        return part;
    }
    let pointer = match (url, get("id")) {
        ("", Some(id)) => format!("/api/v1/files/{id}"),
        (url, _) => url.to_owned(),
    };
    files.missing(&pointer, name, media)
}

fn usage(u: Option<&Value>, model: Option<&str>) -> Option<Usage> {
    let u = u?.as_object()?;
    let n = |keys: [&str; 2]| keys.iter().find_map(|k| u.get(*k).and_then(Value::as_u64));
    let input = n(["prompt_tokens", "input_tokens"])?;
    let output = n(["completion_tokens", "output_tokens"]).unwrap_or(0);
    let mut usage = Usage::new(model.unwrap_or(""), input, output);
    if model.is_none() {
        usage.model = None;
    }
    Some(usage)
}

/// A message's text, with the `<details type="reasoning">` and `<details
/// type="tool_calls">` blocks Open WebUI writes into it turned into typed parts.
fn text_parts(s: &str, notes: &mut super::report::Notes) -> Vec<Part> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("<details type=\"") {
        let Some(len) = rest[start..].find("</details>") else {
            break;
        };
        let block = &rest[start..start + len];
        let before = rest[..start].trim();
        if !before.is_empty() {
            out.push(Part::text(before));
        }
        out.extend(details(block, notes));
        rest = &rest[start + len + "</details>".len()..];
    }
    let tail = rest.trim_start_matches('\n');
    if !tail.is_empty() {
        out.push(Part::text(tail));
    }
    out
}

fn details(block: &str, notes: &mut super::report::Notes) -> Vec<Part> {
    let kind = attr(block, "type").unwrap_or_default();
    let head_end = block.find('>').map_or(block.len(), |i| i + 1);
    let body = &block[head_end..];
    let body = match body.find("</summary>") {
        Some(i) => &body[i + "</summary>".len()..],
        None => body,
    };
    match kind.as_str() {
        "reasoning" => {
            let text: Vec<&str> = body
                .trim()
                .lines()
                .map(|l| {
                    l.strip_prefix("> ")
                        .or_else(|| l.strip_prefix('>'))
                        .unwrap_or(l)
                })
                .collect();
            vec![Part::Reasoning(Reasoning {
                text: Some(text.join("\n")),
                ..Reasoning::default()
            })]
        }
        "tool_calls" => {
            let id = attr(block, "id")
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| "call".into());
            let name = attr(block, "name")
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "tool".into());
            let args = attr(block, "arguments").unwrap_or_default();
            let args = serde_json::from_str::<Value>(&args)
                .map(|v| match v {
                    Value::String(inner) => {
                        serde_json::from_str(&inner).unwrap_or(Value::String(inner))
                    }
                    v => v,
                })
                .unwrap_or(Value::String(args));
            let mut parts = vec![Part::tool_call(id.clone(), name, args)];
            if let Some(result) = attr(block, "result") {
                let text = serde_json::from_str::<String>(&result).unwrap_or(result);
                parts.push(Part::ToolResult(ToolResult {
                    call_id: id,
                    content: vec![Part::text(text)],
                    is_error: false,
                }));
            }
            parts
        }
        other => {
            notes.provider(&format!("open-webui details {other}"));
            vec![Part::Provider(ProviderPart {
                provider: PROVIDER.into(),
                kind: format!("details:{other}"),
                data: Value::String(block.to_owned() + "</details>"),
            })]
        }
    }
}

/// The unescaped value of attribute `name` in a `<details ...>` tag.
fn attr(block: &str, name: &str) -> Option<String> {
    let head = &block[..block.find('>')?];
    let needle = format!(" {name}=\"");
    let start = head.find(&needle)? + needle.len();
    let end = head[start..].find('"')? + start;
    Some(
        head[start..end]
            .replace("&quot;", "\"")
            .replace("&#x27;", "'")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}
