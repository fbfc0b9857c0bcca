//! Per request: classify, decide, and apply the decision to a response.

use std::fmt;

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, HeaderName, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::config::OnDisallowed;
use crate::fetch::{self, HeaderListError};
use crate::matcher::OriginMatch;
use crate::policy::Policy;

/// `Access-Control-Request-Private-Network` (Chrome's Private Network Access).
pub const ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-request-private-network");
/// `Access-Control-Allow-Private-Network`.
pub const ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-allow-private-network");
/// The header debug mode adds to refused requests: the rejection reason.
pub const REASON_HEADER: HeaderName = HeaderName::from_static("x-corsgate-reason");

const TRUE: HeaderValue = HeaderValue::from_static("true");
const STAR: HeaderValue = HeaderValue::from_static("*");

/// What kind of request this is, in the terms of the Fetch standard.
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

/// Why a CORS request was refused. The same reason feeds logs, metrics, `explain`
/// and debug mode.
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
}

impl RejectionReason {
    /// Every reason, for metric label sets and documentation.
    pub const ALL: [RejectionReason; 8] = [
        RejectionReason::OriginNotAllowed,
        RejectionReason::NullOrigin,
        RejectionReason::MalformedOrigin,
        RejectionReason::MethodNotAllowed,
        RejectionReason::MalformedMethod,
        RejectionReason::HeaderNotAllowed,
        RejectionReason::MalformedRequestHeaders,
        RejectionReason::PrivateNetworkNotAllowed,
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
        }
    }

    /// Whether the refusal is about the origin (as opposed to what a preflight asked).
    pub fn is_about_origin(self) -> bool {
        matches!(
            self,
            RejectionReason::OriginNotAllowed
                | RejectionReason::NullOrigin
                | RejectionReason::MalformedOrigin
        )
    }
}

impl fmt::Display for RejectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: the reason, and what in the request caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    reason: RejectionReason,
    /// The offending request value (method, or header list and the name's range).
    culprit: Option<(HeaderValue, usize, usize)>,
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
#[derive(Debug, Clone)]
pub struct Decision {
    class: RequestClass,
    rejection: Option<Rejection>,
    respond: Option<StatusCode>,
    origin: Option<HeaderValue>,
    allow_origin: Option<HeaderValue>,
    allow_credentials: bool,
    allow_methods: Option<HeaderValue>,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    allow_private_network: bool,
    vary: Option<HeaderValue>,
    debug_reason: bool,
}

impl Decision {
    fn new(class: RequestClass, origin: Option<HeaderValue>) -> Self {
        Decision {
            class,
            rejection: None,
            respond: None,
            origin,
            allow_origin: None,
            allow_credentials: false,
            allow_methods: None,
            allow_headers: None,
            expose_headers: None,
            max_age: None,
            allow_private_network: false,
            vary: None,
            debug_reason: false,
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
            && self.allow_origin.is_some()
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

    /// Writes the decision into a response's headers: removes every
    /// `Access-Control-*` header already there (the app's or an upstream's: this
    /// decision is the one authority), adds the CORS headers, and appends `Origin`
    /// (and for preflights the request headers) to `Vary` unless already listed.
    pub fn apply(&self, headers: &mut HeaderMap) {
        strip_access_control(headers);
        if let Some(value) = &self.allow_origin {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, value.clone());
        }
        if self.allow_credentials {
            headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
        }
        if let Some(value) = &self.allow_methods {
            headers.insert(ACCESS_CONTROL_ALLOW_METHODS, value.clone());
        }
        if let Some(value) = &self.allow_headers {
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, value.clone());
        }
        if let Some(value) = &self.max_age {
            headers.insert(ACCESS_CONTROL_MAX_AGE, value.clone());
        }
        if self.allow_private_network {
            headers.insert(ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK, TRUE);
        }
        if let Some(value) = &self.expose_headers {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, value.clone());
        }
        if self.debug_reason {
            if let Some(rejection) = &self.rejection {
                headers.insert(
                    REASON_HEADER,
                    HeaderValue::from_static(rejection.reason.as_str()),
                );
            }
        }
        if let Some(vary) = &self.vary {
            append_vary(headers, vary);
        }
    }

    /// The headers [`apply`](Self::apply) would add, in order, for tools.
    pub fn headers(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        self.apply(&mut map);
        map
    }
}

/// Whether a header name is one of the CORS response or request headers.
pub fn is_access_control_header(name: &HeaderName) -> bool {
    name.as_str().starts_with("access-control-")
}

