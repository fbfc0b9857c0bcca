//! New HTTPS connections to the gateway's listener, end to end through the
//! binary: a returning client resumes its session (the TLS 1.3 tickets, sent
//! with the first response bytes, reach it over HTTP/1.1 and HTTP/2 alike), a
//! TLS 1.2 client is answered and resumes too, and clients that stall in the
//! middle of their handshakes hold up nobody else's.

mod support;

use std::sync::Arc;

use rustls::HandshakeKind;
use support::tls::{TestCa, TlsConn};
use support::{Gw, Spy, TempDir, WAIT, route};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// `[server.tls]` with the certificate `cert` (in the configuration's
/// directory), preflights from https://app.test allowed, one route to
/// `upstream`.
fn config(upstream: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n\
         [server.tls]\ncertificates = [{{ cert_file = \"cert.pem\", key_file = \"cert.key\" }}]\n\n\
         [server.cors]\nallow_origins = [\"https://app.test\"]\nallow_methods = [\"PUT\"]\n\n{}",
        route("/", upstream, "")
    )
}

async fn gateway(name: &str) -> (TempDir, TestCa, Spy, Gw) {
    let dir = TempDir::new(name);
    let ca = TestCa::new(name);
    ca.leaf(&["api.test"], 30).write(dir.path(), "cert");
    let spy = Spy::ok().await;
    let gw = Gw::in_dir(&dir, &config(&spy.url()), false).await;
    (dir, ca, spy, gw)
}

/// A preflight on a new connection made with `client`; returns how the
/// handshake went. The answer is the gateway's 204, and the connection closes
/// after it (`Connection: close` over HTTP/1.1).
async fn preflight(gw: &Gw, client: &Arc<rustls::ClientConfig>) -> HandshakeKind {
    let conn = TlsConn::connect(gw.addr, "api.test", client.clone())
        .await
        .expect("a handshake");
    let kind = conn
        .stream
        .get_ref()
        .1
        .handshake_kind()
        .expect("a finished handshake");
    let h2 = conn.alpn().as_deref() == Some(b"h2");
    let mut headers = vec![
        ("origin", "https://app.test"),
        ("access-control-request-method", "PUT"),
    ];
    if !h2 {
        headers.push(("connection", "close"));
    }
    let answer = conn
        .http()
        .await
        .send("OPTIONS", "api.test", "/items", &headers)
        .await;
    assert_eq!(answer.status, 204);
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://app.test")
    );
    kind
}

#[tokio::test]
async fn a_returning_client_resumes_its_session_over_http1_and_http2() {
    let (_dir, ca, spy, gw) = Box::pin(gateway("tls-accept-resume")).await;
    for alpn in [&b"http/1.1"[..], &b"h2"[..]] {
        // One configuration: its session cache keeps the tickets the gateway
        // sent with its first answer.
        let client = ca.client(&[alpn]);
        assert_eq!(preflight(&gw, &client).await, HandshakeKind::Full);
        assert_eq!(preflight(&gw, &client).await, HandshakeKind::Resumed);
        assert_eq!(preflight(&gw, &client).await, HandshakeKind::Resumed);
    }
    assert_eq!(spy.count(), 0, "preflights never reach the upstream");
}

#[tokio::test]
async fn a_tls12_client_is_answered_and_resumes() {
    let (_dir, ca, _spy, gw) = Box::pin(gateway("tls-accept-tls12")).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let mut client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    let client = Arc::new(client);
    // The client waits for the server's Finished before it sends anything:
    // the handshake ends, and the answer comes (TlsConn and send are bounded
    // by WAIT).
    assert_eq!(preflight(&gw, &client).await, HandshakeKind::Full);
    assert_eq!(preflight(&gw, &client).await, HandshakeKind::Resumed);
}

#[tokio::test]
async fn clients_stalled_in_their_handshakes_hold_up_no_other_handshake() {
    let (_dir, ca, _spy, gw) = Box::pin(gateway("tls-accept-stalled")).await;
    // Eight connections that send the first bytes of a ClientHello (a
    // handshake record's header) and then nothing.
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
        tcp.write_all(&[22, 3, 1, 2, 0]).await.unwrap();
        stalled.push(tcp);
    }
    // A ninth client is served while they wait (within WAIT, far below the
    // header read timeout that ends the stalled ones).
    let client = ca.client(&[b"http/1.1"]);
    let served = tokio::time::timeout(WAIT, preflight(&gw, &client))
        .await
        .expect("a handshake waited for the stalled ones");
    assert_eq!(served, HandshakeKind::Full);
    drop(stalled);
}
