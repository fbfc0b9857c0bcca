//! `Policy::decide` performs no heap allocation: for every row of the shared case
//! table (except those that send `Access-Control-Request-Headers` on several lines,
//! which are joined into a new value), and for hostile request-header lists.
//!
//! The counting global allocator of `allocation-counter` counts per thread, so the
//! test harness's other threads never pollute a count.

use std::hint::black_box;

use corsgate_cases::CASES;
use corsgate_policy::{CorsConfig, Policy, RejectionReason};
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

fn refused_as_too_many(decision: &corsgate_policy::Decision) {
    assert_eq!(
        decision.rejection().map(|r| r.reason()),
        Some(RejectionReason::TooManyRequestHeaders),
        "{decision:?}"
    );
}

#[test]
fn hostile_request_headers_one_mebibyte_of_commas_allocate_nothing() {
    let policy = api_policy();
    let headers = preflight(&vec![b','; 1 << 20]);
    let decision = policy.decide(&Method::OPTIONS, &headers);
    refused_as_too_many(&decision);
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
    refused_as_too_many(&decision);
    assert_eq!(allocations(&policy, &Method::OPTIONS, &headers), 0);
}

#[test]
fn the_most_names_allowed_allocate_nothing() {
    let policy = api_policy();
    let list = ["content-type", "x-api-key"]
        .iter()
        .cycle()
        .take(corsgate_policy::MAX_REQUEST_HEADER_NAMES)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    let headers = preflight(list.as_bytes());
    assert!(policy.decide(&Method::OPTIONS, &headers).is_allowed());
    assert_eq!(allocations(&policy, &Method::OPTIONS, &headers), 0);
}

#[test]
fn hostile_request_headers_refused_deep_in_the_list_allocate_nothing() {
    let policy = api_policy();
    let mut list = "x-api-key,".repeat(10_000);
    list.push_str("x-not-allowed");
    let headers = preflight(list.as_bytes());
    let decision = policy.decide(&Method::OPTIONS, &headers);
    refused_as_too_many(&decision);
    assert_eq!(allocations(&policy, &Method::OPTIONS, &headers), 0);
}

// What a layer does per request beyond `decide`: write the decision onto the
// app's response, or make the answer itself. The floor is the response's own
// header map: a `HeaderMap` holding any header owns two buffers (its index
// table and its entries), so a response made here costs those two, as any
// response with a header does, and an app's response that has no room left for
// the CORS headers grows once, as it would for any header added to it. The
// tests below hold the engine to that floor and nothing more.

/// The apps of the measurements: responses with this many headers of their own.
const APP_HEADER_COUNTS: [usize; 4] = [0, 3, 8, 12];

fn app_response(count: usize) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for i in 0..count {
        let name = http::HeaderName::from_bytes(format!("x-app-{i}").as_bytes()).unwrap();
        headers.insert(name, HeaderValue::from_static("1"));
    }
    headers
}

/// Allocations of `f` on a fresh app response of `count` headers, made outside
/// the count (made, not cloned: a clone's entries have no spare room).
fn count_on(count: usize, f: impl Fn(&mut HeaderMap)) -> u64 {
    let mut response = app_response(count);
    let info = allocation_counter::measure(|| f(black_box(&mut response)));
    drop(response);
    info.count_total
}

/// A request whose header values are not slices of a shared buffer: each is
/// built by `HeaderValue::from_str`, which copies into a buffer of its own (as a
/// hand-made request or a non-hyper server's would be). Cloning such a value the
/// first time turns its buffer into a shared one, which allocates once.
fn unshared(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(*name, HeaderValue::from_str(value).unwrap());
    }
    headers
}

/// The same request with every value a slice of one shared buffer, as hyper's
/// parsed values are slices of its read buffer.
fn shared(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let bytes = bytes::Bytes::from(value.to_string());
        drop(bytes.clone());
        headers.append(*name, HeaderValue::from_maybe_shared(bytes).unwrap());
    }
    headers
}

