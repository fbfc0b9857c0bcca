//! Prometheus metrics, kept in atomics.
//!
//! Every label set a request can hit is created when a route is compiled, so the
//! request path only does relaxed atomic adds: no map lookup, no lock, no
//! allocation. The text exposition is written by hand when `/metrics` is scraped.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::request::gateway_error::GatewayErrorKind;
use corsgate_policy::{IdentifySource, RejectionReason, RequestClass};

const CLASSES: [RequestClass; 3] = [
    RequestClass::NotCors,
    RequestClass::Actual,
    RequestClass::Preflight,
];
const REASONS: usize = RejectionReason::ALL.len();
/// Per class: allowed, pass (not a CORS request, or CORS off), then one slot per
/// rejection reason.
const SLOTS: usize = 2 + REASONS;
const ALLOWED: usize = 0;
const PASS: usize = 1;

/// Upper bounds of the upstream latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BUCKETS_MICROS: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// How the gateway answered a request, for `corsgate_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A CORS request the policy allows.
    Allowed,
    /// Not a CORS request, or a route with CORS off.
    Pass,
    /// Refused, with this reason.
    Rejected(RejectionReason),
}

/// Why the gateway closed a client connection (or reset an HTTP/2 stream) on
/// its own, for `corsgate_client_closes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientClose {
    /// Response bytes waited `send_timeout` for the client: connection reset.
    SendTimeout,
    /// An HTTP/2 stream's response waited `send_timeout` for window: stream reset.
    StreamSendTimeout,
    /// Closing, the client kept the connection past its deadline.
    CloseDeadline,
    /// Most of the connection's HTTP/2 streams were reset before their
    /// response (rapid reset).
    RapidReset,
    /// The connection made its `max_requests_per_connection`.
    RequestCap,
}

impl ClientClose {
    /// Every reason, in metric-slot order.
    pub(crate) const ALL: [ClientClose; 5] = [
        ClientClose::SendTimeout,
        ClientClose::StreamSendTimeout,
        ClientClose::CloseDeadline,
        ClientClose::RapidReset,
        ClientClose::RequestCap,
    ];

    /// The slot of this reason's counter: its place in [`Self::ALL`].
    fn index(self) -> usize {
        match self {
            ClientClose::SendTimeout => 0,
            ClientClose::StreamSendTimeout => 1,
            ClientClose::CloseDeadline => 2,
            ClientClose::RapidReset => 3,
            ClientClose::RequestCap => 4,
        }
    }

    /// The `reason` label.
    fn as_str(self) -> &'static str {
        match self {
            ClientClose::SendTimeout => "send_timeout",
            ClientClose::StreamSendTimeout => "stream_send_timeout",
            ClientClose::CloseDeadline => "close_deadline",
            ClientClose::RapidReset => "rapid_reset",
            ClientClose::RequestCap => "request_cap",
        }
    }
}

/// What decided a request of a client-scoped route, for
/// `corsgate_client_decisions_total`'s `via` label. A bounded set: the
/// client id is never a label (ids are as many as the registry holds, and a
/// request can name any id it likes); logs carry it instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientVia {
    /// The route's static `allow_origins`: no source read.
    Static,
    /// A source named the client: its own list decided (or it is unknown).
    Named(IdentifySource),
    /// The union of every registered origin: a preflight, or an unidentified
    /// request under `unidentified = "registered"`.
    Union,
    /// No source named a client (`unidentified = "deny"`).
    None,
}

impl ClientVia {
    /// Every value, in metric-slot order.
    pub(crate) const ALL: [ClientVia; 6] = [
        ClientVia::Static,
        ClientVia::Named(IdentifySource::Basic),
        ClientVia::Named(IdentifySource::Form),
        ClientVia::Named(IdentifySource::BearerJwt),
        ClientVia::Union,
        ClientVia::None,
    ];

    /// The slot of this value's counters: its place in [`Self::ALL`]. A
    /// source added later shares `none`'s until it has a slot of its own.
    fn index(self) -> usize {
        match self {
            ClientVia::Static => 0,
            ClientVia::Named(IdentifySource::Basic) => 1,
            ClientVia::Named(IdentifySource::Form) => 2,
            ClientVia::Named(IdentifySource::BearerJwt) => 3,
            ClientVia::Union => 4,
            ClientVia::Named(_) | ClientVia::None => 5,
        }
    }

