//! `GET /openapi.json`: the OpenAPI 3.1 description of every route of the router,
//! built with `utoipa` once per process and served without authentication (like
//! `/health`).
//!
//! Key choices:
//! - The schemas are written here, as documentation-only mirrors of the JSON types
//!   deriving `utoipa::ToSchema`, instead of deriving it on `arrwdb_core::api`. Several
//!   core types have hand-written serde impls (the index and quantization configs are
//!   internally tagged in JSON but plain enums in postcard; `Hit` omits absent fields
//!   only in JSON) that a derive on the core type would describe wrongly, and core stays
//!   `no_std` without a documentation dependency. Drift is caught by the integration
//!   test (tests/it/openapi.rs), which validates real responses of a running server
//!   against these schemas.
//! - Operations come from one table ([`operations`]) rather than attributes on the
//!   handlers: the routes of admin.rs, events.rs and jobs.rs live in files other
//!   engineers own, and one table makes a missing route easy to see. The integration
//!   test fails when the router registers a route (in any host source file) that the
//!   table does not describe, or the table describes one the server does not answer.
//! - Every error is the shared `{"error":{"kind","message"}}` shape; its statuses are
//!   reusable responses (`#/components/responses/…`).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder};
use utoipa::openapi::security::{SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    Components, Content, ContentBuilder, Info, OpenApi, Ref, RefOr, Required, ResponseBuilder,
    Schema, Tag,
};
use utoipa::{PartialSchema, ToSchema};

/// The documentation-only mirrors of the API's JSON types.
#[allow(dead_code)] // Never built: only their schemas are used.
pub mod schema {
    use std::collections::BTreeMap;

    use utoipa::ToSchema;

    /// Any JSON object (free-form metadata).
    pub type Object = BTreeMap<String, serde_json::Value>;

    /// `{"error":{"kind","message"}}`, the body of every error response.
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ErrorBody {
        pub error: ErrorDetail,
    }

    /// The inside of an [`ErrorBody`].
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ErrorDetail {
        pub kind: ErrorKind,
        /// What went wrong, for a human.
        pub message: String,
    }

