//! Conversation items ↔ ChatVault messages.
//!
//! One item written through these routes is one message, whose id is the item's id (the
//! client's, or a fresh `msg_…`, `fc_…`, … one), so a retried write with the same ids is
//! stored once. The content goes through `chatvault_llm::responses`; whatever of the item
//! that mapping does not carry back (`status`, `annotations`, an image's `detail`, the
//! exact `arguments` string, ...) is kept as a small patch in the message's metadata
//! ([`PATCH_KEY`]) and put back when the item is read, so an item reads back as it was
//! written. An item the mapping cannot carry as one message (an empty message, ...) is kept
//! whole as provider data. A message written through ChatVault's own API reads as the
//! items `to_input_items` makes of it: the first has the message's id, the next ones
//! `{id}:1`, `{id}:2`, ...

use chatvault_core::{
    Message, MessageId, MessageStatus, Metadata, NewMessage, Part, ProviderPart, Role,
};
use chatvault_llm::responses::{from_input_items, to_input_items};
use serde_json::{Map, Value, json};

use super::error::OaiError;

/// The message metadata key holding what the item had beyond its content.
pub(crate) const PATCH_KEY: &str = "openai_item";

/// The message metadata key marking items deleted through these routes (a list of the
/// item indexes within the message).
pub(crate) const DELETED_KEY: &str = "openai_deleted";

/// The id prefix the API uses for an item type.
fn prefix(kind: &str) -> &'static str {
    match kind {
        "message" => "msg",
        "function_call" => "fc",
        "function_call_output" => "fco",
        "reasoning" => "rs",
        _ => "item",
    }
}

/// A fresh item id for an item of this type: `msg_` and 32 hex digits (UUID v7).
pub(crate) fn fresh_item_id(kind: &str) -> String {
    let uuid = MessageId::new().into_string().replace('-', "");
    format!("{}_{uuid}", prefix(kind))
}

/// An item's `type` (`message` for the short `{"role", "content"}` form).
fn item_type(item: &Value) -> Option<&str> {
    match item.get("type") {
        Some(Value::String(kind)) => Some(kind),
        None if item.get("role").is_some() => Some("message"),
        _ => None,
    }
}

/// The message to store for one item of a create request (`index` names it in errors).
pub(crate) fn to_message(item: &Value, index: usize) -> Result<NewMessage, OaiError> {
    let param = "items";
    let Some(object) = item.as_object() else {
        return Err(OaiError::invalid(
            param,
            format!("items[{index}] is not an object"),
        ));
    };
    let Some(kind) = item_type(item) else {
        return Err(OaiError::invalid(
            param,
            format!("items[{index}] has no string \"type\""),
        ));
    };
    let id = match object.get("id") {
        None | Some(Value::Null) => fresh_item_id(kind),
        Some(Value::String(id)) => id.clone(),
        Some(_) => {
            return Err(OaiError::invalid(
                param,
                format!("items[{index}].id is not a string"),
            ));
        }
    };
    let id = MessageId::parse(id)
        .map_err(|e| OaiError::invalid(param, format!("items[{index}].id: {e}")))?;
    let mut body = object.clone();
    body.remove("id");
    let body = Value::Object(body);
    let converted = from_input_items(std::slice::from_ref(&body))
        .map_err(|e| OaiError::invalid(param, format!("items[{index}]: {e}")))?;
    let single = match <[NewMessage; 1]>::try_from(converted) {
        Ok([message]) => Some(message),
        Err(_) => None,
    };
    // Keep it as one message when it reads back as one item; otherwise whole.
    let rendered = single.as_ref().and_then(|m| {
        to_input_items(std::slice::from_ref(m))
            .ok()
            .and_then(|items| <[Value; 1]>::try_from(items).ok())
    });
    let message = match (single, rendered) {
        (Some(message), Some([rendered])) => {
            let mut metadata = Metadata::new();
            if let Some(patch) = diff(&rendered, &body) {
                metadata.insert(PATCH_KEY.into(), patch);
            }
            message.with_metadata(metadata)
        }
        _ => {
            let role = if kind.ends_with("_output") {
                Role::Tool
            } else {
                Role::Assistant
            };
            NewMessage::with_parts(
                role,
                vec![Part::Provider(ProviderPart {
                    provider: chatvault_llm::OPENAI.into(),
                    kind: kind.into(),
                    data: body,
                })],
            )
        }
    };
    Ok(message.with_id(id))
}

/// The status an item of a message in this state has.
fn status_of(status: MessageStatus) -> &'static str {
    match status {
        MessageStatus::Pending | MessageStatus::Streaming => "in_progress",
        MessageStatus::Complete => "completed",
        _ => "incomplete",
    }
}

/// The item id of the `index`th item of a message.
pub(crate) fn item_id(message: &MessageId, index: usize) -> String {
    if index == 0 {
        message.as_str().to_owned()
    } else {
        format!("{message}:{index}")
    }
}

