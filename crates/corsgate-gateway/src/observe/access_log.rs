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
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

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
            static BUFFER: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(LINE_CAPACITY));
        }
        BUFFER.with(|buffer| {
            // Taken, not borrowed, so that a sink that logs again (it should
            // not) finds an empty buffer instead of a panic.
            let mut line = std::mem::take(&mut *buffer.borrow_mut());
            line.clear();
            let mut out = LineWriter {
                buf: &mut line,
                format: lines.format,
            };
            out.start(SystemTime::now());
            self.fields(&mut out, micros, bytes_out, complete);
            out.end();
            (lines.write)(&line);
            // A line is at most a few KiB (every client value is capped):
            // keep what a usual line needs, not what the longest one did.
            line.shrink_to(LINE_CAPACITY);
            *buffer.borrow_mut() = line;
        });
    }

    /// The fields of the line, in the order of the `tracing` event.
    fn fields(&self, out: &mut LineWriter<'_>, micros: u128, bytes_out: u64, complete: bool) {
        out.str(
            "request_id",
            &String::from_utf8_lossy(self.request_id.as_bytes()),
        );
        out.display("client", &self.client);
        out.str("method", self.arrived.method.as_str());
        match self.arrived.uri.authority() {
            Some(authority) => out.str("host", authority.as_str()),
            None => match &self.arrived.host {
                Some(host) => out.str("host", &String::from_utf8_lossy(host.as_bytes())),
                None => out.str("host", ""),
            },
        }
        out.str("path", self.arrived.uri.path());
        out.u64("status", u64::from(self.status.as_u16()));
        out.str("route", self.route.name());
        out.str_uncapped("cors", self.cors);
        out.str_uncapped("reason", self.reason);
        out.str_uncapped("error", self.error);
        out.str_uncapped("upstream", &self.upstream.as_str());
        if let Some(status) = self.upstream_status {
            out.u64("upstream_status", u64::from(status.as_u16()));
        }
        out.millis("duration_ms", micros);
        out.u64("bytes_in", self.body_in.as_ref().map_or(0, |p| p.bytes()));
        out.u64("bytes_out", bytes_out);
        out.bool("complete", complete);
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
    write: Arc<dyn Fn(&[u8]) + Send + Sync>,
}

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

/// Writes one line, field by field, as tracing-subscriber formats an event.
struct LineWriter<'a> {
    buf: &'a mut Vec<u8>,
    format: LineFormat,
}

impl LineWriter<'_> {
    /// The time, the level and the message.
    fn start(&mut self, now: SystemTime) {
        let time = humantime::format_rfc3339_micros(now);
        match self.format {
            // `{time} {level:>5} {message}`.
            LineFormat::Text => {
                let _ = write!(self.buf, "{time}  INFO request");
            }
            LineFormat::Json => {
                let _ = write!(
                    self.buf,
                    "{{\"timestamp\":\"{time}\",\"level\":\"INFO\",\"message\":\"request\""
                );
            }
        }
    }

    /// The target (JSON only) and the end of the line.
    fn end(&mut self) {
        if self.format == LineFormat::Json {
            self.key("target");
            self.json_str(TARGET);
            self.buf.push(b'}');
        }
        self.buf.push(b'\n');
    }

    /// ` name=` or `,"name":`.
    fn key(&mut self, name: &str) {
        match self.format {
            LineFormat::Text => {
                self.buf.push(b' ');
                self.buf.extend_from_slice(name.as_bytes());
                self.buf.push(b'=');
            }
            LineFormat::Json => {
                self.buf.extend_from_slice(b",\"");
                self.buf.extend_from_slice(name.as_bytes());
                self.buf.extend_from_slice(b"\":");
            }
        }
    }

    /// A string a client may have chosen: cut to [`MAX_LOGGED_VALUE`], then
    /// quoted and escaped as `fmt::Debug` does (text), or as a JSON string.
    fn str(&mut self, name: &str, value: &str) {
        self.str_uncapped(name, &capped(value));
    }

    /// A string of the gateway's own (a name, a kind, the configured
    /// upstream), quoted and escaped as [`str`](Self::str) does.
    fn str_uncapped(&mut self, name: &str, value: &str) {
        self.key(name);
        match self.format {
            LineFormat::Text => {
                // What `{:?}` leaves as it is, copied; anything else (quotes,
                // backslashes, control and non-ASCII characters) through
                // `{:?}` itself, so that the escapes are exactly its own.
                if value
                    .bytes()
                    .all(|b| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\')
                {
                    self.buf.push(b'"');
                    self.buf.extend_from_slice(value.as_bytes());
                    self.buf.push(b'"');
                } else {
                    let _ = write!(self.buf, "{value:?}");
                }
            }
            LineFormat::Json => self.json_str(value),
        }
    }

    fn json_str(&mut self, value: &str) {
        if value.bytes().all(|b| b >= b' ' && b != b'"' && b != b'\\') {
            self.buf.push(b'"');
            self.buf.extend_from_slice(value.as_bytes());
            self.buf.push(b'"');
        } else {
            // serde_json's escapes, as tracing-subscriber's JSON lines have.
            let _ = serde_json::to_writer(&mut *self.buf, value);
        }
    }

    /// A value recorded with `%` (`Display`): bare in text, a string in JSON.
    fn display(&mut self, name: &str, value: &dyn fmt::Display) {
        self.key(name);
        match self.format {
            LineFormat::Text => {
                let _ = write!(self.buf, "{value}");
            }
            LineFormat::Json => {
                let _ = write!(self.buf, "\"{value}\"");
            }
        }
    }

    fn u64(&mut self, name: &str, value: u64) {
        self.key(name);
        self.digits(value);
    }

    /// `value` in decimal, without `fmt`'s machinery (a third of the line's
    /// cost when its four numbers went through `write!`).
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
        self.buf
            .extend_from_slice(digits.get(start..).unwrap_or_default());
    }

    fn bool(&mut self, name: &str, value: bool) {
        self.key(name);
        self.buf
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    /// Microseconds as milliseconds, written as the `f64` `micros / 1000.0`
    /// is by `fmt::Debug` and by serde_json (the shortest decimal that reads
    /// back as the same number: `0.26`, `1.0`, `12.345`), without the float.
    fn millis(&mut self, name: &str, micros: u128) {
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
}
