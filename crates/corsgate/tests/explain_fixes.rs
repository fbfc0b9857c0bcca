//! `explain`'s fixes open only what was asked: applied as printed, the request
//! works and no other route opens. Through the binary (`--format json` and the
//! human report), as a user runs it.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::TempDir;
use support::binary::run;

/// An identity server: a self-service API for two apps (policy `spa`), its login
/// UI on a host of its own inheriting `[server.cors]`, its admin API closed, and
/// a catch-all inheriting `[server.cors]` too.
const IDP: &str = r#"[server.cors]
allow_origins = ["https://app.example.com"]
allow_credentials = true

[policies.spa]
allow_origins = ["https://app.example.com", "https://account.example.com"]
allow_methods = ["PUT", "DELETE"]
allow_headers = ["content-type"]

[[route]]
path = "/api"
upstream = "http://127.0.0.1:9000"
cors = "spa"

[[route]]
path = "/self-service"
upstream = "http://127.0.0.1:9001"
cors = "spa"

[[route]]
host = "login.example.com"
path = "/"
upstream = "http://127.0.0.1:4433"

[[route]]
path = "/admin"
upstream = "http://127.0.0.1:4434"
cors = "closed"

[[route]]
path = "/"
upstream = "http://127.0.0.1:4434"
"#;

/// The same file without named policies (the policy written out in each route):
/// the shape of a file before `[policies.NAME]` existed.
const PLAIN: &str = r#"[server.cors]
allow_origins = ["https://app.example.com"]
allow_credentials = true

[[route]]
host = "login.example.com"
path = "/"
upstream = "http://127.0.0.1:4433"

[[route]]
path = "/admin"
upstream = "http://127.0.0.1:4434"

[[route]]
path = "/"
upstream = "http://127.0.0.1:4435"
"#;

const SHOP: &str = "https://shop.example.com";

