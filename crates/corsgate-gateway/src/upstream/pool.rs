//! Connections to upstreams: HTTP/1.1, kept alive in one pool per upstream and
//! reused request after request; HTTP/2 (`h2c://`, or `https://` when the
//! upstream picks `h2` by ALPN), one multiplexed connection per upstream.
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
//! either; then it is refused (`503`). Waiting requests are served in the
//! order they came: a returned connection is handed to the one that has
//! waited longest, and a request that arrives while others wait queues behind
//! them rather than take a connection first. Idle connections are capped
//! (`max_idle_per_upstream`, the least recently used goes first) and closed
//! once unused for `upstream_idle_timeout`.
//!
//! HTTP/2 needs no pool: every request is a stream of the one connection,
//! opened by the first request (the others wait for it rather than open
//! their own) and opened again once the upstream closes it. It holds one
//! permit; how many streams run at once is the upstream's
//! `SETTINGS_MAX_CONCURRENT_STREAMS`. Once it has carried no stream for
//! `upstream_idle_timeout` it is closed, as an idle HTTP/1.1 connection is,
//! and the next request opens another. An `https://` upstream that picks
//! `http/1.1` is pooled as an `http://` one, over TLS.
//!
//! The pool is generic over the request body and knows nothing of the
//! gateway's body types: what it needs of a body, how far it has been sent, it
//! is given as a [`Progress`] that the body updates.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::task::AbortHandle;

use super::upstream_tls::{ALPN_H2, Connector};
use crate::observe::metrics::Metrics;
use crate::{BoxError, after};
use corsgate_config::Settings;

/// The port of an `http://` or `h2c://` upstream written without one (RFC
/// 9110 §4.2.1).
const HTTP_DEFAULT_PORT: u16 = 80;
/// The port of an `https://` upstream written without one (RFC 9110 §4.2.2).
const HTTPS_DEFAULT_PORT: u16 = 443;

/// How often an idle HTTP/2 upstream connection is pinged, and how long the
/// answer may take: a connection that died silently (a dropped NAT entry, a
/// host gone) is found and replaced before requests wait on it.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// How a pool speaks to its upstream: the scheme of the upstream's URL.
#[derive(Debug, Clone)]
pub(crate) enum Protocol {
    /// `http://`: HTTP/1.1 over TCP.
    Http1,
    /// `h2c://`: HTTP/2 over TCP, prior knowledge (RFC 9113 section 3.3).
    H2c,
    /// `https://`: TLS; HTTP/2 or HTTP/1.1 as ALPN agrees.
    Https(Arc<Connector>),
}

impl PartialEq for Protocol {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Protocol::Http1, Protocol::Http1) | (Protocol::H2c, Protocol::H2c) => true,
            (Protocol::Https(a), Protocol::Https(b)) => a == b,
            _ => false,
        }
    }
}

impl Protocol {
    /// The URI scheme of a request sent over HTTP/2 (`:scheme`).
    fn scheme(&self) -> http::uri::Scheme {
        match self {
            Protocol::Https(_) => http::uri::Scheme::HTTPS,
            Protocol::Http1 | Protocol::H2c => http::uri::Scheme::HTTP,
        }
    }
}

/// What a request body must be for the pool to send it.
pub(crate) trait SendBody:
    Body<Data = Bytes, Error = BoxError> + Send + Unpin + 'static
{
}

impl<B> SendBody for B where B: Body<Data = Bytes, Error = BoxError> + Send + Unpin + 'static {}

/// How far a request body has got, shared between the body (which updates it)
/// and the upstream connection it is sent on: whether the connection is done
/// with it, and whether it still moves.
#[derive(Debug)]
pub(crate) struct Progress {
    /// Bytes read so far; [`Progress::DONE`] once the body has been read whole.
    read: AtomicU64,
    /// Bytes read so far, also once done (for the access log).
    bytes: AtomicU64,
    /// How long the body may stall (`body_timeout`).
    timeout: Duration,
}

impl Progress {
    const DONE: u64 = u64::MAX;

    /// A body that has not moved yet and may stall for `timeout`.
    pub(crate) fn new(timeout: Duration) -> Self {
        Progress {
            read: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            timeout,
        }
    }

