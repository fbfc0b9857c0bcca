//! Upstreams over TLS and HTTP/2, on loopback with certificates made here:
//! `https://` verified against a `ca_file` (and not against the system's
//! roots), a wrong CA and a missing client certificate answered 502 with the
//! route's CORS headers, mTLS, `h2c://` and h2 by ALPN with trailers and
//! streaming both ways, a gRPC-web preflight, the files refused at load time,
//! and `hsts` on the https listener.

mod support;

use bytes::Bytes;
use hyper::body::Frame;
use support::binary::{self, Serve, Stderr};
use support::tls::{TestCa, TlsConn};
use support::tlsup::{H2Client, Up, next_frame};
use support::{Gw, TempDir, WAIT, send};

const APP: &str = "https://app.test";

/// `[server]` on 127.0.0.1:0 with CORS for APP (credentials; gRPC-web's
/// headers allowed and exposed), then `routes`.
fn config(routes: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n\
         [server.cors]\nallow_origins = [\"{APP}\"]\nallow_credentials = true\n\
         allow_headers = [\"content-type\", \"x-grpc-web\", \"x-user-agent\"]\n\
         expose_headers = [\"grpc-status\", \"grpc-message\"]\n\n{routes}"
    )
}

fn route(path: &str, upstream: &str, tls: &str) -> String {
    let mut text = format!("[[route]]\npath = \"{path}\"\nupstream = \"{upstream}\"\n");
    if !tls.is_empty() {
        text.push_str(&format!("[route.upstream_tls]\n{tls}\n"));
    }
    text.push('\n');
    text
}

async fn start(dir: &TempDir, text: &str) -> Gw {
    Gw::in_dir(dir, text, false).await
}

fn preflight(gw: &Gw, path: &str) -> impl Future<Output = support::Answer> {
    let url = gw.url(path);
    async move {
        send(
            "OPTIONS",
            &url,
            &[
                ("origin", APP),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "content-type,x-grpc-web,x-user-agent",
                ),
            ],
        )
        .await
    }
}

#[tokio::test]
async fn an_https_upstream_verified_by_its_ca_file_is_reached_and_a_preflight_is_not() {
    let dir = TempDir::new("uptls-ca");
    let ca = TestCa::new("upstream");
    let leaf = ca.leaf(&["127.0.0.1"], 30);
    std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
    let up = Up::tls(&leaf, &[b"http/1.1"], None).await;
    let gw = start(
        &dir,
        &config(&route("/", &up.url("https"), "ca_file = \"ca.pem\"")),
    )
    .await;

    let answer = send("GET", &gw.url("/x"), &[("origin", APP)]).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.header("access-control-allow-origin"), Some(APP));
    assert_eq!(answer.header("x-seen-version"), Some("HTTP/1.1"));
    // Pooled: a second request on the same TLS connection.
    let again = send("GET", &gw.url("/y"), &[]).await;
    assert_eq!(again.status, 200);
    assert_eq!(up.accepted(), 1);

    let answer = preflight(&gw, "/x").await;
    assert_eq!(answer.status, 204);
    assert_eq!(up.requests().len(), 2, "a preflight reached the upstream");
}

