//! What the Kubernetes importers (`ingress-nginx`, `gateway-api`) share: reading
//! manifests (one or many YAML documents, or the `List` that `kubectl get … -o
//! yaml` prints), naming objects in notes, placeholder upstreams for backends,
//! and one route per host and path.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, bail};
use saphyr::{LoadableYamlNode, Yaml};

use super::common::Notes;
use super::draft::Route;

/// One object of a manifest.
pub(crate) struct Object<'a> {
    /// `namespace/name`, for notes (`default` when the manifest gives none, as
    /// `kubectl apply` assumes).
    pub(crate) id: String,
    pub(crate) namespace: String,
    pub(crate) node: &'a Yaml<'a>,
}

impl Object<'_> {
    pub(crate) fn get(&self, path: &[&str]) -> Option<&Yaml<'_>> {
        path.iter()
            .try_fold(self.node, |node, key| node.as_mapping_get(key))
    }
}

/// The documents of `text`, read as YAML, aliases refused (see
/// [`super::kratos::refuse_aliases`]).
pub(crate) fn documents(text: &str) -> anyhow::Result<Vec<Yaml<'_>>> {
    super::kratos::refuse_aliases(text)?;
    Yaml::load_from_str(text).context("not YAML")
}

/// Every object of `kind` in `docs`, also inside `List`s (`kind: List` or
/// `IngressList`, with `items`), in file order. `what` names the kind in the
/// error when there is none.
pub(crate) fn objects<'a>(
    docs: &'a [Yaml<'a>],
    kind: &str,
    what: &str,
) -> anyhow::Result<Vec<Object<'a>>> {
    let mut out = Vec::new();
    let mut others = Vec::new();
    let mut stack: Vec<&Yaml<'_>> = docs.iter().rev().collect();
    while let Some(node) = stack.pop() {
        let Some(node_kind) = node.as_mapping_get("kind").and_then(Yaml::as_str) else {
            continue;
        };
        if node_kind.ends_with("List") {
            if let Some(items) = node.as_mapping_get("items").and_then(Yaml::as_sequence) {
                stack.extend(items.iter().rev());
            }
            continue;
        }
        if node_kind != kind {
            others.push(node_kind.to_owned());
            continue;
        }
        let meta = node.as_mapping_get("metadata");
        let field = |key: &str| {
            meta.and_then(|m| m.as_mapping_get(key))
                .and_then(Yaml::as_str)
                .map(str::to_owned)
        };
        let namespace = field("namespace").unwrap_or_else(|| "default".to_owned());
        let name = field("name").unwrap_or_else(|| "(unnamed)".to_owned());
        out.push(Object {
            id: format!("{namespace}/{name}"),
            namespace,
            node,
        });
    }
    if out.is_empty() {
        others.dedup();
        if others.is_empty() {
            bail!("no Kubernetes object with a `kind` in the file: {what}");
        }
        bail!(
            "no {kind} in the file (found {}): {what}",
            others.join(", ")
        );
    }
    Ok(out)
}

/// A scalar as text: annotations are strings, but `true` or `600` unquoted are
/// read as they were meant.
pub(crate) fn text(node: &Yaml<'_>) -> Option<String> {
    if let Some(s) = node.as_str() {
        return Some(s.to_owned());
    }
    if let Some(b) = node.as_bool() {
        return Some(b.to_string());
    }
    node.as_integer().map(|i| i.to_string())
}

/// A list of strings (a sequence of scalars).
pub(crate) fn strings(node: &Yaml<'_>) -> Option<Vec<String>> {
    node.as_sequence()?.iter().map(text).collect()
}

/// First port of the placeholder upstreams: they stand for cluster Services,
/// which corsgate cannot reach by name from outside the cluster.
const FIRST_PLACEHOLDER_PORT: u16 = 9000;

/// Placeholder upstreams, one per distinct backend, so that routes to the same
/// Service keep sharing one upstream when the addresses are filled in.
#[derive(Default)]
pub(crate) struct Backends {
    seen: HashMap<String, String>,
}

impl Backends {
    /// The upstream for `service` (as `namespace/name:port`), and the comment
    /// that says what it stands for.
    pub(crate) fn upstream(&mut self, service: &str, in_cluster: &str) -> (String, String) {
        let next = FIRST_PLACEHOLDER_PORT.saturating_add(
            u16::try_from(self.seen.len()).unwrap_or(u16::MAX - FIRST_PLACEHOLDER_PORT),
        );
        let upstream = self
            .seen
            .entry(service.to_owned())
            .or_insert_with(|| format!("http://127.0.0.1:{next}"))
            .clone();
        (
            upstream,
            format!("placeholder for Service {service} (in the cluster: {in_cluster})"),
        )
    }

    pub(crate) fn any(&self) -> bool {
        !self.seen.is_empty()
    }
}

/// The note that explains the placeholders, once per import.
pub(crate) fn placeholders_note(notes: &mut Notes, backends: &Backends) {
    if backends.any() {
        notes.add(
            "backends",
            "each Service is imported as a placeholder upstream (http://127.0.0.1:9000, :9001, … one per Service, named in the comment): set each route.upstream to where corsgate reaches that Service — its cluster DNS name and port (http://NAME.NAMESPACE.svc:PORT) when corsgate runs in the cluster",
        );
    }
}

/// A host of a manifest as a route's `host`: an exact name is kept; a wildcard
/// (`*.example.com`) has no corsgate equivalent, so the route serves any host.
pub(crate) fn route_host(host: &str, place: &str, notes: &mut Notes) -> Option<String> {
    if host.is_empty() {
        return None;
    }
    if host.starts_with('*') {
        notes.add(
            place,
            format!(
                "host {host:?}: a corsgate route matches one host name exactly; imported without host, so the route serves every host: add a route per host name if other hosts must not reach it"
            ),
        );
        return None;
    }
    Some(host.to_ascii_lowercase())
}

/// A path prefix as corsgate writes it: without a trailing `/` (corsgate
/// prefixes match on segment boundaries, as Kubernetes `Prefix` paths do).
pub(crate) fn prefix(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// The routes of an import, one per host and path: a later one for the same
/// host and path is dropped with a note (the first wins, as it did for the
/// object created first in most controllers).
#[derive(Default)]
pub(crate) struct Routes {
    pub(crate) list: Vec<Route>,
    seen: HashSet<(Option<String>, String)>,
}

impl Routes {
    pub(crate) fn push(&mut self, route: Route, place: &str, notes: &mut Notes) {
        if self.seen.insert((route.host.clone(), route.path.clone())) {
            self.list.push(route);
        } else {
            notes.add(
                place,
                format!(
                    "path {:?}{} is already routed by an earlier rule: not imported twice (the first is kept)",
                    route.path,
                    route
                        .host
                        .as_deref()
                        .map(|h| format!(" on host {h:?}"))
                        .unwrap_or_default()
                ),
            );
        }
    }
}
