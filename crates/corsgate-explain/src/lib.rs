//! What a browser would do with a request against a corsgate configuration,
//! offline — the preflight it sends and why, corsgate's answers
//! header by header, the verdict with the console message Chromium prints, what
//! JavaScript can read, and the fix.
//!
//! `corsgate explain` prints it; the gateway's admin listener answers with it.
//!
//! ```
//! use corsgate_explain::{Credentials, Initiator, PageRequest, Verdict, explain};
//!
//! let config = corsgate_config::check(r#"
//!     [server.cors]
//!     allow_origins = ["https://app.example.com"]
//!
//!     [[route]]
//!     path = "/api"
//!     upstream = "http://127.0.0.1:9000"
//! "#).gateway.unwrap();
//! let page = |origin: &str| PageRequest {
//!     url: "https://api.example.com/api/items".into(),
//!     origin: origin.into(),
//!     method: "PUT".into(),
//!     headers: vec![("content-type".into(), "application/json".into())],
//!     credentials: Credentials::SameOrigin,
//!     initiator: Initiator::Fetch,
//! };
//!
//! // PUT is not listed: the preflight is refused, and the fix says what to add.
//! let refused = explain(&config, &config.source, &page("https://app.example.com")).unwrap();
//! assert_eq!(refused.verdict, Verdict::Blocked);
//! assert!(refused.fixes.iter().any(|fix| fix.line.contains("PUT")));
//! ```

#![warn(missing_docs, missing_debug_implementations)]

mod browser;
mod clients;
mod engines;

use std::borrow::Cow;
use std::fmt::Write as _;

use corsgate_policy::{Decision, Policy, RejectionReason};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::Serialize;

use browser::CorsError;
pub use browser::{Credentials, Initiator, PreflightReason};
pub use clients::{ClientExplanation, ClientInput, DecidedBy, SourceCheck};
pub use engines::{Engine, EngineVerdict};

use corsgate_config::canonical::{self, PathRules, TargetRefusal};
use corsgate_config::model::{FileConfig, KeySource, RouteCors};
use corsgate_config::{GatewayConfig, Route};

/// Why a request could not be explained: the input is not what a page can
/// send (a relative URL, a bad header name, a pattern for an origin, …). The
/// message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainError(String);

impl ExplainError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl std::fmt::Display for ExplainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExplainError {}

/// What the page does.
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// The URL the page fetches.
    pub url: String,
    /// The page's origin.
    pub origin: String,
    /// The method as the page wrote it.
    pub method: String,
    /// Headers the page sets: (name, value).
    pub headers: Vec<(String, String)>,
    /// The request's credentials mode.
    pub credentials: Credentials,
    /// `fetch()` or `XMLHttpRequest`: changes the wording of the messages.
    pub initiator: Initiator,
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The page reads the response.
    Allowed,
    /// The browser keeps the response from the page.
    Blocked,
    /// CORS is off for the route: the upstream's own headers decide.
    DecidedByUpstream,
    /// Same-origin request: CORS does not apply.
    SameOrigin,
    /// `fetch()` refuses the request before sending anything.
    RefusedByBrowser,
}

/// One HTTP exchange as explain shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    /// The request's headers as the browser sends them: (name, value).
    pub request: Vec<(String, String)>,
    /// `None` when the upstream answers (CORS off, or an actual request forwarded).
    pub status: Option<u16>,
    /// Who answers: `corsgate` or `upstream`.
    pub answered_by: &'static str,
    /// Headers corsgate puts on the response.
    pub response: Vec<(String, String)>,
    /// corsgate's own reason, when it refused.
    pub rejection: Option<String>,
    /// The browser's objection, when it has one.
    pub browser_error: Option<String>,
}

/// A change to the configuration that makes the request work.
#[derive(Debug, Clone, Serialize)]
pub struct Fix {
    /// Where: `route[0].cors.allow_origins`, `route[0].cors` (a table to
    /// write), `policies.spa.allow_origins`, or `server.cors.allow_origins`.
    pub key: String,
    /// The line to write there.
    pub line: String,
    /// Why the change makes the request work.
    pub why: String,
    /// The other routes the change opens too (by their label): those that take
    /// the key from the same `[policies.NAME]` or `[server.cors]`.
    pub also_opens: Vec<String>,
}

