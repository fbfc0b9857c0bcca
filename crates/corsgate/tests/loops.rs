//! Loops at run time: a request that comes back to the gateway that forwarded
//! it (its `Via` carries that gateway's token) is answered `508 Loop Detected`
//! with the route's CORS headers, a warning and a metric; distinct gateways in
//! a chain are no loop.

mod support;

use std::net::SocketAddr;

use corsgate_gateway::Options;
use http::StatusCode;
use support::binary::{Serve, Stderr};
use support::metrics::Metrics;
use support::*;

const APP: &str = "https://app.example.com";
const CORS: &str = "allow_origins = [\"https://app.example.com\"]";

async fn metrics(admin: SocketAddr) -> String {
    Metrics::fetch(admin).await.text().to_owned()
}

const LOOPS_1: &str = "corsgate_gateway_responses_total{status=\"508\",kind=\"loop\"} 1\n";
const LOOPS_0: &str = "corsgate_gateway_responses_total{status=\"508\",kind=\"loop\"} 0\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_through_two_gateways_is_a_508_with_cors_headers() {
    // a -> b -> a: b's upstream is a's address, a's upstream is b.
    let a_addr = closed_port().await;
    let b = Gw::start(&config(
        "",
        CORS,
        &route("/", &format!("http://{a_addr}"), ""),
    ))
    .await;
    let a = Gw::start_with(
        &config("", CORS, &route("/", &format!("http://{}", b.addr), "")),
        Options::new().listen(a_addr),
    )
    .await;
    let answer = send("GET", &a.url("/items"), &[("origin", APP)]).await;
    assert_eq!(
        answer.status,
        StatusCode::LOOP_DETECTED,
        "{}",
        answer.text()
    );
    assert_eq!(answer.header("access-control-allow-origin"), Some(APP));
    assert!(
        answer.text().starts_with("508 Loop Detected"),
        "{}",
        answer.text()
    );
    // Caught by a, the first gateway to see its own token again, once.
    assert!(metrics(a.admin.unwrap()).await.contains(LOOPS_1));
    assert!(metrics(b.admin.unwrap()).await.contains(LOOPS_0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_distinct_gateways_in_a_chain_are_no_loop() {
    let spy = Spy::ok().await;
    let b = Gw::start(&config("", CORS, &route("/", &spy.url(), ""))).await;
    let a = Gw::start(&config(
        "",
        CORS,
        &route("/", &format!("http://{}", b.addr), ""),
    ))
    .await;
    let answer = send("GET", &a.url("/items"), &[("origin", APP)]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.header("access-control-allow-origin"), Some(APP));
    let seen = spy.last();
    let via: Vec<&str> = seen
        .headers
        .get_all("via")
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(str::trim)
        .collect();
    assert_eq!(via.len(), 2, "{via:?}");
    assert!(
        via.iter().all(|v| v.starts_with("1.1 corsgate-")),
        "{via:?}"
    );
    assert_ne!(via[0], via[1], "each gateway has its own token");
    for gw in [&a, &b] {
        assert!(metrics(gw.admin.unwrap()).await.contains(LOOPS_0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_through_a_dns_name_is_caught_logged_and_counted() {
    // The upstream names the gateway's own address by a DNS name: the file
    // alone cannot tell, the Via token does.
    let port = closed_port().await.port();
    let dir = TempDir::new("loop-dns");
    let file = dir.join("corsgate.toml");
    std::fs::write(
        &file,
        config(
            "",
            CORS,
            &route("/", &format!("http://localhost:{port}"), ""),
        ),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{port}");
    let mut serve = Serve::start_args(
        &[
            "--config",
            file.to_str().unwrap(),
            "--listen",
            &listen,
            "--log-format",
            "json",
        ],
        Stderr::Read,
    );
    let (listen, admin) = serve.addresses();
    let answer = send("GET", &format!("http://{listen}/items"), &[("origin", APP)]).await;
    assert_eq!(
        answer.status,
        StatusCode::LOOP_DETECTED,
        "{}",
        answer.text()
    );
    assert_eq!(answer.header("access-control-allow-origin"), Some(APP));
    let (line, _serve) = tokio::task::spawn_blocking(move || {
        let line = serve.wait_stderr("already passed through this gateway");
        (line, serve)
    })
    .await
    .unwrap();
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["upstream"], format!("localhost:{port}"), "{line}");
    assert!(metrics(admin).await.contains(LOOPS_1));
}
