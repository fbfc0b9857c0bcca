//! ingress-nginx: Ingress manifests and their `nginx.ingress.kubernetes.io/`
//! CORS annotations, one route per host and path.
//!
//! ingress-nginx's semantics, from its annotations reference and its template:
//! `enable-cors: "true"` turns CORS on for every path of the Ingress, with
//! defaults for each key not set — origin `*`, credentials `true`, methods
//! `GET, PUT, POST, DELETE, PATCH, OPTIONS`, a list of request headers, and
//! max-age 1728000 s. For origin `*` it sends `Access-Control-Allow-Origin: *`
//! literally (it sets `$http_origin` to `*`), so with its default credentials
//! browsers refuse every credentialed request; a listed origin is compared
//! case-insensitively and echoed, and `*.` in it stands for one DNS label.

use std::collections::HashMap;

use super::common::Notes;
use super::draft::{Draft, Policy, Route, RouteCors};
use super::k8s::{self, Backends, Object, Routes};

const PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// ingress-nginx's defaults for the keys an `enable-cors` Ingress leaves out.
const DEFAULT_METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"];
const DEFAULT_HEADERS: &[&str] = &[
    "DNT",
    "Keep-Alive",
    "User-Agent",
    "X-Requested-With",
    "If-Modified-Since",
    "Cache-Control",
    "Content-Type",
    "Range",
    "Authorization",
];
const DEFAULT_MAX_AGE: i64 = 1_728_000;

/// The CORS annotations this import reads (after the prefix).
const CORS_KEYS: &[&str] = &[
    "enable-cors",
    "cors-allow-origin",
    "cors-allow-methods",
    "cors-allow-headers",
    "cors-expose-headers",
    "cors-allow-credentials",
    "cors-max-age",
];

pub(super) fn import(text: &str, notes: &mut Notes) -> anyhow::Result<Draft> {
    let docs = k8s::documents(text)?;
    let ingresses = k8s::objects(
        &docs,
        "Ingress",
        "give import Ingress manifests, such as the output of `kubectl get ingress -A -o yaml`",
    )?;
    let mut backends = Backends::default();
    let mut routes = Routes::default();
    let mut any_cors = false;
    let mut tls = false;
    for ingress in &ingresses {
        let place = format!("Ingress {}", ingress.id);
        let annotations = annotations(ingress);
        let cors = match policy(&annotations, &place, notes) {
            Some(policy) => {
                any_cors = true;
                RouteCors::Own(policy)
            }
            None => RouteCors::Inherit,
        };
        if let Some(target) = annotations.get("rewrite-target") {
            notes.add(
                format!("{place}, rewrite-target"),
                format!(
                    "paths were rewritten to {target:?} before reaching the backend; corsgate forwards the path as it came (strip_prefix = true only removes the route's prefix): not carried over"
                ),
            );
        }
        let regex = annotations
            .get("use-regex")
            .is_some_and(|v| parse_bool(v) == Some(true))
            || annotations.contains_key("rewrite-target");
        tls |= ingress.get(&["spec", "tls"]).is_some();

        let mut any_path = false;
        let rules = ingress
            .get(&["spec", "rules"])
            .and_then(saphyr::Yaml::as_sequence)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for (r, rule) in rules.iter().enumerate() {
            let at = format!("{place}, spec.rules[{r}]");
            let host = rule
                .as_mapping_get("host")
                .and_then(k8s::text)
                .and_then(|h| k8s::route_host(&h, &at, notes));
            let paths = rule
                .as_mapping_get("http")
                .and_then(|h| h.as_mapping_get("paths"))
                .and_then(saphyr::Yaml::as_sequence)
                .map(Vec::as_slice)
                .unwrap_or_default();
            for (p, path) in paths.iter().enumerate() {
                let at = format!("{at}.http.paths[{p}]");
                let value = path
                    .as_mapping_get("path")
                    .and_then(k8s::text)
                    .unwrap_or_else(|| "/".to_owned());
                let kind = path
                    .as_mapping_get("pathType")
                    .and_then(k8s::text)
                    .unwrap_or_else(|| "ImplementationSpecific".to_owned());
                let Some(prefix) = route_path(&value, &kind, regex, &at, notes) else {
                    continue;
                };
                let (upstream, comment) = backend(
                    ingress,
                    path.as_mapping_get("backend"),
                    &at,
                    &mut backends,
                    notes,
                );
                any_path = true;
                routes.push(
                    Route {
                        path: prefix,
                        host: host.clone(),
                        upstream,
                        upstream_comment: Some(comment),
                        strip_prefix: false,
                        cors: cors.clone(),
                    },
                    &at,
                    notes,
                );
            }
        }
        if let Some(default) = ingress.get(&["spec", "defaultBackend"]) {
            let at = format!("{place}, spec.defaultBackend");
            notes.add(
                &at,
                "the default backend answered requests no rule matched: imported as a route for / on any host",
            );
            let (upstream, comment) = backend(ingress, Some(default), &at, &mut backends, notes);
            any_path = true;
            routes.push(
                Route {
                    path: "/".to_owned(),
                    host: None,
                    upstream,
                    upstream_comment: Some(comment),
                    strip_prefix: false,
                    cors: cors.clone(),
                },
                &at,
                notes,
            );
        }
        if !any_path {
            notes.add(
                &place,
                "no rule with a path and no defaultBackend: no route imported",
            );
        }
    }
    k8s::placeholders_note(notes, &backends);
    if tls {
        notes.add(
            "spec.tls",
            "TLS was terminated by ingress-nginx; corsgate serves plain HTTP today: keep TLS in front of it (docs/deployment.md)",
        );
    }
    if !any_cors {
        notes.add(
            "file",
            "no Ingress sets nginx.ingress.kubernetes.io/enable-cors: \"true\": CORS stays closed",
        );
    }
    if routes.list.is_empty() {
        anyhow::bail!("no Ingress has a rule with a path or a defaultBackend: nothing to route");
    }
    Ok(Draft {
        server_cors: None,
        routes: routes.list,
        ..Draft::default()
    })
}

