//! What an import builds, and how it becomes a TOML document.
//!
//! The importers fill a [`Draft`]: a few plain values they still need to reason
//! about (is `*` paired with credentials? which keys did an override set?).
//! [`Draft::render`] turns it into a `toml_edit` document, which does the quoting,
//! the tables and the comments, so that no TOML is written by hand.

use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, Value};

/// The policy keys an import can set, in the configuration reference's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Policy {
    pub(crate) allow_origins: Option<Vec<String>>,
    pub(crate) allow_methods: Option<Vec<String>>,
    pub(crate) allow_headers: Option<Vec<String>>,
    pub(crate) expose_headers: Option<Vec<String>>,
    pub(crate) allow_credentials: Option<bool>,
    pub(crate) max_age: Option<i64>,
    pub(crate) allow_private_network: Option<bool>,
    pub(crate) on_disallowed: Option<&'static str>,
    /// Comments at the end of a key's line: (key, comment).
    pub(crate) comments: Vec<(&'static str, String)>,
}

impl Policy {
    pub(crate) fn comment(&mut self, key: &'static str, text: impl Into<String>) {
        self.comments.push((key, text.into()));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.allow_origins.is_none()
            && self.allow_methods.is_none()
            && self.allow_headers.is_none()
            && self.expose_headers.is_none()
            && self.allow_credentials.is_none()
            && self.max_age.is_none()
            && self.allow_private_network.is_none()
            && self.on_disallowed.is_none()
    }

    /// Whether origins include `*` and credentials are on: the pair corsgate
    /// refuses.
    pub(crate) fn any_with_credentials(&self) -> bool {
        self.allow_credentials == Some(true)
            && self
                .allow_origins
                .as_ref()
                .is_some_and(|o| o.iter().any(|x| x == "*"))
    }

    /// The keys that are set, as a table, each with its comments.
    fn table(&self) -> Table {
        let mut table = Table::new();
        let mut put = |key: &'static str, value: Option<Value>| {
            let Some(value) = value else { return };
            let comment: Vec<&str> = self
                .comments
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, c)| c.as_str())
                .collect();
            let value = if comment.is_empty() {
                value
            } else {
                value.decorated(" ", format!("  # {}", comment.join("; ")))
            };
            table.insert(key, Item::Value(value));
        };
        put("allow_origins", self.allow_origins.as_deref().map(list));
        put("allow_methods", self.allow_methods.as_deref().map(list));
        put("allow_headers", self.allow_headers.as_deref().map(list));
        put("expose_headers", self.expose_headers.as_deref().map(list));
        put("allow_credentials", self.allow_credentials.map(Value::from));
        put("max_age", self.max_age.map(Value::from));
        put(
            "allow_private_network",
            self.allow_private_network.map(Value::from),
        );
        put("on_disallowed", self.on_disallowed.map(Value::from));
        table
    }
}

/// A route's CORS: inherited from `[server.cors]` (closed when there is none),
/// or its own keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RouteCors {
    Inherit,
    Own(Policy),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) path: String,
    /// Only requests for this host (Kubernetes imports route by host and path).
    pub(crate) host: Option<String>,
    pub(crate) upstream: String,
    /// Why the upstream is a placeholder, when it is.
    pub(crate) upstream_comment: Option<String>,
    pub(crate) strip_prefix: bool,
    pub(crate) cors: RouteCors,
}

/// A whole imported configuration.
#[derive(Debug, Clone, Default)]
pub(crate) struct Draft {
    pub(crate) server_cors: Option<Policy>,
    pub(crate) routes: Vec<Route>,
    /// `[route.upstream_tls]` of the routes that have one, by route index.
    pub(crate) upstream_tls: Vec<(usize, UpstreamTls)>,
}

/// The keys of a route's `[route.upstream_tls]` an import can set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UpstreamTls {
    pub(crate) ca_file: Option<String>,
    pub(crate) client_cert_file: Option<String>,
    pub(crate) client_key_file: Option<String>,
    pub(crate) server_name: Option<String>,
}

