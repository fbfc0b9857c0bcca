//! The answers the gateway makes itself when it cannot serve a request as
//! asked (400, 404, 408, 413, 431, 502, 503, 504). One kind each: the kind
//! gives the status, the text and the metric slot, so a new kind has all three
//! or does not compile.

use http::StatusCode;

/// Why the gateway answers a request itself instead of the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GatewayError {
    /// The request target or `Host` is refused; the text says which rule
    /// (see "Request targets" in docs/security.md).
    BadTarget(&'static str),
    /// `CONNECT`: a reverse proxy does not open tunnels.
    Connect,
    /// No route matches.
    NoRoute,
    /// The request head is larger than `max_header_bytes`.
    HeadTooLarge,
    /// The request body is larger than `max_body_bytes`.
    BodyTooLarge,
    /// The request body stalled for longer than `body_timeout`.
    BodyTimeout,
    /// The request body could not be read.
    BodyUnreadable,
    /// The upstream could not be reached, or failed.
    UpstreamFailed,
    /// The upstream did not send its response head within `response_timeout`.
    UpstreamTimeout,
    /// The upstream's connections are all in use (`max_upstream_connections`).
    UpstreamBusy,
    /// The upstream switched protocols without being asked to.
    UnexpectedUpgrade,
    /// No connection slot is left for another WebSocket tunnel.
    WebSocketLimit,
    /// A `builtin:demo` route in a build without the demo.
    NoDemo,
}

impl GatewayError {
    /// Every kind, in metric-slot order (`BadTarget` stands for all its texts).
    pub(crate) const ALL: [GatewayError; 13] = [
        GatewayError::BadTarget(""),
        GatewayError::Connect,
        GatewayError::NoRoute,
        GatewayError::HeadTooLarge,
        GatewayError::BodyTooLarge,
        GatewayError::BodyTimeout,
        GatewayError::BodyUnreadable,
        GatewayError::UpstreamFailed,
        GatewayError::UpstreamTimeout,
        GatewayError::UpstreamBusy,
        GatewayError::UnexpectedUpgrade,
        GatewayError::WebSocketLimit,
        GatewayError::NoDemo,
    ];

    /// The slot of this kind's counter: its place in [`Self::ALL`].
    pub(crate) fn index(self) -> usize {
        match self {
            GatewayError::BadTarget(_) => 0,
            GatewayError::Connect => 1,
            GatewayError::NoRoute => 2,
            GatewayError::HeadTooLarge => 3,
            GatewayError::BodyTooLarge => 4,
            GatewayError::BodyTimeout => 5,
            GatewayError::BodyUnreadable => 6,
            GatewayError::UpstreamFailed => 7,
            GatewayError::UpstreamTimeout => 8,
            GatewayError::UpstreamBusy => 9,
            GatewayError::UnexpectedUpgrade => 10,
            GatewayError::WebSocketLimit => 11,
            GatewayError::NoDemo => 12,
        }
    }

    pub(crate) fn status(self) -> StatusCode {
        match self {
            GatewayError::BadTarget(_) | GatewayError::Connect | GatewayError::BodyUnreadable => {
                StatusCode::BAD_REQUEST
            }
            GatewayError::NoRoute => StatusCode::NOT_FOUND,
            GatewayError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            GatewayError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            GatewayError::UpstreamFailed
            | GatewayError::UnexpectedUpgrade
            | GatewayError::NoDemo => StatusCode::BAD_GATEWAY,
            GatewayError::UpstreamBusy | GatewayError::WebSocketLimit => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            GatewayError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The response body: the status line's words, then why.
    pub(crate) fn text(self) -> &'static str {
        match self {
            GatewayError::BadTarget(text) => text,
            GatewayError::Connect => "400 Bad Request: CONNECT is not supported by this gateway\n",
            GatewayError::NoRoute => {
                "404 Not Found: no route of the gateway matches this request\n"
            }
            GatewayError::HeadTooLarge => {
                "431 Request Header Fields Too Large: the request head is larger than max_header_bytes\n"
            }
            GatewayError::BodyTooLarge => {
                "413 Content Too Large: the request body is larger than max_body_bytes\n"
            }
            GatewayError::BodyTimeout => {
                "408 Request Timeout: the request body stalled for longer than body_timeout\n"
            }
            GatewayError::BodyUnreadable => "400 Bad Request: the request body could not be read\n",
            GatewayError::UpstreamFailed => {
                "502 Bad Gateway: the upstream could not be reached or failed\n"
            }
            GatewayError::UpstreamTimeout => {
                "504 Gateway Timeout: the upstream did not answer in time\n"
            }
            GatewayError::UpstreamBusy => {
                "503 Service Unavailable: the upstream is busy (max_upstream_connections)\n"
            }
            GatewayError::UnexpectedUpgrade => {
                "502 Bad Gateway: the upstream switched to a protocol that was not asked for\n"
            }
            GatewayError::WebSocketLimit => {
                "503 Service Unavailable: too many open connections for another WebSocket\n"
            }
            GatewayError::NoDemo => {
                "502 Bad Gateway: this build of corsgate has no built-in demo\n"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_metric_slot_and_a_text_starting_with_its_status() {
        for (i, kind) in GatewayError::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i, "{kind:?}");
            if let GatewayError::BadTarget(_) = kind {
                continue;
            }
            let status = kind.status();
            assert!(
                kind.text().starts_with(status.as_str()),
                "{kind:?}: {}",
                kind.text()
            );
        }
    }
}
