//! Idle HTTP/1.1 keep-alive connections: between requests the gateway keeps
//! the bare socket, not hyper's buffers, and the requests that come next on the
//! same connection (one by one, pipelined, in pieces, with bodies) are served
//! as before.

mod support;

use std::time::Duration;

use support::binary::{Serve, Stderr};
use support::raw::read_response;
use support::rawup::{Mode, RawUp};
use support::{Gw, Spy, TempDir, config, eventually, route};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const ORIGIN: &str = "https://app.example.com";

fn gateway_config(upstream: &str) -> String {
    config(
        "",
        &format!("allow_origins = [\"{ORIGIN}\"]\nallow_methods = [\"GET\", \"POST\"]"),
        &route("/", upstream, ""),
    )
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: gw\r\nOrigin: {ORIGIN}\r\n\r\n")
}

async fn start() -> (Spy, TempDir, Serve, std::net::SocketAddr) {
    let spy = Spy::ok().await;
    let dir = TempDir::new("idle");
    let mut serve = Serve::start_in(&dir, &gateway_config(&spy.url()), Stderr::Read);
    let (listen, _admin) = serve.addresses();
    (spy, dir, serve, listen)
}

/// Opens a connection and makes one GET on it, answered 200.
async fn one_get(listen: std::net::SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(listen).await.unwrap();
    get_ok(&mut stream).await;
    stream
}

/// One GET on `stream`, answered 200.
async fn get_ok(stream: &mut TcpStream) {
    stream
        .write_all(get("/api/items").as_bytes())
        .await
        .unwrap();
    let (head, _) = read_response(stream).await.expect("no answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

// Each idle keep-alive connection held hyper's read buffer (8 to 16 KiB), its
// write buffer (8 KiB) and its request future: some 22 KiB, against nginx's
// 1 KiB. Now it holds the socket and the connection's task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_hold_no_request_buffers() {
    // 500: under the common soft limit of 1024 descriptors of this process.
    const N: u64 = 500;
    let (_spy, _dir, serve, listen) = start().await;
    // Warm-up: the runtime, the upstream pool and the allocator's first
    // growth, to the same number of connections still within the 100 ms the
    // gateway waits before it lets go of an idle connection's buffers.
    let mut warm = Vec::new();
    for _ in 0..100 {
        warm.push(one_get(listen).await);
    }
    drop(warm);
    let before = serve.rss_kib();
    let mut held = Vec::new();
    for _ in 0..N {
        held.push(one_get(listen).await);
    }
    let after = serve.rss_kib();
    let per_connection = (after.saturating_sub(before)) as f64 / N as f64;
    eprintln!(
        "RSS {before} KiB -> {after} KiB with {N} idle connections: {per_connection:.2} KiB each"
    );
    assert!(
        per_connection < 8.0,
        "{per_connection:.2} KiB per idle connection ({before} KiB -> {after} KiB)"
    );
    // And every one of them still serves its next request.
    each_serves_another_get(&mut held).await;
}

/// Sends one more GET on each of `held` (all written, then all read): each is
/// answered 200.
async fn each_serves_another_get(held: &mut [TcpStream]) {
    for stream in held.iter_mut() {
        stream
            .write_all(get("/api/items").as_bytes())
            .await
            .unwrap();
    }
    for stream in held.iter_mut() {
        let (head, _) = read_response(stream).await.expect("no second answer");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
}

/// N connections made at once, each with one GET answered 200.
async fn burst(listen: std::net::SocketAddr, n: u64) -> Vec<TcpStream> {
    let clients: Vec<_> = (0..n)
        .map(|_| tokio::spawn(async move { one_get(listen).await }))
        .collect();
    let mut streams = Vec::new();
    for client in clients {
        streams.push(client.await.expect("a client failed"));
    }
    streams
}

// A burst: every client connects and sends its request at once, so that the
// buffers of all their hyper connections are alive together before any is let
// go. With glibc's malloc the freed pages stayed resident: about 11 KiB per
// idle connection after a burst of 1,000, although each holds some 1.5 KiB.
// jemalloc (the default allocator) gives them back within about a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_connections_that_stay_idle_leaves_little_memory_behind() {
    const N: u64 = 500;
    let (_spy, _dir, serve, listen) = start().await;
    // Warm-up: the same burst, closed at once, so that the upstream pool holds
    // the connections a burst of N needs before the baseline is read.
    drop(burst(listen, N).await);
    // The baseline once the warm-up's freed memory has gone back: two
    // readings a quarter of a second apart agree (at most 10 s).
    let mut before = serve.rss_kib();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = serve.rss_kib();
        if now == before {
            break;
        }
        before = now;
    }
    let mut held = burst(listen, N).await;
    let peak = serve.rss_kib();
    let after = eventually("RSS per idle connection under 4 KiB", || {
        let now = serve.rss_kib();
        async move {
            let per_connection = now.saturating_sub(before) as f64 / N as f64;
            if per_connection < 4.0 {
                Ok(now)
            } else {
                Err(format!(
                    "{per_connection:.2} KiB per connection ({before} KiB -> {now} KiB; {peak} KiB at the burst's end)"
                ))
            }
        }
    })
    .await;
    eprintln!("RSS {before} KiB -> {peak} KiB after a burst of {N} -> {after} KiB idle");
    // Each of them still serves its next request.
    each_serves_another_get(&mut held).await;
}

