//! The answers the gateway makes itself when it cannot serve a request as
//! asked (400, 403, 404, 408, 413, 431, 502, 503, 504, 508). One kind each: the
//! kind gives the status, the text and the metric label, so a new kind has all
//! three or does not compile; and every one of them leaves through the same
//! `respond` phase as an upstream's response, which applies the route's CORS
//! decision.

use http::StatusCode;

/// Why the gateway answered a request itself instead of the upstream: the
/// `kind` label of `corsgate_gateway_responses_total` and the `error` field of
/// the access log.
///
/// ```
/// use corsgate_gateway::GatewayErrorKind;
///
/// assert_eq!(GatewayErrorKind::Loop.status().as_u16(), 508);
/// assert_eq!(GatewayErrorKind::Loop.as_str(), "loop");
/// assert!(GatewayErrorKind::ALL.contains(&GatewayErrorKind::NoRoute));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GatewayErrorKind {
    /// `400`: the request target or `Host` is refused (see "Request targets"
    /// in docs/security.md).
    BadTarget,
    /// `400`: `CONNECT`; a reverse proxy does not open tunnels.
    Connect,
    /// `404`: no route matches the request's host and path.
    NoRoute,
    /// `431`: the request head is larger than `max_header_bytes`.
    HeadTooLarge,
    /// `413`: the request body is larger than `max_body_bytes`.
    BodyTooLarge,
    /// `408`: the request body stalled for longer than `body_timeout`.
    BodyTimeout,
    /// `400`: the request body could not be read.
    BodyUnreadable,
    /// `403`: a WebSocket handshake from an origin the route does not allow.
    WebSocketOrigin,
    /// `508`: the request has already passed through this gateway (its `Via`
    /// carries this process's token): the route's upstream leads back here.
    Loop,
    /// `502`: the upstream failed: the exchange broke on an open connection,
    /// or a connection could not be opened for a reason other than the two
    /// below (a name that does not resolve, a network that is unreachable).
    UpstreamFailed,
    /// `504`: the upstream did not send its response head within
    /// `response_timeout`.
    UpstreamTimeout,
    /// `503`: the upstream's connections are all in use
    /// (`max_upstream_connections`).
    UpstreamBusy,
    /// `502`: the upstream switched protocols without being asked to.
    UnexpectedUpgrade,
    /// `503`: no connection slot is left for another WebSocket tunnel.
    WebSocketLimit,
    /// `502`: a `builtin:demo` route in a build without the demo.
    NoDemo,
    /// `502`: the TLS handshake with an `https://` upstream failed (its
    /// certificate not trusted, or not for its name; a client certificate
    /// required and not configured).
    UpstreamTls,
    /// `502`: the upstream's host refused the connection at once
    /// (`ECONNREFUSED`: nothing listens on that port, or the service is
    /// down).
    UpstreamRefused,
    /// `504`: no connection to the upstream within `connect_timeout`: its
    /// host does not answer (down, a firewall that drops, a wrong address).
    UpstreamConnectTimeout,
}

impl GatewayErrorKind {
    /// Every kind, in metric-slot order.
    pub const ALL: [GatewayErrorKind; 18] = [
        GatewayErrorKind::BadTarget,
        GatewayErrorKind::Connect,
        GatewayErrorKind::NoRoute,
        GatewayErrorKind::HeadTooLarge,
        GatewayErrorKind::BodyTooLarge,
        GatewayErrorKind::BodyTimeout,
        GatewayErrorKind::BodyUnreadable,
        GatewayErrorKind::WebSocketOrigin,
        GatewayErrorKind::Loop,
        GatewayErrorKind::UpstreamFailed,
        GatewayErrorKind::UpstreamTimeout,
        GatewayErrorKind::UpstreamBusy,
        GatewayErrorKind::UnexpectedUpgrade,
        GatewayErrorKind::WebSocketLimit,
        GatewayErrorKind::NoDemo,
        GatewayErrorKind::UpstreamTls,
        GatewayErrorKind::UpstreamRefused,
        GatewayErrorKind::UpstreamConnectTimeout,
    ];

