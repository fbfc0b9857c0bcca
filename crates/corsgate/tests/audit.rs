//! `corsgate audit` against servers on loopback: one that makes each mistake on
//! purpose, corsgate's own tower layer (which must come out clean), nginx with
//! the license-monitoring guide's configurations, and the bounds (request count,
//! timeouts).

#[path = "audit/server.rs"]
mod server;
mod support;

use std::time::Duration;

use corsgate::cmd::audit::{self, Options, Report, Severity};
use corsgate_policy::{CorsConfig, Policy};
use server::{Mistakes, TRUSTED};
use support::binary::Cmd;

fn options(url: &str, origins: &[&str]) -> Options {
    let mut options = Options::new(url);
    options.origins = origins.iter().map(|o| (*o).to_owned()).collect();
    options.timeout = Duration::from_secs(3);
    options
}

async fn audit_with(mistakes: Mistakes, origins: &[&str]) -> Report {
    let server = server::vulnerable(mistakes).await;
    audit::audit(&options(&server.url(), origins))
        .await
        .unwrap()
}

fn ids(report: &Report) -> Vec<(&'static str, Severity)> {
    report.findings.iter().map(|f| (f.id, f.severity)).collect()
}

/// The findings at or above low, with their details, for assertion messages.
fn at_or_above_low(report: &Report) -> Vec<(&'static str, Severity, String)> {
    report
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::Low)
        .map(|f| (f.id, f.severity, f.detail.clone()))
        .collect()
}

fn assert_finding(report: &Report, id: &str, severity: Severity) {
    let found = report.findings.iter().find(|f| f.id == id);
    let Some(found) = found else {
        panic!("no {id} in {:?}\nnotes: {:?}", ids(report), report.notes);
    };
    assert_eq!(found.severity, severity, "{id}: {:?}", ids(report));
    assert!(!found.evidence.is_empty(), "{id} without evidence");
    assert!(!found.fix.is_empty());
}

