//! `corsgate serve`: run the gateway, with signals, logs and the start-up banner.

use std::io::Write;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::cli::ServeArgs;
use crate::logwriter::{self, LogWriter};
use crate::{Format, Outcome};
use corsgate_config::{self as config, GatewayConfig, Upstream};
use corsgate_gateway::{AccessLogLines, Handle, LineFormat, Options, Server};

/// Runs the gateway until SIGTERM or SIGINT.
pub fn run(args: &ServeArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    if args.print_default_config {
        // A starting point for production, never the demo's development
        // policy (debug mode, any localhost port with credentials), which a
        // copy would carry into production unnoticed.
        out.write_all(config::STARTING_CONFIG.as_bytes())?;
        return Ok(Outcome::Clean);
    }
    // Held to the end: dropping it writes out the lines still queued.
    let _log_guard = init_logging(args.log_format)?;
    let (name, text) = match &args.config {
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?,
        ),
        #[cfg(feature = "demo")]
        None => (
            "built-in configuration".to_owned(),
            config::DEFAULT_CONFIG.to_owned(),
        ),
        #[cfg(not(feature = "demo"))]
        None => bail!(
            "no configuration file: this build has no built-in demo; run `corsgate serve --config FILE`"
        ),
    };
    let checked = config::check(&text);
    let Some(gateway) = checked.gateway else {
        let mut stderr = std::io::stderr().lock();
        for problem in &checked.problems {
            writeln!(stderr, "{name}:{problem}")?;
        }
        let errors = checked.summary().errors;
        bail!(
            "{name}: invalid configuration ({errors} error{}); nothing started",
            if errors == 1 { "" } else { "s" }
        );
    };
    if let Some(path) = &args.config {
        // The CA files and client certificates of https:// upstreams, every
        // problem at its line, as `check` reports them.
        let base = path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let found = corsgate_gateway::check_upstream_tls(&gateway, base);
        if !found.is_empty() {
            let parsed = config::load::parse(&text);
            let mut stderr = std::io::stderr().lock();
            for problem in &found {
                writeln!(stderr, "{name}:{}", parsed.source.locate(problem.clone()))?;
            }
            bail!(
                "{name}: an upstream's TLS files do not load ({} error{}); nothing started",
                found.len(),
                if found.len() == 1 { "" } else { "s" }
            );
        }
    }
    for problem in &gateway.warnings {
        tracing::warn!("{name}:{problem}");
    }
    let runtime = runtime(threads(args.threads))?;
    let demo = args.config.is_none();
    let mut options = Options::new().log_lines_dropped(log_lines_dropped);
    if let Some(lines) = access_log_lines(args.log_format) {
        options = options.access_log_lines(lines);
    }
    if let Some(path) = &args.config {
        options = options
            .config_path(path.clone())
            .watch(true)
            // The watcher starts from the text compiled above, never a second read.
            .config_text(text.clone());
    }
    if let Some(listen) = args.listen {
        options = options.listen(listen);
    }
    if let Some(admin) = args.admin_listen {
        options = options.admin_listen(admin);
    }
    if let Some(shadow) = &args.shadow {
        options = options.shadow(shadow.clone());
    }
    let format = args.log_format;
    let result = runtime.block_on(async move {
        let banner = banner(&gateway, demo, format);
        let server = Server::bind(gateway, options).await?;
        let text = banner(server.local_addr(), server.admin_addr());
        out.write_all(text.as_bytes())?;
        out.flush()?;
        tracing::info!(listen = %server.local_addr(), "corsgate started");
        tokio::spawn(signals(server.handle()));
        server.run().await?;
        anyhow::Ok(())
    });
    // Do not wait for connections past their shutdown_timeout.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result.map(|()| Outcome::Clean)
}

/// The number of worker threads: asked for, or `TOKIO_WORKER_THREADS`, or the
/// CPUs this process may run on (its affinity mask and CPU quota count).
fn threads(asked: Option<NonZeroUsize>) -> NonZeroUsize {
    asked
        .or_else(|| {
            std::env::var("TOKIO_WORKER_THREADS")
                .ok()
                .and_then(|v| v.trim().parse().ok())
        })
        .or_else(|| std::thread::available_parallelism().ok())
        .unwrap_or(NonZeroUsize::MIN)
}

