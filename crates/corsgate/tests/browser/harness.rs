//! The Rust side of `browser/harness.mjs`: scenarios as data, the JSON input
//! the harness reads, one harness run per set of browser flags, and views over
//! the JSONL it prints.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use corsgate_explain::Engine;
use serde_json::{Value, json};

/// The checkout's `browser/` folder.
pub(crate) fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../browser")
}

/// The Debian package, the executable (and the environment variable naming
/// another) and the npm module of each engine's driver.
fn install(engine: Engine) -> (&'static str, &'static str, &'static str, &'static str) {
    match engine {
        Engine::Chromium => (
            "chromium",
            "/usr/bin/chromium",
            "CHROMIUM",
            "playwright-core",
        ),
        Engine::Firefox => (
            "firefox-esr",
            "/usr/bin/firefox-esr",
            "FIREFOX",
            "puppeteer-core",
        ),
        // WebKitGTK's MiniBrowser (in libwebkit2gtk-4.1-0, which
        // webkit2gtk-driver pulls in), driven without WebDriver or npm module
        // (browser/drivers/webkit.mjs); Xvfb is checked beside it.
        Engine::Webkit => (
            "webkit2gtk-driver",
            "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser",
            "MINIBROWSER",
            "",
        ),
    }
}

/// Fails, never skips, when an engine, Node or the harness's driver for it is
/// missing, with the command that installs it.
pub(crate) fn require_browser(engine: Engine) {
    let (package, default, var, module) = install(engine);
    let how = format!(
        "run `bash scripts/install-test-deps.sh` (it installs Debian's {package} and runs \
         `npm ci` in browser/); the browser suite never skips"
    );
    let executable = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        executable.exists(),
        "{} is missing ({} does not exist): {how}",
        engine.title(),
        executable.display()
    );
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        node.is_ok_and(|s| s.success()),
        "Node.js is missing (`node --version` failed): {how}"
    );
    if engine == Engine::Webkit {
        let xvfb = std::env::var_os("XVFB")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/Xvfb"));
        assert!(
            xvfb.exists(),
            "Xvfb is missing ({} does not exist; WebKit needs a display): {how}",
            xvfb.display()
        );
    }
    let driver = browser_dir().join("node_modules").join(module);
    assert!(
        driver.exists(),
        "the harness's driver for {} is missing ({} does not exist): {how}",
        engine.title(),
        driver.display()
    );
    let file = browser_dir().join(format!("drivers/{engine}.mjs"));
    assert!(
        file.exists(),
        "the harness has no driver {}",
        file.display()
    );
}

/// The settings a browser runs with in the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The browser as shipped.
    Default,
    /// The engine's spec-strict handling of `Authorization` under a wildcard
    /// `Access-Control-Allow-Headers` (Chromium's
    /// `CorsNonWildcardRequestHeadersSupport`, Firefox's
    /// `network.cors_preflight.authorization_covered_by_wildcard = false`).
    Strict,
}

impl Mode {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Mode::Default => "default",
            Mode::Strict => "strict",
        }
    }
}

/// One harness run: an engine with its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    pub(crate) engine: Engine,
    pub(crate) mode: Mode,
}

impl Run {
    /// The modes an engine runs in: strict only where the engine has a switch.
    pub(crate) fn modes(engine: Engine) -> Vec<Mode> {
        match engine {
            Engine::Chromium | Engine::Firefox => vec![Mode::Default, Mode::Strict],
            Engine::Webkit => vec![Mode::Default],
        }
    }

    pub(crate) fn browser_args(self) -> Vec<&'static str> {
        match (self.engine, self.mode) {
            (Engine::Chromium, Mode::Strict) => {
                vec!["--enable-features=CorsNonWildcardRequestHeadersSupport"]
            }
            _ => Vec::new(),
        }
    }

    pub(crate) fn prefs(self) -> Value {
        match (self.engine, self.mode) {
            (Engine::Firefox, Mode::Strict) => {
                json!({"network.cors_preflight.authorization_covered_by_wildcard": false})
            }
            _ => json!({}),
        }
    }

    /// `chromium-default`, `firefox-strict`, …
    pub(crate) fn label(self) -> String {
        format!("{}-{}", self.engine, self.mode.label())
    }
}