    /// The body has been read up to `bytes`.
    pub(crate) fn advanced(&self, bytes: u64) {
        self.read
            .store(bytes.min(Self::DONE - 1), Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
    }

    /// The body has been read whole.
    pub(crate) fn finished(&self) {
        self.read.store(Self::DONE, Ordering::Release);
    }

    pub(crate) fn is_done(&self) -> bool {
        self.read.load(Ordering::Acquire) == Self::DONE
    }

    /// Bytes read so far ([`Progress::DONE`] at the end).
    fn read(&self) -> u64 {
        self.read.load(Ordering::Acquire)
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Bytes of the body read so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

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

/// The connections to one upstream, sending request bodies of type `B`.
pub(crate) struct Pool<B> {
    authority: Authority,
    settings: PoolSettings,
    protocol: Protocol,
    /// The HTTP/2 connection, once one is open.
    h2: Mutex<Option<H2Conn<B>>>,
    /// Held while an HTTP/2 connection is opened, so that the requests that
    /// arrive meanwhile wait for it instead of opening their own.
    h2_connecting: tokio::sync::Mutex<()>,
    /// An `https://` upstream whose last new connection picked `http/1.1`:
    /// its requests go to the HTTP/1.1 pool without waiting on the gate above.
    speaks_http1: std::sync::atomic::AtomicBool,
    /// One permit per open connection, held by the connection's task until the
    /// socket closes.
    permits: Arc<Semaphore>,
    /// The idle connections and the requests waiting for one, under one lock:
    /// a connection is either handed to a waiter or kept, never both.
    idle: Mutex<Shelf<B>>,
    metrics: Arc<Metrics>,
}

/// The idle connections of a pool, and the requests waiting for a connection.
struct Shelf<B> {
    /// Most recently returned last.
    conns: Vec<Idle<B>>,
    /// Requests waiting for a connection, the longest waiting first. A
    /// waiter that gave up (its queue timeout, a permit, its client gone)
    /// has closed its receiver and is skipped.
    waiters: VecDeque<oneshot::Sender<Conn<B>>>,
    /// Waiters held when the queue is next swept of those that gave up:
    /// twice the live ones after each sweep, so a sweep costs amortized
    /// constant time per wait.
    sweep_at: usize,
}

/// The fewest queued waiters that start a sweep.
const MIN_SWEEP: usize = 64;

impl<B> Shelf<B> {
    /// Whether some request waits for a connection; forgets the oldest
    /// waiters that gave up.
    fn has_waiters(&mut self) -> bool {
        while self.waiters.front().is_some_and(oneshot::Sender::is_closed) {
            self.waiters.pop_front();
        }
        !self.waiters.is_empty()
    }

    /// Queues a request for the next connection returned.
    fn wait(&mut self) -> oneshot::Receiver<Conn<B>> {
        if self.waiters.len() >= self.sweep_at {
            self.waiters.retain(|w| !w.is_closed());
            self.sweep_at = (self.waiters.len() * 2).max(MIN_SWEEP);
        }
        let (sender, receiver) = oneshot::channel();
        self.waiters.push_back(sender);
        receiver
    }

    /// Hands `conn` to the request that has waited longest; gives it back
    /// when none waits.
    fn hand_over(&mut self, mut conn: Conn<B>) -> Option<Conn<B>> {
        while let Some(waiter) = self.waiters.pop_front() {
            match waiter.send(conn) {
                Ok(()) => return None,
                // Gave up meanwhile: the next one.
                Err(back) => conn = back,
            }
        }
        Some(conn)
    }

    /// The most recently returned connection that is ready for a new
    /// request. A connection still busy finishing its last exchange is left
    /// where it is: the request would wait behind it.
    fn take(&mut self) -> Option<Conn<B>> {
        while self.conns.last().is_some_and(|e| e.conn.sender.is_closed()) {
            self.conns.pop();
        }
        let found = self.conns.iter().rposition(|e| e.conn.sender.is_ready())?;
        Some(self.conns.remove(found).conn)
    }
}

/// A connection: where requests are sent, and the task that drives it (aborted
/// to close it at once).
struct Conn<B> {
    sender: SendRequest<B>,
    task: AbortHandle,
}

struct Idle<B> {
    conn: Conn<B>,
    since: Instant,
}

/// The HTTP/2 connection to an upstream: where streams are opened, the
/// task that drives it, and how busy it is.
struct H2Conn<B> {
    sender: http2::SendRequest<B>,
    task: AbortHandle,
    activity: Arc<H2Activity>,
}

/// The streams of an HTTP/2 connection that have not ended, and since when
/// it has carried none: what tells an idle connection apart.
#[derive(Debug)]
struct H2Activity {
    open: std::sync::atomic::AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl H2Activity {
    fn new() -> Arc<H2Activity> {
        Arc::new(H2Activity {
            open: std::sync::atomic::AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
        })
    }

    /// Whether no stream is open and none has been for `timeout` at `now`.
    fn idle_for(&self, timeout: Duration, now: Instant) -> bool {
        self.open.load(Ordering::Acquire) == 0
            && now.duration_since(
                *self
                    .idle_since
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            ) >= timeout
    }
}

/// One stream of an HTTP/2 connection, from the moment a request takes the
/// connection until its exchange ends (the response body read, or given up):
/// counted open meanwhile.
#[derive(Debug)]
struct H2Stream(Arc<H2Activity>);

impl H2Stream {
    /// Counts a stream open; the caller holds the pool's `h2` lock, which
    /// [`Pool::prune`] takes too, so a connection being taken for a request
    /// is never closed as idle.
    fn open(activity: &Arc<H2Activity>) -> H2Stream {
        activity.open.fetch_add(1, Ordering::AcqRel);
        H2Stream(activity.clone())
    }
}

impl Drop for H2Stream {
    fn drop(&mut self) {
        // The time first, then the count: a prune that sees no stream open
        // also sees when the last one ended.
        *self
            .0
            .idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<B> Drop for H2Conn<B> {
    /// A connection replaced in its pool, or whose pool went with a reload,
    /// closes once its streams end: hyper ends its task when the last sender
    /// is gone. Aborted only if already closed.
    fn drop(&mut self) {
        if self.sender.is_closed() {
            self.task.abort();
        }
    }
}

/// A new connection: HTTP/1.1 (pooled) or HTTP/2 (shared).
enum Connected<B> {
    Http1(Conn<B>),
    Http2(H2Conn<B>),
}

impl<B> fmt::Debug for Pool<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("authority", &self.authority)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<B: SendBody> Pool<B> {
    /// A pool to an `http://` upstream.
    #[cfg_attr(not(any(test, feature = "bench")), allow(dead_code))]
    pub(crate) fn new(authority: Authority, settings: PoolSettings, metrics: Arc<Metrics>) -> Self {
        Self::with_protocol(authority, settings, Protocol::Http1, metrics)
    }

    /// A pool to an upstream spoken to with `protocol`.
    pub(crate) fn with_protocol(
        authority: Authority,
        settings: PoolSettings,
        protocol: Protocol,
        metrics: Arc<Metrics>,
    ) -> Self {
        Pool {
            authority,
            settings,
            protocol,
            h2: Mutex::new(None),
            h2_connecting: tokio::sync::Mutex::new(()),
            speaks_http1: std::sync::atomic::AtomicBool::new(false),
            permits: Arc::new(Semaphore::new(settings.max_connections)),
            idle: Mutex::new(Shelf {
                conns: Vec::new(),
                waiters: VecDeque::new(),
                sweep_at: MIN_SWEEP,
            }),
            metrics,
        }
    }

    /// Whether this pool connects and keeps connections the way a route of a
    /// new configuration would: then it survives the reload, connections
    /// included.
    pub(crate) fn serves(
        &self,
        authority: &Authority,
        settings: &PoolSettings,
        protocol: &Protocol,
    ) -> bool {
        self.authority == *authority && self.settings == *settings && self.protocol == *protocol
    }

    /// Whether this pool shakes hands with TLS as `connector` would.
    pub(crate) fn connects_with(&self, connector: &Connector) -> bool {
        matches!(&self.protocol, Protocol::Https(own) if **own == *connector)
    }

    pub(crate) fn authority(&self) -> &Authority {
        &self.authority
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Sends a request (origin-form URI, `Host` set) on a pooled connection or
    /// a new one. The returned [`Checkout`] hands the connection back once the
    /// response body has been read to its end and, if `progress` is given,
    /// the request body has been sent whole.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut request: Request<B>,
        progress: Option<Arc<Progress>>,
    ) -> Result<(Response<Incoming>, Checkout<B>), UpstreamError> {
        // A WebSocket handshake (the only request forwarded with `Upgrade`)
        // needs an HTTP/1.1 connection of its own (RFC 6455; RFC 8441's
        // HTTP/2 form is not spoken to upstreams).
        let upgrade = request.headers().contains_key(http::header::UPGRADE);
        if upgrade && matches!(self.protocol, Protocol::H2c) {
            return Err(UpstreamError::Http2Upgrade);
        }
        let mut deadline = None;
        let mut retried_h2 = false;
        loop {
            let h2_possible = !upgrade
                && match self.protocol {
                    Protocol::Http1 => false,
                    Protocol::H2c => true,
                    Protocol::Https(_) => !self.speaks_http1.load(Ordering::Relaxed),
                };
            let mut gate = None;
            // The HTTP/2 sends are boxed, as the rare states below: this
            // future is moved with every request (into the response timeout,
            // and with the request's future into hyper's dispatcher), and an
            // HTTP/1.1 request should not pay to move a stream's state.
            if h2_possible {
                if let Some((sender, stream)) = self.live_h2() {
                    match Box::pin(self.send_h2(sender, stream, request, progress.clone())).await {
                        Err((Some(unsent), _)) if !retried_h2 => {
                            retried_h2 = true;
                            request = unsent;
                            continue;
                        }
                        other => return other.map_err(|(_, err)| err),
                    }
                }
                gate = Some(self.h2_connecting.lock().await);
                // Opened by another request while this one waited.
                if let Some((sender, stream)) = self.live_h2() {
                    drop(gate);
                    return Box::pin(self.send_h2(sender, stream, request, progress))
                        .await
                        .map_err(|(_, err)| err);
                }
            }
            // A connection idle or a permit free, the usual case, without
            // awaiting: the state of waiting for one (a timer, a
            // notification, a semaphore's queue) is boxed, when it happens.
            let ready = match self.try_checkout() {
                Some(ready) => ready,
                None => Box::pin(self.checkout(&mut deadline)).await?,
            };
            let (Conn { mut sender, task }, reused) = match ready {
                Ready::Idle(conn) => (conn, true),
                // Boxed: the connect and TLS handshake states are the
                // largest of this future, which every request moves (hyper
                // copies its service's future into place), while a new
                // connection is rare.
                Ready::Permit(permit) => match Box::pin(self.connect(permit, upgrade)).await? {
                    Connected::Http1(conn) => (conn, false),
                    Connected::Http2(conn) => {
                        let sender = conn.sender.clone();
                        let stream = H2Stream::open(&conn.activity);
                        *self.h2.lock().unwrap_or_else(PoisonError::into_inner) = Some(conn);
                        drop(gate);
                        return Box::pin(self.send_h2(sender, stream, request, progress))
                            .await
                            .map_err(|(_, err)| err);
                    }
                },
            };
            drop(gate);
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
                        conn: Some(Conn { sender, task }),
                        _stream: None,
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

    /// The HTTP/2 connection, if one is open and not closing, with a stream
    /// counted open on it.
    fn live_h2(&self) -> Option<(http2::SendRequest<B>, H2Stream)> {
        let mut slot = self.h2.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_some_and(|c| c.sender.is_closed()) {
            *slot = None;
        }
        slot.as_ref()
            .map(|c| (c.sender.clone(), H2Stream::open(&c.activity)))
    }

    /// A request as a stream of the HTTP/2 connection. The request comes back
    /// when the connection refused it unsent (closing, or gone): then another
    /// connection may take it.
    #[allow(clippy::type_complexity)]
    async fn send_h2(
        self: &Arc<Self>,
        mut sender: http2::SendRequest<B>,
        stream: H2Stream,
        mut request: Request<B>,
        progress: Option<Arc<Progress>>,
    ) -> Result<(Response<Incoming>, Checkout<B>), (Option<Request<B>>, UpstreamError)> {
        // RFC 9113 section 8.3.1: `:scheme` and `:authority` from the
        // absolute URI; the authority is the Host the upstream would have got
        // over HTTP/1.1, and no Host header goes with it (section 8.3.1: they
        // must not differ).
        let authority = request
            .headers_mut()
            .remove(http::header::HOST)
            .and_then(|h| Authority::try_from(h.as_bytes()).ok())
            .unwrap_or_else(|| self.authority.clone());
        let mut parts = std::mem::take(request.uri_mut()).into_parts();
        parts.scheme = Some(self.protocol.scheme());
        parts.authority = Some(authority);
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        match http::Uri::from_parts(parts) {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => return Err((None, UpstreamError::BadTarget)),
        }
        *request.version_mut() = http::Version::HTTP_2;
        if let Err(err) = sender.ready().await {
            self.forget_h2(&sender);
            return Err((Some(request), UpstreamError::Http(err)));
        }
        match sender.try_send_request(request).await {
            Ok(response) => Ok((
                response,
                Checkout {
                    pool: self.clone(),
                    conn: None,
                    _stream: Some(stream),
                    progress,
                },
            )),
            Err(mut err) => {
                let unsent = err.take_message();
                if unsent.is_some() {
                    self.forget_h2(&sender);
                }
                Err((unsent, UpstreamError::Http(err.into_error())))
            }
        }
    }

    /// Drops the HTTP/2 connection of `sender` from the pool, if it is still
    /// the pool's: the next request opens another.
    fn forget_h2(&self, sender: &http2::SendRequest<B>) {
        let mut slot = self.h2.lock().unwrap_or_else(PoisonError::into_inner);
        if slot
            .as_ref()
            .is_some_and(|c| c.sender.is_closed() || sender.is_closed())
        {
            *slot = None;
        }
    }

    /// An idle connection ready for a request, or the permit to open one,
    /// if there is one now and no request waits before this one (see
    /// [`checkout`](Self::checkout)).
    fn try_checkout(&self) -> Option<Ready<B>> {
        let mut shelf = self.shelf();
        if shelf.has_waiters() {
            return None;
        }
        if let Some(conn) = shelf.take() {
            return Some(Ready::Idle(conn));
        }
        self.permits
            .clone()
            .try_acquire_owned()
            .ok()
            .map(Ready::Permit)
    }

    /// An idle connection ready for a request, or the permit to open one;
    /// waits for either up to `queue_timeout` (counted from the first wait).
    /// Requests that wait are served first come, first served: a newcomer
    /// takes nothing while others wait, and each returned connection goes
    /// to the longest waiting. Otherwise, under load, whoever the runtime
    /// polls first after a return takes the connection, and a waiter passed
    /// over queues again, behind the newcomers: the tail of the latency
    /// grows far past its median.
    async fn checkout(
        &self,
        deadline: &mut Option<tokio::time::Instant>,
    ) -> Result<Ready<B>, UpstreamError> {
        let returned = {
            let mut shelf = self.shelf();
            if !shelf.has_waiters() {
                if let Some(conn) = shelf.take() {
                    return Ok(Ready::Idle(conn));
                }
                if let Ok(permit) = self.permits.clone().try_acquire_owned() {
                    return Ok(Ready::Permit(permit));
                }
            }
            // Every connection is busy and no other may be opened (or others
            // were first): wait for one to come back or to close.
            shelf.wait()
        };
        let since = tokio::time::Instant::now();
        let deadline = *deadline.get_or_insert_with(|| after(since, self.settings.queue_timeout));
        let ready = self.wait(returned, deadline).await;
        self.metrics.observe_upstream_queue_wait(since.elapsed());
        ready
    }

    /// Waits for a connection handed over on `returned`, or for a permit to
    /// open one (a connection closed), until `deadline`.
    async fn wait(
        &self,
        returned: oneshot::Receiver<Conn<B>>,
        deadline: tokio::time::Instant,
    ) -> Result<Ready<B>, UpstreamError> {
        let busy = UpstreamError::Busy(self.settings.max_connections);
        let mut handed = Handed {
            pool: self,
            receiver: returned,
        };
        let returned = &mut handed.receiver;
        tokio::select! {
            // A connection handed over is served before a permit, which then
            // goes to the next waiter.
            biased;
            conn = &mut *returned => conn.map(Ready::Idle).map_err(|_| busy),
            permit = self.permits.clone().acquire_owned() => {
                // Stop taking connections; one handed over meanwhile is used.
                returned.close();
                match returned.try_recv() {
                    Ok(conn) => Ok(Ready::Idle(conn)),
                    Err(_) => permit.map(Ready::Permit).map_err(|_| busy),
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                returned.close();
                returned.try_recv().map(Ready::Idle).map_err(|_| busy)
            }
        }
    }

    fn shelf(&self) -> std::sync::MutexGuard<'_, Shelf<B>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection back from a request: to the longest waiting request, or
    /// kept idle.
    fn put(&self, conn: Conn<B>) {
        // `max_idle_per_upstream = 0` closes every connection after its
        // request, also when a request waits: that one opens its own with the
        // permit this close frees.
        if conn.sender.is_closed() || self.settings.max_idle == 0 {
            return;
        }
        let since = Instant::now();
        let mut shelf = self.shelf();
        let Some(conn) = shelf.hand_over(conn) else {
            return;
        };
        if shelf.conns.len() >= self.settings.max_idle {
            // The least recently used goes (and closes, outside the lock).
            let oldest = shelf.conns.remove(0);
            shelf.conns.push(Idle { conn, since });
            drop(shelf);
            drop(oldest);
        } else {
            shelf.conns.push(Idle { conn, since });
        }
    }

    /// Closes the connections unused for `upstream_idle_timeout` and forgets
    /// the ones the upstream closed.
    pub(crate) fn prune(&self) {
        self.prune_at(Instant::now());
    }

    /// [`prune`](Self::prune) as of `now`.
    fn prune_at(&self, now: Instant) {
        let timeout = self.settings.idle_timeout;
        let mut shelf = self.shelf();
        shelf
            .conns
            .retain(|e| !e.conn.sender.is_closed() && now.duration_since(e.since) < timeout);
        drop(shelf);
        // The HTTP/2 connection, once it has carried no stream for the same
        // time: dropping the pool's sender, the last one, makes hyper close
        // it (a GOAWAY, then the socket; RFC 9113 section 6.8), and the
        // next request opens a new one.
        let mut h2 = self.h2.lock().unwrap_or_else(PoisonError::into_inner);
        if h2
            .as_ref()
            .is_some_and(|c| c.sender.is_closed() || c.activity.idle_for(timeout, now))
        {
            let closing = h2.take();
            drop(h2);
            drop(closing);
        }
    }

    /// Idle connections kept.
    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.shelf().conns.len()
    }

    /// Opens a connection: TCP, TLS for `https://`, then HTTP/1.1 or HTTP/2.
    /// `http1_only` (a WebSocket handshake) offers only `http/1.1` by ALPN.
    async fn connect(
        &self,
        permit: OwnedSemaphorePermit,
        http1_only: bool,
    ) -> Result<Connected<B>, UpstreamError> {
        let host = self.authority.host();
        // An IPv6 literal comes bracketed in an authority.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let default_port = match self.protocol {
            Protocol::Https(_) => HTTPS_DEFAULT_PORT,
            Protocol::Http1 | Protocol::H2c => HTTP_DEFAULT_PORT,
        };
        let port = self.authority.port_u16().unwrap_or(default_port);
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
        match &self.protocol {
            Protocol::Http1 => Ok(Connected::Http1(Self::http1(stream, permit).await?)),
            Protocol::H2c => Ok(Connected::Http2(Self::http2(stream, permit).await?)),
            Protocol::Https(connector) => {
                // The handshake has a connect_timeout of its own.
                let stream = match tokio::time::timeout(
                    timeout,
                    connector.connect(stream, http1_only),
                )
                .await
                {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(err)) => return Err(UpstreamError::Tls(err)),
                    Err(_elapsed) => {
                        return Err(UpstreamError::Tls(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "no TLS handshake within connect_timeout ({})",
                                humantime::format_duration(timeout)
                            ),
                        )));
                    }
                };
                if stream.get_ref().1.alpn_protocol() == Some(ALPN_H2) {
                    self.speaks_http1.store(false, Ordering::Relaxed);
                    Ok(Connected::Http2(Self::http2(stream, permit).await?))
                } else {
                    if !http1_only {
                        self.speaks_http1.store(true, Ordering::Relaxed);
                    }
                    Ok(Connected::Http1(Self::http1(stream, permit).await?))
                }
            }
        }
    }

    async fn http1<T>(stream: T, permit: OwnedSemaphorePermit) -> Result<Conn<B>, UpstreamError>
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
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

    async fn http2<T>(stream: T, permit: OwnedSemaphorePermit) -> Result<H2Conn<B>, UpstreamError>
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(H2_PING_INTERVAL)
            .keep_alive_timeout(H2_PING_TIMEOUT)
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Http)?;
        let task = tokio::spawn(async move {
            let _permit = permit;
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "upstream HTTP/2 connection ended with an error");
            }
        })
        .abort_handle();
        Ok(H2Conn {
            sender,
            task,
            activity: H2Activity::new(),
        })
    }
}

