//! Origins: the request's `Origin` header, and the patterns a policy allows.
//!
//! A request's origin is checked against the serialized-origin grammar of the Fetch
//! standard (§3.2.5, "ASCII serialization of an origin") and compared byte for byte:
//! it is never lowercased, percent-decoded or URL-parsed to make it match.
//! Patterns are parsed once, at compile time, into structured values.

use std::fmt;

/// Longest `Origin` value looked at; a longer one is malformed. A real origin is a
/// scheme, a host of at most 253 bytes and a port, far below this.
pub(crate) const MAX_ORIGIN_LEN: usize = 1024;

/// Longest scheme accepted in an origin or pattern.
pub(crate) const MAX_SCHEME_LEN: usize = 64;

/// Longest host accepted in a pattern (DNS limit).
pub(crate) const MAX_HOST_LEN: usize = 253;

/// Longest DNS label accepted in a pattern.
pub(crate) const MAX_LABEL_LEN: usize = 63;

/// A request `Origin` that follows the serialized-origin grammar, split in parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestOrigin<'a> {
    pub(crate) scheme: &'a [u8],
    pub(crate) host: &'a [u8],
    pub(crate) port: Option<u16>,
}

/// Why a request `Origin` is not a serialized origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OriginSyntax {
    Null,
    Malformed,
}

/// Parses a request's `Origin` value, strictly: browsers serialize origins in one
/// canonical form (lowercase scheme and host, no default port, no trailing slash),
/// so anything else did not come from a browser and cannot match.
pub(crate) fn parse_request_origin(value: &[u8]) -> Result<RequestOrigin<'_>, OriginSyntax> {
    if value == b"null" {
        return Err(OriginSyntax::Null);
    }
    if value.len() > MAX_ORIGIN_LEN {
        return Err(OriginSyntax::Malformed);
    }
    let sep = find_scheme_separator(value).ok_or(OriginSyntax::Malformed)?;
    let (scheme, rest) = value.split_at(sep);
    if !is_canonical_scheme(scheme) {
        return Err(OriginSyntax::Malformed);
    }
    let authority = rest.get(3..).ok_or(OriginSyntax::Malformed)?;
    let (host, port) = split_host_port(authority).ok_or(OriginSyntax::Malformed)?;
    if !is_canonical_host(host) {
        return Err(OriginSyntax::Malformed);
    }
    let port = match port {
        None => None,
        Some(digits) => {
            let port = parse_canonical_port(digits).ok_or(OriginSyntax::Malformed)?;
            if default_port(scheme) == Some(port) {
                return Err(OriginSyntax::Malformed);
            }
            Some(port)
        }
    };
    Ok(RequestOrigin { scheme, host, port })
}

/// Where `://` starts. A scheme holds no `:`, so only the first `:` can start it:
/// when that one does not, no canonical scheme precedes a later `://` either.
fn find_scheme_separator(value: &[u8]) -> Option<usize> {
    let colon = value.iter().position(|b| *b == b':')?;
    (value.get(colon + 1..colon + 3) == Some(b"//".as_slice())).then_some(colon)
}

fn is_canonical_scheme(scheme: &[u8]) -> bool {
    match scheme.split_first() {
        Some((first, rest)) => {
            scheme.len() <= MAX_SCHEME_LEN
                && first.is_ascii_lowercase()
                && rest
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(b))
        }
        None => false,
    }
}

/// Splits `host[:port]`, where host may be a bracketed IPv6 address.
fn split_host_port(authority: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    if authority.first() == Some(&b'[') {
        let close = authority.iter().position(|b| *b == b']')?;
        let (host, rest) = authority.split_at(close + 1);
        return match rest {
            [] => Some((host, None)),
            [b':', port @ ..] => Some((host, Some(port))),
            _ => None,
        };
    }
    match authority.iter().position(|b| *b == b':') {
        Some(colon) => {
            let (host, port) = authority.split_at(colon);
            Some((host, port.get(1..)))
        }
        None => Some((authority, None)),
    }
}

