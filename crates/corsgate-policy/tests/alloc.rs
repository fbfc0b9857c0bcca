//! `Policy::decide` performs no heap allocation: for every row of the shared case
//! table (except those that send `Access-Control-Request-Headers` on several lines,
//! which are joined into a new value), and for hostile request-header lists.
//!
//! The counting global allocator of `allocation-counter` counts per thread, so the
//! test harness's other threads never pollute a count.

use std::hint::black_box;

use corsgate_cases::CASES;
use corsgate_policy::{CorsConfig, Policy};
use http::header::{ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN};
use http::{HeaderMap, HeaderValue, Method};

/// Allocations made by one `decide` call, after a warm-up call: the first clone of
/// a value built from a vector (as `HeaderValue::from_bytes` builds them) turns
/// its buffer into a shared one, once; later clones only count references.
fn allocations(policy: &Policy, method: &Method, headers: &HeaderMap) -> u64 {
    drop(policy.decide(method, headers));
    let info = allocation_counter::measure(|| {
        black_box(policy.decide(black_box(method), black_box(headers)));
    });
    info.count_total
}

#[test]
fn the_allocation_counter_counts() {
    // Without this, a broken counter would make every test below pass.
    let info = allocation_counter::measure(|| {
        black_box(Box::new(black_box(1_u64)));
    });
    assert_eq!(info.count_total, 1);
}

#[test]
fn several_request_header_lines_are_joined_and_that_is_counted() {
    // The one documented allocation of decide, seen by the same measurement that
    // sees none elsewhere: proof that the count covers decide's work.
    let case = corsgate_cases::case("preflight-header-list-over-several-lines");
    let (policy, method, headers) = (case.compile(), case.method(), case.request_headers());
    assert!(allocations(&policy, &method, &headers) > 0);
}

#[test]
fn decide_never_allocates_for_the_case_table() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in CASES {
        let acrh_lines = case
            .request
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("access-control-request-headers"))
            .count();
        if acrh_lines > 1 {
            continue;
        }
        let policy = case.compile();
        let method = case.method();
        let headers = case.request_headers();
        let count = allocations(&policy, &method, &headers);
        if count != 0 {
            failures.push(format!("{}: {count} allocation(s)", case.name));
        }
        checked += 1;
    }
    assert!(checked > 20, "only {checked} cases checked");
    assert!(
        failures.is_empty(),
        "decide allocated:\n{}",
        failures.join("\n")
    );
}

fn api_policy() -> Policy {
    let config = CorsConfig::new()
        .allow_origins(["https://app.example.com", "https://*.example.org"])
        .allow_methods(["PUT", "DELETE"])
        .allow_headers(["content-type", "x-api-key"])
        .allow_credentials(true)
        .max_age(600);
    Policy::compile(&config).unwrap()
}

fn preflight(request_headers: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(ORIGIN, HeaderValue::from_static("https://app.example.com"));
    headers.insert(
        ACCESS_CONTROL_REQUEST_METHOD,
        HeaderValue::from_static("PUT"),
    );
    headers.insert(
        ACCESS_CONTROL_REQUEST_HEADERS,
        HeaderValue::from_bytes(request_headers).unwrap(),
    );
    headers
}

#[test]
fn hostile_request_headers_one_mebibyte_of_commas_allocate_nothing() {
    let policy = api_policy();
    let headers = preflight(&vec![b','; 1 << 20]);
    let decision = policy.decide(&Method::OPTIONS, &headers);
    assert!(decision.is_allowed(), "{decision:?}");
    assert_eq!(allocations(&policy, &Method::OPTIONS, &headers), 0);
}

#[test]
fn hostile_request_headers_4096_allowed_names_allocate_nothing() {
    let policy = api_policy();
    let list = ["content-type", "X-Api-Key "]
        .iter()
        .cycle()
        .take(4096)
        .copied()
        .collect::<Vec<_>>()
        .join(",");
    let headers = preflight(list.as_bytes());
    let decision = policy.decide(&Method::OPTIONS, &headers);
    assert!(decision.is_allowed(), "{decision:?}");
    assert_eq!(allocations(&policy, &Method::OPTIONS, &headers), 0);
}

#[test]
fn hostile_request_headers_refused_deep_in_the_list_allocate_nothing() {
    let policy = api_policy();
    let mut list = "x-api-key,".repeat(10_000);
    list.push_str("x-not-allowed");
    let headers = preflight(list.as_bytes());
    let decision = policy.decide(&Method::OPTIONS, &headers);
    assert!(!decision.is_allowed(), "{decision:?}");
    assert_eq!(allocations(&policy, &Method::OPTIONS, &headers), 0);
}
