//! The gateway: a CORS-terminating reverse proxy on hyper and tokio.
//!
//! The modules follow a request through the gateway:
//!
//! - `listen/`: from the socket to a request: accepting connections, TLS
//!   termination and its ACME certificates, the HTTP/1 and HTTP/2 connection,
//!   the file-descriptor budget;
//! - `request/`: one request as phases over a `RequestCtx` (resolve the route,
//!   decide, admit, forward, respond), client identification, the bodies, the
//!   headers the gateway adds or strips, and the errors it answers itself;
//! - `upstream/`: the upstream connection pool, TLS and h2c towards upstreams,
//!   forwarding, WebSocket tunnels;
//! - `admin/`: the admin listener, with one table of its endpoints
//!   ([`admin_endpoints`]) and one access check in front of all of them, the
//!   registry's API and the dashboard;
//! - `observe/`: metrics, the access log, the refusal log;
//! - at the top: [`Server`], [`Handle`], [`Options`], [`Error`], reloads, the
//!   shadow configuration and the built-in demo.
//!
//! Each request loads the current configuration snapshot once and keeps it to
//! the end, so a reload never changes the policy under a request in flight. The
//! snapshot is swapped whole, atomically, and only for a configuration that
//! compiled without errors.
//!
//! ```no_run
//! # async fn run() -> Result<(), corsgate_gateway::Error> {
//! use corsgate_config as config;
//! use corsgate_gateway::{Options, Server};
//!
//! let gateway = config::check(config::DEFAULT_CONFIG).gateway.expect("valid");
//! let server = Server::bind(gateway, Options::new()).await?;
//! println!("listening on {}", server.local_addr());
//! let handle = server.handle();
//! tokio::spawn(async move { tokio::signal::ctrl_c().await.ok(); handle.shutdown() });
//! server.run().await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod admin;
#[cfg(feature = "bench")]
#[doc(hidden)]
pub mod bench;
#[cfg(feature = "demo")]
mod demo;
mod error;
mod listen;
mod observe;
mod reload;
mod request;
mod shadow;
mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::rt::TokioTimer;
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};

pub use admin::endpoints::{Access, AdminEndpoint, admin_endpoints};
pub use admin::registry_admin::check_registry_files;
use corsgate_config::{GatewayConfig, Settings, Transport, Upstream};
pub use error::Error;
use listen::accept::AcceptErrors;
use listen::conn::{Limits, StreamExec, serve_connection};
pub use listen::tls::{EXPIRY_WARNING, check_certificates};
pub use observe::access_log::{AccessLogLines, LineFormat};
use observe::metrics::{Metrics, RouteStats};
pub use reload::ReloadOutcome;
use request::body::RequestBody;
pub use request::gateway_error::GatewayErrorKind;
use upstream::pool::{Pool, PoolSettings, Protocol};
pub use upstream::upstream_tls::check_upstream_tls;

/// Boxed error of a body: only allocated when something fails.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `from + timeout`, or a time that never comes if that overflows.
pub(crate) fn after(from: tokio::time::Instant, timeout: Duration) -> tokio::time::Instant {
    from.checked_add(timeout)
        .unwrap_or_else(|| from + Duration::from_secs(30 * 365 * 86_400))
}

/// Longest time a client may take to send a request head once it has started.
const MAX_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How often idle upstream connections past their idle timeout are closed.
const UPSTREAM_PRUNE_EVERY: Duration = Duration::from_secs(10);

/// How to run a gateway, beyond its configuration. Built with [`Options::new`]
/// and its setters; fields may be added without breaking callers.
///
/// ```
/// let options = corsgate_gateway::Options::new()
///     .listen("127.0.0.1:0".parse().unwrap())
///     .watch(false);
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Options {
    config_path: Option<PathBuf>,
    watch: bool,
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    config_text: Option<String>,
    log_lines_dropped: Option<fn() -> u64>,
    shadow_path: Option<PathBuf>,
    access_log_lines: Option<AccessLogLines>,
}

