#![doc = include_str!("../README.md")]
#![doc = include_str!("../docs/modules.md")]
#![doc = include_str!("../docs/preparing-history.md")]
#![doc = include_str!("../docs/provider-data.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod anthropic;
pub mod context;
mod conversation;
pub mod files;
pub mod openai;
pub mod replay;
pub mod responses;
mod trim;
mod view;

#[cfg(feature = "tiktoken")]
#[cfg_attr(docsrs, doc(cfg(feature = "tiktoken")))]
pub use context::TiktokenCounter;
pub use context::{ApproxCounter, TokenCounter, Window, select_window};
pub use conversation::{HistoryOptions, PrepareHistory};
pub use files::{FileMode, resolve_files};
pub use replay::{ReplayOptions, repair};
pub use trim::TrimToolResults;

use base64::Engine as _;
use serde_json::Value;

use chatvault_core::Role;
use chatvault_core::ids::{ContentType, MessageId};
use chatvault_core::{Error, Result};
use chatvault_core::{Message, NewMessage, Part};

/// The `provider` of [`Part::Provider`]s that hold OpenAI Responses API items or content
/// parts.
pub const OPENAI: &str = "openai";
/// The `provider` of [`Part::Provider`]s that hold OpenAI Chat Completions content parts
/// (and an assistant's `refusal`).
pub const OPENAI_CHAT: &str = "openai.chat";
/// The `provider` of [`Part::Provider`]s that hold Anthropic Messages content blocks.
pub const ANTHROPIC: &str = "anthropic";

/// Anything the writers can convert: a role and its parts.
pub trait ChatMessage {
    /// Who wrote it.
    fn role(&self) -> &Role;
    /// The content, in order.
    fn parts(&self) -> &[Part];
}

impl ChatMessage for Message {
    fn role(&self) -> &Role {
        &self.role
    }
    fn parts(&self) -> &[Part] {
        &self.parts
    }
}

impl ChatMessage for NewMessage {
    fn role(&self) -> &Role {
        &self.role
    }
    fn parts(&self) -> &[Part] {
        &self.parts
    }
}

impl<M: ChatMessage + ?Sized> ChatMessage for &M {
    fn role(&self) -> &Role {
        (**self).role()
    }
    fn parts(&self) -> &[Part] {
        (**self).parts()
    }
}

/// A message prepared for a request: what [`repair`] and [`resolve_files`] produce.
#[derive(Clone, Debug, PartialEq)]
pub struct ReplayMessage {
    /// Who wrote it.
    pub role: Role,
    /// The content to send.
    pub parts: Vec<Part>,
    /// The stored message it comes from; `None` for one that repair made (a synthetic
    /// tool result, or the text of orphaned tool results).
    pub source: Option<MessageId>,
}

impl ReplayMessage {
    /// A prepared message made of `parts`, from no stored message.
    pub fn new(role: impl Into<Role>, parts: Vec<Part>) -> Self {
        ReplayMessage {
            role: role.into(),
            parts,
            source: None,
        }
    }
}

impl ChatMessage for ReplayMessage {
    fn role(&self) -> &Role {
        &self.role
    }
    fn parts(&self) -> &[Part] {
        &self.parts
    }
}

impl From<&Message> for ReplayMessage {
    fn from(m: &Message) -> Self {
        ReplayMessage {
            role: m.role.clone(),
            parts: m.parts.clone(),
            source: Some(m.id.clone()),
        }
    }
}

/// Whether `role` is an instruction role (`system`, or OpenAI's `developer`).
pub(crate) fn is_instruction(role: &Role) -> bool {
    match role {
        Role::System => true,
        Role::Other(name) => name == "developer",
        _ => false,
    }
}

/// `data:{media_type};base64,{...}` for `bytes`.
pub(crate) fn data_url(media_type: &str, bytes: &[u8]) -> String {
    format!(
        "data:{media_type};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The media type and base64 payload of a `data:...;base64,...` URL.
pub(crate) fn split_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, payload) = rest.split_once(',')?;
    let media = meta.strip_suffix(";base64")?;
    Some((media, payload))
}

/// The bytes of a base64 `data:` URL.
pub(crate) fn decode_data_url(url: &str) -> Result<Vec<u8>> {
    let (_, payload) = split_data_url(url)
        .ok_or_else(|| Error::invalid_input("file part", "is not a base64 data: URL"))?;
    base64::engine::general_purpose::STANDARD
        .decode(payload)
        .map_err(|e| Error::invalid_input("file part", format!("bad base64 in data: URL: {e}")))
}

