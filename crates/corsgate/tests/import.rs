//! `corsgate import` over every configuration example of the seeds, in its
//! source format: the TOML printed must equal `expected/NAME.toml`, the notes and
//! verdict `expected/NAME.stderr` (set UPDATE_EXPECT=1 to rewrite them after a
//! deliberate change, then review the diff), and the output must pass
//! `corsgate check` — or, for the unsafe sources, the tool must say why not and
//! exit 1.

mod support;

use std::path::{Path, PathBuf};

use support::TempDir;
use support::binary::{Cmd, Ran};

use http::HeaderValue;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import")
}

const FORMATS: &[(&str, &str)] = &[
    ("license-monitor", "toml"),
    ("nexus", "toml"),
    ("kratos", "yml"),
    ("nginx", "conf"),
];

/// Sources that allow what corsgate refuses: the import must exit 1 and say why.
const UNSAFE: &[(&str, &str, &str)] = &[
    (
        "license-monitor",
        "any-origin-with-credentials.toml",
        "`*` with credentials: refused; listed origins needed",
    ),
    (
        "nexus",
        "wildcard-with-credentials.toml",
        "`*` with credentials: refused; listed origins needed",
    ),
    (
        "nexus",
        "mobile-dev.toml",
        "a plain-http origin can be impersonated",
    ),
    ("kratos", "defaults.yml", "credentials on by default"),
    ("nginx", "reflect.conf", "$http_origin echoed every origin"),
    // The guide's own example: the API on 127.0.0.1:8080, corsgate's default
    // listen address; the output would loop.
    (
        "license-monitor",
        "full.toml",
        "corsgate would forward requests to itself",
    ),
    (
        "license-monitor",
        "overrides.toml",
        "corsgate would forward requests to itself",
    ),
];