/// One row per mistake: the server's mistakes, the `--origin`s, and the finding
/// (with its severity) the audit must report.
fn cases() -> Vec<(
    &'static str,
    Mistakes,
    Vec<&'static str>,
    &'static str,
    Severity,
)> {
    let m = Mistakes::default;
    vec![
        (
            "reflection",
            Mistakes {
                reflect_any: true,
                ..m()
            },
            vec![],
            "reflected-origin",
            Severity::High,
        ),
        (
            "reflection with credentials",
            Mistakes {
                reflect_any: true,
                credentials: true,
                ..m()
            },
            vec![TRUSTED],
            "reflected-origin",
            Severity::Critical,
        ),
        (
            "null",
            Mistakes { null: true, ..m() },
            vec![TRUSTED],
            "null-origin",
            Severity::High,
        ),
        (
            "null with credentials",
            Mistakes {
                null: true,
                credentials: true,
                ..m()
            },
            vec![TRUSTED],
            "null-origin",
            Severity::Critical,
        ),
        (
            "starts-with",
            Mistakes {
                starts_with: true,
                ..m()
            },
            vec![TRUSTED],
            "origin-prefix-match",
            Severity::High,
        ),
        (
            "starts-with with credentials",
            Mistakes {
                starts_with: true,
                credentials: true,
                ..m()
            },
            vec![TRUSTED],
            "origin-prefix-match",
            Severity::Critical,
        ),
        (
            "special characters",
            Mistakes {
                special_after_host: true,
                ..m()
            },
            vec![TRUSTED],
            "origin-special-characters",
            Severity::High,
        ),
        (
            "special characters with credentials",
            Mistakes {
                special_after_host: true,
                credentials: true,
                ..m()
            },
            vec![TRUSTED],
            "origin-special-characters",
            Severity::Critical,
        ),
        (
            "ends-with",
            Mistakes {
                ends_with_domain: true,
                ..m()
            },
            vec![TRUSTED],
            "origin-suffix-match",
            Severity::High,
        ),
        (
            "ends-with with credentials",
            Mistakes {
                ends_with_domain: true,
                credentials: true,
                ..m()
            },
            vec![TRUSTED],
            "origin-suffix-match",
            Severity::Critical,
        ),
        (
            "scheme ignored",
            Mistakes {
                any_scheme: true,
                ..m()
            },
            vec![TRUSTED],
            "scheme-downgrade",
            Severity::Medium,
        ),
        (
            "scheme ignored with credentials",
            Mistakes {
                any_scheme: true,
                credentials: true,
                ..m()
            },
            vec![TRUSTED],
            "scheme-downgrade",
            Severity::Critical,
        ),
        (
            "port ignored",
            Mistakes {
                any_port: true,
                ..m()
            },
            vec![TRUSTED],
            "port-confusion",
            Severity::Medium,
        ),
        (
            "port ignored with credentials",
            Mistakes {
                any_port: true,
                credentials: true,
                ..m()
            },
            vec![TRUSTED],
            "port-confusion",
            Severity::Critical,
        ),
        (
            "port ignored on loopback",
            Mistakes {
                allowed: vec!["http://localhost:3000"],
                any_port: true,
                credentials: true,
                ..m()
            },
            vec!["http://localhost:3000"],
            "port-confusion",
            Severity::Low,
        ),
        (
            "any subdomain",
            Mistakes {
                subdomains: true,
                ..m()
            },
            vec![TRUSTED],
            "any-subdomain",
            Severity::Info,
        ),
        (
            "any subdomain with credentials",
            Mistakes {
                subdomains: true,
                credentials: true,
                ..m()
            },
            vec![TRUSTED],
            "any-subdomain",
            Severity::Low,
        ),
        (
            "* with credentials",
            Mistakes {
                wildcard: true,
                credentials: true,
                ..m()
            },
            vec![TRUSTED],
            "wildcard-with-credentials",
            Severity::Medium,
        ),
        (
            "*",
            Mistakes {
                wildcard: true,
                ..m()
            },
            vec![],
            "wildcard-origin",
            Severity::Info,
        ),
        (
            "headers *",
            Mistakes {
                headers_wildcard: true,
                ..m()
            },
            vec![TRUSTED],
            "authorization-wildcard",
            Severity::Low,
        ),
        (
            "two ACAO lines",
            Mistakes {
                duplicate_lines: true,
                ..m()
            },
            vec![TRUSTED],
            "duplicate-cors-header",
            Severity::Medium,
        ),
        (
            "ACAO list",
            Mistakes {
                comma_list: true,
                ..m()
            },
            vec![TRUSTED],
            "duplicate-cors-header",
            Severity::Medium,
        ),
        (
            "no Vary",
            Mistakes { vary: false, ..m() },
            vec![TRUSTED],
            "missing-vary-origin",
            Severity::Medium,
        ),
        (
            "preflight redirected",
            Mistakes {
                preflight_status: 302,
                ..m()
            },
            vec![TRUSTED],
            "preflight-redirect",
            Severity::Medium,
        ),
        (
            "preflight needs auth (401)",
            Mistakes {
                preflight_status: 401,
                ..m()
            },
            vec![TRUSTED],
            "preflight-requires-authentication",
            Severity::Medium,
        ),
        (
            "preflight needs auth (403)",
            Mistakes {
                preflight_status: 403,
                ..m()
            },
            vec![TRUSTED],
            "preflight-requires-authentication",
            Severity::Medium,
        ),
        (
            "preflight 500",
            Mistakes {
                preflight_status: 500,
                ..m()
            },
            vec![TRUSTED],
            "preflight-failed",
            Severity::Medium,
        ),
        (
            "preflight 405",
            Mistakes {
                preflight_status: 405,
                ..m()
            },
            vec![TRUSTED],
            "preflight-failed",
            Severity::Medium,
        ),
        (
            "max-age above Chromium",
            Mistakes {
                max_age: Some("86400"),
                ..m()
            },
            vec![TRUSTED],
            "max-age-above-cap",
            Severity::Info,
        ),
        (
            "max-age above all",
            Mistakes {
                max_age: Some("604800"),
                ..m()
            },
            vec![TRUSTED],
            "max-age-above-cap",
            Severity::Low,
        ),
        (
            "max-age not a number",
            Mistakes {
                max_age: Some("1d"),
                ..m()
            },
            vec![TRUSTED],
            "max-age-above-cap",
            Severity::Low,
        ),
        (
            "no CORS on errors",
            Mistakes {
                cors_on_errors: false,
                ..m()
            },
            vec![TRUSTED],
            "cors-missing-on-errors",
            Severity::Low,
        ),
    ]
}

