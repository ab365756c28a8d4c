//! One tenant: its engine instance behind a mutex, and the rules that tie the instance
//! to object storage — the group-committed write path, writer epochs and fencing,
//! snapshots published through the manifest, garbage collection, and (for a read
//! replica) following another writer's log. docs/durability.md explains the design.
//!
//! Write path: requests queue for a committer task, which waits at most the flush
//! interval after the first queued command (or until the record / byte threshold),
//! then prepares and applies every command, writes each library's records as ONE WAL
//! segment with put-if-absent and only then answers every request of the batch. The
//! instance lock is held from the first apply until the PUT returns, and a failed PUT
//! reloads the library from storage, so nobody observes state that is not durable.
//!
//! Epochs: on load a writer claims every library by creating the next manifest with
//! `epoch + 1` (put-if-absent). A writer that loses that race, or later finds a manifest
//! of a higher epoch (checked with one GET beside every WAL PUT, and after a lost WAL
//! race), is *fenced*: it refuses writes to that library with 503 `unavailable`,
//! naming the winner. Put-if-absent of `wal/N` alone already makes sure no log
//! position is written twice; the epoch decides who may write at all and who compacts.
//!
//! Deleting a library writes a `DeleteLibrary` record (the *tombstone*) and then deletes
//! the library's other objects, the tombstone last (see [`crate::log`]).
//!
//! Reads: with `--read-instances N > 1` queries run on N read instances fed from the
//! writer instance's committed changes (see [`readers`]), not under the tenant lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use arrwdb_core::storage::{self, MANIFEST_VERSION, Manifest};
use arrwdb_core::{Command, Outcome, Query, QueryResponse, codec};
use tokio::sync::{Mutex, MutexGuard, mpsc, oneshot};

use crate::component::{CallError, EngineComponent, EngineInstance};
use crate::error::ApiError;
use crate::log::{self, Loaded, RecoveryError, Tail, blocking};
use crate::native_build;
use crate::storage::{ObjectStorage, StorageError};

mod readers;
use readers::{Plan, ReadOp, Readers};

/// How often a write is retried after losing a WAL position to another writer.
const WRITE_ATTEMPTS: usize = 5;

/// Writer: how often a read checks a library's log for segments of other writers.
const FOREIGN_CHECK_INTERVAL: Duration = Duration::from_secs(1);

impl From<RecoveryError> for ApiError {
    fn from(e: RecoveryError) -> Self {
        match e {
            RecoveryError::Storage(e) => ApiError::unavailable(e.to_string()),
            e => ApiError::internal(format!("cannot load state from storage: {e}")),
        }
    }
}

/// Knobs of the durability machinery (command-line flags of `arrwdb serve`).
#[derive(Debug, Clone)]
pub struct DurabilityConfig {
    /// Longest a queued write waits for others to share its WAL segment.
    pub flush_interval: Duration,
    /// A batch is flushed at once when it holds this many commands…
    pub flush_max_records: usize,
    /// …or about this many bytes of commands.
    pub flush_max_bytes: usize,
    /// A library gets a new snapshot once this many records follow its last one…
    pub snapshot_every_records: u64,
    /// …or this many bytes of WAL segments.
    pub snapshot_every_bytes: u64,
    /// Superseded snapshots, covered segments and old manifests are deleted only when
    /// older than this (readers loading an older manifest keep working).
    pub gc_grace: Duration,
    /// How often a replica polls the manifest and the WAL.
    pub poll_interval: Duration,
    /// Engine instances answering queries (`--read-instances`): 1 = the writer
    /// instance answers them too; N > 1 = N read instances besides it.
    pub read_instances: usize,
}

impl Default for DurabilityConfig {
    fn default() -> Self {
        DurabilityConfig {
            flush_interval: Duration::from_millis(5),
            flush_max_records: 1024,
            flush_max_bytes: 8 << 20,
            snapshot_every_records: 10_000,
            snapshot_every_bytes: 64 << 20,
            gc_grace: Duration::from_secs(600),
            poll_interval: Duration::from_millis(100),
            read_instances: 1,
        }
    }
}

/// What this server is for the libraries in its storage.
#[derive(Debug, Clone)]
pub enum Role {
    /// Claims every library and accepts writes. `id` is `hostname:pid:uuid`.
    Writer { id: String },
    /// Read-only: follows the writer of `source`.
    Replica { source: String },
}

/// Durable bookkeeping of one library.
#[derive(Debug, Default, Clone)]
struct LibraryLog {
    /// Our epoch; 0 until we have claimed the library.
    epoch: u64,
    /// Newest manifest number we know of, and its epoch and writer.
    manifest: u64,
    manifest_epoch: u64,
    writer: String,
    /// The snapshot the newest manifest names.
    snapshot: Option<u64>,
    /// Another writer took the library over.
    fenced: bool,
    /// Records and bytes written since the snapshot (compaction trigger).
    tail_records: u64,
    tail_bytes: u64,
    /// Replicas: last applied record and last segment read whole.
    seq: u64,
    last_segment: Option<u64>,
}

impl LibraryLog {
    fn from_loaded(loaded: &Loaded) -> Self {
        let (manifest_epoch, writer) = loaded
            .manifest
            .as_ref()
            .map(|(_, m)| (m.epoch, m.writer.clone()))
            .unwrap_or_default();
        LibraryLog {
            epoch: 0,
            manifest: loaded.newest_manifest,
            manifest_epoch,
            writer,
            snapshot: loaded.snapshot,
            fenced: false,
            tail_records: loaded.tail_records,
            tail_bytes: loaded.tail_bytes,
            seq: loaded.seq,
            last_segment: loaded.last_segment,
        }
    }
}

