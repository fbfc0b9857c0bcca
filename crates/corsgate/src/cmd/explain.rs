//! `corsgate explain`: loads a configuration and prints what a browser would do
//! with a request against it. The simulation itself is the `corsgate-explain`
//! crate, which the gateway's admin listener shares.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, bail};
use corsgate_config as config;

pub use corsgate_explain::*;

use crate::{Format, Outcome};

/// `corsgate explain`: loads the configuration and prints the explanation.
pub fn run(
    config_file: Option<&Path>,
    request: &PageRequest,
    engines: &[Engine],
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    check_page_origin(&request.origin).map_err(|err| anyhow!("--origin {err}"))?;
    let (name, text) = match config_file {
        Some(path) => crate::cmd::check::read_config(path)?,
        None => (
            "(default config)".to_owned(),
            config::DEFAULT_CONFIG.to_owned(),
        ),
    };
    let checked = config::check(&text);
    let Some(gateway) = checked.gateway else {
        let mut message = format!("{name} is invalid; run corsgate check");
        for problem in checked.problems.iter().filter(|p| p.diagnostic.is_error()) {
            let _ = write!(message, "\n  {}", format_args!("{name}:{problem}"));
        }
        bail!(message);
    };
    let raw = config::load::parse(&text).config.unwrap_or_default();
    let mut explanation = explain(&gateway, &raw, request)?;
    explanation.retain_engines(engines);
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &explanation)?;
            writeln!(out)?;
        }
        Format::Human => out.write_all(render(&explanation).as_bytes())?,
    }
    // A finding when the request fails in the standard's reading (Chromium's)
    // or in any engine asked about.
    let refused = |v: Verdict| matches!(v, Verdict::Blocked | Verdict::RefusedByBrowser);
    let any_engine = explanation
        .engines
        .iter()
        .any(|e| e.verdict.is_some_and(refused));
    Ok(if refused(explanation.verdict) || any_engine {
        Outcome::Findings
    } else {
        Outcome::Clean
    })
}
