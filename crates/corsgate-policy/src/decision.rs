//! The decision type: what to do with one request, and why a refused one was
//! refused.

use std::fmt;
use std::sync::Arc;

use http::header::HeaderName;
use http::{HeaderValue, StatusCode};

use crate::classify::RequestClass;
use crate::template::PreflightTemplate;

/// `Access-Control-Request-Private-Network` (Chrome's Private Network Access).
pub(crate) const ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-request-private-network");
/// `Access-Control-Allow-Private-Network`.
pub(crate) const ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-allow-private-network");
/// The most names a preflight may ask for in `Access-Control-Request-Headers`
/// (all its lines together); one more and it is refused as
/// [`RejectionReason::TooManyRequestHeaders`].
///
/// Browsers list only the headers a script set that are not CORS-safelisted,
/// once each: pages send a handful, rarely more than fifteen. The limit keeps
/// the work a hostile list can cause small and fixed, whatever its length.
pub const MAX_REQUEST_HEADER_NAMES: usize = 64;

/// The longest `Access-Control-Request-Headers` a preflight may send, in bytes
/// (all its lines together, commas and spaces included); longer is refused as
/// [`RejectionReason::TooManyRequestHeaders`] before a byte of it is read.
/// [`MAX_REQUEST_HEADER_NAMES`] names of 60 bytes fit.
pub const MAX_REQUEST_HEADERS_LEN: usize = 4096;

/// The header debug mode adds to refused requests: the rejection reason.
pub const REASON_HEADER: HeaderName = HeaderName::from_static("x-corsgate-reason");

/// Why a CORS request was refused. The same reason feeds logs, metrics, `explain`
/// and debug mode.
///
/// ```
/// use corsgate_policy::{CorsConfig, Policy, RejectionReason};
/// use http::{HeaderMap, Method};
///
/// let policy = Policy::compile(&CorsConfig::new().allow_origins("https://app.example.com")).unwrap();
/// let mut request = HeaderMap::new();
/// request.insert("origin", "null".parse().unwrap());
/// let reason = policy.decide(&Method::GET, &request).rejection().map(|r| r.reason());
/// assert_eq!(reason, Some(RejectionReason::NullOrigin));
/// assert_eq!(RejectionReason::NullOrigin.as_str(), "null-origin");
/// assert!(RejectionReason::NullOrigin.is_about_origin());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionReason {
    /// The origin is well-formed but not in `allow_origins`.
    OriginNotAllowed,
    /// The origin is `null` and the policy does not allow it.
    NullOrigin,
    /// `Origin` is not a serialized origin (or appears twice).
    MalformedOrigin,
    /// The preflight asks for a method the policy does not allow.
    MethodNotAllowed,
    /// `Access-Control-Request-Method` is not a method token.
    MalformedMethod,
    /// The preflight asks for a request header the policy does not allow.
    HeaderNotAllowed,
    /// `Access-Control-Request-Headers` is not a list of header names.
    MalformedRequestHeaders,
    /// A Private Network Access preflight on a policy without
    /// `allow_private_network`.
    PrivateNetworkNotAllowed,
    /// The preflight asks for more request headers than any page sends:
    /// more than [`MAX_REQUEST_HEADER_NAMES`](crate::MAX_REQUEST_HEADER_NAMES)
    /// names, or an `Access-Control-Request-Headers` longer than
    /// [`MAX_REQUEST_HEADERS_LEN`](crate::MAX_REQUEST_HEADERS_LEN) bytes.
    TooManyRequestHeaders,
    /// A client-scoped route: the origin is not in the static list and the
    /// request names no client.
    ClientUnidentified,
    /// A client-scoped route: the request names a client that is not registered.
    ClientUnknown,
    /// A client-scoped route: the origin is in neither the static list nor the
    /// identified client's own list.
    OriginNotAllowedForClient,
}

