//! The HTTP version of a proxied response is the gateway's own, never the
//! upstream's: "Intermediaries that process HTTP messages (i.e., all
//! intermediaries other than those acting as tunnels) MUST send their own
//! HTTP-version in forwarded messages" (RFC 9110 §6.2), and a server sends
//! the highest minor version it speaks within the client's major version
//! (RFC 9110 §6.2, RFC 9112 §2.3). An HTTP/1.0 upstream's answer reaches an
//! HTTP/1.1 client as `HTTP/1.1`, an HTTP/1.0 client's as `HTTP/1.0`.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use support::raw::raw_request;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An HTTP/1.0 upstream on a raw socket: reads one request head, answers with
/// `HTTP/1.0 200 OK` and `answer`, then closes (HTTP/1.0 without
/// keep-alive). Counts the requests it answered.
struct Http10Up {
    addr: SocketAddr,
    answered: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Http10Up {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Http10Up {
    /// `answer`: the headers and body after the status line.
    async fn start(answer: &'static str) -> Http10Up {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answered = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let answered = answered.clone();
            async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let answered = answered.clone();
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
                            let mut chunk = [0u8; 4096];
                            match tokio::time::timeout(WAIT, stream.read(&mut chunk)).await {
                                Ok(Ok(n)) if n > 0 => head.extend_from_slice(&chunk[..n]),
                                _ => return,
                            }
                        }
                        let text = format!("HTTP/1.0 200 OK\r\n{answer}");
                        if stream.write_all(text.as_bytes()).await.is_ok() {
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        let _ = stream.shutdown().await;
                    });
                }
            }
        });
        Http10Up {
            addr,
            answered,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn gateway(up: &Http10Up) -> Gw {
    Gw::start(&config(
        "",
        "allow_origins = [\"https://app.example.com\"]",
        &route("/", &up.url(), ""),
    ))
    .await
}

fn status_line(text: &str) -> &str {
    text.split("\r\n").next().unwrap_or_default()
}

#[tokio::test]
async fn an_http10_upstreams_response_reaches_an_http11_client_as_http11() {
    let up = Http10Up::start("Content-Length: 2\r\nContent-Type: text/plain\r\n\r\nok").await;
    let gw = gateway(&up).await;
    let answer = raw_request(
        gw.addr,
        "GET /x HTTP/1.1\r\nhost: api.example\r\norigin: https://app.example.com",
    )
    .await;
    assert_eq!(
        status_line(&answer.text),
        "HTTP/1.1 200 OK",
        "{}",
        answer.text
    );
    assert_eq!(answer.body, "ok");
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(up.answered.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_close_delimited_http10_body_is_framed_for_an_http11_client() {
    // No Content-Length: the body ends when the upstream closes (RFC 9112
    // §6.3, item 8). The HTTP/1.1 client gets it chunked (or sized), whole.
    let up = Http10Up::start("Content-Type: text/plain\r\n\r\nuntil the end").await;
    let gw = gateway(&up).await;
    let answer = raw_request(gw.addr, "GET /x HTTP/1.1\r\nhost: api.example").await;
    assert_eq!(
        status_line(&answer.text),
        "HTTP/1.1 200 OK",
        "{}",
        answer.text
    );
    assert!(
        answer.header("transfer-encoding") == Some("chunked")
            || answer.header("content-length") == Some("13"),
        "{}",
        answer.text
    );
    assert!(answer.body.contains("until the end"), "{}", answer.text);
}

#[tokio::test]
async fn an_http10_client_still_gets_http10() {
    let up = Http10Up::start("Content-Length: 2\r\n\r\nok").await;
    let gw = gateway(&up).await;
    let answer = raw_request(gw.addr, "GET /x HTTP/1.0\r\nhost: api.example").await;
    assert_eq!(
        status_line(&answer.text),
        "HTTP/1.0 200 OK",
        "{}",
        answer.text
    );
    assert_eq!(answer.body, "ok");
}

#[tokio::test]
async fn an_http2_client_gets_its_answer_from_an_http10_upstream() {
    let up = Http10Up::start("Content-Length: 2\r\n\r\nok").await;
    let gw = gateway(&up).await;
    let response = h2_client()
        .request(
            http::Request::get(gw.url("/x"))
                .version(http::Version::HTTP_2)
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let answer = read(response).await;
    assert_eq!(answer.status, http::StatusCode::OK);
    assert_eq!(answer.version, http::Version::HTTP_2);
    assert_eq!(&answer.body[..], b"ok");
}
