//! `corsgate clients …` against a running gateway's admin API (`--admin`),
//! the binary run as a user would: set, add-origin, remove-origin, delete,
//! `import --format hydra` (every bad origin refused at once, nothing
//! written), and `export` read back by `import`. Each change is checked where
//! it matters: on a request through the gateway.

mod support;

use std::time::Duration;

use support::binary::{Ran, run};
use support::bodyspy::BodySpy;
use support::registry::{self, token_request};
use support::{Gw, TempDir};

const TOKEN: &str = "clients-cli-token";

struct Setup {
    dir: TempDir,
    gw: Gw,
    _spy: BodySpy,
}

impl Setup {
    async fn start(name: &str) -> Setup {
        let dir = TempDir::new(name);
        let spy = BodySpy::start().await;
        let config =
            registry::token_route_config(&dir, TOKEN, &registry::sqlite(&dir), "", &spy.url());
        dir.write("corsgate.toml", &config);
        let gw = Gw::start(&config).await;
        Setup { dir, gw, _spy: spy }
    }

    /// `corsgate clients ARGS --admin URL --token-file FILE`.
    async fn clients(&self, args: &[&str]) -> Ran {
        let mut all: Vec<String> = vec!["clients".into()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        all.push("--admin".into());
        all.push(format!("http://{}", self.gw.admin.unwrap()));
        all.push("--token-file".into());
        all.push(self.dir.join("token").display().to_string());
        run_owned(all).await
    }

    /// The client's origin allowed on the token route, as decided now.
    async fn allowed(&self, origin: &str, client_id: &str) -> bool {
        token_request(&self.gw, origin, client_id)
            .await
            .header("access-control-allow-origin")
            == Some(origin)
    }
}

async fn run_owned(args: Vec<String>) -> Ran {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args, Duration::from_secs(15))
    })
    .await
    .unwrap()
}

fn ok(ran: &Ran) -> &str {
    assert_eq!(ran.code, Some(0), "{ran:?}");
    &ran.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_through_the_admin_api_decides_the_next_request() {
    let s = Setup::start("clients-cli").await;
    assert!(!s.allowed("https://spa.example", "spa").await);

    let set = s
        .clients(&[
            "set",
            "spa",
            "--origin",
            "https://spa.example",
            "--name",
            "My SPA",
        ])
        .await;
    assert!(
        ok(&set).starts_with("created spa (registry revision"),
        "{set:?}"
    );
    // Applied by the gateway before the command returned.
    assert!(s.allowed("https://spa.example", "spa").await);

    let added = s
        .clients(&[
            "add-origin",
            "spa",
            "https://two.example",
            "https://spa.example",
        ])
        .await;
    assert!(
        ok(&added).starts_with("spa: https://spa.example https://two.example "),
        "{added:?}"
    );
    assert!(s.allowed("https://two.example", "spa").await);

    let removed = s
        .clients(&["remove-origin", "spa", "https://spa.example"])
        .await;
    assert!(
        ok(&removed).starts_with("spa: https://two.example "),
        "{removed:?}"
    );
    assert!(!s.allowed("https://spa.example", "spa").await);
    assert!(s.allowed("https://two.example", "spa").await);

    let missing = s
        .clients(&["remove-origin", "spa", "https://never.example"])
        .await;
    assert_eq!(missing.code, Some(2), "{missing:?}");
    assert!(
        missing
            .stderr
            .contains("has no origin \"https://never.example\"")
    );

    let bad = s
        .clients(&["add-origin", "spa", "https://bad.example/", "*"])
        .await;
    assert_eq!(bad.code, Some(1), "{bad:?}");
    assert!(
        bad.stdout
            .contains("allowed_origins[1]: \"https://bad.example/\"")
            && bad.stdout.contains("use \"https://bad.example\""),
        "{bad:?}"
    );
    assert!(bad.stdout.contains("allowed_origins[2]: \"*\""), "{bad:?}");

    let list = s.clients(&["list"]).await;
    assert_eq!(ok(&list), "spa\tMy SPA\thttps://two.example\n");
    let json = s.clients(&["list", "--json"]).await;
    let json: serde_json::Value = serde_json::from_str(ok(&json)).unwrap();
    assert_eq!(json["clients"][0]["id"], "spa");
    assert!(json["revision"].as_i64().unwrap() >= 3, "{json}");
    let get = s.clients(&["get", "spa"]).await;
    let got: serde_json::Value = serde_json::from_str(ok(&get)).unwrap();
    assert_eq!(
        got["allowed_origins"],
        serde_json::json!(["https://two.example"])
    );

    let wrong = run_owned(vec![
        "clients".into(),
        "list".into(),
        "--admin".into(),
        format!("http://{}", s.gw.admin.unwrap()),
    ])
    .await;
    assert_eq!(wrong.code, Some(2), "{wrong:?}");
    assert!(wrong.stderr.contains("401"), "{wrong:?}");

    let deleted = s.clients(&["delete", "spa"]).await;
    assert_eq!(ok(&deleted), "deleted spa\n");
    assert!(!s.allowed("https://two.example", "spa").await);
    let again = s.clients(&["delete", "spa"]).await;
    assert_eq!(again.code, Some(2), "{again:?}");
    assert!(again.stderr.contains("no client \"spa\""), "{again:?}");
}

/// What `hydra list clients --format json` prints (Hydra 2: `items`), with
/// fields corsgate ignores.
const HYDRA_BAD: &str = r#"{"items": [
  {"client_id": "spa", "client_name": "SPA", "grant_types": ["authorization_code"],
   "allowed_cors_origins": ["https://spa.example/", "https://ok.example"]},
  {"client_id": "wild", "allowed_cors_origins": ["*", "https://*.github.io"]},
  {"client_id": "m2m", "allowed_cors_origins": null, "token_endpoint_auth_method": "client_secret_basic"}
], "next_page_token": ""}"#;

