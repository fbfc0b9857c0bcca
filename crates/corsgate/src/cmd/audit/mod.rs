//! `corsgate audit URL`: probes a live HTTP server (any server, not only corsgate)
//! for CORS misconfigurations, the way a careful attacker would, and reports each
//! finding with its severity, the exchange that proves it and the fix.
//!
//! Bounded: at most `--max-requests` requests, one at a time, each given at most
//! `--timeout`; only `GET` and `OPTIONS` unless `--method` names more. Plain
//! `http://` only: this build has no TLS client (audit a service over http on its
//! internal address).

mod client;
mod findings;
mod report;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use corsgate_policy::OriginPattern;
use http::{HeaderName, HeaderValue, Method, Uri};
use serde::Serialize;

pub use client::{Exchange, Received, SentRequest};
pub use findings::{FINDING_IDS, Finding, Severity};

use client::{Probe, Prober, SendError};
use findings::{Confusion, Findings};

use crate::{Format, Outcome};

/// Default of `--max-requests`.
pub const DEFAULT_MAX_REQUESTS: usize = 60;
/// Default of `--timeout`, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 5;
/// After this many probes without an answer in time, audit stops probing.
const MAX_TIMEOUTS: usize = 2;

/// What to audit and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// `http://host[:port]/path`.
    pub url: String,
    /// Origins the server is meant to allow (`--origin`).
    pub origins: Vec<String>,
    pub max_requests: usize,
    /// For each request, from sending it to the end of the response.
    pub timeout: Duration,
    /// Methods beyond GET and OPTIONS that audit may send (`--method`).
    pub methods: Vec<String>,
    /// `NAME:VALUE` headers added to actual requests (`--header`), such as a
    /// cookie or a token to get past authentication.
    pub headers: Vec<String>,
    /// `HOST:PORT:ADDR` (`--resolve`, as curl's): requests for the URL's host
    /// and port connect to ADDR instead of what DNS says, with the URL's `Host`.
    pub resolve: Vec<String>,
}

impl Options {
    /// Options with the defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Options {
            url: url.into(),
            origins: Vec::new(),
            max_requests: DEFAULT_MAX_REQUESTS,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            methods: Vec::new(),
            headers: Vec::new(),
            resolve: Vec::new(),
        }
    }
}

/// Where a trusted origin came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrustedOrigin {
    pub origin: String,
    /// `"--origin"`, or `"derived"` from an Access-Control-Allow-Origin the server
    /// sent on its own.
    pub source: &'static str,
}

/// The result of an audit.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub url: String,
    pub trusted_origins: Vec<TrustedOrigin>,
    pub requests_sent: usize,
    pub max_requests: usize,
    /// Worst first.
    pub findings: Vec<Finding>,
    /// What could not be tested, and why.
    pub notes: Vec<String>,
}

impl Report {
    /// The worst severity found, if anything was.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// Whether a finding with this id was reported.
    pub fn has(&self, id: &str) -> bool {
        self.findings.iter().any(|f| f.id == id)
    }
}

