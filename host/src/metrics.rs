//! Prometheus metrics: the names and labels of the metrics contract
//! (deploy/monitoring/metrics.txt, which the dashboards and alert rules use), exported
//! on `GET /metrics` in the OpenMetrics text format.
//!
//! Key choices:
//! - `prometheus-client` (the Prometheus project's Rust client) owns the registry and
//!   the encoding, so the text format is right by construction.
//! - One process-wide registry ([`metrics`]): the hooks sit deep in the write path
//!   (WAL flush, snapshot, storage errors), and one registry per process is what a
//!   scrape expects. Tenants register themselves ([`register_tenant`]); the gauges that
//!   describe state (readiness, libraries, documents, fencing) are read from them at
//!   scrape time instead of being kept in step on every write.
//! - Label sets are closed: `route` is the matched route template (or `unmatched`),
//!   never the raw path, so a scanner cannot blow up the series count. Families whose
//!   label values are known up front (search modes, job types and statuses, storage
//!   operations, event types) are created at 0, so `rate()` works before the first
//!   event and every family of the contract has a sample in the first scrape.
//! - Process CPU and memory use the standard `process_*` names (what every Prometheus
//!   client exports), read from `/proc/self` at scrape time by a small collector:
//!   prometheus-client has no process collector of its own.

use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use arrwdb_core::api::{SearchMode, SearchRequest};
use arrwdb_core::{Query, QueryResponse};
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::tenant::Tenant;

/// `method`, `route`, `status` of `arrwdb_http_requests_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: String,
}

/// `method`, `route` of `arrwdb_http_request_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

/// `library` of the per-library gauges.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LibraryLabel {
    pub library: String,
}

/// `mode`, `index` of `arrwdb_search_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SearchLabels {
    pub mode: String,
    pub index: String,
}

/// `type` of `arrwdb_events_published_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabel {
    pub r#type: String,
}

/// `tenant` of `arrwdb_wasm_memory_bytes`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabel {
    pub tenant: String,
}

/// `type`, `status` of `arrwdb_jobs_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub r#type: String,
    pub status: String,
}

/// `runtime`, `result` of `arrwdb_index_rebuilds_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RebuildLabels {
    pub runtime: String,
    pub result: String,
}

/// Where a full index rebuild ran (`runtime` of `arrwdb_index_rebuilds_total`): on
/// native threads, or inside the engine component.
pub const REBUILD_RUNTIMES: &[&str] = &["native", "component"];
/// How it ended (`result`): built, or failed (past the call deadline or the memory
/// limit, or refused).
pub const REBUILD_RESULTS: &[&str] = &["built", "failed"];

/// `op` of `arrwdb_storage_errors_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs … ~26 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

fn job_histogram() -> Histogram {
    // 10 ms … ~5.8 h.
    Histogram::new(exponential_buckets(0.01, 4.0, 11))
}

fn size_histogram() -> Histogram {
    // 1 … 32768 records.
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

/// Storage operations counted in `arrwdb_storage_errors_total`.
pub const STORAGE_OPS: &[&str] = &["load", "wal_put", "snapshot_put", "manifest_put"];
/// Job types and statuses counted in `arrwdb_jobs_total`.
pub const JOB_TYPES: &[&str] = &[
    "import", "export", "delete", "rebuild", "optimize", "compact", "backup", "restore",
];
/// Final and intermediate job statuses.
pub const JOB_STATUSES: &[&str] = &["started", "completed", "failed", "cancelled"];
/// Search modes (`mode` of `arrwdb_search_duration_seconds`).
pub const SEARCH_MODES: &[&str] = &["vector", "keyword", "hybrid"];
/// Index kinds (`index` of `arrwdb_search_duration_seconds`), as in the library JSON.
pub const INDEX_KINDS: &[&str] = &["flat", "hnsw", "ivf", "kdtree", "lsh"];

/// Every metric of the contract.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_duration: HistogramFamily<RouteLabels>,
    pub ready: Gauge,
    pub writer_fenced: Family<LibraryLabel, Gauge>,
    pub wal_flush_duration: Histogram,
    pub wal_flush_records: Histogram,
    pub wal_segments: Counter,
    pub snapshots: Counter,
    pub libraries: Gauge,
    pub documents: Family<LibraryLabel, Gauge>,
    pub chunks: Family<LibraryLabel, Gauge>,
    pub search_duration: HistogramFamily<SearchLabels>,
    pub jobs: Family<JobLabels, Counter>,
    pub jobs_running: Gauge,
    /// `arrwdb_jobs_queued`: jobs accepted and waiting for a worker (set by the runner).
    pub jobs_queued: Gauge,
    /// `arrwdb_job_duration_seconds{type,status}`: see [`Metrics::job_finished`].
    pub job_duration: HistogramFamily<JobLabels>,
    pub events_subscribers: Gauge,
    /// `arrwdb_events_published_total{type}`: see [`Metrics::event_published`].
    pub events_published: Family<EventLabel, Counter>,
    /// `arrwdb_wasm_memory_bytes{tenant}`: see [`Metrics::wasm_memory`].
    pub wasm_memory: Family<TenantLabel, Gauge>,
    pub replica_lag: Family<LibraryLabel, Gauge>,
    pub storage_errors: Family<OpLabel, Counter>,
    /// `arrwdb_index_rebuilds_total{runtime,result}`: see [`Metrics::index_rebuilt`].
    pub index_rebuilds: Family<RebuildLabels, Counter>,
    tenants: Mutex<Vec<Weak<Tenant>>>,
}

