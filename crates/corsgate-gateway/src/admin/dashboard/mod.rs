//! The admin dashboard and its data, on the admin listener:
//!
//! - `GET /` the page, `GET /dashboard.js` and `GET /dashboard.css` its script
//!   and style: embedded in the binary, no other origin is ever asked for
//!   anything, and they hold no data;
//! - `GET /routes` each route with its effective policy;
//! - `GET /stats` request counts by route, decision and reason, and their
//!   history over the last minutes;
//! - `GET /refusals` the refusal log (refusals.rs), each entry with the fix in
//!   explain's words;
//! - `POST /explain` what a browser would do with a request, against the
//!   configuration running and, on a client-scoped route, the live client
//!   registry the gateway decides with.
//!
//! The router (server.rs) checks every path's host and access rule first
//! (endpoints.rs): the data paths need `Authorization: Bearer <token>` when
//! `server.admin_token_file` is set; the page asks for the token once, keeps it
//! in the tab's session storage and sends it in that header, never in a URL.
//! Attacker-chosen values (origins, paths) reach the page only as JSON, and
//! the page writes them as text, never as markup; its Content-Security-Policy
//! runs no script but its own.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use corsgate_explain::{
    ClientInput, Credentials, ExplainError, Explanation, Initiator, PageRequest,
};
use corsgate_policy::RejectionReason;
use http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, ORIGIN, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::observe::metrics::{RequestCounts, UNMATCHED};
use crate::observe::refusals::{self, EntryView, Sample};
use crate::request::body::ResponseBody;
use crate::{Shared, Snapshot};

const INDEX_HTML: &str = include_str!("index.html");
const DASHBOARD_JS: &str = include_str!("dashboard.js");
const DASHBOARD_CSS: &str = include_str!("dashboard.css");

/// The page runs its own script and style only, and no other page may frame it.
const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// Largest `POST /explain` body.
pub(crate) const MAX_EXPLAIN_BYTES: usize = 16 * 1024;
/// Entries of `GET /refusals` when the query gives no `limit`, and the most it
/// may ask for.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 500;
/// One point of the history every this long, and how many are kept: ten
/// minutes.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);
const POINTS: usize = 60;

/// The dashboard's state in [`Shared`].
#[derive(Default)]
pub(crate) struct State {
    /// Cumulative totals at the end of each interval, oldest first.
    history: Mutex<VecDeque<(SystemTime, RequestCounts)>>,
    /// The configuration and the registry revision the cached fixes were
    /// computed for, and their number. The `Weak` keeps the snapshot's
    /// allocation, so its address cannot be taken by a later one.
    generation: Mutex<(Weak<Snapshot>, Option<RegistryStamp>, u64)>,
}

/// A registry snapshot's instance and revision.
type RegistryStamp = (String, i64);

impl State {
    /// The number of the configuration `snapshot` with the registry
    /// `registry` (its instance and revision): it changes with each reload
    /// of either.
    fn generation(&self, snapshot: &Arc<Snapshot>, registry: Option<RegistryStamp>) -> u64 {
        let mut current = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !std::ptr::eq(current.0.as_ptr(), Arc::as_ptr(snapshot)) || current.1 != registry {
            *current = (Arc::downgrade(snapshot), registry, current.2 + 1);
        }
        current.2
    }
}

/// The task that takes a point of the history every [`INTERVAL`]; stops when
/// dropped (with the admin listener).
pub(crate) struct History(tokio::task::JoinHandle<()>);

impl History {
    pub(crate) fn start(shared: &Arc<Shared>) -> History {
        let weak = Arc::downgrade(shared);
        History(tokio::spawn(async move {
            let mut tick = tokio::time::interval(INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(shared) = weak.upgrade() else { return };
                let totals = totals(&shared);
                let mut history = shared
                    .dashboard
                    .history
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if history.len() > POINTS {
                    history.pop_front();
                }
                history.push_back((SystemTime::now(), totals));
            }
        }))
    }
}

