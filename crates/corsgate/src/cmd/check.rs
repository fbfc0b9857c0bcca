//! `corsgate check FILE`: every error and warning of a configuration file.

use std::io::{Read, Write};

use anyhow::{Context, bail};
use std::path::Path;

use crate::{Format, Outcome};
use corsgate_config as config;

/// Reads a configuration: `-` is standard input, named `<stdin>` in messages.
/// Returns the name to print and the text.
pub fn read_config(path: &Path) -> anyhow::Result<(String, String)> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .lock()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        return Ok(("<stdin>".to_owned(), text));
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok((path.display().to_string(), text))
}

/// Checks `file` (`None`: none given, nor `CORSGATE_CONFIG`) and prints what it
/// finds to `out`.
pub fn run(file: Option<&Path>, format: Format, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let Some(file) = file else {
        bail!(
            "no file to check: give one (corsgate check FILE, or - for standard input), -c FILE, or set CORSGATE_CONFIG"
        );
    };
    let (name, text) = read_config(file)?;
    let mut checked = config::check(&text);
    // Relative paths are read from the file's directory, as `serve` reads
    // them.
    let base = file
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    load_files(&mut checked, &text, base);
    if checked.has_errors() {
        // Another product's file: its own keys are a page of unknown-key
        // errors, when one line can say which importer reads it.
        if let Some((product, from)) = foreign(&text) {
            checked.problems = vec![config::Located::file_error(
                1,
                1,
                format!(
                    "this is {product}, not a corsgate configuration; convert it with: corsgate import --from {from} {}",
                    if name == "<stdin>" { "-" } else { &name }
                ),
            )];
        }
    }
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

/// Whether `text` is the configuration of a product `import` reads: what it is,
/// and the `--from` that reads it.
fn foreign(text: &str) -> Option<(&'static str, &'static str)> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let starts = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));
    // Kubernetes manifests (also `kubectl get … -o yaml`, whose items are indented).
    let kind = |name: &str| {
        lines.iter().any(|l| {
            l.strip_prefix("kind:")
                .or_else(|| l.strip_prefix("- kind:"))
                .is_some_and(|k| k.trim().trim_matches(['"', '\'']) == name)
        })
    };
    if starts("apiVersion:") || starts("- apiVersion:") {
        if kind("Ingress") {
            return Some(("a Kubernetes Ingress manifest", "ingress-nginx"));
        }
        if kind("HTTPRoute") {
            return Some(("a Kubernetes Gateway API HTTPRoute manifest", "gateway-api"));
        }
    }
    // Ory Kratos or Hydra: YAML with `serve:` at the top level.
    if text.lines().any(|l| l.trim_end() == "serve:") {
        return Some(("an Ory Kratos or Hydra configuration", "kratos"));
    }
    // nginx: directives end with `;` or open a block with `{`.
    const NGINX: &[&str] = &[
        "server",
        "location",
        "add_header",
        "proxy_pass",
        "map",
        "http",
        "upstream",
        "listen",
        "server_name",
        "if",
        "return",
        "include",
    ];
    let nginx = lines.iter().any(|l| {
        let first = l.split_whitespace().next().unwrap_or_default();
        NGINX.contains(&first) && !l.contains(" = ") && (l.ends_with(';') || l.ends_with('{'))
    });
    if nginx {
        return Some(("an nginx configuration", "nginx"));
    }
    // The two TOML products: License Monitor's `[api]` with `cors_*` keys,
    // Nexus's `[server]` with `listen_address` (and no route).
    if starts("[api]") && starts("cors_") {
        return Some(("a License Monitor configuration", "license-monitor"));
    }
    if starts("listen_address") && !starts("[[route]]") {
        return Some(("a Nexus configuration", "nexus"));
    }
    None
}

/// The files a valid configuration names, loaded as `serve` loads them
/// (the gateway's own code: no second reader), every problem added to
/// `checked` at its key's line and column in `text`; relative paths from
/// `base`. `[server.tls]`: each certificate (key matches certificate, chain
/// parses) and those expiring within 14 days; `[route.upstream_tls]`: the
/// CA file and the client certificate of each `https://` upstream;
/// `[registry]`: a PostgreSQL registry's password, CA and client certificate
/// files. `import` runs it on its output too.
pub(crate) fn load_files(checked: &mut config::Checked, text: &str, base: &Path) {
    let Some(gateway) = checked.gateway.as_ref() else {
        return;
    };
    // The CA files and client certificates of https:// upstreams too.
    let mut found = corsgate_gateway::check_upstream_tls(gateway, base);
    // The password, CA and client certificate files of a PostgreSQL registry.
    found.extend(corsgate_gateway::check_registry_files(gateway, base));
    if let Some(tls) = &gateway.settings.tls {
        found.extend(corsgate_gateway::check_certificates(
            tls,
            base,
            std::time::SystemTime::now(),
        ));
    }
    if found.is_empty() {
        return;
    }
    let parsed = config::load::parse(text);
    checked
        .problems
        .extend(found.into_iter().map(|d| parsed.source.locate(d)));
    config::load::sort(&mut checked.problems);
    if checked.has_errors() {
        checked.gateway = None;
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corsgate_files_are_not_foreign() {
        assert_eq!(foreign(config::DEFAULT_CONFIG), None);
        assert_eq!(foreign(config::STARTING_CONFIG), None);
        assert_eq!(
            foreign("[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:1\"\ncors = {\n}\n"),
            None
        );
    }
}
