//! Dead-letter records: the original bytes plus why and where they failed.

use chrono::{DateTime, Utc};

use super::codec::EncodeError;
use super::headers;
use super::records::DeadLetterRec;
use super::schemas::DEAD_LETTER;

/// Everything known about a record that failed for good.
#[derive(Clone, Debug)]
pub struct DeadLetter<'a> {
    pub source_topic: &'a str,
    pub source_partition: i32,
    pub source_offset: i64,
    pub consumer_group: &'a str,
    pub reason_code: &'a str,
    pub reason: String,
    pub failed_at: DateTime<Utc>,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

/// The most of a source record a dead letter keeps. Producers refuse
/// records over `message.max.bytes` (1 MB by default); a dead letter that
/// could not be published would block the records behind it forever, so a
/// larger payload is cut (and [`headers::DLQ_PAYLOAD_BYTES`] says so).
pub const MAX_PARKED_PAYLOAD: usize = 512 * 1024;
/// The most of a reason a dead letter keeps.
pub const MAX_REASON: usize = 16 * 1024;

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl DeadLetter<'_> {
    /// The Avro value (single-object encoded) of the dead-letter record.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let rec = DeadLetterRec {
            source_topic: self.source_topic.to_owned(),
            source_partition: self.source_partition,
            source_offset: self.source_offset,
            consumer_group: self.consumer_group.to_owned(),
            reason_code: self.reason_code.to_owned(),
            reason: cut(&self.reason, MAX_REASON).to_owned(),
            failed_at_us: self.failed_at.timestamp_micros(),
            key: self.key.map(<[u8]>::to_vec),
            payload: self.payload[..self.payload.len().min(MAX_PARKED_PAYLOAD)].to_vec(),
        };
        super::codec::encode_avro(&rec, &DEAD_LETTER.schema, &DEAD_LETTER.fingerprint)
    }

    /// Headers that let tools triage without decoding Avro. The reason is
    /// cut to 1 KiB to keep headers small; the value has it in full.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            (headers::DLQ_REASON_CODE, self.reason_code.to_owned()),
            (headers::DLQ_REASON, cut(&self.reason, 1024).to_owned()),
            (headers::DLQ_SOURCE_TOPIC, self.source_topic.to_owned()),
            (
                headers::DLQ_SOURCE_PARTITION,
                self.source_partition.to_string(),
            ),
            (headers::DLQ_SOURCE_OFFSET, self.source_offset.to_string()),
        ];
        if self.payload.len() > MAX_PARKED_PAYLOAD {
            h.push((headers::DLQ_PAYLOAD_BYTES, self.payload.len().to_string()));
        }
        h
    }
}

/// Decodes a dead-letter value; used by tests and operator tooling.
pub fn decode_dead_letter(bytes: &[u8]) -> Result<DeadLetterRec, String> {
    if bytes.len() < 10 || bytes[..2] != [0xC3, 0x01] || bytes[2..10] != DEAD_LETTER.fingerprint {
        return Err("not a dead-letter v1 record".into());
    }
    let mut body = &bytes[10..];
    let v = apache_avro::from_avro_datum(&DEAD_LETTER.schema, &mut body, None)
        .map_err(|e| e.to_string())?;
    apache_avro::from_value(&v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_headers() {
        let dl = DeadLetter {
            source_topic: "achilles.intake.v1",
            source_partition: 3,
            source_offset: 42,
            consumer_group: "achilles-gate",
            reason_code: "missing_field",
            reason: "é".repeat(600),
            failed_at: Utc::now(),
            key: Some(b"k"),
            payload: b"{\"event\":{}}",
        };
        let rec = decode_dead_letter(&dl.encode().unwrap()).unwrap();
        assert_eq!(rec.source_offset, 42);
        assert_eq!(rec.payload, b"{\"event\":{}}");
        assert_eq!(rec.key.as_deref(), Some(&b"k"[..]));
        let h = dl.headers();
        assert_eq!(h[0], (headers::DLQ_REASON_CODE, "missing_field".to_owned()));
        assert!(
            h[1].1.len() <= 1024,
            "reason header is cut at a char boundary"
        );
        assert!(!h.iter().any(|(k, _)| *k == headers::DLQ_PAYLOAD_BYTES));
    }

    /// A record too large for the producer is still parked, cut, and says so.
    #[test]
    fn oversized_payloads_are_cut_to_fit() {
        let big = vec![b'x'; 3 * 1024 * 1024];
        let dl = DeadLetter {
            source_topic: "t",
            source_partition: 0,
            source_offset: 1,
            consumer_group: "g",
            reason_code: "too_large",
            reason: "r".repeat(100_000),
            failed_at: Utc::now(),
            key: None,
            payload: &big,
        };
        let bytes = dl.encode().unwrap();
        assert!(bytes.len() < 600 * 1024, "{}", bytes.len());
        let rec = decode_dead_letter(&bytes).unwrap();
        assert_eq!(rec.payload.len(), MAX_PARKED_PAYLOAD);
        assert_eq!(rec.reason.len(), MAX_REASON);
        assert!(dl
            .headers()
            .contains(&(headers::DLQ_PAYLOAD_BYTES, big.len().to_string())));
    }
}
