//! The `corsgate serve` binary under steady load while its configuration is
//! reloaded again and again (valid and invalid files in turn) and its upstream
//! is killed and restarted: every request gets one answer, the upstream's or
//! the gateway's own with the route's CORS headers; memory and file
//! descriptors come back; and SIGTERM under load drains what is in flight.
//! `bench/soak.sh` runs the same for as long as asked.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::binary::{Serve, Stderr, status_kib};
use support::metrics::metric;
use support::{TempDir, WAIT, eventually, wait_until, wait_until_async, write_atomically};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

const ORIGIN: &str = "https://app.example.com";
const BODY: &str = "{\"items\":[]}";
/// Clients sending requests one after the other, each on its own keep-alive
/// connection.
const CLIENTS: usize = 8;
/// The gateway's `response_timeout`: the slow upstream takes twice as long.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the upstream does with the requests it gets.
const NORMAL: u8 = 0;
/// Answers after `response_timeout` (the gateway answers 504).
const SLOW: u8 = 1;
/// Answers with two different `Content-Length`s (the gateway answers 502).
const MALFORMED: u8 = 2;

/// An upstream that can be killed (its listener and every connection closed at
/// once, requests in flight included) and started again on the same port, and
/// told to answer slowly or with malformed responses.
struct Upstream {
    addr: SocketAddr,
    tasks: Option<JoinSet<()>>,
    mode: Arc<AtomicU8>,
    /// Requests whose head arrived.
    seen: Arc<AtomicU64>,
    /// Well-formed responses handed to hyper.
    answered: Arc<AtomicU64>,
}

impl Upstream {
    async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut upstream = Upstream {
            addr: listener.local_addr().unwrap(),
            tasks: None,
            mode: Arc::default(),
            seen: Arc::default(),
            answered: Arc::default(),
        };
        upstream.serve(listener);
        upstream
    }

    fn serve(&mut self, listener: TcpListener) {
        let mut tasks = JoinSet::new();
        let seen = self.seen.clone();
        let answered = self.answered.clone();
        let mode = self.mode.clone();
        tasks.spawn(async move {
            // The connections live in a set owned by this task: aborting the
            // task drops the set, which aborts them all.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let seen = seen.clone();
                        let answered = answered.clone();
                        let mode = mode.clone();
                        conns.spawn(async move {
                            if mode.load(SeqCst) == MALFORMED {
                                malformed(stream, &seen).await;
                                return;
                            }
                            let service = service_fn(move |request: Request<Incoming>| {
                                let seen = seen.clone();
                                let answered = answered.clone();
                                let mode = mode.clone();
                                async move {
                                    seen.fetch_add(1, SeqCst);
                                    if request.uri().path() == "/slow" {
                                        // In flight at SIGTERM; within response_timeout.
                                        tokio::time::sleep(RESPONSE_TIMEOUT * 3 / 5).await;
                                    } else if mode.load(SeqCst) == SLOW {
                                        tokio::time::sleep(RESPONSE_TIMEOUT * 2).await;
                                    }
                                    answered.fetch_add(1, SeqCst);
                                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                                        Bytes::from_static(BODY.as_bytes()),
                                    )))
                                }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        self.tasks = Some(tasks);
    }

    fn set_mode(&self, mode: u8) {
        self.mode.store(mode, SeqCst);
    }

    /// Closes the listener and every connection.
    async fn kill(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.shutdown().await;
        }
    }

    async fn restart(&mut self) {
        self.kill().await;
        // The port was just closed; the kernel may take a moment to let it go.
        let deadline = tokio::time::Instant::now() + WAIT;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(err) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "cannot bind {} again: {err}",
                        self.addr
                    );
                    tokio::task::yield_now().await;
                }
            }
        };
        self.serve(listener);
    }
}

