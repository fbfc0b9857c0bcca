//! The shape of the public types: what a server needs to share them across
//! threads, and a bound on the size of the decision every request moves around.

use corsgate_policy::{CompileError, CorsConfig, Decision, Policy, Rejection, RejectionReason};

fn send_sync<T: Send + Sync + 'static>() {}

#[test]
fn the_public_types_can_be_shared_across_threads() {
    send_sync::<Policy>();
    send_sync::<Decision>();
    send_sync::<Rejection>();
    send_sync::<RejectionReason>();
    send_sync::<CompileError>();
    send_sync::<CorsConfig>();
}

#[test]
fn a_decision_stays_small() {
    // Moved into every response future; a field added here costs every request.
    let size = std::mem::size_of::<Decision>();
    assert!(size <= 256, "Decision is {size} bytes");
}
