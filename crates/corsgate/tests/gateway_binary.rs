//! The `corsgate serve` binary as an operator runs it: the demo and its printed
//! commands, signals (SIGHUP, SIGTERM), exit codes, and memory while a large
//! upload streams through.

mod support;

use std::process::Command;
use std::time::Duration;

use http::StatusCode;
use support::binary::{Cmd, Serve, Stderr};
use support::*;

#[test]
fn the_demo_prints_curl_commands_that_work_as_printed() {
    let mut serve = Serve::start_args(
        &["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
        Stderr::Read,
    );
    let (listen, _admin) = serve.addresses();
    serve.wait_line("curl -i http://");
    let commands: Vec<String> = serve
        .banner
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("curl "))
        .map(str::to_owned)
        .collect();
    assert_eq!(commands.len(), 2, "{:?}", serve.banner);
    assert!(commands.iter().all(|c| c.contains(&listen.to_string())));
    {
        let run = |command: &str| {
            let output = Command::new("sh")
                .arg("-c")
                .arg(format!("{command} --max-time 5 --silent --show-error"))
                .output()
                .expect("sh runs");
            assert!(
                output.status.success(),
                "{command}: {output:?} (curl is installed by scripts/install-test-deps.sh)"
            );
            String::from_utf8(output.stdout)
                .unwrap()
                .to_ascii_lowercase()
        };
        let preflight = run(&commands[0]);
        assert!(preflight.starts_with("http/1.1 204"), "{preflight}");
        assert!(preflight.contains("access-control-allow-origin: http://localhost:3000"));
        assert!(preflight.contains("access-control-allow-methods: put"));
        assert!(preflight.contains("access-control-allow-headers: content-type"));
        let actual = run(&commands[1]);
        assert!(actual.starts_with("http/1.1 200"), "{actual}");
        assert!(actual.contains("access-control-allow-origin: http://localhost:3000"));
        assert!(actual.contains("\"items\""));
    }
    serve.signal("TERM");
    assert_eq!(serve.wait_exit(), Some(0));
}

#[test]
fn print_default_config_prints_a_starting_point_for_production() {
    let ran = Cmd::new(["serve", "--print-default-config"]).run();
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let text = ran.stdout;
    // Not the demo's development policy: the production starting point.
    assert_eq!(text, corsgate_config::STARTING_CONFIG);
    assert!(!corsgate_config::check(&text).has_errors());
}

