//! HTTPS on the gateway's listener (`[server.tls]`), over real sockets with
//! certificates made here: the certificate chosen by SNI, ALPN h2 and
//! http/1.1, old protocol versions refused, a stalled handshake dropped,
//! certificates reloaded without dropping a connection, the https redirect
//! listener, `check` on certificates, and the expiry metric.

mod support;

use std::time::Duration;

use support::binary::{Serve, Stderr};
use support::tls::{Leaf, TestCa, TlsConn};
use support::{Gw, Spy, TempDir, WAIT, route, wait_until_async};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A configuration with `[server.tls]` serving `certs` (file stems in the
/// configuration's directory, relative paths), one route to `upstream`.
fn tls_config(certs: &[&str], upstream: &str, server_extra: &str, tls_extra: &str) -> String {
    let list: Vec<String> = certs
        .iter()
        .map(|c| format!("{{ cert_file = \"{c}.pem\", key_file = \"{c}.key\" }}"))
        .collect();
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{server_extra}\n\n\
         [server.tls]\ncertificates = [{}]\n{tls_extra}\n\n\
         [server.cors]\nallow_origins = [\"https://app.test\"]\nallow_credentials = true\nallow_methods = [\"PUT\"]\n\n{}",
        list.join(", "),
        route("/", upstream, "")
    )
}

/// Writes the configuration and starts a gateway on it.
async fn start(dir: &TempDir, text: &str, watch: bool) -> Gw {
    Gw::in_dir(dir, text, watch).await
}

/// The certificate a new connection with this SNI gets.
async fn served(gw: &Gw, ca: &TestCa, name: &str) -> Vec<u8> {
    let conn = TlsConn::connect(gw.addr, name, ca.client(&[b"http/1.1"]))
        .await
        .unwrap();
    conn.peer().to_vec()
}

#[tokio::test]
async fn sni_picks_the_certificate_by_name_wildcards_one_label_and_the_first_is_the_default() {
    let dir = TempDir::new("tls-sni");
    let ca = TestCa::new("sni");
    let first = ca.leaf(&["api.test", "127.0.0.1"], 30);
    let wildcard = ca.leaf(&["*.apps.test"], 30);
    let exact = ca.leaf(&["admin.apps.test"], 30);
    first.write(dir.path(), "first");
    wildcard.write(dir.path(), "wildcard");
    exact.write(dir.path(), "exact");
    let spy = Spy::ok().await;
    let gw = start(
        &dir,
        &tls_config(&["first", "wildcard", "exact"], &spy.url(), "", ""),
        false,
    )
    .await;

    assert_eq!(served(&gw, &ca, "api.test").await, first.der.to_vec());
    assert_eq!(
        served(&gw, &ca, "one.apps.test").await,
        wildcard.der.to_vec()
    );
    // An exact name wins over a wildcard that also covers it.
    assert_eq!(
        served(&gw, &ca, "admin.apps.test").await,
        exact.der.to_vec()
    );
    // SNI is case-insensitive (RFC 6066 section 3: DNS names compare so).
    assert_eq!(
        served(&gw, &ca, "ONE.Apps.Test").await,
        wildcard.der.to_vec()
    );
    // No SNI (a client connecting by IP address sends none): the first.
    assert_eq!(served(&gw, &ca, "127.0.0.1").await, first.der.to_vec());
    // A wildcard covers one label only: two labels deep gets the default,
    // which the client then refuses as not its name.
    let deep = TlsConn::connect(gw.addr, "a.b.apps.test", ca.client(&[b"http/1.1"])).await;
    let err = deep.err().expect("a.b.apps.test must not verify");
    assert!(err.to_string().contains("not valid for name"), "{err}");
}

#[tokio::test]
async fn alpn_h2_and_http11_both_serve_and_upstreams_learn_the_request_was_https() {
    let dir = TempDir::new("tls-alpn");
    let ca = TestCa::new("alpn");
    ca.leaf(&["api.test"], 30).write(dir.path(), "cert");
    let spy = Spy::ok().await;
    let gw = start(&dir, &tls_config(&["cert"], &spy.url(), "", ""), false).await;

    for (alpn, version) in [
        (&[&b"h2"[..], b"http/1.1"][..], http::Version::HTTP_2),
        (&[&b"http/1.1"[..]][..], http::Version::HTTP_11),
        (&[][..], http::Version::HTTP_11),
    ] {
        let conn = TlsConn::connect(gw.addr, "api.test", ca.client(alpn))
            .await
            .unwrap();
        let mut http = conn.http().await;
        let answer = http
            .send(
                "GET",
                "api.test",
                "/hello",
                &[("origin", "https://app.test"), ("forwarded", "for=1.2.3.4")],
            )
            .await;
        assert_eq!(answer.status, 200, "{alpn:?}");
        assert_eq!(answer.version, version, "{alpn:?}");
        assert_eq!(
            answer.header("access-control-allow-origin"),
            Some("https://app.test")
        );
        let seen = spy.last();
        assert_eq!(seen.headers["x-forwarded-proto"], "https", "{alpn:?}");
        let forwarded = seen.headers["forwarded"].to_str().unwrap();
        assert!(forwarded.ends_with(";proto=https"), "{forwarded}");
    }

    // A preflight over h2 is answered by the gateway.
    let conn = TlsConn::connect(gw.addr, "api.test", ca.client(&[b"h2"]))
        .await
        .unwrap();
    let before = spy.count();
    let mut http = conn.http().await;
    let answer = http
        .send(
            "OPTIONS",
            "api.test",
            "/hello",
            &[
                ("origin", "https://app.test"),
                ("access-control-request-method", "PUT"),
            ],
        )
        .await;
    assert_eq!(answer.version, http::Version::HTTP_2);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://app.test")
    );
    assert_eq!(
        answer.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        spy.count(),
        before,
        "a preflight never reaches the upstream"
    );
}

