//! The admin listener's access rules and what it lists: every endpoint that
//! needs the admin token refuses a missing and a wrong one with the same
//! answer and takes the right one (table-driven over the gateway's own list of
//! admin endpoints, the one its router dispatches on); `/stats` lists the
//! routes of the configuration running.

mod support;

use corsgate_gateway::ReloadOutcome;
use serde_json::Value;
use support::*;

/// GET `url` as JSON.
async fn get_json(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let answer = send("GET", url, headers).await;
    let json = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    (answer.status.as_u16(), json)
}

#[tokio::test]
async fn a_route_removed_by_a_reload_leaves_stats() {
    let spy = Spy::ok().await;
    let dir = TempDir::new("admin-auth-stats");
    let path = dir.join("corsgate.toml");
    let cors = "allow_origins = [\"https://app.example\"]";
    let both = config(
        "",
        cors,
        &format!(
            "{}{}",
            route("/a", &spy.url(), ""),
            route("/b", &spy.url(), "")
        ),
    );
    std::fs::write(&path, &both).unwrap();
    let gw = Gw::from_file(&path, false).await;
    let answer = send("GET", &gw.url("/b/x"), &[("origin", "https://app.example")]).await;
    assert_eq!(answer.status, 200);

    let names = |stats: &Value| -> Vec<String> {
        stats["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["route"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, stats) = get_json(&gw.admin_url("/stats"), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(names(&stats), ["0:/a", "1:/b", "unmatched"]);

    write_atomically(&path, &config("", cors, &route("/a", &spy.url(), "")));
    let outcome = gw.handle.reload();
    assert!(
        matches!(outcome, ReloadOutcome::Applied { .. }),
        "{outcome:?}"
    );
    let (_, stats) = get_json(&gw.admin_url("/stats"), &[]).await;
    assert_eq!(names(&stats), ["0:/a", "unmatched"], "{stats:#}");
    // Its request happened: it stays in the totals.
    assert_eq!(stats["totals"]["allowed"], 1);
}
