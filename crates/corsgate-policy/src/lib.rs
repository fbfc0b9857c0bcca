//! The corsgate CORS engine: configuration → compiled [`Policy`] → per-request
//! [`Decision`].
//!
//! Pure and synchronous: no async runtime, no server, no logging. The gateway and
//! the tower layer apply the decisions; tools read them.
//!
//! ```
//! use corsgate_policy::{CorsConfig, Policy, RequestClass};
//! use http::{HeaderMap, Method};
//!
//! let config: CorsConfig = toml::from_str(r#"
//!     allow_origins = ["https://app.example.com"]
//!     allow_credentials = true
//!     expose_headers = ["x-request-id"]
//! "#).unwrap();
//! let policy = Policy::compile(&config).unwrap();
//!
//! let mut request = HeaderMap::new();
//! request.insert("origin", "https://app.example.com".parse().unwrap());
//! let decision = policy.decide(&Method::GET, &request);
//! assert_eq!(decision.class(), RequestClass::Actual);
//!
//! let mut response = HeaderMap::new();
//! decision.apply(&mut response);
//! assert_eq!(response["access-control-allow-origin"], "https://app.example.com");
//! assert_eq!(response["access-control-allow-credentials"], "true");
//! assert_eq!(response["vary"], "Origin");
//! ```
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
#![warn(missing_docs, missing_debug_implementations)]

mod apply;
mod classify;
mod client_origins;
mod config;
mod decide;
mod decision;
mod diagnostic;
// The Fetch standard's tables, for the tools of the `corsgate` binary; not part
// of the engine's documented interface (they take `&str`, and one allocates).
#[doc(hidden)]
pub mod fetch;
mod matcher;
mod origin;
mod policy;
mod template;
mod vary;

pub use apply::is_access_control_header;
pub use classify::{RequestClass, classify};
pub use client_origins::{
    ClientIdentity, ClientOrigins, ClientRules, ClientsConfig, IdentifySource, PreflightRule,
    UnidentifiedRule,
};
pub use config::{CorsConfig, List, OnDisallowed};
pub use decision::{
    Decision, MAX_REQUEST_HEADER_NAMES, MAX_REQUEST_HEADERS_LEN, REASON_HEADER, Rejection,
    RejectionReason,
};
pub use diagnostic::{CompileError, Diagnostic, DiagnosticKind, Severity};
pub use origin::{OriginPattern, PatternError, PatternErrorKind};
pub use policy::{ConfigLayer, MAX_AGE_CHROMIUM, MAX_AGE_LIMIT, Policy};
