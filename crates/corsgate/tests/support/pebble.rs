//! Pebble, Let's Encrypt's test ACME server (Debian package `pebble`), on
//! free loopback ports with a configuration of its own, and its DNS stand-in
//! (`pebble-challtestsrv`) answering 127.0.0.1 for every name, so that its
//! validations reach the gateway on loopback.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::WAIT;
use super::tls::{TestCa, TlsConn};

const PEBBLE: &str = "/usr/bin/pebble";
const CHALLTESTSRV: &str = "/usr/bin/pebble-challtestsrv";

/// A running pebble; stopped on drop.
pub struct Pebble {
    children: Vec<Child>,
    /// The ACME directory URL.
    pub directory: String,
    /// The PEM file of the authority of pebble's own https certificate.
    pub api_ca_file: PathBuf,
    api_ca: TestCa,
    management: SocketAddr,
    dir: PathBuf,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

async fn wait_listening(addr: SocketAddr, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not listen on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Pebble {
    /// Starts pebble in `dir`; it validates tls-alpn-01 on `tls_port` and
    /// http-01 on `http_port` of 127.0.0.1.
    pub async fn start(dir: &Path, tls_port: u16, http_port: u16) -> Pebble {
        for bin in [PEBBLE, CHALLTESTSRV] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: run scripts/install-test-deps.sh (Debian package pebble)"
            );
        }
        let api_ca = TestCa::new("pebble-api");
        let api = api_ca.leaf(&["127.0.0.1", "localhost"], 30);
        let (cert, key) = api.write(dir, "pebble-api");
        let api_ca_file = dir.join("pebble-api-ca.pem");
        std::fs::write(&api_ca_file, &api_ca.pem).unwrap();
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let management: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let dns = format!("127.0.0.1:{}", free_port());
        let dns_management: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = dir.join("pebble.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"pebble": {{"listenAddress": "{listen}", "managementListenAddress": "{management}",
                 "certificate": "{}", "privateKey": "{}", "httpPort": {http_port}, "tlsPort": {tls_port},
                 "ocspResponderURL": "", "externalAccountBindingRequired": false}}}}"#,
                cert.display(),
                key.display()
            ),
        )
        .unwrap();
        let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
        let challtestsrv = Command::new(CHALLTESTSRV)
            .args([
                "-dns01",
                &dns,
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ])
            .args([
                "-management",
                &dns_management.to_string(),
                "-defaultIPv6",
                "",
            ])
            .args(["-defaultIPv4", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(log("challtestsrv.log"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pebble = Command::new(PEBBLE)
            .args(["-config", config.to_str().unwrap(), "-dnsserver", &dns])
            // Validate at once (no random sleep), and never reject a nonce
            // on purpose: the tests are about the gateway, not retries.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdin(Stdio::null())
            .stdout(log("pebble.log"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Pebble {
            children: vec![pebble, challtestsrv],
            directory: format!("https://{listen}/dir"),
            api_ca_file,
            api_ca,
            management,
            dir: dir.to_owned(),
        };
        wait_listening(dns_management, "pebble-challtestsrv").await;
        wait_listening(listen, "pebble").await;
        wait_listening(management, "pebble's management").await;
        started
    }

    /// What pebble logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pebble.log")).unwrap_or_default()
    }

    /// The root that signs pebble's certificates (made anew at each start).
    pub async fn root(&self) -> CertificateDer<'static> {
        let conn = TlsConn::connect(self.management, "127.0.0.1", self.api_ca.client(&[]))
            .await
            .unwrap();
        let mut http = conn.http().await;
        let answer = http
            .send("GET", &self.management.to_string(), "/roots/0", &[])
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        CertificateDer::from_pem_slice(&answer.body).unwrap()
    }
}
