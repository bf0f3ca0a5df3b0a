//! The Avro schemas, embedded from `schemas/` at build time and parsed once.
//!
//! Older versions live in `schemas/compat/`; they are registered as known
//! *writer* schemas so records produced before an (compatible) upgrade still
//! decode, resolved into the current reader schema.

use std::collections::HashMap;
use std::sync::LazyLock;

use apache_avro::rabin::Rabin;
use apache_avro::Schema;

pub(crate) const ENVELOPE_V1: &str = include_str!("../../../../schemas/envelope.v1.avsc");
pub(crate) const DEAD_LETTER_V1: &str = include_str!("../../../../schemas/dead-letter.v1.avsc");
pub(crate) const SESSION_ENDED_V1: &str = include_str!("../../../../schemas/session-ended.v1.avsc");
const ENVELOPE_HISTORY: &[&str] = &[include_str!(
    "../../../../schemas/compat/envelope.v1.0.avsc"
)];

/// A schema with its single-object fingerprint.
pub(crate) struct Known {
    pub schema: Schema,
    pub fingerprint: [u8; 8],
}

fn known(text: &str) -> Known {
    // The schema texts are compiled into the binary and parsed by a unit
    // test, so a parse failure here is a build defect, not a runtime state.
    let schema = Schema::parse_str(text).expect("embedded Avro schema must parse");
    let fp = schema.fingerprint::<Rabin>();
    let mut fingerprint = [0u8; 8];
    fingerprint.copy_from_slice(&fp.bytes[..8]);
    Known {
        schema,
        fingerprint,
    }
}

pub(crate) static ENVELOPE: LazyLock<Known> = LazyLock::new(|| known(ENVELOPE_V1));
pub(crate) static DEAD_LETTER: LazyLock<Known> = LazyLock::new(|| known(DEAD_LETTER_V1));
pub(crate) static SESSION_ENDED: LazyLock<Known> = LazyLock::new(|| known(SESSION_ENDED_V1));

/// Writer schemas we can read envelopes from, by fingerprint.
pub(crate) static ENVELOPE_WRITERS: LazyLock<HashMap<[u8; 8], Schema>> = LazyLock::new(|| {
    let mut m = HashMap::new();
    for text in ENVELOPE_HISTORY.iter().chain([&ENVELOPE_V1]) {
        let k = known(text);
        m.insert(k.fingerprint, k.schema);
    }
    m
});
