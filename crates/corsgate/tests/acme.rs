//! Automatic certificates (`[server.tls.acme]`) against pebble, Let's
//! Encrypt's test CA (Debian package `pebble`), on loopback: first issuance
//! with tls-alpn-01 and with http-01, a restart that serves the cached
//! certificate without asking the CA, renewal, and a CA that is unreachable
//! at renewal time while the old certificate keeps serving. Pebble's root is
//! trusted by the test client only.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use support::pebble::{Pebble, free_port};
use support::tls::{TlsConn, client_trusting};
use support::{Gw, Spy, TempDir, WAIT, route};

const DOMAIN: &str = "api.corsgate.test";

struct Setup<'a> {
    dir: &'a TempDir,
    listen: SocketAddr,
    redirect: Option<SocketAddr>,
    upstream: String,
}

impl Setup<'_> {
    fn config(&self, directory: &str, ca_file: &str, acme_extra: &str) -> String {
        let redirect = self
            .redirect
            .map(|r| format!("redirect_listen = \"{r}\"\n"))
            .unwrap_or_default();
        format!(
            "[server]\nlisten = \"{}\"\nadmin_listen = \"127.0.0.1:0\"\n\n\
             [server.tls]\n{redirect}\n\
             [server.tls.acme]\ndomains = [\"{DOMAIN}\"]\ncontact = [\"mailto:ops@corsgate.test\"]\n\
             directory = \"{directory}\"\ndirectory_ca_file = \"{ca_file}\"\ncache_dir = \"acme-cache\"\n{acme_extra}\n\n{}",
            self.listen,
            route("/", &self.upstream, "")
        )
    }

    async fn start(&self, text: &str) -> Gw {
        Gw::in_dir(self.dir, text, false).await
    }
}

/// The certificate served for DOMAIN, once one verifies against `root`.
async fn wait_served(
    gw: &Gw,
    pebble: &Pebble,
    root: &CertificateDer<'static>,
    not: Option<&[u8]>,
) -> Vec<u8> {
    wait_served_for(gw, DOMAIN, root, not, pebble).await
}

async fn metrics(gw: &Gw) -> String {
    gw.metrics().await.text().to_owned()
}

