//! `[server.tls]`: which certificates the gateway serves, and the cleartext
//! listener that redirects to https.
//!
//! Only the shape is checked here (files named, addresses that parse): reading
//! the PEM files, matching each key to its certificate and reading their names
//! and expiry needs a crypto provider, which the gateway has and this crate
//! does not want (it stays free of I/O and runtime crates). `corsgate check`
//! runs the gateway's own certificate loader, so that `check` and `serve` can
//! never disagree about a file.

use std::net::SocketAddr;
use std::path::PathBuf;

use corsgate_policy::{Diagnostic, DiagnosticKind};

use crate::model::TlsConfig;

/// `[server.tls]`, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// At least one; the first is the default for clients without (or with an
    /// unknown) SNI name.
    pub certificates: Vec<CertificateFiles>,
    /// The cleartext listener that answers every request with a 308 to the
    /// same URL over https.
    pub redirect_listen: Option<SocketAddr>,
    /// `[server.tls.acme]`: a certificate from an ACME CA, beside (or instead
    /// of) `certificates`.
    pub acme: Option<AcmeSettings>,
    /// `[server.tls.hsts]`: the `Strict-Transport-Security` header of every
    /// response over TLS; `None` (the default): no header.
    pub hsts: Option<Hsts>,
}

/// `[server.tls.hsts]`, compiled (RFC 6797).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hsts {
    /// `max-age`, in seconds.
    pub max_age: u64,
    /// `includeSubDomains`: every subdomain is https-only too.
    pub include_subdomains: bool,
    /// `preload`: consent to be listed in the browsers' built-in HSTS lists.
    pub preload: bool,
    /// The header's value, made once.
    pub header: http::HeaderValue,
}

/// One year: what the browsers' preload list requires of `max-age`.
pub(crate) const HSTS_PRELOAD_MIN_AGE: u64 = 365 * 24 * 3600;

/// TLS to one `https://` upstream (`[route.upstream_tls]`), as written; the
/// gateway reads the files. Relative paths are read from the configuration
/// file's directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTls {
    /// The CA(s) the upstream's certificate must chain to; `None`: the
    /// system's roots.
    pub ca_file: Option<PathBuf>,
    /// The client certificate shown to the upstream (mTLS).
    pub client_cert: Option<CertificateFiles>,
    /// The name sent as SNI and checked against the upstream's certificate;
    /// `None`: the host of the upstream URL.
    pub server_name: Option<String>,
}

/// Let's Encrypt's production directory, the default `directory`.
pub(crate) const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// `[server.tls.acme]`, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// Lowercase DNS names, at least one; the first names the cache files.
    pub domains: Vec<String>,
    /// `mailto:` URLs.
    pub contact: Vec<String>,
    /// The CA's ACME directory URL (default: Let's Encrypt production).
    pub directory: String,
    /// A CA certificate to trust for the directory's TLS (a test CA such as pebble).
    pub directory_ca_file: Option<PathBuf>,
    /// Where the account key and certificates are kept across restarts.
    pub cache_dir: PathBuf,
    /// How the CA checks that the gateway controls each domain.
    pub challenge: AcmeChallenge,
    /// A certificate is renewed this long before it expires.
    pub renew_before: std::time::Duration,
}

/// How the CA checks that the gateway controls a domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// RFC 8737: a TLS handshake on port 443 with ALPN `acme-tls/1`.
    TlsAlpn01,
    /// RFC 8555 section 8.3: `http://DOMAIN/.well-known/acme-challenge/TOKEN`
    /// on port 80, served by `redirect_listen`.
    Http01,
}

impl AcmeChallenge {
    /// The name the file uses.
    pub fn as_str(self) -> &'static str {
        match self {
            AcmeChallenge::TlsAlpn01 => "tls-alpn-01",
            AcmeChallenge::Http01 => "http-01",
        }
    }
}

/// One certificate: its chain and key files, as written (a relative path is
/// read from the configuration file's directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// The PEM chain: the certificate first, then its intermediates.
    pub cert_file: PathBuf,
    /// The PEM private key of the first certificate.
    pub key_file: PathBuf,
}

