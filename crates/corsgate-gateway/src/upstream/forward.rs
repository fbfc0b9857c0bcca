//! The forward phase: the request as the upstream gets it (hop-by-hop headers
//! removed, `X-Forwarded-*`, `Via`, the path rewritten), sent on a pooled
//! connection, and the upstream's response as the client gets it; or the
//! [`GatewayError`] that says why there is none.

use std::error::Error as StdError;

use http::header::{CONNECTION, CONTENT_LENGTH, HOST, UPGRADE, VIA};
use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;

use super::pool::UpstreamError;
use super::tunnel::tunnel;
use crate::request::body::{BodyTimeout, BodyTooLarge, ClientBodyError, RequestBody, ResponseBody};
use crate::request::gateway_error::{GatewayError, GatewayErrorKind};
use crate::request::headers::{self, X_REQUEST_ID};
use crate::request::proxy::RequestCtx;
use corsgate_config::Route;
use corsgate_config::canonical;

/// Sends the request to the route's upstream and returns its response, as it
/// came (the `respond` phase applies the CORS decision).
pub(crate) async fn forward(
    ctx: &mut RequestCtx<'_>,
    route: &Route,
    authority: &Authority,
    mut request: Request<Incoming>,
) -> Result<Response<ResponseBody>, GatewayError> {
    let conn = ctx.conn;
    let settings = &ctx.snapshot.gateway.settings;
    let websocket = ctx.websocket;
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();

    let path_and_query = upstream_path(route, &parts.uri).ok_or(GatewayError::bad_target(
        "400 Bad Request: bad request target\n",
    ))?;
    // HTTP/2 requests carry the host in the URI, not in a Host header; an
    // HTTP/1.0 request may carry none at all: then the upstream's. (Looked up
    // once: `X-Forwarded-Host` below says the same.)
    let host = match parts.headers.get(HOST) {
        Some(host) => Some(host.clone()),
        None => {
            let value = parts
                .uri
                .authority()
                .unwrap_or(authority)
                .as_str()
                .parse::<HeaderValue>()
                .ok();
            if let Some(value) = &value {
                parts.headers.insert(HOST, value.clone());
            }
            value
        }
    };
    // Origin-form (`/path?query`): the request line to an origin server.
    parts.uri = Uri::from(path_and_query);
    // The version the client spoke: its response goes back in it (below).
    let client_version = parts.version;
    parts.version = Version::HTTP_11;

    // `TE: trailers` says the client takes trailers; gRPC servers look for it
    // (and HTTP/2 allows no other TE, RFC 9113 section 8.2.2). TE is
    // hop-by-hop, so to the upstreams gRPC runs on (HTTP/2 ones) the gateway
    // says it again for itself: it passes trailers on to such a client.
    let http2 = matches!(
        route.upstream,
        corsgate_config::Upstream::Http {
            transport: corsgate_config::Transport::H2c | corsgate_config::Transport::Https(_),
            ..
        }
    );
    let trailers = http2
        && parts.headers.get_all(http::header::TE).iter().any(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"))
        });
    headers::strip_hop_by_hop(&mut parts.headers);
    if trailers {
        parts
            .headers
            .insert(http::header::TE, HeaderValue::from_static("trailers"));
    }
    if websocket {
        // Only the protocol this gateway knows how to tunnel: never the rest of
        // the client's list (`h2c, websocket`), which the upstream might pick.
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(UPGRADE, headers::WEBSOCKET);
    }
    let trusted = conn.is_trusted(settings);
    headers::add_forwarded(
        &mut parts.headers,
        &conn.client_ip,
        host,
        trusted,
        conn.https,
    );
    parts.headers.insert(X_REQUEST_ID, ctx.request_id.clone());
    // This process's own entry: a request that comes back with it has gone
    // round a loop (see the admit phase).
    parts.headers.append(VIA, conn.shared.via.value().clone());

    let mut body = RequestBody::new(body, settings.max_body_bytes, settings.body_timeout);
    // What identify.rs read ahead to find the client goes first.
    if let Some(read) = parts
        .extensions
        .remove::<crate::request::identify::ReadAhead>()
    {
        body = body.with_prefix(read);
    }
    let progress = body.progress();
    ctx.request_body = progress.clone();
    let request = Request::from_parts(parts, body);
    let Some(pool) = ctx.snapshot.pools.get(route.index).and_then(Option::as_ref) else {
        // Every route with an http upstream has a pool: not reached.
        return Err(GatewayErrorKind::UpstreamFailed.into());
    };
    // A tunnel outlives its client connection, whose permit goes with it: it
    // holds one of its own, so that tunnels count toward max_connections.
    let tunnel_permit = if websocket {
        match conn.shared.connections.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                tracing::warn!(
                    route = route.name.as_str(),
                    "WebSocket handshake refused: max_connections reached"
                );
                return Err(GatewayErrorKind::WebSocketLimit.into());
            }
        }
    } else {
        None
    };
    // One clock read for both the deadline and the upstream's time.
    let started = tokio::time::Instant::now();
    let deadline = crate::after(started, settings.response_timeout);
    let sent = tokio::time::timeout_at(deadline, pool.send(request, progress)).await;
    let (mut response, checkout) = match sent {
        Err(_elapsed) => {
            tracing::warn!(
                route = route.name.as_str(),
                upstream = authority.as_str(),
                timeout = ?settings.response_timeout,
                "upstream did not send its response head within response_timeout"
            );
            return Err(GatewayErrorKind::UpstreamTimeout.into());
        }
        Ok(Err(err)) => return Err(upstream_failed(route, authority, &err)),
        Ok(Ok(response)) => response,
    };
    ctx.stats.observe_upstream(started.elapsed());
    ctx.upstream_status = Some(response.status());

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
            return Err(GatewayErrorKind::UnexpectedUpgrade.into());
        };
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        conn.shared.metrics.websocket_upgraded();
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
    // A proxy sends its own HTTP version, never the upstream's (RFC 9110
    // §6.2: intermediaries "MUST send their own HTTP-version in forwarded
    // messages"): an HTTP/1.0 upstream's answer goes to an HTTP/1.1 client
    // as HTTP/1.1. hyper writes what the response says, and answers an
    // HTTP/1.0 client in HTTP/1.0 whatever it says (RFC 9112 §2.3).
    parts.version = client_version;
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
    Ok(Response::from_parts(
        parts,
        ResponseBody::upstream(body, checkout, settings.upstream_body_timeout),
    ))
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

