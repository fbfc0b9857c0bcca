//! What the layer benchmark and the cost examples share, so that they measure the
//! same thing: one CORS configuration given to both layers, one trivial inner
//! service, the same requests, and a synchronous driver.
//!
//! Each user takes part of it, hence `allow(dead_code)`.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use corsgate_policy::{CorsConfig, Policy};
use http::header::{
    ACCEPT, ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, CONTENT_TYPE, HOST,
    ORIGIN, USER_AGENT,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use tower::util::ServiceFn;
use tower::{Layer, Service, service_fn};

/// The origins of the comparison policy.
pub(crate) const ORIGINS: [&str; 3] = [
    "https://app.example.com",
    "https://admin.example.com",
    "http://localhost:3000",
];
pub(crate) const METHODS: [&str; 3] = ["PUT", "DELETE", "PATCH"];
pub(crate) const ALLOW_HEADERS: [&str; 3] = ["content-type", "x-api-key", "authorization"];
pub(crate) const EXPOSE_HEADER: &str = "x-request-id";
pub(crate) const MAX_AGE: u64 = 600;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Which service handles the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Impl {
    /// No service: the request is built and dropped. The baseline of requests a
    /// layer answers itself (preflights), since it never calls the app.
    Nothing,
    /// The inner service alone: the baseline of requests the layer passes on.
    Bare,
    /// `corsgate_tower::CorsLayer` around it.
    Corsgate,
    /// `tower_http::cors::CorsLayer` around it, configured the same way, with
    /// its origin list (`AllowOrigin::list`, a linear search).
    TowerHttp,
    /// The same with the origins in a `HashSet` behind `AllowOrigin::predicate`,
    /// as a user with many origins would write it.
    TowerHttpHashSet,
}

impl Impl {
    pub(crate) const ALL: [Impl; 5] = [
        Impl::Nothing,
        Impl::Bare,
        Impl::Corsgate,
        Impl::TowerHttp,
        Impl::TowerHttpHashSet,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Impl::Nothing => "none",
            Impl::Bare => "bare",
            Impl::Corsgate => "corsgate",
            Impl::TowerHttp => "tower-http",
            Impl::TowerHttpHashSet => "tower-http-hashset",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Impl> {
        Impl::ALL.into_iter().find(|i| i.name() == name)
    }
}

/// The request of a layer scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scenario {
    PreflightAllowed,
    ActualAllowed,
    ActualDenied,
    PreflightDenied,
    NotCors,
    /// An allowed actual request against 1000 exact origins, the last one listed.
    ActualAllowed1000Origins,
    /// The same, a preflight.
    PreflightAllowed1000Origins,
    /// An allowed actual request to an app whose response has no header.
    ActualAllowedApp0Headers,
    /// An allowed actual request to an app whose response has eight headers.
    ActualAllowedApp8Headers,
    /// An allowed preflight asking for the most names corsgate reads
    /// (`MAX_REQUEST_HEADER_NAMES`), each of them allowed.
    PreflightMostNames,
    /// A preflight with a 64 KiB `Access-Control-Request-Headers` of allowed
    /// names: refused by corsgate for its length, allowed by tower-http, which
    /// does not read the header.
    PreflightHostile64KiB,
}

impl Scenario {
    pub(crate) const ALL: [Scenario; 11] = [
        Scenario::PreflightAllowed,
        Scenario::ActualAllowed,
        Scenario::ActualDenied,
        Scenario::PreflightDenied,
        Scenario::NotCors,
        Scenario::ActualAllowed1000Origins,
        Scenario::PreflightAllowed1000Origins,
        Scenario::ActualAllowedApp0Headers,
        Scenario::ActualAllowedApp8Headers,
        Scenario::PreflightMostNames,
        Scenario::PreflightHostile64KiB,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Scenario::PreflightAllowed => "preflight-allowed",
            Scenario::ActualAllowed => "actual-allowed",
            Scenario::ActualDenied => "actual-denied",
            Scenario::PreflightDenied => "preflight-denied",
            Scenario::NotCors => "not-cors",
            Scenario::ActualAllowed1000Origins => "actual-allowed-1000-origins",
            Scenario::PreflightAllowed1000Origins => "preflight-allowed-1000-origins",
            Scenario::ActualAllowedApp0Headers => "actual-allowed-app-0-headers",
            Scenario::ActualAllowedApp8Headers => "actual-allowed-app-8-headers",
            Scenario::PreflightMostNames => "preflight-64-names",
            Scenario::PreflightHostile64KiB => "preflight-acrh-64KiB",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The allowlist: the three comparison origins, or those and 997 more.
    pub(crate) fn origins(self) -> Vec<String> {
        let mut origins: Vec<String> = ORIGINS.iter().map(|o| (*o).to_owned()).collect();
        if matches!(
            self,
            Scenario::ActualAllowed1000Origins | Scenario::PreflightAllowed1000Origins
        ) {
            origins.extend((0..997).map(|i| format!("https://tenant{i}.example.com")));
        }
        origins
    }

    fn origin(self) -> Option<String> {
        match self {
            Scenario::PreflightAllowed
            | Scenario::ActualAllowed
            | Scenario::ActualAllowedApp0Headers
            | Scenario::ActualAllowedApp8Headers
            | Scenario::PreflightMostNames
            | Scenario::PreflightHostile64KiB => Some(ORIGINS[0].to_owned()),
            Scenario::ActualDenied | Scenario::PreflightDenied => {
                Some("https://evil.example".to_owned())
            }
            Scenario::NotCors => None,
            Scenario::ActualAllowed1000Origins | Scenario::PreflightAllowed1000Origins => {
                self.origins().pop()
            }
        }
    }

    /// Whether the layers answer the request themselves (never calling the app).
    pub(crate) fn is_preflight(self) -> bool {
        matches!(
            self,
            Scenario::PreflightAllowed
                | Scenario::PreflightDenied
                | Scenario::PreflightAllowed1000Origins
                | Scenario::PreflightMostNames
                | Scenario::PreflightHostile64KiB
        )
    }

    fn is_allowed_by(self, implementation: Impl) -> bool {
        match self {
            Scenario::ActualDenied | Scenario::PreflightDenied | Scenario::NotCors => false,
            // tower-http never reads the list it is asked to allow.
            Scenario::PreflightHostile64KiB => implementation != Impl::Corsgate,
            _ => true,
        }
    }

    /// The headers of the app's response.
    fn app(self) -> App {
        match self {
            Scenario::ActualAllowedApp0Headers => app0,
            Scenario::ActualAllowedApp8Headers => app8,
            _ => app,
        }
    }

    /// The `Access-Control-Request-Headers` of a preflight.
    fn request_headers(self) -> String {
        let names = |n: usize| {
            ALLOW_HEADERS
                .iter()
                .cycle()
                .take(n)
                .copied()
                .collect::<Vec<_>>()
                .join(",")
        };
        match self {
            Scenario::PreflightMostNames => names(corsgate_policy::MAX_REQUEST_HEADER_NAMES),
            Scenario::PreflightHostile64KiB => {
                let mut list = names(64 << 10);
                list.truncate(64 << 10);
                list.trim_end_matches(|c: char| c != ',').to_owned() + "x-api-key"
            }
            _ => "content-type,x-api-key".to_owned(),
        }
    }

    /// The request, as a reusable template.
    pub(crate) fn template(self) -> RequestTemplate {
        let mut headers = vec![
            (HOST, "api.example.com".to_owned()),
            (
                USER_AGENT,
                "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0".to_owned(),
            ),
            (ACCEPT, "*/*".to_owned()),
        ];
        if let Some(origin) = self.origin() {
            headers.push((ORIGIN, origin));
        }
        let method = if self.is_preflight() {
            headers.push((ACCESS_CONTROL_REQUEST_METHOD, "PUT".to_owned()));
            headers.push((ACCESS_CONTROL_REQUEST_HEADERS, self.request_headers()));
            Method::OPTIONS
        } else {
            Method::GET
        };
        RequestTemplate::new(method, headers)
    }

    /// Panics unless `response` is what `implementation` must answer.
    pub(crate) fn check(self, implementation: Impl, response: &Response<()>) {
        let headers = response.headers();
        let allow_origin = headers.get("access-control-allow-origin");
        // The header-less app leaves no mark; its requests are actual ones.
        let reached_app =
            headers.contains_key(X_REQUEST_ID) || self == Scenario::ActualAllowedApp0Headers;
        let what = format!("{} through {}", self.name(), implementation.name());
        if implementation == Impl::Nothing {
            return;
        }
        if implementation == Impl::Bare {
            assert!(
                reached_app && allow_origin.is_none(),
                "{what}: {response:?}"
            );
            return;
        }
        if self.is_allowed_by(implementation) {
            let origin = self.origin().expect("allowed scenarios have an origin");
            assert_eq!(
                allow_origin.map(|v| v.as_bytes()),
                Some(origin.as_bytes()),
                "{what}"
            );
        } else {
            assert!(allow_origin.is_none(), "{what}: {response:?}");
        }
        // Both layers answer every preflight themselves.
        assert_eq!(reached_app, !self.is_preflight(), "{what}: {response:?}");
        if self.is_preflight() && self.is_allowed_by(implementation) {
            let allow_headers = headers.get("access-control-allow-headers");
            assert!(allow_headers.is_some(), "{what}: {response:?}");
        }
    }
}

/// A request to build again and again. Its header values are slices of shared
/// buffers, as hyper's are slices of its read buffer: cloning one (to echo the
/// origin, say) costs a reference-count increment, not an allocation.
pub(crate) struct RequestTemplate {
    method: Method,
    headers: Vec<(HeaderName, Bytes)>,
}

impl RequestTemplate {
    fn new(method: Method, headers: Vec<(HeaderName, String)>) -> Self {
        let headers = headers
            .into_iter()
            .map(|(name, value)| {
                let bytes = Bytes::from(value);
                // The first clone of a vector-backed `Bytes` makes it shared;
                // do it here, once, as hyper's buffers already are.
                drop(bytes.clone());
                (name, bytes)
            })
            .collect();
        Self { method, headers }
    }

    /// A fresh request.
    pub(crate) fn request(&self) -> Request<()> {
        let mut request = Request::new(());
        *request.method_mut() = self.method.clone();
        let headers = request.headers_mut();
        headers.reserve(self.headers.len());
        for (name, value) in &self.headers {
            let value = HeaderValue::from_maybe_shared(value.clone())
                .expect("template values are valid header values");
            headers.append(name.clone(), value);
        }
        request
    }

    /// The method and headers, for calling `Policy::decide` directly.
    pub(crate) fn head(&self) -> (Method, HeaderMap) {
        let (parts, ()) = self.request().into_parts();
        (parts.method, parts.headers)
    }
}

/// The inner service's handler: a ready response with a content type and a
/// request id, like a small JSON API.
fn app(_request: Request<()>) -> Ready<Result<Response<()>, Infallible>> {
    let mut response = Response::new(());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(X_REQUEST_ID, HeaderValue::from_static("5f0c2a91"));
    ready(Ok(response))
}

/// An app with no response header.
fn app0(_request: Request<()>) -> Ready<Result<Response<()>, Infallible>> {
    ready(Ok(Response::new(())))
}

/// An app with eight response headers (a content type, a request id, caching,
/// security headers), written as an app writes them: inserted one by one.
fn app8(_request: Request<()>) -> Ready<Result<Response<()>, Infallible>> {
    let mut response = Response::new(());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(X_REQUEST_ID, HeaderValue::from_static("5f0c2a91"));
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        http::header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=63072000"),
    );
    headers.insert(http::header::ETAG, HeaderValue::from_static("\"33a64df5\""));
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("2"));
    headers.insert(
        http::header::DATE,
        HeaderValue::from_static("Sun, 06 Dec 2026 07:00:00 GMT"),
    );
    ready(Ok(response))
}

