//! One request through the gateway, as a row of phases:
//!
//! 1. [`resolve`]: the canonical target, the route and its policy;
//! 2. [`decide`]: the CORS decision, counted (and a refusal logged);
//! 3. [`admit`]: what the gateway answers itself before any upstream is
//!    asked (a loop, the head size, a preflight, no route, `CONNECT`, the
//!    declared body size, a WebSocket's origin);
//! 4. [`dispatch`]: the built-in demo, or [`forward`](crate::upstream::forward::forward)
//!    to the upstream;
//! 5. [`respond`]: the one way out. Upstream responses and the gateway's own
//!    answers alike get the route's CORS decision and the request id here,
//!    and the access-log line is attached here, so no answer can leave without
//!    them.
//!
//! Each phase that can stop the request returns a [`GatewayError`] (or, for a
//! CORS answer made here, [`Stop::Cors`]); its kind gives the status, the body
//! and the metric label.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use corsgate_policy::{Decision, Policy, RequestClass, classify};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;

use super::body::{self, ResponseBody};
use super::gateway_error::{GatewayError, GatewayErrorKind};
use super::headers::{self, X_CORSGATE_REASON, X_REQUEST_ID};
use crate::Shared;
use crate::Snapshot;
use crate::listen::conn::{ConnState, InFlight};
use crate::observe::access_log::{AccessRecord, Arrived, UpstreamName, capped};
use crate::observe::metrics::{RouteStats, UNMATCHED, Verdict};
use crate::upstream::pool::Progress;
use corsgate_config::canonical::{
    self, CanonicalAuthority, PathRules, TargetRefusal, canonical_authority,
};
use corsgate_config::{Route, Settings, Upstream, trust};

/// What a connection's requests share.
pub(crate) struct ConnCtx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: Arc<ConnState>,
    /// The client's address (the peer of the connection).
    pub(crate) remote: SocketAddr,
    /// The client's IP address, for `X-Forwarded-For`.
    pub(crate) client_ip: HeaderValue,
    /// Whether the client connection is TLS (`X-Forwarded-Proto: https`).
    pub(crate) https: bool,
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

/// What the phases share about one request: its connection, the
/// configuration snapshot it is served with, its request id, its route and
/// policy, its CORS decision, and what the access log needs to know.
pub(crate) struct RequestCtx<'a> {
    pub(crate) conn: &'a ConnCtx,
    pub(crate) snapshot: &'a Snapshot,
    pub(crate) request_id: HeaderValue,
    /// `None` until [`resolve`] found one, and for a request no route serves.
    pub(crate) route: Option<&'a Route>,
    /// The policy that decides: the route's, or the default one without a
    /// route. `None`: CORS is off for the route.
    pub(crate) policy: Option<&'a Policy>,
    /// The route's counters (`unmatched` without a route).
    pub(crate) stats: &'a Arc<RouteStats>,
    pub(crate) decision: Decision,
    /// The request asks for a WebSocket.
    pub(crate) websocket: bool,
    /// The request as it arrived; `None` with `access_log = false`.
    pub(crate) arrived: Option<Arrived>,
    /// The status the upstream answered with, once it has.
    pub(crate) upstream_status: Option<StatusCode>,
    /// How much of the request body went upstream.
    pub(crate) request_body: Option<Arc<Progress>>,
}

/// Why the request path stops before the upstream answers.
#[derive(Debug)]
pub(crate) enum Stop {
    /// A CORS answer made here by the engine
    /// ([`Decision::into_local_response_reusing`]): a preflight, or a refusal
    /// under `on_disallowed = "reject"`. Never forwarded. It carries the
    /// request's header map, spent: the answer is written into its buffers.
    Cors(HeaderMap),
    /// The gateway cannot serve the request as asked.
    Error(GatewayError),
}

impl From<GatewayError> for Stop {
    fn from(error: GatewayError) -> Self {
        Stop::Error(error)
    }
}

