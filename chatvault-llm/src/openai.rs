//! OpenAI Chat Completions `messages`.
//!
//! # Mapping
//!
//! | Chat Completions | parts |
//! |---|---|
//! | `{"role": "system"\|"developer"\|"user", "content": "..."}` | one [`Part::Text`] |
//! | content part `{"type": "text"}` | [`Part::Text`] |
//! | `{"type": "image_url", "image_url": {"url"}}` | [`Part::File`] with the URL; media type from a `data:` URL, else `image/*` |
//! | `{"type": "input_audio", "input_audio": {"data", "format"}}` | [`Part::File`] with a base64 `data:audio/...` URL |
//! | `{"type": "file", "file": {"file_data", "filename"}}` | [`Part::File`] with the `data:` URL and file name |
//! | assistant `content` | [`Part::Text`]s |
//! | assistant `refusal` | [`Part::Provider`] ([`OPENAI_CHAT`], kind `refusal`, data the string) |
//! | assistant `tool_calls[]` `{"id", "type": "function", "function": {"name", "arguments"}}` | [`Part::ToolCall`]s (arguments parsed from their JSON string) |
//! | `{"role": "tool", "tool_call_id", "content"}` | a [`Role::Tool`] message with one [`Part::ToolResult`] |
//! | any other content part (a `file` by `file_id`, ...) | [`Part::Provider`] ([`OPENAI_CHAT`]) holding it exactly |
//!
//! Writing is the reverse, with these rules:
//!
//! - A message whose parts are one text part is written with a `content` string; other
//!   content is an array of content parts.
//! - Tool results go out as one `tool` message each, before the rest of their message's
//!   content (a user message holding results and text, as Anthropic's user turns do,
//!   becomes the tool messages and then a user message). Chat Completions has no error
//!   flag: an error result is sent as its text. Files inside a tool result, and files in
//!   an assistant message, become a text note (`[chart.png (image/png) not shown: ...]`,
//!   or the URL), since those take text only. A tool result inside an assistant message is
//!   an [`Error::InvalidInput`].
//! - Image files go out as `image_url` (a URL or a `data:` URL); `audio/*` base64 files as
//!   `input_audio`; other base64 files as `file` parts. A document at an `https://` URL
//!   has no Chat Completions form and is an [`Error::InvalidInput`]: resolve attachments
//!   with [`FileMode::Base64`](super::FileMode::Base64) for this API.
//! - Reasoning parts and other providers' [`Part::Provider`]s are left out (Chat
//!   Completions takes no reasoning back); [`Part::Unknown`] parts are left out.
//! - An attachment part that was not resolved ([`resolve_files`](super::resolve_files))
//!   is an [`Error::InvalidInput`].
//! - Not kept when reading: an image's `detail`, a message's `name`, an assistant's
//!   `audio`, legacy `function_call`s. JSON arguments are written compactly with sorted
//!   keys.
//!
//! ```
//! use chatvault_llm::openai;
//! use serde_json::json;
//!
//! let wire = vec![
//!     json!({"role": "user", "content": "Weather in Oslo?"}),
//!     json!({"role": "assistant", "content": null, "tool_calls": [{
//!         "id": "call_1", "type": "function",
//!         "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]}),
//!     json!({"role": "tool", "tool_call_id": "call_1", "content": "4°C"}),
//! ];
//! let messages = openai::from_messages(&wire)?;
//! assert_eq!(messages[1].parts[0].kind(), "tool_call");
//! assert_eq!(openai::to_messages(&messages)?, wire);
//! # Ok::<(), chatvault_core::Error>(())
//! ```

use serde_json::{Map, Value, json};

use super::{
    ChatMessage, OPENAI_CHAT, arguments_from_str, arguments_to_string, count_at,
    data_url_media_type, is_image, is_instruction, provider_part, split_data_url, str_field,
    type_of, usage_of,
};
use chatvault_core::Role;
use chatvault_core::ids::ContentType;
use chatvault_core::{Error, Result};
use chatvault_core::{FilePart, FileSource, NewMessage, Part, ProviderPart, ToolResult, Usage};

/// Writes `messages` as Chat Completions `messages`. See the [module docs](self) for the
/// rules.
pub fn to_messages<M: ChatMessage>(messages: &[M]) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(messages.len());
    for message in messages {
        write_message(message.role(), message.parts(), &mut out)?;
    }
    Ok(out)
}

