//! The shared store: a PostgreSQL database that several gateways read, each
//! told of every committed change by `LISTEN/NOTIFY`.
//!
//! The [`Store`] trait is blocking (SQLite's API is), so the store owns a
//! small runtime of one thread that drives its connection; its methods are
//! called from tokio's blocking pool (or from the command line), never from
//! an async task. The listener, on the other hand, is async and runs on the
//! gateway's runtime: it holds a connection of its own that does nothing but
//! `LISTEN`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;

use tokio_postgres::config::SslMode as DriverSslMode;
use tokio_postgres::{AsyncMessage, Client, Config, IsolationLevel, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::postgres_tls::PostgresTls;

use crate::store::{
    ChangeFeed, ClientRecord, ClientWrite, Loaded, Store, StoreError, Written, parse_origins,
};
use crate::{Registry, Trigger};

/// The migrations, in order: migration `n` (from 1) takes the schema from
/// version `n - 1` to `n` (the `corsgate_registry_schema` table).
const MIGRATIONS: &[&str] = &[include_str!("../migrations/postgres/0001_clients.sql")];

/// The newest PostgreSQL schema this build knows.
pub(crate) const POSTGRES_SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The channel every change is notified on (by a trigger on the revision).
pub(crate) const CHANNEL: &str = "corsgate_registry";

/// The advisory lock migrations hold ("corsgate" in ASCII): gateways that
/// start together migrate once, the others wait and find it done.
const MIGRATION_LOCK: i64 = 0x636f_7273_6761_7465;

/// Connecting gives up after this long (the server may be unreachable
/// rather than refusing).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One operation gives up after this long: a stalled network must not hold
/// the store's connection, and with it every write, forever.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);

/// How to open a connection: the driver's settings and, with TLS, the
/// connector.
#[derive(Clone)]
pub(crate) struct Connect {
    config: Config,
    tls: Option<MakeRustlsConnect>,
}

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect")
            .field("hosts", &self.config.get_hosts())
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// A connection's driver: runs until the connection ends, with why; wakes
/// `notified` on every notification.
type Driver = Pin<Box<dyn Future<Output = String> + Send>>;

fn driver<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    notified: Option<Arc<tokio::sync::Notify>>,
) -> Driver
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    Box::pin(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    if let Some(wake) = &notified {
                        wake.notify_one();
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => return describe(&err),
                None => return "connection closed".to_owned(),
            }
        }
    })
}

impl Connect {
    /// Connects (bounded by the connect timeout); the driver must be polled
    /// for the client to work.
    async fn open(
        &self,
        notified: Option<Arc<tokio::sync::Notify>>,
    ) -> Result<(Client, Driver), StoreError> {
        let connecting = async {
            match &self.tls {
                None => self
                    .config
                    .connect(NoTls)
                    .await
                    .map(|(client, connection)| (client, driver(connection, notified))),
                Some(tls) => self
                    .config
                    .connect(tls.clone())
                    .await
                    .map(|(client, connection)| (client, driver(connection, notified))),
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| unavailable("connecting timed out"))?
            .map_err(|e| unavailable(describe(&e)))
    }
}

/// The URL without its `sslmode`: the mode comes from [`PostgresTls`]
/// (the driver knows no `verify-full`).
fn without_sslmode(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    if !parsed.query_pairs().any(|(k, _)| k == "sslmode") {
        return url.to_owned();
    }
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != "sslmode")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    parsed.into()
}

