//! Firefox: its checks and console messages, as Firefox 153 ESR prints them.
//!
//! Gecko runs the Fetch standard's checks in Chromium's order (the CORS check
//! first, then a preflight's status, methods and headers) but words them its
//! own way, names the URL and never the page's origin, and quotes with
//! typographic quotes (‘ ’, U+2018/U+2019). It also differs in two details
//! that change the message, not the verdict: several
//! `Access-Control-Allow-Origin` lines reach the check joined with ", " (so
//! they "do not match"), and a refused preflight is followed by a second entry
//! for the request it was for, "CORS request did not succeed".

use http::StatusCode;

use super::{BrowserExchange, Judgement, Response};
use crate::Verdict;
use crate::browser::{self, Credentials, Initiator};

/// What `fetch()` rejects with in Firefox.
const NETWORK_ERROR: &str = "NetworkError when attempting to fetch resource.";

/// Firefox's judgement: the preflight's CORS check, status, methods and
/// headers, then the actual response's CORS check.
pub(crate) fn judge(x: &BrowserExchange<'_>) -> Judgement {
    if let Some(preflight) = &x.preflight {
        if let Some(reason) = cors_check(x, preflight).or_else(|| preflight_check(x, preflight)) {
            let mut judgement = blocked(x, reason, true);
            // The request the preflight was for fails too, with a status of
            // nothing: Firefox logs that as a second entry.
            judgement.console_messages.push(format!(
                "{} (Reason: CORS request did not succeed). Status code: (null).",
                prefix(x.url)
            ));
            return judgement;
        }
    }
    match cors_check(x, &x.actual) {
        None => Judgement::allowed(),
        Some(reason) => {
            let mut judgement = blocked(x, reason, false);
            if x.actual.status.is_none() && judgement.console_messages[0].contains("Status code") {
                judgement.note = Some(
                    "Firefox names the response's status; corsgate forwards this request, so it is the upstream's (200 assumed here)"
                        .to_owned(),
                );
            }
            judgement
        }
    }
}

/// The start of every "Cross-Origin Request Blocked" entry.
fn prefix(url: &str) -> String {
    format!(
        "Cross-Origin Request Blocked: The Same Origin Policy disallows reading the remote resource at {url}."
    )
}

fn status_text(status: Option<StatusCode>) -> String {
    status.map_or_else(|| "200".to_owned(), |s| s.as_u16().to_string())
}

