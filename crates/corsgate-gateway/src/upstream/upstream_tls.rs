//! TLS to `https://` upstreams: the rustls client configuration of each,
//! built when a configuration is loaded (a file that does not load refuses the
//! configuration, at start and at reload), and the handshake of each new
//! upstream connection.
//!
//! Trust: the system's roots (Debian's ca-certificates store, read through
//! rustls-native-certs), or only the CAs of the route's `ca_file`. SNI and the
//! name checked in the upstream's certificate: the upstream URL's host, or
//! `server_name`. A client certificate (`client_cert_file` and
//! `client_key_file`) is shown to upstreams that ask for one (mTLS). ALPN
//! offers `h2` then `http/1.1`; the upstream picks.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use corsgate_config::tls::{CertificateFiles, UpstreamTls};
use corsgate_config::{GatewayConfig, Transport, Upstream};
use corsgate_policy::{Diagnostic, DiagnosticKind};
use http::uri::Authority;
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::listen::tls::{self, Files};

/// ALPN for HTTP/2 over TLS (RFC 9113 section 3.2).
pub(crate) const ALPN_H2: &[u8] = b"h2";
/// ALPN for HTTP/1.1 (RFC 7301 section 6).
pub(crate) const ALPN_HTTP1: &[u8] = b"http/1.1";

/// How new connections to one `https://` upstream shake hands.
pub(crate) struct Connector {
    /// Offers `h2` and `http/1.1`.
    both: TlsConnector,
    /// Offers `http/1.1` only: for a WebSocket handshake, which needs an
    /// HTTP/1.1 connection of its own (RFC 6455).
    http1: TlsConnector,
    server_name: ServerName<'static>,
    /// The bytes of every file read: a pool survives a reload only if they
    /// are the same (a replaced CA file must take effect).
    read: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Connector {
    fn eq(&self, other: &Self) -> bool {
        self.server_name == other.server_name && self.read == other.read
    }
}

impl Connector {
    /// The TLS handshake over a new TCP connection; `http1_only` offers
    /// `http/1.1` alone.
    pub(crate) async fn connect(
        &self,
        stream: TcpStream,
        http1_only: bool,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let connector = if http1_only { &self.http1 } else { &self.both };
        connector.connect(self.server_name.clone(), stream).await
    }
}

/// Why an upstream's TLS settings do not load: the key of
/// `[route.upstream_tls]` to blame, the file, and what is wrong.
#[derive(Debug)]
pub(crate) struct Problem {
    pub(crate) key: &'static str,
    pub(crate) file: String,
    pub(crate) message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.file.is_empty() {
            write!(f, "{}: {}", self.key, self.message)
        } else {
            write!(f, "{}: {}: {}", self.key, self.file, self.message)
        }
    }
}

/// The system's roots, read once per process: the store changes with a
/// package update, which a restart picks up.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map_or_else(String::new, |e| format!(" ({e})"));
                return Err(format!(
                    "no system root certificate found{why}: install the ca-certificates package, or set ca_file"
                ));
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

/// Builds the connector of an `https://` upstream: reads `ca_file` and the
/// client certificate (relative paths from `base`), checks that the key is
/// the certificate's. Every problem at once.
pub(crate) fn connector(
    authority: &Authority,
    settings: &UpstreamTls,
    base: &Path,
) -> Result<Connector, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut read = Vec::new();
    let roots = match &settings.ca_file {
        None => system_roots().map_err(|message| Problem {
            key: "ca_file",
            file: String::new(),
            message,
        }),
        Some(file) => ca_roots(file, base, &mut read),
    };
    let roots = roots.map_err(|p| problems.push(p)).ok();
    let client = settings
        .client_cert
        .as_ref()
        .map(|files| client_certificate(files, base, &mut read))
        .transpose()
        .map_err(|p| problems.extend(p))
        .ok()
        .flatten();
    let host = settings.server_name.clone().unwrap_or_else(|| {
        // An IPv6 literal comes bracketed in an authority.
        let host = authority.host();
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned()
    });
    let server_name = ServerName::try_from(host.clone())
        .map_err(|_| {
            problems.push(Problem {
                key: "server_name",
                file: String::new(),
                message: format!(
                    "{host:?} is neither a DNS name nor an IP address to check the upstream's certificate against"
                ),
            });
        })
        .ok();
    let (Some(roots), Some(server_name)) = (roots, server_name) else {
        return Err(problems);
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let builder = ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| {
            vec![Problem {
                key: "ca_file",
                file: String::new(),
                message: e.to_string(),
            }]
        })?
        .with_root_certificates(roots);
    let mut config = match client {
        Some(key) => builder.with_client_cert_resolver(Arc::new(ClientCertificate(key))),
        None => builder.with_no_client_auth(),
    };
    let mut http1 = config.clone();
    // h2 first: gRPC needs it, and one connection carries every request.
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
    http1.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Connector {
        both: TlsConnector::from(Arc::new(config)),
        http1: TlsConnector::from(Arc::new(http1)),
        server_name,
        read,
    })
}

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}

