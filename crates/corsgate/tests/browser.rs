//! The real-browser conformance suite: headless Chromium (Debian's `chromium`,
//! driven by `browser/harness.mjs`) sends cross-origin requests from blank pages
//! on loopback origins to corsgate gateways in front of a spy upstream, and the
//! browser's verdict is asserted — resolved or blocked, status, readable
//! headers, preflights, what reached the upstream, the console message. For
//! every request, `corsgate explain` must predict the same verdict, and for a
//! refused one the exact message Chromium printed.
//!
//! Chromium starts once per set of flags (as shipped, then with the spec-strict
//! `CorsNonWildcardRequestHeadersSupport`); each scenario gets a fresh browser
//! context, so the preflight cache and cookies never leak between scenarios.
//! Missing Chromium or Node modules fail the suite: run
//! `bash scripts/install-test-deps.sh`.
//!
//! `CORSGATE_BROWSER_REPORT=FILE` writes the outcome of every request (with the
//! console messages, origins and URLs as placeholders) as Markdown.

mod support;

#[path = "browser/explain.rs"]
mod explain;
#[path = "browser/harness.rs"]
mod harness;
#[path = "browser/scenarios.rs"]
mod scenarios;
#[path = "browser/seeds.rs"]
mod seeds;
#[path = "browser/servers.rs"]
mod servers;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use harness::{Expect, Explain, Mode, Outcome, Request, Scenario, Step, StepView};
use serde_json::Value;
use servers::Env;

/// The longest one harness run may take before the suite fails.
const RUN_LIMIT: Duration = Duration::from_secs(150);

/// Response headers JavaScript may always read (Fetch: CORS-safelisted
/// response-header names).
const SAFELISTED_RESPONSE_HEADERS: [&str; 7] = [
    "cache-control",
    "content-language",
    "content-length",
    "content-type",
    "expires",
    "last-modified",
    "pragma",
];