    /// What the caller should do: fix the request (`invalid`, 400/413), look elsewhere
    /// (`not_found`, 404), resolve a conflict (409), authenticate (401), use another
    /// key (403), slow down (429, with `Retry-After`), retry later (503) or report a
    /// bug (500).
    #[derive(Debug, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum ErrorKind {
        Invalid,
        NotFound,
        Conflict,
        Unauthorized,
        Forbidden,
        RateLimited,
        Unavailable,
        Internal,
    }

    /// `GET /health`.
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct HealthResponse {
        /// Always `ok`.
        pub status: String,
        pub version: String,
        /// `host`, `edge` or `browser`.
        pub runtime: String,
    }

    /// How vectors are compared; scores are always "higher is closer".
    #[derive(Debug, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum Metric {
        Cosine,
        Dot,
        L2,
    }

    /// HNSW graph parameters (every one optional).
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct HnswParams {
        #[serde(default)]
        pub m: u32,
        #[serde(default)]
        pub ef_construction: u32,
        #[serde(default)]
        pub ef_search: u32,
        #[serde(default)]
        pub seed: u64,
    }

    /// IVF parameters (every one optional).
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct IvfParams {
        #[serde(default)]
        pub nlist: u32,
        #[serde(default)]
        pub nprobe: u32,
        #[serde(default)]
        pub train_size: u32,
        /// Product-quantization subvectors (0: no PQ).
        #[serde(default)]
        pub pq_m: u32,
        #[serde(default)]
        pub seed: u64,
    }

    /// KD-tree parameters (optional).
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct KdTreeParams {
        #[serde(default)]
        pub leaf_size: u32,
    }

    /// LSH parameters (every one optional).
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct LshParams {
        #[serde(default)]
        pub num_tables: u32,
        #[serde(default)]
        pub hash_size: u32,
        #[serde(default)]
        pub seed: u64,
    }

    /// Index kind and parameters, tagged by `type` (default `flat`).
    #[derive(Debug, ToSchema)]
    #[serde(tag = "type", rename_all = "lowercase")]
    pub enum IndexConfig {
        Flat,
        Hnsw(HnswParams),
        Ivf(IvfParams),
        KdTree(KdTreeParams),
        Lsh(LshParams),
    }

    /// Parameters of a quantized scan.
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct QuantizationParams {
        /// Candidates rescored with the full vectors per result (default 4).
        #[serde(default)]
        pub oversample: u32,
    }

    /// Compression of the vectors the exact scan reads first, tagged by `type`
    /// (default `none`).
    #[derive(Debug, ToSchema)]
    #[serde(tag = "type", rename_all = "lowercase")]
    pub enum QuantizationConfig {
        None,
        Sq8(QuantizationParams),
        Binary(QuantizationParams),
    }

    /// A language for stop words and stemming.
    #[derive(Debug, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum Language {
        None,
        English,
    }

    /// Text analysis and BM25 parameters of a library.
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct TextConfig {
        #[serde(default)]
        pub ascii_folding: bool,
        #[serde(default)]
        pub stop_words: Language,
        #[serde(default)]
        pub stemmer: Language,
        #[serde(default)]
        pub k1: f32,
        #[serde(default)]
        pub b: f32,
    }

    /// The embedding model a library's vectors come from (informational).
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct EmbeddingConfig {
        pub provider: String,
        pub model: String,
    }

    /// `POST /v1/libraries`.
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CreateLibraryRequest {
        /// 1 to 64 characters of `A-Z a-z 0-9 _ -`.
        pub name: String,
        /// 1 to 4096.
        pub dimension: u32,
        #[serde(default)]
        pub metric: Metric,
        #[serde(default)]
        pub index: IndexConfig,
        #[serde(default)]
        pub quantization: QuantizationConfig,
        #[serde(default)]
        pub text: TextConfig,
        #[serde(default)]
        pub embedding: Option<EmbeddingConfig>,
    }

    /// A library and its statistics.
    #[derive(Debug, ToSchema)]
    pub struct LibraryInfo {
        pub id: String,
        pub name: String,
        pub dimension: u32,
        pub metric: Metric,
        pub index: IndexConfig,
        pub quantization: QuantizationConfig,
        pub text: TextConfig,
        pub embedding: Option<EmbeddingConfig>,
        pub documents: u64,
        pub chunks: u64,
        /// Sequence number of the last applied WAL record.
        pub seq: u64,
    }

    /// `GET /v1/libraries`.
    #[derive(Debug, ToSchema)]
    pub struct LibraryList {
        pub libraries: Vec<LibraryInfo>,
    }

    /// `POST /v1/libraries/{lib}/rebuild`.
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RebuildRequest {
        pub index: IndexConfig,
    }

    /// `POST /v1/libraries/{lib}/optimize`: an empty body or `{}`.
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct OptimizeRequest {}

    /// One chunk of an upsert.
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ChunkInput {
        /// Default `{document id}#{position}`.
        #[serde(default)]
        pub id: Option<String>,
        #[serde(default)]
        pub text: String,
        pub embedding: Vec<f32>,
        #[serde(default)]
        pub metadata: Object,
    }

    /// `POST /v1/libraries/{lib}/documents`: insert or replace a whole document (also
    /// one line of the NDJSON stream).
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct UpsertDocumentRequest {
        /// Default: a new UUID.
        #[serde(default)]
        pub id: Option<String>,
        #[serde(default)]
        pub metadata: Object,
        pub chunks: Vec<ChunkInput>,
    }

    /// The ids an upsert wrote.
    #[derive(Debug, ToSchema)]
    pub struct UpsertResponse {
        pub id: String,
        pub chunk_ids: Vec<String>,
    }

    /// `POST /v1/libraries/{lib}/documents/batch`: 1 to 10,000 documents.
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct BatchUpsertRequest {
        pub documents: Vec<UpsertDocumentRequest>,
    }

    /// One document's result in a batch: its ids or its error.
    #[derive(Debug, ToSchema)]
    #[serde(untagged)]
    pub enum BatchItemResult {
        Ok(UpsertResponse),
        Err(ErrorBody),
    }

    /// Results of a batch upsert, in request order.
    #[derive(Debug, ToSchema)]
    pub struct BatchUpsertResponse {
        pub results: Vec<BatchItemResult>,
    }

    /// A document in a listing.
    #[derive(Debug, ToSchema)]
    pub struct DocumentSummary {
        pub id: String,
        /// `null` when the document has none.
        pub metadata: Option<Object>,
        pub chunks: u32,
    }

    /// One page of documents in id order; `next_cursor` is null on the last page.
    #[derive(Debug, ToSchema)]
    pub struct DocumentList {
        pub documents: Vec<DocumentSummary>,
        pub next_cursor: Option<String>,
    }

    /// `POST /v1/libraries/{lib}/documents/delete`: exactly one of `ids` and `filter`.
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct DeleteDocumentsRequest {
        #[serde(default)]
        pub ids: Option<Vec<String>>,
        /// A metadata filter (MongoDB-style, see docs/api.md).
        #[serde(default)]
        pub filter: Option<Object>,
    }

    /// What a bulk delete removed.
    #[derive(Debug, ToSchema)]
    pub struct DeleteDocumentsResponse {
        pub deleted: u64,
        pub ids: Vec<String>,
    }

    /// A stored chunk.
    #[derive(Debug, ToSchema)]
    pub struct ChunkOutput {
        pub id: String,
        pub text: String,
        pub embedding: Vec<f32>,
        /// `null` when the document has none.
        pub metadata: Option<Object>,
    }

    /// `GET /v1/libraries/{lib}/documents/{doc}`.
    #[derive(Debug, ToSchema)]
    pub struct DocumentResponse {
        pub id: String,
        /// `null` when the document has none.
        pub metadata: Option<Object>,
        pub chunks: Vec<ChunkOutput>,
    }

    /// Search mode; inferred from `vector` / `text` when absent.
    #[derive(Debug, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum SearchMode {
        Vector,
        Keyword,
        Hybrid,
    }

    /// What a hit carries besides ids and score.
    #[derive(Debug, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum Include {
        Text,
        Metadata,
        Vector,
    }

    /// Per-query index parameters.
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct SearchParams {
        /// HNSW: candidates kept while searching (overrides `ef_search`).
        #[serde(default)]
        #[schema(minimum = 1, maximum = 4096)]
        pub ef: Option<u32>,
        /// IVF: lists probed (overrides `nprobe`; more than `nlist` probes them all).
        #[serde(default)]
        #[schema(minimum = 1, maximum = 65536)]
        pub nprobe: Option<u32>,
    }

    /// `POST /v1/libraries/{lib}/search` (and `/search/stream`).
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct SearchRequest {
        #[serde(default)]
        pub vector: Option<Vec<f32>>,
        #[serde(default)]
        pub text: Option<String>,
        /// 1 to 1000 (default 10).
        #[serde(default)]
        pub k: u32,
        /// A metadata filter (MongoDB-style, see docs/api.md).
        #[serde(default)]
        pub filter: Option<Object>,
        #[serde(default)]
        pub mode: Option<SearchMode>,
        /// Hybrid fusion: `{"type":"rrf","k":60}` (default) or weighted.
        #[serde(default)]
        pub fusion: Option<Object>,
        /// Rerankers: one object or a list.
        #[serde(default)]
        #[schema(value_type = Option<Object>)]
        pub rerank: Option<serde_json::Value>,
        #[serde(default)]
        pub candidates: Option<u32>,
        /// Milliseconds since 1970, for the recency reranker (default: now).
        #[serde(default)]
        pub now: Option<i64>,
        #[serde(default)]
        pub params: SearchParams,
        /// Default `["text", "metadata"]`.
        #[serde(default)]
        pub include: Option<Vec<Include>>,
        #[serde(default)]
        pub min_score: Option<f32>,
        /// Largest distance a vector hit may have (cosine: `1 - score`, l2: euclidean);
        /// at least 0. Not with the dot metric or in keyword mode.
        #[serde(default)]
        #[schema(minimum = 0)]
        pub distance_threshold: Option<f32>,
    }

    /// A hit's score components.
    #[derive(Debug, ToSchema)]
    pub struct ScoreBreakdown {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub vector_score: Option<f32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub vector_rank: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub keyword_score: Option<f32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub keyword_rank: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub fused_score: Option<f32>,
    }

    /// One search result, best first.
    #[derive(Debug, ToSchema)]
    pub struct Hit {
        pub chunk_id: String,
        pub document_id: String,
        /// Higher is closer, whatever the metric.
        pub score: f32,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub distance: Option<f32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub text: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub metadata: Option<Object>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub vector: Option<Vec<f32>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub breakdown: Option<ScoreBreakdown>,
    }

    /// Response to a search.
    #[derive(Debug, ToSchema)]
    pub struct SearchResponse {
        pub hits: Vec<Hit>,
        pub took_ms: f64,
    }

    /// One line of the NDJSON ingest answer: `line` and an upsert's ids or an error;
    /// the last line is a [`StreamSummary`].
    #[derive(Debug, ToSchema)]
    pub struct StreamLineResult {
        pub line: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub chunk_ids: Option<Vec<String>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub error: Option<ErrorDetail>,
    }

    /// The trailer line of the NDJSON ingest answer.
    #[derive(Debug, ToSchema)]
    pub struct StreamSummary {
        pub done: bool,
        pub lines: u64,
        pub upserted: u64,
        pub failed: u64,
        pub took_ms: f64,
    }

    /// The trailer line of a streamed search (after one [`Hit`] per line).
    #[derive(Debug, ToSchema)]
    pub struct SearchStreamSummary {
        pub done: bool,
        pub hits: u64,
        pub took_ms: f64,
    }

    /// Requests per second per key (`null`: unlimited).
    #[derive(Debug, ToSchema)]
    pub struct Rates {
        #[serde(default)]
        pub search_per_sec: Option<u32>,
        #[serde(default)]
        pub write_per_sec: Option<u32>,
    }

    /// `POST /v1/admin/tenants`.
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CreateTenantRequest {
        pub name: String,
        #[serde(default)]
        pub rates: Rates,
    }

    /// `PATCH /v1/admin/tenants/{tenant}`: new rates for every key of the tenant.
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct UpdateTenantRequest {
        pub rates: Rates,
    }

    /// A tenant.
    #[derive(Debug, ToSchema)]
    pub struct TenantRecord {
        pub version: u32,
        pub name: String,
        pub active: bool,
        pub created_at_ms: u64,
        pub rates: Rates,
    }

    /// `GET /v1/admin/tenants`.
    #[derive(Debug, ToSchema)]
    pub struct TenantList {
        pub tenants: Vec<TenantRecord>,
    }

    /// What a key may do.
    #[derive(Debug, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum Scope {
        Admin,
        Write,
        Read,
    }

    /// `POST /v1/admin/tenants/{tenant}/keys`.
    #[derive(Debug, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CreateKeyRequest {
        pub scopes: Vec<Scope>,
        #[serde(default)]
        pub name: Option<String>,
        #[serde(default)]
        pub expires_at_ms: Option<u64>,
    }

    /// An API key as the admin API shows it (never its hash).
    #[derive(Debug, ToSchema)]
    pub struct KeyView {
        pub id: String,
        pub tenant: String,
        pub scopes: Vec<Scope>,
        pub name: Option<String>,
        pub created_at_ms: u64,
        pub expires_at_ms: Option<u64>,
        pub revoked_at_ms: Option<u64>,
        pub last_used_at_ms: Option<u64>,
        /// The secret: only in the answer that creates (or rotates) the key.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub key: Option<String>,
    }

    /// `GET /v1/admin/tenants/{tenant}/keys`.
    #[derive(Debug, ToSchema)]
    pub struct KeyList {
        pub keys: Vec<KeyView>,
    }

    /// A job's type.
    #[derive(Debug, ToSchema)]
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

    /// Where a job is in its life.
    #[derive(Debug, ToSchema)]
    #[serde(rename_all = "lowercase")]
    pub enum JobStatus {
        Pending,
        Running,
        Completed,
        Failed,
        Cancelled,
    }

    /// How far a job got.
    #[derive(Debug, ToSchema)]
    pub struct Progress {
        pub done: u64,
        pub total: Option<u64>,
    }

    /// A background job.
    #[derive(Debug, ToSchema)]
    pub struct JobRecord {
        pub version: u32,
        pub id: String,
        pub tenant: String,
        #[serde(rename = "type")]
        pub kind: JobType,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub library: Option<String>,
        pub status: JobStatus,
        /// The request's parameters (without inline documents).
        pub params: Object,
        pub progress: Progress,
        pub retries: u32,
        pub created_at_ms: u64,
        pub started_at_ms: Option<u64>,
        pub finished_at_ms: Option<u64>,
        pub error: Option<ErrorDetail>,
        #[schema(value_type = Option<Object>)]
        pub result: Option<serde_json::Value>,
    }

    /// One page of jobs, newest first.
    #[derive(Debug, ToSchema)]
    pub struct JobList {
        pub jobs: Vec<JobRecord>,
        pub next_cursor: Option<String>,
    }

    /// `POST /v1/jobs` (JSON): the job, by `type`. An NDJSON body (one document per
    /// line) with `?type=import&library=NAME` is an import too.
    #[derive(Debug, ToSchema)]
    #[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
    pub enum JobSpec {
        Import {
            library: String,
            /// Inline documents, or …
            #[serde(default)]
            documents: Option<Vec<UpsertDocumentRequest>>,
            /// … a URL of NDJSON or a JSON array.
            #[serde(default)]
            source: Option<String>,
            #[serde(default)]
            batch_size: Option<u64>,
        },
        Export {
            library: String,
            destination: String,
            /// `ndjson` (default) or `snapshot`.
            #[serde(default)]
            format: Option<String>,
            #[serde(default)]
            embeddings: Option<bool>,
        },
        Delete {
            library: String,
            #[serde(default)]
            ids: Option<Vec<String>>,
            #[serde(default)]
            filter: Option<Object>,
            #[serde(default)]
            batch_size: Option<u64>,
        },
        Rebuild {
            library: String,
            index: IndexConfig,
        },
        Optimize {
            library: String,
        },
        Compact {
            library: String,
        },
        Backup {
            destination: String,
        },
        Restore {
            source: String,
        },
    }

    /// A change event (SSE `data:` and WebSocket messages).
    #[derive(Debug, ToSchema)]
    pub struct Event {
        /// Per-tenant event id (SSE `id:`; resume with `Last-Event-ID`).
        pub id: u64,
        /// `library.created`, `document.upserted`, `job.completed`, …
        #[serde(rename = "type")]
        pub kind: String,
        pub tenant: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub library: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub ids: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub seq: Option<u64>,
        pub time_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Object>)]
        pub data: Option<serde_json::Value>,
    }
}

