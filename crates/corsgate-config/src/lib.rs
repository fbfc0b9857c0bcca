//! The gateway configuration: file → checked model ([`model`]) → compiled
//! [`GatewayConfig`], whose [`RouteTable`] resolves each request to its route and
//! CORS policy.
//!
//! Every problem of a file is reported at once, each with its line and column
//! ([`Located`], whose `Display` is the one-line form `check`, `serve` and reload
//! print). This crate does no IO beyond what it is given: the gateway, `check`,
//! `explain`, `import` and the fuzzer all read files through it.
//!
//! ```
//! let checked = corsgate_config::check(corsgate_config::DEFAULT_CONFIG);
//! let config = checked.gateway.expect("the demo configuration is valid");
//! let matched = config.routes.resolve(None, "/api/users");
//! assert!(matched.route.is_some());
//! ```

#![warn(missing_docs, missing_debug_implementations)]

pub mod canonical;
#[cfg(test)]
mod doc_keys;
pub mod load;
pub mod model;
mod read;
pub mod registry;
pub mod selfloop;
mod table;
pub mod tls;
pub mod trust;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use corsgate_policy::{ConfigLayer, CorsConfig, Diagnostic, DiagnosticKind, Policy};

use canonical::{PathCase, PathRules};
pub use load::{Located, Summary};
use model::{FileConfig, RouteCors};
pub use table::{Route, RouteMatch, RouteTable, Transport, Upstream};
use trust::Cidr;

/// The configuration `corsgate serve` runs when given no file: a demo API behind a
/// development policy.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// A starting point for a production configuration, without the demo API: what
/// `corsgate serve --print-default-config` prints.
pub const STARTING_CONFIG: &str = include_str!("starting_point.toml");

/// A compiled configuration: everything the gateway needs, validated.
///
/// ```
/// use http::{HeaderMap, Method};
///
/// let checked = corsgate_config::check(r#"
///     [server]
///     listen = "127.0.0.1:8080"
///
///     [server.cors]
///     allow_origins = ["https://app.example.com"]
///
///     [[route]]
///     path = "/api"
///     upstream = "http://127.0.0.1:9000"
///
///     [[route]]
///     path = "/login"
///     upstream = "http://127.0.0.1:9001"
///     cors = "closed"
/// "#);
/// assert!(!checked.has_errors(), "{:?}", checked.problems);
/// let gateway = checked.gateway.unwrap();
/// assert_eq!(gateway.settings.listen.port(), 8080);
///
/// let mut request = HeaderMap::new();
/// request.insert("origin", "https://app.example.com".parse().unwrap());
/// let allowed = |path: &str| {
///     let policy = gateway.routes.resolve(None, path).policy.unwrap();
///     policy.decide(&Method::GET, &request).is_allowed()
/// };
/// assert!(allowed("/api/items"));
/// assert!(!allowed("/login"));
/// ```
#[derive(Debug)]
pub struct GatewayConfig {
    /// `[server]`: listeners, timeouts and limits.
    pub settings: Settings,
    /// The routes and `[server.cors]`, compiled.
    pub routes: RouteTable,
    /// The effective configuration, normalized, for `/config`.
    pub effective: FileConfig,
    /// What `check` would print as warnings; the file still loads.
    pub warnings: Vec<Located>,
    /// The file as written, before defaults and inheritance: where explain's
    /// fixes go (a key a route sets itself, or one it inherits), for the
    /// admin listener's `/explain` and `/refusals`.
    pub source: FileConfig,
}

