//! The admin listener's access rules and what it lists: every endpoint that
//! needs the admin token refuses a missing and a wrong one with the same
//! answer and takes the right one (table-driven over the gateway's own list of
//! admin endpoints, the one its router dispatches on); `/stats` lists the
//! routes of the configuration running.

mod support;

use bytes::Bytes;
use corsgate_gateway::{Access, AdminEndpoint, Options, ReloadOutcome, admin_endpoints};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use support::binary::{Serve, Stderr};
use support::*;

const TOKEN: &str = "a-long-random-admin-token-0123456789";

/// The endpoints that hold no data and need no token; every other endpoint
/// of the table must refuse a caller without the token.
const OPEN: [&str; 6] = [
    "/",
    "/dashboard.js",
    "/dashboard.css",
    "/metrics",
    "/healthz",
    "/readyz",
];

/// A gateway with every admin endpoint in use: a registry, a shadow
/// configuration and, when `token`, `admin_token_file`.
struct Admin {
    gw: Gw,
    _spy: Spy,
    dir: TempDir,
}

async fn admin(name: &str, token: bool) -> Admin {
    let spy = Spy::ok().await;
    let dir = TempDir::new(name);
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    let token_line = if token {
        format!(
            "admin_token_file = {:?}",
            dir.join("token").to_str().unwrap()
        )
    } else {
        String::new()
    };
    let text = format!(
        "{}\n[registry]\ndatabase = \"sqlite:{}\"\n",
        config(
            &token_line,
            "allow_origins = [\"https://app.example\"]",
            &route("/api", &spy.url(), ""),
        ),
        dir.join("registry.db").display()
    );
    let (live, candidate) = (dir.join("live.toml"), dir.join("candidate.toml"));
    std::fs::write(&live, &text).unwrap();
    std::fs::write(&candidate, &text).unwrap();
    let gw = Gw::start_with(&text, Options::new().config_path(&live).shadow(&candidate)).await;
    Admin { gw, _spy: spy, dir }
}

/// A request that the endpoint answers with a `2xx` once let through.
fn request_for(endpoint: &AdminEndpoint) -> (String, Bytes) {
    let path = endpoint.path().replace("{id}", "spa");
    let body = match (endpoint.method(), endpoint.path()) {
        ("PUT", "/clients/{id}") => {
            json!({"name": "SPA", "allowed_origins": ["https://spa.example"]})
        }
        ("POST", "/explain") => {
            json!({"origin": "https://app.example", "url": "http://127.0.0.1/api"})
        }
        _ => return (path, Bytes::new()),
    };
    (path, Bytes::from(body.to_string()))
}

/// Sends `endpoint`'s request with `headers` added.
async fn call(gw: &Gw, endpoint: &AdminEndpoint, headers: &[(&str, &str)]) -> Answer {
    let (path, body) = request_for(endpoint);
    let mut map = HeaderMap::new();
    if !body.is_empty() {
        map.insert("content-type", HeaderValue::from_static("application/json"));
    }
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    send_map(
        &client(),
        endpoint.method(),
        &gw.admin_url(&path),
        map,
        body,
    )
    .await
}

/// What a refusal is made of: status, challenge, type and body.
fn shape(answer: &Answer) -> (u16, Option<String>, Option<String>, Value) {
    (
        answer.status.as_u16(),
        answer.header("www-authenticate").map(str::to_owned),
        answer.header("content-type").map(str::to_owned),
        serde_json::from_slice(&answer.body).unwrap_or(Value::Null),
    )
}

/// The table in an order where each right-token call can succeed: the client
/// written first, deleted last.
fn in_call_order() -> Vec<&'static AdminEndpoint> {
    let mut endpoints: Vec<&AdminEndpoint> = admin_endpoints().iter().collect();
    endpoints.sort_by_key(|e| match e.method() {
        "PUT" => 0,
        "DELETE" => 2,
        _ => 1,
    });
    endpoints
}

