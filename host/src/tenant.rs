//! One tenant: its engine instance behind a mutex, and the rules that tie the instance
//! to object storage: the write path (prepare, apply, put-if-absent the WAL segment,
//! acknowledge), recovery (newest snapshot, then every later record, in order), and
//! snapshots.
//!
//! The instance is single-threaded, so one lock serializes every call. Records are
//! applied before their segment is durable, but nobody can observe that state: the lock
//! is held until the PUT returns, and if it fails the library is evicted and reloaded
//! from storage, so memory never runs ahead of storage once the lock is released.
//!
//! Deleting a library writes a `DeleteLibrary` record (the *tombstone*) and then deletes
//! the library's other objects, the tombstone last. Recovery checks the newest segment
//! first: if it ends with the tombstone, the library is gone and its leftovers are
//! deleted, so a crash halfway through a deletion never resurrects the library nor
//! turns into a "gap" at startup.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrwdb_core::{Command, Outcome, Query, QueryResponse, WalOp, WalRecord, codec, storage};
use tokio::sync::{Mutex, MutexGuard};

use crate::component::{CallError, EngineComponent, EngineInstance};
use crate::error::ApiError;
use crate::storage::{ObjectStorage, StorageError};

/// How often a write is retried after losing a WAL position to another writer.
const WRITE_ATTEMPTS: usize = 5;

/// Why a library could not be loaded from storage. Every variant names the object.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("{key}: the log has a gap: expected record {expected}, found {found}")]
    Gap {
        key: String,
        expected: u64,
        found: u64,
    },
    #[error("engine instance: {0}")]
    Instance(String),
}

impl From<RecoveryError> for ApiError {
    fn from(e: RecoveryError) -> Self {
        match e {
            RecoveryError::Storage(e) => ApiError::unavailable(e.to_string()),
            e => ApiError::internal(format!("cannot load state from storage: {e}")),
        }
    }
}

/// Runs a synchronous engine call without stalling the async runtime's other tasks.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

/// The mutable part of a tenant, behind its lock.
#[derive(Debug, Default)]
struct TenantState {
    /// `None` before loading, and after a trap or a failed reload: the next request
    /// rebuilds it from storage.
    instance: Option<EngineInstance>,
    /// Sequence number of each library's newest snapshot in storage.
    snapshots: BTreeMap<String, u64>,
}

/// One tenant's engine instance and storage.
#[derive(Debug)]
pub struct Tenant {
    name: String,
    component: Arc<EngineComponent>,
    storage: ObjectStorage,
    state: Mutex<TenantState>,
    ready: AtomicBool,
}

type Guard<'a> = MutexGuard<'a, TenantState>;

impl Tenant {
    pub fn new(name: &str, component: Arc<EngineComponent>, storage: ObjectStorage) -> Self {
        Tenant {
            name: name.into(),
            component,
            storage,
            state: Mutex::new(TenantState::default()),
            ready: AtomicBool::new(false),
        }
    }

    /// Whether the initial load from storage has finished.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Loads every library from storage into a fresh instance.
    ///
    /// # Errors
    /// The first library that cannot be loaded (corrupt object, gap in the log,
    /// storage failure), naming the object.
    pub async fn load(&self) -> Result<usize, RecoveryError> {
        let mut state = self.state.lock().await;
        let count = self.rebuild(&mut state).await?;
        self.ready.store(true, Ordering::Release);
        Ok(count)
    }

    async fn rebuild(&self, state: &mut TenantState) -> Result<usize, RecoveryError> {
        state.instance = None;
        state.snapshots.clear();
        let mut instance = blocking(|| self.component.instantiate())
            .map_err(|e| RecoveryError::Instance(format!("{e:#}")))?;
        let mut loaded = 0;
        for name in self.storage.library_names(&self.name).await? {
            if arrwdb_core::api::validate_library_name(&name).is_err() {
                tracing::warn!(prefix = %storage::library_prefix(&self.name, &name), "ignoring a prefix that is not a library name");
                continue;
            }
            if let Some(snapshot) = self.recover(&mut instance, &name).await? {
                state.snapshots.insert(name.clone(), snapshot);
            }
            if instance
                .query(&Query::GetLibrary {
                    library: name.clone(),
                })
                .is_ok()
            {
                loaded += 1;
            }
        }
        state.instance = Some(instance);
        Ok(loaded)
    }

