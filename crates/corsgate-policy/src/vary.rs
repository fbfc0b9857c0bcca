//! Appending to `Vary` without repeating what is listed, and the values corsgate
//! writes there.

use http::header::VARY;
use http::{HeaderMap, HeaderValue};

pub(crate) static VARY_ORIGIN: HeaderValue = HeaderValue::from_static("Origin");
pub(crate) static VARY_PREFLIGHT: HeaderValue = HeaderValue::from_static(
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
);
pub(crate) static VARY_PREFLIGHT_PN: HeaderValue = HeaderValue::from_static(
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers, Access-Control-Request-Private-Network",
);

/// The comma-separated members of a `Vary` value, whitespace trimmed.
fn members(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(<[u8]>::trim_ascii)
}

/// Appends the members of `add` (a comma-separated list) to `Vary`, skipping those
/// already present, and skipping everything when `Vary: *` is there.
///
/// Allocates only when some members of `add` are listed already and others not.
pub(crate) fn append_vary(headers: &mut HeaderMap, add: &HeaderValue) {
    let existing = headers.get_all(VARY);
    if existing.iter().next().is_none() {
        headers.insert(VARY, add.clone());
        return;
    }
    let has = |member: &[u8]| {
        existing.iter().any(|value| {
            members(value.as_bytes()).any(|m| m == b"*" || m.eq_ignore_ascii_case(member))
        })
    };
    // The missing members joined by ", ": when that is `add` itself (none listed
    // yet, `add` written as corsgate writes it), append `add` as it is.
    let bytes = add.as_bytes();
    let mut len = 0usize;
    let mut same = true;
    for member in members(bytes).filter(|m| !has(m)) {
        if len > 0 {
            same &= bytes.get(len..len + 2) == Some(b", ".as_slice());
            len += 2;
        }
        same &= bytes.get(len..len + member.len()) == Some(member);
        len += member.len();
    }
    if len == 0 {
        return;
    }
    if same && len == bytes.len() {
        headers.append(VARY, add.clone());
        return;
    }
    let mut out: Vec<u8> = Vec::with_capacity(len);
    for member in members(bytes).filter(|m| !has(m)) {
        if !out.is_empty() {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(member);
    }
    if let Ok(value) = HeaderValue::from_bytes(&out) {
        headers.append(VARY, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vary_after(existing: &[&str], add: &str) -> Vec<String> {
        let mut headers = HeaderMap::new();
        for value in existing {
            headers.append(VARY, value.parse().unwrap());
        }
        append_vary(&mut headers, &add.parse().unwrap());
        headers
            .get_all(VARY)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn vary_members_are_appended_once() {
        let add = "Origin, Access-Control-Request-Method";
        assert_eq!(vary_after(&[], add), [add]);
        assert_eq!(vary_after(&["Accept"], add), ["Accept", add]);
        assert_eq!(
            vary_after(&["accept", "ORIGIN"], add),
            ["accept", "ORIGIN", "Access-Control-Request-Method"]
        );
        assert_eq!(
            vary_after(&[" origin ,access-control-request-method"], add),
            [" origin ,access-control-request-method"]
        );
        assert_eq!(vary_after(&["*"], add), ["*"]);
        // Not written as corsgate writes lists: rebuilt.
        assert_eq!(vary_after(&["Accept"], " a ,b"), ["Accept", "a, b"]);
        assert_eq!(vary_after(&["Accept"], ",a"), ["Accept", "a"]);
        assert_eq!(vary_after(&["Accept"], ""), ["Accept"]);
    }
}
