//! Requests that queue for an upstream connection (every one of
//! `max_upstream_connections` busy) are served in the order they came, and
//! their wait shows on `/metrics`.

mod support;

use support::rawup::{Mode, RawUp};
use support::{Gw, config, route, send};

const ORIGIN: &str = "https://app.example.com";

/// One upstream connection, held by the upstream: the first request has it,
/// the next three queue one after the other. Once the upstream answers, the
/// connection serves them in arrival order, the one connection throughout.
#[tokio::test]
async fn queued_requests_reach_the_upstream_in_arrival_order_and_their_wait_is_counted() {
    let up = RawUp::start(Mode::Held).await;
    let gw = Gw::start(&config(
        "max_upstream_connections = 1",
        &format!("allow_origins = [\"{ORIGIN}\"]"),
        &route("/", &up.url(), ""),
    ))
    .await;
    let mut clients = Vec::new();
    for i in 0..4u64 {
        let url = gw.url(&format!("/r{i}"));
        clients.push(tokio::spawn(async move {
            send("GET", &url, &[("origin", ORIGIN)]).await
        }));
        // In the gateway before the next one is sent.
        gw.wait_metric("corsgate_requests_in_flight", |n| n == i + 1)
            .await;
    }
    assert_eq!(
        up.heads().len(),
        1,
        "a second upstream request past the cap"
    );
    up.release();
    for client in clients {
        let answer = client.await.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(
            answer.headers["access-control-allow-origin"], ORIGIN,
            "the route's CORS headers"
        );
    }
    let paths: Vec<String> = up
        .heads()
        .iter()
        .map(|head| head.split(' ').nth(1).unwrap_or_default().to_owned())
        .collect();
    assert_eq!(paths, ["/r0", "/r1", "/r2", "/r3"]);
    assert_eq!(up.accepted(), 1);
    assert_eq!(
        gw.metric("corsgate_upstream_queue_wait_seconds_count")
            .await,
        3
    );
}
