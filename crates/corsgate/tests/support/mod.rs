//! The test kit of the integration tests. Here: a spy upstream that records
//! what reaches it, a gateway started in-process on 127.0.0.1:0 (from a text,
//! or from a file in a temporary directory), an HTTP client, raw sockets,
//! temporary directories (the `tempfile` crate), and the waits: every one polls
//! for an event with a deadline ([`WAIT`]), none sleeps for a guessed time.
//!
//! Beside it: `binary` (the one launcher of the `corsgate` binary: `serve`
//! with its banner and log lines, one-shot commands with input, environment
//! and a hang guard), `metrics` (`/metrics` read and waited on), `registry` (a
//! gateway with a client registry and its admin API), `ws` (a WebSocket echo
//! upstream and client), `raw` and `rawup` (raw-bytes spies and responses),
//! `bodyspy`, `h2raw` (HTTP/2 frames by hand), `tls` and `tlsup` (test
//! certificates, TLS clients and upstreams), `pebble` and `postgres` (servers
//! the tests start themselves).
#![allow(dead_code, unreachable_pub)]

pub mod h2raw;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use corsgate_config as config;
use corsgate_gateway::{Handle, Options, Server};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub mod binary;
pub mod bodyspy;
pub mod metrics;
pub mod pebble;
pub mod postgres;
pub mod rawup;
pub mod registry;
pub mod tls;
pub mod tlsup;
pub mod ws;

/// Longest any single wait in a test may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// A request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub body_len: u64,
}

/// What the spy answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn ok() -> Self {
        Reply {
            status: 200,
            headers: Vec::new(),
            body: "hello from upstream".to_owned(),
            delay: Duration::ZERO,
        }
    }

    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type ReplyFn = dyn Fn(&Seen) -> Reply + Send + Sync;