/// Everything explain found.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The method, normalised as the browser sends it (`get` → `GET`).
    pub method: String,
    /// The URL the page fetches.
    pub url: String,
    /// The page's origin.
    pub origin: String,
    /// The request's credentials mode.
    pub credentials: Credentials,
    /// The route that answers, by its label; `None` when no route matches.
    pub route: Option<String>,
    /// Why the browser preflights; empty for a request sent without one.
    pub preflight_reasons: Vec<PreflightReason>,
    /// The preflight, when there is one.
    pub preflight: Option<Exchange>,
    /// The actual request, when the browser sends it.
    pub actual: Option<Exchange>,
    /// The verdict.
    pub verdict: Verdict,
    /// What Chromium prints in the console when blocked (the same as the
    /// first of `engines`' Chromium `console_messages`; kept for callers that
    /// read Chromium's alone).
    pub console_message: Option<String>,
    /// Chromium's error name (DevTools "CORS error" column).
    pub cors_error: Option<String>,
    /// Each engine's verdict and console messages, in [`Engine::ALL`]'s order.
    pub engines: Vec<EngineVerdict>,
    /// Response headers JavaScript can read when allowed, beyond the
    /// CORS-safelisted ones (`*`: all but `Set-Cookie`).
    pub readable_headers: Vec<String>,
    /// Changes to the configuration that make a blocked request work.
    pub fixes: Vec<Fix>,
    /// What else is worth knowing (dropped headers, closed routes, …).
    pub notes: Vec<String>,
    /// On a client-scoped route: which source named which client, and which
    /// list decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clients: Option<ClientExplanation>,
}

impl Explanation {
    /// Keeps only these engines' verdicts (`--browser`), in their order.
    pub fn retain_engines(&mut self, engines: &[Engine]) {
        self.engines.retain(|v| engines.contains(&v.engine));
    }
}

struct Target {
    url_origin: String,
    /// Canonical, as the gateway routes on it (no trailing dot, lowercase).
    host: Option<String>,
    /// Canonical, as the gateway routes on it, or why the gateway answers 400.
    path: Result<String, TargetRefusal>,
}

fn parse_url(url: &str, rules: &PathRules) -> Result<Target, ExplainError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|err| ExplainError::new(format!("{url:?} is not a URL: {err}")))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(ExplainError::new(format!(
            "{url:?} is not an absolute URL (write it as http://host/path)"
        )));
    };
    let scheme = scheme.to_ascii_lowercase();
    let host = authority.host().to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    let port = authority.port_u16().filter(|p| Some(*p) != default);
    let url_origin = match port {
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    };
    // The same canonical host and path the gateway routes on.
    let route_host = canonical::canonical_authority(authority.as_str())
        .map_or_else(|| host.clone(), |a| a.host.into_owned());
    let path = match uri.path() {
        "" => Ok("/".to_owned()),
        path => canonical::canonical_path(path, rules).map(Cow::into_owned),
    };
    Ok(Target {
        url_origin,
        host: Some(route_host),
        path,
    })
}

fn pairs(map: &HeaderMap) -> Vec<(String, String)> {
    map.iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Where an address is, for Chromium's Local Network Access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum AddressSpace {
    Loopback,
    Local,
    Public,
}

fn address_space(host: &str) -> AddressSpace {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host == "localhost" || host.ends_with(".localhost") {
        return AddressSpace::Loopback;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_loopback() => AddressSpace::Loopback,
        Ok(std::net::IpAddr::V4(v4)) if v4.is_private() || v4.is_link_local() => {
            AddressSpace::Local
        }
        Ok(std::net::IpAddr::V6(v6)) if (v6.segments()[0] & 0xfe00) == 0xfc00 => {
            AddressSpace::Local
        }
        _ => AddressSpace::Public,
    }
}

/// A note when Chromium's Local Network Access may block the request before CORS:
/// a page that is not a secure context, on a more public address than the URL's.
fn local_network_note(url_host: Option<&str>, origin: &str) -> Option<String> {
    let target = address_space(url_host?);
    if target == AddressSpace::Public {
        return None;
    }
    let (scheme, rest) = origin.split_once("://").unwrap_or(("", origin));
    let origin_host = rest.rsplit_once(':').map_or(rest, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            rest
        }
    });
    let page = if origin == "null" {
        AddressSpace::Public
    } else {
        address_space(origin_host)
    };
    let secure = scheme == "https" || page == AddressSpace::Loopback;
    if secure || page <= target {
        return None;
    }
    Some(format!(
        "the URL is on a {} address and the page is not a secure context: if the page is served from a more public address, Chromium's Local Network Access blocks the request before any CORS check (no header can allow it); serve the page over https",
        if target == AddressSpace::Loopback {
            "loopback"
        } else {
            "private"
        }
    ))
}

/// Simulates `request` against a compiled configuration. A client-scoped
/// route is explained with an empty registry; see [`explain_with_clients`].
pub fn explain(
    gateway: &GatewayConfig,
    raw: &FileConfig,
    request: &PageRequest,
) -> Result<Explanation, ExplainError> {
    explain_with_clients(gateway, raw, request, &ClientInput::default())
}

/// Whether the route that serves `url` is client-scoped (its `cors` table has
/// `clients`): whether [`explain_with_clients`] needs a registry for it.
pub fn is_client_scoped(gateway: &GatewayConfig, url: &str) -> bool {
    let Ok(target) = parse_url(url, &gateway.settings.path_rules) else {
        return false;
    };
    let Ok(path) = &target.path else {
        return false;
    };
    gateway
        .routes
        .resolve(target.host.as_deref(), path)
        .policy
        .is_some_and(|p| p.clients().is_some())
}

