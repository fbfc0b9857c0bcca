//! Client-scoped routes (a `cors` table with `clients`): which identification
//! source names which client in the request explained, which list decided
//! (the route's static `allow_origins`, the client's own origins, or the
//! union of every registered origin), and the registry write that makes a
//! refused request work.
//!
//! Nothing here reads a database or a file: the caller passes the registry
//! as a [`RegistrySnapshot`] (read from the configured database, or from a
//! `corsgate clients export` file) in a [`ClientInput`]. The request is read
//! with the very parsers the gateway uses (`corsgate_registry::identify`).

use corsgate_policy::{
    ClientIdentity, ClientOrigins, ClientRules, Decision, IdentifySource, Policy, PreflightRule,
    RejectionReason, UnidentifiedRule,
};
use corsgate_registry::RegistrySnapshot;
use corsgate_registry::identify::{self, FormClientId};
use http::header::{AUTHORIZATION, CONTENT_TYPE, ORIGIN};
use http::{HeaderMap, Method};
use serde::Serialize;

use crate::Fix;

/// What explain knows beyond the page's request on a client-scoped route.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientInput<'a> {
    /// The registry, and where it was read (`sqlite:/etc/corsgate/registry.db`,
    /// `clients.json`, …). `None`: explained as an empty registry, with a note.
    pub registry: Option<(&'a RegistrySnapshot, &'a str)>,
    /// The client the request names, given directly (`--client ID`): it wins
    /// over what the identification sources find.
    pub client: Option<&'a str>,
    /// The request body (`--data`), read by the `form` source.
    pub body: Option<&'a [u8]>,
}

/// Which list decided a client-scoped route's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DecidedBy {
    /// The route's own `allow_origins`: no identification needed.
    StaticList,
    /// The identified client's registered origins.
    ClientList,
    /// Every registered client's origins (preflights; unidentified requests
    /// under `unidentified = "registered"`).
    RegisteredOrigins,
    /// Any well-formed origin (`preflight = "any"`).
    AnyOrigin,
    /// No list: the request names a client that is not registered.
    UnknownClient,
}

/// What one identification source finds in the request.
#[derive(Debug, Clone, Serialize)]
pub struct SourceCheck {
    /// `basic`, `form` or `bearer-jwt`.
    pub source: &'static str,
    /// The client id it reads, if any.
    pub client: Option<String>,
    /// Why it reads none, or what it read from.
    pub detail: String,
}

/// The client part of an explanation, on a client-scoped route.
#[derive(Debug, Clone, Serialize)]
pub struct ClientExplanation {
    /// Where the registry was read (`none`: explained as empty).
    pub registry: String,
    /// The registry's revision.
    pub registry_revision: i64,
    /// How many clients it holds.
    pub registry_clients: usize,
    /// The route's sources, in the order they are tried, and what each found.
    pub sources: Vec<SourceCheck>,
    /// The source that named the client (`client` when given directly);
    /// `None` when no source did, or when the static list allowed the origin
    /// and no source was read.
    pub named_by: Option<String>,
    /// The client the request names (`None` too when the static list
    /// allowed the origin: the gateway reads no source then).
    pub client: Option<String>,
    /// Whether that client is registered.
    pub registered: bool,
    /// Its registered origins, as stored.
    pub client_origins: Vec<String>,
    /// Which list decided the preflight, when there is one.
    pub preflight_decided_by: Option<DecidedBy>,
    /// Which list decided the actual request.
    pub decided_by: DecidedBy,
}

/// The route's registry view: the snapshot given, or an empty one.
pub(crate) struct Registry<'a> {
    snapshot: Option<&'a RegistrySnapshot>,
    empty: ClientOrigins,
    from: &'a str,
}

impl<'a> Registry<'a> {
    pub(crate) fn new(input: &ClientInput<'a>) -> Self {
        Registry {
            snapshot: input.registry.map(|(s, _)| s),
            empty: ClientOrigins::default(),
            from: input.registry.map_or("none", |(_, from)| from),
        }
    }

    fn registered(&self) -> &ClientOrigins {
        self.snapshot.map_or(&self.empty, |s| s.registered())
    }
}

