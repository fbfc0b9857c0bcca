//! The registry on a real PostgreSQL (Debian's `postgresql`, started by the
//! test itself): two gateways sharing one database, a write on one applied by
//! the other through `LISTEN/NOTIFY` (its propagation time measured and
//! printed), the database restarted under a running gateway, and a row
//! written by hand with an invalid origin.
//!
//! The gateways poll only every hour here, so that what propagates a change
//! is the notification or the listener's reconnection, never the poll.

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use support::bodyspy::BodySpy;
use support::metrics::Metrics;
use support::postgres::{Postgres, free_port};
use support::registry::{self, token_request};
use support::{Answer, Gw, TempDir, eventually, send, wait_until};

const TOKEN: &str = "registry-postgres-token";

fn config(dir: &TempDir, database: &str, up: &str) -> String {
    registry::token_route_config(
        dir,
        TOKEN,
        database,
        "poll_interval = \"1h\"\nretry_max = \"1s\"",
        up,
    )
}

async fn admin(gw: &Gw, method: &str, path: &str, body: &str) -> Answer {
    registry::admin(gw, TOKEN, method, path, body).await
}

async fn status(gw: &Gw) -> serde_json::Value {
    let answer = admin(gw, "GET", "/registry", "").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    serde_json::from_slice(&answer.body).unwrap()
}

async fn put(gw: &Gw, id: &str, origins: &[&str]) -> Answer {
    admin(
        gw,
        "PUT",
        &format!("/clients/{id}"),
        &serde_json::json!({ "allowed_origins": origins }).to_string(),
    )
    .await
}

/// Puts a client and returns the registry revision the write made.
async fn put_ok(gw: &Gw, id: &str, origins: &[&str]) -> i64 {
    let answer = put(gw, id, origins).await;
    assert!(answer.status.is_success(), "{}", answer.text());
    let body: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    body["registry_revision"].as_i64().unwrap()
}

async fn allowed(gw: &Gw, origin: &str, client_id: &str) -> bool {
    token_request(gw, origin, client_id)
        .await
        .header("access-control-allow-origin")
        == Some(origin)
}

async fn metric(gw: &Gw, series: &str) -> u64 {
    let token = format!("Bearer {TOKEN}");
    Metrics::fetch_with(gw.admin.unwrap(), &[("authorization", &token)])
        .await
        .get(series)
}

