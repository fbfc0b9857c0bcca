//! An answer made here is the same whichever way it is built: in a new header
//! map (`local_response`, `into_local_response`: a clone of the compiled
//! template) or in the request's own map (`into_local_response_reusing`: the
//! map cleared, the headers appended). And the second allocates nothing.
//! `Policy::answer_or_decide`, which writes an allowed preflight's answer
//! without a `Decision` in between, gives what `decide` then
//! `into_local_response` give, over the case table and random heads.

use std::hint::black_box;

use corsgate_cases::CASES;
use corsgate_policy::{CorsConfig, Policy};
use http::{HeaderMap, HeaderValue, Method, Response};

/// The status and the headers in order, names and values.
fn answer(response: &Response<()>) -> (u16, Vec<(String, Vec<u8>)>) {
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    (response.status().as_u16(), headers)
}

#[test]
fn every_answer_made_here_is_the_same_in_the_requests_map_as_in_a_new_one() {
    let mut compared = 0;
    for case in CASES {
        let policy = case.compile();
        let method = case.method();
        let request = case.request_headers();
        let decision = policy.decide(&method, &request);
        let Some(fresh) = decision.local_response(()) else {
            // The app answers: nothing is made here, and the request is untouched.
            let mut spent = request.clone();
            assert!(
                decision
                    .clone()
                    .into_local_response_reusing(&mut spent, ())
                    .is_err()
            );
            assert_eq!(spent, request, "{}", case.name);
            continue;
        };
        let moved = decision
            .clone()
            .into_local_response(())
            .expect("answered here");
        let mut spent = request.clone();
        let reused = decision
            .into_local_response_reusing(&mut spent, ())
            .expect("answered here");
        assert_eq!(answer(&reused), answer(&fresh), "{}", case.name);
        assert_eq!(answer(&moved), answer(&fresh), "{}", case.name);
        // Nothing of the request is left, in the answer or in the map given.
        assert!(spent.is_empty(), "{}", case.name);
        for name in request.keys() {
            let in_answer = fresh.headers().contains_key(name);
            assert_eq!(
                reused.headers().contains_key(name),
                in_answer,
                "{}",
                case.name
            );
        }
        compared += 1;
    }
    assert!(compared > 20, "only {compared} answers compared");
}

#[test]
fn a_request_map_without_room_still_gets_the_whole_answer() {
    let mut config = CorsConfig::new()
        .allow_origins("https://app.example.com")
        .allow_methods("PUT")
        .allow_headers("x-api-key")
        .allow_credentials(true)
        .max_age(600);
    config.preflight_status = Some(200);
    config.allow_private_network = Some(true);
    let policy = Policy::compile(&config).unwrap();
    let mut request = HeaderMap::with_capacity(2);
    request.insert(
        "origin",
        HeaderValue::from_static("https://app.example.com"),
    );
    request.insert(
        "access-control-request-method",
        HeaderValue::from_static("PUT"),
    );
    request.append(
        "access-control-request-headers",
        HeaderValue::from_static("x-api-key"),
    );
    request.append(
        "access-control-request-private-network",
        HeaderValue::from_static("true"),
    );
    let decision = policy.decide(&Method::OPTIONS, &request);
    let fresh = decision.local_response(()).unwrap();
    let reused = decision
        .into_local_response_reusing(&mut request, ())
        .unwrap();
    assert_eq!(answer(&reused), answer(&fresh));
    assert_eq!(reused.headers().len(), 8, "{:?}", reused.headers());
}

/// The policy of a page's API: one origin, PUT, two headers, credentials.
fn app_policy() -> Policy {
    Policy::compile(
        &CorsConfig::new()
            .allow_origins("https://app.example.com")
            .allow_methods("PUT")
            .allow_headers(["content-type", "x-api-key"])
            .allow_credentials(true)
            .max_age(600),
    )
    .unwrap()
}

