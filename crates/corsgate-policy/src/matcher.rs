//! The compiled origin index: allowlist look-ups cost the same with one pattern or
//! thousands, because they are hash look-ups by host, never a scan of the list
//! (a handful of exact origins are compared one by one, which is cheaper than
//! hashing).
//!
//! The tables hash with foldhash, several times faster than the standard library's
//! SipHash on short keys. Its seed is random per table, but the tables would be
//! safe from flooding even unseeded: they are built from the configuration only,
//! and a request's origin is only ever looked up, never inserted, so an attacker
//! cannot make keys collide in them. A look-up costs at most the probe sequence
//! the configuration's own keys made.

use std::collections::{HashMap, HashSet};

use foldhash::fast::RandomState;

use crate::origin::{
    OriginPattern, OriginSyntax, PatternKind, PortRule, RequestOrigin, parse_request_origin,
};

/// The result of matching a request's `Origin` against a policy's allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OriginMatch {
    Allowed,
    NotAllowed,
    Null,
    Malformed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    scheme: Box<[u8]>,
    port: PortRule,
}

/// Up to this many exact origins, a look-up compares them one by one.
const SMALL: usize = 8;

/// Exact origins, by their whole serialization.
#[derive(Debug, Clone)]
enum Exact {
    /// At most [`SMALL`]: compared one by one (lengths first, so most cost a
    /// single comparison).
    Few(Vec<Box<[u8]>>),
    /// More: hashed.
    Many(HashSet<Box<[u8]>, RandomState>),
}

impl Default for Exact {
    fn default() -> Self {
        Exact::Few(Vec::new())
    }
}

impl Exact {
    fn insert(&mut self, origin: Box<[u8]>) {
        match self {
            Exact::Few(list) => {
                if list.contains(&origin) {
                    return;
                }
                list.push(origin);
                if list.len() > SMALL {
                    *self = Exact::Many(list.drain(..).collect());
                }
            }
            Exact::Many(set) => {
                set.insert(origin);
            }
        }
    }

    #[inline(always)]
    fn contains(&self, origin: &[u8]) -> bool {
        match self {
            Exact::Few(list) => list.iter().any(|e| **e == *origin),
            Exact::Many(set) => set.contains(origin),
        }
    }
}

/// Exact origins and patterns, indexed by host.
#[derive(Debug, Default, Clone)]
pub(crate) struct OriginSet {
    any: bool,
    null: bool,
    exact: Exact,
    /// `scheme://host:*` patterns, by host.
    any_port: HashMap<Box<[u8]>, Vec<Entry>, RandomState>,
    /// `scheme://*.suffix[:port]` patterns, by suffix.
    subdomains: HashMap<Box<[u8]>, Vec<Entry>, RandomState>,
    /// Longest suffix in `subdomains`: longer candidates are not looked up.
    longest_suffix: usize,
    len: usize,
}

impl OriginSet {
    pub(crate) fn insert(&mut self, pattern: &OriginPattern) {
        self.len += 1;
        match pattern.kind() {
            PatternKind::Any => self.any = true,
            PatternKind::Null => self.null = true,
            PatternKind::Host {
                scheme,
                host,
                subdomains: false,
                port: PortRule::Any,
            } => {
                push_entry(&mut self.any_port, host, scheme, PortRule::Any);
            }
            PatternKind::Host {
                subdomains: false, ..
            } => {
                self.exact
                    .insert(pattern.to_string().into_bytes().into_boxed_slice());
            }
            PatternKind::Host {
                scheme,
                host,
                subdomains: true,
                port,
            } => {
                self.longest_suffix = self.longest_suffix.max(host.len());
                push_entry(&mut self.subdomains, host, scheme, *port);
            }
        }
    }

