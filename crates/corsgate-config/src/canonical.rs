//! The canonical form of a request target and of a request's host: what routes
//! are matched against, and what is forwarded, so that the gateway and the
//! upstream agree on which resource a request is for.
//!
//! Application stacks read the same path differently: WSGI decodes `%2F` into
//! `/`, Go's `ServeMux` and Spring decode `%61` into `a`, nginx merges `//`,
//! Tomcat ignores `;parameters`, IIS matches without case. A gateway that routes
//! on the raw bytes while its upstream routes on a decoded form applies the
//! wrong route's policy (`/api/%61dmin` reaching `/api/admin` under `/api`'s
//! CORS policy). So the gateway rewrites the path into one form that every stack
//! reads the same way, routes on that form, and forwards exactly that form; the
//! few spellings that stacks disagree on and that cannot be rewritten safely are
//! refused with `400` before any route is chosen.
//!
//! The rules (documented in `docs/security.md`, "Request targets"):
//!
//! 1. a percent-encoded unreserved character (RFC 3986 §2.3: `A-Z a-z 0-9 - . _ ~`)
//!    is decoded: `%61` → `a`, `%2e` → `.`;
//! 2. every other escape keeps its encoding with uppercase hex digits: `%c3%a9` →
//!    `%C3%A9` (RFC 3986 §6.2.2.1);
//! 3. `.` and `..` segments are removed (RFC 3986 §5.2.4), also when spelled `%2e`;
//!    `..` never climbs above `/`;
//! 4. runs of `/` are merged into one (an empty segment is dropped);
//! 5. refused: an encoded `/` or `\` (`%2F`, `%5C`: unless `escaped_slashes =
//!    "keep"`), an encoded control byte (`%00`–`%1F`, `%7F`), a raw `\`, a `%`
//!    not followed by two hex digits, and a `.` or `..` segment carrying
//!    `;parameters` (`/..;/admin`, which Tomcat reads as `..`).
//!
//! The query string is never touched. Routes are then matched on the *match
//! path*: the canonical path with each segment's `;parameters` removed (as a
//! Servlet container does), lowercased when `path_case = "insensitive"`.

use std::borrow::Cow;
use std::net::Ipv6Addr;

/// What `%2F` and `%5C` in a request path do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EscapedSlashes {
    /// `400`: stacks disagree on whether `%2F` separates segments.
    #[default]
    Reject,
    /// Kept encoded (`%2F`), matched as an ordinary character of a segment; for
    /// upstreams whose resource names contain slashes (object keys, for example)
    /// and that never decode them before routing.
    Keep,
}

impl EscapedSlashes {
    /// The value as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            EscapedSlashes::Reject => "reject",
            EscapedSlashes::Keep => "keep",
        }
    }
}

/// Whether route paths compare with ASCII case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PathCase {
    /// `/API` is not `/api` (RFC 3986 §6.2.2.1: paths are case-sensitive).
    #[default]
    Sensitive,
    /// `/API` is `/api`: for upstreams that route without case (IIS, ASP.NET).
    Insensitive,
}

impl PathCase {
    /// The value as written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            PathCase::Sensitive => "sensitive",
            PathCase::Insensitive => "insensitive",
        }
    }
}

/// The settings the canonical form depends on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathRules {
    /// `escaped_slashes`: what `%2F` and `%5C` in a path do.
    pub escaped_slashes: EscapedSlashes,
    /// `path_case`: whether route paths match case-sensitively.
    pub path_case: PathCase,
}

/// Why a request target is refused (`400`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetRefusal {
    /// `%2F` or `%5C` with `escaped_slashes = "reject"`.
    EscapedSlash,
    /// `%00`–`%1F` or `%7F`.
    EscapedControl,
    /// A raw `\`: browsers turn it into `/`, some servers do, others do not.
    Backslash,
    /// `%` without two hex digits.
    BadEscape,
    /// `.;x` or `..;x`: a dot segment to a Servlet container, a name elsewhere.
    DotSegmentParameters,
    /// `*` with a method other than `OPTIONS` (RFC 9112 §3.2.4).
    Asterisk,
    /// Neither `/path` nor `*`.
    NotAPath,
}

