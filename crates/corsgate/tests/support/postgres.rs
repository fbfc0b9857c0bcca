//! A real PostgreSQL server for one test, from Debian's `postgresql` package:
//! `initdb` into a fresh directory and `postgres` on a free loopback port, as
//! the `postgres` user when the tests run as root (`initdb` refuses root).
//! Stopped and removed on drop. Missing binaries fail the test (run
//! `bash scripts/install-test-deps.sh`); they never skip it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

/// The newest `/usr/lib/postgresql/*/bin`.
fn bindir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server in /usr/lib/postgresql/*/bin: run `bash scripts/install-test-deps.sh`"
        )
    })
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// A PostgreSQL server of its own.
pub struct Postgres {
    bin: PathBuf,
    dir: TempDir,
    root: bool,
    port: u16,
    child: Option<Child>,
}

impl Postgres {
    /// A new cluster (superuser `corsgate`, trust authentication on
    /// loopback), started and ready.
    pub fn start() -> Postgres {
        let bin = bindir();
        let dir = TempDir::new("postgres");
        let root = is_root();
        let mut pg = Postgres {
            bin,
            dir,
            root,
            port: free_port(),
            child: None,
        };
        if root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(pg.dir.path())
                .status()
                .expect("chown");
            assert!(
                status.success(),
                "chown postgres {}",
                pg.dir.path().display()
            );
        }
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(pg.data())
            .args(["-A", "trust", "-U", "corsgate", "--no-sync", "-E", "UTF8"])
            .output()
            .expect("initdb");
        assert!(out.status.success(), "initdb failed: {}", text(&out));
        pg.start_on(pg.port);
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    /// Starts the server (again) on `port`, and waits until it accepts
    /// connections.
    pub fn start_on(&mut self, port: u16) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.dir.join(&format!("log-{port}"))).unwrap();
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data())
            .arg("-k")
            .arg(self.dir.path())
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            // No fsync: the data only has to outlive the process (stop()
            // kills it), not the machine. Commits stay synchronous, so a
            // write acknowledged before stop() is there after the restart.
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("postgres");
        self.child = Some(child);
        self.wait_ready(port);
    }

    fn wait_ready(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                .args(["-U", "corsgate", "-d", "postgres"])
                .status()
                .expect("pg_isready");
            if ready.success() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("postgres exited ({status}): {}", self.log(port));
            }
            assert!(
                Instant::now() < deadline,
                "postgres not ready within 20 s: {}",
                self.log(port)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self, port: u16) -> String {
        std::fs::read_to_string(self.dir.join(&format!("log-{port}"))).unwrap_or_default()
    }

    /// The port it was first started on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of a database on `port`.
    pub fn url_on(&self, port: u16, database: &str) -> String {
        format!("postgres://corsgate@127.0.0.1:{port}/{database}?sslmode=disable")
    }

    /// The URL of a database.
    pub fn url(&self, database: &str) -> String {
        self.url_on(self.port, database)
    }

    /// Stops the server at once (SIGQUIT: immediate shutdown, as a crash or
    /// a killed pod) and waits for it to be gone.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // The postmaster's pid (runuser is its parent when running as root).
        let pid = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().map(str::to_owned));
        if let Some(pid) = pid {
            let _ = Command::new("kill").args(["-QUIT", &pid]).status();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.wait();
        // The postmaster removes its pid file last; wait for it so that a
        // restart on the same directory is not refused.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.data().join("postmaster.pid").exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_file(self.data().join("postmaster.pid"));
    }

    /// Runs SQL with psql on `port` (`-At`: bare values), failing the test
    /// on an error.
    pub fn sql_on(&self, port: u16, database: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "corsgate"])
            .args(["-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .output()
            .expect("psql");
        assert!(out.status.success(), "psql {sql:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Runs SQL with psql.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        self.sql_on(self.port, database, sql)
    }

    /// Creates a database.
    pub fn create_database(&self, name: &str) {
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
    }

    /// The directory the tests may put files in (a gateway's configuration).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
