//! `corsgate explain` and `corsgate check`, the binaries, as a user runs them.

use std::path::Path;
use std::process::Command;

use corsgate_explain::Engine;
use serde_json::Value;

use crate::harness::{Initiator, Request};

const BIN: &str = env!("CARGO_BIN_EXE_corsgate");

/// `corsgate explain --browser ENGINE --format json` for what the page at
/// `origin` sent.
pub(crate) fn explain(config: &Path, origin: &str, request: &Request, engine: Engine) -> Value {
    let mut command = Command::new(BIN);
    command
        .arg("explain")
        .arg("--config")
        .arg(config)
        .args(["--url", &request.url])
        .args(["--origin", origin])
        .args(["--method", &request.method])
        .args(["--credentials", request.credentials_mode()])
        .args([
            "--initiator",
            match request.initiator {
                Initiator::Fetch => "fetch",
                Initiator::Xhr => "xhr",
            },
        ])
        .args(["--browser", engine.as_str()])
        .args(["--format", "json"]);
    for (name, value) in &request.headers {
        command.arg("--header").arg(format!("{name}:{value}"));
    }
    let output = command.output().expect("cannot run corsgate explain");
    let code = output.status.code();
    assert!(
        matches!(code, Some(0 | 1)),
        "corsgate explain exited {code:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let value: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "corsgate explain printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    // Exit 0 allowed (or same-origin), 1 blocked (by the standard or the engine).
    let blocked = value["verdict"] == "blocked" || value["engines"][0]["verdict"] == "blocked";
    assert_eq!(code == Some(1), blocked, "exit code {code:?} for {value}");
    value
}

/// `corsgate check FILE`: the exit code and what it printed.
pub(crate) fn check(file: &Path) -> (i32, String) {
    let output = Command::new(BIN)
        .arg("check")
        .arg(file)
        .output()
        .expect("cannot run corsgate check");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}
