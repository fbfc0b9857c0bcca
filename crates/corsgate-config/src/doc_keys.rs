//! Every key the loader accepts is in the configuration reference, and the
//! reference documents no key the loader refuses.
//!
//! The accepted keys are serde's own field lists of the model (what
//! `deny_unknown_fields` lets through), not the hand-kept lists the loader
//! suggests from; those are checked against serde too.

use std::collections::BTreeSet;

use corsgate_policy::{ClientsConfig, CorsConfig};
use serde_aux::serde_introspection::serde_introspect;

use crate::model::{
    ACME_KEYS, AcmeConfig, CLIENTS_KEYS, CertificateConfig, FileConfig, HSTS_KEYS, HstsConfig,
    POLICY_KEYS, REGISTRY_KEYS, ROUTE_KEYS, RegistryConfig, RouteConfig, SERVER_KEYS, ServerConfig,
    TLS_KEYS, TlsConfig, UPSTREAM_TLS_KEYS, UpstreamTlsConfig,
};

const REFERENCE: &str = include_str!("../../../docs/configuration.md");

/// One heading of the reference and the text under it, up to the next heading.
struct Section<'d> {
    level: usize,
    title: &'d str,
    body: Vec<&'d str>,
}

fn sections(doc: &str) -> Vec<Section<'_>> {
    let mut out: Vec<Section<'_>> = Vec::new();
    let mut in_code = false;
    for line in doc.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        let level = line.bytes().take_while(|b| *b == b'#').count();
        if !in_code && level > 0 && line.as_bytes().get(level) == Some(&b' ') {
            out.push(Section {
                level,
                title: line[level..].trim(),
                body: Vec::new(),
            });
        } else if let Some(last) = out.last_mut() {
            last.body.push(line);
        }
    }
    out
}

fn section<'s, 'd>(all: &'s [Section<'d>], title: &str) -> &'s Section<'d> {
    all.iter()
        .find(|s| s.title == title)
        .unwrap_or_else(|| panic!("docs/configuration.md has no heading {title:?}"))
}

/// The keys of a section's key tables: the first cell of each row, when it
/// is one word in backquotes (`| `listen` | ... |`).
fn row_keys<'d>(section: &Section<'d>) -> BTreeSet<&'d str> {
    section
        .body
        .iter()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once("` |"))
        .map(|(key, _)| key)
        .filter(|key| key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .collect()
}

/// The keys documented as `### `key`` headings under the section `title`.
fn heading_keys<'d>(all: &[Section<'d>], title: &str) -> BTreeSet<&'d str> {
    let start = all
        .iter()
        .position(|s| s.title == title)
        .unwrap_or_else(|| panic!("docs/configuration.md has no heading {title:?}"));
    let level = all[start].level;
    all[start + 1..]
        .iter()
        .take_while(|s| s.level > level)
        .filter(|s| s.level == level + 1)
        .filter_map(|s| s.title.strip_prefix('`')?.strip_suffix('`'))
        .collect()
}

fn keys_of<T: serde::de::DeserializeOwned>() -> BTreeSet<&'static str> {
    serde_introspect::<T>().iter().copied().collect()
}

/// Compares what the loader accepts with what the reference documents, for
/// one table; every difference goes to `problems`.
fn compare(
    table: &str,
    accepted: &BTreeSet<&str>,
    documented: &BTreeSet<&str>,
    problems: &mut Vec<String>,
) {
    for key in accepted.difference(documented) {
        problems.push(format!(
            "{table}.{key} is accepted but not documented in docs/configuration.md (add a row: key, default, accepted and refused values)"
        ));
    }
    for key in documented.difference(accepted) {
        problems.push(format!(
            "{table}.{key} is documented in docs/configuration.md but the loader refuses it"
        ));
    }
}

