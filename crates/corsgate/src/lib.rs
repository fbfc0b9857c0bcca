//! The corsgate command line: [`cli`] declares it, [`cmd`] holds one module per
//! command (`serve` runs `corsgate-gateway` on a `corsgate-config` file). The
//! binary in `main.rs` parses, dispatches here and chooses the exit code;
//! [`logwriter`] carries `serve`'s log lines to stderr.

pub mod cli;
pub mod cmd;
pub mod logwriter;

/// Human or machine output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Lines for a person to read.
    #[default]
    Human,
    /// JSON, for scripts.
    Json,
}

/// How a command ended, short of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing wrong (exit 0).
    Clean,
    /// Something found: an invalid file, a blocked request, a finding (exit 1).
    Findings,
}