#[tokio::test]
async fn every_endpoint_that_needs_the_token_refuses_a_missing_and_a_wrong_one_alike() {
    let a = admin("admin-auth-token", true).await;
    let bearer = format!("Bearer {TOKEN}");
    let basic = format!("Basic {TOKEN}");
    let mut refusals = Vec::new();
    let mut guarded = 0;
    for endpoint in in_call_order() {
        let what = format!("{} {}", endpoint.method(), endpoint.path());
        if OPEN.contains(&endpoint.path()) {
            assert_eq!(endpoint.access(), Access::Open, "{what}");
            let answer = call(&a.gw, endpoint, &[]).await;
            assert_eq!(answer.status, 200, "{what}: open");
            continue;
        }
        assert_ne!(
            endpoint.access(),
            Access::Open,
            "{what} must need the token"
        );
        guarded += 1;
        for headers in [
            &[][..],
            &[("authorization", "Bearer wrong")][..],
            &[("authorization", "Bearer")][..],
            &[("authorization", basic.as_str())][..],
        ] {
            let answer = call(&a.gw, endpoint, headers).await;
            assert_eq!(answer.status, 401, "{what} {headers:?}: {}", answer.text());
            refusals.push((what.clone(), shape(&answer)));
        }
        // The token in the URL is no token.
        let (path, _) = request_for(endpoint);
        let answer = send(
            endpoint.method(),
            &a.gw.admin_url(&format!("{path}?token={TOKEN}")),
            &[],
        )
        .await;
        assert_eq!(answer.status, 401, "{what}: never in the URL");
        // A host the listener does not answer, even with the token.
        let answer = call(
            &a.gw,
            endpoint,
            &[("host", "evil.example"), ("authorization", &bearer)],
        )
        .await;
        assert_eq!(answer.status, 421, "{what}");

        let answer = call(&a.gw, endpoint, &[("authorization", &bearer)]).await;
        assert!(
            answer.status.is_success(),
            "{what} with the token: {} {}",
            answer.status,
            answer.text()
        );
    }
    assert!(guarded >= 12, "{guarded}");
    let (first, expected) = &refusals[0];
    assert_eq!(expected.1.as_deref(), Some("Bearer"));
    assert_eq!(expected.2.as_deref(), Some("application/problem+json"));
    assert_eq!(expected.3["status"], 401);
    for (what, refusal) in &refusals {
        assert_eq!(refusal, expected, "{what} refuses unlike {first}");
    }
}

#[tokio::test]
async fn writes_need_a_token_file_and_never_come_from_a_web_page() {
    // Without a token file: reads are open, writes refused, all alike.
    let a = admin("admin-auth-none", false).await;
    let mut refusals = Vec::new();
    for endpoint in in_call_order() {
        let what = format!("{} {}", endpoint.method(), endpoint.path());
        let answer = call(&a.gw, endpoint, &[]).await;
        if endpoint.access() == Access::Write {
            assert_eq!(answer.status, 403, "{what}: {}", answer.text());
            refusals.push((what, shape(&answer)));
        } else {
            // Past the access check (`/clients/spa` was never written: 404).
            assert!(
                ![401, 403, 503].contains(&answer.status.as_u16()),
                "{what}: {}",
                answer.text()
            );
        }
    }
    assert!(refusals.len() >= 3);
    let (_, expected) = &refusals[0];
    assert_eq!(expected.3["title"], "writes disabled");
    for (what, refusal) in &refusals {
        assert_eq!(refusal, expected, "{what}");
    }

    // With one: a write carrying Origin is refused even with the token.
    let a = admin("admin-auth-origin", true).await;
    let bearer = format!("Bearer {TOKEN}");
    let mut refusals = Vec::new();
    for endpoint in admin_endpoints()
        .iter()
        .filter(|e| e.access() == Access::Write)
    {
        let what = format!("{} {}", endpoint.method(), endpoint.path());
        let answer = call(
            &a.gw,
            endpoint,
            &[
                ("authorization", &bearer),
                ("origin", "https://evil.example"),
            ],
        )
        .await;
        assert_eq!(answer.status, 403, "{what}");
        refusals.push((what, shape(&answer)));
    }
    let (_, expected) = &refusals[0];
    assert_eq!(expected.3["title"], "origin refused");
    for (what, refusal) in &refusals {
        assert_eq!(refusal, expected, "{what}");
    }
}

