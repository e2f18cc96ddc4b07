//! Anthropic Messages API: the top-level `system` and the `messages`.
//!
//! # Mapping
//!
//! | Anthropic | parts |
//! |---|---|
//! | `system` (a string, or text blocks) | one [`Role::System`] message with a text part per block |
//! | `{"type": "text", "text"}` | [`Part::Text`] |
//! | `{"type": "image", "source": {"type": "base64", "media_type", "data"}}` | [`Part::File`] with a `data:` URL |
//! | `{"type": "image", "source": {"type": "url", "url"}}` | [`Part::File`] with the URL, media type `image/*` |
//! | `{"type": "document", "source": {"type": "base64"\|"text"\|"url", ..}, "title"}` | [`Part::File`] (a `data:` URL, or the URL as `application/pdf`); the title is the file name |
//! | `{"type": "tool_use", "id", "name", "input"}` | [`Part::ToolCall`] |
//! | `{"type": "tool_result", "tool_use_id", "content", "is_error"}` | [`Part::ToolResult`]; a user message made only of tool results reads as a [`Role::Tool`] message |
//! | `{"type": "thinking", "thinking", "signature"}` | [`Part::Reasoning`] with text and signature (byte-exact) |
//! | `{"type": "redacted_thinking", "data"}` | [`Part::Reasoning`] with `redacted: true` and the data as its signature |
//! | anything else (`server_tool_use`, `web_search_tool_result`, a document with citations, an image by `file_id`, ...) | [`Part::Provider`] ([`ANTHROPIC`]) holding the block exactly |
//!
//! Writing is the reverse, with these rules:
//!
//! - System and developer messages, wherever they are, become the top-level `system`: a
//!   string when there is one text part, else an array of text blocks.
//! - [`Role::Tool`] messages are user messages. Consecutive messages that map to the same
//!   role are merged into one message (tool results then come first in the user turn, as
//!   Anthropic requires after a tool call).
//! - Content is always an array of blocks; empty text parts are left out (Anthropic
//!   rejects them), and a message left with no blocks is left out.
//! - A tool call's arguments must be a JSON object for `input`: `null` is sent as `{}`
//!   and any other non-object as `{"arguments": <value>}`.
//! - A tool result that is one text part is sent with a `content` string, an empty one
//!   with no `content`; `is_error` is written only when true.
//! - Reasoning is sent only in assistant turns and only with its signature (display-only
//!   reasoning text is left out); other providers' [`Part::Provider`]s and
//!   [`Part::Unknown`] parts are left out.
//! - A file in an assistant message becomes a text note (assistant turns take no files);
//!   a tool result in one, or a tool call in a user turn, is an [`Error::InvalidInput`].
//! - Base64 `text/plain` documents are sent with a `text` source; other base64 files by
//!   media type (`image/*` as images, the rest as documents); URLs as `url` sources.
//! - Not kept when reading: `cache_control` and `citations` of text blocks, `cache_control`
//!   of tool results and system blocks.
//!
//! ```
//! use chatvault_llm::anthropic;
//! use serde_json::json;
//!
//! let messages = vec![
//!     json!({"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]}),
//!     json!({"role": "assistant", "content": [
//!         {"type": "thinking", "thinking": "Use the tool.", "signature": "EqQBCkgIARABGAIiQL"},
//!         {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}]}),
//!     json!({"role": "user", "content": [
//!         {"type": "tool_result", "tool_use_id": "toolu_1", "content": "4°C"}]}),
//! ];
//! let system = json!("Be brief.");
//! let parsed = anthropic::from_request(Some(&system), &messages)?;
//! assert_eq!(parsed.len(), 4); // system, user, assistant, tool
//! let request = anthropic::to_request(&parsed)?;
//! assert_eq!(request.system, Some(system));
//! assert_eq!(request.messages, messages);
//! # Ok::<(), chatvault_core::Error>(())
//! ```

use serde_json::{Map, Value, json};

