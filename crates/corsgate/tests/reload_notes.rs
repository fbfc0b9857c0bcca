//! What a reload tells the operator: a file equal to the running
//! configuration says so; an address that needs a restart is compared with the
//! listener running, not with the previous file.

mod support;

use std::net::SocketAddr;

use support::binary::{Serve, Stderr};
use support::metrics::{metric, wait_metric};
use support::*;

fn file_config(admin_listen: &str, origin: &str, upstream: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"{admin_listen}\"\n\n\
         [server.cors]\nallow_origins = [\"{origin}\"]\n\n{}",
        route("/", upstream, "")
    )
}

const RELOADED: &str = "corsgate_reloads_total{result=\"success\"}";

async fn wait_for_reloads(admin: SocketAddr, n: u64) {
    wait_metric(admin, RELOADED, |v| v >= n).await;
}

/// Returns once the gateway answers a request: it starts watching its file
/// before it accepts the first connection.
async fn watching(listen: SocketAddr) {
    send("GET", &format!("http://{listen}/"), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_of_an_unchanged_file_says_so() {
    let spy = Spy::ok().await;
    let dir = TempDir::new("reload-same");
    let file = dir.write(
        "corsgate.toml",
        &file_config("127.0.0.1:0", "https://a.example", &spy.url()),
    );
    let mut serve = Serve::start(&file, Stderr::Read);
    let (listen, admin) = serve.addresses();
    watching(listen).await;
    let unchanged = |serve: &Serve, n: usize| {
        tokio::task::block_in_place(|| {
            serve.wait_stderr_count(
                "configuration unchanged: the file equals the running configuration",
                n,
            )
        })
    };
    // The file written again, as it was: a file event.
    write_atomically(
        &file,
        &file_config("127.0.0.1:0", "https://a.example", &spy.url()),
    );
    let lines = unchanged(&serve, 1);
    assert!(lines[0].contains("INFO"), "{lines:?}");
    // SIGHUP: the same, and the reload counts as a success.
    serve.signal("HUP");
    wait_for_reloads(admin, 1).await;
    unchanged(&serve, 2);
    assert!(
        !serve
            .stderr()
            .iter()
            .any(|l| l.contains("configuration reloaded")),
        "{:?}",
        serve.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_listen_changed_is_said_until_a_restart_applies_it() {
    let spy = Spy::ok().await;
    let dir = TempDir::new("reload-admin");
    let file = dir.write(
        "corsgate.toml",
        &file_config("127.0.0.1:0", "https://a.example", &spy.url()),
    );
    let mut serve = Serve::start(&file, Stderr::Read);
    let (listen, admin) = serve.addresses();
    watching(listen).await;
    let warnings = |serve: &Serve| {
        serve
            .stderr()
            .iter()
            .filter(|l| l.contains("admin_listen changed"))
            .count()
    };
    // The line is queued before the reload is counted; the log thread and
    // this test's reader may still be on their way with it.
    let wait_warnings = |serve: &Serve, n: usize| {
        tokio::task::block_in_place(|| serve.wait_stderr_count("admin_listen changed", n));
        assert_eq!(warnings(serve), n, "{:?}", serve.stderr());
    };

    // Another origin, the same admin_listen (port 0: the one running): no note.
    write_atomically(
        &file,
        &file_config("127.0.0.1:0", "https://b.example", &spy.url()),
    );
    wait_for_reloads(admin, 1).await;
    assert_eq!(warnings(&serve), 0, "{:?}", serve.stderr());

    // A new admin address: it needs a restart.
    let elsewhere = closed_port().await;
    write_atomically(
        &file,
        &file_config(&elsewhere.to_string(), "https://c.example", &spy.url()),
    );
    wait_for_reloads(admin, 2).await;
    wait_warnings(&serve, 1);

    // The next file keeps that address: still not the one running, still
    // said (the previous file had it too, which is not what runs).
    write_atomically(
        &file,
        &file_config(&elsewhere.to_string(), "https://d.example", &spy.url()),
    );
    wait_for_reloads(admin, 3).await;
    wait_warnings(&serve, 2);
    // The admin listener is the one it started with.
    assert_eq!(metric(admin, RELOADED).await, 3);
}
