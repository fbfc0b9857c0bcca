//! Full TLS handshakes against the https listener's own rustls configuration,
//! in memory (no sockets, no runtime), to count the server side's
//! instructions under callgrind: only `server_step` is collected.
//!
//! ```text
//! cargo build --release -p corsgate-gateway --features bench --example tls_handshake
//! valgrind --tool=callgrind --toggle-collect='*server_step*' \
//!     target/release/examples/tls_handshake 10 pq
//! ```
//!
//! Arguments: the number of handshakes (1 to 1000, default 1), and the key
//! exchange the client offers first: `pq` (X25519MLKEM768, as Chromium and
//! Firefox) or `x25519` (as OpenSSL 3.0 clients). The certificate is ECDSA
//! P-256 (what ACME CAs issue by default), made at start; the client offers
//! ALPN `h2`, and TLS 1.3 is negotiated. Divide the collected count by the
//! number of handshakes.

use std::sync::Arc;

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, RootCertStore, ServerConnection};

fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args
        .next()
        .map_or(1, |n| n.parse().expect("a number of handshakes"));
    assert!((1..=1000).contains(&count), "1 to 1000 handshakes");
    let pq = match args.next().as_deref() {
        None | Some("pq") => true,
        Some("x25519") => false,
        Some(other) => panic!("pq or x25519, not {other}"),
    };

    let dir = std::env::temp_dir().join(format!("corsgate-handshake-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let key = rcgen::KeyPair::generate().expect("a key");
    let cert = rcgen::CertificateParams::new(vec!["api.example.com".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("a certificate");
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).expect("written");
    std::fs::write(&key_file, key.serialize_pem()).expect("written");
    let server = corsgate_gateway::bench::tls_server_config(&cert_file, &key_file)
        .expect("the listener's configuration");
    let _ = std::fs::remove_dir_all(&dir);

    let mut roots = RootCertStore::empty();
    roots.add(cert.der().clone()).expect("a root");
    let mut provider = aws_lc_rs::default_provider();
    if !pq {
        provider.kx_groups = vec![aws_lc_rs::kx_group::X25519];
    }
    let mut client = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec()];
    // Every handshake a full one, as a new browser would make.
    client.resumption = rustls::client::Resumption::disabled();
    let client = Arc::new(client);

    for _ in 0..count {
        handshake(&client, &server);
    }
}

fn handshake(client: &Arc<rustls::ClientConfig>, server: &Arc<rustls::ServerConfig>) {
    let name = ServerName::try_from("api.example.com").expect("a name");
    let mut c = ClientConnection::new(client.clone(), name).expect("a client");
    let mut s = ServerConnection::new(server.clone()).expect("a server");
    let mut to_server = Vec::new();
    let mut to_client = Vec::new();
    for _ in 0..10 {
        while c.wants_write() {
            c.write_tls(&mut to_server).expect("client writes");
        }
        server_step(&mut s, &mut to_server, &mut to_client);
        let mut input = &to_client[..];
        while !input.is_empty() {
            c.read_tls(&mut input).expect("client reads");
            c.process_new_packets().expect("client accepts the server");
        }
        to_client.clear();
        if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() {
            assert_eq!(s.alpn_protocol(), Some(&b"h2"[..]));
            return;
        }
    }
    panic!("the handshake did not finish");
}

/// The server's share of the handshake: reading the client's records,
/// answering them, writing its own. The only function callgrind collects.
#[inline(never)]
fn server_step(s: &mut ServerConnection, input: &mut Vec<u8>, output: &mut Vec<u8>) {
    let mut read = &input[..];
    while !read.is_empty() {
        s.read_tls(&mut read).expect("server reads");
        s.process_new_packets().expect("server accepts the client");
    }
    input.clear();
    while s.wants_write() {
        s.write_tls(output).expect("server writes");
    }
}
