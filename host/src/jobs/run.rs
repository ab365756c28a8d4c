//! What each job type does, step by step, with the cancellation points and retries
//! between the steps.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrwdb_core::api::{self, DeleteDocumentsRequest, ListDocumentsRequest};
use arrwdb_core::{Command, Outcome, Query, QueryResponse};
use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{DEFAULT_BATCH, ExportFormat, JobSpec, Jobs, Key, PERSIST_PROGRESS_EVERY, Progress};
use crate::error::ApiError;
use crate::storage::{ObjectStorage, StorageError};
use crate::tenant::Tenant;

/// Longest back-off between two retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Documents per page when an export walks a library.
const EXPORT_PAGE: u32 = 1000;

/// Why a job stopped before completing.
#[derive(Debug)]
pub(super) enum JobError {
    /// The job was cancelled at a cancellation point.
    Cancelled,
    /// The job failed with this error.
    Failed(ApiError),
}

impl From<ApiError> for JobError {
    fn from(e: ApiError) -> Self {
        JobError::Failed(e)
    }
}

type Step<T> = Result<T, JobError>;

/// What a running job needs: its tenant, its cancellation token, and a way to report
/// progress.
pub(super) struct JobCtx {
    jobs: Arc<Jobs>,
    key: Key,
    tenant: Arc<Tenant>,
    cancel: CancellationToken,
    progress: Progress,
    retries: u32,
    persisted: Instant,
}

impl JobCtx {
    pub(super) fn new(
        jobs: Arc<Jobs>,
        key: Key,
        tenant: Arc<Tenant>,
        cancel: CancellationToken,
    ) -> Self {
        JobCtx {
            jobs,
            key,
            tenant,
            cancel,
            progress: Progress::default(),
            retries: 0,
            persisted: Instant::now(),
        }
    }

    fn tenant_name(&self) -> &str {
        &self.key.0
    }

