//! The check of `Access-Control-Request-Headers` agrees with the plain reading of
//! the grammar and of the policy, over random policies and random lists.
//!
//! `decide` reads a list in one pass, eight bytes at a time where it can, and
//! reads long names differently under `allow_headers = "*"` than under a list of
//! names: the reference below splits at commas, trims, and checks each name on
//! its own, the way the Fetch standard and RFC 9110 §5.6.1 describe it. Any
//! disagreement, in the verdict, the reason or the name blamed, fails.

use corsgate_policy::{
    CorsConfig, MAX_REQUEST_HEADER_NAMES, MAX_REQUEST_HEADERS_LEN, Policy, RejectionReason,
};
use http::{HeaderMap, HeaderValue, Method};
use proptest::prelude::*;

/// What the reference decides about one list.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Allowed; the number of names.
    Allowed(usize),
    /// Refused, with the name blamed when the reason names one.
    Refused(RejectionReason, Option<String>),
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The plain reading: too long, then each element in turn (empty ones
/// skipped): one past the limit of names, not a token, not allowed.
fn reference(list: &[u8], allowed: &[String], any: bool) -> Verdict {
    if list.len() > MAX_REQUEST_HEADERS_LEN {
        return Verdict::Refused(RejectionReason::TooManyRequestHeaders, None);
    }
    let mut count = 0;
    for element in list.split(|b| *b == b',') {
        let name = element.trim_ascii_start();
        let name = name
            .iter()
            .rposition(|b| !matches!(b, b' ' | b'\t'))
            .map_or(&name[..0], |last| &name[..=last]);
        let name = if name.iter().all(|b| matches!(b, b' ' | b'\t')) {
            &name[..0]
        } else {
            name
        };
        if name.is_empty() {
            continue;
        }
        let text = String::from_utf8_lossy(name).into_owned();
        if count == MAX_REQUEST_HEADER_NAMES {
            return Verdict::Refused(RejectionReason::TooManyRequestHeaders, None);
        }
        if !name.iter().all(|b| is_tchar(*b)) {
            return Verdict::Refused(RejectionReason::MalformedRequestHeaders, Some(text));
        }
        let listed = allowed
            .iter()
            .any(|a| a.as_bytes().eq_ignore_ascii_case(name));
        let covered = any && !name.eq_ignore_ascii_case(b"authorization");
        if !listed && !covered {
            return Verdict::Refused(RejectionReason::HeaderNotAllowed, Some(text));
        }
        count += 1;
    }
    Verdict::Allowed(count)
}

/// What `decide` says about the same list.
fn decided(policy: &Policy, list: &[u8]) -> Verdict {
    let mut headers = HeaderMap::new();
    headers.insert(
        "origin",
        HeaderValue::from_static("https://app.example.com"),
    );
    headers.insert(
        "access-control-request-method",
        HeaderValue::from_static("PUT"),
    );
    headers.insert(
        "access-control-request-headers",
        HeaderValue::from_bytes(list).expect("the generated lists are header values"),
    );
    let decision = policy.decide(&Method::OPTIONS, &headers);
    match decision.rejection() {
        None => {
            let echoed = decision.headers();
            let echoed = echoed.get("access-control-allow-headers");
            let count = list
                .split(|b| *b == b',')
                .filter(|e| !e.trim_ascii().is_empty())
                .count();
            // The list is echoed as it came, when it names anything.
            assert_eq!(
                echoed.map(HeaderValue::as_bytes),
                (count > 0).then_some(list),
                "{:?}",
                String::from_utf8_lossy(list)
            );
            Verdict::Allowed(count)
        }
        Some(rejection) => {
            let blamed = match rejection.reason() {
                RejectionReason::TooManyRequestHeaders => None,
                _ => rejection.culprit().map(str::to_owned),
            };
            Verdict::Refused(rejection.reason(), blamed)
        }
    }
}

/// Names a policy may list (none of them forbidden or a CORS response header:
/// each starts with `x`), short and long, some with the token bytes below `-`
/// that end no name.
fn policy_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "x[a-z0-9-]{0,6}",
        "x[a-z0-9-]{7,70}",
        "x[a-z0-9!#$%&'*+.^_`|~-]{0,20}",
        Just("authorization".to_owned()),
    ]
}

