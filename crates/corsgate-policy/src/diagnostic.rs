//! Problems found while compiling a configuration.

use std::fmt;

use serde::Serialize;

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Severity {
    /// Valid, but probably not what was meant.
    Warning,
    /// The configuration is refused.
    Error,
}

/// The machine-readable kind of a [`Diagnostic`]. Its `as_str` form is stable and
/// appears in `corsgate check --format json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DiagnosticKind {
    /// An `allow_origins` entry that is not an origin or pattern.
    InvalidOrigin,
    /// An origin not in the canonical form browsers send.
    NonCanonicalOrigin,
    /// A malformed `*` in an origin pattern.
    MalformedWildcard,
    /// `*` origin together with credentials.
    WildcardWithCredentials,
    /// `null` or `file://` origin without `dangerously_allow_null_origin`.
    NullOrigin,
    /// Plain-http non-loopback origin with credentials.
    InsecureOrigin,
    /// Subdomain wildcard over a public suffix.
    PublicSuffixWildcard,
    /// A method that is not a token.
    InvalidMethod,
    /// CONNECT, TRACE or TRACK.
    ForbiddenMethod,
    /// A header name that is not a token.
    InvalidHeaderName,
    /// A forbidden request header in `allow_headers`.
    ForbiddenHeader,
    /// A CORS response header (`Access-Control-Allow-Origin`, …) in
    /// `allow_headers`.
    ResponseHeaderInAllowHeaders,
    /// `Set-Cookie` in `expose_headers`.
    ForbiddenExposedHeader,
    /// `*` in `expose_headers` together with credentials.
    WildcardExposeWithCredentials,
    /// `max_age` out of range.
    InvalidMaxAge,
    /// `max_age` above what browsers honour.
    MaxAgeCapped,
    /// `preflight_status` other than 200 or 204.
    InvalidPreflightStatus,
    /// `allow_private_network` is set.
    PrivateNetworkAccess,
    /// `allow_headers = "*"` without `Authorization`.
    WildcardHeadersWithoutAuthorization,
    /// A list entry that has no effect (safelisted method, `OPTIONS`, …).
    Redundant,
    /// The same entry twice.
    Duplicate,
    /// A `dangerously_*` switch is on.
    Dangerous,
    /// A method that browsers will not send in this case.
    MethodCase,
    /// Anything about the file around the policy (the gateway's keys).
    File,
    /// An origin whose host the URL standard rewrites (`http://127.1` is
    /// `http://127.0.0.1`): browsers send the rewritten form.
    RewrittenHost,
    /// An origin whose host the URL standard rejects (`http://foo.bar.255`,
    /// invalid punycode): no browser sends it.
    InvalidHost,
    /// An origin on a port Fetch blocks (a "bad port", port 0 too): no page is
    /// loaded from it.
    BadPort,
    /// A request header (`Origin`, `Access-Control-Request-*`) in
    /// `expose_headers`: no response carries it.
    RequestHeaderInExposeHeaders,
    /// A CORS response header (`Access-Control-Allow-*`, …) in
    /// `expose_headers`: the policy writes it; its keys say what it holds.
    CorsHeaderInExposeHeaders,
    /// A problem with a route's `clients` table (per-client origins).
    Clients,
    /// `*` in a client's registered origins: a client lists its own origins.
    ClientWildcard,
}

