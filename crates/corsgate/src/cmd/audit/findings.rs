//! What audit can find: the kinds, their severities, and the words that explain
//! each one and its fix.

use serde::Serialize;

use super::client::Exchange;

/// How bad a finding is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; not a mistake by itself.
    Info,
    /// Breaks some browsers or requests, or weakens another defence.
    Low,
    /// Breaks CORS for legitimate pages, or lets caches mix answers.
    Medium,
    /// Lets other sites read responses (without the user's credentials).
    High,
    /// Lets other sites read responses with the user's cookies or HTTP auth.
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Most pieces of evidence kept per finding.
const MAX_EVIDENCE: usize = 3;

/// Findings whose every occurrence tells something new (another origin, another
/// method): their evidence is merged. Others keep one exchange.
const MERGED: &[&str] = &["reflected-origin", "origin-special-characters"];

/// One problem found, with the exchanges that prove it and the fix.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable kebab-case identifier, such as `reflected-origin`.
    pub id: &'static str,
    pub severity: Severity,
    pub title: String,
    pub detail: String,
    pub evidence: Vec<Exchange>,
    pub fix: String,
}

/// Every finding id, for the documentation and the tests.
pub const FINDING_IDS: &[&str] = &[
    "reflected-origin",
    "null-origin",
    "origin-prefix-match",
    "origin-suffix-match",
    "origin-special-characters",
    "scheme-downgrade",
    "port-confusion",
    "any-subdomain",
    "wildcard-with-credentials",
    "wildcard-origin",
    "authorization-wildcard",
    "duplicate-cors-header",
    "missing-vary-origin",
    "preflight-redirect",
    "preflight-requires-authentication",
    "preflight-failed",
    "max-age-above-cap",
    "cors-missing-on-errors",
];

/// Findings collected so far: one per id, evidence merged, the worst severity kept.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    list: Vec<Finding>,
}

impl Findings {
    pub(crate) fn add(&mut self, finding: Finding) {
        match self.list.iter_mut().find(|f| f.id == finding.id) {
            None => self.list.push(finding),
            Some(existing) => {
                let mut evidence = finding.evidence;
                if finding.severity > existing.severity {
                    existing.severity = finding.severity;
                    existing.title = finding.title;
                    existing.detail = finding.detail;
                    existing.fix = finding.fix;
                    evidence.append(&mut existing.evidence);
                    existing.evidence = evidence;
                } else if MERGED.contains(&existing.id) {
                    existing.evidence.append(&mut evidence);
                }
                existing.evidence.dedup();
                existing
                    .evidence
                    .truncate(if MERGED.contains(&existing.id) {
                        MAX_EVIDENCE
                    } else {
                        1
                    });
            }
        }
    }

    pub(crate) fn has(&self, id: &str) -> bool {
        self.list.iter().any(|f| f.id == id)
    }

    /// Worst first; equal severities in the order found.
    pub(crate) fn into_sorted(mut self) -> Vec<Finding> {
        self.list.sort_by_key(|f| std::cmp::Reverse(f.severity));
        self.list
    }
}

fn finding(
    id: &'static str,
    severity: Severity,
    title: impl Into<String>,
    detail: impl Into<String>,
    fix: impl Into<String>,
    evidence: &Exchange,
) -> Finding {
    Finding {
        id,
        severity,
        title: title.into(),
        detail: detail.into(),
        evidence: vec![evidence.clone()],
        fix: fix.into(),
    }
}

/// How an untrusted origin got in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Confusion {
    /// `https://trusted.example.com.evil.example`.
    Prefix,
    /// `https://eviltrusted.example.com` (over the registrable domain).
    Suffix,
    /// `https://trusted.example.com_.evil.example`, backtick, `%60`.
    SpecialCharacters,
    /// `http://` twin of an `https://` origin.
    SchemeDowngrade,
    /// Another port of the trusted host.
    Port,
    /// `https://evil.trusted.example.com`.
    Subdomain,
}

const ALLOWLIST_FIX: &str = "Compare the whole Origin value with a list of exact origins and echo it only on a match; never use starts-with, ends-with, contains or unanchored regexes on origins. In corsgate: allow_origins = [\"https://app.example.com\"].";

fn with_credentials(credentials: bool) -> &'static str {
    if credentials {
        ", with credentials"
    } else {
        ""
    }
}

