//! The command line, declared with clap: `main.rs` parses it and dispatches to
//! [`crate::cmd`].

use std::path::PathBuf;

#[cfg(feature = "tools")]
use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::{Parser, Subcommand};

use crate::Format;

#[derive(Parser)]
#[command(
    name = "corsgate",
    version,
    about = "CORS done right: a CORS-terminating gateway and tools"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Check a configuration file: every error and warning, with line and column.
    Check {
        /// The TOML file (`-`: standard input).
        file: Option<PathBuf>,
        /// The TOML file, as `serve` and `explain` take it; without FILE or
        /// this, `CORSGATE_CONFIG`.
        #[arg(
            short = 'c',
            long = "config",
            env = "CORSGATE_CONFIG",
            value_name = "FILE"
        )]
        config: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Run the gateway: a CORS-terminating reverse proxy. Without --config, a
    /// built-in demo API behind a development policy.
    #[cfg_attr(
        not(feature = "demo"),
        command(
            about = "Run the gateway: a CORS-terminating reverse proxy, on the file given by --config"
        )
    )]
    Serve(ServeArgs),
    #[cfg(feature = "tools")]
    /// Predict what a browser does with a request: preflight, answers, verdict,
    /// Chromium's console message, and the fix. Exit 0 allowed, 1 blocked.
    Explain(ExplainArgs),
    #[cfg(feature = "tools")]
    /// Probe a live HTTP server for CORS misconfigurations, as an attacker would.
    /// Exit 1 when a finding is at or above --fail-on.
    Audit(AuditArgs),
    #[cfg(feature = "tools")]
    /// Convert another product's CORS settings into a corsgate configuration:
    /// the TOML on stdout, notes on stderr. Exit 1 when it cannot pass check.
    Import {
        /// The source format.
        #[arg(long = "from", value_enum, value_name = "FORMAT")]
        from: crate::cmd::import::Source,
        /// The file to convert (`-`: standard input).
        file: PathBuf,
    },
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write one page per command into a directory.
    #[command(hide = true)]
    Man {
        /// Write corsgate.1, corsgate-check.1, … into this directory instead.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Read and write the OAuth2 clients of the registry and their origins,
    /// through a gateway's admin API (--admin URL) or in the database itself;
    /// import them from Ory Hydra, export them.
    #[command(subcommand)]
    Clients(crate::cmd::clients::ClientsCommand),
    /// The registry's database: status, migrate, check its stored origins.
    #[command(subcommand)]
    Registry(crate::cmd::clients::RegistryCommand),
}

#[cfg(feature = "tools")]
#[derive(clap::Args)]
pub struct AuditArgs {
    /// The URL to probe (plain http://).
    pub url: String,
    /// An origin the server is meant to allow (repeatable).
    #[arg(long = "origin", value_name = "TRUSTED")]
    pub origins: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Most requests to send.
    #[arg(long, default_value_t = crate::cmd::audit::DEFAULT_MAX_REQUESTS)]
    pub max_requests: usize,
    /// Seconds to wait for each response.
    #[arg(long, value_name = "SECS", default_value_t = crate::cmd::audit::DEFAULT_TIMEOUT_SECS)]
    pub timeout: u64,
    /// Exit 1 when a finding is at least this severe.
    #[arg(long, value_enum, default_value_t = crate::cmd::audit::Severity::High)]
    pub fail_on: crate::cmd::audit::Severity,
    /// A method to send besides GET and OPTIONS (repeatable).
    #[arg(long = "method", value_name = "M")]
    pub methods: Vec<String>,
    /// A header for the actual requests, NAME:VALUE (repeatable), such as a cookie.
    #[arg(long = "header", value_name = "NAME:VALUE")]
    pub headers: Vec<String>,
    /// Connect to ADDR for the URL's HOST and PORT, as curl's --resolve: audit a
    /// gateway that routes by host before DNS points at it (repeatable).
    #[arg(long = "resolve", value_name = "HOST:PORT:ADDR")]
    pub resolve: Vec<String>,
}