impl RejectionReason {
    /// Every reason, for metric label sets and documentation.
    pub const ALL: [RejectionReason; 12] = [
        RejectionReason::OriginNotAllowed,
        RejectionReason::NullOrigin,
        RejectionReason::MalformedOrigin,
        RejectionReason::MethodNotAllowed,
        RejectionReason::MalformedMethod,
        RejectionReason::HeaderNotAllowed,
        RejectionReason::MalformedRequestHeaders,
        RejectionReason::PrivateNetworkNotAllowed,
        RejectionReason::TooManyRequestHeaders,
        RejectionReason::ClientUnidentified,
        RejectionReason::ClientUnknown,
        RejectionReason::OriginNotAllowedForClient,
    ];

    /// Stable kebab-case name, used in logs, metrics and the debug header.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionReason::OriginNotAllowed => "origin-not-allowed",
            RejectionReason::NullOrigin => "null-origin",
            RejectionReason::MalformedOrigin => "malformed-origin",
            RejectionReason::MethodNotAllowed => "method-not-allowed",
            RejectionReason::MalformedMethod => "malformed-method",
            RejectionReason::HeaderNotAllowed => "header-not-allowed",
            RejectionReason::MalformedRequestHeaders => "malformed-request-headers",
            RejectionReason::PrivateNetworkNotAllowed => "private-network-not-allowed",
            RejectionReason::TooManyRequestHeaders => "too-many-request-headers",
            RejectionReason::ClientUnidentified => "client-unidentified",
            RejectionReason::ClientUnknown => "client-unknown",
            RejectionReason::OriginNotAllowedForClient => "origin-not-allowed-for-client",
        }
    }

    /// Whether the refusal is about the origin (as opposed to what a preflight asked).
    pub fn is_about_origin(self) -> bool {
        matches!(
            self,
            RejectionReason::OriginNotAllowed
                | RejectionReason::NullOrigin
                | RejectionReason::MalformedOrigin
                | RejectionReason::ClientUnidentified
                | RejectionReason::ClientUnknown
                | RejectionReason::OriginNotAllowedForClient
        )
    }
}

impl fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: the reason, and what in the request caused it.
///
/// ```
/// use corsgate_policy::{CorsConfig, Policy, RejectionReason};
/// use http::{HeaderMap, Method};
///
/// let policy = Policy::compile(
///     &CorsConfig::new().allow_origins("https://app.example.com").allow_headers("x-api-key"),
/// ).unwrap();
/// let mut request = HeaderMap::new();
/// request.insert("origin", "https://app.example.com".parse().unwrap());
/// request.insert("access-control-request-method", "GET".parse().unwrap());
/// request.insert("access-control-request-headers", "x-api-key,x-debug".parse().unwrap());
/// let decision = policy.decide(&Method::OPTIONS, &request);
/// let rejection = decision.rejection().unwrap();
/// assert_eq!(rejection.reason(), RejectionReason::HeaderNotAllowed);
/// assert_eq!(rejection.culprit(), Some("x-debug"));
/// assert_eq!(rejection.to_string(), "header-not-allowed (x-debug)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub(crate) reason: RejectionReason,
    /// The offending request value (method, or header list and the name's range).
    pub(crate) culprit: Option<(HeaderValue, usize, usize)>,
}

impl Rejection {
    /// Why.
    pub fn reason(&self) -> RejectionReason {
        self.reason
    }

    /// The refused method or request-header name, when the reason is about one.
    pub fn culprit(&self) -> Option<&str> {
        let (value, lo, hi) = self.culprit.as_ref()?;
        value
            .as_bytes()
            .get(*lo..*hi)
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason.as_str())?;
        if let Some(culprit) = self.culprit() {
            write!(f, " ({culprit})")?;
        }
        Ok(())
    }
}