/// A Chat Completions request body: `{"model": model, "messages": [...]}`. Add tools,
/// `stream` and the rest to the returned object.
pub fn to_request<M: ChatMessage>(model: &str, messages: &[M]) -> Result<Value> {
    Ok(json!({"model": model, "messages": to_messages(messages)?}))
}

fn write_message(role: &Role, parts: &[Part], out: &mut Vec<Value>) -> Result<()> {
    match role {
        Role::System => write_instruction(role, parts, out),
        Role::Other(_) if is_instruction(role) => write_instruction(role, parts, out),
        Role::Assistant => write_assistant(parts, out),
        Role::User | Role::Tool => {
            for part in parts {
                if let Part::ToolResult(result) = part {
                    out.push(json!({
                        "role": "tool",
                        "tool_call_id": result.call_id,
                        "content": write_tool_content(result),
                    }));
                }
            }
            let rest: Vec<Part> = parts
                .iter()
                .filter(|p| !matches!(p, Part::ToolResult(_)))
                .cloned()
                .collect();
            if let Some(content) = write_content(&rest, true)? {
                out.push(json!({"role": "user", "content": content}));
            }
            Ok(())
        }
        Role::Other(name) => Err(Error::invalid_input(
            "role",
            format!("Chat Completions has no role {name:?}"),
        )),
    }
}

fn write_instruction(role: &Role, parts: &[Part], out: &mut Vec<Value>) -> Result<()> {
    if let Some(content) = write_content(parts, false)? {
        out.push(json!({"role": role.as_str(), "content": content}));
    }
    Ok(())
}

fn write_assistant(parts: &[Part], out: &mut Vec<Value>) -> Result<()> {
    let mut texts = Vec::new();
    let mut tool_calls = Vec::new();
    let mut refusal = None;
    for part in parts {
        match part {
            Part::Text { text } => texts.push(text.clone()),
            Part::ToolCall(call) => tool_calls.push(json!({
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": arguments_to_string(&call.arguments)},
            })),
            Part::Provider(p) if p.provider == OPENAI_CHAT && p.kind == "refusal" => {
                refusal = Some(p.data.clone());
            }
            // Chat Completions takes no files from the assistant: a note stands for one.
            Part::File(file) => texts.push(file_note(file)),
            Part::ToolResult(result) => return Err(result_in_assistant(&result.call_id)),
            // Reasoning, other providers' data, unknown parts: not part of this API.
            _ => {}
        }
    }
    if texts.is_empty() && tool_calls.is_empty() && refusal.is_none() {
        return Ok(());
    }
    let content = match texts.len() {
        0 => Value::Null,
        1 => Value::String(texts.remove(0)),
        _ => Value::Array(
            texts
                .into_iter()
                .map(|t| json!({"type": "text", "text": t}))
                .collect(),
        ),
    };
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    message.insert("content".into(), content);
    if let Some(refusal) = refusal {
        message.insert("refusal".into(), refusal);
    }
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    out.push(Value::Object(message));
    Ok(())
}

/// The `content` of a system or user message: a string for one text part, else an array
/// (`None` when nothing is left to send).
fn write_content(parts: &[Part], files: bool) -> Result<Option<Value>> {
    if let [Part::Text { text }] = parts {
        return Ok(Some(Value::String(text.clone())));
    }
    let mut content = Vec::new();
    for part in parts {
        match part {
            Part::Text { text } => content.push(json!({"type": "text", "text": text})),
            Part::File(file) if files => content.push(write_file(file)?),
            Part::File(_) => {
                return Err(Error::invalid_input(
                    "system message",
                    "Chat Completions takes only text in system messages",
                ));
            }
            Part::Provider(p) if p.provider == OPENAI_CHAT && files => {
                content.push(p.data.clone());
            }
            Part::ToolCall(c) => {
                return Err(Error::invalid_input(
                    "tool call",
                    format!("call {:?} is in a non-assistant message", c.id),
                ));
            }
            _ => {}
        }
    }
    Ok((!content.is_empty()).then_some(Value::Array(content)))
}

