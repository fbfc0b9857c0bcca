//! WebKit (Safari, and every browser on iOS): its checks, in the order WebKit
//! runs them, and its console messages, as WebKitGTK 2.50 prints them.
//!
//! Every message here was printed by WebKitGTK 2.50.6 (Debian's MiniBrowser)
//! in the real-browser suite; none is taken from another engine. WebKit prints
//! two console lines for a refused request: the reason (a `SECURITY` error)
//! and then, from the API the page used, `Fetch API cannot load URL due to
//! access control checks.` (`XMLHttpRequest cannot load …` for XHR).
//!
//! Where WebKit departs from the Fetch standard and from Chromium:
//! - a preflight's status is checked before its `Access-Control-Allow-Origin`,
//!   so corsgate's bare `403` to a refused preflight is blamed on the status;
//! - a missing `Access-Control-Allow-Origin` and one naming another origin give
//!   the same message, which carries the response's status code;
//! - `Access-Control-Allow-Headers: *` covers `Authorization` too (without
//!   credentials), as Chromium without its strict flag;
//! - the refused request header it names is the first that is not allowed in
//!   its own order (the headers it knows by name first, spelt its way, then the
//!   others as the page wrote them), not the first in alphabetical order.

use http::{HeaderMap, StatusCode};

use super::{BrowserExchange, Judgement};
use crate::Verdict;
use crate::browser::{self, Credentials, Initiator};

/// What `fetch()` rejects with in WebKit.
const LOAD_FAILED: &str = "Load failed";

/// Why WebKit refuses a response.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// The preflight's status is not 2xx (checked before anything else).
    PreflightNotSuccessful(u16),
    /// `Access-Control-Allow-Origin` is missing or names another origin.
    OriginNotAllowed(u16),
    /// `*` with credentials.
    Wildcard,
    /// A list of origins (or several header lines, which WebKit joins).
    MoreThanOneOrigin,
    /// Credentials, and `Access-Control-Allow-Credentials` is not `true`.
    CredentialsNotTrue,
    /// The preflight did not allow the method.
    Method(String),
    /// The preflight did not allow this request header (WebKit's spelling).
    Header(String),
}

impl Refusal {
    /// The `CONSOLE SECURITY ERROR` line's text.
    fn message(&self, origin: &str) -> String {
        match self {
            Self::PreflightNotSuccessful(status) => {
                format!("Preflight response is not successful. Status code: {status}")
            }
            Self::OriginNotAllowed(status) => format!(
                "Origin {origin} is not allowed by Access-Control-Allow-Origin. Status code: {status}"
            ),
            Self::Wildcard => {
                "Cannot use wildcard in Access-Control-Allow-Origin when credentials flag is true."
                    .to_owned()
            }
            Self::MoreThanOneOrigin => {
                "Access-Control-Allow-Origin cannot contain more than one origin.".to_owned()
            }
            Self::CredentialsNotTrue => {
                "Credentials flag is true, but Access-Control-Allow-Credentials is not \"true\"."
                    .to_owned()
            }
            Self::Method(method) => {
                format!("Method {method} is not allowed by Access-Control-Allow-Methods.")
            }
            Self::Header(name) => {
                format!(
                    "Request header field {name} is not allowed by Access-Control-Allow-Headers."
                )
            }
        }
    }
}

/// WebKit's judgement: the preflight's status, CORS check, methods and
/// headers, then the actual response's CORS check.
pub(crate) fn judge(x: &BrowserExchange<'_>) -> Option<Judgement> {
    if let Some(preflight) = &x.preflight {
        let status = preflight.status.unwrap_or(StatusCode::NO_CONTENT);
        let refused = if status.is_success() {
            cors_check(preflight.headers, status, x.origin, x.credentials)
                .or_else(|| methods_and_headers(x, preflight.headers))
        } else {
            Some(Refusal::PreflightNotSuccessful(status.as_u16()))
        };
        if let Some(refusal) = refused {
            return Some(blocked(x, &refusal, true));
        }
    }
    let status = x.actual.status.unwrap_or(StatusCode::OK);
    Some(
        match cors_check(x.actual.headers, status, x.origin, x.credentials) {
            None => Judgement::allowed(),
            Some(refusal) => {
                let mut judgement = blocked(x, &refusal, false);
                if x.actual.status.is_none() && matches!(refusal, Refusal::OriginNotAllowed(_)) {
                    judgement.note = Some(
                        "WebKit names the response's status; corsgate forwards this request, so it is the upstream's (200 assumed here)"
                            .to_owned(),
                    );
                }
                judgement
            }
        },
    )
}

