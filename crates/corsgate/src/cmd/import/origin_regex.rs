//! The origins an nginx `map` regex over `$http_origin` matches, read from its
//! syntax tree (`regex-syntax`'s HIR) rather than from its spelling: `(?:…)`,
//! `\/`, `[.]`, `{1,5}` or a reordered class are all the same tree.
//!
//! The regex is expanded into the few strings it spells out, where a repeated
//! class followed by a dot stands for corsgate's `*.` and a repeated digit class
//! after `:` for `:*`. Anything else a regex can say (a wildcard inside a host
//! name, a repeated word) has no corsgate pattern, and is refused with the
//! reason, so that the person lists the origins it was meant to match.

use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// Most strings one regex may spell out (`(a|b)(c|d)` is four): far more than
/// any allowlist entry holds, small enough to bound the work on any input.
const MAX_ALTERNATIVES: usize = 256;

/// Most copies of a sub-expression a counted repetition (`{3}`) is expanded to.
const MAX_REPEAT: u32 = 8;

/// One position of a spelled-out string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    /// A byte, lowercase (hosts and schemes compare case-insensitively).
    Lit(u8),
    /// `^`.
    Start,
    /// `$`.
    End,
    /// A class: `.`, `[a-z0-9-]`, `\d`, `\w`…
    Wild {
        /// It can match `.`, so it can span labels.
        dots: bool,
        /// It matches digits only.
        digits: bool,
        /// One character, not repeated.
        one: bool,
    },
}

/// The origins `regex` matches, with warnings where it matched more than
/// intended; an error (the reason) when it has no corsgate equivalent.
pub(super) fn origins(regex: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(regex)
        .map_err(|err| {
            format!(
                "not a regex nginx accepts ({})",
                first_line(&err.to_string())
            )
        })?;
    let alternatives = expand(&hir)?;
    let mut warnings = Vec::new();
    let mut out: Vec<String> = Vec::new();
    let mut unanchored = None;
    let mut parsed = Vec::new();
    for toks in &alternatives {
        let origin = origin(toks, &mut warnings)?;
        if !origin.anchored_end {
            unanchored = Some(format!("{}://{}", origin.scheme, origin.host));
        }
        parsed.push(origin);
    }
    for origin in &parsed {
        let text = origin.text();
        if origin.port.as_deref() == Some("*")
            && !parsed.iter().any(|o| {
                o.scheme == origin.scheme
                    && o.prefix == origin.prefix
                    && o.host == origin.host
                    && o.port.is_none()
            })
        {
            push_once(
                &mut warnings,
                "any port: imported as :*, which also matches the scheme's default port".to_owned(),
            );
        }
        if !out.contains(&text) {
            out.push(text);
        }
    }
    if let Some(sample) = unanchored {
        warnings.push(format!(
            "not anchored at the end (`$`): it also matched {sample}.evil.example; the regex matched more than intended; imported as if anchored"
        ));
    }
    Ok((out, warnings))
}

fn first_line(text: &str) -> &str {
    text.lines().last().unwrap_or(text).trim()
}

fn push_once(warnings: &mut Vec<String>, warning: String) {
    if !warnings.contains(&warning) {
        warnings.push(warning);
    }
}