/// `fetch()` or `XMLHttpRequest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Initiator {
    Fetch,
    Xhr,
}

/// What the browser must do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expect {
    /// The promise resolves (the `load` event fires) with this status.
    Allowed(u16),
    /// The request fails; Chromium reports this `corsErrorStatus.corsError`
    /// (the other engines have no such structured reason).
    Blocked(&'static str),
}

/// How `corsgate explain` is held to the browser's outcome.
#[derive(Debug, Clone)]
pub(crate) enum Explain {
    /// Its verdict must match the browser's, and for a refused request its
    /// console message and error must be exactly Chromium's.
    Predicts(PathBuf),
    /// It must give this verdict (for example `decided-by-upstream` on a route
    /// with CORS off, where the upstream's own headers decide).
    Verdict(PathBuf, &'static str),
}

/// One `fetch()` or XHR from the page.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) initiator: Initiator,
    pub(crate) url: String,
    pub(crate) method: String,
    pub(crate) headers: Vec<(String, String)>,
    /// `None`: the default (`same-origin`); else `include` or `omit`.
    pub(crate) credentials: Option<&'static str>,
    pub(crate) body: Option<String>,
    pub(crate) read: Vec<String>,
    pub(crate) expect: Expect,
    /// Where an engine does otherwise than `expect` (with the reason beside it
    /// where it is set).
    pub(crate) except: Vec<(Engine, Expect)>,
    pub(crate) explain: Explain,
}

impl Request {
    pub(crate) fn new(initiator: Initiator, url: String, config: &Path) -> Request {
        Request {
            initiator,
            url,
            method: "GET".to_owned(),
            headers: Vec::new(),
            credentials: None,
            body: None,
            read: Vec::new(),
            expect: Expect::Allowed(200),
            except: Vec::new(),
            explain: Explain::Predicts(config.to_owned()),
        }
    }

    pub(crate) fn method(mut self, method: &str) -> Self {
        self.method = method.to_owned();
        self
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// `credentials: "include"` (XHR: `withCredentials = true`).
    pub(crate) fn include(mut self) -> Self {
        self.credentials = Some("include");
        self
    }

    pub(crate) fn omit(mut self) -> Self {
        self.credentials = Some("omit");
        self
    }

    /// A body, with the `Content-Type` the page sets for it.
    pub(crate) fn json(mut self, body: &str) -> Self {
        self.body = Some(body.to_owned());
        self.header("content-type", "application/json")
    }

    /// A body of this type.
    pub(crate) fn body(mut self, content_type: &str, body: &str) -> Self {
        self.body = Some(body.to_owned());
        self.header("content-type", content_type)
    }

    /// A `text/plain` body: a safelisted content type, no preflight for it.
    pub(crate) fn text(mut self, body: &str) -> Self {
        self.body = Some(body.to_owned());
        self.header("content-type", "text/plain")
    }

    pub(crate) fn read(mut self, names: &[&str]) -> Self {
        self.read.extend(names.iter().map(|n| (*n).to_owned()));
        self
    }

    /// Explain is checked against this configuration instead.
    pub(crate) fn explained_by(mut self, config: &Path) -> Self {
        self.explain = match self.explain {
            Explain::Predicts(_) => Explain::Predicts(config.to_owned()),
            Explain::Verdict(_, v) => Explain::Verdict(config.to_owned(), v),
        };
        self
    }

    pub(crate) fn explain_verdict(mut self, verdict: &'static str) -> Self {
        let config = match self.explain {
            Explain::Predicts(c) | Explain::Verdict(c, _) => c,
        };
        self.explain = Explain::Verdict(config, verdict);
        self
    }

    pub(crate) fn allowed(mut self, status: u16) -> Step {
        self.expect = Expect::Allowed(status);
        Step::Request(self)
    }

    pub(crate) fn blocked(mut self, cors_error: &'static str) -> Step {
        self.expect = Expect::Blocked(cors_error);
        Step::Request(self)
    }

    /// `engine` does this instead of what the step's `allowed`/`blocked` says.
    #[allow(dead_code)]
    pub(crate) fn except(mut self, engine: Engine, expect: Expect) -> Self {
        self.except.push((engine, expect));
        self
    }

    /// What `engine` must do with the request.
    pub(crate) fn expect_in(&self, engine: Engine) -> &Expect {
        self.except
            .iter()
            .find(|(e, _)| *e == engine)
            .map_or(&self.expect, |(_, expect)| expect)
    }

    /// The credentials mode as `corsgate explain` takes it.
    pub(crate) fn credentials_mode(&self) -> &'static str {
        self.credentials.unwrap_or("same-origin")
    }