use super::openai::{file_note, resolved_url, result_in_assistant};
use super::{
    ANTHROPIC, ChatMessage, count_at, data_url, decode_data_url, is_image, is_instruction,
    provider_part, split_data_url, str_field, type_of, usage_of,
};
use chatvault_core::Role;
use chatvault_core::ids::ContentType;
use chatvault_core::{Error, Result};
use chatvault_core::{FilePart, FileSource, NewMessage, Part, Reasoning, ToolResult, Usage};

/// The parts of a Messages API request that hold the conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct AnthropicRequest {
    /// The top-level `system`: a string, an array of text blocks, or `None`.
    pub system: Option<Value>,
    /// The `messages`.
    pub messages: Vec<Value>,
}

impl AnthropicRequest {
    /// A request body: `{"model", "max_tokens", "system"?, "messages"}`. Add `tools`,
    /// `thinking`, `stream` and the rest to it.
    pub fn into_body(self, model: &str, max_tokens: u32) -> Value {
        let mut body = Map::new();
        body.insert("model".into(), model.into());
        body.insert("max_tokens".into(), max_tokens.into());
        if let Some(system) = self.system {
            body.insert("system".into(), system);
        }
        body.insert("messages".into(), Value::Array(self.messages));
        Value::Object(body)
    }
}

/// Writes `messages` as a Messages API `system` and `messages`. See the
/// [module docs](self) for the rules.
pub fn to_request<M: ChatMessage>(messages: &[M]) -> Result<AnthropicRequest> {
    let mut system = Vec::new();
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in messages {
        let role = message.role();
        if is_instruction(role) {
            for part in message.parts() {
                match part {
                    Part::Text { text } => system.push(text.clone()),
                    Part::Reasoning(_) | Part::Provider(_) | Part::Unknown(_) => {}
                    other => {
                        return Err(Error::invalid_input(
                            "system message",
                            format!("Anthropic's system takes text, not {}", other.kind()),
                        ));
                    }
                }
            }
            continue;
        }
        let wire_role = match role {
            Role::Assistant => "assistant",
            Role::User | Role::Tool => "user",
            other => {
                return Err(Error::invalid_input(
                    "role",
                    format!("the Messages API has no role {:?}", other.as_str()),
                ));
            }
        };
        let assistant = wire_role == "assistant";
        let mut blocks = Vec::new();
        for part in message.parts() {
            if let Some(block) = write_block(part, assistant)? {
                blocks.push(block);
            }
        }
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((last, content)) if *last == wire_role => content.extend(blocks),
            _ => out.push((wire_role, blocks)),
        }
    }
    let system = match system.len() {
        0 => None,
        1 => Some(Value::String(system.remove(0))),
        _ => Some(Value::Array(
            system
                .into_iter()
                .map(|t| json!({"type": "text", "text": t}))
                .collect(),
        )),
    };
    Ok(AnthropicRequest {
        system,
        messages: out
            .into_iter()
            .map(|(role, content)| json!({"role": role, "content": content}))
            .collect(),
    })
}

fn write_block(part: &Part, assistant: bool) -> Result<Option<Value>> {
    Ok(Some(match part {
        Part::Text { text } if text.is_empty() => return Ok(None),
        Part::Text { text } => json!({"type": "text", "text": text}),
        // Anthropic takes no files from the assistant: a note stands for one.
        Part::File(file) if assistant => json!({"type": "text", "text": file_note(file)}),
        Part::File(file) => write_file(file)?,
        Part::ToolCall(call) => {
            if !assistant {
                return Err(Error::invalid_input(
                    "tool call",
                    format!("call {:?} is in a non-assistant message", call.id),
                ));
            }
            let input = match &call.arguments {
                Value::Object(_) => call.arguments.clone(),
                Value::Null => json!({}),
                other => json!({"arguments": other}),
            };
            json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input})
        }
        Part::ToolResult(result) => {
            if assistant {
                return Err(result_in_assistant(&result.call_id));
            }
            let mut block = Map::new();
            block.insert("type".into(), "tool_result".into());
            block.insert("tool_use_id".into(), result.call_id.clone().into());
            match result.content.as_slice() {
                [] => {}
                [Part::Text { text }] => {
                    block.insert("content".into(), text.clone().into());
                }
                parts => {
                    let mut content = Vec::new();
                    for part in parts {
                        if let Some(b) = write_block(part, false)? {
                            content.push(b);
                        }
                    }
                    block.insert("content".into(), Value::Array(content));
                }
            }
            if result.is_error {
                block.insert("is_error".into(), true.into());
            }
            Value::Object(block)
        }
        Part::Reasoning(Reasoning {
            text,
            signature: Some(signature),
            redacted,
        }) if assistant => {
            if *redacted {
                json!({"type": "redacted_thinking", "data": signature})
            } else {
                json!({
                    "type": "thinking",
                    "thinking": text.as_deref().unwrap_or(""),
                    "signature": signature,
                })
            }
        }
        Part::Provider(p) if p.provider == ANTHROPIC => p.data.clone(),
        // Unsigned reasoning, other providers' data, unknown parts.
        _ => return Ok(None),
    }))
}

