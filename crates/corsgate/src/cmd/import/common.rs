//! Conversions every format shares, each leaving a note where the source cannot
//! be carried over exactly or was unsafe.

use std::collections::HashSet;

use corsgate_policy::OriginPattern;
use corsgate_policy::fetch;

use super::Note;
use super::draft::Policy;

/// Upstream written when the source does not say where the API is.
pub(crate) const PLACEHOLDER_UPSTREAM: &str = "http://127.0.0.1:9000";

/// Notes gathered during one import.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    pub(crate) list: Vec<Note>,
    /// The notes of `list`, to drop repeats in constant time (a file with
    /// 100 000 origins makes as many notes).
    seen: HashSet<(String, String)>,
}

impl Notes {
    pub(crate) fn add(&mut self, place: impl Into<String>, message: impl Into<String>) {
        let note = Note {
            place: place.into(),
            message: message.into(),
        };
        if self.seen.insert((note.place.clone(), note.message.clone())) {
            self.list.push(note);
        }
    }

    /// `allow_origins` from a list of origins as the source wrote them: `*`
    /// kept, others put in the canonical form browsers send (noted), duplicates
    /// dropped. Entries that are not origins at all are kept as written, so that
    /// `check` explains them.
    pub(crate) fn origins(&mut self, place: &str, items: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for item in items {
            let item = item.as_str();
            let value = if item == "*" {
                "*".to_owned()
            } else {
                match item.parse::<OriginPattern>() {
                    Ok(pattern) => pattern.to_string(),
                    Err(err) => match err.suggestion() {
                        Some(fix) => {
                            self.add(
                                place,
                                format!(
                                    "{item:?} is not an origin as browsers send it ({}): imported as {fix:?}",
                                    err.message()
                                ),
                            );
                            fix.to_owned()
                        }
                        None => item.to_owned(),
                    },
                }
            };
            if seen.insert(value.clone()) {
                out.push(value);
            } else {
                self.add(place, format!("{value:?} is listed twice: imported once"));
            }
        }
        if out.len() > 1 && out.iter().any(|o| o == "*") {
            self.add(
                place,
                "\"*\" allows every origin, so the other entries had no effect: imported as \"*\" alone",
            );
            out = vec!["*".to_owned()];
        }
        out
    }

