//! The scenarios of the conformance suite that exercise corsgate's own
//! features; the seeds' examples are in `seeds.rs`.
//!
//! Every request step states what the browser must do (allowed with a status,
//! or blocked with Chromium's `corsError`); the runner also holds `corsgate
//! explain` to it. Checks here add what that cannot say: preflight counts, what
//! reached the upstream, the headers on the wire, what JavaScript could read.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use corsgate_explain::Engine;

use crate::harness::{Expect, Mode, Outcome, Run, Scenario, Step, caches_preflights};
use crate::servers::Env;
use crate::support::{WAIT, send, write_atomically};

const PREFLIGHT_NO_ACAO: &str = "PreflightMissingAllowOriginHeader";
const NO_ACAO: &str = "MissingAllowOriginHeader";
/// What the spy upstream answers for `/f1/api/admin/…` however it is spelled.
const ADMIN_BODY: &str = "ADMIN-ONLY-DATA";

fn route(path: &str, upstream: &str, cors: &str) -> String {
    format!("[[route]]\npath = \"{path}\"\nupstream = \"{upstream}\"\n{cors}\n\n")
}

/// The main gateway: one route per feature, each with its own policy.
fn main_config(env: &Env) -> String {
    let spy = env.spy.url();
    let a = env.a;
    let preflighted = "allow_methods = [\"PUT\", \"DELETE\", \"PATCH\"]\n\
                       allow_headers = [\"x-api-key\", \"content-type\"]\n";
    let put = "allow_methods = [\"PUT\"]\nallow_headers = [\"x-api-key\"]\n";
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n\
         [server.cors]\nallow_origins = [\"{}\"]\n\n",
        env.app()
    );
    let routes = [
        ("/simple", spy.clone(), String::new()),
        (
            "/localhost-only",
            spy.clone(),
            format!("[route.cors]\nallow_origins = [\"http://localhost:{a}\"]"),
        ),
        (
            "/wild",
            spy.clone(),
            format!("[route.cors]\nallow_origins = [\"http://*.example.localhost:{a}\"]"),
        ),
        (
            "/any-port",
            spy.clone(),
            "[route.cors]\nallow_origins = [\"http://127.0.0.1:*\"]".to_owned(),
        ),
        ("/pre", spy.clone(), format!("[route.cors]\n{preflighted}")),
        (
            "/debug",
            spy.clone(),
            format!("[route.cors]\n{preflighted}debug = true"),
        ),
        (
            "/cred",
            spy.clone(),
            format!("[route.cors]\n{put}allow_credentials = true"),
        ),
        (
            "/public",
            spy.clone(),
            "cors = { allow_origins = \"*\", allow_credentials = false }".to_owned(),
        ),
        (
            "/auth-star",
            spy.clone(),
            "[route.cors]\nallow_methods = [\"PUT\"]\nallow_headers = \"*\"".to_owned(),
        ),
        (
            "/auth-listed",
            spy.clone(),
            "[route.cors]\nallow_headers = [\"*\", \"authorization\"]".to_owned(),
        ),
        (
            "/auth-none",
            spy.clone(),
            "[route.cors]\nallow_headers = [\"x-api-key\"]".to_owned(),
        ),
        ("/cors-off", spy.clone(), "cors = \"off\"".to_owned()),
        (
            "/expose",
            spy.clone(),
            "[route.cors]\nexpose_headers = [\"x-total-count\"]".to_owned(),
        ),
        (
            "/cache",
            spy.clone(),
            format!("[route.cors]\n{put}max_age = 600"),
        ),
        (
            "/no-cache",
            spy.clone(),
            format!("[route.cors]\n{put}max_age = 0"),
        ),
        ("/errors", spy.clone(), String::new()),
        (
            "/down",
            format!("http://{}", env.down),
            format!("[route.cors]\n{put}"),
        ),
        (
            "/upstream-cors",
            spy.clone(),
            "[route.cors]\nallow_credentials = true\nexpose_headers = [\"x-request-id\"]"
                .to_owned(),
        ),
        ("/redirect", spy.clone(), format!("[route.cors]\n{put}")),
        (
            "/ws",
            format!("http://{}", env.websocket_upstream),
            String::new(),
        ),
        (
            "/reject",
            spy.clone(),
            "cors = { on_disallowed = \"reject\" }".to_owned(),
        ),
        // The security review's F1: /f1/api lets the app read with cookies,
        // /f1/api/admin only another origin.
        (
            "/f1/api",
            spy.clone(),
            "[route.cors]\nallow_credentials = true".to_owned(),
        ),
        (
            "/f1/api/admin",
            spy.clone(),
            format!(
                "[route.cors]\nallow_origins = [\"http://127.0.0.1:{}\"]\nallow_credentials = true",
                env.b
            ),
        ),
        (
            "/private-network",
            spy.clone(),
            "[route.cors]\nallow_origins = \"*\"\nallow_methods = [\"PUT\"]\n\
             allow_private_network = true"
                .to_owned(),
        ),
    ];
    for (path, upstream, cors) in routes {
        text.push_str(&route(path, &upstream, &cors));
    }
    text
}

