//! Reading a configuration file so that every problem in it is found at once, each
//! with its line and column.
//!
//! serde stops at the first error, so each key is first deserialized alone (a
//! table with that one key into the struct it belongs to, whose fields are all
//! optional): a typo or a wrong type in one key never hides the others. Keys that
//! pass are then deserialized together.

use std::ops::Range;

use corsgate_policy::{Diagnostic, DiagnosticKind, Severity};
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::model::{FileConfig, POLICY_KEYS, REGISTRY_KEYS, ROUTE_KEYS, SERVER_KEYS};

/// A diagnostic with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Located {
    /// 1-based line of the value at fault.
    pub line: usize,
    /// 1-based column of the value at fault.
    pub column: usize,
    /// What is wrong, where in the model, and the fix.
    #[serde(flatten)]
    pub diagnostic: Diagnostic,
}

impl Located {
    /// An error about the file as a whole, at `line`:`column`.
    pub fn file_error(line: usize, column: usize, message: impl Into<String>) -> Located {
        Located {
            line,
            column,
            diagnostic: Diagnostic::error(DiagnosticKind::File, "", message.into()),
        }
    }
}

/// `LINE:COL: path: severity: "value": message`; prefixed with the file name
/// (`{file}:{located}`) it is the line `check`, `serve` and a reload print.
impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = &self.diagnostic;
        write!(f, "{}:{}: ", self.line, self.column)?;
        if !d.path().is_empty() {
            write!(f, "{}: ", d.path())?;
        }
        f.write_str(match d.severity() {
            Severity::Error => "error: ",
            _ => "warning: ",
        })?;
        if let Some(value) = d.value() {
            write!(f, "{value:?}: ")?;
        }
        f.write_str(d.message())
    }
}

/// How many errors and warnings a list of problems holds; displayed as
/// `2 errors, 1 warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Problems that stop the file from loading.
    pub errors: usize,
    /// Problems reported that do not.
    pub warnings: usize,
}

impl Summary {
    /// Counts the errors and warnings of `problems`.
    pub fn of(problems: &[Located]) -> Self {
        let errors = problems.iter().filter(|p| p.diagnostic.is_error()).count();
        Summary {
            errors,
            warnings: problems.len() - errors,
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        write!(
            f,
            "{} error{}, {} warning{}",
            self.errors,
            plural(self.errors),
            self.warnings,
            plural(self.warnings)
        )
    }
}

/// The text of a file and where each path of it is.
pub struct Source<'i> {
    text: &'i str,
    root: Spanned<DeTable<'i>>,
    /// Byte offset where each line starts, found once: a file with 100 000
    /// problems locates each with a binary search, not a scan from the start.
    line_starts: Vec<usize>,
}

/// The size of the text, not the text or its parsed tree (a file can be large).
impl std::fmt::Debug for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("bytes", &self.text.len())
            .field("lines", &self.line_starts.len())
            .finish_non_exhaustive()
    }
}

impl<'i> Source<'i> {
    fn new(text: &'i str, root: Spanned<DeTable<'i>>) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        Source {
            text,
            root,
            line_starts,
        }
    }

    /// Line and column (from 1) of a byte offset; the column counts characters.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        // The last line starting at or before the offset.
        let line = self.line_starts.partition_point(|start| *start <= offset);
        let start = self
            .line_starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(0);
        let column = self
            .text
            .get(start..offset)
            .map_or(0, |part| part.chars().count())
            + 1;
        (line.max(1), column)
    }

    /// The span of the deepest existing item along `path`
    /// (`route[2].cors.allow_origins[1]`).
    pub(crate) fn span_of(&self, path: &str) -> Range<usize> {
        let mut span = self.root.span();
        let mut value: Option<&DeValue<'i>> = None;
        let mut table: Option<&DeTable<'i>> = Some(self.root.get_ref());
        for segment in path_segments(path) {
            let next = match (segment, table, value) {
                (Segment::Key(key), Some(t), _) => t.get(key),
                (Segment::Index(i), _, Some(DeValue::Array(items))) => items.get(i),
                _ => None,
            };
            let Some(next) = next else { break };
            span = next.span();
            value = Some(next.get_ref());
            table = match next.get_ref() {
                DeValue::Table(t) => Some(t),
                _ => None,
            };
        }
        span
    }

    /// The line and column of the value a diagnostic names (its model path).
    pub fn locate(&self, diagnostic: Diagnostic) -> Located {
        let (line, column) = self.line_col(self.span_of(diagnostic.path()).start);
        Located {
            line,
            column,
            diagnostic,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Segment<'p> {
    Key(&'p str),
    Index(usize),
}

fn path_segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        out.push(Segment::Key(key));
        while let Some((index, tail)) = rest.split_once(']') {
            if let Ok(i) = index.parse() {
                out.push(Segment::Index(i));
            }
            rest = tail.strip_prefix('[').unwrap_or(tail);
        }
    }
    out
}

