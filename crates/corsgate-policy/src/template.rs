//! The response headers of an allowed preflight, built once when a policy is
//! compiled, from the compiled values.
//!
//! An allowed preflight's answer is the same for every request but for three
//! values the request gives (its origin when echoed, its method and its header
//! list). The template holds every other header with its final value, and the
//! three in fixed slots at the front, so that answering a preflight is a clone of
//! one map and three stores: no name is hashed and nothing is decided again.
//!
//! A clone allocates the map's two buffers. Given a map that has room already
//! (the request's own, cleared: [`Decision::into_local_response_reusing`]), the
//! headers are appended to it instead: no allocation, but each name hashed,
//! which costs more instructions than the clone and its allocations together
//! (`bench/RESULTS-engine.md`).
//!
//! [`Decision::into_local_response_reusing`]: crate::Decision::into_local_response_reusing

use std::fmt;

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, VARY,
};
use http::{HeaderMap, HeaderValue};

use crate::decision::ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK;

pub(crate) const TRUE: HeaderValue = HeaderValue::from_static("true");
pub(crate) const STAR: HeaderValue = HeaderValue::from_static("*");
/// `Content-Length: 0`, on the answers made here that are not 204.
pub(crate) const ZERO: HeaderValue = HeaderValue::from_static("0");
/// Stands in the slots the request fills; never sent.
const SLOT: HeaderValue = HeaderValue::from_static("");

/// What a compiled policy says about its allowed preflights' answers.
pub(crate) struct PreflightParts<'a> {
    /// `Access-Control-Allow-Origin: *` rather than the request's origin.
    pub(crate) any_origin: bool,
    pub(crate) credentials: bool,
    pub(crate) max_age: Option<&'a HeaderValue>,
    pub(crate) vary: &'static HeaderValue,
}

/// The ready-made headers of allowed preflights: one map for each combination of
/// (request headers echoed, private network allowed).
pub(crate) struct PreflightTemplate {
    /// Indexed by [`PreflightTemplate::index`].
    maps: [HeaderMap; 4],
    /// Whether slot 0 takes the request's origin (else it holds `*`).
    echo_origin: bool,
    credentials: bool,
    vary: &'static HeaderValue,
    /// `Access-Control-Max-Age`, also for answers not made from the maps.
    max_age: Option<HeaderValue>,
}

impl fmt::Debug for PreflightTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Four maps of what the decision's own fields say: noise in a decision's
        // debug output.
        f.debug_struct("PreflightTemplate").finish_non_exhaustive()
    }
}

