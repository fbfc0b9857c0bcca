//! `check` (and `serve`, which loads through the same code) against the ways an
//! operator hurts themselves: an upstream that is the gateway itself, files of
//! other products, type errors, settings that expose the admin or debug output.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::TempDir;
use support::binary::{Ran, run};

const LIMIT: Duration = Duration::from_secs(15);

fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn check(text: &str) -> Ran {
    let dir = TempDir::new("check-operators");
    let file = write(&dir, "corsgate.toml", text);
    let ran = run(&["check", file.to_str().unwrap()], LIMIT);
    assert!(!ran.timed_out, "check hung: {ran:?}");
    ran
}

fn looping(listen: Option<&str>, upstream: &str) -> String {
    let server = match listen {
        Some(listen) => format!("[server]\nlisten = \"{listen}\"\n\n"),
        None => String::new(),
    };
    format!(
        "{server}[server.cors]\nallow_origins = [\"https://app.example.com\"]\n\n[[route]]\npath = \"/\"\nupstream = \"{upstream}\"\n"
    )
}

#[test]
fn an_upstream_that_is_the_gateways_own_listen_address_is_refused() {
    // The license-monitor guide's own example, imported: both 127.0.0.1:8080.
    for (listen, upstream) in [
        (Some("127.0.0.1:8080"), "http://127.0.0.1:8080"),
        (Some("127.0.0.1:8080"), "http://localhost:8080"),
        (Some("127.0.0.1:8080"), "http://0.0.0.0:8080"),
        (Some("127.0.0.1:8080"), "http://127.1:8080"),
        (Some("0.0.0.0:8080"), "http://127.0.0.2:8080"),
        (Some("[::]:9000"), "http://[::1]:9000"),
        (Some("[::]:9000"), "http://localhost:9000"),
        (Some("[::1]:9000"), "http://[::]:9000"),
        (Some("127.0.0.1:80"), "http://127.0.0.1"),
        (None, "http://localhost:8080"),
    ] {
        let ran = check(&looping(listen, upstream));
        assert_eq!(ran.code, Some(1), "{listen:?} {upstream}: {ran:?}");
        let line = ran
            .stdout
            .lines()
            .find(|l| l.contains("route[0].upstream"))
            .unwrap_or_else(|| panic!("{listen:?} {upstream}: no located error: {ran:?}"));
        assert!(line.contains(": error: "), "{line}");
        assert!(line.contains(&format!("{upstream:?}")), "{line}");
        assert!(line.contains("own listen address"), "{line}");
        assert!(line.contains("point upstream at the service"), "{line}");
        // The location is the upstream's line (line 6 or 9 of the file).
        let at = if listen.is_some() { ":9:" } else { ":6:" };
        assert!(line.contains(at), "{line}");
    }
}

#[test]
fn an_upstream_on_another_port_or_host_is_not_a_loop() {
    for (listen, upstream) in [
        ("127.0.0.1:8080", "http://127.0.0.1:8081"),
        ("127.0.0.1:8080", "http://127.0.0.2:8080"),
        ("127.0.0.1:8080", "http://127.0.0.1"),
        ("0.0.0.0:8080", "http://[::1]:8080"),
        ("0.0.0.0:8080", "http://api.internal:8080"),
    ] {
        let ran = check(&looping(Some(listen), upstream));
        assert_eq!(ran.code, Some(0), "{listen} {upstream}: {ran:?}");
    }
}

#[test]
fn serve_refuses_to_start_on_a_file_whose_upstream_is_itself() {
    let dir = TempDir::new("check-operators-serve");
    let file = write(
        &dir,
        "loop.toml",
        &looping(Some("127.0.0.1:0"), "http://127.0.0.1:0"),
    );
    // Port 0 is never a loop (the system picks the port): the file is valid.
    let ran = run(&["check", file.to_str().unwrap()], LIMIT);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let file = write(
        &dir,
        "loop2.toml",
        &looping(Some("127.0.0.1:18080"), "http://localhost:18080"),
    );
    let ran = run(&["serve", "--config", file.to_str().unwrap()], LIMIT);
    assert!(!ran.timed_out, "serve started on a looping file: {ran:?}");
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(ran.stderr.contains("own listen address"), "{ran:?}");
}

/// Every configuration file shown in the docs (a ```toml block with a route)
/// passes `check` without a warning: readers copy them.
#[test]
fn every_example_of_the_docs_passes_check_without_a_warning() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.push(root.join("README.md"));
    pages.sort();
    let dir = TempDir::new("docs-examples");
    let mut checked = 0;
    let mut failures = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("```toml\n") {
            let body = &rest[start + "```toml\n".len()..];
            let end = body.find("```").expect("an unclosed toml block");
            let example = &body[..end];
            rest = &body[end + 3..];
            // Fragments (one key's accepted values) and other products' files
            // have no route: not corsgate files on their own.
            if !example.contains("[[route]]") {
                continue;
            }
            checked += 1;
            let file = write(&dir, "example.toml", example);
            let ran = run(&["check", file.to_str().unwrap()], LIMIT);
            if ran.code != Some(0) || !ran.stdout.ends_with("valid (0 warnings)\n") {
                failures.push(format!(
                    "{} example {checked}:\n{example}\n{}",
                    page.display(),
                    ran.stdout
                ));
            }
        }
    }
    assert!(checked >= 10, "only {checked} examples found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