/// The bytes of `path` (relative to `base`), or why not, naming the file
/// read: a relative path is not read from where the gateway was started.
fn read_file(base: &Path, path: &Path) -> Result<Vec<u8>, String> {
    let resolved = resolve(base, path);
    std::fs::read(&resolved).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!(
                "cannot read {}: the file does not exist",
                resolved.display()
            )
        }
        _ => format!("cannot read {}: {e}", resolved.display()),
    })
}

/// How to fix a file key of `[route.upstream_tls]` that does not load.
fn fix(key: &str) -> Option<&'static str> {
    Some(match key {
        "ca_file" => {
            "set ca_file to the PEM file of the CA that signed the upstream's certificate (a relative path is read from the configuration file's directory), or remove it to trust the system's roots"
        }
        "client_cert_file" => {
            "set client_cert_file to the PEM certificate chain (leaf first) to show the upstream (a relative path is read from the configuration file's directory)"
        }
        "client_key_file" => {
            "set client_key_file to the PEM private key of client_cert_file's certificate (a relative path is read from the configuration file's directory)"
        }
        _ => return None,
    })
}

/// The roots of a `ca_file`: only these, not the system's as well (a private
/// CA narrows the trust, it does not widen it).
fn ca_roots(
    file: &Path,
    base: &Path,
    read: &mut Vec<Vec<u8>>,
) -> Result<Arc<RootCertStore>, Problem> {
    let problem = |message: String| Problem {
        key: "ca_file",
        file: file.display().to_string(),
        message,
    };
    let bytes = read_file(base, file).map_err(problem)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| problem(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(problem(
            "no certificate in it (a PEM file with the CA's -----BEGIN CERTIFICATE----- block)"
                .to_owned(),
        ));
    }
    let mut roots = RootCertStore::empty();
    for (i, cert) in certs.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            problem(format!(
                "certificate {} is not usable as a trust anchor: {e}",
                i + 1
            ))
        })?;
    }
    read.push(bytes);
    Ok(Arc::new(roots))
}

/// The client certificate and its key, loaded as the listener's certificates
/// are (the chain parses, the key is the certificate's).
fn client_certificate(
    files: &CertificateFiles,
    base: &Path,
    read: &mut Vec<Vec<u8>>,
) -> Result<Arc<CertifiedKey>, Vec<Problem>> {
    let rename = |key: &str| {
        if key == "key_file" {
            "client_key_file"
        } else {
            "client_cert_file"
        }
    };
    let files_read = |path: &Path, key: &'static str| {
        read_file(base, path).map_err(|message| Problem {
            key,
            file: path.display().to_string(),
            message,
        })
    };
    // Both files read before either is refused: every problem at once.
    let bytes = match (
        files_read(&files.cert_file, "client_cert_file"),
        files_read(&files.key_file, "client_key_file"),
    ) {
        (Ok(cert), Ok(key)) => Files { cert, key },
        (cert, key) => return Err(cert.err().into_iter().chain(key.err()).collect()),
    };
    let loaded = tls::load(files, &bytes).map_err(|e| {
        vec![Problem {
            key: rename(e.key),
            file: e.file,
            message: e.message,
        }]
    })?;
    read.push(bytes.cert);
    read.push(bytes.key);
    Ok(loaded.key)
}

