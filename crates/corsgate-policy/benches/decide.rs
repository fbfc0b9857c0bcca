//! `Policy::decide` under criterion: actual and preflight requests, allowed and
//! denied, against 1, 10 and 1000 exact origins and against wildcard patterns;
//! hostile `Access-Control-Request-Headers` values; and every row of the shared
//! case table.
//!
//! Run with `cargo bench -p corsgate-policy`. Wall time on shared machines is noisy:
//! `bench/engine.sh` counts instructions and allocations for the same scenarios.

use std::hint::black_box;

use corsgate_cases::CASES;
use corsgate_policy::{CorsConfig, Policy};
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

const ACRM: HeaderName = HeaderName::from_static("access-control-request-method");
const ACRH: HeaderName = HeaderName::from_static("access-control-request-headers");

/// A credentialed API policy over `origins`.
fn api_policy(origins: Vec<String>) -> Policy {
    let config = CorsConfig::new()
        .allow_origins(origins)
        .allow_methods(["PUT", "DELETE", "PATCH"])
        .allow_headers(["content-type", "x-api-key", "authorization"])
        .expose_headers(["x-request-id"])
        .allow_credentials(true)
        .max_age(600);
    Policy::compile(&config).expect("benchmark policy compiles")
}

/// `n` exact origins: `https://app0.example.com` … `https://app{n-1}.example.com`.
fn exact_origins(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("https://app{i}.example.com"))
        .collect()
}

fn request(origin: &str, preflight: bool) -> (Method, HeaderMap) {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::ORIGIN, HeaderValue::from_str(origin).unwrap());
    if preflight {
        headers.insert(ACRM, HeaderValue::from_static("PUT"));
        headers.insert(ACRH, HeaderValue::from_static("content-type,x-api-key"));
        (Method::OPTIONS, headers)
    } else {
        (Method::GET, headers)
    }
}

/// Runs `decide` once outside the measurement, so that the first clone of each
/// precomputed value (which may promote its buffer to a shared one) is not timed.
fn bench_decide(
    group: &mut BenchmarkGroup<'_, WallTime>,
    (function, parameter): (&str, &str),
    policy: &Policy,
    (method, headers): (&Method, &HeaderMap),
    allowed: bool,
) {
    let decision = policy.decide(method, headers);
    assert_eq!(
        decision.is_allowed(),
        allowed,
        "{function}/{parameter}: {decision:?}"
    );
    group.bench_function(BenchmarkId::new(function, parameter), |b| {
        b.iter(|| black_box(policy).decide(black_box(method), black_box(headers)));
    });
}

fn origins(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide/origins");
    for n in [1, 10, 1000] {
        let policy = api_policy(exact_origins(n));
        // The last origin listed: no advantage from being first.
        let allowed = format!("https://app{}.example.com", n - 1);
        let denied = "https://app.example.net";
        for (kind, preflight) in [("actual", false), ("preflight", true)] {
            for (verdict, origin, ok) in [
                ("allowed", allowed.as_str(), true),
                ("denied", denied, false),
            ] {
                let (method, headers) = request(origin, preflight);
                let function = format!("{kind}-{verdict}");
                let parameter = n.to_string();
                let id = (function.as_str(), parameter.as_str());
                bench_decide(&mut group, id, &policy, (&method, &headers), ok);
            }
        }
    }
    group.finish();
}

fn patterns(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide/patterns");
    let subdomain = api_policy(vec!["https://*.example.com".into()]);
    let any_port = api_policy(vec!["http://localhost:*".into()]);
    let scenarios = [
        ("subdomain", &subdomain, "https://a.b.example.com", true),
        (
            "subdomain",
            &subdomain,
            "https://example.com.evil.example",
            false,
        ),
        ("any-port", &any_port, "http://localhost:5173", true),
        (
            "any-port",
            &any_port,
            "http://localhost.evil.example:5173",
            false,
        ),
    ];
    for (name, policy, origin, ok) in scenarios {
        let verdict = if ok { "allowed" } else { "denied" };
        for (kind, preflight) in [("actual", false), ("preflight", true)] {
            let (method, headers) = request(origin, preflight);
            let function = format!("{kind}-{verdict}");
            let id = (function.as_str(), name);
            bench_decide(&mut group, id, policy, (&method, &headers), ok);
        }
    }
    group.finish();
}

/// Hostile `Access-Control-Request-Headers`: a value of nothing but commas (every
/// element empty), and 4096 allowed names. Both are past the limits
/// (`MAX_REQUEST_HEADERS_LEN`, `MAX_REQUEST_HEADER_NAMES`), so they are refused:
/// what is measured is the cost of that refusal, which must not grow with the
/// length of the value.
fn hostile_request_headers(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide/hostile-request-headers");
    let policy = api_policy(exact_origins(1));
    let commas = |len: usize| vec![b','; len];
    let tokens = ["content-type", "x-api-key"]
        .iter()
        .cycle()
        .take(4096)
        .copied()
        .collect::<Vec<_>>()
        .join(",")
        .into_bytes();
    let inputs = [
        ("commas-8KiB", commas(8 << 10)),
        ("commas-64KiB", commas(64 << 10)),
        ("commas-1MiB", commas(1 << 20)),
        ("tokens-4096", tokens),
    ];
    for (name, value) in inputs {
        let (method, mut headers) = request("https://app0.example.com", true);
        headers.insert(ACRH, HeaderValue::from_bytes(&value).unwrap());
        group.throughput(Throughput::Bytes(value.len() as u64));
        // A mebibyte takes about a millisecond: fewer samples keep the run short.
        group.sample_size(if value.len() >= 1 << 20 { 20 } else { 100 });
        let id = ("preflight-refused", name);
        bench_decide(&mut group, id, &policy, (&method, &headers), false);
    }
    group.finish();
}

/// Every row of the shared case table.
fn cases(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide/cases");
    for case in CASES {
        let policy = case.compile();
        let method = case.method();
        let headers = case.request_headers();
        let _warm = policy.decide(&method, &headers);
        group.bench_function(case.name, |b| {
            b.iter(|| black_box(&policy).decide(black_box(&method), black_box(&headers)));
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = origins, patterns, hostile_request_headers, cases
}
criterion_main!(benches);
