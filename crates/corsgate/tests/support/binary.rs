//! The `corsgate` binary as a child process: `serve` with its banner and log
//! lines read on threads (or its stderr left unread, as a stalled log pipe), and
//! one-shot commands bounded in time.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::WAIT;

pub const BIN: &str = env!("CARGO_BIN_EXE_corsgate");

/// What happens to the log lines of a `serve` process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// Read line by line, kept for [`Serve::stderr`].
    Read,
    /// A pipe nobody reads: once its buffer is full, writes to it block.
    Stalled,
}

/// A `corsgate serve` process, killed when dropped.
pub struct Serve {
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Held open and never read (`Stderr::Stalled`).
    _stalled: Option<ChildStderr>,
    /// Lines of stdout read so far.
    pub banner: Vec<String>,
}

impl Serve {
    pub fn start(config: &Path, stderr: Stderr) -> Serve {
        Serve::start_args(&["--config", config.to_str().unwrap()], stderr)
    }

    /// Starts `serve ARGS`.
    pub fn start_args(args: &[&str], stderr: Stderr) -> Serve {
        Serve::spawn(Command::new(BIN), args, stderr)
    }

    /// Starts `serve` under `prlimit --nofile=LIMIT` (`SOFT:HARD`).
    pub fn start_under_nofile(config: &Path, limit: &str, stderr: Stderr) -> Serve {
        let mut command = Command::new("prlimit");
        command.arg(format!("--nofile={limit}")).arg(BIN);
        Serve::spawn(command, &["--config", config.to_str().unwrap()], stderr)
    }

    fn spawn(mut command: Command, args: &[&str], stderr: Stderr) -> Serve {
        let mut child = command
            .arg("serve")
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start corsgate");
        let (tx, stdout) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let lines = Arc::new(Mutex::new(Vec::new()));
        let err = child.stderr.take().unwrap();
        let stalled = match stderr {
            Stderr::Stalled => Some(err),
            Stderr::Read => {
                let lines = lines.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(err);
                    let mut line = Vec::new();
                    while let Ok(n) = reader.read_until(b'\n', &mut line) {
                        if n == 0 {
                            break;
                        }
                        lines
                            .lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&line).trim_end().to_owned());
                        line.clear();
                    }
                });
                None
            }
        };
        Serve {
            child,
            stdout,
            stderr: lines,
            _stalled: stalled,
            banner: Vec::new(),
        }
    }

    /// The gateway and admin addresses from the banner (text, or the JSON
    /// object of `--log-format json`).
    pub fn addresses(&mut self) -> (SocketAddr, SocketAddr) {
        let listen = self.wait_line("listening");
        if listen.starts_with('{') {
            let banner: serde_json::Value = serde_json::from_str(&listen).unwrap();
            let addr = |key: &str| {
                banner[key].as_str().unwrap()["http://".len()..]
                    .parse()
                    .unwrap()
            };
            return (addr("listen"), addr("admin"));
        }
        let listen = listen.rsplit("http://").next().unwrap().parse().unwrap();
        let admin = self.wait_line("admin: http://");
        let admin = admin
            .split("http://")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        (listen, admin)
    }

    /// Reads stdout until a line contains `needle` (kept in [`Serve::banner`],
    /// as every line read); returns that line.
    pub fn wait_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    self.banner.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} on stdout; got {:?}; stderr {:?}",
                    self.banner,
                    self.stderr()
                ),
            }
        }
    }

    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for a log line containing `needle`.
    pub fn wait_stderr(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(line) = self.stderr().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?}: {:?}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `within` for the process to exit; `None` if it is still running.
    pub fn exit_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Serve {
    /// Sends signal `name` (`TERM`, `HUP`, …) with the shell's own kill.
    pub fn signal(&self, name: &str) {
        let status = Command::new("sh")
            .args(["-c", &format!("kill -{name} {}", self.child.id())])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to [`WAIT`] for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        self.exit_within(WAIT)
            .expect("corsgate did not exit in time")
            .code()
    }

    /// The process id, for its /proc entries.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the process (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("no VmHWM in /proc/PID/status")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a one-shot command did.
#[derive(Debug)]
pub struct Ran {
    /// `None` when killed by a signal (a stack overflow's SIGABRT) or by the
    /// time limit.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Killed after `within`.
    pub timed_out: bool,
}

/// Runs `corsgate ARGS`, killed after `within` (a hang guard).
pub fn run(args: &[&str], within: Duration) -> Ran {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start corsgate");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = out.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    });
    let err = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = err.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    });
    let deadline = Instant::now() + within;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        timed_out,
    }
}
