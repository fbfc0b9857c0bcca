//! One module per command. `check` and `serve` are always built; the tools
//! (`explain`, `audit`, `import`) only with the `tools` feature.

#[cfg(feature = "tools")]
pub mod audit;
pub mod check;
pub mod clients;
pub mod completions;
#[cfg(feature = "tools")]
pub mod explain;
#[cfg(feature = "tools")]
pub mod import;
pub mod serve;
