//! A small HTTP server on loopback that makes CORS mistakes on demand, and a
//! correct one (corsgate's tower layer), for the audit tests.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The path that exists; everything else is 404.
pub(crate) const PATH: &str = "/api/items";
pub(crate) const TRUSTED: &str = "https://app.example.com";

/// Which mistakes the server makes. `Default` is a correct allowlist server
/// (exact match, `Vary: Origin` everywhere, CORS on errors, 204 preflights).
#[derive(Debug, Clone)]
pub(crate) struct Mistakes {
    pub allowed: Vec<&'static str>,
    /// Echo any Origin.
    pub reflect_any: bool,
    /// Accept `null`.
    pub null: bool,
    /// `origin.starts_with(allowed)`.
    pub starts_with: bool,
    /// `allowed` followed by `_`, a backtick or `%` (a regex like
    /// `^https://app\.example\.com[^.]`).
    pub special_after_host: bool,
    /// The host ends with the allowed registrable domain, no dot required.
    pub ends_with_domain: bool,
    /// Any subdomain of the allowed host.
    pub subdomains: bool,
    /// The scheme is not compared.
    pub any_scheme: bool,
    /// The port is not compared.
    pub any_port: bool,
    pub credentials: bool,
    /// `Access-Control-Allow-Origin: *` for any Origin.
    pub wildcard: bool,
    /// Preflights get `Access-Control-Allow-Headers: *`.
    pub headers_wildcard: bool,
    /// Two Access-Control-Allow-Origin lines.
    pub duplicate_lines: bool,
    /// Access-Control-Allow-Origin as a comma list.
    pub comma_list: bool,
    pub vary: bool,
    /// Status of an accepted preflight.
    pub preflight_status: u16,
    pub max_age: Option<&'static str>,
    pub cors_on_errors: bool,
    /// Accept connections, read requests, never answer.
    pub never_answer: bool,
    /// Always send this Access-Control-Allow-Origin, whatever the Origin.
    pub hard_coded: Option<&'static str>,
}

impl Default for Mistakes {
    fn default() -> Self {
        Mistakes {
            allowed: vec![TRUSTED],
            reflect_any: false,
            null: false,
            starts_with: false,
            special_after_host: false,
            ends_with_domain: false,
            subdomains: false,
            any_scheme: false,
            any_port: false,
            credentials: false,
            wildcard: false,
            headers_wildcard: false,
            duplicate_lines: false,
            comma_list: false,
            vary: true,
            preflight_status: 204,
            max_age: None,
            cors_on_errors: true,
            never_answer: false,
            hard_coded: None,
        }
    }
}

fn split(origin: &str) -> Option<(&str, &str, Option<&str>)> {
    let (scheme, rest) = origin.split_once("://")?;
    Some(match rest.rsplit_once(':') {
        Some((host, port)) => (scheme, host, Some(port)),
        None => (scheme, rest, None),
    })
}

impl Mistakes {
    fn accepts(&self, origin: &str) -> bool {
        if self.reflect_any || self.wildcard {
            return true;
        }
        if origin == "null" {
            return self.null;
        }
        let Some((scheme, host, port)) = split(origin) else {
            return false;
        };
        self.allowed.iter().any(|allowed| {
            if origin == *allowed {
                return true;
            }
            if self.starts_with && origin.starts_with(allowed) {
                return true;
            }
            if self.special_after_host {
                if let Some(rest) = origin.strip_prefix(allowed) {
                    if rest.starts_with(['_', '`', '%']) {
                        return true;
                    }
                }
            }
            let Some((a_scheme, a_host, a_port)) = split(allowed) else {
                return false;
            };
            let domain = a_host.split_once('.').map_or(a_host, |(_, d)| d);
            (self.ends_with_domain
                && scheme == a_scheme
                && port == a_port
                && host.ends_with(domain))
                || (self.subdomains
                    && scheme == a_scheme
                    && port == a_port
                    && host.ends_with(&format!(".{a_host}")))
                || (self.any_scheme && host == a_host && port == a_port)
                || (self.any_port && scheme == a_scheme && host == a_host)
        })
    }

    fn cors(&self, origin: Option<&str>, response: &mut Response<String>, preflight: bool) {
        let headers = response.headers_mut();
        if self.vary {
            headers.append("vary", HeaderValue::from_static("Origin"));
        }
        if let Some(value) = self.hard_coded {
            headers.insert(
                "access-control-allow-origin",
                HeaderValue::from_static(value),
            );
            if self.credentials {
                headers.insert(
                    "access-control-allow-credentials",
                    HeaderValue::from_static("true"),
                );
            }
            return;
        }
        let Some(origin) = origin.filter(|o| self.accepts(o)) else {
            return;
        };
        let value = if self.wildcard {
            "*".to_owned()
        } else if self.comma_list {
            format!("{TRUSTED}, {origin}")
        } else {
            origin.to_owned()
        };
        let value = HeaderValue::from_str(&value).unwrap();
        headers.insert("access-control-allow-origin", value.clone());
        if self.duplicate_lines {
            headers.append("access-control-allow-origin", value);
        }
        if self.credentials {
            headers.insert(
                "access-control-allow-credentials",
                HeaderValue::from_static("true"),
            );
        }
        if preflight {
            headers.insert(
                "access-control-allow-methods",
                HeaderValue::from_static("GET, PUT"),
            );
            headers.insert(
                "access-control-allow-headers",
                HeaderValue::from_static(if self.headers_wildcard {
                    "*"
                } else {
                    "content-type, authorization"
                }),
            );
            if let Some(max_age) = self.max_age {
                headers.insert("access-control-max-age", HeaderValue::from_static(max_age));
            }
        }
    }