    /// Locks the tenant and makes sure its instance is loaded.
    async fn lock(&self) -> Result<Guard<'_>, ApiError> {
        if !self.is_ready() {
            return Err(ApiError::unavailable(
                "the server is still loading its storage",
            ));
        }
        let mut state = self.state.lock().await;
        if state.instance.is_none() {
            tracing::info!(tenant = %self.name, "rebuilding the engine instance from storage");
            if let Err(e) = self.rebuild(&mut state).await {
                tracing::error!(tenant = %self.name, error = %e, "rebuild failed");
                return Err(e.into());
            }
        }
        Ok(state)
    }

    /// Turns a failed call into the client's error, discarding a trapped instance.
    fn fail(&self, state: &mut TenantState, e: CallError) -> ApiError {
        if let CallError::Trapped(message) = &e {
            tracing::error!(tenant = %self.name, %message, "engine instance trapped; discarding it");
            state.instance = None;
        }
        e.into()
    }

    /// Loads one library's snapshot and log into `instance` (which must not hold it).
    /// Returns the sequence number of the snapshot used, if any.
    async fn recover(
        &self,
        instance: &mut EngineInstance,
        library: &str,
    ) -> Result<Option<u64>, RecoveryError> {
        let tenant = &self.name;
        let objects = self.storage.library_objects(tenant, library).await?;
        let trapped = |e: CallError, key: &str| match e {
            CallError::Refused(e) => RecoveryError::Corrupt {
                key: key.into(),
                reason: e.message().into(),
            },
            CallError::Trapped(m) => RecoveryError::Instance(m),
        };

        // The newest segment first: a library that ends in its tombstone is gone.
        let mut newest = None;
        if let Some(&last) = objects.segments.last() {
            let key = storage::wal_key(tenant, library, last);
            let records = self.read_segment(&key).await?;
            if records.last().is_some_and(|r| r.op == WalOp::DeleteLibrary) {
                tracing::info!(%library, "library was deleted; removing its leftover objects");
                self.delete_objects(library, objects.keys, &key).await?;
                return Ok(None);
            }
            newest = Some((last, records));
        }

        let plan = storage::recovery_plan(&objects.snapshots, &objects.segments);
        let mut seq = 0;
        if let Some(snapshot) = plan.snapshot {
            let key = storage::snapshot_key(tenant, library, snapshot);
            let bytes = self.storage.get(&key).await?;
            let name = blocking(|| instance.restore(&bytes)).map_err(|e| trapped(e, &key))?;
            if name != library {
                let _ = blocking(|| instance.evict(&name));
                return Err(RecoveryError::Corrupt {
                    key,
                    reason: format!("holds library `{name}`"),
                });
            }
            seq = match blocking(|| {
                instance.query(&Query::GetLibrary {
                    library: library.into(),
                })
            }) {
                Ok(QueryResponse::Library(info)) => info.seq,
                Ok(_) => return Err(RecoveryError::Instance("unexpected query response".into())),
                Err(e) => return Err(trapped(e, &key)),
            };
            if seq != snapshot {
                return Err(RecoveryError::Corrupt {
                    key,
                    reason: format!(
                        "snapshot named {snapshot} holds the library as of record {seq}"
                    ),
                });
            }
        }
        for first in plan.segments {
            let key = storage::wal_key(tenant, library, first);
            let records = match newest.take() {
                Some((last, records)) if last == first => records,
                other => {
                    newest = other;
                    self.read_segment(&key).await?
                }
            };
            for record in &records {
                if record.seq <= seq {
                    continue;
                }
                if record.library != library {
                    return Err(RecoveryError::Corrupt {
                        key,
                        reason: format!("holds a record of library `{}`", record.library),
                    });
                }
                if record.seq != seq + 1 {
                    return Err(RecoveryError::Gap {
                        key,
                        expected: seq + 1,
                        found: record.seq,
                    });
                }
                blocking(|| instance.apply(record)).map_err(|e| trapped(e, &key))?;
                seq = record.seq;
            }
        }
        if seq == 0 && !objects.keys.is_empty() {
            tracing::warn!(%library, keys = ?objects.keys, "objects without a snapshot or WAL segment; ignoring");
        }
        tracing::debug!(%library, seq, "library loaded");
        Ok(plan.snapshot)
    }

    async fn read_segment(&self, key: &str) -> Result<Vec<WalRecord>, RecoveryError> {
        let bytes = self.storage.get(key).await?;
        codec::decode_wal_segment(&bytes).map_err(|e| RecoveryError::Corrupt {
            key: key.into(),
            reason: e.to_string(),
        })
    }

    /// Deletes a deleted library's objects, its tombstone segment last.
    async fn delete_objects(
        &self,
        library: &str,
        mut keys: Vec<String>,
        tombstone: &str,
    ) -> Result<(), StorageError> {
        keys.retain(|k| k != tombstone);
        keys.push(tombstone.into());
        self.storage.delete_all(&keys).await?;
        tracing::debug!(%library, objects = keys.len(), "deleted library objects");
        Ok(())
    }

    /// Drops `library` from the instance and loads it again from storage. On failure
    /// the whole instance is discarded (the next request rebuilds it).
    async fn reload(&self, state: &mut TenantState, library: &str) -> Result<(), ApiError> {
        let Some(instance) = state.instance.as_mut() else {
            return Ok(());
        };
        let result = match blocking(|| instance.evict(library)) {
            Ok(_) => self.recover(instance, library).await,
            Err(e) => Err(RecoveryError::Instance(format!("{e:?}"))),
        };
        match result {
            Ok(snapshot) => {
                match snapshot {
                    Some(seq) => state.snapshots.insert(library.into(), seq),
                    None => state.snapshots.remove(library),
                };
                Ok(())
            }
            Err(e) => {
                tracing::error!(%library, error = %e, "reload failed; discarding the instance");
                state.instance = None;
                Err(e.into())
            }
        }
    }

    /// Runs `commands` (all on `library`) as one group commit: each is prepared and
    /// applied in order, and the accepted ones are written as ONE WAL segment with
    /// put-if-absent. Returns each command's outcome, in order, once the segment is
    /// durable. Losing the log position to another writer reloads the library and runs
    /// the commands again on the new state (up to [`WRITE_ATTEMPTS`] times, then 409).
    ///
    /// # Errors
    /// 503 `unavailable` when storage fails (the library is reloaded, so an ambiguous
    /// PUT that did land is visible afterwards), 409 `conflict` after repeated lost
    /// races, 500 `internal` after a trap.
    pub async fn write(
        &self,
        library: &str,
        commands: &[Command],
    ) -> Result<Vec<Result<Outcome, ApiError>>, ApiError> {
        let mut state = self.lock().await?;
        self.write_locked(&mut state, library, commands).await
    }

    async fn write_locked(
        &self,
        state: &mut Guard<'_>,
        library: &str,
        commands: &[Command],
    ) -> Result<Vec<Result<Outcome, ApiError>>, ApiError> {
        let mut lost = 0;
        for _ in 0..WRITE_ATTEMPTS {
            let Some(instance) = state.instance.as_mut() else {
                return Err(ApiError::unavailable(
                    "the engine instance is being rebuilt; retry",
                ));
            };
            let mut records = Vec::new();
            let mut outcomes = Vec::with_capacity(commands.len());
            for command in commands {
                let record = match blocking(|| instance.prepare(command)) {
                    Ok(record) => record,
                    Err(CallError::Refused(e)) => {
                        outcomes.push(Err(e));
                        continue;
                    }
                    Err(e) => return Err(self.fail(state, e)),
                };
                match blocking(|| instance.apply(&record)) {
                    Ok(outcome) => {
                        outcomes.push(Ok(outcome));
                        records.push(record);
                    }
                    Err(e) => {
                        // prepare accepted what apply refused: a bug. Memory may hold
                        // records that will never be written, so reload.
                        let e = self.fail(state, e);
                        self.reload(state, library).await?;
                        return Err(ApiError::internal(format!(
                            "the engine refused a record it prepared: {}",
                            e.message()
                        )));
                    }
                }
            }
            let Some(first) = records.first() else {
                return Ok(outcomes);
            };
            let key = storage::wal_key(&self.name, library, first.seq);
            let segment = match codec::encode_wal_segment(&records) {
                Ok(segment) => segment,
                Err(e) => {
                    self.reload(state, library).await?;
                    return Err(e.into());
                }
            };
            match self.storage.put_if_absent(&key, segment).await {
                Ok(()) => {
                    tracing::debug!(%key, records = records.len(), "WAL segment written");
                    return Ok(outcomes);
                }
                Err(StorageError::AlreadyExists { .. }) => {
                    tracing::warn!(%key, "another writer took this WAL position; reloading and retrying");
                    lost = first.seq;
                    self.reload(state, library).await?;
                }
                Err(e) => {
                    tracing::error!(%key, error = %e, "WAL segment write failed; reloading the library");
                    self.reload(state, library).await?;
                    return Err(ApiError::unavailable(format!(
                        "the write was not acknowledged: {e}"
                    )));
                }
            }
        }
        Err(ApiError::conflict(format!(
            "library `{library}`: other writers kept taking WAL position {lost}; retry"
        )))
    }

    /// Deletes a library: logs its tombstone, then deletes its objects.
    ///
    /// # Errors
    /// As [`Tenant::write`]; `not_found` for an unknown library.
    pub async fn delete_library(&self, library: &str) -> Result<(), ApiError> {
        let mut state = self.lock().await?;
        let command = Command::DeleteLibrary {
            library: library.into(),
        };
        let outcome = self.write_locked(&mut state, library, &[command]).await?;
        if let Some(Err(e)) = outcome.into_iter().next() {
            return Err(e);
        }
        state.snapshots.remove(library);
        // The tombstone is durable: the deletion stands even if cleanup fails now (the
        // next startup, or the next create of this name, finishes it).
        let result = match self.storage.library_objects(&self.name, library).await {
            Ok(objects) => {
                let tombstone = objects
                    .segments
                    .last()
                    .map(|&seq| storage::wal_key(&self.name, library, seq))
                    .unwrap_or_default();
                self.delete_objects(library, objects.keys, &tombstone).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(%library, error = %e, "library deleted, but removing its objects failed");
        }
        Ok(())
    }

    /// Answers a read-only query.
    ///
    /// # Errors
    /// The engine's error, or 503 while loading.
    pub async fn query(&self, query: &Query) -> Result<QueryResponse, ApiError> {
        let mut state = self.lock().await?;
        let Some(instance) = state.instance.as_mut() else {
            return Err(ApiError::unavailable(
                "the engine instance is being rebuilt; retry",
            ));
        };
        match blocking(|| instance.query(query)) {
            Ok(response) => Ok(response),
            Err(e) => Err(self.fail(&mut state, e)),
        }
    }

    /// Writes the snapshot of `library` to `snapshots/{seq}.snap` and returns its bytes.
    ///
    /// # Errors
    /// `not_found` for an unknown library, 503 if storage fails.
    pub async fn snapshot(&self, library: &str) -> Result<Vec<u8>, ApiError> {
        let mut state = self.lock().await?;
        self.snapshot_locked(&mut state, library).await
    }

    async fn snapshot_locked(
        &self,
        state: &mut Guard<'_>,
        library: &str,
    ) -> Result<Vec<u8>, ApiError> {
        let Some(instance) = state.instance.as_mut() else {
            return Err(ApiError::unavailable(
                "the engine instance is being rebuilt; retry",
            ));
        };
        let taken = blocking(|| {
            let bytes = instance.snapshot(library)?;
            match instance.query(&Query::GetLibrary {
                library: library.into(),
            })? {
                QueryResponse::Library(info) => Ok((bytes, info.seq)),
                _ => Err(CallError::Refused(ApiError::internal(
                    "unexpected query response",
                ))),
            }
        });
        let (bytes, seq) = match taken {
            Ok(taken) => taken,
            Err(e) => return Err(self.fail(state, e)),
        };
        // The lock stays held through the PUT, so a concurrent delete cannot leave this
        // snapshot behind to resurrect the library.
        let key = storage::snapshot_key(&self.name, library, seq);
        self.storage
            .put(&key, bytes.clone())
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        state.snapshots.insert(library.into(), seq);
        tracing::info!(%key, bytes = bytes.len(), "snapshot written");
        Ok(bytes)
    }

    /// Snapshots every library that changed since its newest snapshot (on shutdown).
    /// Failures are logged: the WAL still holds everything.
    pub async fn snapshot_all(&self) {
        let Ok(mut state) = self.lock().await else {
            return;
        };
        let Some(instance) = state.instance.as_mut() else {
            return;
        };
        let libraries = match blocking(|| instance.query(&Query::ListLibraries)) {
            Ok(QueryResponse::Libraries(list)) => list.libraries,
            _ => return,
        };
        for info in libraries {
            if state
                .snapshots
                .get(&info.name)
                .is_some_and(|&s| s >= info.seq)
            {
                continue;
            }
            if let Err(e) = self.snapshot_locked(&mut state, &info.name).await {
                tracing::error!(library = %info.name, error = %e.message(), "shutdown snapshot failed");
            }
        }
    }
}
