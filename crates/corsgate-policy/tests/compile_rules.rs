//! What `Policy::compile` refuses, checked against whole data sets rather than a
//! few names: subdomain wildcards against every rule of the Public Suffix List
//! (the security review's F4), response-only header names in `allow_headers`, and
//! compiling very long lists in linear time (the exhaustion review's E8).

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use corsgate_policy::{CorsConfig, DiagnosticKind, Policy};

/// The kinds of the errors `config` compiles to (empty: compiled).
fn errors(config: &CorsConfig) -> Vec<(DiagnosticKind, String)> {
    match Policy::compile(config) {
        Ok(_) => Vec::new(),
        Err(err) => err
            .errors()
            .map(|d| (d.kind(), d.message().to_owned()))
            .collect(),
    }
}

fn wildcard_errors(base: &str) -> Vec<(DiagnosticKind, String)> {
    errors(
        &CorsConfig::new()
            .allow_origins(format!("https://*.{base}"))
            .allow_credentials(true),
    )
}

/// The rules of the Public Suffix List the `psl` crate was generated from, as
/// that crate publishes them beside its code (`data/rules.txt`), found through
/// `cargo metadata` so that the version is the one this crate links.
fn psl_rules() -> Vec<String> {
    // Only this platform's packages: the others may never have been downloaded.
    let rustc = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc runs");
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc -vV names the host");
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
        ])
        .arg(host)
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let psl = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "psl")
        .expect("psl is a dependency");
    let manifest = PathBuf::from(psl["manifest_path"].as_str().unwrap());
    let rules = manifest.parent().unwrap().join("data/rules.txt");
    let text =
        std::fs::read_to_string(&rules).unwrap_or_else(|e| panic!("{}: {e}", rules.display()));
    let list: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .map(|rule| {
            // Rules are written in Unicode; origins carry hosts in punycode.
            let (prefix, name) = match rule.strip_prefix('!') {
                Some(name) => ("!", name),
                None => match rule.strip_prefix("*.") {
                    Some(name) => ("*.", name),
                    None => ("", rule),
                },
            };
            let ascii =
                idna::domain_to_ascii(name).unwrap_or_else(|e| panic!("rule {rule}: {e:?}"));
            format!("{prefix}{ascii}")
        })
        .collect();
    assert!(
        list.len() > 9000,
        "only {} rules in {}",
        list.len(),
        rules.display()
    );
    list
}

/// `name` and each of its parents (`a.b.c`, `b.c`, `c`).
fn self_and_parents(name: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(name), |n| n.split_once('.').map(|(_, rest)| rest))
}