/// Listener, timeout and limit settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `listen`: the address the gateway serves on.
    pub listen: SocketAddr,
    /// `admin_listen`: the admin API's address (`None`: no admin listener).
    pub admin_listen: Option<SocketAddr>,
    /// `connect_timeout`: for a TCP connection to an upstream.
    pub connect_timeout: Duration,
    /// `response_timeout`: from the request sent upstream to the response head.
    pub response_timeout: Duration,
    /// `idle_timeout`: a client keep-alive connection with no request is closed.
    pub idle_timeout: Duration,
    /// `shutdown_timeout`: how long in-flight requests may finish after SIGTERM.
    pub shutdown_timeout: Duration,
    /// `max_header_bytes`: the largest request head (line and headers) accepted.
    pub max_header_bytes: usize,
    /// `max_connections`: client connections open at once.
    pub max_connections: usize,
    /// `max_body_bytes`: the largest request body (`None`: no limit).
    pub max_body_bytes: Option<u64>,
    /// How request paths are made canonical (`escaped_slashes`, `path_case`).
    pub path_rules: PathRules,
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: Vec<Cidr>,
    /// `body_timeout`: a client request body that stalls this long is cut.
    pub body_timeout: Duration,
    /// `upstream_body_timeout`: an upstream response body that stalls this long is cut.
    pub upstream_body_timeout: Duration,
    /// `max_upstream_connections`: connections to one upstream at once.
    pub max_upstream_connections: usize,
    /// `max_idle_per_upstream`: idle connections kept per upstream for reuse.
    pub max_idle_per_upstream: usize,
    /// `upstream_idle_timeout`: an idle upstream connection is closed after this.
    pub upstream_idle_timeout: Duration,
    /// `upstream_queue_timeout`: how long a request waits for an upstream connection.
    pub upstream_queue_timeout: Duration,
    /// `websocket_idle_timeout`: a WebSocket tunnel with no traffic is closed.
    pub websocket_idle_timeout: Duration,
    /// A client connection (or HTTP/2 stream) with response bytes waiting that
    /// takes none of them for this long is closed (reset).
    pub send_timeout: Duration,
    /// Streams one HTTP/2 client connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Requests one client connection may make; then it is closed after them.
    pub max_requests_per_connection: u64,
    /// Whether `max_connections` was written in the file: if not, the gateway
    /// may lower it to what `RLIMIT_NOFILE` holds instead of refusing to start.
    pub max_connections_configured: bool,
    /// Host names, besides IP literals and `localhost`, that the admin listener
    /// answers (lowercase, without port).
    pub admin_hosts: Vec<String>,
    /// One log line per request (`access_log`), on unless set to `false`.
    pub access_log: bool,
    /// `[server.tls]`: HTTPS on `listen` when set.
    pub tls: Option<tls::TlsSettings>,
    /// File with the admin API's bearer token (`None`: writes refused).
    pub admin_token_file: Option<std::path::PathBuf>,
    /// `[registry]`, when the file has one.
    pub registry: Option<registry::RegistrySettings>,
    /// `shadow_config`: a candidate configuration evaluated on every request
    /// and never enforced, as written (relative to the file's folder).
    pub shadow_config: Option<std::path::PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: None,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            max_connections: 10_000,
            max_body_bytes: None,
            path_rules: PathRules::default(),
            trusted_proxies: Vec::new(),
            body_timeout: Duration::from_secs(60),
            upstream_body_timeout: Duration::from_secs(60),
            max_upstream_connections: 1024,
            max_idle_per_upstream: 128,
            upstream_idle_timeout: Duration::from_secs(60),
            upstream_queue_timeout: Duration::from_secs(5),
            websocket_idle_timeout: Duration::from_secs(300),
            send_timeout: Duration::from_secs(60),
            max_concurrent_streams: 100,
            max_requests_per_connection: 1000,
            max_connections_configured: false,
            admin_hosts: Vec::new(),
            access_log: true,
            tls: None,
            admin_token_file: None,
            registry: None,
            shadow_config: None,
        }
    }
}

/// Every problem of a file, or the compiled gateway (with its warnings).
#[derive(Debug)]
pub struct Checked {
    /// The compiled configuration, when the file has no error.
    pub gateway: Option<GatewayConfig>,
    /// Errors and warnings, in file order.
    pub problems: Vec<Located>,
}

impl Checked {
    /// Whether any problem is an error (warnings alone still load).
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.diagnostic.is_error())
    }

    /// How many errors and warnings the file has.
    pub fn summary(&self) -> Summary {
        Summary::of(&self.problems)
    }
}

/// Reads and compiles a configuration text.
pub fn check(text: &str) -> Checked {
    let parsed = load::parse(text);
    let mut problems = parsed.problems;
    let mut gateway = None;
    if let Some(config) = &parsed.config {
        let (compiled, diagnostics) = compile(config);
        let mut seen = HashSet::new();
        for diagnostic in diagnostics {
            // A problem of [server.cors] shows up once, not once per route.
            if seen.insert((
                diagnostic.path().to_owned(),
                diagnostic.kind(),
                diagnostic.message().to_owned(),
            )) {
                problems.push(parsed.source.locate(diagnostic));
            }
        }
        gateway = compiled;
    }
    load::sort(&mut problems);
    let has_errors = problems.iter().any(|p| p.diagnostic.is_error());
    if has_errors {
        gateway = None;
    }
    if let Some(gateway) = &mut gateway {
        gateway.warnings = problems.clone();
        gateway.source = parsed.config.unwrap_or_default();
    }
    Checked { gateway, problems }
}