/// Gecko's CORS check of a response (preflight or actual): the message, or
/// `None` when it passes.
fn cors_check(x: &BrowserExchange<'_>, response: &Response<'_>) -> Option<String> {
    let lines: Vec<&str> = response
        .headers
        .get_all(http::header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    if lines.is_empty() {
        return Some(format!(
            "{} (Reason: CORS header ‘Access-Control-Allow-Origin’ missing). Status code: {}.",
            prefix(x.url),
            status_text(response.status)
        ));
    }
    let value = lines.join(", ");
    let credentials = x.credentials == Credentials::Include;
    if credentials && value == "*" {
        // The only message that puts the URL in quotes, and without a status.
        return Some(format!(
            "Cross-Origin Request Blocked: The Same Origin Policy disallows reading the remote resource at ‘{}’. (Reason: Credential is not supported if the CORS header ‘Access-Control-Allow-Origin’ is ‘*’).",
            x.url
        ));
    }
    if (credentials || value != "*") && value != x.origin {
        return Some(format!(
            "{} (Reason: CORS header ‘Access-Control-Allow-Origin’ does not match ‘{value}’).",
            prefix(x.url)
        ));
    }
    if credentials {
        let acac = response
            .headers
            .get(http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if acac != "true" {
            return Some(format!(
                "{} (Reason: expected ‘true’ in CORS header ‘Access-Control-Allow-Credentials’).",
                prefix(x.url)
            ));
        }
    }
    None
}

/// The rest of a preflight's checks, after the CORS check: status, methods,
/// headers (Fetch §4.8 steps 7.3–7.8).
fn preflight_check(x: &BrowserExchange<'_>, response: &Response<'_>) -> Option<String> {
    let status = response.status.unwrap_or(StatusCode::NO_CONTENT);
    if !status.is_success() {
        return Some(format!(
            "{} (Reason: CORS preflight response did not succeed). Status code: {}.",
            prefix(x.url),
            status.as_u16()
        ));
    }
    let wildcard = x.credentials != Credentials::Include;
    let methods =
        browser::header_list(response.headers, http::header::ACCESS_CONTROL_ALLOW_METHODS);
    if let Some(bad) = methods.iter().find(|m| !is_token(m)) {
        return Some(format!(
            "{} (Reason: invalid token ‘{bad}’ in CORS header ‘Access-Control-Allow-Methods’).",
            prefix(x.url)
        ));
    }
    let method_ok = matches!(x.method, "GET" | "HEAD" | "POST")
        || methods
            .iter()
            .any(|m| m == x.method || (wildcard && m == "*"));
    if !method_ok {
        return Some(format!(
            "{} (Reason: Did not find method in CORS header ‘Access-Control-Allow-Methods’).",
            prefix(x.url)
        ));
    }
    let allowed =
        browser::header_list(response.headers, http::header::ACCESS_CONTROL_ALLOW_HEADERS);
    if let Some(bad) = allowed.iter().find(|h| !is_token(h)) {
        return Some(format!(
            "{} (Reason: invalid token ‘{bad}’ in CORS header ‘Access-Control-Allow-Headers’).",
            prefix(x.url)
        ));
    }
    // With `network.cors_preflight.authorization_covered_by_wildcard` at its
    // default (true), `*` covers Authorization too, as in Chromium as shipped.
    let any = wildcard && allowed.iter().any(|h| h == "*");
    for name in x.unsafe_headers {
        if !any && !allowed.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            return Some(format!(
                "{} (Reason: header ‘{name}’ is not allowed according to header ‘Access-Control-Allow-Headers’ from CORS preflight response).",
                prefix(x.url)
            ));
        }
    }
    None
}

/// An HTTP token (RFC 9110 §5.6.2).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn blocked(x: &BrowserExchange<'_>, reason: String, preflight: bool) -> Judgement {
    Judgement {
        verdict: Verdict::Blocked,
        preflight_failed: preflight,
        console_messages: vec![reason],
        js_error: (x.initiator == Initiator::Fetch).then(|| NETWORK_ERROR.to_owned()),
        error_name: None,
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;
    use crate::engines::Engine;

    const URL: &str = "http://127.0.0.1:9/x";
    const ORIGIN: &str = "http://127.0.0.1:8";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn exchange<'a>(
        preflight: Option<Response<'a>>,
        actual: &'a HeaderMap,
        credentials: Credentials,
        unsafe_headers: &'a [String],
    ) -> BrowserExchange<'a> {
        BrowserExchange {
            url: URL,
            origin: ORIGIN,
            method: "PUT",
            unsafe_headers,
            page_headers: &[],
            credentials,
            initiator: Initiator::Fetch,
            preflight,
            actual: Response {
                status: Some(StatusCode::OK),
                headers: actual,
            },
        }
    }

    /// The wording Firefox 153.8 ESR printed for these errors (`browser/selftest.sh`
    /// in Firefox, and the browser suite).
    #[test]
    fn messages_match_what_firefox_prints() {
        let blocked = format!(
            "Cross-Origin Request Blocked: The Same Origin Policy disallows reading the remote resource at {URL}."
        );
        let none = HeaderMap::new();
        let names = vec!["x-bar".to_owned()];
        let judge = |pre: Option<Response<'_>>, actual: &HeaderMap, creds| {
            judge(&exchange(pre, actual, creds, &names)).console_messages
        };
        let did_not_succeed =
            format!("{blocked} (Reason: CORS request did not succeed). Status code: (null).");

        assert_eq!(
            judge(None, &none, Credentials::SameOrigin),
            [format!(
                "{blocked} (Reason: CORS header ‘Access-Control-Allow-Origin’ missing). Status code: 200."
            )]
        );
        let star = headers(&[("access-control-allow-origin", "*")]);
        assert_eq!(
            judge(None, &star, Credentials::Include),
            [format!(
                "Cross-Origin Request Blocked: The Same Origin Policy disallows reading the remote resource at ‘{URL}’. (Reason: Credential is not supported if the CORS header ‘Access-Control-Allow-Origin’ is ‘*’)."
            )]
        );
        let two = headers(&[
            ("access-control-allow-origin", ORIGIN),
            ("access-control-allow-origin", ORIGIN),
        ]);
        assert_eq!(
            judge(None, &two, Credentials::SameOrigin),
            [format!(
                "{blocked} (Reason: CORS header ‘Access-Control-Allow-Origin’ does not match ‘{ORIGIN}, {ORIGIN}’)."
            )]
        );
        let echo = headers(&[("access-control-allow-origin", ORIGIN)]);
        assert_eq!(
            judge(None, &echo, Credentials::Include),
            [format!(
                "{blocked} (Reason: expected ‘true’ in CORS header ‘Access-Control-Allow-Credentials’)."
            )]
        );
        assert!(judge(None, &echo, Credentials::SameOrigin).is_empty());

        let forbidden = headers(&[("access-control-allow-origin", ORIGIN)]);
        let pre = Response {
            status: Some(StatusCode::FORBIDDEN),
            headers: &forbidden,
        };
        assert_eq!(
            judge(Some(pre), &echo, Credentials::SameOrigin),
            [
                format!(
                    "{blocked} (Reason: CORS preflight response did not succeed). Status code: 403."
                ),
                did_not_succeed.clone()
            ]
        );
        let get_only = headers(&[
            ("access-control-allow-origin", ORIGIN),
            ("access-control-allow-methods", "GET"),
        ]);
        let pre = Response {
            status: Some(StatusCode::NO_CONTENT),
            headers: &get_only,
        };
        assert_eq!(
            judge(Some(pre), &echo, Credentials::SameOrigin),
            [
                format!(
                    "{blocked} (Reason: Did not find method in CORS header ‘Access-Control-Allow-Methods’)."
                ),
                did_not_succeed.clone()
            ]
        );
        let put = headers(&[
            ("access-control-allow-origin", ORIGIN),
            ("access-control-allow-methods", "PUT"),
            ("access-control-allow-headers", "x-foo"),
        ]);
        let pre = Response {
            status: Some(StatusCode::NO_CONTENT),
            headers: &put,
        };
        assert_eq!(
            judge(Some(pre), &echo, Credentials::SameOrigin),
            [
                format!(
                    "{blocked} (Reason: header ‘x-bar’ is not allowed according to header ‘Access-Control-Allow-Headers’ from CORS preflight response)."
                ),
                did_not_succeed
            ]
        );
    }

    #[test]
    fn every_engine_has_a_prediction() {
        let none = HeaderMap::new();
        let x = exchange(None, &none, Credentials::SameOrigin, &[]);
        assert!(Engine::Webkit.judge(&x).is_some());
        assert!(Engine::Firefox.judge(&x).is_some());
        assert_eq!("webkit".parse::<Engine>(), Ok(Engine::Webkit));
        assert!("safari".parse::<Engine>().is_err());
    }
}