#[tokio::test]
async fn an_upstream_certificate_of_another_ca_or_not_in_the_system_roots_is_a_502_with_cors_headers_and_the_reason_logged()
 {
    let dir = TempDir::new("uptls-wrong-ca");
    let ca = TestCa::new("upstream");
    let other = TestCa::new("other");
    let leaf = ca.leaf(&["127.0.0.1"], 30);
    std::fs::write(dir.join("other.pem"), &other.pem).unwrap();
    let up = Up::tls(&leaf, &[b"h2", b"http/1.1"], None).await;
    let path = dir.join("corsgate.toml");
    std::fs::write(
        &path,
        config(&format!(
            "{}{}",
            route("/other", &up.url("https"), "ca_file = \"other.pem\""),
            // No ca_file: the system's roots, which do not know the test CA.
            route("/system", &up.url("https"), ""),
        )),
    )
    .unwrap();
    let mut serve = Serve::start(&path, Stderr::Read);
    let (addr, admin) = serve.addresses();

    for path in ["/other", "/system"] {
        let answer = send("GET", &format!("http://{addr}{path}"), &[("origin", APP)]).await;
        assert_eq!(answer.status, 502, "{path}");
        assert_eq!(
            answer.header("access-control-allow-origin"),
            Some(APP),
            "{path}"
        );
        assert!(answer.text().contains("TLS handshake"), "{}", answer.text());
    }
    let line = serve.wait_stderr("TLS handshake with the upstream failed");
    assert!(line.contains("UnknownIssuer"), "{line}");
    let metrics = send("GET", &format!("http://{admin}/metrics"), &[])
        .await
        .text();
    assert!(
        metrics
            .contains("corsgate_gateway_responses_total{status=\"502\",kind=\"upstream-tls\"} 2\n"),
        "{metrics}"
    );
    assert!(
        up.requests().is_empty(),
        "a request passed an untrusted TLS"
    );
}

#[tokio::test]
async fn a_reload_reads_the_upstream_ca_file_again_and_one_that_does_not_load_keeps_the_running_one()
 {
    use corsgate_gateway::ReloadOutcome;
    let dir = TempDir::new("uptls-reload");
    let ca = TestCa::new("upstream");
    let other = TestCa::new("other");
    let leaf = ca.leaf(&["127.0.0.1"], 30);
    std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
    let up = Up::tls(&leaf, &[b"h2", b"http/1.1"], None).await;
    let gw = start(
        &dir,
        &config(&route("/", &up.url("https"), "ca_file = \"ca.pem\"")),
    )
    .await;
    let status = || async { send("GET", &gw.url("/x"), &[]).await.status };
    assert_eq!(status().await, 200);

    // Half-written: the configuration did not change, the CA file does not
    // load. The running one stays.
    std::fs::write(dir.join("ca.pem"), "").unwrap();
    let outcome = gw.handle.reload();
    assert!(
        matches!(outcome, ReloadOutcome::Invalid { errors: 1 }),
        "{outcome:?}"
    );
    assert_eq!(status().await, 200);

    // Replaced by another CA: new connections use it (and fail).
    std::fs::write(dir.join("ca.pem"), &other.pem).unwrap();
    let outcome = gw.handle.reload();
    assert!(
        matches!(outcome, ReloadOutcome::Applied { .. }),
        "{outcome:?}"
    );
    assert_eq!(status().await, 502);

    std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
    let outcome = gw.handle.reload();
    assert!(
        matches!(outcome, ReloadOutcome::Applied { .. }),
        "{outcome:?}"
    );
    assert_eq!(status().await, 200);
    // Nothing changed since: nothing to do.
    assert!(matches!(gw.handle.reload(), ReloadOutcome::Unchanged));
}

#[tokio::test]
async fn an_upstream_that_requires_a_client_certificate_gets_the_configured_one() {
    let dir = TempDir::new("uptls-mtls");
    let ca = TestCa::new("upstream");
    let leaf = ca.leaf(&["127.0.0.1"], 30);
    let client = ca.client_leaf("corsgate.test", 30);
    std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
    client.write(dir.path(), "client");
    let up = Up::tls(&leaf, &[b"http/1.1"], Some(&ca)).await;
    let gw = start(
        &dir,
        &config(&format!(
            "{}{}",
            route("/anonymous", &up.url("https"), "ca_file = \"ca.pem\""),
            route(
                "/",
                &up.url("https"),
                "ca_file = \"ca.pem\"\nclient_cert_file = \"client.pem\"\nclient_key_file = \"client.key\""
            ),
        )),
    )
    .await;

    let without = send("GET", &gw.url("/anonymous"), &[("origin", APP)]).await;
    assert_eq!(without.status, 502, "{}", without.text());
    assert_eq!(without.header("access-control-allow-origin"), Some(APP));
    assert!(
        without.text().contains("TLS handshake"),
        "{}",
        without.text()
    );

    let with = send("GET", &gw.url("/x"), &[("origin", APP)]).await;
    assert_eq!(with.status, 200, "{}", with.text());
    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].client_cert);
}

