//! The compiled routes and the one place a request is resolved to its route and
//! CORS policy: the gateway and `explain` both call [`RouteTable::resolve`], so
//! what `explain` says is what the gateway does.

use std::sync::Arc;

use corsgate_policy::Policy;
use http::uri::Authority;

use crate::canonical::{self, PathCase};

/// One `[[route]]`, compiled.
#[derive(Debug)]
pub struct Route {
    /// Index in the file.
    pub index: usize,
    /// The metric label: `{index}:{path}`, or `{index}:{host}{path}` for a
    /// route of one host (`5:login.example.com/`): short, and without quotes.
    pub name: String,
    /// How people read it, in `explain` and logs:
    /// `route[5] (host "login.example.com", path "/")` ([`crate::route_label`]).
    pub label: String,
    /// The `[policies.NAME]` the route's CORS comes from (`cors = "NAME"`, or
    /// `policy = "NAME"` in its own table).
    pub policy_name: Option<String>,
    /// The prefix, without a trailing slash (except `/` itself), in the form
    /// request paths are matched in (lowercase with `path_case = "insensitive"`).
    pub path: String,
    /// How many segments `path` has: what `strip_prefix` removes.
    pub segments: usize,
    /// Canonical: lowercase, no trailing dot (see [`canonical::route_host`]).
    pub host: Option<String>,
    /// Where the route's requests go.
    pub upstream: Upstream,
    /// Whether `path` is removed from the request path before forwarding.
    pub strip_prefix: bool,
    /// `None` when CORS is off for this route. A route without a `cors` table
    /// shares the default policy's allocation (`Arc::ptr_eq`): a policy with a
    /// million origins is compiled and held once, not once per route.
    pub policy: Option<Arc<Policy>>,
}

/// Where a route's requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// `http://host:port`, `https://host:port` or `h2c://host:port`.
    Http {
        /// Host and port the requests are sent to.
        authority: Authority,
        /// How: the URL's scheme, and for `https://` the route's `upstream_tls`.
        transport: Transport,
    },
    /// The built-in demo API.
    Demo,
}

/// How the gateway speaks to an upstream: the scheme of its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// `http://`: HTTP/1.1 over TCP, connections pooled.
    Http1,
    /// `h2c://`: HTTP/2 over TCP with prior knowledge (RFC 9113 section 3.3),
    /// one multiplexed connection.
    H2c,
    /// `https://`: TLS, then HTTP/2 or HTTP/1.1 as the upstream picks by ALPN.
    Https(crate::tls::UpstreamTls),
}

impl Transport {
    /// The URL scheme: `http`, `h2c` or `https`.
    pub fn scheme(&self) -> &'static str {
        match self {
            Transport::Http1 => "http",
            Transport::H2c => "h2c",
            Transport::Https(_) => "https",
        }
    }

    /// The port of an upstream URL written without one: 443 for `https://`,
    /// 80 otherwise (RFC 9110 section 4.2).
    pub(crate) fn default_port(&self) -> u16 {
        match self {
            Transport::Https(_) => 443,
            Transport::Http1 | Transport::H2c => 80,
        }
    }
}

impl Route {
    /// Whether this route serves `host` and `path`, both canonical: the host as
    /// [`canonical::canonical_authority`] makes it, the path as
    /// [`canonical::match_path`] makes it.
    pub fn matches(&self, host: Option<&str>, path: &str) -> bool {
        if let Some(want) = &self.host {
            if host != Some(want.as_str()) {
                return false;
            }
        }
        path_has_prefix(path, &self.path)
    }
}

/// Prefix match on segment boundaries: `/api` matches `/api`, `/api/` and
/// `/api/x`, never `/apix`.
pub(crate) fn path_has_prefix(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The routes of a file, in match order, and the default policy.
#[derive(Debug)]
pub struct RouteTable {
    default_policy: Arc<Policy>,
    /// Sorted so that the first match is the best one (longest path; at equal
    /// length, a route with a host first). Private: nothing else may reorder it.
    routes: Vec<Route>,
    path_case: PathCase,
}

/// What serves a request: its route, if any, and the policy that decides its
/// CORS headers.
#[derive(Debug, Clone, Copy)]
pub struct RouteMatch<'a> {
    /// `None`: no route matches (the gateway answers 404, or 400 for a target
    /// it refuses).
    pub route: Option<&'a Route>,
    /// `None`: CORS is off for the route, the upstream's own headers decide.
    /// Without a route, the default policy: the page can read the 404 or 400
    /// instead of a misleading CORS failure.
    pub policy: Option<&'a Arc<Policy>>,
}

impl RouteTable {
    pub(crate) fn new(
        default_policy: Arc<Policy>,
        mut routes: Vec<Route>,
        path_case: PathCase,
    ) -> Self {
        routes.sort_by(|a, b| {
            b.path
                .len()
                .cmp(&a.path.len())
                .then(b.host.is_some().cmp(&a.host.is_some()))
        });
        RouteTable {
            default_policy,
            routes,
            path_case,
        }
    }

    /// The route and policy for a request: the longest matching path; at equal
    /// length, a route for this host before a route for any host.
    /// `host` is canonical ([`canonical::canonical_authority`]) and `path` a
    /// canonical path ([`canonical::canonical_path`]) or `*`.
    pub fn resolve(&self, host: Option<&str>, path: &str) -> RouteMatch<'_> {
        let path = canonical::match_path(path, self.path_case);
        match self.routes.iter().find(|r| r.matches(host, &path)) {
            Some(route) => RouteMatch {
                route: Some(route),
                policy: route.policy.as_ref(),
            },
            None => self.unmatched(),
        }
    }

    /// The match of a request no route can serve, or whose target is refused
    /// before any route can be known: the default policy decides.
    pub fn unmatched(&self) -> RouteMatch<'_> {
        RouteMatch {
            route: None,
            policy: Some(&self.default_policy),
        }
    }

    /// `[server.cors]`, compiled.
    pub fn default_policy(&self) -> &Arc<Policy> {
        &self.default_policy
    }

    /// The routes, in match order.
    /// The routes, in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Route> {
        self.routes.iter()
    }

    /// How many routes the file has.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table has no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

impl<'a> IntoIterator for &'a RouteTable {
    type Item = &'a Route;
    type IntoIter = std::slice::Iter<'a, Route>;

    fn into_iter(self) -> Self::IntoIter {
        self.routes.iter()
    }
}
