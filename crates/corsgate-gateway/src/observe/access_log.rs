//! The access log: one line per request, written when its response has been
//! sent (or abandoned), at the default level.
//!
//! The line is an ordinary `tracing` event (target `corsgate::access`, message
//! `request`), so it takes the application's log format (text or JSON) and its
//! writer: `corsgate serve` writes logs through a bounded buffer and a thread
//! of its own, so a log output that does not keep up costs dropped lines
//! (counted in `corsgate_log_lines_dropped_total`), never a blocked request.
//! What a client sends is cut to [`MAX_LOGGED_VALUE`] bytes and recorded as a
//! string: quoted and escaped in text logs, a JSON string in JSON logs, so that
//! no request value can pass for another field or line.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::uri::Authority;
use http::{HeaderValue, Method, StatusCode, Uri};

use super::metrics::RouteStats;
use crate::upstream::pool::Progress;

/// Longest request value (host, path, request id, …) written in a log line.
pub(crate) const MAX_LOGGED_VALUE: usize = 256;

/// `value` cut to [`MAX_LOGGED_VALUE`] bytes (on a character boundary), with
/// how many bytes were left out.
pub(crate) fn capped(value: &str) -> Cow<'_, str> {
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

/// The request as it arrived, kept for its access-log line (cheap clones of
/// shared buffers: no copy of the path or host).
#[derive(Debug)]
pub(crate) struct Arrived {
    pub(crate) started: Instant,
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) host: Option<HeaderValue>,
}

/// Where the route sends its requests, for the `upstream` field.
#[derive(Debug, Clone)]
pub(crate) enum UpstreamName {
    None,
    Demo,
    Http(Authority),
}

/// Everything an access-log line says, but the bytes sent and the time taken,
/// known once the response body is done.
#[derive(Debug)]
pub(crate) struct AccessRecord {
    pub(crate) arrived: Arrived,
    pub(crate) client: IpAddr,
    pub(crate) request_id: HeaderValue,
    pub(crate) status: StatusCode,
    pub(crate) route: Arc<RouteStats>,
    /// `allowed`, `rejected`, `pass` (not a CORS request) or `off` (CORS off
    /// for the route).
    pub(crate) cors: &'static str,
    /// The rejection reason, or empty.
    pub(crate) reason: &'static str,
    /// The kind of the gateway's own answer, or empty.
    pub(crate) error: &'static str,
    pub(crate) upstream: UpstreamName,
    pub(crate) upstream_status: Option<StatusCode>,
    /// The request body as sent upstream (`None`: none was).
    pub(crate) body_in: Option<Arc<Progress>>,
}

impl AccessRecord {
    /// Writes the line: the response is done, with `bytes_out` body bytes sent.
    pub(crate) fn write(self, bytes_out: u64, complete: bool) {
        let lossy = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
        let host = match self.arrived.uri.authority() {
            Some(authority) => authority.as_str().to_owned(),
            None => self.arrived.host.as_ref().map(lossy).unwrap_or_default(),
        };
        let upstream: Cow<'_, str> = match &self.upstream {
            UpstreamName::None => Cow::Borrowed(""),
            UpstreamName::Demo => Cow::Borrowed("builtin:demo"),
            UpstreamName::Http(authority) => Cow::Borrowed(authority.as_str()),
        };
        let elapsed = self.arrived.started.elapsed();
        let duration_ms = elapsed.as_micros() as f64 / 1000.0;
        let request_id = lossy(&self.request_id);
        tracing::info!(
            target: "corsgate::access",
            request_id = &*capped(&request_id),
            client = %self.client,
            method = &*capped(self.arrived.method.as_str()),
            host = &*capped(&host),
            path = &*capped(self.arrived.uri.path()),
            status = self.status.as_u16(),
            route = &*capped(self.route.name()),
            cors = self.cors,
            reason = self.reason,
            error = self.error,
            upstream = &*upstream,
            upstream_status = self.upstream_status.map(|s| s.as_u16()),
            duration_ms,
            bytes_in = self.body_in.as_ref().map_or(0, |p| p.bytes()),
            bytes_out,
            complete,
            "request"
        );
    }
}
