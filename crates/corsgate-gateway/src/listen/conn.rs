//! Client connections: the driver that serves one, and what its requests share.
//!
//! Every connection makes progress or goes:
//!
//! - between requests, the idle timer (`idle_timeout`; before the first request,
//!   the header read timeout) closes it;
//! - while response bytes wait, the send timer (`send_timeout`) closes it hard
//!   when the client takes none of them, and resets an HTTP/2 stream whose
//!   response waits for flow-control window that long;
//! - once it is closing (idle, request cap, rapid resets), it gets a deadline,
//!   whatever the client does with GOAWAY and its PING; new streams are refused.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::CONNECTION;
use http::{HeaderValue, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Sleep;

use super::tls::ClientStream;
use crate::BoxError;
use crate::Shared;
use crate::observe::metrics::{ClientClose, Metrics};
use crate::request::proxy;

/// How long a connection that is closing (GOAWAY sent) may take to finish, at
/// most: then it is dropped whatever the client does. Requests still in flight
/// then are given the same time again, as long as they make progress (the send
/// timeout ends those that don't).
const MAX_CLOSE_GRACE: Duration = Duration::from_secs(10);
/// Early resets (HTTP/2 streams the client resets before their response head)
/// a connection may make before they count as abuse, when they are also at
/// least half of its requests (CVE-2023-44487, "rapid reset").
const EARLY_RESETS_FLOOR: u64 = 100;
/// Longest an HTTP/2 keep-alive PING waits for its ACK.
const MAX_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an HTTP/1.1 connection stays idle before hyper is let go (see
/// [`Release`]), in milliseconds. Not at once: a client that sends its next
/// request right after each response (a busy keep-alive connection) would make
/// the gateway set up a hyper connection per request, about a third more
/// instructions per proxied request; a connection idle this long is one that
/// waits for its user.
const RELEASE_AFTER_MS: u64 = 100;

/// Milliseconds since the process started, plus one: 0 means "never".
fn now_ms() -> u64 {
    static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
    u64::try_from(EPOCH.elapsed().as_millis())
        .unwrap_or(u64::MAX - 1)
        .saturating_add(1)
}

/// The connection limits a driver applies, from the settings in force when the
/// connection was accepted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) idle_timeout: Duration,
    pub(crate) header_timeout: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) max_requests: u64,
}

impl Limits {
    /// The HTTP/2 keep-alive: a PING after `idle_timeout` without frames from the
    /// client, and the connection closed if its ACK takes longer than this.
    pub(crate) fn ping_timeout(idle_timeout: Duration) -> Duration {
        idle_timeout.min(MAX_PING_TIMEOUT)
    }

    fn close_grace(&self) -> Duration {
        self.idle_timeout.min(MAX_CLOSE_GRACE)
    }
}

/// What one client connection shares with its requests and its socket: how
/// many requests are in flight and when the last one ended (the idle timer),
/// whether writes to the client are stuck (the send timer), and the counts
/// behind the request cap and the rapid-reset guard.
#[derive(Debug)]
pub(crate) struct ConnState {
    active: AtomicUsize,
    /// [`now_ms`] at the last request start or end; 0 before the first.
    last_activity: AtomicU64,
    /// [`now_ms`] when a write to the client last returned `Pending` with no
    /// write making progress since; 0 while writes go through.
    write_blocked_since: AtomicU64,
    requests: AtomicU64,
    early_resets: AtomicU64,
    max_requests: u64,
    /// Set by a request that wants the connection closed (request cap, abuse).
    close_requested: AtomicBool,
    /// Set by the driver once it closes: later requests are refused.
    closing: AtomicBool,
    /// Set when the connection is dropped on a timeout: the socket is reset
    /// rather than closed, so the kernel frees its buffers at once.
    abort: AtomicBool,
    /// Wakes the driver for `close_requested`.
    signals: Arc<Signals>,
    /// Requests handed to the service whose response body hyper has not
    /// dropped yet, and how many have been dropped so far: when hyper may be
    /// let go between HTTP/1.1 requests (see [`Release`]).
    exchanges: AtomicUsize,
    exchanges_ended: AtomicU64,
    /// A response switched protocols: the socket is the tunnel's.
    upgraded: AtomicBool,
    /// The socket told hyper the client closed, at a message boundary.
    released: AtomicBool,
    /// The last request handed to the service came with a body: hyper may
    /// still be reading it after its response, so it is not let go before
    /// the next request (whose head it reads only after that body).
    body_pending: AtomicBool,
    /// [`now_ms`] from when hyper may be let go, once at a message boundary;
    /// 0: not at one. The driver's timer polls hyper then.
    release_due: AtomicU64,
    created: u64,
    /// [`now_ms`] when bytes came to an idle HTTP/1.1 connection whose hyper
    /// had been let go: a request head is being read, which must be whole
    /// within the header read timeout; 0 once it is (or none is being read).
    head_since: AtomicU64,
    /// Counts the closes this connection's own guards decide.
    metrics: Arc<Metrics>,
}

impl ConnState {
    pub(crate) fn new(max_requests: u64, metrics: Arc<Metrics>) -> Self {
        ConnState {
            active: AtomicUsize::new(0),
            last_activity: AtomicU64::new(0),
            write_blocked_since: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            early_resets: AtomicU64::new(0),
            max_requests,
            close_requested: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            signals: Arc::new(Signals::default()),
            exchanges: AtomicUsize::new(0),
            exchanges_ended: AtomicU64::new(0),
            upgraded: AtomicBool::new(false),
            released: AtomicBool::new(false),
            release_due: AtomicU64::new(0),
            body_pending: AtomicBool::new(false),
            created: now_ms(),
            head_since: AtomicU64::new(0),
            metrics,
        }
    }

