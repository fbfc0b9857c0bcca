//! What runs: a validated, precomputed policy.

use std::collections::HashSet;
use std::sync::Arc;

use foldhash::fast::RandomState;
use http::{HeaderValue, StatusCode};

use crate::client_origins::ClientRules;
use crate::config::{CorsConfig, List, OnDisallowed};
use crate::diagnostic::{CompileError, Diagnostic, DiagnosticKind as Kind};
use crate::fetch;
use crate::matcher::OriginSet;
use crate::origin::{OriginPattern, PatternErrorKind, PatternKind};
use crate::template::{PreflightParts, PreflightTemplate};
use crate::vary::{VARY_ORIGIN, VARY_PREFLIGHT, VARY_PREFLIGHT_PN};

/// Highest `max_age` accepted: Firefox's cap, 24 hours.
pub const MAX_AGE_LIMIT: i64 = 86_400;

/// Highest `max_age` Chromium honours (2 hours); above it, a warning.
pub const MAX_AGE_CHROMIUM: i64 = 7_200;

/// A compiled CORS policy: the allowlists indexed, the response header values
/// computed once. Deciding on a request allocates nothing.
///
/// ```
/// use corsgate_policy::{CorsConfig, Policy};
/// use http::{HeaderMap, Method};
///
/// let policy = Policy::compile(
///     &CorsConfig::new().allow_origins("https://app.example.com").allow_methods("PUT"),
/// ).unwrap();
///
/// let mut request = HeaderMap::new();
/// request.insert("origin", "https://app.example.com".parse().unwrap());
/// request.insert("access-control-request-method", "PUT".parse().unwrap());
/// let decision = policy.decide(&Method::OPTIONS, &request);
/// assert!(decision.is_allowed());
/// assert_eq!(decision.response_status(), Some(http::StatusCode::NO_CONTENT));
/// ```
#[derive(Debug, Clone)]
pub struct Policy {
    pub(crate) origins: OriginSet,
    pub(crate) credentials: bool,
    pub(crate) methods: NameSet,
    pub(crate) headers: NameSet,
    pub(crate) expose: Option<HeaderValue>,
    pub(crate) private_network: bool,
    pub(crate) on_disallowed: OnDisallowed,
    pub(crate) preflight_status: StatusCode,
    pub(crate) debug: bool,
    pub(crate) debug_methods: Option<HeaderValue>,
    pub(crate) debug_headers: Option<HeaderValue>,
    pub(crate) vary_actual: Option<&'static HeaderValue>,
    pub(crate) vary_preflight: &'static HeaderValue,
    /// The response headers of allowed preflights, ready-made.
    pub(crate) preflight_template: Option<Arc<PreflightTemplate>>,
    /// Per-client origins (`clients`): `None` on a route without.
    pub(crate) clients: Option<ClientRules>,
    warnings: Vec<Diagnostic>,
    effective: CorsConfig,
}

/// A set of names: `*`, or a list sorted by (length, first eight bytes, bytes),
/// with each name's length and first eight bytes as one word beside it
/// ([`fetch::head_word`]): a look-up compares two integers per name of the list,
/// and bytes only past the first eight.
#[derive(Debug, Clone, Default)]
pub(crate) struct NameSet {
    pub(crate) any: bool,
    /// Header names lowercase, methods as written; in the order of `keys` once
    /// [`NameSet::finish`] has run.
    pub(crate) names: Vec<Box<[u8]>>,
    /// (length, head word) of each name.
    keys: Vec<(usize, u64)>,
    /// The names as [`NameSet::listed_at`] compares them, by first byte.
    prefixes: Vec<Prefix>,
}

/// A name of a set as the start of a request's list is compared with it: its
/// first eight bytes (zero-filled), the mask of those that are the name's, and
/// its last eight bytes when it is longer.
#[derive(Debug, Clone, Copy)]
struct Prefix {
    head: u64,
    mask: u64,
    /// `0x20` at the letters of `head`: ORed into a request's bytes, it
    /// lowercases those letters and makes no other byte equal to one.
    case: u64,
    last: u64,
    /// The same for `last`.
    last_case: u64,
    len: usize,
    /// Its place in `names`, for the bytes between the first and last eight.
    index: usize,
}

/// Up to this many names, a look-up walks the list (stopping at the first
/// longer name) instead of bisecting it.
const FEW_NAMES: usize = 16;

