//! Typed readers for the scalar keys of a table such as `[server]`: an
//! address, a duration, a bounded count, one of a few words. Each reads one
//! optional value into its setting, or reports a problem at `TABLE.KEY` with
//! the value and the fix and leaves the setting as it was; so one line per key
//! reads a whole table, and every problem of it is reported at once (the
//! file's line and column are added from the path by `load`).

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use corsgate_policy::{Diagnostic, DiagnosticKind};

use crate::canonical::{EscapedSlashes, PathCase};

/// A setting written as one of a few words.
pub(crate) trait Choice: Copy + 'static {
    /// Every value, in the order the fix lists them.
    const ALL: &'static [Self];
    /// The value as written in the file.
    fn as_str(self) -> &'static str;
}

impl Choice for EscapedSlashes {
    const ALL: &'static [Self] = &[EscapedSlashes::Reject, EscapedSlashes::Keep];
    fn as_str(self) -> &'static str {
        EscapedSlashes::as_str(self)
    }
}

impl Choice for PathCase {
    const ALL: &'static [Self] = &[PathCase::Sensitive, PathCase::Insensitive];
    fn as_str(self) -> &'static str {
        PathCase::as_str(self)
    }
}

/// Reads the keys of one table, collecting its problems.
pub(crate) struct Reader<'d> {
    table: &'static str,
    diagnostics: &'d mut Vec<Diagnostic>,
}

impl<'d> Reader<'d> {
    /// A reader of `table` (`"server"`), whose problems go to `diagnostics`.
    pub(crate) fn new(table: &'static str, diagnostics: &'d mut Vec<Diagnostic>) -> Self {
        Reader { table, diagnostics }
    }

    fn refuse(&mut self, key: &str, value: impl Into<String>, fix: impl Into<String>) {
        self.diagnostics.push(
            Diagnostic::error(
                DiagnosticKind::File,
                format!("{}.{key}", self.table),
                fix.into(),
            )
            .with_value(value),
        );
    }

    /// `IP:port`. An address is never a host name: the gateway binds it
    /// before any resolver could be asked.
    pub(crate) fn address(&mut self, key: &str, value: &Option<String>) -> Option<SocketAddr> {
        let text = value.as_ref()?;
        let parsed = text.parse::<SocketAddr>().ok();
        if parsed.is_none() {
            self.refuse(
                key,
                text,
                "an address is IP:port, such as \"127.0.0.1:8080\" or \"[::1]:8080\"",
            );
        }
        parsed
    }

    /// A duration more than zero (`"500ms"`, `"5s"`, `"2m"`): a zero timeout
    /// would cut every request, never what was meant.
    pub(crate) fn duration(&mut self, key: &str, value: &Option<String>, into: &mut Duration) {
        let Some(text) = value else { return };
        match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => *into = d,
            _ => self.refuse(
                key,
                text,
                "a duration such as \"500ms\", \"5s\" or \"2m\", more than zero",
            ),
        }
    }

    /// A whole number within `range`, stored as `T` (every value of `range`
    /// fits `T`; one that would not is refused the same way).
    pub(crate) fn count<T: TryFrom<i64>>(
        &mut self,
        key: &str,
        value: Option<i64>,
        range: RangeInclusive<i64>,
        into: &mut T,
    ) {
        let Some(v) = value else { return };
        match T::try_from(v) {
            Ok(n) if range.contains(&v) => *into = n,
            _ => self.refuse(
                key,
                v.to_string(),
                format!("a number from {} to {}", range.start(), range.end()),
            ),
        }
    }

    /// A count where `0` means no limit.
    pub(crate) fn limit(&mut self, key: &str, value: Option<i64>, into: &mut Option<u64>) {
        let mut n = into.unwrap_or(0);
        self.count(key, value, 0..=i64::MAX, &mut n);
        *into = (n > 0).then_some(n);
    }

    /// One of `T::ALL`, as written.
    pub(crate) fn choice<T: Choice>(&mut self, key: &str, value: &Option<String>, into: &mut T) {
        let Some(text) = value else { return };
        match T::ALL.iter().find(|c| c.as_str() == text) {
            Some(found) => *into = *found,
            None => {
                let words: Vec<&str> = T::ALL.iter().map(|c| c.as_str()).collect();
                self.refuse(key, text, format!("one of {}", words.join(", ")));
            }
        }
    }

    /// `true` or `false`: serde has refused anything else at `_key` already,
    /// the key is named for the table's sake.
    pub(crate) fn flag(&mut self, _key: &str, value: Option<bool>, into: &mut bool) {
        if let Some(yes) = value {
            *into = yes;
        }
    }
}

#[cfg(test)]
mod tests {
    /// One wrong value of each kind, and one at each bound: every problem is
    /// reported at once, at its line and column, with `server.KEY`, the value
    /// and the fix; the values at the bounds load.
    #[test]
    fn every_kind_of_server_value_is_refused_at_once_with_its_place_and_fix() {
        let file = r#"
[server]
listen = "localhost:8080"
connect_timeout = "0s"
idle_timeout = 30
max_header_bytes = 4095
max_connections = 1048577
max_body_bytes = -1
escaped_slashes = "decode"
max_concurrent_streams = 100000
max_idle_per_upstream = 0

[[route]]
path = "/"
upstream = "http://127.0.0.1:9000"
"#;
        let checked = crate::check(file);
        let lines: Vec<String> = checked
            .problems
            .iter()
            .filter(|p| p.diagnostic.is_error())
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            lines,
            [
                r#"3:10: server.listen: error: "localhost:8080": an address is IP:port, such as "127.0.0.1:8080" or "[::1]:8080""#,
                r#"4:19: server.connect_timeout: error: "0s": a duration such as "500ms", "5s" or "2m", more than zero"#,
                r#"5:16: server.idle_timeout: error: "30": a duration is a string with its unit; write "30s" for 30 seconds"#,
                r#"6:20: server.max_header_bytes: error: "4095": a number from 4096 to 16777216"#,
                r#"7:19: server.max_connections: error: "1048577": a number from 1 to 1048576"#,
                r#"8:18: server.max_body_bytes: error: "-1": a number from 0 to 9223372036854775807"#,
                r#"9:19: server.escaped_slashes: error: "decode": one of reject, keep"#,
            ],
        );
        assert!(checked.gateway.is_none());

        let at_bounds = file
            .replace(r#"listen = "localhost:8080""#, r#"listen = "[::1]:8080""#)
            .replace(r#""0s""#, r#""1ms""#)
            .replace("idle_timeout = 30", r#"idle_timeout = "30s""#)
            .replace("4095", "4096")
            .replace("1048577", "1048576")
            .replace("-1", "0")
            .replace(r#""decode""#, r#""keep""#);
        let checked = crate::check(&at_bounds);
        assert!(!checked.has_errors(), "{:?}", checked.problems);
        let s = checked.gateway.expect("loads").settings;
        assert_eq!(s.listen, "[::1]:8080".parse().unwrap());
        assert_eq!(s.connect_timeout, std::time::Duration::from_millis(1));
        assert_eq!(s.max_header_bytes, 4096);
        assert_eq!(s.max_connections, 1 << 20);
        assert_eq!(s.max_body_bytes, None);
        assert_eq!(s.max_concurrent_streams, 100_000);
        assert_eq!(s.max_idle_per_upstream, 0);
        assert_eq!(
            s.path_rules.escaped_slashes,
            crate::canonical::EscapedSlashes::Keep
        );
    }
}
