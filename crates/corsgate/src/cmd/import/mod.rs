//! `corsgate import --from FORMAT FILE`: converts the CORS settings of other
//! products into a corsgate configuration.
//!
//! The TOML goes to stdout. Every place where the source was unsafe, or cannot be
//! carried over exactly, is a note on stderr. The result is then run through
//! [`corsgate_config::check`]: exit 0 when it passes, 1 (with the reasons) when it
//! cannot, because the source allowed something corsgate refuses (such as `*`
//! with credentials) and only a person can decide what to list instead.

mod common;
mod draft;
mod gateway_api;
mod ingress_nginx;
mod k8s;
mod kratos;
mod license_monitor;
mod nexus;
mod nginx;
mod origin_regex;

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;

use crate::Outcome;
use corsgate_config::{self as config, Summary};

/// Largest file `import` reads. CORS settings are kilobytes, even in a large
/// nginx configuration; a bigger input is refused before it is parsed, so that
/// the parse (about 60 times the file in memory for nginx) stays small.
pub const MAX_INPUT_BYTES: u64 = 1 << 20;

/// The formats `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// License Monitor's `config.toml`: `[api]` with `cors_*` keys and
    /// `[api.cors_overrides."/path"]` tables.
    LicenseMonitor,
    /// Nexus's `[server.cors]` with `allow_*` keys.
    Nexus,
    /// Ory Kratos (or Hydra) YAML: `serve.public.cors` and `serve.admin.cors`.
    Kratos,
    /// nginx: `map $http_origin` allowlists, `add_header Access-Control-*` in
    /// `location` blocks, `proxy_pass`, `if ($request_method = OPTIONS)`.
    Nginx,
    /// Kubernetes Ingress manifests with ingress-nginx's
    /// `nginx.ingress.kubernetes.io/enable-cors` and `cors-*` annotations (one or
    /// many YAML documents, or `kubectl get ingress -A -o yaml`).
    IngressNginx,
    /// Kubernetes Gateway API HTTPRoute manifests and their `CORS` filters.
    GatewayApi,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::LicenseMonitor => "license-monitor",
            Source::Nexus => "nexus",
            Source::Kratos => "kratos",
            Source::Nginx => "nginx",
            Source::IngressNginx => "ingress-nginx",
            Source::GatewayApi => "gateway-api",
        }
    }
}

/// A place where the source was unsafe or could not be carried over exactly.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Note {
    /// Where in the source: a key path (`api.cors_methods`) or `line 12`.
    pub place: String,
    pub message: String,
}

/// The result of an import.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The corsgate configuration, as TOML.
    pub toml: String,
    pub notes: Vec<Note>,
    /// Whether a route's upstream is corsgate's own listen address.
    pub loops: bool,
}

/// Converts `text`, read from `file_name`, from `source`'s format.
///
/// Fails only when the text cannot be read as that format at all.
pub fn import(source: Source, text: &str, file_name: &str) -> anyhow::Result<Imported> {
    let mut notes = common::Notes::default();
    let draft = match source {
        Source::LicenseMonitor => license_monitor::import(text, &mut notes)?,
        Source::Nexus => nexus::import(text, &mut notes)?,
        Source::Kratos => kratos::import(text, &mut notes)?,
        Source::Nginx => nginx::import(text, &mut notes)?,
        Source::IngressNginx => ingress_nginx::import(text, &mut notes)?,
        Source::GatewayApi => gateway_api::import(text, &mut notes)?,
    };
    let loops = refuse_loops(&draft, &mut notes);
    let header = vec![format!(
        "corsgate configuration imported from {file_name} ({}).",
        source.name()
    )];
    Ok(Imported {
        toml: draft.render(&header, &notes.list),
        notes: notes.list,
        loops,
    })
}

