//! `corsgate import --from nginx` of the TLS to upstreams: `proxy_pass
//! https://` with its `proxy_ssl_*` directives, and `grpc_pass grpc://` and
//! `grpcs://` with `grpc_ssl_*`. The output is checked with the real
//! `corsgate check` and, for the mTLS case, served: a gateway started on the
//! imported file reaches an upstream that requires the client certificate.

mod support;

use std::path::Path;
use std::process::Command;

use corsgate_gateway::Options;
use support::tls::TestCa;
use support::tlsup::Up;
use support::{Gw, TempDir};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn corsgate(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_corsgate"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Imports `nginx` (written to `dir/nginx.conf`), writes the output to
/// `dir/corsgate.toml` and runs `corsgate check` on it: the import and the
/// check must both succeed.
fn import(dir: &TempDir, nginx: &str) -> Run {
    std::fs::write(dir.join("nginx.conf"), nginx).unwrap();
    let run = corsgate(dir.path(), &["import", "--from", "nginx", "nginx.conf"]);
    assert_eq!(
        run.code, 0,
        "import failed:\n{}\n{}",
        run.stdout, run.stderr
    );
    std::fs::write(dir.join("corsgate.toml"), &run.stdout).unwrap();
    let check = corsgate(dir.path(), &["check", "corsgate.toml"]);
    assert_eq!(
        check.code, 0,
        "the imported file does not pass check:\n{}\n{}\n{}",
        run.stdout, check.stdout, check.stderr
    );
    run
}

fn path(dir: &TempDir, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_proxy_pass_with_a_client_certificate_imports_and_reaches_the_upstream() {
    let dir = TempDir::new("import-tls-mtls");
    let upstream_ca = TestCa::new("import-upstream");
    std::fs::write(dir.join("upstream-ca.pem"), &upstream_ca.pem).unwrap();
    // The upstream's certificate names a host, not the address proxy_pass
    // connects to: only proxy_ssl_name makes it verify.
    let leaf = upstream_ca.leaf(&["api.internal"], 30);
    let client_ca = TestCa::new("import-client");
    client_ca
        .client_leaf("gateway", 30)
        .write(dir.path(), "client");
    let up = Up::tls(&leaf, &[b"h2", b"http/1.1"], Some(&client_ca)).await;
    let nginx = format!(
        "http {{\n\
         \x20   proxy_ssl_trusted_certificate {ca};\n\
         \x20   server {{\n\
         \x20       listen 443 ssl;\n\
         \x20       proxy_ssl_verify on;\n\
         \x20       location /api/ {{\n\
         \x20           proxy_pass https://{addr};\n\
         \x20           proxy_ssl_certificate {cert};\n\
         \x20           proxy_ssl_certificate_key {key};\n\
         \x20           proxy_ssl_name api.internal;\n\
         \x20           proxy_ssl_server_name on;\n\
         \x20           add_header Access-Control-Allow-Origin https://app.example.com always;\n\
         \x20       }}\n\
         \x20   }}\n\
         }}\n",
        ca = path(&dir, "upstream-ca.pem"),
        addr = up.addr,
        cert = path(&dir, "client.pem"),
        key = path(&dir, "client.key"),
    );
    let run = import(&dir, &nginx);
    let want = format!(
        "upstream = \"https://{addr}\"\n\n\
         [route.upstream_tls]\n\
         ca_file = \"{ca}\"\n\
         client_cert_file = \"{cert}\"\n\
         client_key_file = \"{key}\"\n\
         server_name = \"api.internal\"\n",
        addr = up.addr,
        ca = path(&dir, "upstream-ca.pem"),
        cert = path(&dir, "client.pem"),
        key = path(&dir, "client.key"),
    );
    assert!(run.stdout.contains(&want), "{}", run.stdout);
    // Verified in nginx too (inherited from the server block): no note
    // about it, and none about plain http.
    assert!(!run.stderr.contains("verif"), "{}", run.stderr);
    assert!(!run.stdout.contains("verif"), "{}", run.stdout);

    let gw = Gw::start_with(
        &run.stdout,
        Options::new()
            .listen("127.0.0.1:0".parse().unwrap())
            .config_path(dir.join("corsgate.toml")),
    )
    .await;
    let answer = support::send(
        "GET",
        &gw.url("/api/items"),
        &[("origin", "https://app.example.com")],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/api/items");
    assert!(seen[0].client_cert, "no client certificate shown");
}

#[test]
fn proxy_ssl_verify_off_is_refused_with_a_note_and_its_default_is_noted() {
    let dir = TempDir::new("import-tls-verify");
    let nginx = "server {\n\
                 \x20   location /off/ {\n\
                 \x20       proxy_pass https://127.0.0.1:9443;\n\
                 \x20       proxy_ssl_verify off;\n\
                 \x20       proxy_ssl_protocols TLSv1.2;\n\
                 \x20       proxy_ssl_server_name off;\n\
                 \x20   }\n\
                 \x20   location /default/ {\n\
                 \x20       proxy_pass https://127.0.0.1:9444;\n\
                 \x20   }\n\
                 }\n";
    let run = import(&dir, nginx);
    assert!(
        run.stdout.contains("upstream = \"https://127.0.0.1:9443\"")
            && run.stdout.contains("upstream = \"https://127.0.0.1:9444\""),
        "{}",
        run.stdout
    );
    // Nothing to set: no [route.upstream_tls] at all (the system's roots).
    assert!(
        !run.stdout.contains("[route.upstream_tls]"),
        "{}",
        run.stdout
    );
    for note in [
        "line 4: proxy_ssl_verify off: refused; corsgate always verifies an https:// upstream's certificate",
        "line 5: proxy_ssl_protocols: not carried over",
        "line 6: proxy_ssl_server_name off: corsgate always sends SNI",
        "line 8: nginx did not verify the upstream's certificate (proxy_ssl_verify is off by default)",
    ] {
        assert!(
            run.stdout.contains(note) || run.stderr.contains(note),
            "no note {note:?}:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
    // The old refusal of https upstreams is gone.
    assert!(!run.stdout.contains("plain http"), "{}", run.stdout);
}

#[test]
fn grpc_pass_becomes_an_h2c_or_https_upstream() {
    let dir = TempDir::new("import-tls-grpc");
    let ca = TestCa::new("import-grpc");
    std::fs::write(dir.join("grpc-ca.pem"), &ca.pem).unwrap();
    let nginx = format!(
        "server {{\n\
         \x20   listen 443 ssl http2;\n\
         \x20   location /pkg.Greeter/ {{\n\
         \x20       grpc_pass grpc://127.0.0.1:50051;\n\
         \x20   }}\n\
         \x20   location /pkg.Plain/ {{\n\
         \x20       grpc_pass 127.0.0.1:50052;\n\
         \x20   }}\n\
         \x20   location /pkg.Secure/ {{\n\
         \x20       grpc_pass grpcs://127.0.0.1:50053;\n\
         \x20       grpc_ssl_trusted_certificate {ca};\n\
         \x20       grpc_ssl_verify on;\n\
         \x20   }}\n\
         }}\n",
        ca = path(&dir, "grpc-ca.pem"),
    );
    let run = import(&dir, &nginx);
    for want in [
        "path = \"/pkg.Greeter\"\nupstream = \"h2c://127.0.0.1:50051\"\n",
        "path = \"/pkg.Plain\"\nupstream = \"h2c://127.0.0.1:50052\"\n",
        &format!(
            "path = \"/pkg.Secure\"\nupstream = \"https://127.0.0.1:50053\"\n\n[route.upstream_tls]\nca_file = \"{}\"\n",
            path(&dir, "grpc-ca.pem")
        ),
    ] {
        assert!(run.stdout.contains(want), "no {want:?} in\n{}", run.stdout);
    }
    assert!(!run.stdout.contains("verif"), "{}", run.stdout);
}

#[test]
fn a_relative_certificate_path_and_a_half_client_certificate_are_noted() {
    let dir = TempDir::new("import-tls-relative");
    let ca = TestCa::new("import-relative");
    std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
    let nginx = "location / {\n\
                 \x20   proxy_pass https://127.0.0.1:9443;\n\
                 \x20   proxy_ssl_trusted_certificate ca.pem;\n\
                 \x20   proxy_ssl_certificate client.pem;\n\
                 \x20   proxy_ssl_verify on;\n\
                 }\n";
    let run = import(&dir, nginx);
    assert!(
        run.stdout
            .contains("[route.upstream_tls]\nca_file = \"ca.pem\"\n"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("client_cert_file = "),
        "{}",
        run.stdout
    );
    for note in [
        "line 3: proxy_ssl_trusted_certificate ca.pem: nginx read a relative path from its prefix directory",
        "proxy_ssl_certificate and proxy_ssl_certificate_key go together",
    ] {
        assert!(
            run.stdout.contains(note) || run.stderr.contains(note),
            "no note {note:?}:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
}
