//! Header handling of a proxy: hop-by-hop headers (RFC 9110 §7.6.1), the
//! `X-Forwarded-*` family, and request ids.

use http::header::{
    CONNECTION, HeaderName, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderValue};

pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Where a client's own `X-Request-Id` goes when the gateway does not believe it.
pub(crate) const X_CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("x-client-request-id");
pub(crate) const X_CORSGATE_REASON: HeaderName = corsgate_policy::REASON_HEADER;
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
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
        if token.is_empty() || is_protected(token) {
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

/// Headers a `Connection` option may not remove: they are end-to-end by
/// definition (RFC 9110 §7.6.1: a sender must not list a header that is not
/// hop-by-hop), and the gateway relies on them — `Host` routes the request
/// (an HTTP/1.1 request without one is invalid, RFC 9112 §3.2), `Origin` and
/// `Access-Control-*` carry what the CORS decision was taken on (an upstream's
/// own origin check must see the same), and the framing headers are the
/// connection's own business, which hyper re-derives. Such tokens are ignored.
fn is_protected(token: &[u8]) -> bool {
    const PROTECTED: [&[u8]; 5] = [
        b"host",
        b"origin",
        b"content-length",
        b"transfer-encoding",
        b"te",
    ];
    PROTECTED.iter().any(|p| token.eq_ignore_ascii_case(p))
        || token
            .get(..15)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"access-control-"))
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

/// The one upgrade token the gateway forwards and tunnels.
pub(crate) const WEBSOCKET: HeaderValue = HeaderValue::from_static("websocket");

/// Whether an `Upgrade` line names the WebSocket protocol and nothing else.
pub(crate) fn is_websocket_token(line: &[u8]) -> bool {
    line.trim_ascii().eq_ignore_ascii_case(b"websocket")
}

