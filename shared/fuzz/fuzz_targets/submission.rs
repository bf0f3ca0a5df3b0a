//! Submission validation: any JSON, read as an event, a session start and a
//! session end. Never panics; what it accepts is deterministic (validating
//! twice gives equal values, so equal hashes) and within the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

use achilles_core::wire::Record;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let first = common::validate_all(&doc);
    let second = common::validate_all(&doc);
    // A start without an id gets a fresh one by design (an
    // Idempotency-Key makes it deterministic); everything else must match.
    let same_ids = |mut a: Vec<Record>, b: &[Record]| {
        for (x, y) in a.iter_mut().zip(b) {
            if let (Record::SessionStart(x), Record::SessionStart(y)) = (x, y) {
                x.session_id = y.session_id;
            }
        }
        a
    };
    assert_eq!(
        same_ids(first.clone(), &second),
        second,
        "validation is deterministic"
    );
    let l = common::limits();
    for r in first {
        if let Record::Event(e) = r {
            if let Some(p) = e.payload.file_path() {
                assert!(p.len() <= l.max_path_bytes);
            }
            let hash = achilles_core::hash::event_hash(
                &e.tenant,
                &e.session_id,
                e.occurred_at,
                e.actor,
                e.parent_id.as_ref(),
                &e.payload,
                &e.attributes,
            );
            assert_eq!(hash, e.hash, "the stored hash is the content's");
        }
    }
});