/// A note with the fix for every route whose upstream is corsgate's own
/// listen address (the output sets none, so the default): such a file would
/// send every request back into the gateway, and `check` refuses it, so the
/// import exits 1. License Monitor's own example does this: its API and
/// corsgate's default are both 127.0.0.1:8080.
fn refuse_loops(draft: &draft::Draft, notes: &mut common::Notes) -> bool {
    let listen = config::Settings::default().listen;
    let mut any = false;
    for (i, route) in draft.routes.iter().enumerate() {
        let loops = route
            .upstream
            .strip_prefix("http://")
            .and_then(|a| a.parse::<http::uri::Authority>().ok())
            .is_some_and(|a| config::selfloop::reaches_listener(&a, listen));
        if loops {
            any = true;
            notes.add(
                format!("route[{i}].upstream"),
                format!(
                    "{:?} is corsgate's own listen address ({listen} by default): corsgate would forward every request to itself, so check refuses the output. Fix: either move the API to another port and set this upstream to it, or keep the API where it is and give corsgate another address by adding [server] listen = \"127.0.0.1:8081\" (any free port) to the output",
                    route.upstream
                ),
            );
        }
    }
    any
}

/// `corsgate import`: prints the TOML to `out`, the notes and `check`'s verdict
/// to `err`.
pub fn run(
    source: Source,
    file: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let stdin = file == Path::new("-");
    let name = if stdin {
        "<stdin>".to_owned()
    } else {
        file.display().to_string()
    };
    let text = if stdin {
        read_bounded(std::io::stdin().lock())
    } else {
        std::fs::File::open(file)
            .map_err(anyhow::Error::from)
            .and_then(read_bounded)
    }
    .with_context(|| format!("cannot read {name}"))?;
    let imported = import(source, &text, &name)
        .with_context(|| format!("{name}: cannot import as {}", source.name()))?;
    out.write_all(imported.toml.as_bytes())?;
    out.flush()?;
    for note in &imported.notes {
        writeln!(err, "{name}: {}: {}", note.place, note.message)?;
    }
    let mut checked = config::check(&imported.toml);
    // The files the output names (an upstream's CA, its client certificate)
    // are read as `check` and `serve` read them, from the input's directory:
    // where the output is meant to be saved, as the notes on relative paths
    // say.
    let base = if stdin {
        Path::new(".")
    } else {
        file.parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    };
    let checked_files = checked.gateway.is_some();
    crate::cmd::check::load_files(&mut checked, &imported.toml, base);
    for problem in &checked.problems {
        writeln!(err, "<output>:{problem}")?;
    }
    let Summary { errors, warnings } = checked.summary();
    if errors == 0 {
        writeln!(
            err,
            "corsgate import: the output passes corsgate check ({warnings} warning{})",
            if warnings == 1 { "" } else { "s" }
        )?;
        Ok(Outcome::Clean)
    } else if checked_files && checked.gateway.is_none() {
        writeln!(
            err,
            "corsgate import: the output does not pass corsgate check ({errors} error{}): a file it names does not load as the gateway would load it; put the file in place (relative paths are read from {}), or fix its path in the output, then run corsgate check",
            if errors == 1 { "" } else { "s" },
            base.display()
        )?;
        Ok(Outcome::Findings)
    } else if imported.loops {
        writeln!(
            err,
            "corsgate import: the output does not pass corsgate check ({errors} error{}): corsgate would forward requests to itself; apply the fix in the note on the route's upstream, then run corsgate check",
            if errors == 1 { "" } else { "s" }
        )?;
        Ok(Outcome::Findings)
    } else {
        writeln!(
            err,
            "corsgate import: the output does not pass corsgate check ({errors} error{}): the source allows what corsgate refuses or cannot express, and only you can say what to list instead; edit the output, then run corsgate check",
            if errors == 1 { "" } else { "s" }
        )?;
        Ok(Outcome::Findings)
    }
}

/// Reads at most [`MAX_INPUT_BYTES`] of `input` as UTF-8, refusing a larger one
/// (also a file that grows while it is read, or a pipe that never ends).
fn read_bounded(input: impl Read) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    input.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        anyhow::bail!(
            "the input is larger than 1 MiB ({MAX_INPUT_BYTES} bytes), the most import reads: CORS settings are kilobytes; give import the file, or the part of it, that holds them"
        );
    }
    String::from_utf8(bytes).context("the input is not valid UTF-8")
}