const ACTUAL: &[(&str, &str)] = &[
    ("host", "api.example.com"),
    ("accept", "*/*"),
    ("origin", "https://app.example.com"),
];
const PREFLIGHT: &[(&str, &str)] = &[
    ("host", "api.example.com"),
    ("accept", "*/*"),
    ("origin", "https://app.example.com"),
    ("access-control-request-method", "PUT"),
    ("access-control-request-headers", "content-type,x-api-key"),
];

fn expose_policy() -> Policy {
    let config = CorsConfig::new()
        .allow_origins(["https://app.example.com", "https://*.example.org"])
        .allow_methods(["PUT", "DELETE"])
        .allow_headers(["content-type", "x-api-key"])
        .expose_headers("x-request-id")
        .allow_credentials(true)
        .max_age(600);
    Policy::compile(&config).unwrap()
}

#[test]
fn applying_to_an_app_response_with_room_allocates_nothing_and_otherwise_only_grows_the_map() {
    let policy = expose_policy();
    let request = shared(ACTUAL);
    let decision = policy.decide(&Method::GET, &request);
    assert!(decision.is_allowed());
    // The headers the decision adds, and the allocations the map itself makes
    // to take that many more entries.
    let added = decision.headers().len();
    assert_eq!(added, 4, "{:?}", decision.headers());
    let mut report = Vec::new();
    for count in APP_HEADER_COUNTS {
        let response = app_response(count);
        let applied = count_on(count, |h| decision.apply(h));
        let growth = count_on(count, |h| h.reserve(added));
        report.push(format!(
            "app with {count} headers: apply {applied}, map growth {growth}"
        ));
        assert!(
            applied <= growth,
            "apply allocated beyond the map's growth: {}",
            report.join("; ")
        );
        if response.capacity() >= count + added {
            assert_eq!(applied, 0, "{}", report.join("; "));
        }
    }
    println!("{}", report.join("\n"));
}

#[test]
fn a_local_answer_allocates_only_its_header_map() {
    let policy = expose_policy();
    // What any response with headers costs: the map's two buffers.
    let floor = allocation_counter::measure(|| {
        let mut map = HeaderMap::new();
        map.insert("vary", HeaderValue::from_static("Origin"));
        black_box(map);
    })
    .count_total;
    assert_eq!(floor, 2);
    let request = shared(PREFLIGHT);
    let decision = policy.decide(&Method::OPTIONS, &request);
    assert!(decision.is_allowed());
    drop(decision.local_response(()));
    let info = allocation_counter::measure(|| {
        let decision = policy.decide(black_box(&Method::OPTIONS), black_box(&request));
        black_box(decision.local_response(()));
    });
    assert_eq!(info.count_total, floor);
}

#[test]
fn request_values_in_buffers_of_their_own_cost_one_allocation_per_echoed_value() {
    // Echoing a value clones it; the first clone of a value that owns its
    // buffer makes that buffer shared. Hyper's values are slices of its read
    // buffer, already shared: for them, nothing.
    let policy = expose_policy();
    for (method, pairs, echoed) in [
        (Method::GET, ACTUAL, 1),
        // Origin, method and header list.
        (Method::OPTIONS, PREFLIGHT, 3),
    ] {
        let fresh = unshared(pairs);
        let info = allocation_counter::measure(|| {
            black_box(policy.decide(black_box(&method), black_box(&fresh)));
        });
        assert_eq!(info.count_total, echoed, "{method}");
        let again = allocation_counter::measure(|| {
            black_box(policy.decide(black_box(&method), black_box(&fresh)));
        });
        assert_eq!(again.count_total, 0, "{method}, values now shared");
        let hyper_like = shared(pairs);
        let info = allocation_counter::measure(|| {
            black_box(policy.decide(black_box(&method), black_box(&hyper_like)));
        });
        assert_eq!(info.count_total, 0, "{method}, shared values");
    }
}