impl Options {
    /// No file (reloads are a no-op), no watch, the configuration's addresses.
    pub fn new() -> Self {
        Options::default()
    }

    /// The file the configuration came from: reloads read it again. Without
    /// one (the built-in configuration) reloads are a no-op.
    #[must_use]
    pub fn config_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_path = Some(path.into());
        self
    }

    /// The text of the configuration file the gateway was compiled from.
    /// Reloads on file events compare the file with it; without it, the first
    /// event reloads.
    #[must_use]
    pub fn config_text(mut self, text: impl Into<String>) -> Self {
        self.config_text = Some(text.into());
        self
    }

    /// Reload when the file changes (needs [`config_path`](Self::config_path)).
    #[must_use]
    pub fn watch(mut self, watch: bool) -> Self {
        self.watch = watch;
        self
    }

    /// Listen here whatever the configuration says (also across reloads).
    #[must_use]
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    /// Serve the admin endpoints here whatever the configuration says.
    #[must_use]
    pub fn admin_listen(mut self, addr: SocketAddr) -> Self {
        self.admin_listen = Some(addr);
        self
    }

    /// Where `corsgate_log_lines_dropped_total` comes from: the log writer is
    /// the application's, so is its count of lines it had to drop. Without it
    /// the metric stays 0.
    #[must_use]
    pub fn log_lines_dropped(mut self, count: fn() -> u64) -> Self {
        self.log_lines_dropped = Some(count);
        self
    }

    /// A shadow configuration: a candidate file that decides every CORS
    /// request beside the live configuration and is never enforced (see
    /// `GET /shadow`). It wins over the file's `shadow_config`, also across
    /// reloads.
    #[must_use]
    pub fn shadow(mut self, path: impl Into<PathBuf>) -> Self {
        self.shadow_path = Some(path.into());
        self
    }

    /// Access-log lines go to `lines`, formatted by the gateway, instead of
    /// being `tracing` events formatted by the subscriber: the same line at a
    /// fraction of the cost (see [`AccessLogLines`]). The `tracing` filter
    /// still decides whether a line is written (target `corsgate::access`,
    /// level `info`).
    #[must_use]
    pub fn access_log_lines(mut self, lines: AccessLogLines) -> Self {
        self.access_log_lines = Some(lines);
        self
    }

    /// The directory relative paths of the configuration (certificates, CA
    /// files) are read from: the configuration file's.
    fn config_dir(&self) -> PathBuf {
        self.config_path
            .as_deref()
            .and_then(std::path::Path::parent)
            .filter(|dir| !dir.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), std::path::Path::to_owned)
    }

    fn override_addresses(&self, gateway: &mut GatewayConfig) {
        if let Some(listen) = self.listen {
            gateway.settings.listen = listen;
        }
        if let Some(admin) = self.admin_listen {
            gateway.settings.admin_listen = Some(admin);
        }
    }
}

/// What one configuration needs at run time: the compiled gateway, its metric
/// handles, its upstream connection pools and its connection settings.
pub(crate) struct Snapshot {
    pub(crate) gateway: GatewayConfig,
    /// Indexed by `Route::index`.
    pub(crate) stats: Vec<Arc<RouteStats>>,
    /// Indexed by `Route::index`; `None` for the built-in demo. Routes with the
    /// same upstream share its pool.
    pub(crate) pools: Vec<Option<Arc<Pool<RequestBody>>>>,
    pub(crate) http: auto::Builder<StreamExec>,
    /// HTTP/1.1 alone, for cleartext connections once the first bytes show it
    /// is not HTTP/2: served one stretch of requests at a time (see conn.rs).
    pub(crate) http1: hyper::server::conn::http1::Builder,
    /// The limits of the connections accepted while this snapshot is current.
    pub(crate) limits: Limits,
}