/// Simulates `request` against a compiled configuration; on a client-scoped
/// route, with the registry and the client input of `clients`.
///
/// ```
/// use corsgate_explain::{ClientInput, Credentials, DecidedBy, Initiator, PageRequest, explain_with_clients};
/// use corsgate_registry::{ClientRecord, Loaded, RegistrySnapshot, Source};
///
/// let text = r#"
/// [registry]
/// [[route]]
/// path = "/oauth2/token"
/// upstream = "http://127.0.0.1:4444"
/// cors = { clients = { identify = ["form"] } }
/// "#;
/// let gateway = corsgate_config::check(text).gateway.unwrap();
/// let raw = corsgate_config::load::parse(text).config.unwrap();
/// let spa = ClientRecord {
///     id: "spa".into(),
///     name: String::new(),
///     allowed_origins: vec!["https://spa.example".into()],
///     revision: 1,
///     updated_at: String::new(),
/// };
/// let loaded = Loaded { instance: "i".into(), revision: 1, clients: vec![spa] };
/// let snapshot = RegistrySnapshot::build(loaded, Source::SnapshotFile);
/// let request = PageRequest {
///     url: "https://id.example/oauth2/token".into(),
///     origin: "https://spa.example".into(),
///     method: "POST".into(),
///     headers: vec![("content-type".into(), "application/x-www-form-urlencoded".into())],
///     credentials: Credentials::Omit,
///     initiator: Initiator::Fetch,
/// };
/// let input = ClientInput {
///     registry: Some((&snapshot, "clients.json")),
///     body: Some(b"grant_type=authorization_code&client_id=spa"),
///     ..ClientInput::default()
/// };
/// let e = explain_with_clients(&gateway, &raw, &request, &input).unwrap();
/// let clients = e.clients.unwrap();
/// assert_eq!(clients.named_by.as_deref(), Some("form"));
/// assert_eq!(clients.decided_by, DecidedBy::ClientList);
/// ```
pub fn explain_with_clients(
    gateway: &GatewayConfig,
    raw: &FileConfig,
    request: &PageRequest,
    clients: &ClientInput<'_>,
) -> Result<Explanation, ExplainError> {
    let target = parse_url(&request.url, &gateway.settings.path_rules)?;
    let method = browser::normalize_method(&request.method);
    let mut out = Explanation {
        method: method.clone(),
        url: request.url.clone(),
        origin: request.origin.clone(),
        credentials: request.credentials,
        route: None,
        preflight_reasons: Vec::new(),
        preflight: None,
        actual: None,
        verdict: Verdict::Allowed,
        console_message: None,
        cors_error: None,
        engines: Vec::new(),
        readable_headers: Vec::new(),
        fixes: Vec::new(),
        notes: Vec::new(),
        clients: None,
    };
    if corsgate_policy::fetch::is_forbidden_method(&method)
        || Method::from_bytes(method.as_bytes()).is_err()
    {
        out.verdict = Verdict::RefusedByBrowser;
        out.console_message = Some(format!(
            "Failed to execute 'fetch' on 'Window': '{method}' HTTP method is unsupported."
        ));
        out.notes.push(
            "fetch() refuses forbidden methods (CONNECT, TRACE, TRACK) before sending anything"
                .into(),
        );
        out.engines = Engine::ALL
            .iter()
            .map(|&engine| {
                let mut verdict = EngineVerdict::plain(engine, Verdict::RefusedByBrowser);
                if engine == Engine::Chromium {
                    verdict.console_messages = out.console_message.iter().cloned().collect();
                } else {
                    verdict.note = Some(format!(
                        "{} refuses it too (Fetch forbids the method); its wording is not modelled",
                        engine.title()
                    ));
                }
                verdict
            })
            .collect();
        return Ok(out);
    }
    if target.url_origin == request.origin {
        out.verdict = Verdict::SameOrigin;
        out.notes.push(format!(
            "the page's origin {} is the URL's origin: same-origin requests are not subject to CORS",
            request.origin
        ));
        out.engines = Engine::ALL
            .iter()
            .map(|&engine| EngineVerdict::plain(engine, Verdict::SameOrigin))
            .collect();
        return Ok(out);
    }

    if let Some(note) = local_network_note(target.host.as_deref(), &request.origin) {
        out.notes.push(note);
    }

    // The page's headers, as the browser would send them.
    let mut unsafe_names: Vec<String> = Vec::new();
    let mut actual_headers = HeaderMap::new();
    for (name, value) in &request.headers {
        if corsgate_policy::fetch::is_forbidden_request_header(name) {
            out.notes.push(format!(
                "the browser silently drops {name}: scripts cannot set forbidden request headers"
            ));
            continue;
        }
        let Ok(header_name) = HeaderName::from_bytes(name.as_bytes()) else {
            return Err(ExplainError::new(format!("{name:?} is not a header name")));
        };
        let Ok(header_value) = HeaderValue::from_str(value) else {
            return Err(ExplainError::new(format!(
                "the value of {name} is not a valid header value"
            )));
        };
        if let Err(why) = browser::safelisted_request_header(name, value) {
            let lower = name.to_ascii_lowercase();
            if !unsafe_names.contains(&lower) {
                unsafe_names.push(lower.clone());
                out.preflight_reasons
                    .push(PreflightReason::Header { name: lower, why });
            }
        }
        actual_headers.append(header_name, header_value);
    }
    unsafe_names.sort();
    if !matches!(method.as_str(), "GET" | "HEAD" | "POST") {
        out.preflight_reasons
            .insert(0, PreflightReason::Method(method.clone()));
    }
    let origin_value = HeaderValue::from_str(&request.origin)
        .map_err(|_| ExplainError::new("the origin is not a valid header value"))?;
    actual_headers.insert(http::header::ORIGIN, origin_value.clone());

    let matched = match &target.path {
        Ok(path) => gateway.routes.resolve(target.host.as_deref(), path),
        Err(_) => gateway.routes.unmatched(),
    };
    let route = matched.route;
    let route_label = route.map(|r| r.label.clone());
    let no_route_status = if target.path.is_err() { 400 } else { 404 };
    out.route = route_label.clone().or_else(|| {
        Some(match &target.path {
            Err(why) => format!(
                "none: corsgate refuses the path with 400 ({}) and [server.cors]",
                why.as_str()
            ),
            Ok(_) => "no route: corsgate answers 404 with [server.cors]".into(),
        })
    });
    if let Err(why) = &target.path {
        out.notes
            .push(format!("corsgate answers {}", why.message().trim_end()));
    }
    let policy: Option<&Policy> = matched.policy.map(|p| &**p);
    let Some(policy) = policy else {
        out.verdict = Verdict::DecidedByUpstream;
        out.notes.push(format!(
            "CORS is off for {}: corsgate forwards everything, preflights included, and the upstream's own CORS headers decide",
            route_label.unwrap_or_default()
        ));
        out.engines = Engine::ALL
            .iter()
            .map(|&engine| EngineVerdict::plain(engine, Verdict::DecidedByUpstream))
            .collect();
        return Ok(out);
    };
    if policy.is_closed() {
        out.notes
            .push("this route has no CORS policy (no allow_origins): CORS is closed".into());
    }
    let method_value = Method::from_bytes(method.as_bytes())
        .map_err(|_| ExplainError::new(format!("{method:?} is not a method")))?;
    let registry = clients::Registry::new(clients);
    let rules = policy.clients();
    if rules.is_some() && clients.registry.is_none() {
        out.notes.push(
            "the route is client-scoped and no registry was read: explained as an empty registry; give a configuration whose [registry] database exists, or --clients FILE (corsgate clients export)".into(),
        );
    }

    // The preflight corsgate answers, and the actual request as corsgate
    // decides it. Both are decided up front: an engine whose preflight checks
    // pass goes on to the actual request even where Chromium's fail.
    let mut preflight_by = None;
    let preflight = if out.preflight_reasons.is_empty() {
        None
    } else {
        let mut pf = HeaderMap::new();
        pf.insert(http::header::ORIGIN, origin_value.clone());
        pf.insert(
            http::header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_str(&method)
                .map_err(|_| ExplainError::new(format!("{method:?} is not a method")))?,
        );
        if !unsafe_names.is_empty() {
            pf.insert(
                http::header::ACCESS_CONTROL_REQUEST_HEADERS,
                HeaderValue::from_str(&unsafe_names.join(",")).map_err(|_| {
                    ExplainError::new("the header names are not a valid header value")
                })?,
            );
        }
        let (decision, by) = match rules {
            Some(_) => {
                let (decision, by) = clients::decide_preflight(policy, &registry, &pf);
                (decision, Some(by))
            }
            None => (policy.decide(&Method::OPTIONS, &pf), None),
        };
        preflight_by = by;
        let status = decision.response_status().unwrap_or(StatusCode::NO_CONTENT);
        let response = decision.headers();
        Some((pf, decision, status, response))
    };
    let actual_decision = match rules {
        Some(rules) => {
            let (decision, mut explained) = clients::decide_actual(
                policy,
                rules,
                &registry,
                clients,
                &method_value,
                &actual_headers,
            );
            explained.preflight_decided_by = preflight_by;
            out.clients = Some(explained);
            decision
        }
        None => policy.decide(&method_value, &actual_headers),
    };
    let actual_response = actual_decision.headers();
    let actual_status = actual_decision.response_status();
    let exchange = engines::BrowserExchange {
        url: &request.url,
        origin: &request.origin,
        method: &method,
        unsafe_headers: &unsafe_names,
        page_headers: &request.headers,
        credentials: request.credentials,
        initiator: request.initiator,
        preflight: preflight
            .as_ref()
            .map(|(_, _, status, response)| engines::Response {
                status: Some(*status),
                headers: response,
            }),
        actual: engines::Response {
            status: actual_status.or(route
                .is_none()
                .then(|| StatusCode::from_u16(no_route_status).unwrap_or(StatusCode::NOT_FOUND))),
            headers: &actual_response,
        },
    };
    out.engines = Engine::ALL
        .iter()
        .map(|engine| match engine.judge(&exchange) {
            Some(judgement) => EngineVerdict::from_judgement(*engine, judgement),
            None => EngineVerdict::unknown(*engine),
        })
        .collect();

    // 1. The preflight.
    if let Some((pf, decision, status, response)) = &preflight {
        let check = browser::preflight_check(
            *status,
            response,
            &request.origin,
            request.credentials,
            &method,
            &unsafe_names,
        );
        out.preflight = Some(Exchange {
            request: pairs(pf),
            status: Some(status.as_u16()),
            answered_by: "corsgate (never forwarded)",
            response: pairs(response),
            rejection: decision.rejection().map(|r| r.to_string()),
            browser_error: check
                .as_ref()
                .err()
                .map(|e| engines::chromium::error_name(e, true).to_owned()),
        });
        if let Err(err) = check {
            block(&mut out, &err, true, request);
            fixes(
                &mut out,
                gateway,
                raw,
                route,
                policy,
                decision,
                Some(&err),
                request,
            );
            client_fixes(&mut out, decision, true);
            return Ok(out);
        }
    }

    // 2. The actual request.
    let check = browser::cors_check(&actual_response, &request.origin, request.credentials);
    out.actual = Some(Exchange {
        request: pairs(&actual_headers),
        status: actual_status
            .map(|s| s.as_u16())
            .or(route.is_none().then_some(no_route_status)),
        answered_by: if actual_status.is_some() {
            "corsgate (refused before the upstream)"
        } else if route.is_none() {
            "corsgate (no route)"
        } else {
            "the upstream; corsgate replaces its Access-Control-* headers with these"
        },
        response: pairs(&actual_response),
        rejection: actual_decision.rejection().map(|r| r.to_string()),
        browser_error: check
            .as_ref()
            .err()
            .map(|e| engines::chromium::error_name(e, false).to_owned()),
    });
    match check {
        Ok(()) => {
            out.readable_headers = browser::exposed_headers(&actual_response, request.credentials);
        }
        Err(err) => {
            block(&mut out, &err, false, request);
            fixes(
                &mut out,
                gateway,
                raw,
                route,
                policy,
                &actual_decision,
                Some(&err),
                request,
            );
            client_fixes(&mut out, &actual_decision, false);
        }
    }
    Ok(out)
}

