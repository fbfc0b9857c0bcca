//! Loads a registry of N clients × 3 origins (default 100,000) and prints how
//! long the load and compile took and how much memory the snapshot holds.
//! A measurement, not a test: `cargo run --release -p corsgate-registry
//! --example scale -- 100000` (`bench/registry.sh` runs it).
//!
//! `scale N --keep DIR`: leaves the SQLite file in DIR (for timing the
//! command line on it). `scale build N`: only the snapshot build from
//! clients already in memory (no SQLite, no I/O), for an instruction count
//! under callgrind (`bench/registry.sh --callgrind`).

use std::sync::Arc;
use std::time::Instant;

use corsgate_registry::{
    ClientRecord, Loaded, Registry, RegistryOptions, RegistrySnapshot, Source, SqliteStore,
};

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

/// Client `i`'s origins: an exact origin, a pattern, a localhost port. The
/// ports are 8000–9999, where the Fetch standard blocks none, so every
/// generated origin is one a page can have.
fn origins(i: usize) -> [String; 3] {
    [
        format!("https://app{i}.example.com"),
        format!("https://*.tenant{i}.example.org"),
        format!("http://localhost:{}", 8000 + i % 2_000),
    ]
}

/// `scale build N`: the snapshot build alone.
fn build_only(n: usize) {
    let clients = (0..n)
        .map(|i| ClientRecord {
            id: format!("client-{i}"),
            name: String::new(),
            allowed_origins: origins(i).to_vec(),
            revision: 1,
            updated_at: String::new(),
        })
        .collect();
    let loaded = Loaded {
        instance: "scale".into(),
        revision: 1,
        clients,
    };
    let started = Instant::now();
    let snapshot = RegistrySnapshot::build(loaded, Source::Database);
    println!(
        "clients={} origins={} build={:?} invalid={}",
        snapshot.len(),
        snapshot.origin_count(),
        started.elapsed(),
        snapshot.invalid().len()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("build") {
        let n = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
        build_only(n);
        return;
    }
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let keep = args
        .iter()
        .position(|a| a == "--keep")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from);
    let dir = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("corsgate-scale-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("registry.db");
    let store = SqliteStore::open(&path, true).unwrap();
    // Written in one transaction, straight into the tables: this measures the
    // load, not the writes.
    let started = Instant::now();
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    let tx = conn.transaction().unwrap();
    for i in 0..n {
        let origins = serde_json::to_string(&origins(i)).unwrap();
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
    if keep.is_none() {
        std::fs::remove_dir_all(&dir).ok();
    }
}