fn reload_config(env: &Env, origins: &[String]) -> String {
    let list: Vec<String> = origins.iter().map(|o| format!("\"{o}\"")).collect();
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n\
         [server.cors]\nallow_origins = [{}]\nallow_methods = [\"PUT\"]\n\
         allow_headers = [\"x-api-key\"]\nmax_age = 600\n\n{}",
        list.join(", "),
        route("/api", &env.spy.url(), "")
    )
}

/// The gateway of `engine`'s hot-reload scenario: one per engine, since each
/// reloads once.
pub(crate) fn reload_gateway(engine: Engine) -> String {
    format!("reload-{engine}")
}

pub(crate) async fn start_gateways(env: &mut Env, engines: &[Engine]) {
    let main = main_config(env);
    env.add_gateway("main", &main).await;
    let timeouts = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nresponse_timeout = \"1s\"\n\n\
         [server.cors]\nallow_origins = [\"{}\"]\n\n{}",
        env.app(),
        route("/slow", &env.spy.url(), "")
    );
    env.add_gateway("timeouts", &timeouts).await;
    let reload = reload_config(env, &[env.app()]);
    std::fs::write(env.dir.join("reload-before.toml"), &reload).unwrap();
    for &engine in engines {
        env.add_binary_gateway(&reload_gateway(engine), &reload);
    }
}

/// Files the hot-reload scenario and [`drive_reload`] meet on.
pub(crate) struct ReloadPlan {
    pub(crate) file: PathBuf,
    pub(crate) new_config: String,
    pub(crate) phase_one: PathBuf,
    pub(crate) reloaded: PathBuf,
    pub(crate) url: String,
    pub(crate) origin: String,
}

pub(crate) fn reload_plan(env: &Env, engine: Engine) -> ReloadPlan {
    let gateway = env.gw(&reload_gateway(engine));
    ReloadPlan {
        file: gateway.file.clone(),
        new_config: reload_config(env, &[env.app(), env.other_port()]),
        phase_one: env.dir.join(&format!("reload-phase-one-{engine}")),
        reloaded: env.dir.join(&format!("reload-done-{engine}")),
        url: gateway.url("/api/reload-probe"),
        origin: env.other_port(),
    }
}

/// Runs beside the browser: once the page has been refused, adds its origin to
/// the file (as an operator's editor saves it), waits until the running
/// process answers with the new policy, and lets the page go on.
pub(crate) async fn drive_reload(plan: ReloadPlan) {
    let deadline = Instant::now() + Duration::from_secs(170);
    while !plan.phase_one.exists() {
        if Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    write_atomically(&plan.file, &plan.new_config);
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = send(
            "OPTIONS",
            &plan.url,
            &[
                ("origin", &plan.origin),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "x-api-key"),
            ],
        )
        .await;
        if answer.status == 204 {
            break;
        }
        if Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(&plan.reloaded, "").unwrap();
}

fn assert_untouched(o: &Outcome<'_>, prefix: &str) {
    let seen = o.upstream(prefix);
    assert!(
        seen.is_empty(),
        "{}: reached the upstream: {:?}",
        o.scenario.name,
        seen.iter()
            .map(|s| format!("{} {}", s.method, s.uri))
            .collect::<Vec<_>>()
    );
}

fn methods(o: &Outcome<'_>, prefix: &str) -> Vec<String> {
    o.upstream(prefix)
        .iter()
        .map(|s| s.method.to_string())
        .collect()
}

fn header<'s>(seen: &'s crate::support::Seen, name: &str) -> Option<&'s str> {
    seen.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Every scenario of this file for one run.
pub(crate) fn all(env: &Env, run: Run) -> Vec<Scenario> {
    let mut list = authorization(env, run.mode);
    if run.mode == Mode::Default {
        list.extend(simple(env));
        list.extend(preflighted(env));
        list.extend(credentials(env));
        list.extend(exposed_and_cached(env));
        list.extend(errors_and_upstreams(env));
        list.extend(websocket_and_reload(env, run.engine));
    }
    list
}

