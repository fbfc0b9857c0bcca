//! A shared cache keys a response on its URL plus the request headers that `Vary`
//! names. So two requests that differ only in `Origin` must get the same answer
//! (status made here, CORS headers), or else both answers must name `Origin` in
//! `Vary`: otherwise whichever answer is cached first is served for every origin
//! (the security review's F2: a `*` policy sent `Access-Control-Allow-Origin: *`
//! to some origins and nothing to requests without or with a malformed `Origin`,
//! without `Vary: Origin`).

use corsgate_policy::{CorsConfig, Policy};
use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;

/// Every policy shape the invariant is checked on.
const POLICIES: &[(&str, &str)] = &[
    ("public", corsgate_cases::PUBLIC),
    ("public-bare", "allow_origins = \"*\""),
    (
        "public-debug-reject",
        "allow_origins = \"*\"\nexpose_headers = [\"x-a\"]\ndebug = true\non_disallowed = \"reject\"",
    ),
    ("spa-credentialed", corsgate_cases::SPA),
    ("strict-debug-reject", corsgate_cases::STRICT_DEBUG),
    ("closed", corsgate_cases::CLOSED),
    ("closed-reject", "on_disallowed = \"reject\""),
    ("closed-debug", "debug = true"),
    (
        "null-allowed",
        "allow_origins = [\"null\", \"https://app.example.com\"]\ndangerously_allow_null_origin = true",
    ),
];

fn compile(toml_body: &str) -> Policy {
    let config: CorsConfig = toml::from_str(toml_body).unwrap();
    Policy::compile(&config).unwrap()
}

/// The `Origin` header lines of a request: none, one, or two.
#[derive(Debug, Clone)]
enum Origin {
    Absent,
    One(Vec<u8>),
    Two(Vec<u8>, Vec<u8>),
}

/// What the answer to a request is, as far as a cache can tell: the status
/// made here (`None`: forwarded) and the CORS headers.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: Option<u16>,
    cors: Vec<(String, Vec<u8>)>,
    varies_on_origin: bool,
}

fn answer(policy: &Policy, method: &Method, base: &HeaderMap, origin: &Origin) -> Option<Answer> {
    let mut headers = base.clone();
    let value = |bytes: &[u8]| HeaderValue::from_bytes(bytes).ok();
    match origin {
        Origin::Absent => {}
        Origin::One(a) => {
            headers.append("origin", value(a)?);
        }
        Origin::Two(a, b) => {
            headers.append("origin", value(a)?);
            headers.append("origin", value(b)?);
        }
    }
    let decision = policy.decide(method, &headers);
    let mut out = HeaderMap::new();
    decision.apply(&mut out);
    let varies_on_origin = out.get_all("vary").iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .any(|m| m.trim_ascii().eq_ignore_ascii_case(b"origin"))
    });
    let mut cors: Vec<(String, Vec<u8>)> = out
        .iter()
        .filter(|(name, _)| name.as_str() != "vary")
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    cors.sort();
    Some(Answer {
        status: decision.response_status().map(|s| s.as_u16()),
        cors,
        varies_on_origin,
    })
}

/// The request heads the invariant is checked for (all but `Origin`).
fn requests() -> Vec<(Method, HeaderMap)> {
    let mut preflight = HeaderMap::new();
    preflight.insert("access-control-request-method", "PUT".parse().unwrap());
    let mut preflight_headers = preflight.clone();
    preflight_headers.insert(
        "access-control-request-headers",
        "x-api-key".parse().unwrap(),
    );
    vec![
        (Method::GET, HeaderMap::new()),
        (Method::POST, HeaderMap::new()),
        (Method::OPTIONS, HeaderMap::new()),
        (Method::OPTIONS, preflight),
        (Method::OPTIONS, preflight_headers),
    ]
}

/// Checks the invariant for every pair of `origins` on every policy and request.
fn check(origins: &[Origin]) -> Result<(), String> {
    for (name, body) in POLICIES {
        let policy = compile(body);
        for (method, base) in requests() {
            let answers: Vec<(&Origin, Answer)> = origins
                .iter()
                .filter_map(|o| answer(&policy, &method, &base, o).map(|a| (o, a)))
                .collect();
            for (a, answer_a) in &answers {
                for (b, answer_b) in &answers {
                    let same = answer_a.status == answer_b.status && answer_a.cors == answer_b.cors;
                    let both_vary = answer_a.varies_on_origin && answer_b.varies_on_origin;
                    if !same && !both_vary {
                        return Err(format!(
                            "policy {name}, {method} {base:?}: origin {a:?} gets {answer_a:?} but origin {b:?} gets {answer_b:?}, and not both vary on Origin"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The origins every run includes, beside the generated ones.
fn fixed_origins() -> Vec<Origin> {
    let one = |s: &str| Origin::One(s.as_bytes().to_vec());
    vec![
        Origin::Absent,
        one("https://app.example.com"),
        one("https://anyone.example"),
        one("https://a.b.example.org"),
        one("http://localhost:5173"),
        one("null"),
        one("https://app.example.com/"),
        one("https://APP.example.com"),
        one(""),
        one("*"),
        Origin::Two(
            b"https://app.example.com".to_vec(),
            b"https://app.example.com".to_vec(),
        ),
    ]
}

#[test]
fn responses_differing_only_in_origin_are_identical_or_vary_on_origin() {
    check(&fixed_origins()).unwrap();
}

#[test]
fn a_star_policy_sends_star_whatever_the_origin() {
    // The simple way to hold the invariant under `*`: the same headers on every
    // response, with or without `Origin`, well-formed or not.
    let policy = compile(corsgate_cases::PUBLIC);
    for origin in fixed_origins() {
        let answer = answer(&policy, &Method::GET, &HeaderMap::new(), &origin).unwrap();
        assert_eq!(answer.status, None, "{origin:?}");
        assert_eq!(
            answer.cors,
            [
                ("access-control-allow-origin".to_owned(), b"*".to_vec()),
                (
                    "access-control-expose-headers".to_owned(),
                    b"x-total-count".to_vec()
                ),
            ],
            "{origin:?}"
        );
        assert!(!answer.varies_on_origin, "{origin:?}");
    }
}

fn origin_value() -> impl Strategy<Value = Origin> {
    let valid = (
        "(https?|[a-z][a-z0-9+.-]{0,6})",
        "[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){0,3}",
        prop::option::of(1u16..),
    )
        .prop_map(|(scheme, host, port)| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            format!("{scheme}://{host}{port}").into_bytes()
        });
    let known = prop::sample::select(vec![
        "https://app.example.com",
        "https://x.example.org",
        "http://localhost:3000",
        "null",
    ])
    .prop_map(|s| s.as_bytes().to_vec());
    let bytes = prop::collection::vec(any::<u8>(), 0..60);
    let one = prop_oneof![valid, known, ".{0,40}".prop_map(String::into_bytes), bytes];
    prop_oneof![
        Just(Origin::Absent),
        one.clone().prop_map(Origin::One),
        (one.clone(), one).prop_map(|(a, b)| Origin::Two(a, b)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn any_two_origins_get_identical_answers_or_both_vary(
        a in origin_value(),
        b in origin_value(),
    ) {
        let result = check(&[a, b, Origin::Absent]);
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
    }
}