fn compile(config: &FileConfig) -> (Option<GatewayConfig>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let server = config.server.clone().unwrap_or_default();
    let mut settings = settings(&server, &mut diagnostics);
    let registry = config
        .registry
        .as_ref()
        .and_then(|r| registry::settings(r, &mut diagnostics));
    if let Some(settings) = &mut settings {
        settings.admin_token_file = server.admin_token_file.as_ref().map(Into::into);
        settings.registry = registry;
    }
    let settings_rules = settings.as_ref().map(|s| s.path_rules).unwrap_or_default();
    let empty = CorsConfig::default();
    let server_cors = server.cors.as_ref().unwrap_or(&empty);
    // One allocation, shared by every route without a `cors` table of its own.
    let default_policy = collect(
        Policy::compile_layered(&[ConfigLayer::new(server_cors, "server.cors")]),
        &mut diagnostics,
    )
    .map(Arc::new);

    let policies = named_policies(config, server_cors, &mut diagnostics);
    let mut used = HashSet::new();

    let mut routes = Vec::new();
    let mut seen = HashSet::new();
    for (index, route) in config.route.iter().enumerate() {
        let at = format!("route[{index}]");
        let path = match &route.path {
            None => {
                diagnostics.push(Diagnostic::error(
                    DiagnosticKind::File,
                    &at,
                    "a route needs a path, such as path = \"/api\"",
                ));
                None
            }
            Some(path) if !path.starts_with('/') && !path.contains(['?', '#', ' ', ':']) => {
                diagnostics.push(
                    Diagnostic::error(
                        DiagnosticKind::File,
                        format!("{at}.path"),
                        format!("a route path starts with /; use {:?}", format!("/{path}")),
                    )
                    .with_value(path),
                );
                None
            }
            Some(path) if !path.starts_with('/') || path.contains(['?', '#', ' ']) => {
                diagnostics.push(
                    Diagnostic::error(
                        DiagnosticKind::File,
                        format!("{at}.path"),
                        "a route path starts with / and has no query, fragment or space",
                    )
                    .with_value(path),
                );
                None
            }
            Some(path) => match route_path(path, settings_rules) {
                Ok(path) => Some(path),
                Err(why) => {
                    diagnostics.push(
                        Diagnostic::error(DiagnosticKind::File, format!("{at}.path"), why)
                            .with_value(path),
                    );
                    None
                }
            },
        };
        let host = match route.host.as_deref().map(canonical::route_host) {
            None => None,
            Some(Ok(host)) => Some(host),
            Some(Err(why)) => {
                diagnostics.push(
                    Diagnostic::error(DiagnosticKind::File, format!("{at}.host"), why)
                        .with_value(route.host.as_deref().unwrap_or_default()),
                );
                None
            }
        };
        if path
            .as_ref()
            .is_some_and(|path| !seen.insert((host.clone(), path.clone())))
        {
            diagnostics.push(
                Diagnostic::error(
                    DiagnosticKind::File,
                    format!("{at}.path"),
                    "another route has the same path (and host); remove one",
                )
                .with_value(path.as_deref().unwrap_or_default()),
            );
        }
        let upstream = match &route.upstream {
            None => {
                diagnostics.push(Diagnostic::error(
                    DiagnosticKind::File,
                    &at,
                    "a route needs an upstream, such as upstream = \"http://127.0.0.1:3000\"",
                ));
                None
            }
            Some(text) => parse_upstream(text, &format!("{at}.upstream"), &mut diagnostics),
        };
        let upstream =
            tls::compile_upstream_tls(upstream, route.upstream_tls.as_ref(), &at, &mut diagnostics);
        if let (
            Some(Upstream::Http {
                authority,
                transport,
            }),
            Some(settings),
        ) = (&upstream, &settings)
        {
            if selfloop::reaches_listener_at(authority, transport.default_port(), settings.listen) {
                diagnostics.push(self_loop(&at, route, &server, settings.listen));
            }
        }
        let cors_path = format!("{at}.cors");
        let mut policy_name = None;
        let policy = match &route.cors {
            Some(RouteCors::Off(_)) => {
                diagnostics.push(Diagnostic::warning(
                    DiagnosticKind::File,
                    &cors_path,
                    "with cors = \"off\" the upstream's own CORS headers reach browsers unchecked; to keep the route closed to other origins, write cors = \"closed\"",
                ));
                None
            }
            // On its own, not layered over [server.cors]: an inherited
            // on_disallowed = "reject" would refuse the route's own
            // same-origin POSTs, which carry Origin too (Fetch §3.1).
            Some(RouteCors::Closed(_)) => collect(
                Policy::compile_layered(&[ConfigLayer::new(
                    &CorsConfig::default().allow_origins(Vec::<String>::new()),
                    &cors_path,
                )]),
                &mut diagnostics,
            )
            .map(Arc::new),
            Some(RouteCors::Named(name)) => {
                used.insert(name.clone());
                policy_name = Some(name.clone());
                match policies.get(name) {
                    Some(named) => named.compiled.clone(),
                    None => {
                        diagnostics.push(unknown_policy(&cors_path, name, &policies));
                        None
                    }
                }
            }
            Some(RouteCors::Table(table)) => match &table.policy {
                None => collect(
                    Policy::compile_layered(&[
                        ConfigLayer::new(&table.cors, &cors_path),
                        ConfigLayer::new(server_cors, "server.cors"),
                    ]),
                    &mut diagnostics,
                )
                .map(Arc::new),
                Some(name) => {
                    used.insert(name.clone());
                    policy_name = Some(name.clone());
                    let at = format!("{cors_path}.policy");
                    match policies.get(name) {
                        None => {
                            diagnostics.push(unknown_policy(&at, name, &policies));
                            None
                        }
                        Some(named) => {
                            let own = model::keys_set(&table.cors);
                            let from_policy = model::keys_set(named.written);
                            if !from_policy.is_empty()
                                && from_policy.iter().all(|key| own.contains(key))
                            {
                                diagnostics.push(
                                    Diagnostic::warning(
                                        DiagnosticKind::File,
                                        &at,
                                        format!(
                                            "this table sets every key of [policies.{name}] ({}), so the policy is shadowed and changes to it never reach this route; remove policy = {name:?}, or the keys that repeat it",
                                            from_policy.join(", ")
                                        ),
                                    )
                                    .with_value(name),
                                );
                            }
                            let policy_path = format!("policies.{name}");
                            collect(
                                Policy::compile_layered(&[
                                    ConfigLayer::new(&table.cors, &cors_path),
                                    ConfigLayer::new(named.written, &policy_path),
                                    ConfigLayer::new(server_cors, "server.cors"),
                                ]),
                                &mut diagnostics,
                            )
                            .map(Arc::new)
                        }
                    }
                }
            },
            None => default_policy.clone(),
        };
        let (Some(upstream), Some(path)) = (upstream, path) else {
            continue;
        };
        if route
            .cors
            .as_ref()
            .is_some_and(|c| !matches!(c, RouteCors::Off(_)))
            && policy.is_none()
        {
            continue;
        }
        routes.push(Route {
            index,
            name: format!(
                "{index}:{}{}",
                host.as_deref().unwrap_or(""),
                route.path.as_deref().unwrap_or("")
            ),
            label: route_label(index, host.as_deref(), route.path.as_deref()),
            policy_name,
            segments: canonical::segment_count(&path),
            path,
            host,
            upstream,
            strip_prefix: route.strip_prefix.unwrap_or(false),
            policy,
        });
    }
    for name in config.policies.keys() {
        if !used.contains(name) && !RESERVED_POLICY_NAMES.contains(&name.as_str()) {
            diagnostics.push(Diagnostic::warning(
                DiagnosticKind::File,
                format!("policies.{name}"),
                format!("no route uses this policy; name it on a route with cors = {name:?}, or remove it"),
            ));
        }
    }
    if let Some(settings) = &settings {
        exposure_warnings(config, &server, settings, &mut diagnostics);
        timeout_warnings(&server, settings, &mut diagnostics);
    }
    if config.route.is_empty() {
        // Without a route every request is a 404. An empty file (or a prefix
        // of one, cut before its first route) must never be served by mistake:
        // the security review's F8.
        diagnostics.push(Diagnostic::error(
            DiagnosticKind::File,
            "route",
            "no route: corsgate would answer every request with 404; add at least one [[route]] with a path and an upstream, such as [[route]] path = \"/\" upstream = \"http://127.0.0.1:3000\"",
        ));
    }
    registry::check_clients_need_registry(
        config,
        &routes,
        default_policy.as_deref(),
        &mut diagnostics,
    );
    if diagnostics.iter().any(Diagnostic::is_error) {
        return (None, diagnostics);
    }
    let (Some(settings), Some(default_policy)) = (settings, default_policy) else {
        return (None, diagnostics);
    };
    let effective = effective_config(config, &settings, &default_policy, &routes);
    let routes = RouteTable::new(default_policy, routes, settings.path_rules.path_case);
    let gateway = GatewayConfig {
        settings,
        routes,
        effective,
        warnings: Vec::new(),
        // Moved in by `check`, which owns the parsed file.
        source: FileConfig::default(),
    };
    (Some(gateway), diagnostics)
}

