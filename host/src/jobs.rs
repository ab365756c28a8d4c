//! Background jobs (`/v1/jobs`): long operations — imports, exports, bulk deletes,
//! index rebuilds, optimize, compaction, backup and restore — run by a bounded pool of
//! workers from a bounded queue, with progress, cancellation and a record that
//! survives a restart. docs/jobs.md is the user-facing description.
//!
//! Key choices:
//! - One in-memory table of every job (`(tenant, id)` → record), written through to
//!   the object store as `_system/jobs/{tenant}/{id}.json`. `_system` can never be a
//!   tenant name (auth.rs), so no tenant's library can collide with a job record, and
//!   the tenant is part of the key, so a lookup with another tenant's id is simply a
//!   miss (404, never 403).
//! - The queue is a bounded FIFO of pending job keys beside the table, under the same
//!   lock: a slot is reserved before the record is written (a full queue answers 429
//!   without leaving a record behind), and cancelling a pending job frees its slot at
//!   once.
//! - Restart: jobs that were `pending` or `running` when the process died are marked
//!   `failed` with "interrupted by restart" on the next start. Resuming would need the
//!   input of inline imports to be persisted and every job type to be idempotent after
//!   a partial run; failing explicitly keeps what was committed committed and lets the
//!   client decide (the record keeps the progress reached).
//! - Cancellation is cooperative (a `CancellationToken` checked between batches and
//!   during retry back-off): what was committed stays committed.
//! - Retries: a step that fails with 503 `unavailable` (storage, fencing, an instance
//!   being rebuilt) is retried with exponential back-off; client errors fail the job
//!   at once. The back-off is a five-line loop, so no crate is pulled in for it.
//! - URLs a job reads or writes must lie under an operator-allowed prefix and never in
//!   the server's own storage ([`url`]).

mod input;
mod run;
mod url;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrwdb_core::api::{self, ErrorDetail, UpsertDocumentRequest};
use arrwdb_core::{IndexConfig, Metadata};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::auth::{Auth, Caller, Scope};
use crate::error::ApiError;
use crate::events::Event;
use crate::http::AppState;
use crate::storage::ObjectStorage;

pub use url::Allowlist;

/// Prefix of the job records (`_system/jobs/{tenant}/{id}.json`).
const JOBS_DIR: &str = "_system/jobs";
/// Version of the job record.
const RECORD_VERSION: u32 = 1;
/// Default documents per write of an import (and ids per delete).
const DEFAULT_BATCH: usize = 500;
/// Progress is written to storage at most this often (it is in memory at once).
const PERSIST_PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Longest a cancel request waits for a running job to stop before answering.
const CANCEL_WAIT: Duration = Duration::from_secs(10);
/// Longest a request waits for the records to load at startup before answering 503.
const LOAD_WAIT: Duration = Duration::from_secs(10);
/// Most jobs in one page of `GET /v1/jobs`.
const MAX_LIST_LIMIT: usize = 1000;

/// Flags of the job runner (flattened into `arrwdb serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct JobsArgs {
    /// Background jobs that run at the same time.
    #[arg(
        long = "jobs-workers",
        env = "ARRWDB_JOBS_WORKERS",
        default_value_t = 2
    )]
    pub jobs_workers: usize,
    /// Jobs that may wait for a worker; a submission beyond that answers 429.
    #[arg(long = "jobs-queue", env = "ARRWDB_JOBS_QUEUE", default_value_t = 64)]
    pub jobs_queue: usize,
    /// URL prefix that import, export, backup and restore jobs may read and write
    /// (repeatable; s3://bucket/dir/, gs://, az://, file:///abs/dir/). `{tenant}` in
    /// a prefix is replaced by the caller's tenant. Default: none (URL jobs refused).
    #[arg(
        long = "jobs-allow-url",
        env = "ARRWDB_JOBS_ALLOW_URL",
        value_delimiter = ','
    )]
    pub jobs_allow_url: Vec<String>,
    /// Retries of a job step that failed with a transient storage error (503).
    #[arg(
        long = "jobs-max-retries",
        env = "ARRWDB_JOBS_MAX_RETRIES",
        default_value_t = 5
    )]
    pub jobs_max_retries: u32,
    /// First retry delay in milliseconds (doubling each retry, at most 30 s).
    #[arg(
        long = "jobs-retry-base-ms",
        env = "ARRWDB_JOBS_RETRY_BASE_MS",
        default_value_t = 200
    )]
    pub jobs_retry_base_ms: u64,
    /// Finished job records are deleted after this many hours.
    #[arg(
        long = "jobs-retention-hours",
        env = "ARRWDB_JOBS_RETENTION_HOURS",
        default_value_t = 168
    )]
    pub jobs_retention_hours: u64,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    /// Whether the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobType {
    Import,
    Export,
    Delete,
    Rebuild,
    Optimize,
    Compact,
    Backup,
    Restore,
}

