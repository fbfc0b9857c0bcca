//! The corsgate binary: parses the command line, dispatches, and maps outcomes to
//! exit codes (0 clean, 1 findings, 2 error), printing errors with their causes.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use corsgate::Outcome;
use corsgate::cli::{Cli, Command};
use corsgate::cmd;

// jemalloc by default (feature `jemalloc`), mimalloc with `mimalloc`, the
// system's with neither; bench/RESULTS.md ("Allocators") has the measurements
// behind the default.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    let result = match cli.command {
        Command::Check {
            file,
            config,
            format,
        } => cmd::check::run(file.or(config).as_deref(), format, &mut stdout),
        Command::Serve(args) => cmd::serve::run(&args, &mut stdout),
        #[cfg(feature = "tools")]
        Command::Explain(args) => cmd::explain::run(
            args.config.as_deref(),
            &args.request(),
            &cmd::explain::ClientArgs {
                client: args.client.as_deref(),
                data: args.data.as_deref(),
                clients: args.clients.as_deref(),
            },
            &args.engines(),
            args.format,
            &mut stdout,
        ),
        #[cfg(feature = "tools")]
        Command::Audit(args) => {
            let options = cmd::audit::Options {
                url: args.url,
                origins: args.origins,
                max_requests: args.max_requests,
                timeout: std::time::Duration::from_secs(args.timeout),
                methods: args.methods,
                headers: args.headers,
                resolve: args.resolve,
            };
            cmd::audit::run(&options, args.format, args.fail_on, &mut stdout)
        }
        #[cfg(feature = "tools")]
        Command::Import { from, file } => {
            cmd::import::run(from, &file, &mut stdout, &mut std::io::stderr().lock())
        }
        Command::Completions { shell } => cmd::completions::completions(shell, &mut stdout),
        Command::Man { out_dir } => cmd::completions::man(out_dir.as_deref(), &mut stdout),
        Command::Clients(command) => cmd::clients::run_clients(&command, &mut stdout),
        Command::Registry(command) => cmd::clients::run_registry(&command, &mut stdout),
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