#[tokio::test]
async fn an_h2c_upstream_gets_http2_and_its_trailers_and_streams_reach_the_client() {
    let dir = TempDir::new("uptls-h2c");
    let up = Up::h2c().await;
    let gw = start(&dir, &config(&route("/", &up.url("h2c"), ""))).await;
    let mut client = H2Client::connect(gw.addr).await;
    let authority = gw.addr.to_string();

    let (head, body, trailers) = client
        .call(
            "POST",
            &authority,
            "/pkg.Service/Method",
            &[
                ("origin", APP),
                ("te", "trailers"),
                ("content-type", "application/grpc"),
            ],
        )
        .await;
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["access-control-allow-origin"], APP);
    assert_eq!(body, "HTTP/2.0");
    let trailers = trailers.expect("no trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(trailers["grpc-message"], "ok");
    let seen = up.requests();
    assert_eq!(seen[0].version, http::Version::HTTP_2);
    assert_eq!(seen[0].headers["te"], "trailers");

    // Streaming both ways: each chunk comes back before the next is sent.
    // Buffering either body would never answer the first.
    let (tx, response) = client
        .open("POST", &authority, "/echo", &[("origin", APP)])
        .await;
    let mut body = response.into_body();
    for chunk in ["one", "two", "three"] {
        tx.send(Frame::data(Bytes::from(chunk))).await.unwrap();
        let frame = next_frame(&mut body).await.expect("body ended early");
        assert_eq!(frame.into_data().unwrap(), chunk);
    }
    drop(tx);
    let last = next_frame(&mut body).await.expect("no trailers");
    assert_eq!(last.into_trailers().unwrap()["grpc-status"], "0");

    // One connection carried all of it.
    assert_eq!(up.accepted(), 1);
}

#[tokio::test]
async fn an_https_upstream_that_picks_h2_by_alpn_gets_http2_on_one_connection_with_trailers() {
    let dir = TempDir::new("uptls-h2");
    let ca = TestCa::new("upstream");
    let leaf = ca.leaf(&["grpc.internal.test"], 30);
    std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
    let up = Up::tls(&leaf, &[b"h2", b"http/1.1"], None).await;
    // The certificate names grpc.internal.test, not the address: server_name.
    let gw = start(
        &dir,
        &config(&route(
            "/",
            &up.url("https"),
            "ca_file = \"ca.pem\"\nserver_name = \"grpc.internal.test\"",
        )),
    )
    .await;
    let mut client = H2Client::connect(gw.addr).await;
    let authority = gw.addr.to_string();
    let calls = (0..4).map(|_| {
        let mut client = client.clone();
        let authority = authority.clone();
        async move {
            client
                .call(
                    "POST",
                    &authority,
                    "/pkg.Service/Method",
                    &[("origin", APP)],
                )
                .await
        }
    });
    for (head, body, trailers) in futures_util::future::join_all(calls).await {
        assert_eq!(head.status(), 200);
        assert_eq!(body, "HTTP/2.0");
        assert_eq!(trailers.expect("no trailers")["grpc-status"], "0");
    }
    let (head, _, _) = client.call("GET", &authority, "/", &[]).await;
    assert_eq!(head.status(), 200);
    assert!(
        up.requests()
            .iter()
            .all(|s| s.version == http::Version::HTTP_2)
    );
    assert_eq!(up.accepted(), 1, "one multiplexed connection");
}

#[tokio::test]
async fn a_grpc_web_preflight_is_answered_and_the_grpc_headers_are_exposed() {
    let dir = TempDir::new("uptls-grpc-web");
    let up = Up::h2c().await;
    let gw = start(&dir, &config(&route("/", &up.url("h2c"), ""))).await;

    let answer = preflight(&gw, "/pkg.Service/Method").await;
    assert_eq!(answer.status, 204);
    assert_eq!(answer.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        answer.header("access-control-allow-headers"),
        Some("content-type,x-grpc-web,x-user-agent")
    );
    assert!(up.requests().is_empty(), "a preflight reached the upstream");

    let answer = send(
        "POST",
        &gw.url("/pkg.Service/Method"),
        &[
            ("origin", APP),
            ("content-type", "application/grpc-web+proto"),
            ("x-grpc-web", "1"),
        ],
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("access-control-expose-headers"),
        Some("grpc-status, grpc-message")
    );
    assert_eq!(up.requests()[0].version, http::Version::HTTP_2);
}

