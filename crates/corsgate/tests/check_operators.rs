//! `check` (and `serve`, which loads through the same code) against the ways an
//! operator hurts themselves: an upstream that is the gateway itself, files of
//! other products, type errors, settings that expose the admin or debug output.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::TempDir;
use support::binary::{Cmd, Ran, run};

const LIMIT: Duration = Duration::from_secs(15);

fn check(text: &str) -> Ran {
    let dir = TempDir::new("check-operators");
    let file = dir.write("corsgate.toml", text);
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
        (Some("127.0.0.1:443"), "https://localhost"),
        (Some("127.0.0.1:80"), "h2c://127.0.0.1"),
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
        ("127.0.0.1:80", "https://127.0.0.1"),
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
    let file = dir.write(
        "loop.toml",
        &looping(Some("127.0.0.1:0"), "http://127.0.0.1:0"),
    );
    // Port 0 is never a loop (the system picks the port): the file is valid.
    let ran = run(&["check", file.to_str().unwrap()], LIMIT);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let file = dir.write(
        "loop2.toml",
        &looping(Some("127.0.0.1:18080"), "http://localhost:18080"),
    );
    let ran = run(&["serve", "--config", file.to_str().unwrap()], LIMIT);
    assert!(!ran.timed_out, "serve started on a looping file: {ran:?}");
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(ran.stderr.contains("own listen address"), "{ran:?}");
}

/// Writes a PEM file at each `*_file` path `example` names (relative to the
/// example's directory): keys for `*key_file`, an authority for `*ca_file`, a
/// client certificate for `client_cert_file`, a server certificate for the
/// other `cert_file`s, so that `check` reads real ones.
fn write_referenced_pem_files(dir: &TempDir, example: &str, ca: &support::tls::TestCa) {
    let server = ca.leaf(&["api.example.com", "*.example.com", "localhost"], 365);
    let client = ca.client_leaf("corsgate", 365);
    for line in example.lines() {
        for part in line.split([',', '{', '}']) {
            let Some((key, value)) = part.split_once('=') else {
                continue;
            };
            let key = key.trim();
            let Some(path) = value
                .trim()
                .strip_prefix('"')
                .and_then(|v| v.split('"').next())
            else {
                continue;
            };
            let pem = if key == "client_key_file" {
                &client.key_pem
            } else if key.ends_with("key_file") {
                &server.key_pem
            } else if key.ends_with("ca_file") {
                &ca.pem
            } else if key == "client_cert_file" {
                &client.chain_pem
            } else if key.ends_with("cert_file") {
                &server.chain_pem
            } else {
                continue;
            };
            let at = dir.join(path);
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            std::fs::write(at, pem).unwrap();
        }
    }
}

/// Every configuration file shown in the docs (a ```toml block with a route)
/// passes `check`, and warns only where the page shows that warning: readers
/// copy them. The certificates and keys an example names are made for it.
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
    let ca = support::tls::TestCa::new("docs");
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
            let file = dir.write("example.toml", example);
            write_referenced_pem_files(&dir, example, &ca);
            let ran = run(&["check", file.to_str().unwrap()], LIMIT);
            // A warning only where the page shows that warning to its reader.
            let unexplained = ran
                .stdout
                .lines()
                .filter_map(|line| line.split_once(": warning: ").map(|(_, w)| w))
                .any(|warning| !text.contains(warning));
            if ran.code != Some(0) || unexplained {
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

/// `audit --resolve HOST:PORT:ADDR`, as curl's: a gateway that routes by host
/// is audited before DNS names it. The route for the host must be the one that
/// answered: its upstream saw every actual request, with the URL's Host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_resolve_reaches_a_host_route_before_dns_exists() {
    use support::{Gw, Spy, config, route};
    let spy = Spy::ok().await;
    let gw = Gw::start(&config(
        "",
        "allow_origins = [\"https://app.example.com\"]",
        &route(
            "/",
            &spy.url(),
            "host = \"api.example.test\"\ncors = { allow_origins = [\"https://app.example.com\"] }",
        ),
    ))
    .await;
    let port = gw.addr.port();
    let url = format!("http://api.example.test:{port}/items");
    let resolve = format!("api.example.test:{port}:127.0.0.1");
    let ran = tokio::task::spawn_blocking(move || {
        run(
            &[
                "audit",
                &url,
                "--resolve",
                &resolve,
                "--origin",
                "https://app.example.com",
                "--max-requests",
                "20",
                "--timeout",
                "3",
                "--format",
                "json",
            ],
            LIMIT,
        )
    })
    .await
    .unwrap();
    assert!(matches!(ran.code, Some(0 | 1)), "{ran:?}");
    let report: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert!(report["requests_sent"].as_u64().unwrap() > 1, "{report}");
    assert!(spy.count() > 0, "the host route never answered: {report}");
    for seen in spy.requests() {
        assert_eq!(
            seen.headers.get("host").and_then(|h| h.to_str().ok()),
            Some(format!("api.example.test:{port}").as_str())
        );
    }
    // An entry for another host or port is refused, not ignored.
    let ran = run(
        &[
            "audit",
            &format!("http://api.example.test:{port}/"),
            "--resolve",
            &format!("other.example.test:{port}:127.0.0.1"),
        ],
        LIMIT,
    );
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(
        ran.stderr
            .contains(&format!("no entry for api.example.test:{port}")),
        "{ran:?}"
    );
}

