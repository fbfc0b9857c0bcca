//! License Monitor's `config.toml`: the `[api]` table's `cors_*` keys, and
//! `[api.cors_overrides."/path"]` tables for stricter policies per path.

use anyhow::{Context, bail};

use super::common::{Notes, PLACEHOLDER_UPSTREAM, toml_strings, upstream_for};
use super::draft::{Draft, Policy, Route, RouteCors};

/// License Monitor's defaults, carried over where the file relies on them.
const DEFAULT_HEADERS: &[&str] = &["Content-Type"];
const DEFAULT_MAX_AGE: i64 = 86_400;

const KEYS: &[&str] = &[
    "cors_enabled",
    "cors_origins",
    "cors_methods",
    "cors_headers",
    "cors_max_age",
    "cors_credentials",
    "cors_allow_any_origin",
    "cors_overrides",
];

pub(super) fn import(text: &str, notes: &mut Notes) -> anyhow::Result<Draft> {
    let root: toml::Table = text.parse().context("not TOML")?;
    let Some(api) = root.get("api") else {
        bail!("no [api] table: a License Monitor configuration keeps its CORS keys in [api]");
    };
    let Some(api) = api.as_table() else {
        bail!("api is not a table");
    };
    for key in api.keys() {
        if key.starts_with("cors_") && !KEYS.contains(&key.as_str()) {
            notes.add(format!("api.{key}"), "unknown key: not imported");
        }
    }

    let (upstream, upstream_comment) = match (
        api.get("bind_address").and_then(|v| v.as_str()),
        api.get("bind_port").and_then(|v| v.as_integer()),
    ) {
        (address, Some(port)) => {
            // An API on corsgate's own listen address is refused with the fix by
            // the caller (`refuse_loops`), as for every format.
            (upstream_for(address.unwrap_or("127.0.0.1"), port), None)
        }
        _ => {
            notes.add(
                "api",
                "upstream unknown (no bind_address and bind_port): set route.upstream to the API's address",
            );
            (
                PLACEHOLDER_UPSTREAM.to_owned(),
                Some("placeholder: the API's address".to_owned()),
            )
        }
    };

    let enabled = match api.get("cors_enabled") {
        None => false,
        Some(v) => v.as_bool().unwrap_or_else(|| {
            notes.add("api.cors_enabled", "not true or false: read as false");
            false
        }),
    };
    let mut draft = Draft::default();
    if !enabled {
        notes.add(
            "api.cors_enabled",
            "CORS is off (cors_enabled is false by default): imported closed, without [server.cors]; the other cors_* keys are not imported",
        );
        draft.routes.push(Route {
            path: "/".to_owned(),
            upstream,
            host: None,
            upstream_comment,
            strip_prefix: false,
            cors: RouteCors::Inherit,
        });
        return Ok(draft);
    }

    let base = policy(api, "api", true, notes);
    let mut routes = Vec::new();
    if let Some(overrides) = api.get("cors_overrides") {
        match overrides.as_table() {
            None => notes.add("api.cors_overrides", "not a table of paths: not imported"),
            Some(table) => {
                for (path, value) in table {
                    let place = format!("api.cors_overrides.{}", super::draft::string(path));
                    let Some(table) = value.as_table() else {
                        notes.add(place, "not a table: not imported");
                        continue;
                    };
                    if !path.starts_with('/') {
                        notes.add(place, "a path starts with /: not imported");
                        continue;
                    }
                    for key in table.keys() {
                        if !KEYS.contains(&key.as_str())
                            || key == "cors_overrides"
                            || key == "cors_enabled"
                        {
                            notes.add(format!("{place}.{key}"), "not a per-path key: not imported");
                        }
                    }
                    notes.add(
                        &place,
                        "imported as a route: keys not set here are inherited from [api] key by key, and the path matches as a prefix on segment boundaries (/api/admin also covers /api/admin/users)",
                    );
                    let own = policy(table, &place, false, notes);
                    let mut merged = own.clone();
                    if merged.allow_origins.is_none() {
                        merged.allow_origins.clone_from(&base.allow_origins);
                    }
                    if merged.allow_credentials.is_none() {
                        merged.allow_credentials = base.allow_credentials;
                    }
                    notes.any_with_credentials(
                        &place,
                        &merged,
                        "cors_allow_any_origin with cors_credentials lets every site read users' data, if the service honours the pair at all;",
                    );
                    routes.push(Route {
                        path: path.clone(),
                        upstream: upstream.clone(),
                        host: None,
                        upstream_comment: upstream_comment.clone(),
                        strip_prefix: false,
                        cors: RouteCors::Own(own),
                    });
                }
            }
        }
    }
    notes.any_with_credentials(
        "api",
        &base,
        "cors_allow_any_origin with cors_credentials lets every site read users' data, if the service honours the pair at all;",
    );
    draft.server_cors = Some(base);
    draft.routes = routes;
    draft.routes.push(Route {
        path: "/".to_owned(),
        upstream,
        host: None,
        upstream_comment,
        strip_prefix: false,
        cors: RouteCors::Inherit,
    });
    Ok(draft)
}

