//! TLS for the tests: a certificate authority made on the spot (rcgen), leaf
//! certificates it signs, written to PEM files, and a rustls client that trusts
//! only that authority and speaks HTTP/1.1 or HTTP/2 as ALPN decided.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Version};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{Answer, WAIT, read};

/// A test certificate authority.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub der: CertificateDer<'static>,
    pub pem: String,
}

/// A leaf certificate and its key, PEM.
pub struct Leaf {
    /// The leaf, then the authority: a full chain as servers send it.
    pub chain_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
    /// SHA-256 of the leaf's SubjectPublicKeyInfo, base64: what Chromium's
    /// `--ignore-certificate-errors-spki-list` takes.
    pub spki_pin: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("corsgate test CA {name}"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` (DNS names or IP addresses), valid
    /// from yesterday for `days`.
    pub fn leaf(&self, names: &[&str], days: i64) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(days);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let spki = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &rcgen::PublicKeyData::subject_public_key_info(&key),
        );
        Leaf {
            chain_pem: format!("{}{}", cert.pem(), self.pem),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            spki_pin: base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                spki.as_ref(),
            ),
        }
    }

    /// A client certificate (clientAuth) for `name`, valid from yesterday
    /// for `days`: what an upstream that requires mTLS checks.
    pub fn client_leaf(&self, name: &str, days: i64) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(days);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain_pem: format!("{}{}", cert.pem(), self.pem),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            spki_pin: String::new(),
        }
    }

    /// A client configuration that trusts this authority only.
    pub fn client(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        client_trusting(self.der.clone(), alpn)
    }
}

/// A client configuration that trusts `root` only.
pub fn client_trusting(root: CertificateDer<'static>, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(root).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

impl Leaf {
    /// Writes `NAME.pem` and `NAME.key` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.chain_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }
}

/// A TLS connection to the gateway, after its handshake.
pub struct TlsConn {
    pub stream: TlsStream<TcpStream>,
}

impl TlsConn {
    /// Connects and shakes hands, sending `server_name` as SNI (an IP address
    /// sends none, RFC 6066 section 3).
    pub async fn connect(
        addr: SocketAddr,
        server_name: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<TlsConn, std::io::Error> {
        let name = ServerName::try_from(server_name.to_owned()).unwrap();
        let tcp = TcpStream::connect(addr).await?;
        let stream = tokio::time::timeout(WAIT, TlsConnector::from(config).connect(name, tcp))
            .await
            .expect("TLS handshake hung")?;
        Ok(TlsConn { stream })
    }

    /// The certificate the gateway presented (the leaf).
    pub fn peer(&self) -> CertificateDer<'static> {
        self.stream.get_ref().1.peer_certificates().unwrap()[0].clone()
    }

    pub fn alpn(&self) -> Option<Vec<u8>> {
        self.stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
    }

    /// HTTP over this connection: HTTP/2 if ALPN chose h2, else HTTP/1.1.
    pub async fn http(self) -> HttpConn {
        let h2 = self.alpn().as_deref() == Some(b"h2");
        let io = TokioIo::new(self.stream);
        if h2 {
            let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            HttpConn::H2(sender)
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            HttpConn::H1(sender)
        }
    }
}

/// One client connection's request sender.
pub enum HttpConn {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl HttpConn {
    /// Sends a request on this connection and reads the whole answer.
    pub async fn send(
        &mut self,
        method: &str,
        authority: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let builder = Request::builder().method(Method::from_bytes(method.as_bytes()).unwrap());
        let builder = match self {
            HttpConn::H1(_) => builder
                .uri(path)
                .version(Version::HTTP_11)
                .header("host", authority),
            HttpConn::H2(_) => builder
                .uri(format!("https://{authority}{path}"))
                .version(Version::HTTP_2),
        };
        let mut request = builder.body(Full::new(Bytes::new())).unwrap();
        request.headers_mut().extend(map);
        let response = tokio::time::timeout(WAIT, async {
            match self {
                HttpConn::H1(sender) => {
                    sender.ready().await?;
                    sender.send_request(request).await
                }
                HttpConn::H2(sender) => {
                    sender.ready().await?;
                    sender.send_request(request).await
                }
            }
        })
        .await
        .expect("no response in time")
        .expect("request failed");
        read(response).await
    }
}
