//! Shadow configuration: a candidate configuration that decides every CORS
//! request beside the live one, is never enforced, and reports where the two
//! would answer differently.
//!
//! Only the candidate's routes and CORS policies are evaluated; its listeners,
//! upstreams, limits and everything else of `[server]` have no effect (the
//! request is forwarded once, by the live configuration). Keys that differ
//! from the live file's and so go untested are warned about at load.
//!
//! Cost on the request path: one atomic load when no candidate runs; with one,
//! the candidate's route lookup and decision (no response is built) and a
//! relaxed counter. Only a divergence takes a lock, to count it and keep a
//! sample of it in a ring of [`RECENT`] entries.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use corsgate_config::{self as config, GatewayConfig, Located, Route};
use corsgate_policy::{
    ClientIdentity, Decision, Diagnostic, DiagnosticKind, IdentifySource, Policy, RequestClass,
    classify,
};
use http::header::{CONTENT_TYPE, HOST, ORIGIN};
use http::{HeaderValue, Request, Response, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::Shared;
use crate::observe::access_log::capped;
use crate::request::body::ResponseBody;
use crate::request::proxy::RequestCtx;

/// Divergences kept as samples for `GET /shadow`, the most recent ones.
pub(crate) const RECENT: usize = 256;

/// Quiet time after a file event, and between the two reads of the file: as
/// for the live configuration (reload.rs).
const DEBOUNCE: Duration = Duration::from_millis(200);

/// How the candidate would answer a request differently. One kind per
/// request, the first that holds in this order: a change of verdict matters
/// more than a change of headers, which matters more than another route
/// answering the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The live configuration does not refuse it; the candidate would.
    AllowedToRefused,
    /// The live configuration refuses it; the candidate would not.
    RefusedToAllowed,
    /// Same verdict, other CORS headers (or another status for an answer
    /// the gateway makes itself: `on_disallowed`, `preflight_status`).
    Headers,
    /// Same answer, from another route (host and path).
    Route,
}

impl Kind {
    const ALL: [Kind; 4] = [
        Kind::AllowedToRefused,
        Kind::RefusedToAllowed,
        Kind::Headers,
        Kind::Route,
    ];

    fn index(self) -> usize {
        match self {
            Kind::AllowedToRefused => 0,
            Kind::RefusedToAllowed => 1,
            Kind::Headers => 2,
            Kind::Route => 3,
        }
    }

    /// The `kind` label and field.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::AllowedToRefused => "allowed-to-refused",
            Kind::RefusedToAllowed => "refused-to-allowed",
            Kind::Headers => "headers",
            Kind::Route => "route",
        }
    }
}

/// A compiled candidate, as requests see it.
pub(crate) struct Candidate {
    gateway: GatewayConfig,
    path: PathBuf,
    loaded_at: SystemTime,
    generation: u64,
}

/// What a reload of the candidate needs; locked by reloads only.
#[derive(Default)]
struct Source {
    /// The candidate file: `--shadow`, else the live file's `shadow_config`.
    path: Option<PathBuf>,
    /// The text of the candidate running.
    text: Option<String>,
    /// Watches the candidate's folder; replaced when the path changes.
    watcher: Option<notify::RecommendedWatcher>,
}

/// Divergences counted per live route and kind, and the recent samples.
#[derive(Default)]
struct Divergences {
    /// Since start, for `corsgate_shadow_divergence_total`.
    total: HashMap<String, [u64; 4]>,
    /// Since the current candidate was loaded, for `GET /shadow`.
    current: HashMap<String, [u64; 4]>,
    /// Newest last; at most [`RECENT`].
    recent: VecDeque<Recent>,
    /// The generation `current` and `recent` belong to.
    generation: u64,
}