// The header read timeout on a keep-alive connection: hyper's own timer is
// off for cleartext HTTP/1.1, the connection's driver holds a head that
// starts after an idle stretch (hyper let go) or right behind a response to
// the timeout. Either way a client that sends part of a head and stops is
// closed within it; one that sends its head whole is served.
#[tokio::test]
async fn a_head_that_stalls_on_a_kept_alive_connection_is_closed_at_the_header_timeout() {
    let spy = Spy::ok().await;
    let dir = TempDir::new("idle-head");
    let text = config(
        "idle_timeout = \"1s\"",
        &format!("allow_origins = [\"{ORIGIN}\"]"),
        &route("/", &spy.url(), ""),
    );
    let mut serve = Serve::start_in(&dir, &text, Stderr::Read);
    let (listen, _admin) = serve.addresses();
    for pause_ms in [300, 0] {
        let mut stream = one_get(listen).await;
        // 300 ms: hyper was let go; 0: right behind the response.
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        stream
            .write_all(b"GET /api/items HTTP/1.1\r\nHo")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut rest),
        )
        .await;
        assert!(
            closed.is_ok(),
            "after {pause_ms} ms, a stalled head kept the connection open 10 s"
        );
    }
    // A head sent whole after an idle stretch is served.
    let mut stream = one_get(listen).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    get_ok(&mut stream).await;
}

// Pipelined requests written at once are answered in order by one hyper
// connection; once idle, the next request (in two pieces) and a POST with a
// body are served as well, and the upstream sees each request once, whole.
#[tokio::test]
async fn pipelined_split_and_body_requests_after_idle_are_answered_in_order() {
    let (spy, _dir, _serve, listen) = start().await;
    let mut stream = TcpStream::connect(listen).await.unwrap();
    let pipelined = format!("{}{}{}", get("/one"), get("/two"), get("/three"));
    stream.write_all(pipelined.as_bytes()).await.unwrap();
    for _ in 0..3 {
        let (head, _) = read_response(&mut stream)
            .await
            .expect("no pipelined answer");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    spy.wait_for(3).await;
    let paths: Vec<String> = spy
        .requests()
        .iter()
        .map(|r| r.uri.path().to_owned())
        .collect();
    assert_eq!(paths, ["/one", "/two", "/three"]);

    // Idle, then a request whose head comes in two writes.
    let split = get("/four");
    let (first, second) = split.split_at(10);
    stream.write_all(first.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    tokio::task::yield_now().await;
    stream.write_all(second.as_bytes()).await.unwrap();
    let (head, _) = read_response(&mut stream)
        .await
        .expect("no answer to the split request");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    // A body, then a GET right behind it in the same write: the body is the
    // POST's, the GET is a request of its own.
    let post = format!(
        "POST /five HTTP/1.1\r\nHost: gw\r\nOrigin: {ORIGIN}\r\nContent-Length: 11\r\n\r\nhello world{}",
        get("/six")
    );
    stream.write_all(post.as_bytes()).await.unwrap();
    for _ in 0..2 {
        let (head, _) = read_response(&mut stream)
            .await
            .expect("no answer to the POST or GET");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    spy.wait_for(6).await;
    let seen = spy.requests();
    assert_eq!(seen[4].uri.path(), "/five");
    assert_eq!(seen[4].body_len, 11);
    assert_eq!(seen[5].uri.path(), "/six");
    assert_eq!(seen[5].body_len, 0);
    assert_eq!(seen.len(), 6);

    // The connection is still usable after all that.
    stream.write_all(get("/seven").as_bytes()).await.unwrap();
    let (head, _) = read_response(&mut stream)
        .await
        .expect("no answer after idle");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

// An upstream that answers before the upload ends leaves the rest of the
// request body to come after the response. A pause in the upload longer than
// the gateway's idle delay must not make it let go of hyper in the middle of
// the body: the rest would be read as a request of its own (smuggled past the
// gateway's routing and policy). Here the rest of the body is such a request.
#[tokio::test]
async fn the_rest_of_a_body_after_an_early_response_is_never_read_as_a_request() {
    let up = RawUp::start(Mode::Early).await;
    let gw = Gw::start(&config(
        "",
        &format!("allow_origins = [\"{ORIGIN}\"]"),
        &route("/", &up.url(), ""),
    ))
    .await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: gw\r\n\r\n";
    let first = "AAAAAAAAAA";
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: gw\r\nOrigin: {ORIGIN}\r\nContent-Length: {}\r\n\r\n",
        first.len() + smuggled.len()
    );
    stream
        .write_all(format!("{head}{first}").as_bytes())
        .await
        .unwrap();
    let (answer, _) = read_response(&mut stream).await.expect("no early answer");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // The pause is the attack: longer than an idle connection is kept.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let _ = stream.write_all(smuggled.as_bytes()).await;
    // A request of its own after the body: answered, or the connection ends.
    let _ = stream.write_all(get("/after").as_bytes()).await;
    let next = read_response(&mut stream).await;
    let heads = up.heads();
    assert!(
        heads.iter().all(|h| !h.contains("/smuggled")),
        "the rest of a body reached the upstream as a request: {heads:?} (answer: {next:?})"
    );
}