impl NameSet {
    /// Sorts the names and computes their keys, once all are in.
    pub(crate) fn finish(&mut self) {
        let key = |name: &[u8]| (name.len(), fetch::head_word(name));
        self.names
            .sort_unstable_by(|a, b| key(a).cmp(&key(b)).then_with(|| a.cmp(b)));
        self.keys = self.names.iter().map(|name| key(name)).collect();
        let last = |name: &[u8]| {
            name.len()
                .checked_sub(8)
                .and_then(|at| fetch::word_at(name, at))
                .unwrap_or(0)
        };
        let letters = |word: u64| {
            u64::from_le_bytes(
                word.to_le_bytes()
                    .map(|b| if b.is_ascii_alphabetic() { 0x20 } else { 0 }),
            )
        };
        self.prefixes = self
            .names
            .iter()
            .enumerate()
            .map(|(index, name)| Prefix {
                head: fetch::head_word(name),
                mask: match name.len() {
                    0..8 => !(u64::MAX << (8 * name.len())),
                    _ => u64::MAX,
                },
                case: letters(fetch::head_word(name)),
                last: last(name),
                last_case: letters(last(name)),
                len: name.len(),
                index,
            })
            .collect();
        self.prefixes.sort_by_key(|p| p.head as u8);
    }

    /// Reads from `i` at most `most` elements of a request's list in a row
    /// that are names of the set (lowercase), ignoring ASCII case, each
    /// followed by a comma or the end: the usual list, as browsers send it,
    /// each name matched from its first word without finding its end first.
    /// Returns where the run stopped (the end, or where an element or
    /// separators start) and how many names it read.
    #[inline(always)]
    pub(crate) fn listed_run(&self, value: &[u8], mut i: usize, most: usize) -> (usize, usize) {
        let mut count = 0;
        if self.prefixes.is_empty() {
            // `allow_headers = "*"` alone: nothing is listed.
            return (i, 0);
        }
        let few = self.prefixes.len() <= FEW_NAMES;
        'names: while count < most {
            let Some(rest) = value.get(i..) else {
                break;
            };
            let word = fetch::head_word(rest);
            let from = if few {
                0
            } else {
                let first = (word as u8).to_ascii_lowercase();
                self.prefixes.partition_point(|p| (p.head as u8) < first)
            };
            for p in self.prefixes.get(from..).unwrap_or_default() {
                // Letters compared with their case bit set: `A` and `a` (and
                // no other byte) give `a`.
                if (word | p.case) & p.mask != p.head {
                    continue;
                }
                if p.len > 8 && !self.tail_at(p, rest) {
                    continue;
                }
                let next = rest.get(p.len);
                // The comma first, one comparison: what follows a name in
                // the lists browsers send.
                if next == Some(&b',') {
                    // A space after the comma (rarely sent) ends the run:
                    // the caller skips it and starts another.
                    count += 1;
                    i += p.len + 1;
                    continue 'names;
                }
                match next {
                    None => return (value.len(), count + 1),
                    // Whitespace before the comma: read by the caller.
                    Some(b' ' | b'\t') => break 'names,
                    // A longer name: perhaps another of the set.
                    Some(_) => {}
                }
            }
            break;
        }
        (i, count)
    }

    /// Whether `rest` holds the bytes of `p` (longer than eight) past its first
    /// eight, ignoring ASCII case.
    #[inline(always)]
    fn tail_at(&self, p: &Prefix, rest: &[u8]) -> bool {
        let n = p.len;
        if fetch::word_at(rest, n - 8).map(|w| w | p.last_case) != Some(p.last) {
            return false;
        }
        let folded = |i: usize| fetch::word_at(rest, i).map(fetch::fold_word);
        if n <= 16 {
            return true;
        }
        let Some(stored) = self.names.get(p.index) else {
            return false;
        };
        let mut i = 8;
        while i + 8 < n {
            if folded(i) != fetch::word_at(stored, i) {
                return false;
            }
            i += 8;
        }
        true
    }

    /// Whether the set holds `name`, byte for byte.
    pub(crate) fn contains_exact(&self, name: &[u8]) -> bool {
        self.find(name, fetch::head_word(name), false)
    }

    /// Whether the set holds `name` ignoring ASCII case (the names are
    /// lowercase), given the name's [`fetch::head_word`].
    pub(crate) fn contains_ignore_case(&self, name: &[u8], head: u64) -> bool {
        !self.keys.is_empty()
            && fetch::fold_case(head).is_some_and(|key| self.find(name, key, true))
    }

    #[inline(always)]
    fn find(&self, name: &[u8], key: u64, fold: bool) -> bool {
        let n = name.len();
        if self.keys.len() <= FEW_NAMES {
            for (i, (len, k)) in self.keys.iter().enumerate() {
                if *len == n {
                    if *k == key && (n <= 8 || self.tail_matches(i, name, fold)) {
                        return true;
                    }
                } else if *len > n {
                    return false;
                }
            }
            return false;
        }
        let start = self.keys.partition_point(|probe| *probe < (n, key));
        let same = self.keys.get(start..).unwrap_or_default();
        same.iter()
            .take_while(|probe| **probe == (n, key))
            .enumerate()
            .any(|(i, _)| n <= 8 || self.tail_matches(start + i, name, fold))
    }

    /// Whether the `i`th name, whose head word matched, matches past it too.
    #[inline(always)]
    fn tail_matches(&self, i: usize, name: &[u8], fold: bool) -> bool {
        self.names
            .get(i)
            .is_some_and(|stored| fetch::tails_match(stored, name, fold))
    }
}

