//! The one access check of the admin listener, run by the router before any
//! endpoint's handler, with one refusal shape for every endpoint.
//!
//! The token is the content of `server.admin_token_file` (surrounding
//! whitespace ignored), read on each request so that it can be rotated without
//! a reload, sent as `Authorization: Bearer <token>` (RFC 6750 §2.1) and
//! compared in constant time. Loopback is no authentication boundary: any local
//! process, or a sidecar sharing the network namespace, can connect. Browsers
//! are kept out of writes: the admin listener sends no CORS headers, so a
//! cross-origin `fetch` with `Authorization` or a JSON body fails its
//! preflight, and a write carrying `Origin` (which a browser always adds to a
//! `POST`, `PUT` or `DELETE`, Fetch §3.1) is refused outright.

use std::path::Path;

use bytes::Bytes;
use corsgate_config::Settings;
use http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, ORIGIN, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::endpoints::Access;
use crate::request::body::ResponseBody;

/// Whether a request with these headers may use an endpoint of `access`;
/// `Err` is the answer that refuses it.
pub(crate) async fn authorize(
    settings: &Settings,
    headers: &HeaderMap,
    access: Access,
) -> Result<(), Response<ResponseBody>> {
    if access == Access::Open {
        return Ok(());
    }
    if access == Access::Write && headers.contains_key(ORIGIN) {
        return Err(refusal(
            StatusCode::FORBIDDEN,
            "origin refused",
            "an admin write carrying Origin comes from a web page; the admin API is for operators and tools",
        ));
    }
    let Some(file) = settings.admin_token_file.as_deref() else {
        return match access {
            Access::Write => Err(refusal(
                StatusCode::FORBIDDEN,
                "writes disabled",
                "admin writes need a token: set server.admin_token_file to a file holding a long random token, and send it as Authorization: Bearer <token>",
            )),
            // Reads are open without a token file, like /metrics.
            _ => Ok(()),
        };
    };
    let Some(expected) = read_token(file).await else {
        return Err(refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "token unavailable",
            "server.admin_token_file cannot be read or is empty",
        ));
    };
    match bearer_token(headers) {
        Some(given) if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
        // A missing and a wrong token get the same answer: it tells nothing
        // about the token (RFC 6750 §3 allows a challenge without `error`).
        _ => {
            let mut response = refusal(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send Authorization: Bearer <the token of server.admin_token_file>",
            );
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Err(response)
        }
    }
}

/// The token of `admin_token_file`; `None` (logged) when it cannot be read or
/// is empty, which refuses every request that needs it.
async fn read_token(file: &Path) -> Option<String> {
    match tokio::fs::read_to_string(file).await {
        Ok(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
        Ok(_) => {
            tracing::error!(file = %file.display(), "admin_token_file is empty: the admin endpoints that need the token are refused");
            None
        }
        Err(err) => {
            tracing::error!(file = %file.display(), %err, "admin_token_file unreadable: the admin endpoints that need the token are refused");
            None
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1;
/// the scheme is case-insensitive, RFC 9110 §11.1).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// The refusal of every admin endpoint: `application/problem+json`
/// (RFC 9457), never cached.
fn refusal(status: StatusCode, title: &str, detail: &str) -> Response<ResponseBody> {
    let mut body = serde_json::to_vec_pretty(&json!({
        "status": status.as_u16(),
        "title": title,
        "detail": detail,
    }))
    .unwrap_or_default();
    body.push(b'\n');
    let mut response = Response::new(ResponseBody::full(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_other_schemes_are_not_tokens() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
            bearer_token(&headers).map(str::to_owned)
        };
        assert_eq!(with("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(with("bearer  abc ").as_deref(), Some("abc"));
        assert_eq!(with("Basic abc"), None);
        assert_eq!(with("Bearer"), None);
    }
}
