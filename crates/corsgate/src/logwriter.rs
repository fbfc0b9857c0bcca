//! Where `corsgate serve`'s log lines go: a bounded buffer that a thread of
//! its own writes to stderr in batches.
//!
//! A log line must never make a request wait, and at one access-log line per
//! request it must not cost the request a thread wake-up either. A queue that
//! hands each line to the writing thread wakes it for nearly every line under
//! load: measured with `perf stat -e context-switches` on preflights, 2.0
//! context switches per request with the access log on against 0.3 with it
//! off. Here a line is appended to a shared buffer under a short lock, and the
//! thread writes the buffer out every [`FLUSH_INTERVAL`], as soon as it holds
//! [`FLUSH_AT`] bytes, or at once for a `warn` or `error` line, so the common
//! line costs a copy and nothing else (nginx's `access_log … buffer= flush=`
//! works the same way). A line into an empty buffer wakes the thread, which
//! then waits out the interval: an idle gateway wakes it for nothing.
//!
//! The buffer holds at most [`MAX_PENDING`] bytes: when stderr stops draining
//! (a stalled log shipper, `| less` paused), further lines are dropped and
//! counted, never waited for. What is buffered is written out when the
//! [`Guard`] is dropped, for at most [`EXIT_WAIT`]: a stderr that does not
//! drain must not keep the process from exiting; a process killed with
//! SIGKILL loses at most the last interval's lines.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How long an `info` line may wait in the buffer.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// Buffered bytes that make the thread write without waiting for the interval.
pub const FLUSH_AT: usize = 64 * 1024;

/// Most bytes waiting to be written; past it, lines are dropped and counted.
/// About 3,000 access-log lines; with the batch the thread is writing, the
/// log holds at most twice this.
pub const MAX_PENDING: usize = 1024 * 1024;

/// Longest the [`Guard`] waits, when dropped, for the buffered lines to be
/// written: past it the process goes on (and exits) without them.
pub const EXIT_WAIT: Duration = Duration::from_secs(2);

/// The handle the `tracing` subscriber writes through (cheap to clone).
#[derive(Clone, Debug)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

/// Writes out what is buffered and stops the thread when dropped.
#[derive(Debug)]
pub struct Guard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    pending: Vec<u8>,
    /// Write without waiting for the interval: a `warn` line, a full buffer,
    /// or the end.
    urgent: bool,
    closed: bool,
    /// The thread has written everything and returned.
    finished: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a byte buffer, which is still
        // good to write.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Starts the writing thread over `out`.
pub fn start<W: Write + Send + 'static>(out: W) -> io::Result<(LogWriter, Guard)> {
    let shared = Arc::new(Shared::default());
    let thread = std::thread::Builder::new()
        .name("corsgate-log".to_owned())
        .spawn({
            let shared = Arc::clone(&shared);
            move || write_loop(&shared, out)
        })?;
    Ok((
        LogWriter {
            shared: Arc::clone(&shared),
        },
        Guard {
            shared,
            thread: Some(thread),
        },
    ))
}

fn write_loop<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        let mut state = shared.lock();
        while state.pending.is_empty() && !state.closed {
            state = shared
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if !state.urgent && !state.closed {
            // Gather what comes during the interval; a warn line, a full
            // buffer or the end cut it short.
            state = shared
                .wake
                .wait_timeout_while(state, FLUSH_INTERVAL, |s| !s.urgent && !s.closed)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        std::mem::swap(&mut state.pending, &mut batch);
        state.urgent = false;
        let closed = state.closed;
        drop(state);
        if !batch.is_empty() {
            if out.write_all(&batch).and_then(|()| out.flush()).is_err() {
                let lines = batch.iter().filter(|&&b| b == b'\n').count();
                shared.dropped.fetch_add(lines as u64, Ordering::Relaxed);
            }
            batch.clear();
            // Keep the capacity of a usual batch, not of the largest burst.
            batch.shrink_to(FLUSH_AT * 2);
        }
        if closed {
            let mut state = shared.lock();
            if state.pending.is_empty() {
                state.finished = true;
                shared.wake.notify_all();
                return;
            }
        }
    }
}

