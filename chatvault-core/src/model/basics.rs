//! The basics every model type uses: metadata, the clock, the size and depth limits, and
//! token usage.

use chrono::{DateTime, SubsecRound, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The deepest nesting of JSON (metadata, tool arguments, provider data, nested tool
/// results) that ChatVault accepts. Every backend reads back anything this deep.
pub const MAX_JSON_DEPTH: usize = 64;

/// The largest message ChatVault accepts, in bytes of its JSON form. A backend may declare
/// a lower limit in its capabilities
/// ([`MessagesCapabilities::max_message_bytes`](crate::backend::MessagesCapabilities)).
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// The largest metadata object accepted on a conversation, in bytes of its JSON form.
pub const MAX_METADATA_BYTES: usize = 256 * 1024;

/// The most parts one message may have.
pub const MAX_PARTS: usize = 10_000;

/// Free-form JSON metadata: a JSON object.
///
/// Integers within `i64`/`u64` and every finite `f64` survive every first-party backend's
/// round trip exactly (serde_json's `float_roundtrip` is enabled).
pub type Metadata = serde_json::Map<String, serde_json::Value>;

/// The current time, truncated to microseconds: the precision every backend keeps.
pub fn now() -> DateTime<Utc> {
    let at = Utc::now();
    // Rounding the nanoseconds down to whole microseconds is what `trunc_subsecs(6)`
    // does, without its general date arithmetic. A leap second's nanoseconds (over one
    // billion) stay over it, so `with_nanosecond` cannot refuse them.
    at.with_nanosecond(at.nanosecond() / 1_000 * 1_000)
        .unwrap_or_else(|| at.trunc_subsecs(6))
}

/// Checks conversation metadata: at most [`MAX_METADATA_BYTES`](crate::MAX_METADATA_BYTES)
/// of JSON, nested at most [`MAX_JSON_DEPTH`](crate::MAX_JSON_DEPTH) levels.
pub fn validate_metadata(metadata: &Metadata) -> Result<()> {
    check_json_depth("metadata", metadata, 1)?;
    let size = serde_json::to_vec(metadata)
        .map_err(|e| Error::invalid_input("metadata", e.to_string()))?
        .len();
    if size > MAX_METADATA_BYTES {
        return Err(Error::TooLarge {
            what: "conversation metadata".into(),
            size: size as u64,
            limit: MAX_METADATA_BYTES as u64,
        });
    }
    Ok(())
}

/// Checks that `metadata` nests at most [`MAX_JSON_DEPTH`] levels (counting from `depth`).
pub(crate) fn check_json_depth(
    field: &'static str,
    metadata: &Metadata,
    depth: usize,
) -> Result<()> {
    for value in metadata.values() {
        check_value_depth(field, value, depth + 1)?;
    }
    Ok(())
}

/// Checks that `value` nests at most [`MAX_JSON_DEPTH`] levels, counting it as level
/// `depth`. Iterative, so a hostile value cannot overflow the stack.
pub(crate) fn check_value_depth(
    field: &'static str,
    value: &serde_json::Value,
    depth: usize,
) -> Result<()> {
    use serde_json::Value;
    let mut stack = vec![(value, depth)];
    while let Some((v, d)) = stack.pop() {
        if d > MAX_JSON_DEPTH {
            return Err(Error::invalid_input(
                field,
                format!("nests deeper than {MAX_JSON_DEPTH} levels"),
            ));
        }
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// Token usage of one model call, or running totals of a conversation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input (prompt) tokens, cached ones included.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output (completion) tokens, reasoning ones included.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens served from the provider's cache.
    #[serde(default)]
    pub cached_input_tokens: u64,
    /// Output tokens spent on reasoning.
    #[serde(default)]
    pub reasoning_tokens: u64,
    /// The model that produced them (per message; `None` in totals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

impl Usage {
    /// Usage of `input` and `output` tokens by `model`.
    pub fn new(model: impl Into<String>, input_tokens: u64, output_tokens: u64) -> Self {
        Usage {
            input_tokens,
            output_tokens,
            model: Some(model.into()),
            ..Usage::default()
        }
    }

    /// Adds `other`'s counts to these (saturating); the model is not kept in totals.
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cached_input_tokens = self
            .cached_input_tokens
            .saturating_add(other.cached_input_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(other.reasoning_tokens);
    }

    /// Takes `other`'s counts from these (saturating at zero).
    pub fn subtract(&mut self, other: &Usage) {
        self.input_tokens = self.input_tokens.saturating_sub(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_sub(other.output_tokens);
        self.cached_input_tokens = self
            .cached_input_tokens
            .saturating_sub(other.cached_input_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_sub(other.reasoning_tokens);
    }

    /// Input plus output tokens.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}