    /// `allow_methods`: safelisted methods and `OPTIONS` dropped (noted), the
    /// rest kept. `None` when nothing is left.
    pub(crate) fn methods(
        &mut self,
        place: &str,
        items: &[String],
        uppercase: bool,
    ) -> Option<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut safelisted: Vec<String> = Vec::new();
        let mut options = false;
        for item in items {
            let name = if uppercase {
                item.to_ascii_uppercase()
            } else {
                item.clone()
            };
            if name == "*" {
                out.push(name);
            } else if fetch::is_safelisted_method(&name) {
                safelisted.push(name);
            } else if name == "OPTIONS" {
                options = true;
            } else if seen.insert(name.clone()) {
                out.push(name);
            }
        }
        if !safelisted.is_empty() {
            self.add(
                place,
                format!(
                    "{} always allowed (CORS-safelisted): not carried over",
                    if safelisted.len() == 1 {
                        format!("{} is", safelisted[0])
                    } else {
                        format!("{} are", safelisted.join(", "))
                    }
                ),
            );
        }
        if options {
            self.add(
                place,
                "`OPTIONS` in methods is redundant: it is the preflight's own method, which corsgate answers itself; not carried over",
            );
        }
        (!out.is_empty()).then_some(out)
    }

    /// `allow_headers`. `star_covers_authorization`: the source's `*` also let
    /// `Authorization` through (rs/cors echoes any requested header), which the
    /// Fetch standard's `*` never does, so `authorization` is added.
    pub(crate) fn headers(
        &mut self,
        place: &str,
        items: &[String],
        star_covers_authorization: bool,
    ) -> Option<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for item in items {
            if item != "*" && fetch::is_forbidden_request_header(item) {
                self.add(
                    place,
                    format!(
                        "{item:?} is a header browsers set themselves and never let a page send: not carried over"
                    ),
                );
                continue;
            }
            if seen.insert(item.to_ascii_lowercase()) {
                out.push(item.clone());
            }
        }
        let star = out.iter().any(|h| h == "*");
        let authorization = out.iter().any(|h| h.eq_ignore_ascii_case("authorization"));
        if star && star_covers_authorization && !authorization {
            self.add(
                place,
                "\"*\" let any requested header through, Authorization included; corsgate's \"*\" follows the Fetch standard and never covers Authorization: \"authorization\" added",
            );
            out.insert(0, "authorization".to_owned());
        }
        (!out.is_empty()).then_some(out)
    }

    /// `expose_headers`: safelisted response headers and `Set-Cookie` dropped.
    pub(crate) fn expose(
        &mut self,
        place: &str,
        items: &[String],
        noted: bool,
    ) -> Option<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for item in items {
            if item != "*" && fetch::is_safelisted_response_header(item) {
                if noted {
                    self.add(
                        place,
                        format!("{item:?} is always readable (CORS-safelisted): not carried over"),
                    );
                }
                continue;
            }
            if item != "*" && fetch::is_forbidden_response_header(item) {
                self.add(
                    place,
                    format!("{item:?}: browsers never let scripts read it: not carried over"),
                );
                continue;
            }
            if seen.insert(item.to_ascii_lowercase()) {
                out.push(item.clone());
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// `max_age`, within what corsgate accepts (0 to 86400).
    pub(crate) fn max_age(&mut self, place: &str, seconds: i64) -> Option<i64> {
        if seconds < 0 {
            self.add(
                place,
                format!("{seconds} is not a number of seconds: not carried over (browsers cache preflights 5 s)"),
            );
            return None;
        }
        if seconds > corsgate_policy::MAX_AGE_LIMIT {
            self.add(
                place,
                format!(
                    "{seconds} s is more than any browser honours (Firefox 86400, Chromium 7200): imported as 86400"
                ),
            );
            return Some(corsgate_policy::MAX_AGE_LIMIT);
        }
        Some(seconds)
    }

    /// `max_age` for a product's default of `seconds` that the file relies on.
    /// corsgate adds no default that `check` would then warn about: above
    /// Chromium's cap (7200 s) it is imported as 7200, which is what Chromium
    /// honoured anyway; only Firefox re-validates sooner.
    pub(crate) fn default_max_age(&mut self, place: &str, product: &str, seconds: i64) -> i64 {
        let cap = corsgate_policy::MAX_AGE_CHROMIUM;
        if seconds <= cap {
            return seconds;
        }
        self.add(
            place,
            format!(
                "not set: {product}'s default is {seconds} s; Chromium caches a preflight at most {cap} s and Firefox at most 86400 s, so imported as max_age = {cap} (the same for Chromium; Firefox asks again sooner)"
            ),
        );
        cap
    }

    /// The note for the pair corsgate refuses, when the policy has it.
    pub(crate) fn any_with_credentials(&mut self, place: &str, policy: &Policy, how: &str) {
        if policy.any_with_credentials() {
            self.add(
                place,
                format!(
                    "`*` with credentials: refused; listed origins needed. {how} corsgate never allows every origin with credentials: list the origins that need them in allow_origins, or set allow_credentials = false"
                ),
            );
        }
    }
}

/// A list of strings from a TOML value: an array of strings, or one string.
pub(crate) fn toml_strings(value: &toml::Value) -> Option<Vec<String>> {
    match value {
        toml::Value::String(s) => Some(vec![s.clone()]),
        toml::Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

/// `http://host:port` for an API listening on `address` and `port`: a
/// wildcard address is reached on loopback.
pub(crate) fn upstream_for(address: &str, port: i64) -> String {
    let host = match address {
        "" | "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
        other => other,
    };
    if host.contains(':') && !host.starts_with('[') {
        format!("http://[{host}]:{port}")
    } else {
        format!("http://{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exhaustion review's E8: notes and origins were deduplicated by
    /// linear search, 25 s for a file of 100 000 origins.
    #[test]
    fn notes_and_origins_of_100000_entries_take_linear_time() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut notes = Notes::default();
            let items: Vec<String> = (0..100_000)
                .map(|i| format!("https://APP{i}.example.com"))
                .collect();
            let origins = notes.origins("allowed_origins", &items);
            for i in 0..100_000 {
                notes.add(format!("line {i}"), "a note");
            }
            let _ = tx.send((origins.len(), notes.list.len()));
        });
        let (origins, notes) = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("did not finish in 60 s");
        assert_eq!(origins, 100_000);
        assert_eq!(notes, 200_000);
    }
}
