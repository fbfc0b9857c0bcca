//! One request through the gateway: route, decide, answer here or forward, and
//! apply the decision to whatever comes back.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use corsgate_policy::{Decision, Policy, classify};
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, UPGRADE, VIA};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Shared;
use super::Snapshot;
use super::body::{self, BodyTimeout, BodyTooLarge, ClientBodyError, RequestBody, ResponseBody};
use super::conn::{ConnState, InFlight};
use super::gateway_error::GatewayError;
use super::headers::{self, X_CORSGATE_REASON, X_REQUEST_ID};
use super::metrics::{RouteStats, Verdict};
use super::upstream::UpstreamError;
use corsgate_config::canonical::{
    self, CanonicalAuthority, PathRules, TargetRefusal, canonical_authority,
};
use corsgate_config::{Route, Settings, Upstream, trust};

/// What a connection's requests share.
pub(crate) struct ConnCtx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: Arc<ConnState>,
    /// The client's IP address, for `X-Forwarded-For`.
    pub(crate) client_ip: HeaderValue,
}

impl ConnCtx {
    /// Whether the peer is one of `trusted_proxies`, whose forwarding headers
    /// and request id are believed.
    pub(crate) fn is_trusted(&self, settings: &Settings) -> bool {
        !settings.trusted_proxies.is_empty()
            && std::str::from_utf8(self.client_ip.as_bytes())
                .ok()
                .and_then(|ip| ip.parse().ok())
                .is_some_and(|ip| trust::is_trusted(&settings.trusted_proxies, ip))
    }
}

const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const VIA_VALUE: HeaderValue = HeaderValue::from_static("1.1 corsgate");

/// Serves one request. The configuration snapshot is loaded once, here, and used
/// for the whole request, even if a reload swaps it meanwhile.
pub(crate) async fn handle(
    ctx: Arc<ConnCtx>,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let guard = InFlight::start(&ctx.conn, &ctx.shared.metrics);
    let snapshot = ctx.shared.snapshot.load_full();
    let mut response = serve(&ctx, &snapshot, request).await;
    response.body_mut().set_guard(guard);
    response
}

