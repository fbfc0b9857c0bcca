//! One table of CORS cases — (policy, request, expected outcome, expected headers) —
//! that drives the engine tests, the tower tests, the gateway tests, the benchmarks
//! and the fuzz seeds, so that every form of corsgate is held to the same answers.

#![warn(missing_docs, missing_debug_implementations)]

use corsgate_policy::{CorsConfig, Policy, RejectionReason};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// What a case expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No `Origin`: not a CORS request.
    NotCors,
    /// Allowed.
    Allowed,
    /// Refused, with this reason.
    Rejected(RejectionReason),
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Unique name, used in test failures and benchmark ids.
    pub name: &'static str,
    /// The policy, as the TOML body of a `[server.cors]` table.
    pub policy: &'static str,
    /// Request method.
    pub method: &'static str,
    /// Request headers, in order (repeats make several lines).
    pub request: &'static [(&'static str, &'static str)],
    /// The decision.
    pub outcome: Outcome,
    /// The status of a response made without calling the app (`None`: forwarded).
    pub status: Option<u16>,
    /// Exactly the `Access-Control-*` and `Vary` headers the response must carry.
    pub headers: &'static [(&'static str, &'static str)],
}

impl Case {
    /// The compiled policy.
    pub fn compile(&self) -> Policy {
        let config: CorsConfig = match toml::from_str(self.policy) {
            Ok(config) => config,
            Err(err) => panic!("case {}: bad policy TOML: {err}", self.name),
        };
        match Policy::compile(&config) {
            Ok(policy) => policy,
            Err(err) => panic!("case {}: policy refused: {err}", self.name),
        }
    }

    /// The request method.
    pub fn method(&self) -> Method {
        match Method::from_bytes(self.method.as_bytes()) {
            Ok(method) => method,
            Err(err) => panic!("case {}: bad method: {err}", self.name),
        }
    }

    /// The request headers.
    pub fn request_headers(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in self.request {
            let name = HeaderName::from_bytes(name.as_bytes())
                .unwrap_or_else(|e| panic!("{}: {e}", self.name));
            let value = HeaderValue::from_bytes(value.as_bytes())
                .unwrap_or_else(|e| panic!("{}: {e}", self.name));
            map.append(name, value);
        }
        map
    }

    /// Whether the app (inner service, upstream) must be called.
    pub fn reaches_app(&self) -> bool {
        self.status.is_none()
    }

