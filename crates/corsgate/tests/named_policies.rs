//! `[policies.NAME]`: written once, named by `cors = "NAME"` or started from with
//! `cors = { policy = "NAME", … }`, inheriting `[server.cors]` key by key; what
//! `check` says about unknown, unused, shadowed and reserved names; and the
//! gateway and `explain` answering with the resolved policy.

mod support;

use std::time::Duration;

use corsgate::cmd::explain::{Credentials, Initiator, PageRequest, Verdict, explain};
use corsgate_config as config;
use http::StatusCode;
use support::binary::run;
use support::*;

const SPA: &str = "https://spa.example.com";
const APP: &str = "https://app.example.com";

fn file(upstream: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"

[server.cors]
allow_origins = ["{APP}"]
allow_credentials = true
max_age = 600

[policies.spa]
allow_origins = ["{SPA}"]
allow_methods = ["PUT"]

[[route]]
path = "/api"
upstream = "{upstream}"
cors = "spa"

[[route]]
path = "/admin"
upstream = "{upstream}"
cors = {{ policy = "spa", allow_methods = ["DELETE"] }}

[[route]]
path = "/"
upstream = "{upstream}"
"#
    )
}

fn preflight<'a>(origin: &'a str, method: &'a str) -> [(&'a str, &'a str); 2] {
    [
        ("origin", origin),
        ("access-control-request-method", method),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_answers_with_the_named_policy_over_server_cors() {
    let spy = Spy::ok().await;
    let gw = Gw::start(&file(&spy.url())).await;

    // cors = "spa": the policy's origins and methods, [server.cors]'s
    // credentials and max_age.
    let answer = send("OPTIONS", &gw.url("/api/x"), &preflight(SPA, "PUT")).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some(SPA),
        "{answer:?}"
    );
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(answer.header("access-control-max-age"), Some("600"));
    let answer = send("OPTIONS", &gw.url("/api/x"), &preflight(APP, "PUT")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "APP is not in spa");

    // cors = { policy = "spa", allow_methods = ["DELETE"] }: the route's own
    // methods over the policy's origins.
    let answer = send("OPTIONS", &gw.url("/admin/x"), &preflight(SPA, "DELETE")).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{answer:?}");
    let answer = send("OPTIONS", &gw.url("/admin/x"), &preflight(SPA, "PUT")).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    // A route without cors: [server.cors] alone.
    let answer = send("GET", &gw.url("/other"), &[("origin", APP)]).await;
    assert_eq!(answer.header("access-control-allow-origin"), Some(APP));
    let answer = send("GET", &gw.url("/other"), &[("origin", SPA)]).await;
    assert_eq!(answer.header("access-control-allow-origin"), None);
    assert_eq!(spy.count(), 2, "preflights are never forwarded");
}

#[test]
fn routes_naming_one_policy_share_its_compiled_form() {
    let text = file("http://127.0.0.1:9000").replace(
        "[[route]]\npath = \"/\"",
        "[[route]]\npath = \"/api2\"\nupstream = \"http://127.0.0.1:9000\"\ncors = \"spa\"\n\n[[route]]\npath = \"/\"",
    );
    let gateway = config::check(&text).gateway.expect("valid");
    let api = gateway.routes.resolve(None, "/api").policy.unwrap().clone();
    let api2 = gateway
        .routes
        .resolve(None, "/api2")
        .policy
        .unwrap()
        .clone();
    assert!(std::sync::Arc::ptr_eq(&api, &api2));
    let route = gateway.routes.resolve(None, "/api").route.unwrap();
    assert_eq!(route.policy_name.as_deref(), Some("spa"));
}

#[test]
fn explain_sees_the_resolved_policy() {
    let text = file("http://127.0.0.1:9000");
    let gateway = config::check(&text).gateway.expect("valid");
    let raw = config::load::parse(&text).config.unwrap();
    let request = |url: &str, origin: &str, method: &str| PageRequest {
        url: url.to_owned(),
        origin: origin.to_owned(),
        method: method.to_owned(),
        headers: Vec::new(),
        credentials: Credentials::Include,
        initiator: Initiator::Fetch,
    };
    let e = explain(
        &gateway,
        &raw,
        &request("https://api.example.com/api/x", SPA, "PUT"),
    )
    .unwrap();
    assert_eq!(e.verdict, Verdict::Allowed, "{e:#?}");
    let e = explain(
        &gateway,
        &raw,
        &request("https://api.example.com/admin/x", SPA, "PUT"),
    )
    .unwrap();
    assert_eq!(e.verdict, Verdict::Blocked, "{e:#?}");
}