fn explain(dir: &Path, text: &str, url: &str, origin: &str, extra: &[&str]) -> Value {
    let file = dir.join("corsgate.toml");
    std::fs::write(&file, text).unwrap();
    let mut args = vec![
        "explain",
        "--config",
        file.to_str().unwrap(),
        "--url",
        url,
        "--origin",
        origin,
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let ran = run(&args, Duration::from_secs(15));
    assert!(matches!(ran.code, Some(0 | 1)), "{ran:?}");
    serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {ran:?}"))
}

fn verdict(e: &Value) -> &str {
    e["verdict"].as_str().unwrap()
}

fn fixes(e: &Value) -> Vec<(String, String, Vec<String>)> {
    e["fixes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["key"].as_str().unwrap().to_owned(),
                f["line"].as_str().unwrap().to_owned(),
                f["also_opens"]
                    .as_array()
                    .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// Writes `line` into the route that starts at `marker` (after its upstream).
fn apply(text: &str, marker: &str, line: &str) -> String {
    let at = text.find(marker).expect("marker");
    let end = text[at..].find('\n').map_or(text.len(), |n| at + n + 1);
    format!("{}{line}\n{}", &text[..end], &text[end..])
}

#[test]
fn a_key_inherited_from_server_cors_is_fixed_in_the_routes_own_table() {
    let dir = TempDir::new("explain-fixes");
    let login = "https://login.example.com/sessions";
    let e = explain(
        dir.path(),
        PLAIN,
        login,
        SHOP,
        &["--credentials", "include"],
    );
    assert_eq!(verdict(&e), "blocked");
    let fixes = fixes(&e);
    assert_eq!(fixes.len(), 1, "{fixes:?}");
    let (key, line, _) = &fixes[0];
    assert_eq!(key, r#"route[0].cors (host "login.example.com", path "/")"#);
    assert_eq!(
        line,
        r#"cors = { allow_origins = ["https://app.example.com", "https://shop.example.com"] }"#
    );

    // Done as printed: the login route opens to the shop, and only it.
    let fixed = apply(PLAIN, "upstream = \"http://127.0.0.1:4433\"", line);
    let e = explain(
        dir.path(),
        &fixed,
        login,
        SHOP,
        &["--credentials", "include"],
    );
    assert_eq!(verdict(&e), "allowed", "{fixed}");
    for url in [
        "https://api.example.com/admin/users",
        "https://api.example.com/other",
    ] {
        let e = explain(dir.path(), &fixed, url, SHOP, &["--credentials", "include"]);
        assert_eq!(verdict(&e), "blocked", "{url} opened too:\n{fixed}");
    }
}

#[test]
fn a_key_of_a_routes_own_table_is_fixed_there() {
    let dir = TempDir::new("explain-fixes");
    let text = PLAIN.replace(
        "upstream = \"http://127.0.0.1:4434\"\n",
        "upstream = \"http://127.0.0.1:4434\"\ncors = { allow_methods = [\"PUT\"] }\n",
    );
    let e = explain(
        dir.path(),
        &text,
        "https://api.example.com/admin/x",
        "https://app.example.com",
        &["--method", "PATCH"],
    );
    assert_eq!(
        fixes(&e),
        [(
            r#"route[1].cors.allow_methods (path "/admin")"#.to_owned(),
            r#"allow_methods = ["PUT", "PATCH"]"#.to_owned(),
            Vec::new()
        )]
    );
}

#[test]
fn a_route_of_a_named_policy_gets_its_own_table_first_and_the_policy_with_what_it_opens() {
    let dir = TempDir::new("explain-fixes");
    let e = explain(
        dir.path(),
        IDP,
        "https://api.example.com/api/users",
        "https://app.example.com",
        &["--method", "PATCH"],
    );
    assert_eq!(verdict(&e), "blocked");
    let fixes = fixes(&e);
    assert_eq!(fixes.len(), 2, "{fixes:?}");
    assert_eq!(fixes[0].0, r#"route[0].cors (path "/api")"#);
    assert_eq!(
        fixes[0].1,
        r#"cors = { policy = "spa", allow_methods = ["PUT", "DELETE", "PATCH"] }"#
    );
    assert!(fixes[0].2.is_empty());
    assert_eq!(fixes[1].0, "policies.spa.allow_methods");
    assert_eq!(fixes[1].2, [r#"route[1] (path "/self-service")"#]);

    // The first, applied: /api allows PATCH, /self-service still does not.
    let fixed = IDP.replacen("cors = \"spa\"", &fixes[0].1, 1);
    let e = explain(
        dir.path(),
        &fixed,
        "https://api.example.com/api/users",
        "https://app.example.com",
        &["--method", "PATCH"],
    );
    assert_eq!(verdict(&e), "allowed", "{fixed}");
    let e = explain(
        dir.path(),
        &fixed,
        "https://api.example.com/self-service/x",
        "https://app.example.com",
        &["--method", "PATCH"],
    );
    assert_eq!(verdict(&e), "blocked");
}

#[test]
fn a_fix_in_server_cors_lists_every_route_it_opens() {
    let dir = TempDir::new("explain-fixes");
    // No route for this path (the catch-all removed): [server.cors] decides.
    let text = IDP.replace(
        "\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:4434\"\n",
        "",
    );
    let e = explain(
        dir.path(),
        &text,
        "https://api.example.com/nowhere",
        SHOP,
        &[],
    );
    let fixes = fixes(&e);
    assert_eq!(fixes.len(), 1, "{fixes:?}");
    assert_eq!(fixes[0].0, "server.cors.allow_origins");
    // The login route inherits allow_origins from [server.cors]; the spa
    // routes and the closed admin route do not.
    assert_eq!(
        fixes[0].2,
        [r#"route[2] (host "login.example.com", path "/")"#]
    );
}

#[test]
fn routes_are_labelled_with_host_and_path() {
    let dir = TempDir::new("explain-fixes");
    let file = dir.write("corsgate.toml", &PLAIN);
    let ran = run(
        &[
            "explain",
            "--config",
            file.to_str().unwrap(),
            "--url",
            "https://login.example.com/x",
            "--origin",
            SHOP,
        ],
        Duration::from_secs(15),
    );
    assert!(
        ran.stdout
            .contains("  route: route[0] (host \"login.example.com\", path \"/\")\n"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains(
            "— in route[0].cors (host \"login.example.com\", path \"/\"):\n    cors = { allow_origins = "
        ),
        "{}",
        ran.stdout
    );
}

/// The gateway's metrics (and logs) name a route of one host with its host and
/// path, in a form without quotes: `1:login.example.com/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_name_a_host_route_by_host_and_path() {
    use support::{Gw, Spy, config, route, send};
    let spy = Spy::ok().await;
    let routes = format!(
        "{}{}",
        route("/", &spy.url(), ""),
        route("/", &spy.url(), "host = \"login.example.com\"")
    );
    let gw = Gw::start(&config(
        "",
        "allow_origins = [\"https://app.example.com\"]",
        &routes,
    ))
    .await;
    let answer = send(
        "GET",
        &gw.url("/x"),
        &[
            ("host", "login.example.com"),
            ("origin", "https://app.example.com"),
        ],
    )
    .await;
    assert_eq!(answer.status, http::StatusCode::OK);
    send(
        "GET",
        &gw.url("/y"),
        &[("origin", "https://app.example.com")],
    )
    .await;
    let metrics = send("GET", &gw.admin_url("/metrics"), &[]).await.text();
    for name in ["1:login.example.com/", "0:/"] {
        assert!(
            metrics.contains(&format!(
                "corsgate_requests_total{{route=\"{name}\",class=\"actual\",decision=\"allowed\",reason=\"\"}} 1"
            )),
            "{name}:\n{metrics}"
        );
    }
}
