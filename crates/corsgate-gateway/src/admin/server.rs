//! The admin listener: its connections, the router over the endpoint table
//! (endpoints.rs) with the host and access checks in front of every handler,
//! and `/metrics`, `/healthz`, `/readyz`, `/config`.
//!
//! Kept apart from the gateway's listener so that it is never exposed by the
//! routes, and so that scrapes never compete with proxied traffic for limits.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, HOST};
use http::{HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;

use super::auth::authorize;
use super::endpoints::{Handler, Lookup, lookup};
use crate::Shared;
use crate::listen::accept::AcceptErrors;
use crate::request::body::ResponseBody;

/// Most admin connections open at once. Scrapers and health checks need a
/// few; past the cap, new connections wait in the listen backlog.
pub(crate) const ADMIN_MAX_CONNECTIONS: usize = 64;
/// Longest an admin connection may go without the client taking any of the
/// response bytes pending for it; then it is closed.
pub(crate) const ADMIN_SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest time to send a request head, and to stay idle between requests.
const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until aborted: the admin listener outlives the main one during a
/// drain, so that `/readyz` can say the gateway is going away.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    // The dashboard's per-interval history, for as long as this listener runs.
    let _history = super::dashboard::History::start(&shared);
    let slots = Arc::new(Semaphore::new(ADMIN_MAX_CONNECTIONS));
    // The connections end with the listener: aborted when this is.
    let mut connections = tokio::task::JoinSet::new();
    let mut accept_errors = AcceptErrors::new(
        "admin accept failed (out of file descriptors? see RLIMIT_NOFILE and max_connections)",
    );
    loop {
        // A slot first: the connections past the cap wait unaccepted.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                accept_errors.note(&err);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(route(&shared, request).await) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(ADMIN_HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(SendTimeout::new(stream)), service)
                .await;
            drop(slot);
        });
    }
}

/// A connection whose writes fail once they have made no progress for
/// [`ADMIN_SEND_TIMEOUT`]: a client that asks for `/metrics` and never reads
/// is closed instead of holding its slot and its response forever.
struct SendTimeout {
    stream: TcpStream,
    /// Armed while a write waits for the client to read.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl SendTimeout {
    fn new(stream: TcpStream) -> Self {
        SendTimeout {
            stream,
            stalled: None,
        }
    }

    /// After a write (or flush) came back `Pending`: fails once the stall has
    /// lasted the send timeout.
    fn check_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(ADMIN_SEND_TIMEOUT)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "the admin client read nothing within the send timeout",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for SendTimeout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendTimeout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, buf) {
            Poll::Pending => self.check_stall(cx).map(Err),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.stream).poll_flush(cx) {
            Poll::Pending => self.check_stall(cx).map(Err),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.check_stall(cx).map(Err),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Whether the admin listener answers a request for `host` (a `Host` header or
/// a target's authority): an IP literal, `localhost`, or a name of
/// `admin_hosts`. A page on any other name reaches this listener only through
/// DNS rebinding, and must not read `/config` or `/metrics`.
pub(crate) fn host_allowed(host: &str, admin_hosts: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => {
            return rest.split_once(']').is_some_and(|(ip, port)| {
                ip.parse::<std::net::Ipv6Addr>().is_ok()
                    && (port.is_empty() || valid_port(port.strip_prefix(':')))
            });
        }
        None => match host.rsplit_once(':') {
            Some((name, port)) if valid_port(Some(port)) => name,
            Some(_) => return false,
            None => host,
        },
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name.parse::<IpAddr>().is_ok() || name == "localhost" || admin_hosts.contains(&name)
}

fn valid_port(port: Option<&str>) -> bool {
    port.is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Every admin request: the host check, the endpoint in the table
/// (endpoints.rs), its access rule (auth.rs), then its handler.
async fn route(shared: &Shared, request: Request<Incoming>) -> Response<ResponseBody> {
    // The target's authority, for absolute-form requests, else `Host`
    // (RFC 9112 §3.2.2). HTTP/1.0 clients may send neither.
    let host = match request.uri().authority() {
        Some(authority) => Some(authority.as_str()),
        None => request.headers().get(HOST).and_then(|h| h.to_str().ok()),
    };
    let snapshot = shared.snapshot.load_full();
    let settings = &snapshot.gateway.settings;
    let allowed = match host {
        Some(host) => host_allowed(host, &settings.admin_hosts),
        None => request.version() == Version::HTTP_10,
    };
    if !allowed {
        return text(
            StatusCode::MISDIRECTED_REQUEST,
            "421 Misdirected Request: the admin listener answers IP addresses, localhost and the names in admin_hosts\n",
        );
    }
    let endpoint = match lookup(request.method(), request.uri().path()) {
        Lookup::Found(endpoint) => endpoint,
        Lookup::WrongMethod(allow) => {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                &format!("405 Method Not Allowed: this path answers {allow}\n"),
            );
            if let Ok(allow) = HeaderValue::from_str(&allow) {
                response.headers_mut().insert(ALLOW, allow);
            }
            return response;
        }
        Lookup::NotFound => {
            return text(
                StatusCode::NOT_FOUND,
                "not found: try /, /metrics, /healthz, /readyz or /config\n",
            );
        }
    };
    if let Err(refusal) = authorize(settings, request.headers(), endpoint.access()).await {
        return refusal;
    }
    match endpoint.handler() {
        Handler::Server => answer(shared, &request),
        Handler::Shadow => crate::shadow::document(shared),
        Handler::Registry => super::registry_admin::answer(shared, request).await,
        Handler::Dashboard => super::dashboard::answer(shared, &snapshot, request).await,
    }
}

/// `/metrics`, `/healthz`, `/readyz` and `/config`.
fn answer(shared: &Shared, request: &Request<Incoming>) -> Response<ResponseBody> {
    match request.uri().path() {
        "/metrics" => {
            let mut text = shared.metrics.render_shared().to_vec();
            text.extend_from_slice(super::registry_admin::metrics(shared).as_bytes());
            text.extend_from_slice(crate::shadow::metrics(shared).as_bytes());
            let mut response = Response::new(ResponseBody::full(Bytes::from(text)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if shared.is_shutting_down() {
                text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
            } else if !super::registry_admin::ready(shared) {
                text(StatusCode::SERVICE_UNAVAILABLE, "registry not loaded\n")
            } else {
                text(StatusCode::OK, "ready\n")
            }
        }
        "/config" => {
            let snapshot = shared.snapshot.load();
            match serde_json::to_vec_pretty(&snapshot.gateway.effective) {
                Ok(mut json) => {
                    json.push(b'\n');
                    let mut response = Response::new(ResponseBody::full(Bytes::from(json)));
                    response
                        .headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    response
                }
                Err(err) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{err}\n")),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: &str) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(Bytes::copy_from_slice(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