async fn serve(
    ctx: &ConnCtx,
    snapshot: &Snapshot,
    mut request: Request<Incoming>,
) -> Response<ResponseBody> {
    let gateway = &snapshot.gateway;
    let trusted = ctx.is_trusted(&gateway.settings);
    let request_id = headers::request_id(request.headers_mut(), trusted);
    // The route is chosen on the canonical target, and that same target is
    // forwarded, so that the upstream serves what the route's policy covers.
    let target = match Target::of(&request, &gateway.settings.path_rules) {
        Ok(target) => target,
        Err(text) => {
            // No route can be known: the default policy decides, as for a 404,
            // so that the page can read the 400.
            let decision = gateway
                .routes
                .default_policy()
                .decide(request.method(), request.headers());
            return gateway_error(
                ctx,
                GatewayError::BadTarget(text),
                Some(&decision),
                &request_id,
            );
        }
    };
    let matched = gateway.routes.resolve(target.host(), &target.path);
    let (uri, host) = target.rewrite(request.uri().query());
    if let Some(uri) = uri {
        *request.uri_mut() = uri;
    }
    if let Some(host) = host {
        request.headers_mut().insert(HOST, host);
    }
    // No route: the default policy still decides (`resolve` gives it), so that
    // the page can read the 404 instead of a CORS failure.
    let (route, policy): (Option<&Route>, Option<&Policy>) =
        (matched.route, matched.policy.map(|p| &**p));
    let stats: &RouteStats = match route {
        None => ctx.shared.metrics.unmatched(),
        Some(route) => snapshot
            .stats
            .get(route.index)
            .unwrap_or_else(|| ctx.shared.metrics.unmatched()),
    };
    let decision = match policy {
        Some(policy) => policy.decide(request.method(), request.headers()),
        // CORS off: nothing added, nothing answered here; preflights go upstream.
        None => Decision::pass(classify(request.method(), request.headers())),
    };
    let verdict = match decision.rejection() {
        Some(rejection) => Verdict::Rejected(rejection.reason()),
        None if decision.is_allowed() => Verdict::Allowed,
        None => Verdict::Pass,
    };
    stats.count(decision.class(), verdict);
    let route_name = route.map_or(super::metrics::UNMATCHED, |r| r.name.as_str());
    if matches!(verdict, Verdict::Rejected(_)) {
        log_refusal(
            route_name,
            &decision,
            policy.is_some_and(Policy::is_debug),
            &request,
            &request_id,
        );
    }
    let cors = policy.map(|_| &decision);

    let settings = &gateway.settings;
    let uri_len = request
        .uri()
        .path_and_query()
        .map_or(1, |p| p.as_str().len());
    if headers::head_size(uri_len, request.headers()) > settings.max_header_bytes {
        return gateway_error(ctx, GatewayError::HeadTooLarge, cors, &request_id);
    }
    if let Some(status) = decision.response_status() {
        // Preflights, and refusals under on_disallowed = "reject": answered here,
        // never forwarded.
        return local(status, cors, &request_id, "");
    }
    let Some(route) = route else {
        return gateway_error(ctx, GatewayError::NoRoute, cors, &request_id);
    };
    if request.method() == Method::CONNECT {
        return gateway_error(ctx, GatewayError::Connect, cors, &request_id);
    }
    if let Some(limit) = settings.max_body_bytes {
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit) {
            body::discard(request.into_body());
            return gateway_error(ctx, GatewayError::BodyTooLarge, cors, &request_id);
        }
    }
    let websocket = headers::is_websocket_upgrade(request.headers());
    if websocket && policy.is_some() {
        // Browsers never CORS-check a WebSocket handshake: the server must check
        // the origin itself (RFC 6455 §10.2). The decision already did, on every
        // `Origin` line (two of them are malformed, whatever the first says); a
        // refusal of it is already counted and logged.
        if let Some(rejection) = decision.rejection() {
            tracing::debug!(
                route = route_name,
                reason = rejection.reason().as_str(),
                "WebSocket handshake refused"
            );
            return local(
                StatusCode::FORBIDDEN,
                cors,
                &request_id,
                "403 Forbidden: this origin may not open a WebSocket here\n",
            );
        }
    }

    match &route.upstream {
        #[cfg(feature = "demo")]
        Upstream::Demo => {
            let mut request = request;
            request
                .headers_mut()
                .insert(X_REQUEST_ID, request_id.clone());
            let path = request.uri().path();
            let relative = canonical::strip_segments(path, route.segments).to_owned();
            let mut response = ctx.shared.demo.handle(request, &relative).await;
            finish(&mut response, cors, &request_id);
            response
        }
        // Refused at start; a reload to such a file lands here.
        #[cfg(not(feature = "demo"))]
        Upstream::Demo => gateway_error(ctx, GatewayError::NoDemo, cors, &request_id),
        Upstream::Http { authority } => {
            let rcx = RequestCtx {
                conn: ctx,
                snapshot,
                route,
                stats,
                cors,
                request_id: &request_id,
            };
            forward(&rcx, authority, request, websocket).await
        }
    }
}

/// What the phases after routing share about one request: its connection,
/// the configuration snapshot it was routed with, its route and that route's
/// counters, its CORS decision (`None`: CORS off) and its request id.
struct RequestCtx<'a> {
    conn: &'a ConnCtx,
    snapshot: &'a Snapshot,
    route: &'a Route,
    stats: &'a RouteStats,
    cors: Option<&'a Decision>,
    request_id: &'a HeaderValue,
}