/// The result of reading a file: the model (when it could be built) and every
/// problem found so far, located.
#[derive(Debug)]
pub struct Parsed<'i> {
    /// The text read, with what locates a model path in it.
    pub source: Source<'i>,
    /// The model, unless the text is not TOML or not of the model's shape.
    pub config: Option<FileConfig>,
    /// Every problem found while reading, located.
    pub problems: Vec<Located>,
}

/// Parses `text` into the file model, collecting every syntax and structure
/// problem (unknown keys, wrong types) instead of stopping at the first.
pub fn parse(text: &str) -> Parsed<'_> {
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    let mut parsed = Parsed {
        source: Source::new(text, root),
        config: None,
        problems: Vec::new(),
    };
    // One syntax error, the first: after it the parser resynchronises on a
    // guess, and what it reports next (a missing comma on every following
    // line of an unclosed array) is noise that hides the cause.
    if let Some(err) = syntax_errors.first() {
        let (offset, message) = match unclosed_bracket(text) {
            Some((at, bracket)) => (at, unclosed_message(bracket)),
            None => (
                err.span().map_or(0, |s| s.start),
                format!("TOML syntax: {}", first_line(err.message())),
            ),
        };
        let (line, column) = parsed.source.line_col(offset);
        parsed.problems.push(Located {
            line,
            column,
            diagnostic: Diagnostic::error(DiagnosticKind::File, "", message),
        });
    }
    if !parsed.problems.is_empty() {
        return parsed;
    }
    let mut checker = Checker {
        source: &parsed.source,
        problems: Vec::new(),
    };
    let root = parsed.source.root.get_ref().clone();
    let filtered = checker.table::<FileConfig>(
        &root,
        "",
        &["server", "route", "policies", "registry"],
        |checker, key, value, path| match key {
            "registry" => {
                checker.nested::<super::model::RegistryConfig>(value, path, &[], |_, _, v, _| {
                    Some(v.clone())
                })
            }
            "server" => checker.nested::<super::model::ServerConfig>(
                value,
                path,
                &["cors", "tls"],
                |checker, key, value, path| match key {
                    "cors" => checker.nested::<corsgate_policy::CorsConfig>(
                        value,
                        path,
                        &["clients"],
                        Checker::clients,
                    ),
                    "tls" => checker.nested::<super::model::TlsConfig>(
                        value,
                        path,
                        &["acme", "hsts"],
                        |checker, key, value, path| {
                            if key == "hsts" {
                                return checker.nested::<super::model::HstsConfig>(
                                    value,
                                    path,
                                    &[],
                                    |_, _, v, _| Some(v.clone()),
                                );
                            }
                            checker.nested::<super::model::AcmeConfig>(
                                value,
                                path,
                                &[],
                                |_, _, v, _| Some(v.clone()),
                            )
                        },
                    ),
                    _ => Some(value.clone()),
                },
            ),
            "route" => checker.routes(value, path),
            "policies" => checker.policies(value, path),
            _ => Some(value.clone()),
        },
    );
    let problems = checker.problems;
    parsed.problems.extend(problems);
    let whole = Spanned::new(parsed.source.root.span(), DeValue::Table(filtered));
    match FileConfig::deserialize(ValueDeserializer::from(whole)) {
        Ok(config) => parsed.config = Some(config),
        Err(err) => {
            // Only reached if the per-key checks missed something.
            let (line, column) = parsed.source.line_col(err.span().map_or(0, |s| s.start));
            parsed.problems.push(Located {
                line,
                column,
                diagnostic: Diagnostic::error(DiagnosticKind::File, "", first_line(err.message())),
            });
        }
    }
    parsed
}

