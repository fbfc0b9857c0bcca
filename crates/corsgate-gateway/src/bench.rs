//! The upstream pool on its own, for `benches/pool.rs` (cargo feature `bench`,
//! off by default): the bench compares it with hyper-util's pooled client on
//! the same loopback upstream (`bench/pool.sh`). And the listener's TLS
//! configuration, for `examples/tls_handshake.rs`. Not an API.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use crate::BoxError;
use crate::observe::metrics::Metrics;
use crate::upstream::pool::{Pool, PoolSettings};

type Body = UnsyncBoxBody<Bytes, BoxError>;

/// The gateway's pool to one upstream, sending bodiless requests.
#[derive(Debug, Clone)]
pub struct PoolClient {
    pool: Arc<Pool<Body>>,
    host: String,
}

impl PoolClient {
    /// A pool to `upstream` with at most `max_connections` open and
    /// `max_idle` kept idle, as `max_upstream_connections` and
    /// `max_idle_per_upstream` set them.
    pub fn new(upstream: SocketAddr, max_connections: usize, max_idle: usize) -> Self {
        let settings = PoolSettings {
            connect_timeout: Duration::from_secs(5),
            max_connections,
            max_idle,
            idle_timeout: Duration::from_secs(60),
            queue_timeout: Duration::from_secs(5),
        };
        let authority = upstream
            .to_string()
            .parse()
            .unwrap_or_else(|_| http::uri::Authority::from_static("127.0.0.1"));
        PoolClient {
            pool: Arc::new(Pool::new(authority, settings, Arc::new(Metrics::default()))),
            host: upstream.to_string(),
        }
    }

    /// `GET path`, its response body read whole; the connection goes back to
    /// the pool as in the gateway.
    pub async fn get(&self, path: &str) -> Result<Bytes, BoxError> {
        let request = Request::get(path)
            .header(http::header::HOST, &self.host)
            .body(
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )?;
        let (response, checkout) = self.pool.send(request, None).await?;
        let body = response.into_body().collect().await?.to_bytes();
        checkout.release();
        Ok(body)
    }
}

/// The rustls configuration of an https listener serving one certificate
/// (PEM files), built as `[server.tls]` builds it.
pub fn tls_server_config(
    cert_file: &std::path::Path,
    key_file: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, crate::Error> {
    let settings = corsgate_config::tls::TlsSettings {
        certificates: vec![corsgate_config::tls::CertificateFiles {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
        }],
        redirect_listen: None,
        acme: None,
        hsts: None,
    };
    let tls = crate::listen::tls::Tls::new(
        &settings,
        std::path::PathBuf::from("."),
        Arc::new(Metrics::default()),
    )?;
    Ok(tls.server_config())
}
