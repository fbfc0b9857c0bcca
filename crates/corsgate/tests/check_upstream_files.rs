//! `corsgate check` and `corsgate import` read the files an upstream's TLS
//! table names (`[route.upstream_tls]` `ca_file`, `client_cert_file`,
//! `client_key_file`) as `serve` reads them, and report every file that does
//! not load at once: at the key's line and column, with the path, the reason
//! (missing, not PEM, no certificate, a key that is not the certificate's)
//! and the fix.

mod support;

use support::TempDir;
use support::binary::{Cmd, Ran};
use support::tls::TestCa;

fn corsgate(dir: &TempDir, args: &[&str]) -> Ran {
    Cmd::new(args).current_dir(dir.path()).run()
}

/// The line of `out` about `at` (`route[N].upstream_tls.KEY`).
fn line_about<'a>(out: &'a str, at: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(&format!(" {at}: ")))
        .unwrap_or_else(|| panic!("nothing about {at}:\n{out}"))
}

/// Writes the files of the test into `dir`: a CA, a client certificate with
/// its key, another key, a file that is not PEM and one with no certificate.
fn files(dir: &TempDir) {
    let ca = TestCa::new("check-upstream-files");
    dir.write("ca.pem", &ca.pem);
    let client = ca.client_leaf("gateway", 30);
    dir.write("client.pem", &client.chain_pem);
    dir.write("client.key", &client.key_pem);
    dir.write("other.key", &ca.client_leaf("other", 30).key_pem);
    dir.write(
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\n@@@ not base64 @@@\n-----END CERTIFICATE-----\n",
    );
    dir.write("notes.txt", "the CA is on the wiki\n");
}

const UPSTREAMS: &str = r#"
[[route]]
path = "/missing"
upstream = "https://127.0.0.1:8443"
[route.upstream_tls]
ca_file = "missing-ca.pem"

[[route]]
path = "/broken"
upstream = "https://127.0.0.1:8443"
[route.upstream_tls]
ca_file = "broken.pem"

[[route]]
path = "/notes"
upstream = "https://127.0.0.1:8443"
[route.upstream_tls]
ca_file = "notes.txt"

[[route]]
path = "/no-client-files"
upstream = "https://127.0.0.1:8443"
[route.upstream_tls]
ca_file = "ca.pem"
client_cert_file = "gone.pem"
client_key_file = "gone.key"

[[route]]
path = "/wrong-key"
upstream = "https://127.0.0.1:8443"
[route.upstream_tls]
ca_file = "ca.pem"
client_cert_file = "client.pem"
client_key_file = "other.key"

[[route]]
path = "/fine"
upstream = "https://127.0.0.1:8443"
[route.upstream_tls]
ca_file = "ca.pem"
client_cert_file = "client.pem"
client_key_file = "client.key"
"#;

