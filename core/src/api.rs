//! The JSON API: request and response types shared by every transport (the host's
//! router, the edge worker's router and the npm package), with their validation.
//! Writing them once here is what makes the three runtimes one API.
//!
//! Types that also cross the component boundary in postcard never skip fields when
//! serializing in binary form, because postcard is not self-describing.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde::de::DeserializeOwned;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::model::{
    ChunkData, DocumentData, EmbeddingConfig, IndexConfig, LibraryConfig, Metadata, Metric,
};
pub use crate::model::{QuantizationConfig, QuantizationParams};
pub use crate::text::{Language, TextConfig};

/// Largest accepted vector dimension.
pub const MAX_DIMENSION: u32 = 4096;
/// Largest accepted `k` in a search.
pub const MAX_K: u32 = 1000;
/// Default `k` in a search.
pub const DEFAULT_K: u32 = 10;
/// Longest accepted library name (names are also storage path segments).
pub const MAX_LIBRARY_NAME: usize = 64;
/// Longest accepted document or chunk id, in bytes.
pub const MAX_ID_BYTES: usize = 512;
/// Longest accepted chunk text, in UTF-8 bytes (64 KiB).
pub const MAX_CHUNK_TEXT_BYTES: usize = 64 * 1024;
/// Most documents in one batch upsert.
pub const MAX_BATCH_DOCUMENTS: usize = 10_000;
/// Most documents in one page of a document listing.
pub const MAX_LIST_LIMIT: u32 = 1000;
/// Documents in a page of a listing when the request does not say.
pub const DEFAULT_LIST_LIMIT: u32 = 100;

/// Parses a JSON request body. Syntax errors are reported as malformed JSON, well-formed
/// JSON of the wrong shape as an invalid request; both are client errors (400).
pub fn from_json<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => Error::invalid(format!("invalid request body: {e}")),
        _ => Error::MalformedJson(e.to_string()),
    })
}

/// Serializes a response body. Serializing these types cannot fail (all map keys are
/// strings), so a failure is reported as an internal error rather than a panic.
pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|e| {
        serde_json::to_vec(&ErrorBody::from(&Error::Internal(e.to_string()))).unwrap_or_default()
    })
}

/// `{"error":{"kind","message"}}`, the body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// `invalid`, `not_found`, `conflict`, `unauthorized`, `forbidden`, `rate_limited`,
    /// `unavailable` or `internal`.
    pub kind: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(kind: &str, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                kind: kind.into(),
                message: message.into(),
            },
        }
    }
}

impl From<&Error> for ErrorBody {
    fn from(e: &Error) -> Self {
        ErrorBody::new(e.kind().as_str(), e.to_string())
    }
}

/// `POST /v1/libraries`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLibraryRequest {
    pub name: String,
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

impl CreateLibraryRequest {
    /// Validates the request into a library configuration.
    pub fn into_config(self) -> Result<LibraryConfig> {
        validate_library_name(&self.name)?;
        if self.dimension == 0 || self.dimension > MAX_DIMENSION {
            return Err(Error::invalid(format!(
                "dimension must be between 1 and {MAX_DIMENSION}, got {}",
                self.dimension
            )));
        }
        Ok(LibraryConfig {
            name: self.name,
            dimension: self.dimension,
            metric: self.metric,
            index: self.index,
            quantization: self.quantization,
            text: self.text,
            embedding: self.embedding,
        })
    }
}

/// Library names are path segments in URLs and in object storage, so they are kept to
/// `[A-Za-z0-9_-]`, 1 to 64 characters.
pub fn validate_library_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_LIBRARY_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "library name must be 1 to {MAX_LIBRARY_NAME} characters of A-Z, a-z, 0-9, `_` or `-`, got {name:?}"
        )))
    }
}

/// Document and chunk ids: non-empty, at most [`MAX_ID_BYTES`] bytes, no control characters.
pub fn validate_id(what: &str, id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ID_BYTES || id.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{what} id must be 1 to {MAX_ID_BYTES} bytes without control characters, got {id:?}"
        )));
    }
    Ok(())
}

/// `POST /v1/libraries/{lib}/rebuild`: rebuild the index with a new configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebuildRequest {
    pub index: IndexConfig,
}

/// `POST /v1/libraries/{lib}/optimize`: the body is empty or `{}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizeRequest {}

impl OptimizeRequest {
    /// Parses the request body; an empty (or blank) body means `{}`.
    ///
    /// # Errors
    /// As [`from_json`]: any field is `invalid`.
    pub fn from_body(body: &[u8]) -> Result<Self> {
        if body.iter().all(u8::is_ascii_whitespace) {
            Ok(OptimizeRequest {})
        } else {
            from_json(body)
        }
    }
}