    /// A cancellation point.
    fn check(&self) -> Step<()> {
        if self.cancel.is_cancelled() {
            Err(JobError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Records progress in memory, publishes `job.progress`, and stores the record
    /// when the last store is older than [`PERSIST_PROGRESS_EVERY`].
    async fn progress(&mut self, done: u64, total: Option<u64>) {
        self.progress = Progress { done, total };
        let Some(record) = self
            .jobs
            .set_progress(&self.key, self.progress, self.retries)
        else {
            return;
        };
        super::publish(&record, "job.progress");
        if self.persisted.elapsed() >= PERSIST_PROGRESS_EVERY {
            self.persisted = Instant::now();
            if let Err(e) = self.jobs.persist(&record).await {
                tracing::debug!(job = %record.id, error = %e.message(), "could not store job progress");
            }
        }
    }

    /// Runs `step`, retrying 503 `unavailable` with exponential back-off (cancellable
    /// while waiting); any other error fails at once.
    async fn retry<T, F, Fut>(&mut self, what: &str, mut step: F) -> Step<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut attempt: u32 = 0;
        loop {
            self.check()?;
            match step().await {
                Ok(value) => return Ok(value),
                Err(e)
                    if e.status == StatusCode::SERVICE_UNAVAILABLE
                        && attempt < self.jobs.args.jobs_max_retries =>
                {
                    let base = Duration::from_millis(self.jobs.args.jobs_retry_base_ms.max(1));
                    let delay = base
                        .saturating_mul(1u32 << attempt.min(16))
                        .min(MAX_BACKOFF);
                    attempt += 1;
                    self.retries = self.retries.saturating_add(1);
                    tracing::warn!(job = %self.key.1, what, attempt, ?delay, error = %e.message(), "transient failure; retrying");
                    let _ = self
                        .jobs
                        .set_progress(&self.key, self.progress, self.retries);
                    tokio::select! {
                        () = self.cancel.cancelled() => return Err(JobError::Cancelled),
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                Err(e) => {
                    return Err(JobError::Failed(ApiError {
                        status: e.status,
                        body: api::ErrorBody::new(
                            &e.body.error.kind,
                            format!("{what}: {}", e.body.error.message),
                        ),
                    }));
                }
            }
        }
    }
}

fn storage_error(e: StorageError) -> ApiError {
    match e {
        StorageError::NotFound { key } => {
            ApiError::not_found(format!("object {key} does not exist"))
        }
        e => ApiError::unavailable(e.to_string()),
    }
}

fn unexpected() -> ApiError {
    ApiError::internal("the engine answered with an unexpected message")
}

/// Runs `spec` to its result (the record's `result`).
pub(super) async fn execute(ctx: &mut JobCtx, spec: &JobSpec) -> Step<Value> {
    match spec {
        JobSpec::Import {
            library,
            documents,
            source,
            batch_size,
        } => {
            let batch = batch_size.unwrap_or(DEFAULT_BATCH).max(1);
            match (documents, source) {
                (Some(documents), _) => import(ctx, library, documents, batch).await,
                (None, Some(url)) => {
                    let location = ctx.jobs.allow.file(url, ctx.tenant_name())?;
                    let store = location.open()?;
                    let name = location.name.clone();
                    let bytes = ctx
                        .retry("read the source", || async {
                            store.get(&name).await.map_err(storage_error)
                        })
                        .await?;
                    ctx.check()?;
                    let documents = super::input::parse_documents(&bytes)
                        .map_err(|e| ApiError::invalid(format!("{url}: {}", e.message())))?;
                    import(ctx, library, &documents, batch).await
                }
                (None, None) => Err(ApiError::invalid("nothing to import").into()),
            }
        }
        JobSpec::Export {
            library,
            destination,
            format,
            embeddings,
        } => export(ctx, library, destination, *format, *embeddings).await,
        JobSpec::Delete {
            library,
            ids,
            filter,
            batch_size,
        } => {
            let batch = batch_size.unwrap_or(DEFAULT_BATCH).max(1);
            delete(ctx, library, ids.as_deref(), filter.clone(), batch).await
        }
        JobSpec::Rebuild { library, index } => {
            let command = Command::RebuildIndex {
                library: library.clone(),
                index: index.clone(),
            };
            match write_one(ctx, library, command).await? {
                Outcome::IndexRebuilt(info) => Ok(json!({ "library": info })),
                _ => Err(unexpected().into()),
            }
        }
        JobSpec::Optimize { library } => {
            let command = Command::Optimize {
                library: library.clone(),
            };
            match write_one(ctx, library, command).await? {
                Outcome::Optimized(info) => Ok(json!({ "library": info })),
                _ => Err(unexpected().into()),
            }
        }
        JobSpec::Compact { library } => {
            let tenant = ctx.tenant.clone();
            let bytes = ctx.retry("snapshot", || tenant.snapshot(library)).await?;
            let info = library_info(ctx, library).await?;
            Ok(json!({ "snapshot_bytes": bytes.len(), "seq": info["seq"] }))
        }
        JobSpec::Backup { destination } => backup(ctx, destination).await,
        JobSpec::Restore { source } => restore(ctx, source).await,
    }
}

async fn write_one(ctx: &mut JobCtx, library: &str, command: Command) -> Step<Outcome> {
    let tenant = ctx.tenant.clone();
    let mut outcomes = ctx
        .retry("write", || tenant.write(library, vec![command.clone()]))
        .await?;
    let outcome = outcomes.pop().ok_or_else(unexpected)?;
    Ok(outcome?)
}

async fn library_info(ctx: &mut JobCtx, library: &str) -> Step<Value> {
    let tenant = ctx.tenant.clone();
    let query = Query::GetLibrary {
        library: library.into(),
    };
    match ctx
        .retry("read the library", || tenant.query(&query))
        .await?
    {
        QueryResponse::Library(info) => Ok(serde_json::to_value(info).unwrap_or_default()),
        _ => Err(unexpected().into()),
    }
}

/// Upserts `documents` in batches; ids are resolved once, so a retried batch (after
/// an ambiguous 503) replaces the same documents instead of adding copies.
async fn import(
    ctx: &mut JobCtx,
    library: &str,
    documents: &[api::UpsertDocumentRequest],
    batch: usize,
) -> Step<Value> {
    let total = documents.len() as u64;
    let mut imported: u64 = 0;
    ctx.progress(0, Some(total)).await;
    let tenant = ctx.tenant.clone();
    for (index, chunk) in documents.chunks(batch).enumerate() {
        ctx.check()?;
        let commands: Vec<Command> = chunk
            .iter()
            .map(|d| {
                let id =
                    d.id.clone()
                        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                Command::UpsertDocument {
                    library: library.into(),
                    document: d.clone().into_document(id),
                }
            })
            .collect();
        let outcomes = ctx
            .retry("write a batch", || tenant.write(library, commands.clone()))
            .await?;
        let mut refused = None;
        for (i, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Ok(_) => imported += 1,
                Err(e) if refused.is_none() => refused = Some((index * batch + i, e)),
                Err(_) => {}
            }
        }
        ctx.progress(imported, Some(total)).await;
        if let Some((n, e)) = refused {
            let id = documents
                .get(n)
                .and_then(|d| d.id.as_deref())
                .map(|id| format!(" (id `{id}`)"))
                .unwrap_or_default();
            return Err(JobError::Failed(ApiError {
                status: e.status,
                body: api::ErrorBody::new(
                    &e.body.error.kind,
                    format!(
                        "document {}{id} was refused: {}; {imported} documents were imported",
                        n + 1,
                        e.body.error.message
                    ),
                ),
            }));
        }
    }
    Ok(json!({ "imported": imported }))
}

/// Chunk of an NDJSON export line; `embedding` is left out on request.
#[derive(serde::Serialize)]
struct ChunkLine<'a> {
    id: &'a str,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    embedding: Option<&'a [f32]>,
    metadata: &'a arrwdb_core::Metadata,
}

/// One NDJSON export line: the shape an import reads.
#[derive(serde::Serialize)]
struct DocumentLine<'a> {
    id: &'a str,
    metadata: &'a arrwdb_core::Metadata,
    chunks: Vec<ChunkLine<'a>>,
}

/// Builds the whole export in memory and writes it with one PUT at the end, so a
/// cancelled or failed export leaves nothing at the destination.
async fn export(
    ctx: &mut JobCtx,
    library: &str,
    destination: &str,
    format: ExportFormat,
    embeddings: bool,
) -> Step<Value> {
    let location = ctx.jobs.allow.file(destination, ctx.tenant_name())?;
    let store: ObjectStorage = location.open()?;
    let tenant = ctx.tenant.clone();
    let (bytes, documents) = match format {
        ExportFormat::Snapshot => {
            let bytes = ctx.retry("snapshot", || tenant.snapshot(library)).await?;
            (bytes, None)
        }
        ExportFormat::Ndjson => {
            let info = library_info(ctx, library).await?;
            let total = info["documents"].as_u64();
            let mut out = Vec::new();
            let mut done: u64 = 0;
            let mut cursor = None;
            ctx.progress(0, total).await;
            loop {
                ctx.check()?;
                let query = Query::ListDocuments {
                    library: library.into(),
                    request: ListDocumentsRequest {
                        cursor: cursor.clone(),
                        limit: Some(EXPORT_PAGE),
                        filter: None,
                    },
                };
                let page = match ctx.retry("list documents", || tenant.query(&query)).await? {
                    QueryResponse::Documents(page) => page,
                    _ => return Err(unexpected().into()),
                };
                for summary in &page.documents {
                    let query = Query::GetDocument {
                        library: library.into(),
                        document: summary.id.clone(),
                    };
                    let doc = match ctx.retry("read a document", || tenant.query(&query)).await {
                        Ok(QueryResponse::Document(doc)) => doc,
                        Ok(_) => return Err(unexpected().into()),
                        // Deleted since the page was listed.
                        Err(JobError::Failed(e)) if e.status == StatusCode::NOT_FOUND => continue,
                        Err(e) => return Err(e),
                    };
                    let line = DocumentLine {
                        id: &doc.id,
                        metadata: &doc.metadata,
                        chunks: doc
                            .chunks
                            .iter()
                            .map(|c| ChunkLine {
                                id: &c.id,
                                text: &c.text,
                                embedding: embeddings.then_some(c.embedding.as_slice()),
                                metadata: &c.metadata,
                            })
                            .collect(),
                    };
                    serde_json::to_writer(&mut out, &line)
                        .map_err(|e| ApiError::internal(e.to_string()))?;
                    out.push(b'\n');
                    done += 1;
                }
                ctx.progress(done, total).await;
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            (out, Some(done))
        }
    };
    ctx.check()?;
    let size = bytes.len();
    let name = location.name.clone();
    ctx.retry("write the destination", || {
        let (store, name, bytes) = (store.clone(), name.clone(), bytes.clone());
        async move { store.put(&name, bytes).await.map_err(storage_error) }
    })
    .await?;
    let mut result = json!({ "destination": location.url, "bytes": size });
    if let Some(documents) = documents {
        result["documents"] = documents.into();
    }
    Ok(result)
}

async fn delete(
    ctx: &mut JobCtx,
    library: &str,
    ids: Option<&[String]>,
    filter: Option<arrwdb_core::Metadata>,
    batch: usize,
) -> Step<Value> {
    let requests: Vec<DeleteDocumentsRequest> = match ids {
        Some(ids) => ids
            .chunks(batch)
            .map(|chunk| DeleteDocumentsRequest {
                ids: Some(chunk.to_vec()),
                filter: None,
            })
            .collect(),
        None => vec![DeleteDocumentsRequest { ids: None, filter }],
    };
    let total = ids.map(|ids| ids.len() as u64);
    let (mut done, mut deleted) = (0u64, 0u64);
    ctx.progress(0, total).await;
    for request in requests {
        ctx.check()?;
        let asked = request.ids.as_ref().map_or(0, Vec::len) as u64;
        let command = Command::DeleteDocuments {
            library: library.into(),
            request,
        };
        match write_one(ctx, library, command).await? {
            Outcome::DocumentsDeleted { ids, .. } => deleted += ids.len() as u64,
            _ => return Err(unexpected().into()),
        }
        done += if total.is_some() { asked } else { deleted };
        ctx.progress(done, total).await;
    }
    Ok(json!({ "deleted": deleted }))
}

fn copy_error(e: &anyhow::Error) -> ApiError {
    match e.downcast_ref::<StorageError>() {
        Some(StorageError::NotFound { key }) => {
            ApiError::not_found(format!("object {key} does not exist"))
        }
        Some(e) => ApiError::unavailable(e.to_string()),
        None => ApiError::internal(format!("{e:#}")),
    }
}

fn copied_json(copied: &[crate::backup::Copied]) -> Value {
    Value::Array(
        copied
            .iter()
            .map(|c| {
                json!({
                    "name": c.name, "snapshot": c.snapshot,
                    "records": c.records.map(|(a, b)| [a, b]), "objects": c.objects,
                })
            })
            .collect(),
    )
}

/// Refuses (409) when `target` already holds any of `libraries` of `tenant`.
async fn check_absent(
    target: &ObjectStorage,
    tenant: &str,
    libraries: &[String],
    which: &str,
) -> Result<(), ApiError> {
    for library in libraries {
        let objects = target
            .library_objects(tenant, library)
            .await
            .map_err(storage_error)?;
        if !objects.keys.is_empty() {
            return Err(ApiError::conflict(format!(
                "{which} already holds library `{library}`; refusing to mix two histories"
            )));
        }
    }
    Ok(())
}

async fn library_names(store: &ObjectStorage, tenant: &str) -> Result<Vec<String>, ApiError> {
    Ok(store
        .library_names(tenant)
        .await
        .map_err(storage_error)?
        .into_iter()
        .filter(|n| api::validate_library_name(n).is_ok())
        .collect())
}

/// Copies the tenant's libraries out; cancellable at any point (an interrupted copy
/// has no manifest for the library it was copying, so it is recognizable).
async fn backup(ctx: &mut JobCtx, destination: &str) -> Step<Value> {
    let location = ctx.jobs.allow.dir(destination, ctx.tenant_name())?;
    let target = location.open()?;
    let source = ctx.jobs.storage.clone();
    let tenant = ctx.tenant_name().to_string();
    let names = library_names(&source, &tenant).await?;
    check_absent(&target, &tenant, &names, "the destination").await?;
    ctx.progress(0, Some(names.len() as u64)).await;
    ctx.check()?;
    let copied = tokio::select! {
        () = ctx.cancel.cancelled() => return Err(JobError::Cancelled),
        copied = crate::backup::copy_tenant(&source, &target, &tenant) => {
            copied.map_err(|e| copy_error(&e))?
        }
    };
    ctx.progress(copied.len() as u64, Some(names.len() as u64))
        .await;
    Ok(json!({ "destination": location.url, "libraries": copied_json(&copied) }))
}

/// Copies the tenant's libraries in and loads them. Not cancellable once copying has
/// started (a half-restored library would be loaded as it is).
async fn restore(ctx: &mut JobCtx, source: &str) -> Step<Value> {
    let location = ctx.jobs.allow.dir(source, ctx.tenant_name())?;
    let from = location.open()?;
    let target = ctx.jobs.storage.clone();
    let tenant = ctx.tenant_name().to_string();
    let names = library_names(&from, &tenant).await?;
    if names.is_empty() {
        return Err(ApiError::invalid(format!(
            "{} holds no libraries of tenant `{tenant}`",
            location.url
        ))
        .into());
    }
    check_absent(&target, &tenant, &names, "this server").await?;
    ctx.progress(0, Some(names.len() as u64)).await;
    ctx.check()?;
    let copied = crate::backup::copy_tenant(&from, &target, &tenant)
        .await
        .map_err(|e| copy_error(&e))?;
    ctx.tenant.load().await.map_err(ApiError::from)?;
    ctx.progress(copied.len() as u64, Some(names.len() as u64))
        .await;
    Ok(json!({ "source": location.url, "libraries": copied_json(&copied) }))
}