/// What a route needs from the caller's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// No key (health, readiness, metrics, this document).
    Public,
    Read,
    Write,
    Admin,
}

/// A request or response body.
#[derive(Debug, Clone, Copy)]
enum Body {
    None,
    /// `application/json` of a named schema.
    Json(&'static str),
    /// `application/json` of an inline schema (a free-form object).
    AnyJson,
    /// `application/x-ndjson`, one value of the named schema per line.
    Ndjson(&'static str),
    /// `application/octet-stream`.
    Bytes,
    /// `text/event-stream` of the named schema.
    EventStream(&'static str),
    /// `text/plain` (the metrics scrape).
    Text(&'static str),
}

/// A query parameter: name, schema, description.
type QueryParam = (&'static str, fn() -> RefOr<Schema>, &'static str);

/// One operation of the table.
#[derive(Debug, Clone)]
struct Op {
    /// `GET`, `POST` or `DELETE`.
    method: &'static str,
    path: &'static str,
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    access: Access,
    body: Body,
    /// Whether the request body may be absent.
    body_optional: bool,
    query: &'static [QueryParam],
    ok: (u16, Body),
    /// Error statuses besides those every `/v1` route has (401, 403, 500, 503).
    errors: &'static [u16],
}

impl Op {
    const fn new(method: &'static str, path: &'static str, id: &'static str) -> Self {
        Op {
            method,
            path,
            id,
            tag: "",
            summary: "",
            access: Access::Read,
            body: Body::None,
            body_optional: false,
            query: &[],
            ok: (200, Body::None),
            errors: &[],
        }
    }
}

fn string_schema() -> RefOr<Schema> {
    String::schema()
}

fn integer_schema() -> RefOr<Schema> {
    u32::schema()
}

const LIST_DOCUMENTS_QUERY: &[QueryParam] = &[
    (
        "cursor",
        string_schema,
        "`next_cursor` of the previous page",
    ),
    (
        "limit",
        integer_schema,
        "documents per page, 1 to 1000 (default 100)",
    ),
    (
        "filter",
        string_schema,
        "a metadata filter as a JSON object in a string",
    ),
];

const LIST_JOBS_QUERY: &[QueryParam] = &[
    ("status", string_schema, "only jobs with this status"),
    ("type", string_schema, "only jobs of this type"),
    ("library", string_schema, "only jobs of this library"),
    (
        "cursor",
        string_schema,
        "`next_cursor` of the previous page",
    ),
    ("limit", integer_schema, "jobs per page"),
];

const SUBMIT_JOB_QUERY: &[QueryParam] = &[
    (
        "type",
        string_schema,
        "with an NDJSON body: `import` (the only type that takes one)",
    ),
    ("library", string_schema, "with an NDJSON body: the library"),
    (
        "batch_size",
        integer_schema,
        "with an NDJSON body: documents per write",
    ),
];

const EVENTS_QUERY: &[QueryParam] = &[
    ("library", string_schema, "only events of this library"),
    (
        "types",
        string_schema,
        "comma-separated event types or prefixes (`document.*`, `*`)",
    ),
    (
        "last_event_id",
        string_schema,
        "resume after this event id (as the `Last-Event-ID` header)",
    ),
];

/// Every route of the router, by method. The integration test checks this table
/// against the routes the host's source registers.
fn operations() -> Vec<Op> {
    use Access::*;
    const GET: &str = "GET";
    const POST: &str = "POST";
    const DELETE: &str = "DELETE";
    const PATCH: &str = "PATCH";
    const LIB: &str = "libraries";
    const DOC: &str = "documents";
    const SEARCH: &str = "search";
    let o = Op::new;
    vec![
        Op {
            tag: "operations",
            summary: "Liveness: the process answers",
            access: Public,
            ok: (200, Body::Json("HealthResponse")),
            ..o(GET, "/health", "health")
        },
        Op {
            tag: "operations",
            summary: "Readiness: storage is loaded (503 with the reason while not)",
            access: Public,
            ok: (200, Body::AnyJson),
            errors: &[503],
            ..o(GET, "/ready", "ready")
        },
        Op {
            tag: "operations",
            summary: "Prometheus metrics (OpenMetrics text)",
            access: Public,
            ok: (200, Body::Text("the OpenMetrics text format")),
            ..o(GET, "/metrics", "metrics")
        },
        Op {
            tag: "operations",
            summary: "This OpenAPI document",
            access: Public,
            ok: (200, Body::AnyJson),
            ..o(GET, "/openapi.json", "openapi")
        },
        Op {
            tag: "operations",
            summary: "The web console (HTML; sign in with an API key)",
            access: Public,
            ok: (200, Body::Text("the console page (text/html)")),
            ..o(GET, "/console", "console_page")
        },
        Op {
            tag: "operations",
            summary: "The web console's script",
            access: Public,
            ok: (200, Body::Text("the console script (text/javascript)")),
            ..o(GET, "/console.js", "console_script")
        },
        Op {
            tag: LIB,
            summary: "List libraries",
            ok: (200, Body::Json("LibraryList")),
            ..o(GET, "/v1/libraries", "list_libraries")
        },
        Op {
            tag: LIB,
            summary: "Create a library",
            access: Write,
            body: Body::Json("CreateLibraryRequest"),
            ok: (201, Body::Json("LibraryInfo")),
            errors: &[400, 409, 413],
            ..o(POST, "/v1/libraries", "create_library")
        },
        Op {
            tag: LIB,
            summary: "Get a library and its statistics",
            ok: (200, Body::Json("LibraryInfo")),
            errors: &[404],
            ..o(GET, "/v1/libraries/{lib}", "get_library")
        },
        Op {
            tag: LIB,
            summary: "Delete a library and its stored objects",
            access: Write,
            ok: (204, Body::None),
            errors: &[404],
            ..o(DELETE, "/v1/libraries/{lib}", "delete_library")
        },
        Op {
            tag: DOC,
            summary: "List documents (one page, in id order)",
            query: LIST_DOCUMENTS_QUERY,
            ok: (200, Body::Json("DocumentList")),
            errors: &[400, 404],
            ..o(GET, "/v1/libraries/{lib}/documents", "list_documents")
        },
        Op {
            tag: DOC,
            summary: "Insert or replace a document",
            access: Write,
            body: Body::Json("UpsertDocumentRequest"),
            ok: (200, Body::Json("UpsertResponse")),
            errors: &[400, 404, 413],
            ..o(POST, "/v1/libraries/{lib}/documents", "upsert_document")
        },
        Op {
            tag: DOC,
            summary: "Delete documents by ids or by a metadata filter",
            access: Write,
            body: Body::Json("DeleteDocumentsRequest"),
            ok: (200, Body::Json("DeleteDocumentsResponse")),
            errors: &[400, 404, 413],
            ..o(
                POST,
                "/v1/libraries/{lib}/documents/delete",
                "delete_documents",
            )
        },
        Op {
            tag: DOC,
            summary: "Insert or replace up to 10,000 documents (results per document)",
            access: Write,
            body: Body::Json("BatchUpsertRequest"),
            ok: (200, Body::Json("BatchUpsertResponse")),
            errors: &[400, 404, 413],
            ..o(POST, "/v1/libraries/{lib}/documents/batch", "upsert_batch")
        },
        Op {
            tag: DOC,
            summary: "Ingest one document per NDJSON line from a body of any size",
            access: Write,
            body: Body::Ndjson("UpsertDocumentRequest"),
            ok: (200, Body::Ndjson("StreamLineResult")),
            errors: &[400, 404],
            ..o(
                POST,
                "/v1/libraries/{lib}/documents/stream",
                "upsert_stream",
            )
        },
        Op {
            tag: DOC,
            summary: "Get a document with its chunks",
            ok: (200, Body::Json("DocumentResponse")),
            errors: &[404],
            ..o(GET, "/v1/libraries/{lib}/documents/{doc}", "get_document")
        },
        Op {
            tag: DOC,
            summary: "Delete a document",
            access: Write,
            ok: (204, Body::None),
            errors: &[404],
            ..o(
                DELETE,
                "/v1/libraries/{lib}/documents/{doc}",
                "delete_document",
            )
        },
        Op {
            tag: SEARCH,
            summary: "Vector, keyword or hybrid search",
            body: Body::Json("SearchRequest"),
            ok: (200, Body::Json("SearchResponse")),
            errors: &[400, 404, 413, 429],
            ..o(POST, "/v1/libraries/{lib}/search", "search")
        },
        Op {
            tag: SEARCH,
            summary: "Search, answering one hit per NDJSON line and a summary line",
            body: Body::Json("SearchRequest"),
            ok: (200, Body::Ndjson("Hit")),
            errors: &[400, 404, 413, 429],
            ..o(POST, "/v1/libraries/{lib}/search/stream", "search_stream")
        },
        Op {
            tag: LIB,
            summary: "Write (and publish) a snapshot; answers its bytes",
            access: Write,
            ok: (200, Body::Bytes),
            errors: &[404],
            ..o(POST, "/v1/libraries/{lib}/snapshot", "snapshot")
        },
        Op {
            tag: LIB,
            summary: "Rebuild the index with a new configuration",
            access: Write,
            body: Body::Json("RebuildRequest"),
            ok: (200, Body::Json("LibraryInfo")),
            errors: &[400, 404, 413],
            ..o(POST, "/v1/libraries/{lib}/rebuild", "rebuild")
        },
        Op {
            tag: LIB,
            summary: "Compact deleted documents away and rebuild the index",
            access: Write,
            body: Body::Json("OptimizeRequest"),
            body_optional: true,
            ok: (200, Body::Json("LibraryInfo")),
            errors: &[400, 404, 413],
            ..o(POST, "/v1/libraries/{lib}/optimize", "optimize")
        },
        Op {
            tag: "admin",
            summary: "List tenants (operator key)",
            access: Admin,
            ok: (200, Body::Json("TenantList")),
            ..o(GET, "/v1/admin/tenants", "list_tenants")
        },
        Op {
            tag: "admin",
            summary: "Create a tenant (operator key)",
            access: Admin,
            body: Body::Json("CreateTenantRequest"),
            ok: (201, Body::Json("TenantRecord")),
            errors: &[400, 409],
            ..o(POST, "/v1/admin/tenants", "create_tenant")
        },
        Op {
            tag: "admin",
            summary: "Get a tenant",
            access: Admin,
            ok: (200, Body::Json("TenantRecord")),
            errors: &[404],
            ..o(GET, "/v1/admin/tenants/{tenant}", "get_tenant")
        },
        Op {
            tag: "admin",
            summary: "Change a tenant's rate limits (operator key; no restart)",
            access: Admin,
            body: Body::Json("UpdateTenantRequest"),
            ok: (200, Body::Json("TenantRecord")),
            errors: &[400, 404],
            ..o(PATCH, "/v1/admin/tenants/{tenant}", "update_tenant")
        },
        Op {
            tag: "admin",
            summary: "Deactivate a tenant: its keys stop working (operator key)",
            access: Admin,
            ok: (200, Body::Json("TenantRecord")),
            errors: &[404],
            ..o(
                POST,
                "/v1/admin/tenants/{tenant}/deactivate",
                "deactivate_tenant",
            )
        },
        Op {
            tag: "admin",
            summary: "List a tenant's API keys",
            access: Admin,
            ok: (200, Body::Json("KeyList")),
            errors: &[404],
            ..o(GET, "/v1/admin/tenants/{tenant}/keys", "list_keys")
        },
        Op {
            tag: "admin",
            summary: "Create an API key (the secret is in this answer only)",
            access: Admin,
            body: Body::Json("CreateKeyRequest"),
            ok: (201, Body::Json("KeyView")),
            errors: &[400, 404],
            ..o(POST, "/v1/admin/tenants/{tenant}/keys", "create_key")
        },
        Op {
            tag: "admin",
            summary: "Rotate an API key: a new secret, the old one revoked",
            access: Admin,
            ok: (201, Body::Json("KeyView")),
            errors: &[404],
            ..o(POST, "/v1/admin/keys/{id}/rotate", "rotate_key")
        },
        Op {
            tag: "admin",
            summary: "Revoke an API key",
            access: Admin,
            ok: (200, Body::Json("KeyView")),
            errors: &[404],
            ..o(POST, "/v1/admin/keys/{id}/revoke", "revoke_key")
        },
        Op {
            tag: "events",
            summary: "Change events as Server-Sent Events (resume with Last-Event-ID)",
            query: EVENTS_QUERY,
            ok: (200, Body::EventStream("Event")),
            errors: &[400],
            ..o(GET, "/v1/events", "events")
        },
        Op {
            tag: "events",
            summary: "Change events over a WebSocket (HTTP/1.1 upgrade; JSON messages)",
            ok: (101, Body::None),
            errors: &[400],
            ..o(GET, "/v1/ws", "events_ws")
        },
        Op {
            tag: "jobs",
            summary: "List jobs, newest first",
            query: LIST_JOBS_QUERY,
            ok: (200, Body::Json("JobList")),
            errors: &[400],
            ..o(GET, "/v1/jobs", "list_jobs")
        },
        Op {
            tag: "jobs",
            summary: "Submit a background job (JSON, or an NDJSON import)",
            access: Write,
            body: Body::Json("JobSpec"),
            query: SUBMIT_JOB_QUERY,
            ok: (202, Body::Json("JobRecord")),
            errors: &[400, 404, 413],
            ..o(POST, "/v1/jobs", "submit_job")
        },
        Op {
            tag: "jobs",
            summary: "Get a job",
            ok: (200, Body::Json("JobRecord")),
            errors: &[404],
            ..o(GET, "/v1/jobs/{id}", "get_job")
        },
        Op {
            tag: "jobs",
            summary: "Cancel a job",
            access: Write,
            ok: (200, Body::Json("JobRecord")),
            errors: &[404, 409],
            ..o(DELETE, "/v1/jobs/{id}", "cancel_job")
        },
    ]
}

/// Name and description of each error status's reusable response.
const ERROR_RESPONSES: &[(u16, &str, &str)] = &[
    (
        400,
        "Invalid",
        "`invalid`: the request is malformed or out of range",
    ),
    (
        401,
        "Unauthorized",
        "`unauthorized`: no API key, or an unknown, expired or revoked one",
    ),
    (
        403,
        "Forbidden",
        "`forbidden`: the key lacks the scope, or the tenant is inactive",
    ),
    (
        404,
        "NotFound",
        "`not_found`: no such library, document, job, tenant or key",
    ),
    (
        409,
        "Conflict",
        "`conflict`: it already exists, or the state does not allow it",
    ),
    (
        413,
        "PayloadTooLarge",
        "`invalid`: the body is over the server's limit",
    ),
    (
        429,
        "RateLimited",
        "`rate_limited`: the key is over its rate; retry after `Retry-After` seconds",
    ),
    (
        500,
        "Internal",
        "`internal`: an engine call failed unexpectedly",
    ),
    (
        503,
        "Unavailable",
        "`unavailable`: storage is loading or failing, or the library is fenced; retry",
    ),
];

fn error_ref(status: u16) -> Option<Ref> {
    ERROR_RESPONSES
        .iter()
        .find(|(s, _, _)| *s == status)
        .map(|(_, name, _)| Ref::new(format!("#/components/responses/{name}")))
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn any_object() -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new().schema_type(Type::Object).build(),
    ))
}

/// Content whose each item (NDJSON line, SSE `data:`) is `item`.
fn items(item: &str) -> Content {
    ContentBuilder::new()
        .item_schema(Some(schema_ref(item)))
        .build()
}

fn content(body: Body) -> Option<(&'static str, Content)> {
    match body {
        Body::None => None,
        Body::Json(name) => Some(("application/json", Content::new(Some(schema_ref(name))))),
        Body::AnyJson => Some(("application/json", Content::new(Some(any_object())))),
        Body::Ndjson(name) => Some(("application/x-ndjson", items(name))),
        Body::Bytes => Some((
            "application/octet-stream",
            Content::new(None::<RefOr<Schema>>),
        )),
        Body::EventStream(name) => Some(("text/event-stream", items(name))),
        Body::Text(what) => Some((
            "text/plain",
            ContentBuilder::new()
                .schema(Some(string_schema()))
                .description(Some(what))
                .build(),
        )),
    }
}

fn ok_description(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        _ => "OK",
    }
}

fn operation(op: &Op) -> Operation {
    let mut operation = OperationBuilder::new()
        .tag(op.tag)
        .summary(Some(op.summary))
        .operation_id(Some(op.id));
    for name in path_params(op.path) {
        operation = operation.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(string_schema())),
        );
    }
    for (name, schema, description) in op.query {
        operation = operation.parameter(
            ParameterBuilder::new()
                .name(*name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(*description))
                .schema(Some(schema())),
        );
    }
    if let Some((mime, body)) = content(op.body) {
        let mut request =
            RequestBodyBuilder::new()
                .content(mime, body)
                .required(Some(if op.body_optional {
                    Required::False
                } else {
                    Required::True
                }));
        if op.id == "submit_job" {
            request = request.content("application/x-ndjson", items("UpsertDocumentRequest"));
        }
        operation = operation.request_body(Some(request.build()));
    }
    let (status, body) = op.ok;
    let mut ok = ResponseBuilder::new().description(ok_description(status));
    if let Some((mime, body)) = content(body) {
        ok = ok.content(mime, body);
    }
    operation = operation.response(status.to_string(), ok.build());
    let mut errors: Vec<u16> = op.errors.to_vec();
    if op.access != Access::Public {
        errors.extend([401, 403, 500, 503]);
    } else if op.path == "/ready" {
        errors.push(503);
    }
    errors.sort_unstable();
    errors.dedup();
    for status in errors {
        if let Some(reference) = error_ref(status) {
            operation = operation.response(status.to_string(), reference);
        }
    }
    if op.access == Access::Public {
        // An empty requirement list: no authentication.
        operation = operation.securities(Some(Vec::<SecurityRequirement>::new()));
    } else {
        let scope = match op.access {
            Access::Admin => "admin",
            Access::Write => "write",
            _ => "read",
        };
        operation = operation
            .description(Some(format!("Needs a key with the `{scope}` scope.")))
            .security(SecurityRequirement::new("bearer", [scope]))
            .security(SecurityRequirement::new("api_key", [scope]));
    }
    operation.build()
}