    fn to_json(&self) -> Value {
        let headers: serde_json::Map<String, Value> = self
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), Value::String(v.clone())))
            .collect();
        match self.initiator {
            Initiator::Fetch => {
                let mut init = json!({"method": self.method, "headers": headers});
                if let Some(credentials) = self.credentials {
                    init["credentials"] = json!(credentials);
                }
                if let Some(body) = &self.body {
                    init["body"] = json!(body);
                }
                json!({"kind": "fetch", "url": self.url, "init": init, "readHeaders": self.read})
            }
            Initiator::Xhr => json!({
                "kind": "xhr",
                "url": self.url,
                "method": self.method,
                "headers": headers,
                "withCredentials": self.credentials == Some("include"),
                "body": self.body,
                "readHeaders": self.read,
            }),
        }
    }
}

/// One step of a scenario.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Request(Request),
    /// Any other harness step (cookie, websocket, signalFile, waitForFile, ...).
    Other(Value),
}

impl Step {
    pub(crate) fn cookie(url: &str, name: &str, value: &str) -> Step {
        Step::Other(json!({"kind": "cookie", "url": url, "name": name, "value": value}))
    }

    pub(crate) fn cookies(url: &str) -> Step {
        Step::Other(json!({"kind": "getCookies", "urls": [url]}))
    }

    pub(crate) fn websocket(url: &str, send: &str) -> Step {
        Step::Other(json!({"kind": "websocket", "url": url, "send": send}))
    }

    pub(crate) fn signal(path: &Path) -> Step {
        Step::Other(json!({"kind": "signalFile", "path": path}))
    }

    pub(crate) fn wait_for(path: &Path, timeout: Duration) -> Step {
        Step::Other(json!({
            "kind": "waitForFile",
            "path": path,
            "timeoutMs": timeout.as_millis() as u64,
            "settleMs": 0,
        }))
    }

    fn to_json(&self) -> Value {
        match self {
            Step::Request(request) => request.to_json(),
            Step::Other(value) => value.clone(),
        }
    }
}