/// `corsgate audit`: runs the audit and prints the report.
pub fn run(
    options: &Options,
    format: Format,
    fail_on: Severity,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(audit(options))?;
    match format {
        Format::Human => report::human(&report, fail_on, out)?,
        Format::Json => report::json(&report, fail_on, out)?,
    }
    Ok(if report.worst().is_some_and(|w| w >= fail_on) {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}

/// The URL to audit, split.
struct Target {
    authority: String,
    /// Path and query of the URL.
    path: String,
    /// A sibling path that surely does not exist.
    missing: String,
}

impl Target {
    fn parse(url: &str, tag: &str) -> anyhow::Result<Target> {
        let uri: Uri = url
            .parse()
            .with_context(|| format!("{url:?} is not a URL; write http://host:port/path"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => bail!(
                "{url}: https is not supported: this build of corsgate audit has no TLS client; audit the service over plain http on its internal address (http://host:port/path)"
            ),
            _ => bail!("{url:?}: the URL must start with http://"),
        }
        let Some(authority) = uri.authority() else {
            bail!("{url:?}: the URL has no host");
        };
        if authority.as_str().contains('@') {
            bail!("{url:?}: user names and passwords in the URL are not supported; use --header");
        }
        let path = uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned());
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            path
        };
        // A sibling of the URL's path, so that the same route (and its CORS
        // policy) most likely answers it.
        let dir = match uri.path().rfind('/') {
            Some(slash) => &uri.path()[..=slash],
            None => "/",
        };
        Ok(Target {
            authority: authority.as_str().to_owned(),
            path,
            missing: format!("{dir}corsgate-audit-{tag}"),
        })
    }
}

/// The `ADDR:PORT` to connect to for `authority` (`host[:port]` of the URL),
/// from `--resolve HOST:PORT:ADDR` entries as curl reads them: HOST compared
/// without ASCII case, ADDR an IPv4 address or an IPv6 one with or without
/// brackets. An entry for another host or port is an error, not ignored: the
/// audit would otherwise probe whatever DNS says, which `--resolve` was given
/// to avoid.
fn resolve(authority: &str, entries: &[String]) -> anyhow::Result<Option<String>> {
    if entries.is_empty() {
        return Ok(None);
    }
    let parsed: http::uri::Authority = authority.parse().context("the URL's host")?;
    let host = parsed
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = parsed.port_u16().unwrap_or(80);
    for entry in entries {
        let mut parts = entry.splitn(3, ':');
        let (Some(want_host), Some(want_port), Some(addr)) =
            (parts.next(), parts.next(), parts.next())
        else {
            bail!(
                "--resolve {entry:?}: write HOST:PORT:ADDR, such as api.example.com:80:127.0.0.1"
            );
        };
        let Ok(want_port) = want_port.parse::<u16>() else {
            bail!("--resolve {entry:?}: {want_port:?} is not a port");
        };
        let bare = addr.trim_start_matches('[').trim_end_matches(']');
        let Ok(ip) = bare.parse::<std::net::IpAddr>() else {
            bail!(
                "--resolve {entry:?}: {addr:?} is not an IP address (ADDR is where to connect, such as 127.0.0.1 or [::1])"
            );
        };
        let want_host = want_host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if want_host == host && want_port == port {
            return Ok(Some(std::net::SocketAddr::new(ip, port).to_string()));
        }
    }
    bail!(
        "--resolve: no entry for {host}:{port}, the URL's host and port (write --resolve {host}:{port}:ADDR)"
    )
}

/// An origin split in parts, for making look-alikes.
#[derive(Debug, Clone)]
struct Parts {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Parts {
    fn parse(origin: &str) -> Option<Parts> {
        let (scheme, rest) = origin.split_once("://")?;
        let (host, port) = if rest.starts_with('[') {
            let close = rest.find(']')?;
            let (host, tail) = rest.split_at(close + 1);
            (host, tail.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        let port = match port {
            Some(p) => Some(p.parse().ok()?),
            None => None,
        };
        Some(Parts {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            port,
        })
    }

    fn port_suffix(&self) -> String {
        self.port.map(|p| format!(":{p}")).unwrap_or_default()
    }

    fn is_ip(&self) -> bool {
        self.host.starts_with('[') || self.host.parse::<std::net::Ipv4Addr>().is_ok()
    }

    /// The registrable domain (`example.co.uk` for `app.example.co.uk`), or the
    /// host itself when it has none (`localhost`).
    fn registrable(&self) -> String {
        psl::domain_str(&self.host).unwrap_or(&self.host).to_owned()
    }

    /// Look-alike origins an attacker can own, with the mistake each one tests.
    fn look_alikes(&self) -> Vec<(Confusion, String)> {
        let Parts { scheme, host, .. } = self;
        let port = self.port_suffix();
        let mut out = vec![(
            Confusion::Prefix,
            format!("{scheme}://{host}.evil.example{port}"),
        )];
        for special in ["_", "`", "%60"] {
            out.push((
                Confusion::SpecialCharacters,
                format!("{scheme}://{host}{special}.evil.example{port}"),
            ));
        }
        if !self.is_ip() {
            out.push((
                Confusion::Suffix,
                format!("{scheme}://evil{}{port}", self.registrable()),
            ));
            out.push((
                Confusion::Subdomain,
                format!("{scheme}://evil.{host}{port}"),
            ));
        }
        if scheme == "https" {
            out.push((Confusion::SchemeDowngrade, format!("http://{host}{port}")));
        }
        let other_port = match (self.port, scheme.as_str()) {
            (Some(65535), _) => 65534,
            (Some(p), _) => p + 1,
            (None, "https") => 8443,
            (None, _) => 8080,
        };
        out.push((Confusion::Port, format!("{scheme}://{host}:{other_port}")));
        out
    }
}

fn random_tag() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:06x}", hasher.finish() & 0xff_ffff)
}

fn parse_headers(headers: &[String]) -> anyhow::Result<Vec<(HeaderName, HeaderValue)>> {
    headers
        .iter()
        .map(|text| {
            let Some((name, value)) = text.split_once(':') else {
                bail!("--header {text:?}: write NAME:VALUE, such as \"Cookie: session=abc\"");
            };
            let name: HeaderName = name
                .trim()
                .parse()
                .with_context(|| format!("--header {text:?}: not a header name"))?;
            if name == http::header::ORIGIN
                || name == http::header::HOST
                || corsgate_policy::is_access_control_header(&name)
            {
                bail!("--header {text:?}: audit sets {name} itself");
            }
            let value: HeaderValue = value
                .trim()
                .parse()
                .with_context(|| format!("--header {text:?}: not a header value"))?;
            Ok((name, value))
        })
        .collect()
}

fn parse_trusted(origin: &str) -> anyhow::Result<String> {
    let pattern: OriginPattern = origin
        .parse()
        .map_err(|err: corsgate_policy::PatternError| {
            anyhow::anyhow!("--origin {origin:?}: {err}")
        })?;
    if pattern.is_any() || pattern.is_null() || pattern.is_wildcard() {
        bail!(
            "--origin {origin:?}: give an origin the server allows, such as https://app.example.com (no wildcard, not null)"
        );
    }
    Ok(pattern.to_string())
}

/// Whether a response allowed the origin sent: Access-Control-Allow-Origin is
/// exactly that origin (what browsers compare).
fn echoed(exchange: &Exchange, origin: &str) -> bool {
    exchange.response.allow_origin() == Some(origin)
}

/// The probing session: the prober, what it found, what it could not do.
struct Session {
    prober: Prober,
    findings: Findings,
    notes: Vec<String>,
    timeouts: usize,
    stopped: bool,
    skipped: usize,
    /// Actual (non-preflight) exchanges, for the `Vary` analysis.
    actuals: Vec<Exchange>,
}

impl Session {
    /// Sends a probe, runs the checks that apply to every response, and returns
    /// the exchange (`None` when it got no answer or was not sent).
    async fn send(&mut self, probe: &Probe) -> Option<Exchange> {
        if self.stopped {
            self.skipped += 1;
            return None;
        }
        match self.prober.send(probe).await {
            Ok(exchange) => {
                self.every_response(&exchange);
                if probe.request_method.is_none() {
                    self.actuals.push(exchange.clone());
                }
                Some(exchange)
            }
            Err(SendError::Budget) => {
                self.stopped = true;
                self.skipped += 1;
                None
            }
            Err(SendError::Timeout) => {
                self.timeouts += 1;
                self.notes.push(format!(
                    "{} {} (Origin: {}) got no answer within the timeout",
                    probe.method,
                    probe.target,
                    probe.origin.as_deref().unwrap_or("none")
                ));
                if self.timeouts >= MAX_TIMEOUTS {
                    self.stopped = true;
                    self.notes.push(format!(
                        "stopped after {MAX_TIMEOUTS} requests without an answer in time"
                    ));
                }
                None
            }
            Err(SendError::Failed(why)) => {
                self.notes.push(format!(
                    "{} {} (Origin: {}) failed: {why}",
                    probe.method,
                    probe.target,
                    probe.origin.as_deref().unwrap_or("none")
                ));
                None
            }
        }
    }

    /// Checks that hold for any response: duplicates, `*` with credentials,
    /// Max-Age.
    fn every_response(&mut self, exchange: &Exchange) {
        let response = &exchange.response;
        let mut names: Vec<&str> = response
            .headers
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| n.starts_with("access-control-"))
            .collect();
        names.sort_unstable();
        let repeated = names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0]);
        if let Some(name) = repeated {
            self.findings.add(findings::duplicate_header(
                exchange,
                &format!(
                    "The response has {} `{name}` lines",
                    response.all(name).len()
                ),
            ));
        } else if let Some(value) = response.allow_origin().filter(|v| v.contains(',')) {
            self.findings.add(findings::duplicate_header(
                exchange,
                &format!("Access-Control-Allow-Origin holds a list ({value:?})"),
            ));
        }
        if response.allow_origin() == Some("*") && response.allows_credentials() {
            self.findings
                .add(findings::wildcard_with_credentials(exchange));
        }
        if let Some(value) = response.first("access-control-max-age") {
            if let Some(finding) = findings::max_age(exchange, value) {
                self.findings.add(finding);
            }
        }
    }
}