/// Reads request heads and answers each with a response no proxy may pass on
/// (RFC 9112, section 6.3: conflicting `Content-Length`s), then closes.
async fn malformed(mut stream: TcpStream, seen: &AtomicU64) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    while !data.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    seen.fetch_add(1, SeqCst);
    let _ = stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 12\r\n\r\nabc")
        .await;
}

/// What the clients got.
#[derive(Default)]
struct Tally {
    /// 200 with the upstream's body and the CORS headers.
    upstream: AtomicU64,
    /// The gateway's own 502/503/504, with the CORS headers.
    gateway: AtomicU64,
    /// Anything else: a wrong answer.
    wrong: AtomicU64,
    /// A request sent on a connection that failed before its answer.
    lost: AtomicU64,
    first_wrong: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn wrong(&self, what: String) {
        self.wrong.fetch_add(1, SeqCst);
        let mut first = self.first_wrong.lock().unwrap();
        if first.len() < 5 {
            first.push(what);
        }
    }

    fn answered(&self) -> u64 {
        self.upstream.load(SeqCst) + self.gateway.load(SeqCst)
    }
}

/// Sends GETs one after the other on a keep-alive connection (a new one when
/// the gateway ends it) until `stop`.
async fn client(gateway: SocketAddr, path: &'static str, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut sender: Option<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> = None;
    while !stop.load(SeqCst) {
        let mut current = match sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => {
                let stream = TcpStream::connect(gateway).await.unwrap();
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .unwrap();
                tokio::spawn(conn);
                sender
            }
        };
        if current.ready().await.is_err() {
            // Closed before this request was written: nothing was lost.
            continue;
        }
        let request = Request::get(path)
            .header("host", gateway.to_string())
            .header("origin", ORIGIN)
            .body(Empty::new())
            .unwrap();
        let answer = tokio::time::timeout(WAIT, async {
            let response = current.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, hyper::Error>((parts, body))
        })
        .await;
        match answer {
            Ok(Ok((parts, body))) => {
                let cors = parts
                    .headers
                    .get("access-control-allow-origin")
                    .is_some_and(|v| v == ORIGIN);
                match parts.status {
                    StatusCode::OK if cors && body == BODY.as_bytes() => {
                        tally.upstream.fetch_add(1, SeqCst);
                    }
                    StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
                        if cors =>
                    {
                        tally.gateway.fetch_add(1, SeqCst);
                    }
                    status => tally.wrong(format!("{status} cors={cors} body={body:?}")),
                }
                sender = Some(current);
            }
            Ok(Err(err)) if err.is_canceled() => {}
            Ok(Err(err)) => {
                tally.lost.fetch_add(1, SeqCst);
                tally.wrong(format!("lost: {err}"));
            }
            Err(_) => {
                tally.lost.fetch_add(1, SeqCst);
                tally.wrong("no answer within the wait".to_owned());
            }
        }
    }
}

fn config(upstream: SocketAddr, max_age: u32, valid: bool) -> String {
    // An origin with a path is refused at load: the running policy stays.
    let origin = if valid {
        ORIGIN.to_owned()
    } else {
        format!("{ORIGIN}/")
    };
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nshutdown_timeout = \"5s\"\n\
         connect_timeout = \"1s\"\nresponse_timeout = \"1s\"\n\n\
         [server.cors]\nallow_origins = [\"{origin}\"]\nmax_age = {max_age}\n\n\
         [[route]]\npath = \"/\"\nupstream = \"http://{upstream}\"\n"
    )
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// What the process's descriptors are (sockets, files), for a failure message.
fn fd_targets(pid: u32) -> Vec<String> {
    let mut targets: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|t| t.display().to_string())
        .collect();
    targets.sort();
    targets
}

/// Sockets, and other descriptors (files, pipes, epoll, inotify: some are
/// opened a moment after start).
fn fd_counts(pid: u32) -> (usize, usize) {
    let targets = fd_targets(pid);
    let sockets = targets.iter().filter(|t| t.starts_with("socket:")).count();
    (sockets, targets.len() - sockets)
}

