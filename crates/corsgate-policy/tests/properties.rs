//! Properties of the parsers: they never panic, a pattern prints back to itself,
//! and matching agrees with the one-pattern reference matcher.

use corsgate_policy::{CorsConfig, OriginPattern, Policy};
use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?"
}

fn host() -> impl Strategy<Value = String> {
    prop::collection::vec(label(), 1..4).prop_map(|labels| labels.join("."))
}

fn scheme() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("https".to_owned()),
        Just("http".to_owned()),
        "[a-z][a-z0-9+.-]{0,8}"
    ]
}

fn port() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(":*".to_owned()),
        (1u16..=65535).prop_map(|p| format!(":{p}"))
    ]
}

/// The Fetch standard's bad ports above 1023 (every one below is on the list
/// or never an issue here: skipped).
const BLOCKED_HIGH_PORTS: &[u16] = &[
    1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669,
    6679, 6697, 10080,
];

/// Well-formed patterns, in canonical form.
fn pattern() -> impl Strategy<Value = String> {
    (scheme(), any::<bool>(), host(), port()).prop_filter_map(
        "default port",
        |(scheme, sub, host, port)| {
            let default = match scheme.as_str() {
                "http" | "ws" => ":80",
                "https" | "wss" => ":443",
                "ftp" => ":21",
                _ => "",
            };
            if !default.is_empty() && port == default {
                return None;
            }
            if sub
                && host
                    .split('.')
                    .all(|l| l.bytes().all(|b| b.is_ascii_digit()))
            {
                return None;
            }
            // What the URL standard rewrites or rejects (a last label that is a
            // number, `xn--` labels) and ports Fetch blocks are refused: see
            // `origins_browsers_send.rs`.
            if matches!(scheme.as_str(), "http" | "https" | "ws" | "wss" | "ftp") {
                let last = host.rsplit('.').next().unwrap_or_default();
                if last.bytes().all(|b| b.is_ascii_digit())
                    || last.starts_with("0x")
                    || host.split('.').any(|l| l.starts_with("xn--"))
                {
                    return None;
                }
                let blocked = port
                    .strip_prefix(':')
                    .and_then(|p| p.parse::<u16>().ok())
                    .is_some_and(|p| p < 1024 || BLOCKED_HIGH_PORTS.contains(&p));
                if blocked && scheme != "ftp" {
                    return None;
                }
            }
            Some(format!(
                "{scheme}://{}{host}{port}",
                if sub { "*." } else { "" }
            ))
        },
    )
}

/// Request origins, well-formed or not.
fn request_origin() -> impl Strategy<Value = String> {
    prop_oneof![
        (scheme(), host(), port())
            .prop_map(|(s, h, p)| format!("{s}://{h}{}", p.replace(":*", ""))),
        (scheme(), label(), host()).prop_map(|(s, l, h)| format!("{s}://{l}.{h}")),
        ".{0,64}",
        prop::collection::vec(any::<u8>(), 0..80)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn pattern_parser_never_panics(input in ".{0,200}") {
        let _ = input.parse::<OriginPattern>();
    }

    #[test]
    fn canonical_patterns_print_back_to_themselves(input in pattern()) {
        let parsed: OriginPattern = input.parse().map_err(|e| TestCaseError::fail(format!("{input}: {e}")))?;
        prop_assert_eq!(parsed.to_string(), input);
    }

    #[test]
    fn suggestions_are_themselves_valid(input in ".{0,80}") {
        if let Err(err) = input.parse::<OriginPattern>() {
            if let Some(fix) = err.suggestion() {
                let fixed: Result<OriginPattern, _> = fix.parse();
                prop_assert!(fixed.is_ok(), "suggestion {fix:?} for {input:?} is itself refused");
                prop_assert_eq!(fixed.unwrap().to_string(), fix);
            }
        }
    }

    #[test]
    fn indexed_matching_agrees_with_the_reference(patterns in prop::collection::vec(pattern(), 1..12), origin in request_origin()) {
        let config = CorsConfig::new().allow_origins(patterns.clone()).dangerously_allow_public_suffix_wildcards_for_tests();
        let policy = Policy::compile(&config).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let Ok(value) = HeaderValue::from_str(&origin) else { return Ok(()) };
        let reference = patterns.iter().any(|p| p.parse::<OriginPattern>().unwrap().matches(&origin));
        prop_assert_eq!(policy.check_origin(&value).is_ok(), reference, "origin {:?} patterns {:?}", origin, patterns);
    }

    #[test]
    fn decide_never_panics_on_hostile_heads(
        origin in prop::collection::vec(any::<u8>(), 0..300),
        method in prop::collection::vec(any::<u8>(), 0..20),
        acrh in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let policy = Policy::compile(&toml::from_str::<CorsConfig>(corsgate_cases::SPA).unwrap()).unwrap();
        let mut headers = HeaderMap::new();
        for (name, value) in [("origin", origin), ("access-control-request-method", method), ("access-control-request-headers", acrh)] {
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                headers.insert(name, value);
            }
        }
        let decision = policy.decide(&Method::OPTIONS, &headers);
        let mut out = HeaderMap::new();
        decision.apply(&mut out);
        // An allowed preflight echoes exactly the request's origin.
        if decision.is_allowed() {
            prop_assert_eq!(out.get("access-control-allow-origin"), headers.get("origin"));
        }
    }
}

trait ForTests {
    fn dangerously_allow_public_suffix_wildcards_for_tests(self) -> Self;
}

impl ForTests for CorsConfig {
    fn dangerously_allow_public_suffix_wildcards_for_tests(mut self) -> Self {
        // Random hosts land on public suffixes; that check is tested elsewhere.
        self.dangerously_allow_public_suffix_wildcards = Some(true);
        self
    }
}
