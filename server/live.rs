//! The live policy: the compiled `Snapshot` that decisions read, swapped atomically after
//! every committed change, and the anti-passback `Presence` kept beside it.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};

use crate::policy::{CompileError, Presence, Snapshot};
use crate::store::DbPool;
use crate::store::load::{LoadError, load_policy, policy_version};

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("could not read the policy: {0}")]
    Load(#[from] LoadError),
    #[error("the stored policy does not compile: {0}")]
    Compile(#[from] CompileError),
    #[error("no database connection: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("the policy reload task failed: {0}")]
    Task(String),
}

pub struct LivePolicy {
    current: ArcSwap<Snapshot>,
    presence: Mutex<Presence>,
    /// Bumped by every change that wants a reload; reloads cover all requests made before
    /// they started, so a burst of admin changes costs one or two reloads, not one each.
    requested: AtomicU64,
    loaded: tokio::sync::Mutex<u64>,
    /// Why the last rebuild failed, while the previous snapshot stays in force.
    last_error: Mutex<Option<String>>,
    /// The stored policy version the snapshot in force was compiled from.
    version: AtomicI64,
    /// The stored version the last rebuild attempt read, successful or not.
    attempted: AtomicI64,
}

impl LivePolicy {
    /// Loads and compiles the stored policy; used once at start.
    pub fn load(db: &DbPool, now: DateTime<Utc>) -> Result<LivePolicy, RefreshError> {
        let (snapshot, version) = compile_from(db, now)?;
        Ok(LivePolicy {
            version: AtomicI64::new(version),
            attempted: AtomicI64::new(version),
            current: ArcSwap::from_pointee(snapshot),
            presence: Mutex::new(Presence::new()),
            requested: AtomicU64::new(0),
            loaded: tokio::sync::Mutex::new(0),
            last_error: Mutex::new(None),
        })
    }

    /// The snapshot in force now. Cheap: an atomic load of an Arc.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Runs `f` with the anti-passback state locked.
    pub fn with_presence<T>(&self, f: impl FnOnce(&mut Presence) -> T) -> T {
        match self.presence.lock() {
            Ok(mut p) => f(&mut p),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Rebuilds the snapshot from the database after a committed change; returns once a
    /// snapshot that includes that change is live.
    pub async fn refresh(&self, db: &DbPool, now: DateTime<Utc>) -> Result<(), RefreshError> {
        let wanted = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut loaded = self.loaded.lock().await;
        if *loaded >= wanted {
            return Ok(());
        }
        let target = self.requested.load(Ordering::SeqCst);
        let db = db.clone();
        let result = tokio::task::spawn_blocking(move || compile_from(&db, now))
            .await
            .map_err(|e| RefreshError::Task(e.to_string()))
            .and_then(|r| r);
        let stale = match result {
            Ok((snapshot, version)) => {
                self.current.store(Arc::new(snapshot));
                self.version.store(version, Ordering::SeqCst);
                self.attempted.store(version, Ordering::SeqCst);
                *loaded = target;
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "the live policy could not be rebuilt; the previous one stays in force");
                Some(e)
            }
        };
        if let Ok(mut last) = self.last_error.lock() {
            *last = stale.as_ref().map(|e| e.to_string());
        }
        stale.map_or(Ok(()), Err)
    }

    /// Rebuilds when the stored policy changed behind this process's back: another
    /// instance on the same PostgreSQL database, or a CLI import. A version whose rebuild
    /// already failed is not retried until the stored version moves again.
    pub async fn follow_database(
        &self,
        db: &DbPool,
        now: DateTime<Utc>,
    ) -> Result<(), RefreshError> {
        let pool = db.clone();
        let stored = tokio::task::spawn_blocking(move || -> Result<i64, RefreshError> {
            let mut conn = pool.get()?;
            policy_version(&mut conn).map_err(|e| RefreshError::Load(LoadError::Db(e)))
        })
        .await
        .map_err(|e| RefreshError::Task(e.to_string()))??;
        if stored == self.attempted.swap(stored, Ordering::SeqCst) {
            return Ok(());
        }
        self.refresh(db, now).await
    }

    /// The stored policy version of the snapshot in force.
    pub fn version(&self) -> i64 {
        self.version.load(Ordering::SeqCst)
    }

    /// Why the live policy is older than the database, if the last rebuild failed.
    pub fn stale_because(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }
}

fn compile_from(db: &DbPool, now: DateTime<Utc>) -> Result<(Snapshot, i64), RefreshError> {
    let loaded = {
        let mut conn = db.get()?;
        load_policy(&mut conn)?
    };
    Ok((Snapshot::compile(&loaded.data, now)?, loaded.version))
}