/// The shadow state of a gateway.
#[derive(Default)]
pub(crate) struct Shadow {
    current: ArcSwapOption<Candidate>,
    source: Mutex<Source>,
    /// The candidate file asked for, for the admin listener: kept apart from
    /// `source`, which a reload holds through its debounce and compile.
    asked: Mutex<Option<PathBuf>>,
    divergences: Mutex<Divergences>,
    /// Requests the candidate decided, since start.
    evaluated: AtomicU64,
    /// Requests the current candidate decided (reset at each load).
    evaluated_current: AtomicU64,
    reload_success: AtomicU64,
    reload_failure: AtomicU64,
    generation: AtomicU64,
}

/// Decides the request with the candidate, if one runs, and records how its
/// answer would differ from the live one's (`ctx.decision`, already made).
/// `target_ok`: the request target was canonical enough to route by; if not,
/// both configurations decide with their default policy.
pub(crate) fn evaluate<B>(ctx: &RequestCtx<'_>, request: &Request<B>, target_ok: bool) {
    let shadow = &ctx.conn.shared.shadow;
    let guard = shadow.current.load();
    let Some(candidate) = guard.as_deref() else {
        return;
    };
    // A request without Origin is no CORS request: both configurations let it
    // through with nothing to decide (Fetch §3.2.5), whichever route.
    if ctx.decision.class() == RequestClass::NotCors {
        return;
    }
    shadow.evaluated.fetch_add(1, Relaxed);
    shadow.evaluated_current.fetch_add(1, Relaxed);
    let table = &candidate.gateway.routes;
    let matched = if target_ok {
        // The request was rewritten to its canonical target by the live
        // resolution: its path, and one canonical Host.
        let host = request
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(config::canonical::canonical_authority);
        let host = host.as_ref().map(|a| a.host.as_ref());
        table.resolve(host, request.uri().path())
    } else {
        table.unmatched()
    };
    let decision = match matched.policy {
        Some(policy) if policy.clients().is_some() => {
            decide_for_clients(&ctx.conn.shared, policy, request)
        }
        Some(policy) => policy.decide(request.method(), request.headers()),
        None => Decision::pass(ctx.decision.class()),
    };
    let live_refused = ctx.decision.rejection().is_some();
    let refused = decision.rejection().is_some();
    let same_route = route_key(ctx.route) == route_key(matched.route);
    let kind = if !live_refused && refused {
        Kind::AllowedToRefused
    } else if live_refused && !refused {
        Kind::RefusedToAllowed
    } else if !ctx.decision.answers_like(&decision) {
        Kind::Headers
    } else if !same_route {
        Kind::Route
    } else {
        return;
    };
    let sample = Sample {
        kind,
        live: Side {
            route: ctx.route,
            decision: &ctx.decision,
            off: ctx.policy.is_none(),
        },
        candidate: Side {
            route: matched.route,
            decision: &decision,
            off: matched.policy.is_none(),
        },
    };
    shadow.record(ctx.stats.name(), candidate.generation, kind, || {
        sample.sample(request, &ctx.request_id)
    });
}

/// A route as the shadow compares it: by host and path, which name the same
/// route in both files whatever its place in each.
fn route_key(route: Option<&Route>) -> Option<(Option<&str>, &str)> {
    route.map(|r| (r.host.as_deref(), r.path.as_str()))
}

/// The decision of a candidate's client-scoped route, with the live
/// registry, from what the request's head says: preflights by the union of
/// registered origins, actual requests by the client a `Basic` user or a
/// bearer JWT names. A client named only in a form body is not read again
/// (the body goes upstream once): such a request is decided as unidentified.
fn decide_for_clients<B>(shared: &Shared, policy: &Policy, request: &Request<B>) -> Decision {
    let (Some(rules), Some(registry)) = (policy.clients(), shared.registry.as_ref()) else {
        return policy.decide(request.method(), request.headers());
    };
    let (method, headers) = (request.method(), request.headers());
    let snapshot = registry.snapshot();
    if classify(method, headers) != RequestClass::Actual {
        return policy.decide_for_client(
            method,
            headers,
            snapshot.registered(),
            ClientIdentity::Unidentified,
        );
    }
    if headers.get(ORIGIN).is_some_and(|o| policy.allows_origin(o)) {
        return policy.decide(method, headers);
    }
    let named = rules.identify().iter().find_map(|source| match source {
        IdentifySource::Basic => crate::request::identify::basic_user(headers),
        IdentifySource::BearerJwt => {
            crate::request::identify::jwt_client(headers, rules.jwt_claims())
        }
        _ => None,
    });
    let identity = match &named {
        None => ClientIdentity::Unidentified,
        Some(id) => match snapshot.client(id) {
            Some(client) => ClientIdentity::Client(client.origins()),
            None => ClientIdentity::Unknown,
        },
    };
    policy.decide_for_client(method, headers, snapshot.registered(), identity)
}