impl Drop for History {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn totals(shared: &Shared) -> RequestCounts {
    let mut totals = RequestCounts::default();
    for (_, counts) in shared.metrics.request_counts() {
        totals.add(&counts);
    }
    totals
}

/// Answers the dashboard's paths, once the router (server.rs) has checked the
/// host, the method and the access rule of the endpoint.
pub(crate) async fn answer(
    shared: &Shared,
    snapshot: &Arc<Snapshot>,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let get = method == Method::GET || method == Method::HEAD;
    // The page and its assets hold no data: they load without the token, so
    // that the page can ask for it.
    let asset = match path.as_str() {
        "/" => Some((INDEX_HTML, "text/html; charset=utf-8")),
        "/dashboard.js" => Some((DASHBOARD_JS, "text/javascript; charset=utf-8")),
        "/dashboard.css" => Some((DASHBOARD_CSS, "text/css; charset=utf-8")),
        _ => None,
    };
    if let Some((body, content_type)) = asset {
        if !get {
            return not_allowed("GET");
        }
        let mut response = respond(StatusCode::OK, Bytes::from_static(body.as_bytes()));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if path == "/" {
            headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
        }
        return response;
    }
    match path.as_str() {
        "/explain" if method == Method::POST => explain(shared, snapshot, request).await,
        "/explain" => not_allowed("POST"),
        _ if !get => not_allowed("GET"),
        "/routes" => json_response(StatusCode::OK, &routes(snapshot)),
        "/stats" => json_response(StatusCode::OK, &stats(shared)),
        _ => json_response(
            StatusCode::OK,
            &refusal_log(shared, snapshot, request.uri().query()),
        ),
    }
}

/// A response with the headers every dashboard answer carries.
fn respond(status: StatusCode, body: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn json_response(status: StatusCode, value: &Value) -> Response<ResponseBody> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    let mut response = respond(status, Bytes::from(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `{"error": message}` with `status`.
fn error(status: StatusCode, message: &str) -> Response<ResponseBody> {
    json_response(status, &json!({ "error": message }))
}

fn not_allowed(allow: &'static str) -> Response<ResponseBody> {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("this path answers {allow} only"),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn time(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// `GET /routes`.
fn routes(snapshot: &Snapshot) -> Value {
    // In file order (the table keeps them in matching order).
    let mut list: Vec<&corsgate_config::Route> = snapshot.gateway.routes.iter().collect();
    list.sort_by_key(|route| route.index);
    let routes: Vec<Value> = list
        .into_iter()
        .map(|route| {
            let upstream = match &route.upstream {
                corsgate_config::Upstream::Http {
                    authority,
                    transport,
                } => format!("{}://{authority}", transport.scheme()),
                corsgate_config::Upstream::Demo => "builtin:demo".to_owned(),
            };
            let cors = match &route.policy {
                None => "off",
                Some(policy) if policy.is_closed() => "closed",
                Some(_) => "on",
            };
            json!({
                "index": route.index,
                "name": route.name,
                "label": route.label,
                "host": route.host,
                "path": route.path,
                "upstream": upstream,
                "strip_prefix": route.strip_prefix,
                "cors": cors,
                "policy_name": route.policy_name,
                "debug": route.policy.as_ref().is_some_and(|p| p.is_debug()),
                "policy": route.policy.as_ref().map(|p| p.effective_config()),
            })
        })
        .collect();
    json!({
        "routes": routes,
        "default_policy": snapshot.gateway.routes.default_policy().effective_config(),
    })
}

fn counts_json(counts: &RequestCounts) -> Value {
    let by_reason: serde_json::Map<String, Value> = RejectionReason::ALL
        .iter()
        .zip(counts.rejected)
        .map(|(reason, n)| (reason.as_str().to_owned(), json!(n)))
        .collect();
    json!({
        "allowed": counts.allowed,
        "pass": counts.pass,
        "rejected": counts.rejected.iter().sum::<u64>(),
        "by_reason": by_reason,
    })
}

fn minus(now: &RequestCounts, before: &RequestCounts) -> RequestCounts {
    let mut delta = RequestCounts {
        allowed: now.allowed.saturating_sub(before.allowed),
        pass: now.pass.saturating_sub(before.pass),
        ..RequestCounts::default()
    };
    for ((d, n), b) in delta
        .rejected
        .iter_mut()
        .zip(now.rejected)
        .zip(before.rejected)
    {
        *d = n.saturating_sub(b);
    }
    delta
}

/// `GET /stats`.
fn stats(shared: &Shared) -> Value {
    let now = SystemTime::now();
    let per_route = shared.metrics.request_counts();
    // The routes of the configuration running, and `unmatched`: a route a
    // reload removed keeps its counter (a route that comes back continues
    // it), and its requests stay in the totals and the history, but it is no
    // longer listed.
    let snapshot = shared.snapshot.load();
    let running: HashSet<&str> = snapshot
        .gateway
        .routes
        .iter()
        .map(|route| route.name.as_str())
        .chain([UNMATCHED])
        .collect();
    let mut totals = RequestCounts::default();
    let routes: Vec<Value> = per_route
        .iter()
        .filter_map(|(name, counts)| {
            totals.add(counts);
            running.contains(name.as_str()).then(|| {
                let mut value = counts_json(counts);
                value["route"] = json!(name);
                value
            })
        })
        .collect();
    let points: Vec<(SystemTime, RequestCounts)> = shared
        .dashboard
        .history
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .cloned()
        .collect();
    let mut history: Vec<Value> = points
        .windows(2)
        .filter_map(|pair| match pair {
            [(start, before), (end, after)] => {
                let mut value = counts_json(&minus(after, before));
                value["start"] = json!(time(*start));
                value["end"] = json!(time(*end));
                Some(value)
            }
            _ => None,
        })
        .collect();
    // The interval under way, so that the chart moves before its end.
    if let Some((start, before)) = points.last() {
        let mut value = counts_json(&minus(&totals, before));
        value["start"] = json!(time(*start));
        value["end"] = json!(time(now));
        value["partial"] = json!(true);
        history.push(value);
    }
    json!({
        "time": time(now),
        "interval_seconds": INTERVAL.as_secs(),
        "totals": counts_json(&totals),
        "routes": routes,
        "history": history,
    })
}

/// `GET /refusals?offset=N&limit=N&route=NAME`.
fn refusal_log(shared: &Shared, snapshot: &Arc<Snapshot>, query: Option<&str>) -> Value {
    let mut offset = 0;
    let mut limit = DEFAULT_LIMIT;
    let mut route = None;
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*key {
            "offset" => offset = value.parse().unwrap_or(0),
            "limit" => limit = value.parse().unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT),
            "route" if !value.is_empty() => route = Some(value.into_owned()),
            _ => {}
        }
    }
    let page = shared.refusals.page(offset, limit, route.as_deref());
    let registry = shared.registry.as_ref().map(|registry| {
        let current = registry.snapshot();
        (current.instance().to_owned(), current.revision())
    });
    let generation = shared.dashboard.generation(snapshot, registry);
    let entries: Vec<Value> = page
        .entries
        .iter()
        .map(|entry| {
            // Computed once per entry and configuration, outside the log's
            // lock, and kept in the entry.
            let fix = match &entry.fix {
                Some((computed_for, fix)) if *computed_for == generation => fix.clone(),
                _ => {
                    let fix = Arc::new(fix_for(shared, snapshot, entry));
                    shared
                        .refusals
                        .store_fix(entry.serial, generation, fix.clone());
                    fix
                }
            };
            json!({
                "route": entry.route,
                "origin": entry.origin,
                "reason": entry.reason.as_str(),
                "count": entry.count,
                "count_error": entry.error,
                "first_seen": time(entry.first_seen),
                "last_seen": time(entry.last_seen),
                "last": sample_json(&entry.sample),
                "fix": *fix,
            })
        })
        .collect();
    let recent: Vec<Value> = page
        .recent
        .iter()
        .map(|r| {
            let mut value = sample_json(&r.sample);
            value["time"] = json!(time(r.time));
            value["route"] = json!(r.route);
            value["origin"] = json!(r.origin);
            value["reason"] = json!(r.reason.as_str());
            value
        })
        .collect();
    json!({
        "total": page.total,
        "tracked": page.tracked,
        "capacity": refusals::CAPACITY,
        "evictions": page.evictions,
        "matching": page.matching,
        "offset": offset,
        "limit": limit,
        "entries": entries,
        "recent": recent,
    })
}

fn sample_json(sample: &Sample) -> Value {
    json!({
        "class": sample.class,
        "method": sample.method,
        "requested_method": sample.requested_method,
        "requested_headers": sample.requested_headers,
        "url": sample_url(sample),
        "request_id": sample.request_id,
    })
}

fn sample_url(sample: &Sample) -> String {
    let scheme = if sample.https { "https" } else { "http" };
    let host = if sample.host.is_empty() {
        "localhost"
    } else {
        &sample.host
    };
    format!("{scheme}://{host}{}", sample.path)
}

/// What explain says about an entry's last refusal, against `snapshot` and
/// the live registry.
fn fix_for(shared: &Shared, snapshot: &Snapshot, entry: &EntryView) -> Value {
    let sample = &entry.sample;
    let preflight = sample.class == "preflight";
    let method = if preflight && !sample.requested_method.is_empty() {
        sample.requested_method.clone()
    } else {
        sample.method.clone()
    };
    // The page's headers, as far as the preflight names them: each with a
    // value that is not safelisted, since the browser listed it.
    let headers = if preflight {
        sample
            .requested_headers
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(|name| {
                let value = if name.eq_ignore_ascii_case("content-type") {
                    "application/json"
                } else {
                    "x"
                };
                (name.to_owned(), value.to_owned())
            })
            .collect()
    } else {
        Vec::new()
    };
    let page = PageRequest {
        url: sample_url(sample),
        origin: entry.origin.clone(),
        method,
        headers,
        credentials: Credentials::SameOrigin,
        initiator: Initiator::Fetch,
    };
    explanation_summary(shared, snapshot, &page)
}

fn explanation_summary(shared: &Shared, snapshot: &Snapshot, page: &PageRequest) -> Value {
    match explain_live(shared, snapshot, page, None, None) {
        Ok(explanation) => json!({
            "verdict": explanation.verdict,
            "route": explanation.route,
            "console_message": explanation.console_message,
            "fixes": explanation.fixes,
            "notes": explanation.notes,
        }),
        Err(err) => json!({ "error": err.to_string() }),
    }
}

/// Simulates `page` against `snapshot` and, on a client-scoped route, the
/// registry snapshot the gateway's requests are decided with right now (not
/// the configuration's database read again: what a request would meet), with
/// the client named directly (`client`) or by the request body (`body`), as
/// `corsgate explain --client` and `--data` take them.
fn explain_live(
    shared: &Shared,
    snapshot: &Snapshot,
    page: &PageRequest,
    client: Option<&str>,
    body: Option<&[u8]>,
) -> Result<Explanation, ExplainError> {
    let registry = shared.registry.as_ref().map(|registry| {
        (
            registry.snapshot(),
            format!("this gateway's live registry ({})", registry.backend()),
        )
    });
    let input = ClientInput {
        registry: registry
            .as_ref()
            .map(|(current, from)| (&***current, from.as_str())),
        client,
        body,
    };
    corsgate_explain::explain_with_clients(
        &snapshot.gateway,
        &snapshot.gateway.source,
        page,
        &input,
    )
}

/// The body of `POST /explain`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainBody {
    url: String,
    origin: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: Vec<HeaderInput>,
    #[serde(default)]
    credentials: Option<String>,
    #[serde(default)]
    initiator: Option<String>,
    /// The client the request names, on a client-scoped route (`corsgate
    /// explain --client`).
    #[serde(default)]
    client: Option<String>,
    /// The request body, read by the `form` identification source
    /// (`corsgate explain --data`).
    #[serde(default)]
    data: Option<String>,
}

/// A header the page sets: `["name", "value"]`, or `"name: value"` as
/// `corsgate explain --header` takes it.
#[derive(Deserialize)]
#[serde(untagged)]
enum HeaderInput {
    Pair(String, String),
    Line(String),
}

/// `POST /explain`.
async fn explain(
    shared: &Shared,
    snapshot: &Snapshot,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    // A page of another site must not make the admin listener work for it:
    // a fetch with a JSON body is preflighted, which fails (the listener sends
    // no CORS headers); a form post cannot send JSON; and an `Origin` that is
    // not this listener's own is refused.
    if let Some(origin) = request.headers().get(ORIGIN) {
        let host = request.headers().get(HOST).map(HeaderValue::as_bytes);
        let authority = origin
            .as_bytes()
            .splitn(2, |b| *b == b':')
            .nth(1)
            .and_then(|rest| rest.strip_prefix(b"//"));
        if authority.is_none() || authority != host {
            return error(
                StatusCode::FORBIDDEN,
                "POST /explain from a page of another origin: use the dashboard on this listener, or a client without Origin",
            );
        }
    }
    let json = super::registry_admin::is_json(request.headers());
    if !json {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send Content-Type: application/json",
        );
    }
    let body = match Limited::new(request.into_body(), MAX_EXPLAIN_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body is at most {MAX_EXPLAIN_BYTES} bytes of JSON"),
            );
        }
    };
    let body: ExplainBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "{err}; the body is {{\"url\": \"https://api.example.com/x\", \"origin\": \"https://app.example.com\", \"method\": \"GET\", \"headers\": [[\"content-type\", \"application/json\"]], \"credentials\": \"include\"}}"
                ),
            );
        }
    };
    let client = body.client.clone().filter(|c| !c.is_empty());
    let data = body.data.clone();
    match page_request(body) {
        Ok(page) => {
            let explained = explain_live(
                shared,
                snapshot,
                &page,
                client.as_deref(),
                data.as_deref().map(str::as_bytes),
            );
            match explained {
                Ok(explanation) => json_response(StatusCode::OK, &json!(explanation)),
                Err(err) => error(StatusCode::BAD_REQUEST, &err.to_string()),
            }
        }
        Err(message) => error(StatusCode::BAD_REQUEST, &message),
    }
}

fn page_request(body: ExplainBody) -> Result<PageRequest, String> {
    corsgate_explain::check_page_origin(&body.origin).map_err(|err| format!("origin: {err}"))?;
    let credentials = match body.credentials.as_deref() {
        None | Some("") => Credentials::SameOrigin,
        Some(text) => text.parse::<Credentials>()?,
    };
    let initiator = match body.initiator.as_deref() {
        None | Some("") => Initiator::Fetch,
        Some(text) => text.parse::<Initiator>()?,
    };
    let headers = body
        .headers
        .into_iter()
        .map(|h| match h {
            HeaderInput::Pair(name, value) => (name.trim().to_owned(), value.trim().to_owned()),
            HeaderInput::Line(line) => match line.split_once(':') {
                Some((name, value)) => (name.trim().to_owned(), value.trim().to_owned()),
                None => (line.trim().to_owned(), "x".to_owned()),
            },
        })
        .collect();
    Ok(PageRequest {
        url: body.url,
        origin: body.origin,
        method: body
            .method
            .filter(|m| !m.trim().is_empty())
            .unwrap_or_else(|| "GET".to_owned()),
        headers,
        credentials,
        initiator,
    })
}