/// The `{name}` parameters of a route template.
fn path_params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// Registers `T`'s schema and every schema it refers to.
fn add_schema<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().to_string(), T::schema()));
    T::schemas(schemas);
}

fn schemas() -> BTreeMap<String, RefOr<Schema>> {
    use schema::*;
    let mut list = Vec::new();
    add_schema::<ErrorBody>(&mut list);
    add_schema::<HealthResponse>(&mut list);
    add_schema::<CreateLibraryRequest>(&mut list);
    add_schema::<LibraryInfo>(&mut list);
    add_schema::<LibraryList>(&mut list);
    add_schema::<RebuildRequest>(&mut list);
    add_schema::<OptimizeRequest>(&mut list);
    add_schema::<UpsertDocumentRequest>(&mut list);
    add_schema::<UpsertResponse>(&mut list);
    add_schema::<BatchUpsertRequest>(&mut list);
    add_schema::<BatchUpsertResponse>(&mut list);
    add_schema::<DocumentList>(&mut list);
    add_schema::<DeleteDocumentsRequest>(&mut list);
    add_schema::<DeleteDocumentsResponse>(&mut list);
    add_schema::<DocumentResponse>(&mut list);
    add_schema::<SearchRequest>(&mut list);
    add_schema::<SearchResponse>(&mut list);
    add_schema::<Hit>(&mut list);
    add_schema::<StreamLineResult>(&mut list);
    add_schema::<StreamSummary>(&mut list);
    add_schema::<SearchStreamSummary>(&mut list);
    add_schema::<CreateTenantRequest>(&mut list);
    add_schema::<TenantRecord>(&mut list);
    add_schema::<UpdateTenantRequest>(&mut list);
    add_schema::<TenantList>(&mut list);
    add_schema::<CreateKeyRequest>(&mut list);
    add_schema::<KeyView>(&mut list);
    add_schema::<KeyList>(&mut list);
    add_schema::<JobSpec>(&mut list);
    add_schema::<JobRecord>(&mut list);
    add_schema::<JobList>(&mut list);
    add_schema::<Event>(&mut list);
    list.into_iter().collect()
}