/// A TLS 1.1 ClientHello (record version 3.1, client_version 3.2, no
/// supported_versions extension).
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02];
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // no session id
    // Suites the gateway has (ECDHE-ECDSA/RSA-AES128-GCM-SHA256), so that
    // only the version can be what it refuses.
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x2f]);
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    // signature_algorithms (ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256) and
    // supported_groups (x25519): what the gateway needs to go as far as the
    // version.
    let extensions = [
        0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x08, 0x04, //
        0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x1d,
    ];
    body.extend_from_slice(&u16::try_from(extensions.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&extensions);
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&u16::try_from(handshake.len()).unwrap().to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn tls_1_1_and_below_are_refused_with_a_protocol_version_alert() {
    let dir = TempDir::new("tls-old");
    let ca = TestCa::new("old");
    ca.leaf(&["api.test"], 30).write(dir.path(), "cert");
    let spy = Spy::ok().await;
    let gw = start(&dir, &tls_config(&["cert"], &spy.url(), "", ""), false).await;

    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(&tls11_client_hello()).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut reply))
        .await
        .expect("the gateway neither answered nor closed")
        .ok();
    // An alert record (21), level fatal (2), protocol_version (70): never a
    // ServerHello (a handshake record, 22).
    assert!(reply.len() >= 7, "{reply:?}");
    assert_eq!(reply[0], 21, "{reply:?}");
    assert_eq!(&reply[5..7], &[2, 70], "{reply:?}");
}

