//! TLS to PostgreSQL: rustls with the workspace's one crypto provider
//! (aws-lc-rs), through `tokio-postgres-rustls` (which also gives SCRAM
//! channel binding, `SCRAM-SHA-256-PLUS`, from the server's certificate).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::StoreError;

/// How the store connects to PostgreSQL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslMode {
    /// In the clear.
    #[default]
    Disable,
    /// TLS; the server's certificate is not checked.
    Require,
    /// TLS; the certificate is checked against the CA and the URL's host.
    VerifyFull,
}

/// TLS settings of a [`PostgresStore`](crate::PostgresStore). Paths as
/// given (the caller resolves relative ones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostgresTls {
    /// The mode; the URL's own `sslmode` is not read.
    pub mode: SslMode,
    /// PEM CA certificates for [`SslMode::VerifyFull`]: only these are
    /// trusted. `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to the server.
    pub client_cert_file: Option<PathBuf>,
    /// Its PEM private key.
    pub client_key_file: Option<PathBuf>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn refused(message: String) -> StoreError {
    StoreError::Unavailable(message)
}

impl PostgresTls {
    /// The connector, or `None` for [`SslMode::Disable`]. Reads the files
    /// now: a missing or bad one is an error before any connection.
    pub(crate) fn connector(&self) -> Result<Option<MakeRustlsConnect>, StoreError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| refused(format!("TLS: {e}")))?;
        let builder = match self.mode {
            SslMode::Disable => return Ok(None),
            SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider))),
            SslMode::VerifyFull => builder.with_root_certificates(self.roots()?),
        };
        let config = self
            .client_auth(builder)
            .map_err(|(_, message)| refused(message))?;
        Ok(Some(MakeRustlsConnect::new(config)))
    }

    /// Reads the files as the connection would, for a configuration check:
    /// every problem, each with the key of `[registry]` it belongs to
    /// (`ca_file`, `client_cert_file`, `client_key_file`) and what is wrong.
    /// Nothing for [`SslMode::Disable`], where no file is read.
    pub fn check_files(&self) -> Vec<(&'static str, String)> {
        let mut found = Vec::new();
        if self.mode == SslMode::Disable {
            return found;
        }
        if self.mode == SslMode::VerifyFull && self.ca_file.is_some() {
            if let Err(StoreError::Unavailable(message)) = self.roots() {
                found.push(("ca_file", message));
            }
        }
        let provider = provider();
        if let Ok(builder) = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
        {
            let builder = builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider)));
            if let Err(problem) = self.client_auth(builder) {
                found.push(problem);
            }
        }
        found
    }

    /// The client certificate, if both of its files are set: a problem
    /// comes with the key it belongs to.
    fn client_auth(
        &self,
        builder: rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>,
    ) -> Result<ClientConfig, (&'static str, String)> {
        let (Some(cert), Some(key)) = (&self.client_cert_file, &self.client_key_file) else {
            return Ok(builder.with_no_client_auth());
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                let message = format!("client_cert_file {}: {e}", cert.display());
                ("client_cert_file", message)
            })?;
        if chain.is_empty() {
            let message = format!("client_cert_file {}: no certificate in it", cert.display());
            return Err(("client_cert_file", message));
        }
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
            (
                "client_key_file",
                format!("client_key_file {}: {e}", key.display()),
            )
        })?;
        builder.with_client_auth_cert(chain, key_der).map_err(|e| {
            let message = format!(
                "client_key_file {}: not the key of client_cert_file: {e}",
                key.display()
            );
            ("client_key_file", message)
        })
    }

    fn roots(&self) -> Result<RootCertStore, StoreError> {
        let mut roots = RootCertStore::empty();
        let Some(file) = &self.ca_file else {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(refused(
                    "sslmode=verify-full: no system root certificate found; set [registry] ca_file or install ca-certificates".into(),
                ));
            }
            return Ok(roots);
        };
        let certs = CertificateDer::pem_file_iter(file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| refused(format!("ca_file {}: {e}", file.display())))?;
        if certs.is_empty() {
            return Err(refused(format!(
                "ca_file {}: no certificate in it (a PEM file with the CA's -----BEGIN CERTIFICATE----- block)",
                file.display()
            )));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                refused(format!(
                    "ca_file {}: not usable as a trust anchor: {e}",
                    file.display()
                ))
            })?;
        }
        Ok(roots)
    }
}

/// `sslmode=require`: any certificate, as libpq does without a root file.
/// The handshake's signatures are still checked (the server holds the key
/// of the certificate it shows), so that channel binding means something.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
