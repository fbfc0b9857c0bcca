//! `corsgate explain` on client-scoped routes, the binary run as a user
//! would: the registry read from the configuration's SQLite file (filled
//! with `corsgate clients set`), or offline from a `corsgate clients
//! export` file; which identification source named which client, which list
//! decided, and the registry command that fixes a refusal (run, then
//! explained again).

mod support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::Value;
use support::TempDir;
use support::binary::{Ran, run};

const LIMIT: Duration = Duration::from_secs(20);

const TOKEN_URL: &str = "https://id.example/oauth2/token";
const USERINFO_URL: &str = "https://id.example/userinfo";
const FORM: &str = "Content-Type: application/x-www-form-urlencoded";

struct Setup {
    dir: TempDir,
}

impl Setup {
    /// A configuration with a token route (Basic, then the form body; one
    /// static origin) and a userinfo route (bearer JWT), and a registry file
    /// next to it holding `spa` and `my:client`.
    fn new(name: &str) -> Setup {
        let dir = TempDir::new(name);
        let config = r#"
[registry]
database = "sqlite:registry.db"

[[route]]
path = "/oauth2/token"
upstream = "http://127.0.0.1:4444"
[route.cors]
allow_origins = ["https://static.example"]
allow_headers = ["authorization", "content-type"]
clients = { identify = ["basic", "form"] }

[[route]]
path = "/userinfo"
upstream = "http://127.0.0.1:4444"
[route.cors]
allow_headers = ["authorization"]
clients = { identify = ["bearer-jwt"] }
"#;
        std::fs::write(dir.join("corsgate.toml"), config).unwrap();
        let setup = Setup { dir };
        setup.ok(&["clients", "set", "spa", "--origin", "https://spa.example"]);
        setup.ok(&[
            "clients",
            "set",
            "my:client",
            "--origin",
            "https://mine.example",
        ]);
        setup
    }

    fn config(&self) -> String {
        self.dir.join("corsgate.toml").display().to_string()
    }

    /// `corsgate ARGS --config corsgate.toml`, which must succeed.
    fn ok(&self, args: &[&str]) -> Ran {
        let mut all: Vec<&str> = args.to_vec();
        let config = self.config();
        all.extend(["--config", &config]);
        let ran = run(&all, LIMIT);
        assert_eq!(ran.code, Some(0), "{args:?}: {ran:?}");
        ran
    }

