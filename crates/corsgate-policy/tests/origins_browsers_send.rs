//! Origins that can never equal a browser's `Origin` are refused at compile time
//! (issue 17, "`check` refuses what can never work").
//!
//! A browser builds `Origin` from the page's URL as the URL standard parsed it: its
//! host parser rewrites some hosts (`1` is the IPv4 address `0.0.0.1`) and rejects
//! others (`foo.bar.255`, invalid punycode), and Fetch never loads a page from a
//! "bad port". An allowlist entry written any other way matches nothing, silently.
//! The rows come from a peer CORS library's own test tables and the URL standard's
//! host-parsing tests; `url::Url` (the WHATWG URL parser) is the oracle.

use corsgate_policy::{CorsConfig, DiagnosticKind, Policy};
use proptest::prelude::*;

/// The errors one `allow_origins` entry compiles to: (kind, message).
fn errors_for(origin: &str) -> Vec<(&'static str, String)> {
    match Policy::compile(&CorsConfig::new().allow_origins(origin)) {
        Ok(_) => Vec::new(),
        Err(err) => err
            .errors()
            .map(|d| (d.kind().as_str(), d.message().to_owned()))
            .collect(),
    }
}

/// What browsers would send for `origin`: the WHATWG serialization of its origin.
fn browser_origin(origin: &str) -> Option<String> {
    let url = url::Url::parse(origin).ok()?;
    Some(url.origin().ascii_serialization())
}

/// Entries the URL standard's host parser rewrites: refused, with what the
/// browser would send instead. IPv6 addresses keep the kind they had (not in
/// the shortest form), now with the URL standard's form as the fix.
const REWRITTEN: &[(&str, &str, &str)] = &[
    ("http://1:6060", "rewritten-host", "http://0.0.0.1:6060"),
    (
        "http://127.1:3999",
        "rewritten-host",
        "http://127.0.0.1:3999",
    ),
    ("http://127.1", "rewritten-host", "http://127.0.0.1"),
    ("http://0x7f.1", "rewritten-host", "http://127.0.0.1"),
    ("http://0x7f000001", "rewritten-host", "http://127.0.0.1"),
    ("http://2130706433", "rewritten-host", "http://127.0.0.1"),
    (
        "http://0177.0.0.1:8080",
        "rewritten-host",
        "http://127.0.0.1:8080",
    ),
    ("https://010.0.0.1", "rewritten-host", "https://8.0.0.1"),
    ("ws://1.1", "rewritten-host", "ws://1.0.0.1"),
    (
        "http://[::ffff:127.0.0.1]:8080",
        "non-canonical-origin",
        "http://[::ffff:7f00:1]:8080",
    ),
    (
        "http://[0:0:0:0:0:ffff:a00:1]",
        "non-canonical-origin",
        "http://[::ffff:a00:1]",
    ),
];

/// Entries whose host the URL standard rejects, or whose port Fetch blocks: no
/// page ever has such an origin, and no spelling fixes it.
const NEVER_SENT: &[(&str, &str)] = &[
    ("http://foo.bar.255", "invalid-host"),
    ("http://127.0.0.1.1", "invalid-host"),
    ("http://1.2.3.4.5", "invalid-host"),
    ("http://256.0.0.1", "invalid-host"),
    ("http://4294967296", "invalid-host"),
    ("http://0x100000000", "invalid-host"),
    ("http://example.0x1", "invalid-host"),
    ("http://xn--f", "invalid-host"),
    ("https://xn--a.example", "invalid-host"),
    ("https://*.foo.bar.255", "invalid-host"),
    ("https://*.xn--f", "invalid-host"),
    ("http://app.example:0", "bad-port"),
    ("http://app.example:1", "bad-port"),
    ("http://app.example:22", "bad-port"),
    ("https://app.example:25", "bad-port"),
    ("http://localhost:6000", "bad-port"),
    ("http://localhost:6667", "bad-port"),
    ("http://localhost:6697", "bad-port"),
    ("https://*.example.com:10080", "bad-port"),
    ("ws://app.example:4190", "bad-port"),
];

/// Entries refused before this change already, kept in the table so that the
/// URL standard's limits are all in one place: names over 253 bytes and labels
/// over 63.
fn too_long() -> Vec<String> {
    let label = "a".repeat(63);
    let long_name = [label.as_str(); 4].join("."); // 255 bytes
    vec![
        format!("https://{long_name}"),
        format!("https://{}.example", "a".repeat(64)),
        // A wildcard whose every match is over 253 bytes.
        format!("https://*.{}", &long_name[..252]),
    ]
}