fn blocked(x: &BrowserExchange<'_>, refusal: &Refusal, preflight: bool) -> Judgement {
    let api = match x.initiator {
        Initiator::Fetch => "Fetch API",
        Initiator::Xhr => "XMLHttpRequest",
    };
    Judgement {
        verdict: Verdict::Blocked,
        preflight_failed: preflight,
        console_messages: vec![
            refusal.message(x.origin),
            format!("{api} cannot load {} due to access control checks.", x.url),
        ],
        js_error: (x.initiator == Initiator::Fetch).then(|| LOAD_FAILED.to_owned()),
        error_name: None,
        note: None,
    }
}

/// A header's value as WebKit reads it: repeated lines joined with ", ".
fn joined(headers: &HeaderMap, name: http::header::HeaderName) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// WebKit's access-control check of a response (its
/// `passesAccessControlCheck`): `*` passes without credentials; anything but
/// the page's exact origin fails, with a message for `*` and for lists; with
/// credentials, `Access-Control-Allow-Credentials` must be `true`.
fn cors_check(
    headers: &HeaderMap,
    status: StatusCode,
    origin: &str,
    credentials: Credentials,
) -> Option<Refusal> {
    let allow_origin =
        joined(headers, http::header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap_or_default();
    let include = credentials == Credentials::Include;
    if allow_origin == "*" && !include {
        return None;
    }
    if allow_origin != origin {
        return Some(if allow_origin == "*" {
            Refusal::Wildcard
        } else if allow_origin.contains(',') {
            Refusal::MoreThanOneOrigin
        } else {
            Refusal::OriginNotAllowed(status.as_u16())
        });
    }
    if include
        && joined(headers, http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS).as_deref()
            != Some("true")
    {
        return Some(Refusal::CredentialsNotTrue);
    }
    None
}

/// A comma-separated list header's items.
fn list(headers: &HeaderMap, name: http::header::HeaderName) -> Vec<String> {
    joined(headers, name)
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The preflight's method and header checks. Methods compare case-sensitively
/// (a page's `patch` is not `PATCH`); `*` covers every method and every header
/// (`Authorization` included) when the request has no credentials.
fn methods_and_headers(x: &BrowserExchange<'_>, headers: &HeaderMap) -> Option<Refusal> {
    let wildcard_ok = x.credentials != Credentials::Include;
    let methods = list(headers, http::header::ACCESS_CONTROL_ALLOW_METHODS);
    let method_ok = matches!(x.method, "GET" | "HEAD" | "POST")
        || methods.iter().any(|m| m == x.method)
        || (wildcard_ok && methods.iter().any(|m| m == "*"));
    if !method_ok {
        return Some(Refusal::Method(x.method.to_owned()));
    }
    let allowed = list(headers, http::header::ACCESS_CONTROL_ALLOW_HEADERS);
    if wildcard_ok && allowed.iter().any(|h| h == "*") {
        return None;
    }
    webkit_order(x.page_headers)
        .into_iter()
        .find(|name| !allowed.iter().any(|h| h.eq_ignore_ascii_case(name)))
        .map(Refusal::Header)
}

/// The request headers a preflight asks about, in the order WebKit checks them
/// and spelt as it names them: WebKit keeps the header names it knows
/// (`HTTPHeaderName`) apart from the others and goes through those first,
/// under its own spelling (`Authorization`, `Cache-Control`); then the others,
/// in the order the page set them and as the page wrote them. A name set twice
/// counts once, where it was first set; forbidden and safelisted headers are
/// not asked about.
fn webkit_order(page_headers: &[(String, String)]) -> Vec<String> {
    let mut known: Vec<String> = Vec::new();
    let mut other: Vec<String> = Vec::new();
    for (name, value) in page_headers {
        if corsgate_policy::fetch::is_forbidden_request_header(name)
            || browser::safelisted_request_header(name, value).is_ok()
        {
            continue;
        }
        let seen = |list: &[String]| list.iter().any(|n| n.eq_ignore_ascii_case(name));
        if seen(&known) || seen(&other) {
            continue;
        }
        match KNOWN_HEADERS
            .iter()
            .find(|known| known.eq_ignore_ascii_case(name))
        {
            Some(spelling) => known.push((*spelling).to_owned()),
            None => other.push(name.clone()),
        }
    }
    known.extend(other);
    known
}

/// Header names WebKit knows by name (its `HTTPHeaderNames.in`) that a page may
/// set, as WebKit spells them: each was checked against WebKitGTK 2.50.6 by
/// the order and spelling of its preflight refusal. `X-Requested-With`,
/// `Priority`, `Purpose`, `Server` and `X-DNS-Prefetch-Control` are not among
/// them (they come in the page's order and spelling).
const KNOWN_HEADERS: &[&str] = &[
    "Accept",
    "Accept-Language",
    "Accept-Ranges",
    "Age",
    "Authorization",
    "Cache-Control",
    "Clear-Site-Data",
    "Content-Disposition",
    "Content-Language",
    "Content-Location",
    "Content-Range",
    "Content-Security-Policy",
    "Content-Type",
    "Cross-Origin-Resource-Policy",
    "Default-Style",
    "ETag",
    "Expires",
    "Icy-Metadata",
    "If-Match",
    "If-Modified-Since",
    "If-None-Match",
    "If-Range",
    "If-Unmodified-Since",
    "Last-Event-ID",
    "Last-Modified",
    "Link",
    "Location",
    "Ping-From",
    "Pragma",
    "Range",
    "Referrer-Policy",
    "Refresh",
    "Report-To",
    "Service-Worker",
    "SourceMap",
    "Timing-Allow-Origin",
    "Upgrade-Insecure-Requests",
    "Vary",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "X-SourceMap",
    "X-Temp-Tablet",
    "X-XSS-Protection",
    "Content-Encoding",
    "Ping-To",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::Response;

    const URL: &str = "http://127.0.0.1:9/x";
    const ORIGIN: &str = "http://127.0.0.1:8";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn page(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    struct Case {
        method: &'static str,
        page: Vec<(String, String)>,
        credentials: Credentials,
        initiator: Initiator,
        preflight: Option<(u16, HeaderMap)>,
        actual: (Option<u16>, HeaderMap),
    }

    impl Case {
        fn get(actual: HeaderMap) -> Self {
            Self {
                method: "GET",
                page: Vec::new(),
                credentials: Credentials::SameOrigin,
                initiator: Initiator::Fetch,
                preflight: None,
                actual: (None, actual),
            }
        }

        fn preflighted(
            method: &'static str,
            page: &[(&str, &str)],
            status: u16,
            answer: HeaderMap,
        ) -> Self {
            Self {
                method,
                page: super::tests::page(page),
                preflight: Some((status, answer)),
                ..Self::get(HeaderMap::new())
            }
        }

        fn judge(&self) -> Judgement {
            let unsafe_headers: Vec<String> = Vec::new();
            let x = BrowserExchange {
                url: URL,
                origin: ORIGIN,
                method: self.method,
                unsafe_headers: &unsafe_headers,
                page_headers: &self.page,
                credentials: self.credentials,
                initiator: self.initiator,
                preflight: self.preflight.as_ref().map(|(status, headers)| Response {
                    status: Some(StatusCode::from_u16(*status).unwrap()),
                    headers,
                }),
                actual: Response {
                    status: self.actual.0.map(|s| StatusCode::from_u16(s).unwrap()),
                    headers: &self.actual.1,
                },
            };
            judge(&x).unwrap()
        }
    }

    fn fetch_line() -> String {
        format!("Fetch API cannot load {URL} due to access control checks.")
    }

    /// The messages WebKitGTK 2.50.6 printed for these responses (the
    /// harness's fixture and the browser suite make each mistake on purpose).
    #[test]
    fn messages_match_what_webkit_prints() {
        let missing = Case::get(HeaderMap::new()).judge();
        assert_eq!(missing.verdict, Verdict::Blocked);
        assert_eq!(
            missing.console_messages,
            [
                format!(
                    "Origin {ORIGIN} is not allowed by Access-Control-Allow-Origin. Status code: 200"
                ),
                fetch_line()
            ]
        );
        assert_eq!(missing.js_error.as_deref(), Some("Load failed"));
        assert!(missing.note.is_some(), "the upstream's status is assumed");

        let mut xhr = Case::get(headers(&[(
            "access-control-allow-origin",
            "http://other.example",
        )]));
        xhr.initiator = Initiator::Xhr;
        xhr.actual.0 = Some(403);
        let xhr = xhr.judge();
        assert_eq!(
            xhr.console_messages,
            [
                format!(
                    "Origin {ORIGIN} is not allowed by Access-Control-Allow-Origin. Status code: 403"
                ),
                format!("XMLHttpRequest cannot load {URL} due to access control checks.")
            ]
        );
        assert_eq!(xhr.js_error, None);
        assert_eq!(xhr.note, None);

        let mut star = Case::get(headers(&[("access-control-allow-origin", "*")]));
        assert_eq!(star.judge().verdict, Verdict::Allowed);
        star.credentials = Credentials::Include;
        assert_eq!(
            star.judge().console_messages[0],
            "Cannot use wildcard in Access-Control-Allow-Origin when credentials flag is true."
        );

        let two = Case::get(headers(&[
            ("access-control-allow-origin", ORIGIN),
            ("access-control-allow-origin", ORIGIN),
        ]));
        assert_eq!(
            two.judge().console_messages[0],
            "Access-Control-Allow-Origin cannot contain more than one origin."
        );

        let mut no_acac = Case::get(headers(&[("access-control-allow-origin", ORIGIN)]));
        assert_eq!(no_acac.judge().verdict, Verdict::Allowed);
        no_acac.credentials = Credentials::Include;
        assert_eq!(
            no_acac.judge().console_messages[0],
            "Credentials flag is true, but Access-Control-Allow-Credentials is not \"true\"."
        );
    }

    #[test]
    fn a_preflights_status_is_blamed_before_its_missing_allow_origin() {
        let refused =
            Case::preflighted("PUT", &[("x-api-key", "k")], 403, HeaderMap::new()).judge();
        assert!(refused.preflight_failed);
        assert_eq!(
            refused.console_messages,
            [
                "Preflight response is not successful. Status code: 403".to_owned(),
                fetch_line()
            ]
        );
        // A 2xx preflight without it: the origin, with the preflight's status.
        let empty = Case::preflighted("PUT", &[("x-api-key", "k")], 204, HeaderMap::new()).judge();
        assert_eq!(
            empty.console_messages[0],
            format!(
                "Origin {ORIGIN} is not allowed by Access-Control-Allow-Origin. Status code: 204"
            )
        );
    }

    #[test]
    fn methods_compare_case_sensitively() {
        let answer = headers(&[
            ("access-control-allow-origin", ORIGIN),
            ("access-control-allow-methods", "PUT, PATCH"),
            ("access-control-allow-headers", "x-api-key"),
        ]);
        let patch = Case::preflighted("patch", &[("x-api-key", "k")], 204, answer.clone()).judge();
        assert_eq!(
            patch.console_messages[0],
            "Method patch is not allowed by Access-Control-Allow-Methods."
        );
        let mut ok = Case::preflighted("PATCH", &[("x-api-key", "k")], 204, answer);
        ok.actual.1 = headers(&[("access-control-allow-origin", ORIGIN)]);
        let ok = ok.judge();
        assert_eq!(ok.verdict, Verdict::Allowed);
    }

    #[test]
    fn the_header_named_is_the_first_in_webkits_order_and_spelling() {
        let answer = headers(&[
            ("access-control-allow-origin", ORIGIN),
            ("access-control-allow-methods", "PUT"),
            ("access-control-allow-headers", "x-foo, content-type"),
        ]);
        let name = |page: &[(&str, &str)]| {
            let judged = Case::preflighted("PUT", page, 204, answer.clone()).judge();
            judged.console_messages[0]
                .trim_start_matches("Request header field ")
                .trim_end_matches(" is not allowed by Access-Control-Allow-Headers.")
                .to_owned()
        };
        // As printed by WebKitGTK 2.50.6 for these fetch() headers, in order.
        assert_eq!(
            name(&[
                ("X-Bar", "1"),
                ("x-baz", "1"),
                ("content-type", "application/json")
            ]),
            "X-Bar"
        );
        assert_eq!(name(&[("x-baz", "1"), ("X-Bar", "1")]), "x-baz");
        assert_eq!(
            name(&[("x-baz", "1"), ("authorization", "t")]),
            "Authorization"
        );
        assert_eq!(
            name(&[("x-baz", "1"), ("cache-control", "no-cache")]),
            "Cache-Control"
        );
        assert_eq!(
            name(&[("x-baz", "1"), ("if-none-match", "x")]),
            "If-None-Match"
        );
        assert_eq!(name(&[("x-baz", "1"), ("accept", "a(b")]), "Accept");
        assert_eq!(name(&[("x-baz", "1"), ("x-requested-with", "a")]), "x-baz");
        // Safelisted and forbidden headers are never asked about.
        assert_eq!(
            name(&[("accept", "text/plain"), ("cookie", "a=b"), ("x-baz", "1")]),
            "x-baz"
        );
    }

    #[test]
    fn a_wildcard_covers_authorization_without_credentials() {
        let answer = headers(&[
            ("access-control-allow-origin", ORIGIN),
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-methods", "*"),
            ("access-control-allow-headers", "*"),
        ]);
        let mut case = Case::preflighted("DELETE", &[("authorization", "Bearer t")], 204, answer);
        case.actual.1 = headers(&[
            ("access-control-allow-origin", ORIGIN),
            ("access-control-allow-credentials", "true"),
        ]);
        assert_eq!(case.judge().verdict, Verdict::Allowed);
        case.credentials = Credentials::Include;
        assert_eq!(
            case.judge().console_messages[0],
            "Method DELETE is not allowed by Access-Control-Allow-Methods."
        );
    }
}
