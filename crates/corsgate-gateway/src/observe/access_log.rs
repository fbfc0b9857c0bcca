//! The access log: one line per request, written when its response has been
//! sent (or abandoned), at the default level.
//!
//! The line is an ordinary `tracing` event (target `corsgate::access`, message
//! `request`), so it takes the application's log format (text or JSON) and its
//! writer: `corsgate serve` writes logs through a bounded buffer and a thread
//! of its own, so a log output that does not keep up costs dropped lines
//! (counted in `corsgate_log_lines_dropped_total`), never a blocked request.
//! What a client sends is cut to [`MAX_LOGGED_VALUE`] bytes and recorded as a
//! string: quoted and escaped in text logs, a JSON string in JSON logs, so that
//! no request value can pass for another field or line.
//!
//! An application that owns the log output can take the lines directly
//! ([`AccessLogLines`], `Options::access_log_lines`): the line is then written
//! byte for byte as the `tracing` event would be formatted (tracing-subscriber's
//! full text format without ANSI colours and without the target, or its JSON
//! format with the event flattened), into a buffer reused by each thread, and
//! handed over as one slice. Formatting the event through tracing-subscriber's
//! fmt layer costs several times more (field visitors, `fmt::Debug` for every
//! value, a `String` per JSON line); the `tracing` filter still decides whether
//! the line is written at all (`RUST_LOG=info,corsgate::access=off`).

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::io::Write as _;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::uri::Authority;
use http::{HeaderValue, Method, StatusCode, Uri};

use super::metrics::RouteStats;
use crate::upstream::pool::Progress;

/// Longest request value (host, path, request id, …) written in a log line.
pub(crate) const MAX_LOGGED_VALUE: usize = 256;

/// `value` cut to [`MAX_LOGGED_VALUE`] bytes (on a character boundary), with
/// how many bytes were left out.
pub(crate) fn capped(value: &str) -> Cow<'_, str> {
    if value.len() <= MAX_LOGGED_VALUE {
        return Cow::Borrowed(value);
    }
    let mut end = MAX_LOGGED_VALUE;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    let kept = value.get(..end).unwrap_or_default();
    Cow::Owned(format!("{kept}…(+{} bytes)", value.len() - end))
}

/// The request as it arrived, kept for its access-log line (cheap clones of
/// shared buffers: no copy of the path or host).
#[derive(Debug)]
pub(crate) struct Arrived {
    pub(crate) started: Instant,
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) host: Option<HeaderValue>,
}

/// Where the route sends its requests, for the `upstream` field.
#[derive(Debug, Clone)]
pub(crate) enum UpstreamName {
    None,
    Demo,
    Http(Authority),
}

/// Everything an access-log line says, but the bytes sent and the time taken,
/// known once the response body is done.
#[derive(Debug)]
pub(crate) struct AccessRecord {
    pub(crate) arrived: Arrived,
    pub(crate) client: IpAddr,
    pub(crate) request_id: HeaderValue,
    pub(crate) status: StatusCode,
    pub(crate) route: Arc<RouteStats>,
    /// `allowed`, `rejected`, `pass` (not a CORS request) or `off` (CORS off
    /// for the route).
    pub(crate) cors: &'static str,
    /// The rejection reason, or empty.
    pub(crate) reason: &'static str,
    /// The kind of the gateway's own answer, or empty.
    pub(crate) error: &'static str,
    pub(crate) upstream: UpstreamName,
    pub(crate) upstream_status: Option<StatusCode>,
    /// The request body as sent upstream (`None`: none was).
    pub(crate) body_in: Option<Arc<Progress>>,
    /// Where the line goes when the application takes it directly; `None`:
    /// a `tracing` event.
    pub(crate) lines: Option<AccessLogLines>,
}

impl AccessRecord {
    /// Writes the line: the response is done, with `bytes_out` body bytes
    /// sent. To the application's [`AccessLogLines`] when it takes them, as
    /// a `tracing` event otherwise.
    pub(crate) fn write(self, bytes_out: u64, complete: bool) {
        let micros = self.arrived.started.elapsed().as_micros();
        match &self.lines {
            Some(lines) => self.write_to(lines, micros, bytes_out, complete),
            None => self.emit(micros, bytes_out, complete),
        }
    }