/// One configuration's side of a divergence.
struct Side<'a> {
    route: Option<&'a Route>,
    decision: &'a Decision,
    off: bool,
}

impl Side<'_> {
    fn sample(&self) -> SideSample {
        let rejection = self.decision.rejection();
        let decision = if self.off {
            "off"
        } else if rejection.is_some() {
            "rejected"
        } else if self.decision.is_allowed() {
            "allowed"
        } else {
            "pass"
        };
        let mut headers = BTreeMap::new();
        if !self.off {
            for (name, value) in &self.decision.headers() {
                let value = String::from_utf8_lossy(value.as_bytes());
                headers.insert(name.as_str().to_owned(), capped(&value).into_owned());
            }
        }
        SideSample {
            route: self.route.map(|r| r.name.clone()),
            allowed: rejection.is_none(),
            decision,
            reason: rejection.map(|r| r.reason().as_str()),
            detail: rejection.map(|r| capped(&r.to_string()).into_owned()),
            headers,
        }
    }
}

/// A divergence, turned into its sample only when it is kept.
struct Sample<'a> {
    kind: Kind,
    live: Side<'a>,
    candidate: Side<'a>,
}

impl Sample<'_> {
    fn sample<B>(&self, request: &Request<B>, request_id: &HeaderValue) -> Recent {
        let lossy =
            |value: &HeaderValue| capped(&String::from_utf8_lossy(value.as_bytes())).into_owned();
        Recent {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            origin: request.headers().get(ORIGIN).map(lossy).unwrap_or_default(),
            method: capped(request.method().as_str()).into_owned(),
            path: capped(request.uri().path()).into_owned(),
            request_id: lossy(request_id),
            class: self.live.decision.class().as_str(),
            kind: self.kind.as_str(),
            live: self.live.sample(),
            candidate: self.candidate.sample(),
        }
    }
}

/// One entry of `recent` in `GET /shadow` (fields in documented order).
#[derive(Debug, Clone, Serialize)]
struct Recent {
    time: String,
    origin: String,
    method: String,
    path: String,
    request_id: String,
    class: &'static str,
    kind: &'static str,
    live: SideSample,
    candidate: SideSample,
}

/// One configuration's answer in a [`Recent`] entry.
#[derive(Debug, Clone, Serialize)]
struct SideSample {
    route: Option<String>,
    /// Not refused: allowed, or off (the upstream's own headers decide).
    allowed: bool,
    decision: &'static str,
    reason: Option<&'static str>,
    detail: Option<String>,
    headers: BTreeMap<String, String>,
}

/// `GET /shadow`.
#[derive(Serialize)]
struct Document<'a> {
    candidate: CandidateDoc,
    requests: u64,
    counts: Vec<Count<'a>>,
    recent: Vec<&'a Recent>,
}

#[derive(Serialize)]
struct CandidateDoc {
    path: String,
    loaded_at: Option<String>,
    generation: u64,
}

#[derive(Serialize)]
struct Count<'a> {
    route: &'a str,
    kind: &'static str,
    count: u64,
}

impl Shadow {
    /// Counts a divergence on the live route `route` and keeps its sample.
    fn record(&self, route: &str, generation: u64, kind: Kind, sample: impl FnOnce() -> Recent) {
        // Built before the lock: the lock is held for the counts and the push.
        let sample = sample();
        let mut divergences = self
            .divergences
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let slot = kind.index();
        bump(&mut divergences.total, route, slot);
        // A request decided by a candidate that a reload has since replaced
        // counts in the totals only.
        if divergences.generation == generation {
            bump(&mut divergences.current, route, slot);
            if divergences.recent.len() == RECENT {
                divergences.recent.pop_front();
            }
            divergences.recent.push_back(sample);
        }
    }