/// The items a stored message reads as, with their ids, deleted ones left out.
pub(crate) fn to_items(message: &Message) -> Vec<(usize, Value)> {
    let mut items = match to_input_items(std::slice::from_ref(message)) {
        Ok(items) => items,
        // A role the Responses API has no name for: its text, as a message of that role.
        Err(_) if !message.parts.is_empty() => vec![json!({
            "type": "message",
            "role": message.role.as_str(),
            "content": [{"type": "input_text", "text": message.content()}],
        })],
        Err(_) => Vec::new(),
    };
    if let (Some(patch), [item]) = (message.metadata.get(PATCH_KEY), items.as_mut_slice()) {
        apply(item, patch);
    }
    let deleted = deleted_indexes(&message.metadata);
    items
        .into_iter()
        .enumerate()
        .filter(|(index, _)| !deleted.contains(index))
        .map(|(index, mut item)| {
            if let Value::Object(fields) = &mut item {
                let kind = fields.get("type").and_then(Value::as_str).unwrap_or("");
                if matches!(kind, "message" | "function_call" | "function_call_output")
                    && !fields.contains_key("status")
                {
                    fields.insert("status".into(), status_of(message.status).into());
                }
                fields.insert("id".into(), item_id(&message.id, index).into());
            }
            (index, item)
        })
        .collect()
}

/// The item indexes of a message deleted through these routes.
pub(crate) fn deleted_indexes(metadata: &Metadata) -> Vec<usize> {
    metadata
        .get(DELETED_KEY)
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_u64)
                .filter_map(|i| usize::try_from(i).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// What turns `from` into `to`, or `None` when they are equal: `{"set": {key: value},
/// "del": [key], "sub": {key: patch}, "at": {index: patch}}` (objects key by key, arrays of
/// equal length element by element, anything else replaced whole by its parent).
fn diff(from: &Value, to: &Value) -> Option<Value> {
    if from == to {
        return None;
    }
    let mut patch = Map::new();
    match (from, to) {
        (Value::Object(a), Value::Object(b)) => {
            let (mut set, mut sub) = (Map::new(), Map::new());
            for (key, value) in b {
                match a.get(key) {
                    Some(old) if is_nested(old, value) => {
                        if let Some(p) = diff(old, value) {
                            sub.insert(key.clone(), p);
                        }
                    }
                    Some(old) if old == value => {}
                    _ => {
                        set.insert(key.clone(), value.clone());
                    }
                }
            }
            let del: Vec<Value> = a
                .keys()
                .filter(|k| !b.contains_key(*k))
                .map(|k| Value::String(k.clone()))
                .collect();
            for (name, value) in [("set", Value::Object(set)), ("sub", Value::Object(sub))] {
                if value.as_object().is_some_and(|m| !m.is_empty()) {
                    patch.insert(name.into(), value);
                }
            }
            if !del.is_empty() {
                patch.insert("del".into(), Value::Array(del));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            let at: Map<String, Value> = a
                .iter()
                .zip(b)
                .enumerate()
                .filter_map(|(i, (x, y))| diff(x, y).map(|p| (i.to_string(), p)))
                .collect();
            patch.insert("at".into(), Value::Object(at));
        }
        _ => {
            patch.insert("value".into(), to.clone());
        }
    }
    Some(Value::Object(patch))
}

/// Whether two values are patched inside rather than replaced.
fn is_nested(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(_), Value::Object(_)) => true,
        (Value::Array(x), Value::Array(y)) => x.len() == y.len(),
        _ => false,
    }
}

/// Applies a [`diff`] patch.
fn apply(target: &mut Value, patch: &Value) {
    if let Some(value) = patch.get("value") {
        *target = value.clone();
        return;
    }
    match target {
        Value::Object(fields) => {
            if let Some(Value::Object(set)) = patch.get("set") {
                for (key, value) in set {
                    fields.insert(key.clone(), value.clone());
                }
            }
            if let Some(Value::Array(del)) = patch.get("del") {
                for key in del.iter().filter_map(Value::as_str) {
                    fields.remove(key);
                }
            }
            if let Some(Value::Object(sub)) = patch.get("sub") {
                for (key, p) in sub {
                    if let Some(inner) = fields.get_mut(key) {
                        apply(inner, p);
                    }
                }
            }
        }
        Value::Array(elements) => {
            if let Some(Value::Object(at)) = patch.get("at") {
                for (index, p) in at {
                    if let Some(inner) = index
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| elements.get_mut(i))
                    {
                        apply(inner, p);
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_turns_one_value_into_the_other() {
        let cases = [
            (
                json!({"a": 1, "b": [1, {"x": 2}], "c": "x"}),
                json!({"a": 1, "b": [1, {"x": 3, "y": null}], "d": true}),
            ),
            (json!([1, 2]), json!([1, 2, 3])),
            (json!({"k": "s"}), json!({"k": {"o": 1}})),
        ];
        for (from, to) in cases {
            let patch = diff(&from, &to).expect("they differ");
            let mut value = from.clone();
            apply(&mut value, &patch);
            assert_eq!(value, to);
        }
        assert_eq!(diff(&json!({"a": 1}), &json!({"a": 1})), None);
    }
}
