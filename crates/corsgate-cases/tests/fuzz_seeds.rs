//! The fuzz seeds under `fuzz/seeds/` are the case table's: every seed the table
//! gives is there with the same bytes (regenerate with
//! `cargo run -p corsgate-cases --example fuzz_seeds`).

use std::path::PathBuf;

#[test]
fn the_committed_fuzz_seeds_are_the_case_tables() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds");
    let seeds = corsgate_cases::fuzz_seeds();
    assert!(
        seeds.iter().filter(|s| s.target == "origin").count() > 5
            && seeds
                .iter()
                .filter(|s| s.target == "request_headers")
                .count()
                > 5,
        "too few seeds: {}",
        seeds.len()
    );
    let mut stale = Vec::new();
    for seed in &seeds {
        let path = dir.join(seed.target).join(seed.name);
        if std::fs::read(&path).ok().as_deref() != Some(seed.bytes.as_slice()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "missing or different; run `cargo run -p corsgate-cases --example fuzz_seeds`:\n{}",
        stale.join("\n")
    );
}
