//! corsgate's OAuth2 client registry: each client lists the origins allowed to
//! use it, for routes whose `cors` table has `clients`.
//!
//! The database is never read on the request path. The whole registry is read
//! into an immutable [`RegistrySnapshot`] (each client's origins compiled, and
//! their union for preflights), swapped atomically; requests load the current
//! one lock-free. It is read again after every write made through the
//! [`Registry`] (before the write returns, so a write is seen by the next
//! request), on PostgreSQL's `LISTEN/NOTIFY` and after every reconnection of
//! the listener (writes made by other gateways), and by a periodic poll of the
//! registry's revision (writes made by another process). While the database is down the last good snapshot stays,
//! and it can be written to a file so that a node can start with the database
//! down.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use corsgate_registry::{Registry, RegistryOptions, SqliteStore};
//! use std::sync::Arc;
//!
//! let dir = std::env::temp_dir().join(format!("corsgate-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let store = SqliteStore::open(&dir.join("registry.db"), true).unwrap();
//! let registry = Registry::start(Arc::new(store), RegistryOptions::default()).await;
//! registry.put("spa", "My SPA", vec!["https://spa.example".into()], None).await.unwrap();
//! let snapshot = registry.snapshot();
//! assert!(snapshot.client("spa").unwrap().origins().contains("https://spa.example"));
//! assert!(snapshot.registered().contains("https://spa.example"));
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # });
//! ```
#![warn(missing_docs, missing_debug_implementations)]
// Without `stores`, the snapshot's file and load helpers have no caller.
#![cfg_attr(not(feature = "stores"), allow(dead_code))]

pub mod identify;
#[cfg(feature = "stores")]
mod live;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
mod postgres_tls;
mod snapshot;
#[cfg(feature = "stores")]
mod sqlite;
mod store;

#[cfg(feature = "stores")]
pub use live::*;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "postgres")]
pub use postgres_tls::{PostgresTls, SslMode};
pub use snapshot::{Client, RegistrySnapshot, Source};
#[cfg(feature = "stores")]
pub use sqlite::SqliteStore;
pub use store::{ChangeFeed, ClientRecord, ClientWrite, Loaded, Store, StoreError, Written};
