//! corsgate, the gateway and tools: configuration, the reverse proxy, and the
//! `check`, `explain`, `audit` and `import` commands. The binary in `main.rs` only
//! parses the command line and dispatches here.

pub mod audit;
pub mod check;
pub mod explain;
pub mod import;
pub mod serve;

/// Human or machine output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
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
