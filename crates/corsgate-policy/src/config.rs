//! What people write: the serde model of a CORS policy.
//!
//! Nothing here runs on the request path. [`Policy::compile`](crate::Policy::compile)
//! validates a [`CorsConfig`] and turns it into a [`Policy`](crate::Policy).

use serde::{Deserialize, Serialize};

use crate::client_origins::ClientsConfig;

/// The policy keys of a `[server.cors]` or `[route.cors]` table.
///
/// Every field is optional so that a route's table can override the default policy
/// field by field (see [`ConfigLayer`](crate::ConfigLayer)). A field left unset takes the
/// safest useful default, documented on each field and in `docs/configuration.md`.
///
/// Unknown keys are errors: a typo in a security policy must never be ignored.
///
/// ```
/// use corsgate_policy::{CorsConfig, Policy};
///
/// let config: CorsConfig = toml::from_str(r#"
///     allow_origins = ["https://app.example.com", "https://*.example.org"]
///     allow_methods = ["PUT", "DELETE"]
///     allow_headers = ["content-type", "authorization"]
///     allow_credentials = true
///     max_age = 600
/// "#).unwrap();
/// let policy = Policy::compile(&config).unwrap();
/// assert!(policy.warnings().is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CorsConfig {
    /// Origins allowed to read responses: exact origins (`https://app.example.com`),
    /// subdomain patterns (`https://*.example.com`), any-port patterns
    /// (`http://localhost:*`), or `"*"`. Default: none (CORS closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_origins: Option<List>,
    /// Methods a preflight may ask for. `GET`, `HEAD` and `POST` are always allowed
    /// by the Fetch standard and need not be listed. Default: only those.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_methods: Option<List>,
    /// Request headers a preflight may ask for (case-insensitive). `"*"` allows any
    /// header except `Authorization`, which must always be listed. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_headers: Option<List>,
    /// Response headers JavaScript may read beyond the CORS-safelisted ones.
    /// Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose_headers: Option<List>,
    /// Whether cookies and HTTP authentication may be used. Default: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// Seconds a browser may cache a preflight result, `0` to `86400`.
    /// Default: unset (no header; browsers use 5 seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
    /// Answer Chrome's legacy Private Network Access preflights. Default: `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_private_network: Option<bool>,
    /// What an actual request from a disallowed origin gets. Default: `"omit"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_disallowed: Option<OnDisallowed>,
    /// Status of a successful preflight response: `204` (default) or `200`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight_status: Option<u16>,
    /// Let the browser print the precise cause of a refused preflight.
    /// Default: `false`. See `docs/debug-mode.md` for what it reveals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug: Option<bool>,
    /// Allow the `null` origin (sandboxed iframes, `file:` pages, some redirects).
    /// Any page can produce a `null` origin, so this is close to allowing `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dangerously_allow_null_origin: Option<bool>,
    /// With credentials, allow plain-`http` origins that are not loopback.
    /// Anyone on the network path can impersonate such an origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dangerously_allow_insecure_origins: Option<bool>,
    /// Allow subdomain wildcards over public suffixes (`https://*.github.io`), which
    /// match sites registered by strangers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dangerously_allow_public_suffix_wildcards: Option<bool>,
    /// Per-client origins: how a request names its OAuth2 client, whose
    /// registered origins it may then use (`docs/registry.md`). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<ClientsConfig>,
}

impl CorsConfig {
    /// An empty configuration: every key unset.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `allow_origins`.
    pub fn allow_origins(mut self, list: impl Into<List>) -> Self {
        self.allow_origins = Some(list.into());
        self
    }

    /// Sets `allow_methods`.
    pub fn allow_methods(mut self, list: impl Into<List>) -> Self {
        self.allow_methods = Some(list.into());
        self
    }

    /// Sets `allow_headers`.
    pub fn allow_headers(mut self, list: impl Into<List>) -> Self {
        self.allow_headers = Some(list.into());
        self
    }

    /// Sets `expose_headers`.
    pub fn expose_headers(mut self, list: impl Into<List>) -> Self {
        self.expose_headers = Some(list.into());
        self
    }

    /// Sets `allow_credentials`.
    pub fn allow_credentials(mut self, yes: bool) -> Self {
        self.allow_credentials = Some(yes);
        self
    }

    /// Sets `max_age` in seconds.
    pub fn max_age(mut self, seconds: i64) -> Self {
        self.max_age = Some(seconds);
        self
    }

    /// Sets `on_disallowed`.
    pub fn on_disallowed(mut self, action: OnDisallowed) -> Self {
        self.on_disallowed = Some(action);
        self
    }

    /// Sets `debug`.
    pub fn debug(mut self, yes: bool) -> Self {
        self.debug = Some(yes);
        self
    }
}

/// A list-valued key: an array of strings, a single string, or `"*"`.
///
/// ```
/// use corsgate_policy::{CorsConfig, List};
///
/// let one: CorsConfig = toml::from_str(r#"allow_origins = "https://a.example""#).unwrap();
/// let many: CorsConfig = toml::from_str(r#"allow_origins = ["https://a.example"]"#).unwrap();
/// assert_eq!(one, many);
/// assert!(List::from("*").is_any());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "OneOrMany", into = "Vec<String>")]
pub struct List(Vec<String>);

#[derive(Deserialize)]
#[serde(untagged, expecting = "a string or an array of strings")]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrMany> for List {
    fn from(value: OneOrMany) -> Self {
        match value {
            OneOrMany::One(one) => List(vec![one]),
            OneOrMany::Many(many) => List(many),
        }
    }
}

impl From<List> for Vec<String> {
    fn from(list: List) -> Self {
        list.0
    }
}

impl List {
    /// The entries as written.
    pub fn items(&self) -> &[String] {
        &self.0
    }

    /// Whether the list contains the wildcard `*`.
    pub fn is_any(&self) -> bool {
        self.0.iter().any(|item| item == "*")
    }
}

impl From<&str> for List {
    fn from(one: &str) -> Self {
        List(vec![one.to_owned()])
    }
}

impl From<String> for List {
    fn from(one: String) -> Self {
        List(vec![one])
    }
}

impl<const N: usize> From<[&str; N]> for List {
    fn from(items: [&str; N]) -> Self {
        List(items.iter().map(|item| (*item).to_owned()).collect())
    }
}

impl From<Vec<String>> for List {
    fn from(items: Vec<String>) -> Self {
        List(items)
    }
}

impl From<&[&str]> for List {
    fn from(items: &[&str]) -> Self {
        List(items.iter().map(|item| (*item).to_owned()).collect())
    }
}

/// What an actual (non-preflight) request from a disallowed origin gets.
///
/// ```
/// use corsgate_policy::{CorsConfig, OnDisallowed, Policy};
/// use http::{HeaderMap, Method, StatusCode};
///
/// let policy = Policy::compile(
///     &CorsConfig::new().allow_origins("https://app.example.com").on_disallowed(OnDisallowed::Reject),
/// ).unwrap();
/// let mut request = HeaderMap::new();
/// request.insert("origin", "https://evil.example".parse().unwrap());
/// let decision = policy.decide(&Method::POST, &request);
/// assert_eq!(decision.response_status(), Some(StatusCode::FORBIDDEN));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum OnDisallowed {
    /// The request reaches the upstream; the response carries no CORS headers, so
    /// the browser keeps it from the page. What the Fetch standard intends.
    #[default]
    Omit,
    /// Answer `403` without calling the upstream. Browsers also send `Origin` on
    /// same-origin `POST`s, so list the API's own origin when using this.
    Reject,
}