fn simple(env: &Env) -> Vec<Scenario> {
    let gw = env.gw("main");
    let app = env.app();
    vec![
        Scenario::new("simple-get-allowed", &app)
            .then(
                gw.fetch("/simple/get-allowed")
                    .read(&["content-type", "x-total-count"])
                    .allowed(200),
            )
            .check(move |o| {
                let s = o.step(0);
                assert_eq!(s.preflights().len(), 0, "a simple GET is never preflighted");
                assert_eq!(s.body(), "GET /simple/get-allowed");
                assert_eq!(s.header("content-type"), Some("text/plain; charset=utf-8"));
                assert_eq!(s.header("x-total-count"), None, "not exposed");
                let seen = o.upstream("/simple/get-allowed");
                assert_eq!(seen.len(), 1);
                assert_eq!(header(&seen[0], "origin"), Some(o.scenario.page.as_str()));
            }),
        // Only the page's origin counts, not the name the API is reached by.
        Scenario::new("simple-get-allowed-api-via-localhost", &app).then(
            gw.fetch_at("localhost", "/simple/api-via-localhost")
                .allowed(200),
        ),
        Scenario::new("simple-post-text-plain-allowed", &app)
            .then(
                gw.fetch("/simple/post-text")
                    .method("POST")
                    .text("hello")
                    .allowed(200),
            )
            .check(|o| {
                assert_eq!(o.step(0).preflights().len(), 0);
                let seen = o.upstream("/simple/post-text");
                assert_eq!(seen.len(), 1);
                assert_eq!(seen[0].body_len, 5);
            }),
        // The default `on_disallowed = "omit"`: the request reaches the upstream
        // and the browser keeps the answer from the page.
        Scenario::new("simple-get-refused-other-port", &env.other_port())
            .then(gw.fetch("/simple/other-port").blocked(NO_ACAO))
            .check(|o| {
                let wire = o.step(0).actual();
                assert_eq!(wire.len(), 1);
                assert_eq!(wire[0].status(), Some(200));
                assert_eq!(wire[0].cors_lines(), []);
                assert_eq!(methods(o, "/simple/other-port"), ["GET"]);
            }),
        Scenario::new("simple-get-refused-localhost-vs-127", &env.localhost())
            .then(gw.fetch("/simple/localhost").blocked(NO_ACAO)),
        Scenario::new("localhost-only-allowed", &env.localhost())
            .then(gw.fetch("/localhost-only/a").allowed(200)),
        Scenario::new("localhost-only-refused-127", &app)
            .then(gw.fetch("/localhost-only/b").blocked(NO_ACAO)),
        Scenario::new("simple-xhr-refused-other-port", &env.other_port())
            .then(gw.xhr("/simple/xhr").blocked(NO_ACAO))
            .check(|o| {
                // Only Chromium names the API; Firefox words XHR and fetch() alike.
                if o.engine() == Engine::Chromium {
                    let message = o.step(0).cors_messages(Engine::Chromium)[0];
                    assert!(
                        message.starts_with("Access to XMLHttpRequest at "),
                        "{message}"
                    );
                }
            }),
        Scenario::new("wildcard-subdomain-allowed", &env.named("a.example"))
            .then(gw.fetch("/wild/a").allowed(200)),
        Scenario::new("wildcard-deep-subdomain-allowed", &env.named("x.y.example"))
            .then(gw.fetch("/wild/b").allowed(200)),
        Scenario::new("wildcard-apex-refused", &env.named("example"))
            .then(gw.fetch("/wild/c").blocked(NO_ACAO)),
        Scenario::new(
            "wildcard-other-port-refused",
            &format!("http://a.example.localhost:{}", env.b),
        )
        .then(gw.fetch("/wild/d").blocked(NO_ACAO)),
        Scenario::new("any-port-allowed-a", &app).then(gw.fetch("/any-port/a").allowed(200)),
        Scenario::new("any-port-allowed-b", &env.other_port())
            .then(gw.fetch("/any-port/b").allowed(200)),
        Scenario::new("any-port-refused-localhost", &env.localhost())
            .then(gw.fetch("/any-port/c").blocked(NO_ACAO)),
    ]
}