impl JobType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Import => "import",
            Self::Export => "export",
            Self::Delete => "delete",
            Self::Rebuild => "rebuild",
            Self::Optimize => "optimize",
            Self::Compact => "compact",
            Self::Backup => "backup",
            Self::Restore => "restore",
        }
    }
}

/// How far a job got: `done` of `total` units (documents, ids, libraries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub done: u64,
    pub total: Option<u64>,
}

/// A job as stored and as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    /// [`RECORD_VERSION`].
    pub version: u32,
    pub id: String,
    pub tenant: String,
    #[serde(rename = "type")]
    pub kind: JobType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
    pub status: JobStatus,
    /// The request's parameters (without inline documents).
    pub params: serde_json::Value,
    pub progress: Progress,
    /// Retries taken after transient errors.
    #[serde(default)]
    pub retries: u32,
    pub created_at_ms: u64,
    #[serde(default)]
    pub started_at_ms: Option<u64>,
    #[serde(default)]
    pub finished_at_ms: Option<u64>,
    #[serde(default)]
    pub error: Option<ErrorDetail>,
    #[serde(default)]
    pub result: Option<serde_json::Value>,
}

/// Format of an export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// One document per line, in the shape an import reads.
    #[default]
    Ndjson,
    /// The library's snapshot bytes (what `POST /v1/libraries/{lib}/snapshot` returns).
    Snapshot,
}

fn yes() -> bool {
    true
}

/// `POST /v1/jobs`: the job to run, by `type`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum JobSpec {
    /// Upsert documents from the request (`documents`) or from a URL (`source`: NDJSON
    /// or a JSON array).
    Import {
        library: String,
        #[serde(default, skip_serializing)]
        documents: Option<Vec<UpsertDocumentRequest>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch_size: Option<usize>,
    },
    /// Write the library to `destination` as NDJSON (with or without embeddings) or
    /// as snapshot bytes.
    Export {
        library: String,
        destination: String,
        #[serde(default)]
        format: ExportFormat,
        #[serde(default = "yes")]
        embeddings: bool,
    },
    /// Delete documents by ids (in batches) or by a metadata filter.
    Delete {
        library: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ids: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filter: Option<Metadata>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch_size: Option<usize>,
    },
    /// Rebuild the index with a new configuration.
    Rebuild { library: String, index: IndexConfig },
    /// Compact tombstones and rebuild the index.
    Optimize { library: String },
    /// Write and publish a snapshot; superseded objects are then collected (after the
    /// server's GC grace period).
    Compact { library: String },
    /// Copy every library of the caller's tenant to `destination` (admin).
    Backup { destination: String },
    /// Copy every library of the caller's tenant from `source` into this server (admin).
    Restore { source: String },
}

impl JobSpec {
    fn kind(&self) -> JobType {
        match self {
            Self::Import { .. } => JobType::Import,
            Self::Export { .. } => JobType::Export,
            Self::Delete { .. } => JobType::Delete,
            Self::Rebuild { .. } => JobType::Rebuild,
            Self::Optimize { .. } => JobType::Optimize,
            Self::Compact { .. } => JobType::Compact,
            Self::Backup { .. } => JobType::Backup,
            Self::Restore { .. } => JobType::Restore,
        }
    }

