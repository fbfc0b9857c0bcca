//! Kubernetes Gateway API: HTTPRoute manifests and their `CORS` filters
//! (`HTTPCORSFilter`, Standard channel since v1.5), one route per hostname and
//! path match.
//!
//! The specification's semantics, from its API reference: origins are
//! `scheme://host[:port]`, where `*.` in the host stands for any number of
//! labels (corsgate's `*.` too) and `*` alone for every origin; with
//! `allowCredentials: true` a `*` in origins, methods or headers makes the
//! gateway echo the request's value instead; `maxAge` defaults to 5 s; the
//! CORS-safelisted methods are always allowed.

use saphyr::Yaml;

use super::common::Notes;
use super::draft::{Draft, Policy, Route, RouteCors};
use super::k8s::{self, Backends, Object, Routes};

const CORS_KEYS: &[&str] = &[
    "allowOrigins",
    "allowMethods",
    "allowHeaders",
    "exposeHeaders",
    "allowCredentials",
    "maxAge",
];

pub(super) fn import(text: &str, notes: &mut Notes) -> anyhow::Result<Draft> {
    let docs = k8s::documents(text)?;
    let httproutes = k8s::objects(
        &docs,
        "HTTPRoute",
        "give import HTTPRoute manifests, such as the output of `kubectl get httproute -A -o yaml`",
    )?;
    let mut backends = Backends::default();
    let mut routes = Routes::default();
    let mut any_cors = false;
    for httproute in &httproutes {
        let place = format!("HTTPRoute {}", httproute.id);
        let hostnames: Vec<Option<String>> =
            match httproute.get(&["spec", "hostnames"]).and_then(k8s::strings) {
                Some(list) if !list.is_empty() => {
                    let at = format!("{place}, spec.hostnames");
                    list.iter()
                        .map(|h| k8s::route_host(h, &at, notes))
                        .collect()
                }
                _ => vec![None],
            };
        let rules = httproute
            .get(&["spec", "rules"])
            .and_then(Yaml::as_sequence)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if rules.is_empty() {
            notes.add(&place, "no rules: no route imported");
        }
        for (r, rule) in rules.iter().enumerate() {
            let at = format!("{place}, spec.rules[{r}]");
            let cors = match cors_filter(rule, &at, notes) {
                Some((filter, filter_at)) => {
                    any_cors = true;
                    RouteCors::Own(policy(filter, &filter_at, notes))
                }
                None => RouteCors::Inherit,
            };
            let (upstream, comment) = backend(httproute, rule, &at, &mut backends, notes);
            let matches = rule
                .as_mapping_get("matches")
                .and_then(Yaml::as_sequence)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let mut paths = Vec::new();
            if matches.is_empty() {
                // The specification's default match: PathPrefix "/".
                paths.push("/".to_owned());
            }
            for (m, one) in matches.iter().enumerate() {
                if let Some(path) = match_path(one, &format!("{at}.matches[{m}]"), notes) {
                    paths.push(path);
                }
            }
            for path in paths {
                for host in &hostnames {
                    routes.push(
                        Route {
                            path: path.clone(),
                            host: host.clone(),
                            upstream: upstream.clone(),
                            upstream_comment: Some(comment.clone()),
                            strip_prefix: false,
                            cors: cors.clone(),
                        },
                        &at,
                        notes,
                    );
                }
            }
        }
    }
    k8s::placeholders_note(notes, &backends);
    if !any_cors {
        notes.add("file", "no rule has a CORS filter: CORS stays closed");
    }
    if routes.list.is_empty() {
        anyhow::bail!("no HTTPRoute has a rule to route");
    }
    Ok(Draft {
        server_cors: None,
        routes: routes.list,
        ..Draft::default()
    })
}