    fn touch(&self) {
        self.last_activity.store(now_ms(), Relaxed);
    }

    /// `None` while a request is in flight (the send timer watches it);
    /// otherwise the time since the last request ended (or since the connection
    /// opened), and whether a request was seen at all.
    fn idle_for(&self) -> Option<(Duration, bool)> {
        if self.active.load(Relaxed) > 0 {
            return None;
        }
        let last = self.last_activity.load(Relaxed);
        let since = if last == 0 { self.created } else { last };
        Some((
            Duration::from_millis(now_ms().saturating_sub(since)),
            last != 0,
        ))
    }

    /// What the idle timer finds at `now` ([`now_ms`]): a request in flight
    /// (the send timer watches it), a connection to close, or when to look
    /// again. Closed: `header_timeout` after the connection opened while no
    /// request has come, or after a request head started to arrive (see
    /// `head_since`: hyper's own header timer is off for cleartext HTTP/1.1,
    /// as it cost a timer per request); `idle_timeout` after the last request.
    /// A head that starts between two looks is seen at the next one, which
    /// comes at most `header_timeout` later: the timer fires about once per
    /// `header_timeout` on a busy connection, never once per request.
    fn idle_check(&self, limits: &Limits, now: u64) -> IdleCheck {
        if self.active.load(Relaxed) > 0 {
            return IdleCheck::Busy;
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let (header, idle) = (ms(limits.header_timeout), ms(limits.idle_timeout));
        let last = self.last_activity.load(Relaxed);
        if last == 0 {
            let due = self.created.saturating_add(header);
            return if now >= due {
                IdleCheck::Close
            } else {
                IdleCheck::Until(due)
            };
        }
        let idle_due = last.saturating_add(idle);
        let head = self.head_since.load(Relaxed);
        let head_due = if head != 0 {
            head.saturating_add(header)
        } else {
            // No head yet: look again when one that starts now would be due,
            // or at the idle timeout.
            now.max(last).saturating_add(header)
        };
        if now >= idle_due || (head != 0 && now >= head_due) {
            IdleCheck::Close
        } else {
            IdleCheck::Until(head_due.min(idle_due))
        }
    }

    /// Counts a new request, and says whether it is served: not when the
    /// connection is closing or made its `max_requests_per_connection`.
    fn admit(&self) -> Admission {
        if self.head_since.load(Relaxed) != 0 {
            self.head_since.store(0, Relaxed);
        }
        if self.closing.load(Relaxed) || self.close_requested.load(Relaxed) {
            return Admission::Refused;
        }
        let n = self.requests.fetch_add(1, Relaxed) + 1;
        if n < self.max_requests {
            return Admission::Served;
        }
        // The last one still gets its answer; GOAWAY (HTTP/2) or
        // `Connection: close` (HTTP/1.1) follows.
        self.request_close();
        if n == self.max_requests {
            self.metrics.client_closed(ClientClose::RequestCap);
            Admission::Last
        } else {
            Admission::Refused
        }
    }

    /// A request ended before its response head: for HTTP/2, the client reset
    /// the stream. When most of a connection's requests end so, it is closed.
    fn early_reset(&self) {
        let resets = self.early_resets.fetch_add(1, Relaxed) + 1;
        let requests = self.requests.load(Relaxed);
        if resets >= EARLY_RESETS_FLOOR
            && resets.saturating_mul(2) >= requests
            && !self.close_requested.load(Relaxed)
        {
            tracing::warn!(
                resets,
                requests,
                "closing a client connection: most of its streams were reset before their response (rapid reset)"
            );
            self.metrics.client_closed(ClientClose::RapidReset);
            self.request_close();
        }
    }

    fn request_close(&self) {
        self.close_requested.store(true, Relaxed);
        self.signals.wake_by_ref();
    }

    fn wrote(&self) {
        if self.write_blocked_since.load(Relaxed) != 0 {
            self.write_blocked_since.store(0, Relaxed);
        }
    }

    fn write_blocked(&self) {
        if self.write_blocked_since.load(Relaxed) == 0 {
            self.write_blocked_since.store(now_ms(), Relaxed);
        }
    }
}

/// What the idle timer finds (see [`ConnState::idle_check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdleCheck {
    Busy,
    Close,
    /// Look again then ([`now_ms`]).
    Until(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Served,
    /// Served, and the connection closes after it.
    Last,
    Refused,
}

/// Held by a request until its response body is dropped.
#[derive(Debug)]
pub(crate) struct InFlight {
    conn: Arc<ConnState>,
    metrics: Arc<Metrics>,
}

impl InFlight {
    pub(crate) fn start(conn: &Arc<ConnState>, metrics: &Arc<Metrics>) -> Self {
        conn.active.fetch_add(1, Relaxed);
        conn.touch();
        metrics.request_started();
        InFlight {
            conn: conn.clone(),
            metrics: metrics.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn.touch();
        self.conn.active.fetch_sub(1, Relaxed);
        self.metrics.request_finished();
    }
}

/// One request from the service's call to the drop of its response body (or
/// of its future, if it ends without a response).
struct Exchange {
    conn: Arc<ConnState>,
}

impl Exchange {
    fn open(conn: &Arc<ConnState>) -> Self {
        conn.exchanges.fetch_add(1, Relaxed);
        Exchange { conn: conn.clone() }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.conn.exchanges.fetch_sub(1, Relaxed);
        self.conn.exchanges_ended.fetch_add(1, Relaxed);
    }
}

/// Counts a request that ends before its response head as an early reset.
struct Answered {
    conn: Arc<ConnState>,
    done: bool,
}

impl Answered {
    fn finish(mut self) {
        self.done = true;
    }
}

/// The error that makes hyper reset a stream with `REFUSED_STREAM`.
fn refused() -> h2::Error {
    h2::Error::from(h2::Reason::REFUSED_STREAM)
}

impl Drop for Answered {
    fn drop(&mut self) {
        if !self.done {
            self.conn.early_reset();
        }
    }
}

/// The client socket, noting for the send timer whether writes make progress.
/// hyper has no write timeout of its own.
///
/// On cleartext HTTP/1.1 it also lets hyper go between requests: hyper keeps a
/// read buffer (8 to 16 KiB), a write buffer (8 KiB) and room for a request's
/// future for as long as its connection lives, so an idle keep-alive
/// connection would cost some 25 KiB. Once every request handed to hyper has
/// its response written and flushed, and the client has sent nothing more,
/// the socket tells hyper the client closed: at that message boundary hyper
/// ends the connection cleanly (it shuts down nothing: see `poll_shutdown`),
/// the driver takes the socket back and waits for the next request on the
/// bare socket. See [`Release`].
struct ProgressIo {
    stream: ClientStream,
    conn: Arc<ConnState>,
    /// Bytes read before hyper took over (the first bytes, read to tell
    /// HTTP/1.1 from HTTP/2), handed to hyper before the socket's.
    prefix: Option<Bytes>,
    /// Cleartext HTTP/1.1 only.
    release: Option<Release>,
}

/// When a [`ProgressIo`] may let hyper go: every condition below, checked when
/// hyper asks for more bytes.
///
/// - hyper was handed a request since it took the socket, and every request's
///   response body has been dropped by hyper (`ConnState::exchanges` is 0):
///   hyper drops a body once its last bytes are in its write buffer;
/// - a flush went through since the last exchange ended, with no write after
///   it: hyper flushes the socket only once its write buffer is empty, so no
///   response byte is left in it;
/// - the last request came without a body: hyper may read a request's body
///   after its response (an upstream may answer before the upload ends), and
///   an end of input in the middle of a body would let hyper end the
///   connection as cleanly as at a boundary (it gives up on the body and
///   closes its read side), so that the rest of the body would be read as a
///   request. hyper reads the next request's head only once the body before it
///   has been read whole: after that request, hyper may go again;
/// - no response switched protocols (the socket is the tunnel's then), and the
///   connection is not closing;
/// - the socket has nothing to read: a request already there (pipelined, or
///   sent as soon as the response arrived) is served by the same hyper.
///
/// hyper ends the connection cleanly (`Ok`) only when the end of input comes
/// at a message boundary with nothing buffered. Anywhere else (a pipelined
/// request whose head came in part, a request body the service did not read)
/// it fails, and the driver closes the connection: the client gets no answer
/// to the part it sent, and like any client whose connection closes with a
/// request outstanding it may retry it (RFC 9112, section 9.3.2). The next
/// request never starts on bytes whose framing hyper had begun to read.
#[derive(Debug)]
struct Release {
    /// `ConnState::requests` when hyper took the socket.
    requests_before: u64,
    /// `ConnState::exchanges_ended` at the last flush with no write after it;
    /// `u64::MAX` after a write.
    flushed_after: u64,
    /// hyper was told the client closed.
    released: bool,
}

impl Drop for ProgressIo {
    fn drop(&mut self) {
        if self.conn.abort.load(Relaxed) {
            // SO_LINGER 0: close with a reset, so that the kernel drops the
            // unsent bytes (the client takes none of them) instead of keeping the
            // socket and its buffers while it retries.
            let _ = socket2::SockRef::from(self.stream.tcp()).set_linger(Some(Duration::ZERO));
        }
    }
}

impl ProgressIo {
    fn new(stream: ClientStream, conn: Arc<ConnState>) -> Self {
        ProgressIo {
            stream,
            conn,
            prefix: None,
            release: None,
        }
    }