fn preflighted(env: &Env) -> Vec<Scenario> {
    let gw = env.gw("main");
    let app = env.app();
    let refused = |name: &str, page: &str, path: &'static str, method: &str, header: &str| {
        Scenario::new(name, page)
            .then(
                gw.fetch(path)
                    .method(method)
                    .header(header, "1")
                    .blocked(PREFLIGHT_NO_ACAO),
            )
            .check(move |o| {
                let preflights = o.step(0).preflights();
                assert_eq!(preflights.len(), 1);
                assert_eq!(preflights[0].status(), Some(403));
                assert_eq!(preflights[0].cors_lines(), []);
                assert_untouched(o, path);
            })
    };
    let debug_refused =
        |name: &str, page: &str, path: &'static str, method: &str, header: &str, error| {
            Scenario::new(name, page)
                .then(
                    gw.fetch(path)
                        .method(method)
                        .header(header, "1")
                        .blocked(error),
                )
                .check(move |o| {
                    let preflights = o.step(0).preflights();
                    assert_eq!(preflights.len(), 1);
                    assert_eq!(preflights[0].status(), Some(204));
                    assert!(
                        preflights[0].response_header("x-corsgate-reason").is_some(),
                        "debug mode says why"
                    );
                    assert_untouched(o, path);
                })
        };
    let mut list = Vec::new();
    for (method, body) in [("PUT", true), ("DELETE", false), ("PATCH", true)] {
        let path: &'static str = match method {
            "PUT" => "/pre/put-allowed",
            "DELETE" => "/pre/delete-allowed",
            _ => "/pre/patch-allowed",
        };
        let mut request = gw.fetch(path).method(method).header("x-api-key", "k");
        if body {
            request = request.json("{\"n\":1}");
        }
        let expected_headers = if body {
            "content-type,x-api-key"
        } else {
            "x-api-key"
        };
        let method = method.to_owned();
        list.push(
            Scenario::new(
                &format!("preflight-{}-allowed", method.to_lowercase()),
                &app,
            )
            .then(request.allowed(200))
            .check(move |o| {
                let s = o.step(0);
                let preflights = s.preflights();
                assert_eq!(preflights.len(), 1);
                let p = preflights[0];
                assert_eq!(p.method(), "OPTIONS");
                assert_eq!(p.status(), Some(204));
                assert_eq!(
                    p.request_header("access-control-request-method"),
                    Some(method.as_str())
                );
                assert_eq!(
                    p.request_header("access-control-request-headers"),
                    Some(expected_headers)
                );
                // Only what was asked for is echoed.
                assert_eq!(
                    p.response_header("access-control-allow-methods"),
                    Some(method.as_str())
                );
                assert_eq!(
                    p.response_header("access-control-allow-headers"),
                    Some(expected_headers)
                );
                let seen = o.upstream(path);
                assert_eq!(
                    seen.len(),
                    1,
                    "only the actual request reaches the upstream"
                );
                assert_eq!(seen[0].method.as_str(), method);
                assert_eq!(header(&seen[0], "x-api-key"), Some("k"));
            }),
        );
    }
    list.extend([
        refused(
            "preflight-method-refused",
            &app,
            "/pre/method-refused",
            "PURGE",
            "x-api-key",
        ),
        refused(
            "preflight-header-refused",
            &app,
            "/pre/header-refused",
            "PUT",
            "x-other",
        ),
        refused(
            "preflight-origin-refused",
            &env.other_port(),
            "/pre/origin-refused",
            "PUT",
            "x-api-key",
        ),
        // fetch() uppercases only DELETE, GET, HEAD, OPTIONS, POST and PUT.
        refused(
            "preflight-lowercase-patch-refused",
            &app,
            "/pre/lowercase-patch",
            "patch",
            "x-api-key",
        ),
        debug_refused(
            "debug-method-refused",
            &app,
            "/debug/method-refused",
            "PURGE",
            "x-api-key",
            "MethodDisallowedByPreflightResponse",
        ),
        debug_refused(
            "debug-header-refused",
            &app,
            "/debug/header-refused",
            "PUT",
            "x-other",
            "HeaderDisallowedByPreflightResponse",
        ),
        debug_refused(
            "debug-origin-refused",
            &env.other_port(),
            "/debug/origin-refused",
            "PUT",
            "x-api-key",
            PREFLIGHT_NO_ACAO,
        ),
        debug_refused(
            "debug-lowercase-patch-refused",
            &app,
            "/debug/lowercase-patch",
            "patch",
            "x-api-key",
            "MethodDisallowedByPreflightResponse",
        ),
        Scenario::new("debug-xhr-header-refused", &app)
            .then(
                gw.xhr("/debug/xhr-header")
                    .method("PUT")
                    .header("x-other", "1")
                    .blocked("HeaderDisallowedByPreflightResponse"),
            )
            .check(|o| assert_untouched(o, "/debug/xhr-header")),
        Scenario::new("debug-simple-get-refused", &env.other_port())
            .then(gw.fetch("/debug/simple").blocked(NO_ACAO))
            .check(|o| {
                let wire = o.step(0).actual();
                assert_eq!(
                    wire[0].response_header("x-corsgate-reason"),
                    Some("origin-not-allowed")
                );
            }),
        Scenario::new("debug-put-allowed", &app)
            .then(
                gw.fetch("/debug/allowed")
                    .method("PUT")
                    .header("x-api-key", "k")
                    .allowed(200),
            )
            .check(|o| {
                let preflights = o.step(0).preflights();
                assert_eq!(preflights[0].response_header("x-corsgate-reason"), None);
                assert_eq!(methods(o, "/debug/allowed"), ["PUT"]);
            }),
    ]);
    list
}