#[test]
fn bad_upstream_tls_files_are_refused_by_check_and_serve_all_at_once_with_their_lines() {
    let dir = TempDir::new("uptls-check");
    let ca = TestCa::new("upstream");
    let a = ca.client_leaf("a.test", 30);
    let b = ca.client_leaf("b.test", 30);
    a.write(dir.path(), "a");
    b.write(dir.path(), "b");
    std::fs::write(dir.join("empty.pem"), "").unwrap();
    let text = config(&format!(
        "{}{}",
        route("/one", "https://127.0.0.1:1", "ca_file = \"missing.pem\""),
        route(
            "/two",
            "https://127.0.0.1:2",
            "ca_file = \"empty.pem\"\nclient_cert_file = \"a.pem\"\nclient_key_file = \"b.key\"",
        ),
    ));
    let path = dir.write("corsgate.toml", &text);
    let file = path.to_str().unwrap();

    let ran = binary::run(&["check", file], WAIT);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    for (key, needle, why) in [
        (
            "route[0].upstream_tls.ca_file",
            "missing.pem",
            "cannot read",
        ),
        (
            "route[1].upstream_tls.ca_file",
            "empty.pem",
            "no certificate",
        ),
        (
            "route[1].upstream_tls.client_key_file",
            "b.key",
            "does not belong",
        ),
    ] {
        let at = format!("corsgate.toml:{}:", line_of(needle));
        assert!(
            ran.stdout
                .lines()
                .any(|l| l.contains(&at) && l.contains(key) && l.contains(why)),
            "{key} {why} at {at}: {}",
            ran.stdout
        );
    }

    let ran = binary::run(&["serve", "--config", file], WAIT);
    assert_ne!(ran.code, Some(0), "{ran:?}");
    assert!(!ran.timed_out, "serve started with files that do not load");
    for key in [
        "route[0].upstream_tls.ca_file",
        "route[1].upstream_tls.ca_file",
        "route[1].upstream_tls.client_key_file",
    ] {
        assert!(ran.stderr.contains(key), "{key}: {}", ran.stderr);
    }
}

#[test]
fn upstream_tls_keys_out_of_place_are_refused() {
    let cases = [
        (
            route("/", "http://127.0.0.1:1", "ca_file = \"ca.pem\""),
            "upstream_tls is for an https:// upstream",
        ),
        (
            route("/", "https://127.0.0.1:1", "client_cert_file = \"c.pem\""),
            "needs its key",
        ),
        (
            route("/", "https://127.0.0.1:1", "server_name = \"bad name\""),
            "a DNS name",
        ),
        (
            route("/", "https://127.0.0.1:1", "ca_flie = \"ca.pem\""),
            "did you mean \"ca_file\"",
        ),
        (route("/", "ftp://127.0.0.1:1", ""), "h2c://host:port"),
    ];
    for (routes, why) in cases {
        let checked = corsgate_config::check(&config(&routes));
        assert!(checked.gateway.is_none(), "{routes}");
        assert!(
            checked.problems.iter().any(|p| p.to_string().contains(why)),
            "{why}: {:?}",
            checked.problems
        );
    }
}