/// The strings `hir` spells out, at most [`MAX_ALTERNATIVES`].
fn expand(hir: &Hir) -> Result<Vec<Vec<Tok>>, String> {
    let out = match hir.kind() {
        HirKind::Empty => vec![Vec::new()],
        HirKind::Literal(literal) => vec![
            literal
                .0
                .iter()
                .map(|b| Tok::Lit(b.to_ascii_lowercase()))
                .collect(),
        ],
        HirKind::Class(class) => vec![vec![class_tok(class)]],
        HirKind::Look(Look::Start) => vec![vec![Tok::Start]],
        HirKind::Look(Look::End) => vec![vec![Tok::End]],
        HirKind::Look(look) => return Err(format!("cannot read the assertion {look:?}")),
        HirKind::Capture(capture) => expand(&capture.sub)?,
        HirKind::Concat(parts) => {
            let mut out = vec![Vec::new()];
            for part in parts {
                out = product(&out, &expand(part)?)?;
            }
            out
        }
        HirKind::Alternation(branches) => {
            let mut out = Vec::new();
            for branch in branches {
                out.extend(expand(branch)?);
                bound(out.len())?;
            }
            out
        }
        HirKind::Repetition(rep) => {
            let sub = expand(&rep.sub)?;
            let optional = rep.min == 0;
            if let [toks] = sub.as_slice() {
                if let [Tok::Wild { dots, digits, .. }] = toks.as_slice() {
                    let wild = vec![Tok::Wild {
                        dots: *dots,
                        digits: *digits,
                        one: rep.min == 1 && rep.max == Some(1),
                    }];
                    return Ok(if optional {
                        vec![Vec::new(), wild]
                    } else {
                        vec![wild]
                    });
                }
            }
            if rep.max == Some(1) {
                let mut out = if optional {
                    vec![Vec::new()]
                } else {
                    Vec::new()
                };
                out.extend(sub);
                out
            } else if Some(rep.min) == rep.max && rep.min <= MAX_REPEAT {
                let mut out = vec![Vec::new()];
                for _ in 0..rep.min {
                    out = product(&out, &sub)?;
                }
                out
            } else if sub
                .iter()
                .all(|toks| toks.iter().any(|t| matches!(t, Tok::Wild { .. })))
            {
                // `([a-z0-9-]+\.)+`: one copy of "labels and a dot" already
                // stands for corsgate's `*.`, which is one or more labels.
                let mut out = if optional {
                    vec![Vec::new()]
                } else {
                    Vec::new()
                };
                out.extend(sub);
                out
            } else {
                return Err(
                    "a repeated group of fixed text spells out no list of origins".to_owned(),
                );
            }
        }
    };
    bound(out.len())?;
    Ok(out)
}

fn bound(count: usize) -> Result<(), String> {
    if count > MAX_ALTERNATIVES {
        return Err(format!(
            "it spells out more than {MAX_ALTERNATIVES} origins; list them instead"
        ));
    }
    Ok(())
}

fn product(left: &[Vec<Tok>], right: &[Vec<Tok>]) -> Result<Vec<Vec<Tok>>, String> {
    bound(left.len().saturating_mul(right.len()))?;
    let mut out = Vec::with_capacity(left.len() * right.len());
    for a in left {
        for b in right {
            let mut joined = a.clone();
            joined.extend_from_slice(b);
            out.push(joined);
        }
    }
    Ok(out)
}

/// A class as a literal when it holds one character (`[.]`, `[Aa]` in a
/// case-insensitive regex), a wildcard otherwise.
fn class_tok(class: &Class) -> Tok {
    let mut bytes: Vec<u8> = Vec::new();
    let mut wide = false;
    match class {
        Class::Bytes(class) => {
            for range in class.iter() {
                if usize::from(range.end() - range.start()) > 64 {
                    wide = true;
                    break;
                }
                bytes.extend(range.start()..=range.end());
            }
        }
        Class::Unicode(class) => {
            for range in class.iter() {
                let (start, end) = (u32::from(range.start()), u32::from(range.end()));
                if end > 0x7f || end - start > 64 {
                    wide = true;
                    break;
                }
                bytes.extend((start..=end).filter_map(|c| u8::try_from(c).ok()));
            }
        }
    }
    if !wide {
        let mut folded: Vec<u8> = bytes.iter().map(u8::to_ascii_lowercase).collect();
        folded.dedup();
        if let [byte] = folded.as_slice() {
            return Tok::Lit(*byte);
        }
    }
    let dots = wide || bytes.contains(&b'.');
    let digits = !wide && !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit);
    Tok::Wild {
        dots,
        digits,
        one: true,
    }
}