type App = fn(Request<()>) -> Ready<Result<Response<()>, Infallible>>;
pub(crate) type Inner = ServiceFn<App>;

/// The trivial inner service.
pub(crate) fn inner() -> Inner {
    service_fn(app as App)
}

fn inner_with(app: App) -> Inner {
    service_fn(app)
}

/// The comparison policy for corsgate, over `origins`.
pub(crate) fn corsgate_policy(origins: &[String]) -> Policy {
    let config = CorsConfig::new()
        .allow_origins(origins.to_vec())
        .allow_methods(METHODS)
        .allow_headers(ALLOW_HEADERS)
        .expose_headers(EXPOSE_HEADER)
        .allow_credentials(true)
        .max_age(MAX_AGE as i64);
    Policy::compile(&config).expect("the comparison policy compiles")
}

/// corsgate's layer over the inner service.
pub(crate) fn corsgate(origins: &[String]) -> corsgate_tower::Cors<Inner> {
    corsgate_with(origins, inner())
}

fn corsgate_with(origins: &[String], inner: Inner) -> corsgate_tower::Cors<Inner> {
    corsgate_tower::CorsLayer::new(corsgate_policy(origins)).layer(inner)
}

/// tower-http's layer over the inner service, configured like corsgate's: the same
/// origins, methods, request headers, exposed header, credentials and max age.
pub(crate) fn tower_http(origins: &[String]) -> tower_http::cors::Cors<Inner> {
    use tower_http::cors::AllowOrigin;
    let origins = origins
        .iter()
        .map(|o| HeaderValue::from_str(o).expect("origins are header values"));
    tower_http_with(AllowOrigin::list(origins), inner())
}