    /// The `via` label.
    fn as_str(self) -> &'static str {
        match self {
            ClientVia::Static => "static",
            ClientVia::Named(source) => source.as_str(),
            ClientVia::Union => "union",
            ClientVia::None => "none",
        }
    }
}

/// The counters of one route.
#[derive(Debug)]
pub(crate) struct RouteStats {
    name: String,
    requests: [AtomicU64; 3 * SLOTS],
    buckets: [AtomicU64; BUCKETS.len() + 1],
    upstream_count: AtomicU64,
    upstream_micros: AtomicU64,
    /// Whether the route is (or was) client-scoped: its client decisions
    /// are exported, at 0 from the start.
    client_scoped: AtomicBool,
    /// By [`ClientVia::index`], then allowed (0) or refused (1).
    client_decisions: [AtomicU64; 2 * ClientVia::ALL.len()],
}

impl RouteStats {
    fn new(name: String) -> Self {
        RouteStats {
            name,
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            upstream_count: AtomicU64::new(0),
            upstream_micros: AtomicU64::new(0),
            client_scoped: AtomicBool::new(false),
            client_decisions: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Marks the route client-scoped: `corsgate_client_decisions_total` has
    /// its label sets from now on, at 0 until counted.
    pub(crate) fn mark_client_scoped(&self) {
        self.client_scoped.store(true, Relaxed);
    }

    /// Counts one decision of a client-scoped route.
    pub(crate) fn count_client(&self, via: ClientVia, allowed: bool) {
        let slot = via.index() * 2 + usize::from(!allowed);
        if let Some(counter) = self.client_decisions.get(slot) {
            counter.fetch_add(1, Relaxed);
        }
        self.client_scoped.store(true, Relaxed);
    }

    /// The route's label.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Counts one request.
    pub(crate) fn count(&self, class: RequestClass, verdict: Verdict) {
        let class = match class {
            RequestClass::NotCors => 0,
            RequestClass::Actual => 1,
            _ => 2,
        };
        let slot = match verdict {
            Verdict::Allowed => ALLOWED,
            Verdict::Pass => PASS,
            Verdict::Rejected(reason) => {
                2 + RejectionReason::ALL
                    .iter()
                    .position(|r| *r == reason)
                    .unwrap_or(0)
            }
        };
        if let Some(counter) = self.requests.get(class * SLOTS + slot) {
            counter.fetch_add(1, Relaxed);
        }
    }

    /// Records the time an upstream took to send its response head.
    pub(crate) fn observe_upstream(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_MICROS
            .iter()
            .position(|le| micros <= *le)
            .unwrap_or(BUCKETS.len());
        if let Some(b) = self.buckets.get(bucket) {
            b.fetch_add(1, Relaxed);
        }
        self.upstream_count.fetch_add(1, Relaxed);
        self.upstream_micros.fetch_add(micros, Relaxed);
    }
}

/// How long a rendered exposition is handed to further scrapes, while a slower
/// scrape still holds it.
const RENDER_SHARED_FOR: Duration = Duration::from_secs(1);

/// The route stats in the order routes were first seen, and an index by name:
/// a configuration of 100 000 routes finds each route's stats in constant time.
#[derive(Debug, Default)]
struct Routes {
    list: Vec<Arc<RouteStats>>,
    by_name: HashMap<String, usize>,
}

/// Every metric of one gateway process; survives reloads.
#[derive(Debug)]
pub(crate) struct Metrics {
    /// Route stats by route name; locked only on reload and scrape.
    routes: Mutex<Routes>,
    /// The last exposition rendered, while some response still sends it.
    rendered: Mutex<(Instant, Weak<Vec<u8>>)>,
    unmatched: Arc<RouteStats>,
    reload_success: AtomicU64,
    reload_failure: AtomicU64,
    connections_open: AtomicI64,
    connections_total: AtomicU64,
    in_flight: AtomicI64,
    /// Indexed by [`GatewayErrorKind::index`]: a new kind has its counter.
    gateway_responses: [AtomicU64; GatewayErrorKind::ALL.len()],
    websocket_upgrades: AtomicU64,
    upstream_body_timeouts: AtomicU64,
    /// Indexed by [`ClientClose::index`]: a new reason has its counter.
    client_closes: [AtomicU64; ClientClose::ALL.len()],
    /// The application's count of log lines its writer dropped.
    log_lines_dropped: Option<fn() -> u64>,
    /// `[server.tls]`: certificate expiry and failed handshakes.
    tls: TlsMetrics,
    /// `corsgate_upstream_queue_wait_seconds`.
    upstream_queue_wait: QueueWait,
}

impl Metrics {
    /// Metrics whose `corsgate_log_lines_dropped_total` reads `count`.
    pub(crate) fn with_log_drops(count: Option<fn() -> u64>) -> Self {
        Metrics {
            log_lines_dropped: count,
            ..Metrics::default()
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            routes: Mutex::new(Routes::default()),
            rendered: Mutex::new((Instant::now(), Weak::new())),
            unmatched: Arc::new(RouteStats::new(UNMATCHED.to_owned())),
            reload_success: AtomicU64::new(0),
            reload_failure: AtomicU64::new(0),
            connections_open: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            in_flight: AtomicI64::new(0),
            gateway_responses: std::array::from_fn(|_| AtomicU64::new(0)),
            websocket_upgrades: AtomicU64::new(0),
            upstream_body_timeouts: AtomicU64::new(0),
            client_closes: std::array::from_fn(|_| AtomicU64::new(0)),
            log_lines_dropped: None,
            tls: TlsMetrics::default(),
            upstream_queue_wait: QueueWait::default(),
        }
    }
}

/// The `route` label of requests that match no route.
pub(crate) const UNMATCHED: &str = "unmatched";

impl Metrics {
    /// The stats of the route named `name`, created on first use; a route that
    /// survives a reload keeps counting where it was.
    pub(crate) fn route(&self, name: &str) -> Arc<RouteStats> {
        let mut routes = self.routes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = routes.by_name.get(name).and_then(|i| routes.list.get(*i)) {
            return found.clone();
        }
        let stats = Arc::new(RouteStats::new(name.to_owned()));
        let index = routes.list.len();
        routes.list.push(stats.clone());
        routes.by_name.insert(name.to_owned(), index);
        stats
    }

    /// The exposition for a scrape, as shared bytes: scrapes within a second of
    /// one still being sent get the same copy, so slow scrapers do not each pin
    /// a rendering of their own (several MiB with thousands of routes).
    pub(crate) fn render_shared(&self) -> Bytes {
        let mut rendered = self.rendered.lock().unwrap_or_else(PoisonError::into_inner);
        if rendered.0.elapsed() <= RENDER_SHARED_FOR {
            if let Some(text) = rendered.1.upgrade() {
                return Bytes::from_owner(Shared(text));
            }
        }
        let text = Arc::new(self.render().into_bytes());
        *rendered = (Instant::now(), Arc::downgrade(&text));
        Bytes::from_owner(Shared(text))
    }

    pub(crate) fn unmatched(&self) -> &Arc<RouteStats> {
        &self.unmatched
    }

    pub(crate) fn reloaded(&self, ok: bool) {
        if ok {
            self.reload_success.fetch_add(1, Relaxed);
        } else {
            self.reload_failure.fetch_add(1, Relaxed);
        }
    }

    /// The certificates now served, for `corsgate_tls_certificate_expiry_seconds`.
    pub(crate) fn set_certificates(&self, infos: &[crate::listen::tls::CertInfo]) {
        *self
            .tls
            .certificates
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = infos.to_vec();
    }

    /// The ACME certificate now served.
    pub(crate) fn set_acme_certificate(&self, info: Option<crate::listen::tls::CertInfo>) {
        *self.tls.acme.lock().unwrap_or_else(PoisonError::into_inner) = info;
    }

    /// An ACME order that ended with a certificate (`ok`) or failed.
    pub(crate) fn acme_issued(&self, ok: bool) {
        self.tls.acme_orders[usize::from(!ok)].fetch_add(1, Relaxed);
    }

    /// A TLS handshake that failed or did not finish in time.
    pub(crate) fn tls_handshake_failed(&self) {
        self.tls.handshake_failures.fetch_add(1, Relaxed);
    }

    pub(crate) fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Relaxed);
        self.connections_total.fetch_add(1, Relaxed);
    }