/// The `nginx.ingress.kubernetes.io/` annotations, without the prefix.
fn annotations(ingress: &Object<'_>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Some(map) = ingress
        .get(&["metadata", "annotations"])
        .and_then(saphyr::Yaml::as_mapping)
    {
        for (key, value) in map {
            let (Some(key), Some(value)) = (key.as_str(), k8s::text(value)) else {
                continue;
            };
            if let Some(name) = key.strip_prefix(PREFIX) {
                out.insert(name.to_owned(), value);
            }
        }
    }
    out
}

/// Go's `strconv.ParseBool`, which ingress-nginx reads annotations with.
fn parse_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn split(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The policy of an Ingress, `None` when CORS is off there.
fn policy(annotations: &HashMap<String, String>, place: &str, notes: &mut Notes) -> Option<Policy> {
    let at = |key: &str| format!("{place}, {key}");
    let enabled = annotations.get("enable-cors").map(|v| {
        parse_bool(v).unwrap_or_else(|| {
            notes.add(
                at("enable-cors"),
                format!("{v:?} is not true or false: ingress-nginx read it as false"),
            );
            false
        })
    });
    if enabled != Some(true) {
        let ignored: Vec<&str> = CORS_KEYS
            .iter()
            .skip(1)
            .copied()
            .filter(|k| annotations.contains_key(*k))
            .collect();
        if !ignored.is_empty() {
            notes.add(
                place,
                format!(
                    "{} had no effect without enable-cors: \"true\": not imported; the Ingress sent no CORS headers",
                    ignored.join(", ")
                ),
            );
        }
        if enabled == Some(false) || !ignored.is_empty() {
            notes.add(
                place,
                "imported without CORS: browsers get no CORS headers from these routes (if the backend answered CORS itself and must go on doing so, that is cors = \"off\" on the route)",
            );
        }
        return None;
    }

    let mut policy = Policy::default();
    let origins_given = annotations.get("cors-allow-origin").map(|v| split(v));
    let origins = match &origins_given {
        Some(list) if !list.is_empty() => {
            for origin in list {
                if origin.contains("://*.") {
                    notes.add(
                        at("cors-allow-origin"),
                        format!(
                            "{origin:?}: in ingress-nginx `*.` stands for one DNS label; in corsgate for one or more (a.b.example.com too)"
                        ),
                    );
                }
            }
            notes.origins(&at("cors-allow-origin"), list)
        }
        _ => vec!["*".to_owned()],
    };
    let credentials_given = annotations.get("cors-allow-credentials").map(|v| {
        parse_bool(v).unwrap_or_else(|| {
            notes.add(
                at("cors-allow-credentials"),
                format!("{v:?} is not true or false: read as ingress-nginx's default, true"),
            );
            true
        })
    });
    let credentials = credentials_given.unwrap_or(true);
    let any = origins.iter().any(|o| o == "*");
    if any && credentials {
        // ingress-nginx sent `*` literally with `Allow-Credentials: true`: browsers
        // refuse that pair on credentialed requests (Fetch, CORS check step 5),
        // so only requests without credentials ever worked. The same without
        // credentials is what browsers saw, and passes check.
        let why = match (origins_given.is_some(), credentials_given.is_some()) {
            (false, false) => {
                "enable-cors alone: ingress-nginx's defaults are origin * (cors-allow-origin not set), credentials true (cors-allow-credentials not set)"
            }
            (false, true) => {
                "ingress-nginx's default origin * (cors-allow-origin not set) with cors-allow-credentials: \"true\""
            }
            (true, false) => {
                "cors-allow-origin: \"*\" with ingress-nginx's default credentials true (cors-allow-credentials not set)"
            }
            (true, true) => "cors-allow-origin: \"*\" with cors-allow-credentials: \"true\"",
        };
        notes.add(
            at("cors-allow-origin"),
            format!(
                "{why}. ingress-nginx then sent `Access-Control-Allow-Origin: *` with `Access-Control-Allow-Credentials: true`, a pair browsers refuse: requests with credentials (cookies, fetch credentials: \"include\") never worked, those without did. Imported as allow_origins = \"*\" with allow_credentials = false, which is what browsers saw. If pages need credentials, list their origins instead (allow_origins = [\"https://app.example.com\"]) and set allow_credentials = true"
            ),
        );
        policy.allow_origins = Some(origins);
        policy.allow_credentials = Some(false);
        policy.comment(
            "allow_credentials",
            "ingress-nginx sent true with *, which browsers refuse",
        );
    } else {
        if origins_given.is_none() {
            notes.add(
                at("cors-allow-origin"),
                "not set: ingress-nginx's default is *, every origin",
            );
            policy.comment("allow_origins", "ingress-nginx's default");
        }
        policy.allow_origins = Some(origins);
        if credentials {
            policy.allow_credentials = Some(true);
            if credentials_given.is_none() {
                notes.add(
                    at("cors-allow-credentials"),
                    "not set: ingress-nginx's default is true: imported as allow_credentials = true; set it to false if no page sends cookies or credentials",
                );
                policy.comment("allow_credentials", "ingress-nginx's default");
            }
        }
    }

    match annotations.get("cors-allow-methods") {
        Some(value) => {
            policy.allow_methods = notes.methods(&at("cors-allow-methods"), &split(value), true);
        }
        None => {
            let defaults: Vec<String> = DEFAULT_METHODS.iter().map(|m| (*m).to_owned()).collect();
            policy.allow_methods = Notes::default().methods("", &defaults, true);
            notes.add(
                at("cors-allow-methods"),
                format!(
                    "not set: ingress-nginx's default is {}: imported as the ones that need listing ({})",
                    DEFAULT_METHODS.join(", "),
                    policy.allow_methods.as_deref().unwrap_or_default().join(", ")
                ),
            );
            policy.comment("allow_methods", "ingress-nginx's default");
        }
    }
    match annotations.get("cors-allow-headers") {
        Some(value) => {
            policy.allow_headers = notes.headers(&at("cors-allow-headers"), &split(value), false);
        }
        None => {
            let defaults: Vec<String> = DEFAULT_HEADERS.iter().map(|h| (*h).to_owned()).collect();
            let mut dropped = Notes::default();
            policy.allow_headers = dropped.headers("", &defaults, false);
            let kept = policy.allow_headers.as_deref().unwrap_or_default();
            let gone: Vec<&str> = DEFAULT_HEADERS
                .iter()
                .copied()
                .filter(|h| !kept.iter().any(|k| k.eq_ignore_ascii_case(h)))
                .collect();
            notes.add(
                at("cors-allow-headers"),
                format!(
                    "not set: ingress-nginx's default is {}: imported{}",
                    DEFAULT_HEADERS.join(", "),
                    if gone.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " without {} (browsers never let a page send {})",
                            gone.join(", "),
                            if gone.len() == 1 { "it" } else { "them" }
                        )
                    }
                ),
            );
            policy.comment("allow_headers", "ingress-nginx's default");
        }
    }
    if let Some(value) = annotations.get("cors-expose-headers") {
        policy.expose_headers = notes.expose(&at("cors-expose-headers"), &split(value), true);
    }
    match annotations.get("cors-max-age") {
        Some(value) => match value.trim().parse::<i64>() {
            Ok(seconds) => policy.max_age = notes.max_age(&at("cors-max-age"), seconds),
            Err(_) => {
                notes.add(
                    at("cors-max-age"),
                    format!("{value:?} is not a number of seconds: ingress-nginx used its default"),
                );
                policy.max_age = Some(notes.default_max_age(
                    &at("cors-max-age"),
                    "ingress-nginx",
                    DEFAULT_MAX_AGE,
                ));
                policy.comment("max_age", "ingress-nginx's default, at Chromium's cap");
            }
        },
        None => {
            policy.max_age =
                Some(notes.default_max_age(&at("cors-max-age"), "ingress-nginx", DEFAULT_MAX_AGE));
            policy.comment("max_age", "ingress-nginx's default, at Chromium's cap");
        }
    }
    notes.add(
        place,
        "ingress-nginx answered every OPTIONS request from an allowed origin with 204 and these headers (a preflight or not, whatever method and headers it asked for) and compared origins case-insensitively; corsgate answers a preflight only after checking its origin, method and headers, forwards other OPTIONS requests, and compares origins in the form browsers send",
    );
    Some(policy)
}

