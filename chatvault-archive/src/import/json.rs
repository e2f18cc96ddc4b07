//! Streaming a top-level JSON array one element at a time, so that memory holds one
//! conversation, never the file.

use std::fmt;
use std::io::{BufReader, Read};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Why a stream stopped early because its consumer asked it to.
const STOPPED: &str = "stopped by the consumer";

/// Reads `reader`'s JSON: each element of a top-level array, or a top-level object as the
/// one element, is handed to `sink` as it is parsed (`sink` returns `false` to stop).
/// With `items_key`, a top-level object is a wrapper whose array under that key holds the
/// elements (DynamoDB's `{"Items": [..]}`), streamed the same way; its other keys are
/// skipped. Returns how many elements were handed over; a syntax error (with its line and
/// column) ends the stream there.
pub(crate) fn for_each_item(
    reader: impl Read,
    items_key: Option<&str>,
    sink: &mut dyn FnMut(Value) -> bool,
) -> Result<u64, serde_json::Error> {
    let mut count = 0;
    let mut de =
        serde_json::Deserializer::from_reader(BufReader::with_capacity(256 * 1024, reader));
    match de.deserialize_any(Items {
        sink,
        count: &mut count,
        items_key,
    }) {
        Err(e) if e.to_string().starts_with(STOPPED) => return Ok(count),
        other => other?,
    }
    de.end()?;
    Ok(count)
}

struct Items<'a> {
    sink: &'a mut dyn FnMut(Value) -> bool,
    count: &'a mut u64,
    items_key: Option<&'a str>,
}

impl<'de> de::DeserializeSeed<'de> for Items<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Items<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of conversations, or one conversation object")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<Value>()? {
            *self.count += 1;
            if !(self.sink)(item) {
                return Err(de::Error::custom(STOPPED));
            }
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if let Some(wanted) = self.items_key {
            while let Some(key) = map.next_key::<String>()? {
                if key == wanted {
                    map.next_value_seed(Items {
                        sink: &mut *self.sink,
                        count: &mut *self.count,
                        items_key: None,
                    })?;
                } else {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
            return Ok(());
        }
        let item = Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        *self.count += 1;
        if !(self.sink)(item) {
            return Err(de::Error::custom(STOPPED));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(json: &str) -> Result<Vec<Value>, serde_json::Error> {
        let mut out = Vec::new();
        for_each_item(json.as_bytes(), None, &mut |v| {
            out.push(v);
            true
        })?;
        Ok(out)
    }

    #[test]
    fn arrays_objects_and_errors() {
        assert_eq!(items(r#"[{"a":1}, 2, []]"#).unwrap().len(), 3);
        assert_eq!(items(r#" {"a":1} "#).unwrap().len(), 1);
        assert!(items(r#"[{"a":1}, "#).is_err());
        assert!(items(r#"[1] x"#).is_err());
        assert!(items(r#""text""#).is_err());
        let mut seen = 0;
        let n = for_each_item(&b"[1,2,3]"[..], None, &mut |_| {
            seen += 1;
            seen < 2
        })
        .unwrap();
        assert_eq!((seen, n), (2, 2));
    }

    #[test]
    fn items_under_a_key() {
        let mut out = Vec::new();
        let json = r#"{"Count": 2, "Items": [{"a": 1}, {"b": 2}], "ScannedCount": 2}"#;
        let n = for_each_item(json.as_bytes(), Some("Items"), &mut |v| {
            out.push(v);
            true
        })
        .unwrap();
        assert_eq!((n, out.len()), (2, 2));
        assert!(for_each_item(&b"[1]"[..], Some("Items"), &mut |_| true).is_ok());
        let mut none = 0;
        for_each_item(&br#"{"Other": [1]}"#[..], Some("Items"), &mut |_| {
            none += 1;
            true
        })
        .unwrap();
        assert_eq!(none, 0);
    }
}
