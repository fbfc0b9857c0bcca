//! The admin listener's endpoints, in one table: the router dispatches on it
//! (a path it does not list is `404`), the access rule of each entry is
//! enforced before any handler runs, and the serve banner and the tests read
//! the same list.

use http::Method;

/// What an admin endpoint asks of its caller, beyond a `Host` the admin
/// listener answers (an IP address, `localhost` or a name of `admin_hosts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// Anyone who reaches the listener: health, readiness, metrics, and the
    /// dashboard's page and assets (they hold no data).
    Open,
    /// The admin token (`Authorization: Bearer`) once
    /// `server.admin_token_file` is set; open without a token file.
    Read,
    /// Always the admin token: refused without `server.admin_token_file`.
    /// A request carrying `Origin` is refused too: it comes from a web page.
    Write,
}

/// Which module answers an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handler {
    /// `/metrics`, `/healthz`, `/readyz`, `/config` (server.rs).
    Server,
    /// The shadow configuration's divergences (shadow.rs).
    Shadow,
    /// The client registry's API (registry_admin.rs).
    Registry,
    /// The dashboard and its data (dashboard/).
    Dashboard,
}

/// One admin endpoint: a method on a path, and what it needs.
///
/// ```
/// use corsgate_gateway::{Access, admin_endpoints};
///
/// let clients = admin_endpoints()
///     .iter()
///     .find(|e| e.method() == "PUT" && e.path() == "/clients/{id}")
///     .unwrap();
/// assert_eq!(clients.access(), Access::Write);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AdminEndpoint {
    method: &'static str,
    path: &'static str,
    access: Access,
    listed: bool,
    handler: Handler,
}

impl AdminEndpoint {
    /// `GET` (which answers `HEAD` too), `POST`, `PUT` or `DELETE`.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// The path; `{id}` stands for one non-empty path segment.
    pub fn path(&self) -> &'static str {
        self.path
    }

    /// What the endpoint asks of its caller.
    pub fn access(&self) -> Access {
        self.access
    }

    /// Whether the serve banner names it (the dashboard's script and style
    /// are not worth a line).
    pub fn listed(&self) -> bool {
        self.listed
    }

    pub(crate) fn handler(&self) -> Handler {
        self.handler
    }

    /// Whether `method` is this endpoint's (`HEAD` is a `GET`, RFC 9110 §9.3.2).
    fn answers(&self, method: &Method) -> bool {
        method.as_str() == self.method || (*method == Method::HEAD && self.method == "GET")
    }

    /// Whether `path` is this endpoint's.
    fn matches(&self, path: &str) -> bool {
        match self.path.split_once("{id}") {
            None => path == self.path,
            Some((prefix, suffix)) => path
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(suffix))
                .is_some_and(|id| !id.is_empty() && !id.contains('/')),
        }
    }
}

const fn endpoint(
    method: &'static str,
    path: &'static str,
    access: Access,
    handler: Handler,
) -> AdminEndpoint {
    AdminEndpoint {
        method,
        path,
        access,
        listed: true,
        handler,
    }
}

const fn asset(path: &'static str) -> AdminEndpoint {
    AdminEndpoint {
        listed: false,
        ..endpoint("GET", path, Access::Open, Handler::Dashboard)
    }
}

/// Every admin endpoint. `/config` needs the token like `/routes` does: both
/// show every route's policy.
const ENDPOINTS: &[AdminEndpoint] = &[
    endpoint("GET", "/", Access::Open, Handler::Dashboard),
    asset("/dashboard.js"),
    asset("/dashboard.css"),
    endpoint("GET", "/metrics", Access::Open, Handler::Server),
    endpoint("GET", "/healthz", Access::Open, Handler::Server),
    endpoint("GET", "/readyz", Access::Open, Handler::Server),
    endpoint("GET", "/config", Access::Read, Handler::Server),
    endpoint("GET", "/routes", Access::Read, Handler::Dashboard),
    endpoint("GET", "/stats", Access::Read, Handler::Dashboard),
    endpoint("GET", "/refusals", Access::Read, Handler::Dashboard),
    // A computation on the caller's input, no write: the dashboard's own
    // page posts it with its `Origin` (dashboard/ checks that one).
    endpoint("POST", "/explain", Access::Read, Handler::Dashboard),
    endpoint("GET", "/shadow", Access::Read, Handler::Shadow),
    endpoint("GET", "/registry", Access::Read, Handler::Registry),
    endpoint("POST", "/registry/reload", Access::Write, Handler::Registry),
    endpoint("GET", "/clients", Access::Read, Handler::Registry),
    endpoint("GET", "/clients/{id}", Access::Read, Handler::Registry),
    endpoint("PUT", "/clients/{id}", Access::Write, Handler::Registry),
    endpoint("DELETE", "/clients/{id}", Access::Write, Handler::Registry),
];

/// Every endpoint of the admin listener, with what it needs; the router
/// answers these and nothing else.
pub fn admin_endpoints() -> &'static [AdminEndpoint] {
    ENDPOINTS
}

/// Where a request lands in the table.
pub(crate) enum Lookup {
    Found(&'static AdminEndpoint),
    /// The path is known, not with this method: the methods it takes, for
    /// `Allow` (RFC 9110 §15.5.6).
    WrongMethod(String),
    NotFound,
}

pub(crate) fn lookup(method: &Method, path: &str) -> Lookup {
    let mut allow: Vec<&str> = Vec::new();
    for endpoint in ENDPOINTS.iter().filter(|e| e.matches(path)) {
        if endpoint.answers(method) {
            return Lookup::Found(endpoint);
        }
        allow.push(endpoint.method);
        if endpoint.method == "GET" {
            allow.push("HEAD");
        }
    }
    if allow.is_empty() {
        Lookup::NotFound
    } else {
        Lookup::WrongMethod(allow.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_methods_are_found_and_ids_are_one_segment() {
        assert!(
            matches!(lookup(&Method::HEAD, "/metrics"), Lookup::Found(e) if e.path == "/metrics")
        );
        assert!(
            matches!(lookup(&Method::DELETE, "/clients/a%2Fb"), Lookup::Found(e) if e.access == Access::Write)
        );
        assert!(matches!(
            lookup(&Method::GET, "/clients/"),
            Lookup::NotFound
        ));
        assert!(matches!(
            lookup(&Method::GET, "/clients/a/b"),
            Lookup::NotFound
        ));
        assert!(matches!(
            lookup(&Method::GET, "/metrics/x"),
            Lookup::NotFound
        ));
        match lookup(&Method::POST, "/clients/a") {
            Lookup::WrongMethod(allow) => assert_eq!(allow, "GET, HEAD, PUT, DELETE"),
            _ => panic!("a known path"),
        }
    }

    #[test]
    fn every_method_and_path_is_listed_once() {
        for (i, a) in ENDPOINTS.iter().enumerate() {
            assert!(
                ["GET", "POST", "PUT", "DELETE"].contains(&a.method),
                "{a:?}"
            );
            for b in &ENDPOINTS[i + 1..] {
                assert!((a.method, a.path) != (b.method, b.path), "{a:?}");
            }
        }
    }
}
