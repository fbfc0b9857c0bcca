//! Deciding: the request path of a compiled [`Policy`].

use std::borrow::Cow;

use http::header::ACCESS_CONTROL_REQUEST_HEADERS;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use crate::apply::set_length;
use crate::classify::Head;
use crate::classify::RequestClass;
use crate::config::OnDisallowed;
use crate::decision::{
    AllowOrigin, Decision, MAX_REQUEST_HEADER_NAMES, MAX_REQUEST_HEADERS_LEN, Rejection,
    RejectionReason,
};
use crate::fetch::{self, HeaderListError};
use crate::matcher::OriginMatch;
use crate::policy::Policy;
use crate::vary::VARY_ORIGIN;

impl Policy {
    /// Decides on a request from its method and headers. Never allocates on the
    /// heap (except to join several `Access-Control-Request-Headers` lines).
    pub fn decide(&self, method: &Method, headers: &HeaderMap) -> Decision {
        self.decide_judged(
            method,
            headers,
            |_, _| false,
            |_, _, found| origin_rejection(found),
        )
    }

    /// [`decide`](Self::decide), with `judge` turning how the static list matched
    /// the origin (its bytes, whether the request is a preflight) into the
    /// refusal, if any: how client-scoped routes widen the list
    /// (`client_origins.rs`). `exact` is asked first: `true` allows the origin
    /// without looking at the static list (a cheap exact hit elsewhere).
    #[inline(always)]
    pub(crate) fn decide_judged(
        &self,
        method: &Method,
        headers: &HeaderMap,
        exact: impl FnOnce(&[u8], bool) -> bool,
        judge: impl FnOnce(&[u8], bool, OriginMatch) -> Option<RejectionReason>,
    ) -> Decision {
        self.judge_request(method, headers, exact, judge, AsDecision)
    }

    /// [`decide`](Self::decide), then
    /// [`into_local_response`](Decision::into_local_response): the answer when
    /// it is made here (every preflight, and refusals under
    /// `on_disallowed = "reject"`), or the decision to
    /// [`apply`](Decision::apply) to the app's response.
    ///
    /// The same answer, headers and status, as those two calls give, but an
    /// allowed preflight's is written straight from the policy's ready-made
    /// headers, without a [`Decision`] in between: the cheapest way for a
    /// layer that has no use for the decision of a request answered here.
    ///
    /// ```
    /// use corsgate_policy::{CorsConfig, Policy};
    /// use http::{HeaderMap, Method, StatusCode};
    ///
    /// let policy = Policy::compile(
    ///     &CorsConfig::new().allow_origins("https://app.example.com").allow_methods("PUT"),
    /// ).unwrap();
    /// let mut request = HeaderMap::new();
    /// request.insert("origin", "https://app.example.com".parse().unwrap());
    /// request.insert("access-control-request-method", "PUT".parse().unwrap());
    /// let response = policy
    ///     .answer_or_decide(&Method::OPTIONS, &request, ())
    ///     .expect("a preflight is answered here");
    /// assert_eq!(response.status(), StatusCode::NO_CONTENT);
    /// assert_eq!(response.headers()["access-control-allow-methods"], "PUT");
    ///
    /// request.remove("access-control-request-method");
    /// let decision = policy.answer_or_decide(&Method::GET, &request, ()).unwrap_err();
    /// assert!(decision.is_allowed());
    /// ```
    // The decision moves back to the caller; boxing it to shrink the `Err`
    // would allocate on every request the app answers.
    #[allow(clippy::result_large_err)]
    pub fn answer_or_decide<B>(
        &self,
        method: &Method,
        headers: &HeaderMap,
        empty_body: B,
    ) -> Result<Response<B>, Decision> {
        self.judge_request(
            method,
            headers,
            |_, _| false,
            |_, _, found| origin_rejection(found),
            AsAnswer(empty_body),
        )
    }