impl From<GatewayErrorKind> for Stop {
    fn from(kind: GatewayErrorKind) -> Self {
        Stop::Error(kind.into())
    }
}

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
    conn: &ConnCtx,
    snapshot: &Snapshot,
    mut request: Request<Incoming>,
) -> Response<ResponseBody> {
    let settings = &snapshot.gateway.settings;
    // Nothing is gathered for a line the log level would drop (RUST_LOG=warn):
    // the clones, the record's allocation and the line's strings cost every
    // request a few microseconds.
    let log_line =
        settings.access_log && tracing::enabled!(target: "corsgate::access", tracing::Level::INFO);
    let arrived = log_line.then(|| Arrived {
        started: Instant::now(),
        method: request.method().clone(),
        uri: request.uri().clone(),
        host: request.headers().get(HOST).cloned(),
    });
    let trusted = conn.is_trusted(settings);
    let request_id = headers::request_id(request.headers_mut(), trusted);
    let mut ctx = RequestCtx {
        conn,
        snapshot,
        request_id,
        route: None,
        policy: None,
        stats: conn.shared.metrics.unmatched(),
        decision: Decision::pass(RequestClass::NotCors),
        websocket: false,
        arrived,
        upstream_status: None,
        request_body: None,
    };
    let resolved = resolve(&mut ctx, &mut request);
    // Client-scoped routes decide with the registry, reading ahead of a form
    // body for its client (identify.rs).
    let decided = match (&resolved, ctx.policy) {
        // Boxed: only such routes pay for the state of reading ahead, which
        // would otherwise make every request's future larger (hyper moves it).
        (Ok(()), Some(policy)) if policy.clients().is_some() => {
            let max_body = settings.max_body_bytes;
            Box::pin(super::identify::decide(
                &conn.shared,
                policy,
                max_body,
                &mut request,
                ctx.stats,
            ))
            .await
        }
        _ => None,
    };
    decide(&mut ctx, &request, decided);
    // The candidate of a shadow configuration decides too, never enforced.
    crate::shadow::evaluate(&ctx, &request, resolved.is_ok());
    let outcome = match resolved {
        Err(error) => Err(error.into()),
        Ok(()) => match admit(&mut ctx, request) {
            Err(stop) => Err(stop),
            Ok(request) => dispatch(&mut ctx, request).await,
        },
    };
    respond(ctx, outcome)
}

/// Phase 1: the request target in canonical form, and the route and policy
/// that serve it. The route is chosen on the canonical target, and that same
/// target is forwarded, so that the upstream serves what the route's policy
/// covers. A refused target has no route: the default policy decides (the
/// page can read the 400).
fn resolve<'a>(
    ctx: &mut RequestCtx<'a>,
    request: &mut Request<Incoming>,
) -> Result<(), GatewayError> {
    let table = &ctx.snapshot.gateway.routes;
    let target = match Target::of(request, &ctx.snapshot.gateway.settings.path_rules) {
        Ok(target) => target,
        Err(text) => {
            ctx.policy = Some(&**table.default_policy());
            // CONNECT's authority-form target has no path to route by (RFC
            // 9110 §9.3.6): refused as what it is, not as a bad target.
            if request.method() == Method::CONNECT {
                return Err(GatewayErrorKind::Connect.into());
            }
            return Err(GatewayError::bad_target(text));
        }
    };
    let matched = table.resolve(target.host(), &target.path);
    if matched.route.is_none() {
        no_route(ctx.snapshot, &target);
    }
    let (uri, host) = target.rewrite(request.uri().query());
    if let Some(uri) = uri {
        *request.uri_mut() = uri;
    }
    if let Some(host) = host {
        request.headers_mut().insert(HOST, host);
    }
    ctx.route = matched.route;
    // Without a route, the default policy (`resolve` gives it), so that the
    // page can read the 404 instead of a CORS failure.
    ctx.policy = matched.policy.map(|p| &**p);
    if let Some(route) = matched.route {
        if let Some(stats) = ctx.snapshot.stats.get(route.index) {
            ctx.stats = stats;
        }
    }
    ctx.websocket = headers::is_websocket_upgrade(request.headers());
    Ok(())
}

