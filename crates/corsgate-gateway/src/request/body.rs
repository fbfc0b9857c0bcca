//! Body types: what the gateway streams to clients and to upstreams.
//!
//! Both stream frame by frame; nothing here collects a whole body. The response
//! body also carries the request's in-flight guard, so that a request counts as
//! in flight until its body has been sent.

use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::listen::conn::InFlight;
use crate::observe::access_log::AccessRecord;
use crate::upstream::pool::{Checkout, Progress};

pub(crate) use crate::BoxError;
use crate::after;

pin_project_lite::pin_project! {
    /// A response body: empty, a fixed text, or the upstream's body streamed.
    pub(crate) struct ResponseBody {
        #[pin]
        kind: Kind,
        guard: Option<InFlight>,
        // The upstream connection the body comes from: back to its pool when
        // the body has been read to its end, closed otherwise.
        checkout: Option<Checkout<RequestBody>>,
        // The request's access-log line, written when the body goes.
        access: Option<Box<AccessRecord>>,
        // Body bytes handed to the connection so far.
        sent: u64,
    }

    impl PinnedDrop for ResponseBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let read_whole = match this.kind.project() {
                KindProj::Upstream { inner, done, .. } => *done || inner.is_end_stream(),
                KindProj::Full { data } => data.is_none(),
            };
            if let Some(checkout) = this.checkout.take() {
                if read_whole {
                    checkout.release();
                } else {
                    checkout.abandon();
                }
            }
            if let Some(access) = this.access.take() {
                access.write(*this.sent, read_whole);
            }
        }
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind {
        Full { data: Option<Bytes> },
        Upstream {
            #[pin]
            inner: Incoming,
            done: bool,
            // upstream_body_timeout, between two reads of the upstream's body.
            idle: Inactivity,
        },
    }
}

impl ResponseBody {
    /// No body.
    pub(crate) fn empty() -> Self {
        Self::full(Bytes::new())
    }

    /// A body known in full.
    pub(crate) fn full(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        ResponseBody {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
            },
            guard: None,
            checkout: None,
            access: None,
            sent: 0,
        }
    }

    /// The upstream's body, streamed as it arrives; `checkout` is the
    /// connection it comes from. A body that stalls for `timeout` between two
    /// reads fails: the client sees it cut (HTTP/1.1: the connection closes;
    /// HTTP/2: the stream is reset), and the upstream connection is closed.
    pub(crate) fn upstream(
        inner: Incoming,
        checkout: Option<Checkout<RequestBody>>,
        timeout: Duration,
    ) -> Self {
        ResponseBody {
            kind: Kind::Upstream {
                inner,
                done: false,
                idle: Inactivity::new(timeout),
            },
            guard: None,
            checkout,
            access: None,
            sent: 0,
        }
    }

    pub(crate) fn set_guard(&mut self, guard: InFlight) {
        self.guard = Some(guard);
    }

    /// The access-log line to write once this body is done.
    pub(crate) fn set_access(&mut self, record: Box<AccessRecord>) {
        self.access = Some(record);
    }
}

impl Default for ResponseBody {
    fn default() -> Self {
        Self::empty()
    }
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResponseBody")
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| {
                *this.sent += d.len() as u64;
                Ok(Frame::data(d))
            })),
            KindProj::Upstream { inner, done, idle } => match inner.poll_frame(cx) {
                Poll::Ready(frame) => {
                    *done |= frame.is_none();
                    idle.progressed();
                    if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref))
                    {
                        *this.sent += data.map_or(0, |d| d.len() as u64);
                    }
                    Poll::Ready(frame.map(|f| f.map_err(Into::into)))
                }
                Poll::Pending if idle.expired(cx) => {
                    let upstream = this.checkout.as_ref().map(|c| c.pool());
                    if let Some(pool) = upstream {
                        pool.metrics().upstream_body_timed_out();
                    }
                    tracing::warn!(
                        upstream = upstream.map_or("", |p| p.authority().as_str()),
                        timeout = ?idle.timeout,
                        "upstream response body stalled for upstream_body_timeout; response cut"
                    );
                    Poll::Ready(Some(Err(Box::new(UpstreamBodyTimeout))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { data } => data.is_none(),
            Kind::Upstream { inner, done, .. } => *done || inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}

/// A deadline on the time a body waits between two frames: armed the first
/// time the body has to wait, pushed back lazily (one clock read per frame, no
/// timer update), so that a body that never waits costs no timer and no clock
/// read at all.
struct Inactivity {
    timeout: Duration,
    armed: Option<Pin<Box<Armed>>>,
}

pin_project_lite::pin_project! {
    struct Armed {
        #[pin]
        timer: tokio::time::Sleep,
        // When the last frame came (or the wait began).
        last: tokio::time::Instant,
    }
}

impl Inactivity {
    fn new(timeout: Duration) -> Self {
        Inactivity {
            timeout,
            armed: None,
        }
    }

    /// A frame came.
    fn progressed(&mut self) {
        if let Some(armed) = &mut self.armed {
            *armed.as_mut().project().last = tokio::time::Instant::now();
        }
    }

    /// The body has to wait: whether it has waited `timeout` since its last
    /// frame (else the timer is registered to wake the task when it might).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let timeout = self.timeout;
        let armed = self.armed.get_or_insert_with(|| {
            let last = tokio::time::Instant::now();
            Box::pin(Armed {
                timer: tokio::time::sleep_until(after(last, timeout)),
                last,
            })
        });
        let armed = armed.as_mut().project();
        let (mut timer, last) = (armed.timer, armed.last);
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let deadline = after(*last, timeout);
            if deadline <= tokio::time::Instant::now() {
                return true;
            }
            timer.as_mut().reset(deadline);
        }
    }
}