/// Settings that are valid but show more than they should to whoever reaches
/// the listeners: the admin listener off loopback, debug mode on a listener
/// that is not loopback.
/// Timeouts that can never fire: `response_timeout` runs from the moment a
/// request is handed to the upstream pool, so it also covers the wait for a
/// connection (`upstream_queue_timeout`) and its opening (`connect_timeout`).
/// One not shorter than it is overtaken: the client gets `response_timeout`'s
/// `504 upstream-timeout`, never its own answer (`503`, `504
/// upstream-connect-timeout`), and the metrics and logs say the upstream was
/// slow to answer when it was never reached.
fn timeout_warnings(
    server: &model::ServerConfig,
    settings: &Settings,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let response = settings.response_timeout;
    let inner = [
        (
            "connect_timeout",
            settings.connect_timeout,
            &server.connect_timeout,
            "504 upstream-connect-timeout",
        ),
        (
            "upstream_queue_timeout",
            settings.upstream_queue_timeout,
            &server.upstream_queue_timeout,
            "503 upstream-busy",
        ),
    ];
    for (key, timeout, written, answer) in inner {
        if timeout < response {
            continue;
        }
        // Where the file says it: the inner key if written, else
        // response_timeout (one of the two is, as the defaults agree).
        let (at, value) = match written {
            Some(value) => (format!("server.{key}"), value.clone()),
            None => (
                "server.response_timeout".to_owned(),
                server.response_timeout.clone().unwrap_or_default(),
            ),
        };
        diagnostics.push(
            Diagnostic::warning(
                DiagnosticKind::File,
                at,
                format!(
                    "{key} ({timeout:?}) is not shorter than response_timeout ({response:?}), which also runs while a request waits for and opens its upstream connection: {key} never fires, and the client gets response_timeout's 504 instead of {answer}; make {key} shorter than response_timeout"
                ),
            )
            .with_value(value),
        );
    }
}

fn exposure_warnings(
    config: &FileConfig,
    server: &model::ServerConfig,
    settings: &Settings,
    diagnostics: &mut Vec<Diagnostic>,
) {
    if let Some(admin) = settings.admin_listen {
        if !admin.ip().is_loopback() {
            diagnostics.push(
                Diagnostic::warning(
                    DiagnosticKind::File,
                    "server.admin_listen",
                    format!(
                        "the admin listener is not on loopback: whoever reaches {admin} reads /metrics and /config (the whole configuration); bind it to \"127.0.0.1:{}\" and let the scraper reach it through a sidecar or a tunnel",
                        admin.port()
                    ),
                )
                .with_value(server.admin_listen.as_deref().unwrap_or_default()),
            );
        }
    }
    if settings.listen.ip().is_loopback() {
        return;
    }
    let mut tables: Vec<(String, &CorsConfig)> = Vec::new();
    if let Some(cors) = &server.cors {
        tables.push(("server.cors".to_owned(), cors));
    }
    for (name, cors) in &config.policies {
        tables.push((format!("policies.{name}"), cors));
    }
    for (i, route) in config.route.iter().enumerate() {
        if let Some(RouteCors::Table(table)) = &route.cors {
            tables.push((format!("route[{i}].cors"), &table.cors));
        }
    }
    for (at, cors) in tables {
        if cors.debug == Some(true) {
            diagnostics.push(
                Diagnostic::warning(
                    DiagnosticKind::File,
                    format!("{at}.debug"),
                    format!(
                        "debug mode on a listener that is not loopback ({}): every site learns from refused preflights which methods and headers are allowed; keep debug = true to development on 127.0.0.1",
                        settings.listen
                    ),
                )
                .with_value("true"),
            );
        }
    }
}

