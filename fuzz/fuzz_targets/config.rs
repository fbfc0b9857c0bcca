//! Whole configuration files: checking never panics, and a file without errors
//! compiles to a gateway.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let checked = corsgate_config::check(text);
    assert_eq!(checked.has_errors(), checked.gateway.is_none());
});
