//! A raw HTTP/2 client (prior knowledge, cleartext) that writes frames exactly
//! as told, for the abuse a client library would not let through: window 0,
//! unanswered PINGs, HEADERS then RST_STREAM, floods. HPACK: literal fields
//! without indexing and without Huffman coding (RFC 7541, section 6.2.2).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use super::WAIT;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;

pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;

pub const CANCEL: u32 = 0x8;
pub const REFUSED_STREAM: u32 = 0x7;

/// One frame as read from the wire.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The 32-bit big-endian number at `at` in the payload (GOAWAY's last
    /// stream id and code, RST_STREAM's code).
    pub fn u32_at(&self, at: usize) -> u32 {
        let b = &self.payload[at..at + 4];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff
    }

    /// A SETTINGS frame's parameters.
    pub fn settings(&self) -> Vec<(u16, u32)> {
        self.payload
            .chunks_exact(6)
            .map(|c| {
                (
                    u16::from_be_bytes([c[0], c[1]]),
                    u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                )
            })
            .collect()
    }
}

/// Encodes one frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn settings(params: &[(u16, u32)]) -> Vec<u8> {
    let mut payload = Vec::new();
    for (id, value) in params {
        payload.extend_from_slice(&id.to_be_bytes());
        payload.extend_from_slice(&value.to_be_bytes());
    }
    frame(SETTINGS, 0, 0, &payload)
}

pub fn settings_ack() -> Vec<u8> {
    frame(SETTINGS, ACK, 0, &[])
}

pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

pub fn priority(stream: u32, depends_on: u32, weight: u8) -> Vec<u8> {
    let mut payload = depends_on.to_be_bytes().to_vec();
    payload.push(weight);
    frame(PRIORITY, 0, stream, &payload)
}

/// HEADERS (END_HEADERS, and END_STREAM: no body) for `GET path`.
pub fn get(stream: u32, path: &str) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "localhost"),
    ] {
        block.push(0x00);
        hpack_string(&mut block, name);
        hpack_string(&mut block, value);
    }
    frame(HEADERS, END_HEADERS | END_STREAM, stream, &block)
}

fn hpack_string(out: &mut Vec<u8>, s: &str) {
    // 7-bit prefix integer (RFC 7541, section 5.1), no Huffman.
    let mut len = s.len();
    if len < 127 {
        out.push(u8::try_from(len).unwrap());
    } else {
        out.push(127);
        len -= 127;
        while len >= 128 {
            out.push(u8::try_from(len % 128).unwrap() | 0x80);
            len /= 128;
        }
        out.push(u8::try_from(len).unwrap());
    }
    out.extend_from_slice(s.as_bytes());
}

/// What the reader task saw.
#[derive(Debug)]
pub enum Event {
    Frame(Frame),
    /// The server closed the connection (EOF or reset).
    Closed,
}

/// A raw HTTP/2 connection. Frames from the server are read in the background
/// (when `read` was asked for) and handed over in order.
pub struct H2 {
    pub write: OwnedWriteHalf,
    events: Option<mpsc::UnboundedReceiver<Event>>,
    read: Option<OwnedReadHalf>,
}

impl H2 {
    /// Connects; nothing sent yet.
    pub async fn connect(addr: SocketAddr) -> H2 {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (read, write) = stream.into_split();
        H2 {
            write,
            events: None,
            read: Some(read),
        }
    }

    /// Connects, sends the preface and SETTINGS with `params`, starts reading,
    /// and waits for the gateway's SETTINGS (returned, not yet acknowledged).
    pub async fn open(addr: SocketAddr, params: &[(u16, u32)]) -> (H2, Frame) {
        let mut h2 = H2::connect(addr).await;
        h2.handshake(params).await;
        h2.start_reading();
        let settings = h2
            .until(|f| f.kind == SETTINGS && f.flags & ACK == 0)
            .await
            .expect("no SETTINGS from the gateway");
        (h2, settings)
    }

    /// Sends the preface and a SETTINGS frame with `params`.
    pub async fn handshake(&mut self, params: &[(u16, u32)]) {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(settings(params));
        self.send(&bytes).await;
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.unwrap();
    }

    /// Like [`send`](Self::send), but a closed connection is not an error.
    pub async fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.write.write_all(bytes).await.is_ok()
    }

    /// Starts reading frames in the background (never acknowledging anything).
    pub fn start_reading(&mut self) {
        let Some(mut read) = self.read.take() else {
            return;
        };
        let (tx, rx) = mpsc::unbounded_channel();
        self.events = Some(rx);
        tokio::spawn(async move {
            loop {
                let mut head = [0u8; 9];
                if read.read_exact(&mut head).await.is_err() {
                    let _ = tx.send(Event::Closed);
                    return;
                }
                let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                let mut payload = vec![0u8; len];
                if read.read_exact(&mut payload).await.is_err() {
                    let _ = tx.send(Event::Closed);
                    return;
                }
                let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                let frame = Frame {
                    kind: head[3],
                    flags: head[4],
                    stream,
                    payload,
                };
                if tx.send(Event::Frame(frame)).is_err() {
                    return;
                }
            }
        });
    }

    /// The next event, within [`WAIT`] (panics past it).
    pub async fn next(&mut self) -> Event {
        self.next_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("no frame from the gateway within {WAIT:?}"))
    }

    /// The next event, or `None` after `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Event> {
        let events = self.events.as_mut().expect("start_reading first");
        match tokio::time::timeout(wait, events.recv()).await {
            Ok(Some(event)) => Some(event),
            Ok(None) => Some(Event::Closed),
            Err(_) => None,
        }
    }

    /// An event already received, without waiting.
    pub fn try_next(&mut self) -> Option<Event> {
        self.events.as_mut().and_then(|e| e.try_recv().ok())
    }

    /// Reads events until one matches `want` (returned) or the connection
    /// closes (`None`), within [`WAIT`].
    pub async fn until(&mut self, mut want: impl FnMut(&Frame) -> bool) -> Option<Frame> {
        loop {
            match self.next().await {
                Event::Frame(frame) if want(&frame) => return Some(frame),
                Event::Frame(_) => {}
                Event::Closed => return None,
            }
        }
    }
}
