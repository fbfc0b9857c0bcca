//! The embedded store: one SQLite file, next to the configuration by default.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::store::{ClientRecord, ClientWrite, Loaded, Store, StoreError, Written, parse_origins};

/// The migrations, in order: migration `n` (from 1) takes the schema from
/// version `n - 1` to `n` (`PRAGMA user_version`).
const MIGRATIONS: &[&str] = &[include_str!("../migrations/sqlite/0001_clients.sql")];

/// The newest schema this build knows.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A writer that finds the file locked waits this long, then fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Clients in a SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn unavailable(err: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(err.to_string())
}

impl SqliteStore {
    /// Opens the file, creating it (and its tables, when `migrate`) if needed.
    pub fn open(path: &Path, migrate: bool) -> Result<SqliteStore, StoreError> {
        let conn =
            Connection::open(path).map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
        // WAL: readers (the gateway's loads) never block the writer, and the
        // other way round; a CLI writing the same file meanwhile just works.
        conn.pragma_update(None, "journal_mode", "wal")
            .map_err(unavailable)?;
        let store = SqliteStore {
            conn: Mutex::new(conn),
        };
        store.prepare(migrate)?;
        Ok(store)
    }

    /// Opens an existing registry file to read only: nothing is created,
    /// migrated or written (not even the journal mode), so that a tool can
    /// read the file a gateway serves. Its schema must be this build's.
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| unavailable(format!("{}: {e}", path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(unavailable)?;
        match version {
            v if v > SCHEMA_VERSION => Err(StoreError::SchemaTooNew {
                found: v,
                supported: SCHEMA_VERSION,
            }),
            v if v < SCHEMA_VERSION => Err(StoreError::NotMigrated),
            _ => Ok(SqliteStore {
                conn: Mutex::new(conn),
            }),
        }
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves a connection that is still
        // usable: SQLite rolled back whatever transaction was open.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies the missing migrations in one transaction, or checks there is
    /// none missing when `migrate` is off.
    fn prepare(&self, migrate: bool) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(unavailable)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        if !migrate {
            return Err(StoreError::NotMigrated);
        }
        let pending = MIGRATIONS
            .iter()
            .skip(usize::try_from(version).unwrap_or(0));
        for sql in pending {
            tx.execute_batch(sql).map_err(unavailable)?;
        }
        if version == 0 {
            tx.execute(
                "INSERT INTO corsgate_registry_meta (id, instance, revision) VALUES (1, ?1, 0)",
                params![new_instance()],
            )
            .map_err(unavailable)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(unavailable)?;
        tx.commit().map_err(unavailable)
    }
}

/// 128 random bits, in hex.
fn new_instance() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

fn stamp(conn: &Connection) -> rusqlite::Result<(String, i64)> {
    conn.query_row(
        "SELECT instance, revision FROM corsgate_registry_meta WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Bumps the registry revision inside `tx`: the row lock also serializes
/// writers.
fn bump(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<i64> {
    tx.query_row(
        "UPDATE corsgate_registry_meta SET revision = revision + 1 WHERE id = 1 RETURNING revision",
        [],
        |r| r.get(0),
    )
}

fn current_revision(tx: &rusqlite::Transaction<'_>, id: &str) -> rusqlite::Result<Option<i64>> {
    tx.query_row(
        "SELECT revision FROM corsgate_clients WHERE id = ?1",
        params![id],
        |r| r.get(0),
    )
    .optional()
}

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn load(&self) -> Result<Loaded, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(unavailable)?;
        let (instance, revision) = stamp(&tx).map_err(unavailable)?;
        let mut clients = Vec::new();
        {
            let mut query = tx
                .prepare(
                    "SELECT id, name, allowed_origins, revision, updated_at FROM corsgate_clients ORDER BY id",
                )
                .map_err(unavailable)?;
            let rows = query
                .query_map([], |r| {
                    let origins: String = r.get(2)?;
                    Ok(ClientRecord {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        allowed_origins: parse_origins(&origins),
                        revision: r.get(3)?,
                        updated_at: r.get(4)?,
                    })
                })
                .map_err(unavailable)?;
            for row in rows {
                clients.push(row.map_err(unavailable)?);
            }
        }
        tx.commit().map_err(unavailable)?;
        Ok(Loaded {
            instance,
            revision,
            clients,
        })
    }

    fn stamp(&self) -> Result<(String, i64), StoreError> {
        stamp(&self.conn()).map_err(unavailable)
    }

    fn put(&self, client: &ClientWrite<'_>) -> Result<Written, StoreError> {
        let origins = serde_json::to_string(client.allowed_origins).map_err(unavailable)?;
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let current = current_revision(&tx, client.id).map_err(unavailable)?;
        if let Some(expected) = client.if_match {
            if current.unwrap_or(0) != expected {
                return Err(StoreError::Conflict(current));
            }
        }
        let revision = bump(&tx).map_err(unavailable)?;
        tx.execute(
            "INSERT INTO corsgate_clients (id, name, allowed_origins, revision) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name,
               allowed_origins = excluded.allowed_origins, revision = excluded.revision,
               updated_at = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')",
            params![client.id, client.name, origins, revision],
        )
        .map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
        Ok(Written {
            created: current.is_none(),
            revision,
        })
    }

    fn delete(&self, id: &str, if_match: Option<i64>) -> Result<i64, StoreError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let current = current_revision(&tx, id).map_err(unavailable)?;
        let Some(current) = current else {
            return Err(StoreError::NotFound);
        };
        if if_match.is_some_and(|expected| expected != current) {
            return Err(StoreError::Conflict(Some(current)));
        }
        let revision = bump(&tx).map_err(unavailable)?;
        tx.execute("DELETE FROM corsgate_clients WHERE id = ?1", params![id])
            .map_err(unavailable)?;
        tx.commit().map_err(unavailable)?;
        Ok(revision)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "corsgate-registry-{}-{}-{name}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("registry.db")
    }

    fn write<'a>(id: &'a str, origins: &'a [String], if_match: Option<i64>) -> ClientWrite<'a> {
        ClientWrite {
            id,
            name: "",
            allowed_origins: origins,
            if_match,
        }
    }

    #[test]
    fn creates_migrates_writes_and_reads_back() {
        let path = temp("basic");
        let store = SqliteStore::open(&path, true).unwrap();
        let empty = store.load().unwrap();
        assert_eq!(empty.revision, 0);
        assert!(empty.clients.is_empty());
        let origins = vec!["https://spa.example".to_owned()];
        let w = store.put(&write("spa", &origins, None)).unwrap();
        assert_eq!(
            w,
            Written {
                created: true,
                revision: 1
            }
        );
        let w = store.put(&write("spa", &origins, Some(1))).unwrap();
        assert_eq!(
            w,
            Written {
                created: false,
                revision: 2
            }
        );
        assert_eq!(
            store.put(&write("spa", &origins, Some(1))),
            Err(StoreError::Conflict(Some(2)))
        );
        assert_eq!(
            store.put(&write("new", &origins, Some(3))),
            Err(StoreError::Conflict(None))
        );
        let loaded = store.load().unwrap();
        assert_eq!(loaded.revision, 2);
        assert_eq!(loaded.instance, empty.instance);
        assert_eq!(loaded.clients[0].allowed_origins, origins);
        drop(store);
        // Reopened: nothing migrated twice, the same instance.
        let store = SqliteStore::open(&path, true).unwrap();
        assert_eq!(store.stamp().unwrap(), (empty.instance.clone(), 2));
        assert_eq!(store.delete("ghost", None), Err(StoreError::NotFound));
        assert_eq!(store.delete("spa", Some(2)), Ok(3));
        assert!(store.load().unwrap().clients.is_empty());
    }

    #[test]
    fn refuses_a_newer_schema_and_an_unmigrated_file() {
        let path = temp("schema");
        assert_eq!(
            SqliteStore::open(&path, false).unwrap_err(),
            StoreError::NotMigrated
        );
        drop(SqliteStore::open(&path, true).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        assert_eq!(
            SqliteStore::open(&path, true).unwrap_err(),
            StoreError::SchemaTooNew {
                found: 99,
                supported: SCHEMA_VERSION
            }
        );
    }

    #[test]
    fn a_stored_value_that_is_not_a_json_list_is_one_bad_entry() {
        assert_eq!(parse_origins(r#"["a","b"]"#), ["a", "b"]);
        assert_eq!(parse_origins("https://a.example"), ["https://a.example"]);
    }
}