const HYDRA_GOOD: &str = r#"[
  {"client_id": "spa", "client_name": "SPA", "grant_types": ["authorization_code"],
   "allowed_cors_origins": ["https://spa.example", "https://*.spa.example"]},
  {"client_id": "my:client", "allowed_cors_origins": ["http://localhost:*"]},
  {"client_id": "m2m", "allowed_cors_origins": null}
]"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_from_hydra_refuses_every_bad_origin_at_once_and_export_round_trips() {
    let s = Setup::start("clients-import").await;
    std::fs::write(s.dir.join("bad.json"), HYDRA_BAD).unwrap();
    let bad_file = s.dir.join("bad.json").display().to_string();
    let refused = s.clients(&["import", &bad_file, "--format", "hydra"]).await;
    assert_eq!(refused.code, Some(1), "{refused:?}");
    for expected in [
        "[0].allowed_cors_origins[0]: \"https://spa.example/\"",
        "[1].allowed_cors_origins[0]: \"*\"",
        "[1].allowed_cors_origins[1]: \"https://*.github.io\"",
        "3 problems; nothing imported",
    ] {
        assert!(refused.stdout.contains(expected), "{expected}: {refused:?}");
    }
    // Nothing was written, not even the valid clients.
    assert_eq!(ok(&s.clients(&["list"]).await), "");

    std::fs::write(s.dir.join("good.json"), HYDRA_GOOD).unwrap();
    let good_file = s.dir.join("good.json").display().to_string();
    let dry = s
        .clients(&["import", &good_file, "--format", "hydra", "--dry-run"])
        .await;
    assert!(
        ok(&dry).contains("3 clients valid; nothing written"),
        "{dry:?}"
    );
    assert_eq!(ok(&s.clients(&["list"]).await), "");
    let imported = s
        .clients(&["import", &good_file, "--format", "hydra"])
        .await;
    assert_eq!(
        ok(&imported),
        "imported 3 clients: 3 created, 0 replaced\n",
        "{imported:?}"
    );
    assert!(s.allowed("https://app.spa.example", "spa").await);
    assert!(s.allowed("http://localhost:3000", "my%3Aclient").await);

    // export → import into another gateway → the same export.
    let exported = ok(&s.clients(&["export"]).await).to_owned();
    let parsed: serde_json::Value = serde_json::from_str(&exported).unwrap();
    assert_eq!(parsed.as_array().unwrap().len(), 3);
    assert_eq!(
        parsed[1],
        serde_json::json!({"id": "my:client", "name": "", "allowed_origins": ["http://localhost:*"]})
    );
    let other = Setup::start("clients-import-other").await;
    std::fs::write(other.dir.join("export.json"), &exported).unwrap();
    let file = other.dir.join("export.json").display().to_string();
    let imported = other.clients(&["import", &file]).await;
    assert_eq!(ok(&imported), "imported 3 clients: 3 created, 0 replaced\n");
    assert_eq!(ok(&other.clients(&["export"]).await), exported);
    assert!(other.allowed("https://spa.example", "spa").await);

    // The file's own database, read directly, holds the same.
    let direct = run_owned(vec![
        "clients".into(),
        "export".into(),
        "--config".into(),
        other.dir.join("corsgate.toml").display().to_string(),
    ])
    .await;
    assert_eq!(ok(&direct), exported);
}
