//! `[registry]` and `server.admin_token_file`: the client registry's settings,
//! and the rule that routes with `clients` need a registry.

use std::path::PathBuf;
use std::time::Duration;

use corsgate_policy::{Diagnostic, DiagnosticKind};

use crate::Route;
use crate::model::{FileConfig, RegistryConfig};

/// The database a registry lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Database {
    /// A SQLite file; a relative path is relative to the configuration
    /// file's folder (the gateway resolves it).
    Sqlite(PathBuf),
    /// A PostgreSQL database, which several gateways can share.
    Postgres {
        /// `postgres://USER@HOST:PORT/DBNAME?…`, without a password.
        url: String,
        /// The file holding the password (relative: to the configuration
        /// file's folder).
        password_file: Option<PathBuf>,
        /// TLS: the URL's `sslmode` and the `[registry]` files.
        tls: PostgresTls,
    },
}

/// How corsgate connects to PostgreSQL: the URL's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslMode {
    /// In the clear: a loopback or private network only.
    Disable,
    /// TLS, the server's certificate not checked: safe from eavesdroppers,
    /// not from someone in the middle.
    Require,
    /// TLS, the server's certificate checked against `ca_file` (or the
    /// system's roots) and the host name of the URL.
    VerifyFull,
}

impl SslMode {
    /// As written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// TLS to a PostgreSQL registry, checked. Relative paths are relative to the
/// configuration file's folder (the gateway resolves them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresTls {
    /// `sslmode`, or its default (see [`postgres_ssl_mode`]).
    pub mode: SslMode,
    /// PEM CA certificates for `verify-full`; `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to the server.
    pub client_cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    pub client_key_file: Option<PathBuf>,
}

/// The `sslmode` of a `postgres://` URL: `disable`, `require` or
/// `verify-full`. Without one, `verify-full`, unless every host is loopback
/// (`localhost`, `127.0.0.0/8`, `::1`) or a Unix socket, where TLS protects
/// nothing: `disable`. `prefer` and `allow` are refused (they fall back to
/// the clear whenever the server, or someone in between, declines TLS), and
/// so is `verify-ca` (a certificate for any host of the CA would do).
///
/// ```
/// use corsgate_config::registry::{SslMode, postgres_ssl_mode};
///
/// assert_eq!(postgres_ssl_mode("postgres://u@db.internal/x"), Ok(SslMode::VerifyFull));
/// assert_eq!(postgres_ssl_mode("postgres://u@127.0.0.1:5432/x"), Ok(SslMode::Disable));
/// assert_eq!(postgres_ssl_mode("postgres://u@db/x?sslmode=require"), Ok(SslMode::Require));
/// assert!(postgres_ssl_mode("postgres://u@db/x?sslmode=prefer").is_err());
/// ```
pub fn postgres_ssl_mode(text: &str) -> Result<SslMode, String> {
    let url = url::Url::parse(text).map_err(|e| {
        format!("not a PostgreSQL URL ({e}); use \"postgres://USER@HOST:5432/DBNAME\"")
    })?;
    let mut socket = false;
    for (key, value) in url.query_pairs() {
        if key == "host" && value.starts_with('/') {
            socket = true;
        }
        if key != "sslmode" {
            continue;
        }
        return match &*value {
            "disable" => Ok(SslMode::Disable),
            "require" => Ok(SslMode::Require),
            "verify-full" => Ok(SslMode::VerifyFull),
            "prefer" | "allow" => Err(format!(
                "sslmode={value} falls back to the clear whenever the server, or someone in between, declines TLS; use sslmode=verify-full (with ca_file), or sslmode=disable on a loopback or private network"
            )),
            "verify-ca" => Err(
                "sslmode=verify-ca accepts a certificate the CA made for any host; use sslmode=verify-full (the certificate must name the URL's host)".into(),
            ),
            _ => Err(format!(
                "sslmode={value} is not a mode; use disable, require or verify-full"
            )),
        };
    }
    let host = url.host_str().unwrap_or_default();
    let loopback = |host: &str| {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host.to_ascii_lowercase().ends_with(".localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    };
    let local = socket || host.is_empty() || host.split(',').all(loopback);
    Ok(if local {
        SslMode::Disable
    } else {
        SslMode::VerifyFull
    })
}

impl Database {
    /// As written in `[registry] database` (never with a password).
    pub fn url(&self) -> String {
        match self {
            Database::Sqlite(path) => format!("sqlite:{}", path.display()),
            Database::Postgres { url, .. } => url.clone(),
        }
    }
}

/// Checks a `postgres://` URL: refused with a password in it (`/config`,
/// logs and process listings show the URL; the password goes in
/// `password_file`), and with an `sslmode` that is not `disable`, `require`
/// or `verify-full`.
fn check_postgres_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| {
        format!("not a PostgreSQL URL ({e}); use \"postgres://USER@HOST:5432/DBNAME\"")
    })?;
    if url.password().is_some() {
        return Err(
            "a password in the URL is shown by /config, logs and process listings; remove it and put it in password_file".into(),
        );
    }
    if url.query_pairs().any(|(key, _)| key == "password") {
        return Err(
            "a password in the URL is shown by /config, logs and process listings; remove it and put it in password_file".into(),
        );
    }
    postgres_ssl_mode(text).map(|_| ())
}

