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

/// `check`'s lines for `text`, with the temporary directory taken off.
fn lines(text: &str) -> (Option<i32>, Vec<String>) {
    let ran = check(text);
    let lines = ran
        .stdout
        .lines()
        .map(|l| match l.split_once("corsgate.toml") {
            Some((_, rest)) => format!("corsgate.toml{rest}"),
            None => l.to_owned(),
        })
        .collect();
    (ran.code, lines)
}

const ROUTE: &str = "\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9000\"\n";

#[test]
fn a_syntax_error_is_reported_once_at_the_bracket_left_open() {
    let (code, out) = lines(&format!(
        "[server.cors]\nallow_origins = [\"https://a.example.com\",\n  \"https://b.example.com\"\nallow_methods = [\"PUT\"]\n{ROUTE}"
    ));
    assert_eq!(code, Some(1));
    assert_eq!(
        out,
        [
            "corsgate.toml:2:17: error: TOML syntax: this [ is never closed; end the list with ] after its last item",
            "corsgate.toml: invalid (1 error, 0 warnings)"
        ]
    );
    let (_, out) = lines(&format!("[server.cors\nallow_origins = []\n{ROUTE}"));
    assert_eq!(out.len(), 2, "{out:#?}");
    assert!(
        out[0]
            .starts_with("corsgate.toml:1:1: error: TOML syntax: this table header is not closed"),
        "{out:#?}"
    );
    let (_, out) = lines(&format!(
        "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9000\"\ncors = {{ allow_origins = [\"https://a.example.com\"]\n{ROUTE}"
    ));
    assert_eq!(out.len(), 2, "{out:#?}");
    assert!(
        out[0].starts_with("corsgate.toml:4:8: error: TOML syntax: this { is never closed"),
        "{out:#?}"
    );
    let (_, out) = lines(&format!("[server]\nlisten = \"127.0.0.1:8080\n{ROUTE}"));
    assert_eq!(out.len(), 2, "{out:#?}");
    assert!(
        out[0].starts_with("corsgate.toml:2:10: error: TOML syntax: this string is never closed"),
        "{out:#?}"
    );
    // Brackets inside strings and comments are not brackets.
    let (code, out) = lines(&format!(
        "# [not a header\n[server.cors]\nallow_origins = [\"https://a.example.com\"] # ]]\nallow_headers = ['x-[a'\n{ROUTE}"
    ));
    assert_eq!(out.len(), 2, "{out:#?}");
    assert_eq!(code, Some(1));
    assert!(out[0].starts_with("corsgate.toml:4:17: "), "{out:#?}");
}

#[test]
fn type_errors_are_worded_with_the_fix() {
    let (code, out) = lines(
        "[server]\nresponse_timeout = 30\nmax_body_bytes = \"10MB\"\nlisten = 8080\ntrusted_proxies = \"10.0.0.0/8\"\nmax_connections = \"1000\"\n\n[server.cors]\nmax_age = \"1h\"\nallow_credentials = \"true\"\non_disallowed = \"refuse\"\n\n[[route]]\npath = \"api\"\nupstream = \"127.0.0.1:9000\"\ncors = 5\n",
    );
    assert_eq!(code, Some(1));
    let expected = [
        r#"corsgate.toml:2:20: server.response_timeout: error: "30": a duration is a string with its unit; write "30s" for 30 seconds"#,
        r#"corsgate.toml:3:18: server.max_body_bytes: error: "10MB": a size is a number of bytes, without unit or quotes; write 10485760 for 10MB"#,
        r#"corsgate.toml:4:10: server.listen: error: "8080": an address is a string "IP:port"; write "127.0.0.1:8080" (or "0.0.0.0:8080" for every interface)"#,
        r#"corsgate.toml:5:19: server.trusted_proxies: error: "10.0.0.0/8": a list, even of one; write ["10.0.0.0/8"]"#,
        r#"corsgate.toml:6:19: server.max_connections: error: "1000": a number, without quotes; write 1000"#,
        r#"corsgate.toml:9:11: server.cors.max_age: error: "1h": max_age is a number of seconds, without unit or quotes; write 3600 for 1h"#,
        r#"corsgate.toml:10:21: server.cors.allow_credentials: error: "true": true or false, without quotes; write true"#,
        r#"corsgate.toml:11:17: server.cors.on_disallowed: error: "refuse": one of "omit" or "reject""#,
        r#"corsgate.toml:14:8: route[0].path: error: "api": a route path starts with /; use "/api""#,
        r#"corsgate.toml:15:12: route[0].upstream: error: "127.0.0.1:9000": an upstream is a URL with its scheme; use "http://127.0.0.1:9000""#,
        r#"corsgate.toml:16:8: route[0].cors: error: cors is "off", "closed", a policy name (cors = "spa" for [policies.spa]) or a table of CORS keys"#,
    ];
    for line in expected {
        assert!(out.iter().any(|l| l == line), "missing {line}\nin {out:#?}");
    }
}

#[test]
fn check_warns_on_an_admin_listener_off_loopback_and_debug_on_a_public_listen() {
    let (code, out) = lines(&format!(
        "[server]\nlisten = \"0.0.0.0:8080\"\nadmin_listen = \"0.0.0.0:9901\"\n\n[server.cors]\nallow_origins = [\"https://a.example.com\"]\ndebug = true\n{ROUTE}"
    ));
    assert_eq!(code, Some(0), "{out:#?}");
    assert!(
        out.iter().any(|l| l.starts_with("corsgate.toml:3:16: server.admin_listen: warning: \"0.0.0.0:9901\": the admin listener is not on loopback")),
        "{out:#?}"
    );
    assert!(
        out.iter().any(|l| l.starts_with("corsgate.toml:7:9: server.cors.debug: warning: \"true\": debug mode on a listener that is not loopback")),
        "{out:#?}"
    );
    // Both on loopback: nothing to say.
    let (_, out) = lines(&format!(
        "[server]\nlisten = \"127.0.0.1:8080\"\nadmin_listen = \"[::1]:9901\"\n\n[server.cors]\nallow_origins = [\"https://a.example.com\"]\ndebug = true\n{ROUTE}"
    ));
    assert_eq!(out, ["corsgate.toml: valid (0 warnings)"]);
}