/// The preflight's decision: the static list and the union of every
/// registered origin (a preflight carries no client identity, Fetch §4.8).
pub(crate) fn decide_preflight(
    policy: &Policy,
    registry: &Registry<'_>,
    headers: &HeaderMap,
) -> (Decision, DecidedBy) {
    let decision = policy.decide_for_client(
        &Method::OPTIONS,
        headers,
        registry.registered(),
        ClientIdentity::Unidentified,
    );
    let by = match policy.clients().map(ClientRules::preflight) {
        _ if static_allows(policy, headers) => DecidedBy::StaticList,
        Some(PreflightRule::Any) => DecidedBy::AnyOrigin,
        _ => DecidedBy::RegisteredOrigins,
    };
    (decision, by)
}

fn static_allows(policy: &Policy, headers: &HeaderMap) -> bool {
    headers
        .get(ORIGIN)
        .is_some_and(|origin| policy.allows_origin(origin))
}

/// The actual request's decision, as the gateway makes it: the static list
/// first, then the first source present names the client.
pub(crate) fn decide_actual(
    policy: &Policy,
    rules: &ClientRules,
    registry: &Registry<'_>,
    input: &ClientInput<'_>,
    method: &Method,
    headers: &HeaderMap,
) -> (Decision, ClientExplanation) {
    let sources = rules
        .identify()
        .iter()
        .map(|source| check_source(*source, rules, input, method, headers))
        .collect::<Vec<_>>();
    let mut out = ClientExplanation {
        registry: registry.from.to_owned(),
        registry_revision: registry.snapshot.map_or(0, RegistrySnapshot::revision),
        registry_clients: registry.snapshot.map_or(0, RegistrySnapshot::len),
        sources,
        named_by: None,
        client: None,
        registered: false,
        client_origins: Vec::new(),
        preflight_decided_by: None,
        decided_by: DecidedBy::StaticList,
    };
    let (named_by, client) = match input.client {
        Some(id) => (Some("client".to_owned()), Some(id.to_owned())),
        None => match out.sources.iter().find(|s| s.client.is_some()) {
            Some(found) => (Some(found.source.to_owned()), found.client.clone()),
            None => (None, None),
        },
    };
    if static_allows(policy, headers) {
        // The gateway reads no source then (and holds no body back).
        return (policy.decide(method, headers), out);
    }
    let found = client
        .as_deref()
        .and_then(|id| registry.snapshot.and_then(|s| s.client(id)));
    out.client = client;
    out.registered = found.is_some();
    out.client_origins = found.map_or_else(Vec::new, |c| c.record().allowed_origins.clone());
    out.named_by = named_by;
    let identity = match (&out.client, found) {
        (None, _) => ClientIdentity::Unidentified,
        (Some(_), Some(client)) => ClientIdentity::Client(client.origins()),
        (Some(_), None) => ClientIdentity::Unknown,
    };
    out.decided_by = match identity {
        ClientIdentity::Client(_) => DecidedBy::ClientList,
        ClientIdentity::Unknown => DecidedBy::UnknownClient,
        _ if rules.unidentified() == UnidentifiedRule::Registered => DecidedBy::RegisteredOrigins,
        _ => DecidedBy::StaticList,
    };
    let decision = policy.decide_for_client(method, headers, registry.registered(), identity);
    (decision, out)
}

fn check_source(
    source: IdentifySource,
    rules: &ClientRules,
    input: &ClientInput<'_>,
    method: &Method,
    headers: &HeaderMap,
) -> SourceCheck {
    let authorization = headers.get(AUTHORIZATION).map(|v| v.as_bytes());
    let scheme = |value: &[u8]| {
        let text = String::from_utf8_lossy(value);
        text.split(' ').next().unwrap_or_default().to_owned()
    };
    let (client, detail) = match source {
        IdentifySource::Basic => match authorization {
            None => (None, "no Authorization header".to_owned()),
            Some(value) => match identify::basic_user(value) {
                Some(id) => (Some(id), "the user of Authorization: Basic".to_owned()),
                None if scheme(value).eq_ignore_ascii_case("basic") => (
                    None,
                    "Authorization: Basic is malformed (base64 of user:password, the user percent-encoded)".to_owned(),
                ),
                None => (None, format!("Authorization is {}, not Basic", scheme(value))),
            },
        },
        IdentifySource::BearerJwt => match authorization {
            None => (None, "no Authorization header".to_owned()),
            Some(value) => match identify::jwt_client(value, rules.jwt_claims()) {
                Some(id) => (
                    Some(id),
                    format!(
                        "a claim of the bearer JWT ({}; the signature is not checked)",
                        rules.jwt_claims().join(", then ")
                    ),
                ),
                None => (
                    None,
                    format!(
                        "Authorization is not a bearer JWT with a string claim {} (an opaque token names no client)",
                        rules.jwt_claims().join(" or ")
                    ),
                ),
            },
        },
        IdentifySource::Form => form_source(rules, input, method, headers),
        _ => (None, "not known to this explain".to_owned()),
    };
    SourceCheck {
        source: source.as_str(),
        client,
        detail,
    }
}