/// On a client-scoped route, the registry write that makes the request work
/// goes first: the static list opens the route to the origin for every
/// client.
fn client_fixes(out: &mut Explanation, decision: &Decision, preflight: bool) {
    let Some(explained) = &out.clients else {
        return;
    };
    let (fixes, notes) = clients::fixes(
        explained,
        decision.rejection().map(|r| r.reason()),
        &out.origin,
        preflight,
    );
    for (i, fix) in fixes.into_iter().enumerate() {
        out.fixes.insert(i, fix);
    }
    out.notes.extend(notes);
}

/// The top-level verdict and Chromium's message and error name.
fn block(out: &mut Explanation, err: &CorsError, preflight: bool, request: &PageRequest) {
    out.verdict = Verdict::Blocked;
    out.cors_error = Some(engines::chromium::error_name(err, preflight).to_owned());
    out.console_message = Some(engines::chromium::message(
        err,
        preflight,
        request.initiator,
        &request.url,
        &request.origin,
    ));
}

/// The list as configured plus `added`, as a TOML array.
fn with_items(current: Option<&corsgate_policy::List>, added: &[String]) -> String {
    let mut items: Vec<String> = current.map(|l| l.items().to_vec()).unwrap_or_default();
    items.extend(added.iter().cloned());
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

/// One key to change, before it is placed in the file.
struct Change {
    key: &'static str,
    value: String,
    why: String,
}

#[allow(clippy::too_many_arguments)]
fn fixes(
    out: &mut Explanation,
    gateway: &GatewayConfig,
    raw: &FileConfig,
    route: Option<&Route>,
    policy: &Policy,
    decision: &Decision,
    browser_error: Option<&CorsError>,
    request: &PageRequest,
) {
    let effective = policy.effective_config();
    let mut changes = Vec::new();
    let mut push = |key: &'static str, value: String, why: String| {
        changes.push(Change { key, value, why });
    };
    let reason = decision.rejection().map(|r| r.reason());
    match reason {
        Some(RejectionReason::OriginNotAllowed) => push(
            "allow_origins",
            with_items(effective.allow_origins.as_ref(), std::slice::from_ref(&request.origin)),
            format!("{} is not in allow_origins", request.origin),
        ),
        Some(RejectionReason::NullOrigin) => out.notes.push(
            "the page's origin is null (sandboxed iframe, file: page, or a redirect across origins); allowing it takes \"null\" in allow_origins and dangerously_allow_null_origin = true, which lets any site in".into(),
        ),
        Some(RejectionReason::MalformedOrigin) => out.notes.push(format!(
            "{:?} is not a serialized origin as browsers send it (lowercase scheme://host[:port], no default port, no path)",
            request.origin
        )),
        Some(RejectionReason::MethodNotAllowed | RejectionReason::HeaderNotAllowed) => {
            // Probe the method and each header alone, so that every missing entry
            // is named, not only the first the preflight tripped on.
            let (method_refused, headers_refused) = probe_preflight(policy, request, &out.method, &out.preflight_reasons);
            if method_refused {
                push(
                    "allow_methods",
                    with_items(effective.allow_methods.as_ref(), std::slice::from_ref(&out.method)),
                    format!("{} is not in allow_methods", out.method),
                );
            }
            if !headers_refused.is_empty() {
                let verb = if headers_refused.len() == 1 { "is" } else { "are" };
                push(
                    "allow_headers",
                    with_items(effective.allow_headers.as_ref(), &headers_refused),
                    format!("{} {verb} not in allow_headers", headers_refused.join(", ")),
                );
            }
        }
        Some(RejectionReason::PrivateNetworkNotAllowed) => {
            push("allow_private_network", "true".into(), "the preflight asks for private network access".into());
        }
        _ => {}
    }
    if reason.is_none() {
        if let Some(CorsError::InvalidAllowCredentials(_)) = browser_error {
            push(
                "allow_credentials",
                "true".into(),
                "the page sends credentials (credentials: \"include\") but the policy does not allow them".into(),
            );
        }
    }
    place(out, gateway, raw, route, changes);
    if !policy.is_debug()
        && out
            .preflight
            .as_ref()
            .is_some_and(|p| p.rejection.is_some())
    {
        out.notes.push(
            "without debug mode, a refused preflight is a 403 without CORS headers, so Chromium only says that no Access-Control-Allow-Origin header is present; set debug = true to make it name the method or header".into(),
        );
    }
}