impl Snapshot {
    /// `connectors`: the TLS of each `https://` route, by route index
    /// ([`upstream::upstream_tls::connectors`]).
    fn new(
        gateway: GatewayConfig,
        metrics: &Arc<Metrics>,
        previous: Option<&Snapshot>,
        connectors: &[Option<Arc<upstream::upstream_tls::Connector>>],
    ) -> Self {
        let settings = &gateway.settings;
        let len = gateway
            .routes
            .iter()
            .map(|r| r.index + 1)
            .max()
            .unwrap_or(0);
        let mut stats = vec![metrics.unmatched().clone(); len];
        for route in &gateway.routes {
            if let Some(slot) = stats.get_mut(route.index) {
                *slot = metrics.route(&route.name);
                if route.policy.as_ref().is_some_and(|p| p.clients().is_some()) {
                    slot.mark_client_scoped();
                }
            }
        }
        // An upstream keeps its pool, and its open connections, across reloads
        // unless the way to connect to it, or its limits, changed.
        let pool_settings = PoolSettings::of(settings);
        let mut pools: Vec<Option<Arc<Pool<RequestBody>>>> = vec![None; len];
        let mut known: Vec<Arc<Pool<RequestBody>>> = previous
            .map(|p| p.pools.iter().flatten().cloned().collect())
            .unwrap_or_default();
        for route in &gateway.routes {
            let Upstream::Http {
                authority,
                transport,
            } = &route.upstream
            else {
                continue;
            };
            let protocol = match transport {
                Transport::H2c => Protocol::H2c,
                Transport::Https(_) => match connectors.get(route.index).cloned().flatten() {
                    Some(connector) => Protocol::Https(connector),
                    // Loaded for every https route before this: not reached.
                    None => continue,
                },
                _ => Protocol::Http1,
            };
            let found = known
                .iter()
                .find(|p| p.serves(authority, &pool_settings, &protocol));
            let pool = match found {
                Some(pool) => pool.clone(),
                None => {
                    let pool = Arc::new(Pool::with_protocol(
                        authority.clone(),
                        pool_settings,
                        protocol,
                        metrics.clone(),
                    ));
                    known.push(pool.clone());
                    pool
                }
            };
            if let Some(slot) = pools.get_mut(route.index) {
                *slot = Some(pool);
            }
        }
        let http = http_builder(settings, metrics);
        let http1 = http1_builder(settings);
        let limits = Limits {
            idle_timeout: settings.idle_timeout,
            header_timeout: header_timeout(settings),
            send_timeout: settings.send_timeout,
            max_requests: settings.max_requests_per_connection,
        };
        Snapshot {
            gateway,
            stats,
            pools,
            http,
            http1,
            limits,
        }
    }

    /// Closes the upstream connections idle for too long.
    fn prune_pools(&self) {
        for pool in self.pools.iter().flatten() {
            pool.prune();
        }
    }
}

/// Longest time a client may take to send a request head, and before its first
/// request, to open the connection (the HTTP/2 preface and SETTINGS included).
fn header_timeout(settings: &Settings) -> Duration {
    settings.idle_timeout.min(MAX_HEADER_READ_TIMEOUT)
}

/// hyper refuses heads past its buffer with a bare 431. Give it room beyond
/// max_header_bytes, so that the gateway sees most oversized heads itself and
/// answers them with the route's CORS headers.
fn hyper_buffer_limit(settings: &Settings) -> usize {
    settings.max_header_bytes.saturating_mul(2).max(16 * 1024)
}

/// The HTTP/1.1 settings of [`http_builder`], for connections served by
/// HTTP/1.1 alone.
fn http1_builder(settings: &Settings) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The header read timeout is the connection driver's (`listen/conn.rs`,
    // `ConnState::idle_check`): hyper's arms a timer for every request.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(hyper_buffer_limit(settings))
        .keep_alive(true);
    builder
}