#[tokio::test]
async fn every_mistake_is_found_with_its_severity() {
    for (name, mistakes, origins, id, severity) in cases() {
        let report = audit_with(mistakes, &origins).await;
        let found = report.findings.iter().find(|f| f.id == id);
        assert!(
            found.is_some_and(|f| f.severity == severity),
            "case {name:?}: expected {id} ({severity:?}), got {:?}; notes {:?}",
            ids(&report),
            report.notes
        );
    }
}

#[test]
fn every_finding_kind_has_a_case() {
    let covered: Vec<&str> = cases().iter().map(|c| c.3).collect();
    for id in audit::FINDING_IDS {
        assert!(covered.contains(id), "no vulnerable server produces {id}");
    }
}

#[tokio::test]
async fn a_correct_hand_written_server_has_no_findings() {
    let report = audit_with(
        Mistakes {
            credentials: true,
            ..Mistakes::default()
        },
        &[TRUSTED],
    )
    .await;
    assert!(report.findings.is_empty(), "{:?}", ids(&report));
}

#[tokio::test]
async fn evidence_is_the_exact_request_and_the_proving_headers() {
    let report = audit_with(
        Mistakes {
            reflect_any: true,
            credentials: true,
            ..Mistakes::default()
        },
        &[],
    )
    .await;
    assert_finding(&report, "reflected-origin", Severity::Critical);
    let finding = &report.findings[0];
    let exchange = &finding.evidence[0];
    assert_eq!(exchange.request.method, "GET");
    assert_eq!(exchange.request.target, server::PATH);
    let origin = &exchange
        .request
        .headers
        .iter()
        .find(|(n, _)| n == "origin")
        .unwrap()
        .1;
    assert!(origin.starts_with("https://evil-"), "{origin}");
    assert_eq!(exchange.response.allow_origin(), Some(origin.as_str()));
    assert!(exchange.response.allows_credentials());
    // Reflection implies every look-alike: they are not probed one by one.
    assert!(!report.has("origin-prefix-match"));
}

#[tokio::test]
async fn without_origin_a_trusted_one_is_derived_or_the_gap_is_reported() {
    let report = audit_with(
        Mistakes {
            hard_coded: Some("https://dashboard.example.com"),
            ..Mistakes::default()
        },
        &[],
    )
    .await;
    assert_eq!(report.trusted_origins.len(), 1);
    assert_eq!(
        report.trusted_origins[0].origin,
        "https://dashboard.example.com"
    );
    assert_eq!(report.trusted_origins[0].source, "derived");

    let report = audit_with(Mistakes::default(), &[]).await;
    assert!(report.trusted_origins.is_empty());
    assert!(
        report.notes.iter().any(|n| n.contains("pass --origin")),
        "{:?}",
        report.notes
    );
}

fn corsgate_policies() -> Vec<(&'static str, Policy)> {
    vec![
        (
            "credentialed allowlist",
            Policy::compile(
                &CorsConfig::new()
                    .allow_origins([TRUSTED, "https://admin.example.com"])
                    .allow_methods(["PUT", "DELETE"])
                    .allow_headers(["content-type", "authorization"])
                    .expose_headers("x-request-id")
                    .allow_credentials(true)
                    .max_age(600),
            )
            .unwrap(),
        ),
        (
            "allowlist with reject",
            Policy::compile(
                &CorsConfig::new()
                    .allow_origins(TRUSTED)
                    .allow_headers(["authorization", "*"])
                    .on_disallowed(corsgate_policy::OnDisallowed::Reject),
            )
            .unwrap(),
        ),
        (
            "subdomain pattern without credentials",
            Policy::compile(&CorsConfig::new().allow_origins(["https://*.example.com"])).unwrap(),
        ),
        (
            "public",
            Policy::compile(&CorsConfig::new().allow_origins("*").allow_headers("*")).unwrap(),
        ),
    ]
}

/// corsgate itself: nothing at or above low, whatever the policy.
#[tokio::test]
async fn corsgate_has_no_findings_at_or_above_low() {
    for (name, policy) in corsgate_policies() {
        for origins in [vec![TRUSTED], vec![]] {
            let server = server::corsgate(policy.clone()).await;
            let mut opts = options(&server.url(), &origins);
            opts.methods = vec!["POST".into(), "PUT".into()];
            opts.headers = vec!["Authorization: Bearer test".into()];
            let report = audit::audit(&opts).await.unwrap();
            let serious = at_or_above_low(&report);
            assert!(serious.is_empty(), "{name} {origins:?}: {serious:#?}");
        }
    }
}

