//! Client-scoped routes (a `cors` table with `clients`): which registered
//! OAuth2 client a request names, and the decision made with that client's
//! origins.
//!
//! The client id is taken as the request asserts it, without checking a secret
//! or a signature: the gateway has no secrets. That is enough for CORS on
//! routes whose upstream authorizes each request by the very credential that
//! names the client (a token endpoint by the client's code or secret, userinfo
//! by the access token): a page that names another client only gets to read
//! the upstream's refusal. `docs/registry.md` says why, and where it is not
//! enough (cookies).

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use corsgate_policy::{
    ClientIdentity, ClientRules, Decision, IdentifySource, Policy, RequestClass, UnidentifiedRule,
    classify,
};
use corsgate_registry::identify::{self, FormClientId};
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, ORIGIN};
use http::{HeaderMap, Method, Request};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::Shared;
use crate::observe::metrics::{ClientVia, RouteStats};

/// Longest wait for a form body to identify its client: a client that stalls
/// is not identified, and its body is forwarded as it comes.
const READ_AHEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// The frames of a request body read to identify its client: forwarded first,
/// byte for byte, before the rest of the body. Kept in the request's
/// extensions between the decision and the forwarding.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReadAhead {
    data: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    len: u64,
}

impl ReadAhead {
    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty() && self.trailers.is_none()
    }

    /// The next frame to forward.
    pub(crate) fn next(&mut self) -> Option<Frame<Bytes>> {
        if let Some(data) = self.data.pop_front() {
            return Some(Frame::data(data));
        }
        self.trailers.take().map(Frame::trailers)
    }

    /// A body's size hint with these bytes in front of it.
    pub(crate) fn add_to(&self, hint: SizeHint) -> SizeHint {
        let mut out = SizeHint::new();
        out.set_lower(hint.lower().saturating_add(self.len));
        if let Some(upper) = hint.upper() {
            out.set_upper(upper.saturating_add(self.len));
        }
        out
    }
}

/// Who a request named, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Named {
    pub(crate) id: String,
    pub(crate) via: IdentifySource,
}

/// Decides on a request of a client-scoped route, with the registry (`None`
/// on any other route). May read ahead (at most `body_limit` bytes) of a form
/// body; what it read waits in the request's extensions as a [`ReadAhead`].
/// Each decision is counted by what decided it (`stats`).
pub(crate) async fn decide(
    shared: &Shared,
    policy: &Policy,
    max_body_bytes: Option<u64>,
    request: &mut Request<Incoming>,
    stats: &RouteStats,
) -> Option<Decision> {
    let (Some(rules), Some(registry)) = (policy.clients(), shared.registry.as_ref()) else {
        return None;
    };
    let class = classify(request.method(), request.headers());
    if class != RequestClass::Actual {
        // Preflights carry no client identity (no body, no credentials: Fetch
        // §4.8): the union of registered origins decides.
        let snapshot = registry.snapshot();
        let decision = policy.decide_for_client(
            request.method(),
            request.headers(),
            snapshot.registered(),
            ClientIdentity::Unidentified,
        );
        stats.count_client(ClientVia::Union, decision.rejection().is_none());
        return Some(decision);
    }
    // The static list first: its origins need no identification, and their
    // bodies are never held back.
    if let Some(origin) = request.headers().get(ORIGIN) {
        if policy.allows_origin(origin) {
            let decision = policy.decide(request.method(), request.headers());
            stats.count_client(ClientVia::Static, decision.rejection().is_none());
            return Some(decision);
        }
    }
    let named = identify(rules, max_body_bytes, request).await;
    let snapshot = registry.snapshot();
    let identity = match &named {
        None => ClientIdentity::Unidentified,
        Some(named) => match snapshot.client(&named.id) {
            Some(client) => ClientIdentity::Client(client.origins()),
            None => ClientIdentity::Unknown,
        },
    };
    let decision = policy.decide_for_client(
        request.method(),
        request.headers(),
        snapshot.registered(),
        identity,
    );
    let via = match &named {
        Some(named) => ClientVia::Named(named.via),
        None if rules.unidentified() == UnidentifiedRule::Registered => ClientVia::Union,
        None => ClientVia::None,
    };
    stats.count_client(via, decision.rejection().is_none());
    if let Some(rejection) = decision.rejection() {
        // The client id goes to logs only, never to a metric label.
        tracing::info!(
            client = named.as_ref().map_or("", |n| n.id.as_str()),
            via = named.as_ref().map_or("none", |n| n.via.as_str()),
            reason = rejection.reason().as_str(),
            "request refused for its client"
        );
    }
    Some(decision)
}