    pub(crate) fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Relaxed);
    }

    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Relaxed);
    }

    pub(crate) fn request_finished(&self) {
        self.in_flight.fetch_sub(1, Relaxed);
    }

    /// Counts a response the gateway made because something failed.
    pub(crate) fn gateway_response(&self, kind: GatewayErrorKind) {
        if let Some(c) = self.gateway_responses.get(kind.index()) {
            c.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn websocket_upgraded(&self) {
        self.websocket_upgrades.fetch_add(1, Relaxed);
    }

    /// Counts a response cut because its upstream body stalled.
    pub(crate) fn upstream_body_timed_out(&self) {
        self.upstream_body_timeouts.fetch_add(1, Relaxed);
    }

    /// Counts a client connection (or HTTP/2 stream) the gateway closed on its own.
    pub(crate) fn client_closed(&self, reason: ClientClose) {
        if let Some(c) = self.client_closes.get(reason.index()) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let mut routes: Vec<Arc<RouteStats>> = self
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .list
            .clone();
        routes.push(self.unmatched.clone());

        out.push_str(
            "# HELP corsgate_requests_total Requests by route, CORS class, decision and rejection reason.\n\
             # TYPE corsgate_requests_total counter\n",
        );
        for route in &routes {
            let name = escape(&route.name);
            for (ci, class) in CLASSES.iter().enumerate() {
                for slot in 0..SLOTS {
                    let (decision, reason) = match slot {
                        ALLOWED => ("allowed", ""),
                        PASS => ("pass", ""),
                        _ => {
                            let Some(reason) = RejectionReason::ALL.get(slot - 2) else {
                                continue;
                            };
                            ("rejected", reason.as_str())
                        }
                    };
                    if !possible(*class, slot) {
                        continue;
                    }
                    let value = route
                        .requests
                        .get(ci * SLOTS + slot)
                        .map_or(0, |c| c.load(Relaxed));
                    let _ = writeln!(
                        out,
                        "corsgate_requests_total{{route=\"{name}\",class=\"{}\",decision=\"{decision}\",reason=\"{reason}\"}} {value}",
                        class.as_str()
                    );
                }
            }
        }

        out.push_str(
            "# HELP corsgate_upstream_duration_seconds Time from sending a request upstream to receiving its response head.\n\
             # TYPE corsgate_upstream_duration_seconds histogram\n",
        );
        for route in &routes {
            if route.name == UNMATCHED {
                continue;
            }
            let labels = format!("route=\"{}\"", escape(&route.name));
            render_histogram(
                &mut out,
                "corsgate_upstream_duration_seconds",
                &labels,
                &route.buckets,
                route.upstream_micros.load(Relaxed),
                route.upstream_count.load(Relaxed),
            );
        }

        out.push_str(
            "# HELP corsgate_client_decisions_total Decisions of client-scoped routes, by what decided: the static list, the source that named the client (its own list), the union of registered origins, or no client.\n\
             # TYPE corsgate_client_decisions_total counter\n",
        );
        for route in routes.iter().filter(|r| r.client_scoped.load(Relaxed)) {
            let name = escape(&route.name);
            for via in ClientVia::ALL {
                for (i, decision) in ["allowed", "rejected"].iter().enumerate() {
                    let count = route
                        .client_decisions
                        .get(via.index() * 2 + i)
                        .map_or(0, |c| c.load(Relaxed));
                    let _ = writeln!(
                        out,
                        "corsgate_client_decisions_total{{route=\"{name}\",via=\"{}\",decision=\"{decision}\"}} {count}",
                        via.as_str()
                    );
                }
            }
        }

        out.push_str(
            "# HELP corsgate_gateway_responses_total Responses the gateway made itself because a request could not be served.\n\
             # TYPE corsgate_gateway_responses_total counter\n",
        );
        // One series per kind, each with its status: `sum by (status)` gives
        // the answers by status, and a new kind is there from the start.
        for kind in GatewayErrorKind::ALL {
            let count = self
                .gateway_responses
                .get(kind.index())
                .map_or(0, |c| c.load(Relaxed));
            let _ = writeln!(
                out,
                "corsgate_gateway_responses_total{{status=\"{}\",kind=\"{kind}\"}} {count}",
                kind.status().as_u16()
            );
        }

        out.push_str(
            "# HELP corsgate_client_closes_total Client connections (or HTTP/2 streams) the gateway closed on its own, by reason.\n\
             # TYPE corsgate_client_closes_total counter\n",
        );
        for reason in ClientClose::ALL {
            let count = self
                .client_closes
                .get(reason.index())
                .map_or(0, |c| c.load(Relaxed));
            let _ = writeln!(
                out,
                "corsgate_client_closes_total{{reason=\"{}\"}} {count}",
                reason.as_str()
            );
        }

        let _ = write!(
            out,
            "# HELP corsgate_reloads_total Configuration reloads by result.\n\
             # TYPE corsgate_reloads_total counter\n\
             corsgate_reloads_total{{result=\"success\"}} {}\n\
             corsgate_reloads_total{{result=\"failure\"}} {}\n\
             # HELP corsgate_requests_in_flight Requests being served (until their response body ends).\n\
             # TYPE corsgate_requests_in_flight gauge\n\
             corsgate_requests_in_flight {}\n\
             # HELP corsgate_connections_open Client connections open.\n\
             # TYPE corsgate_connections_open gauge\n\
             corsgate_connections_open {}\n\
             # HELP corsgate_connections_total Client connections accepted.\n\
             # TYPE corsgate_connections_total counter\n\
             corsgate_connections_total {}\n\
             # HELP corsgate_websocket_upgrades_total WebSocket connections proxied.\n\
             # TYPE corsgate_websocket_upgrades_total counter\n\
             corsgate_websocket_upgrades_total {}\n\
             # HELP corsgate_upstream_body_timeouts_total Responses cut because the upstream's body stalled for upstream_body_timeout.\n\
             # TYPE corsgate_upstream_body_timeouts_total counter\n\
             corsgate_upstream_body_timeouts_total {}\n\
             # HELP corsgate_log_lines_dropped_total Log lines dropped because the log output did not keep up.\n\
             # TYPE corsgate_log_lines_dropped_total counter\n\
             corsgate_log_lines_dropped_total {}\n",
            self.reload_success.load(Relaxed),
            self.reload_failure.load(Relaxed),
            self.in_flight.load(Relaxed).max(0),
            self.connections_open.load(Relaxed).max(0),
            self.connections_total.load(Relaxed),
            self.websocket_upgrades.load(Relaxed),
            self.upstream_body_timeouts.load(Relaxed),
            self.log_lines_dropped.map_or(0, |count| count()),
        );
        self.tls.render(&mut out);
        self.upstream_queue_wait.render(&mut out);
        out
    }
}

/// Requests counted for one route, summed over the CORS classes: what the
/// admin dashboard shows (`GET /stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RequestCounts {
    pub(crate) allowed: u64,
    pub(crate) pass: u64,
    /// One count per [`RejectionReason::ALL`], in its order.
    pub(crate) rejected: [u64; REASONS],
}

