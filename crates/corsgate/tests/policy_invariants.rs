//! Policy invariants through the gateway, over real sockets: answers that a
//! shared cache could mix up between origins (the security review's F2), and what
//! loading a configuration refuses or must finish (F4, response-only names in
//! `allow_headers`, the exhaustion review's E8).

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use support::binary::Cmd;
use support::*;

/// One route per policy shape, all to the same upstream.
fn routes(upstream: &str, dead: &str) -> String {
    [
        route(
            "/public",
            upstream,
            "cors = { allow_origins = \"*\", expose_headers = [\"x-total-count\"] }",
        ),
        route(
            "/public-strict",
            upstream,
            "cors = { allow_origins = \"*\", debug = true, on_disallowed = \"reject\" }",
        ),
        route(
            "/spa",
            upstream,
            "cors = { allow_origins = [\"https://app.example.com\", \"https://*.example.org\"], allow_credentials = true, allow_methods = [\"PUT\"], expose_headers = [\"x-request-id\"] }",
        ),
        route(
            "/strict",
            upstream,
            "cors = { allow_origins = [\"https://app.example.com\"], debug = true, on_disallowed = \"reject\" }",
        ),
        // No CORS keys anywhere: closed.
        route("/closed", upstream, ""),
        route("/closed-debug", upstream, "cors = { debug = true }"),
        route(
            "/closed-reject",
            upstream,
            "cors = { on_disallowed = \"reject\" }",
        ),
        // The gateway's own errors carry the route's CORS headers too.
        route(
            "/public-dead",
            dead,
            "cors = { allow_origins = \"*\" }",
        ),
    ]
    .concat()
}

/// `None`: no `Origin`; otherwise its lines.
const ORIGINS: &[Option<&[&str]>] = &[
    None,
    Some(&["https://app.example.com"]),
    Some(&["https://a.example.org"]),
    Some(&["https://anyone.example"]),
    Some(&["null"]),
    Some(&["https://app.example.com/"]),
    Some(&["https://APP.example.com"]),
    Some(&["https://app.example.com", "https://app.example.com"]),
];

#[derive(Debug, PartialEq, Eq)]
struct Seen {
    status: u16,
    cors: Vec<(String, String)>,
    varies_on_origin: bool,
}

