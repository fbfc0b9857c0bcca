//! nginx, best effort: `map $http_origin $var { ... }` allowlists (exact entries
//! and anchored regexes, read by [`super::origin_regex`]), `add_header Access-Control-*` in `server` and
//! `location` blocks (and in `if ($request_method = OPTIONS)` blocks),
//! `proxy_pass` and `upstream` groups, `grpc_pass`, and the TLS to `https://`
//! and `grpcs://` upstreams (`proxy_ssl_*` and `grpc_ssl_*`).

use std::collections::HashMap;

use anyhow::bail;

use super::common::{Notes, PLACEHOLDER_UPSTREAM};
use super::draft::{Draft, Policy, Route, RouteCors, UpstreamTls};

// ---- reading the file ----

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word { text: String, line: usize },
    Semicolon,
    Open,
    Close { line: usize },
}

fn tokenize(text: &str) -> anyhow::Result<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => {
                while chars.peek().is_some_and(|c| *c != '\n') {
                    chars.next();
                }
            }
            ';' => {
                chars.next();
                tokens.push(Token::Semicolon);
            }
            '{' => {
                chars.next();
                tokens.push(Token::Open);
            }
            '}' => {
                chars.next();
                tokens.push(Token::Close { line });
            }
            '"' | '\'' => {
                let quote = c;
                let start = line;
                chars.next();
                let mut word = String::new();
                loop {
                    match chars.next() {
                        None => bail!("line {start}: unterminated quoted string"),
                        Some(c) if c == quote => break,
                        Some('\\') => match chars.next() {
                            Some(next) if next == quote || next == '\\' => word.push(next),
                            Some(next) => {
                                word.push('\\');
                                word.push(next);
                            }
                            None => bail!("line {start}: unterminated quoted string"),
                        },
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            word.push(c);
                        }
                    }
                }
                tokens.push(Token::Word {
                    text: word,
                    line: start,
                });
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, ';' | '{' | '}') {
                        break;
                    }
                    // `'OPTIONS')`: a quote inside a word starts a quoted part.
                    if (c == '"' || c == '\'') && !word.is_empty() {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word { text: word, line });
            }
        }
    }
    Ok(tokens)
}

/// One directive: its name, arguments, line and block.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Directive {
    name: String,
    args: Vec<String>,
    line: usize,
    block: Option<Vec<Directive>>,
}

/// Deepest nesting of blocks read. nginx configurations rarely go past 5
/// (`http { server { location { if { } } } }`); the limit keeps the recursion of
/// the parser, of [`find_all`] and of the tree's drop far from the stack's end.
const MAX_DEPTH: usize = 100;

fn parse(tokens: &[Token]) -> anyhow::Result<Vec<Directive>> {
    let mut at = 0;
    let directives = block(tokens, &mut at, 0)?;
    Ok(directives)
}

/// Reads the directives of a block `depth` levels deep (0: the file itself).
fn block(tokens: &[Token], at: &mut usize, depth: usize) -> anyhow::Result<Vec<Directive>> {
    let top = depth == 0;
    let mut out = Vec::new();
    loop {
        let Some(token) = tokens.get(*at) else {
            if top {
                return Ok(out);
            }
            bail!("a block is not closed (missing `}}`)");
        };
        *at += 1;
        match token {
            Token::Close { line } => {
                if top {
                    bail!("line {line}: `}}` without a block to close");
                }
                return Ok(out);
            }
            Token::Semicolon | Token::Open => {} // stray; nginx would refuse it
            Token::Word { text, line } => {
                let mut args = Vec::new();
                loop {
                    match tokens.get(*at) {
                        None => bail!("line {line}: `{text}` is not ended by `;` or a block"),
                        Some(Token::Word { text, .. }) => {
                            args.push(text.clone());
                            *at += 1;
                        }
                        Some(Token::Semicolon) => {
                            *at += 1;
                            out.push(Directive {
                                name: text.clone(),
                                args,
                                line: *line,
                                block: None,
                            });
                            break;
                        }
                        Some(Token::Open) => {
                            *at += 1;
                            if depth >= MAX_DEPTH {
                                bail!(
                                    "line {line}: blocks nested more than {MAX_DEPTH} deep; nginx configurations are a few levels deep: is a `}}` missing?"
                                );
                            }
                            let inner = block(tokens, at, depth + 1)?;
                            out.push(Directive {
                                name: text.clone(),
                                args,
                                line: *line,
                                block: Some(inner),
                            });
                            break;
                        }
                        Some(Token::Close { .. }) => {
                            bail!("line {line}: `{text}` is not ended by `;`")
                        }
                    }
                }
            }
        }
    }
}

