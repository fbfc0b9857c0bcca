//! Every answer the gateway makes itself, one per `GatewayErrorKind`, provoked
//! over a real socket: each carries its kind's status and the route's CORS
//! headers for an allowed origin (the page can read why), the request id, and
//! is counted under its kind. A new kind without a way to provoke it here
//! fails the test.

mod support;

use std::net::SocketAddr;

use corsgate_gateway::{GatewayErrorKind, Options};
use support::rawup::{Mode, RawUp};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const APP: &str = "https://app.example.com";
const EVIL: &str = "https://evil.example";
const CORS: &str = "allow_origins = [\"https://app.example.com\"]\nallow_credentials = true";

/// One answer read off a socket: status, headers (names lowercase), body.
#[derive(Debug)]
struct Parsed {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Parsed {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `bytes` on a new connection and reads one response: its head, then
/// `Content-Length` bytes of body.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Parsed {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    read_answer(&mut stream).await
}

async fn read_answer(stream: &mut TcpStream) -> Parsed {
    let mut buf = Vec::new();
    let read = async {
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "closed before a response head: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < len {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        Parsed {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("no answer in time")
}

fn get(path: &str, origin: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: api.example\r\nOrigin: {origin}\r\n{extra}\r\n")
        .into_bytes()
}

fn handshake(origin: &str) -> Vec<u8> {
    get(
        "/ws",
        origin,
        "Connection: upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    )
}

async fn gateway(upstream: &str, server_extra: &str) -> Gw {
    Gw::start(&config(server_extra, CORS, &route("/", upstream, ""))).await
}

/// Provokes `kind` over a real socket; returns the gateway (for its metrics)
/// and the answer. `None`: this build cannot produce the kind at all.
async fn provoke(kind: GatewayErrorKind) -> Option<(Gw, Parsed, &'static str)> {
    use GatewayErrorKind as K;
    let answer = match kind {
        K::BadTarget => {
            let gw = gateway(&closed_port_url().await, "").await;
            let answer = exchange(gw.addr, &get("/x", APP, "Host: other.example\r\n")).await;
            (gw, answer, APP)
        }
        K::Connect => {
            let gw = gateway(&closed_port_url().await, "").await;
            let answer = exchange(
                gw.addr,
                format!(
                    "CONNECT api.example:443 HTTP/1.1\r\nHost: api.example:443\r\nOrigin: {APP}\r\n\r\n"
                )
                .as_bytes(),
            )
            .await;
            (gw, answer, APP)
        }
        K::NoRoute => {
            let spy = Spy::ok().await;
            let gw = Gw::start(&config("", CORS, &route("/api", &spy.url(), ""))).await;
            let answer = exchange(gw.addr, &get("/nowhere", APP, "")).await;
            assert_eq!(spy.count(), 0);
            (gw, answer, APP)
        }
        K::HeadTooLarge => {
            let gw = gateway(&closed_port_url().await, "max_header_bytes = 4096").await;
            let big = format!("X-Big: {}\r\n", "a".repeat(5000));
            let answer = exchange(gw.addr, &get("/x", APP, &big)).await;
            (gw, answer, APP)
        }
        K::BodyTooLarge => {
            let gw = gateway(&closed_port_url().await, "max_body_bytes = 10").await;
            let mut request = get("/x", APP, "Content-Length: 20\r\n");
            request[..3].copy_from_slice(b"PUT");
            request.extend_from_slice(&[b'x'; 20]);
            let answer = exchange(gw.addr, &request).await;
            (gw, answer, APP)
        }
        K::BodyTimeout => {
            let spy = Spy::ok().await;
            let gw = gateway(&spy.url(), "body_timeout = \"1s\"").await;
            let mut request = get("/x", APP, "Content-Length: 10\r\n");
            request[..3].copy_from_slice(b"PUT");
            request.extend_from_slice(b"abc");
            let answer = exchange(gw.addr, &request).await;
            (gw, answer, APP)
        }
        K::BodyUnreadable => {
            let spy = Spy::ok().await;
            let gw = gateway(&spy.url(), "").await;
            let mut request = get("/x", APP, "Transfer-Encoding: chunked\r\n");
            request[..3].copy_from_slice(b"PUT");
            request.extend_from_slice(b"5\r\nhello\r\nzz\r\n");
            let answer = exchange(gw.addr, &request).await;
            (gw, answer, APP)
        }
        K::WebSocketOrigin => {
            let up = RawUp::start(Mode::Upgrade("websocket")).await;
            let gw = gateway(&up.url(), "").await;
            let answer = exchange(gw.addr, &handshake(EVIL)).await;
            assert!(up.heads().is_empty());
            (gw, answer, EVIL)
        }
        K::Loop => {
            // The route's upstream is the gateway itself.
            let listen = closed_port().await;
            let gw = Gw::start_with(
                &config("", CORS, &route("/", &format!("http://{listen}"), "")),
                Options::new().listen(listen),
            )
            .await;
            let answer = exchange(gw.addr, &get("/x", APP, "")).await;
            (gw, answer, APP)
        }
        K::UpstreamFailed => {
            // An upstream that accepts, reads the head and closes without an
            // answer.
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let closer = tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let mut buf = [0u8; 1024];
                    let _ = stream.read(&mut buf).await;
                }
            });
            let gw = gateway(&format!("http://{addr}"), "").await;
            let answer = exchange(gw.addr, &get("/x", APP, "")).await;
            closer.abort();
            (gw, answer, APP)
        }
        K::UpstreamRefused => {
            let gw = gateway(&closed_port_url().await, "").await;
            let answer = exchange(gw.addr, &get("/x", APP, "")).await;
            (gw, answer, APP)
        }
        K::UpstreamConnectTimeout => {
            // A listener whose accept queue is full: the kernel drops further
            // SYNs, so connecting lasts until connect_timeout.
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
            let listener = socket.listen(0).unwrap();
            let addr = listener.local_addr().unwrap();
            let _queued = TcpStream::connect(addr).await.unwrap();
            let gw = gateway(&format!("http://{addr}"), "connect_timeout = \"200ms\"").await;
            let answer = exchange(gw.addr, &get("/x", APP, "")).await;
            drop(listener);
            (gw, answer, APP)
        }
        K::UpstreamTimeout => {
            let up = RawUp::start(Mode::Held).await;
            let gw = gateway(&up.url(), "response_timeout = \"1s\"").await;
            let answer = exchange(gw.addr, &get("/x", APP, "")).await;
            up.release();
            (gw, answer, APP)
        }
        K::UpstreamBusy => {
            let up = RawUp::start(Mode::Held).await;
            let gw = gateway(
                &up.url(),
                "max_upstream_connections = 1\nupstream_queue_timeout = \"200ms\"",
            )
            .await;
            // The one connection allowed is held by a first request.
            let mut first = TcpStream::connect(gw.addr).await.unwrap();
            first.write_all(&get("/first", APP, "")).await.unwrap();
            wait_until(|| !up.heads().is_empty()).await;
            let answer = exchange(gw.addr, &get("/second", APP, "")).await;
            up.release();
            assert_eq!(read_answer(&mut first).await.status, 200);
            (gw, answer, APP)
        }
        K::UnexpectedUpgrade => {
            let up = RawUp::start(Mode::Upgrade("h2c")).await;
            let gw = gateway(&up.url(), "").await;
            let answer = exchange(gw.addr, &handshake(APP)).await;
            (gw, answer, APP)
        }
        K::WebSocketLimit => {
            let up = RawUp::start(Mode::Upgrade("websocket")).await;
            // The handshake's own connection takes the one slot: none is left
            // for its tunnel.
            let gw = gateway(&up.url(), "max_connections = 1").await;
            let answer = exchange(gw.addr, &handshake(APP)).await;
            (gw, answer, APP)
        }
        K::NoDemo => {
            if cfg!(feature = "demo") {
                // With the demo built in, a builtin:demo route is served.
                return None;
            }
            // Refused at start; a reload can bring such a route in.
            let dir = TempDir::new("no-demo");
            let file = dir.join("corsgate.toml");
            let spy = Spy::ok().await;
            std::fs::write(&file, config("", CORS, &route("/", &spy.url(), ""))).unwrap();
            let gw = Gw::from_file(&file, false).await;
            std::fs::write(&file, config("", CORS, &route("/", "builtin:demo", ""))).unwrap();
            assert!(matches!(
                gw.handle.reload(),
                corsgate_gateway::ReloadOutcome::Applied { .. }
            ));
            let answer = exchange(gw.addr, &get("/x", APP, "")).await;
            (gw, answer, APP)
        }
        K::UpstreamTls => {
            // An https:// upstream that answers in cleartext: no handshake.
            let spy = Spy::ok().await;
            let gw = gateway(&spy.url().replace("http://", "https://"), "").await;
            let answer = exchange(gw.addr, &get("/x", APP, "")).await;
            (gw, answer, APP)
        }
        other => panic!("{other:?}: no way to provoke this kind in tests/phases.rs; add one"),
    };
    Some(answer)
}