/// How `explain`, logs and `check` name a route:
/// `route[5] (host "login.example.com", path "/")`, or `route[0] (path "/api")`
/// for a route of any host.
pub fn route_label(index: usize, host: Option<&str>, path: Option<&str>) -> String {
    let path = path.unwrap_or_default();
    match host {
        Some(host) => format!("route[{index}] (host {host:?}, path {path:?})"),
        None => format!("route[{index}] (path {path:?})"),
    }
}

/// Names a route's `cors` takes for what they say, never as policy names.
const RESERVED_POLICY_NAMES: &[&str] = &["off", "closed"];

/// A `[policies.NAME]` table as written and compiled over `[server.cors]`
/// (`None` when it has errors).
struct NamedPolicy<'c> {
    written: &'c CorsConfig,
    compiled: Option<Arc<Policy>>,
}

/// Compiles every `[policies.NAME]` once, used or not, so that its problems
/// are reported at its own keys; routes naming it share the allocation.
fn named_policies<'c>(
    config: &'c FileConfig,
    server_cors: &CorsConfig,
    diagnostics: &mut Vec<Diagnostic>,
) -> std::collections::BTreeMap<String, NamedPolicy<'c>> {
    let mut out = std::collections::BTreeMap::new();
    for (name, written) in &config.policies {
        let at = format!("policies.{name}");
        if RESERVED_POLICY_NAMES.contains(&name.as_str()) {
            diagnostics.push(
                Diagnostic::error(
                    DiagnosticKind::File,
                    &at,
                    format!(
                        "{name:?} is reserved: cors = {name:?} means {}, never a policy; rename the policy",
                        if name == "off" {
                            "no CORS handling"
                        } else {
                            "no origin allowed"
                        }
                    ),
                )
                .with_value(name),
            );
            continue;
        }
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            diagnostics.push(
                Diagnostic::error(
                    DiagnosticKind::File,
                    &at,
                    "a policy name is letters, digits, '-' and '_', such as [policies.spa]",
                )
                .with_value(name),
            );
            continue;
        }
        let compiled = collect(
            Policy::compile_layered(&[
                ConfigLayer::new(written, &at),
                ConfigLayer::new(server_cors, "server.cors"),
            ]),
            diagnostics,
        )
        .map(Arc::new);
        out.insert(name.clone(), NamedPolicy { written, compiled });
    }
    out
}