/// A request no route serves, at debug level: its host and path, and the
/// hosts the routes serve, to tell a wrong `Host` from a missing route.
fn no_route(snapshot: &Snapshot, target: &Target<'_>) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let mut hosts: Vec<&str> = snapshot
        .gateway
        .routes
        .iter()
        .map(|r| r.host.as_deref().unwrap_or("(any host)"))
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    tracing::debug!(
        host = &*capped(target.host().unwrap_or("")),
        path = &*capped(&target.path),
        route_hosts = &*capped(&hosts.join(", ")),
        "no route for this host and path"
    );
}

/// Phase 2: the CORS decision, counted per route; a refusal is logged. A
/// request no route serves is decided by the default policy only so that the
/// page can read the gateway's answer: it is counted and logged as what it
/// is (no route), never as a CORS refusal.
fn decide(ctx: &mut RequestCtx<'_>, request: &Request<Incoming>, decided: Option<Decision>) {
    ctx.decision = match (decided, ctx.policy) {
        (Some(decision), _) => decision,
        (None, Some(policy)) => policy.decide(request.method(), request.headers()),
        // CORS off: nothing added, nothing answered here; preflights go upstream.
        (None, None) => Decision::pass(classify(request.method(), request.headers())),
    };
    let verdict = match ctx.decision.rejection() {
        Some(_) if ctx.route.is_none() => Verdict::Pass,
        Some(rejection) => Verdict::Rejected(rejection.reason()),
        None if ctx.decision.is_allowed() => Verdict::Allowed,
        None => Verdict::Pass,
    };
    ctx.stats.count(ctx.decision.class(), verdict);
    if let (Verdict::Rejected(_), Some(route)) = (verdict, ctx.route) {
        log_refusal(
            &route.name,
            &ctx.decision,
            ctx.policy.is_some_and(Policy::is_debug),
            request,
            &ctx.request_id,
        );
        ctx.conn.shared.refusals.record(ctx, request);
    }
}

/// Phase 3: what the gateway answers itself, before any upstream is asked.
/// In this order: a loop (nothing else matters), a head too large, a CORS
/// answer (preflight, or a refusal under `on_disallowed = "reject"`), no
/// route, `CONNECT`, a declared body too large, a WebSocket from an origin
/// the route does not allow.
fn admit(
    ctx: &mut RequestCtx<'_>,
    mut request: Request<Incoming>,
) -> Result<Request<Incoming>, Stop> {
    let settings = &ctx.snapshot.gateway.settings;
    if ctx.conn.shared.via.is_in(request.headers()) {
        tracing::warn!(
            route = ctx.route.map_or(UNMATCHED, |r| r.name.as_str()),
            upstream = &*capped(&upstream_name(ctx.route)),
            "loop: this request has already passed through this gateway (its Via carries this \
             process's token); the route's upstream leads back here; answered 508"
        );
        body::discard(request.into_body());
        return Err(GatewayErrorKind::Loop.into());
    }
    let uri_len = request
        .uri()
        .path_and_query()
        .map_or(1, |p| p.as_str().len());
    if headers::head_size(uri_len, request.headers()) > settings.max_header_bytes {
        return Err(GatewayErrorKind::HeadTooLarge.into());
    }
    if ctx.decision.response_status().is_some() {
        // Preflights, and refusals under on_disallowed = "reject": answered here,
        // never forwarded. Without a route, only preflights: one the default
        // policy allows succeeds, so that the browser sends the request and
        // the page reads its 404 (a failed preflight would only show as a CORS
        // error); any other request is answered as what it is, no route.
        if ctx.route.is_some() || ctx.decision.class() == RequestClass::Preflight {
            // The request's header map is of no more use: the answer reuses
            // its buffers (hyper hands each request the map of the response
            // before it, so it has room for an answer's few headers).
            return Err(Stop::Cors(std::mem::take(request.headers_mut())));
        }
    }
    if ctx.route.is_none() {
        return Err(GatewayErrorKind::NoRoute.into());
    }
    if request.method() == Method::CONNECT {
        return Err(GatewayErrorKind::Connect.into());
    }
    if let Some(limit) = settings.max_body_bytes {
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit) {
            body::discard(request.into_body());
            return Err(GatewayErrorKind::BodyTooLarge.into());
        }
    }
    if ctx.websocket && ctx.policy.is_some() {
        // Browsers never CORS-check a WebSocket handshake: the server must check
        // the origin itself (RFC 6455 §10.2). The decision already did, on every
        // `Origin` line (two of them are malformed, whatever the first says); a
        // refusal of it is already counted and logged.
        if let Some(rejection) = ctx.decision.rejection() {
            tracing::debug!(
                route = ctx.route.map_or(UNMATCHED, |r| r.name.as_str()),
                reason = rejection.reason().as_str(),
                "WebSocket handshake refused"
            );
            return Err(GatewayErrorKind::WebSocketOrigin.into());
        }
    }
    Ok(request)
}

