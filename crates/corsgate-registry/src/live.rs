//! The live registry: the current snapshot, its refreshes and the writes
//! made through it (the `stores` feature).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use corsgate_policy::{ClientOrigins, Diagnostic};
use serde::Serialize;

use crate::{ClientWrite, RegistrySnapshot, Source, Store, StoreError, Written};

/// How the registry runs.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Where the last good snapshot is written, and read at start when the
    /// database is down. Default: none.
    pub snapshot_file: Option<PathBuf>,
    /// How often the registry's revision is compared with the snapshot's.
    pub poll_interval: Duration,
    /// The longest wait between retries while the database is down.
    pub retry_max: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            snapshot_file: None,
            poll_interval: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
        }
    }
}

/// What made the registry load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trigger {
    /// The node started.
    Start,
    /// A write through this node.
    Write,
    /// The periodic poll saw a new revision.
    Poll,
    /// `POST /registry/reload` or `corsgate registry reload`.
    Manual,
    /// A notification from the database (PostgreSQL's `NOTIFY`).
    Notify,
    /// The listener (re)connected: what it may have missed meanwhile.
    Reconnect,
}

impl Trigger {
    /// Every trigger, for metric label sets.
    pub const ALL: [Trigger; 6] = [
        Trigger::Start,
        Trigger::Write,
        Trigger::Poll,
        Trigger::Manual,
        Trigger::Notify,
        Trigger::Reconnect,
    ];

    /// `start`, `write`, `poll`, `manual`, `notify` or `reconnect`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Write => "write",
            Trigger::Poll => "poll",
            Trigger::Manual => "manual",
            Trigger::Notify => "notify",
            Trigger::Reconnect => "reconnect",
        }
    }
}

/// How a load ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadResult {
    /// A new snapshot is in place.
    Applied,
    /// The database holds what the snapshot holds.
    Unchanged,
    /// The database could not be read: the last snapshot stays.
    Failure,
}

impl LoadResult {
    /// Every result, for metric label sets.
    pub const ALL: [LoadResult; 3] = [
        LoadResult::Applied,
        LoadResult::Unchanged,
        LoadResult::Failure,
    ];

    /// `applied`, `unchanged` or `failure`.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadResult::Applied => "applied",
            LoadResult::Unchanged => "unchanged",
            LoadResult::Failure => "failure",
        }
    }
}

/// One problem with a client written through the registry, in `check`'s words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `id`, `name` or `allowed_origins[i]`.
    pub path: String,
    /// The value written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The rule and the fix.
    pub message: String,
}