/// `ca_file`, `client_cert_file` and `client_key_file` against the database
/// and its `sslmode`: every misuse reported.
fn check_tls(
    config: &RegistryConfig,
    mode: Option<SslMode>,
    diagnostics: &mut Vec<Diagnostic>,
) -> PostgresTls {
    let mut error = |key: &str, value: &str, message: String| {
        diagnostics.push(
            Diagnostic::error(DiagnosticKind::File, format!("registry.{key}"), message)
                .with_value(value),
        );
    };
    let files = [
        ("ca_file", &config.ca_file),
        ("client_cert_file", &config.client_cert_file),
        ("client_key_file", &config.client_key_file),
    ];
    match mode {
        None => {
            for (key, value) in files {
                if let Some(value) = value {
                    error(
                        key,
                        value,
                        format!(
                            "{key} is for TLS to a postgres:// database; a SQLite file has none"
                        ),
                    );
                }
            }
        }
        Some(SslMode::Disable) => {
            for (key, value) in files {
                if let Some(value) = value {
                    error(
                        key,
                        value,
                        format!(
                            "{key} needs TLS, and the database URL says sslmode=disable (or names a loopback host, where it is the default); write sslmode=verify-full in database"
                        ),
                    );
                }
            }
        }
        Some(SslMode::Require) => {
            if let Some(value) = &config.ca_file {
                error(
                    "ca_file",
                    value,
                    "sslmode=require does not check the server's certificate, so ca_file would never be read; write sslmode=verify-full in database".into(),
                );
            }
        }
        Some(SslMode::VerifyFull) => {}
    }
    if mode.is_some_and(|m| m != SslMode::Disable) {
        match (&config.client_cert_file, &config.client_key_file) {
            (Some(cert), None) => error(
                "client_cert_file",
                cert,
                "client_cert_file needs its private key: add client_key_file".into(),
            ),
            (None, Some(key)) => error(
                "client_key_file",
                key,
                "client_key_file needs its certificate: add client_cert_file".into(),
            ),
            _ => {}
        }
    }
    PostgresTls {
        mode: mode.unwrap_or(SslMode::Disable),
        ca_file: config.ca_file.as_ref().map(PathBuf::from),
        client_cert_file: config.client_cert_file.as_ref().map(PathBuf::from),
        client_key_file: config.client_key_file.as_ref().map(PathBuf::from),
    }
}

