//! `corsgate check` against the fixture folder: each file's output must equal its
//! `.expected` file (set UPDATE_EXPECT=1 to rewrite them after a deliberate change,
//! then review the diff).

mod support;

use std::path::{Path, PathBuf};

use support::binary::Cmd;

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/check")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn run_check(file: &Path, format: &str) -> (i32, String) {
    let name = file.file_name().unwrap().to_str().unwrap();
    let ran = Cmd::new(["check", "--format", format, name])
        .current_dir(file.parent().unwrap())
        .run();
    (ran.code.unwrap_or(-1), ran.stdout)
}

fn compare(kind: &str, expected_code: i32) {
    let mut failures = Vec::new();
    for file in fixtures(kind) {
        let (code, stdout) = run_check(&file, "human");
        if code != expected_code {
            failures.push(format!(
                "{}: exit {code}, expected {expected_code}\n{stdout}",
                file.display()
            ));
        }
        let expected_file = file.with_extension("expected");
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            std::fs::write(&expected_file, &stdout).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_file).unwrap_or_default();
        if stdout != expected {
            failures.push(format!(
                "{}: output differs\n--- expected\n{expected}--- actual\n{stdout}",
                file.display()
            ));
        }
        let (json_code, json) = run_check(&file, "json");
        assert_eq!(json_code, code);
        let report: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(report["valid"], serde_json::Value::Bool(expected_code == 0));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn valid_fixtures_pass_with_their_warnings() {
    compare("valid", 0);
}

#[test]
fn invalid_fixtures_are_refused_with_every_problem() {
    compare("invalid", 1);
}

#[test]
fn unreadable_file_exits_2() {
    let ran = Cmd::new(["check", "/nonexistent/corsgate.toml"]).run();
    assert_eq!(ran.code, Some(2));
    assert!(ran.stderr.contains("cannot read"));
}

#[test]
fn embedded_default_config_is_valid() {
    let checked = corsgate_config::check(corsgate_config::DEFAULT_CONFIG);
    assert!(!checked.has_errors(), "{:?}", checked.problems);
}

/// Every complete TOML example in the docs is accepted by `check`.
#[test]
fn documentation_examples_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut checked = 0;
    for doc in [
        "docs/examples.md",
        "docs/configuration.md",
        "docs/registry.md",
        "README.md",
    ] {
        let Ok(text) = std::fs::read_to_string(root.join(doc)) else {
            continue;
        };
        for block in text.split("```toml").skip(1) {
            let block = block.split("```").next().unwrap();
            if !block.contains("[[route]]") {
                continue; // fragments of a file, not whole files
            }
            let result = corsgate_config::check(block);
            let errors: Vec<_> = result
                .problems
                .iter()
                .filter(|p| p.diagnostic.is_error())
                .collect();
            assert!(
                errors.is_empty(),
                "{doc}: example refused: {errors:#?}\n{block}"
            );
            // The examples are what users copy: none of their routes may
            // draw a warning, such as the note on every cors = "off" route
            // (the dangerous switches they show on purpose are warned about
            // in [server.cors]).
            if doc == "docs/examples.md" {
                let warned: Vec<_> = result
                    .problems
                    .iter()
                    .filter(|p| p.diagnostic.path().starts_with("route"))
                    .collect();
                assert!(
                    warned.is_empty(),
                    "{doc}: example route warned: {warned:#?}\n{block}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 7, "only {checked} examples found");
}