#[test]
fn an_answer_in_the_requests_own_map_allocates_nothing() {
    let policy = app_policy();
    // A browser's preflight, values as slices of one shared buffer (as hyper
    // reads them), in a map with room for as many headers as it has.
    let request = || {
        let mut headers = HeaderMap::with_capacity(6);
        for (name, value) in [
            ("host", "api.example.com"),
            ("accept", "*/*"),
            ("origin", "https://app.example.com"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "content-type,x-api-key"),
            ("user-agent", "Mozilla/5.0"),
        ] {
            let bytes = bytes::Bytes::from(value.to_owned());
            drop(bytes.clone());
            headers.append(name, HeaderValue::from_maybe_shared(bytes).unwrap());
        }
        headers
    };
    // The same measurement sees the two buffers of a new map.
    let mut spent = request();
    let decision = policy.decide(&Method::OPTIONS, &spent);
    let info = allocation_counter::measure(|| {
        black_box(decision.clone().into_local_response(()).unwrap());
    });
    assert_eq!(info.count_total, 2);
    let info = allocation_counter::measure(|| {
        let decision = policy.decide(black_box(&Method::OPTIONS), black_box(&spent));
        let response = decision
            .into_local_response_reusing(black_box(&mut spent), ())
            .unwrap();
        assert_eq!(response.headers().len(), 6, "{:?}", response.headers());
        black_box(response);
    });
    assert_eq!(info.count_total, 0);
}

/// What `answer_or_decide` gave, beside what `decide` then
/// `into_local_response` give for the same request: the same answer made
/// here, or the same decision handed back.
fn assert_same_outcome(policy: &Policy, method: &Method, request: &HeaderMap, what: &str) {
    let direct = policy.answer_or_decide(method, request, ());
    let decided = policy.decide(method, request).into_local_response(());
    match (direct, decided) {
        (Ok(direct), Ok(decided)) => assert_eq!(answer(&direct), answer(&decided), "{what}"),
        (Err(direct), Err(decided)) => {
            assert!(direct.answers_like(&decided), "{what}");
            assert_eq!(direct.class(), decided.class(), "{what}");
            assert_eq!(direct.rejection(), decided.rejection(), "{what}");
            assert_eq!(direct.origin(), decided.origin(), "{what}");
            assert_eq!(direct.headers(), decided.headers(), "{what}");
        }
        (direct, decided) => panic!("{what}: {direct:?} against {decided:?}"),
    }
}

#[test]
fn answer_or_decide_gives_what_decide_then_into_local_response_give_for_every_case() {
    for case in CASES {
        let policy = case.compile();
        assert_same_outcome(&policy, &case.method(), &case.request_headers(), case.name);
    }
}

#[test]
fn an_allowed_preflight_answered_straight_allocates_only_its_header_map() {
    let policy = app_policy();
    let mut request = HeaderMap::new();
    for (name, value) in [
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "PUT"),
        ("access-control-request-headers", "content-type,x-api-key"),
    ] {
        let bytes = bytes::Bytes::from(value.to_owned());
        drop(bytes.clone());
        request.append(name, HeaderValue::from_maybe_shared(bytes).unwrap());
    }
    let info = allocation_counter::measure(|| {
        let response = policy
            .answer_or_decide(black_box(&Method::OPTIONS), black_box(&request), ())
            .unwrap();
        assert_eq!(response.headers().len(), 6, "{:?}", response.headers());
        black_box(response);
    });
    assert_eq!(info.count_total, 2);
    // An allowed actual request: the decision, made without allocating.
    request.remove("access-control-request-method");
    let info = allocation_counter::measure(|| {
        let decision = policy
            .answer_or_decide(black_box(&Method::GET), black_box(&request), ())
            .unwrap_err();
        black_box(decision);
    });
    assert_eq!(info.count_total, 0);
}

mod random {
    use super::*;
    use corsgate_policy::OnDisallowed;
    use proptest::prelude::*;