fn is_canonical_host(host: &[u8]) -> bool {
    if let Some(inner) = host.strip_prefix(b"[").and_then(|h| h.strip_suffix(b"]")) {
        return !inner.is_empty()
            && inner
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b) || b":.".contains(b));
    }
    // One pass: host bytes only, and no empty label (a leading dot or two dots).
    let mut after_dot = true;
    for b in host {
        if !is_host_byte(*b) {
            return false;
        }
        let dot = *b == b'.';
        if dot && after_dot {
            return false;
        }
        after_dot = dot;
    }
    !host.is_empty()
}

/// The bytes of a canonical host: lowercase letters, digits, `-`, `.` and `_`.
// Evaluated at compile time, where an index out of bounds fails the build: no panic.
#[allow(clippy::indexing_slicing)]
static HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'.' | b'_');
        b += 1;
    }
    table
};

fn is_host_byte(b: u8) -> bool {
    HOST_BYTES.get(usize::from(b)).copied().unwrap_or(false)
}

/// A decimal port in canonical form: no leading zero, at most 65535.
fn parse_canonical_port(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 || (digits.len() > 1 && digits.first() == Some(&b'0'))
    {
        return None;
    }
    let mut port: u32 = 0;
    for b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        port = port * 10 + u32::from(b - b'0');
    }
    u16::try_from(port).ok()
}

/// The default port of the special schemes of the URL standard.
pub(crate) fn default_port(scheme: &[u8]) -> Option<u16> {
    match scheme {
        b"http" | b"ws" => Some(80),
        b"https" | b"wss" => Some(443),
        b"ftp" => Some(21),
        _ => None,
    }
}

/// Which ports a pattern accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PortRule {
    /// No port written: the scheme's default port only.
    Default,
    /// That port only.
    Exact(u16),
    /// `:*`: any port, and the default one.
    Any,
}

impl PortRule {
    pub(crate) fn accepts(self, port: Option<u16>) -> bool {
        match self {
            PortRule::Default => port.is_none(),
            PortRule::Exact(want) => port == Some(want),
            PortRule::Any => true,
        }
    }
}

/// One entry of `allow_origins`, parsed.
///
/// ```
/// use corsgate_policy::OriginPattern;
///
/// let pattern: OriginPattern = "https://*.example.com:*".parse().unwrap();
/// assert_eq!(pattern.to_string(), "https://*.example.com:*");
/// assert!("https://example.com/".parse::<OriginPattern>().is_err());
/// ```
// Hash: patterns are canonical, so equal patterns are equal values (a set of
// them dedupes without printing each, as the registry's union of 100,000
// clients does).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OriginPattern {
    kind: PatternKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum PatternKind {
    /// `*`.
    Any,
    /// `null`.
    Null,
    /// `scheme://[*.]host[:port|:*]`.
    Host {
        scheme: String,
        host: String,
        subdomains: bool,
        port: PortRule,
    },
}

impl OriginPattern {
    pub(crate) fn kind(&self) -> &PatternKind {
        &self.kind
    }

    /// Whether this is the `*` wildcard.
    pub fn is_any(&self) -> bool {
        self.kind == PatternKind::Any
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        self.kind == PatternKind::Null
    }

    /// Whether this pattern uses a subdomain (`*.`) or port (`:*`) wildcard.
    pub fn is_wildcard(&self) -> bool {
        matches!(
            self.kind,
            PatternKind::Host {
                subdomains: true,
                ..
            } | PatternKind::Host {
                port: PortRule::Any,
                ..
            }
        )
    }

    /// The scheme, for host patterns.
    pub fn scheme(&self) -> Option<&str> {
        match &self.kind {
            PatternKind::Host { scheme, .. } => Some(scheme),
            _ => None,
        }
    }

    /// The host, or for a subdomain pattern the part after `*.`.
    pub fn host(&self) -> Option<&str> {
        match &self.kind {
            PatternKind::Host { host, .. } => Some(host),
            _ => None,
        }
    }

    /// Whether this pattern's host names a loopback address or `localhost`.
    pub fn is_loopback(&self) -> bool {
        self.host().is_some_and(is_loopback_host)
    }