    /// The `tracing` event.
    fn emit(&self, micros: u128, bytes_out: u64, complete: bool) {
        let lossy = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
        let host = match self.arrived.uri.authority() {
            Some(authority) => authority.as_str().to_owned(),
            None => self.arrived.host.as_ref().map(lossy).unwrap_or_default(),
        };
        let duration_ms = micros as f64 / 1000.0;
        let request_id = lossy(&self.request_id);
        tracing::info!(
            target: "corsgate::access",
            request_id = &*capped(&request_id),
            client = %self.client,
            method = &*capped(self.arrived.method.as_str()),
            host = &*capped(&host),
            path = &*capped(self.arrived.uri.path()),
            status = self.status.as_u16(),
            route = &*capped(self.route.name()),
            cors = self.cors,
            reason = self.reason,
            error = self.error,
            upstream = &*self.upstream.as_str(),
            upstream_status = self.upstream_status.map(|s| s.as_u16()),
            duration_ms,
            bytes_in = self.body_in.as_ref().map_or(0, |p| p.bytes()),
            bytes_out,
            complete,
            "request"
        );
    }

    /// The line the `tracing` event would have made, formatted here into this
    /// thread's buffer and handed to `lines` in one piece.
    fn write_to(&self, lines: &AccessLogLines, micros: u128, bytes_out: u64, complete: bool) {
        thread_local! {
            static THREAD: RefCell<ThreadLines> = RefCell::new(ThreadLines::default());
        }
        let now = SystemTime::now();
        let write = |state: &mut ThreadLines| {
            let ThreadLines {
                buf: line,
                clock,
                peer,
            } = state;
            line.clear();
            let mut out = LineWriter {
                buf: line,
                format: lines.format,
            };
            out.start(clock, now);
            self.fields(&mut out, peer, micros, bytes_out, complete);
            out.end();
            (lines.write)(line);
            // A line is at most a few KiB (every client value is capped):
            // keep what a usual line needs, not what the longest one did.
            line.shrink_to(LINE_CAPACITY);
        };
        THREAD.with(|state| match state.try_borrow_mut() {
            Ok(mut state) => write(&mut state),
            // A sink that logs again (it should not) gets a state of its own
            // instead of a panic.
            Err(_) => write(&mut ThreadLines::default()),
        });
    }

    /// The fields of the line, in the order of the `tracing` event.
    fn fields(
        &self,
        out: &mut LineWriter<'_>,
        peer: &mut PeerText,
        micros: u128,
        bytes_out: u64,
        complete: bool,
    ) {
        out.bytes(key!("request_id"), self.request_id.as_bytes());
        out.ip(key!("client"), self.client, peer);
        out.str(key!("method"), self.arrived.method.as_str());
        match self.arrived.uri.authority() {
            Some(authority) => out.str(key!("host"), authority.as_str()),
            None => match &self.arrived.host {
                Some(host) => out.bytes(key!("host"), host.as_bytes()),
                None => out.str(key!("host"), ""),
            },
        }
        out.str(key!("path"), self.arrived.uri.path());
        out.u64(key!("status"), u64::from(self.status.as_u16()));
        out.str(key!("route"), self.route.name());
        out.str_uncapped(key!("cors"), self.cors);
        out.str_uncapped(key!("reason"), self.reason);
        out.str_uncapped(key!("error"), self.error);
        out.str_uncapped(key!("upstream"), &self.upstream.as_str());
        if let Some(status) = self.upstream_status {
            out.u64(key!("upstream_status"), u64::from(status.as_u16()));
        }
        out.millis(key!("duration_ms"), micros);
        out.u64(
            key!("bytes_in"),
            self.body_in.as_ref().map_or(0, |p| p.bytes()),
        );
        out.u64(key!("bytes_out"), bytes_out);
        out.bool(key!("complete"), complete);
    }
}

impl UpstreamName {
    fn as_str(&self) -> Cow<'_, str> {
        match self {
            UpstreamName::None => Cow::Borrowed(""),
            UpstreamName::Demo => Cow::Borrowed("builtin:demo"),
            UpstreamName::Http(authority) => Cow::Borrowed(authority.as_str()),
        }
    }
}

