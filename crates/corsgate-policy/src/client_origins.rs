//! Per-client origins: a route whose `cors` table has `clients` allows, besides
//! its static `allow_origins`, the origins registered on the OAuth2 client a
//! request names.
//!
//! The engine only decides: the caller (the gateway) keeps the registry, finds
//! the client a request names, and passes the client's compiled
//! [`ClientOrigins`] and the union of every client's origins to
//! [`Policy::decide_for_client`]. Nothing here reads a database or a body.
//!
//! A preflight carries no client identity (no body, no `Authorization`, Fetch
//! §4.8 step 1), so it is decided with the union of every registered origin
//! (`preflight = "registered"`); the actual request that follows is decided with
//! the identified client's own list.

use std::collections::HashSet;

use foldhash::fast::RandomState;
use http::{HeaderMap, Method};
use serde::{Deserialize, Serialize};

use crate::Decision;
use crate::config::List;
use crate::decide::origin_rejection as static_reason;
use crate::decision::RejectionReason;
use crate::diagnostic::{Diagnostic, DiagnosticKind as Kind};
use crate::matcher::{OriginMatch, OriginSet};
use crate::origin::{OriginPattern, PatternKind};
use crate::policy::{Compiler, Policy, Switches};

/// Largest `body_limit`: a form body buffered to find `client_id` is held in
/// memory once per request in flight.
pub(crate) const MAX_BODY_LIMIT: i64 = 1 << 20;
/// Default `body_limit`: token requests are a few hundred bytes.
pub(crate) const DEFAULT_BODY_LIMIT: u64 = 16 * 1024;

/// A route's `clients` table (inside its `cors` table).
///
/// ```
/// use corsgate_policy::{CorsConfig, IdentifySource, Policy};
///
/// let config: CorsConfig = toml::from_str(r#"
///     allow_headers = ["authorization"]
///     clients = { identify = ["basic", "form"] }
/// "#).unwrap();
/// let policy = Policy::compile(&config).unwrap();
/// let rules = policy.clients().unwrap();
/// assert_eq!(rules.identify(), [IdentifySource::Basic, IdentifySource::Form]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientsConfig {
    /// Where the client id is read, in order; the first source present wins.
    /// Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identify: Option<Vec<IdentifySource>>,
    /// What a preflight is allowed with. Default `"registered"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<PreflightRule>,
    /// What an actual request without a client id is allowed with.
    /// Default `"deny"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unidentified: Option<UnidentifiedRule>,
    /// Bytes of a form body buffered to find `client_id`, 1 to 1048576.
    /// Default 16384.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_limit: Option<i64>,
    /// Claims of a bearer JWT read as the client id, in order.
    /// Default `["client_id", "azp"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_claims: Option<Vec<String>>,
}

/// Where a request names its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum IdentifySource {
    /// The user of `Authorization: Basic`, percent-decoded (RFC 6749 §2.3.1).
    Basic,
    /// `client_id` of an `application/x-www-form-urlencoded` POST body.
    Form,
    /// A claim of a bearer JWT's payload (`client_id`, RFC 9068 §2.2; `azp`).
    /// The signature is not checked: see `docs/registry.md`.
    BearerJwt,
}

impl IdentifySource {
    /// `basic`, `form` or `bearer-jwt`: for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifySource::Basic => "basic",
            IdentifySource::Form => "form",
            IdentifySource::BearerJwt => "bearer-jwt",
        }
    }
}

/// What a preflight on a client-scoped route is allowed with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PreflightRule {
    /// The static list and every registered client's origins.
    #[default]
    Registered,
    /// Any well-formed origin (what Keycloak does): the preflight no longer
    /// protects the upstream from non-simple requests.
    Any,
}

/// What an actual request that names no client is allowed with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum UnidentifiedRule {
    /// The static list only.
    #[default]
    Deny,
    /// The static list and every registered client's origins: for bearer-only
    /// routes whose tokens are opaque.
    Registered,
}

/// A route's compiled `clients` rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRules {
    identify: Vec<IdentifySource>,
    preflight: PreflightRule,
    unidentified: UnidentifiedRule,
    body_limit: u64,
    jwt_claims: Vec<String>,
}

impl ClientRules {
    /// The sources, in the order they are tried.
    pub fn identify(&self) -> &[IdentifySource] {
        &self.identify
    }

    /// What preflights are allowed with.
    pub fn preflight(&self) -> PreflightRule {
        self.preflight
    }

