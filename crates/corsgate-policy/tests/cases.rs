//! The shared case table against the engine alone.

use corsgate_cases::{CASES, Outcome};
use corsgate_policy::RequestClass;
use http::HeaderMap;

#[test]
fn every_case_decides_as_the_table_says() {
    let mut failures = Vec::new();
    for case in CASES {
        let policy = case.compile();
        let decision = policy.decide(&case.method(), &case.request_headers());
        let outcome = match (decision.class(), decision.rejection()) {
            (RequestClass::NotCors, _) => Outcome::NotCors,
            (_, None) => Outcome::Allowed,
            (_, Some(rejection)) => Outcome::Rejected(rejection.reason()),
        };
        if outcome != case.outcome {
            failures.push(format!(
                "case {}: outcome {outcome:?}, expected {:?}",
                case.name, case.outcome
            ));
        }
        if outcome == Outcome::Allowed && !decision.is_allowed() {
            failures.push(format!("case {}: is_allowed() is false", case.name));
        }
        let status = decision.response_status().map(|s| s.as_u16());
        if status != case.status {
            failures.push(format!(
                "case {}: status {status:?}, expected {:?}",
                case.name, case.status
            ));
        }
        let mut headers = HeaderMap::new();
        decision.apply(&mut headers);
        if let Err(problem) = case.check_headers(&headers) {
            failures.push(problem);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn closed_policy_equals_an_empty_configuration() {
    let empty = corsgate_policy::Policy::compile(&corsgate_policy::CorsConfig::default()).unwrap();
    let closed = corsgate_policy::Policy::closed();
    for case in CASES.iter().filter(|c| c.policy == corsgate_cases::CLOSED) {
        let a = empty
            .decide(&case.method(), &case.request_headers())
            .headers();
        let b = closed
            .decide(&case.method(), &case.request_headers())
            .headers();
        assert_eq!(a, b, "{}", case.name);
    }
}

#[test]
fn hostile_request_header_lists_are_decided_without_harm() {
    let spa = corsgate_cases::case("preflight-allowed").compile();
    let public =
        corsgate_policy::Policy::compile(&toml::from_str(corsgate_cases::PUBLIC).unwrap()).unwrap();
    let mib = 1 << 20;
    let commas = ",".repeat(mib);
    let tokens = "x-a,".repeat(mib / 4);
    // Far past the limits on what a preflight may ask for: refused for that,
    // before the list is read.
    for (policy, list) in [(&spa, &commas), (&public, &tokens), (&spa, &tokens)] {
        let mut headers = HeaderMap::new();
        headers.insert("origin", "https://app.example.com".parse().unwrap());
        headers.insert("access-control-request-method", "PUT".parse().unwrap());
        headers.insert("access-control-request-headers", list.parse().unwrap());
        let decision = policy.decide(&http::Method::OPTIONS, &headers);
        assert_eq!(
            decision.rejection().map(|r| r.reason()),
            Some(corsgate_policy::RejectionReason::TooManyRequestHeaders)
        );
    }
}

#[test]
fn a_fresh_map_and_an_app_response_get_the_same_cors_headers() {
    // An empty map takes the fast path (an allowed preflight's template, plain
    // inserts); a response with headers of its own takes the general one.
    let other = http::header::HeaderName::from_static("x-app");
    for case in CASES {
        let decision = case
            .compile()
            .decide(&case.method(), &case.request_headers());
        let mut fresh = HeaderMap::new();
        decision.apply(&mut fresh);
        let mut app = HeaderMap::new();
        app.insert(other.clone(), "1".parse().unwrap());
        decision.apply(&mut app);
        app.remove(&other);
        let listed = |map: &HeaderMap| -> Vec<(String, String)> {
            map.iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                .collect()
        };
        let sorted = |mut list: Vec<(String, String)>| {
            // Removing `x-app` moved the last header into its place.
            list.sort();
            list
        };
        assert_eq!(
            sorted(listed(&fresh)),
            sorted(listed(&app)),
            "{}",
            case.name
        );
        assert_eq!(listed(&fresh), listed(&decision.headers()), "{}", case.name);
    }
}