/// Runs the audit described by `options`.
///
/// Fails (exit 2) on a bad option, or when the URL cannot be reached at all; a
/// server that answers nothing in time fails within `options.timeout`.
pub async fn audit(options: &Options) -> anyhow::Result<Report> {
    if options.max_requests == 0 {
        bail!("--max-requests must be at least 1");
    }
    if options.timeout.is_zero() {
        bail!("--timeout must be more than zero");
    }
    let tag = random_tag();
    let target = Target::parse(&options.url, &tag)?;
    let connect_to = resolve(&target.authority, &options.resolve)?;
    let extra = parse_headers(&options.headers)?;
    let mut methods: Vec<Method> = Vec::new();
    for m in &options.methods {
        let method: Method = m
            .parse()
            .with_context(|| format!("--method {m:?}: not a method"))?;
        if method != Method::GET && method != Method::OPTIONS && !methods.contains(&method) {
            methods.push(method);
        }
    }
    let mut trusted: Vec<TrustedOrigin> = Vec::new();
    for origin in &options.origins {
        let origin = parse_trusted(origin)?;
        if !trusted.iter().any(|t| t.origin == origin) {
            trusted.push(TrustedOrigin {
                origin,
                source: "--origin",
            });
        }
    }

    let mut s = Session {
        prober: Prober::new(
            &target.authority,
            connect_to.as_deref(),
            options.timeout,
            options.max_requests,
            extra,
        ),
        findings: Findings::default(),
        notes: Vec::new(),
        timeouts: 0,
        stopped: false,
        skipped: 0,
        actuals: Vec::new(),
    };
    let path = target.path.clone();
    let evil = format!("https://evil-{tag}.example");

    // A plain request first: if the server cannot be reached, nothing else can be
    // tested (exit 2).
    let baseline = match s
        .prober
        .send(&Probe::actual(Method::GET, &path, None))
        .await
    {
        Ok(exchange) => exchange,
        Err(err) => bail!("cannot audit {}: {err}", options.url),
    };
    s.every_response(&baseline);
    s.actuals.push(baseline.clone());

    // Any origin at all?
    let arbitrary = s
        .send(&Probe::actual(Method::GET, &path, Some(&evil)))
        .await;
    let mut reflected = false;
    if let Some(x) = &arbitrary {
        if echoed(x, &evil) {
            reflected = true;
            s.findings.add(findings::reflected(x, &evil, false));
        } else if x.response.allow_origin() == Some("*") && !x.response.allows_credentials() {
            s.findings.add(findings::wildcard_origin(x));
        }
    }
    if let Some(x) = s
        .send(&Probe::actual(Method::GET, &path, Some("null")))
        .await
    {
        if echoed(&x, "null") {
            s.findings.add(findings::null_origin(&x));
        }
    }
    if let Some(x) = s.send(&Probe::preflight(&path, &evil, "GET", None)).await {
        if echoed(&x, &evil) {
            reflected = true;
            s.findings.add(findings::reflected(&x, &evil, true));
        }
    }

    // Without --origin, a trusted origin may show in what the server sends on its
    // own: a fixed Access-Control-Allow-Origin on a plain request.
    if trusted.is_empty() {
        let revealed = [Some(&baseline), arbitrary.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|x| x.response.allow_origin())
            .find(|v| *v != "*" && *v != "null" && *v != evil && parse_trusted(v).is_ok());
        match revealed {
            Some(origin) => {
                s.notes.push(format!(
                    "no --origin given: testing with {origin}, which the server sent in Access-Control-Allow-Origin on its own"
                ));
                trusted.push(TrustedOrigin {
                    origin: origin.to_owned(),
                    source: "derived",
                });
            }
            None => s.notes.push(
                "no --origin given and the server revealed none: the tests that need an origin it trusts (look-alike origins, scheme and port, preflights, error responses, Authorization) were not run; pass --origin https://your-app.example".to_owned(),
            ),
        }
    }

    for t in &trusted {
        let origin = t.origin.clone();
        let actual = s
            .send(&Probe::actual(Method::GET, &path, Some(&origin)))
            .await;
        let accepted = actual
            .as_ref()
            .is_some_and(|x| echoed(x, &origin) || x.response.allow_origin() == Some("*"));
        if actual.is_some() && !accepted {
            s.notes.push(format!(
                "{origin} got no Access-Control-Allow-Origin on GET {path}: is it an origin the server allows?"
            ));
        }
        let preflight = s.send(&Probe::preflight(&path, &origin, "GET", None)).await;
        if let Some(x) = &preflight {
            let ok = x.response.is_success() && x.response.allow_origin().is_some();
            if accepted && !ok {
                s.findings.add(findings::preflight_failure(x, &origin));
            }
        }
        let auth = s
            .send(&Probe::preflight(
                &path,
                &origin,
                "GET",
                Some("authorization"),
            ))
            .await;
        if let Some(x) = &auth {
            let allowed = x.response.all("access-control-allow-headers").join(",");
            let names: Vec<String> = allowed
                .split(',')
                .map(|n| n.trim().to_ascii_lowercase())
                .collect();
            if x.response.is_success()
                && names.iter().any(|n| n == "*")
                && !names.iter().any(|n| n == "authorization")
            {
                s.findings.add(findings::authorization_wildcard(x));
            }
        }
        let missing = target.missing.clone();
        if let Some(x) = s
            .send(&Probe::actual(Method::GET, &missing, Some(&origin)))
            .await
        {
            if accepted && x.response.status >= 400 && x.response.allow_origin().is_none() {
                s.findings.add(findings::missing_on_errors(&x, &path));
            } else if x.response.status < 400 {
                s.notes.push(format!(
                    "{missing} answered {} instead of an error: CORS headers on error responses were not tested",
                    x.response.status
                ));
            }
        }
        if reflected {
            continue; // every look-alike would be echoed too
        }
        let Some(parts) = Parts::parse(&origin) else {
            continue;
        };
        for (kind, look_alike) in parts.look_alikes() {
            if kind == Confusion::SpecialCharacters && s.findings.has("origin-prefix-match") {
                continue; // a starts-with check accepts these too
            }
            if let Some(x) = s
                .send(&Probe::actual(Method::GET, &path, Some(&look_alike)))
                .await
            {
                if echoed(&x, &look_alike) {
                    s.findings
                        .add(findings::confusion(kind, &x, &origin, &look_alike));
                }
            }
        }
    }

    // Methods the user allowed us to send: the same origin checks on them.
    for method in &methods {
        if let Some(x) = s
            .send(&Probe::actual(method.clone(), &path, Some(&evil)))
            .await
        {
            if echoed(&x, &evil) {
                s.findings.add(findings::reflected(&x, &evil, false));
            }
        }
        if let Some(t) = trusted.first() {
            s.send(&Probe::actual(method.clone(), &path, Some(&t.origin)))
                .await;
        }
    }

    vary(&mut s);

    if s.skipped > 0 {
        s.notes.push(format!(
            "stopped at --max-requests {}: {} probe{} not sent",
            options.max_requests,
            s.skipped,
            if s.skipped == 1 { "" } else { "s" }
        ));
    }
    Ok(Report {
        url: options.url.clone(),
        trusted_origins: trusted,
        requests_sent: s.prober.sent(),
        max_requests: options.max_requests,
        findings: s.findings.into_sorted(),
        notes: s.notes,
    })
}