/// Every directive named `name` at any depth.
fn find_all<'d>(directives: &'d [Directive], name: &str, out: &mut Vec<&'d Directive>) {
    for d in directives {
        if d.name == name {
            out.push(d);
        }
        if let Some(inner) = &d.block {
            find_all(inner, name, out);
        }
    }
}

// ---- map $http_origin ----

/// What a `map $http_origin $var` allows.
#[derive(Debug, Default, Clone)]
struct OriginMap {
    origins: Vec<String>,
    /// `default $http_origin`: every origin.
    reflects_any: bool,
    line: usize,
}

fn read_map(map: &Directive, notes: &mut Notes) -> OriginMap {
    let mut out = OriginMap {
        line: map.line,
        ..OriginMap::default()
    };
    let place = format!("line {}", map.line);
    for entry in map.block.as_deref().unwrap_or_default() {
        let key = entry.name.as_str();
        let value = entry.args.first().map(String::as_str).unwrap_or("");
        let at = format!("line {}", entry.line);
        if matches!(key, "hostnames" | "volatile" | "include") {
            continue;
        }
        let allows = value.eq_ignore_ascii_case("$http_origin")
            || (!value.is_empty() && value != "0" && !value.starts_with('$'));
        if key == "default" {
            if value.eq_ignore_ascii_case("$http_origin") {
                notes.add(
                    &at,
                    "`default $http_origin` echoed every origin not listed: the map allowed every origin",
                );
                out.reflects_any = true;
            } else if value == "*" {
                out.origins.push("*".to_owned());
            }
            continue;
        }
        if !allows {
            continue;
        }
        if let Some(regex) = key.strip_prefix('~') {
            let regex = regex.strip_prefix('*').unwrap_or(regex);
            match super::origin_regex::origins(regex) {
                Ok((origins, warnings)) => {
                    for warning in warnings {
                        notes.add(&at, format!("regex {key:?}: {warning}"));
                    }
                    out.origins.extend(origins);
                }
                Err(why) => notes.add(
                    &at,
                    format!(
                        "regex {key:?}: {why}; not imported: list the origins it is meant to match"
                    ),
                ),
            }
        } else if value.eq_ignore_ascii_case("$http_origin") || value == key {
            out.origins.push(key.to_owned());
        } else {
            notes.add(
                &at,
                format!("{key:?} maps to {value:?}, not to $http_origin: read as allowing {key:?}"),
            );
            out.origins.push(key.to_owned());
        }
    }
    if out.origins.is_empty() && !out.reflects_any {
        notes.add(place, "the map allows no origin");
    }
    out
}

// ---- from directives to a corsgate configuration ----

/// `add_header` lines of one context: lowercase name, value, `always`, line.
#[derive(Debug, Default, Clone)]
struct Headers(Vec<(String, String, bool, usize)>);

