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
        self.apply(headers);
        if status != StatusCode::NO_CONTENT {
            headers.insert(CONTENT_LENGTH, ZERO);
        }
        Some(response)
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
                    self.origin.as_ref(),
                    self.allow_methods.as_ref(),
                    self.allow_headers.as_ref(),
                    self.allow_private_network,
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
        if let Some(value) = &self.max_age {
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
