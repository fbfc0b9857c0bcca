//! Shadow configurations: a candidate decides every CORS request beside the
//! live configuration, never enforced. A table of live/candidate pairs with
//! traffic whose divergences are known in advance; exact counts read from
//! `/metrics` and `/shadow`; the upstream called once per forwarded request;
//! reloads of the candidate (a failed one keeps the previous candidate).

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use corsgate_gateway::Options;
use serde_json::Value;
use support::binary::{Serve, Stderr};
use support::metrics::{Metrics, metric, wait_metric};
use support::*;

/// The live configuration of most rows: `[server.cors]` for `/api`, an off
/// route and a closed one.
fn live(upstream: &str) -> String {
    config(
        "",
        "allow_origins = [\"https://a.example\", \"https://b.example\"]\n\
         allow_methods = [\"PUT\", \"DELETE\"]\n\
         allow_headers = [\"x-one\"]",
        &format!(
            "{}{}{}",
            route("/api", upstream, ""),
            route("/legacy", upstream, "cors = \"off\""),
            route("/login", upstream, "cors = \"closed\""),
        ),
    )
}

/// One request of a row's traffic.
struct Req {
    method: &'static str,
    path: &'static str,
    origin: Option<&'static str>,
    headers: &'static [(&'static str, &'static str)],
}

const fn get(path: &'static str, origin: &'static str) -> Req {
    Req {
        method: "GET",
        path,
        origin: Some(origin),
        headers: &[],
    }
}

const fn preflight(
    path: &'static str,
    origin: &'static str,
    headers: &'static [(&'static str, &'static str)],
) -> Req {
    Req {
        method: "OPTIONS",
        path,
        origin: Some(origin),
        headers,
    }
}

const PUT: &[(&str, &str)] = &[("access-control-request-method", "PUT")];
const DELETE: &[(&str, &str)] = &[("access-control-request-method", "DELETE")];
const PUT_X_ONE: &[(&str, &str)] = &[
    ("access-control-request-method", "PUT"),
    ("access-control-request-headers", "x-one"),
];
const PUT_X_TWO: &[(&str, &str)] = &[
    ("access-control-request-method", "PUT"),
    ("access-control-request-headers", "x-two"),
];