use serde::Deserialize;

struct Checker<'s, 'i> {
    source: &'s Source<'i>,
    problems: Vec<Located>,
}

type Nested<'i> = Spanned<DeValue<'i>>;

impl<'i> Checker<'_, 'i> {
    /// Checks each key of `table` alone against `T`; `nested` keys are handed to
    /// `descend`, which returns the value to keep (or `None` to drop it).
    fn table<T: DeserializeOwned>(
        &mut self,
        table: &DeTable<'i>,
        prefix: &str,
        nested: &[&str],
        mut descend: impl FnMut(&mut Self, &str, &Nested<'i>, &str) -> Option<Nested<'i>>,
    ) -> DeTable<'i> {
        let mut kept = DeTable::new();
        for (key, value) in table.iter() {
            let name: &str = key.get_ref();
            let path = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}.{name}")
            };
            if nested.contains(&name) {
                if let Some(value) = descend(self, name, value, &path) {
                    kept.insert(key.clone(), value);
                }
                continue;
            }
            let mut single = DeTable::new();
            single.insert(key.clone(), value.clone());
            let probe = Spanned::new(value.span(), DeValue::Table(single));
            match T::deserialize(ValueDeserializer::from(probe)) {
                Ok(_) => {
                    kept.insert(key.clone(), value.clone());
                }
                Err(err) => {
                    let unknown = err.message().starts_with("unknown field");
                    let span = if unknown {
                        key.span()
                    } else {
                        err.span().unwrap_or(value.span())
                    };
                    let diagnostic = if unknown {
                        Diagnostic::error(
                            DiagnosticKind::File,
                            path,
                            unknown_key_message(name, prefix),
                        )
                    } else {
                        let (written, message) =
                            type_message(&path, name, value.get_ref(), err.message());
                        let diagnostic = Diagnostic::error(DiagnosticKind::File, path, message);
                        match written {
                            Some(written) => diagnostic.with_value(written),
                            None => diagnostic,
                        }
                    };
                    self.push(span, diagnostic);
                }
            }
        }
        kept
    }

    fn nested<T: DeserializeOwned>(
        &mut self,
        value: &Nested<'i>,
        path: &str,
        nested: &[&str],
        descend: impl FnMut(&mut Self, &str, &Nested<'i>, &str) -> Option<Nested<'i>>,
    ) -> Option<Nested<'i>> {
        let DeValue::Table(table) = value.get_ref() else {
            self.push(
                value.span(),
                Diagnostic::error(DiagnosticKind::File, path, "expected a table".to_owned()),
            );
            return None;
        };
        let kept = self.table::<T>(table, path, nested, descend);
        Some(Spanned::new(value.span(), DeValue::Table(kept)))
    }

    /// A `cors` table's `clients` table, key by key.
    fn clients(&mut self, _: &str, value: &Nested<'i>, path: &str) -> Option<Nested<'i>> {
        self.nested::<corsgate_policy::ClientsConfig>(value, path, &[], |_, _, v, _| {
            Some(v.clone())
        })
    }

    fn routes(&mut self, value: &Nested<'i>, path: &str) -> Option<Nested<'i>> {
        let DeValue::Array(items) = value.get_ref() else {
            self.push(
                value.span(),
                Diagnostic::error(
                    DiagnosticKind::File,
                    path,
                    "routes are written [[route]] (an array of tables)".to_owned(),
                ),
            );
            return None;
        };
        let mut kept = items.clone();
        for (i, item) in kept.iter_mut().enumerate() {
            let at = format!("{path}[{i}]");
            let replaced = self.nested::<super::model::RouteConfig>(
                item,
                &at,
                &["cors", "upstream_tls"],
                |checker, key, value, path| match value.get_ref() {
                    _ if key == "upstream_tls" => checker
                        .nested::<super::model::UpstreamTlsConfig>(value, path, &[], |_, _, v, _| {
                            Some(v.clone())
                        }),
                    // "off", "closed" or a policy name: names are resolved when
                    // the file is compiled, where every [policies.NAME] is known.
                    DeValue::String(_) => Some(value.clone()),
                    DeValue::Table(_) => checker.nested::<corsgate_policy::CorsConfig>(
                        value,
                        path,
                        &["policy", "clients"],
                        |checker, key, value, path| match value.get_ref() {
                            _ if key == "clients" => checker.clients(key, value, path),
                            DeValue::String(_) => Some(value.clone()),
                            _ => {
                                checker.push(
                                    value.span(),
                                    Diagnostic::error(
                                        DiagnosticKind::File,
                                        path,
                                        "policy is the name of a [policies.NAME] table, such as policy = \"spa\"".to_owned(),
                                    ),
                                );
                                None
                            }
                        },
                    ),
                    _ => {
                        checker.push(
                            value.span(),
                            Diagnostic::error(
                                DiagnosticKind::File,
                                path,
                                CORS_VALUES.to_owned(),
                            ),
                        );
                        None
                    }
                },
            );
            match replaced {
                Some(table) => *item = table,
                None => *item = Spanned::new(item.span(), DeValue::Table(DeTable::new())),
            }
        }
        Some(Spanned::new(value.span(), DeValue::Array(kept)))
    }

    /// `[policies.NAME]` tables, each checked as a `cors` table.
    fn policies(&mut self, value: &Nested<'i>, path: &str) -> Option<Nested<'i>> {
        let DeValue::Table(table) = value.get_ref() else {
            self.push(
                value.span(),
                Diagnostic::error(
                    DiagnosticKind::File,
                    path,
                    "policies are tables, written [policies.NAME]".to_owned(),
                ),
            );
            return None;
        };
        let mut kept = DeTable::new();
        for (name, policy) in table.iter() {
            let at = format!("{path}.{}", name.get_ref());
            if let Some(checked) = self.nested::<corsgate_policy::CorsConfig>(
                policy,
                &at,
                &["clients"],
                |c, k, v, p| c.clients(k, v, p),
            ) {
                kept.insert(name.clone(), checked);
            }
        }
        Some(Spanned::new(value.span(), DeValue::Table(kept)))
    }

    fn push(&mut self, span: Range<usize>, diagnostic: Diagnostic) {
        let (line, column) = self.source.line_col(span.start);
        self.problems.push(Located {
            line,
            column,
            diagnostic,
        });
    }
}

fn unknown_key_message(name: &str, table: &str) -> String {
    let route_cors_keys: Vec<&str> = POLICY_KEYS
        .iter()
        .copied()
        .chain(std::iter::once("policy"))
        .collect();
    let keys: &[&str] = match table {
        "" => &["server", "policies", "route", "registry"],
        "server" => SERVER_KEYS,
        "registry" => REGISTRY_KEYS,
        t if t.ends_with("clients") => super::model::CLIENTS_KEYS,
        "server.cors" => POLICY_KEYS,
        "server.tls" => super::model::TLS_KEYS,
        "server.tls.acme" => super::model::ACME_KEYS,
        "server.tls.hsts" => super::model::HSTS_KEYS,
        t if t.ends_with("upstream_tls") => super::model::UPSTREAM_TLS_KEYS,
        t if t.starts_with("policies.") => POLICY_KEYS,
        t if t.ends_with("cors") => &route_cors_keys,
        _ => ROUTE_KEYS,
    };
    let closest = keys
        .iter()
        .map(|k| (strsim::levenshtein(k, name), *k))
        .filter(|(d, _)| *d <= 3)
        .min();
    match closest {
        Some((_, key)) => format!("unknown key {name:?}; did you mean {key:?}?"),
        None => format!(
            "unknown key {name:?}; the keys here are {}",
            keys.join(", ")
        ),
    }
}

/// serde's type error for `key` (at `path`), in corsgate's words and with the
/// fix where one can be derived from what was written.
fn type_message(
    path: &str,
    key: &str,
    value: &DeValue<'_>,
    serde: &str,
) -> (Option<String>, String) {
    let written = match value {
        DeValue::String(s) => Some(s.to_string()),
        DeValue::Integer(i) => Some(i.as_str().to_owned()),
        DeValue::Float(f) => Some(f.as_str().to_owned()),
        DeValue::Boolean(b) => Some(b.to_string()),
        _ => None,
    };
    let text = match value {
        DeValue::String(s) => Some(s.as_ref()),
        _ => None,
    };
    let in_server = path.starts_with("server.") && !path.starts_with("server.cors");
    let message = match key {
        _ if in_server && key.ends_with("_timeout") => match value {
            DeValue::Integer(i) => format!(
                "a duration is a string with its unit; write \"{}s\" for {} seconds",
                i.as_str(),
                i.as_str()
            ),
            _ => "a duration is a string with its unit, such as \"30s\", \"500ms\" or \"2m\""
                .to_owned(),
        },
        "max_header_bytes" | "max_body_bytes" if in_server => match text.and_then(byte_size) {
            Some(bytes) => format!(
                "a size is a number of bytes, without unit or quotes; write {bytes} for {}",
                text.unwrap_or_default().trim()
            ),
            None => {
                "a size is a number of bytes, without unit or quotes, such as 10485760 for 10 MB"
                    .to_owned()
            }
        },
        "max_age" => match text.map(|t| humantime::parse_duration(t.trim())) {
            Some(Ok(d)) => format!(
                "max_age is a number of seconds, without unit or quotes; write {} for {}",
                d.as_secs(),
                text.unwrap_or_default().trim()
            ),
            _ => "max_age is a number of seconds, without unit or quotes, such as 600".to_owned(),
        },
        "listen" | "admin_listen" if in_server => match value {
            DeValue::Integer(i) => format!(
                "an address is a string \"IP:port\"; write \"127.0.0.1:{}\" (or \"0.0.0.0:{}\" for every interface)",
                i.as_str(),
                i.as_str()
            ),
            _ => "an address is a string \"IP:port\", such as \"127.0.0.1:8080\"".to_owned(),
        },
        "trusted_proxies" | "admin_hosts" if in_server => match text {
            Some(one) => format!("a list, even of one; write [{one:?}]"),
            None => "a list of strings, such as [\"10.0.0.0/8\"]".to_owned(),
        },
        "path" => match value {
            DeValue::Integer(_) | DeValue::Float(_) => format!(
                "a path is a string starting with /; write \"/{}\"",
                written.clone().unwrap_or_default()
            ),
            _ => "a path is a string starting with /, such as \"/api\"".to_owned(),
        },
        "upstream" | "host" => format!(
            "{key} is a string, such as {}",
            if key == "host" {
                "\"api.example.com\""
            } else {
                "\"http://127.0.0.1:3000\""
            }
        ),
        _ => generic_type_message(value, serde),
    };
    (written, message)
}

/// `invalid type: string "true", expected a boolean` as corsgate says it.
fn generic_type_message(value: &DeValue<'_>, serde: &str) -> String {
    let Some(expected) = serde.split(", expected ").nth(1) else {
        return first_line(serde);
    };
    let expected = first_line(expected);
    match (expected.as_str(), value) {
        ("a boolean", DeValue::String(s)) if matches!(s.as_ref(), "true" | "false") => {
            format!("true or false, without quotes; write {s}")
        }
        ("a boolean", _) => "true or false, without quotes".to_owned(),
        ("i64" | "u16" | "u32" | "u64" | "an integer", DeValue::String(s))
            if s.trim().parse::<i64>().is_ok() =>
        {
            format!("a number, without quotes; write {}", s.trim())
        }
        ("i64" | "u16" | "u32" | "u64" | "an integer", _) => {
            "a whole number, without quotes".to_owned()
        }
        ("a string", DeValue::Integer(i)) => {
            format!("a string, in quotes; write \"{}\"", i.as_str())
        }
        ("a string", _) => "a string, in quotes".to_owned(),
        ("a sequence", DeValue::String(s)) => {
            format!("a list, even of one; write [{:?}]", s.as_ref())
        }
        (other, _) if serde.starts_with("unknown variant") => {
            format!("one of {}", other.replace('`', "\""))
        }
        (other, _) => format!("expected {}", other.replace('`', "\"")),
    }
}

/// `"10MB"`, `"64k"`, `"1 GiB"` in bytes (K, M, G as powers of 1024, as
/// nginx's `client_max_body_size` reads them).
fn byte_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let number: u64 = text.get(..digits)?.parse().ok()?;
    let unit = text.get(digits..)?.trim().to_ascii_lowercase();
    let shift = match unit.as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

/// Which bracket is left open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bracket {
    /// `[table` or `[[array.of.tables` without its `]` on the same line.
    Header,
    /// `[` of an array value.
    Array,
    /// `{` of an inline table.
    InlineTable,
    /// A quote without its closing quote.
    String,
}

fn unclosed_message(bracket: Bracket) -> String {
    match bracket {
        Bracket::Header => "TOML syntax: this table header is not closed; end it with ] on the same line, such as [server.cors]",
        Bracket::Array => "TOML syntax: this [ is never closed; end the list with ] after its last item",
        Bracket::InlineTable => "TOML syntax: this { is never closed; end the table with } after its last key",
        Bracket::String => "TOML syntax: this string is never closed; end it with the same quote on the same line (\"\"\" or ''' for several lines)",
    }
    .to_owned()
}

/// The byte offset of the first bracket a file leaves open, if any: a table
/// header not closed on its line, or an array or inline table still open at
/// the end of the file. Strings and comments are skipped as TOML reads them.
fn unclosed_bracket(text: &str) -> Option<(usize, Bracket)> {
    let bytes = text.as_bytes();
    let mut stack: Vec<(usize, Bracket)> = Vec::new();
    let mut line_start = true;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\n' => {
                if let Some(&(at, Bracket::Header)) = stack.last() {
                    return Some((at, Bracket::Header));
                }
                line_start = true;
                i += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                while bytes.get(i).is_some_and(|b| *b != b'\n') {
                    i += 1;
                }
                continue;
            }
            b'"' | b'\'' => {
                let Some(end) = skip_string(bytes, i) else {
                    return Some((i, Bracket::String));
                };
                i = end;
                line_start = false;
                continue;
            }
            b'[' if line_start && stack.is_empty() => stack.push((i, Bracket::Header)),
            b'[' => stack.push((i, Bracket::Array)),
            b'{' => stack.push((i, Bracket::InlineTable)),
            // `[[route]]`: a header's second `[` and `]` pair up alike.
            b']' | b'}' => {
                stack.pop();
            }
            _ => {}
        }
        line_start = false;
        i += 1;
    }
    stack.first().copied()
}

