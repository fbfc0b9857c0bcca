//! Sends N requests through one service, for counting instructions under
//! `valgrind --tool=callgrind`: run it with N = 1 and N = 1001 and divide the
//! difference by 1000 to get the cost of one request without the start-up.
//! `bench/engine.sh` does that for every scenario and prints the table.
//!
//! ```text
//! cost list
//! cost layer SCENARIO (none|bare|corsgate|tower-http|tower-http-hashset) N
//! cost decide SCENARIO N
//! cost parse SCENARIO N
//! ```
//!
//! This binary keeps the system allocator, so that the counts are those of
//! production; `allocs.rs` counts the allocations.

#[path = "../benches/support/mod.rs"]
mod support;

use std::process::ExitCode;

use support::{DECIDE_SCENARIOS, Impl, PARSE_SCENARIOS, Scenario};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (mut run, n) = match args.as_slice() {
        ["list"] => {
            for scenario in Scenario::ALL {
                println!("layer {}", scenario.name());
            }
            for scenario in DECIDE_SCENARIOS {
                println!("decide {scenario}");
            }
            for scenario in PARSE_SCENARIOS {
                println!("parse {scenario}");
            }
            return ExitCode::SUCCESS;
        }
        ["layer", scenario, implementation, n] => {
            let (Some(scenario), Some(implementation), Ok(n)) = (
                Scenario::from_name(scenario),
                Impl::from_name(implementation),
                n.parse::<u64>(),
            ) else {
                return usage();
            };
            (support::prepare(scenario, implementation), n)
        }
        ["decide", scenario, n] => {
            let (Some(run), Ok(n)) = (support::prepare_decide(scenario), n.parse::<u64>()) else {
                return usage();
            };
            (run, n)
        }
        ["parse", scenario, n] => {
            let (Some(run), Ok(n)) = (support::prepare_parse(scenario), n.parse::<u64>()) else {
                return usage();
            };
            (run, n)
        }
        _ => return usage(),
    };
    measured(&mut run, n);
    ExitCode::SUCCESS
}

/// The only function whose instructions `bench/engine.sh` collects
/// (`--toggle-collect`), so that building the policy, whose hash tables are seeded
/// at random, does not blur the count.
#[inline(never)]
fn measured(run: &mut support::Run, n: u64) {
    run(n);
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: cost list | cost layer SCENARIO IMPL N | cost decide SCENARIO N | cost parse SCENARIO N"
    );
    ExitCode::from(2)
}
