//! The configuration being built by an import, and how it is written out as TOML
//! (by hand, so that keys come in the reference's order and can carry comments).

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

    fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut push = |key: &'static str, value: Option<String>| {
            let Some(value) = value else { return };
            let mut line = format!("{key} = {value}");
            for (k, comment) in &self.comments {
                if *k == key {
                    line.push_str("  # ");
                    line.push_str(comment);
                }
            }
            out.push(line);
        };
        push("allow_origins", self.allow_origins.as_deref().map(list));
        push("allow_methods", self.allow_methods.as_deref().map(list));
        push("allow_headers", self.allow_headers.as_deref().map(list));
        push("expose_headers", self.expose_headers.as_deref().map(list));
        push(
            "allow_credentials",
            self.allow_credentials.map(|b| b.to_string()),
        );
        push("max_age", self.max_age.map(|n| n.to_string()));
        push(
            "allow_private_network",
            self.allow_private_network.map(|b| b.to_string()),
        );
        push("on_disallowed", self.on_disallowed.map(string));
        out
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
}

/// A TOML basic string.
pub(crate) fn string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// `"*"` alone, or an array.
fn list(items: &[String]) -> String {
    if items.len() == 1 && items[0] == "*" {
        return string("*");
    }
    let inner: Vec<String> = items.iter().map(|i| string(i)).collect();
    format!("[{}]", inner.join(", "))
}

impl Draft {
    /// The TOML text, after a comment header.
    pub(crate) fn render(&self, header: &[String]) -> String {
        let mut out = String::new();
        for line in header {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
        if let Some(policy) = &self.server_cors {
            out.push_str("\n[server.cors]\n");
            for line in policy.lines() {
                out.push_str(&line);
                out.push('\n');
            }
        }
        for route in &self.routes {
            out.push_str("\n[[route]]\n");
            out.push_str(&format!("path = {}\n", string(&route.path)));
            out.push_str(&format!("upstream = {}", string(&route.upstream)));
            if let Some(comment) = &route.upstream_comment {
                out.push_str("  # ");
                out.push_str(comment);
            }
            out.push('\n');
            if route.strip_prefix {
                out.push_str("strip_prefix = true\n");
            }
            match &route.cors {
                RouteCors::Inherit => {}
                RouteCors::Own(policy) if policy.is_empty() => {}
                RouteCors::Own(policy) => {
                    out.push_str("[route.cors]\n");
                    for line in policy.lines() {
                        out.push_str(&line);
                        out.push('\n');
                    }
                }
            }
        }
        out
    }
}
