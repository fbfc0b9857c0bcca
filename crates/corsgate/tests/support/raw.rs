//! A raw-bytes spy upstream: records each request head exactly as it arrived on
//! the wire (request line and header lines, unparsed), so that tests can assert
//! what the gateway forwarded byte for byte, and answers with a fixed response.
//! And a raw-bytes client answer parser.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::{WAIT, wait_until};

/// A request head as the upstream received it.
#[derive(Debug, Clone)]
pub struct RawHead {
    /// `GET /path HTTP/1.1`.
    pub request_line: String,
    /// Header lines in order, as sent: (name, value).
    pub headers: Vec<(String, String)>,
}

impl RawHead {
    /// The request target of the request line.
    pub fn target(&self) -> &str {
        self.request_line.split(' ').nth(1).unwrap_or_default()
    }

    /// Every value of header `name` (any case), in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of `name`; fails the test when there are several.
    pub fn one(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(all.len() <= 1, "several {name} lines: {all:?}");
        all.first().copied()
    }
}

/// The raw spy.
pub struct RawSpy {
    pub addr: SocketAddr,
    heads: Arc<Mutex<Vec<RawHead>>>,
    task: JoinHandle<()>,
}

impl Drop for RawSpy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawSpy {
    /// Answers every request `200` with `extra_headers` (raw `Name: value\r\n`
    /// lines) and the body `body`, keeping the connection open.
    pub async fn start(extra_headers: &str, body: &str) -> RawSpy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{extra_headers}\r\n{body}",
            body.len()
        );
        let task = {
            let heads = heads.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    tokio::spawn(serve(stream, heads.clone(), response.clone()));
                }
            })
        };
        RawSpy { addr, heads, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn heads(&self) -> Vec<RawHead> {
        self.heads.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.heads.lock().unwrap().len()
    }

    pub fn last(&self) -> RawHead {
        self.heads().pop().expect("the spy saw no request")
    }

    pub async fn wait_for(&self, n: usize) {
        wait_until(|| self.count() >= n).await;
    }
}

/// Reads heads (and `Content-Length` bodies) one after the other on one
/// connection, answering each; bounded by [`WAIT`] per request.
async fn serve(mut stream: TcpStream, heads: Arc<Mutex<Vec<RawHead>>>, response: String) {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(WAIT, stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
            if buf.len() > 1 << 20 {
                return;
            }
        };
        let text = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut lines = text.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        buf.drain(..end + 4);
        while buf.len() < length {
            let mut chunk = [0u8; 4096];
            match tokio::time::timeout(WAIT, stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        }
        buf.drain(..length);
        heads.lock().unwrap().push(RawHead {
            request_line,
            headers,
        });
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// A response as a raw client read it.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub text: String,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `head` (a request head without its final blank line; `Connection:
/// close` is added) on a new connection and parses the one answer.
pub async fn raw_request(addr: SocketAddr, head: &str) -> RawAnswer {
    let text = super::raw(
        addr,
        format!("{head}\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_owned(), v.trim().to_owned()))
        .collect();
    RawAnswer {
        status,
        headers,
        body: body.to_owned(),
        text,
    }
}

/// Reads one HTTP/1.1 response (head, and a body of its `Content-Length`)
/// from a connection kept open, as a keep-alive client does; `None` if the
/// connection ends first. Each read is bounded by [`WAIT`].
pub async fn read_response(stream: &mut TcpStream) -> Option<(String, String)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte: what follows this response (a pipelined one) stays unread.
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("no response byte in time")
        {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8(head).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    tokio::time::timeout(WAIT, stream.read_exact(&mut body))
        .await
        .expect("no response body in time")
        .ok()?;
    Some((head, String::from_utf8(body).unwrap()))
}
