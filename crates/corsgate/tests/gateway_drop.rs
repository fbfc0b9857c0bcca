//! A gateway started in-process (the test kit's `Gw`, over
//! `Server::run`) stops everything it started when it is dropped: the admin
//! listener, the pool pruner, the connections, and the registry with its
//! polling task and its database connection. Measured by the runtime's count
//! of live tasks, which returns to what it was before the gateway, and by
//! SQLite's write-ahead log, which SQLite removes when the last connection
//! to the file closes.

mod support;

use support::binary::run;
use support::registry::form_client_config;
use support::*;

/// Tasks alive on this test's runtime.
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_gateway_with_a_registry_leaves_no_task_and_no_database_connection() {
    let dir = TempDir::new("gateway-drop");
    let upstream = closed_port().await;
    let text = form_client_config(
        "sqlite:registry.db",
        "poll_interval = \"100ms\"",
        &format!("http://{upstream}"),
    );
    let config = dir.write("corsgate.toml", &text);
    let ran = run(
        &[
            "clients",
            "set",
            "spa",
            "--origin",
            "https://spa.example",
            "--config",
            config.to_str().unwrap(),
        ],
        binary::RUN_LIMIT,
    );
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let wal = dir.join("registry.db-wal");
    assert!(!wal.exists(), "the CLI closed its connection");

    let before = alive_tasks();
    let gw = Gw::from_file(&config, false).await;
    // The gateway serves, its registry polls (a load per poll_interval at
    // most: one is enough to know the task runs), its admin listener answers.
    let series = "corsgate_registry_loads_total{trigger=\"start\",result=\"applied\"}";
    assert_eq!(gw.metric(series).await, 1);
    let answer = registry::token_request(&gw, "https://spa.example", "spa").await;
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert!(wal.exists(), "the gateway holds the registry open");
    assert!(alive_tasks() > before);

    drop(gw);
    eventually("every task of the gateway ends", || async {
        let alive = alive_tasks();
        if alive == before {
            Ok(())
        } else {
            Err(format!("{alive} tasks alive, {before} before the gateway"))
        }
    })
    .await;
    eventually("the registry's connection closes", || async {
        if wal.exists() {
            Err(format!("{} is still there", wal.display()))
        } else {
            Ok(())
        }
    })
    .await;
}