/// tower-http's layer with the origins in a `HashSet` behind a predicate.
fn tower_http_hashset(origins: &[String], inner: Inner) -> tower_http::cors::Cors<Inner> {
    use std::collections::HashSet;
    use tower_http::cors::AllowOrigin;
    let set: HashSet<HeaderValue> = origins
        .iter()
        .map(|o| HeaderValue::from_str(o).expect("origins are header values"))
        .collect();
    let allow = AllowOrigin::predicate(move |origin: &HeaderValue, _parts| set.contains(origin));
    tower_http_with(allow, inner)
}

fn tower_http_with(
    allow_origin: tower_http::cors::AllowOrigin,
    inner: Inner,
) -> tower_http::cors::Cors<Inner> {
    use tower_http::cors::CorsLayer;
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods(METHODS.map(|m| Method::from_bytes(m.as_bytes()).expect("a method")))
        .allow_headers(ALLOW_HEADERS.map(HeaderName::from_static))
        .expose_headers([HeaderName::from_static(EXPOSE_HEADER)])
        .allow_credentials(true)
        .max_age(Duration::from_secs(MAX_AGE))
        .layer(inner)
}

/// Drives one request through `service` synchronously: `poll_ready`, `call`, and a
/// single poll of the future with a no-op waker (every service here is ready at
/// once), so that no runtime is measured.
#[inline]
pub(crate) fn call<S>(service: &mut S, request: Request<()>) -> Response<()>
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible>,
{
    let mut cx = Context::from_waker(Waker::noop());
    match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(never)) => match never {},
        Poll::Pending => panic!("the service is not ready"),
    }
    let future = pin!(service.call(request));
    match future.poll(&mut cx) {
        Poll::Ready(Ok(response)) => response,
        Poll::Ready(Err(never)) => match never {},
        Poll::Pending => panic!("the service did not answer at once"),
    }
}