fn write_file(file: &FilePart) -> Result<Value> {
    let url = resolved_url(file)?;
    let image = is_image(file.media_type.as_ref(), url);
    let source = match split_data_url(url) {
        Some((media, payload)) => {
            let media = if media.is_empty() {
                file.media_type
                    .as_ref()
                    .map_or("application/octet-stream", ContentType::as_str)
            } else {
                media
            };
            let essence = media.split(';').next().unwrap_or(media).trim();
            if !image && essence == "text/plain" {
                match String::from_utf8(decode_data_url(url)?) {
                    Ok(text) => json!({"type": "text", "media_type": "text/plain", "data": text}),
                    Err(_) => json!({"type": "base64", "media_type": media, "data": payload}),
                }
            } else {
                json!({"type": "base64", "media_type": media, "data": payload})
            }
        }
        None => json!({"type": "url", "url": url}),
    };
    if image {
        return Ok(json!({"type": "image", "source": source}));
    }
    let mut block = Map::new();
    block.insert("type".into(), "document".into());
    block.insert("source".into(), source);
    if let Some(name) = &file.filename {
        block.insert("title".into(), name.clone().into());
    }
    Ok(Value::Object(block))
}

/// The [`Usage`] of a Messages API response body (its `usage` and `model`). Anthropic's
/// `input_tokens` leaves out cached tokens; ChatVault's input counts them, so input is
/// `input_tokens + cache_read_input_tokens + cache_creation_input_tokens`, and cached input
/// is `cache_read_input_tokens`. Anthropic reports no separate reasoning count (thinking is
/// in `output_tokens`). `None` when the body has no usage.
///
/// ```
/// use chatvault_llm::anthropic;
/// let response = serde_json::json!({"model": "claude-sonnet-4-5", "usage": {
///     "input_tokens": 25, "output_tokens": 80,
///     "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 200}});
/// let usage = anthropic::usage_from_response(&response).unwrap();
/// assert_eq!((usage.input_tokens, usage.cached_input_tokens, usage.output_tokens), (1225, 1000, 80));
/// ```
pub fn usage_from_response(response: &Value) -> Option<Usage> {
    usage_of(response, |u| {
        let cached = count_at(u, &["cache_read_input_tokens"]);
        Usage {
            input_tokens: count_at(u, &["input_tokens"])
                .saturating_add(cached)
                .saturating_add(count_at(u, &["cache_creation_input_tokens"])),
            output_tokens: count_at(u, &["output_tokens"]),
            cached_input_tokens: cached,
            reasoning_tokens: 0,
            model: None,
        }
    })
}

/// Reads a Messages API `system` (a string or text blocks) and `messages` into messages to
/// store. See the [module docs](self) for the mapping.
pub fn from_request(system: Option<&Value>, messages: &[Value]) -> Result<Vec<NewMessage>> {
    let mut out = Vec::with_capacity(messages.len() + 1);
    match system {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => out.push(NewMessage::new(Role::System, s.clone())),
        Some(Value::Array(blocks)) => {
            let parts = blocks
                .iter()
                .map(|b| str_field(b, "text", "system block").map(Part::text))
                .collect::<Result<Vec<_>>>()?;
            out.push(NewMessage::with_parts(Role::System, parts));
        }
        Some(_) => {
            return Err(Error::invalid_input(
                "system",
                "must be a string or an array of text blocks",
            ));
        }
    }
    for message in messages {
        let role = str_field(message, "role", "Anthropic message")?;
        let parts = read_content(message.get("content"))?;
        let role = match role {
            "assistant" => Role::Assistant,
            "user"
                if !parts.is_empty() && parts.iter().all(|p| matches!(p, Part::ToolResult(_))) =>
            {
                Role::Tool
            }
            "user" => Role::User,
            other => {
                return Err(Error::invalid_input(
                    "Anthropic message",
                    format!("unknown role {other:?}"),
                ));
            }
        };
        out.push(NewMessage::with_parts(role, parts));
    }
    Ok(out)
}