    fn note<T>(&self, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match &poll {
            Poll::Pending => self.conn.write_blocked(),
            Poll::Ready(_) => self.conn.wrote(),
        }
        poll
    }

    fn wrote_to_hyper(&mut self) {
        if let Some(release) = &mut self.release {
            release.flushed_after = u64::MAX;
        }
    }

    /// Whether hyper may be let go now (see [`Release`]), the socket aside.
    fn at_boundary(&self) -> bool {
        let Some(release) = &self.release else {
            return false;
        };
        let conn = &self.conn;
        !release.released
            && conn.requests.load(Relaxed) > release.requests_before
            && conn.exchanges.load(Relaxed) == 0
            && release.flushed_after == conn.exchanges_ended.load(Relaxed)
            && !conn.body_pending.load(Relaxed)
            && !conn.upgraded.load(Relaxed)
            && !conn.closing.load(Relaxed)
            && !conn.close_requested.load(Relaxed)
    }

    /// When hyper may be let go: [`RELEASE_AFTER_MS`] after the last
    /// response ended.
    fn release_due(&self) -> u64 {
        let last = self.conn.last_activity.load(Relaxed).max(1);
        last.saturating_add(RELEASE_AFTER_MS)
    }

    /// Hands the socket to a new hyper connection, which may be let go.
    fn arm(&mut self) {
        self.release = Some(Release {
            requests_before: self.conn.requests.load(Relaxed),
            flushed_after: u64::MAX,
            released: false,
        });
    }

