//! Failed accepts, logged without flooding the log: out of file descriptors,
//! an accept loop fails on every retry (every 50 ms) for as long as it lasts.

use std::time::Duration;

/// At most one "accept failed" line this often, per listener.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);

/// Logs failed accepts at most once per [`ACCEPT_WARN_EVERY`], with how many
/// were not logged.
pub(crate) struct AcceptErrors {
    message: &'static str,
    last: Option<tokio::time::Instant>,
    suppressed: u64,
}

impl AcceptErrors {
    /// Logs with `message`, which names the listener.
    pub(crate) fn new(message: &'static str) -> Self {
        AcceptErrors {
            message,
            last: None,
            suppressed: 0,
        }
    }

    pub(crate) fn note(&mut self, err: &std::io::Error) {
        let now = tokio::time::Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < ACCEPT_WARN_EVERY)
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(error = %err, suppressed = self.suppressed, "{}", self.message);
        self.last = Some(now);
        self.suppressed = 0;
    }
}