/// One layer of configuration for [`Policy::compile_layered`]: a table and the
/// path it was read from.
///
/// Layers are given topmost first; each key comes from the first layer that sets
/// it, and problems with it are reported at that layer's path.
///
/// ```
/// use corsgate_policy::{ConfigLayer, CorsConfig, Policy};
///
/// let server = CorsConfig::new().allow_origins("https://app.example.com");
/// let route = CorsConfig::new().allow_methods("PUT");
/// let policy = Policy::compile_layered(&[
///     ConfigLayer::new(&route, "route[0].cors"),
///     ConfigLayer::new(&server, "server.cors"),
/// ]).unwrap();
/// assert!(!policy.is_closed());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ConfigLayer<'a> {
    config: &'a CorsConfig,
    path: &'a str,
}

impl<'a> ConfigLayer<'a> {
    /// A layer read from `path` (for example `"route[2].cors"`; `""` for none).
    pub fn new(config: &'a CorsConfig, path: &'a str) -> Self {
        Self { config, path }
    }
}

impl Default for Policy {
    /// The closed policy: no origin allowed, no CORS header ever sent.
    fn default() -> Self {
        Policy::closed()
    }
}

impl Policy {
    /// The closed policy, what an empty configuration compiles to: no origin
    /// allowed, no CORS header ever sent, preflights refused.
    pub fn closed() -> Policy {
        Policy {
            origins: OriginSet::default(),
            credentials: false,
            methods: NameSet::default(),
            headers: NameSet::default(),
            expose: None,
            private_network: false,
            on_disallowed: OnDisallowed::Omit,
            preflight_status: StatusCode::NO_CONTENT,
            debug: false,
            debug_methods: None,
            debug_headers: None,
            vary_actual: None,
            vary_preflight: &VARY_PREFLIGHT,
            preflight_template: None,
            clients: None,
            warnings: Vec::new(),
            effective: CorsConfig::default(),
        }
    }
}

impl Policy {
    /// Validates `config` and compiles it. Every problem is reported at once.
    pub fn compile(config: &CorsConfig) -> Result<Policy, CompileError> {
        Self::compile_layered(&[ConfigLayer::new(config, "")])
    }

