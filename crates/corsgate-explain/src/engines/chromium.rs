//! Chromium: its checks (the Fetch standard's, in the order Chromium runs them)
//! and its console messages, as Chromium 156 prints them.

use super::{BrowserExchange, Judgement};
use crate::Verdict;
use crate::browser::{self, CorsError, Initiator};

/// Chromium's judgement: the preflight's checks (CORS check, status, methods,
/// headers), then the actual response's CORS check.
pub(crate) fn judge(x: &BrowserExchange<'_>) -> Judgement {
    if let Some(preflight) = &x.preflight {
        let status = preflight.status.unwrap_or(http::StatusCode::NO_CONTENT);
        if let Err(error) = browser::preflight_check(
            status,
            preflight.headers,
            x.origin,
            x.credentials,
            x.method,
            x.unsafe_headers,
        ) {
            return blocked(x, &error, true);
        }
    }
    match browser::cors_check(x.actual.headers, x.origin, x.credentials) {
        Ok(()) => Judgement::allowed(),
        Err(error) => blocked(x, &error, false),
    }
}

fn blocked(x: &BrowserExchange<'_>, error: &CorsError, preflight: bool) -> Judgement {
    Judgement {
        verdict: Verdict::Blocked,
        preflight_failed: preflight,
        console_messages: vec![message(error, preflight, x.initiator, x.url, x.origin)],
        js_error: (x.initiator == Initiator::Fetch).then(|| "Failed to fetch".to_owned()),
        error_name: Some(error_name(error, preflight).to_owned()),
        note: None,
    }
}

/// Chromium's name for the error, as DevTools shows it (`corsError`).
pub(crate) fn error_name(error: &CorsError, preflight: bool) -> &'static str {
    use CorsError::*;
    match (error, preflight) {
        (MissingAllowOriginHeader, false) => "MissingAllowOriginHeader",
        (MissingAllowOriginHeader, true) => "PreflightMissingAllowOriginHeader",
        (MultipleAllowOriginValues(_), false) => "MultipleAllowOriginValues",
        (MultipleAllowOriginValues(_), true) => "PreflightMultipleAllowOriginValues",
        (InvalidAllowOriginValue(_), false) => "InvalidAllowOriginValue",
        (InvalidAllowOriginValue(_), true) => "PreflightInvalidAllowOriginValue",
        (AllowOriginMismatch(_), false) => "AllowOriginMismatch",
        (AllowOriginMismatch(_), true) => "PreflightAllowOriginMismatch",
        (WildcardOriginNotAllowed, false) => "WildcardOriginNotAllowed",
        (WildcardOriginNotAllowed, true) => "PreflightWildcardOriginNotAllowed",
        (InvalidAllowCredentials(_), false) => "InvalidAllowCredentials",
        (InvalidAllowCredentials(_), true) => "PreflightInvalidAllowCredentials",
        (PreflightInvalidStatus, _) => "PreflightInvalidStatus",
        (MethodDisallowedByPreflightResponse(_), _) => "MethodDisallowedByPreflightResponse",
        (HeaderDisallowedByPreflightResponse(_), _) => "HeaderDisallowedByPreflightResponse",
    }
}