/// The media type a `data:` URL declares, when it is a valid content type.
pub(crate) fn data_url_media_type(url: &str) -> Option<ContentType> {
    let (media, _) = split_data_url(url)?;
    ContentType::parse(media).ok()
}

/// Tool-call arguments as the JSON string OpenAI sends: compact JSON of the value; a
/// string argument that is not itself JSON (a model's malformed output, kept as a string
/// when read) is written back as it was.
pub(crate) fn arguments_to_string(arguments: &Value) -> String {
    match arguments {
        Value::String(s) if serde_json::from_str::<Value>(s).is_err() => s.clone(),
        other => other.to_string(),
    }
}

/// Tool-call arguments read from OpenAI's JSON string: parsed, or kept as a string when
/// the model's output is not JSON.
pub(crate) fn arguments_from_str(arguments: &str) -> Value {
    serde_json::from_str(arguments).unwrap_or_else(|_| Value::String(arguments.to_owned()))
}

/// The unsigned integer at a JSON path, 0 when absent.
pub(crate) fn count_at(value: &Value, path: &[&str]) -> u64 {
    let mut v = value;
    for key in path {
        v = &v[*key];
    }
    v.as_u64().unwrap_or(0)
}

/// The usage of a response body with a `usage` object and a `model`.
pub(crate) fn usage_of(
    response: &Value,
    read: impl Fn(&Value) -> chatvault_core::Usage,
) -> Option<chatvault_core::Usage> {
    let usage = response.get("usage").filter(|u| u.is_object())?;
    let mut out = read(usage);
    out.model = response
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some(out)
}

/// The string at `value[key]`, or an [`Error::InvalidInput`] naming `what`.
pub(crate) fn str_field<'a>(value: &'a Value, key: &str, what: &'static str) -> Result<&'a str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid_input(what, format!("needs a string {key:?}")))
}

/// A provider part holding `data` exactly.
pub(crate) fn provider_part(provider: &str, data: &Value) -> Part {
    let kind = data
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned();
    Part::Provider(chatvault_core::ProviderPart {
        provider: provider.to_owned(),
        kind,
        data: data.clone(),
    })
}

/// The JSON `type` of a provider object, for error messages.
pub(crate) fn type_of(value: &Value) -> &str {
    value.get("type").and_then(Value::as_str).unwrap_or("?")
}

/// A guess at whether a file part is an image, from its media type or URL.
pub(crate) fn is_image(media_type: Option<&ContentType>, url: &str) -> bool {
    if let Some(m) = media_type {
        return m.as_str().starts_with("image/");
    }
    if let Some(m) = data_url_media_type(url) {
        return m.as_str().starts_with("image/");
    }
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    [".png", ".jpg", ".jpeg", ".gif", ".webp"]
        .iter()
        .any(|ext| path.ends_with(ext))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls() {
        let url = data_url("image/png", b"\x89PNG");
        assert_eq!(url, "data:image/png;base64,iVBORw==");
        assert_eq!(split_data_url(&url), Some(("image/png", "iVBORw==")));
        assert_eq!(decode_data_url(&url).unwrap(), b"\x89PNG");
        assert_eq!(data_url_media_type(&url).unwrap().as_str(), "image/png");
        assert_eq!(split_data_url("data:text/plain,hello"), None);
        assert!(decode_data_url("https://example.com/a.png").is_err());
        assert!(decode_data_url("data:image/png;base64,@@@").is_err());
    }

    #[test]
    fn arguments() {
        let v = serde_json::json!({"city": "Oslo", "days": 3});
        let s = arguments_to_string(&v);
        assert_eq!(s, r#"{"city":"Oslo","days":3}"#);
        assert_eq!(arguments_from_str(&s), v);
        // Not JSON: kept as the string, written back unchanged.
        assert_eq!(arguments_from_str("{oops"), Value::String("{oops".into()));
        assert_eq!(arguments_to_string(&Value::String("{oops".into())), "{oops");
    }

    #[test]
    fn image_guess() {
        assert!(is_image(None, "https://x.test/a.PNG?sig=1"));
        assert!(!is_image(None, "https://x.test/a.pdf"));
        assert!(is_image(None, "data:image/gif;base64,R0lG"));
        let pdf = ContentType::parse("application/pdf").unwrap();
        assert!(!is_image(Some(&pdf), "https://x.test/a.png"));
    }
}