/// `Vary: Origin` is needed whenever Access-Control-Allow-Origin differs between
/// requests of the same resource (Fetch standard, "CORS protocol and HTTP
/// caches"): otherwise a cache can hand one origin's answer to another.
fn vary(s: &mut Session) {
    let values: Vec<Option<&str>> = s
        .actuals
        .iter()
        .map(|x| x.response.allow_origin())
        .collect();
    let mut distinct = values.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 2 {
        return; // the same answer for everyone: nothing to vary on
    }
    let concrete = values.iter().flatten().any(|v| *v != "*");
    let without_vary: Vec<&Exchange> = s
        .actuals
        .iter()
        .filter(|x| !x.response.varies_on_origin())
        .collect();
    let Some(first) = without_vary.first() else {
        return;
    };
    let echoed_without_vary = without_vary
        .iter()
        .find(|x| x.response.allow_origin().is_some_and(|v| v != "*"));
    let finding = match (concrete, echoed_without_vary) {
        (true, Some(x)) => findings::missing_vary(
            x,
            Severity::Medium,
            format!(
                "This response allows {} without `Vary: Origin`, while requests with another Origin (or none) get a different Access-Control-Allow-Origin. A shared cache (CDN, proxy) or the browser cache can store it and hand it to another origin: the allowed page then fails with a CORS error, or one origin's answer is served to another.",
                x.response.allow_origin().unwrap_or_default()
            ),
        ),
        (true, None) => findings::missing_vary(
            first,
            Severity::Low,
            "Responses that allow an origin carry `Vary: Origin`, but this one (without an allowed origin) does not: a cache can store it and serve it to an allowed origin, whose page then fails with a CORS error.".to_owned(),
        ),
        (false, _) => findings::missing_vary(
            first,
            Severity::Info,
            "Requests with an Origin get `Access-Control-Allow-Origin: *` and requests without one get none, with no `Vary: Origin`: a cache can serve the answer without CORS headers to a page, which then fails. The Fetch standard asks for `*` on every response of the resource, or `Vary: Origin`.".to_owned(),
        ),
    };
    s.findings.add(finding);
}