    /// Whether a shadow configuration is asked for (loaded or not).
    fn configured(&self) -> Option<PathBuf> {
        self.asked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn bump(counts: &mut HashMap<String, [u64; 4]>, route: &str, slot: usize) {
    if let Some(row) = counts.get_mut(route) {
        row[slot] += 1;
    } else {
        let mut row = [0; 4];
        row[slot] = 1;
        counts.insert(route.to_owned(), row);
    }
}

/// The candidate file the gateway should run: `--shadow`, else the live
/// file's `shadow_config`, relative to the live file's folder.
fn wanted_path(shared: &Shared) -> Option<PathBuf> {
    if let Some(path) = &shared.options.shadow_path {
        return Some(path.clone());
    }
    let written = shared
        .snapshot
        .load()
        .gateway
        .settings
        .shadow_config
        .clone()?;
    if written.is_absolute() {
        return Some(written);
    }
    let base = shared
        .config_path
        .as_deref()
        .and_then(Path::parent)
        .filter(|dir| !dir.as_os_str().is_empty());
    Some(match base {
        Some(dir) => dir.join(written),
        None => written,
    })
}

/// At start: loads the candidate, if one is asked for. A candidate that does
/// not load leaves the gateway serving without a shadow, with every problem
/// logged at `error`: a file that is only ever evaluated must not keep the
/// live configuration from serving (a restart of the host with a stale
/// `shadow_config` would otherwise take the gateway down). It is loaded once
/// fixed, on its next change or `SIGHUP`.
pub(crate) fn start(shared: &Arc<Shared>) {
    after_live_reload(shared, true);
}

/// After the live configuration was (re)loaded: follows a change of
/// `shadow_config`, and with `reread` (start, `SIGHUP`) reads the candidate
/// again.
pub(crate) fn after_live_reload(shared: &Arc<Shared>, reread: bool) {
    let wanted = wanted_path(shared);
    let mut source = shared
        .shadow
        .source
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if wanted != source.path {
        if let Some(old) = &source.path {
            tracing::info!(file = %old.display(), "shadow configuration no longer asked for: its evaluation stops");
        }
        source.path = wanted.clone();
        *shared
            .shadow
            .asked
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = wanted.clone();
        source.text = None;
        source.watcher = None;
        shared.shadow.current.store(None);
        let Some(path) = wanted else { return };
        load(shared, &mut source, &path, false);
        if shared.options.watch {
            source.watcher = super::reload::watch_file(&path, shared.clone(), file_changed);
        }
    } else if let (true, Some(path)) = (reread, wanted) {
        load(shared, &mut source, &path, false);
    }
}

/// A file event on the candidate.
fn file_changed(shared: &Arc<Shared>) {
    let mut source = shared
        .shadow
        .source
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(path) = source.path.clone() {
        load(shared, &mut source, &path, true);
    }
}

/// Reads, checks and swaps in the candidate at `path`. A candidate with
/// errors (or unreadable) keeps the previous one running.
fn load(shared: &Shared, source: &mut Source, path: &Path, only_if_changed: bool) {
    let shadow = &shared.shadow;
    let name = path.display().to_string();
    let fail = || {
        shadow.reload_failure.fetch_add(1, Relaxed);
    };
    let kept = if shadow.current.load().is_some() {
        "the previous candidate keeps being evaluated"
    } else {
        "no shadow configuration is evaluated"
    };
    let read = || std::fs::read_to_string(path);
    let text = match read() {
        Ok(text) => text,
        Err(err) => {
            tracing::error!(file = %name, error = %err, "shadow configuration not loaded: cannot read it; {kept}");
            fail();
            return;
        }
    };
    if source.text.as_deref() == Some(text.as_str()) {
        tracing::info!(file = %name, "shadow configuration unchanged: the file equals the candidate running");
        if !only_if_changed {
            shadow.reload_success.fetch_add(1, Relaxed);
        }
        return;
    }
    if only_if_changed {
        std::thread::sleep(DEBOUNCE);
        match read() {
            Ok(again) if again == text => {}
            Ok(_) => {
                tracing::info!(file = %name, "the shadow configuration is still being written; it is loaded once the writing ends");
                return;
            }
            Err(err) => {
                tracing::error!(file = %name, error = %err, "shadow configuration not loaded: cannot read it; {kept}");
                fail();
                return;
            }
        }
    }
    let checked = config::check(&text);
    let Some(gateway) = checked.gateway else {
        for problem in &checked.problems {
            if problem.diagnostic.is_error() {
                tracing::error!("{name}:{problem}");
            } else {
                tracing::warn!("{name}:{problem}");
            }
        }
        let errors = checked.summary().errors;
        tracing::error!(file = %name, errors, "shadow configuration not loaded: it has errors; {kept}");
        fail();
        return;
    };
    for problem in &gateway.warnings {
        tracing::warn!("{name}:{problem}");
    }
    let live = shared.snapshot.load();
    let ignored = without_effect(&text, &gateway, &live.gateway);
    for problem in &ignored {
        tracing::warn!("{name}:{problem}");
    }
    let generation = shadow.generation.fetch_add(1, Relaxed) + 1;
    let routes = gateway.routes.len();
    {
        let mut divergences = shadow
            .divergences
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        divergences.generation = generation;
        divergences.current.clear();
        divergences.recent.clear();
        shadow.evaluated_current.store(0, Relaxed);
    }
    shadow.current.store(Some(Arc::new(Candidate {
        gateway,
        path: path.to_owned(),
        loaded_at: SystemTime::now(),
        generation,
    })));
    source.text = Some(text);
    shadow.reload_success.fetch_add(1, Relaxed);
    tracing::info!(
        file = %name,
        routes,
        generation,
        ignored = ignored.len(),
        "shadow configuration loaded: every CORS request is also decided by it, never enforced"
    );
}

/// `[server]` keys of a candidate that are evaluated: the default policy and
/// how route paths compare.
const EVALUATED_SERVER_KEYS: &[&str] = &["cors", "path_case"];

/// Warnings for what the candidate writes differently from the live
/// configuration and that a shadow cannot evaluate: `[server]` keys besides
/// its CORS policy and `path_case`, `[registry]`, and the `upstream` and
/// `strip_prefix` of a route the live file has too. A key equal to the live
/// one is not warned about, so a copy of the live file with a policy changed
/// loads without noise.
fn without_effect(text: &str, candidate: &GatewayConfig, live: &GatewayConfig) -> Vec<Located> {
    let parsed = config::load::parse(text);
    let Some(model) = &parsed.config else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut warn = |path: String, message: String| {
        out.push(
            parsed
                .source
                .locate(Diagnostic::warning(DiagnosticKind::File, path, message)),
        );
    };
    fn json(value: &impl serde::Serialize) -> Value {
        serde_json::to_value(value).unwrap_or(Value::Null)
    }
    let written = model.server.as_ref().map(json).unwrap_or(Value::Null);
    let ours = candidate
        .effective
        .server
        .as_ref()
        .map(json)
        .unwrap_or(Value::Null);
    let theirs = live
        .effective
        .server
        .as_ref()
        .map(json)
        .unwrap_or(Value::Null);
    if let Value::Object(keys) = &written {
        for key in keys.keys() {
            if EVALUATED_SERVER_KEYS.contains(&key.as_str()) {
                continue;
            }
            if key == "shadow_config" {
                warn(
                    format!("server.{key}"),
                    "has no effect in a shadow configuration: a candidate has no shadow of its own (it takes effect once this file is promoted to live)".to_owned(),
                );
                continue;
            }
            if ours.get(key) != theirs.get(key) {
                warn(
                    format!("server.{key}"),
                    format!(
                        "differs from the live configuration's, and has no effect in a shadow configuration: only routes and CORS policies are evaluated, so this change is not tested; the live {key} applies"
                    ),
                );
            }
        }
    }
    if model.registry.is_some()
        && json(&candidate.effective.registry) != json(&live.effective.registry)
    {
        warn(
            "registry".to_owned(),
            "differs from the live configuration's, and has no effect in a shadow configuration: client-scoped routes of the candidate are decided with the live registry".to_owned(),
        );
    }
    for route in &candidate.routes {
        let Some(twin) = live
            .routes
            .iter()
            .find(|r| route_key(Some(r)) == route_key(Some(route)))
        else {
            continue;
        };
        let at = format!("route[{}]", route.index);
        if twin.upstream != route.upstream {
            warn(
                format!("{at}.upstream"),
                "differs from the live route's, and has no effect in a shadow configuration: requests go to the live route's upstream, once".to_owned(),
            );
        }
        if twin.strip_prefix != route.strip_prefix {
            warn(
                format!("{at}.strip_prefix"),
                "differs from the live route's, and has no effect in a shadow configuration: requests are forwarded as the live route says".to_owned(),
            );
        }
    }
    out.sort_by_key(|l| (l.line, l.column));
    out
}

/// The shadow metrics, appended to `/metrics`; empty without a shadow.
pub(crate) fn metrics(shared: &Shared) -> String {
    use std::fmt::Write as _;
    let shadow = &shared.shadow;
    if shadow.configured().is_none() && shadow.generation.load(Relaxed) == 0 {
        return String::new();
    }
    let totals = shadow
        .divergences
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .total
        .clone();
    // Every live route (and `unmatched`) with every kind, from the start at 0.
    let mut routes: Vec<String> = shared
        .snapshot
        .load()
        .gateway
        .routes
        .iter()
        .map(|r| (r.index, r.name.clone()))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_values()
        .collect();
    routes.push(crate::observe::metrics::UNMATCHED.to_owned());
    let mut gone: Vec<&String> = totals.keys().filter(|r| !routes.contains(r)).collect();
    gone.sort();
    let gone: Vec<String> = gone.into_iter().cloned().collect();
    routes.extend(gone);
    let mut out = String::with_capacity(1024);
    out.push_str(
        "# HELP corsgate_shadow_divergence_total CORS requests the shadow configuration would answer differently, by live route and kind.\n\
         # TYPE corsgate_shadow_divergence_total counter\n",
    );
    for route in &routes {
        let row = totals.get(route).copied().unwrap_or_default();
        let label = escape(route);
        for kind in Kind::ALL {
            let _ = writeln!(
                out,
                "corsgate_shadow_divergence_total{{route=\"{label}\",kind=\"{}\"}} {}",
                kind.as_str(),
                row[kind.index()]
            );
        }
    }
    let _ = write!(
        out,
        "# HELP corsgate_shadow_requests_total CORS requests the shadow configuration decided.\n\
         # TYPE corsgate_shadow_requests_total counter\n\
         corsgate_shadow_requests_total {}\n\
         # HELP corsgate_shadow_reloads_total Loads of the shadow configuration, by result.\n\
         # TYPE corsgate_shadow_reloads_total counter\n\
         corsgate_shadow_reloads_total{{result=\"success\"}} {}\n\
         corsgate_shadow_reloads_total{{result=\"failure\"}} {}\n\
         # HELP corsgate_shadow_generation The shadow configuration evaluated: 1 for the first one loaded, one more at each change; 0 for none.\n\
         # TYPE corsgate_shadow_generation gauge\n\
         corsgate_shadow_generation {}\n",
        shadow.evaluated.load(Relaxed),
        shadow.reload_success.load(Relaxed),
        shadow.reload_failure.load(Relaxed),
        shadow.current.load().as_ref().map_or(0, |c| c.generation),
    );
    out
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn text(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `GET /shadow`: the candidate, its divergence counts and the recent
/// samples, as JSON (documented in docs/gateway.md); `404` when no shadow
/// configuration is asked for. Its samples show real traffic (origins, paths,
/// request ids): the endpoint is [`Access::Read`](crate::Access::Read).
pub(crate) fn document(shared: &Shared) -> Response<ResponseBody> {
    let shadow = &shared.shadow;
    let Some(path) = shadow.configured() else {
        return text(
            StatusCode::NOT_FOUND,
            "no shadow configuration: start with --shadow FILE, or set shadow_config in [server]\n",
        );
    };
    let loaded = shadow.current.load_full();
    // The candidate running, or, when none could be loaded yet, the file
    // asked for with no load time.
    let candidate = match &loaded {
        Some(c) => CandidateDoc {
            path: c.path.display().to_string(),
            loaded_at: Some(humantime::format_rfc3339_millis(c.loaded_at).to_string()),
            generation: c.generation,
        },
        None => CandidateDoc {
            path: path.display().to_string(),
            loaded_at: None,
            generation: 0,
        },
    };
    let divergences = shadow
        .divergences
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let mut counts: Vec<(Kind, Count<'_>)> = divergences
        .current
        .iter()
        .flat_map(|(route, row)| {
            Kind::ALL.iter().map(move |kind| {
                let count = Count {
                    route,
                    kind: kind.as_str(),
                    count: row[kind.index()],
                };
                (*kind, count)
            })
        })
        .filter(|(_, c)| c.count > 0)
        .collect();
    counts.sort_by(|a, b| a.1.route.cmp(b.1.route).then(a.0.index().cmp(&b.0.index())));
    let body = Document {
        candidate,
        requests: if loaded.is_some() {
            shadow.evaluated_current.load(Relaxed)
        } else {
            0
        },
        counts: counts.into_iter().map(|(_, c)| c).collect(),
        recent: if loaded.is_some() {
            divergences.recent.iter().rev().collect()
        } else {
            Vec::new()
        },
    };
    let mut text = serde_json::to_vec_pretty(&body).unwrap_or_default();
    drop(divergences);
    text.push(b'\n');
    let mut response = Response::new(ResponseBody::full(Bytes::from(text)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(text: &str) -> GatewayConfig {
        config::check(text).gateway.expect("valid")
    }

    const LIVE: &str = r#"
[server]
listen = "127.0.0.1:8080"
max_body_bytes = 1000
[server.cors]
allow_origins = ["https://app.example.com"]
[[route]]
path = "/api"
upstream = "http://127.0.0.1:9000"
"#;

    #[test]
    fn a_copy_with_another_policy_loads_without_warnings() {
        let text = LIVE.replace("https://app.example.com", "https://new.example.com");
        let warnings = without_effect(&text, &compiled(&text), &compiled(LIVE));
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn keys_without_effect_are_located() {
        let text = r#"
[server]
listen = "127.0.0.1:8080"
max_body_bytes = 5
shadow_config = "other.toml"
path_case = "insensitive"
[server.cors]
allow_origins = ["https://app.example.com"]
[[route]]
path = "/api"
upstream = "http://127.0.0.1:9001"
"#;
        let warnings = without_effect(text, &compiled(text), &compiled(LIVE));
        let lines: Vec<String> = warnings.iter().map(ToString::to_string).collect();
        assert_eq!(warnings.len(), 3, "{lines:#?}");
        assert!(
            lines[0].starts_with("4:18: server.max_body_bytes: warning"),
            "{lines:#?}"
        );
        assert!(
            lines[1].starts_with("5:17: server.shadow_config"),
            "{lines:#?}"
        );
        assert!(
            lines[2].starts_with("11:12: route[0].upstream"),
            "{lines:#?}"
        );
    }

    #[test]
    fn bumps_make_rows() {
        let mut counts = HashMap::new();
        bump(&mut counts, "0:/api", Kind::Headers.index());
        bump(&mut counts, "0:/api", Kind::Headers.index());
        bump(&mut counts, "0:/api", Kind::Route.index());
        assert_eq!(counts["0:/api"], [0, 0, 2, 1]);
    }
}