/// Origins browsers do send: accepted as written.
const ACCEPTED: &[&str] = &[
    "http://[::1]:8080",
    "http://[2001:db8::1]",
    "https://xn--bcher-kva.example",
    "capacitor://localhost",
    "ionic://localhost",
    "http://10.0.2.2:8000",
    "https://a.b.example.com:8443",
    "http://localhost:*",
    "https://*.example.com",
    "https://*.example.com:*",
    "http://127.0.0.1:3000",
    "http://0.0.0.1:6060",
    "https://app.example:8443",
    "https://app.example:1024",
    "https://under_score.example",
    "https://1a.example",
    "https://example.1a",
    "https://*.xn--bcher-kva.example",
];

#[test]
fn hosts_the_url_parser_rewrites_are_refused_with_what_browsers_send() {
    for (input, want, sent) in REWRITTEN {
        // The oracle agrees on what a browser sends.
        assert_eq!(browser_origin(input).as_deref(), Some(*sent), "{input}");
        let errors = errors_for(input);
        let Some((kind, message)) = errors.first() else {
            panic!("{input:?} accepted, but browsers send {sent:?}");
        };
        assert_eq!(errors.len(), 1, "{input}: {errors:?}");
        assert_eq!(kind, want, "{input}: {message}");
        assert!(
            message.contains(&format!("use {sent:?}")),
            "{input}: the fix should be {sent:?}: {message}"
        );
        // The fix is itself accepted.
        assert!(errors_for(sent).is_empty(), "fix {sent} refused");
    }
}

#[test]
fn hosts_the_url_parser_rejects_and_bad_ports_are_refused() {
    for (input, want) in NEVER_SENT {
        let errors = errors_for(input);
        let Some((kind, message)) = errors.first() else {
            panic!("{input:?} accepted, but no browser ever sends it");
        };
        assert_eq!(errors.len(), 1, "{input}: {errors:?}");
        assert_eq!(kind, want, "{input}: {message}");
        if *want == "bad-port" {
            assert!(message.contains("Fetch"), "{input}: {message}");
        } else if !input.contains('*') {
            // The oracle agrees: the URL standard rejects the host.
            assert_eq!(browser_origin(input), None, "{input}");
        }
    }
}

#[test]
fn names_and_labels_over_the_dns_limits_are_refused() {
    for input in too_long() {
        let errors = errors_for(&input);
        let Some((kind, _)) = errors.first() else {
            panic!("{input:?} accepted");
        };
        assert_eq!(*kind, "invalid-origin", "{input}");
    }
}

#[test]
fn origins_browsers_send_stay_accepted() {
    for input in ACCEPTED {
        assert_eq!(errors_for(input), Vec::new(), "{input}");
        if let Some(sent) = browser_origin(input)
            && ["http", "https", "ws", "wss"]
                .iter()
                .any(|s| input.starts_with(&format!("{s}://")))
            && !input.contains('*')
        {
            assert_eq!(&sent, input, "the oracle disagrees");
        }
    }
}

#[test]
fn the_existing_diagnostics_keep_their_wording() {
    for (input, kind, message) in [
        (
            "https://app.example.com/",
            DiagnosticKind::InvalidOrigin,
            "not an origin: an origin has no path, not even a trailing slash; use \"https://app.example.com\"",
        ),
        (
            "https://App.Example.com",
            DiagnosticKind::NonCanonicalOrigin,
            "not an origin: browsers send origins in lowercase; use \"https://app.example.com\"",
        ),
        (
            "https://app.example.com:443",
            DiagnosticKind::NonCanonicalOrigin,
            "not an origin: browsers omit the default port of the scheme from the origin; use \"https://app.example.com\"",
        ),
        (
            "https://*.127.0.0.1",
            DiagnosticKind::MalformedWildcard,
            "not an origin: a subdomain wildcard cannot apply to an IP address; the forms are \"https://app.example.com\", \"https://*.example.com\", \"http://localhost:*\" and \"*\"",
        ),
    ] {
        let errors = errors_for(input);
        assert_eq!(errors, vec![(kind.as_str(), message.to_owned())], "{input}");
    }
    // A rewritten host in an entry with another problem: the existing message,
    // with the fix browsers really send.
    assert_eq!(
        errors_for("http://127.1:80/"),
        vec![(
            "invalid-origin",
            "not an origin: an origin has no path, not even a trailing slash; use \"http://127.0.0.1\""
                .to_owned()
        )]
    );
}