    /// Compares the CORS and `Vary` headers of a response with the expected ones;
    /// returns a description of every difference.
    pub fn check_headers(&self, response: &HeaderMap) -> Result<(), String> {
        let mut problems = Vec::new();
        let relevant = |name: &str| {
            name.starts_with("access-control-") || name == "vary" || name == "x-corsgate-reason"
        };
        let mut actual: Vec<(String, String)> = response
            .iter()
            .filter(|(name, _)| relevant(name.as_str()))
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut expected: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), (*v).to_owned()))
            .collect();
        actual.sort();
        expected.sort();
        if actual != expected {
            problems.push(format!(
                "case {}: headers\n  expected {expected:?}\n  actual   {actual:?}",
                self.name
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }
}

const APP: &str = "https://app.example.com";

/// A typical SPA + API policy.
pub const SPA: &str = r#"
allow_origins = ["https://app.example.com", "https://*.example.org", "http://localhost:*"]
allow_methods = ["PUT", "DELETE", "PATCH"]
allow_headers = ["content-type", "x-api-key", "authorization"]
expose_headers = ["x-request-id"]
allow_credentials = true
max_age = 600
"#;

/// Public data for everyone.
pub const PUBLIC: &str = r#"
allow_origins = "*"
allow_methods = "*"
allow_headers = "*"
expose_headers = ["x-total-count"]
"#;

/// The same with `on_disallowed = "reject"` and debug mode.
pub const STRICT_DEBUG: &str = r#"
allow_origins = ["https://app.example.com"]
allow_methods = ["PUT"]
allow_headers = ["x-api-key"]
on_disallowed = "reject"
debug = true
"#;

/// No CORS keys at all: closed.
pub const CLOSED: &str = "";

/// Closed, and refusals answered `403` without calling the app.
pub const CLOSED_REJECT: &str = "on_disallowed = \"reject\"\n";

/// `MAX_REQUEST_HEADER_NAMES` (64) names: `x-h01` to `x-h64`.
const MOST_NAMES: &str = "x-h01,x-h02,x-h03,x-h04,x-h05,x-h06,x-h07,x-h08,x-h09,x-h10,x-h11,x-h12,x-h13,x-h14,x-h15,x-h16,x-h17,x-h18,x-h19,x-h20,x-h21,x-h22,x-h23,x-h24,x-h25,x-h26,x-h27,x-h28,x-h29,x-h30,x-h31,x-h32,x-h33,x-h34,x-h35,x-h36,x-h37,x-h38,x-h39,x-h40,x-h41,x-h42,x-h43,x-h44,x-h45,x-h46,x-h47,x-h48,x-h49,x-h50,x-h51,x-h52,x-h53,x-h54,x-h55,x-h56,x-h57,x-h58,x-h59,x-h60,x-h61,x-h62,x-h63,x-h64";
/// One name more.
const NAMES_PAST_THE_LIMIT: &str = "x-h01,x-h02,x-h03,x-h04,x-h05,x-h06,x-h07,x-h08,x-h09,x-h10,x-h11,x-h12,x-h13,x-h14,x-h15,x-h16,x-h17,x-h18,x-h19,x-h20,x-h21,x-h22,x-h23,x-h24,x-h25,x-h26,x-h27,x-h28,x-h29,x-h30,x-h31,x-h32,x-h33,x-h34,x-h35,x-h36,x-h37,x-h38,x-h39,x-h40,x-h41,x-h42,x-h43,x-h44,x-h45,x-h46,x-h47,x-h48,x-h49,x-h50,x-h51,x-h52,x-h53,x-h54,x-h55,x-h56,x-h57,x-h58,x-h59,x-h60,x-h61,x-h62,x-h63,x-h64,x-h65";
/// `MAX_REQUEST_HEADERS_LEN` (4096) bytes: 64 names of 63 bytes (one of 64).
const LONGEST_LIST: &str = "x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll01,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll02,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll03,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll04,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll05,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll06,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll07,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll08,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll09,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll10,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll11,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll12,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll13,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll14,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll15,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll16,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll17,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll18,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll19,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll20,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll21,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll22,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll23,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll24,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll25,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll26,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll27,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll28,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll29,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll30,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll31,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll32,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll33,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll34,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll35,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll36,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll37,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll38,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll39,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll40,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll41,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll42,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll43,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll44,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll45,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll46,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll47,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll48,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll49,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll50,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll51,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll52,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll53,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll54,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll55,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll56,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll57,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll58,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll59,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll60,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll61,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll62,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll63,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll64z";
/// One byte more.
const LIST_PAST_THE_LENGTH: &str = "x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll01,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll02,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll03,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll04,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll05,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll06,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll07,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll08,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll09,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll10,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll11,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll12,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll13,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll14,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll15,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll16,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll17,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll18,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll19,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll20,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll21,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll22,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll23,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll24,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll25,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll26,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll27,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll28,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll29,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll30,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll31,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll32,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll33,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll34,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll35,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll36,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll37,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll38,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll39,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll40,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll41,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll42,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll43,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll44,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll45,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll46,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll47,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll48,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll49,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll50,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll51,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll52,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll53,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll54,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll55,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll56,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll57,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll58,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll59,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll60,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll61,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll62,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll63,x-lllllllllllllllllllllllllllllllllllllllllllllllllllllllllll64zz";

const VARY_PF: &str = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

/// The table.
pub const CASES: &[Case] = &[
    Case {
        name: "not-cors-get",
        policy: SPA,
        method: "GET",
        request: &[],
        outcome: Outcome::NotCors,
        status: None,
        headers: &[("vary", "Origin")],
    },
    Case {
        name: "actual-get-allowed",
        policy: SPA,
        method: "GET",
        request: &[("origin", APP)],
        outcome: Outcome::Allowed,
        status: None,
        headers: &[
            ("access-control-allow-origin", APP),
            ("access-control-allow-credentials", "true"),
            ("access-control-expose-headers", "x-request-id"),
            ("vary", "Origin"),
        ],
    },
    Case {
        name: "actual-get-disallowed-origin",
        policy: SPA,
        method: "GET",
        request: &[("origin", "https://evil.example")],
        outcome: Outcome::Rejected(RejectionReason::OriginNotAllowed),
        status: None,
        headers: &[("vary", "Origin")],
    },
    Case {
        name: "actual-suffix-confusion",
        policy: SPA,
        method: "GET",
        request: &[("origin", "https://app.example.com.evil.example")],
        outcome: Outcome::Rejected(RejectionReason::OriginNotAllowed),
        status: None,
        headers: &[("vary", "Origin")],
    },
    Case {
        name: "actual-uppercase-origin-is-malformed",
        policy: SPA,
        method: "GET",
        request: &[("origin", "https://APP.example.com")],
        outcome: Outcome::Rejected(RejectionReason::MalformedOrigin),
        status: None,
        headers: &[("vary", "Origin")],
    },
    Case {
        name: "actual-null-origin",
        policy: SPA,
        method: "POST",
        request: &[("origin", "null")],
        outcome: Outcome::Rejected(RejectionReason::NullOrigin),
        status: None,
        headers: &[("vary", "Origin")],
    },
    Case {
        name: "actual-two-origin-headers",
        policy: SPA,
        method: "GET",
        request: &[("origin", APP), ("origin", APP)],
        outcome: Outcome::Rejected(RejectionReason::MalformedOrigin),
        status: None,
        headers: &[("vary", "Origin")],
    },
    Case {
        name: "actual-subdomain-wildcard",
        policy: SPA,
        method: "GET",
        request: &[("origin", "https://a.b.example.org")],
        outcome: Outcome::Allowed,
        status: None,
        headers: &[
            ("access-control-allow-origin", "https://a.b.example.org"),
            ("access-control-allow-credentials", "true"),
            ("access-control-expose-headers", "x-request-id"),
            ("vary", "Origin"),
        ],
    },
    Case {
        name: "actual-wildcard-never-the-apex",
        policy: SPA,
        method: "GET",
        request: &[("origin", "https://example.org")],
        outcome: Outcome::Rejected(RejectionReason::OriginNotAllowed),
        status: None,
        headers: &[("vary", "Origin")],
    },
    Case {
        name: "actual-any-port",
        policy: SPA,
        method: "GET",
        request: &[("origin", "http://localhost:5173")],
        outcome: Outcome::Allowed,
        status: None,
        headers: &[
            ("access-control-allow-origin", "http://localhost:5173"),
            ("access-control-allow-credentials", "true"),
            ("access-control-expose-headers", "x-request-id"),
            ("vary", "Origin"),
        ],
    },
    Case {
        name: "options-without-request-method-is-actual",
        policy: SPA,
        method: "OPTIONS",
        request: &[("origin", APP)],
        outcome: Outcome::Allowed,
        status: None,
        headers: &[
            ("access-control-allow-origin", APP),
            ("access-control-allow-credentials", "true"),
            ("access-control-expose-headers", "x-request-id"),
            ("vary", "Origin"),
        ],
    },
    Case {
        name: "preflight-allowed",
        policy: SPA,
        method: "OPTIONS",
        request: &[
            ("origin", APP),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "content-type,x-api-key"),
        ],
        outcome: Outcome::Allowed,
        status: Some(204),
        headers: &[
            ("access-control-allow-origin", APP),
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-methods", "PUT"),
            ("access-control-allow-headers", "content-type,x-api-key"),
            ("access-control-max-age", "600"),
            ("vary", VARY_PF),
        ],
    },
    Case {
        name: "preflight-safelisted-method-needs-no-listing",
        policy: SPA,
        method: "OPTIONS",
        request: &[("origin", APP), ("access-control-request-method", "POST")],
        outcome: Outcome::Allowed,
        status: Some(204),
        headers: &[
            ("access-control-allow-origin", APP),
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-methods", "POST"),
            ("access-control-max-age", "600"),
            ("vary", VARY_PF),
        ],
    },
    Case {
        name: "preflight-header-list-tolerates-case-spaces-empties",
        policy: SPA,
        method: "OPTIONS",
        request: &[
            ("origin", APP),
            ("access-control-request-method", "DELETE"),
            (
                "access-control-request-headers",
                " X-Api-Key , ,Content-Type,",
            ),
        ],
        outcome: Outcome::Allowed,
        status: Some(204),
        headers: &[
            ("access-control-allow-origin", APP),
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-methods", "DELETE"),
            (
                "access-control-allow-headers",
                " X-Api-Key , ,Content-Type,",
            ),
            ("access-control-max-age", "600"),
            ("vary", VARY_PF),
        ],
    },
    Case {
        name: "preflight-header-list-over-several-lines",
        policy: SPA,
        method: "OPTIONS",
        request: &[
            ("origin", APP),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-api-key"),
            ("access-control-request-headers", "content-type"),
        ],
        outcome: Outcome::Allowed,
        status: Some(204),
        headers: &[
            ("access-control-allow-origin", APP),
            ("access-control-allow-credentials", "true"),
            ("access-control-allow-methods", "PUT"),
            ("access-control-allow-headers", "x-api-key,content-type"),
            ("access-control-max-age", "600"),
            ("vary", VARY_PF),
        ],
    },
    Case {
        name: "preflight-method-not-allowed",
        policy: SPA,
        method: "OPTIONS",
        request: &[
            ("origin", APP),
            ("access-control-request-method", "PROPFIND"),
        ],
        outcome: Outcome::Rejected(RejectionReason::MethodNotAllowed),
        status: Some(403),
        headers: &[("vary", VARY_PF)],
    },
    Case {
        name: "preflight-method-is-case-sensitive",
        policy: SPA,
        method: "OPTIONS",
        request: &[("origin", APP), ("access-control-request-method", "patch")],
        outcome: Outcome::Rejected(RejectionReason::MethodNotAllowed),
        status: Some(403),
        headers: &[("vary", VARY_PF)],
    },
    Case {
        name: "preflight-header-not-allowed",
        policy: SPA,
        method: "OPTIONS",
        request: &[
            ("origin", APP),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "content-type,x-secret"),
        ],
        outcome: Outcome::Rejected(RejectionReason::HeaderNotAllowed),
        status: Some(403),
        headers: &[("vary", VARY_PF)],
    },
    Case {
        name: "preflight-malformed-header-list",
        policy: SPA,
        method: "OPTIONS",
        request: &[
            ("origin", APP),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-api-key;evil"),
        ],
        outcome: Outcome::Rejected(RejectionReason::MalformedRequestHeaders),
        status: Some(403),
        headers: &[("vary", VARY_PF)],
    },
    Case {
        name: "preflight-origin-not-allowed",
        policy: SPA,
        method: "OPTIONS",
        request: &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "PUT"),
        ],
        outcome: Outcome::Rejected(RejectionReason::OriginNotAllowed),
        status: Some(403),
        headers: &[("vary", VARY_PF)],
    },
    Case {
        name: "preflight-private-network-refused-when-off",
        policy: SPA,
        method: "OPTIONS",
        request: &[
            ("origin", APP),
            ("access-control-request-method", "PUT"),
            ("access-control-request-private-network", "true"),
        ],
        outcome: Outcome::Rejected(RejectionReason::PrivateNetworkNotAllowed),
        status: Some(403),
        headers: &[("vary", VARY_PF)],
    },
    Case {
        name: "public-actual-star",
        policy: PUBLIC,
        method: "GET",
        request: &[("origin", "https://anyone.example")],
        outcome: Outcome::Allowed,
        status: None,
        headers: &[
            ("access-control-allow-origin", "*"),
            ("access-control-expose-headers", "x-total-count"),
        ],
    },
    // Under `*` a response without `Origin` carries the same headers as one with:
    // nothing varies on `Origin`, so a shared cache may serve either copy to every
    // origin (the security review's F2: with no headers here and no `Vary`, the
    // first copy cached without `Origin` broke every page).
    Case {
        name: "public-not-cors-gets-star-too",
        policy: PUBLIC,
        method: "GET",
        request: &[],
        outcome: Outcome::NotCors,
        status: None,
        headers: &[
            ("access-control-allow-origin", "*"),
            ("access-control-expose-headers", "x-total-count"),
        ],
    },
    Case {
        name: "public-malformed-origin-gets-star-too",
        policy: PUBLIC,
        method: "GET",
        request: &[("origin", "https://anyone.example/")],
        outcome: Outcome::Allowed,
        status: None,
        headers: &[
            ("access-control-allow-origin", "*"),
            ("access-control-expose-headers", "x-total-count"),
        ],
    },
    Case {
        name: "public-null-origin-gets-star",
        policy: PUBLIC,
        method: "POST",
        request: &[("origin", "null")],
        outcome: Outcome::Allowed,
        status: None,
        headers: &[
            ("access-control-allow-origin", "*"),
            ("access-control-expose-headers", "x-total-count"),
        ],
    },
    // With `Origin` this request is a preflight answered by corsgate; without, it
    // reaches the app: the answer depends on `Origin`.
    Case {
        name: "public-options-without-origin-varies-on-origin",
        policy: PUBLIC,
        method: "OPTIONS",
        request: &[("access-control-request-method", "PUT")],
        outcome: Outcome::NotCors,
        status: None,
        headers: &[
            ("access-control-allow-origin", "*"),
            ("access-control-expose-headers", "x-total-count"),
            ("vary", "Origin"),
        ],
    },
    Case {
        name: "public-preflight-echoes-never-star",
        policy: PUBLIC,
        method: "OPTIONS",
        request: &[
            ("origin", "https://anyone.example"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-anything"),
        ],
        outcome: Outcome::Allowed,
        status: Some(204),
        headers: &[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "PUT"),
            ("access-control-allow-headers", "x-anything"),
            // Preflights vary on `Origin` under `*` too: whether it is there
            // decides whether the request is a preflight at all.
            ("vary", VARY_PF),
        ],
    },
    Case {
        name: "public-star-never-covers-authorization",
        policy: PUBLIC,
        method: "OPTIONS",
        request: &[
            ("origin", "https://anyone.example"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "authorization"),
        ],
        outcome: Outcome::Rejected(RejectionReason::HeaderNotAllowed),
        status: Some(403),
        headers: &[("vary", VARY_PF)],
    },
    Case {
        name: "public-star-methods-exclude-forbidden",
        policy: PUBLIC,
        method: "OPTIONS",
        request: &[
            ("origin", "https://anyone.example"),
            ("access-control-request-method", "TRACE"),
        ],
        outcome: Outcome::Rejected(RejectionReason::MethodNotAllowed),
        status: Some(403),
        headers: &[("vary", VARY_PF)],
    },
    Case {
        name: "strict-rejects-disallowed-actual",
        policy: STRICT_DEBUG,
        method: "POST",
        request: &[("origin", "https://evil.example")],
        outcome: Outcome::Rejected(RejectionReason::OriginNotAllowed),
        status: Some(403),
        headers: &[
            ("vary", "Origin"),
            ("x-corsgate-reason", "origin-not-allowed"),
        ],
    },
    Case {
        name: "debug-method-refusal-lets-browser-name-it",
        policy: STRICT_DEBUG,
        method: "OPTIONS",
        request: &[("origin", APP), ("access-control-request-method", "DELETE")],
        outcome: Outcome::Rejected(RejectionReason::MethodNotAllowed),
        status: Some(204),
        headers: &[
            ("access-control-allow-origin", APP),
            ("access-control-allow-methods", "PUT"),
            ("vary", VARY_PF),
            ("x-corsgate-reason", "method-not-allowed"),
        ],
    },
    Case {
        name: "debug-header-refusal-lets-browser-name-it",
        policy: STRICT_DEBUG,
        method: "OPTIONS",
        request: &[
            ("origin", APP),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-other"),
        ],
        outcome: Outcome::Rejected(RejectionReason::HeaderNotAllowed),
        status: Some(204),
        headers: &[
            ("access-control-allow-origin", APP),
            ("access-control-allow-methods", "PUT"),
            ("access-control-allow-headers", "x-api-key"),
            ("vary", VARY_PF),
            ("x-corsgate-reason", "header-not-allowed"),
        ],
    },
    Case {
        name: "debug-origin-refusal-has-no-allow-origin",
        policy: STRICT_DEBUG,
        method: "OPTIONS",
        request: &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "PUT"),
        ],
        outcome: Outcome::Rejected(RejectionReason::OriginNotAllowed),
        status: Some(204),
        headers: &[
            ("vary", VARY_PF),
            ("x-corsgate-reason", "origin-not-allowed"),
        ],
    },
    Case {
        name: "closed-actual-emits-nothing",
        policy: CLOSED,
        method: "GET",
        request: &[("origin", APP)],
        outcome: Outcome::Rejected(RejectionReason::OriginNotAllowed),
        status: None,
        headers: &[],
    },
    // A closed policy that answers refusals itself sends a 403 to requests with
    // `Origin` and forwards those without: both vary on `Origin`.
    Case {
        name: "closed-reject-varies-on-origin",
        policy: CLOSED_REJECT,
        method: "POST",
        request: &[("origin", APP)],
        outcome: Outcome::Rejected(RejectionReason::OriginNotAllowed),
        status: Some(403),
        headers: &[("vary", "Origin")],
    },
    Case {
        name: "closed-reject-not-cors-varies-on-origin",
        policy: CLOSED_REJECT,
        method: "POST",
        request: &[],
        outcome: Outcome::NotCors,
        status: None,
        headers: &[("vary", "Origin")],
    },
    Case {
        name: "closed-preflight-refused",
        policy: CLOSED,
        method: "OPTIONS",
        request: &[("origin", APP), ("access-control-request-method", "PUT")],
        outcome: Outcome::Rejected(RejectionReason::OriginNotAllowed),
        status: Some(403),
        headers: &[("vary", VARY_PF)],
    },
    // The limits on what a preflight may ask for (`MAX_REQUEST_HEADER_NAMES`,
    // `MAX_REQUEST_HEADERS_LEN`): at each, and one past it.
    Case {
        name: "preflight-most-request-header-names",
        policy: PUBLIC,
        method: "OPTIONS",
        request: &[
            ("origin", "https://anyone.example"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", MOST_NAMES),
        ],
        outcome: Outcome::Allowed,
        status: Some(204),
        headers: &[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "PUT"),
            ("access-control-allow-headers", MOST_NAMES),
            ("vary", VARY_PF),
        ],
    },
    Case {
        name: "preflight-one-request-header-name-too-many",
        policy: PUBLIC,
        method: "OPTIONS",
        request: &[
            ("origin", "https://anyone.example"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", NAMES_PAST_THE_LIMIT),
        ],
        outcome: Outcome::Rejected(RejectionReason::TooManyRequestHeaders),
        status: Some(403),
        headers: &[("vary", VARY_PF)],
    },
    Case {
        name: "preflight-longest-request-header-list",
        policy: PUBLIC,
        method: "OPTIONS",
        request: &[
            ("origin", "https://anyone.example"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", LONGEST_LIST),
        ],
        outcome: Outcome::Allowed,
        status: Some(204),
        headers: &[
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "PUT"),
            ("access-control-allow-headers", LONGEST_LIST),
            ("vary", VARY_PF),
        ],
    },
    Case {
        name: "preflight-request-header-list-one-byte-too-long",
        policy: PUBLIC,
        method: "OPTIONS",
        request: &[
            ("origin", "https://anyone.example"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", LIST_PAST_THE_LENGTH),
        ],
        outcome: Outcome::Rejected(RejectionReason::TooManyRequestHeaders),
        status: Some(403),
        headers: &[("vary", VARY_PF)],
    },
];

/// One fuzz seed made from the table: the cargo-fuzz target it is for (a folder
/// of `fuzz/seeds/`), its file name (the case's) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// The target: `origin` or `request_headers`.
    pub target: &'static str,
    /// The file name: the name of the case it comes from.
    pub name: &'static str,
    /// The input, in the target's format.
    pub bytes: Vec<u8>,
}