impl Headers {
    fn of(directives: &[Directive]) -> Headers {
        Headers(
            directives
                .iter()
                .filter(|d| d.name == "add_header" && d.args.len() >= 2)
                .map(|d| {
                    (
                        d.args[0].to_ascii_lowercase(),
                        d.args[1].clone(),
                        d.args.get(2).is_some_and(|a| a == "always"),
                        d.line,
                    )
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<(&str, bool, usize)> {
        self.0
            .iter()
            .find(|(n, ..)| n == name)
            .map(|(_, v, always, line)| (v.as_str(), *always, *line))
    }

    fn has_cors(&self) -> bool {
        self.0
            .iter()
            .any(|(n, ..)| n.starts_with("access-control-"))
    }

    fn varies_on_origin(&self) -> bool {
        self.0.iter().any(|(n, v, ..)| {
            n == "vary"
                && v.split(',')
                    .any(|m| m.trim().eq_ignore_ascii_case("origin"))
        })
    }
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

struct Context<'a> {
    maps: HashMap<String, OriginMap>,
    upstreams: HashMap<String, (Vec<String>, usize)>,
    notes: &'a mut Notes,
}

impl Context<'_> {
    /// The origins an Access-Control-Allow-Origin value allows, and whether the
    /// value depends on the request's origin.
    fn origins_of(&mut self, value: &str, line: usize) -> (Vec<String>, bool) {
        let at = format!("line {line}");
        if value.eq_ignore_ascii_case("$http_origin") {
            self.notes.add(
                at,
                "Access-Control-Allow-Origin $http_origin echoed every origin: imported as \"*\"",
            );
            return (vec!["*".to_owned()], true);
        }
        if let Some(var) = value.strip_prefix('$') {
            return match self.maps.get(var).cloned() {
                Some(map) => {
                    let mut origins = map.origins.clone();
                    if map.reflects_any {
                        origins = vec!["*".to_owned()];
                    }
                    (origins, true)
                }
                None => {
                    self.notes.add(
                        at,
                        format!(
                            "Access-Control-Allow-Origin comes from ${var}, which this import cannot follow: no origin imported; list them in allow_origins"
                        ),
                    );
                    (Vec::new(), true)
                }
            };
        }
        if value.is_empty() {
            return (Vec::new(), false);
        }
        (vec![value.to_owned()], false)
    }

    /// The policy of a context: `actual` are the headers of ordinary responses,
    /// `preflight` those of an `if ($request_method = OPTIONS)` block.
    fn policy(
        &mut self,
        actual: &Headers,
        preflight: Option<&(Headers, usize)>,
        reject: Option<usize>,
    ) -> Policy {
        let mut policy = Policy::default();
        let mut origins: Vec<String> = Vec::new();
        let mut dynamic = false;
        let mut first_line = 0;
        let mut sets = Vec::new();
        for headers in std::iter::once(actual).chain(preflight.map(|p| &p.0)) {
            if let Some((value, _, line)) = headers.get("access-control-allow-origin") {
                let (list, depends) = self.origins_of(value, line);
                dynamic |= depends;
                if first_line == 0 {
                    first_line = line;
                }
                sets.push(list.clone());
                for origin in list {
                    if !origins.contains(&origin) {
                        origins.push(origin);
                    }
                }
            }
        }
        if sets.len() == 2 && sets[0] != sets[1] {
            self.notes.add(
                format!("line {first_line}"),
                "preflights and other responses allowed different origins: imported as both lists together",
            );
        }
        let place = format!("line {first_line}");
        if !origins.is_empty() {
            policy.allow_origins = Some(self.notes.origins(&place, &origins));
        }
        if let Some((_, always, line)) = actual.get("access-control-allow-origin") {
            if !always {
                self.notes.add(
                    format!("line {line}"),
                    "without `always`, nginx sent no CORS headers with error responses (4xx, 5xx), so pages saw a CORS failure instead of the error; corsgate adds them to every response",
                );
            }
            if dynamic && !actual.varies_on_origin() {
                self.notes.add(
                    format!("line {line}"),
                    "Access-Control-Allow-Origin depended on the Origin, but no `Vary: Origin` was added: caches could hand one origin's answer to another; corsgate always adds it",
                );
            }
        }
        let both = |name: &str| {
            preflight
                .and_then(|p| p.0.get(name))
                .or_else(|| actual.get(name))
        };
        let credentials = |headers: Option<&Headers>| {
            headers
                .and_then(|h| h.get("access-control-allow-credentials"))
                .map(|(v, ..)| v.eq_ignore_ascii_case("true"))
        };
        let on_actual = credentials(Some(actual));
        let on_preflight = credentials(preflight.map(|p| &p.0));
        if let (Some(a), Some(p)) = (on_actual, on_preflight) {
            if a != p {
                self.notes.add(
                    format!("line {first_line}"),
                    "credentials were allowed on preflights or on other responses but not both: imported as allowed",
                );
            }
        }
        if on_actual == Some(true) || on_preflight == Some(true) {
            policy.allow_credentials = Some(true);
        }
        if let Some((value, _, line)) = both("access-control-allow-methods") {
            policy.allow_methods =
                self.notes
                    .methods(&format!("line {line}"), &split_list(value), false);
        }
        if let Some((value, _, line)) = both("access-control-allow-headers") {
            policy.allow_headers =
                self.notes
                    .headers(&format!("line {line}"), &split_list(value), false);
        }
        if let Some((value, _, line)) = actual.get("access-control-expose-headers") {
            policy.expose_headers =
                self.notes
                    .expose(&format!("line {line}"), &split_list(value), true);
        }
        if let Some((value, _, line)) = both("access-control-max-age") {
            match value.trim().parse::<i64>() {
                Ok(seconds) => {
                    policy.max_age = self.notes.max_age(&format!("line {line}"), seconds);
                }
                Err(_) => self.notes.add(
                    format!("line {line}"),
                    format!(
                        "Access-Control-Max-Age {value:?} is not a number of seconds: not imported"
                    ),
                ),
            }
        }
        if let Some((value, ..)) = both("access-control-allow-private-network") {
            if value.eq_ignore_ascii_case("true") {
                policy.allow_private_network = Some(true);
            }
        }
        if let Some(line) = reject {
            self.notes.add(
                format!("line {line}"),
                "`return 403` for origins the map does not allow: imported as on_disallowed = \"reject\"; nginx also refused requests without any Origin (same-origin page loads, server-to-server calls), which corsgate lets through",
            );
            policy.on_disallowed = Some("reject");
        }
        if let Some((_, line)) = preflight {
            self.notes.add(
                format!("line {line}"),
                "`if ($request_method = OPTIONS)` answered every OPTIONS request (preflight or not, whatever its origin, method and headers) with these headers; corsgate answers a preflight itself only after checking them, and forwards other OPTIONS requests",
            );
        }
        let how = if dynamic {
            "Echoing every origin with credentials let any site read users' data;"
        } else {
            "Browsers refuse `*` with credentials, so credentialed requests never worked;"
        };
        self.notes
            .any_with_credentials(&format!("line {first_line}"), &policy, how);
        policy
    }

    /// The upstream of a `proxy_pass` or `grpc_pass` (and whether the prefix
    /// is stripped).
    fn upstream(
        &mut self,
        pass: Option<(&Directive, Pass)>,
        at: &str,
    ) -> (String, Option<String>, bool) {
        let placeholder = |why: String| (PLACEHOLDER_UPSTREAM.to_owned(), Some(why), false);
        let Some((directive, kind)) = pass else {
            self.notes.add(
                at,
                "upstream unknown (no proxy_pass here): set route.upstream",
            );
            return placeholder("placeholder: set the API's address".to_owned());
        };
        let name = kind.directive();
        let target = directive.args.first().cloned().unwrap_or_default();
        let place = format!("line {}", directive.line);
        if target.contains('$') {
            self.notes.add(
                &place,
                format!("{name} {target} uses variables: upstream unknown, set route.upstream"),
            );
            return placeholder(format!("placeholder: was {name} {target}"));
        }
        let (written, rest) = match target.split_once("://") {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => (kind.default_scheme().to_owned(), target.as_str()),
        };
        // grpc:// is HTTP/2 without TLS, which corsgate speaks to an h2c://
        // upstream (prior knowledge, RFC 9113 section 3.3); grpcs:// is
        // HTTP/2 over TLS, which an https:// upstream picks by ALPN.
        let scheme = match (kind, written.as_str()) {
            (Pass::Proxy, "http") => "http",
            (Pass::Grpc, "grpc") => "h2c",
            (Pass::Proxy, "https") | (Pass::Grpc, "grpcs") => "https",
            _ => {
                self.notes.add(
                    &place,
                    format!("{name} with the scheme {written}:// has no corsgate equivalent: kept as written, so check refuses it"),
                );
                written.as_str()
            }
        }
        .to_owned();
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let strip = match path {
            "" => false,
            "/" => true,
            other => {
                self.notes.add(
                    &place,
                    format!(
                        "{name} with the path {other:?} rewrote request paths, which corsgate routes do not: not carried over"
                    ),
                );
                false
            }
        };
        if let Some((servers, line)) = self.upstreams.get(authority).cloned() {
            if servers.len() > 1 {
                self.notes.add(
                    format!("line {line}"),
                    format!(
                        "upstream {authority} has {} servers; a corsgate route has one upstream: the first is used",
                        servers.len()
                    ),
                );
            }
            let Some(first) = servers.first().filter(|s| !s.starts_with("unix:")) else {
                self.notes.add(
                    format!("line {line}"),
                    format!("upstream {authority} has no TCP server: set route.upstream"),
                );
                return placeholder(format!("placeholder: was upstream {authority}"));
            };
            return (format!("{scheme}://{first}"), None, strip);
        }
        let is_name = !authority.contains(':')
            && !authority.contains('.')
            && authority != "localhost"
            && !authority.is_empty();
        if is_name {
            self.notes.add(
                &place,
                format!(
                    "upstream unknown: {authority} is an upstream group this file does not define; set route.upstream to its address"
                ),
            );
            return (
                PLACEHOLDER_UPSTREAM.to_owned(),
                Some(format!("placeholder: was {name} {target}")),
                strip,
            );
        }
        (format!("{scheme}://{authority}"), None, strip)
    }

    /// `[route.upstream_tls]` of an `https://` upstream, from the
    /// `proxy_ssl_*` (or `grpc_ssl_*`) directives in force for the location:
    /// its own, else its server block's, else the `http` block's (nginx
    /// inherits them in that order). `None` when nothing is to be set.
    fn upstream_tls(
        &mut self,
        kind: Pass,
        scopes: &[&[Directive]],
        at: &str,
    ) -> Option<UpstreamTls> {
        let prefix = kind.ssl_prefix();
        let find = |suffix: &str| {
            let name = format!("{prefix}{suffix}");
            scopes
                .iter()
                .find_map(|scope| scope.iter().find(|d| d.name == name))
        };
        let mut tls = UpstreamTls::default();
        let file = |notes: &mut Notes, suffix: &str, key: &str| -> Option<String> {
            let directive = find(suffix)?;
            let value = directive.args.first()?.clone();
            let place = format!("line {}", directive.line);
            if value.contains('$') {
                notes.add(
                    place,
                    format!("{prefix}{suffix} {value} uses variables: not carried over; set route.upstream_tls.{key}"),
                );
                return None;
            }
            if !value.starts_with('/') {
                notes.add(
                    place,
                    format!("{prefix}{suffix} {value}: nginx read a relative path from its prefix directory, corsgate reads it from the configuration file's directory; check that {key} points to the file"),
                );
            }
            Some(value)
        };
        tls.ca_file = file(self.notes, "trusted_certificate", "ca_file");
        tls.client_cert_file = file(self.notes, "certificate", "client_cert_file");
        tls.client_key_file = file(self.notes, "certificate_key", "client_key_file");
        match (&tls.client_cert_file, &tls.client_key_file) {
            (Some(_), None) | (None, Some(_)) => {
                self.notes.add(
                    at,
                    format!("{prefix}certificate and {prefix}certificate_key go together: the client certificate is not carried over"),
                );
                tls.client_cert_file = None;
                tls.client_key_file = None;
            }
            _ => {}
        }
        if let Some(directive) = find("name") {
            let value = directive.args.first().cloned().unwrap_or_default();
            if value.contains('$') {
                // $proxy_host (nginx's default) is the proxy_pass host, which
                // corsgate checks and sends by default too.
                if value != "$proxy_host" {
                    self.notes.add(
                        format!("line {}", directive.line),
                        format!("{prefix}name {value} uses variables: not carried over; corsgate checks the upstream's host, or route.upstream_tls.server_name"),
                    );
                }
            } else {
                tls.server_name = Some(value);
            }
        }
        if let Some(directive) = find("server_name").filter(|d| first_is(d, "off")) {
            self.notes.add(
                format!("line {}", directive.line),
                format!("{prefix}server_name off: corsgate always sends SNI to an https:// upstream (server_name, else the upstream's host)"),
            );
        }
        match find("verify") {
            Some(directive) if first_is(directive, "on") => {}
            Some(directive) => self.notes.add(
                format!("line {}", directive.line),
                format!("{prefix}verify off: refused; corsgate always verifies an https:// upstream's certificate and name, against the system's roots or route.upstream_tls.ca_file: set ca_file to the CA that signed the upstream's certificate"),
            ),
            None => self.notes.add(
                at,
                format!("nginx did not verify the upstream's certificate ({prefix}verify is off by default); corsgate always verifies it, against the system's roots or route.upstream_tls.ca_file: set ca_file if a private CA signed it"),
            ),
        }
        // The rest (protocols, ciphers, session reuse, CRL, ...) have no
        // corsgate key: rustls' TLS 1.3 and 1.2 suites, no CRL.
        const CARRIED: &[&str] = &[
            "trusted_certificate",
            "certificate",
            "certificate_key",
            "name",
            "server_name",
            "verify",
        ];
        let mut others: Vec<&Directive> = scopes
            .iter()
            .flat_map(|scope| scope.iter())
            .filter(|d| {
                d.name
                    .strip_prefix(prefix)
                    .is_some_and(|rest| !CARRIED.contains(&rest))
            })
            .collect();
        others.sort_by_key(|d| d.line);
        others.dedup_by_key(|d| d.line);
        for directive in others {
            self.notes.add(
                format!("line {}", directive.line),
                format!("{}: not carried over (corsgate speaks TLS 1.3 and 1.2 with rustls' default suites to upstreams)", directive.name),
            );
        }
        (!tls.is_empty()).then_some(tls)
    }
}

/// The directive that names a location's upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// `proxy_pass http://` or `https://`.
    Proxy,
    /// `grpc_pass grpc://` (or no scheme) or `grpcs://`.
    Grpc,
}

impl Pass {
    fn directive(self) -> &'static str {
        match self {
            Pass::Proxy => "proxy_pass",
            Pass::Grpc => "grpc_pass",
        }
    }

    fn default_scheme(self) -> &'static str {
        match self {
            Pass::Proxy => "http",
            Pass::Grpc => "grpc",
        }
    }

