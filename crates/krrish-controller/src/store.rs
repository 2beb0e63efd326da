//! The controller's state on disk: a redb database holding the core's
//! snapshot, rewritten in one transaction after every decision. A controller
//! that restarts reads it back ([`krrish_core::HaManager::restore`]).

use krrish_core::ha::CoreSnapshot;
use redb::{Database, TableDefinition};
use std::path::Path;
use thiserror::Error;

const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
const CORE_KEY: &str = "core";

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("controller store {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("controller store: {0}")]
    Db(String),
    #[error("controller store holds an unreadable snapshot: {0}")]
    Corrupt(#[from] serde_json::Error),
}

fn db<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Db(e.to_string())
}

pub struct Store {
    db: Database,
}

impl Store {
    /// A database file, created if missing.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self { db })
    }

    /// An in-memory database: the simulated controller's disk, kept by the
    /// world across the controller's crashes.
    pub fn in_memory() -> Result<Self, StoreError> {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(db)?;
        Ok(Self { db })
    }

    pub fn save(&self, snap: &CoreSnapshot) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(snap)?;
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut t = tx.open_table(STATE).map_err(db)?;
            t.insert(CORE_KEY, bytes.as_slice()).map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    pub fn load(&self) -> Result<Option<CoreSnapshot>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = match tx.open_table(STATE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db(e)),
        };
        match t.get(CORE_KEY).map_err(db)? {
            Some(v) => Ok(Some(serde_json::from_slice(v.value())?)),
            None => Ok(None),
        }
    }
}