/// A prepared run: the service built and checked, ready for `n` requests.
pub(crate) type Run = Box<dyn FnMut(u64)>;

/// Builds the service for (`scenario`, `implementation`), checks one response, and
/// returns the loop that sends `n` requests and drops the responses.
pub(crate) fn prepare(scenario: Scenario, implementation: Impl) -> Run {
    let template = scenario.template();
    let origins = scenario.origins();
    let app = inner_with(scenario.app());
    match implementation {
        Impl::Nothing => Box::new(move |n| {
            for _ in 0..n {
                black_box(template.request());
            }
        }),
        Impl::Bare => looped(app, template, scenario, implementation),
        Impl::Corsgate => looped(
            corsgate_with(&origins, app),
            template,
            scenario,
            implementation,
        ),
        Impl::TowerHttp => {
            let origins = origins
                .iter()
                .map(|o| HeaderValue::from_str(o).expect("origins are header values"));
            let service = tower_http_with(tower_http::cors::AllowOrigin::list(origins), app);
            looped(service, template, scenario, implementation)
        }
        Impl::TowerHttpHashSet => looped(
            tower_http_hashset(&origins, app),
            template,
            scenario,
            implementation,
        ),
    }
}

fn looped<S>(
    mut service: S,
    template: RequestTemplate,
    scenario: Scenario,
    implementation: Impl,
) -> Run
where
    S: Service<Request<()>, Response = Response<()>, Error = Infallible> + 'static,
{
    scenario.check(implementation, &call(&mut service, template.request()));
    Box::new(move |n| {
        for _ in 0..n {
            black_box(call(&mut service, template.request()));
        }
    })
}

