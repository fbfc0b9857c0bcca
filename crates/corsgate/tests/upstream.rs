//! The upstream side of the gateway: the connection pool and its limits, request
//! and response bodies that stall, odd framings and protocol switches from the
//! upstream. Real sockets on 127.0.0.1; raw upstreams where a server library
//! would not misbehave the way the test needs.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::rawup::{CLTE_BODY, Mode, RawUp};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{self, Message};

const APP: &str = "https://app.example.com";
const EVIL: &str = "https://evil.example";
const CORS: &str = r#"allow_origins = ["https://app.example.com"]"#;

fn gateway_config(upstream: &str, server_extra: &str) -> String {
    config(server_extra, CORS, &route("/", upstream, ""))
}

/// Reads from `stream` until `needle` has been seen; everything read.
async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    let found = tokio::time::timeout(WAIT, async {
        loop {
            if String::from_utf8_lossy(&out).contains(needle) {
                return true;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(found, Ok(true), "{needle:?} never came; got {text:?}");
    text
}

/// Reads from `stream` until the peer closes it; `false` if it is still open
/// after [`WAIT`].
async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// A request body fed through a channel: it ends when the sender is dropped.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// An HTTP/2 (prior knowledge) connection to the gateway.
async fn h2c<B>(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<B>
where
    B: Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

// ---------------------------------------------------------------------------
// F3 (and S2): a slow request body must not poison the pool.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_a_request_after_a_slow_upload_is_answered_by_the_upstream_not_504() {
    let up = RawUp::start(Mode::Early).await;
    let gw = Gw::start(&gateway_config(&up.url(), "response_timeout = \"3s\"")).await;
    // The upstream answers 401 without waiting for the declared megabyte.
    let mut attacker = TcpStream::connect(gw.addr).await.unwrap();
    attacker
        .write_all(b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\nAAAAAAAAAA")
        .await
        .unwrap();
    read_until(&mut attacker, "login required").await;
    // The attacker's upload is still going: its upstream connection is busy.
    let victim = send("GET", &gw.url("/x"), &[("origin", APP)]).await;
    assert_eq!(victim.status, 401, "{victim:?}");
    assert_eq!(up.heads().len(), 2);
    assert_eq!(
        up.accepted(),
        2,
        "the victim needed a connection of its own"
    );
    drop(attacker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_a_slow_h2_upload_does_not_poison_the_pool_either() {
    let up = RawUp::start(Mode::Early).await;
    let gw = Gw::start(&gateway_config(&up.url(), "response_timeout = \"3s\"")).await;
    let mut h2 = h2c::<ChannelBody>(gw.addr).await;
    let (feed, body) = mpsc::channel(4);
    feed.send(Bytes::from_static(b"AAAAAAAAAA")).await.unwrap();
    let request = Request::post(format!("http://{}/upload", gw.addr))
        .header("content-length", "1000000")
        .body(ChannelBody(body))
        .unwrap();
    let response = tokio::time::timeout(WAIT, h2.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 401);
    let body = tokio::time::timeout(WAIT, response.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"login required\n");
    // The stream's upload is still going; another client now.
    let victim = send("GET", &gw.url("/x"), &[("origin", APP)]).await;
    assert_eq!(victim.status, 401, "{victim:?}");
    assert_eq!(
        up.accepted(),
        2,
        "the victim needed a connection of its own"
    );
    drop(feed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_a_trickling_request_body_is_cut_off_after_body_timeout() {
    let up = RawUp::start(Mode::Early).await;
    let gw = Gw::start(&gateway_config(
        &up.url(),
        "idle_timeout = \"60s\"\nbody_timeout = \"1s\"",
    ))
    .await;
    let attacker = TcpStream::connect(gw.addr).await.unwrap();
    let (mut read, mut write) = attacker.into_split();
    write
        .write_all(b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\nAAAAAAAAAA")
        .await
        .unwrap();
    // One byte every 1.5 s: slower than body_timeout allows.
    let trickle = tokio::spawn(async move {
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            if write.write_all(b"A").await.is_err() {
                return;
            }
        }
    });
    let mut got = Vec::new();
    let closed = tokio::time::timeout(WAIT, read.read_to_end(&mut got)).await;
    let got = String::from_utf8_lossy(&got).into_owned();
    assert!(got.contains("login required"), "{got:?}");
    assert!(
        closed.is_ok(),
        "the trickling client's connection is still open"
    );
    // And the upstream connection that was receiving the body is closed too.
    wait_until(|| up.open() == 0).await;
    trickle.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_an_upload_to_an_upstream_that_stopped_reading_is_cut_off_after_body_timeout() {
    let up = RawUp::start(Mode::Deaf).await;
    let gw = Gw::start(&gateway_config(
        &up.url(),
        "idle_timeout = \"60s\"\nbody_timeout = \"1s\"",
    ))
    .await;
    let client = TcpStream::connect(gw.addr).await.unwrap();
    let (mut read, mut write) = client.into_split();
    write
        .write_all(b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 100000000\r\n\r\n")
        .await
        .unwrap();
    // As fast as the gateway takes it: it stops taking it once the upstream's
    // and its own buffers are full.
    let upload = tokio::spawn(async move {
        let chunk = vec![b'A'; 64 * 1024];
        for _ in 0..1500 {
            if write.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut got = Vec::new();
    let closed = tokio::time::timeout(WAIT, read.read_to_end(&mut got)).await;
    let got = String::from_utf8_lossy(&got).into_owned();
    assert!(closed.is_ok(), "the upload is still held open; got {got:?}");
    upload.abort();
}

// ---------------------------------------------------------------------------
// F5: upstream connections are bounded.

/// Sends `n` requests at once as streams of one HTTP/2 connection; each result
/// (status, `Access-Control-Allow-Origin`) on the channel as it comes.
async fn h2_burst(
    addr: SocketAddr,
    n: usize,
) -> mpsc::UnboundedReceiver<(StatusCode, Option<HeaderValue>)> {
    let h2 = h2c::<Empty<Bytes>>(addr).await;
    let (tx, rx) = mpsc::unbounded_channel();
    for i in 0..n {
        let mut h2 = h2.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let request = Request::get(format!("http://{addr}/slow/{i}"))
                .header("origin", APP)
                .body(Empty::new())
                .unwrap();
            let Ok(response) = h2.send_request(request).await else {
                return;
            };
            let status = response.status();
            let acao = response
                .headers()
                .get("access-control-allow-origin")
                .cloned();
            let _ = response.into_body().collect().await;
            let _ = tx.send((status, acao));
        });
    }
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_one_h2_connection_opens_at_most_max_upstream_connections_and_the_rest_get_503() {
    let up = RawUp::start(Mode::Held).await;
    let gw = Gw::start(&gateway_config(
        &up.url(),
        "max_upstream_connections = 5\nupstream_queue_timeout = \"300ms\"\nresponse_timeout = \"15s\"",
    ))
    .await;
    let mut results = h2_burst(gw.addr, 30).await;
    // While the upstream holds its five, the other 25 wait, then are refused.
    let mut refused = 0;
    while refused < 25 {
        let (status, acao) = tokio::time::timeout(WAIT, results.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{refused} refused; the upstream accepted {} connections",
                    up.accepted()
                )
            })
            .unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(acao.as_ref().map(|v| v.to_str().unwrap()), Some(APP));
        refused += 1;
    }
    assert_eq!(up.accepted(), 5);
    up.release();
    for _ in 0..5 {
        let (status, _) = tokio::time::timeout(WAIT, results.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(up.accepted(), 5);
    assert_eq!(up.heads().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_requests_beyond_max_upstream_connections_are_served_in_turn() {
    let up = RawUp::start(Mode::Slow(Duration::from_millis(100))).await;
    let gw = Gw::start(&gateway_config(
        &up.url(),
        "max_upstream_connections = 5\nupstream_queue_timeout = \"15s\"\nresponse_timeout = \"15s\"",
    ))
    .await;
    let mut results = h2_burst(gw.addr, 30).await;
    for _ in 0..30 {
        let (status, _) = tokio::time::timeout(WAIT * 2, results.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status, StatusCode::OK);
    }
    assert!(up.accepted() <= 5, "{} upstream connections", up.accepted());
    assert_eq!(up.heads().len(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_idle_upstream_connections_are_capped_by_max_idle_per_upstream() {
    let up = RawUp::start(Mode::Held).await;
    let gw = Gw::start(&gateway_config(&up.url(), "max_idle_per_upstream = 2")).await;
    let mut results = h2_burst(gw.addr, 5).await;
    wait_until(|| up.heads().len() == 5).await;
    assert_eq!(up.accepted(), 5);
    up.release();
    for _ in 0..5 {
        let (status, _) = tokio::time::timeout(WAIT, results.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status, StatusCode::OK);
    }
    // Two stay in the pool; the gateway closes the other three.
    wait_until(|| up.open() == 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_idle_upstream_connections_close_after_upstream_idle_timeout() {
    let up = RawUp::start(Mode::Ok).await;
    let gw = Gw::start(&gateway_config(&up.url(), "upstream_idle_timeout = \"1s\"")).await;
    let answer = send("GET", &gw.url("/x"), &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(up.accepted(), 1);
    wait_until(|| up.open() == 0).await;
}

// ---------------------------------------------------------------------------
// F9: Content-Length and Transfer-Encoding on one response.

/// Splits what came back on a connection into responses: (head, body), bodies
/// de-chunked or cut at their Content-Length.
fn responses(mut wire: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(end) = wire.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&wire[..end]).to_ascii_lowercase();
        wire = &wire[end + 4..];
        let mut body = Vec::new();
        if head.contains("transfer-encoding: chunked") {
            loop {
                let Some(line) = wire.windows(2).position(|w| w == b"\r\n") else {
                    return out;
                };
                let size = usize::from_str_radix(
                    String::from_utf8_lossy(&wire[..line])
                        .split(';')
                        .next()
                        .unwrap()
                        .trim(),
                    16,
                )
                .unwrap();
                wire = &wire[line + 2..];
                if size == 0 {
                    wire = &wire[2.min(wire.len())..];
                    break;
                }
                body.extend_from_slice(&wire[..size]);
                wire = &wire[size + 2..];
            }
        } else if let Some(len) = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map(|v| v.trim().parse::<usize>().unwrap())
        {
            body.extend_from_slice(&wire[..len.min(wire.len())]);
            wire = &wire[len.min(wire.len())..];
        }
        out.push((head, body));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f9_a_response_with_content_length_and_chunked_is_framed_by_chunked() {
    let up = RawUp::start(Mode::Clte).await;
    let gw = Gw::start(&gateway_config(&up.url(), "")).await;
    let wire = raw(
        gw.addr,
        format!(
            "GET /a HTTP/1.1\r\nHost: h\r\nOrigin: {APP}\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    let answers = responses(wire.as_bytes());
    assert_eq!(answers.len(), 2, "{wire}");
    for (head, body) in &answers {
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(!head.contains("content-length"), "{head}");
        assert_eq!(String::from_utf8_lossy(body), CLTE_BODY, "{wire}");
    }
    assert!(
        answers[0]
            .0
            .contains(&format!("access-control-allow-origin: {APP}"))
    );
}

// ---------------------------------------------------------------------------
// F10: WebSocket.

async fn open_websocket(gw: &Gw) -> Result<ws::Ws, tungstenite::Error> {
    let (mut ws, _) = ws::connect(gw.addr, APP).await?;
    let first = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.into_text().unwrap().as_str(), "welcome");
    Ok(ws)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f10_websocket_tunnels_count_toward_max_connections() {
    let upstream = ws::WsEcho::start().await;
    let gw = Gw::start(&gateway_config(&upstream.url(), "max_connections = 4")).await;
    let mut first = open_websocket(&gw).await.unwrap();
    let second = open_websocket(&gw).await.unwrap();
    // Two tunnels, this handshake's connection and the slot the listener holds
    // for the next connection: all four taken.
    match open_websocket(&gw).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                response
                    .headers()
                    .get("access-control-allow-origin")
                    .unwrap(),
                APP
            );
        }
        Ok(_) => panic!("a third tunnel was opened past max_connections = 4"),
        Err(other) => panic!("expected a 503, got {other:?}"),
    }
    // A tunnel that closes gives its slot back.
    first.close(None).await.unwrap();
    while let Some(Ok(_)) = tokio::time::timeout(WAIT, first.next()).await.unwrap() {}
    drop(first);
    eventually("a freed slot", || async {
        match open_websocket(&gw).await {
            Ok(_) => Ok(()),
            Err(tungstenite::Error::Http(r)) if r.status() == StatusCode::SERVICE_UNAVAILABLE => {
                Err("503".to_owned())
            }
            Err(other) => panic!("{other:?}"),
        }
    })
    .await;
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f10_an_idle_websocket_tunnel_is_closed_after_websocket_idle_timeout() {
    let upstream = ws::WsEcho::start().await;
    let gw = Gw::start(&gateway_config(
        &upstream.url(),
        "websocket_idle_timeout = \"1s\"",
    ))
    .await;
    let mut ws = open_websocket(&gw).await.unwrap();
    // Traffic keeps it open.
    ws.send(Message::text("ping")).await.unwrap();
    let echo = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "ping");
    // Then silence: the gateway closes both sides.
    let next = tokio::time::timeout(WAIT, ws.next()).await;
    assert!(
        matches!(next, Ok(None | Some(Err(_)))),
        "the idle tunnel is still open: {next:?}"
    );
}

fn handshake(extra: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f10_a_websocket_handshake_with_two_origins_is_refused() {
    let up = RawUp::start(Mode::Upgrade("websocket")).await;
    let gw = Gw::start(&gateway_config(&up.url(), "")).await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let request = handshake(&format!(
        "Upgrade: websocket\r\nOrigin: {APP}\r\nOrigin: {EVIL}\r\n"
    ));
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = read_until(&mut stream, "\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(up.heads().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f10_only_the_websocket_upgrade_token_is_forwarded() {
    let up = RawUp::start(Mode::Upgrade("websocket")).await;
    let gw = Gw::start(&gateway_config(&up.url(), "")).await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let request = handshake(&format!("Upgrade: h2c, websocket\r\nOrigin: {APP}\r\n"));
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = read_until(&mut stream, "\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    let heads = up.heads();
    let head = heads[0].to_ascii_lowercase();
    assert!(head.contains("\r\nupgrade: websocket\r\n"), "{head}");
    assert!(!head.contains("h2c"), "{head}");
    // The tunnel carries bytes both ways.
    stream.write_all(b"through").await.unwrap();
    read_until(&mut stream, "through").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f10_an_upstream_101_to_another_protocol_is_a_502() {
    let up = RawUp::start(Mode::Upgrade("h2c")).await;
    let gw = Gw::start(&gateway_config(&up.url(), "")).await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let request = handshake(&format!("Upgrade: websocket\r\nOrigin: {APP}\r\n"));
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = read_until(&mut stream, "\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains(&format!("access-control-allow-origin: {APP}")),
        "{answer}"
    );
}

// ---------------------------------------------------------------------------
// E10: an upstream body that stalls.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e10_an_upstream_body_stalled_after_its_head_is_cut_after_upstream_body_timeout() {
    let up = RawUp::start(Mode::Drip).await;
    let gw = Gw::start(&gateway_config(
        &up.url(),
        "upstream_body_timeout = \"1s\"\nidle_timeout = \"60s\"",
    ))
    .await;
    let request = Request::get(gw.url("/big"))
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let response: hyper::Response<Incoming> = tokio::time::timeout(WAIT, client().request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = tokio::time::timeout(WAIT, response.into_body().collect()).await;
    assert!(
        matches!(body, Ok(Err(_))),
        "the stalled body was not cut: {body:?}"
    );
    // The upstream connection is closed, not pooled.
    wait_until(|| up.open() == 0).await;
    let metrics = send("GET", &gw.admin_url("/metrics"), &[]).await.text();
    assert!(
        metrics.contains("corsgate_upstream_body_timeouts_total 1\n"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e10_an_upstream_body_stalled_is_a_reset_h2_stream() {
    let up = RawUp::start(Mode::Drip).await;
    let gw = Gw::start(&gateway_config(&up.url(), "upstream_body_timeout = \"1s\"")).await;
    let mut h2 = h2c::<Empty<Bytes>>(gw.addr).await;
    let request = Request::get(format!("http://{}/big", gw.addr))
        .body(Empty::new())
        .unwrap();
    let response = tokio::time::timeout(WAIT, h2.send_request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = tokio::time::timeout(WAIT, response.into_body().collect()).await;
    assert!(matches!(body, Ok(Err(_))), "{body:?}");
    // The client connection itself stays usable.
    let request = Request::get(format!("http://{}/again", gw.addr))
        .body(Empty::new())
        .unwrap();
    let again = tokio::time::timeout(WAIT, h2.send_request(request)).await;
    assert!(matches!(again, Ok(Ok(_))), "{again:?}");
}

// ---------------------------------------------------------------------------
// A client's malformed body is the client's fault.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chunked_request_body_is_a_400_not_a_502() {
    let spy = Spy::ok().await;
    let gw = Gw::start(&gateway_config(&spy.url(), "")).await;
    let answer = raw(
        gw.addr,
        format!(
            "POST /upload HTTP/1.1\r\nHost: h\r\nOrigin: {APP}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains(&format!("access-control-allow-origin: {APP}")),
        "{answer}"
    );
    let metrics = send("GET", &gw.admin_url("/metrics"), &[]).await.text();
    assert!(
        metrics.contains(
            "corsgate_gateway_responses_total{status=\"502\",kind=\"upstream-failed\"} 0\n"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_stalled_before_the_response_is_a_408() {
    let spy = Spy::ok().await;
    let gw = Gw::start(&gateway_config(&spy.url(), "body_timeout = \"1s\"")).await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /upload HTTP/1.1\r\nHost: h\r\nOrigin: {APP}\r\nContent-Length: 10\r\n\r\nabc"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let answer = read_until(&mut stream, "\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(closed_by_peer(&mut stream).await);
}

// ---------------------------------------------------------------------------
// The settings: bad values are refused at load, each with its place and value.

#[test]
fn bad_upstream_settings_are_refused_with_location_and_value() {
    let text = config(
        "body_timeout = \"0s\"\nupstream_body_timeout = \"soon\"\nmax_upstream_connections = 0\n\
         max_idle_per_upstream = -1\nupstream_idle_timeout = \"5\"\nupstream_queue_timeout = \"-1s\"\n\
         websocket_idle_timeout = \"\"",
        CORS,
        &route("/", "http://127.0.0.1:9", ""),
    );
    let checked = corsgate_config::check(&text);
    assert!(checked.gateway.is_none());
    let refused: Vec<(&str, Option<&str>, usize)> = checked
        .problems
        .iter()
        .filter(|p| p.diagnostic.is_error())
        .map(|p| (p.diagnostic.path(), p.diagnostic.value(), p.line))
        .collect();
    for (key, value) in [
        ("server.body_timeout", "0s"),
        ("server.upstream_body_timeout", "soon"),
        ("server.max_upstream_connections", "0"),
        ("server.max_idle_per_upstream", "-1"),
        ("server.upstream_idle_timeout", "5"),
        ("server.upstream_queue_timeout", "-1s"),
        ("server.websocket_idle_timeout", ""),
    ] {
        assert!(
            refused
                .iter()
                .any(|(path, v, line)| *path == key && *v == Some(value) && *line > 0),
            "{key} = {value:?} not refused: {refused:?}"
        );
    }
    // The boundaries that are allowed.
    let text = config(
        "max_upstream_connections = 1\nmax_idle_per_upstream = 0\nbody_timeout = \"1ms\"",
        CORS,
        &route("/", "http://127.0.0.1:9", ""),
    );
    let checked = corsgate_config::check(&text);
    let settings = &checked.gateway.expect("valid").settings;
    assert_eq!(settings.max_upstream_connections, 1);
    assert_eq!(settings.max_idle_per_upstream, 0);
}