/// Phase 4: the route's upstream answers: the built-in demo, or an HTTP
/// upstream through [`forward`](crate::upstream::forward::forward).
async fn dispatch(
    ctx: &mut RequestCtx<'_>,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Stop> {
    let Some(route) = ctx.route else {
        return Err(GatewayErrorKind::NoRoute.into());
    };
    match &route.upstream {
        #[cfg(feature = "demo")]
        Upstream::Demo => {
            let mut request = request;
            request
                .headers_mut()
                .insert(X_REQUEST_ID, ctx.request_id.clone());
            let path = request.uri().path();
            let relative = canonical::strip_segments(path, route.segments).to_owned();
            // Boxed, as the other rare paths: see `serve`.
            let response = Box::pin(ctx.conn.shared.demo.handle(request, &relative)).await;
            ctx.upstream_status = Some(response.status());
            Ok(response)
        }
        // Refused at start; a reload to such a file lands here.
        #[cfg(not(feature = "demo"))]
        Upstream::Demo => {
            drop(request);
            Err(GatewayErrorKind::NoDemo.into())
        }
        Upstream::Http { authority, .. } => {
            Ok(crate::upstream::forward::forward(ctx, route, authority, request).await?)
        }
    }
}

/// Phase 5: the response that leaves, whoever made it. The gateway's own
/// answers are made here, counted by kind, and every response gets the CORS
/// decision and the request id here: there is no other way out of
/// [`serve`]. The access-log line goes with the body, written when it is done.
fn respond(
    ctx: RequestCtx<'_>,
    outcome: Result<Response<ResponseBody>, Stop>,
) -> Response<ResponseBody> {
    // What the access log says of the decision, read before an answer made
    // here takes the decision (only when there is a line to write).
    let verdict = ctx.arrived.as_ref().map(|_| log_verdict(&ctx));
    let mut error = None;
    let applied = match ctx.policy {
        Some(_) => Cors::Apply(&ctx.decision),
        None => Cors::Off,
    };
    let (mut response, cors) = match outcome {
        Ok(response) => (response, applied),
        // Made only when the decision has a response status, which is when
        // the engine makes the answer: the fallback is not reached. The
        // decision's headers are already on it.
        Err(Stop::Cors(mut spent)) => {
            // Room for every header of the answer and the gateway's own
            // (request id, HSTS): in the usual case the request's map has it
            // already, and nothing is allocated.
            spent.clear();
            spent.reserve(ENGINE_ANSWER_HEADERS);
            let answer = ctx
                .decision
                .into_local_response_reusing(&mut spent, ResponseBody::empty())
                .unwrap_or_default();
            (answer, Cors::Answered)
        }
        Err(Stop::Error(err)) => {
            ctx.conn.shared.metrics.gateway_response(err.kind());
            error = Some(err.kind());
            (local(err.status(), err.text()), applied)
        }
    };
    finish(&mut response, cors, &ctx.request_id);
    // RFC 6797 section 7.2: only over a secure transport; this gateway's
    // value replaces an upstream's (browsers read the first one only, 8.1).
    if ctx.conn.https {
        let tls = ctx.snapshot.gateway.settings.tls.as_ref();
        if let Some(hsts) = tls.and_then(|t| t.hsts.as_ref()) {
            response
                .headers_mut()
                .insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.header.clone());
        }
    }
    if let (Some(arrived), Some((cors, reason))) = (ctx.arrived, verdict) {
        let upstream = match ctx.route.map(|r| &r.upstream) {
            None => UpstreamName::None,
            Some(Upstream::Demo) => UpstreamName::Demo,
            Some(Upstream::Http { authority, .. }) => UpstreamName::Http(authority.clone()),
        };
        let record = AccessRecord {
            arrived,
            client: ctx.conn.remote.ip(),
            request_id: ctx.request_id,
            status: response.status(),
            route: ctx.stats.clone(),
            cors,
            reason,
            error: error.map_or("", GatewayErrorKind::as_str),
            upstream,
            upstream_status: ctx.upstream_status,
            body_in: ctx.request_body,
            lines: ctx.conn.shared.options.access_log_lines.clone(),
        };
        response.body_mut().set_access(Box::new(record));
    }
    response
}

