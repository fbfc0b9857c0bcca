//! `corsgate clients …` and `corsgate registry …`: the client registry, read
//! and written through a running gateway's admin API (`--admin URL`: the
//! gateway applies a write before it answers, and on PostgreSQL every other
//! gateway right after), or straight in its database (`--database URL`, or the
//! `[registry]` of `--config FILE`: a gateway on the same database applies a
//! change within its poll_interval, or at once on PostgreSQL).

mod admin;

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use corsgate_config::registry::{Database, PostgresTls};
use corsgate_registry::{
    ClientRecord, ClientWrite, Loaded, Problem, RegistrySnapshot, Source, SqliteStore, Store,
    StoreError, validate,
};
use hyper::{Method, StatusCode};

use crate::Outcome;
use admin::Admin;

/// Where the registry is.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// The database: `sqlite:PATH` or `postgres://USER@HOST:PORT/DBNAME`
    /// (its password from PGPASSWORD).
    #[arg(long, value_name = "URL", conflicts_with_all = ["config", "admin"])]
    pub database: Option<String>,
    /// A configuration file whose `[registry]` names the database.
    #[arg(long, value_name = "FILE", conflicts_with = "admin")]
    pub config: Option<PathBuf>,
    /// A running gateway's admin listener, `http://HOST:PORT`: reads and
    /// writes go through its admin API.
    #[arg(long, value_name = "URL")]
    pub admin: Option<String>,
    /// The file holding the admin token (`server.admin_token_file`); else
    /// CORSGATE_ADMIN_TOKEN.
    #[arg(long, value_name = "FILE", requires = "admin")]
    pub token_file: Option<PathBuf>,
}