#[tokio::test]
async fn an_unreadable_token_file_refuses_every_endpoint_that_needs_it() {
    let a = admin("admin-auth-unreadable", true).await;
    std::fs::write(a.dir.join("token"), "  \n").unwrap();
    let bearer = format!("Bearer {TOKEN}");
    for endpoint in admin_endpoints()
        .iter()
        .filter(|e| e.access() != Access::Open)
    {
        let answer = call(&a.gw, endpoint, &[("authorization", &bearer)]).await;
        assert_eq!(
            answer.status,
            503,
            "{} {}",
            endpoint.method(),
            endpoint.path()
        );
        assert_eq!(shape(&answer).3["title"], "token unavailable");
    }
}

#[tokio::test]
async fn only_the_listed_paths_and_methods_are_answered() {
    let a = admin("admin-auth-paths", true).await;
    for path in [
        "/clients/a/b",
        "/registry/x",
        "/metrics/",
        "/admin",
        "/clients/",
    ] {
        let answer = send("GET", &a.gw.admin_url(path), &[]).await;
        assert_eq!(answer.status, 404, "{path}");
    }
    let answer = send("POST", &a.gw.admin_url("/metrics"), &[]).await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.header("allow"), Some("GET, HEAD"));
    let answer = send("PATCH", &a.gw.admin_url("/clients/spa"), &[]).await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.header("allow"), Some("GET, HEAD, PUT, DELETE"));
    let answer = send("HEAD", &a.gw.admin_url("/healthz"), &[]).await;
    assert_eq!(answer.status, 200);
}

#[test]
fn the_serve_banner_names_every_admin_endpoint() {
    let dir = TempDir::new("admin-auth-banner");
    let path = dir.join("corsgate.toml");
    std::fs::write(
        &path,
        config(
            "",
            "allow_origins = [\"https://app.example\"]",
            &route("/api", "http://127.0.0.1:9", ""),
        ),
    )
    .unwrap();
    let mut serve = Serve::start(&path, Stderr::Read);
    let (_, admin) = serve.addresses();
    let line = serve
        .banner
        .iter()
        .find(|l| l.starts_with("admin: "))
        .cloned()
        .expect("an admin line");
    let named: Vec<&str> = line["admin: ".len()..].split(' ').collect();
    assert_eq!(named[0], format!("http://{admin}/"));
    for endpoint in admin_endpoints().iter().filter(|e| e.listed()) {
        let path = endpoint.path();
        assert!(
            path == "/" || named.contains(&path),
            "{path} missing: {line}"
        );
    }
}

/// GET `url` as JSON.
async fn get_json(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let answer = send("GET", url, headers).await;
    let json = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    (answer.status.as_u16(), json)
}

#[tokio::test]
async fn a_route_removed_by_a_reload_leaves_stats() {
    let spy = Spy::ok().await;
    let dir = TempDir::new("admin-auth-stats");
    let path = dir.join("corsgate.toml");
    let cors = "allow_origins = [\"https://app.example\"]";
    let both = config(
        "",
        cors,
        &format!(
            "{}{}",
            route("/a", &spy.url(), ""),
            route("/b", &spy.url(), "")
        ),
    );
    std::fs::write(&path, &both).unwrap();
    let gw = Gw::from_file(&path, false).await;
    let answer = send("GET", &gw.url("/b/x"), &[("origin", "https://app.example")]).await;
    assert_eq!(answer.status, 200);

    let names = |stats: &Value| -> Vec<String> {
        stats["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["route"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, stats) = get_json(&gw.admin_url("/stats"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(names(&stats), ["0:/a", "1:/b", "unmatched"]);

    write_atomically(&path, &config("", cors, &route("/a", &spy.url(), "")));
    let outcome = gw.handle.reload();
    assert!(
        matches!(outcome, ReloadOutcome::Applied { .. }),
        "{outcome:?}"
    );
    let (_, stats) = get_json(&gw.admin_url("/stats"), &[]).await;
    assert_eq!(names(&stats), ["0:/a", "unmatched"], "{stats:#}");
    // Its request happened: it stays in the totals.
    assert_eq!(stats["totals"]["allowed"], 1);
}