    fn library(&self) -> Option<&str> {
        match self {
            Self::Import { library, .. }
            | Self::Export { library, .. }
            | Self::Delete { library, .. }
            | Self::Rebuild { library, .. }
            | Self::Optimize { library }
            | Self::Compact { library } => Some(library),
            Self::Backup { .. } | Self::Restore { .. } => None,
        }
    }
}

fn check_batch(batch_size: Option<usize>) -> Result<(), ApiError> {
    match batch_size {
        Some(n) if n == 0 || n > api::MAX_BATCH_DOCUMENTS => Err(ApiError::invalid(format!(
            "batch_size must be between 1 and {}, got {n}",
            api::MAX_BATCH_DOCUMENTS
        ))),
        _ => Ok(()),
    }
}

/// `(tenant, id)`.
type Key = (String, String);

/// One job in memory.
#[derive(Debug)]
struct Entry {
    record: JobRecord,
    cancel: CancellationToken,
    /// The request, until the job finishes (inline documents live here).
    spec: Option<Arc<JobSpec>>,
}

/// The table of jobs and the queue of pending ones.
#[derive(Debug, Default)]
struct Table {
    jobs: BTreeMap<Key, Entry>,
    /// Pending jobs in submission order.
    queue: VecDeque<Key>,
    /// Queue slots held by submissions whose record is being written.
    reserved: usize,
}

/// A queue slot held while a submission writes its record.
struct Reservation<'a> {
    jobs: &'a Jobs,
    held: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.held {
            let mut table = self.jobs.lock();
            table.reserved = table.reserved.saturating_sub(1);
        }
    }
}

/// The job queue and its workers.
#[derive(Debug)]
pub struct Jobs {
    args: JobsArgs,
    auth: Arc<Auth>,
    storage: ObjectStorage,
    allow: Allowlist,
    table: Mutex<Table>,
    /// Wakes a worker when a job is queued.
    wake: Notify,
    /// Records loaded (and interrupted jobs settled): the API may answer.
    loaded: watch::Sender<bool>,
    /// A read replica neither runs nor records jobs.
    replica: AtomicBool,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn record_key(tenant: &str, id: &str) -> String {
    format!("{JOBS_DIR}/{tenant}/{id}.json")
}

/// `job_` + 12 hex digits of the creation time in ms + 12 random hex digits: ids sort
/// by creation time, which the listing's cursor relies on.
fn new_job_id(created_ms: u64) -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("job_{created_ms:012x}{}", &random[..12])
}

fn publish(record: &JobRecord, kind: &str) {
    let mut event = Event::new(&record.tenant, kind, record.library.as_deref());
    event.ids = vec![record.id.clone()];
    event.data = serde_json::json!({
        "type": record.kind,
        "status": record.status,
        "progress": record.progress,
        "error": record.error,
        "result": record.result,
    });
    crate::events::bus().publish(event);
}

fn count(kind: JobType, status: &str) {
    crate::metrics::metrics()
        .jobs
        .get_or_create(&crate::metrics::JobLabels {
            r#type: kind.as_str().into(),
            status: status.into(),
        })
        .inc();
}

impl Jobs {
    /// Loads persisted job records and starts the workers. Call inside the runtime.
    pub fn start(args: &JobsArgs, auth: Arc<Auth>, storage: ObjectStorage) -> Arc<Self> {
        let root = storage
            .description()
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        let allow = Allowlist::new(&args.jobs_allow_url, &root);
        let jobs = Arc::new(Jobs {
            args: args.clone(),
            auth,
            storage,
            allow,
            table: Mutex::new(Table::default()),
            wake: Notify::new(),
            loaded: watch::Sender::new(false),
            replica: AtomicBool::new(false),
        });
        tokio::spawn(jobs.clone().init());
        jobs
    }

