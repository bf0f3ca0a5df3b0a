//! The Avro codec: whatever validation accepts encodes, decodes and hashes
//! identically (see `common::assert_round_trip`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for record in common::validate_all(&doc) {
        common::assert_round_trip(record);
    }
});