impl UpstreamTls {
    pub(crate) fn is_empty(&self) -> bool {
        *self == UpstreamTls::default()
    }

    fn table(&self) -> Table {
        let mut table = Table::new();
        for (key, value) in [
            ("ca_file", &self.ca_file),
            ("client_cert_file", &self.client_cert_file),
            ("client_key_file", &self.client_key_file),
            ("server_name", &self.server_name),
        ] {
            if let Some(value) = value {
                table.insert(key, Item::Value(value.as_str().into()));
            }
        }
        table
    }
}

/// A TOML basic string, as it appears in a file (for the places of notes).
pub(crate) fn string(text: &str) -> String {
    Value::from(text).to_string().trim().to_owned()
}

/// `"*"` alone, or an array.
fn list(items: &[String]) -> Value {
    if items.len() == 1 && items[0] == "*" {
        return Value::from("*");
    }
    Value::Array(items.iter().map(String::as_str).collect::<Array>())
}

/// Longest comment line written, so that a note stays readable in an editor.
const COMMENT_WIDTH: usize = 96;

/// `text` as `#` comment lines of at most [`COMMENT_WIDTH`] characters (a
/// longer word stays whole); `indent` starts the lines after the first.
fn comment_lines(text: &str, first: &str, indent: &str, out: &mut String) {
    let mut line = format!("# {first}");
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.len() + 1 + word.len() > COMMENT_WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = format!("# {indent}");
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

impl Draft {
    /// The TOML document: the `header` lines and the `notes` as comments first
    /// (so that `corsgate import … > corsgate.toml` keeps them), then the tables.
    pub(crate) fn render(&self, header: &[String], notes: &[super::Note]) -> String {
        let mut doc = DocumentMut::new();
        let mut top = String::new();
        for line in header {
            comment_lines(line, "", "", &mut top);
        }
        if !notes.is_empty() {
            top.push_str("#\n# Notes:\n");
            for note in notes {
                comment_lines(
                    &format!("{}: {}", note.place, note.message),
                    "- ",
                    "  ",
                    &mut top,
                );
            }
        }

        if let Some(policy) = &self.server_cors {
            let mut server = Table::new();
            server.set_implicit(true);
            let mut cors = policy.table();
            cors.decor_mut().set_prefix(format!("{top}\n"));
            top.clear();
            server.insert("cors", Item::Table(cors));
            doc.insert("server", Item::Table(server));
        }
        let mut routes = ArrayOfTables::new();
        for (index, route) in self.routes.iter().enumerate() {
            let mut table = Table::new();
            table.decor_mut().set_prefix(format!("{top}\n"));
            top.clear();
            table.insert("path", Item::Value(route.path.as_str().into()));
            if let Some(host) = &route.host {
                table.insert("host", Item::Value(host.as_str().into()));
            }
            let mut upstream = Value::from(route.upstream.as_str());
            if let Some(comment) = &route.upstream_comment {
                upstream = upstream.decorated(" ", format!("  # {comment}"));
            }
            table.insert("upstream", Item::Value(upstream));
            if route.strip_prefix {
                table.insert("strip_prefix", Item::Value(true.into()));
            }
            if let Some((_, tls)) = self.upstream_tls.iter().find(|(i, _)| *i == index) {
                table.insert("upstream_tls", Item::Table(tls.table()));
            }
            match &route.cors {
                RouteCors::Inherit => {}
                RouteCors::Own(policy) if policy.is_empty() => {}
                RouteCors::Own(policy) => {
                    table.insert("cors", Item::Table(policy.table()));
                }
            }
            routes.push(table);
        }
        if !routes.is_empty() {
            doc.insert("route", Item::ArrayOfTables(routes));
        }
        if !top.is_empty() {
            doc.decor_mut().set_prefix(top);
        }
        doc.to_string()
    }
}