fn who_reads(credentials: bool) -> &'static str {
    if credentials {
        "and read these responses with the visitor's cookies and HTTP authentication (Access-Control-Allow-Credentials: true)"
    } else {
        "and read these responses (without the visitor's cookies: no Access-Control-Allow-Credentials)"
    }
}

pub(crate) fn reflected(evidence: &Exchange, origin: &str, preflight: bool) -> Finding {
    let credentials = evidence.response.allows_credentials();
    let severity = match (preflight, credentials) {
        (false, true) => Severity::Critical,
        (false, false) | (true, true) => Severity::High,
        (true, false) => Severity::Medium,
    };
    let detail = if preflight {
        format!(
            "The preflight from {origin}, an origin nobody can have listed, was answered with that origin in Access-Control-Allow-Origin{}. Any site can make browsers send non-simple requests (PUT, DELETE, JSON bodies, custom headers) here{}.",
            with_credentials(credentials),
            if credentials {
                " with the visitor's cookies"
            } else {
                ""
            }
        )
    } else {
        format!(
            "The server copied {origin}, an origin nobody can have listed, into Access-Control-Allow-Origin: it echoes whatever Origin it gets. Any web site can call this URL from its visitors' browsers {}.",
            who_reads(credentials)
        )
    };
    finding(
        "reflected-origin",
        severity,
        format!(
            "Any origin is allowed: the Origin header is echoed{}",
            with_credentials(credentials)
        ),
        detail,
        ALLOWLIST_FIX,
        evidence,
    )
}

pub(crate) fn null_origin(evidence: &Exchange) -> Finding {
    let credentials = evidence.response.allows_credentials();
    finding(
        "null-origin",
        if credentials {
            Severity::Critical
        } else {
            Severity::High
        },
        format!(
            "The `null` origin is allowed{}",
            with_credentials(credentials)
        ),
        format!(
            "Sandboxed iframes, file: pages, data: URLs and cross-origin redirects all send `Origin: null`, so any site can produce it {}.",
            who_reads(credentials)
        ),
        "Never allow `null`: remove it from the allowlist. corsgate refuses it unless dangerously_allow_null_origin = true.",
        evidence,
    )
}

/// Whether an origin's host never leaves the machine.
fn is_loopback(origin: &str) -> bool {
    origin
        .parse::<corsgate_policy::OriginPattern>()
        .is_ok_and(|p| p.is_loopback())
}

pub(crate) fn confusion(
    kind: Confusion,
    evidence: &Exchange,
    trusted: &str,
    sent: &str,
) -> Finding {
    let credentials = evidence.response.allows_credentials();
    let serious = |without: Severity| {
        if credentials {
            Severity::Critical
        } else {
            without
        }
    };
    let reads = who_reads(credentials);
    match kind {
        Confusion::Prefix => finding(
            "origin-prefix-match",
            serious(Severity::High),
            format!(
                "An attacker's domain that starts with the trusted host is allowed{}",
                with_credentials(credentials)
            ),
            format!(
                "{sent} is a host under evil.example, yet it was allowed: the check tests whether the Origin starts with {trusted} (or runs an unanchored regex). Whoever registers such a name can call this URL from their page {reads}."
            ),
            ALLOWLIST_FIX,
            evidence,
        ),
        Confusion::Suffix => finding(
            "origin-suffix-match",
            serious(Severity::High),
            format!(
                "A domain that merely ends with the trusted domain is allowed{}",
                with_credentials(credentials)
            ),
            format!(
                "{sent} is someone else's domain, yet it was allowed: the check tests whether the host ends with the trusted name without requiring a dot before it. Whoever registers it can call this URL {reads}."
            ),
            ALLOWLIST_FIX,
            evidence,
        ),
        Confusion::SpecialCharacters => finding(
            "origin-special-characters",
            serious(Severity::High),
            format!(
                "Origins with special characters after the trusted host are allowed{}",
                with_credentials(credentials)
            ),
            format!(
                "{sent} names a host under evil.example, yet it was allowed: the check stops reading the host at a character it does not expect (`_`, a backtick, or a percent-encoding it decodes). Some browsers send such hosts, so their owner can call this URL {reads}."
            ),
            ALLOWLIST_FIX,
            evidence,
        ),
        Confusion::SchemeDowngrade => finding(
            "scheme-downgrade",
            serious(Severity::Medium),
            format!(
                "The plain-http twin of the trusted https origin is allowed{}",
                with_credentials(credentials)
            ),
            format!(
                "{sent} was allowed next to {trusted}. Anyone on a user's network path (public Wi-Fi, a compromised router) can inject script into any plain-http page of that host {reads}."
            ),
            "Allow only the https origin. corsgate refuses plain-http origins with credentials unless dangerously_allow_insecure_origins = true.",
            evidence,
        ),
        Confusion::Port => finding(
            "port-confusion",
            // Other ports of a loopback origin are the user's own machine: a
            // development setup (`http://localhost:*`) more than an attack path.
            match (is_loopback(trusted), credentials) {
                (true, true) => Severity::Low,
                (true, false) => Severity::Info,
                (false, _) => serious(Severity::Medium),
            },
            format!(
                "Another port of the trusted host is allowed{}",
                with_credentials(credentials)
            ),
            format!(
                "{sent} was allowed next to {trusted}: the check ignores the port, so any other service on that host (a debug server, a user-content service) can call this URL {reads}."
            ),
            "Compare whole origins, port included. In corsgate write each origin with its port, and `:*` (as in http://localhost:*) only where every port is meant.",
            evidence,
        ),
        Confusion::Subdomain => finding(
            "any-subdomain",
            if credentials {
                Severity::Low
            } else {
                Severity::Info
            },
            format!(
                "Every subdomain of the trusted host is allowed{}",
                with_credentials(credentials)
            ),
            format!(
                "{sent} was allowed: any subdomain of the trusted host is trusted, including forgotten ones open to takeover and hosts that serve user content, and an XSS on any of them can call this URL {reads}."
            ),
            "If only some subdomains need access, list them. In corsgate https://*.example.com allows subdomains on purpose; exact origins allow only themselves.",
            evidence,
        ),
    }
}