impl DiagnosticKind {
    /// The stable kebab-case name.
    pub fn as_str(self) -> &'static str {
        use DiagnosticKind::*;
        match self {
            InvalidOrigin => "invalid-origin",
            NonCanonicalOrigin => "non-canonical-origin",
            MalformedWildcard => "malformed-wildcard",
            WildcardWithCredentials => "wildcard-with-credentials",
            NullOrigin => "null-origin",
            InsecureOrigin => "insecure-origin",
            PublicSuffixWildcard => "public-suffix-wildcard",
            InvalidMethod => "invalid-method",
            ForbiddenMethod => "forbidden-method",
            InvalidHeaderName => "invalid-header-name",
            ForbiddenHeader => "forbidden-header",
            ResponseHeaderInAllowHeaders => "response-header-in-allow-headers",
            ForbiddenExposedHeader => "forbidden-exposed-header",
            WildcardExposeWithCredentials => "wildcard-expose-with-credentials",
            InvalidMaxAge => "invalid-max-age",
            MaxAgeCapped => "max-age-capped",
            InvalidPreflightStatus => "invalid-preflight-status",
            PrivateNetworkAccess => "private-network-access",
            WildcardHeadersWithoutAuthorization => "wildcard-headers-without-authorization",
            Redundant => "redundant",
            Duplicate => "duplicate",
            Dangerous => "dangerous",
            MethodCase => "method-case",
            File => "file",
            RewrittenHost => "rewritten-host",
            InvalidHost => "invalid-host",
            BadPort => "bad-port",
            RequestHeaderInExposeHeaders => "request-header-in-expose-headers",
            CorsHeaderInExposeHeaders => "cors-header-in-expose-headers",
            Clients => "clients",
            ClientWildcard => "client-wildcard",
        }
    }
}

/// One problem: where it is, what was written, what rule it breaks and the fix.
///
/// The path uses the file's own names, `server.cors.allow_origins[1]` or
/// `route[2].cors.max_age`, with indexes from 0.
///
/// ```
/// use corsgate_policy::{CorsConfig, DiagnosticKind, Policy, Severity};
///
/// let policy = Policy::compile(&CorsConfig::new().allow_origins("https://app.example.com").max_age(9000))
///     .unwrap();
/// let warning = &policy.warnings()[0];
/// assert_eq!(warning.severity(), Severity::Warning);
/// assert_eq!(warning.kind(), DiagnosticKind::MaxAgeCapped);
/// assert_eq!(warning.path(), "max_age");
/// assert_eq!(warning.value(), Some("9000"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Diagnostic {
    severity: Severity,
    kind: DiagnosticKind,
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    message: String,
}

impl Diagnostic {
    /// A new error.
    pub fn error(
        kind: DiagnosticKind,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Error,
            kind,
            path: path.into(),
            value: None,
            message: message.into(),
        }
    }

    /// A new warning.
    pub fn warning(
        kind: DiagnosticKind,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            kind,
            path: path.into(),
            value: None,
            message: message.into(),
        }
    }

    /// The same, with the offending value.
    pub fn with_value(mut self, value: impl Into<String>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// Error or warning.
    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// The machine-readable kind.
    pub fn kind(&self) -> DiagnosticKind {
        self.kind
    }

    /// Where: `route[2].cors.allow_origins[1]`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The value as written, when the problem is about one value.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// The rule and the fix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether this diagnostic refuses the configuration.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{label}: {}: ", self.path)?;
        if let Some(value) = &self.value {
            write!(f, "{value:?}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A configuration that cannot be compiled, with every problem in it (errors and
/// warnings alike, in the order of the file).
///
/// ```
/// use corsgate_policy::{CorsConfig, DiagnosticKind, Policy};
///
/// let config = CorsConfig::new()
///     .allow_origins(["https://app.example.com/", "*"])
///     .allow_credentials(true);
/// let error = Policy::compile(&config).unwrap_err();
/// // Every problem at once, each with its path.
/// let paths: Vec<&str> = error.errors().map(|d| d.path()).collect();
/// assert!(paths.contains(&"allow_origins[0]"), "{error}");
/// assert!(error.errors().count() >= 2, "{error}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    diagnostics: Vec<Diagnostic>,
}

impl CompileError {
    pub(crate) fn new(diagnostics: Vec<Diagnostic>) -> Self {
        Self { diagnostics }
    }

    /// Every problem, errors and warnings.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// The errors alone.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    /// Takes the diagnostics out.
    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        self.diagnostics
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self.errors().count();
        write!(
            f,
            "invalid CORS policy ({errors} error{})",
            if errors == 1 { "" } else { "s" }
        )?;
        for diagnostic in self.errors() {
            write!(f, "\n  {diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CompileError {}
