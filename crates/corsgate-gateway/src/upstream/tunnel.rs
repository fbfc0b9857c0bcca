//! WebSocket tunnels: a client's and an upstream's upgraded connections joined
//! until both sides close or neither sends for `websocket_idle_timeout`.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Joins a client's and an upstream's upgraded connections until both sides
/// have closed, or no byte has passed either way for `idle` (then both close).
pub(crate) async fn tunnel(
    client: hyper::upgrade::Upgraded,
    upstream: hyper::upgrade::Upgraded,
    idle: Duration,
) {
    let start = tokio::time::Instant::now();
    let last = AtomicU64::new(0);
    let mut client = Watched {
        io: TokioIo::new(client),
        start,
        last: &last,
    };
    let mut upstream = Watched {
        io: TokioIo::new(upstream),
        start,
        last: &last,
    };
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::pin!(copy);
    loop {
        let quiet_since = start + Duration::from_millis(last.load(Relaxed));
        let deadline = crate::after(quiet_since, idle);
        if deadline <= tokio::time::Instant::now() {
            tracing::debug!(timeout = ?idle, "WebSocket tunnel idle for websocket_idle_timeout; closed");
            return;
        }
        tokio::select! {
            _ = &mut copy => return,
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// An upgraded connection that notes when bytes last came from it.
struct Watched<'a, T> {
    io: T,
    start: tokio::time::Instant,
    /// Milliseconds since `start`.
    last: &'a AtomicU64,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<'_, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let now = u64::try_from(this.start.elapsed().as_millis()).unwrap_or(u64::MAX);
            this.last.store(now, Relaxed);
        }
        read
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<'_, T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
