//! An upstream where nothing listens and an upstream host that does not
//! answer are told apart: the first is a `502` of kind `upstream-refused`
//! (the connection refused at once), the second a `504` of kind
//! `upstream-connect-timeout` (no connection within `connect_timeout`), in
//! the answer, in `/metrics` and in the access log, each with the route's
//! CORS headers so that the page can read it.

mod support;

use support::binary::{Serve, Stderr};
use support::metrics::Metrics;
use support::*;
use tokio::net::{TcpSocket, TcpStream};

const APP: &str = "https://app.example.com";
const CORS: &str = "allow_origins = [\"https://app.example.com\"]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_upstream_refused_and_no_answer_is_upstream_connect_timeout() {
    // Nothing listens on this port: the kernel refuses the connection.
    let refused = closed_port().await;
    // A listener whose accept queue is full: the kernel drops further SYNs,
    // as a host that is down or behind a dropping firewall does.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let silent = socket.listen(0).unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let _queued = TcpStream::connect(silent_addr).await.unwrap();

    let dir = TempDir::new("upstream-connect-errors");
    let routes = format!(
        "{}{}",
        route("/refused", &format!("http://{refused}"), ""),
        route("/silent", &format!("http://{silent_addr}"), "")
    );
    let file = dir.write(
        "corsgate.toml",
        &config("connect_timeout = \"300ms\"", CORS, &routes),
    );
    let mut serve = Serve::start_args(
        &["--config", file.to_str().unwrap(), "--log-format", "json"],
        Stderr::Read,
    );
    let (listen, admin) = serve.addresses();

    let answer = send(
        "GET",
        &format!("http://{listen}/refused/x"),
        &[("origin", APP)],
    )
    .await;
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert!(
        answer.text().contains("refused the connection"),
        "{}",
        answer.text()
    );
    assert_eq!(answer.header("access-control-allow-origin"), Some(APP));

    let answer = send(
        "GET",
        &format!("http://{listen}/silent/x"),
        &[("origin", APP)],
    )
    .await;
    assert_eq!(answer.status, 504, "{}", answer.text());
    assert!(
        answer.text().contains("connect_timeout"),
        "{}",
        answer.text()
    );
    assert_eq!(answer.header("access-control-allow-origin"), Some(APP));

    let metrics = Metrics::fetch(admin).await;
    for (series, want) in [
        ("{status=\"502\",kind=\"upstream-refused\"}", 1),
        ("{status=\"504\",kind=\"upstream-connect-timeout\"}", 1),
        ("{status=\"502\",kind=\"upstream-failed\"}", 0),
        ("{status=\"504\",kind=\"upstream-timeout\"}", 0),
    ] {
        assert_eq!(
            metrics.get(&format!("corsgate_gateway_responses_total{series}")),
            want,
            "{series}"
        );
    }

    tokio::task::block_in_place(|| serve.wait_stderr("\"path\":\"/silent/x\""));
    let access: Vec<serde_json::Value> = serve
        .stderr()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["target"] == "corsgate::access")
        .collect();
    let error_of = |path: &str| {
        access
            .iter()
            .find(|l| l["path"] == path)
            .map(|l| (l["status"].clone(), l["error"].clone()))
            .unwrap_or_else(|| panic!("no access line for {path}: {access:#?}"))
    };
    assert_eq!(
        error_of("/refused/x"),
        (502.into(), "upstream-refused".into())
    );
    assert_eq!(
        error_of("/silent/x"),
        (504.into(), "upstream-connect-timeout".into())
    );
    drop(silent);
}
