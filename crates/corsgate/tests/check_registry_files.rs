//! `corsgate check` reads the files a PostgreSQL registry names
//! (`[registry]` `password_file`, `ca_file`, `client_cert_file`,
//! `client_key_file`) as `serve` reads them, and reports every one that does
//! not load at once, at its key's line and column, with the path, the reason
//! and the fix: a configuration that `check` passes does not then fail at
//! start on a missing or broken file.

mod support;

use support::TempDir;
use support::binary::{Cmd, Ran};
use support::tls::TestCa;

fn corsgate(dir: &TempDir, args: &[&str]) -> Ran {
    Cmd::new(args).current_dir(dir.path()).run()
}

fn config(registry: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:8080\"\n\n[registry]\n{registry}\n\n[[route]]\npath = \"/oauth2/token\"\nupstream = \"http://127.0.0.1:9\"\ncors = {{ clients = {{ identify = [\"form\"] }} }}\n"
    )
}

#[test]
fn check_reports_every_registry_file_that_does_not_load_with_its_place_reason_and_fix() {
    let dir = TempDir::new("check-registry-files");
    let ca = TestCa::new("check-registry-files");
    let client = ca.client_leaf("gateway", 30);
    dir.write("client.pem", &client.chain_pem);
    dir.write("other.key", &ca.client_leaf("other", 30).key_pem);
    dir.write("notes.txt", "the CA is on the wiki\n");
    dir.write(
        "corsgate.toml",
        &config(
            "database = \"postgres://corsgate@db.example.com:5432/corsgate?sslmode=verify-full\"\npassword_file = \"gone-password\"\nca_file = \"notes.txt\"\nclient_cert_file = \"client.pem\"\nclient_key_file = \"other.key\"",
        ),
    );
    let ran = corsgate(&dir, &["check", "corsgate.toml"]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    let out = &ran.stdout;
    // (line:column and key, path, reason, fix)
    let expected = [
        (
            "corsgate.toml:6:17: registry.password_file: error: \"gone-password\": ",
            "No such file or directory",
            "set password_file to a readable file",
        ),
        (
            "corsgate.toml:7:11: registry.ca_file: error: \"notes.txt\": ",
            "no certificate in it",
            "set ca_file to the PEM file of the CA",
        ),
        (
            "corsgate.toml:9:19: registry.client_key_file: error: \"other.key\": ",
            "not the key of client_cert_file",
            "set client_key_file to the PEM private key of client_cert_file",
        ),
    ];
    for (start, reason, fix) in expected {
        let line = out
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?}:\n{out}"));
        assert!(line.contains(reason) && line.contains(fix), "{line}");
    }
    assert!(
        !out.contains("registry.client_cert_file"),
        "the client certificate loads: {out}"
    );

    // The same files, present and right: nothing to say about them.
    dir.write("password", "secret\n");
    dir.write("ca.pem", &ca.pem);
    dir.write("client.key", &client.key_pem);
    dir.write(
        "corsgate.toml",
        &config(
            "database = \"postgres://corsgate@db.example.com:5432/corsgate?sslmode=verify-full\"\npassword_file = \"password\"\nca_file = \"ca.pem\"\nclient_cert_file = \"client.pem\"\nclient_key_file = \"client.key\"",
        ),
    );
    let ran = corsgate(&dir, &["check", "corsgate.toml"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
}