/// The mutable part of a tenant, behind its lock.
#[derive(Debug, Default)]
struct TenantState {
    /// `None` before loading, and after a trap or a failed reload: the next request
    /// rebuilds it from storage.
    instance: Option<EngineInstance>,
    libraries: BTreeMap<String, LibraryLog>,
    /// Writer: when each library was last checked for foreign WAL segments.
    foreign_checked: BTreeMap<String, Instant>,
}

/// A queued write.
struct Pending {
    library: String,
    commands: Vec<Command>,
    reply: oneshot::Sender<WriteResult>,
}

type WriteResult = Result<Vec<Result<Outcome, ApiError>>, ApiError>;

/// One tenant's engine instance and storage.
#[derive(Debug)]
pub struct Tenant {
    name: String,
    component: Arc<EngineComponent>,
    storage: ObjectStorage,
    role: Role,
    config: DurabilityConfig,
    state: Mutex<TenantState>,
    ready: AtomicBool,
    warnings: StdMutex<Vec<String>>,
    queue: mpsc::UnboundedSender<PendingBox>,
    /// Garbage collections in flight, awaited by [`Tenant::snapshot_all`] so a shutdown
    /// does not cut them off mid-way.
    background: StdMutex<tokio::task::JoinSet<()>>,
    /// The read instances (`None` with `--read-instances 1`).
    readers: Option<Readers>,
}

/// `Pending` is not `Debug` (it holds a sender); this wrapper is.
struct PendingBox(Pending);

impl std::fmt::Debug for PendingBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pending({})", self.0.library)
    }
}

type Guard<'a> = MutexGuard<'a, TenantState>;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Rough size of a command in a segment (for the byte threshold of a batch).
fn command_bytes(command: &Command) -> usize {
    match command {
        Command::UpsertDocument { document, .. } => {
            64 + document.id.len()
                + document
                    .chunks
                    .iter()
                    .map(|c| 32 + c.id.len() + c.text.len() + c.embedding.len() * 4)
                    .sum::<usize>()
        }
        _ => 64,
    }
}

impl Tenant {
    /// Creates the tenant and starts its background tasks (the committer; for a writer
    /// the compactor, for a replica the poller). Call inside the tokio runtime.
    pub fn start(
        name: &str,
        component: Arc<EngineComponent>,
        storage: ObjectStorage,
        role: Role,
        config: DurabilityConfig,
    ) -> Arc<Self> {
        let (queue, rx) = mpsc::unbounded_channel();
        let readers = (config.read_instances > 1)
            .then(|| Readers::new(component.clone(), config.read_instances));
        let tenant = Arc::new(Tenant {
            name: name.into(),
            readers,
            component,
            storage,
            role,
            config,
            state: Mutex::new(TenantState::default()),
            ready: AtomicBool::new(false),
            warnings: StdMutex::new(Vec::new()),
            queue,
            background: StdMutex::new(tokio::task::JoinSet::new()),
        });
        tokio::spawn(tenant.clone().committer(rx));
        crate::metrics::register_tenant(&tenant);
        match tenant.role {
            Role::Writer { .. } => {
                tokio::spawn(tenant.clone().compactor());
            }
            Role::Replica { .. } => {
                tokio::spawn(tenant.clone().poller());
            }
        }
        tenant
    }

    /// Whether the initial load from storage has finished.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The tenant's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes of linear memory the writer's engine instance holds (`None` while it is
    /// being rebuilt from storage).
    pub async fn instance_memory(&self) -> Option<usize> {
        let state = self.state.lock().await;
        state.instance.as_ref().map(EngineInstance::memory_bytes)
    }

    /// `/ready`'s body: role, and the problems recovery reported (torn tail, skipped
    /// snapshot) and fenced libraries.
    pub async fn status(&self) -> serde_json::Value {
        let warnings = self.warnings.lock().map(|w| w.clone()).unwrap_or_default();
        let state = self.state.lock().await;
        let fenced: Vec<&String> = state
            .libraries
            .iter()
            .filter(|(_, l)| l.fenced)
            .map(|(name, _)| name)
            .collect();
        let role = match &self.role {
            Role::Writer { id } => serde_json::json!({"writer": id}),
            Role::Replica { source } => serde_json::json!({"replica_of": source}),
        };
        serde_json::json!({
            "status": "ready",
            "role": role,
            "warnings": warnings,
            "fenced": fenced,
        })
    }

    fn warn(&self, warnings: &[String]) {
        if let Ok(mut all) = self.warnings.lock() {
            for w in warnings {
                if !all.contains(w) {
                    all.push(w.clone());
                }
            }
        }
    }

    fn is_writer(&self) -> bool {
        matches!(self.role, Role::Writer { .. })
    }

    fn writer_id(&self) -> &str {
        match &self.role {
            Role::Writer { id } => id,
            Role::Replica { .. } => "",
        }
    }