#[test]
fn an_invalid_configuration_starts_nothing_and_exits_2() {
    let dir = TempDir::new("invalid");
    let file = dir.write(
        "bad.toml",
        "[server]\nlisten = \"127.0.0.1:0\"\n[server.cors]\nallow_origins = [\"https://app.example.com/\"]\n\
         [[route]]\npath = \"/\"\nupstream = \"builtin:demo\"\n",
    );
    let ran = Cmd::new(["serve", "--config", file.to_str().unwrap()]).run();
    assert_eq!(ran.code, Some(2));
    let stderr = ran.stderr;
    assert!(
        stderr.contains("bad.toml:4:18: server.cors.allow_origins[0]: error:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("invalid configuration (1 error); nothing started"),
        "{stderr}"
    );
}

fn file_config(origin: &str, upstream: &str) -> String {
    config(
        "shutdown_timeout = \"5s\"",
        &format!("allow_origins = [\"{origin}\"]"),
        &route("/", upstream, ""),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_sigterm_drains_then_exits_0() {
    let spy = Spy::start(|seen| {
        if seen.uri.path() == "/slow" {
            Reply::ok().delay(Duration::from_millis(800))
        } else {
            Reply::ok()
        }
    })
    .await;
    let dir = TempDir::new("signals");
    let file = dir.join("corsgate.toml");
    let (a, b) = ("https://a.example", "https://b.example");
    std::fs::write(&file, file_config(a, &spy.url())).unwrap();
    let mut serve = Serve::start_args(
        &["--config", file.to_str().unwrap(), "--log-format", "json"],
        Stderr::Read,
    );
    let (listen, admin) = serve.addresses();
    let url = format!("http://{listen}/");
    let answer = send("GET", &url, &[("origin", a)]).await;
    assert_eq!(answer.header("access-control-allow-origin"), Some(a));

    // The file watcher picks the change up; SIGHUP rereads the file even when it
    // has not changed, so the success count tells the two apart.
    write_atomically(&file, &file_config(b, &spy.url()));
    metrics::wait_line(admin, "corsgate_reloads_total{result=\"success\"} 1").await;
    serve.signal("HUP");
    metrics::wait_line(admin, "corsgate_reloads_total{result=\"success\"} 2").await;
    let answer = send("GET", &url, &[("origin", b)]).await;
    assert_eq!(answer.header("access-control-allow-origin"), Some(b));
    // Now refused: one log line says so.
    let answer = send("GET", &url, &[("origin", a)]).await;
    assert_eq!(answer.header("access-control-allow-origin"), None);

    // A request in flight at SIGTERM completes; then the process exits 0.
    let slow = tokio::spawn({
        let url = format!("http://{listen}/slow");
        async move { send("GET", &url, &[("origin", b)]).await }
    });
    wait_until(|| spy.arrived() >= 4).await;
    serve.signal("TERM");
    let answer = slow.await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("access-control-allow-origin"), Some(b));
    let code = tokio::task::spawn_blocking(move || {
        let code = serve.wait_exit();
        (code, serve.stderr_to_end())
    })
    .await
    .unwrap();
    assert_eq!(code.0, Some(0), "{:?}", code.1);
    // JSON logs: one object per line.
    let logs = code.1;
    assert!(logs.iter().any(|l| l.contains("SIGHUP")), "{logs:?}");
    assert!(logs.iter().any(|l| l.contains("SIGTERM")), "{logs:?}");
    let logs: Vec<serde_json::Value> = logs
        .iter()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON log line: {line:?}: {e}"))
        })
        .collect();
    let refused: Vec<_> = logs
        .iter()
        .filter(|l| l["message"] == "CORS request refused")
        .collect();
    assert_eq!(refused.len(), 1, "{logs:#?}");
    assert_eq!(refused[0]["route"], "0:/");
    assert_eq!(refused[0]["origin"], a);
    assert_eq!(refused[0]["class"], "actual");
    assert_eq!(refused[0]["reason"], "origin-not-allowed");
    assert!(
        logs.iter()
            .any(|l| l["message"] == "configuration reloaded"),
        "{logs:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mib_upload_streams_through_in_bounded_memory() {
    const SIZE: u64 = 100 * 1024 * 1024;
    let spy = Spy::ok().await;
    let dir = TempDir::new("upload");
    let file = dir.write(
        "corsgate.toml",
        &file_config("https://a.example", &spy.url()),
    );
    let mut serve = Serve::start_args(&["--config", file.to_str().unwrap()], Stderr::Read);
    let (listen, _) = serve.addresses();
    // Warm up, then measure the peak from here.
    send("GET", &format!("http://{listen}/"), &[]).await;
    let before = serve.peak_rss_kib();

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<LazyBody>();
    let request = http::Request::post(format!("http://{listen}/upload"))
        .header("origin", "https://a.example")
        .body(LazyBody::new(SIZE, 64 * 1024))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(60), client.request(request))
        .await
        .expect("the upload did not finish in a minute")
        .unwrap();
    let answer = read(response).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(spy.body_bytes(), SIZE);
    assert_eq!(spy.last().body_len, SIZE);

    let after = serve.peak_rss_kib();
    eprintln!("gateway peak RSS: {before} KiB before, {after} KiB after a 100 MiB upload");
    assert!(
        after < before + 24 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB: the body was buffered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_stops_at_once() {
    // The request in flight and the drain both last longer than the wait for
    // the exit below: an exit within it is one that did not wait for them.
    let spy = Spy::start(|_| Reply::ok().delay(Duration::from_secs(60))).await;
    let dir = TempDir::new("second-signal");
    let text = file_config("https://a.example", &spy.url())
        .replace("shutdown_timeout = \"5s\"", "shutdown_timeout = \"60s\"");
    let file = dir.write("corsgate.toml", &text);
    let mut serve = Serve::start_args(&["--config", file.to_str().unwrap()], Stderr::Read);
    let (listen, _) = serve.addresses();
    let _slow = tokio::spawn(async move {
        let _ = send("GET", &format!("http://{listen}/slow"), &[]).await;
    });
    wait_until(|| spy.arrived() >= 1).await;
    serve.signal("TERM");
    tokio::task::block_in_place(|| serve.wait_stderr("shutting down"));
    serve.signal("TERM");
    // wait_exit waits WAIT (10 s) at most, far below the 60 s drain.
    let code = tokio::task::spawn_blocking(move || serve.wait_exit())
        .await
        .unwrap();
    assert_eq!(code, Some(130));
}
