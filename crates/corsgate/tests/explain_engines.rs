//! `corsgate explain --browser`: each engine's verdict and console messages, as
//! a user runs it. The messages themselves are checked against the real
//! browsers by the browser suite (tests/browser.rs); this holds the command
//! line and the JSON to their contract.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::TempDir;
use support::binary::run;

const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"

[server.cors]
allow_origins = ["https://app.example.com"]
allow_methods = ["PUT"]

[[route]]
path = "/api"
upstream = "http://127.0.0.1:9"

[[route]]
path = "/legacy"
upstream = "http://127.0.0.1:9"
cors = "off"
"#;

const LIMIT: Duration = Duration::from_secs(10);

fn explain(dir: &TempDir, args: &[&str]) -> (Option<i32>, Value) {
    let file = dir.write("corsgate.toml", &CONFIG);
    let file = file.to_str().unwrap().to_owned();
    let mut all = vec!["explain", "--config", &file, "--format", "json"];
    all.extend_from_slice(args);
    let ran = run(&all, LIMIT);
    let value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {} {}", ran.stdout, ran.stderr));
    (ran.code, value)
}

const REFUSED_PUT: [&str; 8] = [
    "--url",
    "https://api.example.com/api/x",
    "--origin",
    "https://evil.example.com",
    "--method",
    "PUT",
    "--header",
    "content-type:application/json",
];

#[test]
fn all_engines_by_default_each_in_its_own_words() {
    let dir = TempDir::new("explain-engines");
    let (code, value) = explain(&dir, &REFUSED_PUT);
    assert_eq!(code, Some(1));
    let engines = value["engines"].as_array().unwrap();
    let names: Vec<&str> = engines
        .iter()
        .map(|e| e["engine"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["chromium", "firefox", "webkit"]);

    // Chromium's is also the top-level message, as before engines existed.
    let chromium = &engines[0];
    assert_eq!(chromium["verdict"], "blocked");
    assert_eq!(chromium["console_messages"][0], value["console_message"]);
    assert_eq!(chromium["cors_error"], "PreflightMissingAllowOriginHeader");
    assert_eq!(chromium["js_error"], "Failed to fetch");

    // Firefox: the missing header with the preflight's status, then the
    // request the preflight was for.
    let firefox = &engines[1];
    assert_eq!(firefox["verdict"], "blocked");
    let head = "Cross-Origin Request Blocked: The Same Origin Policy disallows reading \
                the remote resource at https://api.example.com/api/x.";
    assert_eq!(
        firefox["console_messages"],
        serde_json::json!([
            format!(
                "{head} (Reason: CORS header ‘Access-Control-Allow-Origin’ missing). Status code: 403."
            ),
            format!("{head} (Reason: CORS request did not succeed). Status code: (null)."),
        ])
    );
    assert_eq!(
        firefox["js_error"],
        "NetworkError when attempting to fetch resource."
    );
    assert!(firefox["cors_error"].is_null());

    // WebKit: the preflight's status before its missing
    // Access-Control-Allow-Origin, then the API's own line.
    let webkit = &engines[2];
    assert_eq!(webkit["verdict"], "blocked");
    assert_eq!(
        webkit["console_messages"],
        serde_json::json!([
            "Preflight response is not successful. Status code: 403",
            "Fetch API cannot load https://api.example.com/api/x due to access control checks.",
        ])
    );
    assert_eq!(webkit["js_error"], "Load failed");
    assert!(webkit["cors_error"].is_null());
}

#[test]
fn one_engine_when_asked() {
    let dir = TempDir::new("explain-engines");
    let mut args = REFUSED_PUT.to_vec();
    args.extend(["--browser", "firefox"]);
    let (code, value) = explain(&dir, &args);
    assert_eq!(code, Some(1));
    let engines = value["engines"].as_array().unwrap();
    assert_eq!(engines.len(), 1);
    assert_eq!(engines[0]["engine"], "firefox");

    // A forwarded simple request: Firefox names the upstream's status, which
    // explain cannot know, and says what it assumed.
    let (code, value) = explain(
        &dir,
        &[
            "--url",
            "https://api.example.com/api/x",
            "--origin",
            "https://evil.example.com",
            "--browser",
            "firefox",
        ],
    );
    assert_eq!(code, Some(1));
    let firefox = &value["engines"][0];
    assert!(
        firefox["console_messages"][0].as_str().unwrap().ends_with(
            "(Reason: CORS header ‘Access-Control-Allow-Origin’ missing). Status code: 200."
        ),
        "{firefox}"
    );
    assert!(firefox["note"].as_str().unwrap().contains("200 assumed"));
}

#[test]
fn engine_independent_verdicts_hold_for_every_engine() {
    let dir = TempDir::new("explain-engines");
    let (code, value) = explain(
        &dir,
        &[
            "--url",
            "https://api.example.com/legacy/x",
            "--origin",
            "https://evil.example.com",
        ],
    );
    assert_eq!(code, Some(0));
    for engine in value["engines"].as_array().unwrap() {
        assert_eq!(engine["verdict"], "decided-by-upstream", "{engine}");
    }
}

#[test]
fn an_unknown_engine_is_a_usage_error() {
    let ran = run(
        &[
            "explain",
            "--url",
            "https://api.example.com/x",
            "--origin",
            "https://app.example.com",
            "--browser",
            "safari",
        ],
        LIMIT,
    );
    assert_eq!(ran.code, Some(2), "{}", ran.stderr);
    assert!(ran.stderr.contains("chromium"), "{}", ran.stderr);
    assert!(ran.stderr.contains("webkit"), "{}", ran.stderr);
}

#[test]
fn human_output_names_each_engine() {
    let dir = TempDir::new("explain-engines");
    let file = dir.write("corsgate.toml", &CONFIG);
    let mut args = vec!["explain", "--config", file.to_str().unwrap()];
    args.extend_from_slice(&REFUSED_PUT);
    let ran = run(&args, LIMIT);
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    for line in [
        "Chromium: blocked",
        "Firefox: blocked",
        "WebKit: blocked",
        "Preflight response is not successful. Status code: 403",
        "fetch() rejects with: TypeError: NetworkError when attempting to fetch resource.",
    ] {
        assert!(ran.stdout.contains(line), "{line}:\n{}", ran.stdout);
    }
}