impl TargetRefusal {
    /// The body of the `400`.
    pub fn message(self) -> &'static str {
        match self {
            TargetRefusal::EscapedSlash => {
                "400 Bad Request: an encoded slash (%2F or %5C) in the path is refused\n"
            }
            TargetRefusal::EscapedControl => {
                "400 Bad Request: an encoded control character in the path is refused\n"
            }
            TargetRefusal::Backslash => "400 Bad Request: a backslash in the path is refused\n",
            TargetRefusal::BadEscape => {
                "400 Bad Request: a % in the path is not followed by two hex digits\n"
            }
            TargetRefusal::DotSegmentParameters => {
                "400 Bad Request: a dot segment with ;parameters in the path is refused\n"
            }
            TargetRefusal::Asterisk => {
                "400 Bad Request: the * request target is only for OPTIONS\n"
            }
            TargetRefusal::NotAPath => "400 Bad Request: bad request target\n",
        }
    }

    /// A short name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetRefusal::EscapedSlash => "escaped-slash",
            TargetRefusal::EscapedControl => "escaped-control",
            TargetRefusal::Backslash => "backslash",
            TargetRefusal::BadEscape => "bad-escape",
            TargetRefusal::DotSegmentParameters => "dot-segment-parameters",
            TargetRefusal::Asterisk => "asterisk",
            TargetRefusal::NotAPath => "not-a-path",
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether `path` may already be canonical: no escape, no backslash, no empty
/// or dot segment. Most paths are; they are then used without a copy.
fn is_plain(path: &[u8]) -> bool {
    let mut segment_start = true;
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        match b {
            b'%' | b'\\' => return false,
            b'/' if i > 0 && path[i - 1] == b'/' => return false,
            b'.' if segment_start => {
                let end = path[i..]
                    .iter()
                    .position(|&c| c == b'/' || c == b';')
                    .map_or(path.len(), |p| i + p);
                if matches!(&path[i..end], b"." | b"..") {
                    return false;
                }
            }
            _ => {}
        }
        segment_start = b == b'/';
        i += 1;
    }
    true
}

/// The canonical form of an origin-form path (`/…`, without the query), or why
/// it is refused. See the module documentation for the rules.
pub fn canonical_path<'a>(path: &'a str, rules: &PathRules) -> Result<Cow<'a, str>, TargetRefusal> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(TargetRefusal::NotAPath);
    }
    if is_plain(bytes) {
        return Ok(Cow::Borrowed(path));
    }
    // Decode each segment (rules 1, 2 and 5), then resolve dot and empty
    // segments (rules 3 and 4) on the decoded text, so that `%2e%2e` is `..`.
    let mut segments: Vec<Vec<u8>> = Vec::new();
    let raw_segments: Vec<&[u8]> = bytes[1..].split(|&b| b == b'/').collect();
    let last = raw_segments.len() - 1;
    let mut trailing_slash = false;
    for (n, raw) in raw_segments.iter().enumerate() {
        let mut segment = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            let b = raw[i];
            match b {
                b'\\' => return Err(TargetRefusal::Backslash),
                b'%' => {
                    let (Some(hi), Some(lo)) = (
                        raw.get(i + 1).copied().and_then(hex),
                        raw.get(i + 2).copied().and_then(hex),
                    ) else {
                        return Err(TargetRefusal::BadEscape);
                    };
                    let decoded = hi << 4 | lo;
                    if is_unreserved(decoded) {
                        segment.push(decoded);
                    } else if decoded < 0x20 || decoded == 0x7f {
                        return Err(TargetRefusal::EscapedControl);
                    } else if matches!(decoded, b'/' | b'\\')
                        && rules.escaped_slashes == EscapedSlashes::Reject
                    {
                        return Err(TargetRefusal::EscapedSlash);
                    } else {
                        segment.push(b'%');
                        segment.extend_from_slice(format!("{decoded:02X}").as_bytes());
                    }
                    i += 3;
                    continue;
                }
                _ => segment.push(b),
            }
            i += 1;
        }
        let name = segment.split(|&b| b == b';').next().unwrap_or_default();
        let is_dot = matches!(name, b"." | b"..");
        if is_dot && name.len() != segment.len() {
            return Err(TargetRefusal::DotSegmentParameters);
        }
        match segment.as_slice() {
            b"" | b"." => trailing_slash = n == last,
            b".." => {
                segments.pop();
                trailing_slash = n == last;
            }
            _ => {
                segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut out = Vec::with_capacity(path.len());
    for segment in &segments {
        out.push(b'/');
        out.extend_from_slice(segment);
    }
    if out.is_empty() || trailing_slash {
        out.push(b'/');
    }
    // Only ASCII was replaced by ASCII, and whole UTF-8 sequences were copied.
    Ok(Cow::Owned(
        String::from_utf8(out).map_err(|_| TargetRefusal::NotAPath)?,
    ))
}

/// The path routes are matched on: the canonical path without `;parameters`
/// in any segment, as a Servlet container routes, and lowercased with
/// `path_case = "insensitive"`.
pub fn match_path<'a>(canonical: &'a str, case: PathCase) -> Cow<'a, str> {
    let has_params = canonical.contains(';');
    let fold = case == PathCase::Insensitive && canonical.bytes().any(|b| b.is_ascii_uppercase());
    if !has_params && !fold {
        return Cow::Borrowed(canonical);
    }
    let mut out = String::with_capacity(canonical.len());
    for (n, segment) in canonical.split('/').enumerate() {
        if n > 0 {
            out.push('/');
        }
        out.push_str(segment.split(';').next().unwrap_or_default());
    }
    if fold {
        out.make_ascii_lowercase();
    }
    Cow::Owned(out)
}

