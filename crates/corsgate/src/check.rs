//! `corsgate check FILE`: every error and warning of a configuration file.

use std::io::Write;

use anyhow::Context;
use std::path::Path;

use corsgate_policy::Severity;

use crate::config::{self, Located};
use crate::{Format, Outcome};

/// Checks `file` and prints what it finds to `out`.
pub fn run(file: &Path, format: Format, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let checked = config::check(&text);
    let name = file.display().to_string();
    match format {
        Format::Human => {
            for problem in &checked.problems {
                writeln!(out, "{}", human_line(&name, problem))?;
            }
            let errors = checked
                .problems
                .iter()
                .filter(|p| p.diagnostic.is_error())
                .count();
            let warnings = checked.problems.len() - errors;
            if errors == 0 {
                writeln!(
                    out,
                    "{name}: valid ({warnings} warning{})",
                    plural(warnings)
                )?;
            } else {
                writeln!(
                    out,
                    "{name}: invalid ({errors} error{}, {warnings} warning{})",
                    plural(errors),
                    plural(warnings)
                )?;
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

/// `FILE:LINE:COL: path: severity: "value": message`.
pub fn human_line(file: &str, problem: &Located) -> String {
    let d = &problem.diagnostic;
    let severity = match d.severity() {
        Severity::Error => "error",
        _ => "warning",
    };
    let path = if d.path().is_empty() {
        String::new()
    } else {
        format!("{}: ", d.path())
    };
    let value = d.value().map(|v| format!("{v:?}: ")).unwrap_or_default();
    format!(
        "{file}:{}:{}: {path}{severity}: {value}{}",
        problem.line,
        problem.column,
        d.message()
    )
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