    fn respond(&self, request: &Request<Incoming>) -> Response<String> {
        let origin = request
            .headers()
            .get("origin")
            .and_then(|v| v.to_str().ok());
        let preflight = request.method() == Method::OPTIONS
            && request
                .headers()
                .contains_key("access-control-request-method");
        if preflight {
            let mut response = Response::new(String::new());
            let accepted = origin.is_some_and(|o| self.accepts(o)) || self.hard_coded.is_some();
            *response.status_mut() = if accepted {
                StatusCode::from_u16(self.preflight_status).unwrap()
            } else {
                StatusCode::FORBIDDEN
            };
            if accepted && (300..400).contains(&self.preflight_status) {
                response
                    .headers_mut()
                    .insert("location", HeaderValue::from_static("/login"));
            }
            if accepted {
                self.cors(origin, &mut response, true);
            }
            return response;
        }
        if request.uri().path() != PATH {
            let mut response = Response::new(String::from("not found"));
            *response.status_mut() = StatusCode::NOT_FOUND;
            if self.cors_on_errors {
                self.cors(origin, &mut response, false);
            }
            return response;
        }
        let mut response = Response::new(String::from("{\"items\":[]}"));
        self.cors(origin, &mut response, false);
        response
    }
}

/// A running test server: its address and how many requests it received.
pub(crate) struct Server {
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl Server {
    pub(crate) fn url(&self) -> String {
        format!("http://{}{PATH}", self.addr)
    }

    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn serve<F>(handler: F) -> Server
where
    F: Fn(Request<Incoming>) -> Option<Response<String>> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            let count = count.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    count.fetch_add(1, Ordering::SeqCst);
                    let handler = handler.clone();
                    async move {
                        match handler(request) {
                            Some(response) => Ok::<_, Infallible>(response),
                            None => {
                                // Never answer (the test's runtime ends first).
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                                Ok(Response::new(String::new()))
                            }
                        }
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server { addr, requests }
}

/// Starts a server making `mistakes`.
pub(crate) async fn vulnerable(mistakes: Mistakes) -> Server {
    serve(move |request| {
        if mistakes.never_answer {
            return None;
        }
        Some(mistakes.respond(&request))
    })
    .await
}

/// Starts corsgate's tower layer with `policy` in front of a trivial service.
pub(crate) async fn corsgate(policy: corsgate_policy::Policy) -> Server {
    use tower::{Layer, ServiceExt};
    let inner = tower::service_fn(|request: Request<Incoming>| async move {
        let mut response = Response::new(String::from("{\"items\":[]}"));
        if request.uri().path() != PATH {
            *response.status_mut() = StatusCode::NOT_FOUND;
        }
        Ok::<_, Infallible>(response)
    });
    let service = corsgate_tower::CorsLayer::new(policy).layer(inner);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = service.clone();
            let count = count.clone();
            tokio::spawn(async move {
                let hyper_service = service_fn(move |request: Request<Incoming>| {
                    count.fetch_add(1, Ordering::SeqCst);
                    service.clone().oneshot(request)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper_service)
                    .await;
            });
        }
    });
    Server { addr, requests }
}

/// A plain upstream without CORS: 200 on `/api/licenses` and `PATH`, 404
/// elsewhere, 405 for OPTIONS; with `cors`, it adds its own CORS headers for
/// `https://dashboard.example.com`, as an application with CORS enabled does.
pub(crate) async fn upstream(cors: bool) -> Server {
    serve(move |request| {
        let mut response = Response::new(String::from("{}"));
        if request.method() == Method::OPTIONS {
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        } else if !matches!(request.uri().path(), "/api/licenses" | PATH) {
            *response.status_mut() = StatusCode::NOT_FOUND;
        }
        let origin = request.headers().get("origin").cloned();
        if cors
            && origin
                .as_ref()
                .is_some_and(|o| o == "https://dashboard.example.com")
        {
            let headers = response.headers_mut();
            headers.insert("access-control-allow-origin", origin.unwrap());
            headers.insert(
                "access-control-allow-credentials",
                HeaderValue::from_static("true"),
            );
            headers.append("vary", HeaderValue::from_static("Origin"));
        }
        Some(response)
    })
    .await
}