    /// Loads every library from storage into a fresh instance (a writer also claims
    /// each one).
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
        let mut instance = blocking(|| self.component.instantiate())
            .map_err(|e| RecoveryError::Instance(format!("{e:#}")))?;
        let mut loaded = 0;
        let mut present = Vec::new();
        for name in self.storage.library_names(&self.name).await? {
            if arrwdb_core::api::validate_library_name(&name).is_err() {
                tracing::warn!(prefix = %storage::library_prefix(&self.name, &name), "ignoring a prefix that is not a library name");
                continue;
            }
            if self.load_library(state, &mut instance, &name).await? {
                loaded += 1;
                present.push(name);
            }
        }
        state.libraries.retain(|name, _| present.contains(name));
        state.instance = Some(instance);
        if let Some(readers) = &self.readers {
            readers.reset();
        }
        Ok(loaded)
    }

    /// Loads one library into `instance` and updates its bookkeeping; a writer claims
    /// it if it has not yet. Returns whether the library exists.
    async fn load_library(
        &self,
        state: &mut TenantState,
        instance: &mut EngineInstance,
        library: &str,
    ) -> Result<bool, RecoveryError> {
        let loaded = log::recover(
            &self.storage,
            instance,
            &self.name,
            library,
            self.is_writer(),
        )
        .await?;
        self.warn(&loaded.warnings);
        if loaded.deleted || loaded.seq == 0 {
            state.libraries.remove(library);
            return Ok(false);
        }
        let mut log = LibraryLog::from_loaded(&loaded);
        if let Some(previous) = state.libraries.get(library) {
            if previous.fenced || (previous.epoch > 0 && log.manifest_epoch > previous.epoch) {
                log.fenced = true;
            } else {
                log.epoch = previous.epoch;
            }
        }
        if self.is_writer() && log.epoch == 0 && !log.fenced {
            match self.claim(&mut log, library, loaded.seq + 1).await {
                // Each claim adds a manifest: collect the old ones (after the grace).
                Ok(()) => self.spawn_gc(library, log.snapshot, log.manifest),
                Err(e) => {
                    tracing::warn!(%library, error = %e.message(), "could not claim the library");
                }
            }
        }
        state.libraries.insert(library.to_string(), log);
        Ok(true)
    }

    /// Claims `library`: creates manifest `n + 1` with `epoch + 1`. Losing the race
    /// fences us.
    async fn claim(
        &self,
        log: &mut LibraryLog,
        library: &str,
        next_seq: u64,
    ) -> Result<(), ApiError> {
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            library: library.into(),
            epoch: log.manifest_epoch + 1,
            writer: self.writer_id().into(),
            snapshot: log.snapshot,
            wal_start: log.snapshot.map_or(1, |s| s + 1),
            next_seq,
            created_at_ms: now_ms(),
        };
        let n = log.manifest + 1;
        match self.create_manifest(library, n, &manifest).await {
            Ok(()) => {
                tracing::info!(%library, epoch = manifest.epoch, manifest = n, "claimed the library");
                log.epoch = manifest.epoch;
                log.manifest = n;
                log.manifest_epoch = manifest.epoch;
                log.writer = manifest.writer;
                Ok(())
            }
            Err(StorageError::AlreadyExists { .. }) => {
                self.refresh_manifest(log, library).await;
                if log.writer == manifest.writer && log.manifest_epoch == manifest.epoch {
                    // Our own earlier attempt landed (its answer was lost).
                    log.epoch = manifest.epoch;
                    return Ok(());
                }
                log.fenced = true;
                log.epoch = 0;
                Err(self.fenced_error(library, log))
            }
            Err(e) => Err(ApiError::unavailable(format!(
                "library `{library}`: cannot claim the writer epoch: {e}"
            ))),
        }
    }

    /// Publishes a manifest of our epoch (a new snapshot). A manifest of a higher
    /// epoch in the way fences us.
    async fn publish(
        &self,
        log: &mut LibraryLog,
        library: &str,
        snapshot: u64,
    ) -> Result<(), ApiError> {
        for _ in 0..3 {
            let manifest = Manifest {
                version: MANIFEST_VERSION,
                library: library.into(),
                epoch: log.epoch,
                writer: self.writer_id().into(),
                snapshot: Some(snapshot),
                wal_start: snapshot + 1,
                next_seq: snapshot + 1,
                created_at_ms: now_ms(),
            };
            let n = log.manifest + 1;
            match self.create_manifest(library, n, &manifest).await {
                Ok(()) => {
                    log.manifest = n;
                    log.snapshot = Some(snapshot);
                    return Ok(());
                }
                Err(StorageError::AlreadyExists { .. }) => {
                    self.refresh_manifest(log, library).await;
                    if log.manifest_epoch > log.epoch {
                        log.fenced = true;
                        return Err(self.fenced_error(library, log));
                    }
                }
                Err(e) => {
                    crate::metrics::metrics().storage_error("manifest_put");
                    return Err(ApiError::unavailable(e.to_string()));
                }
            }
        }
        Err(ApiError::unavailable(format!(
            "library `{library}`: could not publish the manifest"
        )))
    }

    async fn create_manifest(
        &self,
        library: &str,
        n: u64,
        manifest: &Manifest,
    ) -> Result<(), StorageError> {
        let key = storage::manifest_key(&self.name, library, n);
        let bytes = manifest.to_json().map_err(|e| StorageError::Failed {
            key: key.clone(),
            source: object_store::Error::Generic {
                store: "manifest",
                source: e.to_string().into(),
            },
        })?;
        self.storage.put_if_absent(&key, bytes).await?;
        // The hint is advisory: a failure only makes HTTP-only readers probe longer.
        let hint = storage::manifest_latest_key(&self.name, library);
        if let Err(e) = self.storage.put(&hint, n.to_string().into_bytes()).await {
            tracing::debug!(%hint, error = %e, "could not update the LATEST hint");
        }
        Ok(())
    }

    /// Reads the newest manifest into `log` (errors are logged and ignored).
    async fn refresh_manifest(&self, log: &mut LibraryLog, library: &str) {
        let mut warnings = Vec::new();
        let newest = match self.storage.library_objects(&self.name, library).await {
            Ok(objects) => {
                log::newest_manifest(
                    &self.storage,
                    &self.name,
                    library,
                    &objects.manifests,
                    &mut warnings,
                )
                .await
            }
            Err(e) => Err(e),
        };
        match newest {
            Ok(Some((n, m))) => {
                log.manifest = log.manifest.max(n);
                log.manifest_epoch = m.epoch;
                log.writer = m.writer;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(%library, error = %e, "could not read the newest manifest"),
        }
    }

    /// Checks (one GET of the next manifest number) whether another writer claimed
    /// the library. Storage errors count as "not fenced": safety never depends on this
    /// check (put-if-absent does), only how soon a deposed writer stops.
    async fn check_fence(&self, library: &str, known: u64) -> Option<Manifest> {
        let key = storage::manifest_key(&self.name, library, known + 1);
        match self.storage.get(&key).await {
            Ok(bytes) => Manifest::from_json(&bytes).ok(),
            Err(_) => None,
        }
    }

    fn fenced_error(&self, library: &str, log: &LibraryLog) -> ApiError {
        ApiError::unavailable(format!(
            "library `{library}` is fenced: writer `{}` claimed it with epoch {}; this server no longer accepts writes to it",
            log.writer, log.manifest_epoch
        ))
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

    /// Turns a failed call into the client's error, discarding a trapped instance, and
    /// one whose call was given up (its state may hold records of the batch that will
    /// not be logged).
    fn fail(&self, state: &mut TenantState, e: CallError) -> ApiError {
        if let CallError::Trapped(message) | CallError::Stopped(message) = &e {
            tracing::error!(tenant = %self.name, %message, "engine call failed; discarding the instance");
            state.instance = None;
        }
        e.into()
    }

    /// Drops `library` from the instance and loads it again from storage. On failure
    /// the whole instance is discarded (the next request rebuilds it).
    async fn reload(&self, state: &mut TenantState, library: &str) -> Result<(), ApiError> {
        let Some(mut instance) = state.instance.take() else {
            return Ok(());
        };
        let result = match blocking(|| instance.evict(library)) {
            Ok(_) => self.load_library(state, &mut instance, library).await,
            Err(e) => Err(RecoveryError::Instance(format!("{e:?}"))),
        };
        match result {
            Ok(exists) => {
                self.publish_library(&mut instance, library, exists);
                state.instance = Some(instance);
                Ok(())
            }
            Err(e) => {
                tracing::error!(%library, error = %e, "reload failed; discarding the instance");
                Err(e.into())
            }
        }
    }

    /// Runs `commands` (all on `library`) through the group commit: they share a WAL
    /// segment with whatever else arrives within the flush interval. Returns each
    /// command's outcome, in order, once the segment is durable.
    ///
    /// # Errors
    /// 503 `unavailable` when storage fails (the library is reloaded, so an ambiguous
    /// PUT that did land is visible afterwards), when this server is fenced or a
    /// replica; 409 `conflict` after repeated lost races; 500 `internal` after a trap.
    pub async fn write(&self, library: &str, commands: Vec<Command>) -> WriteResult {
        let mut commands = commands;
        crate::embed::before_write(self, library, &mut commands).await?;
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            library: library.into(),
            commands,
            reply,
        };
        if self.queue.send(PendingBox(pending)).is_err() {
            return Err(ApiError::unavailable("the server is shutting down"));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(ApiError::internal("the committer stopped")))
    }

    /// The committer: collects a batch, then commits it.
    async fn committer(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<PendingBox>) {
        while let Some(PendingBox(first)) = rx.recv().await {
            let deadline = tokio::time::Instant::now() + self.config.flush_interval;
            let mut records = first.commands.len();
            let mut bytes: usize = first.commands.iter().map(command_bytes).sum();
            let mut batch = vec![first];
            while records < self.config.flush_max_records && bytes < self.config.flush_max_bytes {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(PendingBox(next))) => {
                        records += next.commands.len();
                        bytes += next.commands.iter().map(command_bytes).sum::<usize>();
                        batch.push(next);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            self.commit(batch).await;
        }
    }

    async fn commit(&self, batch: Vec<Pending>) {
        let started = Instant::now();
        let mut state = match self.lock().await {
            Ok(state) => state,
            Err(e) => {
                for p in batch {
                    let _ = p.reply.send(Err(e.clone()));
                }
                return;
            }
        };
        // Group by library, keeping arrival order inside each library.
        let mut groups: Vec<(String, Vec<Pending>)> = Vec::new();
        for p in batch {
            match groups.iter_mut().find(|(l, _)| *l == p.library) {
                Some((_, ps)) => ps.push(p),
                None => groups.push((p.library.clone(), vec![p])),
            }
        }
        let requests: usize = groups.iter().map(|(_, ps)| ps.len()).sum();
        for (library, pendings) in groups {
            let mut commands = Vec::new();
            let mut pendings: Vec<(usize, oneshot::Sender<WriteResult>)> = pendings
                .into_iter()
                .map(|p| {
                    let n = p.commands.len();
                    commands.extend(p.commands);
                    (n, p.reply)
                })
                .collect();
            match self.write_locked(&mut state, &library, &commands).await {
                Ok(outcomes) => {
                    let mut outcomes = outcomes.into_iter();
                    for (n, reply) in pendings.drain(..) {
                        let mine: Vec<_> = outcomes.by_ref().take(n).collect();
                        let _ = reply.send(Ok(mine));
                    }
                }
                Err(e) => {
                    for (_, reply) in pendings.drain(..) {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
        }
        tracing::debug!(
            requests,
            us = started.elapsed().as_micros() as u64,
            "group commit"
        );
    }

    /// Refuses writes on a replica or a fenced library; claims a library that exists
    /// but is not claimed yet.
    async fn check_writable(&self, state: &mut Guard<'_>, library: &str) -> Result<(), ApiError> {
        if let Role::Replica { source } = &self.role {
            let writer = state
                .libraries
                .get(library)
                .map(|l| l.writer.clone())
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "unknown".into());
            return Err(ApiError::unavailable(format!(
                "this server is a read replica of {source}: send writes to the writer `{writer}`"
            )));
        }
        let Some(log) = state.libraries.get(library) else {
            return Ok(());
        };
        if log.fenced {
            return Err(self.fenced_error(library, log));
        }
        if log.epoch == 0 {
            let mut log = log.clone();
            let next = log.seq + 1;
            let result = self.claim(&mut log, library, next).await;
            state.libraries.insert(library.into(), log);
            result?;
        }
        Ok(())
    }

    async fn write_locked(
        &self,
        state: &mut Guard<'_>,
        library: &str,
        commands: &[Command],
    ) -> WriteResult {
        self.check_writable(state, library).await?;
        let mut lost = 0;
        for _ in 0..WRITE_ATTEMPTS {
            let Some(instance) = state.instance.as_mut() else {
                return Err(ApiError::unavailable(
                    "the engine instance is being rebuilt; retry",
                ));
            };
            let mut records = Vec::new();
            let mut outcomes = Vec::with_capacity(commands.len());
            // A full index rebuild: the readers get the library's new snapshot instead
            // of the records, so they do not rebuild the index again on one thread.
            let mut rebuilt = false;
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
                        rebuilt |= native_build::rebuilds_index(&record);
                        outcomes.push(Ok(outcome));
                        records.push(record);
                    }
                    Err(CallError::Stopped(message)) if records.is_empty() => {
                        // Given up with nothing of the batch applied: the instance is
                        // as it was, so it stays.
                        tracing::warn!(tenant = %self.name, %library, %message, "write given up");
                        return Err(ApiError::internal(message));
                    }
                    Err(e @ (CallError::Trapped(_) | CallError::Stopped(_))) => {
                        // Past the deadline or the memory limit: the instance is gone
                        // (rebuilt from storage on the next request), nothing was logged.
                        return Err(self.fail(state, e));
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
            let (Some(first), Some(last)) = (records.first(), records.last()) else {
                return Ok(outcomes);
            };
            let (first_seq, last_seq) = (first.seq, last.seq);
            // The records are applied: whatever happens to this snapshot, they are
            // logged below. Without it (the batch deleted the library, or the instance
            // trapped and is discarded) the readers replay the records themselves.
            let image = match (rebuilt, &self.readers) {
                (true, Some(_)) => match blocking(|| instance.snapshot(library)) {
                    Ok(bytes) => Some(bytes),
                    Err(e) => {
                        drop(self.fail(state, e));
                        None
                    }
                },
                _ => None,
            };
            let key = storage::wal_key(&self.name, library, first_seq);
            let segment = match codec::encode_wal_segment(&records) {
                Ok(segment) => segment,
                Err(e) => {
                    self.reload(state, library).await?;
                    return Err(e.into());
                }
            };
            let size = segment.len() as u64;
            let known = state.libraries.get(library).map(|l| l.manifest);
            let fence = async {
                match known {
                    Some(known) => self.check_fence(library, known).await,
                    None => None,
                }
            };
            let flush_started = Instant::now();
            let (put, fence) = tokio::join!(self.storage.put_if_absent(&key, segment), fence);
            match put {
                Ok(()) => {
                    crate::metrics::metrics().wal_flushed(records.len(), flush_started.elapsed());
                    tracing::debug!(%key, records = records.len(), "WAL segment written");
                    crate::events::bus().committed(&self.name, library, &records);
                    if let Some(readers) = &self.readers {
                        readers.push(match image {
                            Some(snapshot) => ReadOp::Library {
                                library: library.into(),
                                snapshot: Some(snapshot),
                            },
                            None => ReadOp::Records(records),
                        });
                    }
                    // A newer writer claimed the library while this segment was in
                    // flight: it is durable and the new writer will read it, but this
                    // server answers 503 from now on, this batch included, so exactly
                    // one writer acknowledges writes.
                    self.after_commit(state, library, first_seq, last_seq, size, fence)
                        .await?;
                    return Ok(outcomes);
                }
                Err(StorageError::AlreadyExists { .. }) => {
                    lost = first_seq;
                    // Reloading re-reads the newest manifest: a higher epoch fences us.
                    self.reload(state, library).await?;
                    if let Some(log) = state.libraries.get(library)
                        && log.fenced
                    {
                        tracing::warn!(%library, %key, "lost a WAL position to a newer writer: fenced");
                        return Err(self.fenced_error(library, log));
                    }
                    tracing::warn!(%key, "another writer took this WAL position; reloading and retrying");
                }
                Err(e) => {
                    crate::metrics::metrics().storage_error("wal_put");
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

    /// Bookkeeping after a durable segment: compaction counters, the manifest of a new
    /// library, and the fencing check's verdict (an error when fenced).
    async fn after_commit(
        &self,
        state: &mut Guard<'_>,
        library: &str,
        first_seq: u64,
        last_seq: u64,
        size: u64,
        fence: Option<Manifest>,
    ) -> Result<(), ApiError> {
        let mut log = state.libraries.get(library).cloned().unwrap_or_default();
        if first_seq == 1 {
            // A new library (or a new one under a deleted name): start its manifests.
            log = LibraryLog::default();
        }
        log.seq = last_seq;
        log.tail_records += last_seq + 1 - first_seq;
        log.tail_bytes += size;
        if let Some(m) = fence
            && log.epoch > 0
            && m.epoch > log.epoch
        {
            tracing::warn!(%library, writer = %m.writer, epoch = m.epoch, "another writer claimed the library: fenced");
            log.manifest += 1;
            log.manifest_epoch = m.epoch;
            log.writer = m.writer;
            log.fenced = true;
            log.epoch = 0;
            let e = self.fenced_error(library, &log);
            state.libraries.insert(library.into(), log);
            return Err(e);
        }
        if first_seq == 1 {
            // Leftovers of a deleted library of this name may hold manifests.
            self.refresh_manifest(&mut log, library).await;
        }
        if first_seq == 1
            && let Err(e) = self.claim(&mut log, library, last_seq + 1).await
        {
            tracing::warn!(%library, error = %e.message(), "created the library but could not claim it yet");
        }
        state.libraries.insert(library.into(), log);
        Ok(())
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
        state.libraries.remove(library);
        // The tombstone is durable: the deletion stands even if cleanup fails now (the
        // next startup, or the next create of this name, finishes it).
        let result = match self.storage.library_objects(&self.name, library).await {
            Ok(objects) => {
                let tombstone = log::tombstone_key(&self.name, library, &objects);
                log::delete_library_objects(&self.storage, library, objects.keys, &tombstone).await
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
        let embedded = crate::embed::before_query(self, query).await?;
        let query = embedded.as_ref().unwrap_or(query);
        if self.is_writer() {
            self.pick_up_foreign_segments(query).await;
        }
        if let Some(readers) = &self.readers
            && readers.enabled()
        {
            return self.query_reader(readers, query).await;
        }
        self.query_primary(query).await
    }

    /// Answers `query` on the writer instance.
    async fn query_primary(&self, query: &Query) -> Result<QueryResponse, ApiError> {
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

    /// Answers `query` on a free read instance, after it applied every op the primary
    /// published (so it sees every acknowledged write).
    async fn query_reader(
        &self,
        readers: &Readers,
        query: &Query,
    ) -> Result<QueryResponse, ApiError> {
        if !self.is_ready() {
            return Err(ApiError::unavailable(
                "the server is still loading its storage",
            ));
        }
        let mut reader = readers.acquire().await?;
        // New reader: image, rebuild, catch up. More rounds only if writes outran it.
        let mut failure = None;
        for _ in 0..6 {
            let step = match reader.plan() {
                Plan::CatchUp(ops, end) => match reader.catch_up(&ops, end) {
                    Ok(()) => return reader.call(|instance| instance.query(query)),
                    Err(e) => Err(e),
                },
                Plan::Rebuild(image) => reader.rebuild(&image),
                Plan::NeedImage => self.take_image(readers).await,
            };
            if let Err(e) = step {
                failure = Some(e);
                break;
            }
        }
        // Read instances are an optimization: if they cannot be built (e.g. the image
        // does not fit the memory limit), the writer instance answers for a while.
        drop(reader);
        let why = failure.map_or_else(
            || "writes outran it".to_string(),
            |e| e.message().to_string(),
        );
        tracing::warn!(tenant = %self.name, reason = %why, "read instances unavailable; the writer instance answers reads for 60 s");
        readers.disable_for(Duration::from_secs(60));
        self.query_primary(query).await
    }

    /// Publishes the primary's snapshot of every library as the readers' image.
    async fn take_image(&self, readers: &Readers) -> Result<(), ApiError> {
        let mut state = self.lock().await?;
        let libraries: Vec<String> = state.libraries.keys().cloned().collect();
        let Some(instance) = state.instance.as_mut() else {
            return Err(ApiError::unavailable(
                "the engine instance is being rebuilt; retry",
            ));
        };
        let taken = blocking(|| {
            libraries
                .iter()
                .map(|library| instance.snapshot(library))
                .collect::<Result<Vec<_>, _>>()
        });
        match taken {
            Ok(snapshots) => {
                let bytes: usize = snapshots.iter().map(Vec::len).sum();
                tracing::debug!(tenant = %self.name, libraries = snapshots.len(), bytes, "image for the read instances");
                readers.set_image(readers.position(), snapshots);
                Ok(())
            }
            Err(e) => Err(self.fail(&mut state, e)),
        }
    }

    /// Tells the readers that `library` of the primary (`instance`, tenant lock held)
    /// changed other than by a committed segment: they load its snapshot. If the
    /// snapshot cannot be taken, every reader is rebuilt instead.
    fn publish_library(&self, instance: &mut EngineInstance, library: &str, exists: bool) {
        let Some(readers) = &self.readers else {
            return;
        };
        let snapshot = if exists {
            match blocking(|| instance.snapshot(library)) {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    tracing::warn!(%library, error = ?e, "no snapshot for the read instances; rebuilding them");
                    readers.reset();
                    return;
                }
            }
        } else {
            None
        };
        readers.push(ReadOp::Library {
            library: library.into(),
            snapshot,
        });
    }

    /// Writer: before a read of a library, at most once per [`FOREIGN_CHECK_INTERVAL`],
    /// looks for a WAL segment after our last record (one HEAD of `wal/{seq+1}`, without
    /// the instance lock). Edge workers append segments to the same log; finding one
    /// reloads the library (snapshot + whole tail, as after a lost WAL race), so reads
    /// see their writes within about a second instead of only after our next write.
    async fn pick_up_foreign_segments(&self, query: &Query) {
        let library = match query {
            Query::GetLibrary { library }
            | Query::GetDocument { library, .. }
            | Query::Search { library, .. }
            | Query::ListDocuments { library, .. } => library,
            _ => return,
        };
        if !self.is_ready() {
            return;
        }
        let seq = {
            // A busy lock means a write is in flight: skip (the next read checks), so
            // reads on read instances never wait for a write.
            let Ok(mut state) = self.state.try_lock() else {
                return;
            };
            let now = Instant::now();
            let due = state
                .foreign_checked
                .get(library)
                .is_none_or(|t| now.duration_since(*t) >= FOREIGN_CHECK_INTERVAL);
            match state.libraries.get(library) {
                Some(log) if due => {
                    let seq = log.seq;
                    state.foreign_checked.insert(library.clone(), now);
                    seq
                }
                _ => return,
            }
        };
        let next = storage::wal_key(&self.name, library, seq + 1);
        if !matches!(self.storage.exists(&next).await, Ok(true)) {
            return;
        }
        let Ok(mut state) = self.lock().await else {
            return;
        };
        // Our own write may have taken that position meanwhile.
        if state.libraries.get(library).map(|l| l.seq) != Some(seq) {
            return;
        }
        tracing::info!(%library, key = %next, "found WAL segments written by another writer; reloading");
        if let Err(e) = self.reload(&mut state, library).await {
            tracing::warn!(%library, error = %e.message(), "could not pick up foreign WAL segments");
        }
    }

    /// Returns the snapshot bytes of `library`. A writer holding the library's epoch
    /// also writes them to `snapshots/{seq}.snap` and publishes them in a manifest.
    ///
    /// # Errors
    /// `not_found` for an unknown library, 503 if storage fails or the library is
    /// fenced.
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
        if !self.is_writer() {
            return Ok(bytes);
        }
        self.check_writable(state, library).await?;
        let Some(mut log) = state.libraries.get(library).cloned() else {
            return Ok(bytes);
        };
        // The lock stays held through the PUT, so a concurrent delete cannot leave this
        // snapshot behind to resurrect the library.
        let key = storage::snapshot_key(&self.name, library, seq);
        self.storage.put(&key, bytes.clone()).await.map_err(|e| {
            crate::metrics::metrics().storage_error("snapshot_put");
            ApiError::unavailable(e.to_string())
        })?;
        let published = self.publish(&mut log, library, seq).await;
        if published.is_ok() {
            log.tail_records = 0;
            log.tail_bytes = 0;
        }
        state.libraries.insert(library.into(), log.clone());
        published?;
        tracing::info!(%key, bytes = bytes.len(), "snapshot written and published");
        crate::metrics::metrics().snapshots.inc();
        crate::events::bus().snapshot_created(&self.name, library, seq, bytes.len());
        self.spawn_gc(library, Some(seq), log.manifest);
        Ok(bytes)
    }

    /// Collects garbage of `library` in the background (see [`collect_garbage`]).
    fn spawn_gc(&self, library: &str, snapshot: Option<u64>, newest_manifest: u64) {
        let (storage, tenant, library, grace) = (
            self.storage.clone(),
            self.name.clone(),
            library.to_string(),
            self.config.gc_grace,
        );
        let Ok(mut background) = self.background.lock() else {
            return;
        };
        // Reap the finished ones, so the set only holds what is running.
        while background.try_join_next().is_some() {}
        background.spawn(async move {
            if let Err(e) = collect_garbage(
                &storage,
                &tenant,
                &library,
                snapshot,
                newest_manifest,
                grace,
            )
            .await
            {
                tracing::warn!(%library, error = %e, "garbage collection failed");
            }
        });
    }

    /// Snapshots every library that changed since its newest snapshot (on shutdown).
    /// Failures are logged: the WAL still holds everything.
    pub async fn snapshot_all(&self) {
        if !self.is_writer() {
            return;
        }
        let Ok(mut state) = self.lock().await else {
            return;
        };
        let changed: Vec<String> = state
            .libraries
            .iter()
            .filter(|(_, l)| !l.fenced && l.epoch > 0 && l.tail_records > 0)
            .map(|(name, _)| name.clone())
            .collect();
        for library in changed {
            if let Err(e) = self.snapshot_locked(&mut state, &library).await {
                tracing::error!(%library, error = %e.message(), "shutdown snapshot failed");
            }
        }
        drop(state);
        // The collections these snapshots started (and any still running) finish
        // before the process exits, instead of failing half-way when the runtime stops.
        let mut running = match self.background.lock() {
            Ok(mut set) => std::mem::take(&mut *set),
            Err(_) => return,
        };
        while running.join_next().await.is_some() {}
    }

    /// Writer background task: snapshots a library once its WAL tail passes the
    /// record or byte threshold.
    async fn compactor(self: Arc<Self>) {
        let every = Duration::from_millis(250);
        loop {
            tokio::time::sleep(every).await;
            if !self.is_ready() {
                continue;
            }
            let due: Vec<String> = {
                let state = self.state.lock().await;
                state
                    .libraries
                    .iter()
                    .filter(|(_, l)| {
                        !l.fenced
                            && l.epoch > 0
                            && (l.tail_records >= self.config.snapshot_every_records
                                || l.tail_bytes >= self.config.snapshot_every_bytes)
                    })
                    .map(|(name, _)| name.clone())
                    .collect()
            };
            for library in due {
                let Ok(mut state) = self.lock().await else {
                    break;
                };
                match self.snapshot_locked(&mut state, &library).await {
                    Ok(bytes) => {
                        tracing::info!(%library, bytes = bytes.len(), "background snapshot")
                    }
                    Err(e) => {
                        tracing::warn!(%library, error = %e.message(), "background snapshot failed")
                    }
                }
            }
        }
    }

    /// Replica background task: follows the writer's manifests and WAL.
    async fn poller(self: Arc<Self>) {
        let mut round: u64 = 0;
        loop {
            tokio::time::sleep(self.config.poll_interval).await;
            if !self.is_ready() {
                continue;
            }
            // Every 10th round also lists (new libraries, deleted ones, compaction
            // that overtook us, a newer manifest); the others cost one GET per library.
            let full = round.is_multiple_of(10);
            round += 1;
            if let Err(e) = self.poll_once(full).await {
                tracing::warn!(error = %e.message(), "replica poll failed");
            }
        }
    }

    /// One replica round: storage I/O without the instance lock, then a short locked
    /// apply, so reads are not stalled by the poll.
    async fn poll_once(&self, full: bool) -> Result<(), ApiError> {
        let unavailable = |e: StorageError| ApiError::unavailable(e.to_string());
        let known: Vec<(String, LibraryLog)> = {
            let state = self.state.lock().await;
            state
                .libraries
                .iter()
                .map(|(name, log)| (name.clone(), log.clone()))
                .collect()
        };
        let names = if full {
            Some(
                self.storage
                    .library_names(&self.name)
                    .await
                    .map_err(unavailable)?,
            )
        } else {
            None
        };
        let mut fetched = Vec::new();
        for (library, log) in &known {
            let tail = log::fetch_tail(&self.storage, &self.name, library, log.seq)
                .await
                .map_err(unavailable)?;
            let mut log = log.clone();
            // Not after new records: segments the writer added since the fetch would
            // look like a gap and reload the whole library on every full round.
            let reload = full
                && (names.as_ref().is_some_and(|n| !n.contains(library))
                    || (!tail.has_records()
                        && log::needs_reload(
                            &self.storage,
                            &self.name,
                            library,
                            log.seq,
                            log.last_segment,
                        )
                        .await
                        .map_err(unavailable)?));
            if full {
                self.follow_manifest(&mut log, library).await;
            }
            fetched.push((library.clone(), log, tail, reload));
        }

        let mut state = self.lock().await?;
        let Some(mut instance) = state.instance.take() else {
            return Ok(());
        };
        let mut result = Ok(());
        for (library, mut log, tail, reload) in fetched {
            let outcome = if reload {
                Ok(Tail::Reload)
            } else {
                log::apply_tail(&mut instance, &library, log.seq, log.last_segment, tail)
            };
            match outcome {
                Ok(Tail::Advanced { seq, last_segment }) => {
                    crate::metrics::metrics().replica_lag(&library, seq.saturating_sub(log.seq));
                    if seq != log.seq {
                        tracing::debug!(%library, from = log.seq, to = seq, "replica advanced");
                        self.publish_library(&mut instance, &library, true);
                    }
                    log.seq = seq;
                    log.last_segment = last_segment;
                    state.libraries.insert(library, log);
                }
                Ok(Tail::Deleted) => {
                    state.libraries.remove(&library);
                    self.publish_library(&mut instance, &library, false);
                }
                Ok(Tail::Reload) => {
                    tracing::info!(%library, "replica reloading the library from its manifest");
                    let _ = blocking(|| instance.evict(&library));
                    state.libraries.remove(&library);
                    match self.load_library(&mut state, &mut instance, &library).await {
                        Ok(exists) => self.publish_library(&mut instance, &library, exists),
                        Err(e) => {
                            result = Err(ApiError::from(e));
                            if let Some(readers) = &self.readers {
                                readers.reset();
                            }
                        }
                    }
                }
                Err(e) => result = Err(ApiError::from(e)),
            }
        }
        // Libraries that appeared since the last full round.
        for library in names.iter().flatten() {
            if state.libraries.contains_key(library)
                || arrwdb_core::api::validate_library_name(library).is_err()
            {
                continue;
            }
            match self.load_library(&mut state, &mut instance, library).await {
                Ok(exists) => self.publish_library(&mut instance, library, exists),
                Err(e) => result = Err(ApiError::from(e)),
            }
        }
        state.instance = Some(instance);
        result
    }

    /// Picks up manifests newer than the one we know (for the writer's name).
    async fn follow_manifest(&self, log: &mut LibraryLog, library: &str) {
        let dir = format!("{}/manifest", storage::library_prefix(&self.name, library));
        let offset = storage::manifest_key(&self.name, library, log.manifest);
        if let Ok(keys) = self.storage.list_after(&dir, &offset).await
            && keys.iter().any(|k| {
                k.rsplit('/')
                    .next()
                    .and_then(storage::parse_manifest_name)
                    .is_some()
            })
        {
            self.refresh_manifest(log, library).await;
        }
    }
}

/// Deletes what the newest manifest no longer needs, once older than `grace`: the
/// snapshots before the fallback one, the segments the fallback covers, and manifests
/// before the newest. Never anything the newest manifest references.
pub async fn collect_garbage(
    storage: &ObjectStorage,
    tenant: &str,
    library: &str,
    snapshot: Option<u64>,
    newest_manifest: u64,
    grace: Duration,
) -> Result<usize, StorageError> {
    let objects = storage.library_objects(tenant, library).await?;
    let plan = storage::gc_plan(snapshot, &objects.snapshots, &objects.segments);
    let now = now_ms() as i64;
    let grace_ms = grace.as_millis() as i64;
    let old = |key: &str| {
        objects
            .modified_ms
            .get(key)
            .is_some_and(|&t| now.saturating_sub(t) >= grace_ms)
    };
    let fallback = objects
        .snapshots
        .iter()
        .copied()
        .filter(|&s| snapshot.is_some_and(|c| s < c))
        .max();
    let fallback_old = fallback.is_some_and(|s| old(&storage::snapshot_key(tenant, library, s)));
    let mut doomed = Vec::new();
    if fallback_old {
        doomed.extend(
            plan.snapshots
                .iter()
                .map(|&s| storage::snapshot_key(tenant, library, s)),
        );
        doomed.extend(
            plan.segments
                .iter()
                .map(|&s| storage::wal_key(tenant, library, s)),
        );
    }
    doomed.extend(
        objects
            .manifests
            .iter()
            .filter(|&&n| n < newest_manifest)
            .map(|&n| storage::manifest_key(tenant, library, n)),
    );
    doomed.retain(|k| old(k));
    storage.delete_all(&doomed).await?;
    if !doomed.is_empty() {
        tracing::info!(%library, objects = doomed.len(), "garbage collected");
    }
    Ok(doomed.len())
}
