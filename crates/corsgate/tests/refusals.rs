//! The refusal log (`GET /refusals`), `POST /explain`, `GET /routes`,
//! `GET /stats` and the dashboard's page on the admin listener: bounded under
//! a flood of distinct origins (the gateway's memory measured), the JSON as
//! documented in docs/dashboard.md, the fixes explain gives, and the access
//! rules of the admin listener.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use support::binary::{Serve, Stderr};
use support::{Gw, TempDir, config, route, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ORIGIN: &str = "https://app.example.com";

/// `[server.cors]` of most tests: one page, `PUT`, and `content-type`.
const CORS: &str = "allow_origins = [\"https://app.example.com\"]\nallow_methods = [\"PUT\"]\nallow_headers = [\"content-type\"]\n";

async fn get_json(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let answer = send("GET", url, headers).await;
    let value = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {}", answer.text()));
    (answer.status.as_u16(), value)
}

async fn post_explain(gw: &Gw, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let client = support::client();
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    let answer = support::send_map(
        &client,
        "POST",
        &gw.admin_url("/explain"),
        map,
        bytes::Bytes::copy_from_slice(body.as_bytes()),
    )
    .await;
    let value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    (answer.status.as_u16(), value)
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// Three known refusals on `/api`: an origin, a method, a header.
async fn refuse_three(gw: &Gw) {
    let url = gw.url("/api/items");
    send("GET", &url, &[("origin", "https://shop.example")]).await;
    send("GET", &url, &[("origin", "https://shop.example")]).await;
    let preflight = |method: &'static str, headers: &'static str| {
        let url = url.clone();
        async move {
            send(
                "OPTIONS",
                &url,
                &[
                    ("origin", ORIGIN),
                    ("access-control-request-method", method),
                    ("access-control-request-headers", headers),
                ],
            )
            .await
        }
    };
    assert_eq!(preflight("PATCH", "content-type").await.status, 403);
    assert_eq!(preflight("PUT", "x-api-key").await.status, 403);
}

#[tokio::test]
async fn refusals_json_has_the_documented_fields_and_the_fix_of_each_entry() {
    let spy = support::Spy::ok().await;
    let gw = Gw::start(&config("", CORS, &route("/api", &spy.url(), ""))).await;
    refuse_three(&gw).await;

    let (status, log) = get_json(&gw.admin_url("/refusals"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        keys(&log),
        [
            "capacity",
            "entries",
            "evictions",
            "limit",
            "matching",
            "offset",
            "recent",
            "total",
            "tracked"
        ]
    );
    assert_eq!(log["total"], 4);
    assert_eq!(log["tracked"], 3);
    assert_eq!(log["capacity"], 1024);
    assert_eq!(log["evictions"], 0);
    assert_eq!(
        (log["offset"].as_u64(), log["limit"].as_u64()),
        (Some(0), Some(50))
    );
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    for entry in entries {
        assert_eq!(
            keys(entry),
            [
                "count",
                "count_error",
                "first_seen",
                "fix",
                "last",
                "last_seen",
                "origin",
                "reason",
                "route"
            ]
        );
        assert_eq!(
            keys(&entry["last"]),
            [
                "class",
                "method",
                "request_id",
                "requested_headers",
                "requested_method",
                "url"
            ]
        );
        assert_eq!(
            keys(&entry["fix"]),
            ["console_message", "fixes", "notes", "route", "verdict"]
        );
        assert_eq!(entry["route"], "0:/api");
        assert_eq!(entry["fix"]["verdict"], "blocked");
        assert_eq!(entry["fix"]["route"], "route[0] (path \"/api\")");
        assert!(
            entry["first_seen"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z') && t.len() == 24),
            "{entry}"
        );
    }
    // The largest count first.
    let first = &entries[0];
    assert_eq!(first["origin"], "https://shop.example");
    assert_eq!(first["reason"], "origin-not-allowed");
    assert_eq!(
        (first["count"].as_u64(), first["count_error"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(first["last"]["class"], "actual");
    assert_eq!(first["last"]["method"], "GET");
    assert_eq!(
        first["last"]["url"],
        format!("http://{}/api/items", gw.addr).as_str()
    );
    assert_eq!(first["last"]["request_id"].as_str().unwrap().len(), 32);
    let fix = |entry: &Value| -> (String, String) {
        let fixes = entry["fix"]["fixes"].as_array().unwrap();
        assert_eq!(fixes.len(), 1, "{entry}");
        (
            fixes[0]["key"].as_str().unwrap().to_owned(),
            fixes[0]["line"].as_str().unwrap().to_owned(),
        )
    };
    assert_eq!(
        fix(first),
        (
            "route[0].cors (path \"/api\")".to_owned(),
            "cors = { allow_origins = [\"https://app.example.com\", \"https://shop.example\"] }"
                .to_owned()
        )
    );
    let by_reason = |reason: &str| {
        entries
            .iter()
            .find(|e| e["reason"] == reason)
            .unwrap_or_else(|| panic!("no {reason} entry: {log}"))
    };
    let method = by_reason("method-not-allowed");
    assert_eq!(method["last"]["class"], "preflight");
    assert_eq!(method["last"]["requested_method"], "PATCH");
    assert_eq!(method["last"]["requested_headers"], "content-type");
    assert_eq!(
        fix(method).1,
        "cors = { allow_methods = [\"PUT\", \"PATCH\"] }"
    );
    let header = by_reason("header-not-allowed");
    assert_eq!(
        fix(header).1,
        "cors = { allow_headers = [\"content-type\", \"x-api-key\"] }"
    );

    // The ring, newest first, with the same request fields.
    let recent = log["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 4);
    assert_eq!(
        keys(&recent[0]),
        [
            "class",
            "method",
            "origin",
            "reason",
            "request_id",
            "requested_headers",
            "requested_method",
            "route",
            "time",
            "url"
        ]
    );
    assert_eq!(recent[0]["reason"], "header-not-allowed");
    assert_eq!(recent[3]["reason"], "origin-not-allowed");

    // Paging and the route filter.
    let (_, page) = get_json(&gw.admin_url("/refusals?offset=1&limit=1"), &[]).await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 1);
    assert_eq!(page["matching"], 3);
    assert_eq!(page["entries"][0]["origin"], entries[1]["origin"]);
    let (_, none) = get_json(&gw.admin_url("/refusals?route=1%3A%2Fnope"), &[]).await;
    assert_eq!(none["matching"], 0);
    let (_, api) = get_json(&gw.admin_url("/refusals?route=0%3A%2Fapi"), &[]).await;
    assert_eq!(api["matching"], 3);

    // The upstream saw the two actual requests, never the preflights.
    assert_eq!(spy.count(), 2);
}

#[tokio::test]
async fn a_fix_is_computed_again_after_a_reload_that_applies_it() {
    let dir = TempDir::new("refusals");
    let path = dir.path().join("corsgate.toml");
    let spy = support::Spy::ok().await;
    let routes = route("/api", &spy.url(), "");
    std::fs::write(&path, config("", CORS, &routes)).unwrap();
    let gw = Gw::from_file(&path, false).await;
    send(
        "GET",
        &gw.url("/api/x"),
        &[("origin", "https://shop.example")],
    )
    .await;
    let (_, before) = get_json(&gw.admin_url("/refusals"), &[]).await;
    assert_eq!(before["entries"][0]["fix"]["verdict"], "blocked");
    // Read twice: the cached fix is the same.
    let (_, again) = get_json(&gw.admin_url("/refusals"), &[]).await;
    assert_eq!(before["entries"][0]["fix"], again["entries"][0]["fix"]);

    let fixed = CORS.replace(
        "\"https://app.example.com\"]",
        "\"https://app.example.com\", \"https://shop.example\"]",
    );
    std::fs::write(&path, config("", &fixed, &routes)).unwrap();
    assert!(matches!(
        gw.handle.reload(),
        corsgate_gateway::ReloadOutcome::Applied { .. }
    ));
    let (_, after) = get_json(&gw.admin_url("/refusals"), &[]).await;
    let entry = &after["entries"][0];
    assert_eq!(entry["count"], 1, "the log survives the reload");
    assert_eq!(entry["fix"]["verdict"], "allowed", "{entry}");
    assert_eq!(entry["fix"]["fixes"], json!([]));
}

/// `corsgate explain --format json` on the same configuration and request.
fn explain_cli(config_path: &std::path::Path, args: &[&str]) -> Value {
    let mut all = vec![
        "explain",
        "--config",
        config_path.to_str().unwrap(),
        "--format",
        "json",
    ];
    all.extend_from_slice(args);
    let ran = support::binary::run(&all, Duration::from_secs(10));
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {ran:?}"))
}

#[tokio::test]
async fn explain_endpoint_answers_what_corsgate_explain_prints_and_refuses_bad_input() {
    let dir = TempDir::new("refusals");
    let path = dir.path().join("corsgate.toml");
    std::fs::write(
        &path,
        config("", CORS, &route("/api", "http://127.0.0.1:9", "")),
    )
    .unwrap();
    let gw = Gw::from_file(&path, false).await;
    let url = "https://api.example.com/api/items";

    let (status, blocked) = post_explain(
        &gw,
        &json!({"origin": ORIGIN, "url": url, "method": "PATCH", "headers": [["x-api-key", "k"]], "credentials": "include"}).to_string(),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(status, 200, "{blocked}");
    let cli = explain_cli(
        &path,
        &[
            "--url",
            url,
            "--origin",
            ORIGIN,
            "--method",
            "PATCH",
            "--header",
            "x-api-key:k",
            "--credentials",
            "include",
        ],
    );
    assert_eq!(blocked, cli);
    assert_eq!(blocked["verdict"], "blocked");

    // `"name: value"` lines as `--header` takes them; the defaults.
    let (status, allowed) = post_explain(
        &gw,
        &json!({"origin": ORIGIN, "url": url, "method": "PUT", "headers": ["content-type: application/json"]}).to_string(),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(allowed["verdict"], "allowed");
    assert_eq!(allowed["credentials"], "same-origin");
    assert_eq!(
        allowed,
        explain_cli(
            &path,
            &[
                "--url",
                url,
                "--origin",
                ORIGIN,
                "--method",
                "PUT",
                "--header",
                "content-type: application/json"
            ]
        )
    );

    // Bad input: 400 with explain's own message.
    let (status, error) = post_explain(
        &gw,
        &json!({"origin": "https://app.example.com/", "url": url}).to_string(),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        error["error"],
        "origin: \"https://app.example.com/\" is not an origin: an origin has no path, not even a trailing slash; did you mean \"https://app.example.com\"?"
    );
    let (status, error) = post_explain(
        &gw,
        &json!({"origin": ORIGIN, "url": "/api/items"}).to_string(),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        error["error"],
        "\"/api/items\" is not an absolute URL (write it as http://host/path)"
    );
    let (status, error) = post_explain(
        &gw,
        &json!({"origin": ORIGIN, "url": url, "credentials": "always"}).to_string(),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("is not a credentials mode"),
        "{error}"
    );
    let (status, error) = post_explain(
        &gw,
        "{\"origin\": 1}",
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(status, 400, "{error}");
    let (status, _) = post_explain(
        &gw,
        &json!({"origin": ORIGIN, "url": url, "cookies": true}).to_string(),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(status, 400, "unknown fields are refused");
    // The body is bounded.
    let big = json!({"origin": ORIGIN, "url": url, "headers": vec!["x-a: b"; 4000]}).to_string();
    assert!(big.len() > 16 * 1024);
    let (status, _) = post_explain(&gw, &big, &[("content-type", "application/json")]).await;
    assert_eq!(status, 413);
    // JSON only, and not for another site's page.
    let (status, _) = post_explain(
        &gw,
        &json!({"origin": ORIGIN, "url": url}).to_string(),
        &[("content-type", "text/plain")],
    )
    .await;
    assert_eq!(status, 415);
    let (status, _) = post_explain(
        &gw,
        &json!({"origin": ORIGIN, "url": url}).to_string(),
        &[
            ("content-type", "application/json"),
            ("origin", "https://evil.example"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    let own = format!("http://{}", gw.admin.unwrap());
    let (status, _) = post_explain(
        &gw,
        &json!({"origin": ORIGIN, "url": url}).to_string(),
        &[
            ("content-type", "application/json"),
            ("origin", own.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 200, "the dashboard's own page may post");
    let answer = send("GET", &gw.admin_url("/explain"), &[]).await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.header("allow"), Some("POST"));
}

#[tokio::test]
async fn routes_and_stats_show_policies_and_counts() {
    let spy = support::Spy::ok().await;
    let routes = format!(
        "{}{}{}",
        route("/api", &spy.url(), ""),
        route("/login", &spy.url(), "cors = \"closed\""),
        route("/legacy", &spy.url(), "cors = \"off\""),
    );
    let gw = Gw::start(&config("", CORS, &routes)).await;
    send("GET", &gw.url("/api/x"), &[("origin", ORIGIN)]).await;
    send(
        "GET",
        &gw.url("/api/x"),
        &[("origin", "https://shop.example")],
    )
    .await;
    send("GET", &gw.url("/api/x"), &[]).await;

    let (status, routes) = get_json(&gw.admin_url("/routes"), &[]).await;
    assert_eq!(status, 200);
    let list = routes["routes"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(
        keys(&list[0]),
        [
            "cors",
            "debug",
            "host",
            "index",
            "label",
            "name",
            "path",
            "policy",
            "policy_name",
            "strip_prefix",
            "upstream"
        ]
    );
    let cors: Vec<&str> = list.iter().map(|r| r["cors"].as_str().unwrap()).collect();
    assert_eq!(cors, ["on", "closed", "off"]);
    assert_eq!(list[0]["policy"]["allow_origins"], json!([ORIGIN]));
    assert_eq!(list[2]["policy"], Value::Null);
    assert_eq!(routes["default_policy"]["allow_methods"], json!(["PUT"]));

    let (status, stats) = get_json(&gw.admin_url("/stats"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        keys(&stats),
        ["history", "interval_seconds", "routes", "time", "totals"]
    );
    assert_eq!(stats["interval_seconds"], 10);
    let totals = &stats["totals"];
    assert_eq!(keys(totals), ["allowed", "by_reason", "pass", "rejected"]);
    assert_eq!(
        (
            totals["allowed"].as_u64(),
            totals["rejected"].as_u64(),
            totals["pass"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(totals["by_reason"]["origin-not-allowed"], 1);
    let api = stats["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "0:/api")
        .expect("the route's counts");
    assert_eq!(
        (api["allowed"].as_u64(), api["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    // The interval under way is there from the start.
    let history = stats["history"].as_array().unwrap();
    let last = history.last().expect("a partial interval");
    assert_eq!(last["partial"], true);
    assert_eq!(last["rejected"], 1);
}

#[tokio::test]
async fn dashboard_follows_the_admin_access_rules() {
    let dir = TempDir::new("refusals");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token-for-the-dashboard\n").unwrap();
    let server = format!(
        "admin_hosts = [\"admin.internal\"]\nadmin_token_file = {:?}\n",
        token_file.to_str().unwrap()
    );
    let gw = Gw::start(&config(
        &server,
        CORS,
        &route("/api", "http://127.0.0.1:9", ""),
    ))
    .await;
    let admin = gw.admin.unwrap();

    // Another host: 421, as for every admin path (DNS rebinding).
    for path in ["/", "/dashboard.js", "/refusals", "/stats", "/routes"] {
        let answer = send("GET", &gw.admin_url(path), &[("host", "attacker.example")]).await;
        assert_eq!(answer.status, 421, "{path}");
    }
    // The page and its assets carry no data: served without the token, with
    // the headers that keep them from running anything else or being framed.
    let page = send("GET", &gw.admin_url("/"), &[("host", "admin.internal")]).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.starts_with("default-src 'self'; script-src 'self'; style-src 'self'"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    let html = page.text();
    assert!(html.contains("<script src=\"/dashboard.js\" defer></script>"));
    assert_eq!(html.matches("<script").count(), 1, "no inline script");
    let handler = html.split(" on").skip(1).find(|rest| {
        let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    });
    assert!(handler.is_none(), "no inline handlers: {handler:?}");
    // Nothing from elsewhere: every src and href is a path of this listener.
    for attribute in ["src=\"", "href=\""] {
        for value in html.split(attribute).skip(1) {
            let value = value.split('"').next().unwrap();
            assert!(
                (value.starts_with('/') && !value.starts_with("//")) || value == "data:,",
                "{attribute}{value}"
            );
        }
    }
    let js = send("GET", &gw.admin_url("/dashboard.js"), &[]).await;
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(js.header("x-content-type-options"), Some("nosniff"));
    assert!(!js.text().contains("innerHTML") && !js.text().contains("insertAdjacentHTML"));
    assert!(!js.text().contains("http://") && !js.text().contains("https://"));
    let css = send("GET", &gw.admin_url("/dashboard.css"), &[]).await;
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(!css.text().contains("@import") && !css.text().contains("url("));

    // The data needs the token, as a bearer header.
    let bearer = "Bearer s3cret-token-for-the-dashboard";
    for path in ["/refusals", "/stats", "/routes"] {
        let answer = send("GET", &gw.admin_url(path), &[]).await;
        assert_eq!(answer.status, 401, "{path}");
        assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
        let answer = send(
            "GET",
            &gw.admin_url(path),
            &[("authorization", "Bearer wrong")],
        )
        .await;
        assert_eq!(answer.status, 401, "{path}");
        let answer = send(
            "GET",
            &format!(
                "{}?token=s3cret-token-for-the-dashboard",
                gw.admin_url(path)
            ),
            &[],
        )
        .await;
        assert_eq!(answer.status, 401, "{path}: never in the URL");
        let answer = send("GET", &gw.admin_url(path), &[("authorization", bearer)]).await;
        assert_eq!(answer.status, 200, "{path}");
        assert_eq!(answer.header("cache-control"), Some("no-store"));
    }
    let (status, _) = post_explain(
        &gw,
        &json!({"origin": ORIGIN, "url": "http://127.0.0.1/api"}).to_string(),
        &[("content-type", "application/json")],
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = post_explain(
        &gw,
        &json!({"origin": ORIGIN, "url": "http://127.0.0.1/api"}).to_string(),
        &[
            ("content-type", "application/json"),
            ("authorization", bearer),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let _ = admin;
}

/// Refused requests with distinct origins, pipelined on `connections`
/// connections of `per_connection` requests each (the gateway's default
/// `max_requests_per_connection` is 1000), `parallel` connections at a time.
async fn flood(addr: SocketAddr, first: usize, connections: usize, per_connection: usize) {
    let parallel = 4;
    let mut next = 0;
    while next < connections {
        let mut tasks = Vec::new();
        for c in next..(next + parallel).min(connections) {
            let start = first + c * per_connection;
            tasks.push(tokio::spawn(async move {
                let stream = TcpStream::connect(addr).await.unwrap();
                let (mut reader, mut writer) = stream.into_split();
                let write = tokio::spawn(async move {
                    let mut batch = Vec::with_capacity(per_connection * 120);
                    for i in start..start + per_connection {
                        batch.extend_from_slice(
                            format!(
                                "GET /api/items HTTP/1.1\r\nhost: api.example\r\norigin: https://h{i}.evil.example\r\n\r\n"
                            )
                            .as_bytes(),
                        );
                    }
                    writer.write_all(&batch).await.unwrap();
                    writer
                });
                // Each refusal is a 403 with an empty body: one blank line each.
                let mut seen = 0;
                let mut tail: Vec<u8> = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                while seen < per_connection {
                    let n = tokio::time::timeout(support::WAIT, reader.read(&mut buf))
                        .await
                        .expect("the gateway stopped answering")
                        .unwrap();
                    assert!(n > 0, "closed after {seen} answers");
                    tail.extend_from_slice(&buf[..n]);
                    let text = &tail[..];
                    let mut last = 0;
                    for i in 0..text.len().saturating_sub(3) {
                        if &text[i..i + 4] == b"\r\n\r\n" {
                            seen += 1;
                            last = i + 4;
                        }
                    }
                    assert!(
                        std::str::from_utf8(&tail[..last]).unwrap().matches("HTTP/1.1 403").count()
                            == tail[..last].windows(4).filter(|w| w == b"\r\n\r\n").count(),
                        "every answer is a 403"
                    );
                    tail.drain(..last);
                }
                drop(write.await.unwrap());
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        next += parallel;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusal_log_stays_bounded_under_a_flood_of_distinct_origins() {
    let dir = TempDir::new("refusals");
    let path = dir.path().join("corsgate.toml");
    std::fs::write(
        &path,
        config(
            // One line per request would cost more than the refusals.
            "access_log = false",
            &format!("{CORS}on_disallowed = \"reject\"\n"),
            &route("/api", "http://127.0.0.1:9", ""),
        ),
    )
    .unwrap();
    let mut serve = Serve::start(&path, Stderr::Read);
    let (listen, admin) = serve.addresses();
    let admin_url = |p: &str| format!("http://{admin}{p}");

    // One origin refused often, before and during the flood.
    let often = || async {
        for _ in 0..100 {
            let answer = send(
                "GET",
                &format!("http://{listen}/api/items"),
                &[("origin", "https://often.example")],
            )
            .await;
            assert_eq!(answer.status, 403);
        }
    };
    often().await;
    // A warm-up of the same shape as the flood: the connections' buffers and
    // the allocator's arenas are at their size before the measure.
    flood(listen, 0, 4, 1000).await;
    let (_, warm) = get_json(&admin_url("/refusals"), &[]).await;
    assert_eq!(warm["tracked"], 1024);
    let before = serve.peak_rss_kib();

    flood(listen, 10_000, 25, 1000).await;
    let half = serve.peak_rss_kib();
    often().await;
    flood(listen, 100_000, 25, 1000).await;
    let after = serve.peak_rss_kib();
    let (_, log) = get_json(&admin_url("/refusals?limit=500"), &[]).await;
    eprintln!(
        "refusal log under a flood of distinct origins: gateway peak RSS {before} KiB after \
         4,100 refusals, {half} KiB after 29,100, {after} KiB after 54,200 ({} KiB more \
         for 50,000 distinct origins); {} entries kept, {} evictions",
        after.saturating_sub(before),
        log["tracked"],
        log["evictions"]
    );
    assert_eq!(log["total"], 200 + 54_000);
    assert_eq!(log["tracked"], 1024);
    assert_eq!(log["entries"].as_array().unwrap().len(), 500);
    assert_eq!(log["recent"].as_array().unwrap().len(), 256);
    // The frequent origin stays on top, counted exactly.
    let top = &log["entries"][0];
    assert_eq!(top["origin"], "https://often.example");
    assert_eq!(
        (top["count"].as_u64(), top["count_error"].as_u64()),
        (Some(200), Some(0))
    );
    assert_eq!(top["fix"]["verdict"], "blocked");
    // Bounded: 50,000 distinct origins cost the gateway less than 8 MiB of
    // peak memory (the whole table is about 1 MiB; keeping every origin with
    // its last request would take some 25 MiB).
    assert!(
        after.saturating_sub(before) < 8 * 1024,
        "{before} -> {after} KiB"
    );
    assert!(
        serve.exit_within(Duration::ZERO).is_none(),
        "the gateway exited"
    );
}

/// Every series the Grafana dashboard and the documented alert query, and
/// every label value they name, is one the gateway exports.
#[tokio::test]
async fn grafana_dashboard_and_alert_query_only_exported_series() {
    let gw = Gw::start(&config("", CORS, &route("/api", "http://127.0.0.1:9", ""))).await;
    let metrics = send("GET", &gw.admin_url("/metrics"), &[]).await.text();
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(docs.join("grafana/corsgate.json")).unwrap())
            .unwrap();
    let mut exprs: Vec<String> = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    for annotation in dashboard["annotations"]["list"].as_array().unwrap() {
        if let Some(expr) = annotation["expr"].as_str() {
            exprs.push(expr.to_owned());
        }
    }
    assert!(exprs.len() > 10, "{exprs:?}");
    let page = std::fs::read_to_string(docs.join("dashboard.md")).unwrap();
    let alert = page
        .split("```yaml")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the alert rule in docs/dashboard.md");
    exprs.push(alert.to_owned());
    for expr in &exprs {
        for (at, _) in expr.match_indices("corsgate_") {
            let name: String = expr[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            assert!(
                metrics.contains(&format!("\n{name}{{")) || metrics.contains(&format!("\n{name} ")),
                "{name} (in {expr}) is not exported"
            );
        }
        for label in ["decision", "kind", "result", "reason"] {
            for (at, _) in expr.match_indices(&format!("{label}=\"")) {
                let values = expr[at + label.len() + 2..].split('"').next().unwrap();
                for value in values.split('|') {
                    assert!(
                        metrics.contains(&format!("{label}=\"{value}\"")),
                        "{label}=\"{value}\" (in {expr}) is never exported"
                    );
                }
            }
            for (at, _) in expr.match_indices(&format!("{label}=~\"")) {
                let values = expr[at + label.len() + 3..].split('"').next().unwrap();
                for value in values.split('|') {
                    assert!(
                        metrics.contains(&format!("{label}=\"{value}\"")),
                        "{label}=~ {value} (in {expr}) is never exported"
                    );
                }
            }
        }
    }
}