/// `Policy::decide` alone, for the per-origin-count and per-byte costs.
pub(crate) const DECIDE_SCENARIOS: [&str; 17] = [
    "actual-allowed-1-origin",
    "actual-allowed-1000-origins",
    "actual-denied-1-origin",
    "actual-denied-1000-origins",
    "preflight-allowed-1-origin",
    "preflight-allowed-1000-origins",
    "actual-allowed-subdomain-pattern",
    "actual-allowed-any-port-pattern",
    "acrh-commas-8KiB",
    "acrh-commas-64KiB",
    "acrh-commas-1MiB",
    "acrh-tokens-4096",
    "acrh-one-letter-64KiB",
    // Within the limits, the costliest lists: the longest (64 names of 63
    // bytes, 4096 bytes) and the densest (64 one-letter names), all allowed;
    // and one name past the limit, refused.
    "acrh-longest-allowed-4KiB",
    "acrh-64-one-letter-names",
    "acrh-65-one-letter-names",
    // The longest again, each name with `_`, a token byte but not one of the
    // bytes of the names pages send: read by the general walk, not the run.
    "acrh-longest-allowed-4KiB-underscores",
];

/// hyper's HTTP/1 parsing of the same preflight heads as the `acrh-*` decide
/// scenarios: `httparse` (hyper's parser) over the bytes, then a `HeaderMap`
/// made as hyper makes it (each value a slice of the read buffer).
pub(crate) const PARSE_SCENARIOS: [&str; 5] = [
    "acrh-commas-64KiB",
    "acrh-one-letter-64KiB",
    "acrh-longest-allowed-4KiB",
    "acrh-64-one-letter-names",
    "acrh-longest-allowed-4KiB-underscores",
];

/// The length of the hostile `Access-Control-Request-Headers` value of a decide
/// scenario, if it has one.
pub(crate) fn hostile_len(scenario: &str) -> Option<usize> {
    hostile_value(scenario).map(|v| v.len())
}

