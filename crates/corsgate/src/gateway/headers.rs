//! Header handling of a proxy: hop-by-hop headers (RFC 9110 §7.6.1), the
//! `X-Forwarded-*` family, and request ids.

use http::header::{
    CONNECTION, HeaderName, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderValue};

pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Removes the headers that describe one connection rather than the message:
/// `Connection` and every header it names, `Keep-Alive`, `TE`, `Trailer`,
/// `Transfer-Encoding`, `Upgrade` and the `Proxy-*` headers (RFC 9110 §7.6.1).
/// Each hop sets its own; the connection to the next hop has its own framing.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages have none: one pass over the names, without hashing,
    // decides that.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let mut connection = headers.get_all(CONNECTION).iter();
    if let Some(first) = connection.next() {
        if connection.next().is_none() {
            // One `Connection` line, the usual case: no allocation.
            let first = first.clone();
            remove_listed(headers, &first);
        } else {
            let lines: Vec<HeaderValue> = headers.get_all(CONNECTION).iter().cloned().collect();
            for line in &lines {
                remove_listed(headers, line);
            }
        }
        headers.remove(CONNECTION);
    }
    for name in [
        KEEP_ALIVE,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
        PROXY_CONNECTION,
        PROXY_AUTHENTICATE,
        PROXY_AUTHORIZATION,
    ] {
        if headers.contains_key(&name) {
            headers.remove(name);
        }
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
    )
}

fn remove_listed(headers: &mut HeaderMap, line: &HeaderValue) {
    for token in line.as_bytes().split(|b| *b == b',') {
        let token = token.trim_ascii();
        if token.is_empty() {
            continue;
        }
        // `close` and `keep-alive` are options, not names: removing a header of
        // that name does no harm. The CORS decision was taken on the original
        // headers, and the gateway's own headers are added after this.
        // Removing by `&str` looks the name up without allocating it.
        if let Ok(name) = std::str::from_utf8(token) {
            headers.remove(name);
        }
    }
}

/// Whether the request asks to switch to the WebSocket protocol
/// (`Connection: upgrade` and `Upgrade: websocket`, RFC 6455 §4.1).
pub(crate) fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get_all(UPGRADE)
        .iter()
        .any(|v| has_token(v.as_bytes(), b"websocket"));
    upgrade
        && headers
            .get_all(CONNECTION)
            .iter()
            .any(|v| has_token(v.as_bytes(), b"upgrade"))
}

fn has_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Appends the client's address to `X-Forwarded-For`, and sets
/// `X-Forwarded-Proto` and `X-Forwarded-Host` unless a proxy in front (a TLS
/// terminator, typically) already did: they describe the first hop.
pub(crate) fn add_forwarded(
    headers: &mut HeaderMap,
    client_ip: &HeaderValue,
    host: Option<HeaderValue>,
) {
    // Which of them the request has, in one pass over the names: cheaper than
    // three lookups, which hash each name.
    let (mut has_for, mut has_proto, mut has_host) = (false, false, false);
    for name in headers.keys() {
        match name.as_str() {
            "x-forwarded-for" => has_for = true,
            "x-forwarded-proto" => has_proto = true,
            "x-forwarded-host" => has_host = true,
            _ => {}
        }
    }
    // Room for these, the request id and Via at once: one resize at most.
    headers.reserve(5);
    match headers.get(X_FORWARDED_FOR).filter(|_| has_for) {
        None => {
            headers.insert(X_FORWARDED_FOR, client_ip.clone());
        }
        Some(existing) => {
            let mut joined = Vec::with_capacity(existing.len() + 2 + client_ip.len());
            for (i, line) in headers.get_all(X_FORWARDED_FOR).iter().enumerate() {
                if i > 0 {
                    joined.extend_from_slice(b", ");
                }
                joined.extend_from_slice(line.as_bytes());
            }
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(client_ip.as_bytes());
            if let Ok(value) = HeaderValue::from_bytes(&joined) {
                headers.insert(X_FORWARDED_FOR, value);
            }
        }
    }
    if !has_proto {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if let (Some(host), false) = (host, has_host) {
        headers.insert(X_FORWARDED_HOST, host);
    }
}

/// The request's `X-Request-Id` when it has a usable one (1 to 128 visible ASCII
/// characters), or a new random one (32 hex digits).
pub(crate) fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(id) = headers.get(X_REQUEST_ID) {
        let bytes = id.as_bytes();
        if !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| b.is_ascii_graphic()) {
            return id.clone();
        }
    }
    new_request_id()
}

fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n = fastrand::u128(..);
    let mut buf = [0u8; 32];
    for b in buf.iter_mut().rev() {
        *b = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
    HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("0"))
}

/// Size of a request head as it travelled: request line and header lines.
pub(crate) fn head_size(uri_len: usize, headers: &HeaderMap) -> usize {
    // "METHOD SP uri SP HTTP/1.1 CRLF" is at most a few bytes more than the URI.
    let mut size = uri_len + 20;
    for (name, value) in headers {
        size += name.as_str().len() + value.len() + 4;
    }
    size
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("connection", "Upgrade"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic Zm9v"),
            ("proxy-connection", "keep-alive"),
            ("content-type", "text/plain"),
            ("x-request-id", "abc"),
        ]);
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["content-type", "x-request-id"]);
    }

    #[test]
    fn forwarded_for_is_appended() {
        let ip = HeaderValue::from_static("10.0.0.2");
        let mut h = map(&[("x-forwarded-for", "192.0.2.1")]);
        add_forwarded(&mut h, &ip, Some(HeaderValue::from_static("api.example")));
        assert_eq!(h["x-forwarded-for"], "192.0.2.1, 10.0.0.2");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.example");
        // What a TLS terminator in front said stays.
        let mut h = map(&[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example"),
        ]);
        add_forwarded(&mut h, &ip, Some(HeaderValue::from_static("10.0.0.1:8080")));
        assert_eq!(h["x-forwarded-for"], "10.0.0.2");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "app.example");
    }

    #[test]
    fn request_ids_are_kept_when_sane_and_made_otherwise() {
        let h = map(&[("x-request-id", "req-42")]);
        assert_eq!(request_id(&h), "req-42");
        let h = map(&[("x-request-id", "has space")]);
        let made = request_id(&h);
        assert_eq!(made.len(), 32);
        assert!(made.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
    }

    #[test]
    fn websocket_upgrade_needs_both_headers() {
        assert!(is_websocket_upgrade(&map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ])));
        assert!(!is_websocket_upgrade(&map(&[("upgrade", "websocket")])));
        assert!(!is_websocket_upgrade(&map(&[
            ("connection", "upgrade"),
            ("upgrade", "h2c"),
        ])));
    }
}
