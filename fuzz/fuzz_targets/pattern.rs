//! Pattern parsing: never panics; an accepted pattern prints back to a string that
//! parses to the same pattern; a suggested fix is itself accepted.
#![no_main]

use corsgate_policy::OriginPattern;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    match input.parse::<OriginPattern>() {
        Ok(pattern) => {
            let printed = pattern.to_string();
            let again: OriginPattern = printed.parse().expect("printed pattern refused");
            assert_eq!(again, pattern);
            assert_eq!(printed, input, "accepted patterns are canonical");
        }
        Err(err) => {
            if let Some(fix) = err.suggestion() {
                assert!(fix.parse::<OriginPattern>().is_ok(), "suggestion {fix:?} refused");
            }
        }
    }
});