/// The policy of `[api]` (`base`: License Monitor's defaults apply) or of one
/// override table (only what it sets).
fn policy(table: &toml::Table, place: &str, base: bool, notes: &mut Notes) -> Policy {
    let mut policy = Policy::default();
    let at = |key: &str| format!("{place}.{key}");
    let strings = |key: &str, notes: &mut Notes| -> Option<Vec<String>> {
        let value = table.get(key)?;
        let list = toml_strings(value);
        if list.is_none() {
            notes.add(at(key), "not a list of strings: not imported");
        }
        list
    };

    let any = table
        .get("cors_allow_any_origin")
        .and_then(toml::Value::as_bool)
        .unwrap_or(false);
    let origins = strings("cors_origins", notes);
    if any {
        notes.add(
            at("cors_allow_any_origin"),
            "every site may read responses (meant for development only): imported as allow_origins = \"*\"",
        );
        if origins.as_ref().is_some_and(|o| !o.is_empty()) {
            notes.add(
                at("cors_origins"),
                "has no effect next to cors_allow_any_origin = true: not imported",
            );
        }
        policy.allow_origins = Some(vec!["*".to_owned()]);
    } else if let Some(origins) = origins {
        if origins.is_empty() && base {
            notes.add(
                at("cors_origins"),
                "an empty list: no origin is allowed, so CORS stays closed; if the service answered every origin, write allow_origins = \"*\" (without credentials)",
            );
        }
        if !origins.is_empty() {
            policy.allow_origins = Some(notes.origins(&at("cors_origins"), &origins));
        }
    } else if base {
        notes.add(
            at("cors_origins"),
            "not set (License Monitor's default is an empty list): no origin is allowed, so CORS stays closed",
        );
    }

    // Without cors_methods, the default (GET, POST, OPTIONS) needs nothing.
    if let Some(methods) = strings("cors_methods", notes) {
        policy.allow_methods = notes.methods(&at("cors_methods"), &methods, false);
    }
    match strings("cors_headers", notes) {
        Some(headers) => policy.allow_headers = notes.headers(&at("cors_headers"), &headers, false),
        None if base => {
            policy.allow_headers = Some(DEFAULT_HEADERS.iter().map(|h| (*h).to_owned()).collect());
            policy.comment("allow_headers", "License Monitor's default");
        }
        None => {}
    }
    match table.get("cors_max_age") {
        Some(value) => match value.as_integer() {
            Some(seconds) => policy.max_age = notes.max_age(&at("cors_max_age"), seconds),
            None => notes.add(at("cors_max_age"), "not a number of seconds: not imported"),
        },
        None if base => {
            let seconds =
                notes.default_max_age(&at("cors_max_age"), "License Monitor", DEFAULT_MAX_AGE);
            policy.max_age = Some(seconds);
            policy.comment(
                "max_age",
                if seconds == DEFAULT_MAX_AGE {
                    "License Monitor's default".to_owned()
                } else {
                    format!("License Monitor's default {DEFAULT_MAX_AGE}, at Chromium's cap")
                },
            );
        }
        None => {}
    }
    if let Some(value) = table.get("cors_credentials") {
        match value.as_bool() {
            Some(yes) => policy.allow_credentials = Some(yes),
            None => notes.add(at("cors_credentials"), "not true or false: not imported"),
        }
    }
    policy
}
