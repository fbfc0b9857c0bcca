//! The one applier of a decision: what `Decision::apply` and
//! `Decision::local_response` write, for the cases the shared table does not
//! spell out.

use corsgate_policy::{CorsConfig, OnDisallowed, Policy, REASON_HEADER};
use http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_LENGTH, CONTENT_TYPE, ORIGIN, VARY};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

fn request(origin: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(ORIGIN, HeaderValue::from_static(origin));
    headers
}

fn preflight(origin: &'static str) -> HeaderMap {
    let mut headers = request(origin);
    headers.insert(
        "access-control-request-method",
        HeaderValue::from_static("PUT"),
    );
    headers
}

#[test]
fn an_upstream_reason_header_is_removed_so_it_cannot_pass_for_the_decisions() {
    let policy = Policy::compile(
        &CorsConfig::new()
            .allow_origins("https://app.example.com")
            .debug(true),
    )
    .unwrap();
    for origin in ["https://app.example.com", "https://evil.example"] {
        let decision = policy.decide(&Method::GET, &request(origin));
        let mut response = HeaderMap::new();
        response.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        response.insert(
            REASON_HEADER,
            HeaderValue::from_static("origin-not-allowed"),
        );
        response.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        decision.apply(&mut response);
        let reasons: Vec<_> = response.get_all(REASON_HEADER).iter().collect();
        if decision.is_allowed() {
            assert!(reasons.is_empty(), "{origin}: {response:?}");
        } else {
            // Debug mode: the decision's own reason, once.
            assert_eq!(reasons, ["origin-not-allowed"], "{origin}: {response:?}");
        }
        assert_ne!(
            response
                .get(ACCESS_CONTROL_ALLOW_ORIGIN)
                .map(|v| v.as_bytes()),
            Some(&b"*"[..])
        );
        assert_eq!(response[CONTENT_TYPE], "text/plain");
    }
}

#[test]
fn local_answers_say_their_length_unless_204() {
    let config = CorsConfig::new()
        .allow_origins("https://app.example.com")
        .allow_methods("PUT")
        .on_disallowed(OnDisallowed::Reject);
    for (status, config) in [
        (StatusCode::NO_CONTENT, config.clone()),
        (StatusCode::OK, {
            let mut ok = config.clone();
            ok.preflight_status = Some(200);
            ok
        }),
    ] {
        let policy = Policy::compile(&config).unwrap();
        let allowed = policy.decide(&Method::OPTIONS, &preflight("https://app.example.com"));
        let response = allowed.local_response(()).unwrap();
        assert_eq!(response.status(), status);
        assert_eq!(
            response.headers().get(CONTENT_LENGTH).is_some(),
            status != StatusCode::NO_CONTENT,
            "{response:?}"
        );
        assert_eq!(
            response.headers()[ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        assert_eq!(
            response.headers()[VARY],
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
        );

        // A refused preflight and a refused actual request under "reject": 403,
        // no CORS headers, an empty body that says so.
        for (method, head) in [
            (Method::OPTIONS, preflight("https://evil.example")),
            (Method::GET, request("https://evil.example")),
        ] {
            let refused = policy.decide(&method, &head);
            let response = refused.local_response(()).unwrap();
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
            assert_eq!(response.headers()[CONTENT_LENGTH], "0");
            assert!(
                response
                    .headers()
                    .get(ACCESS_CONTROL_ALLOW_ORIGIN)
                    .is_none()
            );
        }

        // Allowed actual requests go to the app: nothing is answered here.
        let actual = policy.decide(&Method::GET, &request("https://app.example.com"));
        assert!(actual.local_response(()).is_none());
    }
}