/// The upstream's response body stalled for `upstream_body_timeout`.
#[derive(Debug)]
pub(crate) struct UpstreamBodyTimeout;

impl fmt::Display for UpstreamBodyTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the upstream sent no response body bytes within upstream_body_timeout")
    }
}

impl StdError for UpstreamBodyTimeout {}

/// The client sent no request body bytes for `body_timeout`.
#[derive(Debug)]
pub(crate) struct BodyTimeout;

impl fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the client sent no request body bytes within body_timeout")
    }
}

impl StdError for BodyTimeout {}

/// Reading the client's request body failed (a malformed chunk, a reset
/// stream, a closed connection): the client's fault, not the upstream's.
#[derive(Debug)]
pub(crate) struct ClientBodyError(hyper::Error);

impl fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("reading the client's request body failed")
    }
}

impl StdError for ClientBodyError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.0)
    }
}

/// The request body did not fit in `max_body_bytes`.
#[derive(Debug)]
pub(crate) struct BodyTooLarge;

impl fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request body larger than max_body_bytes")
    }
}

impl StdError for BodyTooLarge {}

/// How much of a refused request body the gateway still reads and throws away, at
/// most, so that the client finishes sending and reads the `413` (closing a socket
/// with unread data makes the kernel reset the connection, and the client may lose
/// the answer with it).
pub(crate) const DISCARD_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// And for how long at most.
pub(crate) const DISCARD_MAX_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads `body` to its end in the background and drops what it reads, bounded by
/// [`DISCARD_MAX_BYTES`] and [`DISCARD_MAX_TIME`]; past either bound the body is
/// dropped and the connection closes.
pub(crate) fn discard(mut body: Incoming) {
    if body.is_end_stream() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let read = async {
            let mut seen = 0u64;
            while let Some(Ok(frame)) = http_body_util::BodyExt::frame(&mut body).await {
                seen += frame.data_ref().map_or(0, |d| d.len() as u64);
                if seen > DISCARD_MAX_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(DISCARD_MAX_TIME, read).await;
    });
}

/// The client's request body on its way upstream, counted against
/// `max_body_bytes`. Past the limit it fails with [`BodyTooLarge`] and hands the
/// rest of the body to [`discard`]. A client that sends nothing for
/// `body_timeout` while the body is awaited fails it with [`BodyTimeout`]: the
/// client's body is abandoned (its connection closes) and so is the upstream
/// connection, also when the response has already been sent.
pub(crate) struct RequestBody {
    inner: Option<Incoming>,
    seen: u64,
    limit: u64,
    idle: Inactivity,
    /// `None` for a body that was empty from the start.
    progress: Option<Arc<Progress>>,
    /// What was read ahead to identify the client (`identify.rs`): sent first.
    /// Boxed: rare, and every request body is moved several times on its way
    /// to the upstream connection (channels, futures).
    prefix: Option<Box<crate::request::identify::ReadAhead>>,
}

impl RequestBody {
    pub(crate) fn new(inner: Incoming, limit: Option<u64>, timeout: Duration) -> Self {
        let progress = (!inner.is_end_stream()).then(|| Arc::new(Progress::new(timeout)));
        RequestBody {
            inner: Some(inner),
            seen: 0,
            limit: limit.unwrap_or(u64::MAX),
            idle: Inactivity::new(timeout),
            progress,
            prefix: None,
        }
    }

    /// Sends `read` (what was read ahead of this body) before the rest.
    pub(crate) fn with_prefix(mut self, read: crate::request::identify::ReadAhead) -> Self {
        if read.is_empty() {
            return self;
        }
        let timeout = self.idle.timeout;
        self.progress
            .get_or_insert_with(|| Arc::new(Progress::new(timeout)));
        self.prefix = Some(Box::new(read));
        self
    }

    /// How far the body has got (`None`: no body), for the pool to tell
    /// whether the connection is done with this request.
    pub(crate) fn progress(&self) -> Option<Arc<Progress>> {
        self.progress.clone()
    }

    fn finished(&self) {
        if let Some(progress) = &self.progress {
            progress.finished();
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(frame) = this.prefix.as_mut().and_then(|read| read.next()) {
            if let Some(data) = frame.data_ref() {
                this.seen += data.len() as u64;
                if let Some(progress) = &this.progress {
                    progress.advanced(this.seen);
                }
            }
            if this.prefix.as_ref().is_some_and(|read| read.is_empty()) {
                this.prefix = None;
                if this.inner.as_ref().is_some_and(Incoming::is_end_stream) {
                    this.finished();
                }
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
        };
        let frame = match Pin::new(&mut *inner).poll_frame(cx) {
            Poll::Ready(frame) => frame,
            Poll::Pending if this.idle.expired(cx) => {
                return Poll::Ready(Some(Err(Box::new(BodyTimeout))));
            }
            Poll::Pending => return Poll::Pending,
        };
        this.idle.progressed();
        match frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if let Some(progress) = &this.progress {
                        progress.advanced(this.seen);
                    }
                    if this.seen > this.limit {
                        if let Some(rest) = this.inner.take() {
                            discard(rest);
                        }
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                }
                if this.inner.as_ref().is_some_and(Incoming::is_end_stream) {
                    this.finished();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(err)) => Poll::Ready(Some(Err(Box::new(ClientBodyError(err))))),
            None => {
                this.finished();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.inner.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let hint = self
            .inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint);
        match &self.prefix {
            Some(read) => read.add_to(hint),
            None => hint,
        }
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestBody")
    }
}
