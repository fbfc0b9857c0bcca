//! Connections that stop making progress, and HTTP/2 abuse: each case of the
//! exhaustion review (E1, E2, E3, E5) over real sockets, with raw HTTP/2 frames
//! where a client library would hide the abuse.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::binary::{Serve, Stderr};
use support::h2raw::{self, Event, H2};
use support::raw::read_response;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

/// An upstream that answers every request with a body of `len` bytes (written
/// as fast as the gateway takes them), counting its connections and those that
/// ended (the gateway closed them).
struct BigUpstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    ended: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for BigUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BigUpstream {
    async fn start(len: u64) -> BigUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let ended = Arc::new(AtomicUsize::new(0));
        let task = {
            let (accepted, ended) = (accepted.clone(), ended.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        continue;
                    };
                    accepted.fetch_add(1, Ordering::SeqCst);
                    let ended = ended.clone();
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut buf = [0u8; 4096];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => {
                                    ended.fetch_add(1, Ordering::SeqCst);
                                    return;
                                }
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {len}\r\n\r\n"
                        );
                        let chunk = vec![b'x'; 64 * 1024];
                        let mut left = len;
                        let mut ok = stream.write_all(answer.as_bytes()).await.is_ok();
                        while ok && left > 0 {
                            let n = left.min(chunk.len() as u64) as usize;
                            ok = stream.write_all(&chunk[..n]).await.is_ok();
                            left -= n as u64;
                        }
                        if ok {
                            // All sent: wait for the gateway to close.
                            let _ = stream.read(&mut buf).await;
                        }
                        ended.fetch_add(1, Ordering::SeqCst);
                    });
                }
            })
        };
        BigUpstream {
            addr,
            accepted,
            ended,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

const SIXTY_FOUR_MIB: u64 = 64 * 1024 * 1024;

/// A client socket with a 4 KiB receive buffer, as a slow reader sets it up.
async fn tiny_window_client(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Reads until the gateway closes the connection (EOF or reset); panics after
/// [`WAIT`]. Returns the bytes read.
async fn read_until_closed(stream: &mut TcpStream) -> u64 {
    let mut seen = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen += n as u64,
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("the gateway did not close the connection");
    seen
}

/// Waits until the admin listener's `/metrics` shows at least one client
/// connection or stream the gateway closed for `reason`; returns the count.
async fn client_closes(gw: &Gw, reason: &str) -> u64 {
    gw.wait_metric(
        &format!("corsgate_client_closes_total{{reason=\"{reason}\"}}"),
        |n| n >= 1,
    )
    .await
}

// E1: a client that stops reading a large response held its connection, the
// upstream connection and its buffers forever (the idle timer is suspended
// while a request is in flight).
#[tokio::test]
async fn client_that_never_reads_a_large_response_is_closed_at_send_timeout_with_its_upstream() {
    let upstream = BigUpstream::start(SIXTY_FOUR_MIB).await;
    let gw = Gw::start(&config(
        "idle_timeout = \"30s\"\nsend_timeout = \"1s\"",
        "",
        &route("/", &upstream.url(), ""),
    ))
    .await;
    let mut client = tiny_window_client(gw.addr).await;
    client
        .write_all(b"GET /big HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    wait_until(|| upstream.accepted.load(Ordering::SeqCst) == 1).await;
    // The gateway fills the socket buffers, takes no progress for send_timeout
    // and drops both connections.
    wait_until(|| upstream.ended.load(Ordering::SeqCst) == 1).await;
    let read = read_until_closed(&mut client).await;
    assert!(
        read < SIXTY_FOUR_MIB,
        "the response was not cut: {read} bytes"
    );
    assert_eq!(client_closes(&gw, "send_timeout").await, 1);
}

// E1, HTTP/2: a stream whose flow-control window stays at 0 held the stream,
// its upstream connection and its buffers forever.
#[tokio::test]
async fn h2_stream_without_window_is_reset_at_send_timeout_with_its_upstream() {
    let upstream = BigUpstream::start(SIXTY_FOUR_MIB).await;
    let gw = Gw::start(&config(
        "idle_timeout = \"30s\"\nsend_timeout = \"1s\"",
        "",
        &route("/", &upstream.url(), ""),
    ))
    .await;
    let (mut h2, _) = H2::open(gw.addr, &[(h2raw::SETTINGS_INITIAL_WINDOW_SIZE, 0)]).await;
    h2.send(&h2raw::settings_ack()).await;
    h2.send(&h2raw::get(1, "/big")).await;
    h2.until(|f| f.kind == h2raw::HEADERS && f.stream == 1)
        .await
        .expect("no response head");
    let reset = h2
        .until(|f| f.kind == h2raw::RST_STREAM && f.stream == 1)
        .await
        .expect("the connection closed instead of resetting the stream");
    assert_eq!(reset.u32_at(0), h2raw::CANCEL);
    wait_until(|| upstream.ended.load(Ordering::SeqCst) == 1).await;
    // The connection itself stays usable: only the stream was reset.
    h2.send(&h2raw::get(3, "/big")).await;
    h2.until(|f| f.kind == h2raw::HEADERS && f.stream == 3)
        .await
        .expect("the connection closed with the stream");
    assert_eq!(client_closes(&gw, "stream_send_timeout").await, 1);
}

// E2: connections that send only the 24-byte HTTP/2 preface and never read,
// or read but never acknowledge the PING sent with the idle GOAWAY, were never
// closed; `max_connections` of them locked every other client out for good.
#[tokio::test]
async fn h2_preface_only_and_unacknowledging_connections_are_closed_and_do_not_lock_out_new_clients()
 {
    let spy = Spy::ok().await;
    let gw = Gw::start(&config(
        "idle_timeout = \"1s\"\nmax_connections = 3",
        "",
        &route("/", &spy.url(), ""),
    ))
    .await;
    let mut silent = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(gw.addr).await.unwrap();
        stream.write_all(h2raw::PREFACE).await.unwrap();
        silent.push(stream);
    }
    let mut deaf = H2::connect(gw.addr).await;
    deaf.handshake(&[]).await;
    deaf.start_reading();
    let answer = tokio::time::timeout(WAIT, send("GET", &gw.url("/x"), &[]))
        .await
        .expect("a new client was locked out by idle HTTP/2 connections");
    assert_eq!(answer.status, 200);
    for stream in &mut silent {
        read_until_closed(stream).await;
    }
    let goaway = deaf.until(|f| f.kind == h2raw::GOAWAY).await;
    assert!(goaway.is_some(), "closed without GOAWAY");
    assert!(deaf.until(|_| false).await.is_none());
    assert!(client_closes(&gw, "close_deadline").await >= 1);
}

// E2: a client that reads every frame but never acknowledges a PING kept its
// connection (here with a request in flight, so the idle timer is not running).
#[tokio::test]
async fn h2_client_that_never_acks_pings_is_closed() {
    let spy = Spy::start(|_| Reply::ok().delay(Duration::from_secs(30))).await;
    let gw = Gw::start(&config(
        "idle_timeout = \"1s\"",
        "",
        &route("/", &spy.url(), ""),
    ))
    .await;
    let (mut h2, _) = H2::open(gw.addr, &[]).await;
    h2.send(&h2raw::settings_ack()).await;
    h2.send(&h2raw::get(1, "/slow")).await;
    wait_until(|| spy.arrived() == 1).await;
    let mut pings = 0;
    loop {
        match h2.next().await {
            Event::Frame(f) if f.kind == h2raw::PING && f.flags & h2raw::ACK == 0 => pings += 1,
            Event::Frame(_) => {}
            Event::Closed => break,
        }
    }
    assert!(pings >= 1, "closed without a keep-alive PING");
}

// E3: HEADERS then RST_STREAM, paced so that the gateway accepts each stream,
// sent every stream to the upstream with no GOAWAY (CVE-2023-44487).
#[tokio::test]
async fn h2_rapid_reset_gets_goaway_and_a_bounded_number_of_upstream_requests() {
    let spy = Spy::start(|_| Reply::ok().delay(Duration::from_secs(5))).await;
    let gw = Gw::start(&config("", "", &route("/", &spy.url(), ""))).await;
    let (mut h2, _) = H2::open(gw.addr, &[]).await;
    h2.send(&h2raw::settings_ack()).await;
    let mut goaway = None;
    let mut refused = 0;
    let mut sent = 0u32;
    'streams: for i in 0..400u32 {
        let id = 2 * i + 1;
        if !h2.try_send(&h2raw::get(id, "/x")).await {
            break;
        }
        sent += 1;
        // Wait until the upstream has the request, or the stream is refused,
        // or the connection goes away.
        let deadline = Instant::now() + WAIT;
        loop {
            while let Some(event) = h2.try_next() {
                match event {
                    Event::Frame(f) if f.kind == h2raw::GOAWAY => goaway = Some(f),
                    Event::Frame(f) if f.kind == h2raw::RST_STREAM && f.stream == id => {
                        refused += 1;
                        continue 'streams;
                    }
                    Event::Frame(_) => {}
                    Event::Closed => break 'streams,
                }
            }
            if goaway.is_some() {
                break 'streams;
            }
            if spy.arrived() > i as usize - refused {
                break;
            }
            assert!(Instant::now() < deadline, "stream {id} went nowhere");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if !h2.try_send(&h2raw::rst_stream(id, h2raw::CANCEL)).await {
            break;
        }
    }
    let goaway = goaway.unwrap_or_else(|| {
        panic!(
            "no GOAWAY after {sent} reset streams; the upstream got {} requests",
            spy.arrived()
        )
    });
    assert!(
        spy.arrived() <= 110,
        "the upstream got {} requests from one connection (GOAWAY {:?})",
        spy.arrived(),
        goaway
    );
    assert_eq!(client_closes(&gw, "rapid_reset").await, 1);
}

// E3: the gateway announces its own cap on concurrent streams (h2's default
// through hyper was 200).
#[tokio::test]
async fn h2_settings_announce_max_concurrent_streams() {
    let gw = Gw::start(&config("", "", &route("/", "builtin:demo", ""))).await;
    let (_h2, settings) = H2::open(gw.addr, &[]).await;
    assert!(
        settings
            .settings()
            .contains(&(h2raw::SETTINGS_MAX_CONCURRENT_STREAMS, 100)),
        "{:?}",
        settings.settings()
    );
}

// E3: one client connection may make `max_requests_per_connection` requests;
// then it is closed after its last answer (nginx's `keepalive_requests`).
#[tokio::test]
async fn keepalive_connection_is_closed_after_max_requests_per_connection() {
    let spy = Spy::ok().await;
    let gw = Gw::start(&config(
        "max_requests_per_connection = 3",
        "",
        &route("/", &spy.url(), ""),
    ))
    .await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    for n in 1..=3 {
        stream
            .write_all(b"GET /x HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await
            .unwrap();
        let (head, _) = read_response(&mut stream)
            .await
            .unwrap_or_else(|| panic!("no answer to request {n}"));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(
            head.to_ascii_lowercase().contains("connection: close"),
            n == 3,
            "{head}"
        );
    }
    let _ = stream
        .write_all(b"GET /x HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await;
    assert!(read_response(&mut stream).await.is_none());
    assert_eq!(spy.arrived(), 3);
    assert_eq!(client_closes(&gw, "request_cap").await, 1);
}

/// Runs `corsgate serve --config FILE` under `prlimit --nofile=LIMIT`, until
/// it exits or prints its listening line; returns (exit code if it exited,
/// stdout, stderr).
fn serve_under_nofile_limit(
    limit: &str,
    max_connections: Option<u32>,
) -> (Option<i32>, String, String) {
    let dir = TempDir::new("nofile");
    let extra = max_connections.map_or(String::new(), |n| format!("max_connections = {n}"));
    let file = dir.write(
        "corsgate.toml",
        &config(&extra, "", &route("/", "builtin:demo", "")),
    );
    let mut serve = Serve::start_under_nofile(&file, limit, Stderr::Read);
    let code = match serve.line_or_exit("listening on") {
        Some(status) => status.code(),
        None => {
            // SIGTERM, not SIGKILL: logs leave through a queue of their own, and
            // only an orderly exit flushes what is still in it.
            serve.signal("TERM");
            serve.wait_exit();
            None
        }
    };
    let err = serve.stderr_to_end().join("\n");
    (code, serve.banner.join("\n"), err)
}

// E5: under a 1024 (here 256) descriptor limit, max_connections never engaged:
// accept failed with EMFILE long before, and connected clients got 502s.
#[test]
fn max_connections_beyond_the_file_descriptor_limit_is_refused_at_start() {
    let (code, out, err) = serve_under_nofile_limit("256:256", Some(1000));
    assert_eq!(code, Some(2), "stdout {out}\nstderr {err}");
    assert!(
        err.contains("max_connections = 1000")
            && err.contains("RLIMIT_NOFILE) is 256")
            && err.contains("LimitNOFILE=2064")
            && err.contains("lower server.max_connections to 96"),
        "{err}"
    );
}

#[test]
fn max_connections_that_the_file_descriptor_limit_holds_starts() {
    let (code, out, err) = serve_under_nofile_limit("256:256", Some(96));
    assert_eq!(code, None, "stdout {out}\nstderr {err}");
    // The soft limit is raised towards the hard limit first.
    let (code, out, err) = serve_under_nofile_limit("256:2048", Some(900));
    assert_eq!(code, None, "stdout {out}\nstderr {err}");
}

#[test]
fn default_max_connections_is_lowered_to_the_file_descriptor_limit_with_a_warning() {
    let (code, out, err) = serve_under_nofile_limit("256:256", None);
    assert_eq!(code, None, "stdout {out}\nstderr {err}");
    assert!(err.contains("accepting 96 connections at most"), "{err}");
}

// E5, admin listener: out of file descriptors, the admin accept loop logged
// "admin accept failed" on every retry (every 50 ms), where the main loop
// logs once per 10 s with a count of the ones left out.
#[tokio::test]
async fn admin_accept_failures_out_of_descriptors_are_logged_once_per_ten_seconds() {
    let dir = TempDir::new("admin-nofile");
    let file = dir.join("corsgate.toml");
    std::fs::write(
        &file,
        config(
            "idle_timeout = \"30s\"",
            "",
            &route("/", "builtin:demo", ""),
        ),
    )
    .unwrap();
    // 80 descriptors: max_connections is lowered to 8, and 8 client plus 64
    // admin connections (its cap) are more than what the process has left.
    let mut serve = Serve::start_under_nofile(&file, "80:80", Stderr::Read);
    let (listen, admin) = serve.addresses();
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(listen).await.unwrap());
    }
    // The gateway's listener takes its 8 first, so that the admin one is the
    // listener that runs out.
    metrics::wait_line(admin, "corsgate_connections_open 8").await;
    for _ in 0..64 {
        held.push(TcpStream::connect(admin).await.unwrap());
    }
    serve.wait_stderr("admin accept failed");
    // The accept keeps failing while the connections are held: a second of
    // retries (about 20) is a window, not a synchronisation.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let lines: Vec<String> = serve
        .stderr()
        .into_iter()
        .filter(|l| l.contains("admin accept failed"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    drop(held);
}

// E3, HTTP/2: past `max_requests_per_connection`, GOAWAY, and streams opened
// meanwhile are refused (REFUSED_STREAM: not processed, safe to retry).
#[tokio::test]
async fn h2_connection_past_max_requests_per_connection_gets_goaway_and_refused_streams() {
    let spy = Spy::ok().await;
    let gw = Gw::start(&config(
        "max_requests_per_connection = 2",
        "",
        &route("/", &spy.url(), ""),
    ))
    .await;
    let (mut h2, _) = H2::open(gw.addr, &[]).await;
    let mut burst = h2raw::settings_ack();
    for id in [1, 3, 5] {
        burst.extend(h2raw::get(id, "/x"));
    }
    h2.send(&burst).await;
    let (mut answered, mut refused, mut goaway) = (Vec::new(), Vec::new(), false);
    while answered.len() + refused.len() < 3 || !goaway {
        match h2.next().await {
            Event::Frame(f) if f.kind == h2raw::HEADERS => answered.push(f.stream),
            Event::Frame(f) if f.kind == h2raw::RST_STREAM => {
                assert_eq!(f.u32_at(0), h2raw::REFUSED_STREAM, "stream {}", f.stream);
                refused.push(f.stream);
            }
            Event::Frame(f) if f.kind == h2raw::GOAWAY => goaway = true,
            Event::Frame(_) => {}
            Event::Closed => panic!("closed; answered {answered:?}, refused {refused:?}"),
        }
    }
    assert_eq!((answered, refused), (vec![1, 3], vec![5]));
    assert_eq!(spy.arrived(), 2);
    assert_eq!(client_closes(&gw, "request_cap").await, 1);
}