enum Ready<B> {
    Idle(Conn<B>),
    Permit(OwnedSemaphorePermit),
}

/// A connection lent to one request: back to its pool with [`release`], or
/// given up with [`abandon`].
///
/// [`release`]: Checkout::release
/// [`abandon`]: Checkout::abandon
pub(crate) struct Checkout<B: SendBody> {
    pool: Arc<Pool<B>>,
    /// `None` for a stream of an HTTP/2 connection, which is the pool's.
    conn: Option<Conn<B>>,
    /// The stream, for an HTTP/2 connection: open until this is dropped.
    _stream: Option<H2Stream>,
    /// How far the request body has got; `None` for a request without one.
    progress: Option<Arc<Progress>>,
}

/// A waiting request's end of a hand-over. A connection handed over that the
/// request never took, because it went away first (its client left, its
/// future dropped), goes back to the pool: to the next waiter or the idle
/// list, rather than closing with the request.
struct Handed<'a, B: SendBody> {
    pool: &'a Pool<B>,
    receiver: oneshot::Receiver<Conn<B>>,
}

impl<B: SendBody> Drop for Handed<'_, B> {
    fn drop(&mut self) {
        self.receiver.close();
        if let Ok(conn) = self.receiver.try_recv() {
            self.pool.put(conn);
        }
    }
}