async fn forward(
    rcx: &RequestCtx<'_>,
    authority: &http::uri::Authority,
    mut request: Request<Incoming>,
    websocket: bool,
) -> Response<ResponseBody> {
    let RequestCtx {
        conn: ctx,
        snapshot,
        route,
        stats,
        cors,
        request_id,
    } = *rcx;
    let settings = &snapshot.gateway.settings;
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();

    let Some(path_and_query) = upstream_path(route, &parts.uri) else {
        return gateway_error(
            ctx,
            GatewayError::BadTarget("400 Bad Request: bad request target\n"),
            cors,
            request_id,
        );
    };
    // HTTP/2 requests carry the host in the URI, not in a Host header; an
    // HTTP/1.0 request may carry none at all: then the upstream's.
    if !parts.headers.contains_key(HOST) {
        let value = parts
            .uri
            .authority()
            .unwrap_or(authority)
            .as_str()
            .parse::<HeaderValue>();
        if let Ok(value) = value {
            parts.headers.insert(HOST, value);
        }
    }
    // Origin-form (`/path?query`): the request line to an origin server.
    parts.uri = Uri::from(path_and_query);
    parts.version = Version::HTTP_11;

    headers::strip_hop_by_hop(&mut parts.headers);
    if websocket {
        // Only the protocol this gateway knows how to tunnel: never the rest of
        // the client's list (`h2c, websocket`), which the upstream might pick.
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(UPGRADE, headers::WEBSOCKET);
    }
    let host = parts.headers.get(HOST).cloned();
    let trusted = ctx.is_trusted(settings);
    headers::add_forwarded(&mut parts.headers, &ctx.client_ip, host, trusted);
    parts.headers.insert(X_REQUEST_ID, request_id.clone());
    parts.headers.append(VIA, VIA_VALUE);

    let request = Request::from_parts(
        parts,
        RequestBody::new(body, settings.max_body_bytes, settings.body_timeout),
    );
    let Some(pool) = snapshot.pools.get(route.index).and_then(Option::as_ref) else {
        // Every route with an http upstream has a pool: not reached.
        return gateway_error(ctx, GatewayError::UpstreamFailed, cors, request_id);
    };
    // A tunnel outlives its client connection, whose permit goes with it: it
    // holds one of its own, so that tunnels count toward max_connections.
    let tunnel_permit = if websocket {
        match ctx.shared.connections.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                tracing::warn!(
                    route = route.name.as_str(),
                    "WebSocket handshake refused: max_connections reached"
                );
                return gateway_error(ctx, GatewayError::WebSocketLimit, cors, request_id);
            }
        }
    } else {
        None
    };
    let started = Instant::now();
    let sent = tokio::time::timeout(settings.response_timeout, pool.send(request)).await;
    let (mut response, checkout) = match sent {
        Err(_elapsed) => {
            tracing::warn!(
                route = route.name.as_str(),
                upstream = authority.as_str(),
                timeout = ?settings.response_timeout,
                "upstream did not send its response head within response_timeout"
            );
            return gateway_error(ctx, GatewayError::UpstreamTimeout, cors, request_id);
        }
        Ok(Err(err)) => return upstream_failed(ctx, route, authority, &err, cors, request_id),
        Ok(Ok(response)) => response,
    };
    stats.observe_upstream(started.elapsed());

    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching {
        // Tunnel only what was asked for and what the gateway can check: a
        // WebSocket (RFC 6455 §4.1: the server's `Upgrade` is `websocket`).
        let agreed = response.headers().contains_key(UPGRADE)
            && response
                .headers()
                .get_all(UPGRADE)
                .iter()
                .all(|v| headers::is_websocket_token(v.as_bytes()));
        let (Some(client_upgrade), Some(permit), true) = (client_upgrade, tunnel_permit, agreed)
        else {
            tracing::warn!(
                route = route.name.as_str(),
                upstream = authority.as_str(),
                upgrade = ?response.headers().get(UPGRADE),
                "upstream switched protocols without agreeing to a WebSocket; refused"
            );
            return gateway_error(ctx, GatewayError::UnexpectedUpgrade, cors, request_id);
        };
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        ctx.shared.metrics.websocket_upgraded();
        let idle = settings.websocket_idle_timeout;
        tokio::spawn(async move {
            let (client, upstream) = match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok(pair) => pair,
                Err(err) => {
                    tracing::debug!(error = %err, "WebSocket upgrade did not complete");
                    return;
                }
            };
            tunnel(client, upstream, idle).await;
            drop(permit);
        });
    }
    let (mut parts, body) = response.into_parts();
    // Both framings at once: Transfer-Encoding wins (hyper read the body
    // chunked), and an intermediary must drop Content-Length before passing
    // the message on (RFC 9112 §6.3). The connection is not reused: such a
    // response may be an attempt at response splitting.
    let reframed = parts.headers.contains_key(http::header::TRANSFER_ENCODING)
        && parts.headers.contains_key(CONTENT_LENGTH);
    if reframed {
        parts.headers.remove(CONTENT_LENGTH);
    }
    headers::strip_hop_by_hop(&mut parts.headers);
    if switching {
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(UPGRADE, headers::WEBSOCKET);
    }
    // A switched connection is the WebSocket's now, never the pool's.
    let checkout = (!switching && !reframed).then_some(checkout);
    let mut response = Response::from_parts(
        parts,
        ResponseBody::upstream(body, checkout, settings.upstream_body_timeout),
    );
    finish(&mut response, cors, request_id);
    response
}