/// The JSON description of a library, with its statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LibraryList {
    pub libraries: Vec<LibraryInfo>,
}

/// One chunk in an upsert request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkInput {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub text: String,
    /// The chunk's vector. May be left out when the library has an embedding provider
    /// and the host embeds `text`.
    #[serde(default)]
    pub embedding: Vec<f32>,
    #[serde(default)]
    pub metadata: Metadata,
}

/// `POST /v1/libraries/{lib}/documents`: insert or replace a whole document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsertDocumentRequest {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub metadata: Metadata,
    pub chunks: Vec<ChunkInput>,
}

impl UpsertDocumentRequest {
    /// Resolves ids: the document gets `id` (the request's own, or one the caller
    /// generated), and a chunk without an id gets `{document}#{position}`, so replaying
    /// the same request gives the same ids everywhere.
    pub fn into_document(self, id: String) -> DocumentData {
        let chunks = self
            .chunks
            .into_iter()
            .enumerate()
            .map(|(i, c)| ChunkData {
                id: c.id.unwrap_or_else(|| format!("{id}#{i}")),
                text: c.text,
                embedding: c.embedding,
                metadata: c.metadata,
            })
            .collect();
        DocumentData {
            id,
            metadata: self.metadata,
            chunks,
        }
    }
}

/// Response to an upsert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpsertResponse {
    pub id: String,
    pub chunk_ids: Vec<String>,
}

/// `POST /v1/libraries/{lib}/documents/batch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchUpsertRequest {
    pub documents: Vec<UpsertDocumentRequest>,
}

impl BatchUpsertRequest {
    /// Checks the batch size.
    ///
    /// # Errors
    /// `Invalid` for an empty batch or one over [`MAX_BATCH_DOCUMENTS`].
    pub fn validate(&self) -> Result<()> {
        let n = self.documents.len();
        if n == 0 || n > MAX_BATCH_DOCUMENTS {
            return Err(Error::invalid(format!(
                "a batch holds 1 to {MAX_BATCH_DOCUMENTS} documents, got {n}"
            )));
        }
        Ok(())
    }
}

/// `GET /v1/libraries/{lib}/documents`: one page of documents in id order. `cursor` is
/// the `next_cursor` of the previous page; `filter` keeps the documents with at least
/// one matching chunk (chunk metadata first, then the document's, as in search).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListDocumentsRequest {
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub filter: Option<Metadata>,
}

/// A document in a listing: its id, metadata and number of chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentSummary {
    pub id: String,
    pub metadata: Metadata,
    pub chunks: u32,
}

/// One page of a document listing. `next_cursor` is absent on the last page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentList {
    pub documents: Vec<DocumentSummary>,
    pub next_cursor: Option<String>,
}

/// `POST /v1/libraries/{lib}/documents/delete`: delete the listed documents, or every
/// document with a chunk matching `filter` (exactly one of the two).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteDocumentsRequest {
    #[serde(default)]
    pub ids: Option<Vec<String>>,
    #[serde(default)]
    pub filter: Option<Metadata>,
}

/// What a bulk delete removed (ids that did not exist are not listed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteDocumentsResponse {
    pub deleted: u64,
    pub ids: Vec<String>,
}

/// One document's result in a batch: either its ids or its error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BatchItemResult {
    Ok(UpsertResponse),
    Err(ErrorBody),
}

/// Response to a batch upsert, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchUpsertResponse {
    pub results: Vec<BatchItemResult>,
}

/// `GET /v1/libraries/{lib}/documents/{doc}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentResponse {
    pub id: String,
    pub metadata: Metadata,
    pub chunks: Vec<ChunkOutput>,
}

/// A stored chunk, as returned by document reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkOutput {
    pub id: String,
    pub text: String,
    pub embedding: Vec<f32>,
    pub metadata: Metadata,
}

/// Search mode. Without one, a search with both `vector` and `text` is `hybrid`, with
/// only `text` is `keyword`, and with only `vector` is `vector`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    #[default]
    Vector,
    Keyword,
    Hybrid,
}

/// What a hit carries besides ids and score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Include {
    Text,
    Metadata,
    Vector,
}

/// Per-query index parameters (used by approximate indexes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    #[serde(default)]
    pub ef: Option<u32>,
    #[serde(default)]
    pub nprobe: Option<u32>,
}

