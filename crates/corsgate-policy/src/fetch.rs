//! Vocabulary of the Fetch standard: tokens, safelisted and forbidden names, and the
//! parsing of `Access-Control-Request-Headers`.

/// `tchar` of RFC 9110 §5.6.2: the bytes of a method or header-name token.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `bytes` is a non-empty token.
pub(crate) fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|b| is_tchar(*b))
}

/// CORS-safelisted methods (Fetch §2.2.1): never need a preflight's permission.
pub fn is_safelisted_method(method: &str) -> bool {
    matches!(method, "GET" | "HEAD" | "POST")
}

/// Forbidden methods (Fetch §2.2.1): `fetch()` refuses them, so allowing them is
/// meaningless, and `TRACE`/`TRACK` enable cross-site tracing.
pub fn is_forbidden_method(method: &str) -> bool {
    ["CONNECT", "TRACE", "TRACK"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

/// Methods `fetch()` normalizes to uppercase (Fetch §2.2.1, "normalize a method").
pub(crate) fn normalized_method(method: &str) -> Option<&'static str> {
    ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"]
        .into_iter()
        .find(|m| m.eq_ignore_ascii_case(method))
}

/// Forbidden request-header names (Fetch §2.2.2): scripts cannot set them, so a
/// preflight never asks for them; listing one shows a misunderstanding.
pub fn is_forbidden_request_header(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "accept-charset",
        "accept-encoding",
        "access-control-request-headers",
        "access-control-request-method",
        "access-control-request-private-network",
        "connection",
        "content-length",
        "cookie",
        "cookie2",
        "date",
        "dnt",
        "expect",
        "host",
        "keep-alive",
        "origin",
        "referer",
        "set-cookie",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "via",
    ];
    let lower = name.to_ascii_lowercase();
    NAMES.contains(&lower.as_str()) || lower.starts_with("proxy-") || lower.starts_with("sec-")
}

/// CORS-safelisted response-header names (Fetch §2.2.2): always readable.
pub fn is_safelisted_response_header(name: &str) -> bool {
    [
        "cache-control",
        "content-language",
        "content-length",
        "content-type",
        "expires",
        "last-modified",
        "pragma",
    ]
    .iter()
    .any(|h| h.eq_ignore_ascii_case(name))
}

/// Forbidden response-header names (Fetch §2.2.2): never exposed to scripts.
pub fn is_forbidden_response_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("set-cookie") || name.eq_ignore_ascii_case("set-cookie2")
}

/// Why an `Access-Control-Request-Headers` list is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderListError {
    /// An element is not a header-name token; its byte range in the value.
    Malformed(usize, usize),
    /// An element is not allowed; its byte range in the value.
    NotAllowed(usize, usize),
}

/// Walks the comma-separated elements of one `Access-Control-Request-Headers` line,
/// tolerating optional whitespace and empty elements (RFC 9110 §5.6.1), and calls
/// `allowed` on each name. One pass, no allocation: the cost is linear in the
/// length of the value whatever it holds.
pub(crate) fn check_header_list(
    value: &[u8],
    mut allowed: impl FnMut(&[u8]) -> bool,
) -> Result<usize, HeaderListError> {
    let mut count = 0;
    let mut start = 0;
    while start <= value.len() {
        let end = value
            .get(start..)
            .and_then(|rest| rest.iter().position(|b| *b == b','))
            .map_or(value.len(), |i| start + i);
        let (lo, hi) = trim_ows(value, start, end);
        if lo < hi {
            let name = value.get(lo..hi).unwrap_or_default();
            if !is_token(name) {
                return Err(HeaderListError::Malformed(lo, hi));
            }
            if !allowed(name) {
                return Err(HeaderListError::NotAllowed(lo, hi));
            }
            count += 1;
        }
        start = end + 1;
    }
    Ok(count)
}

fn trim_ows(value: &[u8], mut lo: usize, mut hi: usize) -> (usize, usize) {
    let ows = |i: usize| matches!(value.get(i), Some(b' ' | b'\t'));
    while lo < hi && ows(lo) {
        lo += 1;
    }
    while hi > lo && ows(hi - 1) {
        hi -= 1;
    }
    (lo, hi)
}

/// Case-insensitive ordering of header names, for binary search over a sorted
/// lowercase allowlist without lowercasing the request's bytes into a buffer.
pub(crate) fn cmp_lowercase(allowed: &[u8], requested: &[u8]) -> std::cmp::Ordering {
    let lhs = allowed.iter().copied();
    let rhs = requested.iter().map(u8::to_ascii_lowercase);
    lhs.cmp(rhs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(value: &str) -> Result<Vec<String>, HeaderListError> {
        let mut seen = Vec::new();
        check_header_list(value.as_bytes(), |name| {
            seen.push(String::from_utf8_lossy(name).into_owned());
            true
        })
        .map(|_| seen)
    }

    #[test]
    fn header_lists_tolerate_case_spaces_and_empty_elements() {
        assert_eq!(names("x-a,x-b").unwrap(), ["x-a", "x-b"]);
        assert_eq!(names(" X-A ,\t, ,x-b,").unwrap(), ["X-A", "x-b"]);
        assert_eq!(names("").unwrap(), Vec::<String>::new());
        assert_eq!(names(",,,,").unwrap(), Vec::<String>::new());
        assert!(matches!(
            names("x-a, bad header"),
            Err(HeaderListError::Malformed(5, 15))
        ));
        assert!(matches!(
            names("x-a;b"),
            Err(HeaderListError::Malformed(0, 5))
        ));
    }

    #[test]
    fn forbidden_names() {
        assert!(is_forbidden_request_header("Cookie"));
        assert!(is_forbidden_request_header("sec-fetch-mode"));
        assert!(is_forbidden_request_header("Proxy-Authorization"));
        assert!(!is_forbidden_request_header("authorization"));
        assert!(is_forbidden_method("trace"));
        assert!(!is_forbidden_method("PATCH"));
    }
}