    /// The prefix of the directives about TLS to its upstream.
    fn ssl_prefix(self) -> &'static str {
        match self {
            Pass::Proxy => "proxy_ssl_",
            Pass::Grpc => "grpc_ssl_",
        }
    }
}

fn first_is(directive: &Directive, value: &str) -> bool {
    directive
        .args
        .first()
        .is_some_and(|a| a.eq_ignore_ascii_case(value))
}

/// Whether an `if` condition tests for the OPTIONS method.
fn is_options_test(args: &[String]) -> bool {
    let text = args.join(" ");
    text.contains("$request_method") && text.to_ascii_uppercase().contains("OPTIONS")
}

/// `if ($var = "")` where `$var` is a map over `$http_origin`: the map's "not
/// allowed" case.
fn is_disallowed_test(args: &[String], maps: &HashMap<String, OriginMap>) -> bool {
    let words: Vec<&str> = args
        .iter()
        .map(|a| a.trim_matches(|c| c == '(' || c == ')'))
        .filter(|a| !a.is_empty())
        .collect();
    match words.as_slice() {
        [var, "="] | [var, "=", ""] => var.strip_prefix('$').is_some_and(|v| maps.contains_key(v)),
        [var] => var.strip_prefix("!$").is_some_and(|v| maps.contains_key(v)),
        _ => false,
    }
}