/// The first source of `rules` present in the request.
async fn identify(
    rules: &ClientRules,
    max_body_bytes: Option<u64>,
    request: &mut Request<Incoming>,
) -> Option<Named> {
    for source in rules.identify() {
        let id = match source {
            IdentifySource::Basic => basic_user(request.headers()),
            IdentifySource::BearerJwt => jwt_client(request.headers(), rules.jwt_claims()),
            IdentifySource::Form => {
                let limit = rules.body_limit().min(max_body_bytes.unwrap_or(u64::MAX));
                form_client_id(request, limit).await
            }
            _ => None,
        };
        if let Some(id) = id {
            return Some(Named { id, via: *source });
        }
    }
    None
}

/// The user of `Authorization: Basic`, percent-decoded as RFC 6749 §2.3.1
/// asks clients to encode it.
pub(crate) fn basic_user(headers: &HeaderMap) -> Option<String> {
    identify::basic_user(headers.get(AUTHORIZATION)?.as_bytes())
}

/// The client claim of a bearer JWT's payload. The signature is not checked:
/// see the module's documentation.
pub(crate) fn jwt_client(headers: &HeaderMap, claims: &[String]) -> Option<String> {
    identify::jwt_client(headers.get(AUTHORIZATION)?.as_bytes(), claims)
}

/// Whether a request is a form POST (`application/x-www-form-urlencoded`,
/// parameters allowed).
fn is_form_post(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::POST
        && headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(identify::is_form_media_type)
}

/// `client_id` of a form body of at most `limit` bytes: read ahead, kept in
/// the request's extensions to be forwarded first. A body larger than the
/// limit, one that stalls, or one with `client_id` twice names no client.
async fn form_client_id(request: &mut Request<Incoming>, limit: u64) -> Option<String> {
    if !is_form_post(request.method(), request.headers()) {
        return None;
    }
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        // Not worth reading: forwarded as it comes, unidentified.
        return None;
    }
    let mut read = ReadAhead::default();
    let mut complete = false;
    let deadline = tokio::time::Instant::now() + READ_AHEAD_TIMEOUT;
    while read.len <= limit && read.trailers.is_none() {
        let frame = match tokio::time::timeout_at(deadline, request.body_mut().frame()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(None) => {
                complete = true;
                break;
            }
            // A client error or a stall: forward what came; the body's own
            // checks deal with the rest.
            Ok(Some(Err(_))) | Err(_) => break,
        };
        match frame.into_data() {
            Ok(data) => {
                read.len += data.len() as u64;
                read.data.push_back(data);
            }
            Err(frame) => read.trailers = frame.into_trailers().ok(),
        }
    }
    complete |= read.trailers.is_some() || request.body().is_end_stream();
    let whole = (complete && read.len <= limit).then(|| {
        let mut whole = BytesMut::with_capacity(usize::try_from(read.len).unwrap_or(0));
        for chunk in &read.data {
            whole.extend_from_slice(chunk);
        }
        whole.freeze()
    });
    if !read.is_empty() {
        request.extensions_mut().insert(read);
    }
    match identify::form_client_id(&whole?) {
        FormClientId::Found(id) => Some(id),
        _ => None,
    }
}