fn inputs(format: &str, ext: &str) -> Vec<PathBuf> {
    let dir = root().join(format);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn corsgate(dir: &Path, args: &[&str]) -> Ran {
    Cmd::new(args).current_dir(dir).run()
}

fn import(format: &str, file: &Path) -> Ran {
    let name = file.file_name().unwrap().to_str().unwrap();
    corsgate(file.parent().unwrap(), &["import", "--from", format, name])
}

#[test]
fn every_seed_example_imports_as_expected() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut failures = Vec::new();
    let mut count = 0;
    for (format, ext) in FORMATS {
        for file in inputs(format, ext) {
            count += 1;
            let run = import(format, &file);
            let stem = file.file_stem().unwrap().to_str().unwrap();
            let name = file.file_name().unwrap().to_str().unwrap();
            let expected_dir = root().join(format).join("expected");
            let expected_toml = expected_dir.join(format!("{stem}.toml"));
            let expected_stderr = expected_dir.join(format!("{stem}.stderr"));
            if update {
                std::fs::create_dir_all(&expected_dir).unwrap();
                std::fs::write(&expected_toml, &run.stdout).unwrap();
                std::fs::write(&expected_stderr, &run.stderr).unwrap();
            }
            let want_toml = std::fs::read_to_string(&expected_toml).unwrap_or_default();
            let want_stderr = std::fs::read_to_string(&expected_stderr).unwrap_or_default();
            if run.stdout != want_toml {
                failures.push(format!(
                    "{format}/{name}: stdout differs\n--- expected\n{want_toml}--- actual\n{}",
                    run.stdout
                ));
            }
            if run.stderr != want_stderr {
                failures.push(format!(
                    "{format}/{name}: stderr differs\n--- expected\n{want_stderr}--- actual\n{}",
                    run.stderr
                ));
            }

            // The verdict agrees with check, and the exit code with the verdict.
            let checked = corsgate_config::check(&run.stdout);
            let unsafe_case = UNSAFE.iter().find(|(f, n, _)| f == format && *n == name);
            match unsafe_case {
                None => {
                    if run.code != Some(0) || checked.has_errors() {
                        failures.push(format!(
                            "{format}/{name}: exit {:?}, expected 0 (passes check)\n{}",
                            run.code, run.stderr
                        ));
                    }
                    assert!(run.stderr.contains("the output passes corsgate check"));
                }
                Some((_, _, why)) => {
                    if run.code != Some(1) || !checked.has_errors() {
                        failures.push(format!("{format}/{name}: exit {:?}, expected 1", run.code));
                    }
                    if !run.stderr.contains(why)
                        || !run.stderr.contains("does not pass corsgate check")
                    {
                        failures.push(format!(
                            "{format}/{name}: stderr does not say {why:?}\n{}",
                            run.stderr
                        ));
                    }
                }
            }
        }
    }
    assert!(count >= 29, "only {count} fixtures");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The imported files pass the real `corsgate check`, warnings and all.
#[test]
fn imported_files_pass_corsgate_check() {
    let dir = TempDir::new("import-check");
    for (format, ext) in FORMATS {
        for file in inputs(format, ext) {
            let name = file.file_name().unwrap().to_str().unwrap();
            if UNSAFE.iter().any(|(f, n, _)| f == format && *n == name) {
                continue;
            }
            let run = import(format, &file);
            let out = dir.join(&format!("{format}-{name}.toml"));
            std::fs::write(&out, &run.stdout).unwrap();
            let check = corsgate(
                dir.path(),
                &["check", out.file_name().unwrap().to_str().unwrap()],
            );
            assert_eq!(check.code, Some(0), "{format}/{name}:\n{}", check.stdout);
        }
    }
}

/// The notes a user needs (unsafe or lossy conversions), each produced where the source calls for it.
#[test]
fn the_notes_name_what_could_not_be_carried_over() {
    for (format, file, note) in [
        (
            "kratos",
            "empty-origins.yml",
            "empty origin list meant all origins",
        ),
        ("kratos", "defaults.yml", "credentials on by default"),
        ("kratos", "globs.yml", "glob matched more than intended"),
        ("kratos", "globs.yml", "\"authorization\" added"),
        (
            "license-monitor",
            "full.toml",
            "`OPTIONS` in methods is redundant",
        ),
        ("license-monitor", "overrides.toml", "imported as a route"),
        (
            "license-monitor",
            "any-origin-with-credentials.toml",
            "`*` with credentials: refused; listed origins needed",
        ),
        ("nginx", "reverse-proxy.conf", "upstream unknown"),
        (
            "nginx",
            "reverse-proxy.conf",
            "answered every OPTIONS request",
        ),
        ("nginx", "map.conf", "no `Vary: Origin` was added"),
        ("nginx", "map.conf", "on_disallowed = \"reject\""),
        ("nginx", "map-regex.conf", "matched more than intended"),
        (
            "nexus",
            "production.toml",
            "`OPTIONS` in methods is redundant",
        ),
    ] {
        let run = import(format, &root().join(format).join(file));
        assert!(
            run.stderr.contains(note),
            "{format}/{file}: no {note:?} in\n{}",
            run.stderr
        );
    }
}

/// The imported policies allow what the source allowed, and never more.
#[test]
fn imported_policies_allow_what_the_source_allowed() {
    // (format, file, route path, origins allowed, origins refused)
    type Case<'a> = (&'a str, &'a str, &'a str, &'a [&'a str], &'a [&'a str]);
    let cases: &[Case<'_>] = &[
        (
            "kratos",
            "globs.yml",
            "/",
            &[
                "https://a.example.com",
                "https://a.b.example.com",
                "https://example.org",
                "https://x.example.org",
                "http://localhost:3000",
            ],
            &[
                "https://example.com",
                "https://evilexample.org",
                "https://example.com.evil.example",
                "http://a.example.com",
            ],
        ),
        (
            "nginx",
            "map-regex.conf",
            "/api",
            &[
                "https://example.com",
                "https://example.org",
                "https://a.b.example.org",
                "https://app.example.net",
                "https://partner.example.io",
            ],
            &[
                "https://evil.example.com",
                "https://other.example.net",
                "https://partner.example.io.evil.example",
                "http://example.com",
            ],
        ),
        (
            "license-monitor",
            "overrides.toml",
            "/api/admin",
            &["https://admin.example.com"],
            &["https://dashboard.example.com", "null"],
        ),
    ];
    for (format, file, path, allowed, refused) in cases {
        let run = import(format, &root().join(format).join(file));
        // overrides.toml's API is on corsgate's default listen address: the fix
        // the import gives, applied.
        let checked = corsgate_config::check(&with_listen(&run.stdout));
        let gateway = checked.gateway.expect("valid");
        let route = gateway.routes.resolve(None, path).route.expect("a route");
        let policy = route.policy.as_ref().expect("CORS on");
        for origin in *allowed {
            assert!(
                policy
                    .check_origin(&HeaderValue::from_static(origin))
                    .is_ok(),
                "{file}: {origin} refused"
            );
        }
        for origin in *refused {
            assert!(
                policy
                    .check_origin(&HeaderValue::from_static(origin))
                    .is_err(),
                "{file}: {origin} allowed"
            );
        }
    }
}