fn read_content(content: Option<&Value>) -> Result<Vec<Part>> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![Part::text(s.clone())]),
        Some(Value::Array(blocks)) => blocks.iter().map(read_block).collect(),
        Some(_) => Err(Error::invalid_input(
            "Anthropic message",
            "content must be a string or an array of blocks",
        )),
    }
}

fn read_block(block: &Value) -> Result<Part> {
    Ok(match type_of(block) {
        "text" => Part::text(str_field(block, "text", "text block")?),
        "image" => read_file(block, true)?.unwrap_or_else(|| provider_part(ANTHROPIC, block)),
        "document" => read_file(block, false)?.unwrap_or_else(|| provider_part(ANTHROPIC, block)),
        "tool_use" => Part::tool_call(
            str_field(block, "id", "tool_use block")?,
            str_field(block, "name", "tool_use block")?,
            block.get("input").cloned().unwrap_or(Value::Null),
        ),
        "tool_result" => Part::ToolResult(ToolResult {
            call_id: str_field(block, "tool_use_id", "tool_result block")?.to_owned(),
            content: read_content(block.get("content"))?,
            is_error: block
                .get("is_error")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }),
        "thinking" => Part::Reasoning(Reasoning {
            text: Some(str_field(block, "thinking", "thinking block")?.to_owned()),
            signature: Some(str_field(block, "signature", "thinking block")?.to_owned()),
            redacted: false,
        }),
        "redacted_thinking" => Part::Reasoning(Reasoning {
            text: None,
            signature: Some(str_field(block, "data", "redacted_thinking block")?.to_owned()),
            redacted: true,
        }),
        _ => provider_part(ANTHROPIC, block),
    })
}

/// An image or document block as a file part; `None` when it has something a file part
/// cannot hold (a `file_id` source, citations, a title that is no file name...), so that
/// the caller keeps the block exactly.
fn read_file(block: &Value, image: bool) -> Result<Option<Part>> {
    let Some(object) = block.as_object() else {
        return Ok(None);
    };
    let allowed: &[&str] = if image {
        &["type", "source"]
    } else {
        &["type", "source", "title"]
    };
    if object.keys().any(|k| !allowed.contains(&k.as_str())) {
        return Ok(None);
    }
    let filename = match object.get("title") {
        None => None,
        Some(Value::String(t)) if chatvault_core::keys::validate_filename(t).is_ok() => {
            Some(t.clone())
        }
        Some(_) => return Ok(None),
    };
    let Some(source) = object.get("source") else {
        return Err(Error::invalid_input(
            "image or document block",
            "needs a \"source\"",
        ));
    };
    let (url, media_type) = match type_of(source) {
        "base64" => {
            let media = str_field(source, "media_type", "base64 source")?;
            let data = str_field(source, "data", "base64 source")?;
            (
                format!("data:{media};base64,{data}"),
                ContentType::parse(media)?,
            )
        }
        "text" if !image => {
            let data = str_field(source, "data", "text source")?;
            let media = source
                .get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("text/plain");
            (data_url(media, data.as_bytes()), ContentType::parse(media)?)
        }
        "url" => {
            let url = str_field(source, "url", "url source")?;
            let media = if image { "image/*" } else { "application/pdf" };
            (url.to_owned(), ContentType::parse(media)?)
        }
        _ => return Ok(None),
    };
    Ok(Some(Part::File(FilePart {
        source: FileSource::Url { url },
        media_type: Some(media_type),
        filename,
    })))
}
