//! The immutable in-memory registry that requests read.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use corsgate_policy::{ClientOrigins, Diagnostic};
use foldhash::fast::RandomState;

use crate::store::{ClientRecord, Loaded};

/// Where a snapshot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The database.
    Database,
    /// The snapshot file, read at start while the database was down.
    SnapshotFile,
    /// Nothing yet: no client is registered as far as requests can tell.
    Empty,
}

impl Source {
    /// `database`, `snapshot_file` or `empty`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Database => "database",
            Source::SnapshotFile => "snapshot_file",
            Source::Empty => "empty",
        }
    }
}

/// One registered client, its origins compiled.
#[derive(Debug)]
pub struct Client {
    record: ClientRecord,
    origins: ClientOrigins,
}

impl Client {
    /// The client as stored.
    pub fn record(&self) -> &ClientRecord {
        &self.record
    }

    /// Its valid origins, compiled.
    pub fn origins(&self) -> &ClientOrigins {
        &self.origins
    }
}

/// The whole registry at one revision.
#[derive(Debug)]
pub struct RegistrySnapshot {
    instance: String,
    revision: i64,
    loaded_at: SystemTime,
    source: Source,
    /// By id. foldhash, as the origin index: ids from requests are only
    /// looked up, never inserted, so they cannot make keys collide.
    clients: HashMap<Box<str>, Arc<Client>, RandomState>,
    union: ClientOrigins,
    origins: usize,
    invalid: Vec<Diagnostic>,
}

impl RegistrySnapshot {
    /// No client.
    pub(crate) fn empty() -> Self {
        RegistrySnapshot {
            instance: String::new(),
            revision: 0,
            loaded_at: SystemTime::now(),
            source: Source::Empty,
            clients: HashMap::default(),
            union: ClientOrigins::default(),
            origins: 0,
            invalid: Vec::new(),
        }
    }

    /// Compiles every client. An invalid stored origin drops only that entry
    /// (reported in [`invalid`](Self::invalid)), never the client or the load.
    pub fn build(loaded: Loaded, source: Source) -> Self {
        let mut clients =
            HashMap::with_capacity_and_hasher(loaded.clients.len(), RandomState::default());
        let mut invalid = Vec::new();
        let mut origins = 0;
        for record in loaded.clients {
            let path = format!("clients[{:?}].allowed_origins", record.id);
            let (set, problems) = ClientOrigins::compile(&record.allowed_origins, &path);
            invalid.extend(problems.into_iter().filter(Diagnostic::is_error));
            origins += set.len();
            clients.insert(
                record.id.clone().into_boxed_str(),
                Arc::new(Client {
                    record,
                    origins: set,
                }),
            );
        }
        let union = ClientOrigins::union(clients.values().map(|c| &c.origins));
        RegistrySnapshot {
            instance: loaded.instance,
            revision: loaded.revision,
            loaded_at: SystemTime::now(),
            source,
            clients,
            union,
            origins,
            invalid,
        }
    }

    /// A client by id.
    pub fn client(&self, id: &str) -> Option<&Client> {
        self.clients.get(id).map(|c| &**c)
    }

    /// Every client, in no particular order.
    pub fn clients(&self) -> impl Iterator<Item = &Client> {
        self.clients.values().map(|c| &**c)
    }

    /// The union of every client's origins: what preflights are allowed with.
    pub fn registered(&self) -> &ClientOrigins {
        &self.union
    }

    /// How many clients.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Whether there is no client.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Valid origins over every client.
    pub fn origin_count(&self) -> usize {
        self.origins
    }

    /// The database instance it was read from.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The registry revision it holds.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// When it was built.
    pub(crate) fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    /// Where it came from.
    pub fn source(&self) -> Source {
        self.source
    }

    /// Stored origins skipped because they are invalid.
    pub fn invalid(&self) -> &[Diagnostic] {
        &self.invalid
    }
}

/// Writes the registry to `path` atomically (a temporary file renamed over
/// it): a crash mid-write leaves the previous file.
pub(crate) fn write_file(path: &Path, loaded: &Loaded) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    serde_json::to_writer(&mut file, loaded)?;
    file.flush()?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// Reads a snapshot file.
pub(crate) fn read_file(path: &Path) -> std::io::Result<Loaded> {
    let text = std::fs::read(path)?;
    serde_json::from_slice(&text).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, origins: &[&str]) -> ClientRecord {
        ClientRecord {
            id: id.into(),
            name: String::new(),
            allowed_origins: origins.iter().map(|s| (*s).to_owned()).collect(),
            revision: 1,
            updated_at: String::new(),
        }
    }

    #[test]
    fn an_invalid_stored_origin_drops_only_that_entry() {
        let snap = RegistrySnapshot::build(
            Loaded {
                instance: "i".into(),
                revision: 7,
                clients: vec![
                    record("a", &["https://App.example.com/", "https://ok.example"]),
                    record("b", &["https://b.example"]),
                ],
            },
            Source::Database,
        );
        assert_eq!(snap.len(), 2);
        assert_eq!(snap.invalid().len(), 1);
        assert_eq!(
            snap.invalid()[0].path(),
            "clients[\"a\"].allowed_origins[0]"
        );
        assert!(
            snap.client("a")
                .unwrap()
                .origins()
                .contains("https://ok.example")
        );
        assert!(snap.registered().contains("https://b.example"));
        assert!(snap.registered().contains("https://ok.example"));
        assert_eq!(snap.origin_count(), 2);
    }
}