fn has_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Sets the forwarding headers. From a peer in `trusted_proxies` (a TLS
/// terminator or load balancer in front), what it said is kept: the client's
/// address is appended to `X-Forwarded-For` and to `Forwarded`, and
/// `X-Forwarded-Proto`/`-Host` are set only when missing. From any other peer,
/// nothing it said about itself is believed: `X-Forwarded-For`, `-Proto` and
/// `-Host` are replaced with what the gateway sees, and so are `Forwarded` and
/// `X-Real-IP` when present (apps that trust their proxy build links and
/// redirects from them).
pub(crate) fn add_forwarded(
    headers: &mut HeaderMap,
    client_ip: &HeaderValue,
    host: Option<HeaderValue>,
    trusted: bool,
    https: bool,
) {
    // Which of them the request has, in one pass over the names: cheaper than
    // several lookups, which hash each name.
    let (mut has_for, mut has_proto, mut has_host, mut has_other) = (false, false, false, false);
    for name in headers.keys() {
        match name.as_str() {
            "x-forwarded-for" => has_for = true,
            "x-forwarded-proto" => has_proto = true,
            "x-forwarded-host" => has_host = true,
            "forwarded" | "x-real-ip" => has_other = true,
            _ => {}
        }
    }
    // Room for these, the request id and Via at once: one resize at most.
    headers.reserve(5);
    if has_other {
        if let Some(forwarded) =
            forwarded_element(headers, client_ip, host.as_ref(), trusted, https)
        {
            headers.insert(FORWARDED, forwarded);
        }
        if !trusted && headers.contains_key(X_REAL_IP) {
            headers.insert(X_REAL_IP, client_ip.clone());
        }
    }
    // Looked up only when there is a list to extend: the usual request has
    // none, and a lookup hashes the name.
    match (has_for && trusted)
        .then(|| headers.get(X_FORWARDED_FOR))
        .flatten()
    {
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
    if !(has_proto && trusted) {
        let proto = if https { "https" } else { "http" };
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    }
    if !(has_host && trusted) {
        match host {
            Some(host) => {
                headers.insert(X_FORWARDED_HOST, host);
            }
            None if has_host => {
                headers.remove(X_FORWARDED_HOST);
            }
            None => {}
        }
    }
}

/// The `Forwarded` value to send (RFC 7239): the trusted peer's list with this
/// hop appended, or this hop alone; `None` to send none.
fn forwarded_element(
    headers: &HeaderMap,
    client_ip: &HeaderValue,
    host: Option<&HeaderValue>,
    trusted: bool,
    https: bool,
) -> Option<HeaderValue> {
    if !headers.contains_key(FORWARDED) {
        return None;
    }
    let mut value = Vec::new();
    if trusted {
        for (i, line) in headers.get_all(FORWARDED).iter().enumerate() {
            if i > 0 {
                value.extend_from_slice(b", ");
            }
            value.extend_from_slice(line.as_bytes());
        }
        value.extend_from_slice(b", ");
    }
    // An IPv6 address is a quoted "[…]" (RFC 7239 §6).
    let ip = client_ip.as_bytes();
    if ip.contains(&b':') {
        value.extend_from_slice(b"for=\"[");
        value.extend_from_slice(ip);
        value.extend_from_slice(b"]\"");
    } else {
        value.extend_from_slice(b"for=");
        value.extend_from_slice(ip);
    }
    if let Some(host) = host {
        value.extend_from_slice(b";host=\"");
        value.extend_from_slice(host.as_bytes());
        value.push(b'"');
    }
    value.extend_from_slice(if https {
        b";proto=https"
    } else {
        b";proto=http"
    });
    HeaderValue::from_bytes(&value).ok()
}

/// The request id: from a trusted proxy, its `X-Request-Id` when usable (1 to
/// 128 visible ASCII characters); otherwise a new random one (32 hex digits).
/// A client's own id is not believed (it could reuse another request's id and
/// confuse log correlation): when usable, it is moved to `X-Client-Request-Id`,
/// so that it still reaches the upstream, under a name that says whose it is.
pub(crate) fn request_id(headers: &mut HeaderMap, trusted: bool) -> HeaderValue {
    let Some(id) = headers.get(X_REQUEST_ID) else {
        return new_request_id();
    };
    let bytes = id.as_bytes();
    let usable =
        !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(|b| b.is_ascii_graphic());
    if trusted && usable {
        return id.clone();
    }
    if let Some(id) = headers.remove(X_REQUEST_ID) {
        if usable && !headers.contains_key(X_CLIENT_REQUEST_ID) {
            headers.insert(X_CLIENT_REQUEST_ID, id);
        }
    }
    new_request_id()
}

/// Request ids made at once, in one buffer: each id is a slice of it, so
/// that an id and its clones (the upstream's copy, the response's) share one
/// reference count instead of allocating.
const IDS_PER_BATCH: usize = 64;
const ID_LEN: usize = 32;

fn new_request_id() -> HeaderValue {
    thread_local! {
        static BATCH: std::cell::RefCell<bytes::Bytes> =
            const { std::cell::RefCell::new(bytes::Bytes::new()) };
    }
    BATCH.with_borrow_mut(|batch| {
        if batch.len() < ID_LEN {
            *batch = id_batch();
        }
        let id = batch.split_to(ID_LEN);
        HeaderValue::from_maybe_shared(id).unwrap_or(HeaderValue::from_static("0"))
    })
}

/// [`IDS_PER_BATCH`] random ids of 32 hex digits each, back to back.
fn id_batch() -> bytes::Bytes {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = vec![0u8; IDS_PER_BATCH * ID_LEN];
    for id in buf.chunks_exact_mut(ID_LEN) {
        let mut n = fastrand::u128(..);
        for b in id.iter_mut().rev() {
            *b = HEX[(n & 0xf) as usize];
            n >>= 4;
        }
    }
    // The first id taken makes the buffer shared; the next ones only count
    // references.
    bytes::Bytes::from(buf)
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
    fn forwarded_headers_from_a_trusted_proxy_are_kept_and_appended() {
        let ip = HeaderValue::from_static("10.0.0.2");
        let mut h = map(&[
            ("x-forwarded-for", "192.0.2.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example"),
            ("forwarded", "for=192.0.2.1;proto=https"),
            ("x-real-ip", "192.0.2.1"),
        ]);
        add_forwarded(
            &mut h,
            &ip,
            Some(HeaderValue::from_static("10.0.0.1:8080")),
            true,
            false,
        );
        assert_eq!(h["x-forwarded-for"], "192.0.2.1, 10.0.0.2");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "app.example");
        assert_eq!(
            h["forwarded"],
            "for=192.0.2.1;proto=https, for=10.0.0.2;host=\"10.0.0.1:8080\";proto=http"
        );
        assert_eq!(h["x-real-ip"], "192.0.2.1");
    }

    #[test]
    fn forwarded_headers_from_anyone_else_are_replaced() {
        let ip = HeaderValue::from_static("::1");
        let mut h = map(&[
            ("x-forwarded-for", "192.0.2.1"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=1.2.3.4;host=evil.example;proto=https"),
            ("x-real-ip", "10.9.9.9"),
        ]);
        add_forwarded(
            &mut h,
            &ip,
            Some(HeaderValue::from_static("api.example")),
            false,
            false,
        );
        assert_eq!(h["x-forwarded-for"], "::1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.example");
        assert_eq!(
            h["forwarded"],
            "for=\"[::1]\";host=\"api.example\";proto=http"
        );
        assert_eq!(h["x-real-ip"], "::1");
        let mut h = map(&[]);
        add_forwarded(&mut h, &ip, None, false, false);
        assert_eq!(h.len(), 2, "{h:?}");
    }

    #[test]
    fn request_ids_are_kept_from_trusted_proxies_only() {
        let mut h = map(&[("x-request-id", "req-42")]);
        assert_eq!(request_id(&mut h, true), "req-42");
        let made = request_id(&mut h, false);
        assert_eq!(made.len(), 32);
        assert!(made.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_eq!(h["x-client-request-id"], "req-42");
        assert!(!h.contains_key("x-request-id"));
        let mut h = map(&[("x-request-id", "has space")]);
        assert_eq!(request_id(&mut h, true).len(), 32);
        assert!(!h.contains_key("x-client-request-id"));
        assert_ne!(
            request_id(&mut HeaderMap::new(), false),
            request_id(&mut HeaderMap::new(), false)
        );
    }

    #[test]
    fn request_ids_made_in_batches_are_all_different() {
        let ids: std::collections::HashSet<HeaderValue> = (0..3 * IDS_PER_BATCH + 1)
            .map(|_| new_request_id())
            .collect();
        assert_eq!(ids.len(), 3 * IDS_PER_BATCH + 1);
        assert!(
            ids.iter()
                .all(|id| id.len() == ID_LEN && id.as_bytes().iter().all(u8::is_ascii_hexdigit))
        );
    }

    #[test]
    fn connection_cannot_remove_end_to_end_headers() {
        let mut h = map(&[
            (
                "connection",
                "Host, ORIGIN, content-length, Access-Control-Request-Method, x-hop, close",
            ),
            ("host", "api.example"),
            ("origin", "https://app.example"),
            ("content-length", "3"),
            ("access-control-request-method", "PUT"),
            ("x-hop", "1"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(
            left,
            [
                "access-control-request-method",
                "content-length",
                "host",
                "origin"
            ]
        );
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