fn http_builder(settings: &Settings, metrics: &Arc<Metrics>) -> auto::Builder<StreamExec> {
    let mut builder = auto::Builder::new(StreamExec::new(settings.send_timeout, metrics.clone()));
    let hard_limit = hyper_buffer_limit(settings);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout(settings))
        .max_buf_size(hard_limit)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(hard_limit).unwrap_or(u32::MAX))
        .max_concurrent_streams(settings.max_concurrent_streams)
        // A PING after idle_timeout without frames from the client; no ACK in
        // time closes the connection (a peer gone without FIN/RST).
        .keep_alive_interval(settings.idle_timeout)
        .keep_alive_timeout(Limits::ping_timeout(settings.idle_timeout));
    builder
}

/// State shared by every connection of a running gateway.
pub(crate) struct Shared {
    pub(crate) snapshot: ArcSwap<Snapshot>,
    pub(crate) metrics: Arc<Metrics>,
    #[cfg(feature = "demo")]
    pub(crate) demo: demo::Demo,
    config_path: Option<PathBuf>,
    options: Options,
    shutdown: watch::Sender<bool>,
    /// Serializes reloads; holds the text of the configuration running.
    last_text: Mutex<Option<String>>,
    listen: SocketAddr,
    admin: Option<SocketAddr>,
    /// One permit per client connection, and per WebSocket tunnel (which
    /// outlives its connection): `max_connections`.
    pub(crate) connections: Arc<Semaphore>,
    /// This gateway's `Via` entry, with its random token: how it knows a
    /// request that has come round a loop.
    pub(crate) via: request::via::Via,
    /// `[server.tls]` as started: the listener speaks HTTPS.
    pub(crate) tls: Option<listen::tls::Tls>,
    /// The client registry of `[registry]`, opened at start.
    pub(crate) registry: Option<Arc<corsgate_registry::Registry>>,
    /// The shadow configuration, when one is asked for (shadow.rs).
    pub(crate) shadow: shadow::Shadow,
    /// Recent refusals, for `GET /refusals` and the dashboard.
    pub(crate) refusals: observe::refusals::RefusalLog,
    /// The dashboard's request history and explain's cache key.
    pub(crate) dashboard: admin::dashboard::State,
}