#[tokio::test]
async fn a_client_that_stalls_its_handshake_is_dropped_after_the_header_timeout() {
    let dir = TempDir::new("tls-stall");
    let ca = TestCa::new("stall");
    ca.leaf(&["api.test"], 30).write(dir.path(), "cert");
    let spy = Spy::ok().await;
    // header read timeout = min(idle_timeout, 30s) = 1s.
    let gw = start(
        &dir,
        &tls_config(&["cert"], &spy.url(), "idle_timeout = \"1s\"", ""),
        false,
    )
    .await;

    // Half a ClientHello, then nothing.
    let hello = tls11_client_hello();
    let mut stalled = TcpStream::connect(gw.addr).await.unwrap();
    stalled.write_all(&hello[..10]).await.unwrap();
    let mut silent = TcpStream::connect(gw.addr).await.unwrap();
    for stream in [&mut stalled, &mut silent] {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("a stalled handshake was kept open past the header timeout");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    let metrics = support::send("GET", &gw.admin_url("/metrics"), &[])
        .await
        .text();
    assert!(
        metrics.contains("corsgate_tls_handshake_failures_total 2"),
        "{metrics}"
    );
    // The gateway still serves.
    let conn = TlsConn::connect(gw.addr, "api.test", ca.client(&[b"h2"]))
        .await
        .unwrap();
    let answer = conn.http().await.send("GET", "api.test", "/", &[]).await;
    assert_eq!(answer.status, 200);
}

fn replace(dir: &TempDir, stem: &str, leaf: &Leaf) {
    support::write_atomically(&dir.join(&format!("{stem}.key")), &leaf.key_pem);
    support::write_atomically(&dir.join(&format!("{stem}.pem")), &leaf.chain_pem);
}

#[tokio::test]
async fn a_certificate_replaced_on_disk_is_served_to_new_connections_while_an_open_one_keeps_working()
 {
    let dir = TempDir::new("tls-watch");
    let ca = TestCa::new("watch");
    let old = ca.leaf(&["api.test"], 30);
    old.write(dir.path(), "cert");
    let spy = Spy::ok().await;
    let gw = start(&dir, &tls_config(&["cert"], &spy.url(), "", ""), true).await;

    let open = TlsConn::connect(gw.addr, "api.test", ca.client(&[b"h2"]))
        .await
        .unwrap();
    assert_eq!(open.peer().to_vec(), old.der.to_vec());
    let mut open = open.http().await;
    assert_eq!(open.send("GET", "api.test", "/1", &[]).await.status, 200);

    let new = ca.leaf(&["api.test"], 60);
    replace(&dir, "cert", &new);
    // The watcher picks it up: wait until a new connection sees it.
    wait_until_async(|| async { served(&gw, &ca, "api.test").await == new.der.to_vec() }).await;
    // The connection opened before the reload is still served.
    assert_eq!(open.send("GET", "api.test", "/2", &[]).await.status, 200);

    // SIGHUP's path too: a third certificate, reloaded by the handle.
    let third = ca.leaf(&["api.test"], 90);
    replace(&dir, "cert", &third);
    gw.handle.reload();
    wait_until_async(|| async { served(&gw, &ca, "api.test").await == third.der.to_vec() }).await;
    assert_eq!(open.send("GET", "api.test", "/3", &[]).await.status, 200);
}

#[tokio::test]
async fn an_invalid_or_mismatched_replacement_keeps_the_old_certificate() {
    let dir = TempDir::new("tls-invalid");
    let ca = TestCa::new("invalid");
    let old = ca.leaf(&["api.test"], 30);
    old.write(dir.path(), "cert");
    let spy = Spy::ok().await;
    let gw = start(&dir, &tls_config(&["cert"], &spy.url(), "", ""), false).await;
    assert_eq!(served(&gw, &ca, "api.test").await, old.der.to_vec());

    // A half-written certificate.
    let other = ca.leaf(&["api.test"], 30);
    let half = &other.chain_pem[..other.chain_pem.len() / 2];
    std::fs::write(dir.join("cert.pem"), half).unwrap();
    gw.handle.reload();
    assert_eq!(served(&gw, &ca, "api.test").await, old.der.to_vec());

    // A whole certificate, but the key is still the old one's.
    std::fs::write(dir.join("cert.pem"), &other.chain_pem).unwrap();
    gw.handle.reload();
    assert_eq!(served(&gw, &ca, "api.test").await, old.der.to_vec());

    // A missing key file.
    std::fs::remove_file(dir.join("cert.key")).unwrap();
    gw.handle.reload();
    assert_eq!(served(&gw, &ca, "api.test").await, old.der.to_vec());

    let metrics = support::send("GET", &gw.admin_url("/metrics"), &[])
        .await
        .text();
    assert!(
        metrics.contains("corsgate_reloads_total{result=\"failure\"}"),
        "{metrics}"
    );

    // The key arrives: the next reload takes both.
    std::fs::write(dir.join("cert.key"), &other.key_pem).unwrap();
    gw.handle.reload();
    assert_eq!(served(&gw, &ca, "api.test").await, other.der.to_vec());
}

#[tokio::test]
async fn the_redirect_listener_answers_308_to_the_same_url_over_https() {
    let dir = TempDir::new("tls-redirect");
    let ca = TestCa::new("redirect");
    ca.leaf(&["api.test"], 30).write(dir.path(), "cert");
    let spy = Spy::ok().await;
    let plain = support::closed_port().await;
    let gw = start(
        &dir,
        &tls_config(
            &["cert"],
            &spy.url(),
            "",
            &format!("redirect_listen = \"{plain}\""),
        ),
        false,
    )
    .await;
    let answer = support::send(
        "POST",
        &format!("http://{plain}/api/items?page=2"),
        &[("host", "api.test:8080")],
    )
    .await;
    assert_eq!(answer.status, 308);
    assert_eq!(
        answer.header("location"),
        Some(format!("https://api.test:{}/api/items?page=2", gw.addr.port()).as_str())
    );
    assert_eq!(spy.count(), 0, "the redirect listener never proxies");
}

#[tokio::test]
async fn the_expiry_of_each_certificate_is_a_metric() {
    let dir = TempDir::new("tls-metric");
    let ca = TestCa::new("metric");
    let leaf = ca.leaf(&["api.test"], 30);
    leaf.write(dir.path(), "cert");
    let spy = Spy::ok().await;
    let gw = start(&dir, &tls_config(&["cert"], &spy.url(), "", ""), false).await;
    let parsed = not_after(&leaf);
    let metrics = support::send("GET", &gw.admin_url("/metrics"), &[])
        .await
        .text();
    let line = format!(
        "corsgate_tls_certificate_expiry_seconds{{file=\"cert.pem\",name=\"api.test\"}} {parsed}"
    );
    assert!(metrics.contains(&line), "{line}\n{metrics}");
}

/// The leaf's notAfter, in seconds since the epoch.
fn not_after(leaf: &Leaf) -> i64 {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.der.as_ref()).unwrap();
    cert.validity().not_after.timestamp()
}