/// The corsgate path of an Ingress path, `None` when it cannot be imported.
fn route_path(value: &str, kind: &str, regex: bool, at: &str, notes: &mut Notes) -> Option<String> {
    if !value.starts_with('/') {
        notes.add(
            at,
            format!("path {value:?} does not start with /: not imported"),
        );
        return None;
    }
    let meta = |c: char| "^$()[]{}*+?|\\".contains(c);
    if regex && value.contains(meta) {
        let literal = &value[..value.find(meta).unwrap_or(value.len())];
        let prefix = &literal[..=literal.rfind('/').unwrap_or(0)];
        notes.add(
            at,
            format!(
                "regex path {value:?}: corsgate routes match path prefixes, not regexes: imported as the prefix {:?}, which may match more; add routes per path if that matters",
                k8s::prefix(prefix)
            ),
        );
        return Some(k8s::prefix(prefix));
    }
    match kind {
        "Exact" => notes.add(
            at,
            format!(
                "pathType Exact {value:?}: imported as a prefix route, which also matches the paths below it"
            ),
        ),
        "Prefix" | "ImplementationSpecific" => {}
        other => notes.add(at, format!("pathType {other:?} is unknown: read as Prefix")),
    }
    Some(k8s::prefix(value))
}

/// The placeholder upstream of an Ingress backend.
fn backend(
    ingress: &Object<'_>,
    backend: Option<&saphyr::Yaml<'_>>,
    at: &str,
    backends: &mut Backends,
    notes: &mut Notes,
) -> (String, String) {
    let service = backend.and_then(|b| b.as_mapping_get("service"));
    let name = service
        .and_then(|s| s.as_mapping_get("name"))
        .and_then(k8s::text);
    let port = service
        .and_then(|s| s.as_mapping_get("port"))
        .and_then(|p| {
            p.as_mapping_get("number")
                .or_else(|| p.as_mapping_get("name"))
                .and_then(k8s::text)
        });
    match (name, port) {
        (Some(name), Some(port)) => {
            let ns = &ingress.namespace;
            let in_cluster = if port.bytes().all(|b| b.is_ascii_digit()) {
                format!("http://{name}.{ns}.svc:{port}")
            } else {
                format!("http://{name}.{ns}.svc and the number of its port {port:?}")
            };
            backends.upstream(&format!("{ns}/{name}:{port}"), &in_cluster)
        }
        _ => {
            let what = if backend.and_then(|b| b.as_mapping_get("resource")).is_some() {
                "a resource backend (not a Service)"
            } else {
                "no backend Service and port"
            };
            notes.add(at, format!("{what}: set route.upstream"));
            backends.upstream(&format!("{}/(unknown)", ingress.id), "unknown")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_bool;

    #[test]
    fn booleans_as_go_reads_them() {
        assert_eq!(parse_bool("True"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }
}