impl<B: SendBody> Checkout<B> {
    /// Returns the connection to its pool: call it once the response body has
    /// been read to its end. A connection whose request body is still on its
    /// way (the upstream answered before reading it all) is abandoned instead:
    /// the next request would wait behind that body.
    pub(crate) fn release(self) {
        if self.progress.as_ref().is_some_and(|p| !p.is_done()) {
            return self.abandon();
        }
        let Checkout { pool, conn, .. } = self;
        let Some(mut conn) = conn else { return };
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
        // An HTTP/2 stream ends alone; the connection stays.
        let Some(conn) = conn else { return };
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

    pub(crate) fn pool(&self) -> &Pool<B> {
        &self.pool
    }
}

impl<B: SendBody> fmt::Debug for Checkout<B> {
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
    /// The TLS handshake with an `https://` upstream failed (its certificate
    /// not trusted or not for its name, no client certificate where one is
    /// required, no common version), or did not finish in time.
    Tls(io::Error),
    /// A WebSocket handshake to an `h2c://` upstream, which has no HTTP/1.1
    /// connection to carry it.
    Http2Upgrade,
    /// The request's target could not be written as an HTTP/2 `:authority`.
    BadTarget,
}

impl UpstreamError {
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, UpstreamError::Connect(_))
    }

    pub(crate) fn is_busy(&self) -> bool {
        matches!(self, UpstreamError::Busy(_))
    }

    /// A failed handshake, or a TLS alert after it: with TLS 1.3 the client's
    /// handshake is done before the upstream has checked its certificate,
    /// so a missing or refused client certificate arrives as an alert on
    /// the first read.
    pub(crate) fn is_tls(&self) -> bool {
        if matches!(self, UpstreamError::Tls(_)) {
            return true;
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(cause) = source {
            // io::Error::source skips the error it wraps: look inside.
            let inner = cause
                .downcast_ref::<io::Error>()
                .and_then(io::Error::get_ref);
            if cause.is::<rustls::Error>() || inner.is_some_and(|e| e.is::<rustls::Error>()) {
                return true;
            }
            source = cause.source();
        }
        false
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
            UpstreamError::Tls(_) => f.write_str("TLS handshake failed"),
            UpstreamError::Http2Upgrade => {
                f.write_str("a WebSocket handshake cannot go to an h2c:// upstream (HTTP/2 only)")
            }
            UpstreamError::BadTarget => f.write_str("the request's host is no HTTP/2 authority"),
        }
    }
}

