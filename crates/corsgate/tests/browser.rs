//! The real-browser conformance suite: headless browsers of every engine
//! (Debian's `chromium`, `firefox-esr` and WebKitGTK's MiniBrowser, driven by
//! `browser/harness.mjs` and its drivers) send cross-origin requests from blank pages on loopback
//! origins to corsgate gateways in front of a spy upstream, and each browser's
//! verdict is asserted — resolved or blocked, status, readable headers,
//! preflights, what reached the upstream, the console messages. For every
//! request, `corsgate explain --browser ENGINE` must predict the same verdict,
//! and for a refused one the exact messages that engine printed.
//!
//! One scenario table for all engines; a request states where an engine does
//! otherwise, with the reason. The engines run at the same time, each in its
//! own harness process; each starts once per set of settings (as shipped, then
//! its spec-strict reading of `Authorization` under a wildcard), and each
//! scenario gets a fresh browser context, so the preflight cache and cookies
//! never leak between scenarios. Missing browsers or Node modules fail the
//! suite: run `bash scripts/install-test-deps.sh`.
//!
//! `CORSGATE_BROWSER_REPORT=FILE` writes the engine versions and the outcome of
//! every request in every engine (with the console messages, origins and URLs
//! as placeholders) as Markdown.

mod support;

#[path = "browser/dashboard.rs"]
mod dashboard;
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

use corsgate_explain::Engine;
use harness::{Expect, Explain, Outcome, Request, Run, Scenario, Step, StepView};
use serde_json::Value;
use servers::Env;

/// The longest one harness run may take before the suite fails.
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// The engines the suite runs every scenario in.
const ENGINES: [Engine; 3] = [Engine::Chromium, Engine::Firefox, Engine::Webkit];

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
    run: Run,
    scenario: String,
    step: usize,
    outcome: String,
    message: Option<String>,
}

