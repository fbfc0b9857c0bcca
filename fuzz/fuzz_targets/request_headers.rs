//! Hostile preflight heads: never panic; an allowed preflight echoes exactly the
//! request's origin and method, and only header names the policy allows.
#![no_main]

use corsgate_policy::{CorsConfig, Policy};
use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (Some(origin), Some(method), Some(list)) = (parts.next(), parts.next(), parts.next()) else { return };
    let config = CorsConfig::new()
        .allow_origins(["https://app.example.com", "http://localhost:*"])
        .allow_methods(["PUT", "PATCH"])
        .allow_headers(["content-type", "x-api-key"]);
    let policy = Policy::compile(&config).unwrap();
    let mut headers = HeaderMap::new();
    for (name, value) in [("origin", origin), ("access-control-request-method", method), ("access-control-request-headers", list)] {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.insert(name, value);
        }
    }
    let decision = policy.decide(&Method::OPTIONS, &headers);
    let out = decision.headers();
    if decision.is_allowed() {
        assert_eq!(out.get("access-control-allow-origin"), headers.get("origin"));
        assert_eq!(out.get("access-control-allow-methods"), headers.get("access-control-request-method"));
        if let Some(echo) = out.get("access-control-allow-headers") {
            for name in echo.as_bytes().split(|b| *b == b',') {
                let name = name.trim_ascii().to_ascii_lowercase();
                assert!(name.is_empty() || name == b"content-type" || name == b"x-api-key");
            }
        }
    }
});
