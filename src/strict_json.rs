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

/// How a number would be changed by keeping it as serde_json does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// An integer past 64 bits: serde_json keeps it as a double, so
    /// `123456789012345678901234567890` would be stored as `1.2345678901234568e29`.
    Rounded,
    /// A number that is not zero but below the smallest double (`1e-400`): stored as 0.
    Zeroed,
}

/// The first number in `body` that keeping it would change (see [`Changed`]), as (the
/// top-level key it is under, its literal, how): a clinical value changed without a word.
/// Reading the text finds it (the parsed value cannot tell `1e-400` from `0`). Decimals
/// that a double holds only to its ~16 significant digits are not reported: every
/// decimal fraction is rounded so (0.1 too). `body` is well-formed JSON.
pub fn changed_number(body: &[u8]) -> Option<(String, String, Changed)> {
    let changed = |literal: &str| {
        let is_integer = !literal.contains(['.', 'e', 'E']);
        if is_integer {
            let fits = literal.parse::<i64>().is_ok() || literal.parse::<u64>().is_ok();
            return (!fits).then_some(Changed::Rounded);
        }
        let mantissa = literal.split(['e', 'E']).next().unwrap_or(literal);
        let not_zero = mantissa.bytes().any(|b| matches!(b, b'1'..=b'9'));
        let zeroed = literal.parse::<f64>().is_ok_and(|v| v == 0.0);
        (not_zero && zeroed).then_some(Changed::Zeroed)
    };
    first_number(body, changed)
}

/// The first number in `body` beyond what a double holds (`1e309`, a 400-digit integer),
/// as (the top-level key it is under, its literal): valid JSON (RFC 8259 sets no range)
/// that serde_json refuses as "number out of range", so the field can be named in a 422
/// rather than the body called malformed.
pub fn unrepresentable_number(body: &[u8]) -> Option<(String, String)> {
    first_number(body, |literal| {
        literal
            .parse::<f64>()
            .is_ok_and(f64::is_infinite)
            .then_some(())
    })
    .map(|(field, literal, ())| (field, literal))
}

/// The first number literal in `body` that `wanted` picks (`Some`), with its top-level
/// key and what `wanted` said of it.
fn first_number<T>(body: &[u8], wanted: impl Fn(&str) -> Option<T>) -> Option<(String, String, T)> {
    let (mut in_string, mut escaped, mut depth) = (false, false, 0usize);
    let (mut string_start, mut last_string, mut key) = (0, String::new(), String::new());
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => {
                    in_string = false;
                    last_string = String::from_utf8_lossy(body.get(string_start..i)?).into_owned();
                }
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                string_start = i + 1;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b':' if depth == 1 => key = std::mem::take(&mut last_string),
            b'-' | b'0'..=b'9' => {
                let end = body
                    .get(i..)?
                    .iter()
                    .position(|c| !matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .map_or(body.len(), |n| i + n);
                let literal = std::str::from_utf8(body.get(i..end)?).ok()?;
                if let Some(found) = wanted(literal) {
                    let field = if depth == 0 { "body".to_owned() } else { key };
                    return Some((field, literal.to_owned(), found));
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
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
    /// Integers past 64 bits are found (serde_json would keep them as doubles), under
    /// their top-level key; anything that fits, and every non-integer, is left alone.
    #[test]
    fn an_integer_too_large_for_64_bits_is_found_with_its_key() {
        let find = |text: &str| super::changed_number(text.as_bytes());
        assert_eq!(
            find(
                r#"{"title":"HR 123456789012345678901234","data":{"x":[1,{"y":123456789012345678901234567890}]}}"#
            ),
            Some((
                "data".to_owned(),
                "123456789012345678901234567890".to_owned(),
                super::Changed::Rounded
            ))
        );
        assert_eq!(
            find(r#"{"data":{"a":-9223372036854775809}}"#).map(|(k, _, _)| k),
            Some("data".to_owned())
        );
        for fits in [
            r#"{"data":{"a":9223372036854775807,"b":18446744073709551615,"c":-9223372036854775808}}"#,
            r#"{"data":{"a":1.2345678901234568e29,"b":0.1234567890123456789,"c":1e400}}"#,
            r#"{"k\"ey":"12345678901234567890123","data":{}}"#,
        ] {
            assert_eq!(find(fits), None, "{fits}");
        }
    }

    /// A number that is not zero but would be stored as 0 (below the smallest double) is
    /// found; zeros however written, and tiny numbers a double still holds, are not.
    #[test]
    fn a_number_a_double_would_make_zero_is_found_with_its_key() {
        let find = |text: &str| super::changed_number(text.as_bytes());
        for (text, literal) in [
            (r#"{"data":{"x":0.1e-400}}"#, "0.1e-400"),
            (r#"{"data":{"x":[0,-2E-999]}}"#, "-2E-999"),
            (r#"{"data":{"x":1e-324}}"#, "1e-324"),
        ] {
            assert_eq!(
                find(text),
                Some((
                    "data".to_owned(),
                    literal.to_owned(),
                    super::Changed::Zeroed
                )),
                "{text}"
            );
        }
        for kept in [
            r#"{"data":{"a":0,"b":-0,"c":0.0,"d":0e-999,"e":0.000E5,"f":-0.0e-400}}"#,
            r#"{"data":{"a":5e-324,"b":2.2250738585072014e-308,"c":1e-300}}"#,
            r#"{"data":{"pi":3.141592653589793238462643383279}}"#,
        ] {
            assert_eq!(find(kept), None, "{kept}");
        }
    }

    /// Numbers past a double's range are found under their key; large finite ones and
    /// numbers inside strings are not.
    #[test]
    fn a_number_beyond_a_double_is_found_with_its_key() {
        let find = |text: &str| super::unrepresentable_number(text.as_bytes());
        let digits = "9".repeat(400);
        assert_eq!(
            find(&format!(
                r#"{{"title":"1e999","data":{{"n":[1,{digits}]}}}}"#
            )),
            Some(("data".to_owned(), digits.clone()))
        );
        assert_eq!(
            find(r#"{"status":-1.5e999}"#),
            Some(("status".to_owned(), "-1.5e999".to_owned()))
        );
        assert_eq!(
            find(r#"{"data":{"a":1.7e308,"b":123456789012345678901234}}"#),
            None
        );
    }

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