impl RequestCounts {
    /// Adds `other` to these counts.
    pub(crate) fn add(&mut self, other: &RequestCounts) {
        self.allowed += other.allowed;
        self.pass += other.pass;
        for (mine, theirs) in self.rejected.iter_mut().zip(other.rejected) {
            *mine += theirs;
        }
    }
}

impl RouteStats {
    /// This route's counts so far (relaxed reads: a scrape's view).
    pub(crate) fn counts(&self) -> RequestCounts {
        let mut counts = RequestCounts::default();
        for class in 0..CLASSES.len() {
            let at = |slot: usize| {
                self.requests
                    .get(class * SLOTS + slot)
                    .map_or(0, |c| c.load(Relaxed))
            };
            counts.allowed += at(ALLOWED);
            counts.pass += at(PASS);
            for (i, count) in counts.rejected.iter_mut().enumerate() {
                *count += at(2 + i);
            }
        }
        counts
    }
}

impl Metrics {
    /// Every route's counts, in the order routes were first seen, then
    /// `unmatched`.
    pub(crate) fn request_counts(&self) -> Vec<(String, RequestCounts)> {
        let mut routes: Vec<Arc<RouteStats>> = self
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .list
            .clone();
        routes.push(self.unmatched.clone());
        routes
            .iter()
            .map(|r| (r.name.clone(), r.counts()))
            .collect()
    }
}