    /// What requests without a client id are allowed with.
    pub fn unidentified(&self) -> UnidentifiedRule {
        self.unidentified
    }

    /// Bytes of a form body buffered to find `client_id`.
    pub fn body_limit(&self) -> u64 {
        self.body_limit
    }

    /// The JWT claims read as the client id, in order.
    pub fn jwt_claims(&self) -> &[String] {
        &self.jwt_claims
    }
}

/// A compiled set of origins registered on a client (or the union of several):
/// the same patterns, the same checks and the same index as `allow_origins`.
///
/// ```
/// use corsgate_policy::ClientOrigins;
///
/// let (set, problems) = ClientOrigins::compile(
///     &["https://spa.example", "https://*.spa.example", "https://spa.example/"],
///     "clients.spa.allowed_origins",
/// );
/// assert!(set.contains("https://a.spa.example"));
/// assert_eq!(set.len(), 2);
/// assert_eq!(problems[0].path(), "clients.spa.allowed_origins[2]");
/// ```
#[derive(Debug, Clone, Default)]
pub struct ClientOrigins {
    set: OriginSet,
    patterns: Vec<OriginPattern>,
}

impl ClientOrigins {
    /// Compiles a client's origins. Entries with an error are left out and
    /// reported, each at `path[index]`, in `allow_origins`' words; the rest are
    /// kept (one bad stored origin must not cost a client its other origins).
    ///
    /// Besides `allow_origins`' rules, `*` is refused: a client lists its own
    /// origins. `null`, plain-http origins and public-suffix wildcards are
    /// refused as in a policy without `dangerously_*` switches.
    pub fn compile<S: AsRef<str>>(origins: &[S], path: &str) -> (ClientOrigins, Vec<Diagnostic>) {
        let list = List::from(
            origins
                .iter()
                .map(|s| s.as_ref().to_owned())
                .collect::<Vec<_>>(),
        );
        // Checked as a policy without credentials and without any `dangerously_*`
        // switch: `*` is refused below instead, with its own reason.
        let switches = Switches {
            credentials: false,
            credentials_path: String::new(),
            null: false,
            insecure: false,
            public_suffix: false,
        };
        let mut compiler = Compiler::new(&[]);
        // Each entry parsed once, by the compiler, which also reports it.
        let patterns = compiler.origin_patterns(Some(&list), path, &switches);
        let mut diagnostics = compiler.diagnostics;
        // "the other entries have no effect" is not true of a client's list,
        // where `*` is refused.
        diagnostics.retain(|d| !(d.kind() == Kind::Redundant && d.value() == Some("*")));
        // Entries with an error are left out; rare, so their paths are only
        // spelled out when there is one.
        let bad: HashSet<&str, RandomState> = diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(Diagnostic::path)
            .collect();
        let mut out = ClientOrigins::default();
        let mut refused = Vec::new();
        for (i, pattern) in patterns {
            if !bad.is_empty() && bad.contains(format!("{path}[{i}]").as_str()) {
                continue;
            }
            if matches!(pattern.kind(), PatternKind::Any) {
                refused.push(
                    Diagnostic::error(
                        Kind::ClientWildcard,
                        format!("{path}[{i}]"),
                        "\"*\" would let every site use this client; list the client's own origins",
                    )
                    .with_value(list.items().get(i).map_or("*", String::as_str)),
                );
                continue;
            }
            out.insert(pattern);
        }
        diagnostics.extend(refused);
        (out, diagnostics)
    }

    /// The union of several sets: the origins a preflight is allowed with.
    pub fn union<'a>(sets: impl IntoIterator<Item = &'a ClientOrigins>) -> ClientOrigins {
        let mut out = ClientOrigins::default();
        let mut seen: HashSet<&OriginPattern, RandomState> = HashSet::default();
        for set in sets {
            for pattern in &set.patterns {
                if seen.insert(pattern) {
                    out.insert(pattern.clone());
                }
            }
        }
        out
    }

    fn insert(&mut self, pattern: OriginPattern) {
        self.set.insert(&pattern);
        self.patterns.push(pattern);
    }

    /// Whether a request's `Origin` value is in the set (byte for byte, as
    /// browsers serialize origins).
    pub fn contains(&self, origin: &str) -> bool {
        self.set.find(origin.as_bytes()) == OriginMatch::Allowed
    }

    /// The patterns, in the order they were given (duplicates and refused
    /// entries left out), in their canonical form.
    pub fn patterns(&self) -> impl Iterator<Item = &OriginPattern> {
        self.patterns.iter()
    }

    /// How many patterns.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// Who a request on a client-scoped route comes from, as the caller found it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum ClientIdentity<'a> {
    /// A registered client, with its origins.
    Client(&'a ClientOrigins),
    /// The request names a client that is not registered.
    Unknown,
    /// The request names no client (or names one ambiguously).
    Unidentified,
}

