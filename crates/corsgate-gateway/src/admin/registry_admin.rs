//! The client registry in the gateway: opened at start, and its admin API on
//! the admin listener (`GET /registry`, `POST /registry/reload`,
//! `GET /clients`, `GET|PUT|DELETE /clients/{id}`).
//!
//! Adding an origin to a client grants that origin read access, so every write
//! is an [`Access::Write`](super::endpoints::Access::Write) endpoint: the
//! router lets it through only with the admin token and without `Origin`
//! (auth.rs). Writes also need a JSON body, which forces a browser's preflight.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use corsgate_config::Settings;
use corsgate_config::registry::Database;
use corsgate_registry::{
    LoadResult, Problem, Registry, RegistryOptions, SqliteStore, StoreError, Trigger, WriteError,
};
use http::header::{CONTENT_TYPE, ETAG, IF_MATCH};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use crate::Shared;
use crate::error::Error;
use crate::request::body::ResponseBody;

/// Largest body of a client write.
const MAX_WRITE_BYTES: usize = 256 * 1024;

/// Opens the registry of `[registry]`, if the file has one: creates the
/// SQLite file (and its tables) when missing, loads it, and starts the
/// refresher. Relative paths are relative to the configuration file's folder.
pub(crate) async fn open(
    settings: &Settings,
    config_path: Option<&Path>,
) -> Result<Option<Arc<Registry>>, Error> {
    let Some(registry) = &settings.registry else {
        return Ok(None);
    };
    let base = config_path
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let resolve = |path: &Path| -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            base.join(path)
        }
    };
    let store = match &registry.database {
        Database::Sqlite(path) => {
            let path = resolve(path);
            let migrate = registry.auto_migrate;
            let opened = tokio::task::spawn_blocking(move || {
                SqliteStore::open(&path, migrate).map_err(|e| (path, e))
            })
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?;
            Arc::new(opened.map_err(|(path, source)| Error::Registry {
                database: path.display().to_string(),
                source,
            })?) as Arc<dyn corsgate_registry::Store>
        }
        #[cfg(feature = "postgres")]
        Database::Postgres {
            url,
            password_file,
            tls,
        } => {
            let tls = postgres_tls(tls, resolve);
            open_postgres(
                url,
                password_file.as_deref().map(resolve),
                registry.auto_migrate,
                tls,
            )
            .await?
        }
        #[cfg(not(feature = "postgres"))]
        Database::Postgres { url, .. } => {
            return Err(Error::Registry {
                database: url.clone(),
                source: StoreError::Unavailable(
                    "this corsgate was built without PostgreSQL (cargo feature `postgres`)".into(),
                ),
            });
        }
        _ => return Ok(None),
    };
    let options = RegistryOptions {
        snapshot_file: registry.snapshot_file.as_deref().map(resolve),
        poll_interval: registry.poll_interval,
        retry_max: registry.retry_max,
    };
    let registry = Registry::start(store, options).await;
    registry.spawn_refresher();
    Ok(Some(registry))
}

/// `[registry]`'s TLS settings for the store, paths resolved.
#[cfg(feature = "postgres")]
fn postgres_tls(
    tls: &corsgate_config::registry::PostgresTls,
    resolve: impl Fn(&Path) -> PathBuf,
) -> corsgate_registry::PostgresTls {
    use corsgate_config::registry::SslMode;
    corsgate_registry::PostgresTls {
        mode: match tls.mode {
            SslMode::Require => corsgate_registry::SslMode::Require,
            SslMode::VerifyFull => corsgate_registry::SslMode::VerifyFull,
            _ => corsgate_registry::SslMode::Disable,
        },
        ca_file: tls.ca_file.as_deref().map(&resolve),
        client_cert_file: tls.client_cert_file.as_deref().map(&resolve),
        client_key_file: tls.client_key_file.as_deref().map(&resolve),
    }
}