impl Metrics {
    fn new() -> Self {
        let m = Metrics {
            registry: Registry::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            ready: Gauge::default(),
            writer_fenced: Family::default(),
            wal_flush_duration: latency_histogram(),
            wal_flush_records: size_histogram(),
            wal_segments: Counter::default(),
            snapshots: Counter::default(),
            libraries: Gauge::default(),
            documents: Family::default(),
            chunks: Family::default(),
            search_duration: Family::new_with_constructor(latency_histogram),
            jobs: Family::default(),
            jobs_running: Gauge::default(),
            jobs_queued: Gauge::default(),
            job_duration: Family::new_with_constructor(job_histogram),
            events_subscribers: Gauge::default(),
            events_published: Family::default(),
            wasm_memory: Family::default(),
            replica_lag: Family::default(),
            storage_errors: Family::default(),
            index_rebuilds: Family::default(),
            tenants: Mutex::new(Vec::new()),
        };
        for mode in SEARCH_MODES {
            for index in INDEX_KINDS {
                let _ = m.search_duration.get_or_create(&SearchLabels {
                    mode: (*mode).into(),
                    index: (*index).into(),
                });
            }
        }
        for kind in JOB_TYPES {
            for status in JOB_STATUSES {
                let _ = m.jobs.get_or_create(&job_labels(kind, status));
            }
        }
        for kind in JOB_TYPES {
            let _ = m.job_duration.get_or_create(&job_labels(kind, "completed"));
        }
        for kind in crate::events::EVENT_TYPES {
            let _ = m.events_published.get_or_create(&EventLabel {
                r#type: (*kind).to_string(),
            });
        }
        for op in STORAGE_OPS {
            let _ = m.storage_errors.get_or_create(&OpLabel {
                op: (*op).to_string(),
            });
        }
        for runtime in REBUILD_RUNTIMES {
            for result in REBUILD_RESULTS {
                let _ = m.index_rebuilds.get_or_create(&RebuildLabels {
                    runtime: (*runtime).into(),
                    result: (*result).into(),
                });
            }
        }
        let mut m = m;
        let mut r = Registry::default();
        // Counters are registered without `_total`: the encoder appends it.
        r.register(
            "arrwdb_http_requests",
            "HTTP requests by method, matched route and status",
            m.http_requests.clone(),
        );
        r.register(
            "arrwdb_http_request_duration_seconds",
            "HTTP request latency by method and matched route",
            m.http_duration.clone(),
        );
        r.register(
            "arrwdb_ready",
            "1 once every tenant has loaded its storage",
            m.ready.clone(),
        );
        r.register(
            "arrwdb_writer_fenced",
            "1 when another writer claimed the library and this server refuses its writes",
            m.writer_fenced.clone(),
        );
        r.register(
            "arrwdb_wal_flush_duration_seconds",
            "Time to write one group-committed WAL segment",
            m.wal_flush_duration.clone(),
        );
        r.register(
            "arrwdb_wal_flush_records",
            "Records per WAL segment (group commit batch size)",
            m.wal_flush_records.clone(),
        );
        r.register(
            "arrwdb_wal_segments_written",
            "WAL segments written",
            m.wal_segments.clone(),
        );
        r.register(
            "arrwdb_snapshots_written",
            "Snapshots written and published",
            m.snapshots.clone(),
        );
        r.register("arrwdb_libraries", "Libraries loaded", m.libraries.clone());
        r.register(
            "arrwdb_documents",
            "Documents per library",
            m.documents.clone(),
        );
        r.register("arrwdb_chunks", "Chunks per library", m.chunks.clone());
        r.register(
            "arrwdb_search_duration_seconds",
            "Search latency by mode (vector, keyword, hybrid) and index kind",
            m.search_duration.clone(),
        );
        r.register(
            "arrwdb_jobs",
            "Background jobs by type and status",
            m.jobs.clone(),
        );
        r.register(
            "arrwdb_jobs_running",
            "Background jobs running now",
            m.jobs_running.clone(),
        );
        r.register(
            "arrwdb_jobs_queued",
            "Background jobs waiting for a worker",
            m.jobs_queued.clone(),
        );
        r.register(
            "arrwdb_job_duration_seconds",
            "Run time of finished background jobs by type and final status",
            m.job_duration.clone(),
        );
        r.register(
            "arrwdb_events_published",
            "Change events published on the event bus, by event type",
            m.events_published.clone(),
        );
        r.register(
            "arrwdb_wasm_memory_bytes",
            "Linear memory of each tenant's engine instance",
            m.wasm_memory.clone(),
        );
        r.register_collector(Box::new(ProcessCollector));
        r.register(
            "arrwdb_events_subscribers",
            "Event stream subscribers (SSE and WebSocket) connected now",
            m.events_subscribers.clone(),
        );
        r.register(
            "arrwdb_replica_lag_records",
            "Records a read replica was behind its writer when its last poll began (0 on a writer)",
            m.replica_lag.clone(),
        );
        r.register(
            "arrwdb_storage_errors",
            "Object storage failures by operation",
            m.storage_errors.clone(),
        );
        r.register(
            "arrwdb_index_rebuilds",
            "Full index rebuilds (rebuild, optimize, and their replay) by where they ran and how they ended",
            m.index_rebuilds.clone(),
        );
        m.registry = r;
        m
    }