    /// Notes bytes read (HTTP/1.1 on cleartext) while no request is in flight
    /// and every response is done: the next request's head starts, and must
    /// be whole within the header read timeout (see
    /// [`ConnState::idle_check`]). Bytes of a request body still coming after
    /// its response count too: that body is then held to the same timeout.
    fn head_bytes(&self, read: bool) {
        let conn = &self.conn;
        if read
            && self.release.is_some()
            && conn.head_since.load(Relaxed) == 0
            && conn.active.load(Relaxed) == 0
            && conn.exchanges.load(Relaxed) == 0
        {
            conn.head_since.store(now_ms(), Relaxed);
        }
    }

    /// Whether hyper was told the client closed.
    fn released(&self) -> bool {
        self.release.as_ref().is_some_and(|r| r.released)
    }
}

impl AsyncRead for ProgressIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(prefix) = &mut self.prefix {
            let n = prefix.len().min(buf.remaining());
            buf.put_slice(&prefix.split_to(n));
            if !prefix.is_empty() {
                return Poll::Ready(Ok(()));
            }
            self.prefix = None;
            // The rest of the head with the prefix, in the same read: hyper
            // reserves a read buffer of 8 KiB, and a read that leaves the head
            // incomplete makes it parse again and reserve 8 KiB more, which
            // grows the buffer to 16 KiB by copying it. (A busy connection
            // ends up with 16 KiB either way: while a request is in flight
            // hyper reads ahead to notice the client leaving, and the head,
            // whose header values are slices of the first buffer, pins it, so
            // the read ahead takes a second one.) Nothing there yet (or an
            // error, which the next read meets again as an end of input): the
            // prefix alone.
            if buf.remaining() > 0 {
                let _ = Pin::new(&mut self.stream).poll_read(cx, buf);
            }
            return Poll::Ready(Ok(()));
        }
        if self.released() {
            return Poll::Ready(Ok(()));
        }
        let filled = buf.filled().len();
        if self.at_boundary() {
            let poll = Pin::new(&mut self.stream).poll_read(cx, buf);
            if !poll.is_pending() {
                self.head_bytes(buf.filled().len() > filled);
                return poll;
            }
            let due = self.release_due();
            if now_ms() < due {
                // Not idle long enough: the driver polls hyper again then.
                self.conn.release_due.store(due, Relaxed);
                return Poll::Pending;
            }
            // Nothing to read: the end of input, as far as this hyper
            // connection knows.
            if let Some(release) = &mut self.release {
                release.released = true;
            }
            self.conn.released.store(true, Relaxed);
            return Poll::Ready(Ok(()));
        }
        let poll = Pin::new(&mut self.stream).poll_read(cx, buf);
        self.head_bytes(buf.filled().len() > filled);
        poll
    }
}

