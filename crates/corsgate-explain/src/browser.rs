//! The browser's side of CORS, after the Fetch standard and Chromium: which requests
//! are preflighted, what a preflight looks like, and how responses are checked.
//! `explain` runs corsgate's answers through these checks to predict the verdict
//! and the console message.

use http::{HeaderMap, StatusCode};

/// Who issued the request: changes the wording of the engines' messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Initiator {
    /// `fetch()`.
    Fetch,
    /// `XMLHttpRequest`.
    Xhr,
}

/// The request's credentials mode (Fetch §2.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Credentials {
    /// `credentials: "include"` (or `withCredentials = true`).
    Include,
    /// The default of `fetch()`: cookies only to the page's own origin.
    SameOrigin,
    /// No cookies at all.
    Omit,
}

impl Initiator {
    /// The names [`Initiator::from_str`](std::str::FromStr) accepts, as the
    /// command line and the JSON write them.
    pub const NAMES: [&'static str; 2] = ["fetch", "xhr"];
}

impl std::str::FromStr for Initiator {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fetch" => Ok(Self::Fetch),
            "xhr" => Ok(Self::Xhr),
            _ => Err(format!("{s:?} is not an initiator (fetch or xhr)")),
        }
    }
}

impl Credentials {
    /// The names [`Credentials::from_str`](std::str::FromStr) accepts: the
    /// values of `fetch()`'s `credentials` option.
    pub const NAMES: [&'static str; 3] = ["include", "same-origin", "omit"];

    /// The name as `fetch()` writes it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Include => "include",
            Self::SameOrigin => "same-origin",
            Self::Omit => "omit",
        }
    }
}

impl std::str::FromStr for Credentials {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "include" => Ok(Self::Include),
            "same-origin" => Ok(Self::SameOrigin),
            "omit" => Ok(Self::Omit),
            _ => Err(format!(
                "{s:?} is not a credentials mode (include, same-origin or omit)"
            )),
        }
    }
}

/// Why the browser refuses a response, classified as the Fetch standard's CORS
/// check and CORS-preflight fetch fail (Chromium's `CorsError` names them;
/// [`crate::engines`] word them per engine).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "value")]
pub(crate) enum CorsError {
    /// `MissingAllowOriginHeader`.
    MissingAllowOriginHeader,
    /// `MultipleAllowOriginValues`.
    MultipleAllowOriginValues(String),
    /// `InvalidAllowOriginValue`.
    InvalidAllowOriginValue(String),
    /// `AllowOriginMismatch`.
    AllowOriginMismatch(String),
    /// `WildcardOriginNotAllowed`.
    WildcardOriginNotAllowed,
    /// `InvalidAllowCredentials`.
    InvalidAllowCredentials(String),
    /// `PreflightInvalidStatus`.
    PreflightInvalidStatus,
    /// `MethodDisallowedByPreflightResponse`.
    MethodDisallowedByPreflightResponse(String),
    /// `HeaderDisallowedByPreflightResponse`.
    HeaderDisallowedByPreflightResponse(String),
}

/// Normalizes a method as `fetch()` does (Fetch §2.2.1).
pub(crate) fn normalize_method(method: &str) -> String {
    for m in ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"] {
        if m.eq_ignore_ascii_case(method) {
            return m.to_owned();
        }
    }
    method.to_owned()
}

/// Why a request is preflighted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "kebab-case")]
pub enum PreflightReason {
    /// The method is not GET, HEAD or POST.
    Method(String),
    /// A request header that is not CORS-safelisted (name, and why).
    Header {
        /// The header's name, lowercase.
        name: String,
        /// Why it is not safelisted.
        why: String,
    },
}

/// Whether `(name, value)` is a CORS-safelisted request header (Fetch §2.2.2);
/// `Err` says why not.
pub(crate) fn safelisted_request_header(name: &str, value: &str) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    if value.len() > 128 {
        return Err("its value is longer than 128 bytes".to_owned());
    }
    let unsafe_byte =
        |b: u8| (b < 0x20 && b != b'\t') || b"\"():<>?@[\\]{}".contains(&b) || b == 0x7f;
    match lower.as_str() {
        "accept" => {
            if value.bytes().any(unsafe_byte) {
                return Err("its value has a byte Fetch does not safelist".to_owned());
            }
            Ok(())
        }
        "accept-language" | "content-language" => {
            if value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b" *,-.;=".contains(&b))
            {
                Ok(())
            } else {
                Err("its value has characters beyond letters, digits and \" *,-.;=\"".to_owned())
            }
        }
        "content-type" => {
            if value.bytes().any(unsafe_byte) {
                return Err("its value has a byte Fetch does not safelist".to_owned());
            }
            let essence = value
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            match essence.as_str() {
                "application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain" => {
                    Ok(())
                }
                _ => Err(format!(
                    "{essence:?} is not one of the safelisted types (application/x-www-form-urlencoded, multipart/form-data, text/plain)"
                )),
            }
        }
        "range" => {
            let ok = value.strip_prefix("bytes=").is_some_and(|r| {
                let (start, end) = r.split_once('-').unwrap_or(("", "x"));
                !start.is_empty()
                    && start.bytes().all(|b| b.is_ascii_digit())
                    && end.bytes().all(|b| b.is_ascii_digit())
            });
            if ok {
                Ok(())
            } else {
                Err("only a single bytes=N- or bytes=N-M range is safelisted".to_owned())
            }
        }
        _ => Err("not a CORS-safelisted request header".to_owned()),
    }
}

