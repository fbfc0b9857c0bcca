//! The admin dashboard in headless Chromium: the page loads with no console
//! error, shows a refusal made just before with its fix, answers the explain
//! form with the engine's verdict, and shows a hostile origin as text. A
//! screenshot is kept under the test output folder.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use corsgate_explain::Engine;

use crate::harness::{self, Mode, Run, Scenario, Step};
use crate::support::{self, Gw, Spy, TempDir, config, route};

/// What the hostile page's origin says, as far as an `Origin` header can
/// carry it (visible ASCII and spaces).
const HOSTILE: &str =
    "https://x.example\"><img src=x onerror=\"window.pwned=1\"><script>window.pwned=2</script>";

/// Waits (in the page, bounded) until `test` holds, then returns `value`.
fn wait_then(test: &str, value: &str) -> Step {
    Step::Other(json!({
        "kind": "eval",
        "timeoutMs": 8000,
        "expression": format!(
            "(async () => {{ for (let i = 0; i < 150 && !({test}); i++) await new Promise((r) => setTimeout(r, 50)); return {value}; }})()"
        ),
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_chromium_shows_refusals_fixes_and_explain_as_text() {
    harness::require_browser(Engine::Chromium);
    let spy = Spy::ok().await;
    let cors = "allow_origins = [\"https://app.example.com\"]\nallow_methods = [\"PUT\"]\n";
    let gw = Gw::start(&config("", cors, &route("/api", &spy.url(), ""))).await;
    let items = gw.url("/api/items");
    // A refusal made just before, and a hostile one.
    support::send("GET", &items, &[("origin", "https://shop.example")]).await;
    support::send("GET", &items, &[("origin", HOSTILE)]).await;
    // What the engine says about the request the form will ask about.
    let asked = json!({"origin": "https://shop.example", "url": items, "method": "PUT", "headers": [], "credentials": "same-origin"});
    let engine = support::send_map(
        &support::client(),
        "POST",
        &gw.admin_url("/explain"),
        [(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        )]
        .into_iter()
        .collect(),
        bytes::Bytes::from(asked.to_string()),
    )
    .await;
    let engine: Value = serde_json::from_slice(&engine.body).unwrap();
    let verdict = engine["verdict"].as_str().unwrap().to_owned();
    assert_eq!(verdict, "blocked");

    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    let screenshot = out.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    let rows = "[...document.querySelectorAll('#refusals tbody tr')].map((tr) => [...tr.cells].map((c) => c.textContent))";
    let scenario = Scenario {
        page_url: Some(gw.admin_url("/")),
        ..Scenario::new("dashboard", &gw.admin_url(""))
    }
    .then(wait_then(
        "document.querySelectorAll('#refusals tbody tr td.origin').length >= 2",
        &format!(
            "({{ rows: {rows}, origins: [...document.querySelectorAll('#refusals td.origin')].map((td) => ({{ text: td.textContent, children: td.children.length }})), scripts: document.scripts.length, images: document.images.length, pwned: window.pwned ?? null, status: document.getElementById('status').textContent }})"
        ),
    ))
    .then(Step::Other(json!({
        "kind": "eval",
        "expression": format!(
            "(() => {{ document.getElementById('explain-origin').value = 'https://shop.example'; document.getElementById('explain-url').value = {url}; document.getElementById('explain-method').value = 'PUT'; document.querySelector('#explain-form button').click(); return true; }})()",
            url = Value::String(items.clone())
        ),
    })))
    .then(wait_then(
        "document.getElementById('explain-verdict')",
        "document.getElementById('explain-verdict').textContent",
    ))
    .then(Step::Other(json!({"kind": "screenshot", "path": screenshot, "fullPage": true})))
    .then(Step::Other(json!({"kind": "wait", "ms": 100})));

    let dir = TempDir::new("dashboard-browser");
    let path = dir.path().to_owned();
    let results = tokio::task::spawn_blocking(move || {
        harness::run(
            &path,
            Run {
                engine: Engine::Chromium,
                mode: Mode::Default,
            },
            &[scenario],
            Duration::from_secs(60),
        )
    })
    .await
    .unwrap();
    let result = &results[0];
    assert!(result["error"].is_null(), "{result}");
    assert_eq!(result["pageStatus"], 200, "{result}");

    // No console error: the one expected 404 is `/shadow` when no shadow
    // configuration runs (the panel is then hidden).
    let errors: Vec<&Value> = result["console"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["level"] == "error")
        .filter(|c| {
            !(c["url"].as_str().is_some_and(|u| u.ends_with("/shadow"))
                && c["text"].as_str().is_some_and(|t| t.contains("404")))
        })
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");

    let page = &result["steps"][0]["value"];
    assert!(result["steps"][0]["ok"] == true, "{result}");
    let rows = page["rows"].as_array().unwrap();
    let shop = rows
        .iter()
        .find(|r| r[2] == "https://shop.example")
        .unwrap_or_else(|| panic!("the refusal is not shown: {page}"));
    assert_eq!(shop[0], "1");
    assert_eq!(shop[1], "0:/api");
    assert_eq!(shop[3], "origin-not-allowed");
    let fix = shop[6].as_str().unwrap();
    assert!(
        fix.contains("in route[0].cors (path \"/api\"):")
            && fix.contains(
                "cors = { allow_origins = [\"https://app.example.com\", \"https://shop.example\"] }"
            ),
        "the fix is not shown: {fix}"
    );
    // The hostile origin is text: the same characters, no element made of it,
    // nothing of it ran.
    let hostile = page["origins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["text"] == HOSTILE)
        .unwrap_or_else(|| panic!("the hostile origin is not shown as text: {page}"));
    assert_eq!(hostile["children"], 0);
    assert_eq!(page["scripts"], 1, "only the dashboard's own script");
    assert_eq!(page["images"], 0);
    assert_eq!(page["pwned"], Value::Null);

    // The explain form: the engine's verdict.
    assert_eq!(
        result["steps"][2]["value"],
        format!("Verdict: {verdict}").as_str(),
        "{result}"
    );

    let png = std::fs::read(&screenshot).expect("no screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    eprintln!("dashboard screenshot: {}", screenshot.display());
}
