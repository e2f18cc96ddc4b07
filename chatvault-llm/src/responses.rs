//! OpenAI Responses API `input` items.
//!
//! # Mapping
//!
//! | Responses item | parts |
//! |---|---|
//! | `{"type": "message", "role": "system"\|"developer"\|"user", "content": [...]}` (or the short `{"role", "content": "..."}`) | a message of that role |
//! | content `input_text` / `output_text` | [`Part::Text`] |
//! | content `{"type": "input_image", "image_url"}` | [`Part::File`]; media type from a `data:` URL, else `image/*` |
//! | content `{"type": "input_file", "file_data" \| "file_url", "filename"}` | [`Part::File`] |
//! | `{"type": "message", "role": "assistant", ...}`, `function_call`, `reasoning` and other output items | one [`Role::Assistant`] message per run of consecutive output items |
//! | `{"type": "function_call", "call_id", "name", "arguments"}` | [`Part::ToolCall`] |
//! | `{"type": "function_call_output", "call_id", "output"}` | a [`Role::Tool`] message with one [`Part::ToolResult`] (a string output is one text part) |
//! | `{"type": "reasoning", "id", "summary", "encrypted_content"}` | [`Part::Provider`] ([`OPENAI`], kind `reasoning`): the item exactly, for replay |
//! | any other item or content part (`web_search_call`, `refusal`, a file by `file_id`, ...) | [`Part::Provider`] ([`OPENAI`]) holding it exactly; items whose type ends in `_output` start a [`Role::Tool`] message |
//!
//! Writing is the reverse: parts go out in order; in an assistant message consecutive
//! text parts share one `message` item, and each tool call or provider item is an item of
//! its own. Messages are always written as `{"type": "message", "role", "content": [..]}`.
//! A tool result is one `function_call_output` (the Responses API has no error flag; an
//! error result is sent as its text); its output is a string when it is one text part.
//! A file in an assistant message becomes a text note (the API takes none there); a tool
//! result in one is an [`Error::InvalidInput`].
//! Reasoning parts ([`Part::Reasoning`], Anthropic's) are left out, as are other
//! providers' data and [`Part::Unknown`] parts. Not kept when reading: `id` and `status`
//! of messages and function calls, `annotations` of output text, an image's `detail`
//! (written as `"auto"`).
//!
//! ```
//! use chatvault_llm::responses;
//! use serde_json::json;
//!
//! let items = vec![
//!     json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}),
//!     json!({"type": "function_call", "call_id": "call_1", "name": "clock", "arguments": "{}"}),
//!     json!({"type": "function_call_output", "call_id": "call_1", "output": "09:30"}),
//! ];
//! let messages = responses::from_input_items(&items)?;
//! assert_eq!(messages.len(), 3);
//! assert_eq!(responses::to_input_items(&messages)?, items);
//! # Ok::<(), chatvault_core::Error>(())
//! ```

use serde_json::{Map, Value, json};

use super::openai::{file_note, resolved_url, result_in_assistant};
use super::{
    ChatMessage, OPENAI, arguments_from_str, arguments_to_string, count_at, data_url_media_type,
    is_image, is_instruction, provider_part, str_field, type_of, usage_of,
};
use chatvault_core::Role;
use chatvault_core::ids::ContentType;
use chatvault_core::{Error, Result};
use chatvault_core::{FilePart, FileSource, NewMessage, Part, ToolResult, Usage};

/// Content part types (as opposed to items) of the Responses API.
const CONTENT_KINDS: [&str; 6] = [
    "input_text",
    "input_image",
    "input_file",
    "input_audio",
    "output_text",
    "refusal",
];

fn is_content_kind(kind: &str) -> bool {
    CONTENT_KINDS.contains(&kind)
}

/// Writes `messages` as Responses API `input` items. See the [module docs](self).
pub fn to_input_items<M: ChatMessage>(messages: &[M]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for message in messages {
        let role = message.role();
        let assistant = match role {
            Role::Assistant => true,
            Role::User | Role::Tool | Role::System => false,
            Role::Other(_) if is_instruction(role) => false,
            Role::Other(name) => {
                return Err(Error::invalid_input(
                    "role",
                    format!("the Responses API has no role {name:?}"),
                ));
            }
        };
        let wire_role = if *role == Role::Tool {
            "user"
        } else {
            role.as_str()
        };
        let mut writer = ItemWriter {
            role: wire_role,
            assistant,
            content: Vec::new(),
            out: &mut out,
        };
        for part in message.parts() {
            writer.part(part)?;
        }
        writer.flush();
    }
    Ok(out)
}

