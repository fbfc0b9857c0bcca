//! Writes the case table as fuzz seeds: `fuzz/seeds/<target>/<case name>`.
//!
//! ```text
//! cargo run -p corsgate-cases --example fuzz_seeds [SEEDS_DIR]
//! ```
//!
//! `SEEDS_DIR` defaults to the repository's `fuzz/seeds`. Seeds of other origins
//! already there are left alone.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds"),
        PathBuf::from,
    );
    let seeds = corsgate_cases::fuzz_seeds();
    for seed in &seeds {
        let folder = dir.join(seed.target);
        let written = std::fs::create_dir_all(&folder)
            .and_then(|()| std::fs::write(folder.join(seed.name), &seed.bytes));
        if let Err(err) = written {
            eprintln!("{}: {err}", folder.join(seed.name).display());
            return ExitCode::FAILURE;
        }
    }
    println!("{} seeds written under {}", seeds.len(), dir.display());
    ExitCode::SUCCESS
}
