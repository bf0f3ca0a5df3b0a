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
        // FUZZ_DUMP_AVRO=DIR writes each valid input's Avro encoding to DIR:
        // how the intake target's Avro seeds are made (docs/testing.md).
        if let Some(dir) = std::env::var_os("FUZZ_DUMP_AVRO") {
            let env = achilles_core::wire::Envelope {
                ingested_at: common::now(),
                record: record.clone(),
            };
            if let Ok(bytes) = achilles_core::wire::encode_envelope(&env) {
                let name = format!("avro-{:016x}", fxhash(&bytes));
                let _ = std::fs::write(std::path::Path::new(&dir).join(name), bytes);
            }
        }
        common::assert_round_trip(record);
    }
});

fn fxhash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}