/// The headers of a CORS answer made here (at most seven: the six of an
/// allowed preflight with credentials and max-age, and the private-network
/// one) and the two the gateway adds (`X-Request-Id`, HSTS).
const ENGINE_ANSWER_HEADERS: usize = 9;

/// The access log's `cors` and `reason` fields.
fn log_verdict(ctx: &RequestCtx<'_>) -> (&'static str, &'static str) {
    match (ctx.policy, ctx.decision.rejection()) {
        (None, _) => ("off", ""),
        // Decided only so that the page can read the gateway's answer.
        (Some(_), Some(_)) if ctx.route.is_none() => ("pass", ""),
        (Some(_), Some(rejection)) => ("rejected", rejection.reason().as_str()),
        (Some(_), None) if ctx.decision.is_allowed() => ("allowed", ""),
        (Some(_), None) => ("pass", ""),
    }
}

/// The route's upstream, for logs.
fn upstream_name(route: Option<&Route>) -> Cow<'static, str> {
    match route.map(|r| &r.upstream) {
        None => Cow::Borrowed(""),
        Some(Upstream::Demo) => Cow::Borrowed("builtin:demo"),
        Some(Upstream::Http { authority, .. }) => Cow::Owned(authority.as_str().to_owned()),
    }
}

/// How the CORS decision goes onto a response that is leaving.
#[derive(Clone, Copy)]
enum Cors<'a> {
    /// Written here: an upstream's response or the gateway's own.
    Apply(&'a Decision),
    /// A CORS answer made here ([`Stop::Cors`]): it comes from the engine
    /// with the decision's headers, `X-Corsgate-Reason` included.
    Answered,
    /// The route has CORS off.
    Off,
}

/// The CORS decision and the request id, on a response that is leaving. The
/// rules of writing a decision (which headers, the `Vary` merge, removing the
/// upstream's `Access-Control-*` and `X-Corsgate-Reason`) are the engine's
/// ([`Decision::apply`], which the tower layer uses too).
fn finish(response: &mut Response<ResponseBody>, cors: Cors<'_>, request_id: &HeaderValue) {
    let headers = response.headers_mut();
    match cors {
        Cors::Apply(decision) => {
            // Room for the CORS headers and the request id at once: one
            // resize at most.
            headers.reserve(8);
            decision.apply(headers);
        }
        Cors::Answered => {}
        // CORS off: the upstream's CORS headers pass, but only the gateway says
        // why it refused (in debug mode): an upstream's own reason would pass
        // for the gateway's.
        Cors::Off => {
            if headers.contains_key(X_CORSGATE_REASON) {
                headers.remove(X_CORSGATE_REASON);
            }
        }
    }
    // An upstream's own id stays; one lookup for both the test and the insert.
    if let http::header::Entry::Vacant(slot) = headers.entry(X_REQUEST_ID) {
        slot.insert(request_id.clone());
    }
}

/// An answer the gateway makes itself on an error: `text` as its body.
fn local(status: StatusCode, text: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(text.as_bytes()));
    *response.status_mut() = status;
    // Sized for every header the gateway may add, so that it never grows.
    *response.headers_mut() = HeaderMap::with_capacity(12);
    response.headers_mut().insert(CONTENT_TYPE, TEXT_PLAIN);
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
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex, PoisonError};
    use std::time::Duration;

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