fn form_source(
    rules: &ClientRules,
    input: &ClientInput<'_>,
    method: &Method,
    headers: &HeaderMap,
) -> (Option<String>, String) {
    if method != Method::POST {
        return (None, format!("a {method} request has no form body"));
    }
    let Some(body) = input.body else {
        return (None, "no body given (--data)".to_owned());
    };
    let form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(identify::is_form_media_type);
    if !form {
        return (
            None,
            "the body is not application/x-www-form-urlencoded (fetch() sends a string body as text/plain: pass --header 'Content-Type: application/x-www-form-urlencoded', as a URLSearchParams body sends)".to_owned(),
        );
    }
    if body.len() as u64 > rules.body_limit() {
        return (
            None,
            format!(
                "the body is {} bytes, over body_limit ({}): forwarded unread",
                body.len(),
                rules.body_limit()
            ),
        );
    }
    match identify::form_client_id(body) {
        FormClientId::Found(id) => (Some(id), "client_id of the form body".to_owned()),
        FormClientId::Repeated => (
            None,
            "client_id appears more than once: ambiguous, so no client".to_owned(),
        ),
        _ => (None, "the form body has no client_id".to_owned()),
    }
}

/// The registry write (or the request change) that makes a refused request
/// work, first among the fixes.
pub(crate) fn fixes(
    explanation: &ClientExplanation,
    rejection: Option<RejectionReason>,
    origin: &str,
    preflight: bool,
) -> (Vec<Fix>, Vec<String>) {
    let mut fixes = Vec::new();
    let mut notes = Vec::new();
    let fix = |line: String, why: String| Fix {
        key: "the client registry".into(),
        line,
        why,
        also_opens: Vec::new(),
    };
    let client = explanation.client.as_deref();
    match (rejection, client) {
        (Some(RejectionReason::OriginNotAllowedForClient), Some(id)) => fixes.push(fix(
            format!("corsgate clients add-origin {} {origin}", shell_word(id)),
            format!("{origin} is not among client {id:?}'s registered origins"),
        )),
        (Some(RejectionReason::ClientUnknown), Some(id)) => fixes.push(fix(
            format!("corsgate clients set {} --origin {origin}", shell_word(id)),
            format!("the request names client {id:?}, which is not registered"),
        )),
        (Some(RejectionReason::ClientUnidentified), _) => {
            let names: Vec<&str> = explanation.sources.iter().map(|s| s.source).collect();
            notes.push(format!(
                "the request names no client: the route reads it from {} (in that order); send it there, or pass --client ID to explain one",
                names.join(", ")
            ));
        }
        (Some(RejectionReason::OriginNotAllowed), Some(id)) if explanation.registered => {
            fixes.push(fix(
                format!("corsgate clients add-origin {} {origin}", shell_word(id)),
                format!(
                    "{origin} is registered on no client{}",
                    if preflight {
                        " (a preflight is allowed for the origins of every registered client)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        (Some(RejectionReason::OriginNotAllowed), _) if preflight => fixes.push(fix(
            format!("corsgate clients add-origin CLIENT_ID {origin}"),
            format!(
                "{origin} is registered on no client (a preflight is allowed for the origins of every registered client)"
            ),
        )),
        _ => {}
    }
    (fixes, notes)
}

/// An id as one shell word: quoted unless it is plain.
fn shell_word(id: &str) -> String {
    if !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@'))
    {
        id.to_owned()
    } else {
        format!("'{}'", id.replace('\'', r"'\''"))
    }
}

impl DecidedBy {
    /// What the human report says.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            DecidedBy::StaticList => "the route's static allow_origins",
            DecidedBy::ClientList => "the client's own registered origins",
            DecidedBy::RegisteredOrigins => "the origins of every registered client",
            DecidedBy::AnyOrigin => "any well-formed origin (preflight = \"any\")",
            DecidedBy::UnknownClient => "no list: the client is not registered",
        }
    }
}
