//! Writing a [`Decision`] onto a response: the one place that knows which
//! headers a decision adds, how `Vary` is merged and which upstream headers are
//! removed.

use std::fmt;
use std::sync::Arc;

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, HeaderName,
    VARY,
};
use http::{HeaderMap, HeaderValue};

use crate::classify::RequestClass;
use crate::decision::{ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK, AllowOrigin, Decision, REASON_HEADER};
use crate::policy::Policy;
use crate::vary::append_vary;

const TRUE: HeaderValue = HeaderValue::from_static("true");
const STAR: HeaderValue = HeaderValue::from_static("*");

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

impl Decision {
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