/// The CORS check (Fetch §4.10) of a response's headers.
pub(crate) fn cors_check(
    headers: &HeaderMap,
    origin: &str,
    credentials: Credentials,
) -> Result<(), CorsError> {
    let values: Vec<&str> = headers
        .get_all(http::header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    let value = match values.as_slice() {
        [] => return Err(CorsError::MissingAllowOriginHeader),
        [one] => *one,
        many => return Err(CorsError::MultipleAllowOriginValues(many.join(", "))),
    };
    if value.contains(',') {
        return Err(CorsError::MultipleAllowOriginValues(value.to_owned()));
    }
    if value == "*" {
        return if credentials == Credentials::Include {
            Err(CorsError::WildcardOriginNotAllowed)
        } else {
            Ok(())
        };
    }
    if value != origin {
        if value.parse::<http::Uri>().is_err() && value != "null" {
            return Err(CorsError::InvalidAllowOriginValue(value.to_owned()));
        }
        return Err(CorsError::AllowOriginMismatch(value.to_owned()));
    }
    if credentials != Credentials::Include {
        return Ok(());
    }
    let acac = headers
        .get(http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    if acac == "true" {
        Ok(())
    } else {
        Err(CorsError::InvalidAllowCredentials(acac))
    }
}

/// The comma-separated items of every `name` header line, trimmed, empties
/// dropped (`Access-Control-Allow-Methods`, `-Headers`, …).
pub(crate) fn header_list(headers: &HeaderMap, name: http::header::HeaderName) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .map(|s| s.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// The checks of a CORS-preflight fetch (Fetch §4.8), in Chromium's order: the
/// CORS check, then the status, then methods, then headers.
pub(crate) fn preflight_check(
    status: StatusCode,
    headers: &HeaderMap,
    origin: &str,
    credentials: Credentials,
    method: &str,
    unsafe_headers: &[String],
) -> Result<(), CorsError> {
    cors_check(headers, origin, credentials)?;
    if !status.is_success() {
        return Err(CorsError::PreflightInvalidStatus);
    }
    let list = |name| header_list(headers, name);
    let methods = list(http::header::ACCESS_CONTROL_ALLOW_METHODS);
    let wildcard_ok = credentials != Credentials::Include;
    let method_ok = matches!(method, "GET" | "HEAD" | "POST")
        || methods.iter().any(|m| m == method)
        || (wildcard_ok && methods.iter().any(|m| m == "*"));
    if !method_ok {
        return Err(CorsError::MethodDisallowedByPreflightResponse(
            method.to_owned(),
        ));
    }
    let allowed = list(http::header::ACCESS_CONTROL_ALLOW_HEADERS);
    for name in unsafe_headers {
        let listed = allowed.iter().any(|h| h.eq_ignore_ascii_case(name));
        let by_wildcard = wildcard_ok
            && allowed.iter().any(|h| h == "*")
            && !name.eq_ignore_ascii_case("authorization");
        if !listed && !by_wildcard {
            return Err(CorsError::HeaderDisallowedByPreflightResponse(name.clone()));
        }
    }
    Ok(())
}

/// Response headers JavaScript can read after a successful CORS check, beyond
/// the CORS-safelisted ones: the exposed names, or `*` for every header but
/// `Set-Cookie` (only without credentials).
pub(crate) fn exposed_headers(headers: &HeaderMap, credentials: Credentials) -> Vec<String> {
    let mut exposed: Vec<String> = headers
        .get_all(http::header::ACCESS_CONTROL_EXPOSE_HEADERS)
        .iter()
        .flat_map(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty() && !corsgate_policy::fetch::is_forbidden_response_header(s))
        .filter(|s| s != "*" || credentials != Credentials::Include)
        .collect();
    exposed.sort();
    exposed.dedup();
    exposed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_values() {
        assert!(safelisted_request_header("Content-Type", "text/plain;charset=UTF-8").is_ok());
        assert!(safelisted_request_header("content-type", "application/json").is_err());
        assert!(safelisted_request_header("accept", "application/json").is_ok());
        assert!(safelisted_request_header("x-api-key", "k").is_err());
        assert!(safelisted_request_header("range", "bytes=0-99").is_ok());
        assert!(safelisted_request_header("range", "bytes=0-1,5-6").is_err());
        assert!(safelisted_request_header("accept", &"a".repeat(129)).is_err());
    }

    #[test]
    fn wildcard_with_credentials_fails_the_cors_check() {
        let mut headers = HeaderMap::new();
        headers.insert("access-control-allow-origin", "*".parse().unwrap());
        assert_eq!(
            cors_check(&headers, "https://a.example", Credentials::Include),
            Err(CorsError::WildcardOriginNotAllowed)
        );
        assert_eq!(
            cors_check(&headers, "https://a.example", Credentials::SameOrigin),
            Ok(())
        );
    }
}