/// Joins a client's and an upstream's upgraded connections until both sides
/// have closed, or no byte has passed either way for `idle` (then both close).
async fn tunnel(
    client: hyper::upgrade::Upgraded,
    upstream: hyper::upgrade::Upgraded,
    idle: Duration,
) {
    let start = tokio::time::Instant::now();
    let last = AtomicU64::new(0);
    let mut client = Watched {
        io: TokioIo::new(client),
        start,
        last: &last,
    };
    let mut upstream = Watched {
        io: TokioIo::new(upstream),
        start,
        last: &last,
    };
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::pin!(copy);
    loop {
        let quiet_since = start + Duration::from_millis(last.load(Relaxed));
        let deadline = body::after(quiet_since, idle);
        if deadline <= tokio::time::Instant::now() {
            tracing::debug!(timeout = ?idle, "WebSocket tunnel idle for websocket_idle_timeout; closed");
            return;
        }
        tokio::select! {
            _ = &mut copy => return,
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// An upgraded connection that notes when bytes last came from it.
struct Watched<'a, T> {
    io: T,
    start: tokio::time::Instant,
    /// Milliseconds since `start`.
    last: &'a AtomicU64,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<'_, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let now = u64::try_from(this.start.elapsed().as_millis()).unwrap_or(u64::MAX);
            this.last.store(now, Relaxed);
        }
        read
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<'_, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The path and query to send upstream: as received, or without the route's
/// prefix when `strip_prefix` is set.
fn upstream_path(route: &Route, uri: &Uri) -> Option<PathAndQuery> {
    let original = uri.path_and_query();
    if !route.strip_prefix || route.path == "/" {
        return Some(
            original
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
    }
    // By segments, on the canonical path: `;parameters` and, with
    // `path_case = "insensitive"`, the case of the prefix may differ from the
    // route's `path`.
    let rest = canonical::strip_segments(uri.path(), route.segments);
    let text = match uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.to_owned(),
    };
    PathAndQuery::try_from(text).ok()
}

fn upstream_failed(
    ctx: &ConnCtx,
    route: &Route,
    authority: &http::uri::Authority,
    err: &UpstreamError,
    cors: Option<&Decision>,
    request_id: &HeaderValue,
) -> Response<ResponseBody> {
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    let (mut too_large, mut timed_out, mut client_failed) = (false, false, false);
    while let Some(cause) = source {
        too_large |= cause.is::<BodyTooLarge>();
        timed_out |= cause.is::<BodyTimeout>();
        client_failed |= cause.is::<ClientBodyError>();
        source = cause.source();
    }
    if too_large {
        return gateway_error(ctx, GatewayError::BodyTooLarge, cors, request_id);
    }
    // The client's side failed, not the upstream's: no upstream alert for it.
    if timed_out || client_failed {
        tracing::debug!(
            route = route.name.as_str(),
            error = %ErrorChain(err),
            "request body from the client failed"
        );
        return if timed_out {
            gateway_error(ctx, GatewayError::BodyTimeout, cors, request_id)
        } else {
            gateway_error(ctx, GatewayError::BodyUnreadable, cors, request_id)
        };
    }
    if err.is_busy() {
        tracing::warn!(
            route = route.name.as_str(),
            upstream = authority.as_str(),
            error = %err,
            "no upstream connection free"
        );
        return gateway_error(ctx, GatewayError::UpstreamBusy, cors, request_id);
    }
    tracing::warn!(
        route = route.name.as_str(),
        upstream = authority.as_str(),
        connect = err.is_connect(),
        error = %ErrorChain(err),
        "upstream request failed"
    );
    gateway_error(ctx, GatewayError::UpstreamFailed, cors, request_id)
}

/// `error: cause: cause`, for logs.
struct ErrorChain<'a>(&'a (dyn StdError + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// The CORS decision and the request id, on a response that is leaving.
fn finish(
    response: &mut Response<ResponseBody>,
    cors: Option<&Decision>,
    request_id: &HeaderValue,
) {
    let headers = response.headers_mut();
    // Room for the CORS headers and the request id at once: one resize at most.
    headers.reserve(8);
    // Only the gateway says why it refused, and only in debug mode: an
    // upstream's own reason would pass for the gateway's.
    if headers.contains_key(X_CORSGATE_REASON) {
        headers.remove(X_CORSGATE_REASON);
    }
    if let Some(decision) = cors {
        // Removes every Access-Control-* header of the upstream first: the gateway
        // is the one authority on CORS.
        decision.apply(headers);
    }
    if !headers.contains_key(X_REQUEST_ID) {
        headers.insert(X_REQUEST_ID, request_id.clone());
    }
}

/// A response the gateway makes itself on an error (404, 413, 431, 502, …),
/// counted in the metrics and carrying the route's CORS headers.
fn gateway_error(
    ctx: &ConnCtx,
    error: GatewayError,
    cors: Option<&Decision>,
    request_id: &HeaderValue,
) -> Response<ResponseBody> {
    ctx.shared.metrics.gateway_response(error);
    local(error.status(), cors, request_id, error.text())
}

fn local(
    status: StatusCode,
    cors: Option<&Decision>,
    request_id: &HeaderValue,
    text: &'static str,
) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(text.as_bytes()));
    *response.status_mut() = status;
    // Sized for every header the gateway may add, so that it never grows.
    *response.headers_mut() = HeaderMap::with_capacity(12);
    let headers = response.headers_mut();
    if text.is_empty() {
        if status != StatusCode::NO_CONTENT {
            headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
    } else {
        headers.insert(CONTENT_TYPE, TEXT_PLAIN);
    }
    finish(&mut response, cors, request_id);
    response
}

/// The request target in canonical form, and the host the request is for.
struct Target<'a> {
    /// `None` only for HTTP/1.0 requests without `Host`.
    authority: Option<CanonicalAuthority<'a>>,
    /// The canonical path, or `*` (`OPTIONS *`).
    path: Cow<'a, str>,
    /// The `Host` header matches `authority` byte for byte.
    host_header_canonical: bool,
}

const NO_HOST: &str = "400 Bad Request: an HTTP/1.1 request needs one Host header\n";
const MANY_HOSTS: &str = "400 Bad Request: more than one Host header\n";
const BAD_HOST: &str = "400 Bad Request: the Host is not host[:port]\n";
const HOST_CONFLICT: &str =
    "400 Bad Request: the Host header differs from the authority of the request target\n";

impl<'a> Target<'a> {
    /// The host: the target's authority (HTTP/2 `:authority`, absolute form),
    /// which a `Host` header may repeat but not contradict (RFC 9113 §8.3.1;
    /// RFC 9112 §3.2.2 would let the authority win, but a client sending two
    /// hosts is confused or probing); otherwise exactly one valid `Host` (RFC
    /// 9112 §3.2: 400 for none, several or an invalid one; HTTP/1.0 may omit
    /// it). The path: see [`canonical::canonical_path`]; `*` only for
    /// `OPTIONS` (RFC 9112 §3.2.4).
    fn of<B>(request: &'a Request<B>, rules: &PathRules) -> Result<Target<'a>, &'static str> {
        let mut hosts = request.headers().get_all(HOST).iter();
        let header = hosts.next();
        if hosts.next().is_some() {
            return Err(MANY_HOSTS);
        }
        let from_header = match header {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .ok()
                    .and_then(canonical_authority)
                    .ok_or(BAD_HOST)?,
            ),
        };
        // RFC 9112 §3.2: an HTTP/1.1 request carries Host even with an
        // absolute-form target.
        if from_header.is_none() && request.version() == Version::HTTP_11 {
            return Err(NO_HOST);
        }
        let uri = request.uri();
        let authority = match uri.authority() {
            Some(authority) => {
                let from_uri = canonical_authority(authority.as_str()).ok_or(BAD_HOST)?;
                if from_header.as_ref().is_some_and(|h| *h != from_uri) {
                    return Err(HOST_CONFLICT);
                }
                Some(from_uri)
            }
            None if from_header.is_none() && request.version() >= Version::HTTP_11 => {
                return Err(NO_HOST);
            }
            None => from_header,
        };
        let host_header_canonical = match (header, &authority) {
            (Some(value), Some(a)) => value.as_bytes() == a.authority.as_bytes(),
            _ => false,
        };
        let raw = uri.path();
        let path = if raw == "*" {
            if request.method() != Method::OPTIONS {
                return Err(TargetRefusal::Asterisk.message());
            }
            Cow::Borrowed(raw)
        } else {
            canonical::canonical_path(raw, rules).map_err(TargetRefusal::message)?
        };
        Ok(Target {
            authority,
            path,
            host_header_canonical,
        })
    }

    fn host(&self) -> Option<&str> {
        self.authority.as_ref().map(|a| a.host.as_ref())
    }

    /// What the request is rewritten to before it is forwarded: the canonical
    /// path (the query as received), and one `Host`, the authority the route was
    /// chosen by. `None` for what stays as it is (the usual case: no copy).
    fn rewrite(self, query: Option<&str>) -> (Option<Uri>, Option<HeaderValue>) {
        let host = match (&self.authority, self.host_header_canonical) {
            (Some(a), false) => HeaderValue::from_str(&a.authority).ok(),
            _ => None,
        };
        // A target that is canonical already is forwarded as it is (forward()
        // sends the path and query of an absolute-form or HTTP/2 target).
        let uri = match self.path {
            Cow::Borrowed(_) => None,
            Cow::Owned(path) => {
                let text = match query {
                    Some(query) => format!("{path}?{query}"),
                    None => path,
                };
                PathAndQuery::try_from(text).ok().map(Uri::from)
            }
        };
        (uri, host)
    }
}