/// Runs `corsgate ARGS` with `stdin` as standard input and `env` set, killed
/// after `LIMIT` (a hang guard); (code, stdout, stderr).
fn run_with(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut command = Cmd::new(args).stdin(stdin).within(LIMIT);
    for (name, value) in env {
        command = command.env(name, value);
    }
    let ran = command.run();
    (ran.code, ran.stdout, ran.stderr)
}

const VALID: &str = "[server.cors]\nallow_origins = [\"https://app.example.com\"]\n\n[[route]]\npath = \"/api\"\nupstream = \"http://127.0.0.1:9000\"\n";

#[test]
fn check_and_explain_read_standard_input_for_a_dash() {
    let (code, out, err) = run_with(&["check", "-"], VALID, &[]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "<stdin>: valid (0 warnings)\n"),
        "{err}"
    );
    let (code, out, _) = run_with(&["check", "-"], "[server\n", &[]);
    assert_eq!(code, Some(1));
    assert!(out.starts_with("<stdin>:1:1: error: TOML syntax"), "{out}");
    let explain = [
        "explain",
        "-c",
        "-",
        "--url",
        "https://api.example.com/api/x",
        "--origin",
        "https://app.example.com",
    ];
    let (code, out, err) = run_with(&explain, VALID, &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("route: route[0] (path \"/api\")"), "{out}");
}

#[test]
fn c_and_corsgate_config_name_the_file_for_check_explain_and_serve() {
    let dir = TempDir::new("check-operators-env");
    let file = dir.write("corsgate.toml", VALID);
    let path = file.to_str().unwrap();
    let (code, out, _) = run_with(&["check", "-c", path], "", &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.ends_with("corsgate.toml: valid (0 warnings)\n"),
        "{out}"
    );
    let (code, out, _) = run_with(&["check"], "", &[("CORSGATE_CONFIG", path)]);
    assert_eq!(code, Some(0), "{out}");
    // The file given on the command line wins over the environment.
    let bad = dir.write("bad.toml", "[server\n");
    let (code, _, _) = run_with(
        &["check", bad.to_str().unwrap()],
        "",
        &[("CORSGATE_CONFIG", path)],
    );
    assert_eq!(code, Some(1));
    let (code, _, err) = run_with(&["check"], "", &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("CORSGATE_CONFIG"), "{err}");
    // explain: the origin is allowed by the file, refused by the demo.
    let (code, out, err) = run_with(
        &[
            "explain",
            "--url",
            "https://api.example.com/api/x",
            "--origin",
            "https://app.example.com",
        ],
        "",
        &[("CORSGATE_CONFIG", path)],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    // serve: a bad file named by the environment starts nothing (exit 2).
    let (code, _, err) = run_with(
        &["serve"],
        "",
        &[("CORSGATE_CONFIG", bad.to_str().unwrap())],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bad.toml"), "{err}");
    let (code, _, err) = run_with(&["serve", "-c", bad.to_str().unwrap()], "", &[]);
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn another_products_file_is_met_with_the_import_that_reads_it() {
    for (text, from) in [
        (
            "server {\n  listen 80;\n  location /api/ {\n    add_header Access-Control-Allow-Origin $http_origin;\n    proxy_pass http://127.0.0.1:9000;\n  }\n}\n",
            "nginx",
        ),
        (
            "serve:\n  public:\n    cors:\n      enabled: true\n      allowed_origins:\n        - https://app.example.com\n",
            "kratos",
        ),
        (
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: api\n  annotations:\n    nginx.ingress.kubernetes.io/enable-cors: \"true\"\n",
            "ingress-nginx",
        ),
        (
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: api\n",
            "gateway-api",
        ),
        (
            "[api]\nenabled = true\ncors_enabled = true\ncors_origins = [\"https://app.example.com\"]\n",
            "license-monitor",
        ),
        (
            "[server]\nlisten_address = \"127.0.0.1:8000\"\n\n[server.cors]\nallow_origins = [\"https://app.example.com\"]\n",
            "nexus",
        ),
    ] {
        let (code, out) = lines(text);
        assert_eq!(code, Some(1), "{from}: {out:#?}");
        assert_eq!(
            out.len(),
            2,
            "{from}: one line, not a page of unknown keys: {out:#?}"
        );
        assert!(
            out[0].starts_with("corsgate.toml:1:1: error: this is ")
                && out[0].contains(&format!(
                    ", not a corsgate configuration; convert it with: corsgate import --from {from} /"
                ))
                && out[0].ends_with("/corsgate.toml"),
            "{from}: {out:#?}"
        );
    }
}

#[test]
fn print_default_config_is_a_production_safe_starting_point() {
    let (code, text, _) = run_with(&["serve", "--print-default-config"], "", &[]);
    assert_eq!(code, Some(0));
    // It passes check without a warning (no debug on a public listen, admin
    // on loopback, no "off" route) ...
    let (code, out) = lines(&text);
    assert_eq!(
        (code, out.as_slice()),
        (
            Some(0),
            &["corsgate.toml: valid (0 warnings)".to_owned()][..]
        ),
        "{text}"
    );
    // ... and holds none of the demo's development settings.
    for (needle, why) in [
        ("builtin:demo", "the demo API"),
        ("debug = true", "debug mode"),
        ("allow_credentials = true", "credentials"),
        ("localhost:*", "any localhost port"),
        ("0.0.0.0", "a public listener"),
    ] {
        let set = text
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains(needle));
        assert!(!set, "{why} in the starting point:\n{text}");
    }
    assert!(text.contains("cors = \"closed\""), "{text}");
}