fn credentials(env: &Env) -> Vec<Scenario> {
    let gw = env.gw("main");
    let app = env.app();
    // Page and API on different ports of one host: same site, so Chromium sends
    // the API's cookies (it blocks third-party cookies).
    let jar = gw.url("/");
    vec![
        // The security review's F1: a page the broader route allows must not
        // read the stricter route's resources through another spelling of their
        // path, which the upstream (decoding, as Flask or Spring do) serves as
        // the admin resource. Browsers send these spellings as written.
        Scenario::new("f1-non-canonical-path-cannot-read-admin", &app)
            .then(Step::cookie(&jar, "sid", "admin"))
            .then(gw.fetch("/f1/api/admin/users").include().blocked(NO_ACAO))
            .then(gw.fetch("/f1/api/%61dmin/users").include().blocked(NO_ACAO))
            .then(gw.fetch("/f1/api//admin/users").include().blocked(NO_ACAO))
            .then(gw.fetch("/f1/api/admin;x/users").include().blocked(NO_ACAO))
            // Refused before any route is chosen, with the default policy's
            // headers (no credentials there): the page reads the 400 only
            // without cookies.
            .then(gw.fetch("/f1/api/admin%2fusers").allowed(400))
            .then(gw.xhr("/f1/api/%61dmin/users").include().blocked(NO_ACAO))
            .then(gw.fetch("/f1/api/users").include().allowed(200))
            .check(|o| {
                for step in 1..=7 {
                    assert!(
                        !o.step(step).body().contains(ADMIN_BODY),
                        "step {step} read the admin resource"
                    );
                }
                assert!(o.step(5).body().starts_with("400 Bad Request"));
                // What reached the upstream is the path the route was chosen on.
                let paths: Vec<String> = o
                    .upstream("/f1/")
                    .iter()
                    .map(|s| s.uri.path().to_owned())
                    .collect();
                assert_eq!(
                    paths,
                    [
                        "/f1/api/admin/users",
                        "/f1/api/admin/users",
                        "/f1/api/admin/users",
                        "/f1/api/admin;x/users",
                        "/f1/api/admin/users",
                        "/f1/api/users",
                    ]
                );
            }),
        Scenario::new("credentials-cookie-reaches-upstream", &app)
            .then(Step::cookie(&jar, "sid", "abc"))
            .then(gw.fetch("/cred/get").include().allowed(200))
            .then(
                gw.fetch("/cred/put")
                    .method("PUT")
                    .header("x-api-key", "k")
                    .include()
                    .allowed(200),
            )
            .check(|o| {
                assert_eq!(o.step(1).body(), "GET /cred/get cookie=sid=abc");
                let wire = o.step(1).actual();
                assert_eq!(
                    wire[0].response_header("access-control-allow-credentials"),
                    Some("true")
                );
                let preflight = o.step(2).preflights()[0];
                assert_eq!(
                    preflight.request_header("cookie"),
                    None,
                    "a preflight never carries credentials"
                );
                for path in ["/cred/get", "/cred/put"] {
                    let seen = o.upstream(path);
                    assert_eq!(seen.len(), 1, "{path}");
                    assert_eq!(header(&seen[0], "cookie"), Some("sid=abc"), "{path}");
                }
            }),
        Scenario::new("credentials-xhr-with-credentials", &app)
            .then(Step::cookie(&jar, "sid", "xhr"))
            .then(gw.xhr("/cred/xhr").include().allowed(200))
            .check(|o| assert_eq!(o.step(1).body(), "GET /cred/xhr cookie=sid=xhr")),
        Scenario::new("credentials-omit-sends-no-cookie", &app)
            .then(Step::cookie(&jar, "sid", "abc"))
            .then(gw.fetch("/cred/omit").omit().allowed(200))
            .check(|o| {
                let seen = o.upstream("/cred/omit");
                assert_eq!(header(&seen[0], "cookie"), None);
            }),
        Scenario::new("credentials-set-cookie-from-upstream", &app)
            .then(gw.fetch("/cred/login").include().allowed(200))
            .then(Step::cookies(&jar))
            .check(|o| {
                let cookies = o.step(1).field("cookies").as_array().unwrap();
                assert!(
                    cookies
                        .iter()
                        .any(|c| c["name"] == "session" && c["value"] == "s1"),
                    "{cookies:?}"
                );
            }),
        // CORS is not authentication: the refused page's request, cookie and
        // all, still reaches the upstream; only reading the answer is refused.
        Scenario::new("credentials-refused-origin", &env.other_port())
            .then(Step::cookie(&jar, "sid", "abc"))
            .then(gw.fetch("/cred/refused").include().blocked(NO_ACAO))
            .check(|o| {
                let seen = o.upstream("/cred/refused");
                assert_eq!(seen.len(), 1);
                assert_eq!(header(&seen[0], "cookie"), Some("sid=abc"));
            }),
        Scenario::new("credentials-on-route-without-credentials", &app).then(
            gw.fetch("/simple/credentials")
                .include()
                .blocked("InvalidAllowCredentials"),
        ),
        Scenario::new("public-star-allowed", &env.other_port())
            .then(gw.fetch("/public/jwks.json").allowed(200))
            .check(|o| {
                let wire = o.step(0).actual();
                assert_eq!(
                    wire[0].response_header("access-control-allow-origin"),
                    Some("*")
                );
            }),
        Scenario::new("public-star-with-credentials-refused", &env.other_port()).then(
            gw.fetch("/public/jwks.json")
                .include()
                .blocked("WildcardOriginNotAllowed"),
        ),
    ]
}

