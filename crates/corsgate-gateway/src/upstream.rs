//! Connections to upstreams: HTTP/1.1, kept alive in one pool per upstream and
//! reused request after request.
//!
//! Each route holds its upstream's pool, so a request finds it without a lookup.
//! A request takes the most recently returned idle connection that is ready for
//! a new request (the one most likely still open), or opens one. The connection
//! goes back to the pool from the response body, once the upstream's body has
//! been read to its end and the request body has been sent whole: no task per
//! request, one short lock to take a connection and one to return it.
//!
//! Open connections are bounded per upstream (`max_upstream_connections`): each
//! holds a permit of the pool's semaphore until its socket closes. A request that
//! finds none idle and no permit free waits, up to `upstream_queue_timeout`, for
//! either; then it is refused (`503`).

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
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;

use super::body::{Progress, RequestBody};
use super::metrics::Metrics;
use corsgate_config::Settings;

/// How a pool connects and how many connections it keeps: the `[server]`
/// settings about upstream connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PoolSettings {
    pub(crate) connect_timeout: Duration,
    /// Most connections open at once (`max_upstream_connections`).
    pub(crate) max_connections: usize,
    /// Most idle connections kept (`max_idle_per_upstream`).
    pub(crate) max_idle: usize,
    /// How long an unused connection stays in the pool (`upstream_idle_timeout`).
    pub(crate) idle_timeout: Duration,
    /// How long a request waits for a connection when all are busy
    /// (`upstream_queue_timeout`).
    pub(crate) queue_timeout: Duration,
}

impl PoolSettings {
    pub(crate) fn of(settings: &Settings) -> Self {
        PoolSettings {
            connect_timeout: settings.connect_timeout,
            max_connections: settings.max_upstream_connections,
            max_idle: settings.max_idle_per_upstream,
            idle_timeout: settings.upstream_idle_timeout,
            queue_timeout: settings.upstream_queue_timeout,
        }
    }
}

/// The connections to one upstream.
pub(crate) struct Pool {
    authority: Authority,
    settings: PoolSettings,
    /// One permit per open connection, held by the connection's task until the
    /// socket closes.
    permits: Arc<Semaphore>,
    /// Signalled when a connection goes back to the pool, for the requests
    /// waiting for one.
    returned: Notify,
    /// Most recently returned last.
    idle: Mutex<Vec<Idle>>,
    metrics: Arc<Metrics>,
}

/// A connection: where requests are sent, and the task that drives it (aborted
/// to close it at once).
struct Conn {
    sender: SendRequest<RequestBody>,
    task: AbortHandle,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("authority", &self.authority)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(authority: Authority, settings: PoolSettings, metrics: Arc<Metrics>) -> Self {
        Pool {
            authority,
            settings,
            permits: Arc::new(Semaphore::new(settings.max_connections)),
            returned: Notify::new(),
            idle: Mutex::new(Vec::new()),
            metrics,
        }
    }

    /// Whether this pool connects and keeps connections the way a route of a
    /// new configuration would: then it survives the reload, connections
    /// included.
    pub(crate) fn serves(&self, authority: &Authority, settings: &PoolSettings) -> bool {
        self.authority == *authority && self.settings == *settings
    }

    pub(crate) fn authority(&self) -> &Authority {
        &self.authority
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Sends a request (origin-form URI, `Host` set) on a pooled connection or
    /// a new one. The returned [`Checkout`] hands the connection back once the
    /// response body has been read to its end (and the request body sent).
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut request: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, Checkout), UpstreamError> {
        let progress = request.body().progress();
        let mut deadline = None;
        loop {
            let (Conn { mut sender, task }, reused) = match self.checkout(&mut deadline).await? {
                Ready::Idle(conn) => (conn, true),
                Ready::Permit(permit) => (self.connect(permit).await?, false),
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
                        conn: Conn { sender, task },
                        progress,
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

    /// An idle connection ready for a request, or the permit to open one;
    /// waits for either up to `queue_timeout` (counted from the first wait).
    async fn checkout(
        &self,
        deadline: &mut Option<tokio::time::Instant>,
    ) -> Result<Ready, UpstreamError> {
        loop {
            if let Some(conn) = self.take() {
                return Ok(Ready::Idle(conn));
            }
            if let Ok(permit) = self.permits.clone().try_acquire_owned() {
                return Ok(Ready::Permit(permit));
            }
            // Every connection is busy and no other may be opened: wait for one
            // to come back or to close.
            let deadline = *deadline.get_or_insert_with(|| {
                super::body::after(tokio::time::Instant::now(), self.settings.queue_timeout)
            });
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            // Returned between the look above and `enable`: not missed.
            if let Some(conn) = self.take() {
                return Ok(Ready::Idle(conn));
            }
            tokio::select! {
                permit = self.permits.clone().acquire_owned() => {
                    if let Ok(permit) = permit {
                        return Ok(Ready::Permit(permit));
                    }
                }
                () = &mut returned => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Err(UpstreamError::Busy(self.settings.max_connections));
                }
            }
        }
    }

    /// The most recently returned connection that is ready for a new request.
    /// A connection still busy finishing its last exchange is left where it
    /// is: the request would wait behind it.
    fn take(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while idle.last().is_some_and(|e| e.conn.sender.is_closed()) {
            idle.pop();
        }
        let found = idle.iter().rposition(|e| e.conn.sender.is_ready())?;
        Some(idle.remove(found).conn)
    }

    fn put(&self, conn: Conn) {
        if conn.sender.is_closed() || self.settings.max_idle == 0 {
            return;
        }
        let since = Instant::now();
        {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() >= self.settings.max_idle {
                // The least recently used goes (and closes, outside the lock).
                let oldest = idle.remove(0);
                idle.push(Idle { conn, since });
                drop(idle);
                drop(oldest);
            } else {
                idle.push(Idle { conn, since });
            }
        }
        self.returned.notify_one();
    }

    /// Closes the connections unused for `upstream_idle_timeout` and forgets
    /// the ones the upstream closed.
    pub(crate) fn prune(&self) {
        let timeout = self.settings.idle_timeout;
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|e| !e.conn.sender.is_closed() && e.since.elapsed() < timeout);
    }

    async fn connect(&self, permit: OwnedSemaphorePermit) -> Result<Conn, UpstreamError> {
        let host = self.authority.host();
        // An IPv6 literal comes bracketed in an authority.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = self.authority.port_u16().unwrap_or(80);
        let timeout = self.settings.connect_timeout;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => return Err(UpstreamError::Connect(err)),
            Err(_elapsed) => {
                return Err(UpstreamError::Connect(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no connection within connect_timeout ({})",
                        humantime::format_duration(timeout)
                    ),
                )));
            }
        };
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Http)?;
        let task = tokio::spawn(async move {
            // The permit counts the socket until it is closed.
            let _permit = permit;
            if let Err(err) = connection.with_upgrades().await {
                tracing::debug!(error = %err, "upstream connection ended with an error");
            }
        })
        .abort_handle();
        Ok(Conn { sender, task })
    }
}