/// Waits until `gw`'s snapshot holds `revision` (or a later one); returns
/// how long that took. Polls its `/registry` (bounded by [`support::WAIT`]).
async fn wait_revision(gw: &Gw, revision: i64) -> Duration {
    let started = Instant::now();
    loop {
        if status(gw).await["revision"].as_i64().unwrap() >= revision {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < support::WAIT,
            "revision {revision} not applied within {:?}: {}",
            support::WAIT,
            status(gw).await
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Waits until `condition` holds on `gw`'s `/registry`.
async fn wait_status(gw: &Gw, what: &str, condition: impl Fn(&serde_json::Value) -> bool) {
    eventually(what, || async {
        let now = status(gw).await;
        if condition(&now) {
            Ok(())
        } else {
            Err(now.to_string())
        }
    })
    .await;
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let index = (sorted.len() * p).div_ceil(100).saturating_sub(1);
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_gateway_is_applied_by_the_other_through_notify() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    pg.create_database("registry");
    let spy = BodySpy::start().await;
    let dir = TempDir::new("pg-two");
    let text = config(&dir, &pg.url("registry"), &spy.url());
    // Both start at once on a fresh database: the migration runs once, under
    // its advisory lock, and both are ready.
    let (a, b) = tokio::join!(Gw::start(&text), Gw::start(&text));
    assert_eq!(status(&a).await["instance"], status(&b).await["instance"]);
    assert_eq!(
        pg.sql("registry", "SELECT version FROM corsgate_registry_schema"),
        "1"
    );
    // The listener connects after the gateway is ready: wait for it.
    wait_status(&b, "B's listener", |s| s["listener_up"] == true).await;
    assert_eq!(metric(&b, "corsgate_registry_listener_up").await, 1);

    // Propagation: a client written through A, until B's snapshot holds it.
    const WRITES: usize = 50;
    let mut took = Vec::with_capacity(WRITES);
    for i in 0..WRITES {
        let origin = format!("https://p{i}.example");
        let revision = put_ok(&a, &format!("p{i}"), &[&origin]).await;
        took.push(wait_revision(&b, revision).await);
    }
    took.sort();
    println!(
        "registry propagation over PostgreSQL NOTIFY, {WRITES} writes through gateway A seen by gateway B: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&took, 50).as_secs_f64() * 1e3,
        percentile(&took, 99).as_secs_f64() * 1e3,
        took[WRITES - 1].as_secs_f64() * 1e3,
    );
    // The notifications did it (the poll is an hour away).
    assert_ne!(
        metric(
            &b,
            "corsgate_registry_loads_total{trigger=\"notify\",result=\"applied\"}"
        )
        .await,
        0
    );
    assert!(allowed(&b, "https://p7.example", "p7").await);
    let other = token_request(&b, "https://p7.example", "p8").await;
    assert_eq!(
        other.header("x-corsgate-reason"),
        Some("origin-not-allowed-for-client")
    );

    // And the other way round: a delete through B, refused by A.
    let deleted = admin(&b, "DELETE", "/clients/p7", "").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    let revision = status(&b).await["revision"].as_i64().unwrap();
    wait_revision(&a, revision).await;
    let refused = token_request(&a, "https://p7.example", "p7").await;
    assert_eq!(refused.header("x-corsgate-reason"), Some("client-unknown"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_restarted_under_a_running_gateway() {
    let mut pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    pg.create_database("registry");
    let spy = BodySpy::start().await;
    let dir = TempDir::new("pg-restart");
    let gw = Gw::start(&config(&dir, &pg.url("registry"), &spy.url())).await;
    put_ok(&gw, "spa", &["https://spa.example"]).await;
    assert!(allowed(&gw, "https://spa.example", "spa").await);

    let port = pg.port();
    tokio::task::block_in_place(|| pg.stop());
    wait_status(&gw, "the listener's loss", |s| s["listener_up"] == false).await;
    // Requests are still decided, from the last good snapshot.
    assert!(allowed(&gw, "https://spa.example", "spa").await);
    let refused = token_request(&gw, "https://other.example", "spa").await;
    assert_eq!(
        refused.header("x-corsgate-reason"),
        Some("origin-not-allowed-for-client")
    );
    // Writes change nothing and say so.
    let write = put(&gw, "late", &["https://late.example"]).await;
    assert_eq!(
        write.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        write.text()
    );
    let now = status(&gw).await;
    assert_eq!(now["database_up"], false);
    assert_eq!(now["source"], "database");
    assert_eq!(metric(&gw, "corsgate_registry_database_up").await, 0);
    assert_eq!(
        send("GET", &gw.admin_url("/readyz"), &[]).await.status,
        StatusCode::OK
    );

    // A change made while the gateway cannot hear it: the server back on
    // another port for a moment, a client written by hand (its NOTIFY goes
    // to nobody), then the server back where the gateway looks for it.
    let elsewhere = free_port();
    tokio::task::block_in_place(|| {
        pg.start_on(elsewhere);
        pg.sql_on(
            elsewhere,
            "registry",
            "BEGIN;
             UPDATE corsgate_registry_meta SET revision = revision + 1;
             INSERT INTO corsgate_clients (id, allowed_origins, revision)
               VALUES ('late', '[\"https://late.example\"]',
                       (SELECT revision FROM corsgate_registry_meta));
             COMMIT;",
        );
        pg.stop();
        pg.start_on(port);
    });
    // The listener reconnects and reads the registry again: no poll (an
    // hour away), no notification.
    wait_status(&gw, "the reconnection", |s| {
        s["listener_up"] == true && s["clients"] == 2
    })
    .await;
    assert!(allowed(&gw, "https://late.example", "late").await);
    assert_ne!(
        metric(
            &gw,
            "corsgate_registry_loads_total{trigger=\"reconnect\",result=\"applied\"}"
        )
        .await,
        0
    );
    // And writes work again (the store reconnects on its own).
    put_ok(&gw, "after", &["https://after.example"]).await;
    assert!(allowed(&gw, "https://after.example", "after").await);
    assert_eq!(status(&gw).await["database_up"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_origin_written_by_hand_drops_only_that_entry() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    pg.create_database("registry");
    let spy = BodySpy::start().await;
    let dir = TempDir::new("pg-invalid");
    let gw = Gw::start(&config(&dir, &pg.url("registry"), &spy.url())).await;
    assert_eq!(metric(&gw, "corsgate_registry_invalid_entries").await, 0);
    // As a person with psql would: the revision bumped in the same
    // transaction, whose commit notifies the gateway (the trigger).
    tokio::task::block_in_place(|| {
        pg.sql(
            "registry",
            "BEGIN;
             UPDATE corsgate_registry_meta SET revision = revision + 1;
             INSERT INTO corsgate_clients (id, allowed_origins, revision)
               VALUES ('byhand', '[\"https://App.example.com/\", \"https://ok.example\"]',
                       (SELECT revision FROM corsgate_registry_meta));
             COMMIT;",
        )
    });
    wait_status(&gw, "the hand-written client", |s| s["clients"] == 1).await;
    assert!(allowed(&gw, "https://ok.example", "byhand").await);
    assert!(!allowed(&gw, "https://App.example.com", "byhand").await);
    assert_eq!(metric(&gw, "corsgate_registry_invalid_entries").await, 1);
    assert_eq!(metric(&gw, "corsgate_registry_origins").await, 1);
    // The command line finds it too, straight in the database.
    let url = pg.url("registry");
    let check = tokio::task::spawn_blocking(move || {
        support::binary::run(
            &["registry", "check", "--database", &url],
            Duration::from_secs(15),
        )
    })
    .await
    .unwrap();
    assert_eq!(check.code, Some(1), "{check:?}");
    assert!(
        check
            .stdout
            .contains("clients[\"byhand\"].allowed_origins[0]"),
        "{check:?}"
    );
    assert!(check.stdout.contains("1 clients, 1 invalid stored origins"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_starts_from_its_snapshot_file_with_the_database_down_then_picks_the_database_up() {
    let mut pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    pg.create_database("registry");
    let spy = BodySpy::start().await;
    let dir = TempDir::new("pg-snapshot-start");
    let snapshot = dir.join("registry-snapshot.json");
    let text = config(&dir, &pg.url("registry"), &spy.url()).replace(
        "retry_max = \"1s\"",
        &format!(
            "retry_max = \"1s\"\nsnapshot_file = \"{}\"",
            snapshot.display()
        ),
    );
    // A first run writes the snapshot file with the database up.
    {
        let first = Gw::start(&text).await;
        let revision = put_ok(&first, "spa", &["https://spa.example"]).await;
        wait_until(|| {
            let written: Option<serde_json::Value> = std::fs::read(&snapshot)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            written.is_some_and(|w| w["revision"].as_i64() == Some(revision))
        })
        .await;
    }
    // A write the file does not have: made with the server on another port
    // for a moment, where no gateway hears of it; then the server is left
    // down.
    let port = pg.port();
    let elsewhere = free_port();
    tokio::task::block_in_place(|| {
        pg.stop();
        pg.start_on(elsewhere);
        pg.sql_on(
            elsewhere,
            "registry",
            "BEGIN;
             UPDATE corsgate_registry_meta SET revision = revision + 1;
             INSERT INTO corsgate_clients (id, allowed_origins, revision)
               VALUES ('late', '[\"https://late.example\"]',
                       (SELECT revision FROM corsgate_registry_meta));
             COMMIT;",
        );
        pg.stop();
    });

    // The database is down: the node starts from the file, ready, and
    // decides with the file's clients.
    let gw = Gw::start(&text).await;
    let now = status(&gw).await;
    assert_eq!(now["source"], "snapshot_file", "{now}");
    assert_eq!(now["database_up"], false, "{now}");
    assert_eq!(now["clients"], 1, "{now}");
    assert_eq!(
        send("GET", &gw.admin_url("/readyz"), &[]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        metric(&gw, "corsgate_registry_source{source=\"snapshot_file\"}").await,
        1
    );
    assert!(allowed(&gw, "https://spa.example", "spa").await);
    let unknown = token_request(&gw, "https://late.example", "late").await;
    assert_eq!(unknown.header("x-corsgate-reason"), Some("client-unknown"));
    let write = put(&gw, "during", &["https://during.example"]).await;
    assert_eq!(
        write.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        write.text()
    );

    // The database comes back: the node reads it (with the write made
    // meanwhile) without a restart, and writes work again.
    tokio::task::block_in_place(|| pg.start_on(port));
    wait_status(&gw, "the database read", |s| {
        s["source"] == "database" && s["database_up"] == true && s["clients"] == 2
    })
    .await;
    assert!(allowed(&gw, "https://late.example", "late").await);
    assert!(allowed(&gw, "https://spa.example", "spa").await);
    assert_eq!(
        metric(&gw, "corsgate_registry_source{source=\"database\"}").await,
        1
    );
    put_ok(&gw, "after", &["https://after.example"]).await;
    assert!(allowed(&gw, "https://after.example", "after").await);
}