/// Checks `[server.tls]`; `None` with diagnostics when it has errors.
pub(crate) fn compile(
    tls: &TlsConfig,
    listen: SocketAddr,
    admin_listen: Option<SocketAddr>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<TlsSettings> {
    let errors_before = diagnostics.iter().filter(|d| d.is_error()).count();
    let mut certificates = Vec::new();
    match &tls.certificates {
        None if tls.acme.is_some() => {}
        None => diagnostics.push(Diagnostic::error(
            DiagnosticKind::File,
            "server.tls.certificates",
            "[server.tls] needs certificates = [{ cert_file = \"cert.pem\", key_file = \"key.pem\" }]",
        )),
        Some(list) if list.is_empty() => diagnostics.push(Diagnostic::error(
            DiagnosticKind::File,
            "server.tls.certificates",
            "at least one certificate: [{ cert_file = \"cert.pem\", key_file = \"key.pem\" }]",
        )),
        Some(list) => {
            for (i, entry) in list.iter().enumerate() {
                let file = |key: &str, value: &Option<String>, diagnostics: &mut Vec<Diagnostic>| {
                    match value.as_deref() {
                        Some(path) if !path.trim().is_empty() => Some(PathBuf::from(path)),
                        other => {
                            let mut d = Diagnostic::error(
                                DiagnosticKind::File,
                                format!("server.tls.certificates[{i}].{key}"),
                                format!("{key} names a PEM file (a path, relative to the configuration file's directory)"),
                            );
                            if let Some(v) = other {
                                d = d.with_value(v);
                            }
                            diagnostics.push(d);
                            None
                        }
                    }
                };
                let cert = file("cert_file", &entry.cert_file, diagnostics);
                let key = file("key_file", &entry.key_file, diagnostics);
                if let (Some(cert_file), Some(key_file)) = (cert, key) {
                    certificates.push(CertificateFiles {
                        cert_file,
                        key_file,
                    });
                }
            }
        }
    }
    let mut redirect_listen = None;
    if let Some(text) = &tls.redirect_listen {
        let at = "server.tls.redirect_listen";
        match text.parse::<SocketAddr>() {
            Ok(addr) if addr == listen || Some(addr) == admin_listen => {
                diagnostics.push(
                    Diagnostic::error(
                        DiagnosticKind::File,
                        at,
                        "the redirect listener needs an address of its own (not listen's or admin_listen's), such as \"0.0.0.0:80\"",
                    )
                    .with_value(text),
                );
            }
            Ok(addr) => redirect_listen = Some(addr),
            Err(_) => diagnostics.push(
                Diagnostic::error(
                    DiagnosticKind::File,
                    at,
                    "an address is IP:port, such as \"0.0.0.0:80\" or \"[::]:80\"",
                )
                .with_value(text),
            ),
        }
    }
    let acme = tls
        .acme
        .as_ref()
        .and_then(|acme| compile_acme(acme, redirect_listen, diagnostics));
    let hsts = tls
        .hsts
        .as_ref()
        .and_then(|hsts| compile_hsts(hsts, diagnostics));
    let errors_after = diagnostics.iter().filter(|d| d.is_error()).count();
    (errors_after == errors_before).then_some(TlsSettings {
        certificates,
        redirect_listen,
        acme,
        hsts,
    })
}

/// `[server.tls.hsts]`. `max_age` is required: how long browsers refuse
/// cleartext for the host is a choice to make, not a default to inherit.
/// `preload` is refused without what the browsers' preload list requires
/// (`include_subdomains` and a `max_age` of at least a year): such a header
/// asks for a listing the list would refuse.
fn compile_hsts(
    hsts: &crate::model::HstsConfig,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Hsts> {
    let errors_before = diagnostics.iter().filter(|d| d.is_error()).count();
    let include_subdomains = hsts.include_subdomains.unwrap_or(false);
    let preload = hsts.preload.unwrap_or(false);
    let max_age = match hsts.max_age {
        None => {
            diagnostics.push(Diagnostic::error(
                DiagnosticKind::File,
                "server.tls.hsts",
                "[server.tls.hsts] needs max_age, in seconds: start small (max_age = 300) and raise it to a year (31536000) once every subdomain serves https",
            ));
            0
        }
        Some(age) => match u64::try_from(age) {
            Ok(age) => age,
            Err(_) => {
                diagnostics.push(
                    Diagnostic::error(
                        DiagnosticKind::File,
                        "server.tls.hsts.max_age",
                        "max_age is a number of seconds, 0 or more (0 tells browsers to forget the host's HSTS)",
                    )
                    .with_value(age.to_string()),
                );
                0
            }
        },
    };
    if preload && !include_subdomains {
        diagnostics.push(Diagnostic::error(
            DiagnosticKind::File,
            "server.tls.hsts.preload",
            "the browsers' preload list takes only hosts that send includeSubDomains: set include_subdomains = true (every subdomain must then serve https), or remove preload",
        ));
    }
    if preload && hsts.max_age.is_some() && max_age < HSTS_PRELOAD_MIN_AGE {
        diagnostics.push(
            Diagnostic::error(
                DiagnosticKind::File,
                "server.tls.hsts.max_age",
                "the browsers' preload list takes only a max_age of a year or more: use max_age = 31536000, or remove preload",
            )
            .with_value(max_age.to_string()),
        );
    }
    let errors_after = diagnostics.iter().filter(|d| d.is_error()).count();
    if errors_after != errors_before {
        return None;
    }
    let mut value = format!("max-age={max_age}");
    if include_subdomains {
        value.push_str("; includeSubDomains");
    }
    if preload {
        value.push_str("; preload");
    }
    let header = http::HeaderValue::from_str(&value).ok()?;
    Some(Hsts {
        max_age,
        include_subdomains,
        preload,
        header,
    })
}

/// Puts `[route.upstream_tls]` into an `https://` upstream, or refuses it on
/// any other. `at` is the route (`route[2]`).
pub(crate) fn compile_upstream_tls(
    upstream: Option<crate::Upstream>,
    written: Option<&crate::model::UpstreamTlsConfig>,
    at: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<crate::Upstream> {
    use crate::{Transport, Upstream};
    let Some(written) = written else {
        return upstream;
    };
    let Some(Upstream::Http {
        authority,
        transport: Transport::Https(_),
    }) = upstream
    else {
        if upstream.is_some() {
            diagnostics.push(Diagnostic::error(
                DiagnosticKind::File,
                format!("{at}.upstream_tls"),
                "upstream_tls is for an https:// upstream; this route's upstream is not one: write upstream = \"https://host:port\", or remove upstream_tls",
            ));
        }
        return None;
    };
    let errors_before = diagnostics.iter().filter(|d| d.is_error()).count();
    let path = |key: &str, value: &Option<String>, diagnostics: &mut Vec<Diagnostic>| match value
        .as_deref()
    {
        Some(p) if !p.trim().is_empty() => Some(PathBuf::from(p)),
        Some(p) => {
            diagnostics.push(
                Diagnostic::error(
                    DiagnosticKind::File,
                    format!("{at}.upstream_tls.{key}"),
                    format!("{key} names a PEM file (a path, relative to the configuration file's directory)"),
                )
                .with_value(p),
            );
            None
        }
        None => None,
    };
    let ca_file = path("ca_file", &written.ca_file, diagnostics);
    let cert = path("client_cert_file", &written.client_cert_file, diagnostics);
    let key = path("client_key_file", &written.client_key_file, diagnostics);
    let client_cert = match (cert, key) {
        (Some(cert_file), Some(key_file)) => Some(CertificateFiles {
            cert_file,
            key_file,
        }),
        (None, None) => None,
        (Some(_), None) if written.client_key_file.is_none() => {
            diagnostics.push(Diagnostic::error(
                DiagnosticKind::File,
                format!("{at}.upstream_tls.client_cert_file"),
                "a client certificate needs its key: add client_key_file = \"client.key\"",
            ));
            None
        }
        (None, Some(_)) if written.client_cert_file.is_none() => {
            diagnostics.push(Diagnostic::error(
                DiagnosticKind::File,
                format!("{at}.upstream_tls.client_key_file"),
                "a client key needs its certificate: add client_cert_file = \"client.pem\"",
            ));
            None
        }
        _ => None,
    };
    let server_name = match written.server_name.as_deref() {
        None => None,
        Some(name) => {
            let fixed = name.trim_end_matches('.').to_ascii_lowercase();
            let dns = !fixed.is_empty()
                && fixed.len() <= 253
                && fixed
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                && !fixed.split('.').any(str::is_empty);
            if fixed.parse::<std::net::IpAddr>().is_ok() || dns {
                Some(fixed)
            } else {
                diagnostics.push(
                    Diagnostic::error(
                        DiagnosticKind::File,
                        format!("{at}.upstream_tls.server_name"),
                        "a DNS name such as \"api.internal.example\" (a non-ASCII name in its xn-- form) or an IP address, without port",
                    )
                    .with_value(name),
                );
                None
            }
        }
    };
    let errors_after = diagnostics.iter().filter(|d| d.is_error()).count();
    (errors_after == errors_before).then_some(Upstream::Http {
        authority,
        transport: Transport::Https(UpstreamTls {
            ca_file,
            client_cert,
            server_name,
        }),
    })
}

fn compile_acme(
    acme: &crate::model::AcmeConfig,
    redirect_listen: Option<SocketAddr>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<AcmeSettings> {
    let errors_before = diagnostics.iter().filter(|d| d.is_error()).count();
    let error = |key: &str, message: &str| {
        Diagnostic::error(
            DiagnosticKind::File,
            format!("server.tls.acme.{key}"),
            message.to_owned(),
        )
    };
    let mut domains = Vec::new();
    match &acme.domains {
        None => diagnostics.push(error(
            "domains",
            "[server.tls.acme] needs domains = [\"api.example.com\"]: the names of the certificate",
        )),
        Some(list) if list.is_empty() => diagnostics.push(error(
            "domains",
            "at least one domain, such as [\"api.example.com\"]",
        )),
        Some(list) => {
            for (i, domain) in list.iter().enumerate() {
                let fix = domain.trim_end_matches('.').to_ascii_lowercase();
                let problem = if domain.starts_with("*.") {
                    Some("a wildcard needs the dns-01 challenge, which corsgate does not do: list each name".to_owned())
                } else if fix.is_empty()
                    || fix.len() > 253
                    || !fix.contains('.')
                    || !fix
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                    || fix.split('.').any(str::is_empty)
                {
                    Some("a public DNS name such as \"api.example.com\" (a non-ASCII name in its xn-- form; no IP address, no port)".to_owned())
                } else if fix != *domain {
                    Some(format!(
                        "a domain is written lowercase and without trailing dot: use {fix:?}"
                    ))
                } else {
                    None
                };
                match problem {
                    Some(message) => diagnostics.push(
                        Diagnostic::error(
                            DiagnosticKind::File,
                            format!("server.tls.acme.domains[{i}]"),
                            message,
                        )
                        .with_value(domain),
                    ),
                    None if domains.contains(&fix) => {}
                    None => domains.push(fix),
                }
            }
        }
    }
    let mut contact = Vec::new();
    for (i, c) in acme.contact.iter().flatten().enumerate() {
        if c.starts_with("mailto:") && c.len() > "mailto:".len() && c.contains('@') {
            contact.push(c.clone());
        } else {
            let fix = if c.contains('@') && !c.contains(':') {
                format!("use \"mailto:{c}\"")
            } else {
                "a mailto: URL such as \"mailto:ops@example.com\"".to_owned()
            };
            diagnostics.push(
                Diagnostic::error(
                    DiagnosticKind::File,
                    format!("server.tls.acme.contact[{i}]"),
                    fix,
                )
                .with_value(c),
            );
        }
    }
    let directory = acme
        .directory
        .clone()
        .unwrap_or_else(|| LETS_ENCRYPT.to_owned());
    if !directory.starts_with("https://") || directory.parse::<http::Uri>().is_err() {
        diagnostics.push(
            error(
                "directory",
                "the ACME directory is an https:// URL (RFC 8555 section 6.1), such as Let's Encrypt's staging \"https://acme-staging-v02.api.letsencrypt.org/directory\"",
            )
            .with_value(&directory),
        );
    }
    let path = |key: &str, value: &Option<String>, diagnostics: &mut Vec<Diagnostic>| match value
        .as_deref()
    {
        Some(p) if !p.trim().is_empty() => Some(PathBuf::from(p)),
        Some(p) => {
            diagnostics.push(
                error(
                    key,
                    "a path (relative to the configuration file's directory)",
                )
                .with_value(p),
            );
            None
        }
        None => None,
    };
    let directory_ca_file = path("directory_ca_file", &acme.directory_ca_file, diagnostics);
    let cache_dir = path("cache_dir", &acme.cache_dir, diagnostics);
    if acme.cache_dir.is_none() {
        diagnostics.push(error(
            "cache_dir",
            "[server.tls.acme] needs cache_dir = \"/var/lib/corsgate/acme\": without it every restart would ask the CA again, and hit its rate limits",
        ));
    }
    let challenge = match acme.challenge.as_deref() {
        None | Some("tls-alpn-01") => AcmeChallenge::TlsAlpn01,
        Some("http-01") => {
            if redirect_listen.is_none() {
                diagnostics.push(error(
                    "challenge",
                    "http-01 is answered on the redirect listener: set server.tls.redirect_listen = \"0.0.0.0:80\"",
                ));
            }
            AcmeChallenge::Http01
        }
        Some(other) => {
            diagnostics.push(
                error(
                    "challenge",
                    "\"tls-alpn-01\" (on the https listener) or \"http-01\" (on redirect_listen)",
                )
                .with_value(other),
            );
            AcmeChallenge::TlsAlpn01
        }
    };
    let renew_before = match acme.renew_before.as_deref() {
        None => std::time::Duration::from_secs(30 * 24 * 3600),
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => d,
            _ => {
                diagnostics.push(
                    error(
                        "renew_before",
                        "a duration such as \"30d\" or \"720h\", more than zero",
                    )
                    .with_value(text),
                );
                std::time::Duration::from_secs(30 * 24 * 3600)
            }
        },
    };
    let errors_after = diagnostics.iter().filter(|d| d.is_error()).count();
    let cache_dir = cache_dir?;
    (errors_after == errors_before).then_some(AcmeSettings {
        domains,
        contact,
        directory,
        directory_ca_file,
        cache_dir,
        challenge,
        renew_before,
    })
}

impl TlsSettings {
    /// The written form, for `/config`.
    pub(crate) fn effective(&self) -> TlsConfig {
        TlsConfig {
            certificates: Some(
                self.certificates
                    .iter()
                    .map(|c| crate::model::CertificateConfig {
                        cert_file: Some(c.cert_file.display().to_string()),
                        key_file: Some(c.key_file.display().to_string()),
                    })
                    .collect(),
            ),
            redirect_listen: self.redirect_listen.map(|a| a.to_string()),
            acme: self.acme.as_ref().map(|a| crate::model::AcmeConfig {
                domains: Some(a.domains.clone()),
                contact: Some(a.contact.clone()),
                directory: Some(a.directory.clone()),
                directory_ca_file: a
                    .directory_ca_file
                    .as_ref()
                    .map(|p| p.display().to_string()),
                cache_dir: Some(a.cache_dir.display().to_string()),
                challenge: Some(a.challenge.as_str().to_owned()),
                renew_before: Some(humantime::format_duration(a.renew_before).to_string()),
            }),
            hsts: self.hsts.as_ref().map(|h| crate::model::HstsConfig {
                max_age: i64::try_from(h.max_age).ok(),
                include_subdomains: Some(h.include_subdomains),
                preload: Some(h.preload),
            }),
        }
    }
}