/// One spelled-out string read as an origin pattern.
struct Origin {
    scheme: String,
    /// `*.` when any subdomain was allowed.
    prefix: &'static str,
    host: String,
    /// Digits, or `*` for any port.
    port: Option<String>,
    anchored_end: bool,
}

impl Origin {
    fn text(&self) -> String {
        let mut text = format!("{}://{}{}", self.scheme, self.prefix, self.host);
        if let Some(port) = &self.port {
            text.push(':');
            text.push_str(port);
        }
        text
    }
}

fn origin(toks: &[Tok], warnings: &mut Vec<String>) -> Result<Origin, String> {
    let Some((Tok::Start, mut rest)) = toks.split_first() else {
        return Err("not anchored at the start (`^`)".to_owned());
    };
    let anchored_end = rest.last() == Some(&Tok::End);
    if anchored_end {
        rest = &rest[..rest.len() - 1];
    }
    if rest.iter().any(|t| matches!(t, Tok::Start | Tok::End)) {
        return Err("`^` or `$` in the middle of the regex".to_owned());
    }

    let separator = rest
        .windows(3)
        .position(|w| w == [Tok::Lit(b':'), Tok::Lit(b'/'), Tok::Lit(b'/')])
        .ok_or("no scheme (such as https://) at the start")?;
    let mut scheme = String::new();
    for tok in &rest[..separator] {
        match tok {
            Tok::Lit(b) if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.') => {
                scheme.push(char::from(*b));
            }
            _ => return Err("cannot read the scheme: write it out (https?:// is fine)".to_owned()),
        }
    }
    if scheme.is_empty() {
        return Err("no scheme (such as https://) at the start".to_owned());
    }
    rest = &rest[separator + 3..];

    // Any subdomain: a repeated class then a dot, at the start of the host.
    let mut prefix = "";
    while let [Tok::Wild { one: false, .. }, Tok::Lit(b'.'), after @ ..] = rest {
        prefix = "*.";
        rest = after;
    }
    let host_end = rest
        .iter()
        .position(|t| *t == Tok::Lit(b':'))
        .unwrap_or(rest.len());
    let (host_toks, port_toks) = rest.split_at(host_end);
    let mut host = String::new();
    for (i, tok) in host_toks.iter().enumerate() {
        match tok {
            Tok::Lit(b) if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.') => {
                host.push(char::from(*b));
            }
            Tok::Lit(b'/') => {
                return Err("a path after the host: an origin has none".to_owned());
            }
            Tok::Lit(b) => {
                return Err(format!("cannot read {:?} in the host name", char::from(*b)));
            }
            Tok::Wild {
                one: true,
                dots: true,
                ..
            } => {
                push_once(
                    warnings,
                    "an unescaped `.` matches any character, so the regex matched more than intended; read as a dot".to_owned(),
                );
                host.push('.');
            }
            Tok::Wild { .. } if i == 0 && prefix.is_empty() => {
                return Err(
                    "a wildcard before the domain that is not followed by `\\.` matches any characters, so anyone's domain ending like yours passes; the regex matched more than intended".to_owned(),
                );
            }
            Tok::Wild { .. } => {
                return Err(
                    "a wildcard inside the host name: corsgate patterns have `*.` before a domain and `:*` for the port; list the origins it is meant to match".to_owned(),
                );
            }
            Tok::Start | Tok::End => unreachable!("removed above"),
        }
    }
    if host.is_empty() {
        return Err("no host name".to_owned());
    }
    let port = match port_toks {
        [] => None,
        [
            Tok::Lit(b':'),
            Tok::Wild {
                digits: true,
                one: false,
                ..
            },
        ] => Some("*".to_owned()),
        [Tok::Lit(b':'), digits @ ..]
            if !digits.is_empty()
                && digits
                    .iter()
                    .all(|t| matches!(t, Tok::Lit(b) if b.is_ascii_digit())) =>
        {
            Some(
                digits
                    .iter()
                    .map(|t| match t {
                        Tok::Lit(b) => char::from(*b),
                        _ => '?',
                    })
                    .collect(),
            )
        }
        _ => return Err("cannot read the port: write it as :8080 or (:[0-9]+)?".to_owned()),
    };
    Ok(Origin {
        scheme,
        prefix,
        host,
        port,
        anchored_end,
    })
}