    /// Records a durable WAL segment of `records` records that took `took` to write.
    pub fn wal_flushed(&self, records: usize, took: Duration) {
        self.wal_segments.inc();
        self.wal_flush_records.observe(records as f64);
        self.wal_flush_duration.observe(took.as_secs_f64());
    }

    /// Counts a full index rebuild that ran in `runtime` (one of [`REBUILD_RUNTIMES`])
    /// and ended in `result` (one of [`REBUILD_RESULTS`]).
    pub fn index_rebuilt(&self, runtime: &str, result: &str) {
        self.index_rebuilds
            .get_or_create(&RebuildLabels {
                runtime: runtime.into(),
                result: result.into(),
            })
            .inc();
    }

    /// Counts a storage failure of `op` (one of [`STORAGE_OPS`]).
    pub fn storage_error(&self, op: &str) {
        self.storage_errors
            .get_or_create(&OpLabel { op: op.into() })
            .inc();
    }

    /// Records a search's latency under its mode and the library's index kind.
    pub fn search(&self, mode: &str, index: &str, took: Duration) {
        self.search_duration
            .get_or_create(&SearchLabels {
                mode: mode.into(),
                index: index.into(),
            })
            .observe(took.as_secs_f64());
    }

    /// Records a finished job: its run time under its type (one of [`JOB_TYPES`]) and
    /// final status (`completed`, `failed` or `cancelled`). It does not touch
    /// `arrwdb_jobs_total`, which the runner counts itself.
    pub fn job_finished(&self, kind: &str, status: &str, took: Duration) {
        self.job_duration
            .get_or_create(&job_labels(kind, status))
            .observe(took.as_secs_f64());
    }

