//! Per-client origins through the gateway, over real sockets: clients written
//! through the admin API, requests identified by Basic, form body and bearer
//! JWT, decided with their client's origins, bodies forwarded byte for byte.

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::StatusCode;
use support::bodyspy::BodySpy;
use support::{Answer, Gw, TempDir, raw, send, send_with};

const TOKEN: &str = "s3cret-admin-token-for-tests";

struct Setup {
    gw: Gw,
    spy: BodySpy,
    _dir: TempDir,
}

/// A gateway with a registry in a temporary SQLite file, four routes, and
/// clients `spa`, `other` and `my:client`.
async fn setup() -> Setup {
    let dir = TempDir::new("registry-gw");
    let token = dir.write("token", &format!("{TOKEN}\n"));
    let spy = BodySpy::start().await;
    let up = spy.url();
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
admin_token_file = "{token}"

[registry]
database = "sqlite:{db}"

[[route]]
path = "/oauth2/token"
upstream = "{up}"
[route.cors]
allow_origins = ["https://static.example"]
allow_headers = ["authorization", "content-type"]
debug = true
clients = {{ identify = ["basic", "form"] }}

[[route]]
path = "/userinfo"
upstream = "{up}"
[route.cors]
allow_headers = ["authorization"]
debug = true
clients = {{ identify = ["bearer-jwt"], unidentified = "registered" }}

[[route]]
path = "/strict"
upstream = "{up}"
[route.cors]
debug = true
clients = {{ identify = ["bearer-jwt", "form"] }}

[[route]]
path = "/reject"
upstream = "{up}"
[route.cors]
on_disallowed = "reject"
clients = {{ identify = ["form"] }}
"#,
        token = token.display(),
        db = dir.join("registry.db").display(),
    );
    let gw = Gw::start(&text).await;
    let setup = Setup { gw, spy, _dir: dir };
    for (id, origins) in [
        ("spa", r#"["https://spa.example", "https://*.spa.example"]"#),
        ("other", r#"["https://other.example"]"#),
        ("my%3Aclient", r#"["https://colon.example"]"#),
    ] {
        let answer = admin(
            &setup.gw,
            "PUT",
            &format!("/clients/{id}"),
            &[("content-type", "application/json")],
            &format!(r#"{{"name": "test", "allowed_origins": {origins}}}"#),
        )
        .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    }
    setup
}

async fn admin(gw: &Gw, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut all = vec![("authorization", format!("Bearer {TOKEN}"))];
    all.extend(headers.iter().map(|(n, v)| (*n, (*v).to_owned())));
    request_with(&gw.admin_url(path), method, &all, body).await
}

async fn request_with(url: &str, method: &str, headers: &[(&str, String)], body: &str) -> Answer {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    send_with(method, url, &headers, body).await
}

/// POSTs a form to the gateway.
async fn form(gw: &Gw, path: &str, origin: &str, extra: &[(&str, String)], body: &str) -> Answer {
    let mut headers = vec![
        ("origin", origin.to_owned()),
        (
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        ),
    ];
    headers.extend(extra.iter().cloned());
    request_with(&gw.url(path), "POST", &headers, body).await
}

fn basic(user: &str) -> (&'static str, String) {
    (
        "authorization",
        format!("Basic {}", STANDARD.encode(format!("{user}:secret"))),
    )
}

fn bearer_jwt(payload: &str) -> (&'static str, String) {
    (
        "authorization",
        format!(
            "Bearer eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
            URL_SAFE_NO_PAD.encode(payload)
        ),
    )
}

/// `Some(origin)`: allowed for it; `None`: refused (no CORS header at all).
fn allowed(answer: &Answer) -> Option<&str> {
    answer.header("access-control-allow-origin")
}

fn reason(answer: &Answer) -> Option<&str> {
    answer.header("x-corsgate-reason")
}

#[tokio::test]
async fn the_decision_table_by_source_over_real_sockets() {
    let s = setup().await;
    let gw = &s.gw;
    // (path, origin, headers, body, allowed, reason)
    type Row<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, String)>,
        &'a str,
        bool,
        Option<&'a str>,
    );
    let rows: Vec<Row<'_>> = vec![
        // The static list needs no client at all.
        (
            "/oauth2/token",
            "https://static.example",
            vec![],
            "grant_type=x",
            true,
            None,
        ),
        // Form body.
        (
            "/oauth2/token",
            "https://spa.example",
            vec![],
            "grant_type=authorization_code&client_id=spa&code=c",
            true,
            None,
        ),
        (
            "/oauth2/token",
            "https://a.b.spa.example",
            vec![],
            "client_id=spa",
            true,
            None,
        ),
        (
            "/oauth2/token",
            "https://spa.example",
            vec![],
            "client_id=sp%61&x=1",
            true,
            None,
        ),
        (
            "/oauth2/token",
            "https://other.example",
            vec![],
            "client_id=spa",
            false,
            Some("origin-not-allowed-for-client"),
        ),
        (
            "/oauth2/token",
            "https://spa.example",
            vec![],
            "client_id=ghost",
            false,
            Some("client-unknown"),
        ),
        (
            "/oauth2/token",
            "https://spa.example",
            vec![],
            "grant_type=x",
            false,
            Some("client-unidentified"),
        ),
        (
            "/oauth2/token",
            "https://spa.example",
            vec![],
            "client_id=spa&client_id=spa",
            false,
            Some("client-unidentified"),
        ),
        (
            "/oauth2/token",
            "https://evil.example",
            vec![],
            "client_id=spa",
            false,
            Some("origin-not-allowed-for-client"),
        ),
        // Basic: percent-decoded user, and it comes before the form.
        (
            "/oauth2/token",
            "https://colon.example",
            vec![basic("my%3Aclient")],
            "grant_type=x",
            true,
            None,
        ),
        (
            "/oauth2/token",
            "https://spa.example",
            vec![basic("spa")],
            "client_id=other",
            true,
            None,
        ),
        (
            "/oauth2/token",
            "https://spa.example",
            vec![("authorization", "Basic !!!".to_owned())],
            "client_id=spa",
            true,
            None,
        ),
        (
            "/oauth2/token",
            "https://spa.example",
            vec![basic("ghost")],
            "",
            false,
            Some("client-unknown"),
        ),
        // Bearer JWT, unidentified = "registered": opaque tokens get the union.
        (
            "/userinfo",
            "https://spa.example",
            vec![bearer_jwt(r#"{"client_id":"spa"}"#)],
            "",
            true,
            None,
        ),
        (
            "/userinfo",
            "https://other.example",
            vec![bearer_jwt(r#"{"client_id":"spa"}"#)],
            "",
            false,
            Some("origin-not-allowed-for-client"),
        ),
        (
            "/userinfo",
            "https://other.example",
            vec![bearer_jwt(r#"{"azp":"other"}"#)],
            "",
            true,
            None,
        ),
        (
            "/userinfo",
            "https://other.example",
            vec![("authorization", "Bearer ory_at_opaque".to_owned())],
            "",
            true,
            None,
        ),
        (
            "/userinfo",
            "https://evil.example",
            vec![("authorization", "Bearer ory_at_opaque".to_owned())],
            "",
            false,
            Some("origin-not-allowed"),
        ),
        // Malformed JWTs name no client.
        (
            "/strict",
            "https://spa.example",
            vec![("authorization", "Bearer a.%%%.c".to_owned())],
            "",
            false,
            Some("client-unidentified"),
        ),
        (
            "/strict",
            "https://spa.example",
            vec![bearer_jwt("not json")],
            "",
            false,
            Some("client-unidentified"),
        ),
        (
            "/strict",
            "https://spa.example",
            vec![bearer_jwt(r#"{"client_id":42}"#)],
            "client_id=spa",
            true,
            None,
        ),
    ];
    for (i, (path, origin, headers, body, want_allowed, want_reason)) in
        rows.into_iter().enumerate()
    {
        let before = s.spy.count();
        let answer = form(gw, path, origin, &headers, body).await;
        let row = format!("row {i}: {path} {origin} {headers:?} {body:?}");
        assert_eq!(answer.status, StatusCode::OK, "{row}");
        assert_eq!(allowed(&answer), want_allowed.then_some(origin), "{row}");
        assert_eq!(reason(&answer), want_reason, "{row}");
        // The upstream's own CORS headers never pass.
        if !want_allowed {
            assert!(answer.cors().is_empty(), "{row}: {:?}", answer.cors());
        } else {
            assert_eq!(
                answer.header("access-control-allow-credentials"),
                None,
                "{row}"
            );
        }
        assert!(answer.joined("vary").contains("Origin"), "{row}");
        // Every request reached the upstream with its body intact.
        assert_eq!(s.spy.count(), before + 1, "{row}");
        let got = s.spy.last();
        assert_eq!(got.body, body.as_bytes(), "{row}");
        if !body.is_empty() {
            assert_eq!(
                got.headers["content-length"],
                body.len().to_string().as_str(),
                "{row}"
            );
        }
    }
}

#[tokio::test]
async fn preflights_are_allowed_for_the_union_and_still_check_methods_and_headers() {
    let s = setup().await;
    let gw = &s.gw;
    let preflight = |origin: &'static str, headers: &'static str| {
        let url = gw.url("/oauth2/token");
        async move {
            send(
                "OPTIONS",
                &url,
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", headers),
                ],
            )
            .await
        }
    };
    for origin in [
        "https://spa.example",
        "https://other.example",
        "https://static.example",
    ] {
        let answer = preflight(origin, "authorization").await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT, "{origin}");
        assert_eq!(allowed(&answer), Some(origin));
        assert_eq!(
            answer.header("access-control-allow-headers"),
            Some("authorization")
        );
    }
    // Debug mode: the refusal carries its reason, never an allowed origin.
    let answer = preflight("https://evil.example", "authorization").await;
    assert_eq!(allowed(&answer), None);
    assert_eq!(reason(&answer), Some("origin-not-allowed"));
    // Debug mode answers a header refusal with what lets the browser name the
    // header: the allowed list, never the refused name.
    let answer = preflight("https://spa.example", "x-evil").await;
    assert_eq!(reason(&answer), Some("header-not-allowed"));
    assert!(
        !answer
            .joined("access-control-allow-headers")
            .contains("x-evil")
    );
    assert_eq!(s.spy.count(), 0, "a preflight never reaches the upstream");
}

#[tokio::test]
async fn bodies_past_the_limit_and_chunked_bodies_are_forwarded_intact() {
    let s = setup().await;
    let gw = &s.gw;
    // 20 KiB, past the default body_limit (16 KiB): not read ahead, unidentified.
    let big = format!("client_id=spa&pad={}", "a".repeat(20 * 1024));
    let answer = form(gw, "/oauth2/token", "https://spa.example", &[], &big).await;
    assert_eq!(reason(&answer), Some("client-unidentified"));
    assert_eq!(s.spy.last().body, big.as_bytes());

    // Chunked, small: read ahead, identified, forwarded in full.
    let chunked = |body: &str| {
        let mut out = String::from(
            "POST /oauth2/token HTTP/1.1\r\nhost: x\r\norigin: https://spa.example\r\ncontent-type: application/x-www-form-urlencoded\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        );
        for piece in body.as_bytes().chunks(7) {
            out.push_str(&format!(
                "{:x}\r\n{}\r\n",
                piece.len(),
                String::from_utf8_lossy(piece)
            ));
        }
        out.push_str("0\r\n\r\n");
        out
    };
    let body = "grant_type=refresh_token&refresh_token=r&client_id=spa";
    let answer = raw(gw.addr, chunked(body).as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: https://spa.example"),
        "{answer}"
    );
    assert_eq!(s.spy.last().body, body.as_bytes());

    // Chunked, past the limit: unidentified, and still forwarded whole.
    let long = format!("client_id=spa&pad={}", "b".repeat(17 * 1024));
    let answer = raw(gw.addr, chunked(&long).as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("client-unidentified"), "{answer}");
    assert_eq!(s.spy.last().body, long.as_bytes());
}

#[tokio::test]
async fn on_disallowed_reject_answers_403_without_calling_the_upstream() {
    let s = setup().await;
    let answer = form(
        &s.gw,
        "/reject",
        "https://other.example",
        &[],
        "client_id=spa",
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.cors().is_empty());
    // Without debug mode a refused preflight is a bare 403.
    let preflight = send(
        "OPTIONS",
        &s.gw.url("/reject"),
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "POST"),
        ],
    )
    .await;
    assert_eq!(preflight.status, StatusCode::FORBIDDEN);
    assert!(preflight.cors().is_empty());
    assert_eq!(s.spy.count(), 0);
    let answer = form(
        &s.gw,
        "/reject",
        "https://spa.example",
        &[],
        "client_id=spa",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(s.spy.last().body, &b"client_id=spa"[..]);
}

#[tokio::test]
async fn admin_writes_need_the_token_refuse_origin_and_are_read_by_the_next_request() {
    let s = setup().await;
    let gw = &s.gw;
    let url = gw.admin_url("/clients/new");
    let json = ("content-type", "application/json".to_owned());
    let body = r#"{"allowed_origins": ["https://new.example"]}"#;
    let answer = request_with(&url, "PUT", std::slice::from_ref(&json), body).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let wrong = ("authorization", "Bearer nope".to_owned());
    let answer = request_with(&url, "PUT", &[json.clone(), wrong], body).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = admin(
        gw,
        "PUT",
        "/clients/new",
        &[
            ("content-type", "application/json"),
            ("origin", "https://evil.example"),
        ],
        body,
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = admin(
        gw,
        "PUT",
        "/clients/new",
        &[("content-type", "text/plain")],
        body,
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Every problem at once, nothing stored, revision unchanged.
    let before = admin(gw, "GET", "/registry", &[], "").await.text();
    let answer = admin(
        gw,
        "PUT",
        "/clients/new",
        &[("content-type", "application/json")],
        r#"{"allowed_origins": ["https://spa.example/", "*", "null", "https://*.github.io", "HTTPS://A.example"]}"#,
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.text()
    );
    let problems: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    let errors = problems["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 5, "{problems:#}");
    assert_eq!(errors[0]["path"], "allowed_origins[0]");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("\"https://spa.example\"")
    );
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(admin(gw, "GET", "/registry", &[], "").await.text(), before);

    // Read your writes: the request right after the response sees the client.
    let refused = form(
        gw,
        "/oauth2/token",
        "https://new.example",
        &[],
        "client_id=new",
    )
    .await;
    assert_eq!(reason(&refused), Some("client-unknown"));
    let answer = admin(
        gw,
        "PUT",
        "/clients/new",
        &[("content-type", "application/json"), ("if-match", "\"r0\"")],
        body,
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let etag = answer.header("etag").unwrap().to_owned();
    let ok = form(
        gw,
        "/oauth2/token",
        "https://new.example",
        &[],
        "client_id=new",
    )
    .await;
    assert_eq!(allowed(&ok), Some("https://new.example"));

    // ETag / If-Match.
    let got = admin(gw, "GET", "/clients/new", &[], "").await;
    assert_eq!(got.header("etag"), Some(etag.as_str()));
    let stale = admin(gw, "DELETE", "/clients/new", &[("if-match", "\"r1\"")], "").await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let gone = admin(gw, "DELETE", "/clients/new", &[("if-match", &etag)], "").await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let refused = form(
        gw,
        "/oauth2/token",
        "https://new.example",
        &[],
        "client_id=new",
    )
    .await;
    assert_eq!(reason(&refused), Some("client-unknown"));
    assert_eq!(
        admin(gw, "GET", "/clients/new", &[], "").await.status,
        StatusCode::NOT_FOUND
    );

    // Reads need the token once one is configured; nothing carries CORS.
    let list = request_with(
        &gw.admin_url("/clients"),
        "GET",
        &[("origin", "https://spa.example".to_owned())],
        "",
    )
    .await;
    assert_eq!(list.status, StatusCode::UNAUTHORIZED);
    let list = admin(
        gw,
        "GET",
        "/clients",
        &[("origin", "https://spa.example")],
        "",
    )
    .await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.cors().is_empty());
    let list: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    let ids: Vec<&str> = list["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["my:client", "other", "spa"]);
}

#[tokio::test]
async fn without_a_token_file_writes_are_refused_with_the_way_to_enable_them() {
    let dir = TempDir::new("registry-notoken");
    let spy = BodySpy::start().await;
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[registry]\ndatabase = \"sqlite:{}\"\n[[route]]\npath = \"/t\"\nupstream = \"{}\"\ncors = {{ clients = {{ identify = [\"form\"] }} }}\n",
        dir.join("r.db").display(),
        spy.url()
    );
    let gw = Gw::start(&text).await;
    let answer = request_with(
        &gw.admin_url("/clients/x"),
        "PUT",
        &[("content-type", "application/json".to_owned())],
        r#"{"allowed_origins": []}"#,
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(
        answer.text().contains("admin_token_file"),
        "{}",
        answer.text()
    );
    // Reads are open, like /config, while no token is configured.
    let status = request_with(&gw.admin_url("/registry"), "GET", &[], "").await;
    assert_eq!(status.status, StatusCode::OK);
    let status: serde_json::Value = serde_json::from_slice(&status.body).unwrap();
    assert_eq!(status["backend"], "sqlite");
    assert_eq!(status["source"], "database");
    assert!(dir.join("r.db").exists());
}
