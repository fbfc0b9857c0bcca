//! Nexus's `[server.cors]`: the same `allow_*` vocabulary as corsgate, so nearly
//! one to one.

use anyhow::{Context, bail};

use super::common::{Notes, PLACEHOLDER_UPSTREAM, toml_strings};
use super::draft::{Draft, Policy, Route, RouteCors};

const KEYS: &[&str] = &[
    "allow_origins",
    "allow_methods",
    "allow_headers",
    "allow_credentials",
    "max_age",
    "allow_private_network",
    "expose_headers",
];

pub(super) fn import(text: &str, notes: &mut Notes) -> anyhow::Result<Draft> {
    let root: toml::Table = text.parse().context("not TOML")?;
    let server = root.get("server").and_then(toml::Value::as_table);
    let Some(cors) = server.and_then(|s| s.get("cors")) else {
        bail!("no [server.cors] table: Nexus keeps its CORS settings there");
    };
    let Some(cors) = cors.as_table() else {
        bail!("server.cors is not a table");
    };
    for key in cors.keys() {
        if !KEYS.contains(&key.as_str()) {
            notes.add(format!("server.cors.{key}"), "unknown key: not imported");
        }
    }
    let at = |key: &str| format!("server.cors.{key}");
    let strings = |key: &str, notes: &mut Notes| -> Option<Vec<String>> {
        let value = cors.get(key)?;
        let list = toml_strings(value);
        if list.is_none() {
            notes.add(at(key), "not a string or a list of strings: not imported");
        }
        list
    };
    let mut policy = Policy::default();
    if let Some(origins) = strings("allow_origins", notes) {
        policy.allow_origins = Some(notes.origins(&at("allow_origins"), &origins));
    }
    if let Some(methods) = strings("allow_methods", notes) {
        policy.allow_methods = notes.methods(&at("allow_methods"), &methods, false);
    }
    if let Some(headers) = strings("allow_headers", notes) {
        policy.allow_headers = notes.headers(&at("allow_headers"), &headers, false);
    }
    if let Some(expose) = strings("expose_headers", notes) {
        policy.expose_headers = notes.expose(&at("expose_headers"), &expose, true);
    }
    for (key, slot) in [
        ("allow_credentials", &mut policy.allow_credentials),
        ("allow_private_network", &mut policy.allow_private_network),
    ] {
        if let Some(value) = cors.get(key) {
            match value.as_bool() {
                Some(yes) => *slot = Some(yes),
                None => notes.add(at(key), "not true or false: not imported"),
            }
        }
    }
    if let Some(value) = cors.get("max_age") {
        match value.as_integer() {
            Some(seconds) => policy.max_age = notes.max_age(&at("max_age"), seconds),
            None => notes.add(at("max_age"), "not a number of seconds: not imported"),
        }
    }
    notes.any_with_credentials(
        &at("allow_origins"),
        &policy,
        "Browsers refuse `*` with credentials, so credentialed requests never worked;",
    );

    let listen = server
        .and_then(|s| s.get("listen_address"))
        .and_then(toml::Value::as_str);
    let (upstream, comment) = match listen {
        Some(address) => (format!("http://{address}"), None),
        None => {
            notes.add(
                "server",
                "upstream unknown (no listen_address): set route.upstream to Nexus's address",
            );
            (
                PLACEHOLDER_UPSTREAM.to_owned(),
                Some("placeholder: Nexus's address".to_owned()),
            )
        }
    };
    Ok(Draft {
        server_cors: Some(policy),
        routes: vec![Route {
            path: "/".to_owned(),
            upstream,
            host: None,
            upstream_comment: comment,
            strip_prefix: false,
            cors: RouteCors::Inherit,
        }],
        ..Draft::default()
    })
}
