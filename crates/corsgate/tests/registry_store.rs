//! The registry's database seen from the gateway: `serve` creating it next to
//! its configuration, rows written by hand (an invalid origin drops only that
//! entry), writes by another process picked up by the poll, and the snapshot
//! file serving when the database cannot be read at start.

mod support;

use std::time::Duration;

use http::StatusCode;
use support::binary::{Serve, Stderr};
use support::bodyspy::BodySpy;
use support::registry::{self, token_request};
use support::{Answer, Gw, TempDir, send, wait_until, wait_until_async};

const TOKEN: &str = "registry-store-token";

fn config(dir: &TempDir, up: &str, registry_extra: &str) -> String {
    registry::token_route_config(
        dir,
        TOKEN,
        &registry::sqlite(dir),
        &format!("poll_interval = \"100ms\"\n{registry_extra}"),
        up,
    )
}

async fn admin(gw: &Gw, method: &str, path: &str, body: &str) -> Answer {
    registry::admin(gw, TOKEN, method, path, body).await
}

/// Writes a client straight into the database, as another process (or a
/// person with `sqlite3`) would: bypassing the admin API and its validation.
fn insert_by_hand(dir: &TempDir, id: &str, origins_json: &str) {
    let conn = rusqlite::Connection::open(dir.join("registry.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         UPDATE corsgate_registry_meta SET revision = revision + 1;
         INSERT INTO corsgate_clients (id, name, allowed_origins, revision)
           VALUES ('{id}', '', '{origins_json}', (SELECT revision FROM corsgate_registry_meta));
         COMMIT;"
    ))
    .unwrap();
}

#[tokio::test]
async fn a_write_by_another_process_is_picked_up_and_an_invalid_origin_drops_only_itself() {
    let dir = TempDir::new("registry-store");
    let spy = BodySpy::start().await;
    let gw = Gw::start(&config(&dir, &spy.url(), "")).await;
    assert_eq!(gw.metric("corsgate_registry_invalid_entries").await, 0);
    let refused = token_request(&gw, "https://ok.example", "byhand").await;
    assert_eq!(refused.header("x-corsgate-reason"), Some("client-unknown"));

    insert_by_hand(
        &dir,
        "byhand",
        r#"["https://App.example.com/", "https://ok.example"]"#,
    );
    // Picked up by the poll (100 ms here), no admin call involved.
    wait_until_async(|| async {
        token_request(&gw, "https://ok.example", "byhand")
            .await
            .header("access-control-allow-origin")
            == Some("https://ok.example")
    })
    .await;
    assert_eq!(gw.metric("corsgate_registry_invalid_entries").await, 1);
    assert_eq!(gw.metric("corsgate_registry_clients").await, 1);
    let refused = token_request(&gw, "https://App.example.com", "byhand").await;
    assert_eq!(refused.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn the_snapshot_file_serves_when_the_database_cannot_be_read_at_start() {
    let dir = TempDir::new("registry-snapshot");
    let spy = BodySpy::start().await;
    let snapshot = dir.join("snapshot.json");
    let extra = format!("snapshot_file = \"{}\"", snapshot.display());
    {
        let gw = Gw::start(&config(&dir, &spy.url(), &extra)).await;
        insert_by_hand(&dir, "spa", r#"["https://spa.example"]"#);
        wait_until(|| {
            std::fs::read_to_string(&snapshot).is_ok_and(|t| t.contains("https://spa.example"))
        })
        .await;
        drop(gw);
    }
    // The registry's tables broken by hand: the file opens, reading it fails.
    let conn = rusqlite::Connection::open(dir.join("registry.db")).unwrap();
    conn.execute_batch("DROP TABLE corsgate_registry_meta;")
        .unwrap();
    drop(conn);

    let gw = Gw::start(&config(&dir, &spy.url(), &extra)).await;
    let answer = token_request(&gw, "https://spa.example", "spa").await;
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://spa.example")
    );
    let status = admin(&gw, "GET", "/registry", "").await;
    let status: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(status["source"], "snapshot_file");
    assert_eq!(status["database_up"], false);
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("corsgate_registry_meta")
    );
    // Writes change nothing and say so.
    let write = admin(
        &gw,
        "PUT",
        "/clients/x",
        r#"{"allowed_origins": ["https://x.example"]}"#,
    )
    .await;
    assert_eq!(
        write.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        write.text()
    );
    assert!(write.text().contains("nothing changed"));
    let list = admin(&gw, "GET", "/clients", "").await;
    let list: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    assert_eq!(list["source"], "snapshot_file");
    assert_eq!(list["clients"][0]["id"], "spa");
    assert_eq!(
        send("GET", &gw.admin_url("/readyz"), &[]).await.status,
        StatusCode::OK
    );
}

#[test]
fn serve_creates_the_database_next_to_its_configuration() {
    let dir = TempDir::new("registry-serve");
    let file = dir.join("corsgate.toml");
    std::fs::write(
        &file,
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[registry]\n[[route]]\npath = \"/t\"\nupstream = \"http://127.0.0.1:9\"\ncors = { clients = { identify = [\"form\"] } }\n",
    )
    .unwrap();
    let mut serve = Serve::start(&file, Stderr::Read);
    let (_, admin) = serve.addresses();
    assert!(dir.join("corsgate-registry.db").exists());
    serve.wait_stderr("registry snapshot applied");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ready = runtime.block_on(send("GET", &format!("http://{admin}/readyz"), &[]));
    assert_eq!(ready.status, StatusCode::OK);
}

#[tokio::test]
async fn the_cli_writes_the_database_a_running_gateway_reads_and_check_names_bad_rows() {
    let dir = TempDir::new("registry-cli");
    let spy = BodySpy::start().await;
    let gw = Gw::start(&config(&dir, &spy.url(), "")).await;
    let database = format!("sqlite:{}", dir.join("registry.db").display());
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            support::binary::run(&args, support::WAIT)
        })
    };
    let args = |list: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        all.extend(["--database".to_owned(), database.clone()]);
        all
    };
    // Hydra's flag spelling is accepted.
    let set = run(args(&[
        "clients",
        "set",
        "spa",
        "--allowed-cors-origin",
        "https://spa.example",
        "--origin",
        "https://www.spa.example",
    ]))
    .await
    .unwrap();
    assert_eq!(set.code, Some(0), "{set:?}");
    wait_until_async(|| async {
        token_request(&gw, "https://www.spa.example", "spa")
            .await
            .header("access-control-allow-origin")
            .is_some()
    })
    .await;
    // Invalid origins: every problem, nothing written, exit 1.
    let bad = run(args(&[
        "clients",
        "set",
        "bad",
        "--origin",
        "https://x.example/",
        "--origin",
        "*",
    ]))
    .await
    .unwrap();
    assert_eq!(bad.code, Some(1), "{bad:?}");
    assert!(bad.stdout.contains("allowed_origins[0]") && bad.stdout.contains("allowed_origins[1]"));
    let list = run(args(&["clients", "list", "--json"])).await.unwrap();
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(list["clients"].as_array().unwrap().len(), 1);

    let check = run(args(&["registry", "check"])).await.unwrap();
    assert_eq!(check.code, Some(0), "{check:?}");
    insert_by_hand(&dir, "byhand", r#"["https://App.example.com/"]"#);
    let check = run(args(&["registry", "check"])).await.unwrap();
    assert_eq!(check.code, Some(1), "{check:?}");
    assert!(
        check
            .stdout
            .contains("clients[\"byhand\"].allowed_origins[0]"),
        "{}",
        check.stdout
    );
}
