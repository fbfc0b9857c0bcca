//! The dashboard's `POST /explain` on a client-scoped route answers with the
//! gateway's live registry, the one its requests are decided with: a client
//! origin added with `corsgate clients add-origin` while the gateway runs is
//! allowed by the explanation as soon as the gateway allows it, and an origin
//! that is not registered is refused with the registry command that fixes it.

mod support;

use serde_json::{Value, json};
use support::binary::{Ran, run};
use support::registry::{form_client_config, token_request};
use support::*;

const SPA: &str = "https://spa.example";
const ADDED: &str = "https://added.example";
const STRANGER: &str = "https://stranger.example";
const FORM: &str = "application/x-www-form-urlencoded";

/// `corsgate ARGS --config FILE`, which must succeed.
fn corsgate(config: &std::path::Path, args: &[&str]) -> Ran {
    let config = config.display().to_string();
    let mut all = args.to_vec();
    all.extend(["--config", &config]);
    let ran = run(&all, binary::RUN_LIMIT);
    assert_eq!(ran.code, Some(0), "{all:?}: {ran:?}");
    ran
}

/// `POST /explain` on the admin listener; the answer's JSON.
async fn explain(gw: &Gw, body: &Value) -> Value {
    let answer = send_with(
        "POST",
        &gw.admin_url("/explain"),
        &[("content-type", "application/json")],
        &body.to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    serde_json::from_slice(&answer.body).unwrap()
}

/// A token request from `origin` naming `spa` in its form body, as the
/// dashboard's explain takes it.
fn token_page(origin: &str) -> Value {
    json!({
        "url": "https://id.example/oauth2/token",
        "origin": origin,
        "method": "POST",
        "headers": [["content-type", FORM]],
        "data": "grant_type=client_credentials&client_id=spa",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboards_explain_reads_the_live_registry_the_gateway_decides_with() {
    let spy = Spy::ok().await;
    let dir = TempDir::new("dashboard-registry");
    let text = form_client_config(
        "sqlite:registry.db",
        "poll_interval = \"100ms\"",
        &spy.url(),
    );
    let config = dir.write("corsgate.toml", &text);
    corsgate(&config, &["clients", "set", "spa", "--origin", SPA]);
    let gw = Gw::from_file(&config, false).await;

    // Written by another process while the gateway runs: the gateway picks
    // it up on its next poll.
    corsgate(&config, &["clients", "add-origin", "spa", ADDED]);
    eventually("the gateway allows the added origin", || async {
        let answer = token_request(&gw, ADDED, "spa").await;
        match answer.header("access-control-allow-origin") {
            Some(ADDED) => Ok(()),
            other => Err(format!("{} {other:?}", answer.status)),
        }
    })
    .await;

    // The dashboard says what the gateway just did.
    let e = explain(&gw, &token_page(ADDED)).await;
    assert_eq!(e["verdict"], "allowed", "{e:#}");
    let clients = &e["clients"];
    assert_eq!(clients["client"], "spa", "{e:#}");
    assert_eq!(clients["named_by"], "form", "{e:#}");
    assert_eq!(clients["registered"], true, "{e:#}");
    assert_eq!(clients["decided_by"], "client-list", "{e:#}");
    assert_eq!(clients["client_origins"], json!([SPA, ADDED]), "{e:#}");
    assert!(
        clients["registry"]
            .as_str()
            .is_some_and(|r| r.contains("live")),
        "{e:#}"
    );

    // The client given directly, as `corsgate explain --client` takes it.
    let mut direct = token_page(ADDED);
    direct["data"] = json!(null);
    direct["client"] = json!("spa");
    let e = explain(&gw, &direct).await;
    assert_eq!(e["verdict"], "allowed", "{e:#}");
    assert_eq!(e["clients"]["named_by"], "client", "{e:#}");

    // An origin the client did not register: refused by the gateway, and by
    // the explanation, with the command that fixes it.
    let answer = token_request(&gw, STRANGER, "spa").await;
    assert_eq!(answer.header("access-control-allow-origin"), None);
    let e = explain(&gw, &token_page(STRANGER)).await;
    assert_eq!(e["verdict"], "blocked", "{e:#}");
    assert_eq!(e["actual"]["rejection"], "origin-not-allowed-for-client");
    assert_eq!(e["clients"]["decided_by"], "client-list", "{e:#}");
    assert_eq!(
        e["fixes"][0]["line"],
        format!("corsgate clients add-origin spa {STRANGER}"),
        "{e:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_unknown_to_the_live_registry_gets_the_set_command() {
    let spy = Spy::ok().await;
    let dir = TempDir::new("dashboard-registry-unknown");
    let text = form_client_config("sqlite:registry.db", "", &spy.url());
    let config = dir.write("corsgate.toml", &text);
    corsgate(&config, &["clients", "set", "spa", "--origin", SPA]);
    let gw = Gw::from_file(&config, false).await;
    let mut page = token_page(SPA);
    page["data"] = json!(null);
    page["client"] = json!("ghost");
    let e = explain(&gw, &page).await;
    assert_eq!(e["verdict"], "blocked", "{e:#}");
    assert_eq!(e["clients"]["registered"], false, "{e:#}");
    assert!(
        e["fixes"][0]["line"]
            .as_str()
            .is_some_and(|l| l.starts_with("corsgate clients set ghost")),
        "{e:#}"
    );
    // The registered client from the same origin is allowed.
    let e = explain(&gw, &token_page(SPA)).await;
    assert_eq!(e["verdict"], "allowed", "{e:#}");
}