    /// Whether `origin`, a request's `Origin` value, matches this one pattern.
    /// Policies match through a precomputed index instead; this is for tools.
    pub fn matches(&self, origin: &str) -> bool {
        match (&self.kind, parse_request_origin(origin.as_bytes())) {
            (PatternKind::Any, _) => true,
            (PatternKind::Null, Err(OriginSyntax::Null)) => true,
            (
                PatternKind::Host {
                    scheme,
                    host,
                    subdomains,
                    port,
                },
                Ok(req),
            ) => {
                let host_ok = if *subdomains {
                    req.host.len() > host.len() + 1
                        && req.host.ends_with(host.as_bytes())
                        && req.host.get(req.host.len() - host.len() - 1) == Some(&b'.')
                } else {
                    req.host == host.as_bytes()
                };
                req.scheme == scheme.as_bytes() && host_ok && port.accepts(req.port)
            }
            _ => false,
        }
    }
}

/// `localhost`, `*.localhost`, `127.0.0.0/8` and `[::1]`: hosts that never leave
/// the machine, so plain `http` to them is not exposed to the network.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    if host == "localhost" || host.ends_with(".localhost") || host == "[::1]" {
        return true;
    }
    host.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|ip| ip.is_loopback())
}

impl fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            PatternKind::Any => f.write_str("*"),
            PatternKind::Null => f.write_str("null"),
            PatternKind::Host {
                scheme,
                host,
                subdomains,
                port,
            } => {
                write!(f, "{scheme}://")?;
                if *subdomains {
                    f.write_str("*.")?;
                }
                f.write_str(host)?;
                match port {
                    PortRule::Default => Ok(()),
                    PortRule::Exact(port) => write!(f, ":{port}"),
                    PortRule::Any => f.write_str(":*"),
                }
            }
        }
    }
}

/// Why an `allow_origins` entry is refused, with the fix when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    kind: PatternErrorKind,
    message: String,
    suggestion: Option<String>,
}

/// The kinds of [`PatternError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatternErrorKind {
    /// Not of the form `scheme://host[:port]`.
    NotAnOrigin,
    /// Not in the canonical serialized form browsers send (case, default port, …).
    NotCanonical,
    /// `*` used other than as `*`, `scheme://*.host` or `:*`.
    MalformedWildcard,
    /// Non-ASCII host: browsers send the punycode form.
    NonAscii,
    /// A `file:` origin: browsers send `null` for those.
    FileOrigin,
    /// A host the URL standard's host parser rewrites (`127.1` is `127.0.0.1`):
    /// browsers send the rewritten form.
    RewrittenHost,
    /// A host the URL standard's host parser rejects (`foo.bar.255`, invalid
    /// punycode): no page has it.
    InvalidHost,
    /// A port Fetch refuses to load from (a "bad port"): no page has it.
    BadPort,
}