    /// Compiles layers merged field by field (topmost first), reporting each
    /// problem at the path of the layer its key came from.
    pub fn compile_layered(layers: &[ConfigLayer<'_>]) -> Result<Policy, CompileError> {
        Compiler::new(layers).run()
    }

    /// Warnings found while compiling: valid, but worth a look.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// The configuration this policy was compiled from, merged and with every key
    /// set to its effective value.
    pub fn effective_config(&self) -> &CorsConfig {
        &self.effective
    }

    /// Whether no origin is allowed: the route emits no CORS headers.
    pub fn is_closed(&self) -> bool {
        self.origins.is_empty() && self.clients.is_none()
    }

    /// Whether credentialed requests are allowed.
    pub fn allows_credentials(&self) -> bool {
        self.credentials
    }

    /// Whether debug mode is on.
    pub fn is_debug(&self) -> bool {
        self.debug
    }

    /// What happens to actual requests from disallowed origins.
    pub fn on_disallowed(&self) -> OnDisallowed {
        self.on_disallowed
    }
}

pub(crate) struct Compiler<'a> {
    layers: &'a [ConfigLayer<'a>],
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl<'a> Compiler<'a> {
    pub(crate) fn new(layers: &'a [ConfigLayer<'a>]) -> Self {
        Self {
            layers,
            diagnostics: Vec::new(),
        }
    }

    /// The value of a key and the path of the layer it came from.
    pub(crate) fn get<T: Clone>(
        &self,
        key: &str,
        field: impl Fn(&CorsConfig) -> &Option<T>,
    ) -> (Option<T>, String) {
        for layer in self.layers {
            if let Some(value) = field(layer.config) {
                return (Some(value.clone()), join(layer.path, key));
            }
        }
        let path = self
            .layers
            .first()
            .map_or(String::new(), |l| l.path.to_owned());
        (None, join(&path, key))
    }

    pub(crate) fn error(&mut self, kind: Kind, path: &str, value: Option<&str>, message: String) {
        let mut d = Diagnostic::error(kind, path, message);
        if let Some(value) = value {
            d = d.with_value(value);
        }
        self.diagnostics.push(d);
    }

    pub(crate) fn warn(&mut self, kind: Kind, path: &str, value: Option<&str>, message: String) {
        let mut d = Diagnostic::warning(kind, path, message);
        if let Some(value) = value {
            d = d.with_value(value);
        }
        self.diagnostics.push(d);
    }

    fn run(mut self) -> Result<Policy, CompileError> {
        let (credentials, credentials_path) =
            self.get("allow_credentials", |c| &c.allow_credentials);
        let credentials = credentials.unwrap_or(false);
        let (allow_null, null_path) = self.get("dangerously_allow_null_origin", |c| {
            &c.dangerously_allow_null_origin
        });
        let (allow_insecure, insecure_path) = self.get("dangerously_allow_insecure_origins", |c| {
            &c.dangerously_allow_insecure_origins
        });
        let (allow_psl, psl_path) = self.get("dangerously_allow_public_suffix_wildcards", |c| {
            &c.dangerously_allow_public_suffix_wildcards
        });
        let switches = Switches {
            credentials,
            credentials_path,
            null: allow_null.unwrap_or(false),
            insecure: allow_insecure.unwrap_or(false),
            public_suffix: allow_psl.unwrap_or(false),
        };
        for (on, path, what) in [
            (
                switches.null,
                &null_path,
                "the null origin can be sent by any sandboxed iframe or file: page",
            ),
            (
                switches.insecure,
                &insecure_path,
                "plain-http origins can be impersonated by anyone on the network path",
            ),
            (
                switches.public_suffix,
                &psl_path,
                "wildcards over public suffixes match sites anyone can register",
            ),
        ] {
            if on {
                self.warn(
                    Kind::Dangerous,
                    path,
                    None,
                    format!("dangerous switch on: {what}"),
                );
            }
        }

        let (origins_list, origins_path) = self.get("allow_origins", |c| &c.allow_origins);
        let origins = self.origins(origins_list.as_ref(), &origins_path, &switches);
        let (clients_config, clients_path) = self.get("clients", |c| &c.clients);
        let clients = self.clients(
            clients_config.as_ref(),
            &clients_path,
            origins_list.as_ref(),
            &origins_path,
            &switches,
        );
        let (methods_list, methods_path) = self.get("allow_methods", |c| &c.allow_methods);
        let methods = self.methods(methods_list.as_ref(), &methods_path);
        let (headers_list, headers_path) = self.get("allow_headers", |c| &c.allow_headers);
        let headers = self.headers(headers_list.as_ref(), &headers_path);
        let (expose_list, expose_path) = self.get("expose_headers", |c| &c.expose_headers);
        let expose = self.expose(expose_list.as_ref(), &expose_path, &switches);
        let (max_age, max_age_path) = self.get("max_age", |c| &c.max_age);
        let max_age_value = self.max_age(max_age, &max_age_path);
        let (status, status_path) = self.get("preflight_status", |c| &c.preflight_status);
        let preflight_status = match status {
            None | Some(204) => StatusCode::NO_CONTENT,
            Some(200) => StatusCode::OK,
            Some(other) => {
                self.error(
                    Kind::InvalidPreflightStatus,
                    &status_path,
                    Some(&other.to_string()),
                    "a successful preflight is answered 204 or 200; use 204 (the default) or 200 for old clients that mishandle 204".into(),
                );
                StatusCode::NO_CONTENT
            }
        };
        let (private_network, pn_path) =
            self.get("allow_private_network", |c| &c.allow_private_network);
        let private_network = private_network.unwrap_or(false);
        if private_network {
            self.warn(
                Kind::PrivateNetworkAccess,
                &pn_path,
                None,
                "Chrome replaced Private Network Access by Local Network Access, which asks the user instead and which no response header satisfies; this only answers older Chrome's Access-Control-Request-Private-Network preflights".into(),
            );
        }
        let (on_disallowed, _) = self.get("on_disallowed", |c| &c.on_disallowed);
        let (debug, _) = self.get("debug", |c| &c.debug);

        if self.diagnostics.iter().any(Diagnostic::is_error) {
            return Err(CompileError::new(self.diagnostics));
        }

        // A shared cache keys a response on the URL and the request headers `Vary`
        // names (RFC 9111 §4.1): any answer that depends on `Origin` must say so,
        // or the first answer cached is served to every origin.
        //
        // Preflights always vary on the three request headers: whether `Origin` is
        // there decides whether the request is a preflight at all (Fetch §3.2).
        let vary_preflight = if private_network {
            &VARY_PREFLIGHT_PN
        } else {
            &VARY_PREFLIGHT
        };
        let on_disallowed = on_disallowed.unwrap_or_default();
        let debug = debug.unwrap_or(false);
        // Actual requests: under `*` the answer is the same whatever the origin
        // (`Access-Control-Allow-Origin: *` on every response, see `decide`), so
        // nothing varies; a closed policy that neither reports refusals (debug)
        // nor answers them itself (reject) adds nothing to any response; every
        // other policy answers some origins differently from others.
        let vary_actual = (!origins.is_any()
            && (!origins.is_empty()
                || clients.is_some()
                || debug
                || on_disallowed == OnDisallowed::Reject))
            .then_some(&VARY_ORIGIN);
        // Listed in byte order for people; the sets are ordered for look-ups.
        let debug_methods = joined(sorted(&methods.names), methods.any && !credentials);
        let debug_headers = joined(sorted(&headers.names), headers.any && !credentials);

        let effective = CorsConfig {
            allow_origins: Some(origins_list.unwrap_or_else(|| List::from(Vec::new()))),
            allow_methods: Some(methods_list.unwrap_or_else(|| List::from(Vec::new()))),
            allow_headers: Some(headers_list.unwrap_or_else(|| List::from(Vec::new()))),
            expose_headers: Some(expose_list.unwrap_or_else(|| List::from(Vec::new()))),
            allow_credentials: Some(credentials),
            max_age,
            allow_private_network: Some(private_network),
            on_disallowed: Some(on_disallowed),
            preflight_status: Some(preflight_status.as_u16()),
            debug: Some(debug),
            dangerously_allow_null_origin: Some(switches.null),
            dangerously_allow_insecure_origins: Some(switches.insecure),
            dangerously_allow_public_suffix_wildcards: Some(switches.public_suffix),
            clients: clients_config,
        };

        // Built from the compiled values, the same ones `decide` reads for the
        // other answers; a closed policy allows no preflight and needs none.
        let preflight_template = (!origins.is_empty() || clients.is_some()).then(|| {
            Arc::new(PreflightTemplate::new(&PreflightParts {
                any_origin: origins.is_any(),
                credentials,
                max_age: shared_now(max_age_value).as_ref(),
                vary: vary_preflight,
            }))
        });
        // A value built from a vector owns its buffer, and the first clone makes
        // it shared, which allocates: do that here, once, so that no request
        // pays it.
        let [expose, debug_methods, debug_headers] =
            [expose, debug_methods, debug_headers].map(shared_now);
        let policy = Policy {
            origins,
            credentials,
            methods,
            headers,
            expose,
            private_network,
            on_disallowed,
            preflight_status,
            debug,
            debug_methods,
            debug_headers,
            vary_actual,
            vary_preflight,
            preflight_template,
            clients,
            warnings: self.diagnostics,
            effective,
        };
        Ok(policy)
    }

    pub(crate) fn origins(&mut self, list: Option<&List>, path: &str, sw: &Switches) -> OriginSet {
        let mut set = OriginSet::default();
        for (_, pattern) in self.origin_patterns(list, path, sw) {
            set.insert(&pattern);
        }
        set
    }

    /// Parses and checks each entry of an origin list once: the diagnostics
    /// go to the compiler, the patterns (with their index in the list,
    /// duplicates left out) to the caller. Entries with an error are among
    /// them too, except those that do not parse; a caller that keeps going
    /// despite errors (a client's list) leaves those out itself.
    pub(crate) fn origin_patterns(
        &mut self,
        list: Option<&List>,
        path: &str,
        sw: &Switches,
    ) -> Vec<(usize, OriginPattern)> {
        let mut set = Vec::new();
        let Some(list) = list else { return set };
        // Hashed: a list search per entry made long lists quadratic (a million
        // origins never finished compiling).
        let mut seen: HashSet<String, RandomState> = HashSet::default();
        for (i, item) in list.items().iter().enumerate() {
            let at = format!("{path}[{i}]");
            let pattern = match item.parse::<OriginPattern>() {
                Ok(pattern) => pattern,
                Err(err) => {
                    let kind = match err.kind() {
                        PatternErrorKind::NotCanonical | PatternErrorKind::NonAscii => {
                            Kind::NonCanonicalOrigin
                        }
                        PatternErrorKind::MalformedWildcard => Kind::MalformedWildcard,
                        PatternErrorKind::FileOrigin => Kind::NullOrigin,
                        PatternErrorKind::RewrittenHost => Kind::RewrittenHost,
                        PatternErrorKind::InvalidHost => Kind::InvalidHost,
                        PatternErrorKind::BadPort => Kind::BadPort,
                        _ => Kind::InvalidOrigin,
                    };
                    let mut message = format!("not an origin: {}", err.message());
                    if let Some(fix) = err.suggestion() {
                        message.push_str(&format!("; use {fix:?}"));
                    } else if err.kind() == PatternErrorKind::MalformedWildcard {
                        message.push_str(
                            "; the forms are \"https://app.example.com\", \"https://*.example.com\", \"http://localhost:*\" and \"*\"",
                        );
                    }
                    self.error(kind, &at, Some(item), message);
                    continue;
                }
            };
            let canonical = pattern.to_string();
            if seen.contains(&canonical) {
                self.warn(
                    Kind::Duplicate,
                    &at,
                    Some(item),
                    "listed twice; remove one".into(),
                );
                continue;
            }
            seen.insert(canonical.clone());
            match pattern.kind() {
                PatternKind::Any if sw.credentials => {
                    self.error(
                        Kind::WildcardWithCredentials,
                        &at,
                        Some(item),
                        format!(
                            "\"*\" cannot be combined with credentials (allow_credentials = true at {}): browsers refuse the pair, and echoing every origin instead would let any site read your users' data; list the origins that need credentials",
                            sw.credentials_path
                        ),
                    );
                }
                PatternKind::Any if list.items().len() > 1 => {
                    self.warn(
                        Kind::Redundant,
                        &at,
                        Some(item),
                        "\"*\" allows every origin, so the other entries have no effect".into(),
                    );
                }
                PatternKind::Null if !sw.null => {
                    self.error(
                        Kind::NullOrigin,
                        &at,
                        Some(item),
                        "the null origin is sent by sandboxed iframes, file: pages and cross-origin redirects, so any site can produce it; remove it, or set dangerously_allow_null_origin = true if you really mean it".into(),
                    );
                }
                PatternKind::Host {
                    scheme,
                    host,
                    subdomains,
                    ..
                } => {
                    if sw.credentials && scheme == "http" && !pattern.is_loopback() && !sw.insecure
                    {
                        let https = canonical.replacen("http://", "https://", 1);
                        self.error(
                            Kind::InsecureOrigin,
                            &at,
                            Some(item),
                            format!(
                                "with credentials, a plain-http origin can be impersonated by anyone on the network path; use {https:?}, or set dangerously_allow_insecure_origins = true (only loopback and localhost are exempt)"
                            ),
                        );
                    }
                    if *subdomains && !sw.public_suffix {
                        let why = if is_public_suffix(host) {
                            Some(format!(
                                "{host:?} is a public suffix: anyone can register a site under it"
                            ))
                        } else if has_public_suffix_below(host) {
                            Some(format!(
                                "the Public Suffix List has public suffixes under {host:?}: anyone can create a site under those (cloud hosts hand them out to every customer)"
                            ))
                        } else {
                            None
                        };
                        if let Some(why) = why {
                            self.error(
                                Kind::PublicSuffixWildcard,
                                &at,
                                Some(item),
                                format!(
                                    "{why}, so this pattern allows strangers; list your own origins, or set dangerously_allow_public_suffix_wildcards = true"
                                ),
                            );
                        }
                    }
                }
                _ => {}
            }
            set.push((i, pattern));
        }
        set
    }

    fn methods(&mut self, list: Option<&List>, path: &str) -> NameSet {
        let mut set = NameSet::default();
        let Some(list) = list else { return set };
        let mut seen: HashSet<Box<[u8]>, RandomState> = HashSet::default();
        for (i, item) in list.items().iter().enumerate() {
            let at = format!("{path}[{i}]");
            if item == "*" {
                set.any = true;
                continue;
            }
            if !fetch::is_token(item.as_bytes()) {
                self.error(
                    Kind::InvalidMethod,
                    &at,
                    Some(item),
                    "not a method: a method is a token such as \"PUT\" (letters, digits and !#$%&'*+-.^_`|~)".into(),
                );
                continue;
            }
            if fetch::is_forbidden_method(item) {
                self.error(
                    Kind::ForbiddenMethod,
                    &at,
                    Some(item),
                    "a forbidden method: browsers never send CONNECT, TRACE or TRACK from scripts, and TRACE enables cross-site tracing; remove it".into(),
                );
                continue;
            }
            let mut name = item.clone();
            if let Some(normal) = fetch::normalized_method(item) {
                if normal != item {
                    self.warn(
                        Kind::MethodCase,
                        &at,
                        Some(item),
                        format!(
                            "browsers always send this method in uppercase; read as {normal:?}"
                        ),
                    );
                    name = normal.to_owned();
                }
            } else if item.bytes().any(|b| b.is_ascii_lowercase()) {
                self.warn(
                    Kind::MethodCase,
                    &at,
                    Some(item),
                    format!(
                        "methods are case-sensitive and browsers send {item:?} exactly as the page wrote it; most pages write {:?}",
                        item.to_ascii_uppercase()
                    ),
                );
            }
            if fetch::is_safelisted_method(&name) {
                self.warn(
                    Kind::Redundant,
                    &at,
                    Some(item),
                    "GET, HEAD and POST are CORS-safelisted: always allowed, never preflighted for their method; listing them has no effect".into(),
                );
            } else if name == "OPTIONS" {
                self.warn(
                    Kind::Redundant,
                    &at,
                    Some(item),
                    "OPTIONS is the method of the preflight itself, which corsgate always answers; listing it has no effect".into(),
                );
            }
            let bytes: Box<[u8]> = name.into_bytes().into_boxed_slice();
            if !seen.insert(bytes.clone()) {
                self.warn(
                    Kind::Duplicate,
                    &at,
                    Some(item),
                    "listed twice; remove one".into(),
                );
            } else {
                set.names.push(bytes);
            }
        }
        set.finish();
        set
    }

    fn headers(&mut self, list: Option<&List>, path: &str) -> NameSet {
        let mut set = NameSet::default();
        let Some(list) = list else { return set };
        let mut seen: HashSet<Box<[u8]>, RandomState> = HashSet::default();
        for (i, item) in list.items().iter().enumerate() {
            let at = format!("{path}[{i}]");
            if item == "*" {
                set.any = true;
                continue;
            }
            if !fetch::is_token(item.as_bytes()) {
                self.error(
                    Kind::InvalidHeaderName,
                    &at,
                    Some(item),
                    "not a header name: a header name is a token such as \"x-api-key\" (letters, digits and !#$%&'*+-.^_`|~)".into(),
                );
                continue;
            }
            if fetch::is_forbidden_request_header(item) {
                self.error(
                    Kind::ForbiddenHeader,
                    &at,
                    Some(item),
                    "a forbidden request header: browsers set it themselves and never let a script send it, so a preflight never asks for it; remove it (cookies travel with allow_credentials = true)".into(),
                );
                continue;
            }
            if fetch::is_cors_response_header(item) {
                self.error(
                    Kind::ResponseHeaderInAllowHeaders,
                    &at,
                    Some(item),
                    format!(
                        "{item} is a response header: only servers send it, so a page whose request carries it has a bug (often a copied server snippet); remove it from the page's request, not by allowing it here"
                    ),
                );
                continue;
            }
            let lower: Box<[u8]> = item.to_ascii_lowercase().into_bytes().into_boxed_slice();
            if !seen.insert(lower.clone()) {
                self.warn(
                    Kind::Duplicate,
                    &at,
                    Some(item),
                    "listed twice (header names are case-insensitive); remove one".into(),
                );
            } else {
                set.names.push(lower);
            }
        }
        set.finish();
        let authorization = set.contains_exact(b"authorization");
        if set.any && !authorization {
            self.warn(
                Kind::WildcardHeadersWithoutAuthorization,
                path,
                Some("*"),
                "\"*\" never covers Authorization (Fetch standard); if clients send it, add \"authorization\" to allow_headers".into(),
            );
        }
        set
    }

    fn expose(&mut self, list: Option<&List>, path: &str, sw: &Switches) -> Option<HeaderValue> {
        let list = list?;
        let mut names: Vec<String> = Vec::new();
        let mut seen: HashSet<String, RandomState> = HashSet::default();
        let mut any = false;
        for (i, item) in list.items().iter().enumerate() {
            let at = format!("{path}[{i}]");
            if item == "*" {
                if sw.credentials {
                    self.error(
                        Kind::WildcardExposeWithCredentials,
                        &at,
                        Some(item),
                        format!(
                            "with credentials (allow_credentials = true at {}), browsers read \"*\" as a header literally named *; list the headers to expose",
                            sw.credentials_path
                        ),
                    );
                } else {
                    any = true;
                }
                continue;
            }
            if !fetch::is_token(item.as_bytes()) {
                self.error(
                    Kind::InvalidHeaderName,
                    &at,
                    Some(item),
                    "not a header name: a header name is a token such as \"x-request-id\"".into(),
                );
                continue;
            }
            if fetch::is_forbidden_response_header(item) {
                self.error(
                    Kind::ForbiddenExposedHeader,
                    &at,
                    Some(item),
                    "browsers never let scripts read Set-Cookie, whatever the server says; remove it".into(),
                );
                continue;
            }
            if let Some(fix) = fetch::request_only_header_fix(item) {
                self.error(
                    Kind::RequestHeaderInExposeHeaders,
                    &at,
                    Some(item),
                    format!(
                        "{item} is a request header: browsers send it and no response carries it, so there is nothing to expose; {fix}"
                    ),
                );
                continue;
            }
            if let Some(key) = fetch::cors_response_header_key(item) {
                self.error(
                    Kind::CorsHeaderInExposeHeaders,
                    &at,
                    Some(item),
                    format!(
                        "{item} is part of the CORS answer that corsgate writes from this policy, not a header of the upstream's for scripts to read; remove it, and set what it says with {key}"
                    ),
                );
                continue;
            }
            if fetch::is_safelisted_response_header(item) {
                self.warn(
                    Kind::Redundant,
                    &at,
                    Some(item),
                    "a CORS-safelisted response header, always readable; listing it has no effect"
                        .into(),
                );
            }
            let lower = item.to_ascii_lowercase();
            if !seen.insert(lower.clone()) {
                self.warn(
                    Kind::Duplicate,
                    &at,
                    Some(item),
                    "listed twice; remove one".into(),
                );
            } else {
                names.push(lower);
            }
        }
        joined(names.iter().map(|n| n.as_bytes()), any)
    }

    fn max_age(&mut self, value: Option<i64>, path: &str) -> Option<HeaderValue> {
        let seconds = value?;
        if !(0..=MAX_AGE_LIMIT).contains(&seconds) {
            self.error(
                Kind::InvalidMaxAge,
                path,
                Some(&seconds.to_string()),
                format!(
                    "max_age is a number of seconds from 0 to {MAX_AGE_LIMIT} (24 hours, Firefox's cap); Chromium caps it at {MAX_AGE_CHROMIUM}, so use 7200 or less"
                ),
            );
            return None;
        }
        if seconds > MAX_AGE_CHROMIUM {
            self.warn(
                Kind::MaxAgeCapped,
                path,
                Some(&seconds.to_string()),
                format!(
                    "Chromium caps preflight caching at {MAX_AGE_CHROMIUM} s (2 hours) and Safari at 600 s; a policy change also takes this long to reach browsers that cached the old one"
                ),
            );
        }
        HeaderValue::from_str(&seconds.to_string()).ok()
    }
}