/// `[registry]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySettings {
    /// Where clients are stored.
    pub database: Database,
    /// How often the registry's revision is compared.
    pub poll_interval: Duration,
    /// Where the last good snapshot is written (relative: to the
    /// configuration file's folder).
    pub snapshot_file: Option<PathBuf>,
    /// `/readyz` answers 503 until a snapshot is loaded.
    pub require_at_start: bool,
    /// Create and migrate the tables at start.
    pub auto_migrate: bool,
    /// Longest wait between retries while the database is down.
    pub retry_max: Duration,
}

/// The default database, next to the configuration file.
pub(crate) const DEFAULT_DATABASE: &str = "sqlite:corsgate-registry.db";

pub(crate) fn settings(
    config: &RegistryConfig,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<RegistrySettings> {
    let before = diagnostics.iter().filter(|d| d.is_error()).count();
    let text = config.database.as_deref().unwrap_or(DEFAULT_DATABASE);
    let database = if let Some(path) = text
        .strip_prefix("sqlite://")
        .or_else(|| text.strip_prefix("sqlite:"))
        .filter(|p| !p.is_empty())
    {
        if config.password_file.is_some() {
            diagnostics.push(
                Diagnostic::error(
                    DiagnosticKind::File,
                    "registry.password_file",
                    "password_file is for a postgres:// database; a SQLite file has no password",
                )
                .with_value(config.password_file.as_deref().unwrap_or_default()),
            );
        }
        check_tls(config, None, diagnostics);
        Some(Database::Sqlite(PathBuf::from(path)))
    } else if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        match check_postgres_url(text) {
            Ok(()) => Some(Database::Postgres {
                url: text.to_owned(),
                password_file: config.password_file.as_ref().map(PathBuf::from),
                tls: check_tls(config, postgres_ssl_mode(text).ok(), diagnostics),
            }),
            Err(why) => {
                diagnostics.push(
                    Diagnostic::error(DiagnosticKind::File, "registry.database", why)
                        .with_value(text),
                );
                None
            }
        }
    } else {
        diagnostics.push(
            Diagnostic::error(
                DiagnosticKind::File,
                "registry.database",
                "a database is \"sqlite:PATH\", such as \"sqlite:corsgate-registry.db\" (next to this file), or \"postgres://USER@HOST:5432/DBNAME\"",
            )
            .with_value(text),
        );
        None
    };
    let mut duration = |key: &str, value: &Option<String>, default: Duration| {
        let Some(text) = value else { return default };
        match humantime::parse_duration(text) {
            Ok(d) if d >= Duration::from_millis(100) && d <= Duration::from_secs(3600) => d,
            _ => {
                diagnostics.push(
                    Diagnostic::error(
                        DiagnosticKind::File,
                        format!("registry.{key}"),
                        "a duration from 100ms to 1h, such as \"1s\" or \"30s\"",
                    )
                    .with_value(text),
                );
                default
            }
        }
    };
    let poll_interval = duration(
        "poll_interval",
        &config.poll_interval,
        Duration::from_secs(1),
    );
    let retry_max = duration("retry_max", &config.retry_max, Duration::from_secs(30));
    let after = diagnostics.iter().filter(|d| d.is_error()).count();
    if after != before {
        return None;
    }
    Some(RegistrySettings {
        database: database?,
        poll_interval,
        snapshot_file: config.snapshot_file.as_ref().map(PathBuf::from),
        require_at_start: config.require_at_start.unwrap_or(true),
        auto_migrate: config.auto_migrate.unwrap_or(true),
        retry_max,
    })
}

/// `clients` on a route (or in `[server.cors]`) without `[registry]`: refused,
/// at the first place it is used.
pub(crate) fn check_clients_need_registry(
    config: &FileConfig,
    routes: &[Route],
    default_policy: Option<&corsgate_policy::Policy>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    if config.registry.is_some() {
        return;
    }
    let message = "clients needs a registry of clients: add a [registry] table (database = \"sqlite:corsgate-registry.db\" is the default)";
    if default_policy.is_some_and(|p| p.clients().is_some()) {
        diagnostics.push(Diagnostic::error(
            DiagnosticKind::Clients,
            "server.cors.clients",
            message,
        ));
        return;
    }
    if let Some(route) = routes
        .iter()
        .find(|r| r.policy.as_ref().is_some_and(|p| p.clients().is_some()))
    {
        diagnostics.push(Diagnostic::error(
            DiagnosticKind::Clients,
            format!("route[{}].cors.clients", route.index),
            message,
        ));
    }
}