/// The whole document.
pub fn document() -> OpenApi {
    let mut paths = utoipa::openapi::Paths::new();
    for op in operations() {
        paths.add_path_operation(op.path, vec![http_method(op.method)], operation(&op));
    }
    let mut components = Components::new();
    for (name, schema) in schemas() {
        components.schemas.insert(name, schema);
    }
    for (status, name, description) in ERROR_RESPONSES {
        let _ = status;
        let response = ResponseBuilder::new()
            .description(*description)
            .content(
                "application/json",
                Content::new(Some(schema_ref("ErrorBody"))),
            )
            .build();
        components
            .responses
            .insert((*name).to_string(), RefOr::T(response));
    }
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("`Authorization: Bearer <key>`"))
                .build(),
        ),
    );
    components.add_security_scheme(
        "api_key",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-API-Key",
            "`X-API-Key: <key>` (the same keys as Bearer)",
        ))),
    );
    let mut info = Info::new("arrwDB", env!("CARGO_PKG_VERSION"));
    info.description = Some(
        "The REST API of the arrwDB host. Every error is `{\"error\":{\"kind\",\"message\"}}`. \
         Routes under /v1 need an API key (Bearer or X-API-Key) unless the server runs \
         with authentication off."
            .into(),
    );
    let mut doc = OpenApi::new(info, paths);
    doc.components = Some(components);
    doc.tags = Some(
        [
            ("libraries", "Libraries: create, inspect, snapshot, rebuild"),
            ("documents", "Documents and chunks"),
            ("search", "Vector, keyword and hybrid search"),
            ("admin", "Tenants and API keys"),
            ("jobs", "Background jobs"),
            ("events", "Change events (SSE, WebSocket)"),
            ("operations", "Health, readiness, metrics"),
        ]
        .into_iter()
        .map(|(name, description)| {
            let mut tag = Tag::new(name);
            tag.description = Some(description.into());
            tag
        })
        .collect(),
    );
    doc
}