    /// The slot of this kind's counter: its place in [`Self::ALL`].
    pub(crate) fn index(self) -> usize {
        match self {
            GatewayErrorKind::BadTarget => 0,
            GatewayErrorKind::Connect => 1,
            GatewayErrorKind::NoRoute => 2,
            GatewayErrorKind::HeadTooLarge => 3,
            GatewayErrorKind::BodyTooLarge => 4,
            GatewayErrorKind::BodyTimeout => 5,
            GatewayErrorKind::BodyUnreadable => 6,
            GatewayErrorKind::WebSocketOrigin => 7,
            GatewayErrorKind::Loop => 8,
            GatewayErrorKind::UpstreamFailed => 9,
            GatewayErrorKind::UpstreamTimeout => 10,
            GatewayErrorKind::UpstreamBusy => 11,
            GatewayErrorKind::UnexpectedUpgrade => 12,
            GatewayErrorKind::WebSocketLimit => 13,
            GatewayErrorKind::NoDemo => 14,
            GatewayErrorKind::UpstreamTls => 15,
            GatewayErrorKind::UpstreamRefused => 16,
            GatewayErrorKind::UpstreamConnectTimeout => 17,
        }
    }

    /// The status the gateway answers with.
    pub fn status(self) -> StatusCode {
        match self {
            GatewayErrorKind::BadTarget
            | GatewayErrorKind::Connect
            | GatewayErrorKind::BodyUnreadable => StatusCode::BAD_REQUEST,
            GatewayErrorKind::WebSocketOrigin => StatusCode::FORBIDDEN,
            GatewayErrorKind::NoRoute => StatusCode::NOT_FOUND,
            GatewayErrorKind::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            GatewayErrorKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayErrorKind::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            // RFC 5842 §7.2, the status WebDAV defined for a server that
            // finds an infinite loop; nginx and Envoy answer loops the same way.
            GatewayErrorKind::Loop => StatusCode::LOOP_DETECTED,
            GatewayErrorKind::UpstreamFailed
            | GatewayErrorKind::UnexpectedUpgrade
            | GatewayErrorKind::NoDemo
            | GatewayErrorKind::UpstreamTls
            | GatewayErrorKind::UpstreamRefused => StatusCode::BAD_GATEWAY,
            GatewayErrorKind::UpstreamBusy | GatewayErrorKind::WebSocketLimit => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            // As nginx answers its proxy_connect_timeout: the upstream did
            // not answer in time (RFC 9110 §15.6.5), unlike a refusal, which
            // is an answer.
            GatewayErrorKind::UpstreamTimeout | GatewayErrorKind::UpstreamConnectTimeout => {
                StatusCode::GATEWAY_TIMEOUT
            }
        }
    }

