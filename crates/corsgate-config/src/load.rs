//! Reading a configuration file so that every problem in it is found at once, each
//! with its line and column.
//!
//! serde stops at the first error, so each key is first deserialized alone (a
//! table with that one key into the struct it belongs to, whose fields are all
//! optional): a typo or a wrong type in one key never hides the others. Keys that
//! pass are then deserialized together.

use std::ops::Range;

use corsgate_policy::{Diagnostic, DiagnosticKind, POLICY_KEYS, Severity};
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::model::{FileConfig, ROUTE_KEYS, SERVER_KEYS};

/// A diagnostic with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Located {
    pub line: usize,
    pub column: usize,
    #[serde(flatten)]
    pub diagnostic: Diagnostic,
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
    pub errors: usize,
    pub warnings: usize,
}

impl Summary {
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
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
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
    pub fn span_of(&self, path: &str) -> Range<usize> {
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
pub struct Parsed<'i> {
    pub source: Source<'i>,
    pub config: Option<FileConfig>,
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
    for err in syntax_errors {
        let (line, column) = parsed.source.line_col(err.span().map_or(0, |s| s.start));
        let message = first_line(err.message());
        parsed.problems.push(Located {
            line,
            column,
            diagnostic: Diagnostic::error(
                DiagnosticKind::File,
                "",
                format!("TOML syntax: {message}"),
            ),
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
        &["server", "route", "policies"],
        |checker, key, value, path| match key {
            "server" => checker.nested::<super::model::ServerConfig>(
                value,
                path,
                &["cors"],
                |checker, key, value, path| match key {
                    "cors" => checker.nested::<corsgate_policy::CorsConfig>(
                        value,
                        path,
                        &[],
                        |_, _, v, _| Some(v.clone()),
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
                    let message = if unknown {
                        unknown_key_message(name, prefix)
                    } else {
                        first_line(err.message())
                    };
                    self.push(span, Diagnostic::error(DiagnosticKind::File, path, message));
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
                &["cors"],
                |checker, _, value, path| match value.get_ref() {
                    // "off", "closed" or a policy name: names are resolved when
                    // the file is compiled, where every [policies.NAME] is known.
                    DeValue::String(_) => Some(value.clone()),
                    DeValue::Table(_) => checker.nested::<corsgate_policy::CorsConfig>(
                        value,
                        path,
                        &["policy"],
                        |checker, _, value, path| match value.get_ref() {
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
            if let Some(checked) =
                self.nested::<corsgate_policy::CorsConfig>(policy, &at, &[], |_, _, v, _| {
                    Some(v.clone())
                })
            {
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
        "" => &["server", "policies", "route"],
        "server" => SERVER_KEYS,
        "server.cors" => POLICY_KEYS,
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
