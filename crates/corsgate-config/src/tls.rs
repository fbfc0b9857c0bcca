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
}

/// One certificate: its chain and key files, as written (a relative path is
/// read from the configuration file's directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert_file: PathBuf,
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
    let errors_after = diagnostics.iter().filter(|d| d.is_error()).count();
    (errors_after == errors_before).then_some(TlsSettings {
        certificates,
        redirect_listen,
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
        }
    }
}
