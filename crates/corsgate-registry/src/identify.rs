//! Which OAuth2 client a request names: the parsers behind a client-scoped
//! route's `identify` sources, shared by the gateway (on live requests) and
//! `corsgate explain --client` (on a request described on the command line),
//! so that both read a request the same way.
//!
//! Each parser takes bytes and answers; none reads a body or a socket. The
//! client id is taken as the request asserts it, without checking a secret
//! or a signature (`docs/registry.md` says why that is enough for CORS).
//!
//! ```
//! use corsgate_registry::identify::{self, FormClientId};
//!
//! // `my%3Aclient:secret` in Basic: the user is percent-decoded (RFC 6749 §2.3.1).
//! assert_eq!(identify::basic_user(b"Basic bXklM0FjbGllbnQ6c2VjcmV0").as_deref(), Some("my:client"));
//! assert_eq!(
//!     identify::form_client_id(b"grant_type=code&client_id=sp%61"),
//!     FormClientId::Found("spa".into())
//! );
//! assert_eq!(identify::form_client_id(b"client_id=a&client_id=b"), FormClientId::Repeated);
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// Longest bearer token looked at.
const MAX_JWT_LEN: usize = 8 * 1024;

/// The user of an `Authorization: Basic` value, percent-decoded as RFC 6749
/// §2.3.1 asks clients to encode it (`+` is a space). Malformed: `None`.
pub fn basic_user(authorization: &[u8]) -> Option<String> {
    let (scheme, rest) = split_scheme(authorization)?;
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim_ascii()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, _) = text.split_once(':')?;
    let user = form_decode(user)?;
    (!user.is_empty()).then_some(user)
}

fn split_scheme(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = value.iter().position(|b| *b == b' ')?;
    Some((value.get(..space)?, value.get(space + 1..)?))
}

/// `application/x-www-form-urlencoded` decoding of one component: `+` is a
/// space, `%XX` a byte; a stray `%` or bytes that are not UTF-8 make it
/// unusable.
fn form_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = char::from(bytes.next()?).to_digit(16)?;
                let lo = char::from(bytes.next()?).to_digit(16)?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// The first of `claims` that is a non-empty string in the payload of an
/// `Authorization: Bearer` (or `DPoP`) JWT. The signature is not checked.
pub fn jwt_client(authorization: &[u8], claims: &[String]) -> Option<String> {
    let (scheme, token) = split_scheme(authorization)?;
    if !(scheme.eq_ignore_ascii_case(b"bearer") || scheme.eq_ignore_ascii_case(b"dpop")) {
        return None;
    }
    let token = token.trim_ascii();
    if token.len() > MAX_JWT_LEN {
        return None;
    }
    let mut parts = token.split(|b| *b == b'.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    // base64url without padding (RFC 7515 §2); some issuers pad anyway.
    let payload = payload
        .strip_suffix(b"==")
        .or_else(|| payload.strip_suffix(b"="))
        .unwrap_or(payload);
    let json = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let serde_json::Value::Object(map) = serde_json::from_slice(&json).ok()? else {
        return None;
    };
    claims.iter().find_map(|claim| match map.get(claim) {
        Some(serde_json::Value::String(id)) if !id.is_empty() => Some(id.clone()),
        _ => None,
    })
}

/// Whether a `Content-Type` value is `application/x-www-form-urlencoded`
/// (parameters allowed): the only body the `form` source reads.
pub fn is_form_media_type(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|media| {
        media
            .trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

/// What a form body says about its client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormClientId {
    /// One non-empty `client_id`.
    Found(String),
    /// No `client_id`, or an empty one.
    Absent,
    /// `client_id` more than once: two readers could pick different ones, so
    /// it names no client.
    Repeated,
}

/// `client_id` of a whole `application/x-www-form-urlencoded` body.
pub fn form_client_id(body: &[u8]) -> FormClientId {
    let mut found = None;
    for (key, value) in url::form_urlencoded::parse(body) {
        if key == "client_id" {
            if found.is_some() {
                return FormClientId::Repeated;
            }
            found = Some(value.into_owned());
        }
    }
    match found {
        Some(id) if !id.is_empty() => FormClientId::Found(id),
        _ => FormClientId::Absent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_user_is_percent_decoded() {
        let basic = |s: &str| format!("Basic {}", STANDARD.encode(s)).into_bytes();
        assert_eq!(
            basic_user(&basic("my%3Aclient:secret")),
            Some("my:client".into())
        );
        let lower = format!("basic {}", STANDARD.encode("my+app:s"));
        assert_eq!(basic_user(lower.as_bytes()), Some("my app".into()));
        assert_eq!(basic_user(&basic("nocolon")), None);
        assert_eq!(basic_user(&basic("bad%zz:s")), None);
        assert_eq!(basic_user(b"Basic !!!"), None);
        assert_eq!(basic_user(b"Bearer abc"), None);
    }

    #[test]
    fn jwt_claims_in_order_and_malformed_tokens() {
        let claims = ["client_id".to_owned(), "azp".to_owned()];
        let jwt = |payload: &str| {
            format!("Bearer e30.{}.sig", URL_SAFE_NO_PAD.encode(payload)).into_bytes()
        };
        assert_eq!(
            jwt_client(&jwt(r#"{"client_id":"spa","azp":"x"}"#), &claims),
            Some("spa".into())
        );
        assert_eq!(
            jwt_client(&jwt(r#"{"azp":"kc"}"#), &claims),
            Some("kc".into())
        );
        assert_eq!(jwt_client(&jwt(r#"{"client_id":7}"#), &claims), None);
        assert_eq!(jwt_client(&jwt("[1]"), &claims), None);
        assert_eq!(jwt_client(b"Bearer ory_at_opaque", &claims), None);
        assert_eq!(jwt_client(b"Bearer a.b.c.d", &claims), None);
        assert_eq!(jwt_client(b"Bearer a.!!.c", &claims), None);
        let long = format!("Bearer e30.{}.s", "A".repeat(MAX_JWT_LEN));
        assert_eq!(jwt_client(long.as_bytes(), &claims), None);
    }

    #[test]
    fn form_bodies() {
        assert_eq!(
            form_client_id(b"client_id=my+app"),
            FormClientId::Found("my app".into())
        );
        assert_eq!(form_client_id(b"grant_type=x"), FormClientId::Absent);
        assert_eq!(form_client_id(b"client_id="), FormClientId::Absent);
        assert_eq!(
            form_client_id(b"client_id=a&client_id=a"),
            FormClientId::Repeated
        );
        assert!(is_form_media_type(
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8"
        ));
        assert!(!is_form_media_type("application/json"));
    }
}
