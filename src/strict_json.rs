//! JSON request bodies with every object key at most once.
//!
//! serde_json keeps the last of two equal keys without a word, so
//! `{"status":"acknowledged","status":"resolved"}` would resolve an alert whose sender
//! may have meant either. RFC 8259 leaves such a document's meaning open; a clinical
//! write refuses it instead of guessing.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses `body` like `serde_json::from_slice::<Value>`, but a repeated key in any object
/// is an error naming it.
pub fn parse(body: &[u8]) -> serde_json::Result<Value> {
    serde_json::from_slice::<Strict>(body).map(|strict| strict.0)
}

/// A JSON value whose objects had no repeated key.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::parse;

    #[test]
    fn reads_what_serde_json_reads() {
        let text =
            r#"{"a":[1,-2,3.5,"x",null,true,{"b":{}}],"c":"\u00e9","d":18446744073709551615}"#;
        assert_eq!(
            parse(text.as_bytes()).ok(),
            serde_json::from_str(text).ok(),
            "same value"
        );
        assert_eq!(parse(b"[]").ok(), Some(json!([])));
    }

    #[test]
    fn refuses_a_repeated_key_at_any_depth_and_names_it() {
        for text in [
            r#"{"status":"acknowledged","status":"resolved"}"#,
            r#"{"data":{"hr":1,"hr":2}}"#,
            r#"[{"k":1,"k":1}]"#,
        ] {
            let err = parse(text.as_bytes()).err().map(|e| e.to_string());
            assert!(
                err.as_deref().is_some_and(|e| e.contains("duplicate key")),
                "{text}: {err:?}"
            );
        }
        assert!(
            parse(br#"{"a":{"k":1},"b":{"k":1}}"#).is_ok(),
            "same key, different objects"
        );
    }

    #[test]
    fn malformed_json_is_still_an_error() {
        assert!(parse(b"{not json").is_err());
        assert!(parse(b"{\"a\":1} trailing").is_err());
    }
}
