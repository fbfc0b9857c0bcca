//! The gateway's configuration file, as written (serde). Every field is optional
//! here so that each key can be checked alone and every problem reported at once;
//! required keys are enforced when the file is compiled.

use std::collections::BTreeMap;

use corsgate_policy::CorsConfig;
use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[server]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerConfig>,
    /// `[policies.NAME]`: CORS policies that routes name with `cors = "NAME"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, CorsConfig>,
    /// `[[route]]`, in file order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteConfig>,
    /// `[registry]`: where OAuth2 clients and their origins live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryConfig>,
}

/// `[server]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the gateway listens on. Default `127.0.0.1:8080`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Address of the admin listener (`/metrics`, `/healthz`, `/readyz`,
    /// `/config`). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_listen: Option<String>,
    /// Time to open a connection to an upstream. Default `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    /// Time for an upstream to send its response headers. Default `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_timeout: Option<String>,
    /// Time a client connection may stay idle between requests. Default `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    /// Time to drain in-flight requests on SIGTERM/SIGINT. Default `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout: Option<String>,
    /// Largest request head (request line and headers), in bytes. Default 65536.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_header_bytes: Option<i64>,
    /// Most client connections open at once. Default 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i64>,
    /// Largest request body, in bytes; 0 for no limit. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<i64>,
    /// `"reject"` (default) or `"keep"`: what `%2F` and `%5C` in a request
    /// path do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escaped_slashes: Option<String>,
    /// `"sensitive"` (default) or `"insensitive"`: whether route paths compare
    /// with ASCII case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_case: Option<String>,
    /// Peers (CIDR blocks) whose forwarding headers are believed. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_proxies: Option<Vec<String>>,
    /// Longest wait for the next bytes of a request body. Default `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_timeout: Option<String>,
    /// Longest wait for the next bytes of an upstream's response body. Default `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_body_timeout: Option<String>,
    /// Most connections open at once to one upstream. Default 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_upstream_connections: Option<i64>,
    /// Most idle connections kept open to one upstream. Default 128.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_idle_per_upstream: Option<i64>,
    /// Time an idle upstream connection is kept. Default `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_idle_timeout: Option<String>,
    /// Longest wait for a free upstream connection. Default `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_queue_timeout: Option<String>,
    /// Time a WebSocket tunnel may carry no bytes either way. Default `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket_idle_timeout: Option<String>,
    /// Time a client may take no response bytes while some wait; then its
    /// connection (or HTTP/2 stream) is closed (reset). Default `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_timeout: Option<String>,
    /// Streams one HTTP/2 client connection may have open at once. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<i64>,
    /// Requests (HTTP/2 streams) one client connection may make. Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<i64>,
    /// The default CORS policy that routes inherit field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsConfig>,
    /// Host names the admin listener answers besides IP literals and
    /// `localhost`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_hosts: Option<Vec<String>>,
    /// One log line per request at the default level. Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<bool>,
    /// `[server.tls]`: HTTPS on `listen`. Default: none (cleartext HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// File holding the bearer token the admin API's write endpoints require.
    /// Default: none (writes refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token_file: Option<String>,
    /// A candidate configuration evaluated beside this one on every request,
    /// never enforced (relative to this file's folder). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_config: Option<String>,
}

/// `[server.tls]`: the gateway's listener speaks HTTPS (TLS 1.2 and 1.3).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificates, each chosen by SNI from its names; the first is
    /// also served to clients that send no (or an unknown) name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<Vec<CertificateConfig>>,
    /// A cleartext listener that only redirects to https (308). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_listen: Option<String>,
    /// `[server.tls.acme]`: certificates from an ACME CA. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeConfig>,
    /// `[server.tls.hsts]`: `Strict-Transport-Security` on every response
    /// over TLS. Default: none (no header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsts: Option<HstsConfig>,
}

