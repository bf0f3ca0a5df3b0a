//! Parsing the `/v1/events/batch` body without building a JSON tree of the
//! whole of it first.
//!
//! The body is scanned once: `session_id` is read, and `events` is split
//! into its items *as raw JSON text*, refusing the batch (413) the moment
//! the array has one item more than `api.max_batch_events`, before the rest
//! of the body is even looked at. Each item is parsed into a tree only when
//! it is validated, so a hostile 4 MiB array of tiny objects costs a scan,
//! not millions of allocated maps.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use achilles_core::error::codes;
use achilles_core::ValidationErrors;

use crate::error::ApiError;

/// The batch with its events still unparsed.
pub struct BatchBody<'a> {
    pub session_id: Option<String>,
    pub events: Vec<&'a RawValue>,
}

/// Why the scan stopped, when the reason is ours rather than JSON syntax.
#[derive(Clone, Copy)]
enum Problem {
    TooMany,
    Shape,
    UnknownField,
}

pub fn parse(body: &[u8], max: usize) -> Result<BatchBody<'_>, ApiError> {
    let problem = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = BodySeed {
        max,
        problem: &problem,
    }
    .deserialize(&mut de)
    .and_then(|b| de.end().map(|()| b));
    match (parsed, problem.get()) {
        (Ok(b), _) => Ok(b),
        (Err(_), Some(Problem::TooMany)) => Err(ApiError::PayloadTooLarge(format!(
            "the batch has more than {max} events; the limit is {max}"
        ))),
        (Err(e), Some(Problem::Shape | Problem::UnknownField)) => {
            Err(ApiError::bad_request("invalid_request", e.to_string()))
        }
        (Err(e), None) if e.is_data() => {
            Err(ApiError::bad_request("invalid_request", e.to_string()))
        }
        (Err(e), None) => Err(ApiError::bad_request(
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

/// One item, parsed when it is validated.
pub fn item(raw: &RawValue) -> Result<Value, ValidationErrors> {
    // The scan already checked the syntax; this only builds the tree.
    serde_json::from_str(raw.get())
        .map_err(|e| ValidationErrors::single("", codes::INVALID_JSON, e.to_string()))
}

struct BodySeed<'p> {
    max: usize,
    problem: &'p Cell<Option<Problem>>,
}

impl<'de> DeserializeSeed<'de> for BodySeed<'_> {
    type Value = BatchBody<'de>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BodySeed<'_> {
    type Value = BatchBody<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with an `events` array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let fail = |p: Problem, msg: String| {
            self.problem.set(Some(p));
            de::Error::custom(msg)
        };
        let (mut session_id, mut events) = (None, None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "session_id" => match map.next_value::<Value>()? {
                    Value::Null => session_id = None,
                    Value::String(s) => session_id = Some(s),
                    other => {
                        return Err(fail(
                            Problem::Shape,
                            format!("session_id must be a string, not {other}"),
                        ))
                    }
                },
                "events" => {
                    events = Some(map.next_value_seed(ItemsSeed {
                        max: self.max,
                        problem: self.problem,
                    })?)
                }
                other => {
                    return Err(fail(
                        Problem::UnknownField,
                        format!("unknown field `{other}`; expected session_id, events"),
                    ))
                }
            }
        }
        let events = events.ok_or_else(|| {
            fail(
                Problem::Shape,
                "the body must have an `events` array".into(),
            )
        })?;
        Ok(BatchBody { session_id, events })
    }
}

struct ItemsSeed<'p> {
    max: usize,
    problem: &'p Cell<Option<Problem>>,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = Vec<&'de RawValue>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max));
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            if out.len() == self.max {
                self.problem.set(Some(Problem::TooMany));
                return Err(de::Error::custom("too many events"));
            }
            out.push(raw);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<BatchBody<'_>, ApiError>) -> &'static str {
        match r {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn shapes_and_errors() {
        let b = parse(br#"{"session_id": "s", "events": [{"a": 1}, 2]}"#, 5).unwrap();
        assert_eq!(b.session_id.as_deref(), Some("s"));
        assert_eq!(b.events.len(), 2);
        assert_eq!(b.events[0].get(), r#"{"a": 1}"#);
        assert_eq!(code(parse(br#"{"events": []}"#, 5)), "ok");
        assert_eq!(code(parse(b"{nope", 5)), "invalid_json");
        assert_eq!(code(parse(br#"{"events": [1]} x"#, 5)), "invalid_json");
        assert_eq!(code(parse(b"[1]", 5)), "invalid_request");
        assert_eq!(
            code(parse(br#"{"session_id": 1, "events": []}"#, 5)),
            "invalid_request"
        );
        assert_eq!(code(parse(br#"{"evnts": []}"#, 5)), "invalid_request");
        assert_eq!(
            code(parse(br#"{"session_id": null}"#, 5)),
            "invalid_request"
        );
        assert_eq!(code(parse(br#"{"events": {}}"#, 5)), "invalid_request");
    }

    /// The count is checked while scanning: the 413 comes before the
    /// scanner reaches the (broken) rest of the body, which a parser that
    /// builds the whole tree first could never do.
    #[test]
    fn too_many_events_stop_the_scan_at_the_first_extra_item() {
        let mut body = String::from(r#"{"events": ["#);
        for _ in 0..6 {
            body.push_str("{},");
        }
        body.push_str("this is not JSON");
        assert_eq!(code(parse(body.as_bytes(), 5)), "payload_too_large");
        assert_eq!(code(parse(body.as_bytes(), 10)), "invalid_json");
    }
}
