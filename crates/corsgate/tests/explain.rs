//! `corsgate explain`: the simulated browser against compiled configurations.

mod support;

use corsgate::cmd::explain::{Credentials, Initiator, PageRequest, Verdict, explain};
use corsgate_config as config;
use support::TempDir;
use support::binary::Cmd;

const CONFIG: &str = r#"
[server.cors]
allow_origins = ["https://app.example.com", "http://localhost:*"]
allow_methods = ["PUT"]
allow_headers = ["content-type", "x-api-key"]
expose_headers = ["x-request-id"]
allow_credentials = true

[[route]]
path = "/api"
upstream = "http://127.0.0.1:9000"

[[route]]
path = "/public"
upstream = "http://127.0.0.1:9000"
cors = { allow_origins = "*", allow_credentials = false }

[[route]]
path = "/debug"
upstream = "http://127.0.0.1:9000"
cors = { debug = true }

[[route]]
path = "/legacy"
upstream = "http://127.0.0.1:9000"
cors = "off"
"#;

fn run(
    url: &str,
    origin: &str,
    method: &str,
    headers: &[(&str, &str)],
    credentials: Credentials,
) -> corsgate::cmd::explain::Explanation {
    let checked = config::check(CONFIG);
    let gateway = checked.gateway.expect("valid config");
    let raw = config::load::parse(CONFIG).config.unwrap();
    let request = PageRequest {
        url: url.to_owned(),
        origin: origin.to_owned(),
        method: method.to_owned(),
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
        credentials,
        initiator: Initiator::Fetch,
    };
    explain(&gateway, &raw, &request).unwrap()
}

const APP: &str = "https://app.example.com";

#[test]
fn allowed_preflighted_put_lists_readable_headers() {
    let e = run(
        "https://api.example.com/api/items/1",
        APP,
        "put",
        &[("X-Api-Key", "k")],
        Credentials::Include,
    );
    assert_eq!(e.method, "PUT", "fetch uppercases put");
    assert_eq!(e.verdict, Verdict::Allowed);
    let preflight = e.preflight.unwrap();
    assert!(
        preflight
            .request
            .contains(&("access-control-request-headers".into(), "x-api-key".into()))
    );
    assert_eq!(preflight.status, Some(204));
    assert_eq!(e.readable_headers, ["x-request-id"]);
    assert!(e.console_message.is_none());
}

#[test]
fn json_content_type_is_preflighted() {
    let e = run(
        "https://api.example.com/api/x",
        APP,
        "POST",
        &[("Content-Type", "application/json")],
        Credentials::Omit,
    );
    assert_eq!(e.preflight_reasons.len(), 1);
    assert_eq!(e.verdict, Verdict::Allowed);
    let plain = run(
        "https://api.example.com/api/x",
        APP,
        "POST",
        &[("Content-Type", "text/plain")],
        Credentials::Omit,
    );
    assert!(plain.preflight_reasons.is_empty());
    assert!(plain.preflight.is_none());
}