#[cfg(test)]
mod tests {
    use super::origins;

    #[test]
    fn the_same_tree_however_it_is_spelled() {
        let cases: &[(&str, &[&str])] = &[
            (
                "^https://(.+\\.)?example\\.com$",
                &["https://example.com", "https://*.example.com"],
            ),
            (
                "^https?://(www\\.)?example\\.com$",
                &[
                    "http://example.com",
                    "http://www.example.com",
                    "https://example.com",
                    "https://www.example.com",
                ],
            ),
            (
                "^https://(app|admin)\\.example\\.com$",
                &["https://app.example.com", "https://admin.example.com"],
            ),
            (
                "^http://localhost(:[0-9]+)?$",
                &["http://localhost", "http://localhost:*"],
            ),
            (
                "^https://([a-z0-9-]+\\.)+example\\.com$",
                &["https://*.example.com"],
            ),
            // Spellings the former fragment table did not know.
            (
                "^(?:https)\\:\\/\\/(?:[-a-zA-Z0-9]{1,63}[.])*example[.]com(?::\\d{2,5})?$",
                &[
                    "https://example.com",
                    "https://example.com:*",
                    "https://*.example.com",
                    "https://*.example.com:*",
                ],
            ),
            (
                "^https://(?:app|api)\\.example\\.(?:com|org)$",
                &[
                    "https://app.example.com",
                    "https://app.example.org",
                    "https://api.example.com",
                    "https://api.example.org",
                ],
            ),
            (
                "^HTTPS://App\\.Example\\.com:8443$",
                &["https://app.example.com:8443"],
            ),
        ];
        for (regex, expected) in cases {
            let (mut got, warnings) = origins(regex).unwrap_or_else(|e| panic!("{regex}: {e}"));
            let mut expected = expected.to_vec();
            if regex.contains("(?:") {
                got.sort();
                expected.sort_unstable();
            }
            assert_eq!(got, expected, "{regex}");
            assert!(warnings.is_empty(), "{regex}: {warnings:?}");
        }
    }

    #[test]
    fn regexes_that_matched_more_than_intended() {
        let (got, warnings) = origins("^https://example\\.com").unwrap();
        assert_eq!(got, ["https://example.com"]);
        assert!(
            warnings[0].contains("not anchored at the end"),
            "{warnings:?}"
        );
        let (_, warnings) = origins("^https://app.example.com$").unwrap();
        assert!(warnings[0].contains("unescaped"), "{warnings:?}");
        let (got, warnings) = origins("^http://localhost:\\d+$").unwrap();
        assert_eq!(got, ["http://localhost:*"]);
        assert!(warnings[0].contains("any port"), "{warnings:?}");
        for (regex, why) in [
            ("^https://.*example\\.com$", "more than intended"),
            ("^https://[a-z]+example\\.com$", "more than intended"),
            ("example\\.com$", "not anchored at the start"),
            (
                "^https://app-[0-9]+\\.example\\.com$",
                "inside the host name",
            ),
            ("^https://(ab)+\\.example\\.com$", "fixed text"),
            ("^https://example\\.com/app$", "a path"),
            (
                "^https://(ab|cd|ef|gh)(ab|cd|ef|gh)(ab|cd|ef|gh)(ab|cd|ef|gh)(ab|cd|ef|gh)\\.com$",
                "more than 256",
            ),
            ("^https://(example\\.com$", "not a regex"),
        ] {
            let err = origins(regex).unwrap_err();
            assert!(err.contains(why), "{regex}: {err}");
        }
    }
}