impl std::error::Error for UpstreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UpstreamError::Connect(err) => Some(err),
            UpstreamError::Busy(_) | UpstreamError::Http2Upgrade | UpstreamError::BadTarget => None,
            UpstreamError::Http(err) => Some(err),
            UpstreamError::Tls(err) => Some(err),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The pool on its own, against a real upstream on loopback: what it
    //! reuses, what it keeps, what it closes, and when it refuses.

    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::sync::atomic::AtomicUsize;

    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use tokio::net::TcpListener;
    use tokio::sync::Notify;

    use super::*;

    type TestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

    fn body(text: &'static str) -> TestBody {
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync()
    }

    /// An HTTP/1.1 upstream on 127.0.0.1 that counts the connections it
    /// accepted and answers `ok`; `/hold` waits until `release` is notified.
    struct Upstream {
        addr: SocketAddr,
        accepted: Arc<AtomicUsize>,
        release: Arc<Notify>,
        /// The paths of the requests received, in the order they arrived.
        seen: Arc<Mutex<Vec<String>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Upstream {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn upstream() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let accepted = accepted.clone();
            let release = release.clone();
            let seen = seen.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let release = release.clone();
                    let seen = seen.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |request: Request<Incoming>| {
                            let release = release.clone();
                            seen.lock().unwrap().push(request.uri().path().to_owned());
                            async move {
                                let hold = request.uri().path() == "/hold";
                                let _ = request.into_body().collect().await;
                                if hold {
                                    release.notified().await;
                                }
                                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                                    b"ok",
                                ))))
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        Upstream {
            addr,
            accepted,
            release,
            seen,
            task,
        }
    }

    fn settings() -> PoolSettings {
        PoolSettings {
            connect_timeout: Duration::from_secs(5),
            max_connections: 8,
            max_idle: 8,
            idle_timeout: Duration::from_secs(60),
            queue_timeout: Duration::from_secs(5),
        }
    }

    fn pool(up: &Upstream, settings: PoolSettings) -> Arc<Pool<TestBody>> {
        let authority: Authority = up.addr.to_string().parse().unwrap();
        Arc::new(Pool::new(authority, settings, Arc::new(Metrics::default())))
    }

    fn request(up: &Upstream, path: &str) -> Request<TestBody> {
        Request::get(path)
            .header(http::header::HOST, up.addr.to_string())
            .body(body(""))
            .unwrap()
    }

    /// Sends a request and reads its response whole; returns the checkout.
    async fn exchange(
        pool: &Arc<Pool<TestBody>>,
        request: Request<TestBody>,
    ) -> Checkout<TestBody> {
        let (response, checkout) = pool.send(request, None).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "ok");
        checkout
    }

    /// Waits until `n` connections are idle: a connection whose task has not
    /// yet seen the end of its exchange goes back to the pool a moment later.
    async fn settle(pool: &Pool<TestBody>, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while pool.idle_count() < n {
            assert!(tokio::time::Instant::now() < deadline, "never {n} idle");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// A pool that opens at most one connection to `up`.
    fn one_connection(up: &Upstream) -> Arc<Pool<TestBody>> {
        pool(
            up,
            PoolSettings {
                max_connections: 1,
                ..settings()
            },
        )
    }

    /// Requests for `paths`, each made once the one before is waiting for a
    /// connection (when all are busy), in that order; each releases its
    /// connection once answered.
    async fn queue(
        pool: &Arc<Pool<TestBody>>,
        up: &Upstream,
        paths: &[&str],
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut waiters = Vec::new();
        for path in paths {
            waiters.push(tokio::spawn({
                let pool = pool.clone();
                let request = request(up, path);
                async move { exchange(&pool, request).await.release() }
            }));
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        }
        waiters
    }

    #[tokio::test]
    async fn a_released_connection_is_reused() {
        let up = upstream().await;
        let pool = pool(&up, settings());
        for _ in 0..3 {
            exchange(&pool, request(&up, "/")).await.release();
            settle(&pool, 1).await;
        }
        assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn a_connection_whose_request_body_was_not_sent_whole_is_not_reused() {
        let up = upstream().await;
        let pool = pool(&up, settings());
        let progress = Arc::new(Progress::new(Duration::from_secs(5)));
        progress.advanced(3);
        let (response, checkout) = pool
            .send(request(&up, "/"), Some(progress.clone()))
            .await
            .unwrap();
        let _ = response.into_body().collect().await.unwrap();
        checkout.release();
        assert_eq!(pool.idle_count(), 0);
        exchange(&pool, request(&up, "/")).await.release();
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn idle_connections_are_capped_least_recently_used_first() {
        let up = upstream().await;
        let pool = pool(
            &up,
            PoolSettings {
                max_idle: 2,
                ..settings()
            },
        );
        // Four held at once: four connections, then only two kept.
        let mut checkouts = Vec::new();
        for _ in 0..4 {
            checkouts.push(exchange(&pool, request(&up, "/")).await);
        }
        assert_eq!(up.accepted.load(Ordering::SeqCst), 4);
        for checkout in checkouts {
            checkout.release();
        }
        settle(&pool, 2).await;
        assert_eq!(pool.idle_count(), 2);
    }

    #[tokio::test]
    async fn max_idle_0_keeps_no_connection() {
        let up = upstream().await;
        let pool = pool(
            &up,
            PoolSettings {
                max_idle: 0,
                ..settings()
            },
        );
        exchange(&pool, request(&up, "/")).await.release();
        assert_eq!(pool.idle_count(), 0);
    }

    /// Sends `/hold`, which the upstream holds until `up.release` is
    /// notified, and returns once the upstream has it: the pool's one
    /// connection is then busy.
    async fn hold(
        pool: &Arc<Pool<TestBody>>,
        up: &Upstream,
    ) -> tokio::task::JoinHandle<(Response<Incoming>, Checkout<TestBody>)> {
        let held = tokio::spawn({
            let pool = pool.clone();
            let request = request(up, "/hold");
            async move { pool.send(request, None).await.unwrap() }
        });
        for _ in 0..1000 {
            if !up.seen.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        held
    }

    /// A connection handed to a waiting request whose client leaves before
    /// the request runs again (the hand-over done, not yet taken) goes back
    /// to the pool, to the next waiter: it is not closed with the request.
    #[tokio::test]
    async fn a_connection_handed_to_a_request_that_then_left_goes_to_the_next() {
        let up = upstream().await;
        let pool = one_connection(&up);
        let first = exchange(&pool, request(&up, "/first")).await;
        let mut waiters = queue(&pool, &up, &["/left", "/w"]).await;
        let served = waiters.pop().unwrap();
        let left = waiters.pop().unwrap();
        // Handed to "/left" (the longest waiting), which leaves before it
        // runs: nothing is awaited between the two.
        first.release();
        left.abort();
        tokio::time::timeout(Duration::from_secs(10), served)
            .await
            .expect("the next waiter was never served")
            .unwrap();
        assert_eq!(*up.seen.lock().unwrap(), ["/first", "/w"]);
        assert_eq!(
            up.accepted.load(Ordering::SeqCst),
            1,
            "the connection handed over was closed, and another opened"
        );
    }

    #[tokio::test]
    async fn max_idle_0_hands_no_connection_to_a_waiting_request() {
        let up = upstream().await;
        let pool = pool(
            &up,
            PoolSettings {
                max_idle: 0,
                max_connections: 1,
                ..settings()
            },
        );
        let held = hold(&pool, &up).await;
        let waiter = tokio::spawn({
            let pool = pool.clone();
            let request = request(&up, "/next");
            async move { exchange(&pool, request).await.release() }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        up.release.notify_one();
        let (response, checkout) = held.await.unwrap();
        let _ = response.into_body().collect().await.unwrap();
        checkout.release();
        waiter.await.unwrap();
        // The waiter opened a connection of its own.
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn connections_idle_past_the_idle_timeout_are_closed() {
        let up = upstream().await;
        let idle_timeout = Duration::from_secs(30);
        let pool = pool(
            &up,
            PoolSettings {
                idle_timeout,
                ..settings()
            },
        );
        exchange(&pool, request(&up, "/")).await.release();
        settle(&pool, 1).await;
        pool.prune_at(Instant::now());
        assert_eq!(pool.idle_count(), 1, "not idle long enough yet");
        pool.prune_at(Instant::now() + idle_timeout);
        assert_eq!(pool.idle_count(), 0);
        exchange(&pool, request(&up, "/")).await.release();
        assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn past_max_connections_a_request_waits_then_is_refused_as_busy() {
        let up = upstream().await;
        let pool = pool(
            &up,
            PoolSettings {
                max_connections: 1,
                queue_timeout: Duration::from_millis(100),
                ..settings()
            },
        );
        let held = tokio::spawn({
            let pool = pool.clone();
            let request = request(&up, "/hold");
            async move { exchange(&pool, request).await }
        });
        // The held request has the one connection.
        while up.accepted.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        match pool.send(request(&up, "/"), None).await {
            Err(err) => assert!(err.is_busy(), "{err}"),
            Ok(_) => panic!("a second connection past max_connections = 1"),
        }
        // Once it comes back, the next request takes it.
        up.release.notify_one();
        held.await.unwrap().release();
        exchange(&pool, request(&up, "/")).await.release();
        assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
    }

    /// Under load every connection is busy and requests queue for one. A
    /// connection that comes back goes to the request that has waited
    /// longest, not to one that arrives at that moment: otherwise the
    /// newcomer is served at once while the waiter, robbed, queues again at
    /// the back, and a few requests wait many times the median (the p99 of
    /// `bench/c10k.sh`).
    #[tokio::test]
    async fn a_returned_connection_goes_to_the_longest_waiting_request() {
        let up = upstream().await;
        let pool = one_connection(&up);
        // The one connection, held by the upstream until released.
        let held = hold(&pool, &up).await;
        assert_eq!(*up.seen.lock().unwrap(), ["/hold"]);
        // Three requests queue, in this order. Each needs one poll to queue;
        // on this single-threaded runtime yielding gives it that poll.
        let waiters = queue(&pool, &up, &["/w1", "/w2", "/w3"]).await;
        up.release.notify_one();
        let (response, checkout) = held.await.unwrap();
        let _ = response.into_body().collect().await.unwrap();
        // Until the connection's task has seen the end of the exchange, a
        // release waits for it before pooling; the waiters stay parked.
        for _ in 0..1000 {
            if checkout.conn.as_ref().is_some_and(|c| c.sender.is_ready()) {
                break;
            }
            tokio::task::yield_now().await;
        }
        checkout.release();
        // A request arriving in the same turn of the runtime as the return,
        // polled before any waiter gets to run.
        let mut newcomer = Box::pin({
            let pool = pool.clone();
            let request = request(&up, "/new");
            async move { exchange(&pool, request).await.release() }
        });
        tokio::select! {
            biased;
            () = &mut newcomer => {}
            () = std::future::ready(()) => {}
        }
        let newcomer = tokio::spawn(newcomer);
        for waiter in waiters {
            tokio::time::timeout(Duration::from_secs(10), waiter)
                .await
                .expect("a waiter was never served")
                .unwrap();
        }
        tokio::time::timeout(Duration::from_secs(10), newcomer)
            .await
            .expect("the newcomer was never served")
            .unwrap();
        assert_eq!(
            *up.seen.lock().unwrap(),
            ["/hold", "/w1", "/w2", "/w3", "/new"],
            "served out of arrival order"
        );
        assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
        // Each of the four waited, and says so on /metrics.
        assert!(
            pool.metrics()
                .render()
                .contains("corsgate_upstream_queue_wait_seconds_count 4\n")
        );
    }

    /// A queued request whose client went away (its future dropped) is
    /// skipped: the connection goes to the next waiter, not into the void.
    #[tokio::test]
    async fn a_waiter_that_gave_up_is_skipped() {
        let up = upstream().await;
        let pool = one_connection(&up);
        let held = tokio::spawn({
            let pool = pool.clone();
            let request = request(&up, "/hold");
            async move { exchange(&pool, request).await.release() }
        });
        for _ in 0..1000 {
            if !up.seen.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut waiters = queue(&pool, &up, &["/gone", "/w"]).await;
        let served = waiters.pop().unwrap();
        let gone = waiters.pop().unwrap();
        gone.abort();
        let _ = gone.await;
        up.release.notify_one();
        held.await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), served)
            .await
            .expect("the waiter behind the one gone was never served")
            .unwrap();
        assert_eq!(*up.seen.lock().unwrap(), ["/hold", "/w"]);
        assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_upstream_that_is_not_there_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let authority: Authority = addr.to_string().parse().unwrap();
        let pool: Arc<Pool<TestBody>> = Arc::new(Pool::new(
            authority,
            settings(),
            Arc::new(Metrics::default()),
        ));
        let request = Request::get("/").body(body("")).unwrap();
        match pool.send(request, None).await {
            Err(err) => assert!(err.is_connect(), "{err}"),
            Ok(_) => panic!("a response from nowhere"),
        }
    }
}
