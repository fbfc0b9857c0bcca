//! Regression tests for the security review's findings on request targets,
//! hosts and headers (F1, F6, F7, F11, F12, F14, F15, S3, S4): real sockets on
//! 127.0.0.1, and a spy upstream that records the raw request head it received.

mod support;

use bytes::Bytes;
use corsgate::cmd::explain::{Credentials, Initiator, PageRequest, explain};
use corsgate_config::{self as config, canonical};
use http::{HeaderMap, HeaderValue, StatusCode, Version};
use proptest::prelude::*;
use support::raw::{RawSpy, raw_request};
use support::*;

const APP: &str = "https://app.example.com";
const ADMIN: &str = "https://admin.example.com";

/// `/api` lets the app read with credentials; `/api/admin` lets only the admin
/// UI read (the per-path override the seeds' guides recommend).
fn admin_config(upstream: &str, server_extra: &str) -> String {
    config(
        server_extra,
        &format!("allow_origins = [\"{APP}\"]\nallow_credentials = true"),
        &format!(
            "{}{}[route.cors]\nallow_origins = [\"{ADMIN}\"]\n",
            route("/api", upstream, ""),
            route("/api/admin", upstream, ""),
        ),
    )
}

/// What must become of a request path.
enum Want {
    /// Forwarded as this canonical target, under `/api/admin`'s policy.
    Admin(&'static str),
    /// Refused with 400, nothing forwarded.
    Refused,
}

/// Every spelling of the review's F1 that an upstream reads as
/// `/api/admin/users` (or cannot be rewritten safely).
const F1_PATHS: &[(&str, Want)] = &[
    ("/api/%61dmin/users", Want::Admin("/api/admin/users")),
    (
        "/api/%61%64%6D%69%6e/users",
        Want::Admin("/api/admin/users"),
    ),
    ("/api//admin/users", Want::Admin("/api/admin/users")),
    ("/api/./admin/users", Want::Admin("/api/admin/users")),
    ("/api/x/../admin/users", Want::Admin("/api/admin/users")),
    ("/api/x/%2e%2E/admin/users", Want::Admin("/api/admin/users")),
    (
        "/api/%2e%2e/api/admin/users",
        Want::Admin("/api/admin/users"),
    ),
    ("/api/admin;x/users", Want::Admin("/api/admin;x/users")),
    (
        "/api;jsessionid=1/admin/users",
        Want::Admin("/api;jsessionid=1/admin/users"),
    ),
    ("/api/admin%2fusers", Want::Refused),
    ("/api%2Fadmin/users", Want::Refused),
    ("/api/admin%5Cusers", Want::Refused),
    ("/api/admin%00/users", Want::Refused),
    ("/api/admin%0a/users", Want::Refused),
    ("/api\\admin/users", Want::Refused),
    ("/api/..;/api/admin/users", Want::Refused),
    ("/api/%zz", Want::Refused),
];

fn check_f1(path: &str, want: &Want, status: u16, acao: Option<&str>, spy: &RawSpy, before: usize) {
    match want {
        Want::Admin(canonical) => {
            assert_eq!(status, 200, "{path}");
            assert_eq!(
                acao, None,
                "{path}: the app's origin read an admin resource"
            );
            assert_eq!(spy.count(), before + 1, "{path}");
            let target = spy.last().target().to_owned();
            let forwarded = target.split('?').next().unwrap_or_default();
            assert_eq!(forwarded, *canonical, "{path}: forwarded as is");
        }
        Want::Refused => {
            assert_eq!(status, 400, "{path}");
            // No route can be known: the default policy's headers, so that the
            // page reads the 400 rather than a CORS failure.
            assert_eq!(acao, Some(APP), "{path}");
            assert_eq!(spy.count(), before, "{path} reached the upstream");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_non_canonical_paths_cannot_reach_a_stricter_route_http1() {
    let spy = RawSpy::start("", "ADMIN-ONLY-DATA").await;
    let gw = Gw::start(&admin_config(&spy.url(), "")).await;
    // The broader route still works, and the stricter one applies as written.
    let answer = raw_request(
        gw.addr,
        &format!("GET /api/users HTTP/1.1\r\nhost: api.example\r\norigin: {APP}"),
    )
    .await;
    assert_eq!(answer.header("access-control-allow-origin"), Some(APP));
    let answer = raw_request(
        gw.addr,
        &format!("GET /api/admin/users HTTP/1.1\r\nhost: api.example\r\norigin: {APP}"),
    )
    .await;
    assert_eq!(answer.header("access-control-allow-origin"), None);
    for (path, want) in F1_PATHS {
        let before = spy.count();
        let answer = raw_request(
            gw.addr,
            &format!(
                "GET {path}?q=%61&x=1 HTTP/1.1\r\nhost: api.example\r\norigin: {APP}\r\ncookie: session=admin"
            ),
        )
        .await;
        check_f1(
            path,
            want,
            answer.status,
            answer.header("access-control-allow-origin"),
            &spy,
            before,
        );
        if let Want::Admin(_) = want {
            assert!(
                spy.last().target().ends_with("?q=%61&x=1"),
                "the query is untouched: {}",
                spy.last().target()
            );
        } else {
            assert!(
                answer.body.starts_with("400 Bad Request: "),
                "{}",
                answer.text
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_non_canonical_paths_cannot_reach_a_stricter_route_h2() {
    let spy = RawSpy::start("", "ADMIN-ONLY-DATA").await;
    let gw = Gw::start(&admin_config(&spy.url(), "")).await;
    let h2 = h2_client();
    for (path, want) in F1_PATHS {
        if path.contains('\\') {
            // Not a URI the client library accepts; HTTP/1.1 covers it.
            continue;
        }
        let mut headers = HeaderMap::new();
        headers.insert("origin", HeaderValue::from_static(APP));
        let before = spy.count();
        let answer = send_map(&h2, "GET", &gw.url(path), headers, Bytes::new()).await;
        assert_eq!(answer.version, Version::HTTP_2);
        check_f1(
            path,
            want,
            answer.status.as_u16(),
            answer.header("access-control-allow-origin"),
            &spy,
            before,
        );
        if let Want::Admin(_) = want {
            let host = spy.last();
            assert_eq!(
                host.all("host"),
                [gw.addr.to_string()],
                "one Host, the :authority"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_a_preflight_and_reject_follow_the_canonical_route() {
    let spy = RawSpy::start("", "ADMIN-ONLY-DATA").await;
    let toml = admin_config(&spy.url(), "").replace(
        &format!("allow_origins = [\"{ADMIN}\"]\n"),
        &format!("allow_origins = [\"{ADMIN}\"]\non_disallowed = \"reject\"\n"),
    );
    let gw = Gw::start(&toml).await;
    let answer = raw_request(
        gw.addr,
        "POST /api/%61dmin/users/1 HTTP/1.1\r\nhost: api.example\r\norigin: https://evil.example\r\ncontent-length: 0",
    )
    .await;
    assert_eq!(answer.status, 403);
    let answer = raw_request(
        gw.addr,
        &format!(
            "OPTIONS /api/%61dmin/users/1 HTTP/1.1\r\nhost: api.example\r\norigin: {APP}\r\naccess-control-request-method: DELETE"
        ),
    )
    .await;
    assert_eq!(answer.status, 403);
    assert_eq!(spy.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_escaped_slashes_keep_forwards_them_encoded() {
    let spy = RawSpy::start("", "").await;
    let gw = Gw::start(&admin_config(&spy.url(), "escaped_slashes = \"keep\"")).await;
    // A name with an encoded slash stays one segment, under /api: the setting
    // says the upstream does not decode it either.
    for (path, forwarded) in [
        ("/api/admin%2fusers", "/api/admin%2Fusers"),
        ("/api/objects%5ca", "/api/objects%5Ca"),
    ] {
        let answer = raw_request(
            gw.addr,
            &format!("GET {path} HTTP/1.1\r\nhost: api.example\r\norigin: {APP}"),
        )
        .await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("access-control-allow-origin"), Some(APP));
        assert_eq!(spy.last().target(), forwarded);
    }
    // Everything else is still made canonical.
    let answer = raw_request(
        gw.addr,
        &format!("GET /api/%61dmin/a%2fb HTTP/1.1\r\nhost: api.example\r\norigin: {APP}"),
    )
    .await;
    assert_eq!(answer.header("access-control-allow-origin"), None);
    assert_eq!(spy.last().target(), "/api/admin/a%2Fb");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_path_case_insensitive_matches_routes_without_case() {
    let spy = RawSpy::start("", "").await;
    let gw = Gw::start(&admin_config(&spy.url(), "path_case = \"insensitive\"")).await;
    for path in [
        "/API/admin/users",
        "/api/ADMIN/users",
        "/Api/%41dmin;x/users",
    ] {
        let answer = raw_request(
            gw.addr,
            &format!("GET {path} HTTP/1.1\r\nhost: api.example\r\norigin: {APP}"),
        )
        .await;
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(answer.header("access-control-allow-origin"), None, "{path}");
    }
    // The case is the upstream's business: forwarded as received.
    assert_eq!(spy.last().target(), "/Api/Admin;x/users");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_strip_prefix_works_on_the_canonical_path() {
    let spy = RawSpy::start("", "").await;
    let gw = Gw::start(&config(
        "",
        "",
        &format!(
            "{}{}",
            route("/api", &spy.url(), "strip_prefix = true"),
            route("/api/admin", &spy.url(), "strip_prefix = true"),
        ),
    ))
    .await;
    for (path, forwarded) in [
        ("/api/%61dmin/users?x", "/users?x"),
        ("/api/admin;v=1/users", "/users"),
        ("/api//x/../admin/", "/"),
        ("/api/users", "/users"),
        ("/api", "/"),
    ] {
        raw_request(
            gw.addr,
            &format!("GET {path} HTTP/1.1\r\nhost: api.example"),
        )
        .await;
        assert_eq!(spy.last().target(), forwarded, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f15_asterisk_form_only_for_options() {
    let spy = RawSpy::start("", "").await;
    let gw = Gw::start(&config("", "", &route("/", &spy.url(), ""))).await;
    for method in ["GET", "POST", "DELETE"] {
        let answer = raw_request(
            gw.addr,
            &format!("{method} * HTTP/1.1\r\nhost: api.example"),
        )
        .await;
        assert_eq!(answer.status, 400, "{method} *: {}", answer.text);
    }
    assert_eq!(spy.count(), 0);
    let answer = raw_request(gw.addr, "OPTIONS * HTTP/1.1\r\nhost: api.example").await;
    assert_eq!(answer.status, 200);
    assert_eq!(spy.last().request_line, "OPTIONS * HTTP/1.1");
}

/// A host route for the admin site (admin origin only, refusals answered here)
/// and a host-less route for everything else.
fn host_config(upstream: &str) -> String {
    config(
        "",
        &format!("allow_origins = [\"{APP}\"]\nallow_credentials = true"),
        &format!(
            "{}host = \"admin.example.com\"\n[route.cors]\nallow_origins = [\"{ADMIN}\"]\non_disallowed = \"reject\"\n\n{}",
            route("/", upstream, ""),
            route("/", upstream, ""),
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f6_trailing_dot_and_case_do_not_change_the_host_route() {
    let spy = RawSpy::start("", "").await;
    let gw = Gw::start(&host_config(&spy.url())).await;
    for host in [
        "admin.example.com",
        "admin.example.com.",
        "ADMIN.Example.COM.",
        "admin.example.com.:443",
        "Admin.Example.Com:8080",
    ] {
        let answer = raw_request(
            gw.addr,
            &format!("GET /secret HTTP/1.1\r\nhost: {host}\r\norigin: {APP}"),
        )
        .await;
        assert_eq!(answer.status, 403, "Host: {host}");
    }
    assert_eq!(spy.count(), 0);
    // The upstream gets the host the route was chosen by.
    let answer = raw_request(
        gw.addr,
        &format!("GET /secret HTTP/1.1\r\nhost: ADMIN.example.com.:8080\r\norigin: {ADMIN}"),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(spy.last().all("host"), ["admin.example.com:8080"]);
    // The other host still gets the broader policy.
    let answer = raw_request(
        gw.addr,
        &format!("GET /secret HTTP/1.1\r\nhost: public.example.com\r\norigin: {APP}"),
    )
    .await;
    assert_eq!(answer.header("access-control-allow-origin"), Some(APP));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f7_missing_duplicate_and_invalid_hosts_are_refused() {
    let spy = RawSpy::start("", "").await;
    let gw = Gw::start(&host_config(&spy.url())).await;
    for head in [
        "GET /x HTTP/1.1".to_owned(),
        "GET http://public.example/x HTTP/1.1".to_owned(),
        "GET /x HTTP/1.1\r\nhost: public.example\r\nhost: admin.example.com".to_owned(),
        "GET /x HTTP/1.1\r\nhost: admin.example.com:abc".to_owned(),
        "GET /x HTTP/1.1\r\nhost: admin.example.com/x".to_owned(),
        "GET /x HTTP/1.1\r\nhost: admin.example.com x".to_owned(),
        "GET /x HTTP/1.1\r\nhost: x@admin.example.com".to_owned(),
        "GET /x HTTP/1.1\r\nhost: ".to_owned(),
        "GET /x HTTP/1.1\r\nhost: admin..example.com".to_owned(),
        // Absolute form: the target's authority is the host, and a Host header
        // that says otherwise is refused.
        "GET http://public.example/x HTTP/1.1\r\nhost: admin.example.com".to_owned(),
        "GET http://admin.example.com@public.example/x HTTP/1.1\r\nhost: admin.example.com"
            .to_owned(),
    ] {
        let answer = raw_request(gw.addr, &format!("{head}\r\norigin: {APP}")).await;
        assert_eq!(answer.status, 400, "{head:?}: {}", answer.text);
        assert_eq!(
            answer.header("access-control-allow-origin"),
            Some(APP),
            "{head:?}: the 400 is readable"
        );
    }
    assert_eq!(spy.count(), 0);
    // HTTP/1.0 may omit Host: the upstream's authority is sent.
    let answer = raw_request(gw.addr, "GET /x HTTP/1.0").await;
    assert_eq!(answer.status, 200);
    assert_eq!(spy.last().all("host"), [spy.addr.to_string()]);
    // Absolute form agreeing with Host: one Host, the authority's.
    let answer = raw_request(
        gw.addr,
        &format!(
            "GET http://Admin.Example.com./x HTTP/1.1\r\nhost: admin.example.com\r\norigin: {ADMIN}"
        ),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let seen = spy.last();
    assert_eq!(seen.request_line, "GET /x HTTP/1.1");
    assert_eq!(seen.all("host"), ["admin.example.com"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f7_h2_authority_is_the_host_and_a_conflicting_host_is_refused() {
    let spy = RawSpy::start("", "").await;
    let gw = Gw::start(&host_config(&spy.url())).await;
    let h2 = h2_client();
    let mut headers = HeaderMap::new();
    headers.insert("origin", HeaderValue::from_static(APP));
    headers.insert("host", HeaderValue::from_static("admin.example.com"));
    let answer = send_map(&h2, "GET", &gw.url("/x"), headers, Bytes::new()).await;
    assert_eq!(answer.version, Version::HTTP_2);
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.header("access-control-allow-origin"), Some(APP));
    assert_eq!(spy.count(), 0);
    let mut headers = HeaderMap::new();
    headers.insert("origin", HeaderValue::from_static(APP));
    let answer = send_map(&h2, "GET", &gw.url("/x"), headers, Bytes::new()).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(spy.last().all("host"), [gw.addr.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f12_connection_cannot_remove_host_origin_or_cors_headers() {
    let spy = RawSpy::start("", "").await;
    let gw = Gw::start(&config(
        "",
        &format!("allow_origins = [\"{APP}\"]"),
        &route("/", &spy.url(), ""),
    ))
    .await;
    let answer = raw_request(
        gw.addr,
        &format!(
            "POST /x HTTP/1.1\r\nhost: api.example\r\norigin: {APP}\r\naccess-control-request-headers: x-a\r\nx-hop: 1\r\ncontent-length: 3\r\nconnection: Host, Origin, content-length, Access-Control-Request-Headers, x-hop\r\n\r\nabc"
        ),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let seen = spy.last();
    assert_eq!(seen.all("host"), ["api.example"]);
    assert_eq!(seen.all("origin"), [APP]);
    assert_eq!(seen.all("access-control-request-headers"), ["x-a"]);
    assert_eq!(seen.all("content-length"), ["3"]);
    assert!(
        seen.all("x-hop").is_empty(),
        "a real hop-by-hop header still goes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f11_forwarding_headers_of_an_untrusted_client_are_replaced() {
    let spy = RawSpy::start("", "").await;
    let gw = Gw::start(&config("", "", &route("/", &spy.url(), ""))).await;
    raw_request(
        gw.addr,
        "GET /x HTTP/1.1\r\nhost: api.example.com\r\nx-forwarded-host: evil.example\r\nx-forwarded-proto: https\r\nx-forwarded-for: 10.0.0.1\r\nx-forwarded-for: 10.0.0.2\r\nforwarded: for=1.2.3.4;host=evil.example;proto=https\r\nx-real-ip: 10.9.9.9",
    )
    .await;
    let seen = spy.last();
    assert_eq!(seen.all("x-forwarded-host"), ["api.example.com"]);
    assert_eq!(seen.all("x-forwarded-proto"), ["http"]);
    assert_eq!(seen.all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(
        seen.all("forwarded"),
        ["for=127.0.0.1;host=\"api.example.com\";proto=http"]
    );
    assert_eq!(seen.all("x-real-ip"), ["127.0.0.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f11_forwarding_headers_of_a_trusted_proxy_are_kept_and_appended() {
    let spy = RawSpy::start("", "").await;
    let gw = Gw::start(&config(
        "trusted_proxies = [\"127.0.0.0/8\"]",
        "",
        &route("/", &spy.url(), ""),
    ))
    .await;
    raw_request(
        gw.addr,
        "GET /x HTTP/1.1\r\nhost: 10.0.0.5:8080\r\nx-forwarded-host: api.example.com\r\nx-forwarded-proto: https\r\nx-forwarded-for: 192.0.2.1\r\nforwarded: for=192.0.2.1;proto=https\r\nx-real-ip: 192.0.2.1\r\nx-request-id: lb-7",
    )
    .await;
    let seen = spy.last();
    assert_eq!(seen.all("x-forwarded-host"), ["api.example.com"]);
    assert_eq!(seen.all("x-forwarded-proto"), ["https"]);
    assert_eq!(seen.all("x-forwarded-for"), ["192.0.2.1, 127.0.0.1"]);
    assert_eq!(
        seen.all("forwarded"),
        ["for=192.0.2.1;proto=https, for=127.0.0.1;host=\"10.0.0.5:8080\";proto=http"]
    );
    assert_eq!(seen.all("x-real-ip"), ["192.0.2.1"]);
    assert_eq!(seen.all("x-request-id"), ["lb-7"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_an_upstream_cannot_fake_the_gateways_refusal_reason() {
    let spy = RawSpy::start("x-corsgate-reason: origin-not-allowed\r\n", "").await;
    let gw = Gw::start(&config(
        "",
        &format!("allow_origins = [\"{APP}\"]"),
        &format!(
            "{}{}",
            route("/api", &spy.url(), ""),
            route("/legacy", &spy.url(), "cors = \"off\""),
        ),
    ))
    .await;
    for path in ["/api/x", "/legacy/x"] {
        let answer = raw_request(
            gw.addr,
            &format!("GET {path} HTTP/1.1\r\nhost: api.example\r\norigin: {APP}"),
        )
        .await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-corsgate-reason"), None, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_a_clients_request_id_is_not_the_gateways() {
    let spy = RawSpy::start("", "").await;
    let gw = Gw::start(&config("", "", &route("/", &spy.url(), ""))).await;
    let answer = raw_request(
        gw.addr,
        "GET /x HTTP/1.1\r\nhost: api.example\r\nx-request-id: trace-42",
    )
    .await;
    let seen = spy.last();
    let id = seen.one("x-request-id").unwrap().to_owned();
    assert_eq!(id.len(), 32, "{id}");
    assert_eq!(answer.header("x-request-id"), Some(id.as_str()));
    assert_eq!(seen.all("x-client-request-id"), ["trace-42"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f14_ipv6_literal_host_routes_match() {
    let spy = RawSpy::start("", "").await;
    let gw = Gw::start(&config(
        "",
        &format!("allow_origins = [\"{APP}\"]"),
        &format!(
            "{}host = \"[::1]\"\ncors = \"off\"\n\n{}",
            route("/", &spy.url(), ""),
            route("/", &spy.url(), ""),
        ),
    ))
    .await;
    let answer = raw_request(
        gw.addr,
        &format!("GET /x HTTP/1.1\r\nhost: [0:0::1]:8080\r\norigin: {APP}"),
    )
    .await;
    assert_eq!(
        answer.header("access-control-allow-origin"),
        None,
        "the [::1] route (off)"
    );
    assert_eq!(spy.last().all("host"), ["[::1]:8080"]);
}

/// The problems `check` reports for one route written with `extra` keys.
fn route_problems(path: &str, extra: &str) -> Vec<String> {
    let toml =
        format!("[[route]]\npath = \"{path}\"\nupstream = \"http://127.0.0.1:9\"\n{extra}\n");
    config::check(&toml)
        .problems
        .iter()
        .filter(|p| p.diagnostic.is_error())
        .map(|p| format!("{}: {}", p.diagnostic.path(), p.diagnostic.message()))
        .collect()
}

#[test]
fn f14_route_values_that_never_match_are_refused_with_the_fix() {
    for (path, host, fix) in [
        ("/api/%61dmin", "", "\"/api/admin\""),
        ("/api//x", "", "\"/api/x\""),
        ("/a/../b", "", "\"/b\""),
        ("/a/./b", "", "\"/a/b\""),
        ("/caf%c3%a9", "", "\"/caf%C3%A9\""),
        ("/api%2Fx", "", "escaped_slashes"),
        ("/api;x", "", ";parameters"),
        ("/", "host = \"Admin.example.com\"", "\"admin.example.com\""),
        (
            "/",
            "host = \"admin.example.com.\"",
            "\"admin.example.com\"",
        ),
        (
            "/",
            "host = \"bücher.example\"",
            "\"xn--bcher-kva.example\"",
        ),
        ("/", "host = \"*.example.com\"", "one name"),
        ("/", "host = \"example.com:8080\"", "\"example.com\""),
    ] {
        let problems = route_problems(path, host);
        assert_eq!(problems.len(), 1, "{path} {host}: {problems:?}");
        assert!(problems[0].contains(fix), "{path} {host}: {problems:?}");
    }
    for (path, host) in [
        ("/api/admin/", ""),
        ("/caf%C3%A9", ""),
        ("/API/Admin", ""),
        ("/.well-known/", ""),
        ("/", "host = \"[::1]\""),
        ("/", "host = \"xn--bcher-kva.example\""),
    ] {
        assert_eq!(
            route_problems(path, host),
            Vec::<String>::new(),
            "{path} {host}"
        );
    }
    let bad_settings = "[server]\nescaped_slashes = \"decode\"\npath_case = \"lower\"\ntrusted_proxies = [\"10.0.0.1/8\", \"proxy.internal\"]\n";
    let problems: Vec<String> = config::check(bad_settings)
        .problems
        .iter()
        .map(|p| format!("{}: {}", p.diagnostic.path(), p.diagnostic.message()))
        .collect();
    let joined = problems.join("\n");
    for want in [
        "server.escaped_slashes: one of reject, keep",
        "server.path_case: one of sensitive, insensitive",
        "server.trusted_proxies[0]: ",
        "\"10.0.0.0/8\"",
        "server.trusted_proxies[1]: ",
    ] {
        assert!(joined.contains(want), "{want} in {joined}");
    }
}

#[test]
fn f1_explain_resolves_routes_like_the_gateway() {
    let toml = admin_config("http://127.0.0.1:9", "");
    let gateway = config::check(&toml).gateway.unwrap();
    let raw = config::load::parse(&toml).config.unwrap();
    for url in [
        "https://api.example/api/%61dmin/users",
        "https://api.example/api//admin/users",
        "https://api.example/api/admin;x/users",
    ] {
        let request = PageRequest {
            url: url.to_owned(),
            origin: APP.to_owned(),
            method: "GET".to_owned(),
            headers: Vec::new(),
            credentials: Credentials::Include,
            initiator: Initiator::Fetch,
        };
        let e = explain(&gateway, &raw, &request).unwrap();
        assert!(
            e.route.as_deref().is_some_and(|r| r.contains("/api/admin")),
            "{url}: {:?}",
            e.route
        );
    }
}

// The canonical form, as a property: every spelling an upstream decodes to the
// same path is routed like that path.

const ROUTES: &[&str] = &["/", "/api", "/api/admin", "/api/admin/x", "/b-c", "/~u"];

fn route_gateway() -> config::GatewayConfig {
    let routes: String = ROUTES
        .iter()
        .map(|p| route(p, "http://127.0.0.1:9", ""))
        .collect();
    config::check(&config("", "", &routes)).gateway.unwrap()
}

/// A path made of segments the routes use and a few others.
fn plain_path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("api".to_owned()),
        Just("admin".to_owned()),
        Just("x".to_owned()),
        Just("b-c".to_owned()),
        Just("~u".to_owned()),
        "[a-zA-Z0-9._~-]{1,6}".prop_filter("not a dot segment", |s| s != "." && s != ".."),
    ];
    (prop::collection::vec(segment, 0..6), any::<bool>()).prop_map(|(segments, slash)| {
        let mut path = String::new();
        for s in &segments {
            path.push('/');
            path.push_str(s);
        }
        if path.is_empty() || slash {
            path.push('/');
        }
        path
    })
}

/// Another spelling of `path`: unreserved characters percent-encoded with
/// either hex case, `./`, `x/../` and doubled slashes inserted.
fn respell(path: &str, choices: &[u8]) -> String {
    let mut out = String::new();
    let mut pick = choices.iter().copied().cycle();
    for c in path.chars() {
        let k = pick.next().unwrap_or(0);
        if c == '/' {
            out.push('/');
            match k % 6 {
                0 => out.push_str("./"),
                1 => out.push_str("zz/../"),
                2 => out.push('/'),
                3 => out.push_str("%2e/"),
                _ => {}
            }
        } else if k % 3 == 0 {
            let hex = format!("%{:02x}", c as u32);
            out.push_str(&if k % 2 == 0 {
                hex.to_ascii_uppercase()
            } else {
                hex
            });
        } else {
            out.push(c);
        }
    }
    out
}

proptest! {
    #[test]
    fn canonical_form_routes_every_spelling_alike(
        path in plain_path(),
        choices in prop::collection::vec(any::<u8>(), 1..32),
    ) {
        let gateway = route_gateway();
        let rules = canonical::PathRules::default();
        let plain = canonical::canonical_path(&path, &rules).unwrap().into_owned();
        let spelled = respell(&path, &choices);
        let canonical = canonical::canonical_path(&spelled, &rules).unwrap().into_owned();
        // A trailing "./" or "zz/../" leaves a trailing slash, as it does upstream.
        let trimmed = |p: &str| if p.len() > 1 { p.trim_end_matches('/').to_owned() } else { p.to_owned() };
        prop_assert_eq!(trimmed(&canonical), trimmed(&plain), "{}", spelled);
        let route = |p: &str| gateway
                .routes
                .resolve(Some("api.example"), p)
                .route
                .map(|r| r.index);
        prop_assert_eq!(route(&canonical), route(&plain), "{}", spelled);
    }

    #[test]
    fn canonical_form_is_idempotent_and_never_panics(path in "/[ -~\u{e9}]{0,40}") {
        for rules in [
            canonical::PathRules::default(),
            canonical::PathRules {
                escaped_slashes: canonical::EscapedSlashes::Keep,
                path_case: canonical::PathCase::Insensitive,
            },
        ] {
            if let Ok(once) = canonical::canonical_path(&path, &rules) {
                let twice = canonical::canonical_path(&once, &rules).unwrap();
                prop_assert_eq!(&twice, &once);
                prop_assert!(!once.contains("//") && !once.contains("/./") && !once.contains("/../"));
                let key = canonical::match_path(&once, rules.path_case);
                prop_assert!(!key.contains(';'));
            }
        }
    }
}