fn strip_access_control(headers: &mut HeaderMap) {
    if !headers.keys().any(is_access_control_header) {
        return;
    }
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_access_control_header(n))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// Appends the members of `add` (a comma-separated list) to `Vary`, skipping those
/// already present, and skipping everything when `Vary: *` is there.
pub fn append_vary(headers: &mut HeaderMap, add: &HeaderValue) {
    let existing = headers.get_all(VARY);
    if existing.iter().next().is_none() {
        headers.insert(VARY, add.clone());
        return;
    }
    let has = |member: &[u8]| {
        existing.iter().any(|value| {
            value
                .as_bytes()
                .split(|b| *b == b',')
                .map(|m| m.trim_ascii())
                .any(|m| m == b"*" || m.eq_ignore_ascii_case(member))
        })
    };
    let missing = add
        .as_bytes()
        .split(|b| *b == b',')
        .map(|m| m.trim_ascii())
        .filter(|m| !has(m));
    let mut out: Vec<u8> = Vec::new();
    for member in missing {
        if !out.is_empty() {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(member);
    }
    if out.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_bytes(&out) {
        headers.append(VARY, value);
    }
}

impl Policy {
    /// Decides on a request from its method and headers. Never allocates on the
    /// heap (except to join several `Access-Control-Request-Headers` lines).
    pub fn decide(&self, method: &Method, headers: &HeaderMap) -> Decision {
        let mut origins = headers.get_all(ORIGIN).iter();
        let Some(origin) = origins.next() else {
            let mut decision = Decision::new(RequestClass::NotCors, None);
            decision.vary = self.vary_actual.clone();
            return decision;
        };
        let duplicated = origins.next().is_some();
        let preflight =
            method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        let class = if preflight {
            RequestClass::Preflight
        } else {
            RequestClass::Actual
        };
        let mut decision = Decision::new(class, Some(origin.clone()));
        let found = if duplicated {
            OriginMatch::Malformed
        } else {
            self.origins.find(origin.as_bytes())
        };
        let origin_reason = match found {
            OriginMatch::Allowed => None,
            OriginMatch::NotAllowed => Some(RejectionReason::OriginNotAllowed),
            OriginMatch::Null => Some(RejectionReason::NullOrigin),
            OriginMatch::Malformed => Some(RejectionReason::MalformedOrigin),
        };
        if preflight {
            self.decide_preflight(&mut decision, origin, origin_reason, headers);
        } else {
            self.decide_actual(&mut decision, origin, origin_reason);
        }
        decision
    }

    /// Checks an origin alone, as for a WebSocket handshake (which browsers never
    /// CORS-check, so the server must).
    pub fn check_origin(&self, origin: &HeaderValue) -> Result<(), RejectionReason> {
        match self.origins.find(origin.as_bytes()) {
            OriginMatch::Allowed => Ok(()),
            OriginMatch::NotAllowed => Err(RejectionReason::OriginNotAllowed),
            OriginMatch::Null => Err(RejectionReason::NullOrigin),
            OriginMatch::Malformed => Err(RejectionReason::MalformedOrigin),
        }
    }

    fn allow_origin_value(&self, origin: &HeaderValue) -> HeaderValue {
        // `*` only without credentials (compile refuses the pair); otherwise echo
        // the request's bytes, which matched the allowlist exactly.
        if self.origins.is_any() {
            STAR
        } else {
            origin.clone()
        }
    }

    fn decide_actual(
        &self,
        decision: &mut Decision,
        origin: &HeaderValue,
        reason: Option<RejectionReason>,
    ) {
        decision.vary = self.vary_actual.clone();
        if let Some(reason) = reason {
            decision.rejection = Some(Rejection {
                reason,
                culprit: None,
            });
            decision.debug_reason = self.debug;
            if self.on_disallowed == OnDisallowed::Reject {
                decision.respond = Some(StatusCode::FORBIDDEN);
            }
            return;
        }
        decision.allow_origin = Some(self.allow_origin_value(origin));
        decision.allow_credentials = self.credentials;
        decision.expose_headers = self.expose.clone();
    }

    fn decide_preflight(
        &self,
        decision: &mut Decision,
        origin: &HeaderValue,
        reason: Option<RejectionReason>,
        headers: &HeaderMap,
    ) {
        decision.vary = Some(self.vary_preflight.clone());
        if let Some(reason) = reason {
            return self.refuse_preflight(
                decision,
                origin,
                Rejection {
                    reason,
                    culprit: None,
                },
            );
        }
        // Fetch §4.8 step 7: the method passes if safelisted or listed (`*` only
        // matches non-forbidden methods, whatever the credentials mode, since the
        // requested method is echoed rather than `*` sent).
        let method = headers.get(ACCESS_CONTROL_REQUEST_METHOD);
        let Some(method) = method.filter(|m| fetch::is_token(m.as_bytes())) else {
            let culprit = method.map(|m| (m.clone(), 0, m.len()));
            return self.refuse_preflight(
                decision,
                origin,
                Rejection {
                    reason: RejectionReason::MalformedMethod,
                    culprit,
                },
            );
        };
        let name = method.as_bytes();
        let method_ok = matches!(name, b"GET" | b"HEAD" | b"POST")
            || self.methods.contains_exact(name)
            || (self.methods.any && !is_forbidden_method_bytes(name));
        if !method_ok {
            let culprit = Some((method.clone(), 0, method.len()));
            return self.refuse_preflight(
                decision,
                origin,
                Rejection {
                    reason: RejectionReason::MethodNotAllowed,
                    culprit,
                },
            );
        }
        decision.allow_methods = Some(method.clone());
        // Private Network Access: answered only when enabled.
        let wants_private_network = headers
            .get(ACCESS_CONTROL_REQUEST_PRIVATE_NETWORK)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        if wants_private_network && !self.private_network {
            return self.refuse_preflight(
                decision,
                origin,
                Rejection {
                    reason: RejectionReason::PrivateNetworkNotAllowed,
                    culprit: None,
                },
            );
        }
        // Fetch §4.8 step 8: every requested header must be listed, or covered by
        // `*`, which never covers Authorization.
        let allowed = |name: &[u8]| {
            self.headers.contains_ignore_case(name)
                || (self.headers.any && !name.eq_ignore_ascii_case(b"authorization"))
        };
        let mut lines = 0usize;
        let mut single: Option<&HeaderValue> = None;
        for line in headers.get_all(ACCESS_CONTROL_REQUEST_HEADERS) {
            match fetch::check_header_list(line.as_bytes(), allowed) {
                Ok(0) => {}
                Ok(_) => {
                    lines += 1;
                    single = Some(line);
                }
                Err(HeaderListError::NotAllowed(lo, hi)) => {
                    let culprit = Some((line.clone(), lo, hi));
                    return self.refuse_preflight(
                        decision,
                        origin,
                        Rejection {
                            reason: RejectionReason::HeaderNotAllowed,
                            culprit,
                        },
                    );
                }
                Err(HeaderListError::Malformed(lo, hi)) => {
                    let culprit = Some((line.clone(), lo, hi));
                    return self.refuse_preflight(
                        decision,
                        origin,
                        Rejection {
                            reason: RejectionReason::MalformedRequestHeaders,
                            culprit,
                        },
                    );
                }
            }
        }
        decision.allow_headers = match lines {
            0 => None,
            1 => single.cloned(),
            _ => join_lines(headers),
        };
        decision.respond = Some(self.preflight_status);
        decision.allow_origin = Some(self.allow_origin_value(origin));
        decision.allow_credentials = self.credentials;
        decision.max_age = self.max_age.clone();
        decision.allow_private_network = wants_private_network;
    }

    /// A refused preflight: `403` without CORS headers; in debug mode, the ok
    /// status with only the headers that hold, so that the browser's own check
    /// names the precise cause in its console message.
    fn refuse_preflight(
        &self,
        decision: &mut Decision,
        origin: &HeaderValue,
        rejection: Rejection,
    ) {
        let reason = rejection.reason;
        decision.rejection = Some(rejection);
        if !self.debug {
            decision.respond = Some(StatusCode::FORBIDDEN);
            decision.allow_methods = None;
            return;
        }
        decision.debug_reason = true;
        decision.respond = Some(self.preflight_status);
        if reason.is_about_origin() {
            return;
        }
        decision.allow_origin = Some(self.allow_origin_value(origin));
        decision.allow_credentials = self.credentials;
        match reason {
            RejectionReason::MethodNotAllowed | RejectionReason::MalformedMethod => {
                decision.allow_methods = self.debug_methods.clone();
            }
            _ => decision.allow_headers = self.debug_headers.clone(),
        }
    }
}

fn is_forbidden_method_bytes(name: &[u8]) -> bool {
    std::str::from_utf8(name).is_ok_and(fetch::is_forbidden_method)
}

/// Several `Access-Control-Request-Headers` lines are one list (RFC 9110 §5.3);
/// echo them joined. Allocates, but browsers always send a single line.
fn join_lines(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut out: Vec<u8> = Vec::new();
    for line in headers.get_all(ACCESS_CONTROL_REQUEST_HEADERS) {
        let bytes = line.as_bytes().trim_ascii();
        if bytes.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(bytes);
    }
    HeaderValue::from_bytes(&out).ok()
}
