//! The access log, as the `corsgate serve` binary writes it: one line per
//! request, text or JSON (`--log-format`), parsed field by field; off with
//! `access_log = false`; dropped and counted, never waited for, when the log
//! output stalls. The banner follows the log format too.

mod support;

use std::collections::HashMap;

use http::{HeaderMap, HeaderValue, StatusCode};
use support::binary::{Serve, Stderr};
use support::*;

const APP: &str = "https://app.example.com";
const EVIL: &str = "https://evil.example";
const CORS: &str = "allow_origins = [\"https://app.example.com\"]";

fn start(dir: &TempDir, server_extra: &str, routes: &str, format: &str) -> Serve {
    let file = dir.write("corsgate.toml", &config(server_extra, CORS, routes));
    Serve::start_args(
        &["--config", file.to_str().unwrap(), "--log-format", format],
        Stderr::Read,
    )
}

/// The fields of a text log line after its message: `key=value`, the value
/// bare or a quoted string with escapes.
fn text_fields(line: &str, message: &str) -> HashMap<String, String> {
    let at = line
        .find(&format!(" {message} "))
        .unwrap_or_else(|| panic!("no {message:?} in {line:?}"));
    let mut rest = &line[at + message.len() + 2..];
    let mut fields = HashMap::new();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().to_owned();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        fields.insert(key, value);
        rest = next;
    }
    fields
}

