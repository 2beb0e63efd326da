//! The controller's state on disk: a redb database holding the core's
//! snapshot and the cloud's resources, rewritten in one transaction after
//! every decision. A controller that restarts reads them back
//! ([`crate::ControllerMachine::start`]).

use crate::machine::ControllerSnapshot;
use redb::{Database, TableDefinition};
use std::path::Path;
use thiserror::Error;

const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
const CORE_KEY: &str = "core";
const CLOUD_KEY: &str = "cloud";

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

    pub fn save(&self, snap: &ControllerSnapshot) -> Result<(), StoreError> {
        let core = serde_json::to_vec(&snap.core)?;
        let cloud = serde_json::to_vec(&snap.cloud)?;
        let tx = self.db.begin_write().map_err(db)?;
        {
            let mut t = tx.open_table(STATE).map_err(db)?;
            t.insert(CORE_KEY, core.as_slice()).map_err(db)?;
            t.insert(CLOUD_KEY, cloud.as_slice()).map_err(db)?;
        }
        tx.commit().map_err(db)
    }

    /// What was saved last; `None` for a new store. A store written before
    /// the cloud's resources existed reads with an empty cloud.
    pub fn load(&self) -> Result<Option<ControllerSnapshot>, StoreError> {
        let tx = self.db.begin_read().map_err(db)?;
        let t = match tx.open_table(STATE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(db(e)),
        };
        let Some(core) = t.get(CORE_KEY).map_err(db)? else {
            return Ok(None);
        };
        let core = serde_json::from_slice(core.value())?;
        let cloud = match t.get(CLOUD_KEY).map_err(db)? {
            Some(v) => serde_json::from_slice(v.value())?,
            None => Default::default(),
        };
        Ok(Some(ControllerSnapshot { core, cloud }))
    }
}