impl From<&Diagnostic> for Problem {
    fn from(d: &Diagnostic) -> Self {
        Problem {
            path: d.path().to_owned(),
            value: d.value().map(str::to_owned),
            message: d.message().to_owned(),
        }
    }
}

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteError {
    /// The client is invalid: every problem, nothing written.
    Invalid(Vec<Problem>),
    /// The store refused or failed: nothing written.
    Store(StoreError),
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Invalid(problems) => {
                write!(f, "invalid client ({} problems)", problems.len())?;
                for p in problems {
                    write!(f, "; {}: {}", p.path, p.message)?;
                }
                Ok(())
            }
            WriteError::Store(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for WriteError {}

/// The longest client id: what the schema accepts.
pub(crate) const MAX_ID_LEN: usize = 255;
/// The most origins one client may list.
pub(crate) const MAX_ORIGINS: usize = 1000;

/// Checks a client before it is written: every problem at once, and the
/// origins in the canonical form they are stored in.
///
/// ```
/// let problems = corsgate_registry::validate("spa", "", &["https://spa.example/".into(), "*".into()])
///     .unwrap_err();
/// assert_eq!(problems.len(), 2);
/// assert_eq!(problems[0].path, "allowed_origins[0]");
/// assert!(problems[0].message.contains("use \"https://spa.example\""));
/// ```
pub fn validate(id: &str, name: &str, origins: &[String]) -> Result<Vec<String>, Vec<Problem>> {
    let mut problems = Vec::new();
    if id.is_empty() || id.len() > MAX_ID_LEN {
        problems.push(Problem {
            path: "id".into(),
            value: Some(id.to_owned()),
            message: format!("a client id is 1 to {MAX_ID_LEN} bytes"),
        });
    } else if id.chars().any(char::is_control) {
        problems.push(Problem {
            path: "id".into(),
            value: Some(id.to_owned()),
            message: "a client id has no control characters".into(),
        });
    }
    if name.len() > 1024 || name.chars().any(char::is_control) {
        problems.push(Problem {
            path: "name".into(),
            value: Some(name.to_owned()),
            message: "a name is at most 1024 bytes, without control characters".into(),
        });
    }
    if origins.len() > MAX_ORIGINS {
        problems.push(Problem {
            path: "allowed_origins".into(),
            value: None,
            message: format!("at most {MAX_ORIGINS} origins per client"),
        });
    }
    let (set, diagnostics) = ClientOrigins::compile(origins, "allowed_origins");
    problems.extend(
        diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(Problem::from),
    );
    if problems.is_empty() {
        Ok(set.patterns().map(ToString::to_string).collect())
    } else {
        Err(problems)
    }
}

/// Loads by (trigger, result).
#[derive(Debug, Default)]
struct LoadCounts([[AtomicU64; 3]; 6]);

impl LoadCounts {
    fn count(&self, trigger: Trigger, result: LoadResult) {
        let t = Trigger::ALL.iter().position(|x| *x == trigger).unwrap_or(0);
        let r = LoadResult::ALL
            .iter()
            .position(|x| *x == result)
            .unwrap_or(0);
        if let Some(slot) = self.0.get(t).and_then(|row| row.get(r)) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn get(&self, trigger: Trigger, result: LoadResult) -> u64 {
        let t = Trigger::ALL.iter().position(|x| *x == trigger).unwrap_or(0);
        let r = LoadResult::ALL
            .iter()
            .position(|x| *x == result)
            .unwrap_or(0);
        self.0
            .get(t)
            .and_then(|row| row.get(r))
            .map_or(0, |slot| slot.load(Ordering::Relaxed))
    }
}

/// What the registry knows about its database.
#[derive(Debug, Default)]
struct Health {
    last_error: Option<String>,
    last_success: Option<SystemTime>,
    last_duration: Option<Duration>,
}

/// The registry's state, for `GET /registry`, `/readyz` and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The snapshot's database instance.
    pub instance: String,
    /// The snapshot's revision.
    pub revision: i64,
    /// Clients in the snapshot.
    pub clients: usize,
    /// Valid origins in the snapshot, over every client.
    pub origins: usize,
    /// Stored origins skipped because they are invalid.
    pub invalid: usize,
    /// Where the snapshot came from.
    pub source: &'static str,
    /// Seconds since the Unix epoch of the snapshot's load.
    pub loaded_at: u64,
    /// Whether the last contact with the database worked.
    pub database_up: bool,
    /// The last database error, while it is down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) last_error: Option<String>,
    /// Whether the change listener (PostgreSQL's `LISTEN`) is connected;
    /// absent for a store without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener_up: Option<bool>,
}

/// The registry: a store and the snapshot of it that requests read.
pub struct Registry {
    store: Arc<dyn Store>,
    current: ArcSwap<RegistrySnapshot>,
    options: RegistryOptions,
    database_up: AtomicBool,
    health: Mutex<Health>,
    loads: LoadCounts,
    /// One load at a time: a write's load and a poll's never interleave their
    /// swaps out of order.
    loading: tokio::sync::Mutex<()>,
    /// The change listener: 0 none, 1 down, 2 up.
    listener: AtomicU8,
    /// Dropped with the registry: its background tasks end then.
    alive: tokio::sync::watch::Sender<()>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("backend", &self.store.backend())
            .field("revision", &self.current.load().revision())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Loads the registry once. With the database down, the snapshot file
    /// (if any, and readable) is served instead, else an empty registry
    /// (client-scoped routes then allow their static origins only): check
    /// [`is_loaded`](Self::is_loaded).
    pub async fn start(store: Arc<dyn Store>, options: RegistryOptions) -> Arc<Registry> {
        let registry = Arc::new(Registry {
            store,
            current: ArcSwap::from_pointee(RegistrySnapshot::empty()),
            options,
            database_up: AtomicBool::new(false),
            health: Mutex::new(Health::default()),
            loads: LoadCounts::default(),
            loading: tokio::sync::Mutex::new(()),
            listener: AtomicU8::new(0),
            alive: tokio::sync::watch::channel(()).0,
        });
        if registry.reload(Trigger::Start).await == LoadResult::Failure {
            if let Some(path) = &registry.options.snapshot_file {
                match crate::snapshot::read_file(path) {
                    Ok(loaded) => {
                        let snap = RegistrySnapshot::build(loaded, Source::SnapshotFile);
                        tracing::warn!(
                            file = %path.display(),
                            revision = snap.revision(),
                            "registry database unavailable at start: serving the snapshot file"
                        );
                        registry.current.store(Arc::new(snap));
                    }
                    Err(err) => tracing::warn!(
                        file = %path.display(),
                        error = %err,
                        "registry snapshot file unusable; ignored"
                    ),
                }
            }
        }
        registry
    }

    /// The current snapshot: what requests decide with.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<RegistrySnapshot>> {
        self.current.load()
    }

    /// Whether some snapshot (from the database or the snapshot file) is in
    /// place: what `/readyz` waits for.
    pub fn is_loaded(&self) -> bool {
        self.current.load().source() != Source::Empty
    }

    /// Whether the last contact with the database worked.
    pub fn database_up(&self) -> bool {
        self.database_up.load(Ordering::Relaxed)
    }

    /// The store's backend name.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// Loads by trigger and result so far.
    pub fn loads(&self, trigger: Trigger, result: LoadResult) -> u64 {
        self.loads.get(trigger, result)
    }

    /// How long the last successful load took.
    pub fn last_load_duration(&self) -> Option<Duration> {
        self.lock_health().last_duration
    }

    /// Seconds since the Unix epoch of the last successful load.
    pub fn last_success(&self) -> Option<SystemTime> {
        self.lock_health().last_success
    }

    fn lock_health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The registry's state.
    pub fn status(&self) -> Status {
        let snap = self.current.load();
        let health = self.lock_health();
        Status {
            backend: self.store.backend(),
            instance: snap.instance().to_owned(),
            revision: snap.revision(),
            clients: snap.len(),
            origins: snap.origin_count(),
            invalid: snap.invalid().len(),
            source: snap.source().as_str(),
            loaded_at: snap
                .loaded_at()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            database_up: self.database_up(),
            last_error: health.last_error.clone(),
            listener_up: self.listener_up(),
        }
    }

    /// Whether the change listener is connected; `None` without one.
    pub fn listener_up(&self) -> Option<bool> {
        match self.listener.load(Ordering::Relaxed) {
            0 => None,
            state => Some(state == 2),
        }
    }

    /// Records the listener's state; logs once per transition.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn set_listener(&self, up: bool, why: Option<&str>) {
        let before = self
            .listener
            .swap(if up { 2 } else { 1 }, Ordering::Relaxed);
        match (before, up) {
            (2, false) => tracing::warn!(
                error = why.unwrap_or_default(),
                "registry change listener disconnected; reconnecting"
            ),
            (0, false) => tracing::warn!(
                error = why.unwrap_or_default(),
                "registry change listener cannot connect; retrying"
            ),
            (0 | 1, true) => tracing::info!("registry change listener connected"),
            _ => {}
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        job: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || job(&*store))
            .await
            .unwrap_or_else(|e| Err(StoreError::Unavailable(format!("store task failed: {e}"))))
    }

    fn record_failure(&self, err: &StoreError) {
        let was_up = self.database_up.swap(false, Ordering::Relaxed);
        let mut health = self.lock_health();
        let message = err.to_string();
        // One log line per transition, not one per retry.
        if was_up || health.last_error.is_none() {
            tracing::error!(error = %message, "registry database unavailable; keeping the last snapshot");
        }
        health.last_error = Some(message);
    }

    fn record_success(&self, took: Duration) {
        let was_up = self.database_up.swap(true, Ordering::Relaxed);
        let mut health = self.lock_health();
        if !was_up && health.last_error.is_some() {
            tracing::info!("registry database reachable again");
        }
        health.last_error = None;
        health.last_success = Some(SystemTime::now());
        health.last_duration = Some(took);
    }

    /// Reads the whole registry and swaps the snapshot if it differs.
    pub async fn reload(&self, trigger: Trigger) -> LoadResult {
        let _one = self.loading.lock().await;
        let started = Instant::now();
        let loaded = match self.blocking(|store| store.load()).await {
            Ok(loaded) => loaded,
            Err(err) => {
                self.record_failure(&err);
                self.loads.count(trigger, LoadResult::Failure);
                return LoadResult::Failure;
            }
        };
        let current = self.current.load();
        let result = if current.source() == Source::Database
            && current.instance() == loaded.instance
            && current.revision() == loaded.revision
        {
            LoadResult::Unchanged
        } else {
            // Compiling 100,000 clients takes a while: off the runtime's threads.
            let persist = self.options.snapshot_file.clone();
            let snap = tokio::task::spawn_blocking(move || {
                if let Some(path) = persist {
                    if let Err(err) = crate::snapshot::write_file(&path, &loaded) {
                        tracing::warn!(file = %path.display(), error = %err, "registry snapshot file not written");
                    }
                }
                RegistrySnapshot::build(loaded, Source::Database)
            })
            .await;
            let Ok(snap) = snap else {
                self.loads.count(trigger, LoadResult::Failure);
                return LoadResult::Failure;
            };
            if !snap.invalid().is_empty() {
                for problem in snap.invalid() {
                    tracing::warn!(
                        entry = problem.path(),
                        value = problem.value().unwrap_or_default(),
                        problem = problem.message(),
                        "invalid stored origin skipped"
                    );
                }
            }
            tracing::info!(
                revision = snap.revision(),
                clients = snap.len(),
                trigger = trigger.as_str(),
                "registry snapshot applied"
            );
            self.current.store(Arc::new(snap));
            LoadResult::Applied
        };
        self.record_success(started.elapsed());
        self.loads.count(trigger, result);
        result
    }

    /// Creates or replaces a client; the snapshot includes it when this
    /// returns. `if_match`: the client's revision the writer saw (`Some(0)`:
    /// must not exist).
    pub async fn put(
        &self,
        id: &str,
        name: &str,
        origins: Vec<String>,
        if_match: Option<i64>,
    ) -> Result<Written, WriteError> {
        let origins = validate(id, name, &origins).map_err(WriteError::Invalid)?;
        let (id, name) = (id.to_owned(), name.to_owned());
        let written = self
            .blocking(move |store| {
                store.put(&ClientWrite {
                    id: &id,
                    name: &name,
                    allowed_origins: &origins,
                    if_match,
                })
            })
            .await;
        self.after_write(written).await
    }

    /// Deletes a client; the snapshot is without it when this returns.
    pub async fn delete(&self, id: &str, if_match: Option<i64>) -> Result<i64, WriteError> {
        let id = id.to_owned();
        let deleted = self
            .blocking(move |store| store.delete(&id, if_match))
            .await;
        self.after_write(deleted).await
    }

    async fn after_write<T>(&self, result: Result<T, StoreError>) -> Result<T, WriteError> {
        match result {
            Ok(value) => {
                self.reload(Trigger::Write).await;
                Ok(value)
            }
            Err(err @ StoreError::Unavailable(_)) => {
                self.record_failure(&err);
                Err(WriteError::Store(err))
            }
            Err(err) => Err(WriteError::Store(err)),
        }
    }

    /// Compares the database's revision with the snapshot's every
    /// `poll_interval`, and reloads when they differ; while the database is
    /// down, retries from 1 s, doubling up to `retry_max`. With a store that
    /// has a [change feed](Store::change_feed), also listens for changes:
    /// a reload on every notification and after every (re)connection, the
    /// poll staying as the safety net. Runs until the registry is dropped or
    /// the returned task is aborted.
    pub fn spawn_refresher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let registry = Arc::downgrade(self);
        let interval = self.options.poll_interval;
        let retry_max = self.options.retry_max;
        let mut alive = self.alive.subscribe();
        #[cfg(feature = "postgres")]
        let listener = self.store.change_feed().map(|feed| {
            self.listener.store(1, Ordering::Relaxed);
            tokio::spawn(crate::postgres::listen(
                Arc::downgrade(self),
                feed.postgres,
                retry_max,
                self.alive.subscribe(),
            ))
        });
        tokio::spawn(async move {
            #[cfg(feature = "postgres")]
            let _listener = AbortOnDrop(listener);
            let mut wait = interval;
            let mut failures: u32 = 0;
            loop {
                tokio::select! {
                    _ = alive.changed() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                let Some(registry) = registry.upgrade() else {
                    return;
                };
                let stamp = registry.blocking(|store| store.stamp()).await;
                let ok = match stamp {
                    Ok((instance, revision)) => {
                        let snap = registry.current.load();
                        let same = snap.source() == Source::Database
                            && snap.instance() == instance
                            && snap.revision() == revision;
                        same || registry.reload(Trigger::Poll).await != LoadResult::Failure
                    }
                    Err(err) => {
                        registry.record_failure(&err);
                        registry.loads.count(Trigger::Poll, LoadResult::Failure);
                        false
                    }
                };
                if ok && !registry.database_up() {
                    registry.record_success(Duration::ZERO);
                }
                if ok {
                    failures = 0;
                    wait = interval;
                } else {
                    wait = Duration::from_secs(1u64 << failures.min(16)).min(retry_max);
                    failures = failures.saturating_add(1);
                }
            }
        })
    }
}

/// Aborts a task when dropped: the listener ends with the refresher.
#[cfg(feature = "postgres")]
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

#[cfg(feature = "postgres")]
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}