/// `Authorization` in the default and the spec-strict Chromium.
fn authorization(env: &Env, mode: Mode) -> Vec<Scenario> {
    let gw = env.gw("main");
    let app = env.app();
    let tag = mode.label();
    let path = move |p: &str| format!("{p}/{tag}");
    let strict = mode == Mode::Strict;
    let suffix = if strict { " [strict]" } else { "" };
    let name = move |n: &str| format!("{n}{suffix}");
    let off = path("/cors-off/authorization");
    let off_check = off.clone();
    let upstream_star = if strict {
        gw.fetch(&off)
            .header("authorization", "Bearer t")
            .explain_verdict("decided-by-upstream")
            .blocked("HeaderDisallowedByPreflightResponse")
    } else {
        gw.fetch(&off)
            .header("authorization", "Bearer t")
            .explain_verdict("decided-by-upstream")
            .allowed(200)
    };
    vec![
        Scenario::new(&name("auth-star-custom-header-allowed"), &app).then(
            gw.fetch(&path("/auth-star/custom"))
                .method("PUT")
                .header("x-anything", "1")
                .allowed(200),
        ),
        Scenario::new(&name("auth-star-authorization-refused"), &app)
            .then(
                gw.fetch(&path("/auth-star/authorization"))
                    .header("authorization", "Bearer t")
                    .blocked(PREFLIGHT_NO_ACAO),
            )
            .check(|o| {
                let p = o.step(0).preflights()[0];
                assert_eq!(
                    p.request_header("access-control-request-headers"),
                    Some("authorization")
                );
            }),
        Scenario::new(&name("auth-listed-allowed"), &app)
            .then(
                gw.fetch(&path("/auth-listed/authorization"))
                    .header("authorization", "Bearer t")
                    .header("x-other", "1")
                    .allowed(200),
            )
            .check(|o| {
                let p = o.step(0).preflights()[0];
                // corsgate echoes the checked list, never `*`.
                assert_eq!(
                    p.response_header("access-control-allow-headers"),
                    Some("authorization,x-other")
                );
            }),
        Scenario::new(&name("auth-not-listed-refused"), &app).then(
            gw.fetch(&path("/auth-none/authorization"))
                .header("authorization", "Bearer t")
                .blocked(PREFLIGHT_NO_ACAO),
        ),
        // Control, with CORS off: the upstream itself answers
        // `Access-Control-Allow-Headers: *`. Chromium as shipped lets that cover
        // Authorization; the Fetch standard (and the strict flag) does not.
        Scenario::new(&name("auth-upstream-wildcard-control"), &app)
            .then(upstream_star)
            .check(move |o| {
                let p = o.step(0).preflights()[0];
                assert_eq!(p.response_header("access-control-allow-headers"), Some("*"));
                let seen = o.upstream(&off_check);
                assert_eq!(
                    seen[0].method, "OPTIONS",
                    "CORS off: the preflight is forwarded"
                );
            }),
        Scenario::new(&name("auth-upstream-wildcard-custom-header"), &app).then(
            gw.fetch(&path("/cors-off/custom"))
                .header("x-anything", "1")
                .explain_verdict("decided-by-upstream")
                .allowed(200),
        ),
    ]
}

fn exposed_and_cached(env: &Env) -> Vec<Scenario> {
    let gw = env.gw("main");
    let app = env.app();
    let read = [
        "x-total-count",
        "x-secret",
        "content-type",
        "cache-control",
        "x-request-id",
    ];
    let put = |path: &str| {
        gw.fetch(path)
            .method("PUT")
            .header("x-api-key", "k")
            .allowed(200)
    };
    vec![
        Scenario::new("expose-fetch", &app)
            .then(gw.fetch("/expose/fetch").read(&read).allowed(200))
            .check(|o| {
                let s = o.step(0);
                assert_eq!(s.header("x-total-count"), Some("42"));
                assert_eq!(s.header("x-secret"), None);
                assert_eq!(s.header("x-request-id"), None);
                assert_eq!(s.header("cache-control"), Some("no-store"));
                let names = s.header_names();
                assert!(names.contains(&"x-total-count"), "{names:?}");
                assert!(!names.contains(&"x-secret"), "{names:?}");
                // It was on the wire all along.
                assert_eq!(s.actual()[0].response_header("x-secret"), Some("s3cr3t"));
            }),
        Scenario::new("expose-xhr", &app)
            .then(gw.xhr("/expose/xhr").read(&read).allowed(200))
            .check(|o| {
                let s = o.step(0);
                assert_eq!(s.header("x-total-count"), Some("42"));
                assert_eq!(s.header("x-secret"), None);
                // Chromium says so in the console; Firefox and WebKit return null
                // silently.
                assert_eq!(
                    s.console()
                        .contains(&"Refused to get unsafe header \"x-secret\""),
                    o.engine() == Engine::Chromium,
                    "{:?}",
                    s.console()
                );
            }),
        Scenario::new("max-age-caches-preflight", &app)
            .then(put("/cache/same"))
            .then(put("/cache/same"))
            .check(|o| {
                let first = o.step(0).preflights();
                assert_eq!(first.len(), 1);
                assert_eq!(
                    first[0].response_header("access-control-max-age"),
                    Some("600")
                );
                let again = usize::from(!caches_preflights(o.engine()));
                assert_eq!(
                    o.step(1).preflights().len(),
                    again,
                    "the preflight was cached"
                );
                assert_eq!(methods(o, "/cache/same"), ["PUT", "PUT"]);
            }),
        Scenario::new("max-age-zero-preflights-each-time", &app)
            .then(put("/no-cache/same"))
            .then(put("/no-cache/same"))
            .check(|o| {
                for step in [0, 1] {
                    let preflights = o.step(step).preflights();
                    assert_eq!(preflights.len(), 1, "step {step}");
                    assert_eq!(
                        preflights[0].response_header("access-control-max-age"),
                        Some("0")
                    );
                }
            }),
    ]
}