impl AsyncWrite for ProgressIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.wrote_to_hyper();
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.note(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.wrote_to_hyper();
        let poll = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.note(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_flush(cx);
        if let Poll::Ready(Ok(())) = poll {
            let ended = self.conn.exchanges_ended.load(Relaxed);
            if let Some(release) = &mut self.release {
                release.flushed_after = ended;
            }
            if self.at_boundary() {
                // hyper may not ask for bytes again before the client sends
                // some: the driver polls it once more when it is due.
                self.conn.release_due.store(self.release_due(), Relaxed);
            }
        }
        poll
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.released() {
            // hyper ends the connection it was told the client closed: the
            // socket stays open for the client's next request.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

tokio::task_local! {
    /// The HTTP/2 stream whose task is running: set by [`StreamExec`] around
    /// each poll, read by the request to watch its response body.
    static STREAM: Arc<StreamRecord>;
}

/// When a stream's response body last handed over data that hyper has not
/// sent yet.
#[derive(Debug, Default)]
struct StreamRecord {
    /// [`now_ms`] when the body last returned data; 0 once hyper asks for more
    /// (so it sent the previous data, or has room for it).
    pending_since: AtomicU64,
}

/// Spawns hyper's HTTP/2 stream tasks, each under a send timer: a stream whose
/// response data waits (for flow-control window from the client) longer than
/// `send_timeout` is dropped, which h2 turns into `RST_STREAM(CANCEL)`. hyper's
/// h2 server exposes no per-stream window; what it shows is that it stops
/// asking the body for data while it has none to send it with.
#[derive(Debug, Clone)]
pub(crate) struct StreamExec {
    send_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl StreamExec {
    pub(crate) fn new(send_timeout: Duration, metrics: Arc<Metrics>) -> Self {
        StreamExec {
            send_timeout,
            metrics,
        }
    }
}

impl<F> hyper::rt::Executor<F> for StreamExec
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, future: F) {
        tokio::spawn(StreamTask {
            inner: future,
            record: Arc::default(),
            timer: None,
            send_timeout: self.send_timeout,
            metrics: self.metrics.clone(),
        });
    }
}

pin_project_lite::pin_project! {
    struct StreamTask<F> {
        #[pin]
        inner: F,
        record: Arc<StreamRecord>,
        timer: Option<Pin<Box<Sleep>>>,
        send_timeout: Duration,
        metrics: Arc<Metrics>,
    }
}

impl<F: Future<Output = ()>> Future for StreamTask<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let mut inner = this.inner;
        if STREAM
            .sync_scope(this.record.clone(), || inner.as_mut().poll(cx))
            .is_ready()
        {
            return Poll::Ready(());
        }
        let since = this.record.pending_since.load(Relaxed);
        if since == 0 {
            // Nothing waits to be sent (or the body waits for the upstream).
            *this.timer = None;
            return Poll::Pending;
        }
        let stalled = Duration::from_millis(now_ms().saturating_sub(since));
        let Some(left) = this
            .send_timeout
            .checked_sub(stalled)
            .filter(|l| !l.is_zero())
        else {
            tracing::debug!(
                stalled = ?stalled,
                "HTTP/2 stream reset: the client gave no window for its response within send_timeout"
            );
            this.metrics.client_closed(ClientClose::StreamSendTimeout);
            return Poll::Ready(());
        };
        let deadline = tokio::time::Instant::now() + left;
        match this.timer {
            Some(timer) if timer.deadline() == deadline => {}
            Some(timer) => timer.as_mut().reset(deadline),
            None => *this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        if let Some(timer) = this.timer {
            if timer.as_mut().poll(cx).is_ready() {
                // Due already: poll again right away, to reset.
                cx.waker().wake_by_ref();
            }
        }
        Poll::Pending
    }
}

pin_project_lite::pin_project! {
    /// A response body as hyper sees it: notes in the stream's record (HTTP/2
    /// only) when it hands over data and when hyper asks for more.
    pub(crate) struct Watched<B> {
        #[pin]
        inner: B,
        record: Option<Arc<StreamRecord>>,
        exchange: Option<Exchange>,
    }
}

impl<B> Body for Watched<B>
where
    B: Body<Data = Bytes, Error = BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let Some(record) = this.record else {
            return this.inner.poll_frame(cx);
        };
        record.pending_since.store(0, Relaxed);
        let poll = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &poll {
            if frame.data_ref().is_some_and(|d| !d.is_empty()) {
                record.pending_since.store(now_ms(), Relaxed);
            }
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Which of a connection's rare events (shutdown, forced close, the timers, a
/// close requested by a request) woke its task: their futures are polled with
/// this waker, which notes that one fired before waking the task.
#[derive(Debug)]
struct Signals {
    /// Set when a signal's waker fired; set at first so that every signal is
    /// polled once, to register.
    fired: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Default for Signals {
    fn default() -> Self {
        Signals {
            fired: AtomicBool::new(true),
            task: Mutex::new(None),
        }
    }
}

impl Signals {
    fn set_task(&self, waker: Waker) {
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(waker);
    }

    fn fire(&self) {
        self.fired.store(true, Relaxed);
    }

    /// Whether a signal fired since the last call.
    fn take(&self) -> bool {
        self.fired.swap(false, Relaxed)
    }
}

impl Wake for Signals {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fire();
        if let Some(task) = &*self.task.lock().unwrap_or_else(PoisonError::into_inner) {
            task.wake_by_ref();
        }
    }
}

async fn stopped(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Why a connection is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    Open,
    /// Process shutdown: drained within `shutdown_timeout` by the accept loop.
    Shutdown,
    /// Idle, request cap or abuse: dropped at its own deadline.
    Deadline,
}

/// How a hyper connection's driver ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The connection ended, or was forced closed at shutdown.
    Closed,
    /// Response bytes waited `send_timeout` for the client.
    SendTimeout,
    /// Closing, the client kept the connection past its deadline.
    CloseDeadline,
    /// HTTP/1.1: hyper was let go at a message boundary (see [`Release`]); the
    /// socket waits for the client's next request.
    Released,
}

/// The HTTP/2 connection preface (RFC 9113, section 3.4): how a cleartext
/// client with prior knowledge starts.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves one client connection until it ends, times out, or is forced closed.
///
/// A function returning an `async` block rather than an `async fn`: an
/// `async fn` keeps its arguments twice in its future (as passed, and moved
/// into locals), and this future lives as long as its connection.
///
/// `hold` is let go once the connection has ended and its socket is closed
/// (its place under `max_connections`, its hold on the drain).
#[allow(clippy::manual_async_fn)] // on purpose: see above
pub(crate) fn serve_connection<H: Send + 'static>(
    shared: Arc<Shared>,
    stream: TcpStream,
    remote: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
    forced: watch::Receiver<bool>,
    hold: H,
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        let _ = stream.set_nodelay(true);
        shared.metrics.connection_opened();
        let snapshot = shared.snapshot.load_full();
        let limits = snapshot.limits;
        let state = Arc::new(ConnState::new(limits.max_requests, shared.metrics.clone()));
        // The TLS handshake counts against the header read timeout, as the request
        // head that follows it does: a client that stalls either is dropped then.
        let opened = tokio::time::Instant::now();
        let first_deadline = opened + limits.header_timeout;
        let io = match &shared.tls {
            None => ClientStream::Plain(stream),
            // Boxed: the handshake's state (about 2.9 KiB) would otherwise stay in
            // the task of every connection, cleartext or not, for its whole life.
            Some(tls) => {
                match Box::pin(tls.accept(stream, limits.header_timeout, shutdown.clone())).await {
                    Some(stream) => ClientStream::Tls(Box::new(stream)),
                    None => {
                        shared.metrics.connection_closed();
                        return;
                    }
                }
            }
        };
        // Made in place: a `ClientStream` bound first would stay in the task too.
        let mut io = ProgressIo::new(io, state.clone());
        let ctx = Arc::new(proxy::ConnCtx {
            shared: shared.clone(),
            conn: state.clone(),
            remote,
            client_ip: HeaderValue::from_str(&remote.ip().to_string())
                .unwrap_or(HeaderValue::from_static("unknown")),
            https: io.stream.is_tls(),
        });
        let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let admission = ctx.conn.admit();
            let exchange = Exchange::open(&ctx.conn);
            ctx.conn
                .body_pending
                .store(!request.body().is_end_stream(), Relaxed);
            let answered = Answered {
                conn: ctx.conn.clone(),
                done: admission == Admission::Refused,
            };
            let last_h1 = admission == Admission::Last && request.version() < Version::HTTP_2;
            let ctx = ctx.clone();
            async move {
                if admission == Admission::Refused {
                    // RST_STREAM(REFUSED_STREAM) on HTTP/2: the request was not
                    // processed and the client may retry it elsewhere (RFC 9113,
                    // section 8.7).
                    drop(request);
                    return Err(refused());
                }
                let mut response = proxy::handle(ctx.clone(), request).await;
                answered.finish();
                if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                    // The socket is the tunnel's from now on.
                    ctx.conn.upgraded.store(true, Relaxed);
                } else if last_h1 {
                    // The client learns that this connection ends after this
                    // response, before it sends another request on it (RFC 9112,
                    // section 9.6); hyper closes it after the response.
                    response
                        .headers_mut()
                        .insert(CONNECTION, HeaderValue::from_static("close"));
                }
                let record = STREAM.try_with(Arc::clone).ok();
                Ok::<_, h2::Error>(response.map(|inner| Watched {
                    inner,
                    record,
                    exchange: Some(exchange),
                }))
            }
        });
        let http1 = match &io.stream {
            // HTTP/2 over TLS is told by the same preface, read by hyper.
            ClientStream::Tls(_) => false,
            ClientStream::Plain(_) => {
                match first_bytes(&mut io, first_deadline, &mut shutdown).await {
                    Some(http1) => http1,
                    None => {
                        shared.metrics.connection_closed();
                        return;
                    }
                }
            }
        };
        let outcome = if http1 {
            // One hyper connection per stretch of requests, none while idle.
            let mut deadline = first_deadline;
            loop {
                io.arm();
                state.released.store(false, Relaxed);
                // Boxed: hyper's connection and the driver's timers exist while
                // requests come, not in the task of an idle connection.
                // hyper ends cleanly with nothing buffered; were it otherwise, the
                // bytes it read would be the next request's first. An empty buffer
                // goes now: it still holds hyper's read buffer. (Matched, not bound
                // to a name: what came back is not kept in the task while it waits.)
                io = match Box::pin(async {
                    let mut conn = snapshot
                        .http1
                        .serve_connection(TokioIo::new(io), service.clone())
                        .with_upgrades();
                    let ended = drive(
                        Pin::new(&mut conn),
                        |conn| conn.graceful_shutdown(),
                        &state,
                        limits,
                        deadline,
                        shutdown.clone(),
                        forced.clone(),
                        remote,
                    )
                    .await;
                    let back = match ended {
                        Ended::Released => conn
                            .into_parts()
                            .map(|parts| (parts.io.into_inner(), parts.read_buf)),
                        _ => None,
                    };
                    (ended, back)
                })
                .await
                {
                    (_, Some((mut back, buffered))) => {
                        back.prefix = (!buffered.is_empty()).then_some(buffered);
                        back
                    }
                    (ended, None) => break ended,
                };
                if io.prefix.is_none()
                    && !wait_for_request(&io, &state, limits.idle_timeout, &mut shutdown).await
                {
                    break Ended::Closed;
                }
                // The next request's head has `header_read_timeout` from now
                // (hyper's own timer is off on this path: it cost a timer per
                // request); the idle timer starts over.
                state.touch();
                state.head_since.store(now_ms(), Relaxed);
                deadline = tokio::time::Instant::now() + limits.header_timeout;
            }
        } else {
            Box::pin(async {
                let conn = snapshot
                    .http
                    .serve_connection_with_upgrades(TokioIo::new(io), service);
                tokio::pin!(conn);
                drive(
                    conn.as_mut(),
                    |conn| conn.graceful_shutdown(),
                    &state,
                    limits,
                    first_deadline,
                    shutdown,
                    forced,
                    remote,
                )
                .await
            })
            .await
        };
        match outcome {
            Ended::Closed | Ended::Released => {}
            Ended::SendTimeout => {
                tracing::debug!(%remote, "client connection reset: it took no response bytes within send_timeout");
                shared.metrics.client_closed(ClientClose::SendTimeout);
                state.abort.store(true, Relaxed);
            }
            Ended::CloseDeadline => {
                tracing::debug!(%remote, "client connection closed: it did not end after GOAWAY");
                shared.metrics.client_closed(ClientClose::CloseDeadline);
            }
        }
        shared.metrics.connection_closed();
        // The socket is closed by now (it went with hyper's connection, which
        // has ended); on the early returns above, `hold` goes once the block
        // has returned and dropped its socket.
        drop(hold);
    }
}

