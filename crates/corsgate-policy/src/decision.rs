//! Per request: classify, decide, and apply the decision to a response.

use std::fmt;
use std::sync::Arc;

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, HeaderName, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::config::OnDisallowed;
use crate::fetch::{self, HeaderListError};
use crate::matcher::OriginMatch;
use crate::policy::{Policy, VARY_ORIGIN};

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
    allow_origin: AllowOrigin,
    allow_credentials: bool,
    allow_private_network: bool,
    debug_reason: bool,
    respond: Option<StatusCode>,
    /// One of the policy's precomputed `Vary` values.
    vary: Option<&'static HeaderValue>,
    origin: Option<HeaderValue>,
    allow_methods: Option<HeaderValue>,
    allow_headers: Option<HeaderValue>,
    /// `Access-Control-Expose-Headers` (actual requests) or
    /// `Access-Control-Max-Age` (preflights): never both.
    policy_value: Option<HeaderValue>,
    rejection: Option<Rejection>,
    /// For an allowed preflight: the policy's ready-made response headers.
    template: Option<Arc<PreflightHeaders>>,
}

/// The response headers of an allowed preflight, made once per policy for each
/// combination of (request headers echoed, private network allowed), with
/// placeholders where the request's origin, method and header list go.
///
/// A preflight answered here gets a clone of one, its placeholders filled:
/// cheaper than inserting each header into an empty map, which hashes every name.
pub(crate) struct PreflightHeaders {
    /// Indexed by [`PreflightHeaders::index`].
    maps: [HeaderMap; 4],
}

impl fmt::Debug for PreflightHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Four maps of what the decision's own fields say: noise in a decision's
        // debug output.
        f.debug_struct("PreflightHeaders").finish_non_exhaustive()
    }
}

const PLACEHOLDER: HeaderValue = HeaderValue::from_static("");

impl PreflightHeaders {
    pub(crate) fn new(policy: &Policy) -> Arc<Self> {
        let map = |index: usize| {
            let mut decision = Decision::new(RequestClass::Preflight, Some(PLACEHOLDER));
            decision.allow_methods = Some(PLACEHOLDER);
            decision.allow_headers = (index & 1 != 0).then_some(PLACEHOLDER);
            decision.allow_private_network = index & 2 != 0;
            policy.allow_preflight(&mut decision);
            let mut headers = HeaderMap::new();
            decision.insert_headers(&mut headers, true);
            headers
        };
        Arc::new(PreflightHeaders {
            maps: [map(0), map(1), map(2), map(3)],
        })
    }

    fn index(decision: &Decision) -> usize {
        usize::from(decision.allow_headers.is_some())
            | usize::from(decision.allow_private_network) << 1
    }
}

/// What `Access-Control-Allow-Origin` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AllowOrigin {
    /// Not sent.
    None,
    /// `*`.
    Any,
    /// The request's `Origin`, byte for byte.
    Echo,
}

impl Decision {
    fn new(class: RequestClass, origin: Option<HeaderValue>) -> Self {
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
            policy_value: None,
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

    /// Writes the decision into a response's headers: removes every
    /// `Access-Control-*` header already there (the app's or an upstream's: this
    /// decision is the one authority), adds the CORS headers, and appends `Origin`
    /// (and for preflights the request headers) to `Vary` unless already listed.
    ///
    /// An empty map (a response made here) has nothing to remove or merge, so the
    /// headers are only inserted.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let fresh = headers.is_empty();
        if fresh {
            if let Some(template) = &self.template {
                return self.fill(template, headers);
            }
        }
        self.insert_headers(headers, fresh);
    }

    /// An allowed preflight's headers, from the policy's template.
    fn fill(&self, template: &PreflightHeaders, headers: &mut HeaderMap) {
        let Some(map) = template.maps.get(PreflightHeaders::index(self)) else {
            return self.insert_headers(headers, true);
        };
        *headers = map.clone();
        for (name, value) in headers.iter_mut() {
            let filled = if name == ACCESS_CONTROL_ALLOW_ORIGIN {
                match self.allow_origin {
                    AllowOrigin::Echo => &self.origin,
                    _ => continue,
                }
            } else if name == ACCESS_CONTROL_ALLOW_METHODS {
                &self.allow_methods
            } else if name == ACCESS_CONTROL_ALLOW_HEADERS {
                &self.allow_headers
            } else {
                continue;
            };
            if let Some(filled) = filled {
                *value = filled.clone();
            }
        }
    }