    /// Counts one published change event of type `kind` (`document.upserted`, …).
    pub fn event_published(&self, kind: &str) {
        self.events_published
            .get_or_create(&EventLabel {
                r#type: kind.into(),
            })
            .inc();
    }

    /// Sets the linear memory size of `tenant`'s engine instance, in bytes (at each
    /// scrape, from [`Tenant::instance_memory`]).
    pub fn wasm_memory(&self, tenant: &str, bytes: usize) {
        self.wasm_memory
            .get_or_create(&TenantLabel {
                tenant: tenant.into(),
            })
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Records how many records a replica applied in its last poll of `library`: how
    /// far behind its writer it was when the poll began.
    pub fn replica_lag(&self, library: &str, records: u64) {
        self.replica_lag
            .get_or_create(&LibraryLabel {
                library: library.into(),
            })
            .set(i64::try_from(records).unwrap_or(i64::MAX));
    }

    fn tenants(&self) -> Vec<Arc<Tenant>> {
        let Ok(mut list) = self.tenants.lock() else {
            return Vec::new();
        };
        list.retain(|t| t.strong_count() > 0);
        list.iter().filter_map(Weak::upgrade).collect()
    }

    /// Reads the state gauges from the tenants, then encodes every metric.
    pub async fn render(&self) -> String {
        let tenants = self.tenants();
        let mut ready = !tenants.is_empty();
        let mut libraries = 0i64;
        let mut documents: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
        let mut fenced = std::collections::BTreeSet::new();
        let mut memory = Vec::new();
        for tenant in &tenants {
            if !tenant.is_ready() {
                ready = false;
                continue;
            }
            if let Ok(QueryResponse::Libraries(list)) = tenant.query(&Query::ListLibraries).await {
                for info in list.libraries {
                    libraries += 1;
                    let entry = documents.entry(info.name).or_default();
                    entry.0 += i64::try_from(info.documents).unwrap_or(i64::MAX);
                    entry.1 += i64::try_from(info.chunks).unwrap_or(i64::MAX);
                }
            }
            if let Some(bytes) = tenant.instance_memory().await {
                memory.push((tenant.name().to_string(), bytes));
            }
            let status = tenant.status().await;
            for name in status["fenced"].as_array().into_iter().flatten() {
                if let Some(name) = name.as_str() {
                    fenced.insert(name.to_string());
                }
            }
        }
        self.ready.set(i64::from(ready));
        self.libraries.set(libraries);
        self.documents.clear();
        self.chunks.clear();
        self.writer_fenced.clear();
        self.wasm_memory.clear();
        for (tenant, bytes) in memory {
            self.wasm_memory(&tenant, bytes);
        }
        for (library, (docs, chunks)) in documents {
            let label = LibraryLabel { library };
            self.documents.get_or_create(&label).set(docs);
            self.chunks.get_or_create(&label).set(chunks);
            let _ = self.replica_lag.get_or_create(&label);
            self.writer_fenced
                .get_or_create(&label)
                .set(i64::from(fenced.contains(&label.library)));
        }
        for library in fenced {
            self.writer_fenced
                .get_or_create(&LibraryLabel { library })
                .set(1);
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

fn job_labels(kind: &str, status: &str) -> JobLabels {
    JobLabels {
        r#type: kind.into(),
        status: status.into(),
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The standard `process_cpu_seconds_total` and `process_resident_memory_bytes`, read
/// from `/proc/self` at scrape time (prometheus-client has no process collector; the
/// `prometheus` crate's needs its own registry). Absent where `/proc` is.
#[derive(Debug)]
struct ProcessCollector;

/// CPU seconds (user + system) and resident bytes of this process.
fn process_usage() -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the `(comm)`, which may hold spaces: state is field 3, utime 14,
    // stime 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = rustix::param::clock_ticks_per_second().max(1);
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = rustix::param::page_size() as u64;
    Some(((utime + stime) as f64 / ticks as f64, pages * page))
}

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric as _;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let Some((cpu, rss)) = process_usage() else {
            return Ok(());
        };
        let counter = ConstCounter::new(cpu);
        counter.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            counter.metric_type(),
        )?)?;
        let gauge = ConstGauge::new(i64::try_from(rss).unwrap_or(i64::MAX));
        gauge.encode(encoder.encode_descriptor(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            None,
            gauge.metric_type(),
        )?)?;
        Ok(())
    }
}

/// How long a library's index kind is trusted before it is read again (a rebuild may
/// change it; the label may lag by this much).
const INDEX_KIND_TTL: Duration = Duration::from_secs(10);
/// Most cached (tenant, library) index kinds; the cache is emptied when full.
const INDEX_KIND_CACHE: usize = 10_000;

type IndexKinds = std::collections::HashMap<(String, String), (&'static str, Instant)>;

static INDEX_KINDS_SEEN: LazyLock<Mutex<IndexKinds>> = LazyLock::new(Default::default);

/// The JSON name of an index kind (one of [`INDEX_KINDS`]).
pub fn index_kind_name(index: &arrwdb_core::api::LibraryInfo) -> &'static str {
    use arrwdb_core::IndexConfig;
    match index.index {
        IndexConfig::Flat => "flat",
        IndexConfig::Hnsw(_) => "hnsw",
        IndexConfig::Ivf(_) => "ivf",
        IndexConfig::KdTree(_) => "kdtree",
        IndexConfig::Lsh(_) => "lsh",
    }
}

/// The index kind of `library` (for the search latency label): cached for
/// [`INDEX_KIND_TTL`], read from the engine on a miss; `unknown` if that fails.
pub async fn index_kind(tenant_name: &str, tenant: &Tenant, library: &str) -> &'static str {
    let key = (tenant_name.to_string(), library.to_string());
    if let Ok(cache) = INDEX_KINDS_SEEN.lock()
        && let Some((kind, at)) = cache.get(&key)
        && at.elapsed() < INDEX_KIND_TTL
    {
        return kind;
    }
    let query = Query::GetLibrary {
        library: library.to_string(),
    };
    let kind = match tenant.query(&query).await {
        Ok(QueryResponse::Library(info)) => index_kind_name(&info),
        _ => return "unknown",
    };
    if let Ok(mut cache) = INDEX_KINDS_SEEN.lock() {
        if cache.len() >= INDEX_KIND_CACHE {
            cache.clear();
        }
        cache.insert(key, (kind, Instant::now()));
    }
    kind
}

