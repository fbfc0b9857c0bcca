//! A suggested fix is always a pattern corsgate accepts (found by the `pattern`
//! fuzz target: the punycode form of a host with `=` in it was suggested, and
//! then refused).

use corsgate_policy::OriginPattern;

#[test]
fn an_internationalized_host_with_a_character_hosts_cannot_have_gets_no_refused_fix() {
    for input in [
        "https://*.exam=le\u{1cf}",
        "https://b\u{fc}cher=.example",
        // A port that is not ASCII either: the fix would not be one.
        "https://b\u{fc}cher.example:8\u{e9}",
    ] {
        let err = input.parse::<OriginPattern>().unwrap_err();
        if let Some(fix) = err.suggestion() {
            assert!(
                fix.parse::<OriginPattern>().is_ok(),
                "{input}: suggested {fix:?}, which is refused"
            );
        }
    }
    // The usual case keeps its fix.
    let err = "https://b\u{fc}cher.example"
        .parse::<OriginPattern>()
        .unwrap_err();
    assert_eq!(err.suggestion(), Some("https://xn--bcher-kva.example"));
}