/// The metrics of `[server.tls]`; rendered only when it is configured.
#[derive(Debug, Default)]
struct TlsMetrics {
    certificates: Mutex<Vec<crate::listen::tls::CertInfo>>,
    acme: Mutex<Option<crate::listen::tls::CertInfo>>,
    /// Orders that succeeded, failed.
    acme_orders: [AtomicU64; 2],
    handshake_failures: AtomicU64,
}

impl TlsMetrics {
    fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let mut certificates = self
            .certificates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let acme = self
            .acme
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let orders = [
            self.acme_orders[0].load(Relaxed),
            self.acme_orders[1].load(Relaxed),
        ];
        let has_acme = acme.is_some() || orders != [0, 0];
        certificates.extend(acme);
        if certificates.is_empty() && !has_acme {
            return;
        }
        out.push_str(
            "# HELP corsgate_tls_certificate_expiry_seconds When each certificate served expires (notAfter), in seconds since the Unix epoch.\n\
             # TYPE corsgate_tls_certificate_expiry_seconds gauge\n",
        );
        for cert in &certificates {
            let _ = writeln!(
                out,
                "corsgate_tls_certificate_expiry_seconds{{file=\"{}\",name=\"{}\"}} {}",
                escape(&cert.file),
                escape(cert.names.first().map_or("", String::as_str)),
                cert.not_after
            );
        }
        let _ = write!(
            out,
            "# HELP corsgate_tls_handshake_failures_total TLS handshakes that failed or did not finish within the header read timeout.\n\
             # TYPE corsgate_tls_handshake_failures_total counter\n\
             corsgate_tls_handshake_failures_total {}\n",
            self.handshake_failures.load(Relaxed)
        );
        if has_acme {
            let _ = write!(
                out,
                "# HELP corsgate_acme_orders_total ACME certificate orders, by result.\n\
                 # TYPE corsgate_acme_orders_total counter\n\
                 corsgate_acme_orders_total{{result=\"success\"}} {}\n\
                 corsgate_acme_orders_total{{result=\"failure\"}} {}\n",
                orders[0], orders[1]
            );
        }
    }
}