/// `[server.tls.hsts]`: HTTP Strict Transport Security (RFC 6797).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HstsConfig {
    /// `max-age`, in seconds; required (0 tells browsers to forget the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
    /// `includeSubDomains`. Default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_subdomains: Option<bool>,
    /// `preload`. Default `false`; needs `include_subdomains` and a year of `max_age`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preload: Option<bool>,
}

/// Keys of `[server.tls.hsts]`.
pub(crate) const HSTS_KEYS: &[&str] = &["max_age", "include_subdomains", "preload"];

/// `[server.tls.acme]`: automatic certificates (RFC 8555).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// The DNS names of the certificate (no wildcards: those need dns-01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<String>>,
    /// `mailto:` addresses the CA may write to about the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<Vec<String>>,
    /// The CA's directory URL. Default: Let's Encrypt production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// PEM file of the CA that signed the directory's own https certificate,
    /// for a private ACME server. Default: the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_ca_file: Option<String>,
    /// Where the account key and the certificates are kept across restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<String>,
    /// `"tls-alpn-01"` (default) or `"http-01"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
    /// How long before expiry to renew. Default `30d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<String>,
}

/// Keys of `[server.tls.acme]`.
pub(crate) const ACME_KEYS: &[&str] = &[
    "domains",
    "contact",
    "directory",
    "directory_ca_file",
    "cache_dir",
    "challenge",
    "renew_before",
];

/// One entry of `server.tls.certificates`: PEM files, relative paths from
/// the configuration file's directory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// The certificate chain, leaf first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// The leaf's private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
}

/// Keys of `[server.tls]`.
pub(crate) const TLS_KEYS: &[&str] = &["certificates", "redirect_listen", "acme", "hsts"];

/// `[[route]]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Path prefix, matched on segment boundaries; the longest match wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Only requests for this `Host` (without port). Default: any host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `http://host:port` of the upstream, or `builtin:demo`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Remove `path` from the request path before forwarding. Default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_prefix: Option<bool>,
    /// `"off"`, `"closed"`, a policy name, or keys overriding `[server.cors]`
    /// (or a named policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<RouteCors>,
    /// `[route.upstream_tls]`: how an `https://` upstream is verified, and the
    /// client certificate shown to it. Default: the system's roots, no
    /// client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_tls: Option<UpstreamTlsConfig>,
}

/// `[route.upstream_tls]`: TLS to an `https://` upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    /// PEM file of the CA(s) the upstream's certificate must chain to,
    /// instead of the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// PEM chain of the client certificate shown to the upstream (mTLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<String>,
    /// PEM private key of `client_cert_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<String>,
    /// The name sent as SNI and verified in the upstream's certificate.
    /// Default: the upstream URL's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// Keys of `[route.upstream_tls]`.
pub(crate) const UPSTREAM_TLS_KEYS: &[&str] = &[
    "ca_file",
    "client_cert_file",
    "client_key_file",
    "server_name",
];

/// A route's `cors` key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "cors is \"off\", \"closed\", a policy name or a table of CORS keys"
)]
pub enum RouteCors {
    /// `cors = "off"`: no CORS handling at all; preflights reach the upstream
    /// and the upstream's own CORS headers reach browsers unchecked.
    Off(Off),
    /// `cors = "closed"`: no origin is allowed, nothing inherited.
    Closed(Closed),
    /// `cors = "NAME"`: the policy `[policies.NAME]`, itself over `[server.cors]`.
    Named(String),
    /// `[route.cors]`: keys that override a named policy (`policy = "NAME"`)
    /// or `[server.cors]`.
    Table(RouteCorsTable),
}

/// The string `"off"` of `cors = "off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Off {
    /// `"off"`.
    Off,
}

/// The string `"closed"` of `cors = "closed"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Closed {
    /// `"closed"`.
    Closed,
}

