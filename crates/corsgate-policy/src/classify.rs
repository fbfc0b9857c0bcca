//! Classification: what kind of CORS request a head is, and the request headers
//! a decision reads, found in one pass.

use std::fmt;

use http::header::{ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN};
use http::{HeaderMap, HeaderValue, Method};

use crate::decision::ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK;

/// What kind of request this is, in the terms of the Fetch standard.
///
/// ```
/// use corsgate_policy::{Policy, RequestClass};
/// use http::{HeaderMap, Method};
///
/// let decision = Policy::closed().decide(&Method::GET, &HeaderMap::new());
/// assert_eq!(decision.class(), RequestClass::NotCors);
/// assert_eq!(decision.class().as_str(), "not-cors");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestClass {
    /// No `Origin` header: not a CORS request.
    NotCors,
    /// A CORS request other than a preflight (including an `OPTIONS` without
    /// `Access-Control-Request-Method`).
    Actual,
    /// `OPTIONS` with `Origin` and `Access-Control-Request-Method` (Fetch §4.8).
    Preflight,
}

impl RequestClass {
    /// `not-cors`, `actual` or `preflight`: for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestClass::NotCors => "not-cors",
            RequestClass::Actual => "actual",
            RequestClass::Preflight => "preflight",
        }
    }
}

impl fmt::Display for RequestClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies a request head (Fetch §3.2: a CORS request carries `Origin`; a
/// CORS-preflight request is `OPTIONS` with `Access-Control-Request-Method`).
///
/// ```
/// use corsgate_policy::{classify, RequestClass};
/// use http::{HeaderMap, Method};
///
/// let mut headers = HeaderMap::new();
/// assert_eq!(classify(&Method::OPTIONS, &headers), RequestClass::NotCors);
/// headers.insert("origin", "https://a.example".parse().unwrap());
/// assert_eq!(classify(&Method::OPTIONS, &headers), RequestClass::Actual);
/// headers.insert("access-control-request-method", "PUT".parse().unwrap());
/// assert_eq!(classify(&Method::OPTIONS, &headers), RequestClass::Preflight);
/// ```
pub fn classify(method: &Method, headers: &HeaderMap) -> RequestClass {
    if !headers.contains_key(ORIGIN) {
        RequestClass::NotCors
    } else if method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
        RequestClass::Preflight
    } else {
        RequestClass::Actual
    }
}

/// The request headers a decision reads, found in one pass.
pub(crate) struct Head<'a> {
    pub(crate) origin: Option<&'a HeaderValue>,
    /// `Origin` appears more than once.
    pub(crate) duplicated: bool,
    /// The first `Access-Control-Request-Method`: a preflight when `OPTIONS`.
    pub(crate) method: Option<&'a HeaderValue>,
    /// The first `Access-Control-Request-Private-Network`.
    pub(crate) private_network: Option<&'a HeaderValue>,
    /// The first `Access-Control-Request-Headers` line; `more_lines` when there
    /// are others (browsers send one).
    pub(crate) request_headers: Option<&'a HeaderValue>,
    pub(crate) more_lines: bool,
}

/// Up to this many header names, a request is read in one walk over its headers,
/// cheaper than a hashed look-up per name; beyond, by look-ups.
const SCAN_KEYS: usize = 24;

impl<'a> Head<'a> {
    /// `Origin` alone: all an actual request needs.
    pub(crate) fn origin(headers: &'a HeaderMap) -> Self {
        let mut origins = headers.get_all(ORIGIN).iter();
        Head {
            origin: origins.next(),
            duplicated: origins.next().is_some(),
            method: None,
            private_network: None,
            request_headers: None,
            more_lines: false,
        }
    }

    /// Everything a preflight needs.
    #[inline(always)]
    pub(crate) fn preflight(headers: &'a HeaderMap) -> Self {
        if headers.keys_len() > SCAN_KEYS {
            let mut head = Head::origin(headers);
            head.method = headers.get(ACCESS_CONTROL_REQUEST_METHOD);
            head.private_network = headers.get(ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK);
            let mut lines = headers.get_all(ACCESS_CONTROL_REQUEST_HEADERS).iter();
            head.request_headers = lines.next();
            head.more_lines = lines.next().is_some();
            return head;
        }
        let mut head = Head {
            origin: None,
            duplicated: false,
            method: None,
            private_network: None,
            request_headers: None,
            more_lines: false,
        };
        for (name, value) in headers {
            if name == ORIGIN {
                head.duplicated |= head.origin.is_some();
                head.origin.get_or_insert(value);
            } else if name == ACCESS_CONTROL_REQUEST_METHOD {
                head.method.get_or_insert(value);
            } else if name == ACCESS_CONTROL_REQUEST_HEADERS {
                head.more_lines |= head.request_headers.is_some();
                head.request_headers.get_or_insert(value);
            } else if name == ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK {
                head.private_network.get_or_insert(value);
            }
        }
        head
    }
}
