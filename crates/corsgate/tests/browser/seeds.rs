//! The three CORS guides corsgate grew from: every configuration example they
//! show, as corsgate configuration (the `check` fixtures in
//! `tests/fixtures/check/`), behaves in Chromium as the guide says.
//!
//! The fixtures name the guides' https origins and ports; here they run on
//! loopback: `https://HOST` becomes `http://HOST.localhost:A` (Chromium resolves
//! every `*.localhost` name to loopback itself), the dev-server ports 3000 and
//! 5173/8081 become the two page ports, and every upstream is the spy.

use std::path::{Path, PathBuf};

use crate::harness::{Mode, Run, Scenario};
use crate::servers::Env;

const PREFLIGHT_NO_ACAO: &str = "PreflightMissingAllowOriginHeader";
const NO_ACAO: &str = "MissingAllowOriginHeader";

pub(crate) fn fixture_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/check")
        .join(kind)
}

/// The guides' examples that `corsgate check` accepts, by name.
pub(crate) fn valid_fixtures() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(fixture_dir("valid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_str().unwrap().to_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// A guide's origin as the suite serves it.
pub(crate) fn origin(env: &Env, guide_origin: &str) -> String {
    match guide_origin {
        "http://localhost:3000" => format!("http://localhost:{}", env.a),
        "http://localhost:5173" | "http://localhost:8081" => {
            format!("http://localhost:{}", env.b)
        }
        "http://127.0.0.1:3000" => format!("http://127.0.0.1:{}", env.a),
        other => match other.strip_prefix("https://") {
            Some(host) => format!("http://{host}.localhost:{}", env.a),
            None => other.to_owned(),
        },
    }
}

/// A fixture rewritten for loopback: addresses, upstreams and origins.
fn translate(env: &Env, text: &str) -> String {
    let spy = env.spy.url();
    let mut out = String::new();
    if !text.lines().any(|l| l.trim() == "[server]") {
        // Never the default 127.0.0.1:8080.
        out.push_str("[server]\nlisten = \"127.0.0.1:0\"\n\n");
    }
    for line in text.lines() {
        let key = line.trim_start();
        if key.starts_with("upstream ") || key.starts_with("upstream=") {
            out.push_str(&format!("upstream = \"{spy}\"\n"));
        } else if key.starts_with("listen ") || key.starts_with("listen=") {
            out.push_str("listen = \"127.0.0.1:0\"\n");
        } else {
            // Every other quoted string that is an origin of the guides.
            let mut rest = line;
            while let Some(start) = rest.find('"') {
                out.push_str(&rest[..=start]);
                rest = &rest[start + 1..];
                let end = rest.find('"').unwrap_or(rest.len());
                out.push_str(&origin(env, &rest[..end]));
                rest = &rest[end..];
                if let Some(stripped) = rest.strip_prefix('"') {
                    out.push('"');
                    rest = stripped;
                }
            }
            out.push_str(rest);
            out.push('\n');
        }
    }
    out
}

pub(crate) async fn start_gateways(env: &mut Env) {
    for (name, text) in valid_fixtures() {
        let translated = translate(env, &text);
        env.add_gateway(&format!("seed-{name}"), &translated).await;
    }
}

pub(crate) fn all(env: &Env, run: Run) -> Vec<Scenario> {
    if run.mode != Mode::Default {
        return Vec::new();
    }
    let mut list = Vec::new();
    list.extend(license_monitor(env));
    list.extend(nexus(env));
    list.extend(olympus(env));
    // Each example of the guides is exercised.
    for (name, _) in valid_fixtures() {
        let prefix = format!("seed-{name}-");
        assert!(
            list.iter().any(|s| s.name.starts_with(&prefix)),
            "no browser scenario for the guides' example {name}"
        );
    }
    list
}

fn license_monitor(env: &Env) -> Vec<Scenario> {
    let lm = env.gw("seed-license-monitor");
    let dashboard = origin(env, "https://dashboard.example.com");
    let admin = origin(env, "https://admin.example.com");
    let dev = env.gw("seed-license-monitor-local-dev");
    let post = |path: &str| {
        lm.fetch(path)
            .method("POST")
            .header("x-api-key", "k")
            .json("{\"seats\":5}")
            .include()
            .allowed(200)
    };
    vec![
        // The guide's "test CORS from the browser console" snippet.
        Scenario::new("seed-license-monitor-console-test", &dashboard)
            .then(
                lm.fetch("/api/health")
                    .header("X-API-Key", "your-api-key")
                    .include()
                    .read(&["x-request-id"])
                    .allowed(200),
            )
            .check(|o| {
                let s = o.step(0);
                assert_eq!(s.preflights().len(), 1);
                assert!(
                    s.header("x-request-id").is_some(),
                    "X-Request-ID is exposed"
                );
            }),
        Scenario::new("seed-license-monitor-post-cached", &dashboard)
            .then(post("/api/licenses"))
            .then(post("/api/licenses"))
            .check(|o| {
                assert_eq!(o.step(0).preflights().len(), 1);
                let again = usize::from(!crate::harness::caches_preflights(o.engine()));
                assert_eq!(o.step(1).preflights().len(), again, "max_age = 86400");
            }),
        // "Method ... is not allowed": PUT is not in cors_methods.
        Scenario::new("seed-license-monitor-put-refused", &dashboard).then(
            lm.fetch("/api/licenses/1")
                .method("PUT")
                .include()
                .blocked(PREFLIGHT_NO_ACAO),
        ),
        // "No 'Access-Control-Allow-Origin' header": the origin is not listed.
        Scenario::new(
            "seed-license-monitor-unknown-origin",
            &env.named("evil.example"),
        )
        .then(lm.fetch("/api/health-unknown").blocked(NO_ACAO)),
        // The stricter override for /api/admin.
        Scenario::new("seed-license-monitor-admin-override-refused", &dashboard)
            .then(lm.fetch("/api/admin/users-d").include().blocked(NO_ACAO)),
        Scenario::new("seed-license-monitor-admin-override-allowed", &admin)
            .then(lm.fetch("/api/admin/users-a").include().allowed(200)),
        // Local development: three dev servers, exactly.
        Scenario::new(
            "seed-license-monitor-local-dev-localhost-3000",
            &env.localhost(),
        )
        .then(dev.fetch("/api/dev-1").allowed(200)),
        Scenario::new(
            "seed-license-monitor-local-dev-localhost-5173",
            &env.localhost_b(),
        )
        .then(dev.fetch("/api/dev-2").allowed(200)),
        Scenario::new("seed-license-monitor-local-dev-127-3000", &env.app())
            .then(dev.fetch("/api/dev-3").allowed(200)),
        Scenario::new(
            "seed-license-monitor-local-dev-127-5173-refused",
            &env.other_port(),
        )
        .then(dev.fetch("/api/dev-4").blocked(NO_ACAO)),
    ]
}

fn nexus(env: &Env) -> Vec<Scenario> {
    let development = env.gw("seed-nexus-development");
    let mobile = env.gw("seed-nexus-mobile-dev");
    let production = env.gw("seed-nexus-production");
    let anyone = env.named("anyone.example");
    let app = origin(env, "https://app.yourdomain.com");
    let spa = origin(env, "https://spa.example.com");
    vec![
        // "Allow all origins during development".
        Scenario::new("seed-nexus-development-any-origin-put", &anyone)
            .then(
                development
                    .fetch("/nexus-dev/put")
                    .method("PUT")
                    .header("x-custom", "1")
                    .json("{}")
                    .allowed(200),
            )
            .check(|o| {
                let wire = o.step(0).actual();
                assert_eq!(
                    wire[0].response_header("access-control-allow-origin"),
                    Some("*")
                );
            }),
        // The guide has allow_headers = "*" allow every header; the Fetch
        // standard never lets it cover Authorization, and neither does corsgate.
        Scenario::new("seed-nexus-development-authorization-refused", &anyone).then(
            development
                .fetch("/nexus-dev/authorization")
                .header("authorization", "Bearer token")
                .blocked(PREFLIGHT_NO_ACAO),
        ),
        Scenario::new("seed-nexus-development-credentials-refused", &anyone).then(
            development
                .fetch("/nexus-dev/credentials")
                .include()
                .blocked("WildcardOriginNotAllowed"),
        ),
        // Local development with mobile origins (web and React Native here).
        Scenario::new("seed-nexus-mobile-dev-web", &env.localhost()).then(
            mobile
                .fetch("/nexus-mobile/web")
                .method("POST")
                .header("authorization", "Bearer token")
                .json("{}")
                .include()
                .allowed(200),
        ),
        Scenario::new("seed-nexus-mobile-dev-react-native", &env.localhost_b())
            .then(mobile.fetch("/nexus-mobile/rn").include().allowed(200)),
        Scenario::new("seed-nexus-mobile-dev-unlisted", &env.app())
            .then(mobile.fetch("/nexus-mobile/unlisted").blocked(NO_ACAO)),
        // The guide's fetch example: JSON, Authorization, cookies.
        Scenario::new("seed-nexus-production-chat-completions", &app)
            .then(
                production
                    .fetch("/llm/v1/chat/completions")
                    .method("POST")
                    .header("authorization", "Bearer token")
                    .json("{\"model\":\"openai/gpt-4\"}")
                    .include()
                    .read(&["x-request-id"])
                    .allowed(200),
            )
            .check(|o| assert!(o.step(0).header("x-request-id").is_some())),
        Scenario::new("seed-nexus-production-llm-put-refused", &app).then(
            production
                .fetch("/llm/v1/models")
                .method("PUT")
                .include()
                .blocked(PREFLIGHT_NO_ACAO),
        ),
        // "Configuration for a typical SPA".
        Scenario::new("seed-nexus-production-spa-put", &spa)
            .then(
                production
                    .fetch("/spa-api/items/1")
                    .method("PUT")
                    .header("x-csrf-token", "t")
                    .header("authorization", "Bearer token")
                    .include()
                    .read(&["x-total-count", "x-secret"])
                    .allowed(200),
            )
            .check(|o| {
                assert_eq!(o.step(0).header("x-total-count"), Some("42"));
                assert_eq!(o.step(0).header("x-secret"), None);
            }),
        Scenario::new("seed-nexus-production-spa-header-refused", &spa).then(
            production
                .fetch("/spa-api/items/2")
                .method("DELETE")
                .header("x-other", "1")
                .include()
                .blocked(PREFLIGHT_NO_ACAO),
        ),
        Scenario::new("seed-nexus-production-spa-route-refuses-app", &app).then(
            production
                .fetch("/spa-api/items")
                .include()
                .blocked(NO_ACAO),
        ),
    ]
}

fn olympus(env: &Env) -> Vec<Scenario> {
    let identity = env.gw("seed-olympus-identity");
    let spa_api = env.gw("seed-olympus-spa-api");
    let anyone = env.named("anyone.example");
    let my_spa = origin(env, "https://my-spa.com");
    let staging = origin(env, "https://staging.my-spa.com");
    let custom_ui = origin(env, "https://your-custom-ui.com");
    let form = "application/x-www-form-urlencoded";
    vec![
        // Public OAuth2 metadata: `*`, for everyone, without credentials.
        Scenario::new("seed-olympus-identity-jwks-public", &anyone)
            .then(identity.fetch("/.well-known/jwks.json").allowed(200))
            .check(|o| {
                assert_eq!(
                    o.step(0).actual()[0].response_header("access-control-allow-origin"),
                    Some("*")
                );
            }),
        Scenario::new("seed-olympus-identity-metadata-with-credentials", &anyone).then(
            identity
                .fetch("/.well-known/openid-configuration")
                .include()
                .blocked("WildcardOriginNotAllowed"),
        ),
        // Per-client endpoints: the registered SPA only.
        Scenario::new("seed-olympus-identity-token-from-spa", &my_spa)
            .then(
                identity
                    .fetch("/oauth2/token")
                    .method("POST")
                    .body(form, "grant_type=authorization_code")
                    .include()
                    .allowed(200),
            )
            .check(|o| assert_eq!(o.step(0).preflights().len(), 0, "a simple POST")),
        Scenario::new("seed-olympus-identity-token-from-other", &anyone).then(
            identity
                .fetch("/oauth2/token")
                .method("POST")
                .body(form, "grant_type=authorization_code")
                .blocked(NO_ACAO),
        ),
        Scenario::new("seed-olympus-identity-userinfo", &my_spa)
            .then(
                identity
                    .fetch("/userinfo")
                    .header("authorization", "Bearer at")
                    .include()
                    .allowed(200),
            )
            .check(|o| assert_eq!(o.step(0).preflights().len(), 1)),
        // A custom UI on the public API (the Kratos example).
        Scenario::new("seed-olympus-identity-custom-ui-login", &custom_ui).then(
            identity
                .fetch("/self-service/login")
                .method("POST")
                .header("authorization", "Bearer at")
                .json("{}")
                .include()
                .allowed(200),
        ),
        Scenario::new("seed-olympus-identity-custom-ui-put-refused", &custom_ui).then(
            identity
                .fetch("/self-service/settings")
                .method("PUT")
                .include()
                .blocked(PREFLIGHT_NO_ACAO),
        ),
        // The login UI: same origin only, CORS closed.
        Scenario::new("seed-olympus-identity-login-ui-closed", &my_spa)
            .then(identity.fetch("/login-ui").blocked(NO_ACAO)),
        // SPA + separate API: the allowlist, never a reflected origin.
        Scenario::new("seed-olympus-spa-api-spa", &my_spa)
            .then(spa_api.fetch("/api/me-spa").include().allowed(200)),
        Scenario::new("seed-olympus-spa-api-staging", &staging)
            .then(spa_api.fetch("/api/me-staging").include().allowed(200)),
        Scenario::new("seed-olympus-spa-api-other", &anyone)
            .then(spa_api.fetch("/api/me-other").include().blocked(NO_ACAO)),
    ]
}