/// Waits until the process has no more sockets than `sockets` (its listeners,
/// when idle) and no more other descriptors than `others`.
async fn wait_for_fds(pid: u32, sockets: usize, others: usize) {
    eventually("the descriptors of an idle gateway", || async {
        let (now_sockets, now_others) = fd_counts(pid);
        if now_sockets <= sockets && now_others <= others {
            return Ok(());
        }
        Err(format!(
            "{now_sockets} sockets and {now_others} other descriptors open, \
             {sockets} and {others} when idle: {:?}",
            fd_targets(pid)
        ))
    })
    .await;
}

/// Runs `clients` for `load`, with the faults: a reload every 500 ms (valid
/// and invalid files in turn) and the upstream killed and started again every
/// 1.5 s. Returns the tally.
async fn load_with_faults(
    serve: &Serve,
    file: &Path,
    upstream: &mut Upstream,
    gateway: SocketAddr,
    load: Duration,
) -> Arc<Tally> {
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut clients = JoinSet::new();
    for _ in 0..CLIENTS {
        clients.spawn(client(gateway, "/api/items", stop.clone(), tally.clone()));
    }
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    let end = tokio::time::Instant::now() + load;
    let mut n = 0u32;
    while tokio::time::Instant::now() < end {
        ticks.tick().await;
        n += 1;
        if n % 2 == 0 {
            write_atomically(file, &config(upstream.addr, 600 + n, n % 4 == 0));
            serve.signal("HUP");
        }
        // Every 1.5 s the upstream changes: down (refusing connections,
        // its connections reset), back, slow, back, malformed, back.
        match n % 36 {
            6 => upstream.kill().await,
            12 => upstream.restart().await,
            18 => upstream.set_mode(SLOW),
            24 => upstream.set_mode(NORMAL),
            30 => {
                // New connections only: the pooled ones were made before.
                upstream.set_mode(MALFORMED);
                upstream.restart().await;
            }
            0 => upstream.set_mode(NORMAL),
            _ => {}
        }
    }
    if upstream.tasks.is_none() {
        upstream.restart().await;
    }
    upstream.set_mode(NORMAL);
    stop.store(true, SeqCst);
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_load_through_reloads_and_upstream_restarts_loses_nothing_and_leaks_nothing() {
    let mut upstream = Upstream::start().await;
    let dir = TempDir::new("endurance");
    let file = dir.join("corsgate.toml");
    write_atomically(&file, &config(upstream.addr, 600, true));
    let mut serve = Serve::start(&file, Stderr::Read);
    let (gateway, admin) = serve.addresses();
    let pid = serve.pid();
    let (sockets_idle, _) = fd_counts(pid);

    // Warm-up: the same load without faults, so that the allocator, the pools
    // and the runtime have grown to what this load needs.
    let warm = load_with_faults_free(gateway, Duration::from_secs(2)).await;
    assert_eq!(
        warm.wrong.load(SeqCst),
        0,
        "{:?}",
        warm.first_wrong.lock().unwrap()
    );
    let rss_warm = status_kib(pid, "VmRSS");
    let (_, others_warm) = fd_counts(pid);

    let tally = load_with_faults(
        &serve,
        &file,
        &mut upstream,
        gateway,
        Duration::from_secs(8),
    )
    .await;
    let upstream_answers = tally.upstream.load(SeqCst);
    let gateway_answers = tally.gateway.load(SeqCst);
    eprintln!(
        "endurance: {upstream_answers} upstream answers, {gateway_answers} gateway errors, {} wrong, {} lost; \
         the upstream saw {} requests and answered {}",
        tally.wrong.load(SeqCst),
        tally.lost.load(SeqCst),
        upstream.seen.load(SeqCst),
        upstream.answered.load(SeqCst),
    );
    assert_eq!(
        tally.wrong.load(SeqCst),
        0,
        "wrong or lost answers: {:?}",
        tally.first_wrong.lock().unwrap()
    );
    assert!(
        upstream_answers > 100,
        "too little load went through: {upstream_answers}"
    );
    assert!(gateway_answers > 0, "the upstream's faults never showed");
    // Every upstream answer the clients got is one the upstream gave.
    assert!(upstream.answered.load(SeqCst) >= upstream_answers);
    // Reloads: the valid files were taken, the invalid ones refused.
    serve.wait_stderr("configuration reloaded");
    serve.wait_stderr("the previous one keeps running");

    // Memory back near what the warm load needed; descriptors back to idle
    // once the clients are gone and the upstream's connections closed.
    wait_until_async(|| async { metric(admin, "corsgate_connections_open").await == 0 }).await;
    let rss_after = status_kib(pid, "VmRSS");
    eprintln!("endurance: RSS {rss_warm} KiB after the warm-up, {rss_after} KiB after the faults");
    assert!(
        rss_after <= rss_warm + rss_warm / 5 + 2048,
        "RSS grew from {rss_warm} KiB to {rss_after} KiB"
    );
    upstream.kill().await;
    wait_for_fds(pid, sockets_idle, others_warm).await;

    // Drain under load: requests in flight at SIGTERM complete, new
    // connections are refused, the process exits within shutdown_timeout.
    upstream.restart().await;
    let before = upstream.seen.load(SeqCst);
    let stop = Arc::new(AtomicBool::new(false));
    let drained = Arc::new(Tally::default());
    let mut slow = JoinSet::new();
    for _ in 0..4 {
        slow.spawn(client(gateway, "/slow", stop.clone(), drained.clone()));
    }
    wait_until(|| upstream.seen.load(SeqCst) >= before + 4).await;
    stop.store(true, SeqCst);
    serve.signal("TERM");
    wait_until_async(|| async { TcpStream::connect(gateway).await.is_err() }).await;
    while let Some(done) = slow.join_next().await {
        done.unwrap();
    }
    assert_eq!(
        (drained.upstream.load(SeqCst), drained.gateway.load(SeqCst)),
        (4, 0),
        "{:?}",
        drained.first_wrong.lock().unwrap()
    );
    assert_eq!(drained.wrong.load(SeqCst), 0);
    let exit = tokio::task::spawn_blocking(move || serve.exit_within(Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(
        exit.is_some_and(|status| status.success()),
        "no clean exit within shutdown_timeout: {exit:?}"
    );
    assert!(tally.answered() > 0);
}

/// The load alone, no faults.
async fn load_with_faults_free(gateway: SocketAddr, load: Duration) -> Arc<Tally> {
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut clients = JoinSet::new();
    for _ in 0..CLIENTS {
        clients.spawn(client(gateway, "/api/items", stop.clone(), tally.clone()));
    }
    tokio::time::sleep(load).await;
    stop.store(true, SeqCst);
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
    tally
}

/// The faults for as long as `CORSGATE_SOAK_SECONDS` says (default 600), in
/// rounds of at most a minute, the first one the warm-up: after each round,
/// with the clients gone, the gateway's RSS and descriptors are read, and at
/// the end RSS must be within 10% of the warm-up's. `bench/soak.sh` runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: bench/soak.sh runs it"]
async fn soak() {
    let seconds: u64 = std::env::var("CORSGATE_SOAK_SECONDS")
        .ok()
        .map(|v| {
            v.parse()
                .expect("CORSGATE_SOAK_SECONDS: a number of seconds")
        })
        .unwrap_or(600);
    assert!(
        (20..=86_400).contains(&seconds),
        "CORSGATE_SOAK_SECONDS: 20 to 86400"
    );
    let mut upstream = Upstream::start().await;
    let dir = TempDir::new("soak");
    let file = dir.join("corsgate.toml");
    write_atomically(&file, &config(upstream.addr, 600, true));
    // The log pipe is not read: hours of lines would fill the test's memory.
    // The gateway drops what its pipe cannot take, and counts it.
    let mut serve = Serve::start(&file, Stderr::Stalled);
    let (gateway, admin) = serve.addresses();
    let pid = serve.pid();
    let (sockets_idle, _) = fd_counts(pid);
    let mut others_warm = None;
    let started = tokio::time::Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut rss_warm = None;
    let mut totals = (0u64, 0u64);
    let mut round = 0;
    while tokio::time::Instant::now() < end {
        round += 1;
        let left = end - tokio::time::Instant::now();
        let tally = load_with_faults(
            &serve,
            &file,
            &mut upstream,
            gateway,
            left.min(Duration::from_secs(60)),
        )
        .await;
        assert_eq!(
            tally.wrong.load(SeqCst),
            0,
            "round {round}: wrong or lost answers: {:?}",
            tally.first_wrong.lock().unwrap()
        );
        totals.0 += tally.upstream.load(SeqCst);
        totals.1 += tally.gateway.load(SeqCst);
        wait_until_async(|| async { metric(admin, "corsgate_connections_open").await == 0 }).await;
        let rss = status_kib(pid, "VmRSS");
        let warm = *rss_warm.get_or_insert(rss);
        others_warm.get_or_insert(fd_counts(pid).1);
        println!(
            "round {round} at {:>5} s: {} upstream answers, {} gateway errors, 0 wrong; RSS {rss} KiB \
             ({:+.1}% of the warm-up's), {} descriptors",
            started.elapsed().as_secs(),
            tally.upstream.load(SeqCst),
            tally.gateway.load(SeqCst),
            (rss as f64 / warm as f64 - 1.0) * 100.0,
            open_fds(pid),
        );
    }
    let rss_end = status_kib(pid, "VmRSS");
    let rss_warm = rss_warm.unwrap();
    upstream.kill().await;
    wait_for_fds(pid, sockets_idle, others_warm.unwrap()).await;
    println!(
        "soak: {seconds} s, {round} rounds, {} upstream answers, {} gateway errors, none wrong or lost; \
         RSS {rss_warm} KiB after the warm-up round, {rss_end} KiB at the end; descriptors back to idle",
        totals.0, totals.1
    );
    assert!(
        rss_end <= rss_warm + rss_warm / 10,
        "RSS grew from {rss_warm} KiB to {rss_end} KiB"
    );
    serve.signal("TERM");
    let exit = tokio::task::spawn_blocking(move || serve.exit_within(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(exit.is_some_and(|status| status.success()), "{exit:?}");
}

/// A gateway whose stderr nobody reads (a stalled log shipper) still exits
/// on SIGTERM: its log thread, blocked writing to the full pipe, is waited
/// for a bounded time, not for ever. Found by the 10-minute soak, whose log
/// pipe had filled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_log_pipe_does_not_keep_the_gateway_from_exiting() {
    let upstream = Upstream::start().await;
    let dir = TempDir::new("stalled-log");
    let file = dir.join("corsgate.toml");
    write_atomically(&file, &config(upstream.addr, 600, true));
    let mut serve = Serve::start(&file, Stderr::Stalled);
    let (gateway, _) = serve.addresses();
    // One access-log line per request: far more than a pipe holds (64 KiB
    // on Linux, about 300 lines). On a busy machine 3 s may not be enough:
    // load again, at most five times.
    let mut answered = 0;
    for _ in 0..5 {
        let tally = load_with_faults_free(gateway, Duration::from_secs(3)).await;
        answered += tally.upstream.load(SeqCst);
        if answered >= 2_000 {
            break;
        }
    }
    assert!(
        answered >= 2_000,
        "only {answered} requests: the pipe may not be full"
    );
    serve.signal("TERM");
    let exit = tokio::task::spawn_blocking(move || serve.exit_within(Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(exit.is_some_and(|status| status.success()), "{exit:?}");
}
