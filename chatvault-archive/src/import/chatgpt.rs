//! ChatGPT's data export: `conversations.json`, an array of conversations whose
//! `mapping` holds every node of the tree (`{id, message|null, parent, children}`).

use std::collections::{HashMap, HashSet};

use chatvault_core::{MessageStatus, Metadata, Part, ProviderPart, Reasoning, Role, ToolResult};
use serde_json::{Map, Value};

use super::fields::{self, Bad, Got, object, opt_id, opt_str, rest, time};
use super::files::Files;
use super::model::{Conv, Node};

const PROVIDER: &str = "chatgpt";

/// Converts one conversation of the export.
pub(crate) fn convert(item: &Value, files: &mut Files<'_>) -> Got<Conv> {
    let top = object(item, "conversation")?;
    let source_id = match opt_id(top, "id", "")? {
        Some(id) => id,
        None => fields::id(top, "conversation_id", "")?,
    };
    let created_at = time(top, "create_time", "")?;
    files.start(&source_id, created_at);
    let mut conv = Conv {
        source_id,
        title: opt_str(top, "title", "")?.map(str::to_owned),
        created_at,
        updated_at: time(top, "update_time", "")?,
        archived: fields::flag(top, "is_archived"),
        extra: rest(
            top,
            &[
                "mapping",
                "id",
                "title",
                "create_time",
                "update_time",
                "current_node",
                "is_archived",
            ],
        ),
        leaf: opt_id(top, "current_node", "")?,
        ..Conv::default()
    };
    let mapping = match top.get("mapping") {
        None | Some(Value::Null) => {
            conv.notes
                .add("conversations without a mapping (imported empty)");
            return Ok(conv);
        }
        Some(m) => object(m, "mapping")?,
    };
    let mut skipped: HashMap<String, Option<String>> = HashMap::new();
    let mut tools = Vec::new();
    for (key, node) in mapping {
        let path = format!("mapping.{key}.");
        let n = object(node, &format!("mapping.{key}"))?;
        let id = opt_id(n, "id", &path)?.unwrap_or_else(|| key.clone());
        let parent = opt_id(n, "parent", &path)?;
        match n.get("message") {
            None | Some(Value::Null) => {
                skipped.insert(id, parent);
            }
            Some(m) => {
                let m = object(m, &format!("{path}message"))?;
                let path = format!("{path}message.");
                let (node, tool) = message(id, parent, m, &path, files, &mut conv)?;
                if let Some(name) = tool {
                    tools.push((conv.nodes.len(), name));
                }
                conv.nodes.push(node);
            }
        }
    }
    relink(&mut conv, &skipped);
    pair_tool_results(&mut conv, tools);
    Ok(conv)
}

/// Nodes without a message (the empty root) are not stored: their children follow their
/// parent, and keep the original parent in their metadata.
fn relink(conv: &mut Conv, skipped: &HashMap<String, Option<String>>) {
    for node in &mut conv.nodes {
        let Some(first) = node.parent.clone() else {
            continue;
        };
        let mut at = Some(first.clone());
        let mut steps = 0;
        while let Some(p) = &at
            && let Some(up) = skipped.get(p)
            && steps <= skipped.len()
        {
            at = up.clone();
            steps += 1;
        }
        if at.as_ref() != Some(&first) {
            node.extra.insert("parent".into(), Value::String(first));
            node.parent = at;
        }
    }
    if let Some(leaf) = &conv.leaf
        && let Some(up) = skipped.get(leaf)
    {
        conv.leaf = up.clone();
    }
}