/// What a thread's line buffer keeps between lines.
const LINE_CAPACITY: usize = 1024;

/// The target of the access-log event, written in JSON lines.
const TARGET: &str = "corsgate::access";

/// The format of the lines [`AccessLogLines`] takes: that of the
/// application's other log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LineFormat {
    /// tracing-subscriber's full text format, without ANSI colours and
    /// without the target: `2026-12-06T06:53:34.280920Z  INFO request
    /// request_id="…" client=127.0.0.1 …`.
    Text,
    /// tracing-subscriber's JSON format with the event's fields flattened:
    /// `{"timestamp":"…","level":"INFO","message":"request",…,"target":"corsgate::access"}`.
    Json,
}

/// Where access-log lines go when the application writes them itself rather
/// than through a `tracing` subscriber: each line (newline included) is
/// handed to a function, which must not block (append it to a buffer that
/// another thread writes out).
///
/// ```
/// use corsgate_gateway::{AccessLogLines, LineFormat, Options};
///
/// let lines = AccessLogLines::new(LineFormat::Json, |line: &[u8]| {
///     // A real writer appends to a buffer; printing is for the example.
///     print!("{}", String::from_utf8_lossy(line));
/// });
/// let options = Options::new().access_log_lines(lines);
/// # let _ = options;
/// ```
#[derive(Clone)]
pub struct AccessLogLines {
    format: LineFormat,
    write: Arc<WriteLine>,
}

/// Where a finished access line goes.
type WriteLine = dyn Fn(&[u8]) + Send + Sync;

impl AccessLogLines {
    /// Lines in `format`, each handed to `write`.
    pub fn new(format: LineFormat, write: impl Fn(&[u8]) + Send + Sync + 'static) -> Self {
        AccessLogLines {
            format,
            write: Arc::new(write),
        }
    }
}

impl fmt::Debug for AccessLogLines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessLogLines")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// What a thread keeps from one line to the next.
#[derive(Default)]
struct ThreadLines {
    /// The line being written.
    buf: Vec<u8>,
    clock: SecondText,
    peer: PeerText,
}

/// The UTC date and time of one second, `2026-12-06T06:53:34.`, formatted
/// once for all the lines written in that second: a line then writes only
/// its microseconds. Calendar arithmetic and `fmt` for every line were a
/// fifth of its cost.
#[derive(Default)]
struct SecondText {
    /// The second since the Unix epoch that `text` shows; `None`: none yet.
    second: Option<u64>,
    text: [u8; 20],
}

/// The last second humantime writes (`9999-12-31T23:59:59Z`).
const LAST_SECOND: u64 = 253_402_300_799;

impl SecondText {
    /// `now` as `2026-12-06T06:53:34.280920Z`, the form of humantime's
    /// `format_rfc3339_micros` and tracing-subscriber's time.
    fn write(&mut self, now: SystemTime, out: &mut Vec<u8>) {
        // A clock set before 1970 or past 9999 writes the nearest time
        // humantime can write (which panics or fails on the others): the
        // line is still worth having.
        let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let (second, mut micros) = match since.as_secs() {
            second @ ..=LAST_SECOND => (second, since.subsec_micros()),
            _ => (LAST_SECOND, 999_999),
        };
        if self.second != Some(second) {
            // `2026-12-06T06:53:34Z`, the `Z` replaced by the point. Once a
            // second: the `String` is no concern.
            let whole = UNIX_EPOCH + Duration::from_secs(second);
            let text = humantime::format_rfc3339_seconds(whole).to_string();
            for (to, from) in self.text.iter_mut().zip(text.bytes()) {
                *to = from;
            }
            self.text[19] = b'.';
            self.second = Some(second);
        }
        out.extend_from_slice(&self.text);
        let mut digits = *b"000000Z";
        for digit in digits[..6].iter_mut().rev() {
            *digit = b'0' + (micros % 10) as u8;
            micros /= 10;
        }
        out.extend_from_slice(&digits);
    }
}