impl Shared {
    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// A gateway bound to its addresses, ready to [`run`](Server::run).
pub struct Server {
    listener: TcpListener,
    admin: Option<TcpListener>,
    /// `server.tls.redirect_listen`.
    redirect: Option<TcpListener>,
    shared: Arc<Shared>,
    watch: bool,
}

impl Server {
    /// Binds the gateway's listener (and admin listener, if configured).
    pub async fn bind(mut gateway: GatewayConfig, options: Options) -> Result<Server, Error> {
        options.override_addresses(&mut gateway);
        #[cfg(not(feature = "demo"))]
        if let Some(route) = gateway.routes.iter().find(|r| r.upstream == Upstream::Demo) {
            return Err(Error::NoDemo {
                route: route.name.clone(),
            });
        }
        let settings = gateway.settings.clone();
        let max_connections = listen::fdlimit::fit_max_connections(
            settings.max_connections,
            settings.max_connections_configured,
        )?;
        // Everything is ready before the port accepts connections: a load
        // balancer must not see the port open while routes are still set up.
        let metrics = Arc::new(Metrics::with_log_drops(options.log_lines_dropped));
        let tls = match &settings.tls {
            Some(tls) => Some(listen::tls::Tls::new(
                tls,
                options.config_dir(),
                metrics.clone(),
            )?),
            None => None,
        };
        let connectors = upstream::upstream_tls::connectors(&gateway, &options.config_dir())
            .map_err(|found| Error::UpstreamTls(upstream::upstream_tls::one_a_line(&found)))?;
        let redirect = match settings.tls.as_ref().and_then(|t| t.redirect_listen) {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::Listen {
                        addr,
                        setting: "tls.redirect_listen",
                        source,
                    })?,
            ),
            None => None,
        };
        let registry =
            admin::registry_admin::open(&gateway.settings, options.config_path.as_deref()).await?;
        let snapshot = Snapshot::new(gateway, &metrics, None, &connectors);
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| Error::Listen {
                    addr: settings.listen,
                    setting: "listen",
                    source,
                })?;
        let admin = match settings.admin_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| Error::Listen {
                        addr,
                        setting: "admin_listen",
                        source,
                    })?,
            ),
            None => None,
        };
        let listen = listener.local_addr()?;
        let admin_addr = admin.as_ref().map(TcpListener::local_addr).transpose()?;
        // Not read again here: a file changed since it was compiled must not
        // pass for the configuration running (the security review's S1).
        let initial_text = options.config_text.clone();
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            metrics,
            #[cfg(feature = "demo")]
            demo: demo::Demo::default(),
            config_path: options.config_path.clone(),
            options: options.clone(),
            shutdown,
            last_text: Mutex::new(initial_text),
            listen,
            admin: admin_addr,
            connections: Arc::new(Semaphore::new(max_connections)),
            via: request::via::Via::random(),
            tls,
            registry,
            shadow: shadow::Shadow::default(),
            refusals: observe::refusals::RefusalLog::default(),
            dashboard: admin::dashboard::State::default(),
        });
        shadow::start(&shared);
        Ok(Server {
            listener,
            admin,
            redirect,
            shared,
            watch: options.watch,
        })
    }

    /// The address the gateway listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.listen
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.shared.admin
    }

    /// A handle to reload or stop the gateway from elsewhere.
    pub fn handle(&self) -> Handle {
        Handle {
            shared: self.shared.clone(),
        }
    }

    /// Serves until [`Handle::shutdown`], then stops accepting, lets in-flight
    /// requests finish for up to `shutdown_timeout`, and returns.
    pub async fn run(self) -> Result<(), Error> {
        let Server {
            listener,
            admin,
            redirect,
            shared,
            watch,
        } = self;
        // Each task is aborted when `run` returns, and also when its future
        // is dropped before (an embedding that aborts it): none outlives the
        // gateway, so the last `Shared`, and with it the registry, its
        // polling task and its database connection, goes with it.
        let admin = admin
            .map(|admin| AbortOnDrop(tokio::spawn(admin::server::serve(admin, shared.clone()))));
        let redirect = redirect.map(|redirect| {
            AbortOnDrop(tokio::spawn(listen::tls::serve_redirect(
                redirect,
                shared.clone(),
            )))
        });
        if watch {
            listen::tls::watch(&shared);
        }
        let acme = shared
            .tls
            .as_ref()
            .and_then(|t| t.acme.clone())
            .map(|acme| AbortOnDrop(tokio::spawn(listen::acme::run(shared.clone(), acme))));
        let pruner = AbortOnDrop(tokio::spawn(prune_pools(shared.clone())));
        let _watcher = match (&shared.config_path, watch) {
            (Some(path), true) => reload::watch(path, shared.clone()),
            _ => None,
        };
        let limit = shared.connections.clone();
        let (drain_tx, mut drain_rx) = mpsc::channel::<()>(1);
        // Closes the connections still open when shutdown_timeout runs out.
        let (force, _) = watch::channel(false);
        let mut shutdown = shared.shutdown.subscribe();
        let mut accept_errors = AcceptErrors::new(
            "accept failed (out of file descriptors? see RLIMIT_NOFILE and max_connections)",
        );
        loop {
            let permit = tokio::select! {
                biased;
                () = until_shutdown(&mut shutdown) => break,
                permit = limit.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let (stream, remote) = tokio::select! {
                biased;
                () = until_shutdown(&mut shutdown) => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors and the like: back off, retry.
                        accept_errors.note(&err);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            tokio::spawn(connection_task(
                shared.clone(),
                stream,
                remote,
                force.subscribe(),
                permit,
                drain_tx.clone(),
            ));
        }
        drop(listener);
        drop(drain_tx);
        let deadline = shared.snapshot.load().gateway.settings.shutdown_timeout;
        tracing::info!(deadline = ?deadline, "shutting down: no new connections, draining in-flight requests");
        match tokio::time::timeout(deadline, drain_rx.recv()).await {
            Ok(_) => tracing::info!("drained; stopped"),
            Err(_) => {
                tracing::warn!(
                    "shutdown_timeout reached with requests still in flight; closing their connections"
                );
                force.send_replace(true);
            }
        }
        drop((admin, redirect, acme, pruner));
        Ok(())
    }
}

/// The task of one client connection: it serves the connection, then gives
/// back its place under `max_connections` and its hold on the drain. Every
/// open connection, idle ones too, keeps one of these alive, so its size is
/// memory per connection (see the test below and `bench/idle.sh`).
fn connection_task(
    shared: Arc<Shared>,
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    forced: watch::Receiver<bool>,
    permit: tokio::sync::OwnedSemaphorePermit,
    drain: mpsc::Sender<()>,
) -> impl Future<Output = ()> + Send + 'static {
    let shutdown = shared.shutdown.subscribe();
    // The permit and the drain go in as what the connection holds until it
    // ends: awaiting its future from another `async` block would keep that
    // future twice in the task (as captured, and as awaited).
    serve_connection(shared, stream, remote, shutdown, forced, (permit, drain))
}