impl Metrics {
    /// Records how long a request waited for an upstream connection, every
    /// one being busy (counted whether it then got one or not).
    pub(crate) fn observe_upstream_queue_wait(&self, waited: Duration) {
        self.upstream_queue_wait.observe(waited);
    }
}

/// `corsgate_upstream_queue_wait_seconds`: the waits of requests that found
/// all `max_upstream_connections` of their upstream busy, whichever upstream.
#[derive(Debug, Default)]
struct QueueWait {
    /// One per [`BUCKETS`] bound, then one past the last.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    count: AtomicU64,
    micros: AtomicU64,
}

impl QueueWait {
    fn observe(&self, waited: Duration) {
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_MICROS
            .iter()
            .position(|le| micros <= *le)
            .unwrap_or(BUCKETS.len());
        if let Some(b) = self.buckets.get(bucket) {
            b.fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.micros.fetch_add(micros, Relaxed);
    }

    fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP corsgate_upstream_queue_wait_seconds Time a request waited for an upstream connection because all max_upstream_connections were busy.\n\
             # TYPE corsgate_upstream_queue_wait_seconds histogram\n",
        );
        render_histogram(
            out,
            "corsgate_upstream_queue_wait_seconds",
            "",
            &self.buckets,
            self.micros.load(Relaxed),
            self.count.load(Relaxed),
        );
    }
}

/// One histogram series in the exposition format: its cumulative `le`
/// buckets over [`BUCKETS`] (the last counter is `+Inf`), then its sum
/// (from microseconds) and count. `labels` is empty or `name="value",…`.
fn render_histogram(
    out: &mut String,
    metric: &str,
    labels: &str,
    buckets: &[AtomicU64; BUCKETS.len() + 1],
    micros: u64,
    count: u64,
) {
    let sep = if labels.is_empty() { "" } else { "," };
    let mut cumulative = 0u64;
    for (le, bucket) in BUCKETS
        .iter()
        .map(ToString::to_string)
        .chain(["+Inf".to_owned()])
        .zip(buckets)
    {
        cumulative += bucket.load(Relaxed);
        let _ = writeln!(
            out,
            "{metric}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
        );
    }
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let _ = writeln!(out, "{metric}_sum{braces} {}", micros as f64 / 1e6);
    let _ = writeln!(out, "{metric}_count{braces} {count}");
}