/// `[server.tls]` with a certificate for 127.0.0.1 and the given `hsts` table.
fn hsts_config(dir: &TempDir, ca: &TestCa, hsts: &str, upstream: &str) -> String {
    ca.leaf(&["127.0.0.1"], 30).write(dir.path(), "server");
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n\
         [server.tls]\ncertificates = [{{ cert_file = \"server.pem\", key_file = \"server.key\" }}]\n{hsts}\n\n\
         [[route]]\npath = \"/\"\nupstream = \"{upstream}\"\n"
    )
}

#[tokio::test]
async fn hsts_is_sent_on_every_response_over_tls_and_replaces_the_upstreams() {
    let dir = TempDir::new("uptls-hsts");
    let ca = TestCa::new("listener");
    let spy = support::Spy::start(|_| {
        support::Reply::ok().header("strict-transport-security", "max-age=1")
    })
    .await;
    let gw = start(
        &dir,
        &hsts_config(
            &dir,
            &ca,
            "hsts = { max_age = 31536000, include_subdomains = true, preload = true }",
            &spy.url(),
        ),
    )
    .await;
    for alpn in [&b"http/1.1"[..], &b"h2"[..]] {
        let conn = TlsConn::connect(gw.addr, "127.0.0.1", ca.client(&[alpn]))
            .await
            .unwrap();
        let mut http = conn.http().await;
        let authority = gw.addr.to_string();
        for path in ["/proxied", "/"] {
            let answer = http.send("GET", &authority, path, &[]).await;
            assert_eq!(answer.status, 200);
            assert_eq!(
                answer.joined("strict-transport-security"),
                "max-age=31536000; includeSubDomains; preload"
            );
        }
        // A response the gateway makes itself too.
        let answer = http
            .send(
                "OPTIONS",
                &authority,
                "/",
                &[("origin", APP), ("access-control-request-method", "GET")],
            )
            .await;
        assert_eq!(
            answer.header("strict-transport-security"),
            Some("max-age=31536000; includeSubDomains; preload")
        );
    }
}

#[tokio::test]
async fn without_hsts_or_without_tls_no_strict_transport_security_is_added() {
    let dir = TempDir::new("uptls-no-hsts");
    let ca = TestCa::new("listener");
    let spy = support::Spy::ok().await;
    let gw = start(&dir, &hsts_config(&dir, &ca, "", &spy.url())).await;
    let conn = TlsConn::connect(gw.addr, "127.0.0.1", ca.client(&[b"http/1.1"]))
        .await
        .unwrap();
    let answer = conn
        .http()
        .await
        .send("GET", &gw.addr.to_string(), "/", &[])
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("strict-transport-security"), None);
    // And a cleartext listener with the setting (RFC 6797 section 7.2: never
    // over http): the setting lives in [server.tls], so cleartext has no
    // listener of its own that could send it; the redirect listener does not.
    let dir = TempDir::new("uptls-hsts-redirect");
    let redirect = support::closed_port().await;
    let gw = start(
        &dir,
        &hsts_config(
            &dir,
            &ca,
            &format!("redirect_listen = \"{redirect}\"\nhsts = {{ max_age = 300 }}"),
            &spy.url(),
        ),
    )
    .await;
    let answer = send("GET", &format!("http://{redirect}/x"), &[]).await;
    assert_eq!(answer.status, 308);
    assert_eq!(answer.header("strict-transport-security"), None);
    drop(gw);
}

#[test]
fn hsts_combinations_the_preload_list_refuses_are_refused_at_load_time() {
    let dir = TempDir::new("uptls-hsts-check");
    let ca = TestCa::new("listener");
    for (hsts, why) in [
        (
            "hsts = { max_age = 31536000, preload = true }",
            "include_subdomains = true",
        ),
        (
            "hsts = { max_age = 86400, include_subdomains = true, preload = true }",
            "a year or more",
        ),
        ("hsts = { include_subdomains = true }", "needs max_age"),
        ("hsts = { max_age = -1 }", "0 or more"),
        (
            "hsts = { max_age = 300, preloaded = true }",
            "did you mean \"preload\"",
        ),
    ] {
        let text = hsts_config(&dir, &ca, hsts, "http://127.0.0.1:1");
        let checked = corsgate_config::check(&text);
        assert!(checked.gateway.is_none(), "{hsts}");
        assert!(
            checked.problems.iter().any(|p| p.to_string().contains(why)),
            "{hsts}: {why}: {:?}",
            checked.problems
        );
    }
    // Accepted: a short max_age to start with, and 0 to withdraw.
    for hsts in ["hsts = { max_age = 300 }", "hsts = { max_age = 0 }"] {
        let text = hsts_config(&dir, &ca, hsts, "http://127.0.0.1:1");
        assert!(corsgate_config::check(&text).gateway.is_some(), "{hsts}");
    }
}

/// What an HTTP/2 upstream's connections did.
#[derive(Debug, PartialEq, Eq)]
enum ConnEvent {
    Opened,
    Closed,
}

/// A cleartext HTTP/2 upstream that reports each connection it accepts and
/// each that ends. `/stream` answers one chunk at once and the rest when
/// `finish` is notified; everything else answers `ok`.
async fn h2_watched(
    finish: std::sync::Arc<tokio::sync::Notify>,
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<ConnEvent>,
) {
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use support::tlsup::ChanBody;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            let finish = finish.clone();
            let _ = tx.send(ConnEvent::Opened);
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let finish = finish.clone();
                    async move {
                        let (chunks, body) = ChanBody::new();
                        let streaming = request.uri().path() == "/stream";
                        tokio::spawn(async move {
                            let _ = chunks.send(Frame::data(Bytes::from("first;"))).await;
                            if streaming {
                                finish.notified().await;
                                let _ = chunks.send(Frame::data(Bytes::from("last"))).await;
                            }
                        });
                        Ok::<_, std::convert::Infallible>(http::Response::new(body))
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                let _ = tx.send(ConnEvent::Closed);
            });
        }
    });
    (addr, rx)
}

