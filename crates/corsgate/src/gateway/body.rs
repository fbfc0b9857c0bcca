//! Body types: what the gateway streams to clients and to upstreams.
//!
//! Both stream frame by frame; nothing here collects a whole body. The response
//! body also carries the request's in-flight guard, so that a request counts as
//! in flight until its body has been sent.

use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::metrics::Metrics;
use super::upstream::Checkout;

/// Boxed error of a body: only allocated when something fails.
pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

pin_project_lite::pin_project! {
    /// A response body: empty, a fixed text, or the upstream's body streamed.
    pub(crate) struct ResponseBody {
        #[pin]
        kind: Kind,
        guard: Option<InFlight>,
        // The upstream connection the body comes from: back to its pool when
        // the body has been read to its end, closed otherwise.
        checkout: Option<Checkout>,
    }

    impl PinnedDrop for ResponseBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(checkout) = this.checkout.take() {
                if let KindProj::Upstream { inner, done } = this.kind.project() {
                    if *done || inner.is_end_stream() {
                        checkout.release();
                    }
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind {
        Full { data: Option<Bytes> },
        Upstream { #[pin] inner: Incoming, done: bool },
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
        }
    }

    /// The upstream's body, streamed as it arrives; `checkout` is the
    /// connection it comes from.
    pub(crate) fn upstream(inner: Incoming, checkout: Option<Checkout>) -> Self {
        ResponseBody {
            kind: Kind::Upstream { inner, done: false },
            guard: None,
            checkout,
        }
    }

    pub(crate) fn set_guard(&mut self, guard: InFlight) {
        self.guard = Some(guard);
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
            KindProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            KindProj::Upstream { inner, done } => {
                let frame = std::task::ready!(inner.poll_frame(cx));
                *done |= frame.is_none();
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { data } => data.is_none(),
            Kind::Upstream { inner, done } => *done || inner.is_end_stream(),
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
/// rest of the body to [`discard`].
pub(crate) struct RequestBody {
    inner: Option<Incoming>,
    seen: u64,
    limit: u64,
}

impl RequestBody {
    pub(crate) fn new(inner: Incoming, limit: Option<u64>) -> Self {
        RequestBody {
            inner: Some(inner),
            seen: 0,
            limit: limit.unwrap_or(u64::MAX),
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
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
        };
        match std::task::ready!(Pin::new(inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.limit {
                        if let Some(rest) = this.inner.take() {
                            discard(rest);
                        }
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(err)) => Poll::Ready(Some(Err(err.into()))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Incoming::size_hint)
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestBody")
    }
}

/// What one client connection shares with its requests: how many are in flight
/// and when the last one ended, for the idle timeout.
#[derive(Debug)]
pub(crate) struct ConnState {
    active: AtomicUsize,
    /// Milliseconds since `epoch` at the last request start or end.
    last_activity: AtomicU64,
    epoch: Instant,
}

impl ConnState {
    pub(crate) fn new() -> Self {
        ConnState {
            active: AtomicUsize::new(0),
            last_activity: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity.store(now, Relaxed);
    }

    /// `None` while a request is in flight; otherwise the time since the last
    /// request ended.
    pub(crate) fn idle_for(&self) -> Option<std::time::Duration> {
        if self.active.load(Relaxed) > 0 {
            return None;
        }
        let last = self.last_activity.load(Relaxed);
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        Some(std::time::Duration::from_millis(now.saturating_sub(last)))
    }
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