/// Why an exchange with the upstream failed, as the gateway answers it: the
/// client's body (too large, stalled, unreadable) is the client's fault and
/// no upstream alert; the rest is the upstream's.
fn upstream_failed(route: &Route, authority: &Authority, err: &UpstreamError) -> GatewayError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    let (mut too_large, mut timed_out, mut client_failed) = (false, false, false);
    while let Some(cause) = source {
        too_large |= cause.is::<BodyTooLarge>();
        timed_out |= cause.is::<BodyTimeout>();
        client_failed |= cause.is::<ClientBodyError>();
        source = cause.source();
    }
    if too_large {
        return GatewayErrorKind::BodyTooLarge.into();
    }
    if timed_out || client_failed {
        tracing::debug!(
            route = route.name.as_str(),
            error = %ErrorChain(err),
            "request body from the client failed"
        );
        return if timed_out {
            GatewayErrorKind::BodyTimeout.into()
        } else {
            GatewayErrorKind::BodyUnreadable.into()
        };
    }
    if err.is_tls() {
        tracing::warn!(
            route = route.name.as_str(),
            upstream = authority.as_str(),
            error = %ErrorChain(err),
            "TLS handshake with the upstream failed"
        );
        return GatewayErrorKind::UpstreamTls.into();
    }
    if err.is_busy() {
        tracing::warn!(
            route = route.name.as_str(),
            upstream = authority.as_str(),
            error = %err,
            "no upstream connection free"
        );
        return GatewayErrorKind::UpstreamBusy.into();
    }
    tracing::warn!(
        route = route.name.as_str(),
        upstream = authority.as_str(),
        connect = err.is_connect(),
        error = %ErrorChain(err),
        "upstream request failed"
    );
    match err {
        UpstreamError::Connect(io) => GatewayErrorKind::of_connect(io).into(),
        _ => GatewayErrorKind::UpstreamFailed.into(),
    }
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