fn errors_and_upstreams(env: &Env) -> Vec<Scenario> {
    let gw = env.gw("main");
    let app = env.app();
    let readable = |o: &Outcome<'_>, step: usize| {
        let s = o.step(step);
        let wire = s.actual();
        let last = wire.last().unwrap();
        assert_eq!(
            last.response_header("access-control-allow-origin"),
            Some(o.scenario.page.as_str())
        );
        assert!(last.response_header("x-request-id").is_some());
    };
    vec![
        Scenario::new("upstream-500-readable", &app)
            .then(gw.fetch("/errors/status-500").allowed(500))
            .check(move |o| {
                assert_eq!(o.step(0).body(), "upstream failed");
                readable(o, 0);
            }),
        Scenario::new("upstream-down-502-readable", &app)
            .then(gw.fetch("/down/get").allowed(502))
            .check(move |o| readable(o, 0)),
        Scenario::new("upstream-down-preflighted-502-readable", &app)
            .then(
                gw.fetch("/down/put")
                    .method("PUT")
                    .header("x-api-key", "k")
                    .allowed(502),
            )
            .check(move |o| {
                assert_eq!(o.step(0).preflights()[0].status(), Some(204));
                readable(o, 0);
            }),
        Scenario::new("no-route-404-readable", &app)
            .then(gw.fetch("/nowhere").allowed(404))
            .check(move |o| readable(o, 0)),
        Scenario::new("timeout-504-readable", &app)
            .then(env.gw("timeouts").fetch("/slow/x").allowed(504))
            .check(move |o| {
                readable(o, 0);
                let took = o.step(0).field("durationMs").as_u64().unwrap();
                assert!(
                    took < 2900,
                    "answered by the timeout, not the upstream: {took} ms"
                );
            }),
        Scenario::new("upstream-reflecting-overruled", &app)
            .then(
                gw.fetch("/upstream-cors/reflect")
                    .include()
                    .read(&["x-secret", "x-request-id"])
                    .allowed(200),
            )
            .check(|o| {
                let s = o.step(0);
                let wire = s.actual()[0];
                let page = o.scenario.page.clone();
                assert_eq!(
                    wire.cors_lines(),
                    [
                        ("access-control-allow-credentials".into(), "true".into()),
                        ("access-control-allow-origin".into(), page),
                        (
                            "access-control-expose-headers".into(),
                            "x-request-id".into()
                        ),
                    ],
                    "exactly one set, the gateway's"
                );
                // The upstream's Vary is kept, Origin added once (as a line of its own).
                let vary: Vec<&str> = wire
                    .response_header("vary")
                    .unwrap()
                    .split(['\n', ','])
                    .map(str::trim)
                    .collect();
                assert_eq!(vary, ["Accept-Encoding", "Origin"]);
                assert_eq!(s.header("x-secret"), None);
                assert!(s.header("x-request-id").is_some());
            }),
        Scenario::new("upstream-reflecting-refused-origin", &env.other_port())
            .then(
                gw.fetch("/upstream-cors/reflect-refused")
                    .include()
                    .blocked(NO_ACAO),
            )
            .check(|o| assert_eq!(o.step(0).actual()[0].cors_lines(), [])),
        Scenario::new("upstream-reflecting-preflight-answered-here", &app)
            .then(
                gw.fetch("/upstream-cors/reflect-put")
                    .method("PUT")
                    .include()
                    .blocked(PREFLIGHT_NO_ACAO),
            )
            .check(|o| assert_untouched(o, "/upstream-cors/reflect-put")),
        Scenario::new("upstream-star-overruled", &app)
            .then(gw.fetch("/upstream-cors/star").include().allowed(200))
            .check(|o| {
                // The upstream sent `*` and another origin; the page sees one
                // line, its own origin, and the route's exposed list.
                let wire = o.step(0).actual()[0];
                assert_eq!(
                    wire.cors_lines(),
                    [
                        ("access-control-allow-credentials".into(), "true".into()),
                        (
                            "access-control-allow-origin".into(),
                            o.scenario.page.clone()
                        ),
                        (
                            "access-control-expose-headers".into(),
                            "x-request-id".into()
                        ),
                    ]
                );
            }),
        Scenario::new("redirect-followed", &app)
            .then(gw.fetch("/redirect/get/start").allowed(200))
            .check(|o| {
                let s = o.step(0);
                assert_eq!(s.field("redirected"), true);
                assert!(
                    s.field("url")
                        .as_str()
                        .unwrap()
                        .ends_with("/redirect/get/end")
                );
                let hops = s.actual();
                assert_eq!(hops.len(), 2, "the redirect and its target");
                assert_eq!(hops[0].status(), Some(302));
                assert_eq!(
                    hops[0].response_header("access-control-allow-origin"),
                    Some(o.scenario.page.as_str()),
                    "the redirect itself passes the CORS check"
                );
                assert_eq!(methods(o, "/redirect/get/"), ["GET", "GET"]);
            }),
        Scenario::new("redirect-preflighted-put-followed", &app)
            .then(
                gw.fetch("/redirect/put/put-start")
                    .method("PUT")
                    .header("x-api-key", "k")
                    .allowed(200),
            )
            .check(|o| {
                let s = o.step(0);
                assert!(
                    s.field("url")
                        .as_str()
                        .unwrap()
                        .ends_with("/redirect/put/end")
                );
                let preflights = s.preflights();
                assert!(!preflights.is_empty());
                for p in &preflights {
                    assert_eq!(p.status(), Some(204), "answered by the gateway");
                    assert_eq!(p.redirected_to(), None, "a preflight is never redirected");
                }
                let seen = o.upstream("/redirect/put/");
                let paths: Vec<_> = seen
                    .iter()
                    .map(|s| format!("{} {}", s.method, s.uri.path()))
                    .collect();
                assert_eq!(
                    paths,
                    ["PUT /redirect/put/put-start", "PUT /redirect/put/end"]
                );
            }),
        // Local Network Access: a page in the public address space that is not
        // a secure context may not reach loopback at all, whatever the server
        // answers; even allow_private_network (the legacy Private Network
        // Access header) cannot help. Nothing is sent: not even the preflight.
        // explain has no input for where the page is served from: it predicts
        // the CORS outcome alone, which is "allowed" (`*` covers `null`), with a
        // note on Local Network Access (tests/explain.rs checks the note).
        // Firefox 153 ESR does not enforce Local Network Access: the CORS
        // outcome is all there is, and it is what explain predicts. Nor does
        // WebKitGTK 2.50.
        Scenario::opaque("local-network-access-opaque-page")
            .then(
                gw.fetch("/private-network/get")
                    .explain_verdict("allowed")
                    .except(Engine::Firefox, Expect::Allowed(200))
                    .except(Engine::Webkit, Expect::Allowed(200))
                    .blocked("InsecureLocalNetwork"),
            )
            .then(
                gw.fetch("/private-network/put")
                    .method("PUT")
                    .explain_verdict("allowed")
                    .except(Engine::Firefox, Expect::Allowed(200))
                    .except(Engine::Webkit, Expect::Allowed(200))
                    .blocked("InsecureLocalNetwork"),
            )
            .check(|o| {
                if o.engine() == Engine::Firefox {
                    // corsgate answered the preflight itself.
                    assert_eq!(o.step(1).preflights().len(), 1);
                    assert_eq!(methods(o, "/private-network/"), ["GET", "PUT"]);
                    return;
                }
                // WebKit: the gateway answers the preflight itself.
                if o.engine() == Engine::Webkit {
                    assert_eq!(o.step(1).preflights()[0].status(), Some(204));
                    assert_eq!(methods(o, "/private-network/"), ["GET", "PUT"]);
                    return;
                }
                let message = o.step(0).cors_messages(Engine::Chromium)[0];
                assert!(
                    message.ends_with(
                        "The request client is not a secure context and the resource \
                         is in more-private address space `loopback`."
                    ),
                    "{message}"
                );
                assert_untouched(o, "/private-network/");
            }),
        Scenario::new("reject-refused-origin", &env.other_port())
            .then(gw.fetch("/reject/refused").blocked(NO_ACAO))
            .check(|o| {
                assert_eq!(o.step(0).actual()[0].status(), Some(403));
                assert_untouched(o, "/reject/refused");
            }),
        Scenario::new("reject-allowed-origin", &app)
            .then(gw.fetch("/reject/allowed").allowed(200))
            .check(|o| assert_eq!(methods(o, "/reject/allowed"), ["GET"])),
    ]
}