#[test]
fn every_key_the_loader_accepts_is_in_the_configuration_reference() {
    let doc = sections(REFERENCE);
    let rows = |title: &str| row_keys(section(&doc, title));
    let union = |a: BTreeSet<&'static str>, b: BTreeSet<&'static str>| -> BTreeSet<&'static str> {
        a.union(&b).copied().collect()
    };
    let mut problems = Vec::new();

    // The top-level tables each have a section of their own.
    let top: BTreeSet<&str> = keys_of::<FileConfig>()
        .into_iter()
        .filter(|key| {
            !doc.iter().any(|s| {
                s.title.contains(&format!("[{key}]"))
                    || s.title.contains(&format!("[[{key}]]"))
                    || s.title.contains(&format!("[{key}."))
            })
        })
        .collect();
    for key in top {
        problems.push(format!(
            "[{key}] is accepted but has no section in docs/configuration.md"
        ));
    }

    compare(
        "server",
        &keys_of::<ServerConfig>(),
        &rows("`[server]`"),
        &mut problems,
    );
    // `certificates` entries are documented beside the keys of `[server.tls]`.
    compare(
        "server.tls",
        &union(keys_of::<TlsConfig>(), keys_of::<CertificateConfig>()),
        &rows("`[server.tls]`"),
        &mut problems,
    );
    compare(
        "server.tls.acme",
        &keys_of::<AcmeConfig>(),
        &rows("`[server.tls.acme]`"),
        &mut problems,
    );
    compare(
        "server.tls.hsts",
        &keys_of::<HstsConfig>(),
        &rows("`[server.tls.hsts]`"),
        &mut problems,
    );
    compare(
        "route",
        &keys_of::<RouteConfig>(),
        &rows("`[[route]]`"),
        &mut problems,
    );
    compare(
        "route.upstream_tls",
        &keys_of::<UpstreamTlsConfig>(),
        &rows("`[route.upstream_tls]`"),
        &mut problems,
    );
    compare(
        "registry",
        &keys_of::<RegistryConfig>(),
        &rows("`[registry]`"),
        &mut problems,
    );
    // A route's `cors` table also takes `policy` (read by hand, not by serde).
    compare(
        "cors",
        &union(keys_of::<CorsConfig>(), BTreeSet::from(["policy"])),
        &heading_keys(&doc, "CORS policy keys"),
        &mut problems,
    );
    compare(
        "cors.clients",
        &keys_of::<ClientsConfig>(),
        &rows("`clients`"),
        &mut problems,
    );

    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_key_lists_suggestions_come_from_are_serdes() {
    let listed =
        |list: &[&'static str]| -> BTreeSet<&'static str> { list.iter().copied().collect() };
    let mut problems = Vec::new();
    let mut same = |name: &str, list: &[&'static str], serde: BTreeSet<&'static str>| {
        if listed(list) != serde {
            problems.push(format!("{name} is {list:?}, serde accepts {serde:?}"));
        }
    };
    same("SERVER_KEYS", SERVER_KEYS, keys_of::<ServerConfig>());
    same("TLS_KEYS", TLS_KEYS, keys_of::<TlsConfig>());
    same("ACME_KEYS", ACME_KEYS, keys_of::<AcmeConfig>());
    same("HSTS_KEYS", HSTS_KEYS, keys_of::<HstsConfig>());
    same("ROUTE_KEYS", ROUTE_KEYS, keys_of::<RouteConfig>());
    same(
        "UPSTREAM_TLS_KEYS",
        UPSTREAM_TLS_KEYS,
        keys_of::<UpstreamTlsConfig>(),
    );
    same("REGISTRY_KEYS", REGISTRY_KEYS, keys_of::<RegistryConfig>());
    same("POLICY_KEYS", POLICY_KEYS, keys_of::<CorsConfig>());
    same("CLIENTS_KEYS", CLIENTS_KEYS, keys_of::<ClientsConfig>());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn keys_set_names_every_key_a_table_sets() {
    let every = POLICY_KEYS
        .iter()
        .map(|key| match *key {
            "allow_origins" => r#"allow_origins = ["https://a.example"]"#.to_owned(),
            "on_disallowed" => r#"on_disallowed = "omit""#.to_owned(),
            "clients" => r#"clients = { identify = ["form"] }"#.to_owned(),
            "max_age" | "preflight_status" => format!("{key} = 204"),
            k if k.starts_with("allow_")
                && k != "allow_credentials"
                && k != "allow_private_network" =>
            {
                format!("{k} = []")
            }
            "expose_headers" => "expose_headers = []".to_owned(),
            k => format!("{k} = true"),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let cors: CorsConfig = toml::from_str(&every).expect("every policy key, set");
    assert_eq!(crate::model::keys_set(&cors), POLICY_KEYS);
    assert!(crate::model::keys_set(&CorsConfig::default()).is_empty());
}