impl RegistrySettings {
    /// `[registry]` as written back for `/config`.
    pub(crate) fn effective(&self) -> RegistryConfig {
        let secs = |d: Duration| humantime::format_duration(d).to_string();
        RegistryConfig {
            database: Some(self.database.url()),
            poll_interval: Some(secs(self.poll_interval)),
            snapshot_file: self.snapshot_file.as_ref().map(|p| p.display().to_string()),
            require_at_start: Some(self.require_at_start),
            auto_migrate: Some(self.auto_migrate),
            retry_max: Some(secs(self.retry_max)),
            password_file: match &self.database {
                Database::Postgres {
                    password_file: Some(path),
                    ..
                } => Some(path.display().to_string()),
                _ => None,
            },
            ca_file: tls_file(&self.database, |t| &t.ca_file),
            client_cert_file: tls_file(&self.database, |t| &t.client_cert_file),
            client_key_file: tls_file(&self.database, |t| &t.client_key_file),
        }
    }
}

fn tls_file(
    database: &Database,
    file: impl Fn(&PostgresTls) -> &Option<PathBuf>,
) -> Option<String> {
    match database {
        Database::Postgres { tls, .. } => file(tls).as_ref().map(|p| p.display().to_string()),
        Database::Sqlite(_) => None,
    }
}

#[cfg(test)]
mod tests {
    /// Whether any route of the table is client-scoped.
    fn has_client_routes(routes: &crate::RouteTable) -> bool {
        routes
            .iter()
            .any(|r| r.policy.as_ref().is_some_and(|p| p.clients().is_some()))
    }

    fn problems(text: &str) -> Vec<String> {
        crate::check(text)
            .problems
            .iter()
            .map(|p| format!("{}:{} {}", p.line, p.column, p.diagnostic))
            .collect()
    }

    const ROUTE: &str = r#"
[[route]]
path = "/oauth2/token"
upstream = "http://127.0.0.1:4444"
[route.cors]
allow_headers = ["authorization"]
clients = { identify = ["basic", "form"] }
"#;

    #[test]
    fn a_client_route_with_a_registry_compiles() {
        let text = format!("[registry]\npoll_interval = \"2s\"\n{ROUTE}");
        let checked = crate::check(&text);
        assert!(!checked.has_errors(), "{:?}", problems(&text));
        let gateway = checked.gateway.unwrap();
        let registry = gateway.settings.registry.unwrap();
        assert_eq!(
            registry.database,
            super::Database::Sqlite("corsgate-registry.db".into())
        );
        assert_eq!(registry.poll_interval, std::time::Duration::from_secs(2));
        assert!(has_client_routes(&gateway.routes));
    }

