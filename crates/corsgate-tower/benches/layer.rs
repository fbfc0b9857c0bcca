//! corsgate's `CorsLayer` against tower-http 0.7's, configured the same way, around
//! the same trivial inner service, with the bare inner service as the baseline.
//!
//! Run with `cargo bench -p corsgate-tower`. The services are driven synchronously
//! (one poll with a no-op waker): no runtime is measured. Wall time on shared
//! machines is noisy; `bench/engine.sh` counts instructions and allocations for the
//! same scenarios.

mod support;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use support::{Impl, Scenario};

fn layers(c: &mut Criterion) {
    for scenario in Scenario::ALL {
        let mut group = c.benchmark_group(format!("layer/{}", scenario.name()));
        for implementation in Impl::ALL {
            // Builds the service and checks its answer once, outside the timing.
            let mut run = support::prepare(scenario, implementation);
            group.bench_function(implementation.name(), |b| {
                b.iter(|| run(black_box(1)));
            });
        }
        group.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = layers
}
criterion_main!(benches);