/// The table as fuzz seeds, so that fuzzing starts from every request the table
/// holds: each case's `Origin` for the `origin` target, and each preflight as
/// `origin \n method \n header list` for `request_headers`. Cases without the
/// request parts a target reads give it no seed; identical inputs are kept once.
///
/// `cargo run -p corsgate-cases --example fuzz_seeds` writes them to
/// `fuzz/seeds/`; a test keeps the files equal to this.
pub fn fuzz_seeds() -> Vec<Seed> {
    let mut seeds: Vec<Seed> = Vec::new();
    let mut push = |target: &'static str, name: &'static str, bytes: Vec<u8>| {
        if !seeds.iter().any(|s| s.target == target && s.bytes == bytes) {
            seeds.push(Seed {
                target,
                name,
                bytes,
            });
        }
    };
    for case in CASES {
        let values = |wanted: &str| -> Vec<&str> {
            case.request
                .iter()
                .filter(|(name, _)| name.eq_ignore_ascii_case(wanted))
                .map(|(_, value)| *value)
                .collect()
        };
        let origins = values("origin");
        let Some(origin) = origins.first() else {
            continue;
        };
        push("origin", case.name, origin.as_bytes().to_vec());
        let methods = values("access-control-request-method");
        if let Some(method) = methods.first() {
            let list = values("access-control-request-headers").join(",");
            push(
                "request_headers",
                case.name,
                format!("{origin}\n{method}\n{list}").into_bytes(),
            );
        }
    }
    seeds
}

/// Looks a case up by name.
pub fn case(name: &str) -> &'static Case {
    CASES
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case named {name}"))
}
