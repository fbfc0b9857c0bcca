//! Heap allocations per request for every scenario of `cost.rs`, counted by a
//! counting global allocator (`allocation-counter`, which counts per thread).
//! Prints tab-separated lines: `layer|decide`, scenario, implementation,
//! allocations per request, bytes allocated per request.
//!
//! Each service is built and called once before counting, so that one-time work
//! (making precomputed header values shared) is not charged to every request.

#[path = "../benches/support/mod.rs"]
mod support;

use support::{DECIDE_SCENARIOS, Impl, Run, Scenario};

const REQUESTS: u64 = 1000;

fn count(mut run: Run) -> (f64, f64) {
    run(1);
    let info = allocation_counter::measure(|| run(REQUESTS));
    (
        info.count_total as f64 / REQUESTS as f64,
        info.bytes_total as f64 / REQUESTS as f64,
    )
}

fn main() {
    for scenario in Scenario::ALL {
        for implementation in Impl::ALL {
            let (allocs, bytes) = count(support::prepare(scenario, implementation));
            println!(
                "layer\t{}\t{}\t{allocs}\t{bytes}",
                scenario.name(),
                implementation.name()
            );
        }
    }
    for scenario in DECIDE_SCENARIOS {
        let run = support::prepare_decide(scenario).expect("a decide scenario");
        let (allocs, bytes) = count(run);
        println!("decide\t{scenario}\tcorsgate\t{allocs}\t{bytes}");
    }
}
