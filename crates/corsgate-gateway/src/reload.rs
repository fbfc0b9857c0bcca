//! Hot reload: on SIGHUP (see `serve`) and when the configuration file changes.
//!
//! The new file is compiled whole; only a configuration without errors, with at
//! least one route, is swapped in, atomically. Requests in flight keep the
//! snapshot they started with.
//!
//! A file being written must never run half-written (the security review's F8:
//! a writer that pauses mid-file, or `: > file` before the new text). On Linux
//! a change is acted on only once the writer closed the file (or a new file
//! was renamed in its place), and every file-event reload reads the file
//! twice, a debounce apart, and goes ahead only if both reads agree.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::{Shared, Snapshot};
use corsgate_config as config;

/// Quiet time after a file event before reloading: editors write a file in
/// several steps (truncate, write, rename), and only the last state counts.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReloadOutcome {
    /// The new configuration runs (with this many warnings).
    Applied {
        /// Warnings the new file has (logged).
        warnings: usize,
    },
    /// The file equals the configuration running: nothing was swapped (and the
    /// log says so).
    Unchanged,
    /// The file has errors: the previous configuration keeps running.
    Invalid {
        /// Errors the file has (logged, with their lines).
        errors: usize,
    },
    /// The file could not be read: the previous configuration keeps running.
    Unreadable(String),
    /// The gateway runs the built-in configuration: there is no file to read.
    NoFile,
    /// The file changed between two reads a debounce apart: a writer is still
    /// at it, and its next change is reloaded (file-change reloads only).
    Unsettled,
}

/// Reads the configuration file and swaps it in if it compiles. With
/// `only_if_changed`, a file identical to the running one is left alone.
/// The shadow configuration follows: read again on `SIGHUP`, and loaded
/// from its new place when the live file's `shadow_config` changed.
pub(crate) fn reload(shared: &Arc<Shared>, only_if_changed: bool) -> ReloadOutcome {
    let outcome = reload_live(shared, only_if_changed);
    super::shadow::after_live_reload(shared, !only_if_changed);
    outcome
}

fn reload_live(shared: &Arc<Shared>, only_if_changed: bool) -> ReloadOutcome {
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
    let read = || match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(err) => {
            tracing::error!(file = %name, error = %err, "reload failed: cannot read the configuration; the previous one keeps running");
            shared.metrics.reloaded(false);
            Err(ReloadOutcome::Unreadable(err.to_string()))
        }
    };
    let text = match read() {
        Ok(text) => text,
        Err(outcome) => return outcome,
    };
    // SIGHUP also reads the CA files and client certificates of https://
    // upstreams again: a rotated client certificate takes effect without an
    // edit to the configuration.
    let unchanged = last.as_deref() == Some(text.as_str())
        && (only_if_changed || !crate::upstream::upstream_tls::changed(shared));
    if unchanged {
        // Nothing to compile or swap: the running configuration is this file.
        // Said in the log, so that an operator who expected a change looks at
        // the file they edited (another path, an unsaved buffer).
        tracing::info!(file = %name, "configuration unchanged: the file equals the running configuration");
        if !only_if_changed {
            // SIGHUP: the reload asked for succeeded, there was nothing to do.
            shared.metrics.reloaded(true);
            // But the certificates are read again: their files may have
            // changed while the configuration did not.
            drop(last);
            crate::listen::tls::after_config_reload(shared);
        }
        return ReloadOutcome::Unchanged;
    }
    if only_if_changed {
        // A file event: take the file only once it has stopped changing.
        std::thread::sleep(DEBOUNCE);
        match read() {
            Ok(again) if again == text => {}
            Ok(_) => {
                tracing::info!(file = %name, "the configuration is still being written; it is reloaded once the writing ends");
                return ReloadOutcome::Unsettled;
            }
            Err(outcome) => return outcome,
        }
    }
    let checked = config::check(&text);
    let Some(mut gateway) = checked.gateway else {
        let errors = checked.summary().errors;
        for problem in &checked.problems {
            let line = format!("{name}:{problem}");
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
        tracing::warn!("{name}:{problem}");
    }
    let warnings = gateway.warnings.len();
    let previous = shared.snapshot.load_full();
    let old = &previous.gateway.settings;
    let new = &gateway.settings;
    // Compared with the listeners running, not with the previous file: a file
    // that changed an address and a later one that keeps the change both say
    // that the change waits for a restart.
    if !is_running(Some(new.listen), Some(shared.listen)) {
        tracing::warn!(running = %shared.listen, configured = %new.listen, "listen changed: restart corsgate to apply it");
    }
    if !is_running(new.admin_listen, shared.admin) {
        tracing::warn!(
            running = %shared.admin.map_or("none".to_owned(), |a| a.to_string()),
            configured = %new.admin_listen.map_or("none".to_owned(), |a| a.to_string()),
            "admin_listen changed: restart corsgate to apply it"
        );
    }
    if old.max_connections != new.max_connections {
        tracing::warn!("max_connections changed: restart corsgate to apply it");
    }
    let routes = gateway.routes.len();
    // The CA files and client certificates of https:// upstreams: a file
    // that does not load refuses the whole file, as an error in it would.
    let connectors = match crate::upstream::upstream_tls::connectors(
        &gateway,
        &shared.options.config_dir(),
    ) {
        Ok(connectors) => connectors,
        Err(found) => {
            let errors = found.len();
            let parsed = config::load::parse(&text);
            for problem in found {
                tracing::error!("{name}:{}", parsed.source.locate(problem));
            }
            tracing::error!(file = %name, "reload failed: an upstream's TLS files do not load; the previous configuration keeps running");
            shared.metrics.reloaded(false);
            return ReloadOutcome::Invalid { errors };
        }
    };
    // A change of [server.tls.acme] that cannot apply live refuses the file,
    // as an error in it would: the running ACME settings and the file agree.
    if let Some(problem) = crate::listen::tls::refused_acme_change(shared, &gateway) {
        let parsed = config::load::parse(&text);
        tracing::error!("{name}:{}", parsed.source.locate(problem));
        tracing::error!(file = %name, "reload failed: [server.tls.acme] cannot change that way on a reload; the previous configuration keeps running");
        shared.metrics.reloaded(false);
        return ReloadOutcome::Invalid { errors: 1 };
    }
    let snapshot = Snapshot::new(gateway, &shared.metrics, Some(&previous), &connectors);
    shared.snapshot.store(Arc::new(snapshot));
    *last = Some(text);
    shared.metrics.reloaded(true);
    tracing::info!(file = %name, routes, warnings, "configuration reloaded");
    drop(last);
    crate::listen::tls::after_config_reload(shared);
    ReloadOutcome::Applied { warnings }
}

