//! The stores of the Python library (chatvault 0.1.0): one DynamoDB item per
//! conversation, `{conversation_id, user_id ("" for none), title, messages (a JSON string
//! of `[{role, content, timestamp, metadata}]`), files (a JSON string of `[{filename,
//! content_type, size, storage_key, uploaded_at, metadata}]`), created_at, last_active
//! (epoch seconds)}`, as `aws dynamodb scan` prints it (typed: `{"S": ".."}`) or plain.
//! The attachments' bytes are looked up by storage key in the export.

use chatvault_core::{ConversationId, Part, Role, UserId};
use serde_json::{Map, Value};

use super::fields::{self, Bad, Got, kind, object, opt_str, rest, time};
use super::files::Files;
use super::model::{Conv, Node};

/// Converts one item of the table.
pub(crate) fn convert(item: &Value, files: &mut Files<'_>) -> Got<Conv> {
    let item = plain(item);
    let top = object(&item, "item")?;
    let source_id = fields::id(top, "conversation_id", "")?;
    let created_at = time(top, "created_at", "")?;
    files.start(&source_id, created_at);
    let owner = match opt_str(top, "user_id", "")? {
        None | Some("") => None,
        Some(user) => Some(UserId::parse(user).map_err(|e| Bad::new("user_id", e.to_string()))?),
    };
    let messages = json_list(top, "messages")?;
    let records = json_list(top, "files")?;
    let mut extra = rest(
        top,
        &[
            "conversation_id",
            "user_id",
            "title",
            "messages",
            "files",
            "created_at",
            "last_active",
        ],
    );
    if !records.is_empty() {
        extra.insert("files".into(), Value::Array(records.clone()));
    }
    let mut conv = Conv {
        id: ConversationId::parse(source_id.as_str()).ok(),
        owner,
        title: opt_str(top, "title", "")?
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        created_at,
        updated_at: time(top, "last_active", "")?,
        extra,
        source_id,
        ..Conv::default()
    };
    let mut previous: Option<String> = None;
    for (i, m) in messages.iter().enumerate() {
        let path = format!("messages[{i}].");
        let m = object(m, &format!("messages[{i}]"))?;
        let role = opt_str(m, "role", &path)?.unwrap_or("user");
        let role = Role::parse(role).map_err(|e| Bad::new(format!("{path}role"), e.to_string()))?;
        let id = i.to_string();
        let mut node = Node::new(id.clone(), previous.replace(id), role);
        node.created_at = time(m, "timestamp", &path)?;
        if let Some(text) = opt_str(m, "content", &path)?
            && !text.is_empty()
        {
            node.parts.push(Part::text(text));
        }
        node.extra = rest(m, &["role", "content", "timestamp"]);
        conv.nodes.push(node);
    }
    if messages.iter().any(|m| {
        m.get("timestamp")
            .and_then(Value::as_str)
            .is_some_and(naive)
    }) {
        conv.notes
            .add("chatvault-py message times without a zone (read as UTC)");
    }
    for (i, f) in records.iter().enumerate() {
        let path = format!("files[{i}].");
        let f = object(f, &format!("files[{i}]"))?;
        let key = fields::id(f, "storage_key", &path)?;
        files.set_time(time(f, "uploaded_at", &path)?.or(conv.created_at));
        let name = opt_str(f, "filename", &path)?;
        let media = opt_str(f, "content_type", &path)?;
        // A conversation's attachment, not a message's: the part is not kept.
        let _ = files.exported(&key, &key, name, media);
    }
    Ok(conv)
}

/// Whether an ISO time has no zone (Python's naive `datetime.now()`).
fn naive(t: &str) -> bool {
    let time = t.split_once('T').map_or(t, |(_, time)| time);
    !(time.ends_with('Z') || time.contains('+') || time.contains('-'))
}

/// A list the item keeps as a JSON string (or, in a hand-made dump, as a list).
fn json_list(top: &Map<String, Value>, key: &str) -> Got<Vec<Value>> {
    match top.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => match serde_json::from_str(s) {
            Ok(Value::Array(list)) => Ok(list),
            Ok(other) => Err(Bad::new(key, format!("holds {}, not a list", kind(&other)))),
            Err(e) => Err(Bad::new(key, format!("is not JSON: {e}"))),
        },
        Some(Value::Array(list)) => Ok(list.clone()),
        Some(other) => Err(Bad::new(
            key,
            format!("is {}, not a JSON string", kind(other)),
        )),
    }
}

/// DynamoDB's typed JSON (`{"S": "x"}`, `{"N": "1"}`, `{"M": {..}}`, ..) as plain JSON;
/// anything else as it is.
fn plain(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            if let Some(typed) = typed(m) {
                return typed;
            }
            Value::Object(m.iter().map(|(k, v)| (k.clone(), plain(v))).collect())
        }
        other => other.clone(),
    }
}

fn typed(m: &Map<String, Value>) -> Option<Value> {
    if m.len() != 1 {
        return None;
    }
    let (tag, v) = m.iter().next()?;
    Some(match (tag.as_str(), v) {
        ("S" | "B", Value::String(s)) => Value::String(s.clone()),
        ("N", Value::String(n)) => number(n),
        ("BOOL", Value::Bool(b)) => Value::Bool(*b),
        ("NULL", Value::Bool(true)) => Value::Null,
        ("M", Value::Object(inner)) => {
            Value::Object(inner.iter().map(|(k, v)| (k.clone(), plain(v))).collect())
        }
        ("L", Value::Array(items)) => Value::Array(items.iter().map(plain).collect()),
        ("SS" | "BS", Value::Array(items)) => Value::Array(items.clone()),
        ("NS", Value::Array(items)) => Value::Array(
            items
                .iter()
                .map(|n| n.as_str().map_or(Value::Null, number))
                .collect(),
        ),
        _ => return None,
    })
}

fn number(n: &str) -> Value {
    if let Ok(i) = n.parse::<i64>() {
        return Value::from(i);
    }
    n.parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or_else(|| Value::String(n.to_owned()), Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_items_become_plain() {
        let item = json!({
            "conversation_id": {"S": "c1"}, "created_at": {"N": "1700000000"},
            "x": {"N": "1.5"}, "m": {"M": {"a": {"L": [{"BOOL": true}, {"NULL": true}]}}},
            "plain": {"a": 1, "b": 2}
        });
        assert_eq!(
            plain(&item),
            json!({"conversation_id": "c1", "created_at": 1700000000, "x": 1.5,
                   "m": {"a": [true, null]}, "plain": {"a": 1, "b": 2}})
        );
        assert!(naive("2026-12-06T19:30:00.123456"));
        assert!(!naive("2026-12-06T19:30:00Z"));
        assert!(!naive("2026-12-06T19:30:00+01:00"));
    }
}