/// A row: the candidate made from the live text, the traffic, and the
/// divergences expected as (live route, kind) → count.
struct Row {
    name: &'static str,
    candidate: fn(&str) -> String,
    traffic: Vec<Req>,
    expected: &'static [(&'static str, &'static str, u64)],
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "identical",
            candidate: str::to_owned,
            traffic: vec![
                get("/api/x", "https://a.example"),
                get("/api/x", "https://evil.example"),
                preflight("/api/x", "https://a.example", PUT_X_ONE),
                get("/legacy", "https://a.example"),
                get("/login", "https://a.example"),
                get("/nowhere", "https://a.example"),
            ],
            expected: &[],
        },
        Row {
            name: "origin added",
            candidate: |live| {
                live.replace(
                    "\"https://b.example\"]",
                    "\"https://b.example\", \"https://c.example\"]",
                )
            },
            traffic: vec![
                get("/api/x", "https://c.example"),
                preflight("/api/x", "https://c.example", PUT),
                get("/api/x", "https://a.example"),
                get("/api/x", "https://evil.example"),
            ],
            expected: &[("0:/api", "refused-to-allowed", 2)],
        },
        Row {
            name: "origin removed",
            candidate: |live| live.replace(", \"https://b.example\"]", "]"),
            traffic: vec![
                get("/api/x", "https://b.example"),
                preflight("/api/x", "https://b.example", DELETE),
                get("/api/x", "https://a.example"),
            ],
            expected: &[("0:/api", "allowed-to-refused", 2)],
        },
        Row {
            name: "method removed",
            candidate: |live| live.replace("[\"PUT\", \"DELETE\"]", "[\"PUT\"]"),
            traffic: vec![
                preflight("/api/x", "https://a.example", DELETE),
                preflight("/api/x", "https://a.example", PUT),
                get("/api/x", "https://a.example"),
            ],
            expected: &[("0:/api", "allowed-to-refused", 1)],
        },
        Row {
            name: "header changed",
            candidate: |live| live.replace("[\"x-one\"]", "[\"x-two\"]"),
            traffic: vec![
                preflight("/api/x", "https://a.example", PUT_X_ONE),
                preflight("/api/x", "https://a.example", PUT_X_TWO),
                preflight("/api/x", "https://a.example", PUT),
                get("/api/x", "https://a.example"),
            ],
            expected: &[
                ("0:/api", "allowed-to-refused", 1),
                ("0:/api", "refused-to-allowed", 1),
            ],
        },
        Row {
            name: "route split",
            candidate: |live| {
                let upstream = upstream_of(live);
                format!(
                    "{live}\n{}{}",
                    route("/api/admin", &upstream, ""),
                    route("/api/closed", &upstream, "cors = \"closed\"")
                )
            },
            traffic: vec![
                get("/api/admin/users", "https://a.example"),
                get("/api/admin", "https://evil.example"),
                preflight("/api/admin/x", "https://b.example", PUT),
                get("/api/closed/x", "https://a.example"),
                get("/api/other", "https://a.example"),
            ],
            expected: &[("0:/api", "allowed-to-refused", 1), ("0:/api", "route", 3)],
        },
        Row {
            name: "credentials toggled",
            candidate: |live| {
                live.replace(
                    "allow_headers = [\"x-one\"]",
                    "allow_headers = [\"x-one\"]\nallow_credentials = true",
                )
            },
            traffic: vec![
                get("/api/x", "https://a.example"),
                preflight("/api/x", "https://a.example", PUT),
                // Refused either way, and the same headers (Vary only).
                get("/api/x", "https://evil.example"),
            ],
            expected: &[("0:/api", "headers", 2)],
        },
        Row {
            name: "closed and off",
            candidate: |live| {
                live.replace("cors = \"off\"", "cors = \"OFF-TO-CLOSED\"")
                    .replace("cors = \"closed\"", "cors = \"off\"")
                    .replace("cors = \"OFF-TO-CLOSED\"", "cors = \"closed\"")
            },
            traffic: vec![
                // /legacy: off → closed. The live preflight goes upstream.
                get("/legacy/x", "https://a.example"),
                preflight("/legacy/x", "https://a.example", PUT),
                // /login: closed → off.
                get("/login", "https://a.example"),
                preflight("/login", "https://a.example", PUT),
                // Not a CORS request: not evaluated.
                Req {
                    method: "GET",
                    path: "/login",
                    origin: None,
                    headers: &[],
                },
            ],
            expected: &[
                ("1:/legacy", "allowed-to-refused", 2),
                ("2:/login", "refused-to-allowed", 2),
            ],
        },
    ]
}

