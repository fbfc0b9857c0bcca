//! The corsgate binary: parses the command line, dispatches, and maps outcomes to
//! exit codes (0 clean, 1 findings, 2 error), printing errors with their causes.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use corsgate::{Format, Outcome, check};

#[derive(Parser)]
#[command(
    name = "corsgate",
    version,
    about = "CORS done right: a CORS-terminating gateway and tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a configuration file: every error and warning, with line and column.
    Check {
        /// The TOML file.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Run the gateway: a CORS-terminating reverse proxy. Without --config, a
    /// built-in demo API behind a development policy.
    Serve(ServeArgs),
    /// Predict what a browser does with a request: preflight, answers, verdict,
    /// Chromium's console message, and the fix. Exit 0 allowed, 1 blocked.
    Explain(ExplainArgs),
    /// Probe a live HTTP server for CORS misconfigurations, as an attacker would.
    /// Exit 1 when a finding is at or above --fail-on.
    Audit(AuditArgs),
    /// Convert another product's CORS settings into a corsgate configuration:
    /// the TOML on stdout, notes on stderr. Exit 1 when it cannot pass check.
    Import {
        /// The source format.
        #[arg(long = "from", value_enum, value_name = "FORMAT")]
        from: corsgate::import::Source,
        /// The file to convert.
        file: PathBuf,
    },
}

#[derive(clap::Args)]
struct AuditArgs {
    /// The URL to probe (plain http://).
    url: String,
    /// An origin the server is meant to allow (repeatable).
    #[arg(long = "origin", value_name = "TRUSTED")]
    origins: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Most requests to send.
    #[arg(long, default_value_t = corsgate::audit::DEFAULT_MAX_REQUESTS)]
    max_requests: usize,
    /// Seconds to wait for each response.
    #[arg(long, value_name = "SECS", default_value_t = corsgate::audit::DEFAULT_TIMEOUT_SECS)]
    timeout: u64,
    /// Exit 1 when a finding is at least this severe.
    #[arg(long, value_enum, default_value_t = corsgate::audit::Severity::High)]
    fail_on: corsgate::audit::Severity,
    /// A method to send besides GET and OPTIONS (repeatable).
    #[arg(long = "method", value_name = "M")]
    methods: Vec<String>,
    /// A header for the actual requests, NAME:VALUE (repeatable), such as a cookie.
    #[arg(long = "header", value_name = "NAME:VALUE")]
    headers: Vec<String>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The configuration file (default: the built-in demo configuration).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Log format (logs go to stderr).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    log_format: Format,
    /// Print the built-in configuration, a starting point for yours, and exit.
    #[arg(long)]
    print_default_config: bool,
    /// Listen on this address instead of the configuration's `listen`.
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Serve /metrics, /healthz, /readyz and /config on this address instead of
    /// the configuration's `admin_listen`.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<std::net::SocketAddr>,
    /// Worker threads (default: `TOKIO_WORKER_THREADS`, or one per CPU this
    /// process may run on). With 1, everything runs on one thread.
    #[arg(long, value_name = "N")]
    threads: Option<std::num::NonZeroUsize>,
}

#[derive(clap::Args)]
struct ExplainArgs {
    /// The configuration (default: the built-in demo configuration).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The URL the page fetches.
    #[arg(long)]
    url: String,
    /// The page's origin.
    #[arg(long)]
    origin: String,
    /// The request method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// A request header the page sets, NAME or NAME:VALUE (repeatable).
    #[arg(long = "header", value_name = "NAME[:VALUE]")]
    headers: Vec<String>,
    /// The request's credentials mode.
    #[arg(long, value_enum, default_value_t = corsgate::explain::Credentials::SameOrigin)]
    credentials: corsgate::explain::Credentials,
    /// fetch() or XMLHttpRequest (changes Chromium's wording).
    #[arg(long, value_enum, default_value_t = corsgate::explain::Initiator::Fetch)]
    initiator: corsgate::explain::Initiator,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
}

impl ExplainArgs {
    fn request(&self) -> corsgate::explain::PageRequest {
        let headers = self
            .headers
            .iter()
            .map(|h| match h.split_once(':') {
                Some((name, value)) => (name.trim().to_owned(), value.trim().to_owned()),
                None => (h.trim().to_owned(), "x".to_owned()),
            })
            .collect();
        corsgate::explain::PageRequest {
            url: self.url.clone(),
            origin: self.origin.clone(),
            method: self.method.clone(),
            headers,
            credentials: self.credentials,
            initiator: self.initiator,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    let result = match cli.command {
        Command::Check { file, format } => check::run(&file, format, &mut stdout),
        Command::Serve(args) => corsgate::serve::run(
            &corsgate::serve::ServeArgs {
                config: args.config,
                log_format: Some(args.log_format),
                print_default_config: args.print_default_config,
                listen: args.listen,
                admin_listen: args.admin_listen,
                threads: args.threads,
            },
            &mut stdout,
        ),
        Command::Explain(args) => corsgate::explain::run(
            args.config.as_deref(),
            &args.request(),
            args.format,
            &mut stdout,
        ),
        Command::Audit(args) => {
            let options = corsgate::audit::Options {
                url: args.url,
                origins: args.origins,
                max_requests: args.max_requests,
                timeout: std::time::Duration::from_secs(args.timeout),
                methods: args.methods,
                headers: args.headers,
            };
            corsgate::audit::run(&options, args.format, args.fail_on, &mut stdout)
        }
        Command::Import { from, file } => {
            corsgate::import::run(from, &file, &mut stdout, &mut std::io::stderr().lock())
        }
    };
    let _ = stdout.flush();
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Findings) => ExitCode::from(1),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS, // `| head`: the reader left
        Err(err) => {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "corsgate: {err}");
            for cause in err.chain().skip(1) {
                let _ = writeln!(stderr, "  caused by: {cause}");
            }
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        let kind = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => Some(io.kind()),
            None => cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind),
        };
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}