/// Puts each change where it opens only the route the request went to: the
/// route's own `cors` table (written for it when it has none, starting from
/// its named policy if it has one). A key inherited from `[server.cors]` is
/// never changed there for one route: every route that inherits it would open
/// too. The named policy is offered as a second choice, with the other routes
/// it opens; `[server.cors]` only when no route matched, with every route it
/// opens.
fn place(
    out: &mut Explanation,
    gateway: &GatewayConfig,
    raw: &FileConfig,
    route: Option<&Route>,
    changes: Vec<Change>,
) {
    let labels = |indices: Vec<usize>, except: Option<usize>| -> Vec<String> {
        indices
            .into_iter()
            .filter(|i| Some(*i) != except)
            .map(|i| {
                gateway
                    .routes
                    .iter()
                    .find(|r| r.index == i)
                    .map_or_else(|| format!("route[{i}]"), |r| r.label.clone())
            })
            .collect()
    };
    let Some(route) = route else {
        for change in changes {
            out.fixes.push(Fix {
                key: format!("server.cors.{}", change.key),
                line: format!("{} = {}", change.key, change.value),
                why: format!("{} (no route matched: [server.cors] decides)", change.why),
                also_opens: labels(raw.routes_reached(change.key, &KeySource::Server), None),
            });
        }
        return;
    };
    let index = route.index;
    // `route[5].cors (host "login.example.com", path "/")`: the place and the
    // route as a person finds it in the file.
    let place_of = |key: String| match route.label.strip_prefix(&format!("route[{index}] ")) {
        Some(rest) => format!("{key} {rest}"),
        None => key,
    };
    let written = raw.route.get(index).and_then(|r| r.cors.as_ref());
    let named = raw.policy_of(index).map(str::to_owned);
    let mut table = Vec::new();
    for change in &changes {
        if let Some(RouteCors::Table(_)) = written {
            let inherited = raw.key_source(index, change.key) != KeySource::Route;
            out.fixes.push(Fix {
                key: place_of(format!("route[{index}].cors.{}", change.key)),
                line: format!("{} = {}", change.key, change.value),
                why: if inherited {
                    format!(
                        "{} (add it to the route's own table: only this route opens)",
                        change.why
                    )
                } else {
                    change.why.clone()
                },
                also_opens: Vec::new(),
            });
        } else {
            table.push(change);
        }
    }
    if !table.is_empty() {
        let mut items: Vec<String> = named
            .iter()
            .map(|name| format!("policy = {name:?}"))
            .collect();
        items.extend(table.iter().map(|c| format!("{} = {}", c.key, c.value)));
        let whys: Vec<&str> = table.iter().map(|c| c.why.as_str()).collect();
        let mut why = whys.join("; ");
        match written {
            Some(RouteCors::Closed(_)) => why.push_str(
                " (the route is closed, cors = \"closed\": this table opens it, to these values and the rest of [server.cors])",
            ),
            Some(RouteCors::Named(name)) => why.push_str(&format!(
                " (a table of the route's own, starting from [policies.{name}]: only this route opens)"
            )),
            _ => why.push_str(" (a table of the route's own, over [server.cors]: only this route opens)"),
        }
        out.fixes.push(Fix {
            key: place_of(format!("route[{index}].cors")),
            line: format!("cors = {{ {} }}", items.join(", ")),
            why,
            also_opens: Vec::new(),
        });
    }
    // The second choice: the named policy, for every route that uses it.
    if let Some(name) = named {
        let at = KeySource::Policy(name.clone());
        for change in &changes {
            if raw.key_source(index, change.key) == KeySource::Route {
                continue;
            }
            out.fixes.push(Fix {
                key: format!("policies.{name}.{}", change.key),
                line: format!("{} = {}", change.key, change.value),
                why: format!("or, for every route of policy {name:?}: {}", change.why),
                also_opens: labels(raw.routes_reached(change.key, &at), Some(index)),
            });
        }
    }
}