/// The rule's `CORS` filter (or, failing that, one on its first backendRef),
/// with its place.
fn cors_filter<'y>(
    rule: &'y Yaml<'y>,
    at: &str,
    notes: &mut Notes,
) -> Option<(&'y Yaml<'y>, String)> {
    let find = |filters: Option<&'y Yaml<'y>>| {
        filters
            .and_then(Yaml::as_sequence)
            .into_iter()
            .flatten()
            .enumerate()
            .find(|(_, f)| f.as_mapping_get("type").and_then(Yaml::as_str) == Some("CORS"))
            .and_then(|(i, f)| f.as_mapping_get("cors").map(|c| (i, c)))
    };
    if let Some((i, cors)) = find(rule.as_mapping_get("filters")) {
        return Some((cors, format!("{at}.filters[{i}].cors")));
    }
    let refs = rule
        .as_mapping_get("backendRefs")
        .and_then(Yaml::as_sequence)?;
    for (b, backend) in refs.iter().enumerate() {
        if let Some((i, cors)) = find(backend.as_mapping_get("filters")) {
            let place = format!("{at}.backendRefs[{b}].filters[{i}].cors");
            notes.add(
                &place,
                "a CORS filter on one backendRef: corsgate applies CORS per route, so it is imported for the whole rule",
            );
            return Some((cors, place));
        }
    }
    None
}

/// The corsgate policy of one `HTTPCORSFilter`.
fn policy(cors: &Yaml<'_>, place: &str, notes: &mut Notes) -> Policy {
    let at = |key: &str| format!("{place}.{key}");
    if let Some(map) = cors.as_mapping() {
        for key in map.keys() {
            let name = key.as_str().unwrap_or("?");
            if !CORS_KEYS.contains(&name) {
                notes.add(at(name), "unknown field: not imported");
            }
        }
    }
    let list = |key: &str, notes: &mut Notes| -> Option<Vec<String>> {
        let node = cors.as_mapping_get(key)?;
        let out = k8s::strings(node);
        if out.is_none() {
            notes.add(at(key), "not a list of strings: not imported");
        }
        out
    };
    let mut policy = Policy::default();
    let credentials = match cors.as_mapping_get("allowCredentials") {
        None => false,
        Some(node) => node.as_bool().unwrap_or_else(|| {
            notes.add(
                at("allowCredentials"),
                "not true or false: read as the default, false",
            );
            false
        }),
    };
    if credentials {
        policy.allow_credentials = Some(true);
    }

    match list("allowOrigins", notes) {
        Some(origins) if !origins.is_empty() => {
            let mut items = Vec::new();
            for origin in origins {
                match origin.split_once("://") {
                    Some((scheme, "*")) => {
                        notes.add(
                            at("allowOrigins"),
                            format!(
                                "{origin:?} allowed every {scheme} origin: corsgate has no pattern for a whole scheme: imported as \"*\", which also allows the other schemes"
                            ),
                        );
                        items.push("*".to_owned());
                    }
                    _ => items.push(origin),
                }
            }
            policy.allow_origins = Some(notes.origins(&at("allowOrigins"), &items));
            notes.any_with_credentials(
                &at("allowOrigins"),
                &policy,
                "With allowCredentials, the Gateway API has the gateway echo every origin instead of `*`, so any site could read users' data with their cookies;",
            );
        }
        _ => notes.add(
            at("allowOrigins"),
            "not set or empty: no origin is allowed, so CORS stays closed on this route",
        ),
    }
    match list("allowMethods", notes) {
        Some(methods) => policy.allow_methods = notes.methods(&at("allowMethods"), &methods, false),
        None => notes.add(
            at("allowMethods"),
            "not set: only the CORS-safelisted methods (GET, HEAD, POST) are allowed, as the Gateway API specifies; an implementation may have added its own defaults: list any other method clients use",
        ),
    }
    if let Some(headers) = list("allowHeaders", notes) {
        // With credentials, the gateway echoes the requested headers for `*`,
        // Authorization included: `notes.headers` adds it, with its note.
        policy.allow_headers = notes.headers(&at("allowHeaders"), &headers, credentials);
    }
    if let Some(expose) = list("exposeHeaders", notes) {
        policy.expose_headers = notes.expose(&at("exposeHeaders"), &expose, true);
    }
    match cors.as_mapping_get("maxAge") {
        Some(node) => match node.as_integer() {
            Some(seconds) => policy.max_age = notes.max_age(&at("maxAge"), seconds),
            None => notes.add(at("maxAge"), "not a number of seconds: not imported"),
        },
        None => notes.add(
            at("maxAge"),
            "not set: the Gateway API's default is 5 s, which is also what browsers use without the header: no max_age",
        ),
    }
    policy
}