/// A route's own `cors` table: the policy it starts from, and its own keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouteCorsTable {
    /// `policy = "NAME"`: start from `[policies.NAME]` instead of `[server.cors]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The route's own keys, over the policy.
    #[serde(flatten)]
    pub cors: CorsConfig,
}

/// By hand rather than with `#[serde(flatten)]`, which would pass over unknown
/// keys silently: every key but `policy` goes to [`CorsConfig`], whose
/// `deny_unknown_fields` refuses a typo.
impl<'de> Deserialize<'de> for RouteCorsTable {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(deserializer)?;
        let policy = match table.remove("policy") {
            None => None,
            Some(toml::Value::String(name)) => Some(name),
            Some(_) => {
                return Err(D::Error::custom(
                    "policy is the name of a [policies.NAME] table, a string",
                ));
            }
        };
        let cors = CorsConfig::deserialize(toml::Value::Table(table)).map_err(D::Error::custom)?;
        Ok(RouteCorsTable { policy, cors })
    }
}

impl From<CorsConfig> for RouteCors {
    fn from(cors: CorsConfig) -> Self {
        RouteCors::Table(RouteCorsTable { policy: None, cors })
    }
}

/// Keys of `[server]`, for the configuration reference and suggestions.
pub(crate) const SERVER_KEYS: &[&str] = &[
    "listen",
    "admin_listen",
    "connect_timeout",
    "response_timeout",
    "idle_timeout",
    "shutdown_timeout",
    "max_header_bytes",
    "max_connections",
    "max_body_bytes",
    "escaped_slashes",
    "path_case",
    "trusted_proxies",
    "body_timeout",
    "upstream_body_timeout",
    "max_upstream_connections",
    "max_idle_per_upstream",
    "upstream_idle_timeout",
    "upstream_queue_timeout",
    "websocket_idle_timeout",
    "send_timeout",
    "max_concurrent_streams",
    "max_requests_per_connection",
    "cors",
    "admin_hosts",
    "access_log",
    "tls",
    "admin_token_file",
    "shadow_config",
];

/// Keys of a CORS policy table (`[server.cors]`, `[policies.NAME]`, a route's
/// `cors`), in the order of the configuration reference: the fields of
/// [`CorsConfig`].
pub(crate) const POLICY_KEYS: &[&str] = &[
    "allow_origins",
    "allow_methods",
    "allow_headers",
    "expose_headers",
    "allow_credentials",
    "max_age",
    "allow_private_network",
    "on_disallowed",
    "preflight_status",
    "debug",
    "dangerously_allow_null_origin",
    "dangerously_allow_insecure_origins",
    "dangerously_allow_public_suffix_wildcards",
    "clients",
];

/// Keys of a policy's `clients` table: the fields of
/// [`ClientsConfig`](corsgate_policy::ClientsConfig).
pub(crate) const CLIENTS_KEYS: &[&str] = &[
    "identify",
    "preflight",
    "unidentified",
    "body_limit",
    "jwt_claims",
];

/// Which keys a CORS table sets, in [`POLICY_KEYS`] order.
pub(crate) fn keys_set(cors: &CorsConfig) -> Vec<&'static str> {
    let set = [
        cors.allow_origins.is_some(),
        cors.allow_methods.is_some(),
        cors.allow_headers.is_some(),
        cors.expose_headers.is_some(),
        cors.allow_credentials.is_some(),
        cors.max_age.is_some(),
        cors.allow_private_network.is_some(),
        cors.on_disallowed.is_some(),
        cors.preflight_status.is_some(),
        cors.debug.is_some(),
        cors.dangerously_allow_null_origin.is_some(),
        cors.dangerously_allow_insecure_origins.is_some(),
        cors.dangerously_allow_public_suffix_wildcards.is_some(),
        cors.clients.is_some(),
    ];
    POLICY_KEYS
        .iter()
        .zip(set)
        .filter_map(|(key, is_set)| is_set.then_some(*key))
        .collect()
}