impl PatternError {
    fn new(kind: PatternErrorKind, message: impl Into<String>, suggestion: Option<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            suggestion,
        }
    }

    /// The kind of problem.
    pub fn kind(&self) -> PatternErrorKind {
        self.kind
    }

    /// The rule that was broken.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The value to write instead, when one can be derived.
    pub fn suggestion(&self) -> Option<&str> {
        self.suggestion.as_deref()
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(fix) = &self.suggestion {
            write!(f, "; use {fix:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PatternError {}

impl std::str::FromStr for OriginPattern {
    type Err = PatternError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        parse_pattern(input)
    }
}

fn parse_pattern(input: &str) -> Result<OriginPattern, PatternError> {
    use PatternErrorKind::*;
    if input == "*" {
        return Ok(OriginPattern {
            kind: PatternKind::Any,
        });
    }
    if input == "null" {
        return Ok(OriginPattern {
            kind: PatternKind::Null,
        });
    }
    if input.is_empty() {
        return Err(PatternError::new(
            NotAnOrigin,
            "an empty string is not an origin",
            None,
        ));
    }
    if input.len() > MAX_ORIGIN_LEN {
        return Err(PatternError::new(
            NotAnOrigin,
            format!("longer than {MAX_ORIGIN_LEN} bytes"),
            None,
        ));
    }
    let trimmed = input.trim();
    if trimmed != input {
        let fix = parse_pattern(trimmed).ok().map(|p| p.to_string());
        return Err(PatternError::new(
            NotAnOrigin,
            "an origin has no surrounding spaces",
            fix,
        ));
    }
    if input.eq_ignore_ascii_case("null") {
        return Err(PatternError::new(
            NotCanonical,
            "the null origin is spelled in lowercase",
            Some("null".into()),
        ));
    }
    let Some((scheme, rest)) = input.split_once("://") else {
        if input.to_ascii_lowercase().starts_with("file:") {
            return Err(file_origin());
        }
        let fix = parse_pattern(&format!("https://{input}"))
            .ok()
            .map(|p| p.to_string());
        return Err(PatternError::new(
            NotAnOrigin,
            "an origin starts with a scheme such as https://",
            fix,
        ));
    };
    if scheme.eq_ignore_ascii_case("file") {
        return Err(file_origin());
    }
    let canonical_scheme = scheme.to_ascii_lowercase();
    if !is_canonical_scheme(canonical_scheme.as_bytes()) {
        return Err(PatternError::new(
            NotAnOrigin,
            format!("{scheme:?} is not a valid scheme"),
            None,
        ));
    }
    // Cut the authority from whatever follows it, remembering what to complain about.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, authority) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => (Some(userinfo), host),
        None => (None, authority),
    };
    let parsed = parse_authority(&canonical_scheme, authority)?;
    let canonical = OriginPattern {
        kind: parsed.kind.clone(),
    };
    let fix = Some(canonical.to_string());
    if userinfo.is_some() {
        return Err(PatternError::new(
            NotAnOrigin,
            "an origin has no user name or password",
            fix,
        ));
    }
    if tail == "/" {
        return Err(PatternError::new(
            NotAnOrigin,
            "an origin has no path, not even a trailing slash",
            fix,
        ));
    }
    if tail.starts_with('?') || tail.starts_with('#') {
        return Err(PatternError::new(
            NotAnOrigin,
            "an origin has no query or fragment",
            fix,
        ));
    }
    if !tail.is_empty() {
        return Err(PatternError::new(NotAnOrigin, "an origin has no path", fix));
    }
    if scheme != canonical_scheme || parsed.had_uppercase {
        return Err(PatternError::new(
            NotCanonical,
            "browsers send origins in lowercase",
            fix,
        ));
    }
    if parsed.default_port_written {
        return Err(PatternError::new(
            NotCanonical,
            "browsers omit the default port of the scheme from the origin",
            fix,
        ));
    }
    if parsed.port_not_canonical {
        return Err(PatternError::new(
            NotCanonical,
            "browsers write the port without leading zeros",
            fix,
        ));
    }
    if let Some((kind, why)) = parsed.rewritten {
        return Err(PatternError::new(kind, why, fix));
    }
    Ok(canonical)
}

fn file_origin() -> PatternError {
    PatternError::new(
        PatternErrorKind::FileOrigin,
        "pages loaded from file: have the origin null, not a file:// origin; allowing them means allowing \"null\", which any sandboxed page can send (see dangerously_allow_null_origin)",
        None,
    )
}

struct ParsedAuthority {
    kind: PatternKind,
    had_uppercase: bool,
    default_port_written: bool,
    port_not_canonical: bool,
    /// Why the host is not what browsers send, when the URL standard rewrites it
    /// (`kind` holds the rewritten host).
    rewritten: Option<(PatternErrorKind, String)>,
}

fn parse_authority(scheme: &str, authority: &str) -> Result<ParsedAuthority, PatternError> {
    use PatternErrorKind::*;
    if !authority.is_ascii() {
        let (host, port) = authority
            .rsplit_once(':')
            .map_or((authority, None), |(h, p)| (h, Some(p)));
        let (prefix, bare) = host
            .strip_prefix("*.")
            .map_or(("", host), |bare| ("*.", bare));
        // What the URL standard makes of it (UTS #46 mapping, then the IPv4
        // parser: fullwidth digits are an address), when special.
        let ascii = match url::Host::parse(bare) {
            Ok(url::Host::Domain(domain)) => Some(domain),
            Ok(ip) if prefix.is_empty() && is_special(scheme) => Some(ip.to_string()),
            _ => None,
        };
        // The URL standard lets through characters no origin pattern has
        // (`=`, say): offer the ASCII form only when it is itself accepted. A
        // fix still not ASCII (the port was not) is no fix, and parsing it
        // would come back here without end.
        let fix = ascii
            .map(|ascii| {
                let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                format!("{scheme}://{prefix}{ascii}{port}")
            })
            .filter(|fix| fix.is_ascii() && fix.parse::<OriginPattern>().is_ok());
        return Err(PatternError::new(
            NonAscii,
            "browsers send internationalized host names in their punycode (xn--) form",
            fix,
        ));
    }
    let (host, port) = if authority.starts_with('[') {
        match authority.find(']') {
            Some(close) => {
                let (host, rest) = authority.split_at(close + 1);
                match rest.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None if rest.is_empty() => (host, None),
                    None => {
                        return Err(PatternError::new(
                            NotAnOrigin,
                            "unexpected text after the IPv6 address",
                            None,
                        ));
                    }
                }
            }
            None => {
                return Err(PatternError::new(
                    NotAnOrigin,
                    "unclosed [ in IPv6 address",
                    None,
                ));
            }
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let (port, default_port_written, port_not_canonical) = match port {
        None => (PortRule::Default, false, false),
        Some("*") => (PortRule::Any, false, false),
        Some(digits) => {
            let value = if !digits.is_empty()
                && digits.len() <= 5
                && digits.bytes().all(|b| b.is_ascii_digit())
            {
                digits
                    .parse::<u32>()
                    .ok()
                    .and_then(|p| u16::try_from(p).ok())
            } else {
                None
            };
            match value {
                Some(value) if default_port(scheme.as_bytes()) == Some(value) => {
                    (PortRule::Default, true, false)
                }
                Some(value) => (PortRule::Exact(value), false, digits != value.to_string()),
                None if digits.contains('*') => {
                    return Err(PatternError::new(
                        MalformedWildcard,
                        "a port wildcard is written :* and stands for the whole port",
                        None,
                    ));
                }
                None => {
                    return Err(PatternError::new(
                        NotAnOrigin,
                        format!("{digits:?} is not a port (a number from 0 to 65535)"),
                        None,
                    ));
                }
            }
        }
    };
    let had_uppercase = host.bytes().any(|b| b.is_ascii_uppercase());
    let host = host.to_ascii_lowercase();
    let (subdomains, bare) = match host.strip_prefix("*.") {
        Some(bare) => (true, bare),
        None => (false, host.as_str()),
    };
    if bare.contains('*') || host == "*" {
        let message = if host == "*" {
            "a wildcard host matches every site; to allow every origin write \"*\" alone (never with credentials)"
        } else {
            "a subdomain wildcard is written scheme://*.example.com: one * standing for whole labels, at the start"
        };
        return Err(PatternError::new(MalformedWildcard, message, None));
    }
    validate_host(bare, subdomains)?;
    // What browsers make of the host: the URL standard's host parser, which the
    // page's URL went through before its origin was serialized into `Origin`.
    let rewritten = match url_host(scheme, bare) {
        UrlHost::Same => None,
        UrlHost::Rejected(why) => {
            let what = if subdomains {
                "every name under this host"
            } else {
                "this host"
            };
            return Err(PatternError::new(
                InvalidHost,
                format!("browsers refuse {what}: {why}, so no page has this origin"),
                None,
            ));
        }
        // A lowercase ASCII name comes out different only as an IPv4 address, and
        // a name under a wildcard never is one.
        UrlHost::Rewritten(_) if subdomains => {
            return Err(PatternError::new(
                MalformedWildcard,
                "a subdomain wildcard cannot apply to an IP address",
                None,
            ));
        }
        UrlHost::Rewritten(host) => Some(host),
    };
    if let PortRule::Exact(port) = port
        && is_port_blocked_scheme(scheme)
        && is_bad_port(port)
    {
        return Err(PatternError::new(
            BadPort,
            format!(
                "browsers never load a page from port {port}: the Fetch standard blocks it as a bad port (\"port blocking\"), so no page has this origin; serve the page from another port"
            ),
            None,
        ));
    }
    let rewritten = rewritten.map(|host| {
        let message = if host.starts_with('[') {
            // The URL standard's IPv6 serializer (§3.6) compresses the longest
            // run of zeros and writes an embedded IPv4 address in hex.
            (
                NotCanonical,
                "browsers write IPv6 addresses in their shortest form".to_owned(),
            )
        } else if host.starts_with(|c: char| c.is_ascii_digit()) {
            (
                RewrittenHost,
                format!(
                    "the URL standard reads the host {bare:?} as the IPv4 address {host}, so browsers send that instead"
                ),
            )
        } else {
            (
                RewrittenHost,
                format!(
                    "the URL standard rewrites the host {bare:?} to {host:?}, so browsers send that instead"
                ),
            )
        };
        (host, message)
    });
    let (host, rewritten) = match rewritten {
        Some((host, message)) => (host, Some(message)),
        None => (bare.to_owned(), None),
    };
    Ok(ParsedAuthority {
        kind: PatternKind::Host {
            scheme: scheme.to_owned(),
            host,
            subdomains,
            port,
        },
        had_uppercase,
        default_port_written,
        port_not_canonical,
        rewritten,
    })
}

/// The schemes whose hosts the URL standard parses as domains or IP addresses
/// (its "special" schemes, §4.1). Other schemes (`capacitor:`, `ionic:`) have
/// opaque hosts, kept as written.
fn is_special(scheme: &str) -> bool {
    matches!(scheme, "http" | "https" | "ws" | "wss" | "ftp")
}

/// The schemes Fetch blocks bad ports for: HTTP(S) (Fetch §2.9), and WebSocket
/// URLs, which are fetched as their http(s) counterparts (WebSockets standard,
/// "establish a WebSocket connection").
fn is_port_blocked_scheme(scheme: &str) -> bool {
    matches!(scheme, "http" | "https" | "ws" | "wss")
}

/// Fetch's "bad port" list (Fetch §2.9 "Port blocking", port 0 included): a
/// fetch to one of them fails before connecting, because other protocols listen
/// there and a crafted request could talk to them. A page is never loaded from
/// one, so no `Origin` carries one.
const BAD_PORTS: [u16; 83] = [
    0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101,
    102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427,
    465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990,
    993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667,
    6668, 6669, 6679, 6697, 10080,
];

fn is_bad_port(port: u16) -> bool {
    BAD_PORTS.binary_search(&port).is_ok()
}

/// What the URL standard's host parser makes of a lowercase ASCII host.
enum UrlHost {
    Same,
    Rewritten(String),
    Rejected(&'static str),
}

/// Runs the URL standard's host parser (URL standard §3.5, through the `url`
/// crate) on `host` for a special scheme, and says whether it serializes back to
/// itself. Opaque hosts (other schemes) are kept as written by browsers.
fn url_host(scheme: &str, host: &str) -> UrlHost {
    // IPv6 addresses are parsed alike whatever the scheme.
    if !is_special(scheme) && !host.starts_with('[') {
        return UrlHost::Same;
    }
    match url::Host::parse(host) {
        Ok(url::Host::Domain(domain)) if domain == host => UrlHost::Same,
        Ok(parsed) => {
            let serialized = parsed.to_string();
            if serialized == host {
                UrlHost::Same
            } else {
                UrlHost::Rewritten(serialized)
            }
        }
        Err(url::ParseError::InvalidIpv4Address) => UrlHost::Rejected(
            "the URL standard reads a host whose last label is a number as an IPv4 address, and this is not a valid one (four numbers of at most 255, or fewer with the last one larger)",
        ),
        Err(url::ParseError::IdnaError) => UrlHost::Rejected(
            "it is not a valid internationalized name (a label that starts with xn-- must be valid punycode of a valid name)",
        ),
        Err(url::ParseError::InvalidDomainCharacter) => {
            UrlHost::Rejected("it holds a character the URL standard forbids in a host")
        }
        Err(_) => UrlHost::Rejected("the URL standard's host parser refuses it"),
    }
}

fn validate_host(host: &str, subdomains: bool) -> Result<(), PatternError> {
    use PatternErrorKind::*;
    if host.is_empty() {
        return Err(PatternError::new(NotAnOrigin, "the host is empty", None));
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        if subdomains {
            return Err(PatternError::new(
                MalformedWildcard,
                "a subdomain wildcard cannot apply to an IP address",
                None,
            ));
        }
        // Whether it is in the form browsers send is for `url_host`.
        return match url::Host::parse(host) {
            Ok(url::Host::Ipv6(_)) if !inner.contains('[') => Ok(()),
            _ => Err(PatternError::new(
                NotAnOrigin,
                format!("{host:?} is not an IPv6 address"),
                None,
            )),
        };
    }
    if host.len() > MAX_HOST_LEN {
        return Err(PatternError::new(
            NotAnOrigin,
            format!("a host name has at most {MAX_HOST_LEN} bytes"),
            None,
        ));
    }
    // A name under the wildcard is a label, a dot and this host.
    if subdomains && host.len() + 2 > MAX_HOST_LEN {
        return Err(PatternError::new(
            NotAnOrigin,
            format!(
                "a host name has at most {MAX_HOST_LEN} bytes, and every name under this wildcard has at least {}",
                host.len() + 2
            ),
            None,
        ));
    }
    if host.ends_with('.') {
        return Err(PatternError::new(
            NotCanonical,
            "a trailing dot makes a different origin that browsers rarely send; remove it",
            None,
        ));
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err(PatternError::new(
                NotAnOrigin,
                "a host name has no empty labels (\"..\" or a leading dot)",
                None,
            ));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(PatternError::new(
                NotAnOrigin,
                format!("a host label has at most {MAX_LABEL_LEN} bytes"),
                None,
            ));
        }
        if let Some(bad) = label.bytes().find(|b| !is_host_byte(*b)) {
            return Err(PatternError::new(
                NotAnOrigin,
                format!("{:?} cannot appear in a host name", char::from(bad)),
                None,
            ));
        }
    }
    if subdomains
        && host
            .split('.')
            .all(|label| label.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(PatternError::new(
            MalformedWildcard,
            "a subdomain wildcard cannot apply to an IP address",
            None,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> String {
        match input.parse::<OriginPattern>() {
            Ok(pattern) => pattern.to_string(),
            Err(err) => panic!("{input:?} refused: {err}"),
        }
    }

    fn err(input: &str) -> (PatternErrorKind, Option<String>) {
        match input.parse::<OriginPattern>() {
            Ok(pattern) => panic!("{input:?} accepted as {pattern}"),
            Err(err) => (err.kind(), err.suggestion().map(str::to_owned)),
        }
    }

    #[test]
    fn valid_patterns_print_back_to_themselves() {
        for input in [
            "*",
            "null",
            "https://app.example.com",
            "https://*.example.com",
            "http://localhost:*",
            "https://*.example.com:*",
            "http://127.0.0.1:3000",
            "http://[::1]:8080",
            "capacitor://localhost",
            "ionic://localhost",
            "http://10.0.2.2:8000",
            "https://xn--bcher-kva.example",
        ] {
            assert_eq!(ok(input), input);
        }
    }

    #[test]
    fn non_canonical_patterns_suggest_the_fix() {
        use PatternErrorKind::*;
        let cases = [
            (
                "https://app.example.com/",
                NotAnOrigin,
                Some("https://app.example.com"),
            ),
            (
                "https://app.example.com/path",
                NotAnOrigin,
                Some("https://app.example.com"),
            ),
            (
                "https://App.Example.com",
                NotCanonical,
                Some("https://app.example.com"),
            ),
            (
                "HTTPS://app.example.com",
                NotCanonical,
                Some("https://app.example.com"),
            ),
            (
                "https://app.example.com:443",
                NotCanonical,
                Some("https://app.example.com"),
            ),
            (
                "http://app.example.com:80",
                NotCanonical,
                Some("http://app.example.com"),
            ),
            (
                "https://user:pw@app.example.com",
                NotAnOrigin,
                Some("https://app.example.com"),
            ),
            (
                "https://app.example.com?x=1",
                NotAnOrigin,
                Some("https://app.example.com"),
            ),
            (
                "https://bücher.example",
                NonAscii,
                Some("https://xn--bcher-kva.example"),
            ),
            (
                "app.example.com",
                NotAnOrigin,
                Some("https://app.example.com"),
            ),
            ("https://a..example.com", NotAnOrigin, None),
            ("https://*foo.com", MalformedWildcard, None),
            ("*.example.com", NotAnOrigin, Some("https://*.example.com")),
            ("https://*.*.example.com", MalformedWildcard, None),
            ("https://a.*.example.com", MalformedWildcard, None),
            ("https://*", MalformedWildcard, None),
            ("file://", FileOrigin, None),
            ("file:///home/me/index.html", FileOrigin, None),
            ("https://app.example.com:8o", NotAnOrigin, None),
            ("https://app.example.com:65536", NotAnOrigin, None),
            (
                "https://app.example.com:0080",
                NotCanonical,
                Some("https://app.example.com:80"),
            ),
            ("https://*.127.0.0.1", MalformedWildcard, None),
            (" https://a.example", NotAnOrigin, Some("https://a.example")),
        ];
        for (input, kind, fix) in cases {
            assert_eq!(err(input), (kind, fix.map(str::to_owned)), "{input}");
        }
    }

    #[test]
    fn request_origins_follow_the_serialized_grammar() {
        for good in [
            "https://a.example",
            "http://localhost:3000",
            "http://[::1]:8080",
            "capacitor://localhost",
            "http://127.0.0.1:0",
        ] {
            assert!(parse_request_origin(good.as_bytes()).is_ok(), "{good}");
        }
        for bad in [
            "",
            "https://",
            "https://A.example",
            "HTTPS://a.example",
            "https://a.example/",
            "https://a.example:443",
            "https://a.example:0443",
            "https://a.example:99999",
            "https://a..example",
            "https://a.example%2f",
            "https://a.example\0",
            "https://a.example`x",
            "https://user@a.example",
            "//a.example",
        ] {
            assert_eq!(
                parse_request_origin(bad.as_bytes()),
                Err(OriginSyntax::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(parse_request_origin(b"null"), Err(OriginSyntax::Null));
    }

    #[test]
    fn origin_length_cap_boundary() {
        let host_len = MAX_ORIGIN_LEN - "https://".len();
        let at_cap = format!("https://{}", "a".repeat(host_len));
        assert_eq!(at_cap.len(), MAX_ORIGIN_LEN);
        assert!(parse_request_origin(at_cap.as_bytes()).is_ok());
        let past_cap = format!("{at_cap}a");
        assert_eq!(
            parse_request_origin(past_cap.as_bytes()),
            Err(OriginSyntax::Malformed)
        );
    }

    #[test]
    fn single_pattern_matching() {
        let sub: OriginPattern = "https://*.example.com".parse().unwrap();
        assert!(sub.matches("https://a.example.com"));
        assert!(sub.matches("https://a.b.example.com"));
        assert!(!sub.matches("https://example.com"));
        assert!(!sub.matches("https://evilexample.com"));
        assert!(!sub.matches("http://a.example.com"));
        assert!(!sub.matches("https://a.example.com:8443"));
        let port: OriginPattern = "http://localhost:*".parse().unwrap();
        assert!(port.matches("http://localhost:5173"));
        assert!(port.matches("http://localhost"));
        assert!(!port.matches("http://localhost.evil.com:5173"));
    }
}