/// A Responses request body: `{"model": model, "input": [...]}`. Add `tools`,
/// `include: ["reasoning.encrypted_content"]`, `store` and the rest to it.
pub fn to_request<M: ChatMessage>(model: &str, messages: &[M]) -> Result<Value> {
    Ok(json!({"model": model, "input": to_input_items(messages)?}))
}

struct ItemWriter<'a> {
    role: &'a str,
    assistant: bool,
    content: Vec<Value>,
    out: &'a mut Vec<Value>,
}

impl ItemWriter<'_> {
    fn flush(&mut self) {
        if !self.content.is_empty() {
            let content = std::mem::take(&mut self.content);
            self.out
                .push(json!({"type": "message", "role": self.role, "content": content}));
        }
    }

    fn item(&mut self, item: Value) {
        self.flush();
        self.out.push(item);
    }

    fn part(&mut self, part: &Part) -> Result<()> {
        match part {
            Part::Text { text } => {
                let kind = if self.assistant {
                    "output_text"
                } else {
                    "input_text"
                };
                self.content.push(json!({"type": kind, "text": text}));
            }
            // The Responses API takes no files from the assistant: a note stands for one.
            Part::File(file) if self.assistant => {
                self.content
                    .push(json!({"type": "output_text", "text": file_note(file)}));
            }
            Part::File(file) => self.content.push(write_file(file)?),
            Part::ToolCall(call) => {
                if !self.assistant {
                    return Err(Error::invalid_input(
                        "tool call",
                        format!("call {:?} is in a non-assistant message", call.id),
                    ));
                }
                self.item(json!({
                    "type": "function_call",
                    "call_id": call.id,
                    "name": call.name,
                    "arguments": arguments_to_string(&call.arguments),
                }));
            }
            Part::ToolResult(result) => {
                if self.assistant {
                    return Err(result_in_assistant(&result.call_id));
                }
                let output = write_output(result)?;
                self.item(json!({
                    "type": "function_call_output",
                    "call_id": result.call_id,
                    "output": output,
                }));
            }
            Part::Provider(p) if p.provider == OPENAI => {
                if is_content_kind(&p.kind) {
                    self.content.push(p.data.clone());
                } else {
                    self.item(p.data.clone());
                }
            }
            // Anthropic reasoning, other providers' data, unknown parts.
            _ => {}
        }
        Ok(())
    }
}

fn write_output(result: &ToolResult) -> Result<Value> {
    match result.content.as_slice() {
        [] => Ok(Value::String(String::new())),
        [Part::Text { text }] => Ok(Value::String(text.clone())),
        parts => {
            let mut content = Vec::new();
            for part in parts {
                match part {
                    Part::Text { text } => {
                        content.push(json!({"type": "input_text", "text": text}))
                    }
                    Part::File(file) => content.push(write_file(file)?),
                    Part::Provider(p) if p.provider == OPENAI && is_content_kind(&p.kind) => {
                        content.push(p.data.clone());
                    }
                    _ => {}
                }
            }
            Ok(Value::Array(content))
        }
    }
}

fn write_file(file: &FilePart) -> Result<Value> {
    let url = resolved_url(file)?;
    if is_image(file.media_type.as_ref(), url) {
        return Ok(json!({"type": "input_image", "image_url": url, "detail": "auto"}));
    }
    let mut part = Map::new();
    part.insert("type".into(), "input_file".into());
    if let Some(name) = &file.filename {
        part.insert("filename".into(), name.clone().into());
    }
    let key = if url.starts_with("data:") {
        "file_data"
    } else {
        "file_url"
    };
    part.insert(key.into(), url.into());
    Ok(Value::Object(part))
}

/// The [`Usage`] of a Responses API response body (its `usage` and `model`):
/// `input_tokens` (cached ones included), `output_tokens` (reasoning ones included),
/// `input_tokens_details.cached_tokens`, `output_tokens_details.reasoning_tokens`. `None`
/// when the body has no usage.
///
/// ```
/// use chatvault_llm::responses;
/// let response = serde_json::json!({"model": "o4-mini", "output": [], "usage": {
///     "input_tokens": 300, "output_tokens": 900, "total_tokens": 1200,
///     "input_tokens_details": {"cached_tokens": 0},
///     "output_tokens_details": {"reasoning_tokens": 640}}});
/// let usage = responses::usage_from_response(&response).unwrap();
/// assert_eq!((usage.input_tokens, usage.output_tokens, usage.reasoning_tokens), (300, 900, 640));
/// ```
pub fn usage_from_response(response: &Value) -> Option<Usage> {
    usage_of(response, |u| Usage {
        input_tokens: count_at(u, &["input_tokens"]),
        output_tokens: count_at(u, &["output_tokens"]),
        cached_input_tokens: count_at(u, &["input_tokens_details", "cached_tokens"]),
        reasoning_tokens: count_at(u, &["output_tokens_details", "reasoning_tokens"]),
        model: None,
    })
}