fn summarize(answer: &Answer) -> Seen {
    let varies_on_origin = answer
        .joined("vary")
        .split(',')
        .any(|m| m.trim().eq_ignore_ascii_case("origin"));
    let mut cors: Vec<(String, String)> = answer
        .headers
        .iter()
        .filter(|(n, _)| {
            n.as_str().starts_with("access-control-") || n.as_str() == "x-corsgate-reason"
        })
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect();
    cors.sort();
    Seen {
        status: answer.status.as_u16(),
        cors,
        varies_on_origin,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_differing_only_in_origin_are_identical_or_vary_on_origin() {
    // The upstream sends CORS headers of its own (replaced by the gateway) and a
    // `Vary` of its own (extended).
    let spy = Spy::start(|_| {
        Reply::ok()
            .header("access-control-allow-origin", "*")
            .header("vary", "Accept-Encoding")
            .header("cache-control", "public, max-age=60")
    })
    .await;
    let dead = format!("http://{}", closed_port().await);
    let gw = Gw::start(&config("", "", &routes(&spy.url(), &dead))).await;
    let client = client();
    let requests: &[(&str, &[(&str, &str)])] = &[
        ("GET", &[]),
        ("POST", &[]),
        ("OPTIONS", &[]),
        ("OPTIONS", &[("access-control-request-method", "PUT")]),
    ];
    let mut failures = Vec::new();
    for path in [
        "/public",
        "/public-strict",
        "/spa",
        "/strict",
        "/closed",
        "/closed-debug",
        "/closed-reject",
        "/public-dead",
        "/no-route",
    ] {
        for (method, extra) in requests {
            let mut answers = Vec::new();
            for origin in ORIGINS {
                let mut headers = HeaderMap::new();
                for (name, value) in *extra {
                    headers.append(
                        HeaderName::from_static(name),
                        HeaderValue::from_static(value),
                    );
                }
                for value in origin.unwrap_or_default() {
                    headers.append("origin", HeaderValue::from_static(value));
                }
                let url = gw.url(&format!("{path}/item"));
                let answer = send_map(&client, method, &url, headers, Bytes::new()).await;
                answers.push((origin, summarize(&answer)));
            }
            for (a, seen_a) in &answers {
                for (b, seen_b) in &answers {
                    let same = seen_a.status == seen_b.status && seen_a.cors == seen_b.cors;
                    let both_vary = seen_a.varies_on_origin && seen_b.varies_on_origin;
                    if !same && !both_vary {
                        failures.push(format!(
                            "{method} {path} {extra:?}: origin {a:?} got {seen_a:?}, origin {b:?} got {seen_b:?}"
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_star_route_answers_star_with_or_without_origin() {
    let spy =
        Spy::start(|_| Reply::ok().header("access-control-allow-origin", "https://x.example"))
            .await;
    let gw = Gw::start(&config("", "", &routes(&spy.url(), &spy.url()))).await;
    for origin in ORIGINS {
        let mut headers = Vec::new();
        for value in origin.unwrap_or_default() {
            headers.push(("origin", *value));
        }
        let answer = send("GET", &gw.url("/public/data"), &headers).await;
        assert_eq!(answer.status.as_u16(), 200, "{origin:?}");
        assert_eq!(
            answer.cors(),
            [
                ("access-control-allow-origin".to_owned(), "*".to_owned()),
                (
                    "access-control-expose-headers".to_owned(),
                    "x-total-count".to_owned()
                ),
            ],
            "{origin:?}"
        );
        assert_eq!(answer.header("vary"), None, "{origin:?}");
    }
    assert_eq!(spy.count(), ORIGINS.len());
}

/// The errors of a configuration: (path, kind, message).
fn load_errors(toml: &str) -> Vec<(String, String, String)> {
    corsgate_config::check(toml)
        .problems
        .iter()
        .filter(|p| p.diagnostic.is_error())
        .map(|p| {
            (
                p.diagnostic.path().to_owned(),
                p.diagnostic.kind().as_str().to_owned(),
                p.diagnostic.message().to_owned(),
            )
        })
        .collect()
}

#[test]
fn wildcards_over_parents_of_public_suffixes_are_refused_at_load() {
    for origin in [
        "https://*.amazonaws.com",
        "https://*.compute.amazonaws.com",
        "https://*.elb.amazonaws.com",
        "https://*.windows.net",
        "https://*.core.windows.net",
        "https://*.ck",
        "https://*.kawasaki.jp",
    ] {
        let toml = config(
            "",
            &format!("allow_origins = [\"{origin}\"]\nallow_credentials = true"),
            &route("/", "http://127.0.0.1:9", ""),
        );
        let errors = load_errors(&toml);
        assert!(
            errors.iter().any(|(path, kind, message)| {
                path == "server.cors.allow_origins[0]"
                    && kind == "public-suffix-wildcard"
                    && message.contains("dangerously_allow_public_suffix_wildcards = true")
            }),
            "{origin}: {errors:?}"
        );
    }
    for origin in [
        "https://*.example.com",
        "https://*.mycompany.co.uk",
        "https://*.www.ck",
    ] {
        let toml = config(
            "",
            &format!("allow_origins = [\"{origin}\"]\nallow_credentials = true"),
            &route("/", "http://127.0.0.1:9", ""),
        );
        assert_eq!(load_errors(&toml), [], "{origin}");
    }
}

#[test]
fn response_headers_in_allow_headers_are_refused_at_load() {
    let toml = config(
        "",
        "allow_origins = [\"https://app.example.com\"]\nallow_headers = [\"content-type\", \"Access-Control-Allow-Origin\"]",
        &route("/", "http://127.0.0.1:9", ""),
    );
    let errors = load_errors(&toml);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let (path, kind, message) = &errors[0];
    assert_eq!(path, "server.cors.allow_headers[1]");
    assert_eq!(kind, "response-header-in-allow-headers");
    assert!(
        message.contains("has a bug") && message.contains("remove it from the page's request"),
        "{message}"
    );
}

#[test]
fn check_of_a_file_with_two_hundred_thousand_origins_finishes() {
    const N: usize = 200_000;
    let dir = TempDir::new("many-origins");
    let mut text =
        String::from("[server]\nlisten = \"127.0.0.1:0\"\n\n[server.cors]\nallow_origins = [\n");
    for i in 0..N {
        text.push_str(&format!("  \"https://app{i}.example.com\",\n"));
    }
    text.push_str("]\n\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9\"\n");
    let file = dir.write("many.toml", &text);
    // A hang guard, not a measurement: the quadratic duplicate check took
    // minutes here.
    let ran = Cmd::new(["check", file.to_str().unwrap()])
        .within(Duration::from_secs(120))
        .run();
    assert!(
        !ran.timed_out,
        "corsgate check of {N} origins did not finish within 120 s"
    );
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
}
