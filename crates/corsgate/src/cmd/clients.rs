//! `corsgate clients …` and `corsgate registry …`: the client registry read and
//! written straight in its database (`--database sqlite:PATH`, or the
//! `[registry]` of `--config FILE`). A gateway using the same file applies a
//! change within its `poll_interval`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use corsgate_config::registry::Database;
use corsgate_registry::{
    ClientWrite, Loaded, RegistrySnapshot, Source, SqliteStore, Store, StoreError, validate,
};

use crate::Outcome;

/// Where the registry is.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// The database, `sqlite:PATH`.
    #[arg(long, value_name = "URL", conflicts_with = "config")]
    pub database: Option<String>,
    /// A configuration file whose `[registry]` names the database.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `corsgate clients …`.
#[derive(clap::Subcommand, Debug)]
pub enum ClientsCommand {
    /// Every client, sorted by id.
    List {
        #[command(flatten)]
        target: Target,
        /// JSON instead of one line per client.
        #[arg(long)]
        json: bool,
    },
    /// One client, as JSON.
    Get {
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Create or replace a client and its origins (validated as allow_origins).
    Set {
        id: String,
        /// An allowed origin (repeatable).
        #[arg(
            long = "origin",
            value_name = "ORIGIN",
            visible_alias = "allowed-cors-origin",
            alias = "allowed-cors-origins",
            required = true
        )]
        origins: Vec<String>,
        /// A name for people.
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a client.
    Delete {
        id: String,
        #[command(flatten)]
        target: Target,
    },
}

/// `corsgate registry …`.
#[derive(clap::Subcommand, Debug)]
pub enum RegistryCommand {
    /// Revision, clients, origins, invalid entries.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Create or migrate the registry's tables.
    Migrate {
        #[command(flatten)]
        target: Target,
    },
    /// Every stored origin that is invalid (skipped by gateways). Exit 1 if any.
    Check {
        #[command(flatten)]
        target: Target,
    },
}

fn database_path(target: &Target) -> Result<PathBuf> {
    if let Some(url) = &target.database {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .filter(|p| !p.is_empty())
            .with_context(|| format!("--database {url:?}: use sqlite:PATH"))?;
        return Ok(PathBuf::from(path));
    }
    let Some(file) = &target.config else {
        bail!("say where the registry is: --database sqlite:PATH or --config FILE");
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let checked = corsgate_config::check(&text);
    let Some(gateway) = checked.gateway else {
        bail!(
            "{} is not valid; run corsgate check {}",
            file.display(),
            file.display()
        );
    };
    let Some(registry) = gateway.settings.registry else {
        bail!("{} has no [registry]", file.display());
    };
    match registry.database {
        Database::Sqlite(path) if path.is_relative() => {
            Ok(file.parent().unwrap_or(Path::new("")).join(path))
        }
        Database::Sqlite(path) => Ok(path),
        _ => bail!("unsupported database"),
    }
}

fn open(target: &Target, migrate: bool) -> Result<SqliteStore> {
    let path = database_path(target)?;
    if !migrate && !path.exists() {
        bail!("{}: no such registry database", path.display());
    }
    SqliteStore::open(&path, migrate)
        .map_err(anyhow::Error::new)
        .with_context(|| format!("cannot open the registry {}", path.display()))
}

fn load(store: &SqliteStore) -> Result<Loaded> {
    store.load().map_err(anyhow::Error::new)
}

/// Runs `corsgate clients …`.
pub fn run_clients(command: &ClientsCommand, out: &mut dyn Write) -> Result<Outcome> {
    match command {
        ClientsCommand::List { target, json } => {
            let loaded = load(&open(target, false)?)?;
            if *json {
                serde_json::to_writer_pretty(&mut *out, &loaded)?;
                writeln!(out)?;
            } else {
                for client in &loaded.clients {
                    writeln!(
                        out,
                        "{}\t{}\t{}",
                        client.id,
                        client.name,
                        client.allowed_origins.join(" ")
                    )?;
                }
            }
            Ok(Outcome::Clean)
        }
        ClientsCommand::Get { id, target } => {
            let loaded = load(&open(target, false)?)?;
            let Some(client) = loaded.clients.iter().find(|c| c.id == *id) else {
                bail!("no client {id:?}");
            };
            serde_json::to_writer_pretty(&mut *out, client)?;
            writeln!(out)?;
            Ok(Outcome::Clean)
        }
        ClientsCommand::Set {
            id,
            origins,
            name,
            target,
        } => {
            let origins = match validate(id, name, origins) {
                Ok(origins) => origins,
                Err(problems) => {
                    for p in &problems {
                        let value = p
                            .value
                            .as_deref()
                            .map(|v| format!(" {v:?}"))
                            .unwrap_or_default();
                        writeln!(out, "{}:{value}: {}", p.path, p.message)?;
                    }
                    return Ok(Outcome::Findings);
                }
            };
            let store = open(target, true)?;
            let written = store
                .put(&ClientWrite {
                    id,
                    name,
                    allowed_origins: &origins,
                    if_match: None,
                })
                .map_err(anyhow::Error::new)?;
            writeln!(
                out,
                "{} {id} (registry revision {})",
                if written.created {
                    "created"
                } else {
                    "replaced"
                },
                written.revision
            )?;
            Ok(Outcome::Clean)
        }
        ClientsCommand::Delete { id, target } => {
            let store = open(target, false)?;
            match store.delete(id, None) {
                Ok(revision) => {
                    writeln!(out, "deleted {id} (registry revision {revision})")?;
                    Ok(Outcome::Clean)
                }
                Err(StoreError::NotFound) => bail!("no client {id:?}"),
                Err(err) => Err(anyhow::Error::new(err)),
            }
        }
    }
}

/// Runs `corsgate registry …`.
pub fn run_registry(command: &RegistryCommand, out: &mut dyn Write) -> Result<Outcome> {
    match command {
        RegistryCommand::Migrate { target } => {
            open(target, true)?;
            writeln!(
                out,
                "registry at schema {}",
                corsgate_registry::SCHEMA_VERSION
            )?;
            Ok(Outcome::Clean)
        }
        RegistryCommand::Status { target } => {
            let snapshot = RegistrySnapshot::build(load(&open(target, false)?)?, Source::Database);
            writeln!(
                out,
                "revision {} instance {}: {} clients, {} origins, {} invalid",
                snapshot.revision(),
                snapshot.instance(),
                snapshot.len(),
                snapshot.origin_count(),
                snapshot.invalid().len()
            )?;
            Ok(Outcome::Clean)
        }
        RegistryCommand::Check { target } => {
            let snapshot = RegistrySnapshot::build(load(&open(target, false)?)?, Source::Database);
            for problem in snapshot.invalid() {
                writeln!(out, "{problem}")?;
            }
            writeln!(
                out,
                "{} clients, {} invalid stored origins",
                snapshot.len(),
                snapshot.invalid().len()
            )?;
            Ok(if snapshot.invalid().is_empty() {
                Outcome::Clean
            } else {
                Outcome::Findings
            })
        }
    }
}