/// A rendered exposition shared by the responses sending it.
struct Shared(Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Which label sets can occur: a request without `Origin` is never allowed or
/// refused, and an actual request is only ever refused for its origin.
fn possible(class: RequestClass, slot: usize) -> bool {
    match class {
        RequestClass::NotCors => slot == PASS,
        RequestClass::Actual => {
            slot < 2
                || RejectionReason::ALL
                    .get(slot - 2)
                    .is_some_and(|r| r.is_about_origin())
        }
        _ => true,
    }
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_their_label_set() {
        let metrics = Metrics::default();
        let api = metrics.route("0:/api");
        api.count(RequestClass::Preflight, Verdict::Allowed);
        api.count(
            RequestClass::Actual,
            Verdict::Rejected(RejectionReason::NullOrigin),
        );
        api.observe_upstream(Duration::from_millis(3));
        metrics.reloaded(false);
        let text = metrics.render();
        assert!(text.contains(
            "corsgate_requests_total{route=\"0:/api\",class=\"preflight\",decision=\"allowed\",reason=\"\"} 1"
        ));
        assert!(text.contains(
            "corsgate_requests_total{route=\"0:/api\",class=\"actual\",decision=\"rejected\",reason=\"null-origin\"} 1"
        ));
        assert!(
            !text.contains("class=\"actual\",decision=\"rejected\",reason=\"method-not-allowed\"")
        );
        assert!(text.contains(
            "corsgate_upstream_duration_seconds_bucket{route=\"0:/api\",le=\"0.0025\"} 0"
        ));
        assert!(text.contains(
            "corsgate_upstream_duration_seconds_bucket{route=\"0:/api\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("corsgate_upstream_duration_seconds_count{route=\"0:/api\"} 1"));
        assert!(text.contains("corsgate_reloads_total{result=\"failure\"} 1"));
        metrics.gateway_response(GatewayErrorKind::Loop);
        let text = metrics.render();
        assert!(
            text.contains("corsgate_gateway_responses_total{status=\"508\",kind=\"loop\"} 1\n")
        );
        for kind in GatewayErrorKind::ALL {
            assert!(text.contains(&format!(
                "corsgate_gateway_responses_total{{status=\"{}\",kind=\"{kind}\"}}",
                kind.status().as_u16()
            )));
        }
        // Every close reason is there from the start, at its own slot.
        for reason in ClientClose::ALL {
            assert!(text.contains(&format!(
                "corsgate_client_closes_total{{reason=\"{}\"}} 0",
                reason.as_str()
            )));
        }
        for (i, reason) in ClientClose::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
        // The same name after a reload: the same counters.
        assert!(Arc::ptr_eq(&api, &metrics.route("0:/api")));
    }

    #[test]
    fn client_decisions_only_for_client_scoped_routes_each_at_its_slot() {
        let metrics = Metrics::default();
        let token = metrics.route("0:/oauth2/token");
        metrics.route("1:/api");
        assert!(
            !metrics
                .render()
                .contains("corsgate_client_decisions_total{")
        );
        token.mark_client_scoped();
        let text = metrics.render();
        for via in ClientVia::ALL {
            for decision in ["allowed", "rejected"] {
                assert!(text.contains(&format!(
                    "corsgate_client_decisions_total{{route=\"0:/oauth2/token\",via=\"{}\",decision=\"{decision}\"}} 0",
                    via.as_str()
                )));
            }
        }
        for (i, via) in ClientVia::ALL.iter().enumerate() {
            assert_eq!(via.index(), i);
        }
        token.count_client(ClientVia::Named(IdentifySource::Form), false);
        token.count_client(ClientVia::Union, true);
        let text = metrics.render();
        assert!(text.contains(
            "corsgate_client_decisions_total{route=\"0:/oauth2/token\",via=\"form\",decision=\"rejected\"} 1\n"
        ));
        assert!(text.contains(
            "corsgate_client_decisions_total{route=\"0:/oauth2/token\",via=\"union\",decision=\"allowed\"} 1\n"
        ));
        assert!(!text.contains("route=\"1:/api\",via="));
    }
}
