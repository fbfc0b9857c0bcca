//! Hot reload: on SIGHUP (see `serve`) and when the configuration file changes.
//!
//! The new file is compiled whole; only a configuration without errors is swapped
//! in, atomically. Requests in flight keep the snapshot they started with.

use std::path::Path;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::{Shared, Snapshot};
use crate::check::human_line;
use crate::config;

/// Quiet time after a file event before reloading: editors write a file in
/// several steps (truncate, write, rename), and only the last state counts.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReloadOutcome {
    /// The new configuration runs (with this many warnings).
    Applied { warnings: usize },
    /// The file has not changed since the last load (file-change reloads only).
    Unchanged,
    /// The file has errors: the previous configuration keeps running.
    Invalid { errors: usize },
    /// The file could not be read: the previous configuration keeps running.
    Unreadable(String),
    /// The gateway runs the built-in configuration: there is no file to read.
    NoFile,
}

/// Reads the configuration file and swaps it in if it compiles. With
/// `only_if_changed`, a file identical to the running one is left alone.
pub(crate) fn reload(shared: &Shared, only_if_changed: bool) -> ReloadOutcome {
    let Some(path) = &shared.config_path else {
        tracing::info!("reload requested, but the built-in configuration has no file to reread");
        return ReloadOutcome::NoFile;
    };
    let name = path.display().to_string();
    // One reload at a time; the lock is never taken on the request path.
    let mut last = shared
        .last_text
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) => {
            tracing::error!(file = %name, error = %err, "reload failed: cannot read the configuration; the previous one keeps running");
            shared.metrics.reloaded(false);
            return ReloadOutcome::Unreadable(err.to_string());
        }
    };
    if only_if_changed && last.as_deref() == Some(text.as_str()) {
        return ReloadOutcome::Unchanged;
    }
    let checked = config::check(&text);
    let Some(mut gateway) = checked.gateway else {
        let errors = checked
            .problems
            .iter()
            .filter(|p| p.diagnostic.is_error())
            .count();
        for problem in &checked.problems {
            let line = human_line(&name, problem);
            if problem.diagnostic.is_error() {
                tracing::error!("{line}");
            } else {
                tracing::warn!("{line}");
            }
        }
        tracing::error!(file = %name, errors, "reload failed: the configuration has errors; the previous one keeps running");
        shared.metrics.reloaded(false);
        return ReloadOutcome::Invalid { errors };
    };
    shared.options.override_addresses(&mut gateway);
    for problem in &gateway.warnings {
        tracing::warn!("{}", human_line(&name, problem));
    }
    let warnings = gateway.warnings.len();
    let previous = shared.snapshot.load_full();
    let old = &previous.gateway.settings;
    let new = &gateway.settings;
    if old.listen != new.listen && new.listen != shared.listen {
        tracing::warn!(running = %shared.listen, configured = %new.listen, "listen changed: restart corsgate to apply it");
    }
    if old.admin_listen != new.admin_listen {
        tracing::warn!("admin_listen changed: restart corsgate to apply it");
    }
    if old.max_connections != new.max_connections {
        tracing::warn!("max_connections changed: restart corsgate to apply it");
    }
    let routes = gateway.routes.len();
    let snapshot = Snapshot::new(gateway, &shared.metrics, Some(&previous));
    shared.snapshot.store(Arc::new(snapshot));
    *last = Some(text);
    shared.metrics.reloaded(true);
    tracing::info!(file = %name, routes, warnings, "configuration reloaded");
    ReloadOutcome::Applied { warnings }
}

/// Watches the configuration file and reloads after it changes. The directory is
/// watched, not the file, so that editors that replace the file (write a copy,
/// rename it over) are seen too. Returns the watcher, which stops when dropped.
pub(crate) fn watch(path: &Path, shared: Arc<Shared>) -> Option<notify::RecommendedWatcher> {
    let file_name = path.file_name()?.to_owned();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => Path::new(".").to_owned(),
    };
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let mut watcher = match notify::recommended_watcher(
        move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if event.kind.is_access() {
                return;
            }
            if event
                .paths
                .iter()
                .any(|p| p.file_name() == Some(&file_name))
            {
                // A full channel means a reload is pending already.
                let _ = tx.try_send(());
            }
        },
    ) {
        Ok(watcher) => watcher,
        Err(err) => {
            tracing::warn!(error = %err, "cannot watch the configuration file; reload with SIGHUP");
            return None;
        }
    };
    if let Err(err) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %dir.display(), error = %err, "cannot watch the configuration's directory; reload with SIGHUP");
        return None;
    }
    tokio::spawn(async move {
        let mut shutdown = shared.shutdown.subscribe();
        loop {
            tokio::select! {
                () = super::until_shutdown(&mut shutdown) => break,
                event = rx.recv() => if event.is_none() { break },
            }
            // Let the writes settle, then take whatever came meanwhile as one.
            tokio::time::sleep(DEBOUNCE).await;
            while rx.try_recv().is_ok() {}
            let shared = shared.clone();
            let _ = tokio::task::spawn_blocking(move || reload(&shared, true)).await;
        }
    });
    Some(watcher)
}