/// Reads Responses API `input` items (or a response's `output` items) into messages to
/// store. See the [module docs](self).
pub fn from_input_items(items: &[Value]) -> Result<Vec<NewMessage>> {
    let mut out = Vec::new();
    let mut assistant: Vec<Part> = Vec::new();
    let flush = |assistant: &mut Vec<Part>, out: &mut Vec<NewMessage>| {
        if !assistant.is_empty() {
            out.push(NewMessage::with_parts(
                Role::Assistant,
                std::mem::take(assistant),
            ));
        }
    };
    for item in items {
        let kind = match item.get("type") {
            Some(Value::String(kind)) => kind.as_str(),
            None if item.get("role").is_some() => "message",
            _ => {
                return Err(Error::invalid_input(
                    "Responses item",
                    "needs a string \"type\" (or a \"role\")",
                ));
            }
        };
        match kind {
            "message" => {
                let role = str_field(item, "role", "Responses message")?;
                let parts = read_content(item.get("content"))?;
                if role == "assistant" {
                    assistant.extend(parts);
                } else {
                    match role {
                        "user" | "system" | "developer" => {}
                        other => {
                            return Err(Error::invalid_input(
                                "Responses message",
                                format!("unknown role {other:?}"),
                            ));
                        }
                    }
                    flush(&mut assistant, &mut out);
                    out.push(NewMessage::with_parts(Role::from(role), parts));
                }
            }
            "function_call" => {
                let call_id = str_field(item, "call_id", "function_call item")?;
                let name = str_field(item, "name", "function_call item")?;
                let arguments = match item.get("arguments") {
                    Some(Value::String(s)) => arguments_from_str(s),
                    Some(other) => other.clone(),
                    None => Value::Null,
                };
                assistant.push(Part::tool_call(call_id, name, arguments));
            }
            "function_call_output" => {
                flush(&mut assistant, &mut out);
                let call_id = str_field(item, "call_id", "function_call_output item")?;
                let content = read_content(item.get("output"))?;
                out.push(NewMessage::with_parts(
                    Role::Tool,
                    vec![Part::ToolResult(ToolResult {
                        call_id: call_id.to_owned(),
                        content,
                        is_error: false,
                    })],
                ));
            }
            other if other.ends_with("_output") => {
                flush(&mut assistant, &mut out);
                out.push(NewMessage::with_parts(
                    Role::Tool,
                    vec![provider_part(OPENAI, item)],
                ));
            }
            // reasoning, web_search_call, file_search_call, computer_call, ...
            _ => assistant.push(provider_part(OPENAI, item)),
        }
    }
    flush(&mut assistant, &mut out);
    Ok(out)
}

fn read_content(content: Option<&Value>) -> Result<Vec<Part>> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![Part::text(s.clone())]),
        Some(Value::Array(parts)) => parts.iter().map(read_content_part).collect(),
        Some(_) => Err(Error::invalid_input(
            "Responses message",
            "content must be a string or an array",
        )),
    }
}

fn read_content_part(part: &Value) -> Result<Part> {
    Ok(match type_of(part) {
        "input_text" | "output_text" => Part::text(str_field(part, "text", "text content")?),
        "input_image" => match part.get("image_url").and_then(Value::as_str) {
            Some(url) => {
                let media = data_url_media_type(url).or_else(|| ContentType::parse("image/*").ok());
                Part::url(url, media)
            }
            None => provider_part(OPENAI, part),
        },
        "input_file" => {
            let filename = part
                .get("filename")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if let Some(data) = part.get("file_data").and_then(Value::as_str) {
                Part::File(FilePart {
                    source: FileSource::Url { url: data.into() },
                    media_type: data_url_media_type(data),
                    filename,
                })
            } else if let Some(url) = part.get("file_url").and_then(Value::as_str) {
                Part::File(FilePart {
                    source: FileSource::Url { url: url.into() },
                    media_type: None,
                    filename,
                })
            } else {
                provider_part(OPENAI, part)
            }
        }
        _ => provider_part(OPENAI, part),
    })
}
