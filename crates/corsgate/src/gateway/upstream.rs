//! Connections to upstreams: HTTP/1.1, kept alive in one pool per upstream and
//! reused request after request.
//!
//! Each route holds its upstream's pool, so a request finds it without a lookup.
//! A request takes the most recently returned idle connection (the one most
//! likely still open), or opens one. The connection goes back to the pool from
//! the response body, once the upstream's body has been read to its end: no task
//! per request, one short lock to take a connection and one to return it.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::RequestBody;

/// How long an unused connection stays in its pool.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The idle connections to one upstream.
pub(crate) struct Pool {
    authority: Authority,
    connect_timeout: Duration,
    /// Most recently returned last.
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    sender: SendRequest<RequestBody>,
    since: Instant,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("authority", &self.authority)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(authority: Authority, connect_timeout: Duration) -> Self {
        Pool {
            authority,
            connect_timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Whether this pool connects the way a route of a new configuration
    /// would: then it survives the reload, connections included.
    pub(crate) fn serves(&self, authority: &Authority, connect_timeout: Duration) -> bool {
        self.authority == *authority && self.connect_timeout == connect_timeout
    }

    /// Sends a request (origin-form URI, `Host` set) on a pooled connection or
    /// a new one. The returned [`Checkout`] hands the connection back once the
    /// response body has been read to its end.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut request: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, Checkout), UpstreamError> {
        loop {
            let (mut sender, reused) = match self.take() {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            if let Err(err) = sender.ready().await {
                if reused {
                    continue;
                }
                return Err(UpstreamError::Http(err));
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let checkout = Checkout {
                        pool: self.clone(),
                        sender,
                    };
                    return Ok((response, checkout));
                }
                Err(mut err) => match err.take_message() {
                    // Not written at all: the upstream closed this kept-alive
                    // connection first, as it may at any time. Another one.
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(UpstreamError::Http(err.into_error())),
                },
            }
        }
    }

    /// The most recently returned connection that is still open.
    fn take(&self) -> Option<SendRequest<RequestBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(entry) = idle.pop() {
            if !entry.sender.is_closed() {
                return Some(entry.sender);
            }
        }
        None
    }

    fn put(&self, sender: SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        let since = Instant::now();
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Idle { sender, since });
    }

    /// Closes the connections unused for [`IDLE_TIMEOUT`] and forgets the
    /// ones the upstream closed.
    pub(crate) fn prune(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|e| !e.sender.is_closed() && e.since.elapsed() < IDLE_TIMEOUT);
    }

    async fn connect(&self) -> Result<SendRequest<RequestBody>, UpstreamError> {
        let host = self.authority.host();
        // An IPv6 literal comes bracketed in an authority.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = self.authority.port_u16().unwrap_or(80);
        let stream = match tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect((host, port)),
        )
        .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => return Err(UpstreamError::Connect(err)),
            Err(_elapsed) => {
                return Err(UpstreamError::Connect(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no connection within connect_timeout ({})",
                        humantime::format_duration(self.connect_timeout)
                    ),
                )));
            }
        };
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Http)?;
        tokio::spawn(async move {
            if let Err(err) = connection.with_upgrades().await {
                tracing::debug!(error = %err, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// A connection lent to one request: back to its pool with [`release`], closed
/// when dropped.
///
/// [`release`]: Checkout::release
pub(crate) struct Checkout {
    pool: Arc<Pool>,
    sender: SendRequest<RequestBody>,
}

impl Checkout {
    /// Returns the connection to its pool: call it once the response body has
    /// been read to its end, so that the next request can be written.
    pub(crate) fn release(self) {
        self.pool.put(self.sender);
    }
}

impl fmt::Debug for Checkout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checkout")
            .field("upstream", &self.pool.authority)
            .finish_non_exhaustive()
    }
}

/// Why a request got no response from its upstream.
#[derive(Debug)]
pub(crate) enum UpstreamError {
    /// No connection could be opened (refused, unreachable, connect_timeout).
    Connect(io::Error),
    /// The exchange failed on an open connection (or the request body did).
    Http(hyper::Error),
}

impl UpstreamError {
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(_))
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UpstreamError::Connect(_) => "cannot connect",
            UpstreamError::Http(_) => "HTTP exchange failed",
        })
    }
}

impl std::error::Error for UpstreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UpstreamError::Connect(err) => Some(err),
            UpstreamError::Http(err) => Some(err),
        }
    }
}