/// Forgets the cached index kind of `library` (after a rebuild or delete).
pub fn forget_index_kind(tenant_name: &str, library: &str) {
    if let Ok(mut cache) = INDEX_KINDS_SEEN.lock() {
        cache.remove(&(tenant_name.to_string(), library.to_string()));
    }
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Makes `tenant`'s state visible in the scrape (held weakly).
pub fn register_tenant(tenant: &Arc<Tenant>) {
    if let Ok(mut list) = metrics().tenants.lock() {
        list.push(Arc::downgrade(tenant));
    }
}

/// The mode a search runs in (the request's, or inferred as the engine does).
pub fn search_mode(request: &SearchRequest) -> &'static str {
    let mode = request
        .mode
        .unwrap_or(match (&request.vector, &request.text) {
            (Some(_), Some(_)) => SearchMode::Hybrid,
            (None, Some(_)) => SearchMode::Keyword,
            _ => SearchMode::Vector,
        });
    match mode {
        SearchMode::Vector => "vector",
        SearchMode::Keyword => "keyword",
        SearchMode::Hybrid => "hybrid",
    }
}

/// `GET /metrics`.
pub async fn scrape() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics().render().await,
    )
        .into_response()
}

/// The request id header: taken from the client when it sends a sane one, generated
/// otherwise, and echoed on the response.
pub const REQUEST_ID: &str = "x-request-id";

/// The request's id, in the request extensions for handlers (the slow-query log).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Middleware: counts and times every request by matched route and status, and runs
/// it inside a tracing span carrying its request id.
pub async fn track(request: Request, next: Next) -> Response {
    use tracing::Instrument as _;
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_string);
    let span = tracing::info_span!("request", request_id = %id, %method, %route);
    let mut request = request;
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).instrument(span.clone()).await;
    let took = started.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::debug!(status, us = took.as_micros() as u64, "request done");
    });
    let m = metrics();
    m.http_requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status: status.to_string(),
        })
        .inc();
    m.http_duration
        .get_or_create(&RouteLabels { method, route })
        .observe(took.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}
