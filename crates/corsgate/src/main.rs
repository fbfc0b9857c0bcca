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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    let result = match cli.command {
        Command::Check { file, format } => check::run(&file, format, &mut stdout),
    };
    let _ = stdout.flush();
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Findings) => ExitCode::from(1),
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