/// Which of the preflight's method and headers the policy refuses, each alone.
fn probe_preflight(
    policy: &Policy,
    request: &PageRequest,
    method: &str,
    reasons: &[PreflightReason],
) -> (bool, Vec<String>) {
    let Ok(origin) = HeaderValue::from_str(&request.origin) else {
        return (false, Vec::new());
    };
    let probe = |acrm: &str, acrh: Option<&str>| {
        let mut h = HeaderMap::new();
        h.insert(http::header::ORIGIN, origin.clone());
        if let Ok(v) = HeaderValue::from_str(acrm) {
            h.insert(http::header::ACCESS_CONTROL_REQUEST_METHOD, v);
        }
        if let Some(Ok(v)) = acrh.map(HeaderValue::from_str) {
            h.insert(http::header::ACCESS_CONTROL_REQUEST_HEADERS, v);
        }
        policy
            .decide(&Method::OPTIONS, &h)
            .rejection()
            .map(|r| r.reason())
    };
    let method_refused = probe(method, None) == Some(RejectionReason::MethodNotAllowed);
    let headers = reasons
        .iter()
        .filter_map(|r| match r {
            PreflightReason::Header { name, .. } => Some(name.clone()),
            PreflightReason::Method(_) => None,
        })
        .filter(|name| probe("GET", Some(name)) == Some(RejectionReason::HeaderNotAllowed))
        .collect();
    (method_refused, headers)
}

