//! The `corsgate` binary as a child process: `serve` with its banner and log
//! lines read on threads (or its stderr left unread, as a stalled log pipe), and
//! one-shot commands bounded in time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{TempDir, WAIT, eventually_blocking};

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
    /// The thread reading stderr (`Stderr::Read`), done at its end.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    /// Lines of stdout read so far.
    pub banner: Vec<String>,
}

impl Serve {
    pub fn start(config: &Path, stderr: Stderr) -> Serve {
        Serve::start_args(&["--config", config.to_str().unwrap()], stderr)
    }

    /// Writes `text` to `corsgate.toml` in `dir` and starts `serve` on it.
    pub fn start_in(dir: &TempDir, text: &str, stderr: Stderr) -> Serve {
        Serve::start(&dir.write("corsgate.toml", text), stderr)
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
        let (stalled, stderr_reader) = match stderr {
            Stderr::Stalled => (Some(err), None),
            Stderr::Read => {
                let lines = lines.clone();
                let reader = std::thread::spawn(move || {
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
                (None, Some(reader))
            }
        };
        Serve {
            child,
            stdout,
            stderr: lines,
            _stalled: stalled,
            stderr_reader,
            banner: Vec::new(),
        }
    }

    /// The gateway and admin addresses from the banner (text, or the JSON
    /// object of `--log-format json`).
    pub fn addresses(&mut self) -> (SocketAddr, SocketAddr) {
        let listen = self.wait_line("listening");
        if listen.starts_with('{') {
            let banner: serde_json::Value = serde_json::from_str(&listen).unwrap();
            // After the scheme: http://, or https:// for a TLS listener.
            let addr = |key: &str| {
                let url = banner[key].as_str().unwrap();
                url[url.find("://").unwrap() + 3..].parse().unwrap()
            };
            return (addr("listen"), addr("admin"));
        }
        let listen = listen.rsplit("://").next().unwrap().parse().unwrap();
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

    /// Reads stdout until a line contains `needle` (`None`) or the process
    /// exits first (its status).
    pub fn line_or_exit(&mut self, needle: &str) -> Option<ExitStatus> {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    self.banner.push(line.clone());
                    if line.contains(needle) {
                        return None;
                    }
                }
                // Stdout closed: the process is exiting.
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Some(
                        self.exit_within(WAIT)
                            .expect("stdout closed but corsgate did not exit"),
                    );
                }
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "corsgate neither printed {needle:?} nor exited: {:?}; stderr {:?}",
                    self.banner,
                    self.stderr()
                ),
            }
        }
    }

    /// Every log line, once the process has exited and its stderr is read to
    /// the end.
    pub fn stderr_to_end(&mut self) -> Vec<String> {
        assert!(
            self.child.try_wait().unwrap().is_some(),
            "corsgate is still running"
        );
        if let Some(reader) = self.stderr_reader.take() {
            reader.join().unwrap();
        }
        self.stderr()
    }

    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for a log line containing `needle`.
    pub fn wait_stderr(&self, needle: &str) -> String {
        self.wait_stderr_count(needle, 1).remove(0)
    }

    /// Waits until at least `n` log lines contain `needle`; returns them all.
    pub fn wait_stderr_count(&self, needle: &str, n: usize) -> Vec<String> {
        eventually_blocking(&format!("{n} log lines with {needle:?}"), || {
            let lines: Vec<String> = self
                .stderr()
                .into_iter()
                .filter(|l| l.contains(needle))
                .collect();
            if lines.len() >= n {
                Ok(lines)
            } else {
                Err(format!("{:#?}", self.stderr()))
            }
        })
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
        status_kib(self.child.id(), "VmHWM")
    }

    /// Resident memory of the process now (VmRSS), in KiB.
    pub fn rss_kib(&self) -> u64 {
        status_kib(self.child.id(), "VmRSS")
    }
}

/// A `/proc/PID/status` field counted in KiB (`VmRSS`, `VmHWM`, …).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
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

/// A hang guard for one-shot commands: far above what any takes on a loaded
/// machine, so that only a hang reaches it.
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

/// A one-shot `corsgate ARGS`, with standard input, environment and working
/// directory when asked; killed after a time limit (a hang guard, [`RUN_LIMIT`]
/// unless set). `CORSGATE_CONFIG` is removed from its environment, so that the
/// one of the shell running the tests does not change what it reads.
pub struct Cmd {
    command: Command,
    stdin: Option<Vec<u8>>,
    within: Duration,
}

impl Cmd {
    pub fn new<S: AsRef<std::ffi::OsStr>>(args: impl IntoIterator<Item = S>) -> Cmd {
        let mut command = Command::new(BIN);
        command.args(args).env_remove("CORSGATE_CONFIG");
        Cmd {
            command,
            stdin: None,
            within: RUN_LIMIT,
        }
    }

    /// `text` on standard input (closed after it); none by default.
    pub fn stdin(mut self, text: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(text.into());
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Cmd {
        self.command.env(name, value);
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Cmd {
        self.command.current_dir(dir);
        self
    }

    /// The time limit.
    pub fn within(mut self, within: Duration) -> Cmd {
        self.within = within;
        self
    }

    pub fn run(mut self) -> Ran {
        let stdin = if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        let mut child = self
            .command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start corsgate");
        // Written on a thread of its own: a large input and a large output
        // would each wait for the other otherwise.
        let writer = self.stdin.take().map(|text| {
            let mut input = child.stdin.take().unwrap();
            std::thread::spawn(move || {
                let _ = input.write_all(&text);
            })
        });
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
        let deadline = Instant::now() + self.within;
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
        if let Some(writer) = writer {
            writer.join().unwrap();
        }
        Ran {
            code: status.code(),
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
            timed_out,
        }
    }
}

/// Runs `corsgate ARGS`, killed after `within` (a hang guard).
pub fn run(args: &[&str], within: Duration) -> Ran {
    Cmd::new(args).within(within).run()
}