fn block<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_access_line_has_every_field() {
    let spy = Spy::ok().await;
    let dir = TempDir::new("access-text");
    let mut serve = start(&dir, "", &route("/", &spy.url(), ""), "human");
    let (listen, _) = serve.addresses();
    let mut headers = HeaderMap::new();
    headers.insert("origin", HeaderValue::from_static(APP));
    let answer = send_map(
        &client(),
        "POST",
        &format!("http://{listen}/items?token=secret"),
        headers,
        bytes::Bytes::from_static(b"hello"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let line = block(|| serve.wait_stderr("path=\"/items\""));
    assert!(line.contains(" INFO request "), "{line}");
    assert!(
        !line.contains("secret"),
        "the query stays out of the log: {line}"
    );
    let f = text_fields(&line, "request");
    let expect = [
        (
            "request_id",
            answer.header("x-request-id").unwrap().to_owned(),
        ),
        ("client", "127.0.0.1".to_owned()),
        ("method", "POST".to_owned()),
        ("host", listen.to_string()),
        ("path", "/items".to_owned()),
        ("status", "200".to_owned()),
        ("route", "0:/".to_owned()),
        ("cors", "allowed".to_owned()),
        ("reason", String::new()),
        ("error", String::new()),
        ("upstream", spy.addr.to_string()),
        ("upstream_status", "200".to_owned()),
        ("bytes_in", "5".to_owned()),
        ("bytes_out", "hello from upstream".len().to_string()),
        ("complete", "true".to_owned()),
    ];
    for (key, value) in expect {
        assert_eq!(f.get(key), Some(&value), "{key} in {line}");
    }
    let ms: f64 = f["duration_ms"].parse().unwrap();
    assert!(ms >= 0.0, "{line}");
    // The time comes first, as on every line.
    assert!(line.starts_with("20"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_lines_say_refused_and_unmatched_for_what_they_are() {
    let spy = Spy::ok().await;
    let dir = TempDir::new("access-json");
    let mut serve = start(&dir, "", &route("/api", &spy.url(), ""), "json");
    let (listen, admin) = serve.addresses();
    // The banner is one JSON object too.
    let banner: serde_json::Value = serde_json::from_str(&serve.banner[0]).unwrap();
    assert_eq!(banner["listen"], format!("http://{listen}"));
    assert_eq!(banner["admin"], format!("http://{admin}"));
    assert_eq!(banner["routes"][0]["path"], "/api");
    assert_eq!(banner["routes"][0]["upstream"], spy.url());

    let refused = send(
        "GET",
        &format!("http://{listen}/api/x"),
        &[("origin", EVIL)],
    )
    .await;
    assert_eq!(refused.status, StatusCode::OK);
    let unmatched = send(
        "GET",
        &format!("http://{listen}/nowhere"),
        &[("origin", EVIL)],
    )
    .await;
    assert_eq!(unmatched.status, StatusCode::NOT_FOUND);
    block(|| serve.wait_stderr("\"path\":\"/nowhere\""));
    let lines: Vec<serde_json::Value> = serve
        .stderr()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let access: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["message"] == "request" && l["target"] == "corsgate::access")
        .collect();
    assert_eq!(access.len(), 2, "{access:#?}");
    let (refused_line, unmatched_line) = (access[0], access[1]);
    assert!(refused_line["timestamp"].is_string());
    assert_eq!(refused_line["level"], "INFO");
    assert_eq!(refused_line["status"], 200);
    assert_eq!(refused_line["route"], "0:/api");
    assert_eq!(refused_line["cors"], "rejected");
    assert_eq!(refused_line["reason"], "origin-not-allowed");
    assert_eq!(refused_line["upstream_status"], 200);
    assert_eq!(
        refused_line["request_id"],
        refused.header("x-request-id").unwrap()
    );
    // No route: a 404 of the gateway's own, not a CORS refusal.
    assert_eq!(unmatched_line["status"], 404);
    assert_eq!(unmatched_line["error"], "no-route");
    assert_eq!(unmatched_line["route"], "unmatched");
    assert_ne!(unmatched_line["cors"], "rejected");
    assert_eq!(unmatched_line["reason"], "");
    assert!(unmatched_line.get("upstream_status").is_none());
    let refusals: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "CORS request refused")
        .collect();
    assert_eq!(refusals.len(), 1, "only the routed request: {refusals:#?}");
    assert_eq!(refusals[0]["route"], "0:/api");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_false_writes_no_request_lines() {
    let spy = Spy::ok().await;
    let dir = TempDir::new("access-off");
    let mut serve = start(
        &dir,
        "access_log = false",
        &route("/", &spy.url(), ""),
        "json",
    );
    let (listen, _) = serve.addresses();
    let answer = send("GET", &format!("http://{listen}/x"), &[("origin", EVIL)]).await;
    assert_eq!(answer.status, StatusCode::OK);
    serve.signal("TERM");
    let (code, lines) = block(|| (serve.wait_exit(), serve.stderr()));
    assert_eq!(code, Some(0));
    // The refusal is logged; the request line is not.
    assert!(
        lines.iter().any(|l| l.contains("CORS request refused")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("\"corsgate::access\"")),
        "{lines:?}"
    );
}

const DROPPED: &str = "corsgate_log_lines_dropped_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_lines_go_through_the_bounded_buffer_and_drops_are_counted() {
    let spy = Spy::ok().await;
    let dir = TempDir::new("access-stall");
    let file = dir.write(
        "corsgate.toml",
        &config("", CORS, &route("/", &spy.url(), "")),
    );
    // Nobody reads the log pipe: it fills, then the log buffer of 1 MiB
    // (6,000 lines of about 350 bytes are twice that).
    let mut serve = Serve::start(&file, Stderr::Stalled);
    let (listen, admin) = serve.addresses();
    assert_eq!(metrics::metric(admin, DROPPED).await, 0);
    let mut tasks = Vec::new();
    for worker in 0..4 {
        tasks.push(tokio::spawn(async move {
            let client = client();
            for i in 0..1500 {
                let answer = send_map(
                    &client,
                    "GET",
                    &format!("http://{listen}/w{worker}/{i}"),
                    HeaderMap::new(),
                    bytes::Bytes::new(),
                )
                .await;
                assert_eq!(answer.status, StatusCode::OK);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Every request was answered; the lines that did not fit were dropped.
    metrics::wait_metric(admin, DROPPED, |n| n > 0).await;
}