/// One thread runs everything on tokio's current-thread scheduler, which hands
/// nothing between threads: on one CPU it serves a request with less work than
/// the multi-thread scheduler with one worker.
fn runtime(threads: NonZeroUsize) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if threads.get() == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads.get());
        builder
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The log writer, for `corsgate_log_lines_dropped_total`.
static LOG_WRITER: OnceLock<LogWriter> = OnceLock::new();

/// Log lines dropped since start because the log output did not keep up.
fn log_lines_dropped() -> u64 {
    LOG_WRITER.get().map_or(0, LogWriter::dropped_lines)
}

/// Logs to stderr through a bounded buffer and a thread of its own
/// ([`crate::logwriter`]): a log pipe that stops draining (a stalled shipper, a
/// full journald socket, `| less`) costs dropped lines, never a blocked worker
/// thread, and an access-log line costs a copy, not a thread wake-up.
fn init_logging(format: Format) -> anyhow::Result<logwriter::Guard> {
    use tracing_subscriber::EnvFilter;
    let (writer, guard) =
        logwriter::start(std::io::stderr()).context("cannot start the log writer thread")?;
    let _ = LOG_WRITER.set(writer.clone());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    let _ = match format {
        Format::Human => builder.with_target(false).try_init(),
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    Ok(guard)
}

/// The access log written straight into the log buffer, formatted by the
/// gateway as the subscriber would format it, at a fraction of the cost;
/// `None` on a terminal, where the subscriber's ANSI colours are kept.
fn access_log_lines(format: Format) -> Option<AccessLogLines> {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return None;
    }
    let writer = LOG_WRITER.get()?.clone();
    let format = match format {
        Format::Human => LineFormat::Text,
        Format::Json => LineFormat::Json,
    };
    Some(AccessLogLines::new(format, move |line: &[u8]| {
        writer.write_line(line);
    }))
}

/// One route as the banner shows it.
struct BannerRoute {
    path: String,
    host: Option<String>,
    upstream: String,
    cors_off: bool,
}

