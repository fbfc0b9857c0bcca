//! Where clients are stored: the [`Store`] trait, and what crosses it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One client as stored: its id, a name for people, and its allowed origins as
/// written (validated on every write path; checked again when loaded, since a
/// row may have been written by hand or by another version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    /// The OAuth2 `client_id`.
    pub id: String,
    /// A name for people. May be empty.
    #[serde(default)]
    pub name: String,
    /// Origins and origin patterns, in `allow_origins`' grammar.
    pub allowed_origins: Vec<String>,
    /// The registry revision of the client's last change: its ETag.
    #[serde(default)]
    pub revision: i64,
    /// When it last changed (RFC 3339, UTC).
    #[serde(default)]
    pub updated_at: String,
}

/// The whole registry, read in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loaded {
    /// Random per database: a different one means a different database.
    pub instance: String,
    /// Bumped by every write.
    pub revision: i64,
    /// Every client, by id.
    pub clients: Vec<ClientRecord>,
}

/// A client to create or replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientWrite<'a> {
    /// The client id.
    pub id: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its origins, already validated.
    pub allowed_origins: &'a [String],
    /// `If-Match`: the client's revision the writer saw, `Some(0)` for "must not
    /// exist yet".
    pub if_match: Option<i64>,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Whether the client was new.
    pub created: bool,
    /// The registry revision the write made.
    pub revision: i64,
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached or read: nothing changed.
    Unavailable(String),
    /// The database was migrated by a newer corsgate.
    SchemaTooNew {
        /// The database's schema version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// The database has no registry tables and `auto_migrate` is off.
    NotMigrated,
    /// `If-Match` did not match: the client's current revision (`None`: absent).
    Conflict(Option<i64>),
    /// No such client.
    NotFound,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(why) => write!(f, "registry database unavailable: {why}"),
            StoreError::SchemaTooNew { found, supported } => write!(
                f,
                "the registry database's schema {found} is newer than this corsgate's ({supported}); upgrade corsgate"
            ),
            StoreError::NotMigrated => f.write_str(
                "the registry database has no registry tables; run `corsgate registry migrate` or set auto_migrate = true",
            ),
            StoreError::Conflict(Some(current)) => {
                write!(f, "the client changed meanwhile (now revision {current})")
            }
            StoreError::Conflict(None) => f.write_str("the client does not exist"),
            StoreError::NotFound => f.write_str("no such client"),
        }
    }
}

impl std::error::Error for StoreError {}

/// A database of clients. Blocking: the registry calls it from tokio's
/// blocking pool, never on the request path.
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`, for status output.
    fn backend(&self) -> &'static str;

    /// Reads the whole registry in one transaction.
    fn load(&self) -> Result<Loaded, StoreError>;

    /// `(instance, revision)` alone: what a poll compares.
    fn stamp(&self) -> Result<(String, i64), StoreError>;

    /// Creates or replaces a client, bumping the registry revision.
    fn put(&self, client: &ClientWrite<'_>) -> Result<Written, StoreError>;

    /// Deletes a client, bumping the registry revision; `if_match` as for
    /// [`put`](Store::put). Returns the new revision.
    fn delete(&self, id: &str, if_match: Option<i64>) -> Result<i64, StoreError>;

    /// How the database tells of a committed change as it happens
    /// (PostgreSQL's `LISTEN/NOTIFY`), when it can; `None` (the default):
    /// changes made elsewhere are found by the poll alone.
    fn change_feed(&self) -> Option<ChangeFeed> {
        None
    }
}

/// Where a store's change notifications come from; see
/// [`Store::change_feed`].
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    /// The connection the listener opens.
    #[cfg(feature = "postgres")]
    pub(crate) postgres: crate::postgres::Connect,
    #[cfg(not(feature = "postgres"))]
    pub(crate) _none: (),
}

/// A stored `allowed_origins` value: a JSON array of strings. Anything else
/// is kept as one entry of its own, so that it is reported and skipped like
/// any invalid origin instead of hiding the client.
pub(crate) fn parse_origins(text: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(text) {
        Ok(list) => list,
        Err(_) => vec![text.to_owned()],
    }
}