async fn next_event(events: &mut tokio::sync::mpsc::UnboundedReceiver<ConnEvent>) -> ConnEvent {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("the upstream saw no connection open or close in time")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_upstream_connection_is_closed_after_upstream_idle_timeout_and_reopened() {
    let finish = std::sync::Arc::new(tokio::sync::Notify::new());
    let (idle_addr, mut idle) = h2_watched(finish.clone()).await;
    let (busy_addr, mut busy) = h2_watched(finish.clone()).await;
    let dir = TempDir::new("h2-idle");
    let text = config(&format!(
        "{}{}",
        route("/idle", &format!("h2c://{idle_addr}"), ""),
        route("/stream", &format!("h2c://{busy_addr}"), "")
    ))
    .replace(
        "admin_listen = \"127.0.0.1:0\"\n",
        "admin_listen = \"127.0.0.1:0\"\nupstream_idle_timeout = \"1s\"\n",
    );
    let gw = start(&dir, &text).await;

    // A stream that stays open longer than the idle timeout: its connection
    // is busy, not idle.
    let client = support::client();
    let mut long = client
        .request(
            http::Request::get(gw.url("/stream"))
                .body(http_body_util::Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap()
        .into_body();
    assert_eq!(next_event(&mut busy).await, ConnEvent::Opened);
    let first = next_frame(&mut long).await.unwrap().into_data().unwrap();
    assert_eq!(first, "first;");

    // The other upstream's connection, once its one exchange is over, is
    // closed after upstream_idle_timeout (it answered HTTP/2 pings meanwhile).
    assert_eq!(send("GET", &gw.url("/idle"), &[]).await.status, 200);
    assert_eq!(next_event(&mut idle).await, ConnEvent::Opened);
    assert_eq!(next_event(&mut idle).await, ConnEvent::Closed);

    // The next request opens a new connection and is answered.
    assert_eq!(send("GET", &gw.url("/idle"), &[]).await.status, 200);
    assert_eq!(next_event(&mut idle).await, ConnEvent::Opened);

    // The streaming connection was pruned in the same passes, yet it is
    // still open and its stream still delivers.
    assert!(busy.try_recv().is_err(), "the busy connection was closed");
    finish.notify_one();
    let rest = next_frame(&mut long).await.unwrap().into_data().unwrap();
    assert_eq!(rest, "last");
    assert!(next_frame(&mut long).await.is_none());
    // Then it is idle, and closed in turn.
    assert_eq!(next_event(&mut busy).await, ConnEvent::Closed);
}