    pub(crate) fn is_any(&self) -> bool {
        self.any
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether an exact entry is this origin, byte for byte: a hit needs no
    /// grammar check (entries are canonical), so it is the cheap first look.
    pub(crate) fn contains_exact(&self, origin: &[u8]) -> bool {
        self.exact.contains(origin)
    }

    /// Whether anything besides exact entries (and `*`) can match: without,
    /// a miss of [`contains_exact`](Self::contains_exact) is a refusal.
    pub(crate) fn has_patterns(&self) -> bool {
        self.null || !self.any_port.is_empty() || !self.subdomains.is_empty()
    }

    /// Matches a request's `Origin` value, byte for byte.
    // Inlined into `decide`: the usual origin is an exact hit, decided here
    // without a call; the rest is read by `find_parsed`.
    #[inline(always)]
    pub(crate) fn find(&self, origin: &[u8]) -> OriginMatch {
        // `*` allows every value, well-formed or not: a policy that allows every
        // origin answers them all alike (see `Policy::decide`).
        if self.any {
            return OriginMatch::Allowed;
        }
        // Exact entries are canonical, so a hit needs no grammar check.
        if self.exact.contains(origin) {
            return OriginMatch::Allowed;
        }
        self.find_parsed(origin)
    }

    /// [`find`](Self::find) past the exact entries: the origin parsed, then
    /// matched against the patterns.
    fn find_parsed(&self, origin: &[u8]) -> OriginMatch {
        let parsed = match parse_request_origin(origin) {
            Ok(parsed) => parsed,
            Err(OriginSyntax::Null) => {
                return if self.null {
                    OriginMatch::Allowed
                } else {
                    OriginMatch::Null
                };
            }
            Err(OriginSyntax::Malformed) => return OriginMatch::Malformed,
        };
        if self.matches_pattern(parsed) {
            OriginMatch::Allowed
        } else {
            OriginMatch::NotAllowed
        }
    }

    fn matches_pattern(&self, origin: RequestOrigin<'_>) -> bool {
        let accepts = |entries: Option<&Vec<Entry>>| {
            entries.is_some_and(|entries| {
                entries
                    .iter()
                    .any(|e| &*e.scheme == origin.scheme && e.port.accepts(origin.port))
            })
        };
        if !self.any_port.is_empty() && accepts(self.any_port.get(origin.host)) {
            return true;
        }
        if self.subdomains.is_empty() || origin.host.starts_with(b"[") {
            return false;
        }
        // Each suffix after a dot, longest first; the label before it is non-empty
        // because the host passed the grammar check (no empty labels).
        let host = origin.host;
        for (dot, _) in host.iter().enumerate().filter(|(_, b)| **b == b'.') {
            let Some(suffix) = host.get(dot + 1..) else {
                break;
            };
            if suffix.len() > self.longest_suffix {
                continue;
            }
            if accepts(self.subdomains.get(suffix)) {
                return true;
            }
        }
        false
    }
}

fn push_entry(
    map: &mut HashMap<Box<[u8]>, Vec<Entry>, RandomState>,
    host: &str,
    scheme: &str,
    port: PortRule,
) {
    let entry = Entry {
        scheme: scheme.as_bytes().into(),
        port,
    };
    let entries = map.entry(host.as_bytes().into()).or_default();
    if !entries.contains(&entry) {
        entries.push(entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(patterns: &[&str]) -> OriginSet {
        let mut set = OriginSet::default();
        for p in patterns {
            set.insert(&p.parse().unwrap());
        }
        set
    }

    #[test]
    fn exact_and_patterns() {
        let s = set(&[
            "https://app.example.com",
            "https://*.example.org",
            "http://localhost:*",
            "https://*.corp.example:*",
        ]);
        let allowed = OriginMatch::Allowed;
        let denied = OriginMatch::NotAllowed;
        for (origin, want) in [
            ("https://app.example.com", allowed),
            ("https://APP.example.com", OriginMatch::Malformed),
            ("https://app.example.com.evil.com", denied),
            ("https://evilapp.example.com", denied),
            ("http://app.example.com", denied),
            ("https://a.example.org", allowed),
            ("https://a.b.example.org", allowed),
            ("https://example.org", denied),
            ("https://a.example.org:8443", denied),
            ("https://xexample.org", denied),
            ("http://localhost:3000", allowed),
            ("http://localhost", allowed),
            ("https://localhost:3000", denied),
            ("https://x.corp.example:9999", allowed),
            ("null", OriginMatch::Null),
            ("https://app.example.com/", OriginMatch::Malformed),
        ] {
            assert_eq!(s.find(origin.as_bytes()), want, "{origin}");
        }
    }

    #[test]
    fn few_and_many_exact_origins() {
        for count in [1, SMALL, SMALL + 1, 1000] {
            let origins: Vec<String> = (0..count)
                .map(|i| format!("https://app{i}.example.com"))
                .collect();
            let refs: Vec<&str> = origins.iter().map(String::as_str).collect();
            let s = set(&refs);
            assert_eq!(matches!(s.exact, Exact::Few(_)), count <= SMALL);
            for origin in &origins {
                assert_eq!(s.find(origin.as_bytes()), OriginMatch::Allowed, "{origin}");
            }
            for origin in [
                format!("https://app{count}.example.com"),
                "https://app0.example.co".to_owned(),
                "https://app0.example.comm".to_owned(),
            ] {
                assert_eq!(
                    s.find(origin.as_bytes()),
                    OriginMatch::NotAllowed,
                    "{origin}"
                );
            }
        }
    }

    #[test]
    fn any_covers_every_value_null_and_malformed_too() {
        let s = set(&["*"]);
        assert_eq!(s.find(b"null"), OriginMatch::Allowed);
        assert_eq!(s.find(b"https://x.example"), OriginMatch::Allowed);
        assert_eq!(s.find(b"https://x.example/"), OriginMatch::Allowed);
        assert_eq!(s.find(b""), OriginMatch::Allowed);
    }
}