/// `POST /v1/libraries/{lib}/search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    #[serde(default)]
    pub vector: Option<Vec<f32>>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default = "default_k")]
    pub k: u32,
    #[serde(default)]
    pub filter: Option<Metadata>,
    /// `vector`, `keyword` or `hybrid`; inferred from `vector` / `text` when absent.
    #[serde(default)]
    pub mode: Option<SearchMode>,
    /// Hybrid fusion (see [`crate::rank::Fusion`]); RRF with k = 60 by default.
    #[serde(default)]
    pub fusion: Option<Metadata>,
    /// Rerankers (see [`crate::rank::Reranker`]): one object or a list.
    #[serde(default)]
    pub rerank: Option<Metadata>,
    /// How many candidates each retriever contributes to fusion and reranking
    /// (default `max(k, 100)` for hybrid or reranked searches, capped at [`MAX_K`]).
    #[serde(default)]
    pub candidates: Option<u32>,
    /// The current time in milliseconds since 1970, for the recency reranker. The
    /// transports fill it in from their clock when it is absent.
    #[serde(default)]
    pub now: Option<i64>,
    #[serde(default)]
    pub params: SearchParams,
    /// Defaults to `["text", "metadata"]`.
    #[serde(default)]
    pub include: Option<Vec<Include>>,
    /// Only hits scoring at least this much (scores are "higher is closer").
    #[serde(default)]
    pub min_score: Option<f32>,
    /// Only hits at most this far, for metrics with a distance (cosine, l2).
    #[serde(default)]
    pub distance_threshold: Option<f32>,
}

fn default_k() -> u32 {
    DEFAULT_K
}

impl SearchRequest {
    /// A vector search for `k` neighbours with default options.
    pub fn vector(vector: Vec<f32>, k: u32) -> Self {
        SearchRequest {
            vector: Some(vector),
            text: None,
            k,
            filter: None,
            mode: None,
            fusion: None,
            rerank: None,
            candidates: None,
            now: None,
            params: SearchParams::default(),
            include: None,
            min_score: None,
            distance_threshold: None,
        }
    }

    /// Whether hits should carry `what`.
    pub fn includes(&self, what: Include) -> bool {
        match &self.include {
            Some(list) => list.contains(&what),
            None => matches!(what, Include::Text | Include::Metadata),
        }
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Hit {
    pub chunk_id: String,
    pub document_id: String,
    /// Higher is closer, whatever the metric.
    pub score: f32,
    /// The metric's distance, where it has one (cosine: `1 - score`, l2: euclidean).
    #[serde(default)]
    pub distance: Option<f32>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub vector: Option<Vec<f32>>,
    /// Where the score came from (keyword, hybrid and reranked searches).
    #[serde(default)]
    pub breakdown: Option<ScoreBreakdown>,
}

/// A hit's score components: each retriever's own score and 1-based rank, and the
/// fused score before reranking.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
pub struct ScoreBreakdown {
    #[serde(default)]
    pub vector_score: Option<f32>,
    #[serde(default)]
    pub vector_rank: Option<u32>,
    #[serde(default)]
    pub keyword_score: Option<f32>,
    #[serde(default)]
    pub keyword_rank: Option<u32>,
    #[serde(default)]
    pub fused_score: Option<f32>,
}

/// Serializes a struct whose `Option` fields JSON omits when absent but postcard (not
/// self-describing) always needs, in order.
macro_rules! serialize_optional_fields {
    ($ty:ident, $name:literal, [$($req:ident),*], [$($opt:ident),*]) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(
                &self,
                serializer: S,
            ) -> core::result::Result<S::Ok, S::Error> {
                let keep_absent = !serializer.is_human_readable();
                let count = [$(stringify!($req),)* $(stringify!($opt),)*].len();
                let mut s = serializer.serialize_struct($name, count)?;
                $(s.serialize_field(stringify!($req), &self.$req)?;)*
                $(
                    if keep_absent || self.$opt.is_some() {
                        s.serialize_field(stringify!($opt), &self.$opt)?;
                    } else {
                        s.skip_field(stringify!($opt))?;
                    }
                )*
                s.end()
            }
        }
    };
}

serialize_optional_fields!(
    ScoreBreakdown,
    "ScoreBreakdown",
    [],
    [
        vector_score,
        vector_rank,
        keyword_score,
        keyword_rank,
        fused_score
    ]
);
serialize_optional_fields!(
    Hit,
    "Hit",
    [chunk_id, document_id, score],
    [distance, text, metadata, vector, breakdown]
);

/// Response to a search. `took_ms` is filled in by the transport (the engine has no clock).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResponse {
    pub hits: Vec<Hit>,
    pub took_ms: f64,
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthResponse {
    pub status: String,
    pub version: String,
    pub runtime: String,
}