/// The output with `[server] listen = "127.0.0.1:8081"` added, as the note on a
/// looping upstream says to.
fn with_listen(toml: &str) -> String {
    if toml.contains("is corsgate's own listen address") {
        format!("[server]\nlisten = \"127.0.0.1:8081\"\n{toml}")
    } else {
        toml.to_owned()
    }
}

/// License Monitor's guide runs its API on 127.0.0.1:8080, corsgate's default
/// listen address: imported as is, the gateway forwarded every request to
/// itself. The import exits 1 with the fix, and the fix works.
#[test]
fn an_import_whose_upstream_is_corsgates_own_listen_address_exits_1_with_the_fix() {
    let run = import("license-monitor", &root().join("license-monitor/full.toml"));
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    for needed in [
        "full.toml: route[0].upstream: \"http://127.0.0.1:8080\" is corsgate's own listen address (127.0.0.1:8080 by default)",
        "by adding [server] listen = \"127.0.0.1:8081\"",
        "route[0].upstream: error:",
        "corsgate would forward requests to itself; apply the fix in the note",
    ] {
        assert!(
            run.stderr.contains(needed),
            "no {needed:?} in\n{}",
            run.stderr
        );
    }
    // The note is in the file too.
    assert!(run.stdout.contains("is corsgate's own listen address"));
    let fixed = with_listen(&run.stdout);
    let checked = corsgate_config::check(&fixed);
    assert!(!checked.has_errors(), "{fixed}");

    // Other formats too: an nginx proxy_pass to the same address.
    let dir = TempDir::new("import-loop");
    dir.write(
        "loop.conf",
        "location /api/ { proxy_pass http://localhost:8080; add_header Access-Control-Allow-Origin https://app.example.com; }\n",
    );
    let run = corsgate(dir.path(), &["import", "--from", "nginx", "loop.conf"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("\"http://localhost:8080\" is corsgate's own listen address"),
        "{}",
        run.stderr
    );
}

#[test]
fn unreadable_or_foreign_files_exit_2() {
    let dir = root();
    let run = corsgate(&dir, &["import", "--from", "nexus", "missing.toml"]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("cannot read"), "{}", run.stderr);

    for (format, file, why) in [
        ("kratos", "nginx/map.conf", "not YAML"),
        ("license-monitor", "nexus/basic.toml", "no [api] table"),
        (
            "nexus",
            "license-monitor/full.toml",
            "no [server.cors] table",
        ),
        ("nginx", "kratos/custom-ui.yml", "not ended"),
    ] {
        let run = corsgate(&dir, &["import", "--from", format, file]);
        assert_eq!(run.code, Some(2), "{format} {file}: {}", run.stderr);
        assert!(run.stderr.contains(why), "{format} {file}: {}", run.stderr);
        assert!(run.stdout.is_empty());
    }

    let tmp = TempDir::new("import-foreign");
    tmp.write("kratos.yml", "log:\n  level: info\n");
    let run = corsgate(tmp.path(), &["import", "--from", "kratos", "kratos.yml"]);
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr.contains("no serve.public.cors"),
        "{}",
        run.stderr
    );
}

/// Every note printed on stderr is also in the output as a comment, so that
/// `corsgate import … > corsgate.toml` keeps them.
#[test]
fn notes_are_kept_in_the_output_as_comments() {
    let mut count = 0;
    for (format, ext) in FORMATS {
        for file in inputs(format, ext) {
            let name = file.file_name().unwrap().to_str().unwrap();
            let run = import(format, &file);
            // The comments joined back into one line per note.
            let comments: String = run
                .stdout
                .lines()
                .filter_map(|l| l.strip_prefix('#'))
                .map(|l| l.trim().trim_start_matches("- "))
                .collect::<Vec<_>>()
                .join(" ");
            for note in run.stderr.lines() {
                let Some(note) = note.strip_prefix(&format!("{name}: ")) else {
                    continue;
                };
                count += 1;
                let words = note.split_whitespace().collect::<Vec<_>>().join(" ");
                assert!(
                    comments.contains(&words),
                    "{format}/{name}: note not in the output: {note}\n{}",
                    run.stdout
                );
            }
        }
    }
    assert!(count >= 50, "only {count} notes");
}