    /// The headers one by one, after removing the `Access-Control-*` ones unless
    /// the map was `fresh` (empty).
    fn insert_headers(&self, headers: &mut HeaderMap, fresh: bool) {
        // One walk over the names tells whether there is anything to strip and
        // whether `Vary` needs merging (the usual app response has neither).
        let mut vary_present = false;
        if !fresh {
            let mut cors_present = false;
            for name in headers.keys() {
                vary_present |= name == VARY;
                cors_present |= is_access_control_header(name);
            }
            if cors_present {
                strip_access_control(headers);
            }
        }
        match self.allow_origin {
            AllowOrigin::None => {}
            AllowOrigin::Any => {
                headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, STAR);
            }
            AllowOrigin::Echo => {
                if let Some(origin) = &self.origin {
                    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                }
            }
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
        if let Some(value) = &self.policy_value {
            let name = if self.class == RequestClass::Preflight {
                ACCESS_CONTROL_MAX_AGE
            } else {
                ACCESS_CONTROL_EXPOSE_HEADERS
            };
            headers.insert(name, value.clone());
        }
        if self.allow_private_network {
            headers.insert(ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK, TRUE);
        }
        if self.debug_reason {
            if let Some(rejection) = &self.rejection {
                headers.insert(
                    REASON_HEADER,
                    HeaderValue::from_static(rejection.reason.as_str()),
                );
            }
        }
        if let Some(vary) = self.vary {
            if vary_present {
                append_vary(headers, vary);
            } else {
                headers.insert(VARY, vary.clone());
            }
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
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_access_control_header(n))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// The comma-separated members of a `Vary` value, whitespace trimmed.
fn members(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(<[u8]>::trim_ascii)
}

/// Appends the members of `add` (a comma-separated list) to `Vary`, skipping those
/// already present, and skipping everything when `Vary: *` is there.
///
/// Allocates only when some members of `add` are listed already and others not.
pub fn append_vary(headers: &mut HeaderMap, add: &HeaderValue) {
    let existing = headers.get_all(VARY);
    if existing.iter().next().is_none() {
        headers.insert(VARY, add.clone());
        return;
    }
    let has = |member: &[u8]| {
        existing.iter().any(|value| {
            members(value.as_bytes()).any(|m| m == b"*" || m.eq_ignore_ascii_case(member))
        })
    };
    // The missing members joined by ", ": when that is `add` itself (none listed
    // yet, `add` written as corsgate writes it), append `add` as it is.
    let bytes = add.as_bytes();
    let mut len = 0usize;
    let mut same = true;
    for member in members(bytes).filter(|m| !has(m)) {
        if len > 0 {
            same &= bytes.get(len..len + 2) == Some(b", ".as_slice());
            len += 2;
        }
        same &= bytes.get(len..len + member.len()) == Some(member);
        len += member.len();
    }
    if len == 0 {
        return;
    }
    if same && len == bytes.len() {
        headers.append(VARY, add.clone());
        return;
    }
    let mut out: Vec<u8> = Vec::with_capacity(len);
    for member in members(bytes).filter(|m| !has(m)) {
        if !out.is_empty() {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(member);
    }
    if let Ok(value) = HeaderValue::from_bytes(&out) {
        headers.append(VARY, value);
    }
}

/// The request headers a decision reads, found in one pass.
struct Head<'a> {
    origin: Option<&'a HeaderValue>,
    /// `Origin` appears more than once.
    duplicated: bool,
    /// The first `Access-Control-Request-Method`: a preflight when `OPTIONS`.
    method: Option<&'a HeaderValue>,
    /// The first `Access-Control-Request-Private-Network`.
    private_network: Option<&'a HeaderValue>,
    /// The first `Access-Control-Request-Headers` line; `more_lines` when there
    /// are others (browsers send one).
    request_headers: Option<&'a HeaderValue>,
    more_lines: bool,
}

/// Up to this many header names, a request is read in one walk over its headers,
/// cheaper than a hashed look-up per name; beyond, by look-ups.
const SCAN_KEYS: usize = 24;

impl<'a> Head<'a> {
    /// `Origin` alone: all an actual request needs.
    fn origin(headers: &'a HeaderMap) -> Self {
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
    fn preflight(headers: &'a HeaderMap) -> Self {
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

impl Policy {
    /// Decides on a request from its method and headers. Never allocates on the
    /// heap (except to join several `Access-Control-Request-Headers` lines).
    pub fn decide(&self, method: &Method, headers: &HeaderMap) -> Decision {
        let head = if method == Method::OPTIONS {
            Head::preflight(headers)
        } else {
            Head::origin(headers)
        };
        let Some(origin) = head.origin else {
            let mut decision = Decision::new(RequestClass::NotCors, None);
            decision.vary = self.vary_actual;
            if head.method.is_some() {
                // An `OPTIONS` with `Access-Control-Request-Method` is a preflight,
                // answered here, as soon as it carries `Origin`; without, it goes
                // to the app: the answer depends on `Origin` whatever the policy.
                decision.vary = Some(&VARY_ORIGIN);
            }
            if self.origins.is_any() {
                // Under `*` every response carries the same CORS headers, with or
                // without `Origin`: nothing varies, so a shared cache can serve
                // one copy to every origin (the answer to the security review's
                // F2, where a copy cached without them broke every page).
                decision.allow_origin = AllowOrigin::Any;
                decision.policy_value = self.expose.clone();
            }
            return decision;
        };
        let found = if self.origins.is_any() {
            // `*` allows every value, even a malformed or repeated `Origin` (no
            // browser sends one; `*` echoes nothing back): the same answer for all.
            OriginMatch::Allowed
        } else if head.duplicated {
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
        match head.method {
            Some(requested) => {
                let mut decision = Decision::new(RequestClass::Preflight, Some(origin.clone()));
                decision.vary = Some(self.vary_preflight);
                let checked = match origin_reason {
                    Some(reason) => Err(Rejection {
                        reason,
                        culprit: None,
                    }),
                    None => self.check_preflight(&mut decision, requested, &head, headers),
                };
                match checked {
                    Ok(()) => {
                        self.allow_preflight(&mut decision);
                        decision.template = self.preflight_headers.clone();
                    }
                    Err(rejection) => self.refuse_preflight(&mut decision, rejection),
                }
                decision
            }
            None => self.decide_actual(origin, origin_reason),
        }
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

    fn allow_origin(&self) -> AllowOrigin {
        // `*` only without credentials (compile refuses the pair); otherwise echo
        // the request's bytes, which matched the allowlist exactly.
        if self.origins.is_any() {
            AllowOrigin::Any
        } else {
            AllowOrigin::Echo
        }
    }

    /// What an allowed preflight's answer holds besides the method and headers.
    fn allow_preflight(&self, decision: &mut Decision) {
        decision.respond = Some(self.preflight_status);
        decision.allow_origin = self.allow_origin();
        decision.allow_credentials = self.credentials;
        decision.policy_value = self.max_age.clone();
        decision.vary = Some(self.vary_preflight);
    }

    fn decide_actual(&self, origin: &HeaderValue, reason: Option<RejectionReason>) -> Decision {
        let mut decision = Decision::new(RequestClass::Actual, Some(origin.clone()));
        decision.vary = self.vary_actual;
        if let Some(reason) = reason {
            decision.rejection = Some(Rejection {
                reason,
                culprit: None,
            });
            decision.debug_reason = self.debug;
            if self.on_disallowed == OnDisallowed::Reject {
                decision.respond = Some(StatusCode::FORBIDDEN);
            }
            return decision;
        }
        decision.allow_origin = self.allow_origin();
        decision.allow_credentials = self.credentials;
        decision.policy_value = self.expose.clone();
        decision
    }

    /// The method, private-network and request-header checks of an allowed
    /// origin's preflight; on success, the method and header list to echo are in
    /// `decision`.
    fn check_preflight(
        &self,
        decision: &mut Decision,
        method: &HeaderValue,
        head: &Head<'_>,
        headers: &HeaderMap,
    ) -> Result<(), Rejection> {
        // Fetch §4.8 step 7: the method passes if safelisted or listed (`*` only
        // matches non-forbidden methods, whatever the credentials mode, since the
        // requested method is echoed rather than `*` sent).
        let name = method.as_bytes();
        if !fetch::is_token(name) {
            return Err(Rejection {
                reason: RejectionReason::MalformedMethod,
                culprit: Some((method.clone(), 0, name.len())),
            });
        }
        let method_ok = matches!(name, b"GET" | b"HEAD" | b"POST")
            || self.methods.contains_exact(name)
            || (self.methods.any && !is_forbidden_method_bytes(name));
        if !method_ok {
            return Err(Rejection {
                reason: RejectionReason::MethodNotAllowed,
                culprit: Some((method.clone(), 0, name.len())),
            });
        }
        decision.allow_methods = Some(method.clone());
        // Private Network Access: answered only when enabled.
        let wants_private_network = head
            .private_network
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        if wants_private_network && !self.private_network {
            return Err(Rejection {
                reason: RejectionReason::PrivateNetworkNotAllowed,
                culprit: None,
            });
        }
        // Fetch §4.8 step 8: every requested header must be listed, or covered by
        // `*`, which never covers Authorization.
        decision.allow_headers = match (head.request_headers, head.more_lines) {
            (None, _) => None,
            (Some(line), false) => match self.check_request_headers(line)? {
                0 => None,
                _ => Some(line.clone()),
            },
            (Some(_), true) => {
                let mut lines = 0usize;
                let mut single: Option<&HeaderValue> = None;
                for line in headers.get_all(ACCESS_CONTROL_REQUEST_HEADERS) {
                    if self.check_request_headers(line)? > 0 {
                        lines += 1;
                        single = Some(line);
                    }
                }
                match lines {
                    0 => None,
                    1 => single.cloned(),
                    _ => join_lines(headers),
                }
            }
        };
        decision.allow_private_network = wants_private_network;
        Ok(())
    }

    /// The number of names in one `Access-Control-Request-Headers` line, or why
    /// the line is refused.
    fn check_request_headers(&self, line: &HeaderValue) -> Result<usize, Rejection> {
        // Listed names, then any other token if `*` is allowed, which never
        // covers Authorization.
        let listed = |name: &[u8], head: u64| self.headers.contains_ignore_case(name, head);
        let other = |name: &[u8]| self.headers.any && !name.eq_ignore_ascii_case(b"authorization");
        fetch::check_header_list(line.as_bytes(), listed, other).map_err(|err| {
            let (reason, lo, hi) = match err {
                HeaderListError::NotAllowed(lo, hi) => (RejectionReason::HeaderNotAllowed, lo, hi),
                HeaderListError::Malformed(lo, hi) => {
                    (RejectionReason::MalformedRequestHeaders, lo, hi)
                }
            };
            Rejection {
                reason,
                culprit: Some((line.clone(), lo, hi)),
            }
        })
    }

    /// A refused preflight: `403` without CORS headers; in debug mode, the ok
    /// status with only the headers that hold, so that the browser's own check
    /// names the precise cause in its console message.
    fn refuse_preflight(&self, decision: &mut Decision, rejection: Rejection) {
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
        decision.allow_origin = self.allow_origin();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn vary_after(existing: &[&str], add: &str) -> Vec<String> {
        let mut headers = HeaderMap::new();
        for value in existing {
            headers.append(VARY, value.parse().unwrap());
        }
        append_vary(&mut headers, &add.parse().unwrap());
        headers
            .get_all(VARY)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn vary_members_are_appended_once() {
        let add = "Origin, Access-Control-Request-Method";
        assert_eq!(vary_after(&[], add), [add]);
        assert_eq!(vary_after(&["Accept"], add), ["Accept", add]);
        assert_eq!(
            vary_after(&["accept", "ORIGIN"], add),
            ["accept", "ORIGIN", "Access-Control-Request-Method"]
        );
        assert_eq!(
            vary_after(&[" origin ,access-control-request-method"], add),
            [" origin ,access-control-request-method"]
        );
        assert_eq!(vary_after(&["*"], add), ["*"]);
        // Not written as corsgate writes lists: rebuilt.
        assert_eq!(vary_after(&["Accept"], " a ,b"), ["Accept", "a, b"]);
        assert_eq!(vary_after(&["Accept"], ",a"), ["Accept", "a"]);
        assert_eq!(vary_after(&["Accept"], ""), ["Accept"]);
    }
}