    /// A policy from a few switches: `*` or a list of origins, credentials,
    /// listed or any headers, private network, debug, the preflight status,
    /// refusals answered here.
    fn policy() -> impl Strategy<Value = Policy> {
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(any_origin, credentials, any_header, private, debug, ok, reject, age)| {
                    let origins = if any_origin {
                        vec!["*".to_owned()]
                    } else {
                        vec![
                            "https://app.example.com".to_owned(),
                            "https://*.example.org".to_owned(),
                        ]
                    };
                    let headers = if any_header {
                        vec!["*".to_owned(), "x-api-key".to_owned()]
                    } else {
                        vec!["content-type".to_owned(), "x-api-key".to_owned()]
                    };
                    let mut config = CorsConfig::new()
                        .allow_origins(origins)
                        .allow_methods(["PUT", "DELETE"])
                        .allow_headers(headers)
                        .expose_headers("x-request-id")
                        .allow_credentials(credentials && !any_origin && !any_header)
                        .debug(debug);
                    if age {
                        config = config.max_age(600);
                    }
                    if reject {
                        config = config.on_disallowed(OnDisallowed::Reject);
                    }
                    config.allow_private_network = Some(private && !any_origin);
                    config.preflight_status = Some(if ok { 200 } else { 204 });
                    Policy::compile(&config).expect("the generated policies compile")
                },
            )
    }

    /// A request head: each header present or not, well-formed or not,
    /// allowed or not, some of them twice.
    fn request() -> impl Strategy<Value = (Method, HeaderMap)> {
        let method = prop_oneof![
            Just(Method::OPTIONS),
            Just(Method::OPTIONS),
            Just(Method::GET),
            Just(Method::PUT)
        ];
        let one_origin = prop_oneof![
            4 => Just("https://app.example.com"),
            2 => Just("https://a.example.org"),
            1 => Just("https://evil.example"),
            1 => Just("null"),
            1 => Just("https://app.example.com/path"),
        ];
        // Mostly one, as browsers send it.
        let origin = prop_oneof![
            4 => prop::collection::vec(one_origin.clone(), 1..2),
            1 => prop::collection::vec(one_origin, 0..3),
        ];
        let requested_method = prop::option::weighted(
            0.8,
            prop_oneof![
                3 => Just("PUT"),
                1 => Just("GET"),
                1 => Just("PATCH"),
                1 => Just("TRACE"),
                1 => Just("P T"),
            ],
        );
        let lists = prop::collection::vec(
            prop_oneof![
                4 => Just("content-type,x-api-key"),
                1 => Just("X-Api-Key"),
                1 => Just("x-other"),
                1 => Just("authorization"),
                1 => Just(""),
                1 => Just("bad header"),
            ],
            0..3,
        );
        let private = prop::option::of(prop_oneof![Just("true"), Just("false")]);
        (method, origin, requested_method, lists, private).prop_map(
            |(method, origins, requested, lists, private)| {
                let mut headers = HeaderMap::new();
                headers.append("host", HeaderValue::from_static("api.example.com"));
                for origin in origins {
                    headers.append("origin", HeaderValue::from_static(origin));
                }
                if let Some(requested) = requested {
                    headers.append(
                        "access-control-request-method",
                        HeaderValue::from_static(requested),
                    );
                }
                for list in lists {
                    headers.append(
                        "access-control-request-headers",
                        HeaderValue::from_static(list),
                    );
                }
                if let Some(private) = private {
                    headers.append(
                        "access-control-request-private-network",
                        HeaderValue::from_static(private),
                    );
                }
                (method, headers)
            },
        )
    }

    proptest! {
        #[test]
        fn answer_or_decide_gives_what_decide_then_into_local_response_give(
            policy in policy(),
            (method, request) in request(),
        ) {
            assert_same_outcome(&policy, &method, &request, &format!("{method} {request:?}"));
        }
    }
}