/// One line per refused CORS request; debug mode adds what was refused.
///
/// Request values in the line are cut to a few hundred bytes, and each route
/// logs at most a few refusals per second for each reason, then one line with
/// the number left out: a client must not choose how much the gateway writes
/// (nginx cuts error-log lines at 2048 bytes).
fn log_refusal<B>(
    route: &str,
    decision: &Decision,
    debug: bool,
    request: &Request<B>,
    request_id: &HeaderValue,
) {
    use std::borrow::Cow;
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex, PoisonError};
    use std::time::Duration;

    /// Longest request value (origin, path, request id, detail) in a line.
    const MAX_LOGGED_VALUE: usize = 256;
    /// Refusals logged per route and reason in each second.
    const LINES_PER_SECOND: u32 = 10;
    const WINDOW: Duration = Duration::from_secs(1);
    /// Past this many (route, reason) windows, stale ones are forgotten (route
    /// names change across reloads).
    const MAX_WINDOWS: usize = 10_000;

    struct Window {
        start: Instant,
        logged: u32,
        suppressed: u64,
    }
    static WINDOWS: LazyLock<Mutex<HashMap<String, HashMap<&'static str, Window>>>> =
        LazyLock::new(Mutex::default);

    fn capped(value: &str) -> Cow<'_, str> {
        if value.len() <= MAX_LOGGED_VALUE {
            return Cow::Borrowed(value);
        }
        let mut end = MAX_LOGGED_VALUE;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        let kept = value.get(..end).unwrap_or_default();
        Cow::Owned(format!("{kept}…(+{} bytes)", value.len() - end))
    }

    let Some(rejection) = decision.rejection() else {
        return;
    };
    let reason = rejection.reason().as_str();
    let now = Instant::now();
    let (log, suppressed) = {
        let mut windows = WINDOWS.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() >= MAX_WINDOWS && !windows.contains_key(route) {
            windows.retain(|_, reasons| {
                reasons.retain(|_, w| now.duration_since(w.start) < WINDOW || w.suppressed > 0);
                !reasons.is_empty()
            });
        }
        if !windows.contains_key(route) {
            windows.insert(route.to_owned(), HashMap::new());
        }
        let window = windows.get_mut(route).map(|reasons| {
            reasons.entry(reason).or_insert(Window {
                start: now,
                logged: 0,
                suppressed: 0,
            })
        });
        match window {
            Some(window) => {
                let mut suppressed = 0;
                if now.duration_since(window.start) >= WINDOW {
                    suppressed = window.suppressed;
                    *window = Window {
                        start: now,
                        logged: 0,
                        suppressed: 0,
                    };
                }
                if window.logged < LINES_PER_SECOND {
                    window.logged += 1;
                    (true, suppressed)
                } else {
                    window.suppressed += 1;
                    (false, suppressed)
                }
            }
            None => (true, 0),
        }
    };
    let route: &str = &capped(route);
    if suppressed > 0 {
        tracing::info!(
            route,
            reason,
            suppressed,
            "CORS refusals suppressed: more than {LINES_PER_SECOND} a second for this route and reason; this many were not logged"
        );
    }
    if !log {
        return;
    }
    // Recorded as strings: quoted and escaped in human logs, so that a crafted
    // origin cannot pass for other fields; plain strings in JSON.
    let origin = decision
        .origin()
        .map(|o| String::from_utf8_lossy(o.as_bytes()))
        .unwrap_or_default();
    let origin: &str = &capped(&origin);
    let request_id = String::from_utf8_lossy(request_id.as_bytes());
    let request_id: &str = &capped(&request_id);
    if debug {
        let detail = rejection.to_string();
        tracing::info!(
            route,
            origin,
            class = decision.class().as_str(),
            reason,
            detail = &*capped(&detail),
            method = &*capped(request.method().as_str()),
            path = &*capped(request.uri().path()),
            request_id,
            "CORS request refused"
        );
    } else {
        tracing::info!(
            route,
            origin,
            class = decision.class().as_str(),
            reason,
            request_id,
            "CORS request refused"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_comes_from_authority_or_host_header_without_port() {
        let rules = PathRules::default();
        let host = |r: &Request<()>| Target::of(r, &rules).map(|t| t.host().map(str::to_owned));
        let r = Request::get("/x")
            .header(HOST, "Api.Example.:8080")
            .body(())
            .unwrap();
        assert_eq!(host(&r), Ok(Some("api.example".into())));
        let r = Request::get("/x")
            .header(HOST, "[::1]:8080")
            .body(())
            .unwrap();
        assert_eq!(host(&r), Ok(Some("[::1]".into())));
        let r = Request::get("http://h2.example/x")
            .version(Version::HTTP_2)
            .body(())
            .unwrap();
        assert_eq!(host(&r), Ok(Some("h2.example".into())));
        let r = Request::get("http://h2.example/x").body(()).unwrap();
        assert_eq!(host(&r), Err(NO_HOST), "HTTP/1.1 needs Host even then");
        let r = Request::get("http://h2.example/x")
            .version(Version::HTTP_2)
            .header(HOST, "other.example")
            .body(())
            .unwrap();
        assert_eq!(host(&r), Err(HOST_CONFLICT));
        let r = Request::get("/x").body(()).unwrap();
        assert_eq!(host(&r), Err(NO_HOST));
        let r = Request::get("/x")
            .version(Version::HTTP_10)
            .body(())
            .unwrap();
        assert_eq!(host(&r), Ok(None));
    }
}