/// The gateway in front of an application that makes most of the mistakes at
/// once: the audit of the gateway's address finds nothing at or above low,
/// because corsgate answers the preflights and owns every CORS header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_in_front_of_a_vulnerable_app_has_no_findings_at_or_above_low() {
    let app = server::vulnerable(Mistakes {
        reflect_any: true,
        null: true,
        credentials: true,
        headers_wildcard: true,
        duplicate_lines: true,
        vary: false,
        preflight_status: 401,
        max_age: Some("999999"),
        cors_on_errors: false,
        ..Mistakes::default()
    })
    .await;
    // The application alone is as bad as it looks.
    let direct = audit::audit(&options(&app.url(), &[TRUSTED]))
        .await
        .unwrap();
    assert_finding(&direct, "reflected-origin", Severity::Critical);
    assert_finding(&direct, "null-origin", Severity::Critical);

    let upstream = app.url().trim_end_matches(server::PATH).to_owned();
    let gw = support::Gw::start(&support::config(
        "",
        &format!(
            "allow_origins = [\"{TRUSTED}\"]\n\
             allow_methods = [\"PUT\", \"DELETE\"]\n\
             allow_headers = [\"content-type\", \"authorization\"]\n\
             allow_credentials = true\n\
             max_age = 600"
        ),
        &support::route("/", &upstream, ""),
    ))
    .await;
    let requests_before = app.requests();
    let mut opts = options(&gw.url(server::PATH), &[TRUSTED]);
    opts.methods = vec!["PUT".into()];
    opts.headers = vec!["Authorization: Bearer test".into()];
    let report = audit::audit(&opts).await.unwrap();
    let serious = at_or_above_low(&report);
    assert!(serious.is_empty(), "{serious:#?}");
    // The audit's actual requests went through to the application.
    assert!(app.requests() > requests_before);
}

#[tokio::test]
async fn max_requests_is_respected_server_side() {
    for max in [1, 3, 7] {
        let server = server::vulnerable(Mistakes::default()).await;
        let mut opts = options(&server.url(), &[TRUSTED]);
        opts.max_requests = max;
        let report = audit::audit(&opts).await.unwrap();
        assert_eq!(report.requests_sent, max);
        assert_eq!(server.requests(), max, "max {max}");
        assert!(
            report.notes.iter().any(|n| n.contains("--max-requests")),
            "{:?}",
            report.notes
        );
    }
    // The default budget covers a full audit with one origin.
    let server = server::vulnerable(Mistakes::default()).await;
    let report = audit::audit(&options(&server.url(), &[TRUSTED]))
        .await
        .unwrap();
    assert!(report.requests_sent <= audit::DEFAULT_MAX_REQUESTS);
    assert_eq!(server.requests(), report.requests_sent);
    assert!(
        !report.notes.iter().any(|n| n.contains("--max-requests")),
        "{:?}",
        report.notes
    );
}