/// `path` without its first `count` segments: what `strip_prefix` forwards for
/// a route whose prefix has `count` segments. Counting segments, rather than
/// bytes, keeps a segment's `;parameters` and original case out of the way.
pub fn strip_segments(path: &str, count: usize) -> &str {
    let mut rest = path;
    for _ in 0..count {
        let Some(after) = rest.strip_prefix('/') else {
            break;
        };
        rest = after.find('/').map_or("", |i| &after[i..]);
    }
    if rest.is_empty() { "/" } else { rest }
}

/// How many segments a route prefix has (`/` has none).
pub(crate) fn segment_count(prefix: &str) -> usize {
    prefix.split('/').filter(|s| !s.is_empty()).count()
}

/// A request's host, canonical: lowercase, without port and without one
/// trailing dot (`Admin.Example.COM.` is `admin.example.com`), an IPv6 literal
/// in brackets in its shortest form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalAuthority<'a> {
    /// What host routes are matched against.
    pub host: Cow<'a, str>,
    /// `host[:port]`: the `Host` the upstream receives.
    pub authority: Cow<'a, str>,
}

/// Parses a `Host` value or a URI authority (`host[:port]`, RFC 9110 §7.2), or
/// `None` when it is not one: userinfo, a path, spaces, an empty host, a bad
/// port, empty labels, or characters no DNS name or IP literal has.
pub fn canonical_authority(raw: &str) -> Option<CanonicalAuthority<'_>> {
    let (host, port) = if let Some(v6) = raw.strip_prefix('[') {
        let (inside, rest) = v6.split_once(']')?;
        let ip: Ipv6Addr = inside.parse().ok()?;
        let port = match rest {
            "" => None,
            _ => Some(rest.strip_prefix(':')?),
        };
        let host = format!("[{ip}]");
        let host = if host == raw[..inside.len() + 2] {
            Cow::Borrowed(&raw[..inside.len() + 2])
        } else {
            Cow::Owned(host)
        };
        (host, port)
    } else {
        let (name, port) = match raw.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (raw, None),
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        // Non-empty labels of letters, digits, '-' and '_', in one pass over
        // the bytes (the gateway checks every request's `Host`).
        let mut label_start = true;
        let mut upper = false;
        for b in name.bytes() {
            match b {
                b'.' if label_start => return None,
                b'.' => label_start = true,
                b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => label_start = false,
                b'A'..=b'Z' => {
                    label_start = false;
                    upper = true;
                }
                _ => return None,
            }
        }
        // Empty, or ending with an empty label.
        if label_start {
            return None;
        }
        let host = if upper {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(name)
        };
        (host, port)
    };
    let port = match port {
        // `host:` is allowed by RFC 3986 (port = *DIGIT) and means no port.
        None | Some("") => None,
        Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u16>().ok()?;
            Some(p)
        }
        Some(_) => return None,
    };
    let authority = match (port, &host) {
        (None, Cow::Borrowed(h)) => Cow::Borrowed(*h),
        (None, Cow::Owned(h)) => Cow::Owned(h.clone()),
        (Some(p), _) => {
            let joined_len = host.len() + 1 + p.len();
            if raw.len() == joined_len && raw.starts_with(host.as_ref()) {
                Cow::Borrowed(raw)
            } else {
                Cow::Owned(format!("{host}:{p}"))
            }
        }
    };
    Some(CanonicalAuthority { host, authority })
}