#[test]
fn check_refuses_a_key_of_another_certificate_and_warns_on_one_expiring_within_14_days() {
    let dir = TempDir::new("tls-check");
    let ca = TestCa::new("check");
    let good = ca.leaf(&["api.test"], 90);
    let soon = ca.leaf(&["soon.test"], 3);
    let other = ca.leaf(&["other.test"], 90);
    good.write(dir.path(), "good");
    soon.write(dir.path(), "soon");
    // A certificate with the key of another.
    std::fs::write(dir.join("mismatch.pem"), &good.chain_pem).unwrap();
    std::fs::write(dir.join("mismatch.key"), &other.key_pem).unwrap();
    std::fs::write(
        dir.join("broken.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(dir.join("broken.key"), &other.key_pem).unwrap();
    let config = dir.join("corsgate.toml");

    std::fs::write(
        &config,
        tls_config(&["good", "soon"], "http://127.0.0.1:9", "", ""),
    )
    .unwrap();
    let ran = support::binary::run(&["check", config.to_str().unwrap()], WAIT);
    assert_eq!(ran.code, Some(0), "{}{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout.contains("server.tls.certificates[1].cert_file")
            && ran.stdout.contains("within 14 days"),
        "{}",
        ran.stdout
    );
    assert!(ran.stdout.contains("valid (1 warning)"), "{}", ran.stdout);

    std::fs::write(
        &config,
        tls_config(
            &["good", "mismatch", "broken"],
            "http://127.0.0.1:9",
            "",
            "",
        ),
    )
    .unwrap();
    let ran = support::binary::run(&["check", config.to_str().unwrap()], WAIT);
    assert_eq!(ran.code, Some(1), "{}{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout.contains("server.tls.certificates[1].key_file")
            && ran.stdout.contains("does not belong to the certificate"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("server.tls.certificates[2].cert_file"),
        "{}",
        ran.stdout
    );
    // Located at the line of the table's entry.
    assert!(ran.stdout.contains("corsgate.toml:7:"), "{}", ran.stdout);
}

#[test]
fn a_tls_table_without_certificates_or_with_a_bad_redirect_address_is_refused_at_load() {
    let text = "[server]\nlisten = \"127.0.0.1:8443\"\n[server.tls]\nredirect_listen = \"127.0.0.1:8443\"\ncertficates = []\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9\"\n";
    let checked = corsgate_config::check(text);
    let problems: Vec<String> = checked.problems.iter().map(ToString::to_string).collect();
    let all = problems.join("\n");
    assert!(all.contains("did you mean \"certificates\""), "{all}");
    assert!(all.contains("server.tls.certificates"), "{all}");
    assert!(all.contains("an address of its own"), "{all}");
    assert!(checked.gateway.is_none());
}

/// Runs `browser/harness.mjs` on one document; the JSON line of each scenario.
fn run_harness(dir: &TempDir, document: &serde_json::Value) -> Vec<serde_json::Value> {
    let browser = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../browser");
    let install = "run `bash scripts/install-test-deps.sh`";
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium is missing: {install}"
    );
    assert!(
        browser.join("node_modules/playwright-core").exists(),
        "the browser harness's node modules are missing: {install}"
    );
    let input = dir.write("scenarios.json", &serde_json::to_vec(document).unwrap());
    let log = dir.join("harness.log");
    let mut child = std::process::Command::new("node")
        .arg(browser.join("harness.mjs"))
        .arg(&input)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("cannot start node");
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut text);
        text
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the harness hung: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = reader.join().unwrap();
    assert!(
        status.success(),
        "harness failed: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Chromium, trusting the test certificates by their SPKI pins only (not by
/// ignoring certificate errors), on an https page of one origin calls an
/// https API of another with credentials: the API sets a `Secure;
/// SameSite=None` cookie, and the next credentialed request, after its
/// preflight, carries it to the upstream. The two origins are one site
/// (`corsgate.localhost`): Chromium blocks third-party cookies, so a
/// cross-site pair would test its cookie policy, not the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_sends_a_secure_samesite_none_cookie_across_origins_over_https() {
    let dir = TempDir::new("tls-browser");
    let ca = TestCa::new("browser");
    let page_leaf = ca.leaf(&["app.corsgate.localhost"], 30);
    let api_leaf = ca.leaf(&["api.corsgate.localhost"], 30);
    page_leaf.write(dir.path(), "page");
    api_leaf.write(dir.path(), "api");

    let page_upstream = Spy::start(|_| support::Reply {
        body: "<!doctype html><title>app</title>".to_owned(),
        ..support::Reply::ok().header("content-type", "text/html; charset=utf-8")
    })
    .await;
    let page_dir = TempDir::new("tls-browser-page");
    std::fs::copy(dir.join("page.pem"), page_dir.join("page.pem")).unwrap();
    std::fs::copy(dir.join("page.key"), page_dir.join("page.key")).unwrap();
    let page = start(
        &page_dir,
        &tls_config(&["page"], &page_upstream.url(), "", ""),
        false,
    )
    .await;
    let page_origin = format!("https://app.corsgate.localhost:{}", page.addr.port());

    let api_upstream = Spy::start(|seen| {
        if seen.uri.path() == "/login" {
            support::Reply::ok().header("set-cookie", "sid=s3cret; Secure; SameSite=None; Path=/")
        } else {
            support::Reply::ok()
        }
    })
    .await;
    let api_config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n\
         [server.tls]\ncertificates = [{{ cert_file = \"api.pem\", key_file = \"api.key\" }}]\n\n\
         [server.cors]\nallow_origins = [\"{page_origin}\"]\nallow_credentials = true\n\
         allow_methods = [\"PUT\"]\nallow_headers = [\"x-token\"]\n\n{}",
        route("/", &api_upstream.url(), "")
    );
    let api = start(&dir, &api_config, false).await;
    let api_url = format!("https://api.corsgate.localhost:{}", api.addr.port());

    let document = serde_json::json!({
        "browserArgs": [format!(
            "--ignore-certificate-errors-spki-list={},{}",
            page_leaf.spki_pin, api_leaf.spki_pin
        )],
        "stepTimeoutMs": 8000,
        "scenarios": [{
            "name": "https-credentialed-cookie",
            "pageUrl": format!("{page_origin}/"),
            "steps": [
                {"kind": "fetch", "url": format!("{api_url}/login"),
                 "init": {"method": "POST", "credentials": "include", "body": "u=1"}},
                {"kind": "fetch", "url": format!("{api_url}/me"),
                 "init": {"method": "PUT", "credentials": "include",
                          "headers": {"x-token": "t"}, "body": "x"}},
            ],
        }],
    });
    let results = run_harness(&dir, &document);
    let result = &results[0];
    assert_eq!(result["pageStatus"], 200, "{result:#}");
    let steps = result["steps"].as_array().unwrap();
    for step in steps {
        assert_eq!(step["ok"], true, "{result:#}");
        assert_eq!(step["status"], 200, "{result:#}");
    }
    assert_eq!(
        steps[1]["preflights"].as_array().map(Vec::len),
        Some(1),
        "{result:#}"
    );
    // The upstream got the cookie, and saw the request as https.
    let me = api_upstream
        .requests()
        .into_iter()
        .find(|s| s.uri.path() == "/me")
        .expect("the credentialed PUT reached the upstream");
    assert_eq!(me.headers["cookie"], "sid=s3cret");
    assert_eq!(me.headers["x-forwarded-proto"], "https");
}

/// `serve`'s banner names a TLS listener with `https://`, so the address it
/// prints (and the curl commands built from it) work as printed; the test
/// kit reads the address back from it and a TLS connection is answered there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_banner_names_a_tls_listener_with_https() {
    let ca = TestCa::new("banner");
    let dir = TempDir::new("tls-banner");
    ca.leaf(&["api.test"], 30).write(dir.path(), "api");
    let text = tls_config(&["api"], "http://127.0.0.1:9", "", "");
    let mut serve = Serve::start_in(&dir, &text, Stderr::Read);
    let (listen, _) = serve.addresses();
    assert!(
        serve.banner[0].contains(&format!("listening on https://{listen}")),
        "{:?}",
        serve.banner
    );
    let conn = TlsConn::connect(listen, "api.test", ca.client(&[b"http/1.1"])).await;
    assert!(conn.is_ok(), "no TLS handshake at the printed address");
}