/// What `corsgate serve` was asked to do: declared once, here; `cmd::serve`
/// takes it as it is.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// The configuration file (default: `CORSGATE_CONFIG`, else the built-in
    /// demo configuration).
    #[arg(short = 'c', long, env = "CORSGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format (logs go to stderr).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub log_format: Format,
    /// Print a starting point for a production configuration file (loopback
    /// admin listener, no debug mode, no credentials, a closed login route),
    /// and exit.
    #[arg(long)]
    pub print_default_config: bool,
    /// Listen on this address instead of the configuration's `listen`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Serve /metrics, /healthz, /readyz and /config on this address instead of
    /// the configuration's `admin_listen`.
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<std::net::SocketAddr>,
    /// Worker threads (default: `TOKIO_WORKER_THREADS`, or one per CPU this
    /// process may run on). With 1, everything runs on one thread.
    #[arg(long, value_name = "N")]
    pub threads: Option<std::num::NonZeroUsize>,
    /// A candidate configuration that decides every CORS request beside the
    /// live one and is never enforced; GET /shadow on the admin listener shows
    /// where they differ. Wins over the file's `shadow_config`.
    #[arg(long, value_name = "FILE")]
    pub shadow: Option<PathBuf>,
}

#[cfg(feature = "tools")]
#[derive(clap::Args)]
pub struct ExplainArgs {
    /// The configuration (`-`: standard input; default: `CORSGATE_CONFIG`,
    /// else the built-in demo configuration).
    #[arg(short = 'c', long, env = "CORSGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The URL the page fetches.
    #[arg(long)]
    pub url: String,
    /// The page's origin.
    #[arg(long)]
    pub origin: String,
    /// The request method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// A request header the page sets, NAME or NAME:VALUE (repeatable).
    #[arg(long = "header", value_name = "NAME[:VALUE]")]
    pub headers: Vec<String>,
    /// The request's credentials mode.
    #[arg(
        long,
        default_value = "same-origin",
        value_parser = PossibleValuesParser::new(corsgate_explain::Credentials::NAMES)
            .try_map(|s| s.parse::<corsgate_explain::Credentials>()),
    )]
    pub credentials: corsgate_explain::Credentials,
    /// fetch() or XMLHttpRequest (changes Chromium's wording).
    #[arg(
        long,
        default_value = "fetch",
        value_parser = PossibleValuesParser::new(corsgate_explain::Initiator::NAMES)
            .try_map(|s| s.parse::<corsgate_explain::Initiator>()),
    )]
    pub initiator: corsgate_explain::Initiator,
    /// Whose verdict and console messages to predict: one engine, or all.
    #[arg(
        long,
        default_value = "all",
        value_parser = PossibleValuesParser::new(["chromium", "firefox", "webkit", "all"]),
    )]
    pub browser: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// On a client-scoped route: the OAuth2 client the request names, instead
    /// of what the route's identification sources find.
    #[arg(long, value_name = "ID")]
    pub client: Option<String>,
    /// The request body, read by the `form` source (with `--header
    /// 'Content-Type: application/x-www-form-urlencoded'`).
    #[arg(long, value_name = "BODY")]
    pub data: Option<String>,
    /// The registry from a file (`corsgate clients export`, or a gateway's
    /// `snapshot_file`) instead of the configured database.
    #[arg(long, value_name = "FILE", visible_alias = "registry-snapshot")]
    pub clients: Option<PathBuf>,
}

#[cfg(feature = "tools")]
impl ExplainArgs {
    /// The engines `--browser` names.
    pub fn engines(&self) -> Vec<corsgate_explain::Engine> {
        match self.browser.parse() {
            Ok(engine) => vec![engine],
            Err(_) => corsgate_explain::Engine::ALL.to_vec(),
        }
    }

    pub fn request(&self) -> crate::cmd::explain::PageRequest {
        let headers = self
            .headers
            .iter()
            .map(|h| match h.split_once(':') {
                Some((name, value)) => (name.trim().to_owned(), value.trim().to_owned()),
                None => (h.trim().to_owned(), "x".to_owned()),
            })
            .collect();
        crate::cmd::explain::PageRequest {
            url: self.url.clone(),
            origin: self.origin.clone(),
            method: self.method.clone(),
            headers,
            credentials: self.credentials,
            initiator: self.initiator,
        }
    }
}