    /// The whole decision, handed to `out`, which writes an allowed
    /// preflight's as it needs: as a [`Decision`] or straight as its answer.
    #[inline(always)]
    fn judge_request<O: Outcome>(
        &self,
        method: &Method,
        headers: &HeaderMap,
        exact: impl FnOnce(&[u8], bool) -> bool,
        judge: impl FnOnce(&[u8], bool, OriginMatch) -> Option<RejectionReason>,
        out: O,
    ) -> O::Output {
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
                decision.expose = self.expose.clone();
            }
            return out.decided(decision);
        };
        let found = if self.origins.is_any() {
            // `*` allows every value, even a malformed or repeated `Origin` (no
            // browser sends one; `*` echoes nothing back): the same answer for all.
            OriginMatch::Allowed
        } else if head.duplicated {
            OriginMatch::Malformed
        } else if exact(origin.as_bytes(), head.method.is_some()) {
            OriginMatch::Allowed
        } else {
            self.origins.find(origin.as_bytes())
        };
        let origin_reason = judge(origin.as_bytes(), head.method.is_some(), found);
        let Some(requested) = head.method else {
            return out.decided(self.decide_actual(origin, origin_reason));
        };
        let checked = match origin_reason {
            Some(reason) => Err(Rejection {
                reason,
                culprit: None,
            }),
            None => self.check_preflight(requested, &head, headers),
        };
        match checked {
            Ok(granted) => out.allowed_preflight(self, origin, granted),
            Err(rejection) => out.decided(self.refused_preflight(origin, requested, rejection)),
        }
    }

    /// An allowed preflight's decision, built where it is returned: one value
    /// from start to end, so that it is not copied on the way out.
    #[inline(always)]
    fn allowed_preflight_decision(&self, origin: &HeaderValue, granted: Granted<'_>) -> Decision {
        let mut decision = Decision::new(RequestClass::Preflight, Some(origin.clone()));
        decision.respond = Some(self.preflight_status);
        decision.allow_origin = self.allow_origin();
        decision.allow_credentials = self.credentials;
        decision.vary = Some(self.vary_preflight);
        decision.allow_methods = Some(granted.method.clone());
        decision.allow_headers = granted.headers.map(Cow::into_owned);
        decision.allow_private_network = granted.private_network;
        decision.template = self.preflight_template.clone();
        decision
    }

    /// Checks an origin alone, as for a WebSocket handshake (which browsers never
    /// CORS-check, so the server must).
    pub fn check_origin(&self, origin: &HeaderValue) -> Result<(), RejectionReason> {
        match origin_rejection(self.origins.find(origin.as_bytes())) {
            None => Ok(()),
            Some(reason) => Err(reason),
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

    #[inline(always)]
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
        decision.expose = self.expose.clone();
        decision
    }

    /// The method, private-network and request-header checks of an allowed
    /// origin's preflight; on success, the method and header list to echo.
    #[inline(always)]
    fn check_preflight<'h>(
        &self,
        method: &'h HeaderValue,
        head: &Head<'h>,
        headers: &HeaderMap,
    ) -> Result<Granted<'h>, Rejection> {
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
        let allow_headers = match (head.request_headers, head.more_lines) {
            (None, _) => None,
            (Some(line), false) => {
                too_long(line.len())?;
                match self.check_request_headers(line, MAX_REQUEST_HEADER_NAMES)? {
                    0 => None,
                    _ => Some(Cow::Borrowed(line)),
                }
            }
            (Some(_), true) => {
                let all = headers.get_all(ACCESS_CONTROL_REQUEST_HEADERS);
                // The limits hold for the lines together: one list (RFC 9110 §5.3).
                let mut len = 0usize;
                for line in &all {
                    len = len.saturating_add(line.len() + 1);
                    too_long(len - 1)?;
                }
                let mut names_left = MAX_REQUEST_HEADER_NAMES;
                let mut lines = 0usize;
                let mut single: Option<&HeaderValue> = None;
                for line in &all {
                    let names = self.check_request_headers(line, names_left)?;
                    names_left -= names;
                    if names > 0 {
                        lines += 1;
                        single = Some(line);
                    }
                }
                match lines {
                    0 => None,
                    1 => single.cloned().map(Cow::Owned),
                    _ => join_lines(headers).map(Cow::Owned),
                }
            }
        };
        Ok(Granted {
            method,
            headers: allow_headers,
            private_network: wants_private_network,
        })
    }

    /// The number of names in one `Access-Control-Request-Headers` line, or why
    /// the line is refused.
    fn check_request_headers(&self, line: &HeaderValue, max: usize) -> Result<usize, Rejection> {
        // Listed names, then any other token if `*` is allowed, which never
        // covers Authorization.
        let listed = |name: &[u8], head: u64| self.headers.contains_ignore_case(name, head);
        let other = |name: &[u8]| self.headers.any && !name.eq_ignore_ascii_case(b"authorization");
        // Under `*`, the usual names are allowed whatever they are: read as a
        // run of plain names, sixteen bytes at a time. Otherwise as a run of
        // listed names.
        let run = |value: &[u8], start: usize, most: usize| {
            if self.headers.any {
                fetch::plain_run(value, start, most)
            } else {
                self.headers.listed_run(value, start, most)
            }
        };
        fetch::check_header_list(line.as_bytes(), max, self.headers.any, run, listed, other)
            .map_err(|err| {
                let (reason, lo, hi) = match err {
                    HeaderListError::NotAllowed(lo, hi) => {
                        (RejectionReason::HeaderNotAllowed, lo, hi)
                    }
                    HeaderListError::Malformed(lo, hi) => {
                        (RejectionReason::MalformedRequestHeaders, lo, hi)
                    }
                    HeaderListError::TooMany(lo, hi) => {
                        (RejectionReason::TooManyRequestHeaders, lo, hi)
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
    fn refused_preflight(
        &self,
        origin: &HeaderValue,
        requested: &HeaderValue,
        rejection: Rejection,
    ) -> Decision {
        let mut decision = Decision::new(RequestClass::Preflight, Some(origin.clone()));
        decision.vary = Some(self.vary_preflight);
        let reason = rejection.reason;
        decision.rejection = Some(rejection);
        if !self.debug {
            decision.respond = Some(StatusCode::FORBIDDEN);
            return decision;
        }
        decision.debug_reason = true;
        decision.respond = Some(self.preflight_status);
        if reason.is_about_origin() {
            return decision;
        }
        decision.allow_origin = self.allow_origin();
        decision.allow_credentials = self.credentials;
        match reason {
            RejectionReason::MethodNotAllowed | RejectionReason::MalformedMethod => {
                decision.allow_methods = self.debug_methods.clone();
            }
            _ => {
                // The method passed its check before the rest failed: echoed.
                decision.allow_methods = Some(requested.clone());
                decision.allow_headers = self.debug_headers.clone();
            }
        }
        decision
    }
}

/// What an allowed origin's preflight is granted: the method and header list
/// to echo, and whether Private Network Access is answered.
pub(crate) struct Granted<'h> {
    method: &'h HeaderValue,
    /// The request's line, or its lines joined.
    headers: Option<Cow<'h, HeaderValue>>,
    private_network: bool,
}

/// What becomes of a request's decision: the decision itself, or the answer
/// made here.
pub(crate) trait Outcome {
    type Output;
    /// An allowed preflight, of `origin`, granted what `granted` says.
    fn allowed_preflight(
        self,
        policy: &Policy,
        origin: &HeaderValue,
        granted: Granted<'_>,
    ) -> Self::Output;
    /// Any other request, decided.
    fn decided(self, decision: Decision) -> Self::Output;
}

/// The decision.
struct AsDecision;

impl Outcome for AsDecision {
    type Output = Decision;

    #[inline(always)]
    fn allowed_preflight(
        self,
        policy: &Policy,
        origin: &HeaderValue,
        granted: Granted<'_>,
    ) -> Decision {
        policy.allowed_preflight_decision(origin, granted)
    }

    #[inline(always)]
    fn decided(self, decision: Decision) -> Decision {
        decision
    }
}

/// The answer made here, with this empty body; else the decision.
struct AsAnswer<B>(B);

impl<B> Outcome for AsAnswer<B> {
    type Output = Result<Response<B>, Decision>;

    #[inline(always)]
    fn allowed_preflight(
        self,
        policy: &Policy,
        origin: &HeaderValue,
        granted: Granted<'_>,
    ) -> Self::Output {
        let Some(template) = &policy.preflight_template else {
            return policy
                .allowed_preflight_decision(origin, granted)
                .into_local_response(self.0);
        };
        let status = policy.preflight_status;
        let mut headers = template.answer(
            origin,
            granted.method,
            granted.headers.as_deref(),
            granted.private_network,
        );
        set_length(&mut headers, status);
        let mut response = Response::new(self.0);
        *response.status_mut() = status;
        let fresh = std::mem::replace(response.headers_mut(), headers);
        if fresh.capacity() == 0 {
            // The map of a new response is `HeaderMap::new()`, which allocates
            // nothing (its documentation; a map without capacity has no
            // buffers): nothing to free, and skipping its drop spares about 50
            // instructions of an allowed preflight's 1,900. Any other is dropped.
            std::mem::forget(fresh);
        }
        Ok(response)
    }

    #[inline(always)]
    fn decided(self, decision: Decision) -> Self::Output {
        decision.into_local_response(self.0)
    }
}

/// Refuses an `Access-Control-Request-Headers` of `len` bytes when longer than
/// any page sends, before reading it: its cost stays bounded whatever its length.
fn too_long(len: usize) -> Result<(), Rejection> {
    if len > MAX_REQUEST_HEADERS_LEN {
        return Err(Rejection {
            reason: RejectionReason::TooManyRequestHeaders,
            culprit: None,
        });
    }
    Ok(())
}

/// Why an origin is refused, if it is: the one mapping from what the origin
/// matcher found to a reason, for requests and for [`Policy::check_origin`].
pub(crate) fn origin_rejection(found: OriginMatch) -> Option<RejectionReason> {
    match found {
        OriginMatch::Allowed => None,
        OriginMatch::NotAllowed => Some(RejectionReason::OriginNotAllowed),
        OriginMatch::Null => Some(RejectionReason::NullOrigin),
        OriginMatch::Malformed => Some(RejectionReason::MalformedOrigin),
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