/// One message node; the second value is the author's name when the node is a tool's
/// answer (its parts are wrapped in a tool result by [`pair_tool_results`]).
fn message(
    id: String,
    parent: Option<String>,
    m: &Map<String, Value>,
    path: &str,
    files: &mut Files<'_>,
    conv: &mut Conv,
) -> Got<(Node, Option<String>)> {
    let author = match m.get("author") {
        Some(a) => object(a, &format!("{path}author"))?.clone(),
        None => Map::new(),
    };
    let role_name = opt_str(&author, "role", &format!("{path}author."))?.unwrap_or("unknown");
    let role = Role::parse(role_name)
        .map_err(|e| Bad::new(format!("{path}author.role"), e.to_string()))?;
    let author_name = opt_str(&author, "name", &format!("{path}author."))?;
    let mut node = Node::new(id, parent, role.clone());
    node.created_at = time(m, "create_time", path)?;
    let empty = Map::new();
    let content = match m.get("content") {
        None | Some(Value::Null) => &empty,
        Some(c) => object(c, &format!("{path}content"))?,
    };
    let kind = opt_str(content, "content_type", &format!("{path}content."))?.unwrap_or("text");
    node.parts = content_parts(kind, content, files, conv, &mut node.extra);
    let recipient = opt_str(m, "recipient", path)?.unwrap_or("all");
    if recipient != "all" && role != Role::Tool {
        node.parts = tool_call(&node.id, recipient, std::mem::take(&mut node.parts));
    }
    let metadata = m.get("metadata").and_then(Value::as_object);
    attachments(metadata, files, &mut node.parts);
    node.status = match opt_str(m, "status", path)? {
        Some("in_progress") => MessageStatus::Interrupted,
        _ => MessageStatus::Complete,
    };
    let hidden = |k| metadata.is_some_and(|md| fields::flag(md, k));
    node.off_path = role == Role::System
        && (hidden("is_visually_hidden_from_conversation")
            || hidden("is_user_system_message")
            || node
                .parts
                .iter()
                .all(|p| p.as_text().is_some_and(str::is_empty)));
    node.extra
        .extend(rest(m, &["id", "author", "create_time", "content"]));
    if let Some(name) = author_name {
        node.extra
            .insert("author_name".into(), Value::String(name.to_owned()));
    }
    let tool = (role == Role::Tool).then(|| author_name.unwrap_or("tool").to_owned());
    Ok((node, tool))
}

/// The parts of a message's `content`, by its `content_type`; what a typed part does not
/// carry is kept in `extra["content"]`, and a type without a typed part is provider data.
fn content_parts(
    kind: &str,
    content: &Map<String, Value>,
    files: &mut Files<'_>,
    conv: &mut Conv,
    extra: &mut Metadata,
) -> Vec<Part> {
    let text = |k: &str| {
        content
            .get(k)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(Part::text)
    };
    let (parts, used): (Vec<Part>, &[&str]) = match kind {
        "text" | "multimodal_text" => {
            let mut out = Vec::new();
            for p in content
                .get("parts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.extend(part(p, files, conv, extra));
            }
            (out, &["parts"])
        }
        "code" | "execution_output" | "system_error" => {
            (text("text").into_iter().collect(), &["text"])
        }
        "tether_browsing_display" => (text("result").into_iter().collect(), &["result"]),
        "tether_quote" => (text("text").into_iter().collect(), &["text"]),
        "thoughts" => (thoughts(content), &["thoughts"]),
        _ => {
            conv.notes.provider(&format!("chatgpt {kind}"));
            return vec![Part::Provider(ProviderPart {
                provider: PROVIDER.into(),
                kind: kind.to_owned(),
                data: Value::Object(content.clone()),
            })];
        }
    };
    let mut used = used.to_vec();
    used.push("content_type");
    let left = rest(content, &used);
    if !left.is_empty() || kind != "text" {
        let mut left = left;
        left.insert("content_type".into(), Value::String(kind.to_owned()));
        extra.insert("content".into(), Value::Object(left));
    }
    parts
}

/// One entry of `content.parts`: text, an image or audio pointer, or provider data.
fn part(p: &Value, files: &mut Files<'_>, conv: &mut Conv, extra: &mut Metadata) -> Option<Part> {
    let obj = match p {
        Value::String(s) if s.is_empty() => return None,
        Value::String(s) => return Some(Part::text(s.clone())),
        Value::Object(o) => o,
        other => {
            conv.notes.provider("chatgpt non-text part");
            return Some(provider("part", other.clone()));
        }
    };
    let kind = obj
        .get("content_type")
        .and_then(Value::as_str)
        .unwrap_or("");
    match kind {
        "audio_transcription" => obj.get("text").and_then(Value::as_str).map(Part::text),
        "image_asset_pointer" | "audio_asset_pointer" => {
            let pointer = obj
                .get("asset_pointer")
                .and_then(Value::as_str)
                .unwrap_or("");
            let key = pointer.rsplit("://").next().unwrap_or(pointer);
            let assets = extra
                .entry("assets")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(a) = assets {
                a.push(p.clone());
            }
            let media = obj
                .get("format")
                .and_then(Value::as_str)
                .map(|f| format!("audio/{f}"));
            Some(files.exported(key, pointer, None, media.as_deref()))
        }
        _ => {
            conv.notes.provider(&format!("chatgpt {kind}"));
            Some(provider(kind, p.clone()))
        }
    }
}

