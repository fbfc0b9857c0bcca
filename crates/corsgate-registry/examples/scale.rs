//! Loads a registry of N clients × 3 origins (default 100,000) and prints how
//! long the load and compile took and how much memory the snapshot holds.
//! A measurement, not a test: `cargo run --release -p corsgate-registry
//! --example scale -- 100000`.

use std::sync::Arc;
use std::time::Instant;

use corsgate_registry::{Registry, RegistryOptions, SqliteStore};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = std::env::temp_dir().join(format!("corsgate-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("registry.db");
    let store = SqliteStore::open(&path, true).unwrap();
    // Written in one transaction, straight into the tables: this measures the
    // load, not the writes.
    let started = Instant::now();
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    let tx = conn.transaction().unwrap();
    for i in 0..n {
        let origins = serde_json::to_string(&[
            format!("https://app{i}.example.com"),
            format!("https://*.tenant{i}.example.org"),
            format!("http://localhost:{}", 1024 + i % 60_000),
        ])
        .unwrap();
        tx.execute(
            "INSERT INTO corsgate_clients (id, name, allowed_origins, revision) VALUES (?1, '', ?2, 1)",
            rusqlite::params![format!("client-{i}"), origins],
        )
        .unwrap();
    }
    tx.execute("UPDATE corsgate_registry_meta SET revision = 1", [])
        .unwrap();
    tx.commit().unwrap();
    drop(conn);
    eprintln!("wrote {n} clients in {:?}", started.elapsed());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let before = rss_kib();
    let started = Instant::now();
    let registry = runtime.block_on(Registry::start(Arc::new(store), RegistryOptions::default()));
    let took = started.elapsed();
    let after = rss_kib();
    let snapshot = registry.snapshot();
    println!(
        "clients={} origins={} load+compile={:?} rss_growth={} MiB",
        snapshot.len(),
        snapshot.origin_count(),
        took,
        (after.saturating_sub(before)) / 1024
    );
    for problem in snapshot.invalid().iter().take(3) {
        eprintln!("invalid: {problem}");
    }
    drop(snapshot);
    std::fs::remove_dir_all(&dir).ok();
}