/// Whether the listener `running` is the one `configured` asks for: the same
/// address, or any port for port 0 (the port the system picked at start).
fn is_running(configured: Option<SocketAddr>, running: Option<SocketAddr>) -> bool {
    match (configured, running) {
        (None, None) => true,
        (Some(configured), Some(running)) => {
            configured.ip() == running.ip()
                && (configured.port() == 0 || configured.port() == running.port())
        }
        _ => false,
    }
}

/// Whether a file event can end a write. On Linux (inotify), a file is complete
/// when its writer closes it, or when another file is renamed in its place; the
/// modifications before that (and the creation of a new file) are a write in
/// progress, which a writer may pause for any time. Elsewhere, every change
/// counts, and the double read in [`reload`] is the guard.
pub(crate) fn is_complete_write(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    if cfg!(any(target_os = "linux", target_os = "android")) {
        matches!(
            kind,
            EventKind::Access(AccessKind::Close(AccessMode::Write))
                | EventKind::Modify(ModifyKind::Name(_))
        )
    } else {
        !kind.is_access()
    }
}

/// Watches the configuration file and reloads after it changes. The directory is
/// watched, not the file, so that editors that replace the file (write a copy,
/// rename it over) are seen too. Returns the watcher, which stops when dropped.
pub(crate) fn watch(path: &Path, shared: Arc<Shared>) -> Option<notify::RecommendedWatcher> {
    watch_file(path, shared, |shared| {
        reload(shared, true);
    })
}

/// Watches `path` as [`watch`] does, and calls `changed` (on a blocking
/// thread) after each complete write: the shadow configuration's file is
/// watched this way too. `None` outside a tokio runtime.
pub(crate) fn watch_file(
    path: &Path,
    shared: Arc<Shared>,
    changed: fn(&Arc<Shared>),
) -> Option<notify::RecommendedWatcher> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let file_name = path.file_name()?.to_owned();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => Path::new(".").to_owned(),
    };
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let mut watcher = match notify::recommended_watcher(
        move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if !is_complete_write(&event.kind) {
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
    runtime.spawn(async move {
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
            let _ = tokio::task::spawn_blocking(move || changed(&shared)).await;
        }
    });
    Some(watcher)
}