fn provider(kind: &str, data: Value) -> Part {
    Part::Provider(ProviderPart {
        provider: PROVIDER.into(),
        kind: if kind.is_empty() {
            "part".into()
        } else {
            kind.into()
        },
        data,
    })
}

/// `thoughts[{summary, content}]` as reasoning parts.
fn thoughts(content: &Map<String, Value>) -> Vec<Part> {
    let list = content.get("thoughts").and_then(Value::as_array);
    list.into_iter()
        .flatten()
        .map(|t| {
            let get = |k| t.get(k).and_then(Value::as_str).unwrap_or("");
            let text = match (get("summary"), get("content")) {
                ("", c) => c.to_owned(),
                (s, "") => s.to_owned(),
                (s, c) => format!("{s}\n\n{c}"),
            };
            Part::Reasoning(Reasoning {
                text: Some(text),
                ..Reasoning::default()
            })
        })
        .collect()
}

/// An assistant message addressed to a tool (`recipient` not `all`): its text becomes
/// the call's arguments (JSON when it parses, else the string); other parts stay.
fn tool_call(id: &str, recipient: &str, parts: Vec<Part>) -> Vec<Part> {
    let text = chatvault_core::text_of(&parts);
    let arguments = serde_json::from_str(&text).unwrap_or(Value::String(text));
    let mut out = vec![Part::tool_call(id, recipient, arguments)];
    out.extend(parts.into_iter().filter(|p| p.as_text().is_none()));
    out
}

/// The files of `metadata.attachments` that no part points at yet.
fn attachments(
    metadata: Option<&Map<String, Value>>,
    files: &mut Files<'_>,
    parts: &mut Vec<Part>,
) {
    let list = metadata
        .and_then(|m| m.get("attachments"))
        .and_then(Value::as_array);
    let mut seen: HashSet<String> = HashSet::new();
    for part in parts.iter() {
        if let Part::File(f) = part {
            seen.insert(format!("{:?}", f.source));
        }
    }
    for a in list.into_iter().flatten() {
        let Some(id) = a.get("id").and_then(Value::as_str) else {
            continue;
        };
        let get = |k| a.get(k).and_then(Value::as_str);
        let pointer = format!("file-service://{id}");
        let part = files.exported(id, &pointer, get("name"), get("mime_type"));
        if let Part::File(f) = &part
            && seen.insert(format!("{:?}", f.source))
        {
            parts.push(part);
        }
    }
}

/// Wraps each tool message's parts in a result answering the nearest call to that tool
/// above it (the nearest call of any tool when none has its name).
fn pair_tool_results(conv: &mut Conv, tools: Vec<(usize, String)>) {
    let index: HashMap<String, usize> = conv
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.clone(), i))
        .collect();
    let call_of = |n: &Node| {
        n.parts.iter().find_map(|p| match p {
            Part::ToolCall(c) => Some((c.id.clone(), c.name.clone())),
            _ => None,
        })
    };
    for (i, name) in tools {
        let mut at = conv.nodes[i].parent.clone();
        let mut nearest = None;
        for _ in 0..64 {
            let Some(j) = at.as_ref().and_then(|p| index.get(p)) else {
                break;
            };
            if let Some((id, tool)) = call_of(&conv.nodes[*j]) {
                if tool == name {
                    nearest = Some(id);
                    break;
                }
                nearest.get_or_insert(id);
            }
            at = conv.nodes[*j].parent.clone();
        }
        let node = &mut conv.nodes[i];
        let call_id = nearest.unwrap_or_else(|| {
            conv.notes.add("tool results without their call");
            node.id.clone()
        });
        let is_error = node
            .extra
            .get("content")
            .and_then(|c| c.get("content_type"))
            .is_some_and(|k| k == "system_error");
        let content = std::mem::take(&mut node.parts);
        node.parts = vec![Part::ToolResult(ToolResult {
            call_id,
            content,
            is_error,
        })];
    }
}