/// Reads a cleartext connection's first bytes into `io.prefix`, as many as it
/// takes to tell HTTP/2 with prior knowledge (the 24-byte preface) from
/// HTTP/1.1 (any other first bytes): `Some(true)` for HTTP/1.1. `None` when the
/// client closes, sends nothing before `deadline` (the header read timeout),
/// or the gateway shuts down first.
async fn first_bytes(
    io: &mut ProgressIo,
    deadline: tokio::time::Instant,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<bool> {
    let ClientStream::Plain(tcp) = &mut io.stream else {
        return Some(false);
    };
    // Polled by hand rather than with `select!`, and without the forced close
    // (which comes only after shutdown): this state is part of every
    // connection's task, whose size is memory per connection.
    let timer = tokio::time::sleep_until(deadline);
    let stop = shutdown.wait_for(|stop| *stop);
    let (mut timer, mut stop) = (std::pin::pin!(timer), std::pin::pin!(stop));
    let mut buf = [0u8; H2_PREFACE.len()];
    let mut n = 0;
    let http1 = loop {
        let read = std::future::poll_fn(|cx| {
            if stop.as_mut().poll(cx).is_ready() || timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            let mut unread = ReadBuf::new(&mut buf[n..]);
            Pin::new(&mut *tcp)
                .poll_read(cx, &mut unread)
                .map(|read| Some(read.map(|()| unread.filled().len())))
        })
        .await?;
        match read {
            Ok(0) | Err(_) => return None,
            Ok(read) => n += read,
        }
        if buf[..n] != H2_PREFACE[..n] {
            break true;
        }
        if n == buf.len() {
            break false;
        }
    };
    io.prefix = Some(Bytes::copy_from_slice(&buf[..n]));
    Some(http1)
}

/// Waits, hyper-less, for an idle HTTP/1.1 connection's next request: `true`
/// once the socket has bytes (or an end) to read; `false` at `idle_timeout`
/// after the last request, or at shutdown (an idle connection has nothing to
/// drain; the forced close comes only after shutdown).
///
/// This is where an idle connection's task waits, so its size is what every
/// idle connection costs: a readiness poll of the socket (no future to keep),
/// one timer and one watch, about 260 bytes, where a `select!` over futures
/// took 550.
async fn wait_for_request(
    io: &ProgressIo,
    state: &ConnState,
    idle_timeout: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let idle_for = state.idle_for().map_or(Duration::ZERO, |(idle, _)| idle);
    let left = idle_timeout.saturating_sub(idle_for);
    let timer = tokio::time::sleep(left);
    let stop = shutdown.wait_for(|stop| *stop);
    let (mut timer, mut stop) = (std::pin::pin!(timer), std::pin::pin!(stop));
    std::future::poll_fn(|cx| {
        if stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(false);
        }
        if let Poll::Ready(ready) = io.stream.tcp().poll_read_ready(cx) {
            return Poll::Ready(ready.is_ok());
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(false);
        }
        Poll::Pending
    })
    .await
}

