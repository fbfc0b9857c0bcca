//! `corsgate explain`: loads a configuration and prints what a browser would do
//! with a request against it. The simulation itself is the `corsgate-explain`
//! crate, which the gateway's admin listener shares.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use corsgate_config as config;
use corsgate_registry::{ClientRecord, Loaded, RegistrySnapshot, Source};

use corsgate_explain::{
    ClientInput, Engine, check_page_origin, explain_with_clients, is_client_scoped, render,
};
pub use corsgate_explain::{Credentials, Explanation, Initiator, PageRequest, Verdict, explain};

use crate::{Format, Outcome};

/// What `explain` takes for a client-scoped route.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientArgs<'a> {
    /// `--client ID`.
    pub client: Option<&'a str>,
    /// `--data BODY`.
    pub data: Option<&'a str>,
    /// `--clients FILE`.
    pub clients: Option<&'a Path>,
}

/// The registry a client-scoped route is explained with: `--clients FILE`
/// (an export, or a gateway's snapshot file), else the configuration's
/// `[registry]` database, opened read-only (never created or migrated).
fn read_registry(
    config_file: Option<&Path>,
    args: &ClientArgs<'_>,
    has_registry: bool,
) -> anyhow::Result<Option<(RegistrySnapshot, String)>> {
    if let Some(file) = args.clients {
        let text =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let loaded = parse_clients_file(&text).with_context(|| {
            format!(
                "{}: not what `corsgate clients export` prints ([{{\"id\", \"name\", \"allowed_origins\"}}]) nor a registry snapshot_file",
                file.display()
            )
        })?;
        return Ok(Some((
            RegistrySnapshot::build(loaded, Source::SnapshotFile),
            file.display().to_string(),
        )));
    }
    let Some(config_file) = config_file.filter(|p| *p != Path::new("-")) else {
        return Ok(None);
    };
    if !has_registry {
        return Ok(None);
    }
    let target = crate::cmd::clients::Target {
        database: None,
        config: Some(config_file.to_owned()),
        admin: None,
        token_file: None,
    };
    let (store, url) = crate::cmd::clients::open_read_only(&target)
        .context("cannot read the registry for the client-scoped route (give --clients FILE to explain offline)")?;
    let loaded = store
        .load()
        .map_err(anyhow::Error::new)
        .with_context(|| format!("cannot read the registry {url}"))?;
    Ok(Some((
        RegistrySnapshot::build(loaded, Source::Database),
        url,
    )))
}

/// `corsgate clients export` output (a list of clients), or a gateway's
/// snapshot file (`{"instance", "revision", "clients"}`).
fn parse_clients_file(text: &[u8]) -> anyhow::Result<Loaded> {
    let value: serde_json::Value = serde_json::from_slice(text)?;
    if value.is_array() {
        let clients: Vec<ClientRecord> = serde_json::from_value(value)?;
        return Ok(Loaded {
            instance: String::new(),
            revision: 0,
            clients,
        });
    }
    Ok(serde_json::from_value(value)?)
}

/// `corsgate explain`: loads the configuration and prints the explanation.
pub fn run(
    config_file: Option<&Path>,
    request: &PageRequest,
    client_args: &ClientArgs<'_>,
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
    let client_scoped = is_client_scoped(&gateway, &request.url);
    let registry = if client_scoped {
        read_registry(
            config_file,
            client_args,
            gateway.settings.registry.is_some(),
        )?
    } else {
        None
    };
    let input = ClientInput {
        registry: registry.as_ref().map(|(s, from)| (s, from.as_str())),
        client: client_args.client,
        body: client_args.data.map(str::as_bytes),
    };
    let mut explanation = explain_with_clients(&gateway, &raw, request, &input)?;
    if !client_scoped && (client_args.client.is_some() || client_args.clients.is_some()) {
        explanation.notes.push(
            "--client and --clients only matter on a client-scoped route (a cors table with clients); this route is not one".into(),
        );
    }
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