pub(crate) fn wildcard_with_credentials(evidence: &Exchange) -> Finding {
    finding(
        "wildcard-with-credentials",
        Severity::Medium,
        "`Access-Control-Allow-Origin: *` is sent with `Access-Control-Allow-Credentials: true`",
        "Browsers refuse this pair, so every credentialed request from a page fails. It also shows the intent to share credentialed responses with every site: the usual \"fix\", echoing the Origin instead of `*`, would let any site read users' data.",
        "List the origins that need credentials and echo only those (corsgate refuses \"*\" with allow_credentials = true); or drop credentials if the data is public.",
        evidence,
    )
}

pub(crate) fn wildcard_origin(evidence: &Exchange) -> Finding {
    finding(
        "wildcard-origin",
        Severity::Info,
        "Every origin may read responses (`Access-Control-Allow-Origin: *`)",
        "Any site can read these responses without the user's credentials. Right for public data; wrong for anything protected by network position (an intranet API) or by the client's IP address.",
        "Keep `*` for public resources only; use an allowlist otherwise.",
        evidence,
    )
}

pub(crate) fn authorization_wildcard(evidence: &Exchange) -> Finding {
    finding(
        "authorization-wildcard",
        Severity::Low,
        "Authorization is not allowed: the preflight answer relies on `Access-Control-Allow-Headers: *`",
        "A preflight asking for `authorization` was answered with `*` and no `authorization`. The Fetch standard never lets `*` cover Authorization (and with credentials `*` is a literal header name), so browsers block every request that sends an Authorization header.",
        "List authorization explicitly, next to `*` if you keep it. In corsgate: allow_headers = [\"authorization\", \"*\"].",
        evidence,
    )
}

pub(crate) fn duplicate_header(evidence: &Exchange, what: &str) -> Finding {
    finding(
        "duplicate-cors-header",
        Severity::Medium,
        "Duplicate Access-Control-* headers",
        format!(
            "{what}. Browsers reject the response: Access-Control-Allow-Origin must hold exactly one origin (or `*`), and a repeated CORS header is read as a list. Usually two layers (the application and a proxy) both add CORS headers."
        ),
        "Let exactly one layer own the CORS headers and echo only the one matching origin. corsgate removes the Access-Control-* headers an upstream sends and writes its own.",
        evidence,
    )
}

pub(crate) fn missing_vary(evidence: &Exchange, severity: Severity, detail: String) -> Finding {
    finding(
        "missing-vary-origin",
        severity,
        "Access-Control-Allow-Origin depends on the Origin but `Vary: Origin` is missing",
        detail,
        "Send `Vary: Origin` on every response of a resource whose CORS headers depend on the Origin, with or without an Origin in the request (corsgate does on every route with an allowlist); or send the same Access-Control-Allow-Origin on every response.",
        evidence,
    )
}