pub(crate) type Check = Box<dyn Fn(&Outcome<'_>) + Send + Sync>;

/// A page on one origin and what it does.
pub(crate) struct Scenario {
    pub(crate) name: String,
    /// The page's origin; the page is `ORIGIN/blank.html`.
    pub(crate) page: String,
    pub(crate) steps: Vec<Step>,
    pub(crate) check: Option<Check>,
    /// A page other than `ORIGIN/blank.html` (a `data:` URL, whose origin is
    /// opaque: `null`).
    pub(crate) page_url: Option<String>,
}

impl Scenario {
    pub(crate) fn new(name: &str, page: &str) -> Scenario {
        Scenario {
            name: name.to_owned(),
            page: page.to_owned(),
            steps: Vec::new(),
            check: None,
            page_url: None,
        }
    }

    /// A `data:` page: an opaque origin (`null`), and to Chromium a
    /// non-secure context in the public address space.
    pub(crate) fn opaque(name: &str) -> Scenario {
        Scenario {
            page_url: Some("data:text/html,<title>opaque</title>".to_owned()),
            ..Scenario::new(name, "null")
        }
    }

    pub(crate) fn then(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    /// Assertions beyond each request's expected outcome (which are always run).
    pub(crate) fn check(mut self, check: impl Fn(&Outcome<'_>) + Send + Sync + 'static) -> Self {
        self.check = Some(Box::new(check));
        self
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "pageUrl": self.page_url.clone().unwrap_or_else(|| format!("{}/blank.html", self.page)),
            "steps": self.steps.iter().map(Step::to_json).collect::<Vec<_>>(),
        })
    }
}

/// Runs the harness once over `scenarios` in `run`'s engine and settings;
/// returns one result per scenario, in order. Fails after `limit`.
pub(crate) fn run(dir: &Path, run: Run, scenarios: &[Scenario], limit: Duration) -> Vec<Value> {
    let input = dir.join(format!("scenarios-{}.json", run.label()));
    let output = dir.join(format!("results-{}.jsonl", run.label()));
    let log = dir.join(format!("harness-{}.log", run.label()));
    let total = limit.saturating_sub(Duration::from_secs(10));
    let document = json!({
        "engine": run.engine.as_str(),
        "browserArgs": run.browser_args(),
        "prefs": run.prefs(),
        "stepTimeoutMs": 8000,
        "settleMs": 150,
        "totalTimeoutMs": total.as_millis() as u64,
        "scenarios": scenarios.iter().map(Scenario::to_json).collect::<Vec<_>>(),
    });
    std::fs::write(&input, serde_json::to_vec_pretty(&document).unwrap()).unwrap();
    let mut child = Command::new("node")
        .arg(browser_dir().join("harness.mjs"))
        .arg(&input)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&output).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("cannot start node");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the harness ({}) did not finish within {limit:?}; its log:\n{}",
                run.label(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success(),
        "the harness ({}) failed with {status}:\n{stderr}",
        run.label()
    );
    let text = std::fs::read_to_string(&output).unwrap();
    let results: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSONL line {l:?}: {e}")))
        .collect();
    assert_eq!(
        results.len(),
        scenarios.len(),
        "the harness reported {} of {} scenarios:\n{stderr}",
        results.len(),
        scenarios.len()
    );
    for (scenario, result) in scenarios.iter().zip(&results) {
        assert_eq!(
            result["name"],
            scenario.name.as_str(),
            "results out of order"
        );
    }
    results
}

/// What the harness recorded for one scenario, with the test's context.
pub(crate) struct Outcome<'a> {
    pub(crate) scenario: &'a Scenario,
    pub(crate) result: &'a Value,
    pub(crate) env: &'a crate::servers::Env,
    pub(crate) run: Run,
}

impl<'a> Outcome<'a> {
    pub(crate) fn step(&self, index: usize) -> StepView<'a> {
        StepView(&self.result["steps"][index])
    }

    /// The engine that ran the scenario.
    pub(crate) fn engine(&self) -> Engine {
        self.run.engine
    }

    /// Requests that reached the spy upstream under this path prefix, from
    /// this run's engine (the engines run at the same time against the same
    /// upstream; each is known by its `User-Agent`).
    pub(crate) fn upstream(&self, prefix: &str) -> Vec<crate::support::Seen> {
        self.env
            .spy
            .requests()
            .into_iter()
            .filter(|s| s.uri.path().starts_with(prefix))
            .filter(|s| {
                let agent = s
                    .headers
                    .get("user-agent")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                engine_of(agent) == Some(self.run.engine)
            })
            .collect()
    }
}

/// Whether the engine reuses a preflight within its `Access-Control-Max-Age`.
/// Firefox 153 ESR sent the preflight again for every request in the suite,
/// `max_age` or not; so it did with no automation attached (a plain headless
/// `firefox-esr` with a fresh profile, three identical `PUT`s, three preflights).
pub(crate) fn caches_preflights(engine: Engine) -> bool {
    engine != Engine::Firefox
}

/// The engine a `User-Agent` belongs to.
pub(crate) fn engine_of(agent: &str) -> Option<Engine> {
    if agent.contains("Firefox/") {
        Some(Engine::Firefox)
    } else if agent.contains("Chrome/") {
        Some(Engine::Chromium)
    } else if agent.contains("AppleWebKit/") {
        Some(Engine::Webkit)
    } else {
        None
    }
}

/// One step's record.
#[derive(Clone, Copy)]
pub(crate) struct StepView<'a>(pub &'a Value);

impl<'a> StepView<'a> {
    /// The promise resolved (fetch) or `load` fired (XHR).
    pub(crate) fn ok(&self) -> bool {
        self.0["ok"] == true
    }