/// Drives one hyper connection until it ends, times out, is forced closed,
/// or (HTTP/1.1) lets the socket go at a message boundary.
#[allow(clippy::too_many_arguments)]
async fn drive<C, E>(
    mut conn: Pin<&mut C>,
    graceful_shutdown: impl Fn(Pin<&mut C>),
    state: &ConnState,
    limits: Limits,
    idle_deadline: tokio::time::Instant,
    shutdown: watch::Receiver<bool>,
    forced: watch::Receiver<bool>,
    remote: SocketAddr,
) -> Ended
where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    // Shutdown, forced close and the timers rarely fire, while the connection
    // wakes this task several times per request: they are polled only when
    // their own waker fired, not on every wake-up of the task.
    let mut forced = std::pin::pin!(stopped(forced));
    let mut stop = std::pin::pin!(stopped(shutdown));
    let mut idle = std::pin::pin!(tokio::time::sleep_until(idle_deadline));
    let mut send = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
    // The `write_blocked_since` the send timer is set for; 0: not set.
    let mut send_for = 0u64;
    let mut close_by = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
    // HTTP/1.1: when hyper is to be polled to let it go; 0: not set.
    let mut release = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
    let mut release_for = 0u64;
    let signals = state.signals.clone();
    // Every signal is polled once, to register.
    signals.fire();
    let signals_waker = Waker::from(signals.clone());
    let mut task_waker: Option<Waker> = None;
    let mut closing = Closing::Open;
    std::future::poll_fn(|cx| {
        if !task_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            task_waker = Some(cx.waker().clone());
            signals.set_task(cx.waker().clone());
        }
        let mut signal_cx = Context::from_waker(&signals_waker);
        while signals.take() {
            if forced.as_mut().poll(&mut signal_cx).is_ready() {
                return Poll::Ready(Ended::Closed);
            }
            if release_for != 0 && release.as_mut().poll(&mut signal_cx).is_ready() {
                // Due, or moved later by the requests since: hyper is polled
                // below, and the timer set again if it is still not due.
                release_for = 0;
            }
            if send_for != 0 && send.as_mut().poll(&mut signal_cx).is_ready() {
                if state.write_blocked_since.load(Relaxed) == send_for {
                    return Poll::Ready(Ended::SendTimeout);
                }
                send_for = 0;
            }
            if closing == Closing::Deadline && close_by.as_mut().poll(&mut signal_cx).is_ready() {
                if state.active.load(Relaxed) == 0 {
                    return Poll::Ready(Ended::CloseDeadline);
                }
                // Requests still in flight: they progress (the send timer
                // watches them) or go; look again later.
                close_by
                    .as_mut()
                    .reset(tokio::time::Instant::now() + limits.close_grace());
                signals.fire();
                continue;
            }
            if closing != Closing::Open {
                continue;
            }
            let mut close = state.close_requested.load(Relaxed);
            if stop.as_mut().poll(&mut signal_cx).is_ready() {
                // Finish the request in flight (HTTP/1.1) or the open streams
                // (HTTP/2, after GOAWAY), then close.
                closing = Closing::Shutdown;
                graceful_shutdown(conn.as_mut());
                continue;
            }
            if idle.as_mut().poll(&mut signal_cx).is_ready() {
                let (now, at) = (tokio::time::Instant::now(), now_ms());
                match state.idle_check(&limits, at) {
                    IdleCheck::Close => close = true,
                    IdleCheck::Until(due) => {
                        idle.as_mut()
                            .reset(now + Duration::from_millis(due.saturating_sub(at)));
                    }
                    IdleCheck::Busy => idle.as_mut().reset(now + limits.idle_timeout),
                }
                // Poll the timer again, for its new deadline.
                signals.fire();
            }
            if close {
                // GOAWAY (HTTP/2) or close when idle (HTTP/1.1); new streams
                // are refused from now on, and the connection is dropped at
                // `close_by` whatever the client does (it may never answer the
                // PING that h2 sends with its first GOAWAY).
                closing = Closing::Deadline;
                state.closing.store(true, Relaxed);
                graceful_shutdown(conn.as_mut());
                close_by
                    .as_mut()
                    .reset(tokio::time::Instant::now() + limits.close_grace());
                signals.fire();
            }
        }
        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
            match result {
                Err(err) => {
                    tracing::debug!(%remote, error = %err, "client connection ended with an error");
                }
                Ok(()) if closing == Closing::Open && state.released.load(Relaxed) => {
                    return Poll::Ready(Ended::Released);
                }
                Ok(()) => {}
            }
            return Poll::Ready(Ended::Closed);
        }
        let due = state.release_due.swap(0, Relaxed);
        if due != 0 && release_for == 0 {
            release_for = due;
            let left = Duration::from_millis(due.saturating_sub(now_ms()));
            release.as_mut().reset(tokio::time::Instant::now() + left);
            if release.as_mut().poll(&mut signal_cx).is_ready() {
                signals.wake_by_ref();
            }
        }
        // Writes to the client blocked: the send timer runs from then.
        let blocked = state.write_blocked_since.load(Relaxed);
        if blocked != send_for {
            send_for = blocked;
            if blocked != 0 {
                let stalled = Duration::from_millis(now_ms().saturating_sub(blocked));
                let left = limits.send_timeout.saturating_sub(stalled);
                send.as_mut().reset(tokio::time::Instant::now() + left);
                if send.as_mut().poll(&mut signal_cx).is_ready() {
                    signals.wake_by_ref();
                }
            }
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// The idle timer closes a connection `header_timeout` after it opened
    /// when no request came, `header_timeout` after a request head started
    /// (even when `idle_timeout` is longer: a client trickling a head does not
    /// get the idle time), and `idle_timeout` after the last request; in
    /// between it looks again no later than a head starting now would be due.
    #[test]
    fn the_idle_timer_holds_a_head_to_the_header_timeout_and_an_idle_connection_to_the_idle_timeout()
     {
        let limits = Limits {
            idle_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(30),
            max_requests: 100,
        };
        let state = ConnState::new(100, Arc::new(Metrics::default()));
        let created = state.created;
        // No request yet.
        assert_eq!(
            state.idle_check(&limits, created + 29_999),
            IdleCheck::Until(created + 30_000)
        );
        assert_eq!(
            state.idle_check(&limits, created + 30_000),
            IdleCheck::Close
        );
        // A request ended at `last`; no head since.
        let last = created + 10_000;
        state.last_activity.store(last, Relaxed);
        assert_eq!(
            state.idle_check(&limits, last + 1),
            IdleCheck::Until(last + 30_001)
        );
        assert_eq!(
            state.idle_check(&limits, last + 59_999),
            IdleCheck::Until(last + 60_000)
        );
        assert_eq!(state.idle_check(&limits, last + 60_000), IdleCheck::Close);
        // A head started 10 s after it: closed 30 s later, before the idle timeout.
        state.head_since.store(last + 10_000, Relaxed);
        assert_eq!(
            state.idle_check(&limits, last + 39_999),
            IdleCheck::Until(last + 40_000)
        );
        assert_eq!(state.idle_check(&limits, last + 40_000), IdleCheck::Close);
        // Its request came: the head is whole, and in flight nothing is timed here.
        assert_eq!(state.admit(), Admission::Served);
        assert_eq!(state.head_since.load(Relaxed), 0);
        state.active.store(1, Relaxed);
        assert_eq!(state.idle_check(&limits, last + 40_000), IdleCheck::Busy);
    }

    /// The first bytes read to tell HTTP/1.1 from HTTP/2 come back to hyper
    /// with the rest of what the client sent, in one read: a first read of
    /// only those bytes leaves the head incomplete, and hyper then doubles
    /// its read buffer to 16 KiB for the connection's whole life.
    #[tokio::test]
    async fn the_prefix_comes_back_with_the_bytes_behind_it_in_one_read() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let head = b"GET /api/items HTTP/1.1\r\nhost: example.com\r\n\r\n";
        client.write_all(head).await.unwrap();
        let mut io = ProgressIo::new(
            ClientStream::Plain(server),
            Arc::new(ConnState::new(100, Arc::new(Metrics::default()))),
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let (never, _) = watch::channel(false);
        let mut shutdown = never.subscribe();
        assert_eq!(
            first_bytes(&mut io, deadline, &mut shutdown).await,
            Some(true)
        );
        let n = io.prefix.as_ref().map_or(0, Bytes::len);
        assert!(n > 0 && n < head.len());
        // The rest is on the socket by now: wait for it, without reading.
        if let ClientStream::Plain(tcp) = &io.stream {
            tcp.readable().await.unwrap();
        }
        let mut buf = vec![0u8; 8192];
        let read = io.read(&mut buf).await.unwrap();
        assert_eq!(
            &buf[..read],
            head,
            "the prefix alone ({n} bytes) came first"
        );
        drop(never);
    }
}
