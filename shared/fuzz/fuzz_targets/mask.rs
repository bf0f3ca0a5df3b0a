//! The error-message masker, through `achilles_cluster`'s public API only:
//! never panics, is a pure function, and its entry points agree.
#![no_main]

use libfuzzer_sys::fuzz_target;

use achilles_cluster::{mask, template_of, Clusterer, Config, Masker};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = std::str::from_utf8(data) else {
        return;
    };
    let masked = mask(msg);
    assert_eq!(mask(msg), masked, "mask is pure");
    let mut out = String::new();
    Masker::new().mask_into(msg, &mut out);
    assert_eq!(out, masked, "Masker::mask_into == mask");
    assert_eq!(template_of(msg).text(), masked, "template_of == mask");
    let mut c = Clusterer::new(Config::default());
    let id = c.observe(msg);
    assert!(c.template(id).is_some());
    c.rebuild();
    let again = c.observe(msg);
    assert!(c.template(again).is_some());
});