async fn stop(mut gw: Gw) {
    gw.handle.shutdown();
    gw.stopped().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn_01_issues_then_a_restart_serves_the_cache_renews_and_keeps_serving_when_the_ca_is_down()
 {
    let dir = TempDir::new("acme-alpn");
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let pebble = Pebble::start(dir.path(), listen.port(), free_port()).await;
    let spy = Spy::ok().await;
    let setup = Setup {
        dir: &dir,
        listen,
        redirect: None,
        upstream: spy.url(),
    };
    let ca_file = pebble.api_ca_file.to_str().unwrap().to_owned();

    // First issuance.
    let gw = setup
        .start(&setup.config(&pebble.directory, &ca_file, ""))
        .await;
    let root = pebble.root().await;
    let first = wait_served(&gw, &pebble, &root, None).await;
    let conn = TlsConn::connect(gw.addr, DOMAIN, client_trusting(root.clone(), &[b"h2"]))
        .await
        .unwrap();
    let answer = conn.http().await.send("GET", DOMAIN, "/", &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(spy.last().headers["x-forwarded-proto"], "https");
    let m = metrics(&gw).await;
    assert!(
        m.contains("corsgate_acme_orders_total{result=\"success\"} 1"),
        "{m}"
    );
    assert!(
        dir.join("acme-cache")
            .join(format!("{DOMAIN}.key"))
            .exists()
    );
    stop(gw).await;

    // A restart serves the cached certificate; the CA is not even reachable.
    let nowhere = format!("https://{}/dir", support::closed_port().await);
    let gw = setup.start(&setup.config(&nowhere, &ca_file, "")).await;
    assert_eq!(wait_served(&gw, &pebble, &root, None).await, first);
    let m = metrics(&gw).await;
    assert!(
        m.contains("corsgate_acme_orders_total{result=\"success\"} 0")
            && m.contains("corsgate_acme_orders_total{result=\"failure\"} 0"),
        "no order at all: {m}"
    );
    stop(gw).await;

    // Renewal: with renew_before longer than the certificate lives, the cached
    // one is due at once; it serves until the new one is there.
    let renew = "renew_before = \"100000d\"";
    let gw = setup
        .start(&setup.config(&pebble.directory, &ca_file, renew))
        .await;
    let second = wait_served(&gw, &pebble, &root, Some(&first)).await;
    assert_ne!(second, first);
    stop(gw).await;

    // Due for renewal, and the CA is unreachable: the cached certificate
    // keeps serving, and the failure is counted.
    let gw = setup.start(&setup.config(&nowhere, &ca_file, renew)).await;
    gw.wait_metric("corsgate_acme_orders_total{result=\"failure\"}", |n| n >= 1)
        .await;
    assert_eq!(wait_served(&gw, &pebble, &root, None).await, second);
    stop(gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_01_is_answered_on_the_redirect_listener() {
    let dir = TempDir::new("acme-http");
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let redirect: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let pebble = Pebble::start(dir.path(), free_port(), redirect.port()).await;
    let spy = Spy::ok().await;
    let setup = Setup {
        dir: &dir,
        listen,
        redirect: Some(redirect),
        upstream: spy.url(),
    };
    let ca_file = pebble.api_ca_file.to_str().unwrap().to_owned();
    let gw = setup
        .start(&setup.config(&pebble.directory, &ca_file, "challenge = \"http-01\""))
        .await;
    let root = pebble.root().await;
    wait_served(&gw, &pebble, &root, None).await;
    // Any other request to the redirect listener is still a redirect.
    let answer = support::send(
        "GET",
        &format!("http://{redirect}/.well-known/acme-challenge/unknown"),
        &[("host", DOMAIN)],
    )
    .await;
    assert_eq!(answer.status, 308);
    stop(gw).await;
}

#[test]
fn a_bad_acme_table_is_refused_with_every_problem_at_once() {
    let text = "[server]\nlisten = \"127.0.0.1:8443\"\n[server.tls.acme]\n\
                domains = [\"*.example.com\", \"API.example.com\", \"localhost\"]\n\
                contact = [\"ops@example.com\"]\n\
                directory = \"http://acme.example.com/dir\"\n\
                challenge = \"http-01\"\nrenew_befor = \"30d\"\n\
                [[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9\"\n";
    let checked = corsgate_config::check(text);
    let all: Vec<String> = checked.problems.iter().map(ToString::to_string).collect();
    let all = all.join("\n");
    for needle in [
        "server.tls.acme.domains[0]",
        "dns-01",
        "use \"api.example.com\"",
        "server.tls.acme.domains[2]",
        "use \"mailto:ops@example.com\"",
        "https:// URL",
        "set server.tls.redirect_listen",
        "needs cache_dir",
        "did you mean \"renew_before\"",
    ] {
        assert!(all.contains(needle), "{needle}:\n{all}");
    }
    assert!(checked.gateway.is_none());
}

#[test]
fn check_refuses_a_directory_ca_file_that_is_not_a_certificate() {
    let dir = TempDir::new("acme-check");
    std::fs::write(dir.join("ca.pem"), "not a certificate\n").unwrap();
    let config = dir.join("corsgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:8443\"\n[server.tls.acme]\ndomains = [\"{DOMAIN}\"]\n\
             directory_ca_file = \"ca.pem\"\ncache_dir = \"cache\"\n\n{}",
            route("/", "http://127.0.0.1:9", "")
        ),
    )
    .unwrap();
    let ran = support::binary::run(&["check", config.to_str().unwrap()], WAIT);
    assert_eq!(ran.code, Some(1), "{}{}", ran.stdout, ran.stderr);
    assert!(
        ran.stdout
            .contains("corsgate.toml:5:21: server.tls.acme.directory_ca_file: error: \"ca.pem\": no certificate in it"),
        "{}",
        ran.stdout
    );
}

/// A second name for the reload test.
const OTHER: &str = "www.corsgate.test";

/// The certificate served for `name`, once one verifies against `root` for
/// that name (and differs from `not`).
async fn wait_served_for(
    gw: &Gw,
    name: &str,
    root: &CertificateDer<'static>,
    not: Option<&[u8]>,
    pebble: &Pebble,
) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(conn) =
            TlsConn::connect(gw.addr, name, client_trusting(root.clone(), &[b"h2"])).await
        {
            let der = conn.peer().to_vec();
            if Some(der.as_slice()) != not {
                return der;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no certificate for {name} served in time; pebble's log:\n{}",
            pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_orders_new_domains_and_from_a_new_directory_while_the_old_certificate_serves_and_refuses_a_new_challenge()
 {
    let dir = TempDir::new("acme-reload");
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let redirect: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let pebble = Pebble::start(dir.path(), listen.port(), redirect.port()).await;
    let other_dir = TempDir::new("acme-reload-other-ca");
    let other_ca = Pebble::start(other_dir.path(), listen.port(), redirect.port()).await;
    let spy = Spy::ok().await;
    let setup = Setup {
        dir: &dir,
        listen,
        redirect: Some(redirect),
        upstream: spy.url(),
    };
    let ca_file = pebble.api_ca_file.to_str().unwrap().to_owned();
    let gw = setup
        .start(&setup.config(&pebble.directory, &ca_file, ""))
        .await;
    let path = dir.join("corsgate.toml");
    let reload = |text: String| {
        std::fs::write(&path, text).unwrap();
        gw.handle.reload()
    };
    let root = pebble.root().await;
    let first = wait_served_for(&gw, DOMAIN, &root, None, &pebble).await;

    // A second domain (and another contact): applied live; the certificate
    // in place keeps serving its domain while the new one is ordered.
    let two_domains = |text: String| {
        text.replace(
            &format!("domains = [\"{DOMAIN}\"]"),
            &format!("domains = [\"{DOMAIN}\", \"{OTHER}\"]"),
        )
        .replace("mailto:ops@corsgate.test", "mailto:security@corsgate.test")
    };
    let text = two_domains(setup.config(&pebble.directory, &ca_file, ""));
    assert!(text.contains(OTHER));
    assert_eq!(
        reload(text),
        corsgate_gateway::ReloadOutcome::Applied { warnings: 0 }
    );
    assert!(
        TlsConn::connect(gw.addr, DOMAIN, client_trusting(root.clone(), &[b"h2"]))
            .await
            .is_ok(),
        "{DOMAIN} not served right after the reload"
    );
    let second = wait_served_for(&gw, OTHER, &root, None, &pebble).await;
    assert_ne!(second, first);
    assert_eq!(
        wait_served_for(&gw, DOMAIN, &root, None, &pebble).await,
        second,
        "one certificate for both names"
    );

    // Another CA: a certificate from it is ordered at once, the current one
    // serving until it is in.
    let other_root = other_ca.root().await;
    let other_ca_file = other_ca.api_ca_file.to_str().unwrap().to_owned();
    let text = two_domains(setup.config(&other_ca.directory, &other_ca_file, ""));
    assert_eq!(
        reload(text.clone()),
        corsgate_gateway::ReloadOutcome::Applied { warnings: 0 }
    );
    let third = wait_served_for(&gw, DOMAIN, &other_root, None, &other_ca).await;
    assert_ne!(third, second);
    let m = metrics(&gw).await;
    assert!(
        m.contains("corsgate_acme_orders_total{result=\"success\"} 3"),
        "{m}"
    );

    // The challenge cannot change on a reload: the file is refused, and the
    // running settings and certificate stay.
    let refused = text.replace("cache_dir = ", "challenge = \"http-01\"\ncache_dir = ");
    assert!(matches!(
        reload(refused),
        corsgate_gateway::ReloadOutcome::Invalid { errors: 1 }
    ));
    assert_eq!(
        wait_served_for(&gw, DOMAIN, &other_root, None, &other_ca).await,
        third
    );
    assert_eq!(reload(text), corsgate_gateway::ReloadOutcome::Unchanged);
    stop(gw).await;
}