/// The start-up text: addresses, routes, and for the demo, commands to try. In
/// the log format: lines of text, or one JSON object on one line
/// (`--log-format json`), so that whatever reads the output parses it too.
fn banner(
    gateway: &GatewayConfig,
    demo: bool,
    format: Format,
) -> impl FnOnce(SocketAddr, Option<SocketAddr>) -> String + use<> {
    let routes: Vec<BannerRoute> = {
        let mut routes: Vec<_> = gateway.routes.iter().collect();
        routes.sort_by_key(|r| r.index);
        routes
            .iter()
            .map(|r| BannerRoute {
                path: r.path.clone(),
                host: r.host.clone(),
                upstream: match &r.upstream {
                    Upstream::Http {
                        authority,
                        transport,
                    } => format!("{}://{authority}", transport.scheme()),
                    Upstream::Demo => "builtin:demo".to_owned(),
                },
                cors_off: r.policy.is_none(),
            })
            .collect()
    };
    let demo_path = gateway
        .routes
        .iter()
        .find(|r| r.upstream == Upstream::Demo)
        .map(|r| r.path.trim_end_matches('/').to_owned());
    // With [server.tls] the listener speaks only TLS: say so, so that the
    // address in the banner and its curl commands work as printed.
    let scheme = if gateway.settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    move |listen, admin| {
        let base = format!("{scheme}://{}", reachable(listen));
        let admin = admin.map(|admin| format!("http://{}", reachable(admin)));
        let try_url = match (demo, demo_path) {
            (true, Some(prefix)) => Some(format!("{base}{prefix}/items")),
            _ => None,
        };
        let preflight = |url: &str| {
            format!(
                "curl -i -X OPTIONS {url} -H 'Origin: http://localhost:3000' -H 'Access-Control-Request-Method: PUT' -H 'Access-Control-Request-Headers: content-type'"
            )
        };
        let actual = |url: &str| format!("curl -i {url} -H 'Origin: http://localhost:3000'");
        if format == Format::Json {
            let mut object = serde_json::json!({
                "message": "corsgate listening",
                "version": env!("CARGO_PKG_VERSION"),
                "listen": base,
                "admin": admin,
                "admin_paths": if admin.is_some() { admin_paths() } else { Vec::new() },
                "routes": routes.iter().map(|r| serde_json::json!({
                    "path": r.path,
                    "host": r.host,
                    "upstream": r.upstream,
                    "cors": if r.cors_off { "off" } else { "on" },
                })).collect::<Vec<_>>(),
            });
            if let Some(url) = &try_url {
                object["try"] = serde_json::json!([preflight(url), actual(url)]);
            }
            return format!("{object}\n");
        }
        let mut text = format!(
            "corsgate {} listening on {base}\n",
            env!("CARGO_PKG_VERSION")
        );
        if let Some(admin) = admin {
            // Every endpoint the admin router answers, from its own table.
            text.push_str(&format!("admin: {admin}/"));
            for path in admin_paths().iter().filter(|p| **p != "/") {
                text.push(' ');
                text.push_str(path);
            }
            text.push('\n');
        }
        text.push_str("routes:\n");
        for r in &routes {
            let host = r
                .host
                .as_deref()
                .map(|h| format!(" (host {h})"))
                .unwrap_or_default();
            let upstream = if r.upstream == "builtin:demo" {
                "the built-in demo API"
            } else {
                &r.upstream
            };
            let cors = if r.cors_off { ", CORS off" } else { "" };
            text.push_str(&format!("  {}{host} -> {upstream}{cors}\n", r.path));
        }
        if let Some(url) = try_url {
            text.push_str(&format!(
                "\nBuilt-in demo configuration, a development policy (`corsgate serve --print-default-config` prints a starting point for production).\n\
                 Try a preflight, as a page on http://localhost:3000 would send before a PUT:\n\
                 \x20 {}\n\
                 and an actual request:\n\
                 \x20 {}\n",
                preflight(&url),
                actual(&url)
            ));
        }
        text
    }
}

/// The admin listener's paths the banner names, once each, in the order of
/// the gateway's endpoint table.
fn admin_paths() -> Vec<&'static str> {
    let mut paths: Vec<&'static str> = Vec::new();
    for endpoint in corsgate_gateway::admin_endpoints() {
        if endpoint.listed() && !paths.contains(&endpoint.path()) {
            paths.push(endpoint.path());
        }
    }
    paths
}

/// An address a local client can connect to (`0.0.0.0` is not one).
fn reachable(addr: SocketAddr) -> SocketAddr {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// SIGHUP reloads; SIGTERM and SIGINT drain and stop; a second one stops now.
async fn signals(handle: Handle) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut hup), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        loop {
            let name = tokio::select! {
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let handle = handle.clone();
                    let _ = tokio::task::spawn_blocking(move || handle.reload()).await;
                    continue;
                }
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            stop(&handle, name);
        }
    }
    #[cfg(not(unix))]
    loop {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        stop(&handle, "Ctrl-C");
    }
}

fn stop(handle: &Handle, signal: &str) {
    if handle.is_shutting_down() {
        tracing::warn!("{signal} again: stopping now, without waiting for requests in flight");
        std::process::exit(130);
    }
    tracing::info!("{signal}: stopping");
    handle.shutdown();
}

#[cfg(test)]
mod tests {
    use super::*;

    // A build without the demo printed the demo configuration, which that build
    // refuses to serve (its route's upstream is `builtin:demo`).
    #[test]
    fn printed_default_config_is_one_this_build_serves() {
        let mut out = Vec::new();
        let args = ServeArgs {
            print_default_config: true,
            ..ServeArgs::default()
        };
        run(&args, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let checked = config::check(&text);
        let gateway = checked.gateway.expect("the printed configuration is valid");
        assert!(gateway.warnings.is_empty(), "{:?}", gateway.warnings);
        assert_eq!(text, config::STARTING_CONFIG);
        assert!(
            gateway.routes.iter().all(|r| r.upstream != Upstream::Demo),
            "{text}"
        );
    }
}