impl LogWriter {
    /// Lines dropped since start: the buffer was full, or stderr failed.
    pub fn dropped_lines(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Appends one whole `info` line (its newline included) made elsewhere:
    /// the gateway's access-log lines, formatted without `tracing`.
    pub fn write_line(&self, line: &[u8]) {
        self.shared.append(line, false);
    }
}

impl Shared {
    /// Appends `bytes` to the buffer, or drops and counts them when it is
    /// full; wakes the thread for the first bytes of a batch, an `urgent`
    /// line (warn, error) or a buffer past [`FLUSH_AT`].
    fn append(&self, bytes: &[u8], urgent: bool) {
        let mut state = self.lock();
        if state.closed || state.pending.len() + bytes.len() > MAX_PENDING {
            drop(state);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let was_empty = state.pending.is_empty();
        let below = state.pending.len() < FLUSH_AT;
        state.pending.extend_from_slice(bytes);
        let full = below && state.pending.len() >= FLUSH_AT;
        if urgent || full {
            state.urgent = true;
        }
        let wake = was_empty || urgent || full;
        drop(state);
        if wake {
            self.wake.notify_one();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        // notify_all: the thread and this wait share the condition variable.
        self.shared.wake.notify_all();
        let (state, _) = self
            .shared
            .wake
            .wait_timeout_while(state, EXIT_WAIT, |s| !s.finished)
            .unwrap_or_else(PoisonError::into_inner);
        let finished = state.finished;
        drop(state);
        // A thread blocked in a write to a pipe nobody reads is left behind
        // (the process is ending); joining it would wait for ever.
        if let Some(thread) = self.thread.take().filter(|_| finished) {
            let _ = thread.join();
        }
    }
}

/// One event's bytes on their way to the buffer.
#[derive(Debug)]
pub struct Line<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.shared.append(bytes, self.urgent);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            shared: &self.shared,
            urgent: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line<'a> {
        Line {
            shared: &self.shared,
            // WARN and ERROR are the more severe levels in tracing's order.
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A sink that reports each write to the test.
    struct Sink(mpsc::Sender<Vec<u8>>);

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let _ = self.0.send(bytes.to_vec());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn line(writer: &LogWriter, urgent: bool, text: &str) {
        Line {
            shared: &writer.shared,
            urgent,
        }
        .write_all(text.as_bytes())
        .unwrap();
    }

    #[test]
    fn info_lines_are_written_together_and_the_guard_writes_the_rest() {
        let (tx, rx) = mpsc::channel();
        let (writer, guard) = start(Sink(tx)).unwrap();
        for i in 0..100 {
            line(&writer, false, &format!("line {i}\n"));
        }
        // All hundred arrive, in far fewer writes than lines.
        let mut got = Vec::new();
        let mut writes = 0;
        while got.iter().filter(|&&b| b == b'\n').count() < 100 {
            got.extend(rx.recv_timeout(Duration::from_secs(10)).unwrap());
            writes += 1;
        }
        assert!(writes < 10, "{writes} writes for 100 lines");
        let text = String::from_utf8(got).unwrap();
        assert!(text.starts_with("line 0\n") && text.ends_with("line 99\n"));
        line(&writer, false, "last\n");
        drop(guard);
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), b"last\n");
        assert_eq!(writer.dropped_lines(), 0);
    }

    #[test]
    fn a_warn_line_is_written_without_waiting_for_the_interval() {
        let (tx, rx) = mpsc::channel();
        let (writer, _guard) = start(Sink(tx)).unwrap();
        line(&writer, false, "info\n");
        line(&writer, true, "warn\n");
        // Both in one write, well before the interval would have ended; the
        // bound is a hang guard far above the interval.
        let got = rx.recv_timeout(FLUSH_INTERVAL * 50).unwrap();
        assert_eq!(got, b"info\nwarn\n");
    }

    #[test]
    fn a_stalled_output_costs_dropped_lines_not_memory() {
        /// A sink that never returns until told to.
        struct Stalled(mpsc::Receiver<()>);
        impl Write for Stalled {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                let _ = self.0.recv();
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (release, stalled) = mpsc::channel();
        let (writer, guard) = start(Stalled(stalled)).unwrap();
        let text = "x".repeat(1023) + "\n";
        let lines = 3 * MAX_PENDING / text.len();
        for _ in 0..lines {
            line(&writer, true, &text);
        }
        // One batch is with the stalled sink and one buffer is full: the rest
        // was dropped and counted.
        assert!(writer.shared.lock().pending.len() <= MAX_PENDING);
        let dropped = writer.dropped_lines();
        assert!(
            dropped as usize >= lines / 3,
            "{dropped} of {lines} dropped"
        );
        drop(release);
        drop(guard);
    }
}