    /// The label in metrics and logs (`no-route`, `loop`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayErrorKind::BadTarget => "bad-target",
            GatewayErrorKind::Connect => "connect",
            GatewayErrorKind::NoRoute => "no-route",
            GatewayErrorKind::HeadTooLarge => "head-too-large",
            GatewayErrorKind::BodyTooLarge => "body-too-large",
            GatewayErrorKind::BodyTimeout => "body-timeout",
            GatewayErrorKind::BodyUnreadable => "body-unreadable",
            GatewayErrorKind::WebSocketOrigin => "websocket-origin",
            GatewayErrorKind::Loop => "loop",
            GatewayErrorKind::UpstreamFailed => "upstream-failed",
            GatewayErrorKind::UpstreamTimeout => "upstream-timeout",
            GatewayErrorKind::UpstreamBusy => "upstream-busy",
            GatewayErrorKind::UnexpectedUpgrade => "unexpected-upgrade",
            GatewayErrorKind::WebSocketLimit => "websocket-limit",
            GatewayErrorKind::NoDemo => "no-demo",
            GatewayErrorKind::UpstreamTls => "upstream-tls",
            GatewayErrorKind::UpstreamRefused => "upstream-refused",
            GatewayErrorKind::UpstreamConnectTimeout => "upstream-connect-timeout",
        }
    }

    /// The kind of a connection to the upstream that could not be opened:
    /// refused, timed out (`connect_timeout`), or otherwise failed.
    pub(crate) fn of_connect(err: &std::io::Error) -> GatewayErrorKind {
        match err.kind() {
            std::io::ErrorKind::ConnectionRefused => GatewayErrorKind::UpstreamRefused,
            std::io::ErrorKind::TimedOut => GatewayErrorKind::UpstreamConnectTimeout,
            _ => GatewayErrorKind::UpstreamFailed,
        }
    }

    /// The response body: the status line's words, then why.
    fn text(self) -> &'static str {
        match self {
            GatewayErrorKind::BadTarget => "400 Bad Request: bad request target\n",
            GatewayErrorKind::Connect => {
                "400 Bad Request: CONNECT is not supported by this gateway\n"
            }
            GatewayErrorKind::NoRoute => {
                "404 Not Found: no route of the gateway matches this request\n"
            }
            GatewayErrorKind::HeadTooLarge => {
                "431 Request Header Fields Too Large: the request head is larger than max_header_bytes\n"
            }
            GatewayErrorKind::BodyTooLarge => {
                "413 Content Too Large: the request body is larger than max_body_bytes\n"
            }
            GatewayErrorKind::BodyTimeout => {
                "408 Request Timeout: the request body stalled for longer than body_timeout\n"
            }
            GatewayErrorKind::BodyUnreadable => {
                "400 Bad Request: the request body could not be read\n"
            }
            GatewayErrorKind::WebSocketOrigin => {
                "403 Forbidden: this origin may not open a WebSocket here\n"
            }
            GatewayErrorKind::Loop => {
                "508 Loop Detected: this request has already passed through this gateway; \
                 the route's upstream leads back to it\n"
            }
            GatewayErrorKind::UpstreamFailed => {
                "502 Bad Gateway: the upstream could not be reached or failed\n"
            }
            GatewayErrorKind::UpstreamTimeout => {
                "504 Gateway Timeout: the upstream did not answer in time\n"
            }
            GatewayErrorKind::UpstreamBusy => {
                "503 Service Unavailable: the upstream is busy (max_upstream_connections)\n"
            }
            GatewayErrorKind::UnexpectedUpgrade => {
                "502 Bad Gateway: the upstream switched to a protocol that was not asked for\n"
            }
            GatewayErrorKind::WebSocketLimit => {
                "503 Service Unavailable: too many open connections for another WebSocket\n"
            }
            GatewayErrorKind::NoDemo => {
                "502 Bad Gateway: this build of corsgate has no built-in demo\n"
            }
            GatewayErrorKind::UpstreamTls => {
                "502 Bad Gateway: the TLS handshake with the upstream failed (its certificate is not trusted or not for its name, or it wants a client certificate); the gateway's log says why\n"
            }
            GatewayErrorKind::UpstreamRefused => {
                "502 Bad Gateway: the upstream refused the connection (nothing listens on its port)\n"
            }
            GatewayErrorKind::UpstreamConnectTimeout => {
                "504 Gateway Timeout: the upstream's host did not accept a connection within connect_timeout\n"
            }
        }
    }
}

impl std::fmt::Display for GatewayErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request the gateway answers itself: its kind, and for a refused target
/// the rule it broke (the body then says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GatewayError {
    kind: GatewayErrorKind,
    /// A more precise body than the kind's own, starting with the same status.
    detail: Option<&'static str>,
}

impl GatewayError {
    /// A refused request target; `text` says which rule, starting with `400`.
    pub(crate) fn bad_target(text: &'static str) -> Self {
        GatewayError {
            kind: GatewayErrorKind::BadTarget,
            detail: Some(text),
        }
    }

    pub(crate) fn kind(self) -> GatewayErrorKind {
        self.kind
    }

    pub(crate) fn status(self) -> StatusCode {
        self.kind.status()
    }

    /// The response body: the status line's words, then why.
    pub(crate) fn text(self) -> &'static str {
        self.detail.unwrap_or_else(|| self.kind.text())
    }
}

impl From<GatewayErrorKind> for GatewayError {
    fn from(kind: GatewayErrorKind) -> Self {
        GatewayError { kind, detail: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_metric_slot_label_and_a_text_starting_with_its_status() {
        let mut labels = std::collections::HashSet::new();
        for (i, kind) in GatewayErrorKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i, "{kind:?}");
            assert!(labels.insert(kind.as_str()), "{kind:?}: label used twice");
            let status = kind.status();
            assert!(
                kind.text().starts_with(status.as_str()),
                "{kind:?}: {}",
                kind.text()
            );
        }
    }
}
