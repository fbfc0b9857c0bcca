//! The shared case table against the engine alone.

use corsgate_cases::{CASES, Outcome};
use corsgate_policy::RequestClass;
use http::HeaderMap;

#[test]
fn every_case_decides_as_the_table_says() {
    let mut failures = Vec::new();
    for case in CASES {
        let policy = case.compile();
        let decision = policy.decide(&case.method(), &case.request_headers());
        let outcome = match (decision.class(), decision.rejection()) {
            (RequestClass::NotCors, _) => Outcome::NotCors,
            (_, None) => Outcome::Allowed,
            (_, Some(rejection)) => Outcome::Rejected(rejection.reason().as_str()),
        };
        if outcome != case.outcome {
            failures.push(format!(
                "case {}: outcome {outcome:?}, expected {:?}",
                case.name, case.outcome
            ));
        }
        if outcome == Outcome::Allowed && !decision.is_allowed() {
            failures.push(format!("case {}: is_allowed() is false", case.name));
        }
        let status = decision.response_status().map(|s| s.as_u16());
        if status != case.status {
            failures.push(format!(
                "case {}: status {status:?}, expected {:?}",
                case.name, case.status
            ));
        }
        let mut headers = HeaderMap::new();
        decision.apply(&mut headers);
        if let Err(problem) = case.check_headers(&headers) {
            failures.push(problem);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