/// `check`'s output lines for a file.
fn check_lines(text: &str) -> (Option<i32>, Vec<String>) {
    let dir = TempDir::new("named-policies");
    let path = dir.write("corsgate.toml", &text);
    let ran = run(&["check", path.to_str().unwrap()], Duration::from_secs(15));
    let prefix = format!("{}/", dir.path().display());
    let lines = ran
        .stdout
        .lines()
        .map(|l| l.strip_prefix(&prefix).unwrap_or(l).to_owned())
        .collect();
    (ran.code, lines)
}

#[test]
fn check_reports_unknown_unused_shadowed_and_reserved_names_at_their_place() {
    let text = r#"[server.cors]
allow_origins = ["https://app.example.com"]

[policies.spa]
allow_origins = ["https://spa.example.com"]
allow_methods = ["PUT"]

[policies.unused]
allow_origins = ["https://x.example.com"]

[policies.closed]
allow_origins = ["https://y.example.com"]

[[route]]
path = "/a"
upstream = "http://127.0.0.1:9000"
cors = "sap"

[[route]]
path = "/b"
upstream = "http://127.0.0.1:9000"
cors = { policy = "spa", allow_origins = ["https://b.example.com"], allow_methods = ["DELETE"] }

[[route]]
path = "/c"
upstream = "http://127.0.0.1:9000"
cors = { policy = "nothing", max_age = 5 }

[[route]]
path = "/d"
upstream = "http://127.0.0.1:9000"
cors = { policy = "closed" }
"#;
    let (code, lines) = check_lines(text);
    assert_eq!(code, Some(1), "{lines:#?}");
    let find = |needle: &str| {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in {lines:#?}"))
            .clone()
    };
    let unknown = find("route[0].cors:");
    assert!(
        unknown.starts_with("corsgate.toml:17:8: route[0].cors: error: \"sap\": no [policies.sap] table; did you mean \"spa\"?"),
        "{unknown}"
    );
    let unused = find("policies.unused:");
    assert!(
        unused.starts_with("corsgate.toml:8:1: policies.unused: warning: "),
        "{unused}"
    );
    assert!(unused.contains("no route uses this policy"), "{unused}");
    let reserved = find("policies.closed:");
    assert!(
        reserved.starts_with(
            "corsgate.toml:11:1: policies.closed: error: \"closed\": \"closed\" is reserved"
        ),
        "{reserved}"
    );
    let shadowed = find("route[1].cors.policy:");
    assert!(
        shadowed.starts_with("corsgate.toml:22:19: route[1].cors.policy: warning: \"spa\": "),
        "{shadowed}"
    );
    assert!(shadowed.contains("shadowed"), "{shadowed}");
    let nothing = find("route[2].cors.policy:");
    assert!(
        nothing.contains(
            "error: \"nothing\": no [policies.nothing] table; the policies are \"spa\", \"unused\""
        ),
        "{nothing}"
    );
    let closed = find("route[3].cors.policy:");
    assert!(
        closed.contains(
            "error: \"closed\": \"closed\" is not a policy to start from; write cors = \"closed\""
        ),
        "{closed}"
    );
}

#[test]
fn a_policy_is_checked_at_its_own_keys_and_inherits_server_cors() {
    // Credentials come from [server.cors]: "*" in the policy is refused there,
    // at the policy's own key, even before any route uses it.
    let text = r#"[server.cors]
allow_credentials = true

[policies.open]
allow_origins = "*"
alow_methods = ["PUT"]

[[route]]
path = "/"
upstream = "http://127.0.0.1:9000"
cors = "open"
"#;
    let (code, lines) = check_lines(text);
    assert_eq!(code, Some(1), "{lines:#?}");
    assert!(
        lines.iter().any(
            |l| l.starts_with("corsgate.toml:5:17: policies.open.allow_origins")
                && l.contains("credentials")
        ),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "corsgate.toml:6:1: policies.open.alow_methods: error: unknown key \"alow_methods\"; did you mean \"allow_methods\"?"
        )),
        "{lines:#?}"
    );
}

#[test]
fn a_bad_cors_value_names_every_accepted_form() {
    let (code, lines) =
        check_lines("[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9000\"\ncors = true\n");
    assert_eq!(code, Some(1));
    assert!(
        lines.iter().any(|l| l.starts_with(
            "corsgate.toml:4:8: route[0].cors: error: cors is \"off\", \"closed\", a policy name"
        )),
        "{lines:#?}"
    );
    let (_, lines) = check_lines(
        "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9000\"\ncors = { policy = 5 }\n",
    );
    assert!(
        lines.iter().any(|l| l.contains(
            "route[0].cors.policy: error: policy is the name of a [policies.NAME] table"
        )),
        "{lines:#?}"
    );
}
