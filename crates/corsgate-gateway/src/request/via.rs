//! The gateway's `Via` entry, and loops found by it.
//!
//! Each gateway takes a random token when it starts and names itself with it
//! in the `Via` header of every request it forwards (`1.1 corsgate-<token>`,
//! RFC 9110 §7.6.3: a pseudonym as received-by). A request that arrives with
//! that entry has come round: its route's upstream leads back to this
//! gateway, through its own address, a DNS name of it, or other proxies. It is
//! answered `508 Loop Detected` instead of being forwarded again (each pass
//! would add a `Via` until the head is too large, holding a connection per
//! pass). Another corsgate process has another token, so a chain of distinct
//! gateways is no loop.

use http::header::VIA;
use http::{HeaderMap, HeaderValue};

/// How many random bits the token has: enough that two processes never draw
/// the same one.
const TOKEN_HEX_DIGITS: usize = 16;

/// This gateway's `Via` entry.
#[derive(Debug, Clone)]
pub(crate) struct Via {
    /// `corsgate-<token>`.
    pseudonym: String,
    /// `1.1 corsgate-<token>`.
    value: HeaderValue,
}

impl Via {
    /// A new random token.
    pub(crate) fn random() -> Self {
        Via::with_token(fastrand::u64(..))
    }

    fn with_token(token: u64) -> Self {
        let pseudonym = format!("corsgate-{token:0width$x}", width = TOKEN_HEX_DIGITS);
        let value = HeaderValue::from_str(&format!("1.1 {pseudonym}"))
            .unwrap_or_else(|_| HeaderValue::from_static("1.1 corsgate"));
        Via { pseudonym, value }
    }

    /// The entry the gateway appends to the requests it forwards.
    pub(crate) fn value(&self) -> &HeaderValue {
        &self.value
    }

    /// Whether a request has passed through this gateway already: one of its
    /// `Via` entries names this gateway's token.
    pub(crate) fn is_in(&self, headers: &HeaderMap) -> bool {
        let name = self.pseudonym.as_bytes();
        headers.get_all(VIA).iter().any(|line| {
            let line = line.as_bytes();
            line.windows(name.len()).enumerate().any(|(at, window)| {
                // A whole received-by: not the start of a longer name.
                window.eq_ignore_ascii_case(name)
                    && line
                        .get(at + name.len())
                        .is_none_or(|b| !b.is_ascii_alphanumeric() && *b != b'-')
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_its_own_entry_among_others_and_only_its_own() {
        let via = Via::with_token(0xabc);
        assert_eq!(via.value(), "1.1 corsgate-0000000000000abc");
        let mut headers = HeaderMap::new();
        assert!(!via.is_in(&headers));
        headers.append(
            VIA,
            HeaderValue::from_static("1.1 corsgate-0000000000000abd"),
        );
        headers.append(
            VIA,
            HeaderValue::from_static("1.0 fred, 1.1 corsgate-0000000000000abcd"),
        );
        assert!(!via.is_in(&headers), "another gateway's token");
        headers.append(
            VIA,
            HeaderValue::from_static("1.0 fred, 1.1 corsgate-0000000000000abc (corsgate)"),
        );
        assert!(via.is_in(&headers));
        assert_ne!(Via::random().value(), Via::random().value());
    }
}
