//! The canonical request target and host (`corsgate_config::canonical`): never
//! panics; a canonical path is canonical again unchanged (idempotent), has no
//! empty, `.` or `..` segment and no lowercase escape; its match path has no
//! `;parameters`; a canonical authority parses back to itself.
#![no_main]

use corsgate_config::canonical::{
    EscapedSlashes, PathCase, PathRules, canonical_authority, canonical_path, match_path,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let path = format!("/{input}");
    for rules in [
        PathRules::default(),
        PathRules {
            escaped_slashes: EscapedSlashes::Keep,
            path_case: PathCase::Insensitive,
        },
    ] {
        let Ok(once) = canonical_path(&path, &rules) else {
            continue;
        };
        let twice = canonical_path(&once, &rules).expect("a canonical path is refused");
        assert_eq!(twice, once, "not idempotent");
        assert!(once.starts_with('/'));
        for segment in once[1..].split('/').rev().skip(1) {
            assert!(!matches!(segment, "" | "." | ".."), "{once:?}");
        }
        let bytes = once.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'%' {
                let hex = &bytes[i + 1..i + 3];
                assert!(hex.iter().all(|h| h.is_ascii_digit() || h.is_ascii_uppercase()));
            }
        }
        assert!(!match_path(&once, rules.path_case).contains(';'));
    }
    if let Some(authority) = canonical_authority(input) {
        let again = canonical_authority(&authority.authority).expect("canonical host refused");
        assert_eq!(again.authority, authority.authority);
        assert_eq!(again.host, authority.host);
    }
});