/// Refuses an origin a browser would never send, with the serialised origin
/// (RFC 6454 §6.1) as the fix: explaining `https://app.example.com/` would
/// otherwise report a refusal the real page never meets. The engine's parser
/// for configured origins gives the same suggestions `check` does. The message
/// starts with the quoted origin, so a caller can prefix where it came from.
pub fn check_page_origin(origin: &str) -> Result<(), ExplainError> {
    let pattern = match origin.parse::<corsgate_policy::OriginPattern>() {
        Ok(pattern) => pattern,
        Err(err) => {
            let message = match err.suggestion() {
                Some(meant) => format!(
                    "{origin:?} is not an origin: {}; did you mean {meant:?}?",
                    err.message()
                ),
                None => format!(
                    "{origin:?} is not an origin: {}; write it as a browser sends it, scheme://host[:port], such as \"https://app.example.com\"",
                    err.message()
                ),
            };
            return Err(ExplainError::new(message));
        }
    };
    if pattern.is_any() || pattern.is_wildcard() || pattern.to_string() != origin {
        return Err(ExplainError::new(format!(
            "{origin:?} is a pattern, not the one origin a page has; write it as a browser sends it, such as \"https://app.example.com\""
        )));
    }
    Ok(())
}

/// The human report.
pub fn render(e: &Explanation) -> String {
    let mut s = String::new();
    let credentials = e.credentials.as_str();
    let _ = writeln!(
        s,
        "{} {}\n  from origin {} (credentials: {credentials})",
        e.method, e.url, e.origin
    );
    if let Some(route) = &e.route {
        let _ = writeln!(s, "  route: {route}");
    }
    for note in &e.notes {
        let _ = writeln!(s, "  note: {note}");
    }
    if !e.preflight_reasons.is_empty() {
        let _ = writeln!(s, "\nThe browser sends a preflight first, because:");
        for reason in &e.preflight_reasons {
            match reason {
                PreflightReason::Method(m) => {
                    let _ = writeln!(
                        s,
                        "  - {m} is not a CORS-safelisted method (GET, HEAD, POST)"
                    );
                }
                PreflightReason::Header { name, why } => {
                    let _ = writeln!(s, "  - request header {name}: {why}");
                }
            }
        }
    } else if e.actual.is_some() {
        let _ = writeln!(
            s,
            "\nNo preflight: a simple request (safelisted method and headers)."
        );
    }
    if let Some(c) = &e.clients {
        let refused = e.actual.as_ref().is_some_and(|a| a.rejection.is_some());
        render_clients(&mut s, c, refused);
    }
    for (title, exchange) in [("Preflight", &e.preflight), ("Actual request", &e.actual)] {
        let Some(x) = exchange else { continue };
        let _ = writeln!(s, "\n{title}:");
        for (n, v) in &x.request {
            let _ = writeln!(s, "  > {n}: {v}");
        }
        let _ = writeln!(s, "  answered by {}", x.answered_by);
        if let Some(status) = x.status {
            let _ = writeln!(s, "  < {status}");
        }
        for (n, v) in &x.response {
            let _ = writeln!(s, "  < {n}: {v}");
        }
        if let Some(r) = &x.rejection {
            let _ = writeln!(s, "  corsgate refuses it: {r}");
        }
        if let Some(err) = &x.browser_error {
            let _ = writeln!(s, "  the browser refuses it: {err}");
        }
    }
    let verdict = match e.verdict {
        Verdict::Allowed => "ALLOWED: the page reads the response",
        Verdict::Blocked => "BLOCKED: the browser keeps the response from the page",
        Verdict::DecidedByUpstream => "DEPENDS ON THE UPSTREAM: CORS is off for this route",
        Verdict::SameOrigin => "ALLOWED: same-origin, CORS does not apply",
        Verdict::RefusedByBrowser => "REFUSED: the browser never sends this request",
    };
    let _ = writeln!(s, "\nVerdict: {verdict}");
    if e.engines.is_empty() {
        if let Some(message) = &e.console_message {
            let _ = writeln!(s, "Chromium prints:\n  {message}");
        }
    }
    for engine in &e.engines {
        let verdict = match engine.verdict {
            None => "no prediction",
            Some(Verdict::Allowed | Verdict::SameOrigin) => "allowed",
            Some(Verdict::Blocked) => "blocked",
            Some(Verdict::DecidedByUpstream) => "depends on the upstream",
            Some(Verdict::RefusedByBrowser) => "refused before sending",
        };
        let _ = writeln!(s, "{}: {verdict}", engine.engine.title());
        if !engine.console_messages.is_empty() {
            let _ = writeln!(s, "  prints:");
            for message in &engine.console_messages {
                let _ = writeln!(s, "    {message}");
            }
        }
        if let Some(error) = &engine.js_error {
            let _ = writeln!(s, "  fetch() rejects with: TypeError: {error}");
        }
        if let Some(note) = &engine.note {
            let _ = writeln!(s, "  note: {note}");
        }
    }
    if e.verdict == Verdict::Allowed && !e.readable_headers.is_empty() {
        let _ = writeln!(
            s,
            "JavaScript can read: status, body, and headers {}",
            e.readable_headers.join(", ")
        );
    }
    if !e.fixes.is_empty() {
        let _ = writeln!(s, "\nFix:");
        for fix in &e.fixes {
            let _ = writeln!(s, "  {} — in {}:\n    {}", fix.why, fix.key, fix.line);
            if !fix.also_opens.is_empty() {
                let _ = writeln!(s, "    this also opens: {}", fix.also_opens.join(", "));
            }
        }
    }
    s
}