fn http_method(method: &str) -> HttpMethod {
    match method {
        "POST" => HttpMethod::Post,
        "DELETE" => HttpMethod::Delete,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        _ => HttpMethod::Get,
    }
}

static DOCUMENT: LazyLock<Vec<u8>> =
    LazyLock::new(|| serde_json::to_vec(&document()).unwrap_or_default());

/// `GET /openapi.json`.
pub async fn serve() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_slice(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves_and_every_operation_is_unique() {
        let doc = serde_json::to_value(document()).expect("serializes");
        assert_eq!(doc["openapi"], "3.1.0");
        let text = doc.to_string();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("\"$ref\":\"#/components/") {
            rest = &rest[at + 21..];
            let end = rest.find('"').expect("closing quote");
            let mut node = &doc["components"];
            for part in rest[..end].split('/') {
                node = &node[part];
            }
            assert!(
                !node.is_null(),
                "dangling $ref #/components/{}",
                &rest[..end]
            );
        }
        let routes: Vec<(&str, &str)> = operations().iter().map(|o| (o.method, o.path)).collect();
        let mut unique = routes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), routes.len(), "an operation is listed twice");
        let ids: std::collections::BTreeSet<&str> = operations().iter().map(|o| o.id).collect();
        assert_eq!(ids.len(), routes.len(), "operation ids are unique");
    }
}
