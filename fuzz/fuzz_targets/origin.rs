//! A request `Origin` against a policy with every kind of pattern: never panics,
//! and the host index agrees with matching each pattern alone.
#![no_main]

use corsgate_policy::{CorsConfig, OriginPattern, Policy};
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else { return };
    let patterns = ["https://app.example.com", "https://*.example.org", "http://localhost:*", "https://*.corp.example:*"];
    let policy = Policy::compile(&CorsConfig::new().allow_origins(patterns)).unwrap();
    let allowed = policy.check_origin(&value).is_ok();
    let Ok(text) = std::str::from_utf8(data) else {
        assert!(!allowed, "non-UTF-8 origin allowed");
        return;
    };
    let reference = patterns.iter().any(|p| p.parse::<OriginPattern>().unwrap().matches(text));
    assert_eq!(allowed, reference, "index and reference disagree on {text:?}");
});
