//! `cors = "closed"` against `cors = "off"`: a closed route answers no CORS
//! whatever its upstream says; an off route lets the upstream decide, and
//! `check` says so.

mod support;

use std::time::Duration;

use http::StatusCode;
use support::*;

const APP: &str = "https://app.example.com";
const EVIL: &str = "https://evil.example";

/// An upstream that reflects any `Origin` with credentials, on every request
/// including preflights: the upstream a closed route must keep from browsers.
async fn reflecting_upstream() -> Spy {
    Spy::start(|seen| {
        let origin = seen
            .headers
            .get("origin")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("null")
            .to_owned();
        Reply::ok()
            .header("access-control-allow-origin", &origin)
            .header("access-control-allow-credentials", "true")
            .header("access-control-allow-methods", "GET, POST, DELETE")
            .header("access-control-allow-headers", "authorization")
            .header("access-control-expose-headers", "x-secret")
            .header("access-control-max-age", "86400")
    })
    .await
}

fn gateway_config(upstream: &str, cors: &str) -> String {
    config(
        "",
        "allow_origins = [\"https://app.example.com\"]\nallow_credentials = true\n",
        &route("/login", upstream, cors),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_route_strips_a_reflecting_upstreams_cors_headers() {
    let spy = reflecting_upstream().await;
    let gw = Gw::start(&gateway_config(&spy.url(), "cors = \"closed\"")).await;
    for origin in [APP, EVIL] {
        let answer = send("GET", &gw.url("/login"), &[("origin", origin)]).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.cors(), Vec::new(), "GET from {origin}");
        let answer = send("POST", &gw.url("/login"), &[("origin", origin)]).await;
        assert_eq!(answer.cors(), Vec::new(), "POST from {origin}");
    }
    assert_eq!(spy.count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_route_refuses_preflights_without_forwarding_them() {
    let spy = reflecting_upstream().await;
    let gw = Gw::start(&gateway_config(&spy.url(), "cors = \"closed\"")).await;
    for origin in [APP, EVIL] {
        let answer = send(
            "OPTIONS",
            &gw.url("/login"),
            &[
                ("origin", origin),
                ("access-control-request-method", "DELETE"),
                ("access-control-request-headers", "authorization"),
            ],
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "preflight from {origin}"
        );
        assert_eq!(answer.cors(), Vec::new(), "preflight from {origin}");
    }
    assert_eq!(spy.count(), 0, "a closed route never forwards a preflight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_route_still_passes_the_upstreams_cors_headers() {
    let spy = reflecting_upstream().await;
    let gw = Gw::start(&gateway_config(&spy.url(), "cors = \"off\"")).await;
    let answer = send("GET", &gw.url("/login"), &[("origin", EVIL)]).await;
    assert_eq!(answer.header("access-control-allow-origin"), Some(EVIL));
    let answer = send(
        "OPTIONS",
        &gw.url("/login"),
        &[
            ("origin", EVIL),
            ("access-control-request-method", "DELETE"),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("access-control-allow-origin"), Some(EVIL));
    assert_eq!(spy.count(), 2, "with CORS off, preflights are forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn effective_config_shows_closed_routes_as_closed() {
    let spy = reflecting_upstream().await;
    let gw = Gw::start(&gateway_config(&spy.url(), "cors = \"closed\"")).await;
    let answer = send("GET", &gw.admin_url("/config"), &[]).await;
    let text = answer.text();
    assert!(text.contains("\"closed\""), "{text}");
}

fn check(toml: &str) -> binary::Ran {
    let dir = TempDir::new("closed");
    let file = dir.write("corsgate.toml", toml);
    binary::run(&["check", file.to_str().unwrap()], Duration::from_secs(10))
}

const ROUTE: &str = "[[route]]\npath = \"/login\"\nupstream = \"http://127.0.0.1:3000\"\n";

#[test]
fn check_notes_that_an_off_route_passes_the_upstreams_cors_unchecked() {
    let ran = check(&format!("{ROUTE}cors = \"off\"\n"));
    let out = format!("{}{}", ran.stdout, ran.stderr);
    assert_eq!(ran.code, Some(0), "a note does not fail check: {out}");
    assert!(out.contains("route[0].cors"), "{out}");
    assert!(out.contains("unchecked"), "{out}");
    assert!(out.contains("\"closed\""), "{out}");
}

#[test]
fn check_accepts_closed_without_a_note() {
    let ran = check(&format!("{ROUTE}cors = \"closed\"\n"));
    let out = format!("{}{}", ran.stdout, ran.stderr);
    assert_eq!(ran.code, Some(0), "{out}");
    assert!(out.contains("(0 warnings)"), "{out}");
}

#[test]
fn check_refuses_an_unknown_cors_string_with_the_fix() {
    let ran = check(&format!("{ROUTE}cors = \"of\"\n"));
    let out = format!("{}{}", ran.stdout, ran.stderr);
    assert_eq!(ran.code, Some(1), "{out}");
    // A string is a policy name since [policies.NAME]: the fix is the
    // closest of the names a route may give.
    assert!(
        out.contains(r#""of": no [policies.of] table; did you mean "off"?"#),
        "{out}"
    );
    let ran = check(&format!("{ROUTE}cors = \"something\"\n"));
    let out = format!("{}{}", ran.stdout, ran.stderr);
    assert_eq!(ran.code, Some(1), "{out}");
    assert!(
        out.contains(r#"cors is "off", "closed", a policy name"#),
        "{out}"
    );
}