    /// `corsgate explain --config corsgate.toml ARGS --format json`.
    fn explain_json(&self, args: &[&str]) -> (Option<i32>, Value) {
        let config = self.config();
        let mut all = vec!["explain", "--config", &config, "--format", "json"];
        all.extend_from_slice(args);
        let ran = run(&all, LIMIT);
        let json = serde_json::from_str(&ran.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {ran:?}"));
        (ran.code, json)
    }
}

fn basic(user_pass: &str) -> String {
    format!("Authorization: Basic {}", STANDARD.encode(user_pass))
}

fn jwt(payload: &str) -> String {
    format!(
        "Authorization: Bearer e30.{}.c2ln",
        URL_SAFE_NO_PAD.encode(payload)
    )
}

#[test]
fn the_form_body_names_the_client_and_its_own_list_decides() {
    let setup = Setup::new("explain-clients-form");
    let (code, e) = setup.explain_json(&[
        "--url",
        TOKEN_URL,
        "--origin",
        "https://spa.example",
        "--method",
        "POST",
        "--header",
        FORM,
        "--data",
        "grant_type=authorization_code&client_id=spa&code=x",
    ]);
    assert_eq!(code, Some(0), "{e:#}");
    assert_eq!(e["verdict"], "allowed", "{e:#}");
    let c = &e["clients"];
    assert_eq!(c["named_by"], "form", "{e:#}");
    assert_eq!(c["client"], "spa");
    assert_eq!(c["registered"], true);
    assert_eq!(
        c["client_origins"],
        serde_json::json!(["https://spa.example"])
    );
    assert_eq!(c["decided_by"], "client-list");
    assert_eq!(c["registry_clients"], 2);
    assert!(
        c["registry"].as_str().unwrap().ends_with("registry.db"),
        "{e:#}"
    );
    // Basic is tried first and finds no Authorization header.
    assert_eq!(c["sources"][0]["source"], "basic");
    assert_eq!(c["sources"][0]["client"], Value::Null);
    assert_eq!(c["sources"][1]["client"], "spa");
}

#[test]
fn basic_names_a_percent_encoded_client_and_the_preflight_is_decided_by_every_registered_origin() {
    let setup = Setup::new("explain-clients-basic");
    let (code, e) = setup.explain_json(&[
        "--url",
        TOKEN_URL,
        "--origin",
        "https://mine.example",
        "--method",
        "POST",
        "--header",
        &basic("my%3Aclient:secret"),
    ]);
    assert_eq!(code, Some(0), "{e:#}");
    assert_eq!(e["verdict"], "allowed", "{e:#}");
    let c = &e["clients"];
    assert_eq!(c["named_by"], "basic");
    assert_eq!(c["client"], "my:client");
    assert_eq!(c["decided_by"], "client-list");
    // Authorization makes the browser preflight; a preflight names no client.
    assert_eq!(c["preflight_decided_by"], "registered-origins");
    assert!(e["preflight"]["rejection"].is_null(), "{e:#}");
}

#[test]
fn an_origin_of_another_list_is_refused_with_the_add_origin_command_that_fixes_it() {
    let setup = Setup::new("explain-clients-fix");
    let args = [
        "--url",
        TOKEN_URL,
        "--origin",
        "https://new.example",
        "--method",
        "POST",
        "--header",
        FORM,
        "--data",
        "client_id=spa",
    ];
    let (code, e) = setup.explain_json(&args);
    assert_eq!(code, Some(1), "{e:#}");
    assert_eq!(e["verdict"], "blocked");
    assert_eq!(e["actual"]["rejection"], "origin-not-allowed-for-client");
    assert_eq!(e["clients"]["decided_by"], "client-list");
    let fix = &e["fixes"][0];
    assert_eq!(
        fix["line"], "corsgate clients add-origin spa https://new.example",
        "{e:#}"
    );
    // The human report says the same.
    let config = setup.config();
    let mut human = vec!["explain", "--config", &config];
    human.extend_from_slice(&args);
    let ran = run(&human, LIMIT);
    assert!(
        ran.stdout
            .contains("client: \"spa\", named by form; registered, origins [https://spa.example]"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("corsgate clients add-origin spa https://new.example"),
        "{}",
        ran.stdout
    );
    // The fix, run as printed, makes the request work.
    setup.ok(&["clients", "add-origin", "spa", "https://new.example"]);
    let (code, e) = setup.explain_json(&args);
    assert_eq!(code, Some(0), "{e:#}");
    assert_eq!(e["verdict"], "allowed");
}

#[test]
fn a_client_given_directly_that_is_not_registered_gets_the_set_command() {
    let setup = Setup::new("explain-clients-unknown");
    let (code, e) = setup.explain_json(&[
        "--url",
        TOKEN_URL,
        "--origin",
        "https://ghost.example",
        "--client",
        "ghost",
    ]);
    assert_eq!(code, Some(1), "{e:#}");
    assert_eq!(e["actual"]["rejection"], "client-unknown");
    let c = &e["clients"];
    assert_eq!(c["named_by"], "client");
    assert_eq!(c["client"], "ghost");
    assert_eq!(c["registered"], false);
    assert_eq!(c["decided_by"], "unknown-client");
    assert_eq!(
        e["fixes"][0]["line"],
        "corsgate clients set ghost --origin https://ghost.example"
    );
}

#[test]
fn a_request_that_names_no_client_says_where_each_source_looked() {
    let setup = Setup::new("explain-clients-none");
    // No client_id; then client_id twice (ambiguous).
    for body in ["grant_type=refresh_token", "client_id=spa&client_id=spa"] {
        let (code, e) = setup.explain_json(&[
            "--url",
            TOKEN_URL,
            "--origin",
            "https://spa.example",
            "--method",
            "POST",
            "--header",
            FORM,
            "--data",
            body,
        ]);
        assert_eq!(code, Some(1), "{e:#}");
        assert_eq!(e["actual"]["rejection"], "client-unidentified", "{e:#}");
        let c = &e["clients"];
        assert_eq!(c["named_by"], Value::Null);
        assert_eq!(c["decided_by"], "static-list");
        assert_eq!(c["sources"][0]["detail"], "no Authorization header");
        let form = c["sources"][1]["detail"].as_str().unwrap();
        if body.contains("client_id") {
            assert!(form.contains("more than once"), "{form}");
        } else {
            assert!(form.contains("no client_id"), "{form}");
        }
        let notes = e["notes"].to_string();
        assert!(notes.contains("basic, form"), "{notes}");
    }
}

#[test]
fn an_origin_of_the_static_list_is_allowed_without_reading_a_source() {
    let setup = Setup::new("explain-clients-static");
    let (code, e) = setup.explain_json(&[
        "--url",
        TOKEN_URL,
        "--origin",
        "https://static.example",
        "--method",
        "POST",
        "--header",
        FORM,
        "--data",
        "client_id=ghost",
    ]);
    assert_eq!(code, Some(0), "{e:#}");
    let c = &e["clients"];
    assert_eq!(c["decided_by"], "static-list");
    assert_eq!(c["named_by"], Value::Null);
    assert_eq!(c["client"], Value::Null);
}

#[test]
fn offline_from_an_export_a_bearer_jwt_names_the_client() {
    let setup = Setup::new("explain-clients-offline");
    let export = setup.ok(&["clients", "export"]);
    let file = setup.dir.join("clients.json");
    std::fs::write(&file, &export.stdout).unwrap();
    // The configured database is gone: the export alone is read.
    std::fs::remove_file(setup.dir.join("registry.db")).unwrap();
    let file = file.display().to_string();
    let good = jwt(r#"{"client_id":"spa","sub":"u"}"#);
    let (code, e) = setup.explain_json(&[
        "--url",
        USERINFO_URL,
        "--origin",
        "https://spa.example",
        "--header",
        &good,
        "--clients",
        &file,
    ]);
    assert_eq!(code, Some(0), "{e:#}");
    let c = &e["clients"];
    assert_eq!(c["named_by"], "bearer-jwt");
    assert_eq!(c["client"], "spa");
    assert_eq!(c["decided_by"], "client-list");
    assert_eq!(c["registry"], file);
    // An opaque token names no client.
    let (code, e) = setup.explain_json(&[
        "--url",
        USERINFO_URL,
        "--origin",
        "https://spa.example",
        "--header",
        "Authorization: Bearer ory_at_opaque",
        "--registry-snapshot",
        &file,
    ]);
    assert_eq!(code, Some(1), "{e:#}");
    assert_eq!(e["actual"]["rejection"], "client-unidentified");
    // Without the export, the missing database is an error that says what
    // to do.
    let config = setup.config();
    let ran = run(
        &[
            "explain",
            "--config",
            &config,
            "--url",
            USERINFO_URL,
            "--origin",
            "https://spa.example",
        ],
        LIMIT,
    );
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(ran.stderr.contains("--clients FILE"), "{}", ran.stderr);
}