fn websocket_and_reload(env: &Env, engine: Engine) -> Vec<Scenario> {
    let gw = env.gw("main");
    let reload = env.gw(&reload_gateway(engine));
    let before = env.dir.join("reload-before.toml");
    let plan = reload_plan(env, engine);
    let put = |config: &Path| {
        reload
            .fetch("/api/reload")
            .method("PUT")
            .header("x-api-key", "k")
            .explained_by(config)
    };
    vec![
        Scenario::new("websocket-allowed", &env.app())
            .then(Step::websocket(&gw.ws("/ws/echo"), "ping"))
            .check(|o| {
                let s = o.step(0);
                assert_eq!(s.field("opened"), true, "{:?}", s.0);
                assert_eq!(s.field("received"), "ping", "echoed through the gateway");
            }),
        Scenario::new("websocket-refused", &env.other_port())
            .then(Step::websocket(&gw.ws("/ws/echo"), "ping"))
            .check(|o| {
                let s = o.step(0);
                assert_eq!(s.field("opened"), false);
                let console = s.console();
                let url = o.env.gw("main").ws("/ws/echo");
                let says = match o.engine() {
                    Engine::Firefox => {
                        format!("Firefox can’t establish a connection to the server at {url}.")
                    }
                    Engine::Webkit => format!(
                        "WebSocket connection to '{url}' failed: The server did not accept the \
                         WebSocket handshake."
                    ),
                    _ => format!(
                        "WebSocket connection to '{url}' failed: Error during WebSocket handshake: \
                         Unexpected response code: 403"
                    ),
                };
                assert!(console.iter().any(|m| *m == says), "{console:?}");
            }),
        Scenario::new("hot-reload-origin-added", &env.other_port())
            .then(put(&before).blocked(PREFLIGHT_NO_ACAO))
            .then(Step::signal(&plan.phase_one))
            .then(Step::wait_for(&plan.reloaded, Duration::from_secs(10)))
            .then(put(&plan.file).allowed(200))
            .check(|o| {
                assert_eq!(o.step(2).field("ok"), true, "the reload did not happen");
                assert_eq!(methods(o, "/api/reload"), ["PUT"]);
            }),
    ]
}