/// The last IPv6 client address written, as text: the lines of one
/// connection format it once. (IPv4 addresses are written digit by digit,
/// which costs less than comparing them.)
struct PeerText {
    addr: Option<Ipv6Addr>,
    /// `Ipv6Addr`'s `Display` writes at most 45 bytes
    /// (`ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`).
    text: [u8; 48],
    len: usize,
}

impl Default for PeerText {
    fn default() -> Self {
        PeerText {
            addr: None,
            text: [0; 48],
            len: 0,
        }
    }
}

impl PeerText {
    /// `addr` as its `Display` writes it.
    fn get(&mut self, addr: Ipv6Addr) -> &[u8] {
        if self.addr != Some(addr) {
            let mut text = &mut self.text[..];
            let _ = write!(text, "{addr}");
            let left = text.len();
            self.len = self.text.len() - left;
            self.addr = Some(addr);
        }
        self.text.get(..self.len).unwrap_or_default()
    }
}

/// Whether every byte of `bytes` is printable ASCII other than `"` and `\`:
/// such a value goes between quotes as it is, in text (`fmt::Debug` escapes
/// none of it) and in JSON (no escape, and valid UTF-8). What a client sends
/// nearly always is; the test runs eight bytes at a time, as one `u64`.
fn plain(bytes: &[u8]) -> bool {
    /// Whether no byte of `word` is below `' '`, above `'~'`, `"` or `\`.
    /// Each test sets the high bit of some byte exactly when some byte fails
    /// it (the classic "has a byte less than n" and "has a zero byte" tricks:
    /// a borrow or a carry crosses into the next byte only from a byte that
    /// fails itself).
    fn word(word: u64) -> bool {
        const ONES: u64 = u64::from_ne_bytes([1; 8]);
        const HIGH: u64 = ONES << 7;
        // Has a zero byte: `(x - 0x01…) & !x & 0x80…`.
        let zero = |x: u64| x.wrapping_sub(ONES) & !x;
        let below_space = word.wrapping_sub(ONES * u64::from(b' ')) & !word;
        // `~` + 1 = 0x7f: a byte above `~` has its high bit set after adding
        // one, or before.
        let above_tilde = word.wrapping_add(ONES) | word;
        let quote = zero(word ^ (ONES * u64::from(b'"')));
        let backslash = zero(word ^ (ONES * u64::from(b'\\')));
        (below_space | above_tilde | quote | backslash) & HIGH == 0
    }
    let eight = |at: usize| {
        let mut word = [0; 8];
        if let Some(from) = bytes.get(at..at + 8) {
            word.copy_from_slice(from);
        }
        u64::from_le_bytes(word)
    };
    let len = bytes.len();
    if len < 8 {
        // Shifted in byte by byte, spaces around: a copy of a few bytes into
        // an array would be a call to memcpy, several times the test's cost.
        let mut padded = u64::from_le_bytes([b' '; 8]);
        for (i, &byte) in bytes.iter().enumerate() {
            let shift = 8 * i;
            padded = padded & !(0xff << shift) | u64::from(byte) << shift;
        }
        return word(padded);
    }
    // Whole words, then the last eight bytes (overlapping the words before
    // them when the length is not a multiple of eight).
    (0..len / 8).all(|i| word(eight(8 * i))) && word(eight(len - 8))
}

/// A field's name as each format writes it before the value, made at compile
/// time by [`key!`]: one copy per field instead of three.
#[derive(Clone, Copy)]
struct Key {
    /// ` name=`.
    text: &'static str,
    /// `,"name":`.
    json: &'static str,
}

/// The [`Key`] of a field name.
macro_rules! key {
    ($name:literal) => {
        Key {
            text: concat!(" ", $name, "="),
            json: concat!(",\"", $name, "\":"),
        }
    };
}
use key;

/// Writes one line, field by field, as tracing-subscriber formats an event.
struct LineWriter<'a> {
    buf: &'a mut Vec<u8>,
    format: LineFormat,
}

