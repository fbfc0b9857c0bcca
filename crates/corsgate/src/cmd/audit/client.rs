//! The prober's HTTP side: one request at a time, each bounded in time, all of
//! them bounded in number, and each kept as evidence exactly as it was sent.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

/// Bytes of a response body read (and thrown away) before giving up on it.
const MAX_BODY: usize = 64 * 1024;

/// One request sent and the response that came back: the evidence of a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exchange {
    pub request: SentRequest,
    pub response: Received,
}

/// A request exactly as it was sent (header names lowercase, in order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentRequest {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
}

/// The parts of a response that CORS depends on: the status, and the
/// `Access-Control-*`, `Vary`, `Location` and `WWW-Authenticate` lines, each line
/// kept (duplicates included), in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Received {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Received {
    /// Every line of header `name` (lowercase).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The first line of header `name` (lowercase).
    pub fn first(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `Access-Control-Allow-Origin`, first line.
    pub fn allow_origin(&self) -> Option<&str> {
        self.first("access-control-allow-origin")
    }

    /// Whether `Access-Control-Allow-Credentials: true` (the only value browsers
    /// accept, case-sensitively) is present.
    pub fn allows_credentials(&self) -> bool {
        self.first("access-control-allow-credentials") == Some("true")
    }

    /// Whether `Vary` lists `Origin` (or is `*`).
    pub fn varies_on_origin(&self) -> bool {
        self.all("vary").iter().any(|line| {
            line.split(',')
                .map(str::trim)
                .any(|m| m == "*" || m.eq_ignore_ascii_case("origin"))
        })
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

fn kept(name: &HeaderName) -> bool {
    let name = name.as_str();
    name.starts_with("access-control-") || matches!(name, "vary" | "location" | "www-authenticate")
}

/// Why a probe got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SendError {
    /// `--max-requests` reached: nothing was sent.
    Budget,
    /// No complete response head (and body) within the timeout.
    Timeout,
    /// Connection refused, reset, malformed response…
    Failed(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Budget => f.write_str("request budget spent"),
            SendError::Timeout => f.write_str("no answer within the timeout"),
            SendError::Failed(why) => f.write_str(why),
        }
    }
}

/// What to send.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    pub(crate) method: Method,
    pub(crate) target: String,
    pub(crate) origin: Option<String>,
    /// `Access-Control-Request-Method` (and `-Headers`) for a preflight.
    pub(crate) request_method: Option<String>,
    pub(crate) request_headers: Option<String>,
    /// Send the `--header` values (actual requests only: browsers never add
    /// credentials or custom headers to a preflight).
    pub(crate) with_extra_headers: bool,
}

impl Probe {
    /// An actual request.
    pub(crate) fn actual(method: Method, target: &str, origin: Option<&str>) -> Self {
        Probe {
            method,
            target: target.to_owned(),
            origin: origin.map(str::to_owned),
            request_method: None,
            request_headers: None,
            with_extra_headers: true,
        }
    }

    /// A preflight, as a browser sends it.
    pub(crate) fn preflight(
        target: &str,
        origin: &str,
        method: &str,
        headers: Option<&str>,
    ) -> Self {
        Probe {
            method: Method::OPTIONS,
            target: target.to_owned(),
            origin: Some(origin.to_owned()),
            request_method: Some(method.to_owned()),
            request_headers: headers.map(str::to_owned),
            with_extra_headers: false,
        }
    }
}

/// Sends probes to one server, counting them.
pub(crate) struct Prober {
    client: Client<HttpConnector, Empty<Bytes>>,
    authority: String,
    /// Where to connect (`--resolve`), when not to `authority`.
    connect_to: Option<String>,
    timeout: Duration,
    max_requests: usize,
    sent: usize,
    extra: Vec<(HeaderName, HeaderValue)>,
}

impl Prober {
    pub(crate) fn new(
        authority: &str,
        connect_to: Option<&str>,
        timeout: Duration,
        max_requests: usize,
        extra: Vec<(HeaderName, HeaderValue)>,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.enforce_http(true);
        // One connection per request and no automatic retry: the server sees
        // exactly the requests counted here, never one more.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .retry_canceled_requests(false)
            .build(connector);
        Prober {
            client,
            authority: authority.to_owned(),
            connect_to: connect_to.map(str::to_owned),
            timeout,
            max_requests,
            sent: 0,
            extra,
        }
    }

    /// Requests sent so far (answered or not).
    pub(crate) fn sent(&self) -> usize {
        self.sent
    }

    /// Sends one probe and waits at most the timeout for the whole response.
    pub(crate) async fn send(&mut self, probe: &Probe) -> Result<Exchange, SendError> {
        if self.sent >= self.max_requests {
            return Err(SendError::Budget);
        }
        let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
        let value = |text: &str| {
            HeaderValue::from_str(text).map_err(|_| {
                SendError::Failed(format!("{text:?} cannot be sent as a header value"))
            })
        };
        headers.push((http::header::HOST, value(&self.authority)?));
        if let Some(origin) = &probe.origin {
            headers.push((http::header::ORIGIN, value(origin)?));
        }
        if let Some(method) = &probe.request_method {
            headers.push((http::header::ACCESS_CONTROL_REQUEST_METHOD, value(method)?));
        }
        if let Some(list) = &probe.request_headers {
            headers.push((http::header::ACCESS_CONTROL_REQUEST_HEADERS, value(list)?));
        }
        headers.push((
            http::header::USER_AGENT,
            HeaderValue::from_static("corsgate-audit"),
        ));
        if probe.with_extra_headers {
            headers.extend(self.extra.iter().cloned());
        }
        // With --resolve the request goes to that address; the Host header
        // set above stays the URL's (the client keeps a Host it is given).
        let connect = self.connect_to.as_deref().unwrap_or(&self.authority);
        let uri: Uri = format!("http://{connect}{}", probe.target)
            .parse()
            .map_err(|e| SendError::Failed(format!("bad target {:?}: {e}", probe.target)))?;
        let mut request = Request::builder()
            .method(probe.method.clone())
            .uri(uri)
            .body(Empty::<Bytes>::new())
            .map_err(|e| SendError::Failed(e.to_string()))?;
        for (name, value) in &headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        let sent = SentRequest {
            method: probe.method.to_string(),
            target: probe.target.clone(),
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        };
        self.sent += 1;
        let client = self.client.clone();
        let exchange = async move {
            let response = client.request(request).await.map_err(|e| {
                let mut why = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    why.push_str(": ");
                    why.push_str(&cause.to_string());
                    source = cause.source();
                }
                SendError::Failed(why)
            })?;
            let (parts, body) = response.into_parts();
            // Read the body so the exchange is complete; its content is not needed.
            let _ = Limited::new(body, MAX_BODY).collect().await;
            let headers = parts
                .headers
                .iter()
                .filter(|(name, _)| kept(name))
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect();
            Ok(Received {
                status: parts.status.as_u16(),
                headers,
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Err(SendError::Timeout),
            Ok(Err(err)) => Err(err),
            Ok(Ok(response)) => Ok(Exchange {
                request: sent,
                response,
            }),
        }
    }
}