#[test]
fn check_reports_every_upstream_tls_file_that_does_not_load_with_its_place_reason_and_fix() {
    let dir = TempDir::new("check-upstream-files");
    files(&dir);
    dir.write("corsgate.toml", UPSTREAMS);
    let ran = corsgate(&dir, &["check", "corsgate.toml"]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    let out = &ran.stdout;
    // (key, line:column, path, reason, fix)
    let expected = [
        (
            "route[0].upstream_tls.ca_file",
            "6:11",
            "\"missing-ca.pem\"",
            "does not exist",
            "set ca_file to the PEM file",
        ),
        (
            "route[1].upstream_tls.ca_file",
            "12:11",
            "\"broken.pem\"",
            "not a PEM certificate file",
            "set ca_file to the PEM file",
        ),
        (
            "route[2].upstream_tls.ca_file",
            "18:11",
            "\"notes.txt\"",
            "no certificate in it",
            "set ca_file to the PEM file",
        ),
        (
            "route[3].upstream_tls.client_cert_file",
            "25:20",
            "\"gone.pem\"",
            "does not exist",
            "set client_cert_file to",
        ),
        (
            "route[3].upstream_tls.client_key_file",
            "26:19",
            "\"gone.key\"",
            "does not exist",
            "set client_key_file to",
        ),
        (
            "route[4].upstream_tls.client_key_file",
            "34:19",
            "\"other.key\"",
            "does not belong to the certificate in client.pem",
            "set client_key_file to",
        ),
    ];
    for (at, place, path, reason, fix) in expected {
        let line = line_about(out, at);
        assert!(
            line.starts_with(&format!("corsgate.toml:{place}: {at}: error: {path}: ")),
            "{line}"
        );
        assert!(line.contains(reason), "{at}: no {reason:?}: {line}");
        assert!(line.contains(fix), "{at}: no fix {fix:?}: {line}");
    }
    // The route whose files load is not reported; every other problem is.
    assert!(!out.contains("route[5]"), "{out}");
    assert!(out.contains("invalid (6 errors, 0 warnings)"), "{out}");

    // The same in JSON: each problem with its line and column.
    let ran = corsgate(&dir, &["check", "corsgate.toml", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(
        report["problems"].as_array().unwrap().len(),
        6,
        "{report:#}"
    );
}

#[test]
fn a_file_that_cannot_be_read_says_so_and_relative_paths_are_the_configurations() {
    let dir = TempDir::new("check-upstream-unreadable");
    files(&dir);
    // A directory where a file is expected: it exists, but is no file to read.
    std::fs::create_dir(dir.join("ca-dir")).unwrap();
    let sub = dir.join("etc");
    std::fs::create_dir(&sub).unwrap();
    std::fs::copy(dir.join("ca.pem"), sub.join("ca.pem")).unwrap();
    std::fs::write(
        sub.join("corsgate.toml"),
        "[[route]]\npath = \"/a\"\nupstream = \"https://127.0.0.1:8443\"\n[route.upstream_tls]\nca_file = \"../ca-dir\"\n\n\
         [[route]]\npath = \"/b\"\nupstream = \"https://127.0.0.1:8443\"\n[route.upstream_tls]\nca_file = \"ca.pem\"\n",
    )
    .unwrap();
    // Run from another directory: relative paths are read from the file's.
    let ran = corsgate(&dir, &["check", "etc/corsgate.toml"]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    let line = line_about(&ran.stdout, "route[0].upstream_tls.ca_file");
    assert!(line.contains("\"../ca-dir\": cannot read "), "{line}");
    assert!(line.contains("set ca_file to the PEM file"), "{line}");
    assert!(!ran.stdout.contains("route[1]"), "{}", ran.stdout);
}

#[test]
fn import_checks_the_files_its_output_names() {
    let dir = TempDir::new("import-upstream-files");
    files(&dir);
    let nginx = "location /a/ {\n\
                 \x20   proxy_pass https://127.0.0.1:9443;\n\
                 \x20   proxy_ssl_trusted_certificate missing-ca.pem;\n\
                 \x20   proxy_ssl_verify on;\n\
                 }\n\
                 location /b/ {\n\
                 \x20   proxy_pass https://127.0.0.1:9444;\n\
                 \x20   proxy_ssl_trusted_certificate ca.pem;\n\
                 \x20   proxy_ssl_certificate client.pem;\n\
                 \x20   proxy_ssl_certificate_key other.key;\n\
                 \x20   proxy_ssl_verify on;\n\
                 }\n";
    dir.write("nginx.conf", nginx);
    let ran = corsgate(&dir, &["import", "--from", "nginx", "nginx.conf"]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    let err = &ran.stderr;
    let ca = line_about(err, "route[0].upstream_tls.ca_file");
    assert!(ca.starts_with("<output>:"), "{ca}");
    assert!(ca.contains("\"missing-ca.pem\": "), "{ca}");
    assert!(ca.contains("does not exist"), "{ca}");
    let key = line_about(err, "route[1].upstream_tls.client_key_file");
    assert!(key.contains("does not belong to the certificate"), "{key}");
    assert!(
        err.contains("the output does not pass corsgate check (2 errors)"),
        "{err}"
    );
    // The output's own line and column: the key in the TOML printed.
    let place = ca
        .strip_prefix("<output>:")
        .and_then(|rest| rest.split(": ").next())
        .unwrap();
    let (line, column) = place.split_once(':').unwrap();
    let line: usize = line.parse().unwrap();
    let column: usize = column.parse().unwrap();
    let printed = ran.stdout.lines().nth(line - 1).unwrap();
    assert!(
        printed[column - 1..].starts_with("\"missing-ca.pem\""),
        "{place}: {printed}"
    );

    // Once the files load, import passes.
    let fixed = nginx
        .replace("missing-ca.pem", "ca.pem")
        .replace("other.key", "client.key");
    dir.write("nginx.conf", &fixed);
    let ran = corsgate(&dir, &["import", "--from", "nginx", "nginx.conf"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert!(
        ran.stderr.contains("the output passes corsgate check"),
        "{}",
        ran.stderr
    );
}