/// A task of [`Server::run`], aborted when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Closes idle upstream connections past their idle timeout, every few seconds
/// (pools of replaced configurations go with the last request using them).
async fn prune_pools(shared: Arc<Shared>) {
    loop {
        // Often enough that no connection outlives upstream_idle_timeout by
        // more than half of it.
        let idle = shared
            .snapshot
            .load()
            .gateway
            .settings
            .upstream_idle_timeout;
        tokio::time::sleep(UPSTREAM_PRUNE_EVERY.min(idle / 2)).await;
        shared.snapshot.load().prune_pools();
    }
}

async fn until_shutdown(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Controls a running gateway: reload its configuration, stop it.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("listen", &self.shared.listen)
            .finish()
    }
}

impl Handle {
    /// Stops accepting connections and drains in-flight requests (what SIGTERM
    /// and SIGINT do).
    pub fn shutdown(&self) {
        self.shared.shutdown.send_replace(true);
    }

    /// Reads the configuration file again and, if it compiles, swaps it in (what
    /// SIGHUP does). Every problem of an invalid file is logged; the running
    /// configuration stays.
    pub fn reload(&self) -> ReloadOutcome {
        reload::reload(&self.shared, false)
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.is_shutting_down()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every open client connection keeps its task, idle ones too: its size
    /// is most of what an idle HTTP/1.1 connection costs (`bench/idle.sh`).
    /// It was 3,496 bytes while the TLS handshake's state sat inline, in
    /// cleartext connections too, and the idle wait was a `select!` of four
    /// futures.
    #[tokio::test]
    async fn a_connection_task_takes_at_most_a_kibibyte() {
        let text = r#"
[server]
listen = "127.0.0.1:0"
[server.cors]
allow_origins = ["https://app.example.com"]
[[route]]
path = "/"
upstream = "http://127.0.0.1:9"
"#;
        let gateway = corsgate_config::check(text).gateway.expect("valid");
        let server = Server::bind(gateway, Options::new()).await.unwrap();
        let _client = tokio::net::TcpStream::connect(server.local_addr())
            .await
            .unwrap();
        let (stream, remote) = server.listener.accept().await.unwrap();
        let (_force, forced) = watch::channel(false);
        let (drain, _drained) = mpsc::channel(1);
        let permit = server.shared.connections.clone().acquire_owned().await;
        let task = connection_task(
            server.shared.clone(),
            stream,
            remote,
            forced,
            permit.unwrap(),
            drain,
        );
        let size = std::mem::size_of_val(&task);
        assert!(size <= 1024, "a connection's task takes {size} bytes");
    }
}