#[tokio::test]
async fn a_server_that_never_answers_ends_the_audit_within_the_timeout() {
    let server = server::vulnerable(Mistakes {
        never_answer: true,
        ..Mistakes::default()
    })
    .await;
    let mut opts = options(&server.url(), &[TRUSTED]);
    opts.timeout = Duration::from_millis(500);
    // Without its timeout the audit would wait forever: WAIT is a hang guard.
    let err = tokio::time::timeout(support::WAIT, audit::audit(&opts))
        .await
        .expect("the audit did not end")
        .unwrap_err();
    assert!(
        err.to_string().contains("no answer within the timeout"),
        "{err}"
    );
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn usage_errors() {
    for (url, origins, why) in [
        ("https://127.0.0.1:1/api", vec![], "https is not supported"),
        ("ftp://127.0.0.1/", vec![], "must start with http://"),
        (
            "http://127.0.0.1:1/",
            vec!["https://*.example.com"],
            "no wildcard",
        ),
        (
            "http://127.0.0.1:1/",
            vec!["https://app.example.com/"],
            "use \"https://app.example.com\"",
        ),
    ] {
        let err = audit::audit(&options(url, &origins)).await.unwrap_err();
        assert!(format!("{err:#}").contains(why), "{url}: {err:#}");
    }
}

/// The binary in its own thread, while this test's runtime keeps serving.
async fn run_bin(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let ran = Cmd::new(args).run();
        (ran.code.unwrap_or(-1), ran.stdout, ran.stderr)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_exit_codes_and_json() {
    let server = server::vulnerable(Mistakes {
        reflect_any: true,
        credentials: true,
        ..Mistakes::default()
    })
    .await;
    let url = server.url();
    let (code, stdout, _) = run_bin(vec!["audit".into(), url.clone()]).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("[critical] reflected-origin"), "{stdout}");
    assert!(stdout.contains("    > origin: https://evil-"), "{stdout}");

    let (code, stdout, _) = run_bin(vec![
        "audit".into(),
        url.clone(),
        "--format".into(),
        "json".into(),
    ])
    .await;
    assert_eq!(code, 1);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["failed"], true);
    assert_eq!(json["findings"][0]["id"], "reflected-origin");
    assert_eq!(json["findings"][0]["severity"], "critical");
    assert_eq!(
        json["findings"][0]["evidence"][0]["request"]["method"],
        "GET"
    );

    // Only info and low findings: clean at the default --fail-on high, not at low.
    let server = server::vulnerable(Mistakes {
        cors_on_errors: false,
        max_age: Some("86400"),
        ..Mistakes::default()
    })
    .await;
    let url = server.url();
    let base = vec![
        "audit".to_owned(),
        url.clone(),
        "--origin".into(),
        TRUSTED.into(),
    ];
    let (code, stdout, _) = run_bin(base.clone()).await;
    assert_eq!(code, 0, "{stdout}");
    let mut strict = base.clone();
    strict.extend(["--fail-on".into(), "low".into()]);
    let (code, _, _) = run_bin(strict).await;
    assert_eq!(code, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_errors_exit_2() {
    // Nothing listens there: connection refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let (code, _, stderr) =
        run_bin(vec!["audit".into(), format!("http://127.0.0.1:{port}/")]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot audit"), "{stderr}");

    let (code, _, stderr) = run_bin(vec!["audit".into(), "https://127.0.0.1/".into()]).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("https is not supported"), "{stderr}");

    let server = server::vulnerable(Mistakes {
        never_answer: true,
        ..Mistakes::default()
    })
    .await;
    // Without its timeout the command would run until the hang guard kills it
    // (exit code -1 here); and it stops at the first unanswered request.
    let (code, _, stderr) = run_bin(vec![
        "audit".into(),
        server.url(),
        "--timeout".into(),
        "1".into(),
    ])
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no answer within the timeout"), "{stderr}");
    assert_eq!(server.requests(), 1);
}

// ---- nginx with the license-monitoring guide's configurations ----

mod nginx {
    use std::path::Path;
    use std::process::{Child, Command, Stdio};

    use super::support::{TempDir, eventually_blocking};

    pub(crate) const BINARY: &str = "/usr/sbin/nginx";

    /// A running nginx, killed when dropped.
    pub(crate) struct Nginx {
        child: Child,
        pub(crate) port: u16,
        _dir: TempDir,
    }

    impl Drop for Nginx {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    /// Starts nginx in the foreground (no daemon, no master) on a loopback port,
    /// with `server` as the body of its `server` block, and an upstream group
    /// `license_monitor` pointing at `upstream`, and `http_extra` in `http`.
    pub(crate) fn start(http_extra: &str, server: &str, upstream: u16) -> Nginx {
        assert!(
            Path::new(BINARY).exists(),
            "{BINARY} is missing: install nginx (scripts/install-test-deps.sh installs nginx-light)"
        );
        let dir = TempDir::new("audit-nginx");
        let d = dir.path().display();
        let port = free_port();
        let config = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             upstream license_monitor {{ server 127.0.0.1:{upstream}; }}\n{http_extra}\n  \
             server {{\n    listen 127.0.0.1:{port};\n{server}\n  }}\n}}\n"
        );
        let conf = dir.write("nginx.conf", &config);
        let child = Command::new(BINARY)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut nginx = Nginx {
            child,
            port,
            _dir: dir,
        };
        eventually_blocking(&format!("nginx listening on 127.0.0.1:{port}"), || {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let log = std::fs::read_to_string(nginx._dir.join("error.log")).unwrap_or_default();
                panic!("nginx exited ({status}): {log}");
            }
            Err("not yet".to_owned())
        });
        nginx
    }
}

