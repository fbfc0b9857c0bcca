//! Writing a [`Decision`] onto a response: the one place that knows which
//! headers a decision adds, how `Vary` is merged and which upstream headers are
//! removed.

use http::header::CONTENT_LENGTH;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, HeaderName,
    VARY,
};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::decision::{ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK, AllowOrigin, Decision, REASON_HEADER};
use crate::template::{STAR, TRUE, ZERO};
use crate::vary::append_vary;

impl Decision {
    /// The answer made here, without calling the app or the upstream, when
    /// [`response_status`](Self::response_status) is `Some` (every preflight,
    /// and refusals under `on_disallowed = "reject"`); `None` otherwise.
    ///
    /// `empty_body` must be an empty body: the answer has the decision's status,
    /// its CORS headers and, unless the status is 204, `Content-Length: 0`, so
    /// that no client waits for a body (a 204 has none and says nothing of its
    /// length, RFC 9110 §8.6 and §15.3.5).
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
    /// let decision = policy.decide(&Method::OPTIONS, &request);
    ///
    /// let response = decision.local_response(()).expect("a preflight is answered here");
    /// assert_eq!(response.status(), StatusCode::NO_CONTENT);
    /// assert_eq!(response.headers()["access-control-allow-methods"], "PUT");
    /// assert!(response.headers().get("content-length").is_none());
    /// ```
    pub fn local_response<B>(&self, empty_body: B) -> Option<Response<B>> {
        let status = self.respond?;
        let mut response = Response::new(empty_body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        match &self.template {
            Some(template) => template.fill(
                headers,
                self.origin.clone(),
                self.allow_methods.clone(),
                self.allow_headers.clone(),
                self.allow_private_network,
                spare_for(status),
            ),
            None => self.insert_headers(headers, true),
        }
        Some(finish_local(response))
    }

    /// [`local_response`](Self::local_response) for a caller done with the
    /// decision, as a layer is once the answer is made here: the request's values
    /// move into the answer instead of being copied. `Err` gives the decision
    /// back when the app must answer (then [`apply`](Self::apply) it to the app's
    /// response).
    ///
    /// ```
    /// use corsgate_policy::{CorsConfig, Policy};
    /// use http::{HeaderMap, Method};
    ///
    /// let policy = Policy::compile(&CorsConfig::new().allow_origins("https://app.example.com")).unwrap();
    /// let mut request = HeaderMap::new();
    /// request.insert("origin", "https://app.example.com".parse().unwrap());
    /// match policy.decide(&Method::GET, &request).into_local_response(()) {
    ///     Ok(_answered_here) => unreachable!("an allowed GET goes to the app"),
    ///     Err(decision) => assert!(decision.is_allowed()),
    /// }
    /// ```
    // The decision moves back to the caller either way; boxing it to shrink the
    // `Err` would allocate on every request the app answers.
    #[allow(clippy::result_large_err)]
    // Inlined so that the decision is not copied to be passed by value.
    #[inline(always)]
    pub fn into_local_response<B>(mut self, empty_body: B) -> Result<Response<B>, Decision> {
        let Some(status) = self.respond else {
            return Err(self);
        };
        let mut response = Response::new(empty_body);
        *response.status_mut() = status;
        match self.template.take() {
            Some(template) => template.fill(
                response.headers_mut(),
                self.origin.take(),
                self.allow_methods.take(),
                self.allow_headers.take(),
                self.allow_private_network,
                0,
            ),
            None => self.insert_headers(response.headers_mut(), true),
        }
        Ok(finish_local(response))
    }

    /// [`into_local_response`](Self::into_local_response), with the answer's
    /// headers written into `spent`, a map the caller has no more use for once
    /// the answer is made here: the request's own. Its buffers are reused, so
    /// that an answer that fits in them (a preflight's six headers in the map of
    /// a request that had as many) allocates nothing; a new map would allocate
    /// two buffers.
    ///
    /// On `Ok`, `spent` is left empty: every header it held is removed before
    /// the answer's are written, so nothing of the request is sent back. On
    /// `Err` (the app must answer), `spent` is untouched.
    ///
    /// ```
    /// use corsgate_policy::{CorsConfig, Policy};
    /// use http::{Method, Request};
    ///
    /// let policy = Policy::compile(
    ///     &CorsConfig::new().allow_origins("https://app.example.com").allow_methods("PUT"),
    /// ).unwrap();
    /// let mut request = Request::options("/items/1")
    ///     .header("origin", "https://app.example.com")
    ///     .header("access-control-request-method", "PUT")
    ///     .header("cookie", "session=secret")
    ///     .body(())
    ///     .unwrap();
    /// let decision = policy.decide(request.method(), request.headers());
    /// let response = decision
    ///     .into_local_response_reusing(request.headers_mut(), ())
    ///     .expect("a preflight is answered here");
    /// assert_eq!(response.headers()["access-control-allow-methods"], "PUT");
    /// assert!(response.headers().get("cookie").is_none());
    /// assert!(request.headers().is_empty());
    /// ```
    #[allow(clippy::result_large_err)]
    pub fn into_local_response_reusing<B>(
        mut self,
        spent: &mut HeaderMap,
        empty_body: B,
    ) -> Result<Response<B>, Decision> {
        let Some(status) = self.respond else {
            return Err(self);
        };
        let mut response = Response::new(empty_body);
        *response.status_mut() = status;
        let headers = response.headers_mut();
        std::mem::swap(headers, spent);
        // `clear` keeps the buffers and drops every entry, and with them every
        // value of the request; the decision holds its own references to those
        // it echoes.
        headers.clear();
        match self.template.take() {
            Some(template) => template.fill(
                headers,
                self.origin.take(),
                self.allow_methods.take(),
                self.allow_headers.take(),
                self.allow_private_network,
                spare_for(status),
            ),
            None => self.insert_headers(headers, true),
        }
        Ok(finish_local(response))
    }

    /// Writes the decision into a response's headers: removes every
    /// `Access-Control-*` header already there (the app's or an upstream's: this
    /// decision is the one authority), adds the CORS headers, and appends `Origin`
    /// (and for preflights the request headers) to `Vary` unless already listed.
    ///
    /// An `x-corsgate-reason` header already there is removed too: only this
    /// decision says why a request was refused, so an app's or an upstream's own
    /// header of that name cannot pass for it.
    ///
    /// An empty map (a response made here) has nothing to remove or merge, so the
    /// headers are only inserted. For a response made here in place of the app,
    /// [`local_response`](Self::local_response) also sets its status and length.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let fresh = headers.is_empty();
        if fresh {
            if let Some(template) = &self.template {
                return template.fill(
                    headers,
                    self.origin.clone(),
                    self.allow_methods.clone(),
                    self.allow_headers.clone(),
                    self.allow_private_network,
                    0,
                );
            }
        }
        self.insert_headers(headers, fresh);
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
                cors_present |= is_access_control_header(name) || name == REASON_HEADER;
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
        if let Some(value) = self.template.as_ref().and_then(|t| t.max_age()) {
            headers.insert(ACCESS_CONTROL_MAX_AGE, value.clone());
        }
        if let Some(value) = &self.expose {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, value.clone());
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

    /// Whether `other` answers the same request the same way: the same CORS
    /// headers written (values included), and the same status for an answer
    /// made here. Compares the decisions' fields, building no header map: a
    /// gateway can decide a request under two policies and compare them on
    /// every request.
    ///
    /// ```
    /// use corsgate_policy::{CorsConfig, Policy};
    /// use http::{HeaderMap, Method};
    ///
    /// let one = Policy::compile(&CorsConfig::new().allow_origins("https://app.example.com")).unwrap();
    /// let same = Policy::compile(&CorsConfig::new().allow_origins("https://app.example.com")).unwrap();
    /// let any = Policy::compile(&CorsConfig::new().allow_origins("*")).unwrap();
    /// let mut request = HeaderMap::new();
    /// request.insert("origin", "https://app.example.com".parse().unwrap());
    /// let decision = one.decide(&Method::GET, &request);
    /// assert!(decision.answers_like(&same.decide(&Method::GET, &request)));
    /// // `*` instead of the origin echoed: another header value.
    /// assert!(!decision.answers_like(&any.decide(&Method::GET, &request)));
    /// ```
    pub fn answers_like(&self, other: &Decision) -> bool {
        fn origin(d: &Decision) -> (AllowOrigin, Option<&HeaderValue>) {
            match d.allow_origin {
                AllowOrigin::Echo => (d.allow_origin, d.origin.as_ref()),
                kind => (kind, None),
            }
        }
        fn reason(d: &Decision) -> Option<crate::RejectionReason> {
            d.debug_reason
                .then(|| d.rejection.as_ref().map(|r| r.reason))
                .flatten()
        }
        fn max_age(d: &Decision) -> Option<&HeaderValue> {
            d.template.as_ref().and_then(|t| t.max_age())
        }
        self.respond == other.respond
            && origin(self) == origin(other)
            && self.allow_credentials == other.allow_credentials
            && self.allow_methods == other.allow_methods
            && self.allow_headers == other.allow_headers
            && max_age(self) == max_age(other)
            && self.expose == other.expose
            && self.allow_private_network == other.allow_private_network
            && reason(self) == reason(other)
            && self.vary == other.vary
    }
}

/// The headers an answer made here has besides the CORS ones: `Content-Length`
/// unless it is a 204 (see [`finish_local`]).
fn spare_for(status: StatusCode) -> usize {
    usize::from(status != StatusCode::NO_CONTENT)
}

/// The length of an answer made here: none said on a 204, which has no content
/// (RFC 9110 §8.6), `0` on any other status so that no client waits for a body.
fn finish_local<B>(mut response: Response<B>) -> Response<B> {
    let status = response.status();
    set_length(response.headers_mut(), status);
    response
}

/// [`finish_local`] on the headers alone, before they are in a response.
pub(crate) fn set_length(headers: &mut HeaderMap, status: StatusCode) {
    if status != StatusCode::NO_CONTENT {
        headers.insert(CONTENT_LENGTH, ZERO);
    }
}

/// Whether a header name is one of the CORS response or request headers.
pub fn is_access_control_header(name: &HeaderName) -> bool {
    name.as_str().starts_with("access-control-")
}

fn strip_access_control(headers: &mut HeaderMap) {
    // One name at a time, without collecting them first: upstreams that send
    // their own CORS headers are rare, and this allocates nothing for them.
    while let Some(name) = headers
        .keys()
        .find(|n| is_access_control_header(n) || *n == REASON_HEADER)
        .cloned()
    {
        headers.remove(name);
    }
}