    /// Startup: learns the role, loads the records, settles interrupted jobs, then
    /// starts the workers and the retention sweep.
    async fn init(self: Arc<Self>) {
        let status = match self
            .auth
            .tenants
            .get(arrwdb_core::storage::DEFAULT_TENANT)
            .await
        {
            Ok(tenant) => tenant.status().await,
            Err(_) => serde_json::Value::Null,
        };
        let replica = status["role"].get("replica_of").is_some();
        self.replica.store(replica, Ordering::Release);
        let mut attempt: u32 = 0;
        let records = loop {
            match self.load_records().await {
                Ok(records) => break records,
                Err(e) => {
                    attempt = attempt.saturating_add(1);
                    tracing::warn!(error = %e, attempt, "loading job records failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let mut interrupted = Vec::new();
        {
            let mut table = self.lock();
            for mut record in records {
                if !replica && !record.status.is_final() {
                    let was = record.status.as_str();
                    record.status = JobStatus::Failed;
                    record.finished_at_ms = Some(now_ms());
                    record.error = Some(ErrorDetail {
                        kind: "unavailable".into(),
                        message: format!(
                            "interrupted by restart: the server stopped while the job was {was}; what it committed stays committed (see progress); submit it again to finish"
                        ),
                    });
                    interrupted.push(record.clone());
                }
                table.jobs.insert(
                    (record.tenant.clone(), record.id.clone()),
                    Entry {
                        record,
                        cancel: CancellationToken::new(),
                        spec: None,
                    },
                );
            }
        }
        for record in &interrupted {
            tracing::warn!(tenant = %record.tenant, job = %record.id, "job interrupted by a restart: marked failed");
            self.persist_final(record).await;
            count(record.kind, "failed");
            publish(record, "job.failed");
        }
        self.loaded.send_replace(true);
        if replica {
            tracing::info!("read replica: jobs are listed but not run");
            return;
        }
        for _ in 0..self.args.jobs_workers.max(1) {
            tokio::spawn(self.clone().worker());
        }
        tokio::spawn(self.clone().sweeper());
    }

    async fn load_records(&self) -> anyhow::Result<Vec<JobRecord>> {
        let mut records = Vec::new();
        for key in self.storage.list_after(JOBS_DIR, "").await? {
            if !key.ends_with(".json") {
                continue;
            }
            let bytes = match self.storage.get(&key).await {
                Ok(bytes) => bytes,
                Err(crate::storage::StorageError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            match serde_json::from_slice::<JobRecord>(&bytes) {
                Ok(record) if record.version == RECORD_VERSION => records.push(record),
                Ok(record) => {
                    tracing::warn!(%key, version = record.version, "skipping a job record of an unknown version");
                }
                Err(e) => tracing::warn!(%key, error = %e, "skipping an undecodable job record"),
            }
        }
        Ok(records)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A poisoned lock only means a panic elsewhere; the table itself stays valid.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits (up to [`LOAD_WAIT`]) until the records are loaded.
    async fn ready(&self) -> Result<(), ApiError> {
        let mut loaded = self.loaded.subscribe();
        match tokio::time::timeout(LOAD_WAIT, loaded.wait_for(|done| *done)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ApiError::unavailable(
                "the job queue is still loading its records; retry",
            )),
        }
    }

    async fn persist(&self, record: &JobRecord) -> Result<(), ApiError> {
        let bytes = serde_json::to_vec(record).map_err(|e| ApiError::internal(e.to_string()))?;
        self.storage
            .put(&record_key(&record.tenant, &record.id), bytes)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))
    }

    /// Writes a final record, retrying a few times (the in-memory record is already
    /// final; a lost write only shows as "interrupted by restart" after a restart).
    async fn persist_final(&self, record: &JobRecord) {
        let mut delay = Duration::from_millis(100);
        for attempt in 0..5 {
            match self.persist(record).await {
                Ok(()) => return,
                Err(e) if attempt == 4 => {
                    tracing::error!(job = %record.id, error = %e.message(), "could not store the final job record");
                }
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    }

    fn queued_gauge(&self) {
        let pending = self.lock().queue.len();
        crate::metrics::metrics().jobs_queued.set(pending as i64);
    }

    /// Validates and enqueues a job of `caller`'s tenant.
    async fn submit(&self, caller: &Caller, spec: JobSpec) -> Result<JobRecord, ApiError> {
        self.ready().await?;
        if self.replica.load(Ordering::Acquire) {
            return Err(ApiError::unavailable(
                "this server is a read replica: submit jobs to the writer",
            ));
        }
        self.validate(caller, &spec)?;
        {
            let mut table = self.lock();
            let capacity = self.args.jobs_queue.max(1);
            if table.queue.len() + table.reserved >= capacity {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("the job queue is full ({capacity} jobs waiting); retry later"),
                ));
            }
            table.reserved += 1;
        }
        // Gives the slot back if this request is dropped (client gone) mid-write.
        let mut reservation = Reservation {
            jobs: self,
            held: true,
        };
        let created = now_ms();
        let record = JobRecord {
            version: RECORD_VERSION,
            id: new_job_id(created),
            tenant: caller.tenant_name.clone(),
            kind: spec.kind(),
            library: spec.library().map(str::to_string),
            status: JobStatus::Pending,
            params: serde_json::to_value(&spec).unwrap_or(serde_json::Value::Null),
            progress: Progress {
                done: 0,
                total: match &spec {
                    JobSpec::Import {
                        documents: Some(d), ..
                    } => Some(d.len() as u64),
                    JobSpec::Delete { ids: Some(ids), .. } => Some(ids.len() as u64),
                    _ => None,
                },
            },
            retries: 0,
            created_at_ms: created,
            started_at_ms: None,
            finished_at_ms: None,
            error: None,
            result: None,
        };
        // Stored before it is queued: a crash after the 202 still lists it.
        let stored = self.persist(&record).await;
        {
            let mut table = self.lock();
            table.reserved = table.reserved.saturating_sub(1);
            reservation.held = false;
            stored?;
            let key = (record.tenant.clone(), record.id.clone());
            table.jobs.insert(
                key.clone(),
                Entry {
                    record: record.clone(),
                    cancel: CancellationToken::new(),
                    spec: Some(Arc::new(spec)),
                },
            );
            table.queue.push_back(key);
        }
        self.wake.notify_one();
        self.queued_gauge();
        tracing::info!(tenant = %record.tenant, job = %record.id, r#type = record.kind.as_str(), "job queued");
        Ok(record)
    }

    fn validate(&self, caller: &Caller, spec: &JobSpec) -> Result<(), ApiError> {
        if let Some(library) = spec.library() {
            api::validate_library_name(library)?;
        }
        let tenant = caller.tenant_name.as_str();
        match spec {
            JobSpec::Import {
                documents,
                source,
                batch_size,
                ..
            } => {
                check_batch(*batch_size)?;
                match (documents, source) {
                    (Some(d), None) if d.is_empty() => {
                        return Err(ApiError::invalid("`documents` is empty"));
                    }
                    (Some(_), None) => {}
                    (None, Some(url)) => {
                        self.allow.file(url, tenant)?;
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            "an import needs exactly one of `documents` and `source`",
                        ));
                    }
                }
            }
            JobSpec::Export { destination, .. } => {
                self.allow.file(destination, tenant)?;
            }
            JobSpec::Delete {
                ids,
                filter,
                batch_size,
                ..
            } => {
                check_batch(*batch_size)?;
                match (ids, filter) {
                    (Some(ids), None) if ids.is_empty() => {
                        return Err(ApiError::invalid("`ids` is empty"));
                    }
                    (Some(_), None) | (None, Some(_)) => {}
                    _ => {
                        return Err(ApiError::invalid(
                            "a delete job needs exactly one of `ids` and `filter`",
                        ));
                    }
                }
            }
            JobSpec::Backup { destination: url } | JobSpec::Restore { source: url } => {
                if !caller.scopes.contains(&Scope::Admin) {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        "backup and restore jobs need an API key with the `admin` scope",
                    ));
                }
                self.allow.dir(url, tenant)?;
            }
            JobSpec::Rebuild { .. } | JobSpec::Optimize { .. } | JobSpec::Compact { .. } => {}
        }
        Ok(())
    }

    /// A read replica: replaces `tenant`'s records by what the writer has stored now.
    async fn refresh(&self, tenant: &str) -> Result<(), ApiError> {
        if !self.replica.load(Ordering::Acquire) {
            return Ok(());
        }
        let unavailable = |e: crate::storage::StorageError| ApiError::unavailable(e.to_string());
        let mut records = Vec::new();
        let dir = format!("{JOBS_DIR}/{tenant}");
        for key in self
            .storage
            .list_after(&dir, "")
            .await
            .map_err(unavailable)?
        {
            match self.storage.get(&key).await {
                Ok(bytes) => {
                    if let Ok(record) = serde_json::from_slice::<JobRecord>(&bytes)
                        && record.version == RECORD_VERSION
                        && record.tenant == tenant
                    {
                        records.push(record);
                    }
                }
                Err(crate::storage::StorageError::NotFound { .. }) => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        let mut table = self.lock();
        table.jobs.retain(|(t, _), _| t != tenant);
        for record in records {
            table.jobs.insert(
                (record.tenant.clone(), record.id.clone()),
                Entry {
                    record,
                    cancel: CancellationToken::new(),
                    spec: None,
                },
            );
        }
        Ok(())
    }

    fn get(&self, tenant: &str, id: &str) -> Result<JobRecord, ApiError> {
        self.lock()
            .jobs
            .get(&(tenant.to_string(), id.to_string()))
            .map(|e| e.record.clone())
            .ok_or_else(|| not_found(id))
    }

    /// Cancels a pending job at once, a running one at its next cancellation point
    /// (waiting up to [`CANCEL_WAIT`] for it to stop).
    async fn cancel(&self, tenant: &str, id: &str) -> Result<JobRecord, ApiError> {
        if self.replica.load(Ordering::Acquire) {
            return Err(ApiError::unavailable(
                "this server is a read replica: cancel jobs on the writer",
            ));
        }
        let key = (tenant.to_string(), id.to_string());
        let cancelled = {
            let mut table = self.lock();
            let entry = table.jobs.get_mut(&key).ok_or_else(|| not_found(id))?;
            match entry.record.status {
                JobStatus::Pending => {
                    entry.record.status = JobStatus::Cancelled;
                    entry.record.finished_at_ms = Some(now_ms());
                    entry.spec = None;
                    entry.cancel.cancel();
                    let record = entry.record.clone();
                    table.queue.retain(|k| *k != key);
                    Some(record)
                }
                JobStatus::Running => {
                    entry.cancel.cancel();
                    None
                }
                JobStatus::Cancelled => return Ok(entry.record.clone()),
                status => {
                    return Err(ApiError::conflict(format!(
                        "job `{id}` is already {}",
                        status.as_str()
                    )));
                }
            }
        };
        if let Some(record) = cancelled {
            self.persist_final(&record).await;
            count(record.kind, "cancelled");
            publish(&record, "job.cancelled");
            self.queued_gauge();
            return Ok(record);
        }
        let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
        loop {
            let record = self.get(tenant, id)?;
            if record.status.is_final() || tokio::time::Instant::now() >= deadline {
                return Ok(record);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn list(&self, tenant: &str, filter: &ListParams) -> Result<JobList, ApiError> {
        let limit = filter.limit.unwrap_or(100);
        if limit == 0 || limit > MAX_LIST_LIMIT {
            return Err(ApiError::invalid(format!(
                "limit must be between 1 and {MAX_LIST_LIMIT}, got {limit}"
            )));
        }
        let table = self.lock();
        let mut page: Vec<JobRecord> = Vec::new();
        let mut more = false;
        let mine: Vec<&JobRecord> = table
            .jobs
            .range((tenant.to_string(), String::new())..)
            .take_while(|((t, _), _)| t == tenant)
            .map(|(_, e)| &e.record)
            .collect();
        for record in mine.into_iter().rev() {
            if filter.cursor.as_ref().is_some_and(|c| record.id >= *c)
                || filter.status.is_some_and(|s| s != record.status)
                || filter.r#type.is_some_and(|t| t != record.kind)
                || filter
                    .library
                    .as_ref()
                    .is_some_and(|l| Some(l) != record.library.as_ref())
            {
                continue;
            }
            if page.len() == limit {
                more = true;
                break;
            }
            page.push(record.clone());
        }
        let next_cursor = if more {
            page.last().map(|r| r.id.clone())
        } else {
            None
        };
        Ok(JobList {
            jobs: page,
            next_cursor,
        })
    }

    async fn worker(self: Arc<Self>) {
        loop {
            // Registered before looking, so a job queued in between still wakes us.
            let woken = self.wake.notified();
            let next = self.lock().queue.pop_front();
            match next {
                Some(key) => self.clone().run(key).await,
                None => woken.await,
            }
        }
    }

    /// Runs one job from `pending` to its final status.
    async fn run(self: Arc<Self>, key: Key) {
        let started = now_ms();
        let claimed = {
            let mut table = self.lock();
            match table.jobs.get_mut(&key) {
                Some(entry) if entry.record.status == JobStatus::Pending => {
                    entry.record.status = JobStatus::Running;
                    entry.record.started_at_ms = Some(started);
                    entry
                        .spec
                        .clone()
                        .map(|spec| (spec, entry.cancel.clone(), entry.record.clone()))
                }
                _ => None,
            }
        };
        self.queued_gauge();
        let Some((spec, cancel, record)) = claimed else {
            return;
        };
        let metrics = crate::metrics::metrics();
        metrics.jobs_running.inc();
        count(record.kind, "started");
        publish(&record, "job.started");
        if let Err(e) = self.persist(&record).await {
            tracing::warn!(job = %record.id, error = %e.message(), "could not store the running job record");
        }
        let clock = std::time::Instant::now();
        let outcome = match self.auth.tenants.get(&key.0).await {
            Ok(tenant) => {
                let mut ctx = run::JobCtx::new(self.clone(), key.clone(), tenant, cancel);
                run::execute(&mut ctx, &spec).await
            }
            Err(e) => Err(run::JobError::Failed(e)),
        };
        let record = {
            let mut table = self.lock();
            let Some(entry) = table.jobs.get_mut(&key) else {
                metrics.jobs_running.dec();
                return;
            };
            entry.spec = None;
            entry.record.finished_at_ms = Some(now_ms());
            match outcome {
                Ok(result) => {
                    entry.record.status = JobStatus::Completed;
                    entry.record.result = Some(result);
                }
                Err(run::JobError::Cancelled) => entry.record.status = JobStatus::Cancelled,
                Err(run::JobError::Failed(e)) => {
                    entry.record.status = JobStatus::Failed;
                    entry.record.error = Some(e.body.error);
                }
            }
            entry.record.clone()
        };
        metrics.jobs_running.dec();
        let status = record.status.as_str();
        count(record.kind, status);
        metrics.job_finished(record.kind.as_str(), status, clock.elapsed());
        tracing::info!(tenant = %record.tenant, job = %record.id, status, "job finished");
        self.persist_final(&record).await;
        publish(&record, &format!("job.{status}"));
    }

    /// Updates a running job's progress in memory; the caller decides when to store it.
    fn set_progress(&self, key: &Key, progress: Progress, retries: u32) -> Option<JobRecord> {
        let mut table = self.lock();
        let entry = table.jobs.get_mut(key)?;
        entry.record.progress = progress;
        entry.record.retries = retries;
        Some(entry.record.clone())
    }

    /// Deletes finished records older than the retention, once an hour.
    async fn sweeper(self: Arc<Self>) {
        let retention = self.args.jobs_retention_hours.saturating_mul(3_600_000);
        loop {
            let cutoff = now_ms().saturating_sub(retention);
            let old: Vec<Key> = self
                .lock()
                .jobs
                .iter()
                .filter(|(_, e)| {
                    e.record.status.is_final()
                        && e.record.finished_at_ms.is_some_and(|t| t < cutoff)
                })
                .map(|(k, _)| k.clone())
                .collect();
            if !old.is_empty() {
                let keys: Vec<String> = old.iter().map(|(t, id)| record_key(t, id)).collect();
                match self.storage.delete_all(&keys).await {
                    Ok(()) => {
                        let mut table = self.lock();
                        for key in &old {
                            table.jobs.remove(key);
                        }
                        tracing::info!(records = old.len(), "deleted expired job records");
                    }
                    Err(e) => tracing::warn!(error = %e, "could not delete expired job records"),
                }
            }
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("job `{id}` does not exist"))
}

/// `GET /v1/jobs` query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    status: Option<JobStatus>,
    r#type: Option<JobType>,
    library: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// One page of jobs, newest first; `next_cursor` is absent on the last page.
#[derive(Debug, Serialize)]
struct JobList {
    jobs: Vec<JobRecord>,
    next_cursor: Option<String>,
}

/// Query parameters of an NDJSON import (`POST /v1/jobs?type=import&library=l`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NdjsonParams {
    r#type: JobType,
    library: String,
    batch_size: Option<usize>,
}

type Reply = Result<Response, ApiError>;

fn is_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| {
            v.starts_with("application/x-ndjson")
                || v.starts_with("application/ndjson")
                || v.starts_with("application/jsonl")
        })
}

async fn submit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    query: Result<Query<NdjsonParams>, QueryRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> Reply {
    let raw = raw.map_err(|r| ApiError::new(r.status(), "invalid", r.body_text()))?;
    let spec = if is_ndjson(&headers) {
        let Query(params) = query.map_err(|r| {
            ApiError::invalid(format!(
                "an NDJSON body needs the query parameters `type=import&library=NAME` (and optionally `batch_size`): {}",
                r.body_text()
            ))
        })?;
        if params.r#type != JobType::Import {
            return Err(ApiError::invalid(
                "an NDJSON body is only accepted by `type=import`",
            ));
        }
        JobSpec::Import {
            library: params.library,
            documents: Some(input::parse_documents(&raw)?),
            source: None,
            batch_size: params.batch_size,
        }
    } else {
        api::from_json::<JobSpec>(&raw)?
    };
    let record = state.jobs.submit(&caller, spec).await?;
    Ok((StatusCode::ACCEPTED, Json(record)).into_response())
}

async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Reply {
    state.jobs.ready().await?;
    let Query(params) = params.map_err(|r| ApiError::invalid(r.body_text()))?;
    state.jobs.refresh(&caller.tenant_name).await?;
    let page = state.jobs.list(&caller.tenant_name, &params)?;
    Ok((StatusCode::OK, Json(page)).into_response())
}

async fn get_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
) -> Reply {
    state.jobs.ready().await?;
    let Path(id) = id.map_err(|r| ApiError::invalid(r.body_text()))?;
    state.jobs.refresh(&caller.tenant_name).await?;
    let record = state.jobs.get(&caller.tenant_name, &id)?;
    Ok((StatusCode::OK, Json(record)).into_response())
}

async fn cancel_job(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
) -> Reply {
    state.jobs.ready().await?;
    let Path(id) = id.map_err(|r| ApiError::invalid(r.body_text()))?;
    let record = state.jobs.cancel(&caller.tenant_name, &id).await?;
    Ok((StatusCode::OK, Json(record)).into_response())
}

/// `/v1/jobs` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/jobs", get(list).post(submit))
        .route("/v1/jobs/{id}", get(get_job).delete(cancel_job))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_by_type_and_refuse_unknown_fields() {
        let spec: JobSpec = api::from_json(
            br#"{"type":"import","library":"l","documents":[{"id":"a","chunks":[{"embedding":[1.0]}]}]}"#,
        )
        .expect("import");
        assert_eq!(spec.kind(), JobType::Import);
        assert_eq!(spec.library(), Some("l"));
        let params = serde_json::to_value(&spec).expect("params");
        assert!(params.get("documents").is_none(), "{params}");
        let spec: JobSpec =
            api::from_json(br#"{"type":"backup","destination":"s3://b/x/"}"#).expect("backup");
        assert_eq!(spec.library(), None);
        for bad in [
            &br#"{"type":"optimize","library":"l","extra":1}"#[..],
            br#"{"type":"teleport","library":"l"}"#,
            br#"{"library":"l"}"#,
        ] {
            assert!(api::from_json::<JobSpec>(bad).is_err());
        }
    }

    #[test]
    fn job_ids_sort_by_creation_time() {
        let a = new_job_id(1_000);
        let b = new_job_id(1_001);
        assert!(a < b);
        assert_eq!(a.len(), 4 + 24);
    }
}