impl Policy {
    /// The route's `clients` rules, when it has some.
    pub fn clients(&self) -> Option<&ClientRules> {
        self.clients.as_ref()
    }

    /// Whether the static list (`allow_origins`) allows an origin: what a
    /// client-scoped route checks before identifying the client. Cheaper than
    /// [`check_origin`](Self::check_origin) on a miss of a list without
    /// patterns, which needs no parse to be sure.
    pub fn allows_origin(&self, origin: &http::HeaderValue) -> bool {
        let bytes = origin.as_bytes();
        self.origins.is_any()
            || self.origins.contains_exact(bytes)
            || (self.origins.has_patterns() && self.origins.find(bytes) == OriginMatch::Allowed)
    }

    /// Decides on a request of a client-scoped route.
    ///
    /// An origin in the static list is allowed as by [`decide`](Self::decide).
    /// Otherwise a preflight is allowed when `registered` (the union of every
    /// client's origins) holds the origin, or for any well-formed origin under
    /// `preflight = "any"`; an actual request when the identified client's
    /// own set holds it (or `registered`, for an unidentified request under
    /// `unidentified = "registered"`). Refusals carry `client-unidentified`,
    /// `client-unknown` or `origin-not-allowed-for-client`.
    ///
    /// On a route without `clients`, this is [`decide`](Self::decide).
    ///
    /// ```
    /// use corsgate_policy::{ClientIdentity, ClientOrigins, CorsConfig, Policy, RejectionReason};
    /// use http::{HeaderMap, Method};
    ///
    /// let config: CorsConfig = toml::from_str(r#"clients = { identify = ["form"] }"#).unwrap();
    /// let policy = Policy::compile(&config).unwrap();
    /// let (spa, _) = ClientOrigins::compile(&["https://spa.example"], "spa");
    /// let (other, _) = ClientOrigins::compile(&["https://other.example"], "other");
    /// let registered = ClientOrigins::union([&spa, &other]);
    ///
    /// let mut request = HeaderMap::new();
    /// request.insert("origin", "https://other.example".parse().unwrap());
    /// let decision =
    ///     policy.decide_for_client(&Method::POST, &request, &registered, ClientIdentity::Client(&spa));
    /// assert_eq!(
    ///     decision.rejection().unwrap().reason(),
    ///     RejectionReason::OriginNotAllowedForClient
    /// );
    /// ```
    pub fn decide_for_client(
        &self,
        method: &Method,
        headers: &HeaderMap,
        registered: &ClientOrigins,
        identity: ClientIdentity<'_>,
    ) -> Decision {
        let Some(rules) = &self.clients else {
            return self.decide(method, headers);
        };
        // The set that would allow the origin anyway, looked at first: an exact
        // hit there spares parsing the origin for the static list's patterns.
        let wider = |preflight: bool| match identity {
            _ if preflight => Some(registered),
            ClientIdentity::Client(set) => Some(set),
            ClientIdentity::Unidentified if rules.unidentified == UnidentifiedRule::Registered => {
                Some(registered)
            }
            _ => None,
        };
        let exact = |origin: &[u8], preflight: bool| {
            self.origins.contains_exact(origin)
                || wider(preflight).is_some_and(|set| set.set.contains_exact(origin))
        };
        self.decide_judged(method, headers, exact, |origin, preflight, found| {
            // Only a well-formed origin missing from the static list is looked
            // up further: `null` and malformed values keep their own reasons.
            if found != OriginMatch::NotAllowed {
                return static_reason(found);
            }
            let in_set = |set: &ClientOrigins| set.set.find(origin) == OriginMatch::Allowed;
            if preflight {
                return match rules.preflight {
                    PreflightRule::Any => None,
                    PreflightRule::Registered if in_set(registered) => None,
                    PreflightRule::Registered => Some(RejectionReason::OriginNotAllowed),
                };
            }
            match identity {
                ClientIdentity::Client(set) if in_set(set) => None,
                ClientIdentity::Client(_) => Some(RejectionReason::OriginNotAllowedForClient),
                ClientIdentity::Unknown => Some(RejectionReason::ClientUnknown),
                ClientIdentity::Unidentified => match rules.unidentified {
                    UnidentifiedRule::Registered if in_set(registered) => None,
                    UnidentifiedRule::Registered => Some(RejectionReason::OriginNotAllowed),
                    UnidentifiedRule::Deny => Some(RejectionReason::ClientUnidentified),
                },
            }
        })
    }
}