async fn closed_port_url() -> String {
    format!("http://{}", closed_port().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_gateway_answer_carries_its_status_and_the_routes_cors_headers() {
    let mut failures = Vec::new();
    for kind in GatewayErrorKind::ALL {
        let Some((gw, answer, origin)) = Box::pin(provoke(kind)).await else {
            continue;
        };
        let status = kind.status().as_u16();
        let mut problems = Vec::new();
        if answer.status != status {
            problems.push(format!("status {} instead of {status}", answer.status));
        }
        if !answer.body.starts_with(&status.to_string()) {
            problems.push(format!("body {:?}", answer.body));
        }
        if answer.header("x-request-id").is_none() {
            problems.push("no x-request-id".to_owned());
        }
        let vary = answer.header("vary").unwrap_or("").to_ascii_lowercase();
        if !vary.contains("origin") {
            problems.push(format!("vary {vary:?}"));
        }
        let acao = answer.header("access-control-allow-origin");
        if origin == APP {
            if acao != Some(APP)
                || answer.header("access-control-allow-credentials") != Some("true")
            {
                problems.push(format!("CORS headers {:?}", answer.headers));
            }
        } else if acao.is_some() {
            problems.push(format!("a refused origin got {acao:?}"));
        }
        let metrics = send("GET", &gw.admin_url("/metrics"), &[]).await.text();
        let counted =
            format!("corsgate_gateway_responses_total{{status=\"{status}\",kind=\"{kind}\"}} 1\n");
        if !metrics.contains(&counted) {
            problems.push(format!("not counted as {counted:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!("{kind:?}: {}", problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