/// The files `[registry]` names for PostgreSQL (`password_file`, `ca_file`,
/// `client_cert_file`, `client_key_file`), read as `serve` reads them, every
/// problem at its key: what `corsgate check` adds to the file's own checks,
/// so that a configuration it passes does not fail at start on a missing or
/// broken file. Relative paths from `base`. Nothing to read for SQLite (the
/// file is created when missing) or without the `postgres` feature.
pub fn check_registry_files(
    gateway: &corsgate_config::GatewayConfig,
    base: &Path,
) -> Vec<corsgate_policy::Diagnostic> {
    #[cfg(feature = "postgres")]
    if let Some(Database::Postgres {
        password_file, tls, ..
    }) = gateway.settings.registry.as_ref().map(|r| &r.database)
    {
        use corsgate_policy::{Diagnostic, DiagnosticKind};
        let resolve = |path: &Path| base.join(path);
        let mut found = Vec::new();
        if let Some(written) = password_file {
            let path = resolve(written);
            if let Err(e) = std::fs::read_to_string(&path) {
                found.push(
                    Diagnostic::error(
                        DiagnosticKind::File,
                        "registry.password_file",
                        format!(
                            "cannot read {}: {e}; set password_file to a readable file that holds the database user's password",
                            path.display()
                        ),
                    )
                    .with_value(written.display().to_string()),
                );
            }
        }
        for (key, message) in postgres_tls(tls, resolve).check_files() {
            let (written, fix) = match key {
                "ca_file" => (
                    &tls.ca_file,
                    "set ca_file to the PEM file of the CA that signed the database server's certificate",
                ),
                "client_cert_file" => (
                    &tls.client_cert_file,
                    "set client_cert_file to the PEM certificate chain the gateway presents to the database",
                ),
                _ => (
                    &tls.client_key_file,
                    "set client_key_file to the PEM private key of client_cert_file",
                ),
            };
            let d = Diagnostic::error(
                DiagnosticKind::File,
                format!("registry.{key}"),
                format!("{message}; {fix}"),
            );
            found.push(match written {
                Some(path) => d.with_value(path.display().to_string()),
                None => d,
            });
        }
        return found;
    }
    let _ = (gateway, base);
    Vec::new()
}

/// Opens a PostgreSQL registry and tries it at once: a database that is too
/// new, or not migrated while `auto_migrate` is off, stops `serve`; one that
/// cannot be reached does not (the snapshot file, if any, serves meanwhile).
#[cfg(feature = "postgres")]
async fn open_postgres(
    url: &str,
    password_file: Option<PathBuf>,
    migrate: bool,
    tls: corsgate_registry::PostgresTls,
) -> Result<Arc<dyn corsgate_registry::Store>, Error> {
    let failed = |source: StoreError| Error::Registry {
        database: url.to_owned(),
        source,
    };
    let password = match &password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                failed(StoreError::Unavailable(format!(
                    "password_file {}: {e}",
                    path.display()
                )))
            })?;
            Some(text.trim_end_matches(['\r', '\n']).to_owned())
        }
        None => None,
    };
    let url_owned = url.to_owned();
    let opened = tokio::task::spawn_blocking(move || {
        let store =
            corsgate_registry::PostgresStore::new(&url_owned, password.as_deref(), migrate, &tls)?;
        match store.connect() {
            Ok(()) | Err(StoreError::Unavailable(_)) => Ok(store),
            Err(err) => Err(err),
        }
    })
    .await
    .map_err(|e| Error::Io(std::io::Error::other(e)))?;
    Ok(Arc::new(opened.map_err(failed)?))
}

/// Whether `/readyz` may say ready: the registry, when required at start,
/// has a snapshot.
pub(crate) fn ready(shared: &Shared) -> bool {
    let require = shared
        .snapshot
        .load()
        .gateway
        .settings
        .registry
        .as_ref()
        .is_some_and(|r| r.require_at_start);
    !require || shared.registry.as_ref().is_none_or(|r| r.is_loaded())
}

