//! Two requests that differ only in `Origin` get the same answer (status made
//! here, CORS headers), or both answers carry `Vary: Origin`: otherwise a shared
//! cache serves one origin's copy to another (the security review's F2).
//!
//! Input: a policy selector byte, a request selector byte, then two `Origin`
//! values separated by `\n` (an empty value means no `Origin` header).
#![no_main]

use corsgate_policy::{CorsConfig, Policy};
use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;

const POLICIES: &[&str] = &[
    "allow_origins = \"*\"\nexpose_headers = [\"x-total-count\"]",
    "allow_origins = \"*\"\ndebug = true\non_disallowed = \"reject\"",
    "allow_origins = [\"https://app.example.com\", \"https://*.example.org\", \"http://localhost:*\"]\nallow_credentials = true\nallow_methods = [\"PUT\"]",
    "allow_origins = [\"https://app.example.com\"]\ndebug = true\non_disallowed = \"reject\"",
    "",
    "on_disallowed = \"reject\"",
    "debug = true",
];

type Answer = (Option<u16>, Vec<(String, Vec<u8>)>, bool);

fn answer(policy: &Policy, method: &Method, preflight: bool, origin: &[u8]) -> Option<Answer> {
    let mut headers = HeaderMap::new();
    if preflight {
        headers.insert("access-control-request-method", HeaderValue::from_static("PUT"));
    }
    if !origin.is_empty() {
        headers.insert("origin", HeaderValue::from_bytes(origin).ok()?);
    }
    let decision = policy.decide(method, &headers);
    let out = decision.headers();
    let varies = out.get_all("vary").iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|m| m.trim_ascii().eq_ignore_ascii_case(b"origin"))
    });
    let mut cors: Vec<(String, Vec<u8>)> = out
        .iter()
        .filter(|(n, _)| n.as_str() != "vary")
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    cors.sort();
    Some((decision.response_status().map(|s| s.as_u16()), cors, varies))
}

fuzz_target!(|data: &[u8]| {
    let [which, request, rest @ ..] = data else { return };
    let body = POLICIES[usize::from(*which) % POLICIES.len()];
    let policy = Policy::compile(&toml::from_str::<CorsConfig>(body).unwrap()).unwrap();
    let (method, preflight) = match request % 4 {
        0 => (Method::GET, false),
        1 => (Method::POST, false),
        2 => (Method::OPTIONS, false),
        _ => (Method::OPTIONS, true),
    };
    let mut origins = rest.splitn(2, |b| *b == b'\n');
    let (Some(a), Some(b)) = (origins.next(), origins.next()) else { return };
    let (Some(x), Some(y)) = (answer(&policy, &method, preflight, a), answer(&policy, &method, preflight, b)) else {
        return;
    };
    assert!(
        (x.0 == y.0 && x.1 == y.1) || (x.2 && y.2),
        "policy {body:?}, {method} preflight={preflight}: {a:?} -> {x:?}, {b:?} -> {y:?}"
    );
});