impl LineWriter<'_> {
    /// The time, the level and the message.
    fn start(&mut self, clock: &mut SecondText, now: SystemTime) {
        match self.format {
            // `{time} {level:>5} {message}`.
            LineFormat::Text => {
                clock.write(now, self.buf);
                self.buf.extend_from_slice(b"  INFO request");
            }
            LineFormat::Json => {
                self.buf.extend_from_slice(b"{\"timestamp\":\"");
                clock.write(now, self.buf);
                self.buf
                    .extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\"");
            }
        }
    }

    /// The target (JSON only) and the end of the line.
    fn end(&mut self) {
        if self.format == LineFormat::Json {
            self.key(key!("target"));
            self.json_str(TARGET);
            self.buf.push(b'}');
        }
        self.buf.push(b'\n');
    }

    /// ` name=` or `,"name":`.
    #[inline(always)]
    fn key(&mut self, name: Key) {
        let text = match self.format {
            LineFormat::Text => name.text,
            LineFormat::Json => name.json,
        };
        self.buf.extend_from_slice(text.as_bytes());
    }

    /// `value` between quotes, as it is: only for a [`plain`] value.
    #[inline(always)]
    fn quoted(&mut self, value: &[u8]) {
        self.buf.push(b'"');
        self.buf.extend_from_slice(value);
        self.buf.push(b'"');
    }

    /// Bytes a client chose (a header value): as [`str`](Self::str) writes
    /// them read as UTF-8, invalid sequences replaced by U+FFFD.
    #[inline(always)]
    fn bytes(&mut self, name: Key, value: &[u8]) {
        if value.len() <= MAX_LOGGED_VALUE && plain(value) {
            self.key(name);
            self.quoted(value);
        } else {
            self.lossy(name, value);
        }
    }

    /// Bytes that are not [`plain`], read as UTF-8.
    #[cold]
    #[inline(never)]
    fn lossy(&mut self, name: Key, value: &[u8]) {
        self.str(name, &String::from_utf8_lossy(value));
    }

    /// A string a client may have chosen: cut to [`MAX_LOGGED_VALUE`], then
    /// quoted and escaped as `fmt::Debug` does (text), or as a JSON string.
    #[inline(always)]
    fn str(&mut self, name: Key, value: &str) {
        if value.len() <= MAX_LOGGED_VALUE {
            self.str_uncapped(name, value);
        } else {
            self.long(name, value);
        }
    }

    /// A value past [`MAX_LOGGED_VALUE`], cut.
    #[cold]
    #[inline(never)]
    fn long(&mut self, name: Key, value: &str) {
        self.str_uncapped(name, &capped(value));
    }

    /// A string of the gateway's own (a name, a kind, the configured
    /// upstream), quoted and escaped as [`str`](Self::str) does.
    #[inline(always)]
    fn str_uncapped(&mut self, name: Key, value: &str) {
        self.key(name);
        if plain(value.as_bytes()) {
            self.quoted(value.as_bytes());
        } else {
            self.escaped(value);
        }
    }

    /// A value that is not [`plain`] (quotes, backslashes, control and
    /// non-ASCII characters): through `{:?}` itself, so that the escapes are
    /// exactly its own, or as a JSON string.
    #[cold]
    #[inline(never)]
    fn escaped(&mut self, value: &str) {
        match self.format {
            LineFormat::Text => {
                let _ = write!(self.buf, "{value:?}");
            }
            LineFormat::Json => self.json_str(value),
        }
    }

    fn json_str(&mut self, value: &str) {
        if value.bytes().all(|b| b >= b' ' && b != b'"' && b != b'\\') {
            self.quoted(value.as_bytes());
        } else {
            // serde_json's escapes, as tracing-subscriber's JSON lines have.
            let _ = serde_json::to_writer(&mut *self.buf, value);
        }
    }

    /// The client's address, recorded with `%` (`Display`): bare in text, a
    /// string in JSON.
    #[inline]
    fn ip(&mut self, name: Key, addr: IpAddr, peer: &mut PeerText) {
        self.key(name);
        let json = self.format == LineFormat::Json;
        if json {
            self.buf.push(b'"');
        }
        match addr {
            IpAddr::V4(v4) => {
                let [a, b, c, d] = v4.octets();
                self.digits(u64::from(a));
                for octet in [b, c, d] {
                    self.buf.push(b'.');
                    self.digits(u64::from(octet));
                }
            }
            IpAddr::V6(v6) => self.buf.extend_from_slice(peer.get(v6)),
        }
        if json {
            self.buf.push(b'"');
        }
    }

    #[inline(always)]
    fn u64(&mut self, name: Key, value: u64) {
        self.key(name);
        self.digits(value);
    }

    /// `value` in decimal, without `fmt`'s machinery (a third of the line's
    /// cost when its four numbers went through `write!`).
    #[inline]
    fn digits(&mut self, mut value: u64) {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            if let Some(d) = digits.get_mut(start) {
                *d = b'0' + (value % 10) as u8;
            }
            value /= 10;
            if value == 0 || start == 0 {
                break;
            }
        }
        // Byte by byte: at most a few digits, where a copy would be a call.
        for &digit in digits.get(start..).unwrap_or_default() {
            self.buf.push(digit);
        }
    }

    #[inline(always)]
    fn bool(&mut self, name: Key, value: bool) {
        self.key(name);
        self.buf
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    /// Microseconds as milliseconds, written as the `f64` `micros / 1000.0`
    /// is by `fmt::Debug` and by serde_json (the shortest decimal that reads
    /// back as the same number: `0.26`, `1.0`, `12.345`), without the float.
    #[inline]
    fn millis(&mut self, name: Key, micros: u128) {
        self.key(name);
        let micros = u64::try_from(micros).unwrap_or(u64::MAX);
        let (whole, mut fraction) = (micros / 1000, micros % 1000);
        self.digits(whole);
        self.buf.push(b'.');
        if fraction == 0 {
            self.buf.push(b'0');
            return;
        }
        // Three digits with their leading zeros, without the trailing ones.
        let mut width = 3;
        while fraction % 10 == 0 {
            fraction /= 10;
            width -= 1;
        }
        let mut divisor = 10u64.pow(width - 1);
        while divisor > 0 {
            self.buf.push(b'0' + (fraction / divisor % 10) as u8);
            divisor /= 10;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The lines written here are the ones tracing-subscriber writes for the
    //! same event, byte for byte but the time, for values of every kind.

    use std::sync::Mutex;

    use super::*;
    use crate::observe::metrics::Metrics;

    /// What a subscriber or a sink wrote.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Written {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Written {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn record(path: &str, request_id: &[u8], host: Option<&[u8]>, upstream: bool) -> AccessRecord {
        let progress = Arc::new(Progress::new(std::time::Duration::from_secs(1)));
        progress.advanced(5);
        AccessRecord {
            arrived: Arrived {
                started: Instant::now(),
                method: Method::POST,
                uri: Uri::try_from(path).unwrap(),
                host: host.map(|h| HeaderValue::from_bytes(h).unwrap()),
            },
            client: "::1".parse().unwrap(),
            request_id: HeaderValue::from_bytes(request_id).unwrap(),
            status: StatusCode::BAD_GATEWAY,
            route: Metrics::default().unmatched().clone(),
            cors: "rejected",
            reason: "origin-not-allowed",
            error: "upstream-failed",
            upstream: if upstream {
                UpstreamName::Http(Authority::from_static("127.0.0.1:9000"))
            } else {
                UpstreamName::None
            },
            upstream_status: upstream.then_some(StatusCode::OK),
            body_in: Some(progress),
            lines: None,
        }
    }

    /// The line of `record` both ways: (tracing-subscriber's, this module's),
    /// each without its time.
    fn both(record: &AccessRecord, format: LineFormat, micros: u128) -> (String, String) {
        let subscriber_out = Written::default();
        let writer = subscriber_out.clone();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone());
        let dispatch = match format {
            LineFormat::Text => tracing::Dispatch::new(builder.with_target(false).finish()),
            LineFormat::Json => tracing::Dispatch::new(
                builder
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .finish(),
            ),
        };
        tracing::dispatcher::with_default(&dispatch, || record.emit(micros, 1234, false));
        let own_out = Written::default();
        let sink = own_out.clone();
        let lines = AccessLogLines::new(format, move |line: &[u8]| {
            let _ = std::io::Write::write_all(&mut sink.clone(), line);
        });
        record.write_to(&lines, micros, 1234, false);
        (untimed(&subscriber_out.text()), untimed(&own_out.text()))
    }

    /// A line without its time: the text before the first space, or the
    /// JSON `timestamp` member.
    fn untimed(line: &str) -> String {
        if let Some(rest) = line.strip_prefix("{\"timestamp\":\"") {
            let end = rest.find('"').unwrap();
            assert_eq!(end, "2026-12-06T06:53:34.280920Z".len(), "{line}");
            return rest[end..].to_owned();
        }
        let (time, rest) = line.split_once(' ').unwrap();
        assert_eq!(time.len(), "2026-12-06T06:53:34.280920Z".len(), "{line}");
        assert!(time.ends_with('Z'), "{line}");
        rest.to_owned()
    }

    #[test]
    fn lines_are_the_subscribers_for_plain_and_hostile_values() {
        let long = format!("/{}", "a".repeat(300));
        let records = [
            record(
                "/items",
                b"de0e59eb587db14ad10fd64473f22e82",
                Some(b"api.example:8080"),
                true,
            ),
            // Quotes, backslashes, control and non-ASCII characters where a
            // client chooses the value, no upstream answer, no Host.
            record("/%22quoted%22", b"id \"x\" \\ \t end", None, false),
            // Characters `{:?}` escapes (a C1 control, a soft hyphen, a
            // combining accent) and JSON does not.
            record(
                "/p",
                "caf\u{e9}\u{85}\u{ad}e\u{301}".as_bytes(),
                Some("h\u{e9}st".as_bytes()),
                false,
            ),
            record("http://absolute.example/x?q=1", b"\x80\xff", None, true),
            // Cut to MAX_LOGGED_VALUE, with what was left out.
            record(
                &long,
                "\u{e9}".repeat(200).as_bytes(),
                Some(long.as_bytes()),
                true,
            ),
        ];
        for record in &records {
            for format in [LineFormat::Text, LineFormat::Json] {
                for micros in [
                    0,
                    1,
                    5,
                    10,
                    50,
                    100,
                    260,
                    1000,
                    1001,
                    1010,
                    1100,
                    1234,
                    12_340,
                    999_999,
                    86_400_000_000,
                ] {
                    let (subscriber, own) = both(record, format, micros);
                    assert_eq!(own, subscriber, "{format:?}, {micros} µs");
                    assert!(own.ends_with('\n') && own.matches('\n').count() == 1);
                }
            }
        }
    }

    #[test]
    fn each_line_starts_from_an_empty_thread_buffer() {
        let lines = AccessLogLines::new(LineFormat::Text, |_: &[u8]| {});
        let long = format!("/{}", "a".repeat(300));
        record(&long, &[b'b'; 250], Some(&[b'c'; 250]), true).write_to(&lines, 1, 1, true);
        record("/x", b"id", None, true).write_to(&lines, 1, 1, true);
        let bytes = Written::default();
        let sink = bytes.clone();
        let lines = AccessLogLines::new(LineFormat::Text, move |line: &[u8]| {
            let _ = std::io::Write::write_all(&mut sink.clone(), line);
        });
        record("/y", b"id", None, true).write_to(&lines, 1, 1, true);
        // Only the last line: nothing of the earlier ones is left over.
        assert!(bytes.text().contains(" path=\"/y\" "), "{}", bytes.text());
        assert_eq!(bytes.text().matches(" INFO request ").count(), 1);
    }

    #[test]
    fn clients_of_every_address_form_are_written_as_display_writes_them() {
        let clients = [
            "0.0.0.0",
            "127.0.0.1",
            "10.0.200.7",
            "255.255.255.255",
            "::",
            "::1",
            "2001:db8::1",
            "::ffff:192.0.2.10",
            "fe80::1:2:3:4",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "2001:db8::1",
            "::1",
        ];
        // One after the other on this thread, so that each IPv6 address
        // replaces the one remembered before it.
        for client in clients {
            let mut record = record("/", b"id", None, true);
            record.client = client.parse().unwrap();
            for format in [LineFormat::Text, LineFormat::Json] {
                let (subscriber, own) = both(&record, format, 1);
                assert_eq!(own, subscriber, "{client}, {format:?}");
                assert!(own.contains(client), "{own}");
            }
        }
    }

    /// The time of `micros` after the Unix epoch, as humantime writes it.
    fn humantime_micros(micros: u64) -> (SystemTime, String) {
        let time = UNIX_EPOCH + Duration::from_micros(micros);
        (time, humantime::format_rfc3339_micros(time).to_string())
    }

    #[test]
    fn the_cached_second_is_replaced_when_the_clock_crosses_a_second() {
        // 2026-12-31T23:59:59.999998Z: across a second, a minute, a day and a
        // year, then back (a clock set back), then far ahead.
        let start = 1_798_761_599_999_998;
        let mut clock = SecondText::default();
        let mut times: Vec<u64> = (0..6).map(|step| start + step).collect();
        times.extend([
            start + 1_000_000,
            start + 1_000_001,
            start + 2_000_002,
            start,
            start + 1,
            0,
            999_999,
            1_000_000,
            253_402_300_799_999_999,
        ]);
        for micros in times {
            let (time, expected) = humantime_micros(micros);
            let mut out = Vec::new();
            clock.write(time, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{micros} µs");
        }
    }

    #[test]
    fn a_time_outside_humantimes_range_is_still_written() {
        let mut clock = SecondText::default();
        let mut out = Vec::new();
        // Before 1970: the epoch.
        clock.write(UNIX_EPOCH - Duration::from_secs(5), &mut out);
        assert_eq!(out, b"1970-01-01T00:00:00.000000Z");
        // After 9999 (which humantime refuses): the last time it writes.
        out.clear();
        clock.write(UNIX_EPOCH + Duration::from_secs(300_000_000_000), &mut out);
        assert_eq!(out, b"9999-12-31T23:59:59.999999Z");
        // And the next ordinary time is right again.
        let (time, expected) = humantime_micros(1_000_001);
        out.clear();
        clock.write(time, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn a_line_has_the_time_it_was_written_at() {
        let written = Written::default();
        let sink = written.clone();
        let lines = AccessLogLines::new(LineFormat::Text, move |line: &[u8]| {
            let _ = std::io::Write::write_all(&mut sink.clone(), line);
        });
        let record = record("/", b"id", None, true);
        for _ in 0..3 {
            let before = SystemTime::now();
            record.write_to(&lines, 1, 1, true);
            let after = SystemTime::now();
            let text = std::mem::take(&mut *written.0.lock().unwrap());
            let text = String::from_utf8(text).unwrap();
            let time = humantime::parse_rfc3339(text.split(' ').next().unwrap()).unwrap();
            // Written to the microsecond: `before` cut to it.
            let floor = Duration::from_micros(
                before.duration_since(UNIX_EPOCH).unwrap().as_micros() as u64,
            );
            assert!(UNIX_EPOCH + floor <= time && time <= after, "{text}");
        }
    }

    /// `plain` by the rule it stands for, a byte at a time.
    fn plain_bytewise(bytes: &[u8]) -> bool {
        bytes
            .iter()
            .all(|&b| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\')
    }

    #[test]
    fn plain_finds_every_byte_that_needs_an_escape_at_every_place() {
        for len in 0..=17 {
            for place in 0..len {
                for byte in 0..=255u8 {
                    // Around it, the plain bytes next to the ranges' ends.
                    let mut value: Vec<u8> = (0..len).map(|i| [b' ', b'~', b'!'][i % 3]).collect();
                    value[place] = byte;
                    assert_eq!(plain(&value), plain_bytewise(&value), "{value:?}");
                }
            }
            assert!(plain(&vec![b'a'; len]));
        }
        // Random values of bytes the tricks could confuse (borrows and
        // carries across bytes).
        let mut rng = fastrand::Rng::with_seed(14);
        let near = [
            0x00, 0x01, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x5b, 0x5c, 0x5d, 0x7e, 0x7f, 0x80, 0xff,
        ];
        for _ in 0..20_000 {
            let len = rng.usize(0..40);
            let value: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.bool() {
                        near[rng.usize(..near.len())]
                    } else {
                        rng.u8(b' '..=b'~')
                    }
                })
                .collect();
            assert_eq!(plain(&value), plain_bytewise(&value), "{value:?}");
        }
    }
}
