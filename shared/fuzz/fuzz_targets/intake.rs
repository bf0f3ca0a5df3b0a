//! Intake decoding: arbitrary bytes as an intake record (JSON or Avro) and
//! as a canonical events-topic record. Never panics; anything either path
//! accepts round-trips through the codec.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

use achilles_core::wire::decode_envelope;
use achilles_core::wire::intake::decode_intake;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = decode_intake(data, &common::tenant(), common::now(), &common::limits()) {
        common::assert_round_trip(record);
    }
    if let Ok(env) = decode_envelope(data, &common::limits()) {
        // A record from the topic is valid as of its own ingest time.
        let bytes = achilles_core::wire::encode_envelope(&env).expect("re-encodes");
        let back = decode_envelope(&bytes, &common::limits()).expect("decodes again");
        assert_eq!(back, env);
    }
});