fn write_tool_content(result: &ToolResult) -> Value {
    if let [Part::Text { text }] = result.content.as_slice() {
        return Value::String(text.clone());
    }
    let texts: Vec<Value> = result
        .content
        .iter()
        .filter_map(|part| match part {
            Part::Text { text } => Some(text.clone()),
            Part::File(f) => Some(file_note(f)),
            _ => None,
        })
        .map(|t| json!({"type": "text", "text": t}))
        .collect();
    if texts.is_empty() {
        Value::String(String::new())
    } else {
        Value::Array(texts)
    }
}

/// The error for a tool result inside an assistant message.
pub(crate) fn result_in_assistant(call_id: &str) -> Error {
    Error::invalid_input(
        "tool result",
        format!("the result for {call_id:?} is in an assistant message"),
    )
}

/// The text that stands for a file where an API takes only text (a tool's result in
/// Chat Completions, an assistant's file anywhere).
pub(crate) fn file_note(file: &FilePart) -> String {
    let name = file.filename.as_deref().unwrap_or("file");
    match (&file.source, &file.media_type) {
        (FileSource::Url { url }, _) if !url.starts_with("data:") => {
            format!("[{name} at {url}]")
        }
        (_, Some(m)) => format!("[{name} ({m}) not shown: this API takes only text here]"),
        (_, None) => format!("[{name} not shown: this API takes only text here]"),
    }
}

pub(crate) fn resolved_url(file: &FilePart) -> Result<&str> {
    match &file.source {
        FileSource::Url { url } => Ok(url),
        FileSource::Attachment { file_id } => Err(Error::invalid_input(
            "file part",
            format!("attachment {file_id} is not resolved: run llm::resolve_files first"),
        )),
    }
}

fn write_file(file: &FilePart) -> Result<Value> {
    let url = resolved_url(file)?;
    if is_image(file.media_type.as_ref(), url) {
        return Ok(json!({"type": "image_url", "image_url": {"url": url}}));
    }
    let media = file.media_type.clone().or_else(|| data_url_media_type(url));
    let Some((_, payload)) = split_data_url(url) else {
        return Err(Error::invalid_input(
            "file part",
            format!(
                "Chat Completions takes documents only as base64 data, not {url:?}: resolve files with FileMode::Base64"
            ),
        ));
    };
    if let Some(format) = media.as_ref().and_then(|m| audio_format(m.as_str())) {
        return Ok(
            json!({"type": "input_audio", "input_audio": {"data": payload, "format": format}}),
        );
    }
    let mut inner = Map::new();
    if let Some(name) = &file.filename {
        inner.insert("filename".into(), name.clone().into());
    }
    inner.insert("file_data".into(), url.into());
    Ok(json!({"type": "file", "file": inner}))
}

fn audio_format(media: &str) -> Option<String> {
    let essence = media.split(';').next().unwrap_or(media).trim();
    let sub = essence.strip_prefix("audio/")?;
    Some(match sub {
        "mpeg" | "mp3" => "mp3".to_owned(),
        "wav" | "x-wav" | "wave" => "wav".to_owned(),
        other => other.to_owned(),
    })
}

fn audio_media_type(format: &str) -> String {
    match format {
        "mp3" => "audio/mpeg".to_owned(),
        other => format!("audio/{other}"),
    }
}

/// The [`Usage`] of a Chat Completions response body (its `usage` and `model`): prompt
/// tokens as input (cached ones included, as OpenAI counts them), completion tokens as
/// output, `prompt_tokens_details.cached_tokens` and
/// `completion_tokens_details.reasoning_tokens`. `None` when the body has no usage.
///
/// ```
/// use chatvault_llm::openai;
/// let response = serde_json::json!({"model": "gpt-4o-2024-08-06", "usage": {
///     "prompt_tokens": 120, "completion_tokens": 18, "total_tokens": 138,
///     "prompt_tokens_details": {"cached_tokens": 64},
///     "completion_tokens_details": {"reasoning_tokens": 0}}});
/// let usage = openai::usage_from_response(&response).unwrap();
/// assert_eq!((usage.input_tokens, usage.output_tokens, usage.cached_input_tokens), (120, 18, 64));
/// assert_eq!(usage.model.as_deref(), Some("gpt-4o-2024-08-06"));
/// ```
pub fn usage_from_response(response: &Value) -> Option<Usage> {
    usage_of(response, |u| Usage {
        input_tokens: count_at(u, &["prompt_tokens"]),
        output_tokens: count_at(u, &["completion_tokens"]),
        cached_input_tokens: count_at(u, &["prompt_tokens_details", "cached_tokens"]),
        reasoning_tokens: count_at(u, &["completion_tokens_details", "reasoning_tokens"]),
        model: None,
    })
}

