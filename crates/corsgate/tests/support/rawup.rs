//! A raw HTTP/1.1 upstream over a bare TCP socket, for what a well-behaved
//! server library would never do: answer before reading the body, frame a
//! response twice, switch to any protocol, stall mid-body. It records the exact
//! bytes of every request head and counts its connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the upstream answers each request.
#[derive(Debug, Clone)]
pub enum Mode {
    /// `200 ok` once the body has been read.
    Ok,
    /// `401` right after the head, before reading the body (as auth middleware,
    /// Node's `http` and nginx's `return` do); the body is read and dropped
    /// afterwards, and the connection kept for the next request.
    Early,
    /// `401` right after the head, and then never reads again (but keeps the
    /// connection open for a while).
    Deaf,
    /// `200 ok` after this delay (a slow upstream).
    Slow(Duration),
    /// `200 ok` once [`RawUp::release`] has been called.
    Held,
    /// A response with both `Content-Length: 3` and `Transfer-Encoding:
    /// chunked`, its body chunked ([`CLTE_BODY`]).
    Clte,
    /// `101 Switching Protocols` with this `Upgrade`, then echoes every byte.
    Upgrade(&'static str),
    /// The head and a few bytes of a 1000-byte body, then nothing.
    Drip,
}

/// The body [`Mode::Clte`] sends, chunked in three pieces.
pub const CLTE_BODY: &str = "pattern of a body much longer than the three bytes its Content-Length announces; \
the rest of it follows in more chunks, so that a client framing it by Content-Length \
would get the first three bytes and then garbage.";

pub struct RawUp {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
    gate: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Drop for RawUp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawUp {
    pub async fn start(mode: Mode) -> RawUp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (gate, _) = watch::channel(false);
        let task = {
            let (accepted, open, heads, gate) =
                (accepted.clone(), open.clone(), heads.clone(), gate.clone());
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    open.fetch_add(1, Ordering::SeqCst);
                    let (open, heads, mode, gate) =
                        (open.clone(), heads.clone(), mode.clone(), gate.subscribe());
                    tokio::spawn(async move {
                        let _ = serve(stream, &mode, &heads, gate).await;
                        open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            })
        };
        RawUp {
            addr,
            accepted,
            open,
            heads,
            gate,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections still open (the peer has not closed them).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Every request head received, as sent on the wire.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// Lets [`Mode::Held`] answer every request, from now on.
    pub fn release(&self) {
        self.gate.send_replace(true);
    }
}

/// Serves one connection: request after request, until the peer closes it.
async fn serve(
    mut stream: TcpStream,
    mode: &Mode,
    heads: &Mutex<Vec<String>>,
    mut gate: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let Some(end) = read_head(&mut stream, &mut buf).await? else {
            return Ok(());
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        heads.lock().unwrap().push(head.clone());
        let length = content_length(&head);
        match mode {
            Mode::Early => {
                stream
                    .write_all(
                        b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 15\r\n\r\nlogin required\n",
                    )
                    .await?;
                skip_body(&mut stream, &mut buf, length).await?;
                continue;
            }
            Mode::Deaf => {
                stream
                    .write_all(
                        b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 15\r\n\r\nlogin required\n",
                    )
                    .await?;
                tokio::time::sleep(Duration::from_secs(30)).await;
                return Ok(());
            }
            Mode::Upgrade(protocol) => {
                let answer = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: {protocol}\r\n\r\n"
                );
                stream.write_all(answer.as_bytes()).await?;
                stream.write_all(&buf).await?;
                let (mut read, mut write) = stream.split();
                tokio::io::copy(&mut read, &mut write).await?;
                return Ok(());
            }
            Mode::Drip => {
                skip_body(&mut stream, &mut buf, length).await?;
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nfirst bytes")
                    .await?;
                // Then nothing more: wait for the peer to give up.
                let mut sink = [0u8; 1024];
                while stream.read(&mut sink).await? > 0 {}
                return Ok(());
            }
            _ => {}
        }
        skip_body(&mut stream, &mut buf, length).await?;
        match mode {
            Mode::Slow(delay) => tokio::time::sleep(*delay).await,
            Mode::Held => {
                let _ = gate.wait_for(|open| *open).await;
            }
            _ => {}
        }
        if matches!(mode, Mode::Clte) {
            let mut answer = String::from(
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            );
            let third = CLTE_BODY.len() / 3;
            for piece in [
                &CLTE_BODY[..third],
                &CLTE_BODY[third..2 * third],
                &CLTE_BODY[2 * third..],
            ] {
                answer.push_str(&format!("{:x}\r\n{piece}\r\n", piece.len()));
            }
            answer.push_str("0\r\n\r\n");
            stream.write_all(answer.as_bytes()).await?;
        } else {
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await?;
        }
    }
}

/// Reads until a whole head is in `buf`; its length, or `None` at end of stream.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(i + 4));
        }
        if buf.len() > 64 * 1024 {
            return Ok(None);
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}

/// Reads and drops `length` body bytes (some may already be in `buf`).
async fn skip_body(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    length: usize,
) -> std::io::Result<()> {
    let have = buf.len().min(length);
    buf.drain(..have);
    let mut left = length - have;
    let mut chunk = [0u8; 4096];
    while left > 0 {
        let n = stream.read(&mut chunk[..left.min(4096)]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        left -= n;
    }
    Ok(())
}