/// A `cors = "NAME"` (or `policy = "NAME"`) with no `[policies.NAME]`.
fn unknown_policy(
    at: &str,
    name: &str,
    policies: &std::collections::BTreeMap<String, NamedPolicy<'_>>,
) -> Diagnostic {
    let message = if RESERVED_POLICY_NAMES.contains(&name) {
        format!("{name:?} is not a policy to start from; write cors = {name:?} instead of a table")
    } else {
        let closest = policies
            .keys()
            .map(String::as_str)
            .chain(RESERVED_POLICY_NAMES.iter().copied())
            .map(|k| (strsim::levenshtein(k, name), k))
            .filter(|(d, _)| *d <= 3)
            .min();
        match closest {
            Some((_, meant)) => format!("no [policies.{name}] table; did you mean {meant:?}?"),
            None if policies.is_empty() => {
                format!("no [policies.{name}] table; {}", load::CORS_VALUES)
            }
            None => format!(
                "no [policies.{name}] table; the policies are {}",
                policies
                    .keys()
                    .map(|k| format!("{k:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    };
    Diagnostic::error(DiagnosticKind::File, at, message).with_value(name)
}

fn collect(
    result: Result<Policy, corsgate_policy::CompileError>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Policy> {
    match result {
        Ok(policy) => {
            diagnostics.extend(policy.warnings().iter().cloned());
            Some(policy)
        }
        Err(err) => {
            diagnostics.extend(err.into_diagnostics());
            None
        }
    }
}

/// A route `path` in the form request paths are matched in, or why no
/// canonical request path can ever match it, with the fix.
fn route_path(path: &str, rules: PathRules) -> Result<String, String> {
    if path.contains(';') {
        return Err(
            "routes are matched without ;parameters (as a Servlet container does), so this path never matches; remove the ;part"
                .into(),
        );
    }
    let canonical = match canonical::canonical_path(path, &rules) {
        Ok(canonical) => canonical,
        Err(canonical::TargetRefusal::EscapedSlash) => {
            return Err(
                "requests with %2F or %5C are refused (escaped_slashes = \"reject\"), so this path never matches"
                    .into(),
            );
        }
        Err(_) => {
            return Err(
                "requests with this path are refused with 400 (see \"Request targets\" in docs/security.md), so it never matches"
                    .into(),
            );
        }
    };
    if canonical != path {
        return Err(format!(
            "requests are matched in their canonical form (decoded %xx of letters, digits and -._~, uppercase hex, no . or .. segments, no //), so this path never matches; use {canonical:?}"
        ));
    }
    let prefix = normalize_prefix(path);
    Ok(match rules.path_case {
        PathCase::Sensitive => prefix,
        PathCase::Insensitive => prefix.to_ascii_lowercase(),
    })
}

fn normalize_prefix(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// The refusal of a route whose upstream is the gateway's own listener.
fn self_loop(
    at: &str,
    route: &model::RouteConfig,
    server: &model::ServerConfig,
    listen: SocketAddr,
) -> Diagnostic {
    let listen = match &server.listen {
        Some(written) => format!("server.listen = {written:?}"),
        None => format!("server.listen, {listen} when not written"),
    };
    Diagnostic::error(
        DiagnosticKind::File,
        format!("{at}.upstream"),
        format!(
            "this is the gateway's own listen address ({listen}): every request would come back to corsgate and be forwarded again until it fails; point upstream at the service behind corsgate (its own host:port), or move listen"
        ),
    )
    .with_value(route.upstream.as_deref().unwrap_or_default())
}

fn parse_upstream(text: &str, path: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<Upstream> {
    if text == "builtin:demo" {
        return Some(Upstream::Demo);
    }
    let fail = |diagnostics: &mut Vec<Diagnostic>, why: &str| {
        diagnostics
            .push(Diagnostic::error(DiagnosticKind::File, path, why.to_owned()).with_value(text));
        None
    };
    // `127.0.0.1:3000` or `localhost:3000`: the scheme forgotten.
    if !text.contains("://") && format!("http://{text}").parse::<http::Uri>().is_ok() {
        return fail(
            diagnostics,
            &format!(
                "an upstream is a URL with its scheme; use {:?}",
                format!("http://{text}")
            ),
        );
    }
    let Ok(uri) = text.parse::<http::Uri>() else {
        return fail(
            diagnostics,
            "not a URL; write the upstream as http://host:port (or https://, h2c://)",
        );
    };
    let transport = match uri.scheme_str() {
        Some("http") => Transport::Http1,
        Some("https") => Transport::Https(tls::UpstreamTls::default()),
        // HTTP/2 without TLS, with prior knowledge (RFC 9113 section 3.3):
        // gRPC services behind the gateway on a private network.
        Some("h2c") => Transport::H2c,
        _ => {
            return fail(
                diagnostics,
                "an upstream is http://host:port (HTTP/1.1), https://host:port (TLS; HTTP/2 or HTTP/1.1 by ALPN) or h2c://host:port (HTTP/2 without TLS)",
            );
        }
    };
    if uri
        .path_and_query()
        .is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty())
    {
        return fail(
            diagnostics,
            "an upstream is scheme://host:port without a path; use strip_prefix to change request paths",
        );
    }
    match uri.authority() {
        Some(authority) if !authority.as_str().contains('@') => Some(Upstream::Http {
            authority: authority.clone(),
            transport,
        }),
        _ => fail(diagnostics, "an upstream is scheme://host:port"),
    }
}

/// `[server]`: the scalar keys in [`server_scalars`], the lists and tables
/// after them.
fn settings(server: &model::ServerConfig, diagnostics: &mut Vec<Diagnostic>) -> Option<Settings> {
    let errors_before = diagnostics.iter().filter(|d| d.is_error()).count();
    let mut s = Settings::default();
    let m = server;
    server_scalars(m, &mut s, &mut read::Reader::new("server", diagnostics));
    s.max_connections_configured = m.max_connections.is_some();
    for (i, text) in m.trusted_proxies.iter().flatten().enumerate() {
        match Cidr::parse(text) {
            Ok(cidr) => s.trusted_proxies.push(cidr),
            Err(why) => diagnostics.push(
                Diagnostic::error(
                    DiagnosticKind::File,
                    format!("server.trusted_proxies[{i}]"),
                    why,
                )
                .with_value(text),
            ),
        }
    }
    if let Some(hosts) = &m.admin_hosts {
        s.admin_hosts = admin_hosts(hosts, diagnostics);
    }
    if let Some(tls) = &m.tls {
        s.tls = tls::compile(tls, s.listen, s.admin_listen, diagnostics);
    }
    if let Some(path) = &m.shadow_config {
        // A path only: the file is read and checked by the gateway, which
        // knows where this file is (and reloads the candidate on its own).
        if path.trim().is_empty() {
            diagnostics.push(
                Diagnostic::error(
                    DiagnosticKind::File,
                    "server.shadow_config",
                    "shadow_config names a file, such as \"candidate.toml\" (next to this file); remove the key to run without a shadow configuration",
                )
                .with_value(path),
            );
        } else {
            s.shadow_config = Some(path.into());
        }
    }
    let errors_after = diagnostics.iter().filter(|d| d.is_error()).count();
    (errors_after == errors_before).then_some(s)
}

/// The scalar keys of `[server]`, one line each: how a kind of value is read
/// and refused is its reader's (`read.rs`), a key's bounds are here, its
/// default is [`Settings::default`]'s. Laid out as a table, so unformatted.
#[rustfmt::skip]
fn server_scalars(m: &model::ServerConfig, s: &mut Settings, r: &mut read::Reader<'_>) {
    if let Some(listen) = r.address("listen", &m.listen) { s.listen = listen; }
    s.admin_listen = r.address("admin_listen", &m.admin_listen);
    r.duration("connect_timeout", &m.connect_timeout, &mut s.connect_timeout);
    r.duration("response_timeout", &m.response_timeout, &mut s.response_timeout);
    r.duration("idle_timeout", &m.idle_timeout, &mut s.idle_timeout);
    r.duration("shutdown_timeout", &m.shutdown_timeout, &mut s.shutdown_timeout);
    r.count("max_header_bytes", m.max_header_bytes, 4096..=1 << 24, &mut s.max_header_bytes);
    r.count("max_connections", m.max_connections, 1..=1 << 20, &mut s.max_connections);
    r.limit("max_body_bytes", m.max_body_bytes, &mut s.max_body_bytes);
    r.choice("escaped_slashes", &m.escaped_slashes, &mut s.path_rules.escaped_slashes);
    r.choice("path_case", &m.path_case, &mut s.path_rules.path_case);
    r.duration("body_timeout", &m.body_timeout, &mut s.body_timeout);
    r.duration("upstream_body_timeout", &m.upstream_body_timeout, &mut s.upstream_body_timeout);
    r.count("max_upstream_connections", m.max_upstream_connections, 1..=1 << 20, &mut s.max_upstream_connections);
    r.count("max_idle_per_upstream", m.max_idle_per_upstream, 0..=1 << 20, &mut s.max_idle_per_upstream);
    r.duration("upstream_idle_timeout", &m.upstream_idle_timeout, &mut s.upstream_idle_timeout);
    r.duration("upstream_queue_timeout", &m.upstream_queue_timeout, &mut s.upstream_queue_timeout);
    r.duration("websocket_idle_timeout", &m.websocket_idle_timeout, &mut s.websocket_idle_timeout);
    r.duration("send_timeout", &m.send_timeout, &mut s.send_timeout);
    r.count("max_concurrent_streams", m.max_concurrent_streams, 1..=100_000, &mut s.max_concurrent_streams);
    r.count("max_requests_per_connection", m.max_requests_per_connection, 1..=1_000_000_000, &mut s.max_requests_per_connection);
    r.flag("access_log", m.access_log, &mut s.access_log);
}

/// `admin_hosts`: DNS names as a `Host` header carries them, lowercase,
/// without port or trailing dot (the admin listener compares them so).
fn admin_hosts(hosts: &[String], diagnostics: &mut Vec<Diagnostic>) -> Vec<String> {
    let mut out = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        let at = format!("server.admin_hosts[{i}]");
        let fix = host.trim_end_matches('.').to_ascii_lowercase();
        let problem = if host.is_empty() || host.len() > 253 {
            Some("a host name of 1 to 253 characters".to_owned())
        } else if host.contains(':') {
            Some(format!(
                "a host name without port (the port never matters): use {:?}",
                fix.split(':').next().unwrap_or_default()
            ))
        } else if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            Some(
                "a DNS name: letters, digits, '-' and '.' only (no wildcard, no scheme; a non-ASCII name in its xn-- form)"
                    .to_owned(),
            )
        } else if fix != *host {
            Some(format!(
                "a host name is compared lowercase and without trailing dot: use {fix:?}"
            ))
        } else {
            None
        };
        match problem {
            Some(message) => diagnostics
                .push(Diagnostic::error(DiagnosticKind::File, at, message).with_value(host)),
            None => out.push(fix),
        }
    }
    out
}

fn effective_config(
    config: &FileConfig,
    settings: &Settings,
    default_policy: &Policy,
    routes: &[Route],
) -> FileConfig {
    let secs = |d: Duration| humantime::format_duration(d).to_string();
    let server = model::ServerConfig {
        listen: Some(settings.listen.to_string()),
        admin_listen: settings.admin_listen.map(|a| a.to_string()),
        connect_timeout: Some(secs(settings.connect_timeout)),
        response_timeout: Some(secs(settings.response_timeout)),
        idle_timeout: Some(secs(settings.idle_timeout)),
        shutdown_timeout: Some(secs(settings.shutdown_timeout)),
        max_header_bytes: i64::try_from(settings.max_header_bytes).ok(),
        max_connections: i64::try_from(settings.max_connections).ok(),
        max_body_bytes: Some(
            settings
                .max_body_bytes
                .and_then(|b| i64::try_from(b).ok())
                .unwrap_or(0),
        ),
        escaped_slashes: Some(settings.path_rules.escaped_slashes.as_str().to_owned()),
        path_case: Some(settings.path_rules.path_case.as_str().to_owned()),
        trusted_proxies: Some(
            settings
                .trusted_proxies
                .iter()
                .map(ToString::to_string)
                .collect(),
        ),
        body_timeout: Some(secs(settings.body_timeout)),
        upstream_body_timeout: Some(secs(settings.upstream_body_timeout)),
        max_upstream_connections: i64::try_from(settings.max_upstream_connections).ok(),
        max_idle_per_upstream: i64::try_from(settings.max_idle_per_upstream).ok(),
        upstream_idle_timeout: Some(secs(settings.upstream_idle_timeout)),
        upstream_queue_timeout: Some(secs(settings.upstream_queue_timeout)),
        websocket_idle_timeout: Some(secs(settings.websocket_idle_timeout)),
        send_timeout: Some(secs(settings.send_timeout)),
        max_concurrent_streams: Some(i64::from(settings.max_concurrent_streams)),
        max_requests_per_connection: i64::try_from(settings.max_requests_per_connection).ok(),
        cors: Some(default_policy.effective_config().clone()),
        admin_hosts: Some(settings.admin_hosts.clone()),
        access_log: Some(settings.access_log),
        tls: settings.tls.as_ref().map(tls::TlsSettings::effective),
        admin_token_file: settings
            .admin_token_file
            .as_ref()
            .map(|p| p.display().to_string()),
        shadow_config: settings
            .shadow_config
            .as_ref()
            .map(|p| p.display().to_string()),
    };
    let mut by_index: Vec<&Route> = routes.iter().collect();
    by_index.sort_by_key(|r| r.index);
    let route = by_index
        .iter()
        .map(|r| {
            let written = config.route.get(r.index);
            model::RouteConfig {
                path: written.and_then(|w| w.path.clone()),
                host: r.host.clone(),
                upstream: written.and_then(|w| w.upstream.clone()),
                strip_prefix: Some(r.strip_prefix),
                upstream_tls: written.and_then(|w| w.upstream_tls.clone()),
                cors: Some(match &r.policy {
                    _ if written.is_some_and(|w| matches!(w.cors, Some(RouteCors::Closed(_)))) => {
                        RouteCors::Closed(model::Closed::Closed)
                    }
                    None => RouteCors::Off(model::Off::Off),
                    Some(policy) => RouteCors::from(policy.effective_config().clone()),
                }),
            }
        })
        .collect();
    FileConfig {
        server: Some(server),
        // Each route's policy is shown resolved.
        policies: Default::default(),
        route,
        registry: settings.registry.as_ref().map(|r| r.effective()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starting_config_is_valid_and_has_no_demo_route() {
        let checked = check(STARTING_CONFIG);
        let gateway = checked.gateway.expect("valid");
        assert!(gateway.warnings.is_empty(), "{:?}", gateway.warnings);
        assert!(gateway.routes.iter().all(|r| r.upstream != Upstream::Demo));
    }

    const FILE: &str = r#"
[server.cors]
allow_origins = ["https://app.example.com"]

[[route]]
path = "/a"
upstream = "http://127.0.0.1:9001"

[[route]]
path = "/b"
upstream = "http://127.0.0.1:9002"

[[route]]
path = "/a/own"
upstream = "http://127.0.0.1:9003"
cors = { allow_origins = ["https://own.example.com"] }

[[route]]
path = "/off"
upstream = "http://127.0.0.1:9004"
cors = "off"
"#;

    fn compiled() -> GatewayConfig {
        check(FILE).gateway.expect("valid")
    }

    #[test]
    fn routes_without_a_cors_table_share_the_default_policy_instead_of_a_copy_each() {
        let config = compiled();
        let default = config.routes.default_policy();
        for path in ["/a", "/b"] {
            let matched = config.routes.resolve(None, path);
            assert!(
                Arc::ptr_eq(matched.policy.expect("cors on"), default),
                "{path} holds a copy of the default policy"
            );
        }
        let own = config.routes.resolve(None, "/a/own/x");
        assert!(!Arc::ptr_eq(own.policy.expect("cors on"), default));
    }

    #[test]
    fn resolve_picks_the_longest_prefix_and_gives_its_policy() {
        let config = compiled();
        let own = config.routes.resolve(None, "/a/own/x");
        assert_eq!(own.route.map(|r| r.path.as_str()), Some("/a/own"));
        let a = config.routes.resolve(None, "/a/ownx");
        assert_eq!(a.route.map(|r| r.path.as_str()), Some("/a"));
        let off = config.routes.resolve(None, "/off");
        assert!(off.route.is_some() && off.policy.is_none());
        // No route: the default policy decides (so the 404 is readable).
        let none = config.routes.resolve(None, "/nowhere");
        assert!(none.route.is_none());
        assert!(Arc::ptr_eq(
            none.policy.expect("default"),
            config.routes.default_policy()
        ));
    }

    /// The timeout warnings of a `[server]` table (with one route), as
    /// displayed: location, key, value and message.
    fn timeout_warnings_of(server: &str) -> Vec<String> {
        let text = format!(
            "[server]\n{server}\n[server.cors]\nallow_origins = [\"https://app.example.com\"]\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9001\"\n"
        );
        let checked = check(&text);
        assert!(checked.gateway.is_some(), "{:?}", checked.problems);
        checked
            .problems
            .iter()
            .map(ToString::to_string)
            .filter(|line| line.contains("never fires"))
            .collect()
    }

    #[test]
    fn a_connect_or_queue_timeout_not_shorter_than_response_timeout_is_a_warning() {
        let connect = timeout_warnings_of("connect_timeout = \"30s\"");
        assert_eq!(connect.len(), 1, "{connect:?}");
        assert!(
            connect[0].starts_with("2:19: server.connect_timeout: warning: \"30s\": connect_timeout (30s) is not shorter than response_timeout (30s)"),
            "{connect:?}"
        );
        assert!(connect[0].contains("instead of 504 upstream-connect-timeout"));
        // Written only on response_timeout's side: located there.
        let response = timeout_warnings_of("response_timeout = \"2s\"");
        assert_eq!(response.len(), 2, "{response:?}");
        assert!(
            response
                .iter()
                .all(|w| w.starts_with("2:20: server.response_timeout: warning: \"2s\": ")),
            "{response:?}"
        );
        assert!(
            response[1].contains("upstream_queue_timeout (5s)"),
            "{response:?}"
        );
        // Shorter: nothing to say.
        assert!(
            timeout_warnings_of("connect_timeout = \"1s\"\nresponse_timeout = \"10s\"").is_empty()
        );
    }

    #[test]
    fn a_located_problem_displays_as_one_line_and_a_summary_counts() {
        let checked = check("[server]\nlisten = 5\n");
        let listen = checked
            .problems
            .iter()
            .find(|p| p.diagnostic.path() == "server.listen")
            .expect("a problem with listen");
        let line = listen.to_string();
        assert!(line.starts_with("2:"), "{line}");
        assert!(line.contains("server.listen: error: "), "{line}");
        let summary = checked.summary();
        assert!(summary.errors >= 1);
        assert!(summary.to_string().contains(" error"));
        assert_eq!(
            Summary {
                errors: 1,
                warnings: 2
            }
            .to_string(),
            "1 error, 2 warnings"
        );
    }
}