/// The corsgate path of one HTTPRouteMatch, `None` when it cannot be imported.
fn match_path(one: &Yaml<'_>, at: &str, notes: &mut Notes) -> Option<String> {
    let others: Vec<&str> = ["headers", "queryParams", "method"]
        .into_iter()
        .filter(|k| one.as_mapping_get(k).is_some())
        .collect();
    if !others.is_empty() {
        notes.add(
            at,
            format!(
                "the match also tested {}: corsgate routes by host and path only: imported by path",
                others.join(", ")
            ),
        );
    }
    let path = one.as_mapping_get("path");
    let kind = path
        .and_then(|p| p.as_mapping_get("type"))
        .and_then(k8s::text)
        .unwrap_or_else(|| "PathPrefix".to_owned());
    let value = path
        .and_then(|p| p.as_mapping_get("value"))
        .and_then(k8s::text)
        .unwrap_or_else(|| "/".to_owned());
    match kind.as_str() {
        "PathPrefix" => {}
        "Exact" => notes.add(
            at,
            format!(
                "path Exact {value:?}: imported as a prefix route, which also matches the paths below it"
            ),
        ),
        "RegularExpression" => {
            let meta = |c: char| "^$()[]{}*+?|\\.".contains(c);
            let literal = &value[..value.find(meta).unwrap_or(value.len())];
            let prefix = k8s::prefix(&literal[..=literal.rfind('/').unwrap_or(0)]);
            notes.add(
                at,
                format!(
                    "path RegularExpression {value:?}: corsgate routes match path prefixes, not regexes: imported as the prefix {prefix:?}, which may match more; add routes per path if that matters"
                ),
            );
            return Some(prefix);
        }
        other => {
            notes.add(at, format!("path type {other:?} is unknown: not imported"));
            return None;
        }
    }
    if !value.starts_with('/') {
        notes.add(
            at,
            format!("path {value:?} does not start with /: not imported"),
        );
        return None;
    }
    Some(k8s::prefix(&value))
}

/// The placeholder upstream of a rule's backendRefs.
fn backend(
    httproute: &Object<'_>,
    rule: &Yaml<'_>,
    at: &str,
    backends: &mut Backends,
    notes: &mut Notes,
) -> (String, String) {
    let refs = rule
        .as_mapping_get("backendRefs")
        .and_then(Yaml::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let Some(first) = refs.first() else {
        notes.add(
            at,
            "no backendRefs (the gateway answered 500): set route.upstream, or remove the route",
        );
        return backends.upstream(&format!("{}/(no backend)", httproute.id), "none");
    };
    if refs.len() > 1 {
        notes.add(
            at,
            format!(
                "{} backendRefs shared the traffic by weight; a corsgate route has one upstream: the first is used",
                refs.len()
            ),
        );
    }
    let field = |key: &str| first.as_mapping_get(key).and_then(k8s::text);
    let kind = field("kind").unwrap_or_else(|| "Service".to_owned());
    let name = field("name").unwrap_or_else(|| "(unnamed)".to_owned());
    let ns = field("namespace").unwrap_or_else(|| httproute.namespace.clone());
    let port = field("port").unwrap_or_else(|| "(no port)".to_owned());
    if kind != "Service" {
        notes.add(
            at,
            format!("backendRef of kind {kind}: set route.upstream to its address"),
        );
    }
    backends.upstream(
        &format!("{ns}/{name}:{port}"),
        &format!("http://{name}.{ns}.svc:{port}"),
    )
}