impl PreflightTemplate {
    pub(crate) fn new(parts: &PreflightParts<'_>) -> Self {
        let map = |index: usize| {
            let echo_headers = index & 1 != 0;
            let private_network = index & 2 != 0;
            let mut headers = HeaderMap::with_capacity(8);
            // The slots first, in this order: `fill` stores into them by position.
            let origin = if parts.any_origin { STAR } else { SLOT };
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(ACCESS_CONTROL_ALLOW_METHODS, SLOT);
            if echo_headers {
                headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, SLOT);
            }
            if parts.credentials {
                headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
            }
            if let Some(max_age) = parts.max_age {
                headers.insert(ACCESS_CONTROL_MAX_AGE, max_age.clone());
            }
            if private_network {
                headers.insert(ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK, TRUE);
            }
            headers.insert(VARY, parts.vary.clone());
            headers
        };
        PreflightTemplate {
            maps: [map(0), map(1), map(2), map(3)],
            echo_origin: !parts.any_origin,
            credentials: parts.credentials,
            vary: parts.vary,
            max_age: parts.max_age.cloned(),
        }
    }

    /// The policy's `Access-Control-Max-Age`.
    pub(crate) fn max_age(&self) -> Option<&HeaderValue> {
        self.max_age.as_ref()
    }

    /// `headers`, an empty map, becomes the answer to an allowed preflight
    /// that echoes `origin`, `method` and, when given, the request's header
    /// list (moved in: a decision consumed by its answer hands its values over
    /// without cloning), with room for `spare` more headers when it has room
    /// already.
    ///
    /// A map without room takes a clone of the template (two allocations); a
    /// map with room is reserved once and the headers appended (none).
    pub(crate) fn fill(
        &self,
        headers: &mut HeaderMap,
        origin: Option<HeaderValue>,
        method: Option<HeaderValue>,
        request_headers: Option<HeaderValue>,
        private_network: bool,
        spare: usize,
    ) {
        if headers.capacity() > 0 {
            return self.append(
                headers,
                origin,
                method,
                request_headers,
                private_network,
                spare,
            );
        }
        let index = usize::from(request_headers.is_some()) | usize::from(private_network) << 1;
        let Some(map) = self.maps.get(index) else {
            return;
        };
        // Cloning an entry clones a `HeaderName` and a `HeaderValue` built from
        // static or shared bytes: reference counts, no allocation besides the
        // map's own two buffers.
        headers.clone_from(map);
        let mut slots = headers.values_mut();
        let origin_slot = slots.next();
        if let (true, Some(slot), Some(origin)) = (self.echo_origin, origin_slot, origin) {
            *slot = origin;
        }
        if let (Some(slot), Some(method)) = (slots.next(), method) {
            *slot = method;
        }
        if let Some(list) = request_headers {
            if let Some(slot) = slots.next() {
                *slot = list;
            }
        }
    }

    /// The headers of an allowed preflight's answer that echoes `origin`,
    /// `method` and, when given, the request's header list: a clone of the
    /// ready-made map (two allocations, no name hashed), the three values
    /// stored in their slots.
    #[inline(always)]
    pub(crate) fn answer(
        &self,
        origin: &HeaderValue,
        method: &HeaderValue,
        request_headers: Option<&HeaderValue>,
        private_network: bool,
    ) -> HeaderMap {
        let index = usize::from(request_headers.is_some()) | usize::from(private_network) << 1;
        let Some(map) = self.maps.get(index) else {
            return HeaderMap::new();
        };
        let mut headers = map.clone();
        let mut slots = headers.values_mut();
        if let (Some(slot), true) = (slots.next(), self.echo_origin) {
            *slot = origin.clone();
        }
        if let Some(slot) = slots.next() {
            *slot = method.clone();
        }
        if let (Some(slot), Some(list)) = (slots.next(), request_headers) {
            *slot = list.clone();
        }
        headers
    }

    /// [`fill`](Self::fill) into a map that has room: the same headers in the
    /// same order, appended after one reservation for all of them.
    fn append(
        &self,
        headers: &mut HeaderMap,
        origin: Option<HeaderValue>,
        method: Option<HeaderValue>,
        request_headers: Option<HeaderValue>,
        private_network: bool,
        spare: usize,
    ) {
        let count = 3
            + usize::from(request_headers.is_some())
            + usize::from(self.credentials)
            + usize::from(self.max_age.is_some())
            + usize::from(private_network);
        headers.reserve(count + spare);
        match origin {
            Some(origin) if self.echo_origin => {
                headers.append(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            }
            _ if !self.echo_origin => {
                headers.append(ACCESS_CONTROL_ALLOW_ORIGIN, STAR);
            }
            _ => {}
        }
        if let Some(method) = method {
            headers.append(ACCESS_CONTROL_ALLOW_METHODS, method);
        }
        if let Some(list) = request_headers {
            headers.append(ACCESS_CONTROL_ALLOW_HEADERS, list);
        }
        if self.credentials {
            headers.append(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
        }
        if let Some(max_age) = &self.max_age {
            headers.append(ACCESS_CONTROL_MAX_AGE, max_age.clone());
        }
        if private_network {
            headers.append(ACCESS_CONTROL_ALLOW_PRIVATE_NETWORK, TRUE);
        }
        headers.append(VARY, self.vary.clone());
    }
}