/// The format of `clients import`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// What `corsgate clients export` prints: `[{"id", "name", "allowed_origins"}]`.
    Corsgate,
    /// What `hydra list clients --format json` prints: `client_id`,
    /// `client_name`, `allowed_cors_origins` (a list, or `{"items": [...]}`).
    Hydra,
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
    /// Add origins to an existing client.
    AddOrigin {
        id: String,
        /// The origins to add.
        #[arg(required = true, value_name = "ORIGIN")]
        origins: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Remove origins from an existing client.
    RemoveOrigin {
        id: String,
        /// The origins to remove, as listed by `clients get`.
        #[arg(required = true, value_name = "ORIGIN")]
        origins: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a client.
    Delete {
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// Create or replace the clients of a file; nothing is written unless
    /// every client is valid.
    Import {
        /// The file (`-`: standard input).
        file: PathBuf,
        /// Its format.
        #[arg(long, value_enum, default_value = "corsgate")]
        format: ImportFormat,
        /// Check and list what would be written; write nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Every client as JSON, in the format `clients import` reads.
    Export {
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

/// The database named by `--database`, or by `--config`'s `[registry]`
/// (relative paths resolved against the file's folder; the password read
/// from its `password_file`).
fn database(target: &Target) -> Result<(Database, Option<String>)> {
    if let Some(url) = &target.database {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // The URL's sslmode, with the files libpq's variables name.
            let mode = corsgate_config::registry::postgres_ssl_mode(url)
                .map_err(|why| anyhow::anyhow!("--database {url:?}: {why}"))?;
            let file = |name: &str| std::env::var_os(name).map(PathBuf::from);
            return Ok((
                Database::Postgres {
                    url: url.clone(),
                    password_file: None,
                    tls: PostgresTls {
                        mode,
                        ca_file: file("PGSSLROOTCERT"),
                        client_cert_file: file("PGSSLCERT"),
                        client_key_file: file("PGSSLKEY"),
                    },
                },
                std::env::var("PGPASSWORD").ok(),
            ));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .filter(|p| !p.is_empty())
            .with_context(|| {
                format!("--database {url:?}: use sqlite:PATH or postgres://USER@HOST:PORT/DBNAME")
            })?;
        return Ok((Database::Sqlite(PathBuf::from(path)), None));
    }
    let Some(file) = &target.config else {
        bail!(
            "say where the registry is: --admin http://HOST:PORT, --database URL or --config FILE"
        );
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
    let base = file.parent().unwrap_or(Path::new(""));
    match registry.database {
        Database::Sqlite(path) => Ok((Database::Sqlite(base.join(path)), None)),
        Database::Postgres {
            url,
            password_file,
            tls,
        } => {
            let resolve = |p: Option<PathBuf>| p.map(|p| base.join(p));
            let tls = PostgresTls {
                mode: tls.mode,
                ca_file: resolve(tls.ca_file),
                client_cert_file: resolve(tls.client_cert_file),
                client_key_file: resolve(tls.client_key_file),
            };
            let password = match password_file {
                Some(path) => {
                    let path = base.join(path);
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    Some(text.trim_end_matches(['\r', '\n']).to_owned())
                }
                None => std::env::var("PGPASSWORD").ok(),
            };
            Ok((
                Database::Postgres {
                    url,
                    password_file: None,
                    tls,
                },
                password,
            ))
        }
        _ => bail!("unsupported database"),
    }
}

fn open(target: &Target, migrate: bool) -> Result<Box<dyn Store>> {
    let (database, password) = database(target)?;
    match database {
        Database::Sqlite(path) => {
            if !migrate && !path.exists() {
                bail!("{}: no such registry database", path.display());
            }
            let store = SqliteStore::open(&path, migrate)
                .map_err(anyhow::Error::new)
                .with_context(|| format!("cannot open the registry {}", path.display()))?;
            Ok(Box::new(store))
        }
        #[cfg(feature = "postgres")]
        Database::Postgres { url, tls, .. } => {
            let tls = corsgate_registry::PostgresTls {
                mode: match tls.mode {
                    corsgate_config::registry::SslMode::Require => {
                        corsgate_registry::SslMode::Require
                    }
                    corsgate_config::registry::SslMode::VerifyFull => {
                        corsgate_registry::SslMode::VerifyFull
                    }
                    _ => corsgate_registry::SslMode::Disable,
                },
                ca_file: tls.ca_file,
                client_cert_file: tls.client_cert_file,
                client_key_file: tls.client_key_file,
            };
            let store =
                corsgate_registry::PostgresStore::new(&url, password.as_deref(), migrate, &tls)
                    .and_then(|store| store.connect().map(|()| store))
                    .map_err(anyhow::Error::new)
                    .with_context(|| format!("cannot open the registry {url}"))?;
            Ok(Box::new(store))
        }
        #[cfg(not(feature = "postgres"))]
        Database::Postgres { url, .. } => {
            let _ = password;
            bail!("{url}: this corsgate was built without PostgreSQL (cargo feature `postgres`)")
        }
        _ => bail!("unsupported database"),
    }
}

/// The registry database of `target`, opened to read only: never created
/// nor migrated (`corsgate explain`). Returns it with its URL.
#[cfg(feature = "tools")]
pub(crate) fn open_read_only(target: &Target) -> Result<(Box<dyn Store>, String)> {
    let (database, _) = database(target)?;
    let url = database.url();
    if let Database::Sqlite(path) = &database {
        let store = SqliteStore::open_read_only(path)
            .map_err(anyhow::Error::new)
            .with_context(|| format!("cannot read the registry {url}"))?;
        return Ok((Box::new(store), url));
    }
    // PostgreSQL without migrations: a load reads in one transaction.
    Ok((open(target, false)?, url))
}

/// A client as `export` prints it and `import` reads it:
/// `{"id", "name", "allowed_origins"}`.
#[derive(Debug)]
struct Exported {
    id: String,
    name: String,
    allowed_origins: Vec<String>,
}

impl Exported {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "allowed_origins": self.allowed_origins,
        })
    }
}

/// What a write through either way can end in.
enum PutError {
    Invalid(Vec<Problem>),
    Conflict,
    Other(anyhow::Error),
}

/// The registry, through a gateway or straight in its database.
enum Registry {
    Admin(Admin),
    Direct(Box<dyn Store>),
}

fn encode_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Registry {
    fn open(target: &Target, migrate: bool) -> Result<Registry> {
        let Some(url) = &target.admin else {
            return Ok(Registry::Direct(open(target, migrate)?));
        };
        let token = match &target.token_file {
            Some(file) => Some(
                std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read {}", file.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => std::env::var("CORSGATE_ADMIN_TOKEN").ok(),
        };
        Ok(Registry::Admin(Admin::new(url, token)?))
    }

    /// Every client, and the registry revision they are at.
    fn list(&self) -> Result<(i64, Vec<ClientRecord>)> {
        match self {
            Registry::Direct(store) => {
                let loaded = store.load().map_err(anyhow::Error::new)?;
                Ok((loaded.revision, loaded.clients))
            }
            Registry::Admin(admin) => {
                let answer = admin.send(Method::GET, "/clients", None, None)?;
                if answer.status != StatusCode::OK {
                    return Err(answer.problem());
                }
                let mut body = answer.json()?;
                let clients = serde_json::from_value(body["clients"].take())
                    .context("the admin API's client list is not what this corsgate reads")?;
                Ok((body["revision"].as_i64().unwrap_or_default(), clients))
            }
        }
    }

    fn get(&self, id: &str) -> Result<Option<ClientRecord>> {
        match self {
            Registry::Direct(store) => Ok(store
                .load()
                .map_err(anyhow::Error::new)?
                .clients
                .into_iter()
                .find(|c| c.id == id)),
            Registry::Admin(admin) => {
                let answer = admin.send(
                    Method::GET,
                    &format!("/clients/{}", encode_id(id)),
                    None,
                    None,
                )?;
                match answer.status {
                    StatusCode::OK => Ok(Some(
                        serde_json::from_slice(&answer.body)
                            .context("the admin API's client is not what this corsgate reads")?,
                    )),
                    StatusCode::NOT_FOUND => Ok(None),
                    _ => Err(answer.problem()),
                }
            }
        }
    }

    /// Creates or replaces a client; `if_match` as for `PUT /clients/{id}`.
    /// Returns whether it was created, and the registry revision.
    fn put(
        &self,
        id: &str,
        name: &str,
        origins: &[String],
        if_match: Option<i64>,
    ) -> Result<(bool, i64), PutError> {
        match self {
            Registry::Direct(store) => {
                let origins = validate(id, name, origins).map_err(PutError::Invalid)?;
                match store.put(&ClientWrite {
                    id,
                    name,
                    allowed_origins: &origins,
                    if_match,
                }) {
                    Ok(written) => Ok((written.created, written.revision)),
                    Err(StoreError::Conflict(_)) => Err(PutError::Conflict),
                    Err(err) => Err(PutError::Other(err.into())),
                }
            }
            Registry::Admin(admin) => {
                let body = serde_json::json!({"name": name, "allowed_origins": origins});
                let tag = if_match.map(|r| format!("\"r{r}\""));
                let answer = admin
                    .send(
                        Method::PUT,
                        &format!("/clients/{}", encode_id(id)),
                        Some(body.to_string()),
                        tag.as_deref(),
                    )
                    .map_err(PutError::Other)?;
                match answer.status {
                    StatusCode::OK | StatusCode::CREATED => {
                        let body = answer.json().map_err(PutError::Other)?;
                        Ok((
                            answer.status == StatusCode::CREATED,
                            body["registry_revision"].as_i64().unwrap_or_default(),
                        ))
                    }
                    StatusCode::UNPROCESSABLE_ENTITY => {
                        let body = answer.json().map_err(PutError::Other)?;
                        let problems = body["errors"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|p| Problem {
                                path: p["path"].as_str().unwrap_or_default().to_owned(),
                                value: p["value"].as_str().map(str::to_owned),
                                message: p["message"].as_str().unwrap_or_default().to_owned(),
                            })
                            .collect();
                        Err(PutError::Invalid(problems))
                    }
                    StatusCode::PRECONDITION_FAILED => Err(PutError::Conflict),
                    _ => Err(PutError::Other(answer.problem())),
                }
            }
        }
    }

    /// Deletes a client; `Ok(false)`: there was none.
    fn delete(&self, id: &str) -> Result<bool> {
        match self {
            Registry::Direct(store) => match store.delete(id, None) {
                Ok(_) => Ok(true),
                Err(StoreError::NotFound) => Ok(false),
                Err(err) => Err(err.into()),
            },
            Registry::Admin(admin) => {
                let answer = admin.send(
                    Method::DELETE,
                    &format!("/clients/{}", encode_id(id)),
                    None,
                    None,
                )?;
                match answer.status {
                    StatusCode::NO_CONTENT | StatusCode::OK => Ok(true),
                    StatusCode::NOT_FOUND => Ok(false),
                    _ => Err(answer.problem()),
                }
            }
        }
    }
}

fn print_problems(out: &mut dyn Write, problems: &[Problem]) -> Result<()> {
    for p in problems {
        let value = p
            .value
            .as_deref()
            .map(|v| format!(" {v:?}"))
            .unwrap_or_default();
        writeln!(out, "{}:{value}: {}", p.path, p.message)?;
    }
    Ok(())
}

/// Changes a client's origins with `change`, guarded by its revision
/// (`If-Match`): a concurrent change makes it read the client again, a few
/// times at most.
fn edit_origins(
    registry: &Registry,
    id: &str,
    out: &mut dyn Write,
    change: impl Fn(&mut Vec<String>) -> Result<()>,
) -> Result<Outcome> {
    for _ in 0..5 {
        let Some(client) = registry.get(id)? else {
            bail!("no client {id:?}");
        };
        let mut origins = client.allowed_origins.clone();
        change(&mut origins)?;
        match registry.put(id, &client.name, &origins, Some(client.revision)) {
            Ok((_, revision)) => {
                writeln!(
                    out,
                    "{id}: {} (registry revision {revision})",
                    origins.join(" ")
                )?;
                return Ok(Outcome::Clean);
            }
            Err(PutError::Invalid(problems)) => {
                print_problems(out, &problems)?;
                return Ok(Outcome::Findings);
            }
            Err(PutError::Conflict) => continue,
            Err(PutError::Other(err)) => return Err(err),
        }
    }
    bail!("{id:?} kept changing meanwhile; try again")
}

/// The keys of one client in an import file: (id, name, origins, whether
/// other keys are refused).
fn keys(format: ImportFormat) -> (&'static str, &'static str, &'static str, bool) {
    match format {
        ImportFormat::Corsgate => ("id", "name", "allowed_origins", true),
        // Hydra prints every field of a client; only these three matter.
        ImportFormat::Hydra => ("client_id", "client_name", "allowed_cors_origins", false),
    }
}

/// Reads an import file: every client, or every problem with it (the paths
/// in the file's own key names).
fn read_import(file: &Path, format: ImportFormat) -> Result<Result<Vec<Exported>, Vec<Problem>>> {
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let shape = match format {
        ImportFormat::Corsgate => {
            "what `corsgate clients export` prints: [{\"id\", \"name\", \"allowed_origins\"}]"
        }
        ImportFormat::Hydra => {
            "what `hydra list clients --format json` prints: a list of clients with client_id and allowed_cors_origins, or {\"items\": [...]}"
        }
    };
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON; expected {shape}", file.display()))?;
    let list = match (&json, format) {
        (serde_json::Value::Array(list), _) => list,
        (serde_json::Value::Object(map), ImportFormat::Hydra) => match map.get("items") {
            Some(serde_json::Value::Array(list)) => list,
            _ => bail!("{}: expected {shape}", file.display()),
        },
        _ => bail!("{}: expected {shape}", file.display()),
    };
    let (id_key, name_key, origins_key, strict) = keys(format);
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    let mut valid = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let mut problem = |path: String, value: Option<String>, message: &str| {
            problems.push(Problem {
                path,
                value,
                message: message.to_owned(),
            });
        };
        let Some(object) = item.as_object() else {
            problem(format!("[{i}]"), None, "a client is a JSON object");
            continue;
        };
        if strict {
            for key in object.keys() {
                if ![id_key, name_key, origins_key].contains(&key.as_str()) {
                    problem(
                        format!("[{i}].{key}"),
                        None,
                        "unknown key; a client has id, name and allowed_origins",
                    );
                }
            }
        }
        let Some(id) = object.get(id_key).and_then(|v| v.as_str()) else {
            problem(
                format!("[{i}].{id_key}"),
                None,
                "a client id (a string) is required",
            );
            continue;
        };
        let name = match object.get(name_key) {
            None | Some(serde_json::Value::Null) => "",
            Some(serde_json::Value::String(name)) => name,
            Some(_) => {
                problem(format!("[{i}].{name_key}"), None, "a name is a string");
                ""
            }
        };
        let origins: Vec<String> = match object.get(origins_key) {
            // Hydra leaves the list out (or null) for a client without one.
            None | Some(serde_json::Value::Null) if !strict => Vec::new(),
            Some(serde_json::Value::Array(list))
                if list.iter().all(serde_json::Value::is_string) =>
            {
                list.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            }
            _ => {
                problem(
                    format!("[{i}].{origins_key}"),
                    None,
                    "a list of origins (strings) is required",
                );
                continue;
            }
        };
        if !seen.insert(id.to_owned()) {
            problem(
                format!("[{i}].{id_key}"),
                Some(id.to_owned()),
                "this client id is listed twice",
            );
        }
        match validate(id, name, &origins) {
            Ok(origins) => valid.push(Exported {
                id: id.to_owned(),
                name: name.to_owned(),
                allowed_origins: origins,
            }),
            Err(found) => problems.extend(found.into_iter().map(|p| {
                let path = if let Some(rest) = p.path.strip_prefix("allowed_origins") {
                    format!("[{i}].{origins_key}{rest}")
                } else if p.path == "id" {
                    format!("[{i}].{id_key}")
                } else if p.path == "name" {
                    format!("[{i}].{name_key}")
                } else {
                    format!("[{i}].{}", p.path)
                };
                Problem { path, ..p }
            })),
        }
    }
    Ok(if problems.is_empty() {
        Ok(valid)
    } else {
        Err(problems)
    })
}

/// Runs `corsgate clients …`.
pub fn run_clients(command: &ClientsCommand, out: &mut dyn Write) -> Result<Outcome> {
    match command {
        ClientsCommand::List { target, json } => {
            let (revision, mut clients) = Registry::open(target, false)?.list()?;
            clients.sort_by(|a, b| a.id.cmp(&b.id));
            if *json {
                serde_json::to_writer_pretty(
                    &mut *out,
                    &serde_json::json!({"revision": revision, "clients": clients}),
                )?;
                writeln!(out)?;
            } else {
                for client in &clients {
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
            let Some(client) = Registry::open(target, false)?.get(id)? else {
                bail!("no client {id:?}");
            };
            serde_json::to_writer_pretty(&mut *out, &client)?;
            writeln!(out)?;
            Ok(Outcome::Clean)
        }
        ClientsCommand::Set {
            id,
            origins,
            name,
            target,
        } => {
            // Checked before anything is opened: a refusal needs no database.
            if let Err(problems) = validate(id, name, origins) {
                print_problems(out, &problems)?;
                return Ok(Outcome::Findings);
            }
            match Registry::open(target, true)?.put(id, name, origins, None) {
                Ok((created, revision)) => {
                    writeln!(
                        out,
                        "{} {id} (registry revision {revision})",
                        if created { "created" } else { "replaced" },
                    )?;
                    Ok(Outcome::Clean)
                }
                Err(PutError::Invalid(problems)) => {
                    print_problems(out, &problems)?;
                    Ok(Outcome::Findings)
                }
                Err(PutError::Conflict) => bail!("{id:?} changed meanwhile; try again"),
                Err(PutError::Other(err)) => Err(err),
            }
        }
        ClientsCommand::AddOrigin {
            id,
            origins: added,
            target,
        } => {
            let registry = Registry::open(target, false)?;
            edit_origins(&registry, id, out, |origins| {
                for origin in added {
                    if !origins.contains(origin) {
                        origins.push(origin.clone());
                    }
                }
                Ok(())
            })
        }
        ClientsCommand::RemoveOrigin {
            id,
            origins: removed,
            target,
        } => {
            let registry = Registry::open(target, false)?;
            edit_origins(&registry, id, out, |origins| {
                let missing: Vec<&String> =
                    removed.iter().filter(|o| !origins.contains(o)).collect();
                if !missing.is_empty() {
                    bail!(
                        "{id:?} has no origin {}; its origins: {}",
                        missing
                            .iter()
                            .map(|o| format!("{o:?}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        origins.join(" ")
                    );
                }
                origins.retain(|o| !removed.contains(o));
                Ok(())
            })
        }
        ClientsCommand::Delete { id, target } => {
            if Registry::open(target, false)?.delete(id)? {
                writeln!(out, "deleted {id}")?;
                Ok(Outcome::Clean)
            } else {
                bail!("no client {id:?}")
            }
        }
        ClientsCommand::Import {
            file,
            format,
            dry_run,
            target,
        } => {
            let clients = match read_import(file, *format)? {
                Ok(clients) => clients,
                Err(problems) => {
                    print_problems(out, &problems)?;
                    writeln!(out, "{} problems; nothing imported", problems.len())?;
                    return Ok(Outcome::Findings);
                }
            };
            if *dry_run {
                for client in &clients {
                    writeln!(
                        out,
                        "would set {}\t{}\t{}",
                        client.id,
                        client.name,
                        client.allowed_origins.join(" ")
                    )?;
                }
                writeln!(
                    out,
                    "{} clients valid; nothing written (--dry-run)",
                    clients.len()
                )?;
                return Ok(Outcome::Clean);
            }
            let registry = Registry::open(target, true)?;
            let (mut created, mut replaced) = (0, 0);
            for client in &clients {
                match registry.put(&client.id, &client.name, &client.allowed_origins, None) {
                    Ok((true, _)) => created += 1,
                    Ok((false, _)) => replaced += 1,
                    Err(PutError::Invalid(problems)) => {
                        print_problems(out, &problems)?;
                        bail!(
                            "{:?} refused after {} clients were written",
                            client.id,
                            created + replaced
                        );
                    }
                    Err(PutError::Conflict) => bail!("{:?} changed meanwhile", client.id),
                    Err(PutError::Other(err)) => {
                        return Err(err.context(format!(
                            "{:?} not written ({} clients were)",
                            client.id,
                            created + replaced
                        )));
                    }
                }
            }
            writeln!(
                out,
                "imported {} clients: {created} created, {replaced} replaced",
                clients.len()
            )?;
            Ok(Outcome::Clean)
        }
        ClientsCommand::Export { target } => {
            let (_, mut clients) = Registry::open(target, false)?.list()?;
            clients.sort_by(|a, b| a.id.cmp(&b.id));
            let exported: Vec<serde_json::Value> = clients
                .into_iter()
                .map(|c| {
                    Exported {
                        id: c.id,
                        name: c.name,
                        allowed_origins: c.allowed_origins,
                    }
                    .to_json()
                })
                .collect();
            serde_json::to_writer_pretty(&mut *out, &exported)?;
            writeln!(out)?;
            Ok(Outcome::Clean)
        }
    }
}

fn load(target: &Target, migrate: bool) -> Result<(Loaded, &'static str)> {
    if target.admin.is_some() {
        bail!(
            "`corsgate registry` reads the database itself: use --database URL or --config FILE (GET /registry on the admin listener gives a gateway's status)"
        );
    }
    let store = open(target, migrate)?;
    Ok((store.load().map_err(anyhow::Error::new)?, store.backend()))
}

/// Runs `corsgate registry …`.
pub fn run_registry(command: &RegistryCommand, out: &mut dyn Write) -> Result<Outcome> {
    match command {
        RegistryCommand::Migrate { target } => {
            let (_, backend) = load(target, true)?;
            writeln!(out, "registry ({backend}) migrated to the current schema")?;
            Ok(Outcome::Clean)
        }
        RegistryCommand::Status { target } => {
            let (loaded, backend) = load(target, false)?;
            let snapshot = RegistrySnapshot::build(loaded, Source::Database);
            writeln!(
                out,
                "{backend} revision {} instance {}: {} clients, {} origins, {} invalid",
                snapshot.revision(),
                snapshot.instance(),
                snapshot.len(),
                snapshot.origin_count(),
                snapshot.invalid().len()
            )?;
            Ok(Outcome::Clean)
        }
        RegistryCommand::Check { target } => {
            let (loaded, _) = load(target, false)?;
            let snapshot = RegistrySnapshot::build(loaded, Source::Database);
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