pub(crate) fn preflight_failure(evidence: &Exchange, origin: &str) -> Finding {
    let status = evidence.response.status;
    let fix_auth = "Answer preflights before authentication: they never carry cookies or Authorization. corsgate answers them itself, without calling the upstream.";
    match status {
        300..=399 => finding(
            "preflight-redirect",
            Severity::Medium,
            format!("Preflights are redirected ({status})"),
            format!(
                "A preflight from {origin}, which the server allows on actual requests, got a {status} redirect{}. Browsers never follow redirects on a preflight: every non-simple request from that origin fails.",
                evidence
                    .response
                    .first("location")
                    .map(|l| format!(" to {l}"))
                    .unwrap_or_default()
            ),
            "Answer the preflight at the URL requested with 204 (or 200) and the CORS headers; redirect only the actual request if you must (to the same origin).",
            evidence,
        ),
        401 | 403 => finding(
            "preflight-requires-authentication",
            Severity::Medium,
            format!(
                "Preflights are refused ({status}): CORS is answered only after authentication"
            ),
            format!(
                "A preflight from {origin}, which the server allows on actual requests, got {status}. Browsers never send cookies or Authorization with a preflight, so an authentication layer in front of CORS refuses every preflight and every non-simple request fails."
            ),
            fix_auth,
            evidence,
        ),
        _ => finding(
            "preflight-failed",
            Severity::Medium,
            if (200..300).contains(&status) {
                format!("Preflights get {status} without Access-Control-Allow-Origin")
            } else {
                format!("Preflights fail with {status}")
            },
            format!(
                "A preflight from {origin}, which the server allows on actual requests, got {status}{}. Browsers require an ok status (2xx) and the CORS headers, so every non-simple request from that origin (PUT, DELETE, JSON bodies, custom headers) fails.",
                if (200..300).contains(&status) {
                    " but no Access-Control-Allow-Origin"
                } else {
                    ""
                }
            ),
            "Answer OPTIONS requests that carry Origin and Access-Control-Request-Method with 204 and the CORS headers, before routing and authentication. corsgate answers them itself.",
            evidence,
        ),
    }
}

pub(crate) fn max_age(evidence: &Exchange, value: &str) -> Option<Finding> {
    let parsed: Option<u64> = value.trim().parse().ok();
    let (severity, title, detail) = match parsed {
        None => (
            Severity::Low,
            format!("Access-Control-Max-Age {value:?} is not a number of seconds"),
            "Browsers ignore an invalid Max-Age and cache the preflight for 5 seconds only."
                .to_owned(),
        ),
        Some(seconds) if seconds > 86_400 => (
            Severity::Low,
            format!("Access-Control-Max-Age {seconds} is above what any browser honours"),
            format!(
                "No browser caches a preflight that long: Firefox caps at 86400 s (24 h), Chromium at 7200 s (2 h), Safari at 600 s. The value only tells that a policy change would take {} hours to reach every cache if browsers did obey it.",
                seconds / 3600
            ),
        ),
        Some(seconds) if seconds > 7_200 => (
            Severity::Info,
            format!("Access-Control-Max-Age {seconds} is above Chromium's cap"),
            format!(
                "Chromium caps preflight caching at 7200 s (2 h) and Safari at 600 s; Firefox allows up to 86400 s, so {seconds} s is the longest a policy change can take to reach a Firefox that cached the old answer (Firefox 153 ESR did not reuse preflights at all in corsgate's browser suite)."
            ),
        ),
        Some(_) => return None,
    };
    Some(finding(
        "max-age-above-cap",
        severity,
        title,
        detail,
        "Use 7200 or less (600 if Safari matters). corsgate refuses more than 86400 and warns above 7200.",
        evidence,
    ))
}

pub(crate) fn missing_on_errors(evidence: &Exchange, url_path: &str) -> Finding {
    let status = evidence.response.status;
    finding(
        "cors-missing-on-errors",
        Severity::Low,
        format!("Error responses ({status}) carry no CORS headers"),
        format!(
            "{} got {status} without Access-Control-Allow-Origin, while {url_path} has it for the same origin. The page sees an opaque CORS failure instead of the {status}, and cannot tell \"not found\" or \"server error\" from a CORS problem.",
            evidence.request.target
        ),
        "Add the CORS headers to error responses too (nginx: add_header ... always). corsgate adds them to every response, its own errors (502, 504, 413) included.",
        evidence,
    )
}
