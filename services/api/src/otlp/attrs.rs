//! OTLP attribute values as JSON, and typed reads of them.
//!
//! Producers disagree on types: Claude Code sends token counts and costs
//! as strings (`"cost_usd": "0.0123"`), SDKs send numbers; booleans come as
//! `true` or `"true"`. The readers here accept both, so the mapping does
//! not depend on which exporter produced a record.

use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use serde_json::{Map, Value};

/// An attribute value as JSON: strings, booleans, numbers, arrays and
/// key-value lists map directly; bytes become lower-case hex; doubles that
/// JSON cannot hold (NaN, infinities) their text. NUL characters, which
/// Postgres cannot store, become U+FFFD.
pub fn to_json(v: &AnyValue) -> Value {
    match &v.value {
        None => Value::Null,
        Some(Any::StringValue(s)) => Value::String(clean(s)),
        Some(Any::BoolValue(b)) => Value::Bool(*b),
        Some(Any::IntValue(i)) => Value::from(*i),
        Some(Any::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(d.to_string())),
        Some(Any::ArrayValue(a)) => Value::Array(a.values.iter().map(to_json).collect()),
        Some(Any::KvlistValue(kv)) => Value::Object(to_map(&kv.values)),
        Some(Any::BytesValue(b)) => Value::String(hex::encode(b)),
        // An index into a profile's string table, which logs and spans
        // do not have.
        Some(Any::StringValueStrindex(_)) => Value::Null,
    }
}

/// Key-value pairs as a JSON object (a repeated key: the last one wins).
pub fn to_map(kvs: &[KeyValue]) -> Map<String, Value> {
    kvs.iter()
        .map(|kv| {
            (
                clean(&kv.key),
                kv.value.as_ref().map_or(Value::Null, to_json),
            )
        })
        .collect()
}

fn clean(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s.to_owned()
    }
}

/// The first of `keys` present as a non-empty string (numbers and
/// booleans as their text).
pub fn str_of(m: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match m.get(*k)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

/// The first of `keys` present as a number or a numeric string.
pub fn f64_of(m: &Map<String, Value>, keys: &[&str]) -> Option<f64> {
    keys.iter()
        .find_map(|k| match m.get(*k)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        })
        .filter(|x| x.is_finite())
}

/// A non-negative whole number (fractions are rounded: some exporters
/// send durations as doubles).
pub fn u64_of(m: &Map<String, Value>, keys: &[&str]) -> Option<u64> {
    keys.iter().find_map(|k| match m.get(*k)? {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|x| *x >= 0.0).map(|x| x.round() as u64)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<u64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .map(|x| x.round() as u64)
            })
        }
        _ => None,
    })
}

pub fn i64_of(m: &Map<String, Value>, keys: &[&str]) -> Option<i64> {
    keys.iter().find_map(|k| match m.get(*k)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    })
}

pub fn bool_of(m: &Map<String, Value>, keys: &[&str]) -> Option<bool> {
    keys.iter().find_map(|k| match m.get(*k)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    })
}

/// A JSON object held in an attribute: either an object already, or a
/// string containing one (Claude Code's `tool_parameters`, GenAI's
/// `gen_ai.tool.call.arguments`).
pub fn object_of(m: &Map<String, Value>, key: &str) -> Option<Map<String, Value>> {
    match m.get(key)? {
        Value::Object(o) => Some(o.clone()),
        Value::String(s) => match serde_json::from_str(s) {
            Ok(Value::Object(o)) => Some(o),
            _ => None,
        },
        _ => None,
    }
}

/// `s` cut to at most `max` bytes on a character boundary; `true` if cut.
pub fn fit(s: &str, max: usize) -> (String, bool) {
    if s.len() <= max {
        return (s.to_owned(), false);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (s[..end].to_owned(), true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use serde_json::json;

    fn kv(k: &str, v: Any) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    #[test]
    fn values_become_json() {
        let m = to_map(&[
            kv("s", Any::StringValue("a\0b".into())),
            kv("i", Any::IntValue(-3)),
            kv("d", Any::DoubleValue(0.5)),
            kv("nan", Any::DoubleValue(f64::NAN)),
            kv("b", Any::BoolValue(true)),
            kv("bytes", Any::BytesValue(vec![0xab, 0x01])),
            kv(
                "arr",
                Any::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Any::IntValue(1)),
                    }],
                }),
            ),
            kv(
                "kv",
                Any::KvlistValue(KeyValueList {
                    values: vec![kv("x", Any::StringValue("y".into()))],
                }),
            ),
        ]);
        assert_eq!(
            Value::Object(m),
            json!({"s": "a\u{FFFD}b", "i": -3, "d": 0.5, "nan": "NaN", "b": true,
                   "bytes": "ab01", "arr": [1], "kv": {"x": "y"}})
        );
    }

    #[test]
    fn readers_accept_strings_and_numbers() {
        let m = json!({"a": "12", "b": 7, "c": "0.25", "d": "true", "e": 2.6, "f": "-1",
                       "p": "{\"file_path\": \"x.rs\"}", "q": "not json"});
        let Value::Object(m) = m else { unreachable!() };
        assert_eq!(u64_of(&m, &["zz", "a"]), Some(12));
        assert_eq!(u64_of(&m, &["b"]), Some(7));
        assert_eq!(u64_of(&m, &["e"]), Some(3));
        assert_eq!(u64_of(&m, &["f"]), None);
        assert_eq!(i64_of(&m, &["f"]), Some(-1));
        assert_eq!(f64_of(&m, &["c"]), Some(0.25));
        assert_eq!(bool_of(&m, &["d"]), Some(true));
        assert_eq!(str_of(&m, &["b"]).as_deref(), Some("7"));
        assert_eq!(
            object_of(&m, "p").and_then(|o| o.get("file_path").cloned()),
            Some(json!("x.rs"))
        );
        assert!(object_of(&m, "q").is_none());
    }

    #[test]
    fn fit_cuts_on_char_boundaries() {
        assert_eq!(fit("héllo", 2), ("h".to_owned(), true));
        assert_eq!(fit("abc", 3), ("abc".to_owned(), false));
    }
}