fn returns(directives: &[Directive], code: &str) -> bool {
    directives
        .iter()
        .any(|d| d.name == "return" && d.args.first().is_some_and(|c| c == code))
}

pub(super) fn import(text: &str, notes: &mut Notes) -> anyhow::Result<Draft> {
    let directives = parse(&tokenize(text)?)?;

    let mut maps = HashMap::new();
    let mut all_maps = Vec::new();
    find_all(&directives, "map", &mut all_maps);
    for map in &all_maps {
        let source = map.args.first().map(|s| s.to_ascii_lowercase());
        let Some(var) = map.args.get(1).and_then(|v| v.strip_prefix('$')) else {
            continue;
        };
        if source.as_deref() != Some("$http_origin") {
            continue;
        }
        let read = read_map(map, notes);
        maps.insert(var.to_owned(), read);
    }
    let mut upstreams = HashMap::new();
    let mut all_upstreams = Vec::new();
    find_all(&directives, "upstream", &mut all_upstreams);
    for upstream in all_upstreams {
        let Some(name) = upstream.args.first() else {
            continue;
        };
        let servers = upstream
            .block
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter(|d| d.name == "server")
            .filter_map(|d| d.args.first().cloned())
            .collect();
        upstreams.insert(name.clone(), (servers, upstream.line));
    }

    // The `http` block's own directives, which its servers inherit.
    let http_level: &[Directive] = directives
        .iter()
        .find(|d| d.name == "http")
        .and_then(|d| d.block.as_deref())
        .unwrap_or_default();
    let mut servers: Vec<&Directive> = Vec::new();
    find_all(&directives, "server", &mut servers);
    servers.retain(|s| s.block.is_some());
    let top_level;
    let server_blocks: Vec<&[Directive]> = if servers.is_empty() {
        // A snippet: locations at the top level.
        top_level = directives.clone();
        vec![top_level.as_slice()]
    } else {
        servers
            .iter()
            .map(|s| s.block.as_deref().unwrap_or_default())
            .collect()
    };
    if server_blocks.len() > 1 {
        notes.add(
            format!("line {}", servers[1].line),
            "several server blocks: their locations are imported together as routes of one corsgate listener; set route.host where they differ",
        );
    }

    let mut cx = Context {
        maps,
        upstreams,
        notes,
    };
    let mut draft = Draft::default();
    let mut used_maps = false;
    for (index, server) in server_blocks.iter().enumerate() {
        let server_headers = Headers::of(server);
        if server_headers.has_cors() {
            used_maps |= uses_map(&server_headers, &cx.maps);
            let policy = cx.policy(&server_headers, None, None);
            if index == 0 {
                draft.server_cors = Some(policy);
            } else {
                cx.notes.add(
                    format!("line {}", servers[index].line),
                    "CORS headers of this server block are not imported (only the first server's); set them per route",
                );
            }
        }
        for location in server.iter().filter(|d| d.name == "location") {
            let at = format!("line {}", location.line);
            let (modifier, path) = match location.args.as_slice() {
                [path] => ("", path.as_str()),
                [modifier, path] => (modifier.as_str(), path.as_str()),
                _ => continue,
            };
            match modifier {
                "" | "^~" => {}
                "=" => cx.notes.add(
                    &at,
                    format!("exact-match location = {path}: imported as a prefix route"),
                ),
                _ => {
                    cx.notes.add(
                        &at,
                        format!("location {modifier} {path}: regex locations are not imported; add routes by path prefix"),
                    );
                    continue;
                }
            }
            if path.starts_with('@') {
                continue;
            }
            let body = location.block.as_deref().unwrap_or_default();
            let headers = Headers::of(body);
            let mut preflight = None;
            let mut reject = None;
            for test in body.iter().filter(|d| d.name == "if") {
                let inner = test.block.as_deref().unwrap_or_default();
                if is_options_test(&test.args) {
                    preflight = Some((Headers::of(inner), test.line));
                } else if is_disallowed_test(&test.args, &cx.maps) && returns(inner, "403") {
                    reject = Some(test.line);
                } else if Headers::of(inner).has_cors() {
                    cx.notes.add(
                        format!("line {}", test.line),
                        "CORS headers under a condition this import cannot evaluate: not imported",
                    );
                }
            }
            let has_cors = headers.has_cors()
                || preflight.as_ref().is_some_and(|(h, _)| h.has_cors())
                || reject.is_some();
            let pass = body
                .iter()
                .find(|d| d.name == "proxy_pass")
                .map(|d| (d, Pass::Proxy))
                .or_else(|| {
                    body.iter()
                        .find(|d| d.name == "grpc_pass")
                        .map(|d| (d, Pass::Grpc))
                });
            if !has_cors && pass.is_none() {
                continue;
            }
            let cors = if has_cors {
                used_maps |= uses_map(&headers, &cx.maps)
                    || preflight
                        .as_ref()
                        .is_some_and(|(h, _)| uses_map(h, &cx.maps));
                if draft.server_cors.is_some() && headers.has_cors() {
                    cx.notes.add(
                        &at,
                        "nginx drops the server block's add_header lines in a location that has its own; a corsgate route inherits [server.cors] key by key: keys this location does not set come from [server.cors]",
                    );
                }
                // Without add_header of its own, a location inherits the server's.
                let actual = if headers.0.is_empty() {
                    Headers::of(server)
                } else {
                    headers
                };
                RouteCors::Own(cx.policy(&actual, preflight.as_ref(), reject))
            } else {
                RouteCors::Inherit
            };
            let (upstream, upstream_comment, strip_prefix) = cx.upstream(pass, &at);
            if let Some((_, kind)) = pass.filter(|_| upstream.starts_with("https://")) {
                let scopes = [body, *server, http_level];
                if let Some(tls) = cx.upstream_tls(kind, &scopes, &at) {
                    draft.upstream_tls.push((draft.routes.len(), tls));
                }
            }
            let trimmed = path.trim_end_matches('/');
            draft.routes.push(Route {
                path: if trimmed.is_empty() {
                    "/".to_owned()
                } else {
                    trimmed.to_owned()
                },
                upstream,
                host: None,
                upstream_comment,
                strip_prefix,
                cors,
            });
        }
    }
    if !used_maps {
        let mut unused: Vec<(&String, &OriginMap)> = cx.maps.iter().collect();
        unused.sort_by_key(|(_, m)| m.line);
        if let Some((var, map)) = unused.first() {
            cx.notes.add(
                format!("line {}", map.line),
                format!(
                    "no add_header in this file uses ${var}: its origins are imported as [server.cors] allow_origins"
                ),
            );
            let origins = if map.reflects_any {
                vec!["*".to_owned()]
            } else {
                map.origins.clone()
            };
            let place = format!("line {}", map.line);
            let policy = draft.server_cors.get_or_insert_with(Policy::default);
            policy.allow_origins = Some(cx.notes.origins(&place, &origins));
        }
    }
    if draft.routes.is_empty() {
        cx.notes.add(
            "file",
            "no location with proxy_pass or CORS headers: one route for / with a placeholder upstream; set route.upstream",
        );
        draft.routes.push(Route {
            path: "/".to_owned(),
            upstream: PLACEHOLDER_UPSTREAM.to_owned(),
            host: None,
            upstream_comment: Some("placeholder: set the API's address".to_owned()),
            strip_prefix: false,
            cors: RouteCors::Inherit,
        });
    }
    if draft.server_cors.is_none() && draft.routes.iter().all(|r| r.cors == RouteCors::Inherit) {
        cx.notes.add(
            "file",
            "no Access-Control-* header found: CORS stays closed",
        );
    }
    // In the order of the file; notes about the whole file last.
    cx.notes.list.sort_by_key(|note| {
        note.place
            .strip_prefix("line ")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(usize::MAX)
    });
    Ok(draft)
}

fn uses_map(headers: &Headers, maps: &HashMap<String, OriginMap>) -> bool {
    headers
        .get("access-control-allow-origin")
        .and_then(|(v, ..)| v.strip_prefix('$'))
        .is_some_and(|v| maps.contains_key(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_of_an_if_condition() {
        let tokens = tokenize("if ($request_method = 'OPTIONS') { return 204; }").unwrap();
        let words: Vec<String> = tokens
            .iter()
            .filter_map(|t| match t {
                Token::Word { text, .. } => Some(text.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            words,
            [
                "if",
                "($request_method",
                "=",
                "OPTIONS",
                ")",
                "return",
                "204"
            ]
        );
    }
}