/// What one engine's runs gave.
struct EngineRuns {
    engine: Engine,
    version: String,
    scenarios: usize,
    took: Duration,
    runs: Vec<(Run, Vec<Scenario>, Vec<Value>)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_judge_corsgate() {
    for engine in ENGINES {
        harness::require_browser(engine);
    }
    let started = Instant::now();
    let mut env = Env::start().await;
    scenarios::start_gateways(&mut env, &ENGINES).await;
    seeds::start_gateways(&mut env).await;
    let reloads: Vec<_> = ENGINES
        .iter()
        .map(|&engine| {
            tokio::spawn(scenarios::drive_reload(scenarios::reload_plan(
                &env, engine,
            )))
        })
        .collect();

    // Each engine in a thread of its own, its runs one after the other: the
    // engines' harnesses overlap, which is where the time goes (page loads,
    // waiting for late console messages), not the two cores.
    let mut threads = Vec::new();
    for engine in ENGINES {
        let mut runs = Vec::new();
        for mode in Run::modes(engine) {
            let run = Run { engine, mode };
            let mut list = scenarios::all(&env, run);
            list.extend(seeds::all(&env, run));
            runs.push((run, list));
        }
        let dir = env.dir.path().to_owned();
        threads.push(tokio::task::spawn_blocking(move || {
            let begun = Instant::now();
            let mut done = Vec::new();
            let mut version = String::new();
            let mut scenarios = 0;
            for (run, list) in runs {
                let results = harness::run(&dir, run, &list, RUN_LIMIT);
                if let Some(v) = results.first().and_then(|r| r["engineVersion"].as_str()) {
                    version = v.to_owned();
                }
                scenarios += list.len();
                eprintln!(
                    "browser suite: {} scenarios in {}, {:?} into the engine's runs",
                    list.len(),
                    run.label(),
                    begun.elapsed()
                );
                done.push((run, list, results));
            }
            EngineRuns {
                engine,
                version,
                scenarios,
                took: begun.elapsed(),
                runs: done,
            }
        }));
    }
    let mut engines = Vec::new();
    for thread in threads {
        engines.push(thread.await.unwrap());
    }

    let mut failures = Vec::new();
    let mut report = Vec::new();
    for engine in &engines {
        for (run, list, results) in &engine.runs {
            let env_ref = &env;
            let (run_failures, lines) =
                tokio::task::block_in_place(|| verify(env_ref, *run, list, results));
            failures.extend(run_failures);
            report.extend(lines);
        }
    }
    for reload in reloads {
        reload.abort();
    }
    let summary: Vec<String> = engines
        .iter()
        .map(|e| {
            format!(
                "{} {}: {} scenarios in {:.1?}",
                e.engine.title(),
                e.version,
                e.scenarios,
                e.took
            )
        })
        .collect();
    print_report(&env, &summary, &report);
    eprintln!(
        "browser suite: done in {:?}; {}",
        started.elapsed(),
        summary.join("; ")
    );
    assert!(
        failures.is_empty(),
        "{} failure(s) in the browser suite:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );

    // The hot reload happened in the running process, by file change alone,
    // once per engine (each has a gateway of its own for it).
    for engine in ENGINES {
        let gateway = env.gw_mut(&scenarios::reload_gateway(engine));
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
            "{engine}: {metrics}"
        );
    }
    // Only the allowed page's WebSocket reached the upstream, once per engine.
    assert_eq!(
        env.websocket_accepted
            .load(std::sync::atomic::Ordering::SeqCst),
        ENGINES.len()
    );
}

/// Checks every scenario of one run; returns the failures and the report lines.
fn verify(env: &Env, run: Run, list: &[Scenario], results: &[Value]) -> (Vec<String>, Vec<Line>) {
    let mut failures = Vec::new();
    let mut lines = Vec::new();
    for (scenario, result) in list.iter().zip(results) {
        let outcome = Outcome {
            scenario,
            result,
            env,
            run,
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
                    run.label(),
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
    let engine = o.engine();
    let name = engine.title();
    let what = format!("step {index} ({} {})", request.method, request.url);
    let page = o.scenario.page.as_str();
    assert!(s.field("timedOut").is_null(), "{what}: timed out");
    let messages = s.cors_messages(engine);
    let expect = request.expect_in(engine);
    match expect {
        Expect::Allowed(status) => {
            assert!(
                s.ok(),
                "{what}: expected allowed, got {:?} ({:?}); console: {:?}",
                s.error(),
                s.cors_error(),
                s.console()
            );
            assert_eq!(s.status(), Some(u64::from(*status)), "{what}: status");
            assert!(
                messages.is_empty(),
                "{what}: allowed, yet a CORS message: {messages:?}"
            );
        }
        Expect::Blocked(error) => {
            assert!(!s.ok(), "{what}: expected blocked, the page read it");
            if engine == Engine::Chromium {
                assert_eq!(s.cors_error(), Some(*error), "{what}: corsError");
            }
            assert!(
                !messages.is_empty(),
                "{what}: no CORS message: {:?}",
                s.console()
            );
        }
    }
    let (config, verdict) = match &request.explain {
        Explain::Predicts(config) => (config, None),
        Explain::Verdict(config, verdict) => (config, Some(*verdict)),
    };
    let explained = explain::explain(config, page, request, engine);
    let predicted = &explained["engines"][0];
    assert_eq!(
        predicted["engine"],
        engine.as_str(),
        "{what}: {explained:#}"
    );
    match (verdict, expect) {
        (Some(verdict), _) => {
            assert_eq!(
                explained["verdict"], verdict,
                "{what}: explain: {explained:#}"
            );
        }
        (None, Expect::Allowed(_)) => {
            assert_eq!(
                predicted["verdict"], "allowed",
                "{what}: explain disagrees with {name}: {explained:#}"
            );
            check_readable(&what, request, s, &explained);
        }
        (None, Expect::Blocked(error)) => {
            assert_eq!(
                predicted["verdict"], "blocked",
                "{what}: explain disagrees with {name}: {explained:#}"
            );
            let placeholders = |m: &str| placeholders(m, &request.url, page);
            let said: Vec<String> = messages.iter().map(|m| placeholders(m)).collect();
            let foretold: Vec<String> = predicted["console_messages"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(placeholders)
                        .collect()
                })
                .unwrap_or_default();
            assert!(
                said == foretold,
                "{what}: {name} printed another message than explain predicts \
                 (a new {name} version, or explain's model of it is wrong)\n  \
                 explain ({name}):\n    {}\n  {name} printed:\n    {}",
                foretold.join("\n    "),
                said.join("\n    ")
            );
            if engine == Engine::Chromium {
                assert_eq!(
                    explained["console_message"].as_str(),
                    messages.first().copied(),
                    "{what}: explain's top-level message differs from Chromium's"
                );
                assert_eq!(
                    explained["cors_error"].as_str(),
                    Some(*error),
                    "{what}: explain's error differs from Chromium's"
                );
                assert_eq!(predicted["cors_error"].as_str(), Some(*error));
            }
        }
    }
    let outcome = match expect {
        Expect::Allowed(status) => format!("allowed, {status}"),
        Expect::Blocked(error) if engine == Engine::Chromium => format!("refused, {error}"),
        Expect::Blocked(_) => "refused".to_owned(),
    };
    Line {
        run: o.run,
        scenario: o.scenario.name.clone(),
        step: index,
        outcome,
        message: (!messages.is_empty()).then(|| {
            messages
                .iter()
                .map(|m| placeholders(m, &request.url, page))
                .collect::<Vec<_>>()
                .join("<br>")
        }),
    }
}

/// A console message with the request's URL and the page's origin as `URL` and
/// `ORIGIN`: what may differ between explain's prediction and the browser.
fn placeholders(message: &str, url: &str, page: &str) -> String {
    let message = message.replace(url, "URL");
    if page == "null" {
        message
    } else {
        message.replace(page, "ORIGIN")
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
        run: o.run,
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

fn print_report(env: &Env, summary: &[String], lines: &[Line]) {
    let mut text = String::from("Engines: ");
    text.push_str(&summary.join("; "));
    text.push_str(
        "\n\n| run | scenario | step | outcome | console messages |\n\
         | --- | --- | --- | --- | --- |\n",
    );
    for line in lines {
        let message = line.message.as_deref().unwrap_or("");
        text.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            line.run.label(),
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
