//! `corsgate check FILE`: every error and warning of a configuration file.

use std::io::Write;

use anyhow::Context;
use std::path::Path;

use crate::{Format, Outcome};
use corsgate_config as config;

/// Checks `file` and prints what it finds to `out`.
pub fn run(file: &Path, format: Format, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let checked = config::check(&text);
    let name = file.display().to_string();
    match format {
        Format::Human => {
            for problem in &checked.problems {
                writeln!(out, "{name}:{problem}")?;
            }
            let summary = checked.summary();
            if summary.errors == 0 {
                let warnings = summary.warnings;
                writeln!(
                    out,
                    "{name}: valid ({warnings} warning{})",
                    plural(warnings)
                )?;
            } else {
                writeln!(out, "{name}: invalid ({summary})")?;
            }
        }
        Format::Json => {
            let report = serde_json::json!({
                "file": name,
                "valid": !checked.has_errors(),
                "problems": checked.problems,
            });
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)?;
        }
    }
    Ok(if checked.has_errors() {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