pub(crate) struct Switches {
    pub(crate) credentials: bool,
    pub(crate) credentials_path: String,
    pub(crate) null: bool,
    pub(crate) insecure: bool,
    pub(crate) public_suffix: bool,
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The value, its buffer made shared (see where compile calls it).
fn shared_now(value: Option<HeaderValue>) -> Option<HeaderValue> {
    drop(value.clone());
    value
}

/// The names in byte order.
fn sorted(names: &[Box<[u8]>]) -> impl Iterator<Item = &[u8]> {
    let mut names: Vec<&[u8]> = names.iter().map(AsRef::as_ref).collect();
    names.sort_unstable();
    names.into_iter()
}

/// `a, b, c` (plus `*` when asked), or `None` when empty.
fn joined<'b>(names: impl Iterator<Item = &'b [u8]>, star: bool) -> Option<HeaderValue> {
    let mut out: Vec<u8> = Vec::new();
    for name in names.chain(star.then_some(b"*".as_slice())) {
        if !out.is_empty() {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(name);
    }
    if out.is_empty() {
        return None;
    }
    HeaderValue::from_bytes(&out).ok()
}

/// Whether some public suffix lies strictly below `domain`: a name under it that
/// anyone can register sites below (`s3.amazonaws.com` under `amazonaws.com`,
/// the wildcard rule `*.kawasaki.jp` under `kawasaki.jp`).
///
/// The `psl` crate compiles the list into a tree walked from the last label, and
/// it asks for the next label only where the tree goes deeper: after `domain`'s
/// own labels, it asks for one more exactly when some rule lies below `domain`.
/// `tests/compile_rules.rs` holds this against every rule of the list.
fn has_public_suffix_below(domain: &str) -> bool {
    use psl::Psl;
    use std::cell::Cell;

    let labels = domain.split('.').count();
    let pulled = Cell::new(0usize);
    let probe = domain
        .rsplit('.')
        .map(str::as_bytes)
        // A label no rule has; only a wildcard rule (`*`) matches it.
        .chain(std::iter::once(b"".as_slice()))
        .inspect(|_| pulled.set(pulled.get() + 1));
    psl::List.find(probe);
    pulled.get() > labels
}

/// Whether `domain` is itself a public suffix (`com`, `co.uk`, `github.io`), per the
/// Public Suffix List compiled into the `psl` crate.
fn is_public_suffix(domain: &str) -> bool {
    psl::suffix(domain.as_bytes())
        .is_some_and(|suffix| suffix.is_known() && suffix.as_bytes() == domain.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> NameSet {
        let mut set = NameSet {
            any: false,
            names: names
                .iter()
                .map(|n| n.as_bytes().to_vec().into_boxed_slice())
                .collect(),
            keys: Vec::new(),
            prefixes: Vec::new(),
        };
        set.finish();
        set
    }

    fn ci(set: &NameSet, name: &str) -> bool {
        set.contains_ignore_case(name.as_bytes(), fetch::head_word(name.as_bytes()))
    }

    #[test]
    fn name_sets_find_names_at_every_size() {
        // Few names (walked) and many (bisected), of mixed lengths.
        for count in [0, 1, 2, 5, FEW_NAMES, FEW_NAMES + 1, 40] {
            let names: Vec<String> = (0..count)
                .map(|i| format!("x-{}{i}", "h".repeat(i % 7)))
                .collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let set = set(&refs);
            for name in &names {
                assert!(set.contains_exact(name.as_bytes()), "{name} in {count}");
                assert!(ci(&set, name));
                let upper = name.to_ascii_uppercase();
                assert!(!set.contains_exact(upper.as_bytes()));
                assert!(ci(&set, &upper), "{upper}");
                for other in [format!("{name}x"), format!("y{name}"), name[1..].to_owned()] {
                    if !names.contains(&other) {
                        assert!(!ci(&set, &other), "{other}");
                    }
                }
            }
            assert!(!ci(&set, ""));
            assert!(!ci(&set, "x-"));
        }
    }

    #[test]
    fn name_sets_fold_letters_only() {
        let set = set(&["x-~a", "a_b", "x-custom-header-~"]);
        assert!(!ci(&set, "x-^a"));
        assert!(ci(&set, "X-~A"));
        assert!(ci(&set, "A_B"));
        assert!(!ci(&set, "a\x7fb"));
        assert!(ci(&set, "X-Custom-Header-~"));
        assert!(!ci(&set, "x-custom-header-^"));
        assert!(!ci(&set, "x-custom-header-\u{7e}\u{7e}"));
    }
}