fn hostile_value(scenario: &str) -> Option<String> {
    match scenario {
        "acrh-commas-8KiB" => Some(",".repeat(8 << 10)),
        "acrh-commas-64KiB" => Some(",".repeat(64 << 10)),
        "acrh-commas-1MiB" => Some(",".repeat(1 << 20)),
        // The costliest per byte: a name per two bytes, each one listed.
        "acrh-one-letter-64KiB" => Some("a,".repeat(32 << 10)),
        "acrh-longest-allowed-4KiB" => Some(
            (0..64)
                .map(|i| format!("x-{}{i:02}", "l".repeat(59)))
                .collect::<Vec<_>>()
                .join(",")
                + "z",
        ),
        "acrh-longest-allowed-4KiB-underscores" => Some(
            (0..64)
                .map(|i| format!("x_{}{i:02}", "l".repeat(59)))
                .collect::<Vec<_>>()
                .join(",")
                + "z",
        ),
        "acrh-64-one-letter-names" => Some(vec!["a"; 64].join(",")),
        "acrh-65-one-letter-names" => Some(vec!["a"; 65].join(",")),
        "acrh-tokens-4096" => Some(
            ["content-type", "x-api-key"]
                .iter()
                .cycle()
                .take(4096)
                .copied()
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    }
}

/// Builds the policy and request of a decide scenario, checks the decision once
/// (which also makes every precomputed value shared), and returns the loop.
pub(crate) fn prepare_decide(scenario: &str) -> Option<Run> {
    let exact = |n: usize| -> Vec<String> {
        (0..n)
            .map(|i| format!("https://app{i}.example.com"))
            .collect()
    };
    let (origins, origin, allowed) = match scenario {
        "actual-allowed-1-origin" | "preflight-allowed-1-origin" => {
            (exact(1), "https://app0.example.com", true)
        }
        "actual-allowed-1000-origins" | "preflight-allowed-1000-origins" => {
            (exact(1000), "https://app999.example.com", true)
        }
        "actual-denied-1-origin" => (exact(1), "https://app.example.net", false),
        "actual-denied-1000-origins" => (exact(1000), "https://app.example.net", false),
        "actual-allowed-subdomain-pattern" => (
            vec!["https://*.example.com".to_owned()],
            "https://a.b.example.com",
            true,
        ),
        "actual-allowed-any-port-pattern" => (
            vec!["http://localhost:*".to_owned()],
            "http://localhost:5173",
            true,
        ),
        "acrh-longest-allowed-4KiB"
        | "acrh-longest-allowed-4KiB-underscores"
        | "acrh-64-one-letter-names" => (exact(1), "https://app0.example.com", true),
        // Past a limit: refused before the list is read, or at the 65th name.
        _ if scenario.starts_with("acrh-") => (exact(1), "https://app0.example.com", false),
        _ => return None,
    };
    let policy = if scenario.starts_with("acrh-longest-allowed-4KiB") {
        let config = CorsConfig::new()
            .allow_origins(origins.clone())
            .allow_methods(METHODS)
            .allow_headers("*");
        Policy::compile(&config).expect("the any-header policy compiles")
    } else if scenario.contains("one-letter") {
        let config = CorsConfig::new()
            .allow_origins(origins.clone())
            .allow_methods(METHODS)
            .allow_headers(["a", ALLOW_HEADERS[0], ALLOW_HEADERS[1], ALLOW_HEADERS[2]]);
        Policy::compile(&config).expect("the one-letter policy compiles")
    } else {
        corsgate_policy(&origins)
    };
    let mut headers = vec![(ORIGIN, origin.to_owned())];
    let preflight = scenario.starts_with("preflight-") || scenario.starts_with("acrh-");
    let method = if preflight {
        headers.push((ACCESS_CONTROL_REQUEST_METHOD, "PUT".to_owned()));
        let list = hostile_value(scenario).unwrap_or_else(|| "content-type,x-api-key".into());
        headers.push((ACCESS_CONTROL_REQUEST_HEADERS, list));
        Method::OPTIONS
    } else {
        Method::GET
    };
    let (method, headers) = RequestTemplate::new(method, headers).head();
    let decision = policy.decide(&method, &headers);
    assert_eq!(decision.is_allowed(), allowed, "{scenario}: {decision:?}");
    Some(Box::new(move |n| {
        for _ in 0..n {
            black_box(policy.decide(black_box(&method), black_box(&headers)));
        }
    }))
}

/// The raw preflight head of a decide scenario, as it arrives on a connection.
fn raw_head(scenario: &str) -> Option<Vec<u8>> {
    let list = hostile_value(scenario)?;
    Some(
        format!(
            "OPTIONS /items/1 HTTP/1.1\r\nHost: api.example.com\r\nOrigin: https://app0.example.com\r\nAccess-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: {list}\r\n\r\n"
        )
        .into_bytes(),
    )
}

/// hyper's reading of a head: `httparse` over the bytes, then the `HeaderMap`,
/// each name looked up (or copied when not a standard one) and each value a
/// slice of the shared read buffer, as hyper's `role.rs` does.
pub(crate) fn prepare_parse(scenario: &str) -> Option<Run> {
    let bytes = Bytes::from(raw_head(scenario)?);
    let parse = move || -> HeaderMap {
        let mut storage = [httparse::EMPTY_HEADER; 16];
        let mut request = httparse::Request::new(&mut storage);
        let status = request.parse(&bytes).expect("a valid head");
        assert!(status.is_complete());
        let mut map = HeaderMap::with_capacity(request.headers.len());
        for header in request.headers.iter() {
            let name = HeaderName::from_bytes(header.name.as_bytes()).expect("a name");
            let start = header.value.as_ptr() as usize - bytes.as_ptr() as usize;
            let value = bytes.slice(start..start + header.value.len());
            // hyper checks the bytes as it parses; the value is then taken as is.
            let value = HeaderValue::from_maybe_shared(value).expect("a value");
            map.append(name, value);
        }
        map
    };
    assert_eq!(parse().len(), 4, "{scenario}");
    Some(Box::new(move |n| {
        for _ in 0..n {
            black_box(parse());
        }
    }))
}
