//! `corsgate_client_decisions_total` over real sockets: every label set of a
//! client-scoped route at 0 from the start, then one count per request by
//! what decided it (the static list, the source that named the client, the
//! union of registered origins, or no client), the refusals by their
//! reasons in `corsgate_requests_total`, and never a client id in a label.

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use support::bodyspy::BodySpy;
use support::{Answer, Gw, TempDir, client, send_map};

const TOKEN: &str = "registry-metrics-admin-token";

const TOKEN_ROUTE: &str = "0:/oauth2/token";
const USERINFO_ROUTE: &str = "1:/userinfo";

async fn request(url: &str, method: &str, headers: &[(&str, String)], body: &str) -> Answer {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    send_map(&client(), method, url, map, Bytes::from(body.to_owned())).await
}

async fn form(gw: &Gw, origin: &str, extra: &[(&str, String)], body: &str) -> Answer {
    let mut headers = vec![
        ("origin", origin.to_owned()),
        (
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        ),
    ];
    headers.extend(extra.iter().cloned());
    request(&gw.url("/oauth2/token"), "POST", &headers, body).await
}

async fn metrics(gw: &Gw) -> String {
    let answer = request(&gw.admin_url("/metrics"), "GET", &[], "").await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.text()
}

/// The value of one series, which must be exported.
fn value(text: &str, series: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("{series} is not exported:\n{text}"));
    line[series.len() + 1..].parse().unwrap()
}

fn decisions(route: &str, via: &str, decision: &str) -> String {
    format!(
        r#"corsgate_client_decisions_total{{route="{route}",via="{via}",decision="{decision}"}}"#
    )
}

fn refused(route: &str, reason: &str) -> String {
    format!(
        r#"corsgate_requests_total{{route="{route}",class="actual",decision="rejected",reason="{reason}"}}"#
    )
}

#[tokio::test]
async fn client_decisions_are_counted_by_what_decided_them_without_client_ids() {
    let dir = TempDir::new("registry-metrics");
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    let spy = BodySpy::start().await;
    let up = spy.url();
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
admin_token_file = "{token}"

[registry]
database = "sqlite:{db}"

[[route]]
path = "/oauth2/token"
upstream = "{up}"
[route.cors]
allow_origins = ["https://static.example"]
allow_headers = ["authorization", "content-type"]
clients = {{ identify = ["basic", "form"] }}

[[route]]
path = "/userinfo"
upstream = "{up}"
[route.cors]
allow_headers = ["authorization"]
clients = {{ identify = ["bearer-jwt"], unidentified = "registered" }}

[[route]]
path = "/plain"
upstream = "{up}"
cors = {{ allow_origins = ["https://static.example"] }}
"#,
        token = dir.join("token").display(),
        db = dir.join("registry.db").display(),
    );
    let gw = Gw::start(&text).await;

    // Every label set of the client-scoped routes, at 0, before any request
    // and any client; none for the route without clients.
    let start = metrics(&gw).await;
    for route in [TOKEN_ROUTE, USERINFO_ROUTE] {
        for via in ["static", "basic", "form", "bearer-jwt", "union", "none"] {
            for decision in ["allowed", "rejected"] {
                assert_eq!(value(&start, &decisions(route, via, decision)), 0);
            }
        }
        for reason in [
            "client-unidentified",
            "client-unknown",
            "origin-not-allowed-for-client",
        ] {
            assert_eq!(value(&start, &refused(route, reason)), 0);
        }
    }
    assert!(!start.contains(r#"route="2:/plain",via="#), "{start}");

    let put = request(
        &gw.admin_url("/clients/spa-secret-id"),
        "PUT",
        &[
            ("authorization", format!("Bearer {TOKEN}")),
            ("content-type", "application/json".to_owned()),
        ],
        r#"{"allowed_origins": ["https://spa.example"]}"#,
    )
    .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text());

    let basic = (
        "authorization",
        format!("Basic {}", STANDARD.encode("spa-secret-id:pw")),
    );
    // Static list: no source read.
    let answer = form(&gw, "https://static.example", &[], "client_id=nobody").await;
    assert!(answer.headers.contains_key("access-control-allow-origin"));
    // The form names the client, its list allows; then refuses another origin.
    form(&gw, "https://spa.example", &[], "client_id=spa-secret-id").await;
    form(&gw, "https://evil.example", &[], "client_id=spa-secret-id").await;
    // Basic names the client, its list allows.
    form(&gw, "https://spa.example", &[basic], "grant_type=x").await;
    // An unknown client, then no client at all.
    form(&gw, "https://spa.example", &[], "client_id=ghost-id").await;
    form(&gw, "https://spa.example", &[], "grant_type=x").await;
    // A preflight: the union decides (allowed, then refused).
    for origin in ["https://spa.example", "https://evil.example"] {
        request(
            &gw.url("/oauth2/token"),
            "OPTIONS",
            &[
                ("origin", origin.to_owned()),
                ("access-control-request-method", "POST".to_owned()),
                ("access-control-request-headers", "authorization".to_owned()),
            ],
            "",
        )
        .await;
    }
    // Userinfo: a bearer JWT names the client; an opaque token leaves the
    // union to decide (unidentified = "registered").
    let jwt = format!(
        "Bearer e30.{}.c2ln",
        URL_SAFE_NO_PAD.encode(r#"{"client_id":"spa-secret-id"}"#)
    );
    let userinfo = |auth: String| {
        let gw = &gw;
        async move {
            request(
                &gw.url("/userinfo"),
                "GET",
                &[
                    ("origin", "https://spa.example".to_owned()),
                    ("authorization", auth),
                ],
                "",
            )
            .await
        }
    };
    userinfo(jwt).await;
    userinfo("Bearer ory_at_opaque".to_owned()).await;

    let after = metrics(&gw).await;
    let expect = [
        (TOKEN_ROUTE, "static", "allowed", 1),
        (TOKEN_ROUTE, "form", "allowed", 1),
        // The evil origin, and the unknown client.
        (TOKEN_ROUTE, "form", "rejected", 2),
        (TOKEN_ROUTE, "basic", "allowed", 1),
        (TOKEN_ROUTE, "basic", "rejected", 0),
        (TOKEN_ROUTE, "none", "rejected", 1),
        (TOKEN_ROUTE, "union", "allowed", 1),
        (TOKEN_ROUTE, "union", "rejected", 1),
        (USERINFO_ROUTE, "bearer-jwt", "allowed", 1),
        (USERINFO_ROUTE, "union", "allowed", 1),
        (USERINFO_ROUTE, "none", "allowed", 0),
    ];
    for (route, via, decision, count) in expect {
        assert_eq!(
            value(&after, &decisions(route, via, decision)),
            count,
            "{route} {via} {decision}:\n{after}"
        );
    }
    for (reason, count) in [
        ("origin-not-allowed-for-client", 1),
        ("client-unknown", 1),
        ("client-unidentified", 1),
    ] {
        assert_eq!(
            value(&after, &refused(TOKEN_ROUTE, reason)),
            count,
            "{reason}"
        );
    }
    // No client id anywhere in the exposition.
    for id in ["spa-secret-id", "ghost-id", "nobody"] {
        assert!(!after.contains(id), "{id} in the metrics:\n{after}");
    }
}