/// Why a route `host` value can never match a canonical host, with the fix, or
/// the canonical form.
pub fn route_host(host: &str) -> Result<String, String> {
    if host.contains('*') {
        return Err("a route host is one name, not a pattern; write one route per host".into());
    }
    if !host.is_ascii() {
        return match idna::domain_to_ascii(host) {
            Ok(ascii) if !ascii.is_empty() => Err(format!(
                "browsers send internationalized names in their ASCII form; use {ascii:?}"
            )),
            _ => Err("not a host name".into()),
        };
    }
    if host.contains(['/', ' ', '@', '?', '#']) || host.is_empty() {
        return Err("a host name without scheme, port or path".into());
    }
    let Some(canonical) = canonical_authority(host) else {
        return Err("not a host name: letters, digits, '-', '.', or an IPv6 literal in brackets such as \"[::1]\"".into());
    };
    if canonical.authority != canonical.host {
        return Err(format!(
            "a route host has no port (the port is ignored when matching); use {:?}",
            canonical.host
        ));
    }
    if canonical.host != host {
        return Err(format!(
            "hosts are matched in lowercase and without a trailing dot; use {:?}",
            canonical.host
        ));
    }
    Ok(canonical.host.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(path: &str) -> Result<String, TargetRefusal> {
        canonical_path(path, &PathRules::default()).map(Cow::into_owned)
    }

    #[test]
    fn spellings_of_one_path_become_one() {
        for (raw, want) in [
            ("/api/admin/users", "/api/admin/users"),
            ("/api/%61dmin/users", "/api/admin/users"),
            ("/api/%41DMIN", "/api/ADMIN"),
            ("/api//admin///users", "/api/admin/users"),
            ("/api/./admin", "/api/admin"),
            ("/api/x/../admin", "/api/admin"),
            ("/api/%2e%2E/admin", "/admin"),
            ("/api/.%2e/admin", "/admin"),
            ("/../../admin", "/admin"),
            ("/api/", "/api/"),
            ("/api/.", "/api/"),
            ("/api/..", "/"),
            ("//", "/"),
            ("/", "/"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/a%20b", "/a%20b"),
            ("/a%3bb", "/a%3Bb"),
            ("/api/admin;x/users", "/api/admin;x/users"),
            ("/a.b/.c/..d", "/a.b/.c/..d"),
            ("/%7euser", "/~user"),
        ] {
            assert_eq!(canon(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn canonical_targets_are_used_without_a_copy() {
        // The usual request: nothing to rewrite, nothing allocated.
        for path in [
            "/",
            "/api/admin/users",
            "/api/v1.2/x.json",
            "/a/.well-known/b",
            "/~u/",
        ] {
            assert!(
                matches!(
                    canonical_path(path, &PathRules::default()),
                    Ok(Cow::Borrowed(_))
                ),
                "{path}"
            );
            assert!(matches!(
                match_path(path, PathCase::Sensitive),
                Cow::Borrowed(_)
            ));
        }
        let a = canonical_authority("api.example.com:8080").unwrap();
        assert!(matches!(a.host, Cow::Borrowed(_)) && matches!(a.authority, Cow::Borrowed(_)));
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for (raw, why) in [
            ("/api/admin%2fusers", TargetRefusal::EscapedSlash),
            ("/api%2Fadmin", TargetRefusal::EscapedSlash),
            ("/api%5cadmin", TargetRefusal::EscapedSlash),
            ("/api/admin%00", TargetRefusal::EscapedControl),
            ("/api/%0a", TargetRefusal::EscapedControl),
            ("/api/%7F", TargetRefusal::EscapedControl),
            ("/api\\admin", TargetRefusal::Backslash),
            ("/api/%zz", TargetRefusal::BadEscape),
            ("/api/%4", TargetRefusal::BadEscape),
            ("/api/..;/admin", TargetRefusal::DotSegmentParameters),
            ("/api/.;x/admin", TargetRefusal::DotSegmentParameters),
            ("*", TargetRefusal::NotAPath),
            ("", TargetRefusal::NotAPath),
        ] {
            assert_eq!(canon(raw), Err(why), "{raw}");
        }
        let keep = PathRules {
            escaped_slashes: EscapedSlashes::Keep,
            ..PathRules::default()
        };
        assert_eq!(
            canonical_path("/api/admin%2fusers%5c", &keep).as_deref(),
            Ok("/api/admin%2Fusers%5C")
        );
    }

    #[test]
    fn match_path_drops_parameters_and_folds_case_on_request() {
        assert_eq!(
            match_path("/api/admin;x/users;y=1", PathCase::Sensitive),
            "/api/admin/users"
        );
        assert_eq!(match_path("/API/Admin", PathCase::Sensitive), "/API/Admin");
        assert_eq!(
            match_path("/API/Admin;X", PathCase::Insensitive),
            "/api/admin"
        );
        assert!(matches!(
            match_path("/api/admin", PathCase::Insensitive),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn strip_prefix_counts_segments() {
        assert_eq!(strip_segments("/api/admin;x/users", 2), "/users");
        assert_eq!(strip_segments("/api", 1), "/");
        assert_eq!(strip_segments("/api/", 1), "/");
        assert_eq!(strip_segments("/x", 0), "/x");
        assert_eq!(segment_count("/api/admin"), 2);
        assert_eq!(segment_count("/"), 0);
    }

    #[test]
    fn hosts_are_lowercase_without_trailing_dot_or_port() {
        let a = canonical_authority("Admin.Example.COM.:443").unwrap();
        assert_eq!(a.host, "admin.example.com");
        assert_eq!(a.authority, "admin.example.com:443");
        let a = canonical_authority("api.example:8080").unwrap();
        assert!(matches!(a.authority, Cow::Borrowed(_)));
        let a = canonical_authority("[0:0::1]:9").unwrap();
        assert_eq!(
            (a.host.as_ref(), a.authority.as_ref()),
            ("[::1]", "[::1]:9")
        );
        for bad in [
            "",
            ".",
            "a..b",
            ".a",
            "a.b..",
            "x@admin.example.com",
            "admin.example.com/x",
            "admin.example.com x",
            "admin.example.com:abc",
            "admin.example.com:65536",
            "admin.example.com:1:2",
            "[::1",
            "[zz]",
            "bücher.example",
        ] {
            assert_eq!(canonical_authority(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn route_hosts_must_be_canonical() {
        assert_eq!(
            route_host("admin.example.com").as_deref(),
            Ok("admin.example.com")
        );
        assert_eq!(route_host("[::1]").as_deref(), Ok("[::1]"));
        assert!(
            route_host("Admin.example.com")
                .unwrap_err()
                .contains("\"admin.example.com\"")
        );
        assert!(
            route_host("admin.example.com.")
                .unwrap_err()
                .contains("\"admin.example.com\"")
        );
        assert!(
            route_host("bücher.example")
                .unwrap_err()
                .contains("xn--bcher-kva.example")
        );
        assert!(route_host("*.example.com").is_err());
        assert!(route_host("example.com:8080").is_err());
    }
}