/// One request's outcome, for the report.
struct Line {
    mode: Mode,
    scenario: String,
    step: usize,
    outcome: String,
    message: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_judges_corsgate() {
    harness::require_browser();
    let started = Instant::now();
    let mut env = Env::start().await;
    scenarios::start_gateways(&mut env).await;
    seeds::start_gateways(&mut env).await;
    let reload = tokio::spawn(scenarios::drive_reload(scenarios::reload_plan(&env)));

    let mut failures = Vec::new();
    let mut report = Vec::new();
    for mode in [Mode::Default, Mode::Strict] {
        let mut list = scenarios::all(&env, mode);
        list.extend(seeds::all(&env, mode));
        let dir = env.dir.path().to_owned();
        let (list, results) = tokio::task::spawn_blocking(move || {
            let results = harness::run(&dir, mode, &list, RUN_LIMIT);
            (list, results)
        })
        .await
        .unwrap();
        eprintln!(
            "browser suite: {} scenarios in {} mode, {:?} so far",
            list.len(),
            mode.label(),
            started.elapsed()
        );
        let env_ref = &env;
        let (mode_failures, lines) =
            tokio::task::block_in_place(|| verify(env_ref, mode, &list, &results));
        failures.extend(mode_failures);
        report.extend(lines);
    }
    reload.abort();
    print_report(&env, &report);
    eprintln!("browser suite: done in {:?}", started.elapsed());
    assert!(
        failures.is_empty(),
        "{} failure(s) in the browser suite:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );

    // The hot reload happened in the running process, by file change alone.
    let gateway = env.gw_mut("reload");
    assert!(gateway.is_running(), "the reloaded gateway exited");
    let metrics = support::send(
        "GET",
        &format!("http://{}/metrics", gateway.admin.unwrap()),
        &[],
    )
    .await
    .text();
    assert!(
        metrics.contains("corsgate_reloads_total{result=\"success\"} 1\n"),
        "{metrics}"
    );
    // Only the allowed page's WebSocket reached the upstream.
    assert_eq!(
        env.websocket_accepted
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

/// Checks every scenario of one run; returns the failures and the report lines.
fn verify(env: &Env, mode: Mode, list: &[Scenario], results: &[Value]) -> (Vec<String>, Vec<Line>) {
    let mut failures = Vec::new();
    let mut lines = Vec::new();
    for (scenario, result) in list.iter().zip(results) {
        let outcome = Outcome {
            scenario,
            result,
            env,
            mode,
        };
        let checked = catch_unwind(AssertUnwindSafe(|| {
            assert!(
                result["error"].is_null(),
                "the scenario did not run: {}",
                result["error"]
            );
            if scenario.page_url.is_none() {
                assert_eq!(result["pageStatus"], 200, "the page did not load");
            }
            let mut lines = Vec::new();
            for (index, step) in scenario.steps.iter().enumerate() {
                let view = outcome.step(index);
                match step {
                    Step::Request(request) => {
                        lines.push(verify_request(&outcome, index, request, view));
                    }
                    Step::Other(other) if other["kind"] == "websocket" => {
                        lines.push(websocket_line(&outcome, index, other, view));
                    }
                    Step::Other(_) => {}
                }
            }
            if let Some(check) = &scenario.check {
                check(&outcome);
            }
            lines
        }));
        match checked {
            Ok(scenario_lines) => lines.extend(scenario_lines),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failures.push(format!(
                    "[{}] {}: {message}\n  recorded: {}",
                    mode.label(),
                    scenario.name,
                    shorten(&result.to_string(), 3000)
                ));
            }
        }
    }
    (failures, lines)
}

fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The browser's outcome against the expectation, and `explain` against both.
fn verify_request(o: &Outcome<'_>, index: usize, request: &Request, s: StepView<'_>) -> Line {
    let what = format!("step {index} ({} {})", request.method, request.url);
    let page = o.scenario.page.as_str();
    assert!(s.field("timedOut").is_null(), "{what}: timed out");
    let message = s.cors_message();
    match &request.expect {
        Expect::Allowed(status) => {
            assert!(
                s.ok(),
                "{what}: expected allowed, got {:?} ({:?}); console: {:?}",
                s.error(),
                s.cors_error(),
                s.console()
            );
            assert_eq!(s.status(), Some(u64::from(*status)), "{what}: status");
            assert_eq!(message, None, "{what}: allowed, yet a CORS message");
        }
        Expect::Blocked(error) => {
            assert!(!s.ok(), "{what}: expected blocked, the page read it");
            assert_eq!(s.cors_error(), Some(*error), "{what}: corsError");
            assert!(
                message.is_some(),
                "{what}: no CORS message: {:?}",
                s.console()
            );
        }
    }
    let (config, verdict) = match &request.explain {
        Explain::Predicts(config) => (config, None),
        Explain::Verdict(config, verdict) => (config, Some(*verdict)),
    };
    let explained = explain::explain(config, page, request);
    match (verdict, &request.expect) {
        (Some(verdict), _) => {
            assert_eq!(
                explained["verdict"], verdict,
                "{what}: explain: {explained:#}"
            );
        }
        (None, Expect::Allowed(_)) => {
            assert_eq!(
                explained["verdict"], "allowed",
                "{what}: explain disagrees with Chromium: {explained:#}"
            );
            check_readable(&what, request, s, &explained);
        }
        (None, Expect::Blocked(error)) => {
            assert_eq!(
                explained["verdict"], "blocked",
                "{what}: explain disagrees with Chromium: {explained:#}"
            );
            assert_eq!(
                explained["console_message"].as_str(),
                message,
                "{what}: explain's message differs from Chromium's"
            );
            assert_eq!(
                explained["cors_error"].as_str(),
                Some(*error),
                "{what}: explain's error differs from Chromium's"
            );
        }
    }
    let outcome = match &request.expect {
        Expect::Allowed(status) => format!("allowed, {status}"),
        Expect::Blocked(error) => format!("refused, {error}"),
    };
    Line {
        mode: o.mode,
        scenario: o.scenario.name.clone(),
        step: index,
        outcome,
        message: message.map(|m| {
            let m = m.replace(&request.url, "URL");
            if page == "null" {
                m
            } else {
                m.replace(page, "ORIGIN")
            }
        }),
    }
}

/// A WebSocket step for the report (its checks are the scenario's own).
fn websocket_line(o: &Outcome<'_>, index: usize, step: &Value, s: StepView<'_>) -> Line {
    let url = step["url"].as_str().unwrap_or_default();
    let message = s
        .console()
        .into_iter()
        .find(|m| m.starts_with("WebSocket connection to"));
    Line {
        mode: o.mode,
        scenario: o.scenario.name.clone(),
        step: index,
        outcome: if s.field("opened") == true {
            "connected".to_owned()
        } else {
            "refused".to_owned()
        },
        message: message.map(|m| m.replace(url, "URL")),
    }
}

/// What JavaScript could read is what explain says it can, for every header
/// the response had on the wire.
fn check_readable(what: &str, request: &Request, s: StepView<'_>, explained: &Value) {
    let listed: Vec<&str> = explained["readable_headers"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let actual = s.actual();
    let Some(last) = actual.last() else { return };
    for name in &request.read {
        if last.response_header(name).is_none() {
            continue;
        }
        let readable = s.header(name).is_some();
        let predicted =
            listed.contains(&name.as_str()) || SAFELISTED_RESPONSE_HEADERS.contains(&name.as_str());
        assert_eq!(
            readable, predicted,
            "{what}: {name} readable by the page: {readable}, by explain: {predicted} ({listed:?})"
        );
    }
}

fn print_report(env: &Env, lines: &[Line]) {
    let mut text = String::from(
        "| run | scenario | step | outcome | Chromium's console message |\n\
         | --- | --- | --- | --- | --- |\n",
    );
    for line in lines {
        let message = line.message.as_deref().unwrap_or("");
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            line.mode.label(),
            line.scenario,
            line.step,
            line.outcome,
            message.replace('|', "\\|")
        ));
    }
    eprintln!("{text}");
    if let Some(path) = std::env::var_os("CORSGATE_BROWSER_REPORT") {
        let text = text
            .replace(&format!(":{}", env.a), ":PORT_A")
            .replace(&format!(":{}", env.b), ":PORT_B");
        std::fs::write(&path, text).unwrap();
        // The raw harness input and output, next to the report.
        let path = std::path::PathBuf::from(path);
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        for entry in std::fs::read_dir(env.dir.path()).unwrap() {
            let entry = entry.unwrap().path();
            let name = entry.file_name().unwrap().to_str().unwrap().to_owned();
            if name.starts_with("results-") || name.starts_with("scenarios-") {
                std::fs::copy(&entry, dir.join(name)).unwrap();
            }
        }
    }
}

#[test]
fn wildcard_with_credentials_cannot_be_configured() {
    // The guides' most common mistake, in every place corsgate reads a policy.
    for text in [
        "[server.cors]\nallow_origins = \"*\"\nallow_credentials = true\n",
        "[server.cors]\nallow_credentials = true\n\
         [[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9\"\ncors = { allow_origins = \"*\" }\n",
    ] {
        let checked = corsgate_config::check(text);
        assert!(checked.gateway.is_none(), "accepted:\n{text}");
        let problems = format!("{:?}", checked.problems);
        assert!(
            problems.contains("cannot be combined with credentials"),
            "{problems}"
        );
    }
}

#[test]
fn the_guides_unsafe_examples_are_refused_by_check() {
    for (file, says) in [
        (
            "wildcard-with-credentials.toml",
            "\"*\" cannot be combined with credentials",
        ),
        (
            "reflect-any-origin.toml",
            "a wildcard host matches every site",
        ),
        (
            "mobile-dev-without-switch.toml",
            "set dangerously_allow_insecure_origins = true",
        ),
    ] {
        let (code, output) = explain::check(&seeds::fixture_dir("invalid").join(file));
        assert_eq!(code, 1, "{file}: {output}");
        assert!(output.contains(says), "{file}: {output}");
        assert!(output.contains(": error: "), "{file}: {output}");
    }
}
