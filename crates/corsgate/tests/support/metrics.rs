//! The admin listener's `/metrics`, read as the text Prometheus scrapes, and
//! waits on one of its series.

use std::net::SocketAddr;

use super::{eventually, send};

/// One scrape of `/metrics`.
#[derive(Debug, Clone)]
pub struct Metrics {
    text: String,
}

impl Metrics {
    /// `GET http://ADMIN/metrics`, which must answer 200.
    pub async fn fetch(admin: SocketAddr) -> Metrics {
        Metrics::fetch_with(admin, &[]).await
    }

    /// The same with request headers (an admin token).
    pub async fn fetch_with(admin: SocketAddr, headers: &[(&str, &str)]) -> Metrics {
        let answer = send("GET", &format!("http://{admin}/metrics"), headers).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        Metrics {
            text: answer.text(),
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The value of `series` as printed: the metric's name with exactly its
    /// labels (`corsgate_reloads_total{result="success"}`), or the bare name of
    /// a series without labels. `None` when there is no such line.
    pub fn value(&self, series: &str) -> Option<&str> {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
    }

    /// The whole-number value of `series`; fails the test when it is absent.
    pub fn get(&self, series: &str) -> u64 {
        let value = self
            .value(series)
            .unwrap_or_else(|| panic!("no {series} in /metrics:\n{}", self.text));
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{series} is {value:?}, not a count"))
    }

    /// Whether `line` is one whole line of the text.
    pub fn has(&self, line: &str) -> bool {
        self.text.lines().any(|l| l == line)
    }
}

/// The whole-number value of `series` on the admin listener at `admin`.
pub async fn metric(admin: SocketAddr, series: &str) -> u64 {
    Metrics::fetch(admin).await.get(series)
}

/// Waits until `series` has a value that `want` accepts; returns the value.
pub async fn wait_metric(admin: SocketAddr, series: &str, want: impl Fn(u64) -> bool) -> u64 {
    eventually(&format!("{series} on http://{admin}/metrics"), || async {
        let metrics = Metrics::fetch(admin).await;
        // A series can appear after start (the ACME certificate's, once the
        // task that loads it has run): absent is "not yet".
        let Some(value) = metrics.value(series) else {
            return Err(format!("no {series} yet"));
        };
        let value: u64 = value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{series} is {value:?}, not a count"));
        if want(value) {
            Ok(value)
        } else {
            Err(format!("{series} {value}"))
        }
    })
    .await
}

/// Waits until `line` is a whole line of `/metrics`.
pub async fn wait_line(admin: SocketAddr, line: &str) {
    eventually(&format!("{line:?} on http://{admin}/metrics"), || async {
        let metrics = Metrics::fetch(admin).await;
        if metrics.has(line) {
            Ok(())
        } else {
            Err(metrics.text)
        }
    })
    .await;
}
