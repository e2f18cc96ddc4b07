//! The typed parts a message's content is made of.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Result;
use crate::ids::{ContentType, FileId};

/// One piece of a message's content.
///
/// See [`Message`](crate::Message) for the JSON form of each kind.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Part {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// A file: one of the conversation's attachments, or an external URL.
    File(FilePart),
    /// The model asks for a tool to be run.
    ToolCall(ToolCall),
    /// A tool's answer to a [`Part::ToolCall`].
    ToolResult(ToolResult),
    /// The model's reasoning: text and/or an opaque provider signature, kept byte-exact.
    Reasoning(Reasoning),
    /// Provider-specific data that has no typed part (a typed escape hatch).
    Provider(ProviderPart),
    /// A part of a kind this release does not know (written by a later release), kept
    /// exactly as stored and written back unchanged.
    Unknown(serde_json::Value),
}

/// A file inside a message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FilePart {
    /// Where the bytes are.
    #[serde(flatten)]
    pub source: FileSource,
    /// The file's MIME type, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<ContentType>,
    /// The file's name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// Where a [`FilePart`]'s bytes are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FileSource {
    /// One of the conversation's attachments (`{"file_id": ...}`).
    Attachment {
        /// The attachment's id.
        file_id: FileId,
    },
    /// A URL (`{"url": ...}`): `https://`, or a `data:` URL.
    Url {
        /// The URL.
        url: String,
    },
}

/// A tool call made by the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, which its [`ToolResult::call_id`] repeats.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments, as JSON (providers that send a string of JSON are parsed; a string
    /// that is not JSON is kept as a JSON string).
    #[serde(default)]
    pub arguments: serde_json::Value,
}

/// A tool's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The [`ToolCall::id`] this answers.
    pub call_id: String,
    /// The result's content: text, files, ...
    #[serde(default)]
    pub content: Vec<Part>,
    /// Whether the tool failed.
    #[serde(default)]
    pub is_error: bool,
}

/// Reasoning ("thinking") produced by a model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reasoning {
    /// The reasoning text or summary, when the provider shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// An opaque signature or encrypted blob the provider needs back byte-exact
    /// (Anthropic's `signature` or `redacted_thinking` data, OpenAI's
    /// `encrypted_content`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Whether the provider redacted the reasoning (the signature then holds its data).
    #[serde(default)]
    pub redacted: bool,
}

/// Provider-specific data kept as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderPart {
    /// The provider: `"openai"`, `"anthropic"`, ...
    pub provider: String,
    /// What it is, in the provider's terms: `"web_search_call"`, ...
    pub kind: String,
    /// The data, exactly as the provider gave it.
    #[serde(default)]
    pub data: serde_json::Value,
}

impl Part {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Part::Text { text: text.into() }
    }

    /// A file part for one of the conversation's attachments.
    pub fn attachment(file_id: FileId, media_type: Option<ContentType>) -> Self {
        Part::File(FilePart {
            source: FileSource::Attachment { file_id },
            media_type,
            filename: None,
        })
    }

    /// A file part for a URL.
    pub fn url(url: impl Into<String>, media_type: Option<ContentType>) -> Self {
        Part::File(FilePart {
            source: FileSource::Url { url: url.into() },
            media_type,
            filename: None,
        })
    }

    /// A tool call part.
    pub fn tool_call(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: serde_json::Value,
    ) -> Self {
        Part::ToolCall(ToolCall {
            id: id.into(),
            name: name.into(),
            arguments,
        })
    }

    /// A tool result part holding text.
    pub fn tool_result(
        call_id: impl Into<String>,
        text: impl Into<String>,
        is_error: bool,
    ) -> Self {
        Part::ToolResult(ToolResult {
            call_id: call_id.into(),
            content: vec![Part::text(text)],
            is_error,
        })
    }

    /// The part's `type` in the JSON form.
    pub fn kind(&self) -> &str {
        match self {
            Part::Text { .. } => "text",
            Part::File(_) => "file",
            Part::ToolCall(_) => "tool_call",
            Part::ToolResult(_) => "tool_result",
            Part::Reasoning(_) => "reasoning",
            Part::Provider(_) => "provider",
            Part::Unknown(v) => v.get("type").and_then(|t| t.as_str()).unwrap_or("unknown"),
        }
    }

    /// The text of a text part.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Part::Text { text } => Some(text),
            _ => None,
        }
    }

    fn to_value(&self) -> std::result::Result<serde_json::Value, serde_json::Error> {
        use serde_json::{Value, json};
        let tagged = |tag: &str, mut v: Value| {
            if let Value::Object(map) = &mut v {
                map.insert("type".into(), Value::String(tag.into()));
            }
            v
        };
        Ok(match self {
            Part::Text { text } => json!({"type": "text", "text": text}),
            Part::File(p) => tagged("file", serde_json::to_value(p)?),
            Part::ToolCall(p) => tagged("tool_call", serde_json::to_value(p)?),
            Part::ToolResult(p) => tagged("tool_result", serde_json::to_value(p)?),
            Part::Reasoning(p) => tagged("reasoning", serde_json::to_value(p)?),
            Part::Provider(p) => tagged("provider", serde_json::to_value(p)?),
            Part::Unknown(v) => v.clone(),
        })
    }

    fn from_value(value: serde_json::Value) -> std::result::Result<Self, String> {
        let kind = value
            .get("type")
            .and_then(|t| t.as_str())
            .ok_or("a message part needs a string \"type\"")?
            .to_owned();
        let typed = |v| -> std::result::Result<Part, String> {
            Ok(match kind.as_str() {
                "text" => {
                    #[derive(Deserialize)]
                    struct T {
                        text: String,
                    }
                    let t: T = serde_json::from_value(v).map_err(|e| e.to_string())?;
                    Part::Text { text: t.text }
                }
                "file" => Part::File(serde_json::from_value(v).map_err(|e| e.to_string())?),
                "tool_call" => {
                    Part::ToolCall(serde_json::from_value(v).map_err(|e| e.to_string())?)
                }
                "tool_result" => {
                    Part::ToolResult(serde_json::from_value(v).map_err(|e| e.to_string())?)
                }
                "reasoning" => {
                    Part::Reasoning(serde_json::from_value(v).map_err(|e| e.to_string())?)
                }
                "provider" => Part::Provider(serde_json::from_value(v).map_err(|e| e.to_string())?),
                _ => Part::Unknown(v),
            })
        };
        typed(value).map_err(|e| format!("bad {kind:?} part: {e}"))
    }
}

impl Serialize for Part {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Part {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Part::from_value(value).map_err(serde::de::Error::custom)
    }
}