/// `[registry]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// `sqlite:PATH` (relative to the configuration file's folder). Default
    /// `sqlite:corsgate-registry.db`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// How often the registry's revision is compared. Default `1s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<String>,
    /// File the last good snapshot is written to. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_file: Option<String>,
    /// `/readyz` answers 503 until a snapshot is loaded. Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_at_start: Option<bool>,
    /// Create and migrate the registry's tables at start. Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_migrate: Option<bool>,
    /// Longest wait between retries while the database is down. Default `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_max: Option<String>,
    /// File holding the PostgreSQL password (never in the URL). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// PEM CA certificates that verify a PostgreSQL server
    /// (`sslmode=verify-full`). Default: the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// PEM certificate chain corsgate presents to PostgreSQL. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<String>,
    /// PEM private key of `client_cert_file`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<String>,
}

/// Keys of `[registry]`.
pub(crate) const REGISTRY_KEYS: &[&str] = &[
    "database",
    "poll_interval",
    "snapshot_file",
    "require_at_start",
    "auto_migrate",
    "retry_max",
    "password_file",
    "ca_file",
    "client_cert_file",
    "client_key_file",
];

/// Keys of `[[route]]`.
pub(crate) const ROUTE_KEYS: &[&str] = &[
    "path",
    "host",
    "upstream",
    "strip_prefix",
    "cors",
    "upstream_tls",
];

/// Where the value of one CORS key of a route comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The route's own `cors` table sets it (or `cors = "closed"` decides it).
    Route,
    /// `[policies.NAME]` sets it.
    Policy(String),
    /// `[server.cors]` sets it.
    Server,
    /// Nobody sets it: the key's default.
    Default,
}

impl FileConfig {
    /// Where route `index`'s value of the CORS `key` comes from, following the
    /// inheritance: the route's own table, then its named policy, then
    /// `[server.cors]`. `cors = "off"` and `"closed"` inherit nothing
    /// ([`KeySource::Route`]).
    pub fn key_source(&self, index: usize, key: &str) -> KeySource {
        let cors = self.route.get(index).and_then(|r| r.cors.as_ref());
        let policy = match cors {
            Some(RouteCors::Off(_) | RouteCors::Closed(_)) => return KeySource::Route,
            Some(RouteCors::Table(table)) => {
                if keys_set(&table.cors).contains(&key) {
                    return KeySource::Route;
                }
                table.policy.as_deref()
            }
            Some(RouteCors::Named(name)) => Some(name.as_str()),
            None => None,
        };
        if let Some(name) = policy {
            if self
                .policies
                .get(name)
                .is_some_and(|p| keys_set(p).contains(&key))
            {
                return KeySource::Policy(name.to_owned());
            }
        }
        let server = self.server.as_ref().and_then(|s| s.cors.as_ref());
        if server.is_some_and(|c| keys_set(c).contains(&key)) {
            KeySource::Server
        } else {
            KeySource::Default
        }
    }

    /// The named policy route `index` starts from, if any.
    pub fn policy_of(&self, index: usize) -> Option<&str> {
        match self.route.get(index)?.cors.as_ref()? {
            RouteCors::Named(name) => Some(name),
            RouteCors::Table(table) => table.policy.as_deref(),
            _ => None,
        }
    }

    /// The routes a change of `key` at `at` ([`KeySource::Server`] or
    /// [`KeySource::Policy`]) reaches: those that do not set the key nearer.
    pub fn routes_reached(&self, key: &str, at: &KeySource) -> Vec<usize> {
        (0..self.route.len())
            .filter(|i| {
                let from = self.key_source(*i, key);
                match at {
                    KeySource::Server => matches!(from, KeySource::Server | KeySource::Default),
                    KeySource::Policy(name) => {
                        self.policy_of(*i) == Some(name.as_str()) && from != KeySource::Route
                    }
                    _ => false,
                }
            })
            .collect()
    }
}