/// The message Chromium prints in the console for this error.
pub(crate) fn message(
    error: &CorsError,
    preflight: bool,
    initiator: Initiator,
    url: &str,
    origin: &str,
) -> String {
    use CorsError::*;
    let api = match initiator {
        Initiator::Fetch => "fetch",
        Initiator::Xhr => "XMLHttpRequest",
    };
    let detail = match error {
        MissingAllowOriginHeader => {
            "No 'Access-Control-Allow-Origin' header is present on the requested resource."
                .to_owned()
        }
        MultipleAllowOriginValues(v) => format!(
            "The 'Access-Control-Allow-Origin' header contains multiple values '{v}', but only one is allowed."
        ),
        InvalidAllowOriginValue(v) => {
            format!("The 'Access-Control-Allow-Origin' header contains the invalid value '{v}'.")
        }
        AllowOriginMismatch(v) => format!(
            "The 'Access-Control-Allow-Origin' header has a value '{v}' that is not equal to the supplied origin."
        ),
        WildcardOriginNotAllowed => {
            let mut m = "The value of the 'Access-Control-Allow-Origin' header in the response must not be the wildcard '*' when the request's credentials mode is 'include'.".to_owned();
            if initiator == Initiator::Xhr {
                m.push_str(" The credentials mode of requests initiated by the XMLHttpRequest is controlled by the withCredentials attribute.");
            }
            m
        }
        InvalidAllowCredentials(v) => {
            let mut m = format!(
                "The value of the 'Access-Control-Allow-Credentials' header in the response is '{v}' which must be 'true' when the request's credentials mode is 'include'."
            );
            if initiator == Initiator::Xhr {
                m.push_str(" The credentials mode of requests initiated by the XMLHttpRequest is controlled by the withCredentials attribute.");
            }
            m
        }
        PreflightInvalidStatus => "It does not have HTTP ok status.".to_owned(),
        MethodDisallowedByPreflightResponse(m) => {
            format!(
                "Method {m} is not allowed by Access-Control-Allow-Methods in preflight response."
            )
        }
        HeaderDisallowedByPreflightResponse(h) => format!(
            "Request header field {h} is not allowed by Access-Control-Allow-Headers in preflight response."
        ),
    };
    let access_check = !matches!(
        error,
        MethodDisallowedByPreflightResponse(_) | HeaderDisallowedByPreflightResponse(_)
    );
    let mut message = format!(
        "Access to {api} at '{url}' from origin '{origin}' has been blocked by CORS policy: "
    );
    if preflight && access_check {
        message.push_str("Response to preflight request doesn't pass access control check: ");
    }
    message.push_str(&detail);
    // Chromium (156) adds this hint to fetch() errors about a bad value only; the
    // older "set the request's mode to 'no-cors'" advice is gone.
    let bad_value = matches!(
        error,
        MultipleAllowOriginValues(_) | InvalidAllowOriginValue(_) | AllowOriginMismatch(_)
    );
    if bad_value && initiator == Initiator::Fetch {
        message.push_str(" Have the server send the header with a valid value.");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wording Chromium 156 printed for these errors in the browser suite
    /// (`browser/selftest.sh` drives a server that makes each mistake on purpose).
    #[test]
    fn messages_match_what_chromium_prints() {
        let url = "http://127.0.0.1:9/x";
        let origin = "http://127.0.0.1:8";
        let head = |api: &str| {
            format!(
                "Access to {api} at '{url}' from origin '{origin}' has been blocked by CORS policy: "
            )
        };
        let mismatch = CorsError::AllowOriginMismatch("http://other.example".to_owned());
        assert_eq!(
            message(&mismatch, false, Initiator::Fetch, url, origin),
            head("fetch")
                + "The 'Access-Control-Allow-Origin' header has a value 'http://other.example' \
                   that is not equal to the supplied origin. Have the server send the header with a valid value."
        );
        assert_eq!(
            message(&mismatch, false, Initiator::Xhr, url, origin),
            head("XMLHttpRequest")
                + "The 'Access-Control-Allow-Origin' header has a value 'http://other.example' \
                   that is not equal to the supplied origin."
        );
        let two = CorsError::MultipleAllowOriginValues(format!("{origin}, {origin}"));
        assert_eq!(
            message(&two, true, Initiator::Fetch, url, origin),
            head("fetch")
                + "Response to preflight request doesn't pass access control check: \
                   The 'Access-Control-Allow-Origin' header contains multiple values \
                   'http://127.0.0.1:8, http://127.0.0.1:8', but only one is allowed. \
                   Have the server send the header with a valid value."
        );
        assert_eq!(
            message(
                &CorsError::MissingAllowOriginHeader,
                false,
                Initiator::Fetch,
                url,
                origin
            ),
            head("fetch")
                + "No 'Access-Control-Allow-Origin' header is present on the requested resource."
        );
        assert_eq!(
            message(
                &CorsError::PreflightInvalidStatus,
                true,
                Initiator::Xhr,
                url,
                origin
            ),
            head("XMLHttpRequest")
                + "Response to preflight request doesn't pass access control check: \
                   It does not have HTTP ok status."
        );
        assert_eq!(
            message(
                &CorsError::InvalidAllowCredentials(String::new()),
                false,
                Initiator::Xhr,
                url,
                origin
            ),
            head("XMLHttpRequest")
                + "The value of the 'Access-Control-Allow-Credentials' header in the response is '' \
                   which must be 'true' when the request's credentials mode is 'include'. \
                   The credentials mode of requests initiated by the XMLHttpRequest is controlled \
                   by the withCredentials attribute."
        );
    }
}