#[test]
fn every_wildcard_covering_a_public_suffix_is_refused() {
    let rules = psl_rules();
    // A wildcard `*.H` is refused when some public suffix is H or lies below it:
    // for a rule R, H is R or any parent of R; for a wildcard rule `*.R`, the
    // suffixes are the names below R, so H is R or any parent of R too; for an
    // exception rule `!E`, E is registrable but its parent carries a wildcard.
    let mut bases: HashSet<&str> = HashSet::new();
    for rule in &rules {
        let base = match rule.strip_prefix('!') {
            Some(exception) => match exception.split_once('.') {
                Some((_, parent)) => parent,
                None => continue,
            },
            None => rule.strip_prefix("*.").unwrap_or(rule),
        };
        bases.extend(self_and_parents(base));
    }
    let mut wrong = Vec::new();
    for base in &bases {
        let errors = wildcard_errors(base);
        if !errors
            .iter()
            .any(|(kind, _)| *kind == DiagnosticKind::PublicSuffixWildcard)
        {
            wrong.push(format!("https://*.{base}: {errors:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} wildcards accepted, for example:\n{}",
        wrong.len(),
        bases.len(),
        wrong[..wrong.len().min(20)].join("\n")
    );
}

#[test]
fn wildcards_under_a_name_one_registrant_owns_are_accepted() {
    let rules = psl_rules();
    let wildcard_bases: HashSet<&str> = rules.iter().filter_map(|r| r.strip_prefix("*.")).collect();
    let exceptions: HashSet<&str> = rules.iter().filter_map(|r| r.strip_prefix('!')).collect();
    let mut wrong = Vec::new();
    let mut checked = 0;
    // Under every plain rule R without a wildcard below it, a name of a label no
    // rule uses is registrable: one owner, so `*.` + that name is fine.
    for rule in rules.iter().filter(|r| !r.starts_with(['*', '!'])) {
        if wildcard_bases.contains(rule.as_str()) {
            continue;
        }
        let base = format!("corsgate-owner-7q.{rule}");
        checked += 1;
        let errors = wildcard_errors(&base);
        if !errors.is_empty() {
            wrong.push(format!("https://*.{base}: {errors:?}"));
        }
    }
    // Exception rules are registrable names under a wildcard.
    for exception in &exceptions {
        checked += 1;
        let errors = wildcard_errors(exception);
        if !errors.is_empty() {
            wrong.push(format!("https://*.{exception}: {errors:?}"));
        }
    }
    for base in [
        "example.com",
        "mycompany.co.uk",
        "dev.example.org",
        "app.example",
    ] {
        checked += 1;
        let errors = wildcard_errors(base);
        if !errors.is_empty() {
            wrong.push(format!("https://*.{base}: {errors:?}"));
        }
    }
    assert!(checked > 9000);
    assert!(
        wrong.is_empty(),
        "{} wildcards refused, for example:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(20)].join("\n")
    );
}

#[test]
fn the_review_s_wildcards_over_cloud_providers_are_refused_with_the_fix() {
    for base in [
        "amazonaws.com",
        "compute.amazonaws.com",
        "elb.amazonaws.com",
        "windows.net",
        "core.windows.net",
        "ck",
        "kawasaki.jp",
        "github.io",
        "co.uk",
        "com",
    ] {
        let errors = wildcard_errors(base);
        let message = errors
            .iter()
            .find(|(kind, _)| *kind == DiagnosticKind::PublicSuffixWildcard)
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| panic!("*.{base} accepted: {errors:?}"));
        assert!(
            message.contains("dangerously_allow_public_suffix_wildcards = true")
                && message.contains("list your own origins"),
            "{message}"
        );
        let mut switched = CorsConfig::new().allow_origins(format!("https://*.{base}"));
        switched.dangerously_allow_public_suffix_wildcards = Some(true);
        assert!(Policy::compile(&switched).is_ok(), "{base} with the switch");
    }
}

#[test]
fn response_only_header_names_in_allow_headers_are_refused() {
    for name in [
        "Access-Control-Allow-Origin",
        "access-control-allow-credentials",
        "Access-Control-Allow-Methods",
        "Access-Control-Allow-Headers",
        "Access-Control-Expose-Headers",
        "ACCESS-CONTROL-MAX-AGE",
    ] {
        let errors = errors(
            &CorsConfig::new()
                .allow_origins("https://a.example")
                .allow_headers(name),
        );
        let Some((kind, message)) = errors.first() else {
            panic!("{name} accepted in allow_headers");
        };
        assert_eq!(kind.as_str(), "response-header-in-allow-headers", "{name}");
        assert!(
            message.contains("bug") && message.contains("remove"),
            "{name}: {message}"
        );
    }
    // Request headers of the protocol stay what they were: not refused here.
    assert!(
        errors(
            &CorsConfig::new()
                .allow_origins("https://a.example")
                .allow_headers("x-access-control-allow-origin")
        )
        .is_empty()
    );
}

/// Runs `work` on another thread and fails if it has not finished within
/// `limit`: a guard against a hang, not a measurement.
fn finishes_within<T: Send + 'static>(
    limit: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("did not finish within {limit:?}: quadratic again?"))
}

#[test]
fn two_hundred_thousand_origins_and_names_compile_without_hanging() {
    const N: usize = 200_000;
    let policy = finishes_within(Duration::from_secs(90), || {
        let origins: Vec<String> = (0..N)
            .map(|i| format!("https://app{i}.example.com"))
            .chain((0..N / 4).map(|i| format!("https://*.tenant{i}.example.net")))
            .collect();
        let headers: Vec<String> = (0..N / 2).map(|i| format!("x-header-{i}")).collect();
        let methods: Vec<String> = (0..N / 2).map(|i| format!("METHOD{i}")).collect();
        let expose: Vec<String> = (0..N / 2).map(|i| format!("x-exposed-{i}")).collect();
        Policy::compile(
            &CorsConfig::new()
                .allow_origins(origins)
                .allow_headers(headers)
                .allow_methods(methods)
                .expose_headers(expose),
        )
    });
    let policy = policy.unwrap();
    let mut request = http::HeaderMap::new();
    request.insert("origin", "https://app199999.example.com".parse().unwrap());
    assert!(policy.decide(&http::Method::GET, &request).is_allowed());
}

#[test]
fn two_hundred_thousand_duplicates_are_each_reported_without_hanging() {
    const N: usize = 100_000;
    let warnings = finishes_within(Duration::from_secs(90), || {
        let origins: Vec<String> = (0..2 * N)
            .map(|i| format!("https://app{}.example.com", i % N))
            .collect();
        let headers: Vec<String> = (0..2 * N).map(|i| format!("x-h-{}", i % N)).collect();
        Policy::compile(
            &CorsConfig::new()
                .allow_origins(origins)
                .allow_headers(headers),
        )
        .map(|p| p.warnings().len())
    });
    assert_eq!(warnings.unwrap(), 2 * N);
}