/// The registry's series for `/metrics` (nothing without a registry).
pub(crate) fn metrics(shared: &Shared) -> String {
    let Some(registry) = &shared.registry else {
        return String::new();
    };
    let status = registry.status();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    gauge(
        "corsgate_registry_revision",
        "Registry revision of the snapshot in use.",
        status.revision.to_string(),
    );
    gauge(
        "corsgate_registry_clients",
        "Clients in the snapshot.",
        status.clients.to_string(),
    );
    gauge(
        "corsgate_registry_origins",
        "Valid origins in the snapshot, over every client.",
        status.origins.to_string(),
    );
    gauge(
        "corsgate_registry_invalid_entries",
        "Stored origins skipped because they are invalid.",
        status.invalid.to_string(),
    );
    gauge(
        "corsgate_registry_database_up",
        "Whether the last contact with the registry database worked.",
        u8::from(status.database_up).to_string(),
    );
    if let Some(up) = status.listener_up {
        gauge(
            "corsgate_registry_listener_up",
            "Whether the registry's change listener (PostgreSQL LISTEN) is connected.",
            u8::from(up).to_string(),
        );
    }
    gauge(
        "corsgate_registry_last_success_timestamp_seconds",
        "When the registry was last read from its database.",
        registry
            .last_success()
            .and_then(|t| t.duration_since(std::time::SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs())
            .to_string(),
    );
    gauge(
        "corsgate_registry_load_duration_seconds",
        "How long the last successful load of the registry took.",
        format!(
            "{:.6}",
            registry
                .last_load_duration()
                .map_or(0.0, |d| d.as_secs_f64())
        ),
    );
    let _ = writeln!(
        out,
        "# HELP corsgate_registry_source Where the snapshot in use came from.\n# TYPE corsgate_registry_source gauge"
    );
    for source in ["database", "snapshot_file", "empty"] {
        let _ = writeln!(
            out,
            "corsgate_registry_source{{source=\"{source}\"}} {}",
            u8::from(status.source == source)
        );
    }
    let _ = writeln!(
        out,
        "# HELP corsgate_registry_loads_total Registry loads by trigger and result.\n# TYPE corsgate_registry_loads_total counter"
    );
    for trigger in Trigger::ALL {
        for result in LoadResult::ALL {
            let _ = writeln!(
                out,
                "corsgate_registry_loads_total{{trigger=\"{}\",result=\"{}\"}} {}",
                trigger.as_str(),
                result.as_str(),
                registry.loads(trigger, result)
            );
        }
    }
    out
}

/// Answers the registry's endpoints, once the router (server.rs) has checked
/// the host and the access rule of the endpoint.
pub(crate) async fn answer(shared: &Shared, request: Request<Incoming>) -> Response<ResponseBody> {
    let Some(registry) = shared.registry.clone() else {
        return problem(
            StatusCode::NOT_FOUND,
            "no registry",
            "this gateway has no [registry] in its configuration",
            &[],
        );
    };
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let registry = &*registry;
    match (method, path.as_str()) {
        (Method::GET | Method::HEAD, "/registry") => {
            json_response(StatusCode::OK, &status(registry))
        }
        (Method::POST, "/registry/reload") => {
            registry.reload(Trigger::Manual).await;
            json_response(StatusCode::OK, &status(registry))
        }
        (Method::GET | Method::HEAD, "/clients") => {
            let snapshot = registry.snapshot();
            let mut clients: Vec<_> = snapshot.clients().map(|c| c.record().clone()).collect();
            clients.sort_by(|a, b| a.id.cmp(&b.id));
            json_response(
                StatusCode::OK,
                &json!({
                    "revision": snapshot.revision(),
                    "source": snapshot.source().as_str(),
                    "database_up": registry.database_up(),
                    "clients": clients,
                }),
            )
        }
        (method, path) => {
            let Some(id) = client_id(path) else {
                return problem(
                    StatusCode::NOT_FOUND,
                    "not found",
                    "try /registry or /clients/{id}",
                    &[],
                );
            };
            match method {
                Method::GET | Method::HEAD => get_client(registry, &id),
                Method::PUT => put_client(registry, &id, request).await,
                Method::DELETE => delete_client(registry, &id, request.headers()).await,
                _ => problem(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method not allowed",
                    "GET, PUT or DELETE",
                    &[],
                ),
            }
        }
    }
}

/// The id of `/clients/{id}`, percent-decoded.
fn client_id(path: &str) -> Option<String> {
    let raw = path.strip_prefix("/clients/")?;
    if raw.is_empty() || raw.contains('/') {
        return None;
    }
    percent_decode(raw)
}

fn percent_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = char::from(bytes.next()?).to_digit(16)?;
            let lo = char::from(bytes.next()?).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

fn status(registry: &Registry) -> serde_json::Value {
    let status = registry.status();
    json!(status)
}

/// Whether a request body is declared as JSON (`application/json`, with or
/// without parameters such as `charset`).
pub(crate) fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

fn etag(revision: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"r{revision}\"")).unwrap_or(HeaderValue::from_static("\"r0\""))
}

/// `If-Match: "rN"` → `Some(N)`; `If-Match: *` or none → `None`; anything
/// else → `Err`.
fn if_match(headers: &http::HeaderMap) -> Result<Option<i64>, ()> {
    let Some(value) = headers.get(IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    text.strip_prefix("\"r")
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|n| n.parse::<i64>().ok())
        .map(Some)
        .ok_or(())
}

fn bad_if_match() -> Response<ResponseBody> {
    problem(
        StatusCode::BAD_REQUEST,
        "bad If-Match",
        "If-Match takes the ETag of GET /clients/{id}, such as \"r12\"",
        &[],
    )
}

