//! TLS to a PostgreSQL registry, against a real server (Debian's
//! `postgresql`) switched to `ssl = on` with a certificate made here, whose
//! `pg_hba.conf` refuses every connection in the clear: `verify-full` with
//! the right CA connects (the CLI, and a gateway's store and listener), a
//! wrong CA is refused with an error that names the certificate, `require`
//! connects without checking, a client certificate is presented where the
//! server asks for one, and `check` refuses a `ca_file` that would never be
//! read, with its line and column.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use support::binary::{Ran, run};
use support::postgres::Postgres;
use support::tls::TestCa;
use support::{Gw, TempDir, client, send_map};

const LIMIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "registry-tls-admin-token";

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// Writes a file the server reads: owned by the server's user, private.
fn server_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    if is_root() {
        let status = Command::new("chown")
            .arg("postgres:postgres")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let status = Command::new("chmod").arg("600").arg(path).status().unwrap();
    assert!(status.success());
}

/// Turns TLS on (certificate for 127.0.0.1 from `ca`, client certificates
/// checked against `ca`), refuses every connection in the clear, and asks
/// for a client certificate on database `mtls`; waits until new
/// connections see it.
fn enable_tls(pg: &Postgres, ca: &TestCa) {
    let leaf = ca.leaf(&["127.0.0.1"], 30);
    let cert = pg.dir().join("server.crt");
    let key = pg.dir().join("server.key");
    let root = pg.dir().join("root.crt");
    server_file(&cert, &leaf.chain_pem);
    server_file(&key, &leaf.key_pem);
    server_file(&root, &ca.pem);
    let hba = pg.sql("postgres", "SHOW hba_file");
    server_file(
        Path::new(&hba),
        "local all all trust\n\
         hostssl mtls all 127.0.0.1/32 trust clientcert=verify-ca\n\
         hostnossl all all 127.0.0.1/32 reject\n\
         hostssl all all 127.0.0.1/32 trust\n",
    );
    for sql in [
        format!("ALTER SYSTEM SET ssl_cert_file = '{}'", cert.display()),
        format!("ALTER SYSTEM SET ssl_key_file = '{}'", key.display()),
        format!("ALTER SYSTEM SET ssl_ca_file = '{}'", root.display()),
        "ALTER SYSTEM SET ssl = on".to_owned(),
        "SELECT pg_reload_conf()".to_owned(),
    ] {
        pg.sql("postgres", &sql);
    }
    // psql prefers TLS: its own session says when the server offers it.
    let started = Instant::now();
    while pg.sql(
        "postgres",
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    ) != "t"
    {
        assert!(started.elapsed() < LIMIT, "ssl = on not applied");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Files {
    dir: TempDir,
}

impl Files {
    /// A configuration with `[registry]` `lines`, written to NAME.toml.
    fn config(&self, name: &str, lines: &str) -> String {
        let path = self.dir.join(&format!("{name}.toml"));
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nadmin_token_file = \"{}\"\n\n[registry]\n{lines}\nretry_max = \"1s\"\n\n[[route]]\npath = \"/oauth2/token\"\nupstream = \"http://127.0.0.1:9\"\ncors = {{ clients = {{ identify = [\"form\"] }} }}\n",
            self.dir.join("token").display()
        );
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

fn corsgate(args: &[&str]) -> Ran {
    tokio::task::block_in_place(|| run(args, LIMIT))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_connects_to_postgres_over_tls_and_checks_the_certificate() {
    let pg = tokio::task::spawn_blocking(Postgres::start).await.unwrap();
    let ca = TestCa::new("postgres");
    let other = TestCa::new("someone else");
    tokio::task::block_in_place(|| {
        pg.create_database("registry");
        pg.create_database("mtls");
        enable_tls(&pg, &ca);
    });
    let files = Files {
        dir: TempDir::new("pg-tls"),
    };
    std::fs::write(files.dir.join("token"), TOKEN).unwrap();
    std::fs::write(files.dir.join("ca.pem"), &ca.pem).unwrap();
    std::fs::write(files.dir.join("other.pem"), &other.pem).unwrap();
    let me = ca.client_leaf("corsgate", 30);
    std::fs::write(files.dir.join("me.pem"), &me.chain_pem).unwrap();
    std::fs::write(files.dir.join("me.key"), &me.key_pem).unwrap();
    let port = pg.port();
    let url =
        |db: &str, mode: &str| format!("postgres://corsgate@127.0.0.1:{port}/{db}?sslmode={mode}");

    // The server takes no connection in the clear.
    let clear = files.config(
        "clear",
        &format!("database = \"{}\"", url("registry", "disable")),
    );
    let ran = corsgate(&["registry", "migrate", "--config", &clear]);
    assert_ne!(ran.code, Some(0), "{ran:?}");
    assert!(ran.stderr.contains("no encryption"), "{}", ran.stderr);

    // verify-full with the server's CA (relative to the file's folder).
    let verified = files.config(
        "verified",
        &format!(
            "database = \"{}\"\nca_file = \"ca.pem\"",
            url("registry", "verify-full")
        ),
    );
    let ran = corsgate(&["check", &verified]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let ran = corsgate(&[
        "clients",
        "set",
        "spa",
        "--origin",
        "https://spa.example",
        "--config",
        &verified,
    ]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let ran = corsgate(&["registry", "status", "--config", &verified]);
    assert_eq!(ran.code, Some(0), "{ran:?}");

    // Another CA: refused, and the error says it is the certificate.
    let wrong = files.config(
        "wrong",
        &format!(
            "database = \"{}\"\nca_file = \"other.pem\"",
            url("registry", "verify-full")
        ),
    );
    let ran = corsgate(&["registry", "status", "--config", &wrong]);
    assert_eq!(ran.code, Some(2), "{ran:?}");
    assert!(
        ran.stderr.contains("certificate") && ran.stderr.contains("UnknownIssuer"),
        "{}",
        ran.stderr
    );

    // require: encrypted, the certificate not checked.
    let require = files.config(
        "require",
        &format!("database = \"{}\"", url("registry", "require")),
    );
    let ran = corsgate(&["registry", "status", "--config", &require]);
    assert_eq!(ran.code, Some(0), "{ran:?}");

    // A ca_file that require would never read: refused by check, located.
    let useless = files.config(
        "useless",
        &format!(
            "database = \"{}\"\nca_file = \"ca.pem\"",
            url("registry", "require")
        ),
    );
    let ran = corsgate(&["check", &useless]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    let all = format!("{}{}", ran.stdout, ran.stderr);
    assert!(
        all.contains(":8:1") && all.contains("registry.ca_file") && all.contains("verify-full"),
        "{all}"
    );

    // A database that asks for a client certificate: refused without one,
    // served with ours.
    let anonymous = files.config(
        "anonymous",
        &format!(
            "database = \"{}\"\nca_file = \"ca.pem\"",
            url("mtls", "verify-full")
        ),
    );
    let ran = corsgate(&["registry", "migrate", "--config", &anonymous]);
    assert_ne!(ran.code, Some(0), "{ran:?}");
    let mutual = files.config(
        "mutual",
        &format!(
            "database = \"{}\"\nca_file = \"ca.pem\"\nclient_cert_file = \"me.pem\"\nclient_key_file = \"me.key\"",
            url("mtls", "verify-full")
        ),
    );
    let ran = corsgate(&["registry", "migrate", "--config", &mutual]);
    assert_eq!(ran.code, Some(0), "{ran:?}");

    // A gateway: its store and its listener both connect over TLS.
    let text = std::fs::read_to_string(&verified).unwrap().replace(
        "ca_file = \"ca.pem\"",
        &format!("ca_file = \"{}\"", files.dir.join("ca.pem").display()),
    );
    let gw = Gw::start(&text).await;
    let started = Instant::now();
    loop {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
        );
        let answer = send_map(
            &client(),
            "GET",
            &gw.admin_url("/registry"),
            headers,
            Bytes::new(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
        let status: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        if status["listener_up"] == true {
            assert_eq!(status["database_up"], true, "{status}");
            assert_eq!(status["clients"], 1, "{status}");
            break;
        }
        assert!(
            started.elapsed() < support::WAIT,
            "the listener never connected: {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sessions = tokio::task::block_in_place(|| {
        pg.sql(
            "postgres",
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'corsgate'",
        )
    });
    let (tls, total) = sessions.split_once('|').unwrap();
    assert_eq!(tls, total, "{sessions}");
    assert_ne!(total, "0", "{sessions}");
}