fn render_clients(s: &mut String, c: &ClientExplanation, refused: bool) {
    let _ = writeln!(
        s,
        "\nClient-scoped route; registry: {} (revision {}, {} clients)",
        c.registry, c.registry_revision, c.registry_clients
    );
    for source in &c.sources {
        match &source.client {
            Some(id) => {
                let _ = writeln!(s, "  {}: names {id:?} ({})", source.source, source.detail);
            }
            None => {
                let _ = writeln!(s, "  {}: nothing ({})", source.source, source.detail);
            }
        }
    }
    match (&c.client, &c.named_by) {
        (Some(id), Some(by)) => {
            let by = if by == "client" {
                "given with --client"
            } else {
                by.as_str()
            };
            let known = if c.registered {
                format!("registered, origins [{}]", c.client_origins.join(", "))
            } else {
                "not registered".to_owned()
            };
            let _ = writeln!(s, "  client: {id:?}, named by {by}; {known}");
        }
        _ if c.decided_by == DecidedBy::StaticList && !refused => {
            let _ = writeln!(
                s,
                "  client: not read (the static list allows the origin; no source is read)"
            );
        }
        _ => {
            let _ = writeln!(s, "  client: none named");
        }
    }
    if let Some(by) = c.preflight_decided_by {
        let _ = writeln!(s, "  the preflight is decided by {}", by.describe());
    }
    let _ = writeln!(
        s,
        "  the actual request is decided by {}",
        c.decided_by.describe()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_network_access_note_only_for_insecure_pages_on_more_public_addresses() {
        // A plain-http page from a public site calling loopback: noted.
        assert!(local_network_note(Some("127.0.0.1"), "http://app.example.com").is_some());
        assert!(local_network_note(Some("localhost"), "null").is_some());
        assert!(local_network_note(Some("10.0.0.5"), "http://app.example.com").is_some());
        assert!(local_network_note(Some("[::1]"), "http://203.0.113.9:8080").is_some());
        // A secure context, or a page no more public than the URL: no note.
        assert!(local_network_note(Some("127.0.0.1"), "https://app.example.com").is_none());
        assert!(local_network_note(Some("127.0.0.1"), "http://localhost:3000").is_none());
        assert!(local_network_note(Some("10.0.0.5"), "http://192.168.1.2:8080").is_none());
        assert!(local_network_note(Some("app.localhost"), "http://127.0.0.1:5173").is_none());
        // A public URL: never.
        assert!(local_network_note(Some("api.example.com"), "http://app.example.com").is_none());
        assert!(local_network_note(None, "null").is_none());
    }
}