/// An upstream that records every request that reaches it (after reading its
/// body, which it counts without keeping) and answers with `reply`.
pub struct Spy {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    arrived: Arc<AtomicUsize>,
    body_bytes: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for Spy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Spy {
    /// A spy answering `200 hello from upstream`.
    pub async fn ok() -> Spy {
        Spy::start(|_| Reply::ok()).await
    }

    pub async fn start(reply: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Spy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(AtomicUsize::new(0));
        let body_bytes = Arc::new(AtomicU64::new(0));
        let reply: Arc<ReplyFn> = Arc::new(reply);
        let task = {
            let seen = seen.clone();
            let arrived = arrived.clone();
            let body_bytes = body_bytes.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let seen = seen.clone();
                    let arrived = arrived.clone();
                    let body_bytes = body_bytes.clone();
                    let reply = reply.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request: Request<Incoming>| {
                            let seen = seen.clone();
                            let arrived = arrived.clone();
                            let body_bytes = body_bytes.clone();
                            let reply = reply.clone();
                            async move {
                                arrived.fetch_add(1, Ordering::SeqCst);
                                let (parts, mut body) = request.into_parts();
                                let mut len = 0u64;
                                while let Some(frame) = body.frame().await {
                                    match frame {
                                        Ok(frame) => {
                                            if let Some(data) = frame.data_ref() {
                                                len += data.len() as u64;
                                                body_bytes
                                                    .fetch_add(data.len() as u64, Ordering::SeqCst);
                                            }
                                        }
                                        Err(_) => break,
                                    }
                                }
                                let request = Seen {
                                    method: parts.method,
                                    uri: parts.uri,
                                    version: parts.version,
                                    headers: parts.headers,
                                    body_len: len,
                                };
                                let answer = reply(&request);
                                seen.lock().unwrap().push(request);
                                if !answer.delay.is_zero() {
                                    tokio::time::sleep(answer.delay).await;
                                }
                                let mut response =
                                    Response::new(Full::new(Bytes::from(answer.body)));
                                *response.status_mut() =
                                    StatusCode::from_u16(answer.status).unwrap();
                                for (name, value) in &answer.headers {
                                    response.headers_mut().append(
                                        HeaderName::from_bytes(name.as_bytes()).unwrap(),
                                        HeaderValue::from_str(value).unwrap(),
                                    );
                                }
                                Ok::<_, Infallible>(response)
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        };
        Spy {
            addr,
            seen,
            arrived,
            body_bytes,
            task,
        }
    }

    /// Requests that reached the spy and were answered (or are being delayed).
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Requests whose head arrived (even if their body is still coming).
    pub fn arrived(&self) -> usize {
        self.arrived.load(Ordering::SeqCst)
    }

    pub fn body_bytes(&self) -> u64 {
        self.body_bytes.load(Ordering::SeqCst)
    }

    pub fn last(&self) -> Seen {
        self.requests().pop().expect("the spy saw no request")
    }

    /// Waits until `n` requests have been recorded.
    pub async fn wait_for(&self, n: usize) {
        wait_until(|| self.count() >= n).await;
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// How often the waits below look again: short beside [`WAIT`], long enough
/// not to keep a core busy.
const POLL: Duration = Duration::from_millis(10);

/// Polls `condition` every 10 ms, failing the test after [`WAIT`].
pub async fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {WAIT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls an async `condition` (a request, say) every 10 ms, failing the test
/// after [`WAIT`].
pub async fn wait_until_async<F, Fut>(mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {WAIT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `probe` every 10 ms until it gives `Ok(value)`, and returns that
/// value. After [`WAIT`] the test fails with `what` and the last `Err`, which
/// says what was seen instead.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(seen) => assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within {WAIT:?}; last seen:\n{seen}"
            ),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] for a thread without a runtime (a child process's output).
pub fn eventually_blocking<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(seen) => assert!(
                std::time::Instant::now() < deadline,
                "{what}: not within {WAIT:?}; last seen:\n{seen}"
            ),
        }
        std::thread::sleep(POLL);
    }
}

/// A gateway running in this process.
pub struct Gw {
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub handle: Handle,
    pub task: Option<JoinHandle<Result<(), corsgate_gateway::Error>>>,
}

/// Dropped, the gateway stops: `run`'s future is aborted, and with it every
/// task it started (the admin listener, the pruner, the connections), the
/// last reference to its state, and the registry's polling task and database
/// connection with it (tests/gateway_drop.rs).
impl Drop for Gw {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Gw {
    /// Starts a gateway on a configuration text (which should listen on
    /// 127.0.0.1:0).
    pub async fn start(toml: &str) -> Gw {
        Gw::start_with(toml, Options::new()).await
    }

    pub async fn start_with(toml: &str, options: Options) -> Gw {
        let checked = config::check(toml);
        let Some(gateway) = checked.gateway else {
            panic!(
                "invalid test configuration: {:#?}\n{toml}",
                checked.problems
            )
        };
        let server = Server::bind(gateway, options).await.unwrap();
        let addr = server.local_addr();
        let admin = server.admin_addr();
        let handle = server.handle();
        let task = tokio::spawn(server.run());
        Gw {
            addr,
            admin,
            handle,
            task: Some(task),
        }
    }

    /// Starts a gateway on a configuration file, reloadable, optionally watched.
    pub async fn from_file(path: &Path, watch: bool) -> Gw {
        let text = std::fs::read_to_string(path).unwrap();
        Gw::start_with(&text, Options::new().config_path(path).watch(watch)).await
    }

    /// Writes `text` to `corsgate.toml` in `dir` and starts a gateway on
    /// that file.
    pub async fn in_dir(dir: &TempDir, text: &str, watch: bool) -> Gw {
        Gw::from_file(&dir.write("corsgate.toml", text), watch).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin.expect("no admin listener"))
    }

    /// The admin listener's `/metrics`.
    pub async fn metrics(&self) -> metrics::Metrics {
        metrics::Metrics::fetch(self.admin.expect("no admin listener")).await
    }

    /// The value of one series of `/metrics` (see [`metrics::Metrics::get`]).
    pub async fn metric(&self, series: &str) -> u64 {
        self.metrics().await.get(series)
    }

    /// Waits until `series` has a value that `want` accepts; returns it.
    pub async fn wait_metric(&self, series: &str, want: impl Fn(u64) -> bool) -> u64 {
        metrics::wait_metric(self.admin.expect("no admin listener"), series, want).await
    }

    /// Waits for `run` to return (after a shutdown).
    pub async fn stopped(&mut self) -> Result<(), corsgate_gateway::Error> {
        let task = self.task.take().expect("already stopped");
        tokio::time::timeout(WAIT, task)
            .await
            .expect("the gateway did not stop in time")
            .unwrap()
    }
}

/// `[server]` listening on 127.0.0.1:0 with an admin listener, the given extra
/// `[server]` keys, a `[server.cors]` body, and routes.
pub fn config(server_extra: &str, cors: &str, routes: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{server_extra}\n\n[server.cors]\n{cors}\n\n{routes}\n"
    )
}

/// One `[[route]]`.
pub fn route(path: &str, upstream: &str, extra: &str) -> String {
    format!("[[route]]\npath = \"{path}\"\nupstream = \"{upstream}\"\n{extra}\n")
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Every line of a header, joined with ", ".
    pub fn joined(&self, name: &str) -> String {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `Access-Control-*` headers.
    pub fn cors(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter(|(n, _)| n.as_str().starts_with("access-control-"))
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect()
    }
}

pub type TestClient<B> = Client<HttpConnector, B>;

pub fn client() -> TestClient<Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2_client() -> TestClient<Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// Sends a request with a real HTTP/1.1 client and reads the whole response.
pub async fn send(method: &str, url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    send_map(&client(), method, url, map, Bytes::new()).await
}

/// Sends a request with a body; header values may repeat a name.
pub async fn send_with(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    send_map(&client(), method, url, map, Bytes::from(body.to_owned())).await
}

pub async fn send_map(
    client: &TestClient<Full<Bytes>>,
    method: &str,
    url: &str,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let mut request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(url)
        .body(Full::new(body))
        .unwrap();
    *request.headers_mut() = headers;
    let response = tokio::time::timeout(WAIT, client.request(request))
        .await
        .expect("no response in time")
        .expect("request failed");
    read(response).await
}

pub async fn read(response: Response<Incoming>) -> Answer {
    let (parts, body) = response.into_parts();
    let body = tokio::time::timeout(WAIT, body.collect())
        .await
        .expect("body not read in time")
        .expect("body failed")
        .to_bytes();
    Answer {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body,
    }
}

/// Sends raw bytes on a new connection and reads until the peer closes or
/// `WAIT` passes; returns what came back.
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A request body of `len` bytes made on the fly, chunk by chunk, never held
/// whole; sent chunked (no length announced).
pub struct LazyBody {
    remaining: u64,
    chunk: Bytes,
}

impl LazyBody {
    pub fn new(len: u64, chunk_size: usize) -> Self {
        LazyBody {
            remaining: len,
            chunk: Bytes::from(vec![b'x'; chunk_size]),
        }
    }
}

impl Body for LazyBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(self.chunk.len() as u64);
        self.remaining -= n;
        let data = self.chunk.slice(..n as usize);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A directory under the system's temporary directory (made by the `tempfile`
/// crate: a name no other process can take), removed on drop.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    /// `name` is a prefix of the directory's name, to tell them apart.
    pub fn new(name: &str) -> TempDir {
        TempDir(
            tempfile::Builder::new()
                .prefix(&format!("corsgate-{name}-"))
                .tempdir()
                .unwrap(),
        )
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    pub fn join(&self, name: &(impl AsRef<Path> + ?Sized)) -> PathBuf {
        self.0.path().join(name)
    }

    /// Writes `dir/name` whole; returns its path.
    pub fn write(&self, name: &str, contents: &(impl AsRef<[u8]> + ?Sized)) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

/// Writes a file whole, through a temporary file renamed over it, as editors do.
pub fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// An address where nothing listens.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}
pub mod raw;