enum Ready {
    Idle(Conn),
    Permit(OwnedSemaphorePermit),
}

/// A connection lent to one request: back to its pool with [`release`], or
/// given up with [`abandon`].
///
/// [`release`]: Checkout::release
/// [`abandon`]: Checkout::abandon
pub(crate) struct Checkout {
    pool: Arc<Pool>,
    conn: Conn,
    /// How far the request body has got; `None` for a request without one.
    progress: Option<Arc<Progress>>,
}

impl Checkout {
    /// Returns the connection to its pool: call it once the response body has
    /// been read to its end. A connection whose request body is still on its
    /// way (the upstream answered before reading it all) is abandoned instead:
    /// the next request would wait behind that body.
    pub(crate) fn release(self) {
        if self.progress.as_ref().is_some_and(|p| !p.is_done()) {
            return self.abandon();
        }
        let Checkout { pool, mut conn, .. } = self;
        if conn.sender.is_closed() {
            return;
        }
        if conn.sender.is_ready() {
            pool.put(conn);
            return;
        }
        // Both messages are done, but the connection's task has not yet
        // noticed (it runs on another thread): rare. Pooled once it has, so
        // that a request waiting for a connection never finds it not ready.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let timeout = pool.settings.idle_timeout;
        runtime.spawn(async move {
            if let Ok(Ok(())) = tokio::time::timeout(timeout, conn.sender.ready()).await {
                pool.put(conn);
            }
        });
    }

    /// Gives the connection up: it closes once its exchange ends. If the
    /// request body is still being sent, it must keep moving: once it has not
    /// for `body_timeout` (the client pauses, or the upstream, having
    /// answered, stopped reading it), the connection is closed at once, which
    /// also abandons the client's body.
    pub(crate) fn abandon(self) {
        let Checkout { conn, progress, .. } = self;
        let Some(progress) = progress.filter(|p| !p.is_done()) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Conn { sender, task } = conn;
        drop(sender);
        runtime.spawn(async move {
            let mut seen = progress.read();
            loop {
                tokio::time::sleep(progress.timeout()).await;
                let now = progress.read();
                if progress.is_done() || task.is_finished() {
                    return;
                }
                if now == seen {
                    tracing::debug!(
                        timeout = ?progress.timeout(),
                        "request body stalled for body_timeout after the response; connection closed"
                    );
                    task.abort();
                    return;
                }
                seen = now;
            }
        });
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
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
    /// Every connection allowed (`max_upstream_connections`, the number) was
    /// busy for `upstream_queue_timeout`.
    Busy(usize),
    /// The exchange failed on an open connection (or the request body did).
    Http(hyper::Error),
}

impl UpstreamError {
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(_))
    }

    pub(crate) fn is_busy(&self) -> bool {
        matches!(self, UpstreamError::Busy(_))
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Connect(_) => f.write_str("cannot connect"),
            UpstreamError::Busy(max) => write!(
                f,
                "all {max} connections (max_upstream_connections) busy for upstream_queue_timeout"
            ),
            UpstreamError::Http(_) => f.write_str("HTTP exchange failed"),
        }
    }
}

impl std::error::Error for UpstreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UpstreamError::Connect(err) => Some(err),
            UpstreamError::Busy(_) => None,
            UpstreamError::Http(err) => Some(err),
        }
    }
}