fn get_client(registry: &Registry, id: &str) -> Response<ResponseBody> {
    let snapshot = registry.snapshot();
    let Some(client) = snapshot.client(id) else {
        return problem(StatusCode::NOT_FOUND, "no such client", id, &[]);
    };
    let mut response = json_response(StatusCode::OK, &json!(client.record()));
    response
        .headers_mut()
        .insert(ETAG, etag(client.record().revision));
    if !registry.database_up() {
        response.headers_mut().insert(
            "x-corsgate-registry",
            HeaderValue::from_static("snapshot; database unavailable"),
        );
    }
    response
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientBody {
    #[serde(default)]
    name: String,
    #[serde(default, alias = "allowed_cors_origins")]
    allowed_origins: Option<Vec<String>>,
}

async fn put_client(
    registry: &Registry,
    id: &str,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let json = is_json(request.headers());
    if !json {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "JSON only",
            "send Content-Type: application/json",
            &[],
        );
    }
    let Ok(expected) = if_match(request.headers()) else {
        return bad_if_match();
    };
    let body = match Limited::new(request.into_body(), MAX_WRITE_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body too large",
                &format!("a client is at most {MAX_WRITE_BYTES} bytes of JSON"),
                &[],
            );
        }
    };
    let parsed: ClientBody = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(err) => {
            return problem(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid client",
                "the body is {\"name\": \"...\", \"allowed_origins\": [\"https://app.example.com\"]}",
                &[Problem {
                    path: String::new(),
                    value: None,
                    message: err.to_string(),
                }],
            );
        }
    };
    let Some(origins) = parsed.allowed_origins else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid client",
            "allowed_origins is required",
            &[Problem {
                path: "allowed_origins".into(),
                value: None,
                message: "allowed_origins is required: the origins of this client's pages".into(),
            }],
        );
    };
    match registry.put(id, &parsed.name, origins, expected).await {
        Ok(written) => {
            tracing::info!(
                client = id,
                revision = written.revision,
                created = written.created,
                "registry client written"
            );
            let snapshot = registry.snapshot();
            let record = snapshot.client(id).map(|c| c.record().clone());
            let status = if written.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let mut response = json_response(
                status,
                &json!({"client": record, "registry_revision": written.revision}),
            );
            response.headers_mut().insert(ETAG, etag(written.revision));
            response
        }
        Err(err) => write_error(err),
    }
}

async fn delete_client(
    registry: &Registry,
    id: &str,
    headers: &http::HeaderMap,
) -> Response<ResponseBody> {
    let Ok(expected) = if_match(headers) else {
        return bad_if_match();
    };
    match registry.delete(id, expected).await {
        Ok(revision) => {
            tracing::info!(client = id, revision, "registry client deleted");
            let mut response = Response::new(ResponseBody::full(Bytes::new()));
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        Err(err) => write_error(err),
    }
}

fn write_error(err: WriteError) -> Response<ResponseBody> {
    match err {
        WriteError::Invalid(problems) => problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid client",
            "nothing was written; fix every problem listed",
            &problems,
        ),
        WriteError::Store(StoreError::NotFound) => problem(
            StatusCode::NOT_FOUND,
            "no such client",
            "nothing was deleted",
            &[],
        ),
        WriteError::Store(err @ StoreError::Conflict(_)) => problem(
            StatusCode::PRECONDITION_FAILED,
            "changed meanwhile",
            &format!("{err}; GET it again and retry with its ETag"),
            &[],
        ),
        WriteError::Store(err) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "registry database unavailable",
            &format!("nothing changed: {err}"),
            &[],
        ),
        _ => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "write failed",
            "nothing changed",
            &[],
        ),
    }
}

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<ResponseBody> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    let mut response = Response::new(ResponseBody::full(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An `application/problem+json` answer (RFC 9457), every problem at once.
fn problem(
    status: StatusCode,
    title: &str,
    detail: &str,
    problems: &[Problem],
) -> Response<ResponseBody> {
    let mut response = json_response(
        status,
        &json!({
            "status": status.as_u16(),
            "title": title,
            "detail": detail,
            "errors": problems,
        }),
    );
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_in_paths_are_percent_decoded() {
        assert_eq!(client_id("/clients/my%3Aclient"), Some("my:client".into()));
        assert_eq!(client_id("/clients/"), None);
        assert_eq!(client_id("/clients/a/b"), None);
        assert_eq!(client_id("/clients/%zz"), None);
    }
}
