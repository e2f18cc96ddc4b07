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
/// Returns how many elements were handed over; a syntax error (with its line and
/// column) ends the stream there.
pub(crate) fn for_each_item(
    reader: impl Read,
    sink: &mut dyn FnMut(Value) -> bool,
) -> Result<u64, serde_json::Error> {
    let mut count = 0;
    let mut de =
        serde_json::Deserializer::from_reader(BufReader::with_capacity(256 * 1024, reader));
    match de.deserialize_any(Items {
        sink,
        count: &mut count,
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

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
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
        for_each_item(json.as_bytes(), &mut |v| {
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
        let n = for_each_item(&b"[1,2,3]"[..], &mut |_| {
            seen += 1;
            seen < 2
        })
        .unwrap();
        assert_eq!((seen, n), (2, 2));
    }
}