/// The guide's "configure CORS at the proxy level" block: a hard-coded
/// Access-Control-Allow-Origin and `if OPTIONS return 204`.
const GUIDE_PROXY_LOCATION: &str = r#"
    location /api/ {
      if ($request_method = 'OPTIONS') {
        add_header 'Access-Control-Allow-Origin' 'https://dashboard.example.com' always;
        add_header 'Access-Control-Allow-Methods' 'GET, POST, OPTIONS' always;
        add_header 'Access-Control-Allow-Headers' 'X-API-Key, Content-Type, Authorization' always;
        add_header 'Access-Control-Max-Age' 86400 always;
        add_header 'Access-Control-Allow-Credentials' 'true' always;
        add_header 'Content-Type' 'text/plain; charset=utf-8';
        add_header 'Content-Length' 0;
        return 204;
      }
      add_header 'Access-Control-Allow-Origin' 'https://dashboard.example.com' always;
      add_header 'Access-Control-Allow-Credentials' 'true' always;
      add_header 'Access-Control-Expose-Headers' 'X-Request-ID' always;
      proxy_pass http://license_monitor;
    }
"#;

/// What is wrong with the guide's proxy configuration, as audit sees it from
/// outside: the hard-coded origin is safe (no other origin can use it, and the
/// answer never changes, so no Vary is needed), but the preflight cache time is
/// above what Chromium honours. Audit derives the trusted origin itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_guide_proxy_config_max_age_above_chromium_cap() {
    let upstream = server::upstream(false).await;
    let nginx = nginx::start("", GUIDE_PROXY_LOCATION, upstream.addr.port());
    let url = format!("http://127.0.0.1:{}/api/licenses", nginx.port);
    let report = audit::audit(&options(&url, &[])).await.unwrap();
    assert_eq!(
        report.trusted_origins[0].origin,
        "https://dashboard.example.com"
    );
    assert_finding(&report, "max-age-above-cap", Severity::Info);
    let worst = report.worst().unwrap();
    assert!(worst <= Severity::Info, "{:?}", ids(&report));
    // No look-alike is accepted: the value never depends on the request.
    for id in [
        "reflected-origin",
        "origin-prefix-match",
        "missing-vary-origin",
        "cors-missing-on-errors",
    ] {
        assert!(!report.has(id), "{id}: {:?}", ids(&report));
    }
    drop(nginx);
}

/// The same proxy in front of the API with its own CORS switched on
/// (`cors_enabled = true`, the guide's first configuration): both layers add
/// Access-Control-Allow-Origin, and browsers reject the response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_guide_proxy_config_over_an_app_with_cors_duplicates_headers() {
    let upstream = server::upstream(true).await;
    let nginx = nginx::start("", GUIDE_PROXY_LOCATION, upstream.addr.port());
    let url = format!("http://127.0.0.1:{}/api/licenses", nginx.port);
    let report = audit::audit(&options(&url, &["https://dashboard.example.com"]))
        .await
        .unwrap();
    assert_finding(&report, "duplicate-cors-header", Severity::Medium);
    assert_finding(&report, "max-age-above-cap", Severity::Info);
    drop(nginx);
}

/// The guide's `map $http_origin` allowlist: the answer depends on the Origin
/// but no `Vary: Origin` is sent, and preflights are not handled (they reach the
/// application, which refuses OPTIONS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_guide_map_config_lacks_vary_and_preflights() {
    let map = r#"
  map $http_origin $cors_origin {
    default "";
    "https://dashboard.example.com" $http_origin;
    "https://admin.example.com" $http_origin;
  }"#;
    let location = r#"
    location /api/ {
      if ($cors_origin = "") {
        return 403;
      }
      add_header 'Access-Control-Allow-Origin' $cors_origin always;
      add_header 'Access-Control-Allow-Credentials' 'true' always;
      proxy_pass http://license_monitor;
    }
"#;
    let upstream = server::upstream(false).await;
    let nginx = nginx::start(map, location, upstream.addr.port());
    let url = format!("http://127.0.0.1:{}/api/licenses", nginx.port);
    let report = audit::audit(&options(&url, &["https://dashboard.example.com"]))
        .await
        .unwrap();
    assert_finding(&report, "missing-vary-origin", Severity::Medium);
    assert_finding(&report, "preflight-failed", Severity::Medium);
    assert!(!report.has("reflected-origin"), "{:?}", ids(&report));
    drop(nginx);
}