/// Clients in a PostgreSQL database.
pub struct PostgresStore {
    config: Config,
    tls: Option<MakeRustlsConnect>,
    migrate: bool,
    /// Drives the connection while the store waits on it. `None` only while
    /// dropping.
    runtime: Option<tokio::runtime::Runtime>,
    client: Mutex<Option<Client>>,
    /// Whether this process found (or made) the schema current already.
    prepared: AtomicBool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks end, which tokio refuses
        // inside an async context (where the registry may be dropped).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn unavailable(err: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

/// A driver error with its cause: tokio-postgres prints only the kind
/// (`db error`) and keeps the server's message in the source.
fn describe(err: &tokio_postgres::Error) -> String {
    match std::error::Error::source(err) {
        Some(cause) => format!("{err}: {cause}"),
        None => err.to_string(),
    }
}

/// What went wrong inside one operation.
enum Failure {
    Driver(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(err: tokio_postgres::Error) -> Self {
        Failure::Driver(err)
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Failure::Store(err)
    }
}

/// 128 random bits, in hex.
fn new_instance() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// Applies the missing migrations under the advisory lock, or checks there
/// is none missing when `migrate` is off.
async fn prepare(client: &mut Client, migrate: bool) -> Result<(), Failure> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let table: Option<String> = tx
        .query_one("SELECT to_regclass('corsgate_registry_schema')::text", &[])
        .await?
        .get(0);
    let version: i64 = if table.is_some() {
        tx.query_one("SELECT version FROM corsgate_registry_schema", &[])
            .await?
            .get(0)
    } else {
        0
    };
    if version > POSTGRES_SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported: POSTGRES_SCHEMA_VERSION,
        }
        .into());
    }
    if version == POSTGRES_SCHEMA_VERSION {
        return Ok(());
    }
    if !migrate {
        return Err(StoreError::NotMigrated.into());
    }
    for sql in MIGRATIONS
        .iter()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        tx.batch_execute(sql).await?;
    }
    if version == 0 {
        tx.batch_execute(
            "CREATE TABLE corsgate_registry_schema (
               id smallint PRIMARY KEY CHECK (id = 1),
               version bigint NOT NULL
             )",
        )
        .await?;
        tx.execute(
            "INSERT INTO corsgate_registry_meta (id, instance, revision) VALUES (1, $1, 0)",
            &[&new_instance()],
        )
        .await?;
    }
    tx.execute(
        "INSERT INTO corsgate_registry_schema (id, version) VALUES (1, $1)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version",
        &[&POSTGRES_SCHEMA_VERSION],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The connection settings corsgate adds to the URL's: a name in
/// `pg_stat_activity`, bounded connects, and keepalives so that a dead peer
/// is noticed without a request.
fn tuned(mut config: Config) -> Config {
    if config.get_application_name().is_none() {
        config.application_name("corsgate");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3);
    config
}

impl PostgresStore {
    /// Reads the URL (`postgres://USER@HOST:PORT/DBNAME?…`) and the TLS
    /// files; connects on first use, and then migrates when `migrate` (see
    /// [`connect`](Self::connect) to find out at once). The URL's `sslmode`
    /// is not read: `tls` says how to connect.
    pub fn new(
        url: &str,
        password: Option<&str>,
        migrate: bool,
        tls: &PostgresTls,
    ) -> Result<Self, StoreError> {
        let mut config: Config = without_sslmode(url)
            .parse()
            .map_err(|e: tokio_postgres::Error| unavailable(describe(&e)))?;
        if let Some(password) = password {
            config.password(password);
        }
        let connector = tls.connector()?;
        // TLS or nothing: never the clear after a refused TLS request.
        config.ssl_mode(if connector.is_some() {
            DriverSslMode::Require
        } else {
            DriverSslMode::Disable
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("corsgate-registry-pg")
            .enable_all()
            .build()
            .map_err(unavailable)?;
        Ok(PostgresStore {
            config: tuned(config),
            tls: connector,
            migrate,
            runtime: Some(runtime),
            client: Mutex::new(None),
            prepared: AtomicBool::new(false),
        })
    }

    /// Connects now (and migrates when asked): what `serve` does at start,
    /// to refuse a database that is too new or not migrated.
    pub fn connect(&self) -> Result<(), StoreError> {
        self.run(true, async |_client: &mut Client| Ok(()))
    }

    fn lock(&self) -> MutexGuard<'_, Option<Client>> {
        self.client.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime, StoreError> {
        self.runtime
            .as_ref()
            .ok_or_else(|| unavailable("the store is closing"))
    }

    /// Runs `op` on a connected, migrated client; a connection found closed
    /// (the server restarted since the last operation) is replaced, and a
    /// read (`retry`) that failed on such a connection is tried once more
    /// on a new one.
    fn run<T>(
        &self,
        retry: bool,
        op: impl AsyncFn(&mut Client) -> Result<T, Failure>,
    ) -> Result<T, StoreError> {
        let runtime = self.runtime()?;
        let mut slot = self.lock();
        for attempt in 0..2 {
            if slot.as_ref().is_none_or(Client::is_closed) {
                *slot = None;
                let (mut client, connection) =
                    runtime.block_on(self.connect_settings().open(None))?;
                runtime.spawn(async move {
                    let why = connection.await;
                    tracing::debug!(error = %why, "registry database connection ended");
                });
                if !self.prepared.load(Ordering::Relaxed) {
                    match runtime.block_on(async {
                        tokio::time::timeout(OPERATION_TIMEOUT, prepare(&mut client, self.migrate))
                            .await
                    }) {
                        Ok(Ok(())) => self.prepared.store(true, Ordering::Relaxed),
                        Ok(Err(Failure::Store(err))) => return Err(err),
                        Ok(Err(Failure::Driver(err))) => return Err(unavailable(describe(&err))),
                        Err(_) => return Err(unavailable("migrating timed out")),
                    }
                }
                *slot = Some(client);
            }
            let Some(client) = slot.as_mut() else {
                continue;
            };
            let outcome = runtime
                .block_on(async { tokio::time::timeout(OPERATION_TIMEOUT, op(client)).await });
            match outcome {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(Failure::Store(err))) => return Err(err),
                Ok(Err(Failure::Driver(err))) => {
                    if client.is_closed() || err.is_closed() {
                        *slot = None;
                        if retry && attempt == 0 {
                            continue;
                        }
                    }
                    return Err(unavailable(describe(&err)));
                }
                Err(_) => {
                    // The connection may be stuck mid-message: never reuse it.
                    *slot = None;
                    return Err(unavailable("the database did not answer in time"));
                }
            }
        }
        Err(unavailable("connection closed"))
    }

    pub(crate) fn connect_settings(&self) -> Connect {
        Connect {
            config: self.config.clone(),
            tls: self.tls.clone(),
        }
    }
}

/// The registry revision, bumped inside the writing transaction: the row
/// lock serializes writers across gateways, and the trigger on it notifies
/// the listeners when the transaction commits.
const BUMP: &str =
    "UPDATE corsgate_registry_meta SET revision = revision + 1 WHERE id = 1 RETURNING revision";

const CURRENT: &str = "SELECT revision FROM corsgate_clients WHERE id = $1";

impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn load(&self) -> Result<Loaded, StoreError> {
        self.run(true, async |client: &mut Client| {
            // One snapshot of the database: the revision read matches the rows.
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let meta = tx
                .query_one(
                    "SELECT instance, revision FROM corsgate_registry_meta WHERE id = 1",
                    &[],
                )
                .await?;
            let rows = tx
                .query(
                    "SELECT id, name, allowed_origins::text, revision,
                       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                     FROM corsgate_clients ORDER BY id",
                    &[],
                )
                .await?;
            tx.commit().await?;
            let clients = rows
                .iter()
                .map(|r| {
                    Ok(ClientRecord {
                        id: r.try_get(0)?,
                        name: r.try_get(1)?,
                        allowed_origins: parse_origins(r.try_get(2)?),
                        revision: r.try_get(3)?,
                        updated_at: r.try_get(4)?,
                    })
                })
                .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
            Ok(Loaded {
                instance: meta.try_get(0)?,
                revision: meta.try_get(1)?,
                clients,
            })
        })
    }

    fn stamp(&self) -> Result<(String, i64), StoreError> {
        self.run(true, async |client: &mut Client| {
            let row = client
                .query_one(
                    "SELECT instance, revision FROM corsgate_registry_meta WHERE id = 1",
                    &[],
                )
                .await?;
            Ok((row.try_get(0)?, row.try_get(1)?))
        })
    }

    fn put(&self, write: &ClientWrite<'_>) -> Result<Written, StoreError> {
        let origins = serde_json::to_string(write.allowed_origins).map_err(unavailable)?;
        self.run(false, async |client: &mut Client| {
            {
                let tx = client.transaction().await?;
                let revision: i64 = tx.query_one(BUMP, &[]).await?.try_get(0)?;
                let current: Option<i64> = match tx.query_opt(CURRENT, &[&write.id]).await? {
                    Some(row) => Some(row.try_get(0)?),
                    None => None,
                };
                if let Some(expected) = write.if_match {
                    if current.unwrap_or(0) != expected {
                        // Dropping the transaction rolls the bump back.
                        return Err(StoreError::Conflict(current).into());
                    }
                }
                tx.execute(
                    "INSERT INTO corsgate_clients (id, name, allowed_origins, revision)
                     VALUES ($1, $2, $3::text::jsonb, $4)
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                       allowed_origins = excluded.allowed_origins,
                       revision = excluded.revision, updated_at = now()",
                    &[&write.id, &write.name, &origins, &revision],
                )
                .await?;
                tx.commit().await?;
                Ok(Written {
                    created: current.is_none(),
                    revision,
                })
            }
        })
    }

    fn delete(&self, id: &str, if_match: Option<i64>) -> Result<i64, StoreError> {
        self.run(false, async |client: &mut Client| {
            let tx = client.transaction().await?;
            let revision: i64 = tx.query_one(BUMP, &[]).await?.try_get(0)?;
            let Some(row) = tx.query_opt(CURRENT, &[&id]).await? else {
                return Err(StoreError::NotFound.into());
            };
            let current: i64 = row.try_get(0)?;
            if if_match.is_some_and(|expected| expected != current) {
                return Err(StoreError::Conflict(Some(current)).into());
            }
            tx.execute("DELETE FROM corsgate_clients WHERE id = $1", &[&id])
                .await?;
            tx.commit().await?;
            Ok(revision)
        })
    }

    fn change_feed(&self) -> Option<ChangeFeed> {
        Some(ChangeFeed {
            postgres: self.connect_settings(),
        })
    }
}

/// Listens on [`CHANNEL`] for as long as the registry lives: every
/// notification reloads the registry (notifications that arrive during a
/// load are folded into one more load), and every (re)connection is followed
/// by a full reload, since notifications sent while no connection listened
/// are lost for good (PostgreSQL does not replay them).
pub(crate) async fn listen(
    registry: Weak<Registry>,
    connect: Connect,
    retry_max: Duration,
    mut alive: tokio::sync::watch::Receiver<()>,
) {
    let mut failures: u32 = 0;
    loop {
        let notified = Arc::new(tokio::sync::Notify::new());
        // The connection's messages: notifications wake the loop below (a
        // stored permit folds a burst into one load); the end of the stream
        // means the connection is gone.
        match connect.open(Some(notified.clone())).await {
            Ok((client, connection)) => {
                let mut driver = tokio::spawn(connection);
                let listening = client.batch_execute(&format!("LISTEN {CHANNEL}")).await;
                if let Err(err) = listening {
                    driver.abort();
                    if let Some(registry) = registry.upgrade() {
                        registry.set_listener(false, Some(&describe(&err)));
                    }
                } else {
                    let Some(strong) = registry.upgrade() else {
                        driver.abort();
                        return;
                    };
                    strong.set_listener(true, None);
                    failures = 0;
                    // What was committed before LISTEN took effect.
                    strong.reload(Trigger::Reconnect).await;
                    drop(strong);
                    let why = loop {
                        tokio::select! {
                            _ = alive.changed() => {
                                driver.abort();
                                return;
                            }
                            ended = &mut driver => break ended.unwrap_or_else(|e| e.to_string()),
                            () = notified.notified() => {
                                let Some(strong) = registry.upgrade() else {
                                    driver.abort();
                                    return;
                                };
                                strong.reload(Trigger::Notify).await;
                            }
                        }
                    };
                    if let Some(registry) = registry.upgrade() {
                        registry.set_listener(false, Some(&why));
                    }
                }
                drop(client);
            }
            Err(err) => {
                if let Some(registry) = registry.upgrade() {
                    registry.set_listener(false, Some(&err.to_string()));
                }
            }
        }
        let wait = Duration::from_secs(1u64 << failures.min(16)).min(retry_max);
        failures = failures.saturating_add(1);
        tokio::select! {
            _ = alive.changed() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}