/// One element of a requested list: a listed name in any case, another name, or
/// something that is not a name, with whitespace around it.
fn element(listed: Vec<String>) -> impl Strategy<Value = Vec<u8>> {
    let listed_name = (0..listed.len().max(1), any::<u64>()).prop_map(move |(i, case)| {
        let name = listed.get(i).cloned().unwrap_or_else(|| "x".to_owned());
        name.bytes()
            .enumerate()
            .map(|(j, b)| {
                if case >> (j % 64) & 1 == 1 {
                    b.to_ascii_uppercase()
                } else {
                    b
                }
            })
            .collect::<Vec<u8>>()
    });
    let other_name = prop_oneof![
        "[a-z]{1,3}",
        "[A-Za-z0-9-]{4,12}",
        "[a-z0-9-]{8,80}",
        "[a-zA-Z0-9!#$%&'*+.^_`|~-]{1,20}",
        Just("Authorization".to_owned()),
    ]
    .prop_map(String::into_bytes);
    let not_a_name = prop_oneof![
        "[a-z]{0,9}[\"(),/:;<=>?@\\[\\]{}][a-z]{0,9}",
        "[a-z]{1,9} [a-z]{1,9}",
        Just("é".to_owned()),
    ]
    .prop_map(String::into_bytes);
    let name = prop_oneof![5 => listed_name, 4 => other_name, 1 => not_a_name];
    (name, "[ \t]{0,2}", "[ \t]{0,2}").prop_map(|(name, before, after)| {
        let mut element = before.into_bytes();
        element.extend_from_slice(&name);
        element.extend_from_slice(after.as_bytes());
        element
    })
}

/// A policy's names and `*`, and a list asked under it: up to 70 elements
/// (past the limit of names), joined by the separators browsers and others use.
fn case() -> impl Strategy<Value = (Vec<String>, bool, Vec<u8>)> {
    (prop::collection::vec(policy_name(), 0..24), any::<bool>()).prop_flat_map(|(names, any)| {
        let elements = prop::collection::vec(element(names.clone()), 0..70);
        let separators = prop::collection::vec(
            prop_oneof![Just(","), Just(", "), Just(",,"), Just(" ,")],
            70,
        );
        (Just(names), Just(any), elements, separators).prop_map(
            |(names, any, elements, separators)| {
                let mut list = Vec::new();
                for (i, element) in elements.iter().enumerate() {
                    if i > 0 {
                        list.extend_from_slice(separators[i].as_bytes());
                    }
                    list.extend_from_slice(element);
                }
                (names, any, list)
            },
        )
    })
}

fn compile(names: &[String], any: bool) -> Policy {
    let mut list: Vec<String> = Vec::new();
    for name in names {
        if !list.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            list.push(name.clone());
        }
    }
    if any {
        list.push("*".to_owned());
    }
    let config = CorsConfig::new()
        .allow_origins("https://app.example.com")
        .allow_methods("PUT")
        .allow_headers(list);
    Policy::compile(&config).expect("the generated policies compile")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn decide_reads_request_header_lists_as_the_plain_reading_does((names, any, list) in case()) {
        let policy = compile(&names, any);
        prop_assert_eq!(
            decided(&policy, &list),
            reference(&list, &names, any),
            "list {:?} under {:?} (any: {})",
            String::from_utf8_lossy(&list),
            names,
            any
        );
    }
}

#[test]
fn the_reference_sees_what_the_limits_and_the_grammar_say() {
    // The reference itself, on rows whose answers are known.
    let names = ["x-a".to_owned(), "authorization".to_owned()];
    assert_eq!(
        reference(b"X-A, ,authorization", &names, false),
        Verdict::Allowed(2)
    );
    assert_eq!(
        reference(b"x-a,x-b", &names, false),
        Verdict::Refused(RejectionReason::HeaderNotAllowed, Some("x-b".into()))
    );
    assert_eq!(
        reference(b"x-a,x-b", &names[..1], true),
        Verdict::Allowed(2)
    );
    assert_eq!(
        reference(b"authorization", &names[..1], true),
        Verdict::Refused(
            RejectionReason::HeaderNotAllowed,
            Some("authorization".into())
        )
    );
    assert_eq!(
        reference(b"x-a, x b", &names, true),
        Verdict::Refused(RejectionReason::MalformedRequestHeaders, Some("x b".into()))
    );
    let many = vec!["x-a"; MAX_REQUEST_HEADER_NAMES + 1].join(",");
    assert_eq!(
        reference(many.as_bytes(), &names, false),
        Verdict::Refused(RejectionReason::TooManyRequestHeaders, None)
    );
    let long = "x".repeat(MAX_REQUEST_HEADERS_LEN + 1);
    assert_eq!(
        reference(long.as_bytes(), &names, true),
        Verdict::Refused(RejectionReason::TooManyRequestHeaders, None)
    );
}