    pub(crate) fn status(&self) -> Option<u64> {
        self.0["status"].as_u64()
    }

    pub(crate) fn error(&self) -> Option<&'a str> {
        self.0["error"].as_str()
    }

    pub(crate) fn cors_error(&self) -> Option<&'a str> {
        self.0["corsError"].as_str()
    }

    pub(crate) fn body(&self) -> &'a str {
        self.0["body"].as_str().unwrap_or("")
    }

    /// What JavaScript read for a `read` header: `None` when hidden or absent.
    pub(crate) fn header(&self, name: &str) -> Option<&'a str> {
        self.0["headers"][name].as_str()
    }

    /// Names JavaScript can enumerate.
    pub(crate) fn header_names(&self) -> Vec<&'a str> {
        self.0["allHeaderNames"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    pub(crate) fn console(&self) -> Vec<&'a str> {
        self.0["console"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// The console lines about CORS that `engine` printed for this step, in
    /// order: what `corsgate explain --browser ENGINE` predicts as
    /// `console_messages`.
    pub(crate) fn cors_messages(&self, engine: Engine) -> Vec<&'a str> {
        self.console()
            .into_iter()
            .filter(|m| match engine {
                // "Access to fetch at … has been blocked by CORS policy: …"
                // (then a generic "Failed to load resource: net::ERR_FAILED").
                Engine::Chromium => {
                    m.starts_with("Access to ") && m.contains("blocked by CORS policy")
                }
                // "Cross-Origin Request Blocked: …", one or two lines.
                Engine::Firefox => m.starts_with("Cross-Origin Request Blocked:"),
                // The reason (`Origin … is not allowed by
                // Access-Control-Allow-Origin. Status code: 200`, …), then
                // `Fetch API cannot load URL due to access control checks.`
                // (`XMLHttpRequest cannot load …`).
                Engine::Webkit => !m.starts_with("WebSocket connection to"),
            })
            .collect()
    }

    pub(crate) fn requests(&self) -> Vec<Wire<'a>> {
        self.0["requests"]
            .as_array()
            .map(|a| a.iter().map(Wire).collect())
            .unwrap_or_default()
    }

    pub(crate) fn preflights(&self) -> Vec<Wire<'a>> {
        self.requests()
            .into_iter()
            .filter(Wire::preflight)
            .collect()
    }

    /// Requests other than preflights (redirect hops included).
    pub(crate) fn actual(&self) -> Vec<Wire<'a>> {
        self.requests()
            .into_iter()
            .filter(|r| !r.preflight())
            .collect()
    }

    pub(crate) fn field(&self, name: &str) -> &'a Value {
        &self.0[name]
    }
}

/// One request as Chromium's network stack saw it.
#[derive(Clone, Copy)]
pub(crate) struct Wire<'a>(pub &'a Value);

impl<'a> Wire<'a> {
    pub(crate) fn preflight(&self) -> bool {
        self.0["preflight"] == true
    }

    pub(crate) fn method(&self) -> &'a str {
        self.0["method"].as_str().unwrap_or("")
    }

    pub(crate) fn status(&self) -> Option<u64> {
        self.0["status"].as_u64()
    }

    pub(crate) fn redirected_to(&self) -> Option<&'a str> {
        self.0["redirectedTo"].as_str()
    }

    /// A response header as received (repeated lines joined with `\n`).
    pub(crate) fn response_header(&self, name: &str) -> Option<&'a str> {
        self.0["responseHeaders"][name].as_str()
    }

    pub(crate) fn request_header(&self, name: &str) -> Option<&'a str> {
        self.0["requestHeaders"][name].as_str()
    }

    /// The `Access-Control-*` response headers, each line once.
    pub(crate) fn cors_lines(&self) -> Vec<(String, String)> {
        let mut lines = Vec::new();
        if let Some(map) = self.0["responseHeaders"].as_object() {
            for (name, value) in map {
                if name.starts_with("access-control-") {
                    for line in value.as_str().unwrap_or("").split('\n') {
                        lines.push((name.clone(), line.to_owned()));
                    }
                }
            }
        }
        lines.sort();
        lines
    }
}