    #[test]
    fn clients_without_a_registry_and_every_typo_are_reported_at_once() {
        let text = format!(
            "{ROUTE}\n[[route]]\npath = \"/userinfo\"\nupstream = \"http://127.0.0.1:4444\"\ncors = {{ clients = {{ idenitfy = [\"bearer-jwt\"] }} }}\n"
        );
        let found = problems(&text);
        assert!(
            found
                .iter()
                .any(|p| p.contains("route[0].cors.clients") && p.contains("[registry]")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("12:") && p.contains("did you mean \"identify\"")),
            "{found:?}"
        );
        let found = problems(&format!(
            "[registry]\ndatabase = \"postgres://u:secret@db/x\"\npoll_intervall = \"1s\"\n{ROUTE}"
        ));
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("2:") && p.contains("registry.database")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("3:") && p.contains("did you mean \"poll_interval\"")),
            "{found:?}"
        );
    }

    #[test]
    fn a_postgres_database_without_a_password_in_its_url() {
        let text = format!(
            "[registry]\ndatabase = \"postgres://corsgate@127.0.0.1:5432/corsgate?sslmode=disable\"\npassword_file = \"db-password\"\n{ROUTE}"
        );
        let checked = crate::check(&text);
        assert!(!checked.has_errors(), "{:?}", problems(&text));
        let registry = checked.gateway.unwrap().settings.registry.unwrap();
        assert_eq!(
            registry.database,
            super::Database::Postgres {
                url: "postgres://corsgate@127.0.0.1:5432/corsgate?sslmode=disable".into(),
                password_file: Some("db-password".into()),
                tls: super::PostgresTls {
                    mode: super::SslMode::Disable,
                    ca_file: None,
                    client_cert_file: None,
                    client_key_file: None,
                },
            }
        );
        for (database, expected) in [
            ("postgres://u:secret@db/x", "password_file"),
            ("postgres://u@db/x?password=secret", "password_file"),
            (
                "postgres://u@db/x?sslmode=prefer",
                "falls back to the clear",
            ),
            (
                "postgres://u@db/x?sslmode=verify-ca",
                "use sslmode=verify-full",
            ),
            ("mysql://u@db/x", "postgres://USER@HOST"),
        ] {
            let found = problems(&format!("[registry]\ndatabase = \"{database}\"\n{ROUTE}"));
            assert!(
                found
                    .iter()
                    .any(|p| p.starts_with("2:") && p.contains(expected)),
                "{database}: {found:?}"
            );
        }
        let found = problems(&format!("[registry]\npassword_file = \"pw\"\n{ROUTE}"));
        assert!(
            found.iter().any(|p| p.contains("registry.password_file")),
            "{found:?}"
        );
    }

    #[test]
    fn tls_to_postgres_defaults_to_verify_full_off_loopback_and_every_misuse_is_reported() {
        use super::{Database, SslMode};
        let tls_of = |text: &str| {
            let checked = crate::check(text);
            assert!(!checked.has_errors(), "{:?}", problems(text));
            match checked.gateway.unwrap().settings.registry.unwrap().database {
                Database::Postgres { tls, .. } => tls,
                other => panic!("{other:?}"),
            }
        };
        let tls = tls_of(&format!(
            "[registry]\ndatabase = \"postgres://corsgate@db.internal/corsgate\"\nca_file = \"ca.pem\"\nclient_cert_file = \"me.pem\"\nclient_key_file = \"me.key\"\n{ROUTE}"
        ));
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.ca_file.as_deref(), Some(std::path::Path::new("ca.pem")));
        let tls = tls_of(&format!(
            "[registry]\ndatabase = \"postgres://corsgate@[::1]:5433/corsgate\"\n{ROUTE}"
        ));
        assert_eq!(tls.mode, SslMode::Disable);
        let tls = tls_of(&format!(
            "[registry]\ndatabase = \"postgres://corsgate@localhost/c?sslmode=require\"\n{ROUTE}"
        ));
        assert_eq!(tls.mode, SslMode::Require);

        let found = problems(&format!(
            "[registry]\ndatabase = \"postgres://u@db/x?sslmode=require\"\nca_file = \"ca.pem\"\nclient_cert_file = \"me.pem\"\n{ROUTE}"
        ));
        assert!(
            found.iter().any(|p| p.starts_with("3:")
                && p.contains("registry.ca_file")
                && p.contains("verify-full")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("4:") && p.contains("add client_key_file")),
            "{found:?}"
        );
        let found = problems(&format!(
            "[registry]\ndatabase = \"postgres://u@127.0.0.1/x\"\nclient_key_file = \"me.key\"\n{ROUTE}"
        ));
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("3:") && p.contains("needs TLS")),
            "{found:?}"
        );
        let found = problems(&format!("[registry]\nca_file = \"ca.pem\"\n{ROUTE}"));
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("2:") && p.contains("SQLite")),
            "{found:?}"
        );
    }
}
