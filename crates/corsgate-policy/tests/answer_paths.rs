//! An answer made here is the same whichever way it is built: in a new header
//! map (`local_response`, `into_local_response`: a clone of the compiled
//! template) or in the request's own map (`into_local_response_reusing`: the
//! map cleared, the headers appended). And the second allocates nothing.

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

#[test]
fn an_answer_in_the_requests_own_map_allocates_nothing() {
    let policy = Policy::compile(
        &CorsConfig::new()
            .allow_origins("https://app.example.com")
            .allow_methods("PUT")
            .allow_headers(["content-type", "x-api-key"])
            .allow_credentials(true)
            .max_age(600),
    )
    .unwrap();
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
