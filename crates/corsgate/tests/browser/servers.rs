//! Everything the browser talks to, all on 127.0.0.1: blank pages on two ports
//! (reached as `127.0.0.1`, `localhost` and `*.localhost` names, which Chromium
//! resolves to loopback itself), a spy upstream, a WebSocket echo upstream, and
//! corsgate gateways, each running from a configuration file that `corsgate
//! explain` reads too.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::harness::{Initiator, Request as PageRequest};
use crate::support::{Gw, Reply, Seen, Spy, TempDir, WAIT, closed_port};

const BLANK: &str = "<!doctype html><meta charset=utf-8><title>corsgate browser suite</title>";

/// Serves the blank page on any path and any `Host`.
async fn page_server() -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(|request: Request<Incoming>| async move {
                    let (status, body) = if request.uri().path() == "/favicon.ico" {
                        (404, "")
                    } else {
                        (200, BLANK)
                    };
                    let response = Response::builder()
                        .status(status)
                        .header("content-type", "text/html; charset=utf-8")
                        .header("cache-control", "no-store")
                        .body(Full::new(Bytes::from_static(body.as_bytes())))
                        .unwrap();
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (port, task)
}

/// A WebSocket upstream that echoes every message; counts the handshakes it
/// accepted.
async fn websocket_echo() -> (SocketAddr, Arc<AtomicUsize>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                while let Some(Ok(message)) = ws.next().await {
                    if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    (addr, accepted, task)
}

/// Whether `path`, percent-decoded (`%2F` included) with `;parameters`
/// removed, empty and `.` segments dropped, is under `/f1/api/admin/`.
fn is_f1_admin(path: &str) -> bool {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                decoded.push(b);
                i += 3;
            }
            (b, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let decoded = String::from_utf8_lossy(&decoded);
    let segments: Vec<&str> = decoded
        .split('/')
        .map(|s| s.split(';').next().unwrap_or_default())
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    segments.len() > 3 && segments[..3] == ["f1", "api", "admin"]
}

/// The spy upstream's answers, chosen by path so that one upstream serves every
/// scenario. Every answer carries headers a page may or may not be allowed to
/// read (`x-total-count`, `x-secret`, the request id) and a body naming the
/// method, the path and the cookies that arrived.
pub(crate) fn upstream_reply(seen: &Seen) -> Reply {
    let path = seen.uri.path();
    let method = seen.method.as_str();
    let origin = seen
        .headers
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut reply = Reply::ok()
        .header("content-type", "text/plain; charset=utf-8")
        .header("cache-control", "no-store")
        .header("x-total-count", "42")
        .header("x-secret", "s3cr3t");
    if let Some(id) = seen
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
    {
        reply = reply.header("x-request-id", id);
    }
    reply.body = match seen.headers.get("cookie").and_then(|v| v.to_str().ok()) {
        Some(cookie) => format!("{method} {path} cookie={cookie}"),
        None => format!("{method} {path}"),
    };
    if is_f1_admin(path) {
        // An upstream that decodes the path before routing (WSGI, Spring, Go's
        // ServeMux) serves any spelling of /f1/api/admin/… as the admin data.
        reply.body = "ADMIN-ONLY-DATA".to_owned();
    }
    if path.ends_with("/status-500") {
        reply = reply.status(500);
        reply.body = "upstream failed".to_owned();
    } else if path.starts_with("/slow") {
        reply = reply.delay(Duration::from_secs(3));
    } else if path.ends_with("/login") {
        reply = reply.header("set-cookie", "session=s1; Path=/");
    } else if path.starts_with("/upstream-cors/reflect") {
        // The mistake the seeds warn about, made by the app behind the gateway.
        let origin = origin.unwrap_or_else(|| "*".to_owned());
        reply = reply
            .header("access-control-allow-origin", &origin)
            .header("access-control-allow-credentials", "true")
            .header("access-control-allow-methods", "*")
            .header("access-control-allow-headers", "*")
            .header("access-control-expose-headers", "x-secret")
            .header("access-control-max-age", "86400")
            .header("vary", "Accept-Encoding");
    } else if path.starts_with("/upstream-cors/star") {
        reply = reply
            .header("access-control-allow-origin", "*")
            .header("access-control-allow-origin", "http://other.example")
            .header("access-control-expose-headers", "*");
    } else if path.starts_with("/redirect/") && !path.ends_with("/end") {
        // Everything here redirects, OPTIONS included: a preflight that reached
        // the upstream would be redirected, which browsers treat as a failure.
        let target = format!("{}/end", path.rsplit_once('/').map_or("", |(dir, _)| dir));
        let status = if path.ends_with("/put-start") {
            307
        } else {
            302
        };
        reply = reply.status(status).header("location", &target);
    } else if path.starts_with("/cors-off/") {
        // A route with CORS off: the upstream answers its own preflights, with
        // `Access-Control-Allow-Headers: *`.
        let origin = origin.unwrap_or_else(|| "*".to_owned());
        reply = reply.header("access-control-allow-origin", &origin);
        if method == "OPTIONS" {
            reply = reply
                .status(204)
                .header("access-control-allow-methods", "*")
                .header("access-control-allow-headers", "*");
            reply.body = String::new();
        }
    }
    reply
}

/// A running gateway and the file it was started from.
pub(crate) struct Gateway {
    pub(crate) addr: SocketAddr,
    pub(crate) admin: Option<SocketAddr>,
    pub(crate) file: PathBuf,
    _running: Running,
}

enum Running {
    /// Held for its `Drop`, which stops the gateway.
    InProcess {
        _gw: Box<Gw>,
    },
    Binary(Binary),
}

impl Gateway {
    /// `http://127.0.0.1:PORT{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The same gateway reached under another loopback name.
    pub(crate) fn url_at(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.addr.port())
    }

    pub(crate) fn ws(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub(crate) fn fetch(&self, path: &str) -> PageRequest {
        PageRequest::new(Initiator::Fetch, self.url(path), &self.file)
    }

    pub(crate) fn xhr(&self, path: &str) -> PageRequest {
        PageRequest::new(Initiator::Xhr, self.url(path), &self.file)
    }

    /// A request to the gateway under another loopback name.
    pub(crate) fn fetch_at(&self, host: &str, path: &str) -> PageRequest {
        PageRequest::new(Initiator::Fetch, self.url_at(host, path), &self.file)
    }

    pub(crate) fn is_running(&mut self) -> bool {
        match &mut self._running {
            Running::InProcess { .. } => true,
            Running::Binary(binary) => binary.child.try_wait().unwrap().is_none(),
        }
    }
}

/// `corsgate serve` as a process (for reloads by file change, as operators see
/// them). Killed on drop.
struct Binary {
    child: Child,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_binary(file: &Path) -> (Binary, SocketAddr, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corsgate"))
        .arg("serve")
        .arg("--config")
        .arg(file)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start corsgate serve");
    let stdout = child.stdout.take().unwrap();
    let binary = Binary { child };
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let (mut listen, mut admin) = (None, None);
    while listen.is_none() || admin.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("corsgate serve printed no addresses");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            listen = Some(rest.trim().parse().unwrap());
        } else if let Some(rest) = line.strip_prefix("admin: http://") {
            admin = Some(rest.split('/').next().unwrap().parse().unwrap());
        }
    }
    // Keep draining stdout so that the process never blocks on a full pipe.
    std::thread::spawn(move || while lines.recv().is_ok() {});
    (binary, listen.unwrap(), admin.unwrap())
}

/// The servers of one run of the suite.
pub(crate) struct Env {
    pub(crate) dir: TempDir,
    pub(crate) spy: Spy,
    pub(crate) websocket_upstream: SocketAddr,
    pub(crate) websocket_accepted: Arc<AtomicUsize>,
    /// A port where nothing listens.
    pub(crate) down: SocketAddr,
    /// The two page ports.
    pub(crate) a: u16,
    pub(crate) b: u16,
    gateways: BTreeMap<String, Gateway>,
    _tasks: Vec<JoinHandle<()>>,
}

impl Drop for Env {
    fn drop(&mut self) {
        for task in &self._tasks {
            task.abort();
        }
    }
}

impl Env {
    pub(crate) async fn start() -> Env {
        let (a, page_a) = page_server().await;
        let (b, page_b) = page_server().await;
        let (websocket_upstream, websocket_accepted, ws_task) = websocket_echo().await;
        Env {
            dir: TempDir::new("browser"),
            spy: Spy::start(upstream_reply).await,
            websocket_upstream,
            websocket_accepted,
            down: closed_port().await,
            a,
            b,
            gateways: BTreeMap::new(),
            _tasks: vec![page_a, page_b, ws_task],
        }
    }

    /// The main page origin, `http://127.0.0.1:A`.
    pub(crate) fn app(&self) -> String {
        format!("http://127.0.0.1:{}", self.a)
    }

    /// Same host, other port: `http://127.0.0.1:B`.
    pub(crate) fn other_port(&self) -> String {
        format!("http://127.0.0.1:{}", self.b)
    }

    /// `http://localhost:A`: the same server as [`Env::app`], another origin.
    pub(crate) fn localhost(&self) -> String {
        format!("http://localhost:{}", self.a)
    }

    pub(crate) fn localhost_b(&self) -> String {
        format!("http://localhost:{}", self.b)
    }

    /// `http://NAME.localhost:A`.
    pub(crate) fn named(&self, name: &str) -> String {
        format!("http://{name}.localhost:{}", self.a)
    }

    /// Writes `toml` to `NAME.toml` and starts an in-process gateway on it.
    pub(crate) async fn add_gateway(&mut self, name: &str, toml: &str) -> &Gateway {
        let file = self.dir.join(&format!("{name}.toml"));
        std::fs::write(&file, toml).unwrap();
        let gw = Gw::from_file(&file, false).await;
        let gateway = Gateway {
            addr: gw.addr,
            admin: gw.admin,
            file,
            _running: Running::InProcess { _gw: Box::new(gw) },
        };
        self.gateways.insert(name.to_owned(), gateway);
        &self.gateways[name]
    }

    /// Writes `toml` to `NAME.toml` and runs `corsgate serve --config` on it.
    pub(crate) fn add_binary_gateway(&mut self, name: &str, toml: &str) -> &Gateway {
        let file = self.dir.join(&format!("{name}.toml"));
        std::fs::write(&file, toml).unwrap();
        let (binary, addr, admin) = start_binary(&file);
        let gateway = Gateway {
            addr,
            admin: Some(admin),
            file,
            _running: Running::Binary(binary),
        };
        self.gateways.insert(name.to_owned(), gateway);
        &self.gateways[name]
    }

    pub(crate) fn gw(&self, name: &str) -> &Gateway {
        self.gateways
            .get(name)
            .unwrap_or_else(|| panic!("no gateway {name}"))
    }

    pub(crate) fn gw_mut(&mut self, name: &str) -> &mut Gateway {
        self.gateways.get_mut(name).unwrap()
    }
}