/// Reads Chat Completions `messages` into messages to store. See the
/// [module docs](self) for the mapping.
pub fn from_messages(messages: &[Value]) -> Result<Vec<NewMessage>> {
    messages.iter().map(read_message).collect()
}

fn read_message(message: &Value) -> Result<NewMessage> {
    let role = str_field(message, "role", "Chat Completions message")?;
    match role {
        "assistant" => {
            let mut parts = read_content(message.get("content"))?;
            if let Some(refusal) = message.get("refusal").filter(|r| !r.is_null()) {
                parts.push(Part::Provider(ProviderPart {
                    provider: OPENAI_CHAT.into(),
                    kind: "refusal".into(),
                    data: refusal.clone(),
                }));
            }
            if let Some(calls) = message.get("tool_calls").filter(|c| !c.is_null()) {
                let calls = calls.as_array().ok_or_else(|| {
                    Error::invalid_input("assistant message", "tool_calls is not an array")
                })?;
                for call in calls {
                    let id = str_field(call, "id", "tool call")?;
                    let function = call
                        .get("function")
                        .ok_or_else(|| Error::invalid_input("tool call", "needs \"function\""))?;
                    let name = str_field(function, "name", "tool call function")?;
                    let arguments = match function.get("arguments") {
                        Some(Value::String(s)) => arguments_from_str(s),
                        Some(other) => other.clone(),
                        None => Value::Null,
                    };
                    parts.push(Part::tool_call(id, name, arguments));
                }
            }
            Ok(NewMessage::with_parts(Role::Assistant, parts))
        }
        "tool" => {
            let call_id = str_field(message, "tool_call_id", "tool message")?;
            let content = read_content(message.get("content"))?;
            Ok(NewMessage::with_parts(
                Role::Tool,
                vec![Part::ToolResult(ToolResult {
                    call_id: call_id.to_owned(),
                    content,
                    is_error: false,
                })],
            ))
        }
        "system" | "developer" | "user" => Ok(NewMessage::with_parts(
            Role::from(role),
            read_content(message.get("content"))?,
        )),
        other => Err(Error::invalid_input(
            "Chat Completions message",
            format!("unknown role {other:?}"),
        )),
    }
}

fn read_content(content: Option<&Value>) -> Result<Vec<Part>> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![Part::text(s.clone())]),
        Some(Value::Array(items)) => items.iter().map(read_content_part).collect(),
        Some(_) => Err(Error::invalid_input(
            "Chat Completions message",
            "content must be a string, an array or null",
        )),
    }
}

fn read_content_part(part: &Value) -> Result<Part> {
    Ok(match type_of(part) {
        "text" => Part::text(str_field(part, "text", "text part")?),
        "image_url" => {
            let image = part
                .get("image_url")
                .ok_or_else(|| Error::invalid_input("image_url part", "needs \"image_url\""))?;
            let url = str_field(image, "url", "image_url part")?;
            let media = data_url_media_type(url).or_else(|| ContentType::parse("image/*").ok());
            Part::url(url, media)
        }
        "input_audio" => {
            let audio = part
                .get("input_audio")
                .ok_or_else(|| Error::invalid_input("input_audio part", "needs \"input_audio\""))?;
            let data = str_field(audio, "data", "input_audio part")?;
            let format = str_field(audio, "format", "input_audio part")?;
            let media = ContentType::parse(audio_media_type(format))?;
            Part::url(format!("data:{media};base64,{data}"), Some(media))
        }
        "file" => {
            let file = part
                .get("file")
                .ok_or_else(|| Error::invalid_input("file part", "needs \"file\""))?;
            match file.get("file_data").and_then(Value::as_str) {
                Some(data) => Part::File(FilePart {
                    source: FileSource::Url { url: data.into() },
                    media_type: data_url_media_type(data),
                    filename: file
                        .get("filename")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                }),
                // A file uploaded to OpenAI (`file_id`): only OpenAI can read it.
                None => provider_part(OPENAI_CHAT, part),
            }
        }
        _ => provider_part(OPENAI_CHAT, part),
    })
}