impl Compiler<'_> {
    /// Checks a `clients` table against the rest of the policy.
    pub(crate) fn clients(
        &mut self,
        config: Option<&ClientsConfig>,
        path: &str,
        origins: Option<&List>,
        origins_path: &str,
        switches: &Switches,
    ) -> Option<ClientRules> {
        let config = config?;
        let mut ok = true;
        let identify = config.identify.clone().unwrap_or_default();
        if identify.is_empty() {
            self.error(
                Kind::Clients,
                &format!("{path}.identify"),
                None,
                "clients needs identify: where requests name their client, in order; e.g. identify = [\"basic\", \"form\"] for a token endpoint, [\"bearer-jwt\"] for userinfo".into(),
            );
            ok = false;
        }
        let mut seen = Vec::new();
        for (i, source) in identify.iter().enumerate() {
            if seen.contains(source) {
                self.warn(
                    Kind::Duplicate,
                    &format!("{path}.identify[{i}]"),
                    Some(source.as_str()),
                    "listed twice; remove one".into(),
                );
            }
            seen.push(*source);
        }
        if origins.is_some_and(List::is_any) {
            self.error(
                Kind::Clients,
                origins_path,
                Some("*"),
                "\"*\" allows every origin, so the clients' own lists would never matter; list the origins allowed for every client, or none".into(),
            );
            ok = false;
        }
        let unidentified = config.unidentified.unwrap_or_default();
        if unidentified == UnidentifiedRule::Registered && switches.credentials {
            self.error(
                Kind::Clients,
                &format!("{path}.unidentified"),
                Some("registered"),
                format!(
                    "with credentials (allow_credentials = true at {}), every registered origin could read any user's responses; use unidentified = \"deny\", or turn credentials off",
                    switches.credentials_path
                ),
            );
            ok = false;
        } else if switches.credentials {
            self.warn(
                Kind::Clients,
                path,
                None,
                format!(
                    "clients together with credentials (allow_credentials = true at {}): a request names its client without proving it, so this is safe only if the upstream authorizes each request by the very credential that names the client (a token endpoint does), never by cookies; see docs/registry.md",
                    switches.credentials_path
                ),
            );
        }
        let preflight = config.preflight.unwrap_or_default();
        if preflight == PreflightRule::Any {
            self.warn(
                Kind::Clients,
                &format!("{path}.preflight"),
                Some("any"),
                "every origin passes the preflight, so any page may send this route non-simple requests (JSON bodies, Authorization); \"registered\" (the default) allows the registered origins only".into(),
            );
        }
        let body_limit = match config.body_limit {
            None => DEFAULT_BODY_LIMIT,
            Some(limit) if (1..=MAX_BODY_LIMIT).contains(&limit) => limit.unsigned_abs(),
            Some(limit) => {
                self.error(
                    Kind::Clients,
                    &format!("{path}.body_limit"),
                    Some(&limit.to_string()),
                    format!(
                        "body_limit is 1 to {MAX_BODY_LIMIT} bytes; token requests are a few hundred bytes, use {DEFAULT_BODY_LIMIT} (the default)"
                    ),
                );
                ok = false;
                DEFAULT_BODY_LIMIT
            }
        };
        let jwt_claims = config
            .jwt_claims
            .clone()
            .unwrap_or_else(|| vec!["client_id".to_owned(), "azp".to_owned()]);
        if jwt_claims.is_empty() || jwt_claims.iter().any(String::is_empty) {
            self.error(
                Kind::Clients,
                &format!("{path}.jwt_claims"),
                None,
                "jwt_claims names the claims that hold the client id; use [\"client_id\", \"azp\"] (the default)".into(),
            );
            ok = false;
        }
        ok.then_some(ClientRules {
            identify,
            preflight,
            unidentified,
            body_limit,
            jwt_claims,
        })
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, Method, StatusCode};

    use super::*;
    use crate::CorsConfig;

    fn policy(toml_text: &str) -> Policy {
        let config: CorsConfig = toml::from_str(toml_text).unwrap();
        Policy::compile(&config).unwrap()
    }

    fn set(origins: &[&str]) -> ClientOrigins {
        let (set, problems) = ClientOrigins::compile(origins, "x");
        assert!(problems.is_empty(), "{problems:?}");
        set
    }

    fn request(origin: &str, preflight: bool) -> (Method, HeaderMap) {
        let mut headers = HeaderMap::new();
        headers.insert("origin", origin.parse().unwrap());
        if preflight {
            headers.insert("access-control-request-method", "POST".parse().unwrap());
            (Method::OPTIONS, headers)
        } else {
            (Method::POST, headers)
        }
    }

    /// Every (origin × identity × class) of a token route, with the reason.
    #[test]
    fn decision_table() {
        let policy = policy(
            r#"
            allow_origins = ["https://static.example"]
            clients = { identify = ["basic", "form"] }
            "#,
        );
        let spa = set(&["https://spa.example", "https://*.spa.example"]);
        let other = set(&["https://other.example"]);
        let union = ClientOrigins::union([&spa, &other]);
        use ClientIdentity as I;
        use RejectionReason as R;
        let rows: &[(&str, bool, ClientIdentity<'_>, Option<R>)] = &[
            ("https://static.example", false, I::Unidentified, None),
            ("https://static.example", false, I::Unknown, None),
            ("https://static.example", false, I::Client(&other), None),
            ("https://spa.example", false, I::Client(&spa), None),
            ("https://a.b.spa.example", false, I::Client(&spa), None),
            (
                "https://other.example",
                false,
                I::Client(&spa),
                Some(R::OriginNotAllowedForClient),
            ),
            (
                "https://spa.example",
                false,
                I::Unknown,
                Some(R::ClientUnknown),
            ),
            (
                "https://spa.example",
                false,
                I::Unidentified,
                Some(R::ClientUnidentified),
            ),
            (
                "https://evil.example",
                false,
                I::Client(&spa),
                Some(R::OriginNotAllowedForClient),
            ),
            ("null", false, I::Client(&spa), Some(R::NullOrigin)),
            (
                "https://spa.example/",
                false,
                I::Client(&spa),
                Some(R::MalformedOrigin),
            ),
            ("https://spa.example", true, I::Unidentified, None),
            ("https://other.example", true, I::Unidentified, None),
            ("https://static.example", true, I::Unidentified, None),
            (
                "https://evil.example",
                true,
                I::Client(&spa),
                Some(R::OriginNotAllowed),
            ),
        ];
        for (origin, preflight, identity, want) in rows {
            let (method, headers) = request(origin, *preflight);
            let decision = policy.decide_for_client(&method, &headers, &union, *identity);
            let got = decision.rejection().map(|r| r.reason());
            assert_eq!(got, *want, "{origin} preflight={preflight} {identity:?}");
            let out = decision.headers();
            assert_eq!(
                out.get("access-control-allow-origin")
                    .map(|v| v.to_str().unwrap()),
                want.is_none().then_some(*origin),
                "{origin}"
            );
            assert!(
                out.get_all("vary")
                    .iter()
                    .any(|v| v.to_str().unwrap().contains("Origin")),
                "{origin}: Vary: Origin on every answer"
            );
            if *preflight {
                assert_eq!(
                    decision.response_status(),
                    Some(if want.is_none() {
                        StatusCode::NO_CONTENT
                    } else {
                        StatusCode::FORBIDDEN
                    })
                );
            }
        }
    }

    #[test]
    fn client_only_route_without_static_origins_answers_preflights_and_varies() {
        let policy = policy(r#"clients = { identify = ["form"] }"#);
        assert!(!policy.is_closed());
        let spa = set(&["https://spa.example"]);
        let (method, headers) = request("https://spa.example", true);
        let decision =
            policy.decide_for_client(&method, &headers, &spa, ClientIdentity::Unidentified);
        assert!(decision.is_allowed());
        assert_eq!(
            decision.headers()["access-control-allow-origin"],
            "https://spa.example"
        );
        // The same preflight through plain `decide` (no registry): refused.
        assert!(!policy.decide(&method, &headers).is_allowed());
    }

    #[test]
    fn unidentified_registered_and_preflight_any() {
        let policy = policy(
            r#"clients = { identify = ["bearer-jwt"], unidentified = "registered", preflight = "any" }"#,
        );
        let spa = set(&["https://spa.example"]);
        let (method, headers) = request("https://spa.example", false);
        assert!(
            policy
                .decide_for_client(&method, &headers, &spa, ClientIdentity::Unidentified)
                .is_allowed()
        );
        let (method, headers) = request("https://evil.example", false);
        assert_eq!(
            policy
                .decide_for_client(&method, &headers, &spa, ClientIdentity::Unidentified)
                .rejection()
                .map(|r| r.reason()),
            Some(RejectionReason::OriginNotAllowed)
        );
        let (method, headers) = request("https://evil.example", true);
        assert!(
            policy
                .decide_for_client(&method, &headers, &spa, ClientIdentity::Unidentified)
                .is_allowed()
        );
    }

    #[test]
    fn reject_answers_403_for_a_client_refusal() {
        let policy = policy(
            r#"on_disallowed = "reject"
            clients = { identify = ["form"] }"#,
        );
        let spa = set(&["https://spa.example"]);
        let (method, headers) = request("https://spa.example", false);
        let decision = policy.decide_for_client(&method, &headers, &spa, ClientIdentity::Unknown);
        assert_eq!(decision.response_status(), Some(StatusCode::FORBIDDEN));
    }

    #[test]
    fn compile_reports_every_bad_entry_and_keeps_the_good_ones() {
        let (set, problems) = ClientOrigins::compile(
            &[
                "https://spa.example/",
                "*",
                "null",
                "https://*.github.io",
                "HTTPS://A.example",
                "http://plain.example",
                "https://ok.example",
                "https://ok.example",
            ],
            "clients.spa.allowed_origins",
        );
        let errors: Vec<_> = problems.iter().filter(|d| d.is_error()).collect();
        assert_eq!(errors.len(), 5, "{problems:#?}");
        assert_eq!(errors[0].path(), "clients.spa.allowed_origins[0]");
        assert!(errors[0].message().contains("\"https://spa.example\""));
        assert!(problems.iter().any(|d| d.kind() == Kind::ClientWildcard));
        assert!(problems.iter().any(|d| d.kind() == Kind::Duplicate));
        assert_eq!(set.len(), 2);
        assert!(set.contains("https://ok.example"));
        assert!(set.contains("http://plain.example"));
        assert!(!set.contains("https://spa.example"));
        assert!(!set.contains("https://x.github.io"));
    }

    #[test]
    fn check_rules_of_the_clients_table() {
        let errors = |text: &str| -> Vec<String> {
            let config: CorsConfig = toml::from_str(text).unwrap();
            match Policy::compile(&config) {
                Ok(p) => p
                    .warnings()
                    .iter()
                    .map(|d| format!("warning {}", d.path()))
                    .collect(),
                Err(e) => e
                    .diagnostics()
                    .iter()
                    .map(|d| format!("{:?} {}", d.severity(), d.path()))
                    .collect(),
            }
        };
        assert_eq!(errors("clients = {}"), ["Error clients.identify"]);
        assert_eq!(
            errors(
                r#"allow_origins = "*"
                clients = { identify = ["form"] }"#
            ),
            ["Error allow_origins"]
        );
        assert_eq!(
            errors(
                r#"allow_credentials = true
                allow_origins = ["https://a.example"]
                clients = { identify = ["form"], unidentified = "registered" }"#
            ),
            ["Error clients.unidentified"]
        );
        assert_eq!(
            errors(
                r#"allow_credentials = true
                clients = { identify = ["form"] }"#
            ),
            ["warning clients"]
        );
        assert_eq!(
            errors(
                r#"clients = { identify = ["form"], preflight = "any", body_limit = 0, jwt_claims = [] }"#
            ),
            [
                "Warning clients.preflight",
                "Error clients.body_limit",
                "Error clients.jwt_claims"
            ]
        );
        assert!(toml::from_str::<CorsConfig>(r#"clients = { identify = ["cookie"] }"#).is_err());
        assert!(toml::from_str::<CorsConfig>(r#"clients = { idenitfy = ["form"] }"#).is_err());
    }

    #[test]
    fn a_route_inherits_clients_from_the_default_policy() {
        let base: CorsConfig = toml::from_str(r#"clients = { identify = ["form"] }"#).unwrap();
        let route: CorsConfig = toml::from_str(r#"max_age = 60"#).unwrap();
        let merged = Policy::compile_layered(&[
            crate::ConfigLayer::new(&route, "route[0].cors"),
            crate::ConfigLayer::new(&base, "server.cors"),
        ])
        .unwrap();
        assert!(merged.clients().is_some());
    }
}