/// What to do with one request: the headers to add to its response, and whether
/// the response is made here (a preflight, a refusal) instead of by the app.
///
/// A refused CORS request is a `Decision` too, not an error.
///
/// ```
/// use corsgate_policy::{CorsConfig, Policy, RequestClass};
/// use http::{HeaderMap, HeaderValue, Method};
///
/// let policy = Policy::compile(
///     &CorsConfig::new().allow_origins("https://app.example.com").expose_headers("x-request-id"),
/// ).unwrap();
/// let mut request = HeaderMap::new();
/// request.insert("origin", "https://app.example.com".parse().unwrap());
/// let decision = policy.decide(&Method::GET, &request);
/// assert_eq!(decision.class(), RequestClass::Actual);
/// assert!(decision.is_allowed());
/// // Not answered here: the app answers, then the decision is applied.
/// assert!(decision.response_status().is_none());
///
/// let mut response = HeaderMap::new();
/// response.insert("vary", HeaderValue::from_static("Accept-Encoding"));
/// response.insert("access-control-allow-origin", HeaderValue::from_static("*"));
/// decision.apply(&mut response);
/// assert_eq!(response["access-control-allow-origin"], "https://app.example.com");
/// assert_eq!(response["access-control-expose-headers"], "x-request-id");
/// let vary: Vec<_> = response.get_all("vary").iter().collect();
/// assert_eq!(vary, ["Accept-Encoding", "Origin"]);
/// ```
#[derive(Debug, Clone)]
pub struct Decision {
    pub(crate) class: RequestClass,
    pub(crate) allow_origin: AllowOrigin,
    pub(crate) allow_credentials: bool,
    pub(crate) allow_private_network: bool,
    pub(crate) debug_reason: bool,
    pub(crate) respond: Option<StatusCode>,
    /// One of the policy's precomputed `Vary` values.
    pub(crate) vary: Option<&'static HeaderValue>,
    pub(crate) origin: Option<HeaderValue>,
    pub(crate) allow_methods: Option<HeaderValue>,
    pub(crate) allow_headers: Option<HeaderValue>,
    /// `Access-Control-Expose-Headers`: allowed actual requests only.
    pub(crate) expose: Option<HeaderValue>,
    pub(crate) rejection: Option<Rejection>,
    /// For an allowed preflight: the policy's ready-made response headers, which
    /// also hold its `Access-Control-Max-Age`.
    pub(crate) template: Option<Arc<PreflightTemplate>>,
}

/// What `Access-Control-Allow-Origin` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AllowOrigin {
    /// Not sent.
    None,
    /// `*`.
    Any,
    /// The request's `Origin`, byte for byte.
    Echo,
}

impl Decision {
    pub(crate) fn new(class: RequestClass, origin: Option<HeaderValue>) -> Self {
        Decision {
            class,
            allow_origin: AllowOrigin::None,
            allow_credentials: false,
            allow_private_network: false,
            debug_reason: false,
            respond: None,
            vary: None,
            origin,
            allow_methods: None,
            allow_headers: None,
            expose: None,
            rejection: None,
            template: None,
        }
    }

    /// The decision for a route with CORS turned off: nothing added, nothing
    /// answered here, the request passes untouched.
    pub fn pass(class: RequestClass) -> Self {
        Decision::new(class, None)
    }

    /// What kind of request this was.
    pub fn class(&self) -> RequestClass {
        self.class
    }

    /// Whether the request is allowed: a CORS request whose origin (and, for a
    /// preflight, method and headers) the policy allows.
    pub fn is_allowed(&self) -> bool {
        self.class != RequestClass::NotCors
            && self.rejection.is_none()
            && self.allow_origin != AllowOrigin::None
    }

    /// The refusal, if the request was refused.
    pub fn rejection(&self) -> Option<&Rejection> {
        self.rejection.as_ref()
    }

    /// The request's `Origin`, when it had one.
    pub fn origin(&self) -> Option<&HeaderValue> {
        self.origin.as_ref()
    }

    /// `Some(status)` when the response must be made here without calling the
    /// app: every preflight, and refused actual requests under
    /// `on_disallowed = "reject"`. `None`: forward, then [`apply`](Self::apply).
    pub fn response_status(&self) -> Option<StatusCode> {
        self.respond
    }
}