/// The upstream of the first route of a configuration text.
fn upstream_of(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("upstream = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap()
        .to_owned()
}

/// Every `corsgate_shadow_divergence_total` series that is not 0.
async fn divergence_metrics(admin: SocketAddr) -> BTreeMap<(String, String), u64> {
    let metrics = Metrics::fetch(admin).await;
    let mut out = BTreeMap::new();
    for line in metrics.text().lines() {
        let Some(rest) = line.strip_prefix("corsgate_shadow_divergence_total{route=\"") else {
            continue;
        };
        let (route, rest) = rest.split_once("\",kind=\"").unwrap();
        let (kind, value) = rest.split_once("\"} ").unwrap();
        let value: u64 = value.parse().unwrap();
        if value > 0 {
            out.insert((route.to_owned(), kind.to_owned()), value);
        }
    }
    out
}

/// A gateway on `live_text` (in `live.toml`) with `candidate_text` (in
/// `candidate.toml`) as its shadow configuration; returns the directory, the
/// gateway and the candidate's path.
async fn start_shadowed(
    live_text: &str,
    candidate_text: &str,
    watch: bool,
) -> (TempDir, Gw, PathBuf) {
    let dir = TempDir::new("shadow");
    let live_path = dir.write("live.toml", live_text);
    let candidate_path = dir.write("candidate.toml", candidate_text);
    let options = Options::new()
        .config_path(&live_path)
        .shadow(&candidate_path)
        .watch(watch);
    let gw = Gw::start_with(live_text, options).await;
    (dir, gw, candidate_path)
}

async fn shadow(admin: SocketAddr) -> Value {
    let answer = send("GET", &format!("http://{admin}/shadow"), &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("content-type"), Some("application/json"));
    serde_json::from_slice(&answer.body).unwrap()
}

async fn send_req(gw: &Gw, req: &Req) -> Answer {
    let mut headers: Vec<(&str, &str)> = req.headers.to_vec();
    if let Some(origin) = req.origin {
        headers.push(("origin", origin));
    }
    send(req.method, &gw.url(req.path), &headers).await
}

#[tokio::test]
async fn known_divergences_are_counted_exactly_and_the_upstream_is_called_once() {
    for row in rows() {
        let spy = Spy::ok().await;
        let live_text = live(&spy.url());
        let candidate_text = (row.candidate)(&live_text);
        assert_ne!(
            candidate_text == live_text,
            row.name != "identical",
            "{}: the candidate must differ",
            row.name
        );
        let (_dir, gw, _) = start_shadowed(&live_text, &candidate_text, false).await;
        let admin = gw.admin.unwrap();

        // What reaches the upstream: every routed request but the live
        // configuration's preflights outside off routes.
        let mut forwarded = 0;
        let mut cors_requests = 0;
        for req in &row.traffic {
            let answer = send_req(&gw, req).await;
            assert!(answer.status.as_u16() < 500, "{}: {answer:?}", row.name);
            if req.path != "/nowhere"
                && (req.method != "OPTIONS" || req.path.starts_with("/legacy"))
            {
                forwarded += 1;
            }
            cors_requests += u64::from(req.origin.is_some());
        }
        assert_eq!(
            spy.count(),
            forwarded,
            "{}: the upstream is called once per forwarded request, never for the candidate",
            row.name
        );

        let expected: BTreeMap<(String, String), u64> = row
            .expected
            .iter()
            .map(|(route, kind, n)| (((*route).to_owned(), (*kind).to_owned()), *n))
            .collect();
        assert_eq!(divergence_metrics(admin).await, expected, "{}", row.name);
        assert_eq!(
            metric(admin, "corsgate_shadow_requests_total").await,
            cors_requests,
            "{}",
            row.name
        );

        let doc = shadow(admin).await;
        assert_eq!(doc["candidate"]["generation"], 1, "{}", row.name);
        assert!(
            doc["candidate"]["path"]
                .as_str()
                .unwrap()
                .ends_with("candidate.toml")
        );
        assert!(
            doc["candidate"]["loaded_at"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
        assert_eq!(doc["requests"], cors_requests, "{}", row.name);
        let counts: BTreeMap<(String, String), u64> = doc["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    (
                        c["route"].as_str().unwrap().to_owned(),
                        c["kind"].as_str().unwrap().to_owned(),
                    ),
                    c["count"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(counts, expected, "{}", row.name);
        let recent = doc["recent"].as_array().unwrap();
        let total: u64 = expected.values().sum();
        assert_eq!(recent.len() as u64, total, "{}: {recent:#?}", row.name);
        for sample in recent {
            for key in ["time", "origin", "method", "path", "request_id", "kind"] {
                assert!(sample[key].is_string(), "{}: {key} in {sample}", row.name);
            }
            for side in ["live", "candidate"] {
                let side = &sample[side];
                assert!(side["allowed"].is_boolean(), "{sample}");
                assert!(side["headers"].is_object(), "{sample}");
                assert!(side.get("route").is_some() && side.get("reason").is_some());
            }
        }
    }
}

#[tokio::test]
async fn samples_say_what_each_side_would_answer() {
    let spy = Spy::ok().await;
    let live_text = live(&spy.url());
    let candidate_text = live_text.replace(", \"https://b.example\"]", "]");
    let (_dir, gw, _) = start_shadowed(&live_text, &candidate_text, false).await;
    let answer = send(
        "GET",
        &gw.url("/api/items?q=1"),
        &[("origin", "https://b.example")],
    )
    .await;
    // Enforced: the live configuration's answer.
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://b.example")
    );
    let request_id = answer.header("x-request-id").unwrap().to_owned();
    let doc = shadow(gw.admin.unwrap()).await;
    let sample = &doc["recent"][0];
    assert_eq!(sample["kind"], "allowed-to-refused");
    assert_eq!(sample["origin"], "https://b.example");
    assert_eq!(sample["method"], "GET");
    assert_eq!(sample["path"], "/api/items");
    assert_eq!(sample["request_id"], request_id.as_str());
    assert_eq!(sample["class"], "actual");
    let live_side = &sample["live"];
    assert_eq!(live_side["route"], "0:/api");
    assert_eq!(live_side["allowed"], true);
    assert_eq!(live_side["decision"], "allowed");
    assert_eq!(live_side["reason"], Value::Null);
    assert_eq!(
        live_side["headers"]["access-control-allow-origin"],
        "https://b.example"
    );
    let candidate = &sample["candidate"];
    assert_eq!(candidate["route"], "0:/api");
    assert_eq!(candidate["allowed"], false);
    assert_eq!(candidate["decision"], "rejected");
    assert_eq!(candidate["reason"], "origin-not-allowed");
    assert_eq!(candidate["headers"]["vary"], "Origin");
    assert!(
        candidate["headers"]
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn a_failed_reload_of_the_candidate_keeps_the_previous_one() {
    let spy = Spy::ok().await;
    let live_text = live(&spy.url());
    // Candidate 1 drops b.example.
    let first = live_text.replace(", \"https://b.example\"]", "]");
    let (_dir, gw, candidate_path) = start_shadowed(&live_text, &first, true).await;
    let admin = gw.admin.unwrap();
    let url = gw.url("/api/x");
    let from_b = || send("GET", &url, &[("origin", "https://b.example")]);
    from_b().await;
    assert_eq!(
        metric(admin, "corsgate_shadow_reloads_total{result=\"success\"}").await,
        1
    );

    // An invalid candidate, on SIGHUP (Handle::reload): refused whole.
    std::fs::write(
        &candidate_path,
        first.replace("https://a.example\"]", "https://a.example/\"]"),
    )
    .unwrap();
    gw.handle.reload();
    assert_eq!(
        metric(admin, "corsgate_shadow_reloads_total{result=\"failure\"}").await,
        1
    );
    assert_eq!(metric(admin, "corsgate_shadow_generation").await, 1);
    // Candidate 1 still decides: b.example is still a divergence.
    from_b().await;
    let doc = shadow(admin).await;
    assert_eq!(doc["candidate"]["generation"], 1);
    assert_eq!(doc["counts"][0]["count"], 2, "{doc:#}");

    // A valid change, seen by the watcher: candidate 2 keeps b.example but
    // drops a.example; its counts start again, the metric keeps counting.
    write_atomically(
        &candidate_path,
        &live_text.replace("\"https://a.example\", ", ""),
    );
    wait_metric(admin, "corsgate_shadow_generation", |n| n == 2).await;
    from_b().await;
    send("GET", &gw.url("/api/x"), &[("origin", "https://a.example")]).await;
    let doc = shadow(admin).await;
    assert_eq!(doc["candidate"]["generation"], 2);
    assert_eq!(doc["requests"], 2);
    assert_eq!(doc["counts"].as_array().unwrap().len(), 1, "{doc:#}");
    assert_eq!(doc["counts"][0]["count"], 1);
    assert_eq!(doc["recent"][0]["origin"], "https://a.example");
    let metrics = divergence_metrics(admin).await;
    assert_eq!(
        metrics[&("0:/api".to_owned(), "allowed-to-refused".to_owned())],
        3
    );
}

#[tokio::test]
async fn a_candidate_that_fails_at_start_leaves_the_gateway_serving_without_shadow() {
    let spy = Spy::ok().await;
    let live_text = live(&spy.url());
    let (_dir, gw, candidate_path) =
        start_shadowed(&live_text, "[[route]]\npath = \"/api\"\n", false).await;
    let admin = gw.admin.unwrap();
    let answer = send("GET", &gw.url("/api/x"), &[("origin", "https://a.example")]).await;
    assert_eq!(answer.status, 200);
    let doc = shadow(admin).await;
    assert_eq!(doc["candidate"]["generation"], 0);
    assert_eq!(doc["candidate"]["loaded_at"], Value::Null);
    assert_eq!(doc["requests"], 0);
    assert_eq!(
        metric(admin, "corsgate_shadow_reloads_total{result=\"failure\"}").await,
        1
    );
    assert_eq!(metric(admin, "corsgate_shadow_requests_total").await, 0);
    // Fixed, and reloaded: it runs.
    std::fs::write(&candidate_path, &live_text).unwrap();
    gw.handle.reload();
    assert_eq!(shadow(admin).await["candidate"]["generation"], 1);
}

#[tokio::test]
async fn without_a_shadow_configuration_shadow_answers_404() {
    let spy = Spy::ok().await;
    let gw = Gw::start(&live(&spy.url())).await;
    let admin = gw.admin.unwrap();
    let answer = send("GET", &format!("http://{admin}/shadow"), &[]).await;
    assert_eq!(answer.status, 404);
    assert!(answer.text().contains("no shadow configuration"));
    let metrics = Metrics::fetch(admin).await.text().to_owned();
    assert!(!metrics.contains("corsgate_shadow_"), "{metrics}");
    // The admin listener's access rules hold for /shadow too.
    let answer = send(
        "GET",
        &format!("http://{admin}/shadow"),
        &[("host", "rebind.example")],
    )
    .await;
    assert_eq!(answer.status, 421);
}

/// The binary: `shadow_config` relative to the live file, its warnings for
/// keys that have no effect, then `--shadow`, which wins over the key.
#[tokio::test]
async fn serve_takes_shadow_config_and_the_shadow_flag() {
    let spy = Spy::ok().await;
    let dir = TempDir::new("shadow-binary");
    let live_text = live(&spy.url()).replace(
        "admin_listen = \"127.0.0.1:0\"",
        "admin_listen = \"127.0.0.1:0\"\nshadow_config = \"candidate.toml\"",
    );
    std::fs::write(dir.join("live.toml"), &live_text).unwrap();
    // A copy with b.example removed and a limit changed (which a shadow
    // cannot evaluate: warned about, located).
    let candidate = live_text.replace(", \"https://b.example\"]", "]").replace(
        "shadow_config = \"candidate.toml\"\n",
        "max_body_bytes = 10\n",
    );
    std::fs::write(dir.join("candidate.toml"), &candidate).unwrap();
    std::fs::write(
        dir.join("other.toml"),
        live_text.replace("shadow_config = \"candidate.toml\"\n", ""),
    )
    .unwrap();

    let mut serve = Serve::start(&dir.join("live.toml"), Stderr::Read);
    let (listen, admin) = serve.addresses();
    let warning = serve.wait_stderr("server.max_body_bytes");
    assert!(warning.contains("candidate.toml:4:18:"), "{warning}");
    assert!(
        warning.contains("no effect in a shadow configuration"),
        "{warning}"
    );
    serve.wait_stderr("shadow configuration loaded");
    send(
        "GET",
        &format!("http://{listen}/api/x"),
        &[("origin", "https://b.example")],
    )
    .await;
    let doc = shadow(admin).await;
    assert_eq!(
        doc["candidate"]["path"].as_str().unwrap(),
        dir.join("candidate.toml").to_str().unwrap()
    );
    assert_eq!(doc["counts"][0]["kind"], "allowed-to-refused");
    drop(serve);

    let other = dir.join("other.toml");
    let mut serve = Serve::start_args(
        &[
            "--config",
            dir.join("live.toml").to_str().unwrap(),
            "--shadow",
            other.to_str().unwrap(),
        ],
        Stderr::Read,
    );
    let (listen, admin) = serve.addresses();
    serve.wait_stderr("shadow configuration loaded");
    send(
        "GET",
        &format!("http://{listen}/api/x"),
        &[("origin", "https://b.example")],
    )
    .await;
    let doc = shadow(admin).await;
    assert_eq!(doc["candidate"]["path"], other.to_str().unwrap());
    assert_eq!(doc["counts"], Value::Array(Vec::new()));
    assert_eq!(doc["requests"], 1);
}

#[tokio::test]
async fn with_an_admin_token_shadow_needs_it() {
    let spy = Spy::ok().await;
    let dir = TempDir::new("shadow-token");
    let token = dir.write("token", &"s3cret-token\n");
    let live_text = live(&spy.url()).replace(
        "admin_listen = \"127.0.0.1:0\"",
        &format!(
            "admin_listen = \"127.0.0.1:0\"\nadmin_token_file = {:?}",
            token.to_str().unwrap()
        ),
    );
    let (_shadow_dir, gw, _) = start_shadowed(&live_text, &live_text, false).await;
    let url = gw.admin_url("/shadow");
    let answer = send("GET", &url, &[]).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    let answer = send("GET", &url, &[("authorization", "Bearer wrong")]).await;
    assert_eq!(answer.status, 401);
    let answer = send("GET", &url, &[("authorization", "Bearer s3cret-token")]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
}

#[test]
fn an_empty_shadow_config_is_refused_with_its_place() {
    let text = "[server]\nshadow_config = \"\"\n\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9\"\n";
    let checked = corsgate_config::check(text);
    assert!(checked.gateway.is_none());
    let lines: Vec<String> = checked.problems.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with("2:17: server.shadow_config: error"),
        "{lines:#?}"
    );
    let text = text.replace("\"\"", "\"candidate.toml\"");
    let gateway = corsgate_config::check(&text).gateway.unwrap();
    assert_eq!(
        gateway.settings.shadow_config.as_deref(),
        Some(std::path::Path::new("candidate.toml"))
    );
}