#[test]
fn expose_headers_refuses_request_only_and_cors_response_names() {
    for (name, kind, fix) in [
        ("Origin", "request-header-in-expose-headers", "remove it"),
        (
            "Access-Control-Request-Method",
            "request-header-in-expose-headers",
            "allow_methods",
        ),
        (
            "access-control-request-headers",
            "request-header-in-expose-headers",
            "allow_headers",
        ),
        (
            "Access-Control-Request-Private-Network",
            "request-header-in-expose-headers",
            "allow_private_network",
        ),
        (
            "Access-Control-Allow-Origin",
            "cors-header-in-expose-headers",
            "allow_origins",
        ),
        (
            "Access-Control-Allow-Credentials",
            "cors-header-in-expose-headers",
            "allow_credentials",
        ),
        (
            "Access-Control-Allow-Methods",
            "cors-header-in-expose-headers",
            "allow_methods",
        ),
        (
            "ACCESS-CONTROL-ALLOW-HEADERS",
            "cors-header-in-expose-headers",
            "allow_headers",
        ),
        (
            "Access-Control-Allow-Private-Network",
            "cors-header-in-expose-headers",
            "allow_private_network",
        ),
        (
            "Access-Control-Expose-Headers",
            "cors-header-in-expose-headers",
            "expose_headers",
        ),
        (
            "Access-Control-Max-Age",
            "cors-header-in-expose-headers",
            "max_age",
        ),
    ] {
        let errors = match Policy::compile(
            &CorsConfig::new()
                .allow_origins("https://app.example")
                .expose_headers(name),
        ) {
            Ok(_) => panic!("{name} accepted in expose_headers"),
            Err(err) => err
                .errors()
                .map(|d| (d.kind().as_str(), d.message().to_owned()))
                .collect::<Vec<_>>(),
        };
        assert_eq!(errors.len(), 1, "{name}: {errors:?}");
        let (got, message) = &errors[0];
        assert_eq!(*got, kind, "{name}: {message}");
        assert!(message.contains(fix), "{name}: {message}");
    }
    // Names of the upstream's own stay accepted, lookalikes included.
    assert!(
        Policy::compile(
            &CorsConfig::new()
                .allow_origins("https://app.example")
                .expose_headers(["x-request-id", "x-origin", "access-control-x", "etag"])
        )
        .is_ok()
    );
}

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}[a-z0-9]",
        "[0-9]{1,4}",
        "0x[0-9a-f]{1,3}",
        "xn--[a-z0-9-]{1,8}",
        "[a-z0-9_]{1,4}",
    ]
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(label(), 1..5).prop_map(|labels| labels.join(".")),
        1 => prop::collection::vec(0u32..300, 1..6).prop_map(|parts| {
            parts.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
        }),
        1 => any::<[u16; 8]>().prop_map(|ip| format!("[{}]", std::net::Ipv6Addr::from(ip))),
        1 => "\\[::ffff:[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\]",
    ]
}

fn origin() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["http", "https", "ws", "wss"]),
        host(),
        prop_oneof![
            Just(None),
            (0u16..=65535).prop_map(Some),
            (0u16..130).prop_map(Some)
        ],
    )
        .prop_map(|(scheme, host, port)| match port {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Whatever `check` accepts is exactly what a browser sends.
    #[test]
    fn every_accepted_origin_is_its_own_browser_serialization(origin in origin()) {
        if errors_for(&origin).is_empty() {
            prop_assert_eq!(browser_origin(&origin), Some(origin.clone()));
        }
    }

    /// And every refusal that names a fix names what the browser sends.
    #[test]
    fn every_suggested_fix_is_what_browsers_send(origin in origin()) {
        for (kind, message) in errors_for(&origin) {
            if let Some((_, fix)) = message.split_once("; use \"") {
                let fix = fix.split('"').next().unwrap_or_default();
                let sent = browser_origin(&origin);
                prop_assert_eq!(sent.as_deref(), Some(fix), "{} {}", kind, message);
            }
        }
    }
}