#[test]
fn refused_origin_predicts_chromium_and_suggests_the_line() {
    let e = run(
        "https://api.example.com/api/x",
        "https://evil.example",
        "GET",
        &[],
        Credentials::Omit,
    );
    assert_eq!(e.verdict, Verdict::Blocked);
    assert_eq!(
        e.console_message.as_deref(),
        Some(
            "Access to fetch at 'https://api.example.com/api/x' from origin 'https://evil.example' has been blocked by CORS policy: No 'Access-Control-Allow-Origin' header is present on the requested resource."
        )
    );
    // The route inherits allow_origins: the fix is a table of its own, so
    // that the other routes inheriting [server.cors] stay as they are.
    assert_eq!(e.fixes[0].key, r#"route[0].cors (path "/api")"#);
    assert!(e.fixes[0].line.contains("\"https://evil.example\""));
}

#[test]
fn refused_method_is_vague_without_debug_and_precise_with_it() {
    let plain = run(
        "https://api.example.com/api/x",
        APP,
        "DELETE",
        &[],
        Credentials::Omit,
    );
    assert_eq!(
        plain.cors_error.as_deref(),
        Some("PreflightMissingAllowOriginHeader")
    );
    assert_eq!(
        plain.fixes[0].line,
        r#"cors = { allow_methods = ["PUT", "DELETE"] }"#
    );
    let debug = run(
        "https://api.example.com/debug/x",
        APP,
        "DELETE",
        &[],
        Credentials::Omit,
    );
    assert_eq!(
        debug.cors_error.as_deref(),
        Some("MethodDisallowedByPreflightResponse")
    );
    assert!(debug.console_message.unwrap().ends_with(
        "Method DELETE is not allowed by Access-Control-Allow-Methods in preflight response."
    ));
}

#[test]
fn refused_header_in_debug_mode_names_the_header() {
    let e = run(
        "https://api.example.com/debug/x",
        APP,
        "GET",
        &[("X-Secret", "1")],
        Credentials::Omit,
    );
    assert_eq!(
        e.cors_error.as_deref(),
        Some("HeaderDisallowedByPreflightResponse")
    );
    assert!(
        e.console_message
            .unwrap()
            .contains("Request header field x-secret is not allowed")
    );
    assert!(e.fixes[0].line.contains("\"x-secret\""));
}

#[test]
fn every_missing_entry_is_named_not_only_the_first() {
    let e = run(
        "https://api.example.com/api/x",
        APP,
        "PATCH",
        &[("X-One", "1"), ("X-Two", "2")],
        Credentials::Omit,
    );
    let lines: Vec<&str> = e.fixes.iter().map(|f| f.line.as_str()).collect();
    assert_eq!(
        lines,
        [
            r#"cors = { allow_methods = ["PUT", "PATCH"], allow_headers = ["content-type", "x-api-key", "x-one", "x-two"] }"#
        ]
    );
}

#[test]
fn credentials_on_a_public_route_fail_the_wildcard_check() {
    let e = run(
        "https://api.example.com/public/jwks.json",
        APP,
        "GET",
        &[],
        Credentials::Include,
    );
    assert_eq!(e.cors_error.as_deref(), Some("WildcardOriginNotAllowed"));
    let omit = run(
        "https://api.example.com/public/jwks.json",
        APP,
        "GET",
        &[],
        Credentials::Omit,
    );
    assert_eq!(omit.verdict, Verdict::Allowed);
}

#[test]
fn cors_off_same_origin_and_forbidden_methods() {
    assert_eq!(
        run(
            "https://api.example.com/legacy/x",
            APP,
            "PUT",
            &[],
            Credentials::Omit
        )
        .verdict,
        Verdict::DecidedByUpstream
    );
    assert_eq!(
        run(
            "https://app.example.com/api/x",
            APP,
            "PUT",
            &[],
            Credentials::Omit
        )
        .verdict,
        Verdict::SameOrigin
    );
    assert_eq!(
        run(
            "https://api.example.com/api/x",
            APP,
            "TRACE",
            &[],
            Credentials::Omit
        )
        .verdict,
        Verdict::RefusedByBrowser
    );
}

#[test]
fn forbidden_headers_are_dropped_like_the_browser_does() {
    let e = run(
        "https://api.example.com/api/x",
        APP,
        "GET",
        &[("Cookie", "a=b")],
        Credentials::Omit,
    );
    assert!(e.preflight.is_none());
    assert!(e.notes.iter().any(|n| n.contains("drops Cookie")));
}

#[test]
fn binary_exit_codes() {
    let dir = TempDir::new("explain");
    let file = dir.write("c.toml", CONFIG);
    let status = |args: &[&str]| {
        let mut all = vec!["explain", "--config", file.to_str().unwrap()];
        all.extend_from_slice(args);
        Cmd::new(all).run()
    };
    let allowed = status(&["--url", "https://api.example.com/api/x", "--origin", APP]);
    assert_eq!(allowed.code, Some(0), "{}", allowed.stdout);
    let blocked = status(&[
        "--url",
        "https://api.example.com/api/x",
        "--origin",
        "https://evil.example",
        "--format",
        "json",
    ]);
    assert_eq!(blocked.code, Some(1));
    let json: serde_json::Value = serde_json::from_str(&blocked.stdout).unwrap();
    assert_eq!(json["verdict"], "blocked");
    let usage = status(&["--url", "not a url", "--origin", APP]);
    assert_eq!(usage.code, Some(2));
}

#[test]
fn a_public_insecure_page_calling_loopback_gets_a_local_network_access_note() {
    // What the browser suite's `local-network-access-opaque-page` shows: Chromium
    // blocks before CORS, which the configuration alone cannot predict.
    let e = run(
        "http://127.0.0.1:8080/public/x",
        "null",
        "GET",
        &[],
        Credentials::SameOrigin,
    );
    assert_eq!(e.verdict, Verdict::Allowed);
    assert!(
        e.notes.iter().any(|n| n.contains("Local Network Access")),
        "{:?}",
        e.notes
    );
    // A page on loopback itself is a secure context: no note.
    let e = run(
        "http://127.0.0.1:8080/public/x",
        "http://localhost:3000",
        "GET",
        &[],
        Credentials::SameOrigin,
    );
    assert!(!e.notes.iter().any(|n| n.contains("Local Network Access")));
}

/// `corsgate explain --origin ORIGIN` against [`CONFIG`]: exit code and stderr.
fn explain_binary(origin: &str) -> (Option<i32>, String) {
    let dir = TempDir::new("explain-origin");
    let file = dir.write("c.toml", CONFIG);
    let ran = Cmd::new([
        "explain",
        "--config",
        file.to_str().unwrap(),
        "--url",
        "https://api.example.com/api/items",
        "--origin",
        origin,
    ])
    .run();
    (ran.code, ran.stderr)
}

#[test]
fn malformed_origin_is_refused_with_the_serialised_origin() {
    for (written, meant) in [
        ("https://app.example.com/", "https://app.example.com"),
        ("https://app.example.com/login", "https://app.example.com"),
        ("https://App.Example.com", "https://app.example.com"),
    ] {
        let (code, stderr) = explain_binary(written);
        assert_eq!(code, Some(2), "{written}: {stderr}");
        assert!(
            stderr.contains(&format!("did you mean \"{meant}\"")),
            "{written}: {stderr}"
        );
    }
    let (code, stderr) = explain_binary("app.example.com");
    assert_eq!(code, Some(2), "no scheme: {stderr}");
    assert!(stderr.contains("--origin"), "{stderr}");
}
