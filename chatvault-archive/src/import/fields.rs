//! Reading the fields of an export's JSON leniently where the real exports are messy, and
//! strictly where a wrong value would mean a wrong tree: a bad field is a [`Bad`] naming
//! it.

use chrono::{DateTime, NaiveDateTime, SubsecRound, TimeZone, Utc};
use serde_json::{Map, Value};

/// A field that cannot be read: its path in the conversation and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bad {
    pub(crate) field: String,
    pub(crate) reason: String,
}

impl Bad {
    pub(crate) fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Bad {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

pub(crate) type Got<T> = Result<T, Bad>;

/// The JSON type of `v`, for messages.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `v` as an object.
pub(crate) fn object<'a>(v: &'a Value, field: &str) -> Got<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| Bad::new(field, format!("is {}, not an object", kind(v))))
}

/// The string at `key`: `None` when absent or null; a [`Bad`] when of another type.
pub(crate) fn opt_str<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Got<Option<&'a str>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(Bad::new(
            format!("{path}{key}"),
            format!("is {}, not a string", kind(v)),
        )),
    }
}

/// The id at `key`: a non-empty string (or a number, as some exports write them).
pub(crate) fn id(m: &Map<String, Value>, key: &str, path: &str) -> Got<String> {
    match m.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        None | Some(Value::Null) => Err(Bad::new(format!("{path}{key}"), "is missing")),
        Some(v) => Err(Bad::new(
            format!("{path}{key}"),
            format!("is {}, not an id", kind(v)),
        )),
    }
}

/// An optional id at `key` (absent, null or empty: `None`).
pub(crate) fn opt_id(m: &Map<String, Value>, key: &str, path: &str) -> Got<Option<String>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        _ => id(m, key, path).map(Some),
    }
}

/// The array at `key` (absent or null: empty).
pub(crate) fn array<'a>(m: &'a Map<String, Value>, key: &str, path: &str) -> Got<&'a [Value]> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(v) => Err(Bad::new(
            format!("{path}{key}"),
            format!("is {}, not an array", kind(v)),
        )),
    }
}

/// A boolean at `key`, leniently (absent, null or another type: `false`).
pub(crate) fn flag(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// A time at `key`: epoch seconds (a number, fractions kept to the microsecond; a number
/// above 10^11 is taken as milliseconds), or a string: RFC 3339 / ISO 8601, with or
/// without a zone (UTC when none), or a number in a string. `None` when absent or null.
pub(crate) fn time(m: &Map<String, Value>, key: &str, path: &str) -> Got<Option<DateTime<Utc>>> {
    let bad = |why: &str| Bad::new(format!("{path}{key}"), why.to_owned());
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .and_then(from_epoch)
            .map(Some)
            .ok_or_else(|| bad("is not a time")),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => parse_time(s)
            .map(Some)
            .ok_or_else(|| bad(&format!("{s:?} is not a time"))),
        Some(v) => Err(bad(&format!("is {}, not a time", kind(v)))),
    }
}

fn from_epoch(secs: f64) -> Option<DateTime<Utc>> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    let secs = if secs > 1e11 { secs / 1000.0 } else { secs };
    let micros = (secs * 1e6).round();
    if micros > 1e17 {
        return None;
    }
    Utc.timestamp_micros(micros as i64).single()
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc).trunc_subsecs(6));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(Utc.from_utc_datetime(&t).trunc_subsecs(6));
        }
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc).trunc_subsecs(6));
        }
    }
    s.parse::<f64>().ok().and_then(from_epoch)
}

/// A copy of `m` without `drop` keys and null values: the fields an importer keeps in
/// metadata as they were.
pub(crate) fn rest(m: &Map<String, Value>, drop: &[&str]) -> Map<String, Value> {
    m.iter()
        .filter(|(k, v)| !drop.contains(&k.as_str()) && !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_in_every_form() {
        let m = json!({
            "f": 1700000000.123456, "ms": 1700000000123u64, "iso": "2023-11-14T22:13:20.123456Z",
            "naive": "2023-11-14 22:13:20.5", "s": "1700000000", "bad": "soon", "neg": -1,
            "obj": {}, "null": null
        });
        let m = m.as_object().unwrap();
        let t = |k| time(m, k, "");
        assert_eq!(
            t("f").unwrap().unwrap().timestamp_micros(),
            1_700_000_000_123_456
        );
        assert_eq!(
            t("ms").unwrap().unwrap().timestamp_millis(),
            1_700_000_000_123
        );
        assert_eq!(
            t("iso").unwrap().unwrap().timestamp_micros(),
            1_700_000_000_123_456
        );
        assert_eq!(
            t("naive").unwrap().unwrap().timestamp_millis(),
            1_700_000_000_500
        );
        assert_eq!(t("s").unwrap().unwrap().timestamp(), 1_700_000_000);
        assert_eq!(t("null").unwrap(), None);
        assert_eq!(t("missing").unwrap(), None);
        for bad in ["bad", "neg", "obj"] {
            assert_eq!(t(bad).unwrap_err().field, bad);
        }
    }
}
