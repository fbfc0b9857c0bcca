//! Through the layer: two requests that differ only in `Origin` get the same
//! answer (status, CORS headers) or both answers name `Origin` in `Vary`, so a
//! shared cache in front never serves one origin's copy to another (the security
//! review's F2).

use std::convert::Infallible;

use corsgate_policy::{CorsConfig, Policy};
use corsgate_tower::CorsLayer;
use http::{HeaderMap, Method, Request, Response};
use tower::{Layer, ServiceExt, service_fn};

const POLICIES: &[(&str, &str)] = &[
    ("public", corsgate_cases::PUBLIC),
    (
        "public-debug-reject",
        "allow_origins = \"*\"\ndebug = true\non_disallowed = \"reject\"",
    ),
    ("spa-credentialed", corsgate_cases::SPA),
    ("strict-debug-reject", corsgate_cases::STRICT_DEBUG),
    ("closed", corsgate_cases::CLOSED),
    ("closed-reject", corsgate_cases::CLOSED_REJECT),
];

/// `None`: no `Origin`; otherwise its lines.
const ORIGINS: &[Option<&[&str]>] = &[
    None,
    Some(&["https://app.example.com"]),
    Some(&["https://anyone.example"]),
    Some(&["null"]),
    Some(&["https://app.example.com/"]),
    Some(&["https://APP.example.com"]),
    Some(&["https://app.example.com", "https://app.example.com"]),
];

#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    cors: Vec<(String, String)>,
    varies_on_origin: bool,
}

async fn answer(
    policy: &Policy,
    method: &Method,
    extra: &[(&str, &str)],
    origin: Option<&[&str]>,
) -> Answer {
    // The app sends its own CORS headers (which the layer replaces) and a `Vary`
    // of its own (which the layer extends).
    let app = service_fn(|_req: Request<String>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header("access-control-allow-origin", "*")
                .header("vary", "Accept-Encoding")
                .body(String::from("app"))
                .unwrap(),
        )
    });
    let service = CorsLayer::new(policy.clone()).layer(app);
    let mut request = Request::builder()
        .method(method.clone())
        .uri("/resource")
        .body(String::new())
        .unwrap();
    for (name, value) in extra {
        let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        request.headers_mut().append(name, value.parse().unwrap());
    }
    for value in origin.unwrap_or_default() {
        request
            .headers_mut()
            .append("origin", value.parse().unwrap());
    }
    let response = service.oneshot(request).await.unwrap();
    summarize(response.status().as_u16(), response.headers())
}

fn summarize(status: u16, headers: &HeaderMap) -> Answer {
    let varies_on_origin = headers.get_all("vary").iter().any(|v| {
        v.to_str()
            .unwrap()
            .split(',')
            .any(|m| m.trim().eq_ignore_ascii_case("origin"))
    });
    let mut cors: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| {
            n.as_str().starts_with("access-control-") || n.as_str() == "x-corsgate-reason"
        })
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    cors.sort();
    Answer {
        status,
        cors,
        varies_on_origin,
    }
}

#[tokio::test]
async fn responses_differing_only_in_origin_are_identical_or_vary_on_origin() {
    let requests: &[(Method, &[(&str, &str)])] = &[
        (Method::GET, &[]),
        (Method::POST, &[]),
        (Method::OPTIONS, &[]),
        (Method::OPTIONS, &[("access-control-request-method", "PUT")]),
    ];
    let mut failures = Vec::new();
    for (name, body) in POLICIES {
        let policy = Policy::compile(&toml::from_str::<CorsConfig>(body).unwrap()).unwrap();
        for (method, extra) in requests {
            let mut answers = Vec::new();
            for origin in ORIGINS {
                answers.push((origin, answer(&policy, method, extra, *origin).await));
            }
            for (a, answer_a) in &answers {
                for (b, answer_b) in &answers {
                    let same = answer_a.status == answer_b.status && answer_a.cors == answer_b.cors;
                    let both_vary = answer_a.varies_on_origin && answer_b.varies_on_origin;
                    if !same && !both_vary {
                        failures.push(format!(
                            "policy {name}, {method} {extra:?}: origin {a:?} gets {answer_a:?}, origin {b:?} gets {answer_b:?}"
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_star_policy_answers_star_with_or_without_origin() {
    let policy =
        Policy::compile(&toml::from_str::<CorsConfig>(corsgate_cases::PUBLIC).unwrap()).unwrap();
    let expected = vec![
        ("access-control-allow-origin".to_owned(), "*".to_owned()),
        (
            "access-control-expose-headers".to_owned(),
            "x-total-count".to_owned(),
        ),
    ];
    for origin in ORIGINS {
        let answer = answer(&policy, &Method::GET, &[], *origin).await;
        assert_eq!(answer.status, 200, "{origin:?}");
        assert_eq!(answer.cors, expected, "{origin:?}");
        assert!(!answer.varies_on_origin, "{origin:?}");
    }
}