/// Shows the one configured client certificate to an upstream that asks for
/// one, whatever CAs it names: the operator chose it for this upstream.
#[derive(Debug)]
struct ClientCertificate(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The connectors of every `https://` route of `gateway`, by route index
/// (`None` for other routes); or every problem, as diagnostics at
/// `route[N].upstream_tls.KEY`.
pub(crate) fn connectors(
    gateway: &GatewayConfig,
    base: &Path,
) -> Result<Vec<Option<Arc<Connector>>>, Vec<Diagnostic>> {
    let len = gateway
        .routes
        .iter()
        .map(|r| r.index + 1)
        .max()
        .unwrap_or(0);
    let mut found = vec![None; len];
    let mut diagnostics = Vec::new();
    for route in &gateway.routes {
        let Upstream::Http {
            authority,
            transport: Transport::Https(settings),
        } = &route.upstream
        else {
            continue;
        };
        match connector(authority, settings, base) {
            Ok(connector) => {
                if let Some(slot) = found.get_mut(route.index) {
                    *slot = Some(Arc::new(connector));
                }
            }
            Err(problems) => {
                diagnostics.extend(problems.into_iter().map(|p| {
                    let at = format!("route[{}].upstream_tls.{}", route.index, p.key);
                    // A file named and not loaded gets the fix; the system's
                    // roots missing say theirs already.
                    let message = match fix(p.key).filter(|_| !p.file.is_empty()) {
                        Some(fix) => format!("{}; {fix}", p.message),
                        None => p.message,
                    };
                    let d = Diagnostic::error(DiagnosticKind::File, at, message);
                    if p.file.is_empty() {
                        d
                    } else {
                        d.with_value(p.file)
                    }
                }));
            }
        }
    }
    if diagnostics.is_empty() {
        Ok(found)
    } else {
        Err(diagnostics)
    }
}

/// Whether the TLS files of a running `https://` upstream no longer load as
/// they did (changed, or broken: the reload that follows says which).
pub(crate) fn changed(shared: &crate::Shared) -> bool {
    let snapshot = shared.snapshot.load();
    let Ok(found) = connectors(&snapshot.gateway, &shared.options.config_dir()) else {
        return true;
    };
    snapshot.gateway.routes.iter().any(|route| {
        let pool = snapshot.pools.get(route.index).and_then(Option::as_ref);
        match (found.get(route.index).and_then(Option::as_ref), pool) {
            (Some(new), Some(pool)) => !pool.connects_with(new),
            _ => false,
        }
    })
}

/// Diagnostics as the start error prints them: `PATH: MESSAGE (VALUE)`, one a line.
pub(crate) fn one_a_line(found: &[Diagnostic]) -> String {
    found
        .iter()
        .map(|d| match d.value() {
            Some(value) => format!("{}: {:?}: {}", d.path(), value, d.message()),
            None => format!("{}: {}", d.path(), d.message()),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `corsgate check`'s (and `serve`'s, before it starts) view of the TLS to
/// `https://` upstreams: each route's `ca_file` and client certificate
/// loaded as the gateway loads them, every problem at
/// `route[N].upstream_tls.KEY`. Relative paths are read from `base`.
///
/// ```
/// let gateway = corsgate_config::check(
///     "[[route]]\npath = \"/\"\nupstream = \"https://127.0.0.1:8443\"\n[route.upstream_tls]\nca_file = \"missing-ca.pem\"\n",
/// )
/// .gateway
/// .unwrap();
/// let found = corsgate_gateway::check_upstream_tls(&gateway, std::path::Path::new("."));
/// assert_eq!(found[0].path(), "route[0].upstream_tls.ca_file");
/// ```
pub fn check_upstream_tls(gateway: &GatewayConfig, base: &Path) -> Vec<Diagnostic> {
    connectors(gateway, base).err().unwrap_or_default()
}
