//! Ory Kratos (and Hydra) YAML: `serve.public.cors` and `serve.admin.cors`.
//!
//! Both use rs/cors, whose semantics differ from the Fetch standard's in ways that
//! matter here: an empty or missing origin list means every origin; `*` with
//! credentials echoes every origin; `*` in allowed headers lets Authorization
//! through; origins may hold one `*` standing for any characters (a glob, not
//! labels); origins are compared case-insensitively.

use anyhow::{Context, bail};
use saphyr::{LoadableYamlNode, Yaml};

use super::common::Notes;
use super::draft::{Draft, Policy, Route, RouteCors};

/// Kratos's defaults (its configuration schema), carried over where the file
/// relies on them.
const DEFAULT_METHODS: &[&str] = &["POST", "GET", "PUT", "PATCH", "DELETE"];
const DEFAULT_HEADERS: &[&str] = &[
    "Authorization",
    "Content-Type",
    "Max-Age",
    "X-Session-Token",
    "X-XSRF-TOKEN",
    "X-CSRF-TOKEN",
];
const DEFAULT_EXPOSED: &[&str] = &["Content-Type"];

/// Refuses YAML aliases (`*name`) before anything is loaded. Loading an alias
/// copies the anchored value, and saphyr's alias budget counts nodes, not bytes:
/// 1000 aliases of one 1 MiB scalar cost 1 GiB. Kratos configurations have no
/// use for aliases, so none is expanded at all.
pub(crate) fn refuse_aliases(text: &str) -> anyhow::Result<()> {
    for event in saphyr_parser::Parser::new_from_str(text) {
        match event {
            Ok((saphyr_parser::Event::Alias(_), span)) => bail!(
                "line {}: a YAML alias (`*name`): import does not expand aliases, which can multiply the file's size in memory; write the value out where the alias is",
                span.start.line()
            ),
            Ok(_) => {}
            // The loader reports syntax errors with their place.
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

const KEYS: &[&str] = &[
    "enabled",
    "allowed_origins",
    "allowed_methods",
    "allowed_headers",
    "exposed_headers",
    "allow_credentials",
    "max_age",
    "debug",
    "options_passthrough",
];

pub(super) fn import(text: &str, notes: &mut Notes) -> anyhow::Result<Draft> {
    refuse_aliases(text)?;
    let docs = Yaml::load_from_str(text).context("not YAML")?;
    let Some(doc) = docs.first() else {
        bail!("the file is empty");
    };
    let serve = doc.as_mapping_get("serve");
    let public = serve.and_then(|s| s.as_mapping_get("public"));
    let admin = serve.and_then(|s| s.as_mapping_get("admin"));
    let public_cors = public.and_then(|p| p.as_mapping_get("cors"));
    let admin_cors = admin.and_then(|a| a.as_mapping_get("cors"));
    if public_cors.is_none() && admin_cors.is_none() {
        bail!("no serve.public.cors or serve.admin.cors: Kratos keeps its CORS settings there");
    }
    let mut draft = Draft::default();
    // Each listener's policy is complete on its own: no [server.cors] to inherit.
    if let Some(admin_cors) = admin_cors {
        let place = "serve.admin.cors";
        notes.add(
            place,
            "imported as the route /admin: Kratos serves its admin API on its own port, where every path starts with /admin",
        );
        draft.routes.push(route(
            "/admin",
            admin,
            admin_cors,
            place,
            ("serve.admin", 4434),
            notes,
        ));
    }
    if let Some(public_cors) = public_cors {
        draft.routes.push(route(
            "/",
            public,
            public_cors,
            "serve.public.cors",
            ("serve.public", 4433),
            notes,
        ));
    } else {
        notes.add(
            "serve.public",
            "no cors: the public API is imported closed (no CORS headers)",
        );
        draft.routes.push(Route {
            path: "/".to_owned(),
            upstream: upstream(public, "serve.public", 4433, notes),
            host: None,
            upstream_comment: None,
            strip_prefix: false,
            cors: RouteCors::Inherit,
        });
    }
    Ok(draft)
}

fn upstream(
    listener: Option<&Yaml<'_>>,
    place: &str,
    default_port: i64,
    notes: &mut Notes,
) -> String {
    let host = listener
        .and_then(|l| l.as_mapping_get("host"))
        .and_then(Yaml::as_str)
        .unwrap_or("");
    let port = listener
        .and_then(|l| l.as_mapping_get("port"))
        .and_then(Yaml::as_integer);
    let port = port.unwrap_or_else(|| {
        notes.add(
            format!("{place}.port"),
            format!("not set: Kratos's default {default_port} assumed for route.upstream"),
        );
        default_port
    });
    super::common::upstream_for(host, port)
}

fn route(
    path: &str,
    listener: Option<&Yaml<'_>>,
    cors: &Yaml<'_>,
    place: &str,
    (listener_place, default_port): (&str, i64),
    notes: &mut Notes,
) -> Route {
    let upstream = upstream(listener, listener_place, default_port, notes);
    let policy = policy(cors, place, notes);
    Route {
        path: path.to_owned(),
        upstream,
        host: None,
        upstream_comment: None,
        strip_prefix: false,
        cors: match policy {
            Some(policy) => RouteCors::Own(policy),
            None => RouteCors::Inherit,
        },
    }
}

fn strings(node: &Yaml<'_>) -> Option<Vec<String>> {
    if let Some(one) = node.as_str() {
        return Some(vec![one.to_owned()]);
    }
    node.as_sequence()?
        .iter()
        .map(|item| match item {
            Yaml::Value(_) => item
                .as_str()
                .map(str::to_owned)
                .or_else(|| item.as_integer().map(|i| i.to_string())),
            _ => None,
        })
        .collect()
}

/// The policy of one `cors` block; `None` when CORS is disabled there.
fn policy(cors: &Yaml<'_>, place: &str, notes: &mut Notes) -> Option<Policy> {
    let at = |key: &str| format!("{place}.{key}");
    if let Some(map) = cors.as_mapping() {
        for key in map.keys() {
            let name = key.as_str().unwrap_or("?");
            if !KEYS.contains(&name) {
                notes.add(at(name), "unknown key: not imported");
            }
        }
    }
    let get = |key: &str| cors.as_mapping_get(key);
    let list = |key: &str, notes: &mut Notes| -> Option<Vec<String>> {
        let node = get(key)?;
        let out = strings(node);
        if out.is_none() {
            notes.add(at(key), "not a list of strings: not imported");
        }
        out
    };
    let flag = |key: &str, notes: &mut Notes| -> Option<bool> {
        let node = get(key)?;
        let out = node.as_bool();
        if out.is_none() {
            notes.add(at(key), "not true or false: read as the default");
        }
        out
    };

    if !flag("enabled", notes).unwrap_or(false) {
        notes.add(
            at("enabled"),
            "CORS is disabled (enabled is false by default): imported closed, no CORS headers",
        );
        return None;
    }
    let mut policy = Policy::default();

    let credentials = match flag("allow_credentials", notes) {
        Some(yes) => yes,
        None => {
            notes.add(
                at("allow_credentials"),
                "not set: credentials on by default in Kratos (allow_credentials defaults to true); imported as allow_credentials = true",
            );
            policy.comment("allow_credentials", "Kratos's default");
            true
        }
    };
    policy.allow_credentials = Some(credentials);

    let written = list("allowed_origins", notes);
    let origins = match written {
        None => {
            notes.add(
                at("allowed_origins"),
                "not set: Kratos's default is [\"*\"], every origin",
            );
            vec!["*".to_owned()]
        }
        Some(list) if list.is_empty() => {
            notes.add(
                at("allowed_origins"),
                "empty origin list meant all origins (rs/cors): imported as \"*\"",
            );
            vec!["*".to_owned()]
        }
        Some(list) => globs(&list, &at("allowed_origins"), notes),
    };
    policy.allow_origins = Some(notes.origins(&at("allowed_origins"), &origins));
    if policy.any_with_credentials() {
        notes.add(
            at("allowed_origins"),
            "`*` with credentials: refused; listed origins needed. With allow_credentials, Kratos (rs/cors) echoed every origin it got, so any site could read users' data with their session; list the origins of your UIs in allow_origins",
        );
    }

    let methods = list("allowed_methods", notes)
        .unwrap_or_else(|| DEFAULT_METHODS.iter().map(|m| (*m).to_owned()).collect());
    policy.allow_methods = notes.methods(&at("allowed_methods"), &methods, true);
    if get("allowed_methods").is_none() && policy.allow_methods.is_some() {
        policy.comment("allow_methods", "Kratos's default");
    }

    let headers_written = list("allowed_headers", notes);
    let headers = headers_written
        .clone()
        .unwrap_or_else(|| DEFAULT_HEADERS.iter().map(|h| (*h).to_owned()).collect());
    policy.allow_headers = notes.headers(&at("allowed_headers"), &headers, true);
    if headers_written.is_none() {
        policy.comment("allow_headers", "Kratos's default");
    }

    let exposed_written = list("exposed_headers", notes);
    let exposed = exposed_written
        .clone()
        .unwrap_or_else(|| DEFAULT_EXPOSED.iter().map(|h| (*h).to_owned()).collect());
    policy.expose_headers =
        notes.expose(&at("exposed_headers"), &exposed, exposed_written.is_some());

    if let Some(node) = get("max_age") {
        match node.as_integer() {
            // rs/cors sends no Max-Age for 0: browsers then cache 5 s.
            Some(0) => {}
            Some(seconds) => policy.max_age = notes.max_age(&at("max_age"), seconds),
            None => notes.add(at("max_age"), "not a number of seconds: not imported"),
        }
    }
    if flag("debug", notes) == Some(true) {
        notes.add(
            at("debug"),
            "Kratos's debug only logs CORS decisions; corsgate's debug mode tells the browser why a preflight was refused (docs/debug-mode.md), so it is not turned on; corsgate logs every refusal with its reason anyway",
        );
    }
    if flag("options_passthrough", notes) == Some(true) {
        notes.add(
            at("options_passthrough"),
            "preflights were also passed on to Kratos; corsgate answers them itself and never forwards them",
        );
    }
    Some(policy)
}

/// rs/cors globs (one `*` standing for any characters) as corsgate patterns.
fn globs(items: &[String], place: &str, notes: &mut Notes) -> Vec<String> {
    let mut out = Vec::new();
    for item in items {
        // rs/cors compares lowercase; browsers send lowercase.
        let lower = item.to_ascii_lowercase();
        if lower == "*" || !lower.contains('*') {
            out.push(lower);
            continue;
        }
        let (prefix, suffix) = lower.split_once('*').unwrap_or((&lower, ""));
        let Some(scheme) = prefix.strip_suffix("://") else {
            // `*` after the start of the host, as in https://app-*.example.com,
            // or in the port, as in http://localhost:*.
            if let Some(host) = prefix.strip_suffix(':').filter(|_| suffix.is_empty()) {
                notes.add(
                    place,
                    format!(
                        "{item:?}: any port of that host; imported as {host}:*, which also matches the scheme's default port"
                    ),
                );
                out.push(format!("{host}:*"));
            } else {
                notes.add(
                    place,
                    format!(
                        "{item:?}: the `*` stands for any characters inside a name, which corsgate cannot express (its wildcards stand for whole labels): kept as written, so check refuses it; list the origins it is meant to match"
                    ),
                );
                out.push(item.clone());
            }
            continue;
        };
        if suffix.is_empty() {
            notes.add(
                place,
                format!(
                    "{item:?} matched every {scheme} origin: the glob matched more than intended; kept as written, so check refuses it; list the origins"
                ),
            );
            out.push(item.clone());
        } else if let Some(domain) = suffix.strip_prefix('.') {
            // Same meaning as corsgate's: one or more labels, not the apex.
            out.push(format!("{scheme}://*.{domain}"));
        } else {
            notes.add(
                place,
                format!(
                    "{item:?}: glob matched more than intended: it also matched {scheme}://evil{suffix}, a domain anyone can register; imported as {scheme}://{suffix} and {scheme}://*.{suffix}"
                ),
            );
            out.push(format!("{scheme}://{suffix}"));
            out.push(format!("{scheme}://*.{suffix}"));
        }
    }
    out
}