/// The offset just past the string starting at `start`, or `None` when it is
/// never closed.
fn skip_string(bytes: &[u8], start: usize) -> Option<usize> {
    let quote = bytes[start];
    let basic = quote == b'"';
    let three = [quote, quote, quote];
    let triple = bytes.get(start..start + 3) == Some(&three[..]);
    let mut i = start + if triple { 3 } else { 1 };
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' if basic => i += 2,
            b'\n' if !triple => return None,
            q if q == quote && !triple => return Some(i + 1),
            q if q == quote && bytes.get(i..i + 3) == Some(&three[..]) => {
                // A multi-line string may end with one or two quotes of its
                // content right before the closing three.
                let mut end = i + 3;
                while end < i + 5 && bytes.get(end) == Some(&quote) {
                    end += 1;
                }
                return Some(end);
            }
            _ => i += 1,
        }
    }
    None
}

/// What a route's `cors` key may be.
pub(crate) const CORS_VALUES: &str = "cors is \"off\", \"closed\", a policy name (cors = \"spa\" for [policies.spa]) or a table of CORS keys";

fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_owned()
}

/// Orders located diagnostics by place in the file, then severity.
pub fn sort(problems: &mut [Located]) {
    problems.sort_by(|a, b| {
        (a.line, a.column, b.diagnostic.severity() == Severity::Error).cmp(&(
            b.line,
            b.column,
            a.diagnostic.severity() == Severity::Error,
        ))
    });
}
